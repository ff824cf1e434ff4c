//! The `tocsin` binary's library: wiring of the store, the engine and the web layer under one
//! shutdown. `main` parses arguments and calls [`launch`]; tests call the same function with a
//! port-0 listener.

mod catalog;
mod telemetry;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tocsin_config::Config;
use tocsin_engine::{Engine, IngestSettings, Ingestor, Metrics, SystemClock};
use tocsin_store::Store;

pub use catalog::catalog_from_config;
pub use telemetry::init_tracing;

/// Everything `launch` needs, resolved from the command line, the config file and the
/// environment.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    /// Where the SQLite database lives when no PostgreSQL URL is given.
    pub data_dir: PathBuf,
    /// A `postgres://` URL; overrides `server.database` from the config.
    pub database: Option<String>,
}

impl Settings {
    /// The PostgreSQL URL in force, if any.
    pub fn database_url(&self) -> Option<String> {
        self.database.clone().or_else(|| {
            self.config
                .server
                .database
                .as_ref()
                .map(|secret| secret.expose().to_owned())
        })
    }
}

/// Opens the store the settings name: PostgreSQL for a `postgres://` URL, else SQLite in the
/// data directory.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    match settings.database_url() {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                anyhow::bail!(
                    "database URL must start with postgres:// or postgresql:// (leave it unset to use SQLite in the data directory)"
                );
            }
            let store = tocsin_store_postgres::PostgresStore::connect(&url)
                .await
                .context("cannot open the PostgreSQL store")?;
            Ok(Arc::new(store))
        }
        None => {
            let store = tocsin_store_sqlite::SqliteStore::open(&settings.data_dir)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the SQLite store in {}",
                        settings.data_dir.display()
                    )
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// A built application: the store is open and migrated, the ingest writer runs.
pub struct App {
    engine: Arc<Engine>,
    writer: tokio::task::JoinHandle<()>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("engine", &self.engine)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let tls = match &settings.config.server.tls {
            Some(tls) => Some(Arc::new(tls::server_config(
                &tls.certificate,
                &tls.private_key,
            )?)),
            None => None,
        };
        let store = open_store(settings).await?;
        let catalog = Arc::new(catalog_from_config(&settings.config));
        let metrics = Arc::new(Metrics::new());
        let (ingestor, writer) = Ingestor::start(
            Arc::clone(&store),
            Arc::clone(&catalog),
            Arc::clone(&metrics),
            IngestSettings {
                queue_capacity: settings.config.ingest.queue_capacity,
                max_batch: settings.config.ingest.max_batch,
            },
        )
        .context("cannot start the ingest writer")?;
        let engine = Arc::new(Engine::new(
            store,
            catalog,
            ingestor,
            Arc::new(SystemClock),
            metrics,
        ));
        Ok(App {
            engine,
            writer,
            tls,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Serves HTTP (or HTTPS when the config names a certificate) on `listener` until
    /// `shutdown` completes, then stops accepting, lets requests in flight finish (up to 10 s),
    /// commits what the ingest queue still holds, and closes the store.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            engine,
            writer,
            tls,
        } = self;
        listener
            .set_nonblocking(true)
            .context("cannot configure the listener")?;
        let address = listener.local_addr().context("listener has no address")?;
        let router = tocsin_web::router(Arc::clone(&engine));
        // Closed last; holding the engine instead would keep the ingest queue open.
        let store = engine.store();
        let stop_fold_log = tokio_util::sync::CancellationToken::new();
        let fold_log = tokio::spawn({
            let stop = stop_fold_log.clone();
            async move { engine.log_folds_until(stop).await }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%address, scheme, "tocsin is listening");
        let served = match tls {
            Some(config) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                axum_server::from_tcp_rustls(
                    listener,
                    axum_server::tls_rustls::RustlsConfig::from_config(config),
                )
                .handle(handle)
                .serve(router.into_make_service())
                .await
            }
            None => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .context("cannot use the listener")?;
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        stop_fold_log.cancel();
        let _ = fold_log.await;
        served.context("the HTTP server failed")?;
        tracing::info!("http server stopped; draining the ingest queue");
        match tokio::time::timeout(Duration::from_secs(30), writer).await {
            Ok(Ok(())) => tracing::info!("ingest writer drained"),
            Ok(Err(error)) => tracing::error!(error = %error, "ingest writer ended abnormally"),
            Err(_) => tracing::error!("ingest writer did not drain within 30 s"),
        }
        store.close().await;
        tracing::info!("store closed");
        Ok(())
    }
}

/// Builds the application and serves it on `listener` until `shutdown` completes.
pub async fn launch(
    settings: Settings,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    App::build(&settings).await?.serve(listener, shutdown).await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
    }
}
