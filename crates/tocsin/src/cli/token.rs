use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use tocsin_engine::{tokens, Clock, SystemClock};
use tocsin_store::{PageRequest, Store, TokenScope};

use super::{out, StoreArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token and print it (it is stored only as a hash: copy it now).
    Create {
        /// Who or what uses the token; shown as the actor on timelines (`token:<name>`).
        #[arg(long)]
        name: String,
        /// `read` (lists and details) or `write` (also acknowledge, resolve, notes...).
        #[arg(long, default_value = "read")]
        scope: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Opens the store the command names; tokens need nothing else (no ingest, no HTTP).
pub(crate) async fn open_store(
    store: StoreArgs,
) -> anyhow::Result<(Arc<dyn Store>, tocsin::StoreCloser)> {
    let config = match &store.config {
        Some(path) => tocsin_config::load(path).map_err(|errors| anyhow::anyhow!("{errors}"))?,
        None => tocsin_config::parse("", "(defaults)", &|_| None)
            .map_err(|errors| anyhow::anyhow!("{errors}"))?,
    };
    let settings = tocsin::Settings {
        config,
        data_dir: store.data,
        database: store.database,
    };
    tocsin::open_store(&settings).await
}

pub(crate) async fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { name, scope, store } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                anyhow::bail!("--name must be 1 to 100 characters");
            }
            let scope: TokenScope = scope
                .parse()
                .map_err(|error| anyhow::anyhow!("--scope: {error}"))?;
            let (store, closer) = open_store(store).await?;
            let (secret, token) =
                tokens::create_token(store.as_ref(), name, scope, SystemClock.now())
                    .await
                    .context("cannot store the token")?;
            eprintln!(
                "created token {} `{}` with scope {}; it is shown only once:",
                token.id, token.name, token.scope
            );
            out(secret)?;
            closer.close().await;
        }
        TokenCommand::List { store } => {
            let (store, closer) = open_store(store).await?;
            let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
            out("ID\tSCOPE\tCREATED\tREVOKED\tNAME")?;
            loop {
                let tokens = store.api_tokens(page).await?;
                for token in &tokens.items {
                    out(format!(
                        "{}\t{}\t{}\t{}\t{}",
                        token.id,
                        token.scope,
                        token.created_at,
                        token
                            .revoked_at
                            .map_or_else(|| "-".to_owned(), |at| at.to_string()),
                        token.name
                    ))?;
                }
                match tokens.next {
                    Some(next) => page = PageRequest::new(Some(next), PageRequest::MAX_LIMIT),
                    None => break,
                }
            }
            closer.close().await;
        }
        TokenCommand::Revoke { id, store } => {
            let (store, closer) = open_store(store).await?;
            let token = store.revoke_api_token(id, SystemClock.now()).await?;
            out(format!("revoked token {} `{}`", token.id, token.name))?;
            closer.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
