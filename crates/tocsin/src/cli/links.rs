use std::process::ExitCode;

use tocsin_engine::links::{new_key_hex, LINK_KEY_PURPOSE};
use tocsin_engine::{Clock, SystemClock};

use super::{out, StoreArgs};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum LinksCommand {
    /// Replace the key that signs acknowledge and resolve links: links sent before stop
    /// working at once; running servers sign new links with the new key within a minute.
    RotateKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) async fn run(command: LinksCommand) -> anyhow::Result<ExitCode> {
    match command {
        LinksCommand::RotateKey { store } => {
            let (store, closer) = super::token::open_store(store).await?;
            let result = store
                .rotate_server_key(LINK_KEY_PURPOSE, &new_key_hex(), SystemClock.now())
                .await;
            closer.close().await;
            let key = result?;
            out(format!(
                "link key rotated (key {} since {}); links sent before no longer work",
                key.id, key.created_at
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
