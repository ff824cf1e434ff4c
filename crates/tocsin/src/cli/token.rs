use std::path::Path;
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
        /// Print the token and its id as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        id: i64,
        /// Print the revoked token as JSON.
        #[arg(long)]
        json: bool,
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
    if settings.database_url().is_none() {
        check_data_dir(&settings.data_dir, store.create)?;
    }
    tocsin::open_store(&settings).await
}

/// Refuses a data directory without a Tocsin database unless `create` is set: a mistyped
/// `--data` must not create an empty store beside the server's real one.
fn check_data_dir(dir: &Path, create: bool) -> anyhow::Result<()> {
    if create || dir.join(tocsin_store_sqlite::DATABASE_FILE).is_file() {
        return Ok(());
    }
    let what = if dir.is_dir() {
        format!(
            "the data directory {} holds no Tocsin database ({} is missing)",
            dir.display(),
            tocsin_store_sqlite::DATABASE_FILE
        )
    } else {
        format!("the data directory {} does not exist", dir.display())
    };
    anyhow::bail!(
        "{what}; pass the server's data directory with --data (or TOCSIN_DATA), \
         --database for PostgreSQL, or add --create to start a new one there"
    )
}

pub(crate) async fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            json,
            store,
        } => {
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
            if json {
                out(serde_json::to_string_pretty(&serde_json::json!({
                    "id": token.id,
                    "name": token.name,
                    "scope": token.scope.to_string(),
                    "created_at": token.created_at.to_string(),
                    "token": secret,
                }))?)?;
            } else {
                out(secret)?;
            }
            closer.close().await;
        }
        TokenCommand::List { json, store } => {
            let (store, closer) = open_store(store).await?;
            let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
            let mut listed = Vec::new();
            if !json {
                out("ID\tSCOPE\tCREATED\tREVOKED\tNAME")?;
            }
            loop {
                let tokens = store.api_tokens(page).await?;
                for token in &tokens.items {
                    if json {
                        listed.push(token_json(token));
                        continue;
                    }
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
            if json {
                out(serde_json::to_string_pretty(&listed)?)?;
            }
            closer.close().await;
        }
        TokenCommand::Revoke { id, json, store } => {
            let (store, closer) = open_store(store).await?;
            let token = store.revoke_api_token(id, SystemClock.now()).await?;
            if json {
                out(serde_json::to_string_pretty(&token_json(&token))?)?;
            } else {
                out(format!("revoked token {} `{}`", token.id, token.name))?;
            }
            closer.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A token as `--json` prints it (never its secret, which only its hash remains of).
fn token_json(token: &tocsin_store::ApiToken) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "name": token.name,
        "scope": token.scope.to_string(),
        "created_at": token.created_at.to_string(),
        "revoked_at": token.revoked_at.map(|at| at.to_string()),
    })
}
