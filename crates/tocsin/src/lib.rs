//! The `tocsin` binary's library: wiring of the store, the engine and the web layer under one
//! supervisor and one shutdown. `main` parses arguments and calls [`launch`]; tests call the
//! same function with a port-0 listener.

mod catalog;
mod reload;
mod server;
pub mod status_page;
pub mod supervisor;
mod telemetry;
mod tls;
pub mod watchdog;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tocsin_config::Config;
use tocsin_engine::rules::{RuleEvaluator, RuleObserver, RuleRunner, RuleSet};
use tocsin_engine::{
    Catalog, Clock, ConfigReload, DueRunnerSettings, Engine, IngestSettings, Ingestor, Metrics,
    SystemClock,
};
use tocsin_store::Store;

pub use catalog::{
    catalog_from_config, heartbeats_from_config, paging_from_config, rules_from_config,
    schedules_from_config, services_from_config,
};
pub use reload::{read_config, ConfigFile, LoadedConfig};
pub use server::{bind_listener, ConnectionLimits, LISTEN_BACKLOG};
pub use telemetry::init_tracing;

use supervisor::{Importance, Stage, Supervisor};

/// Everything `launch` needs, resolved from the command line, the config file and the
/// environment.
pub struct Settings {
    pub config: Config,
    /// Where the SQLite database lives when no PostgreSQL URL is given.
    pub data_dir: PathBuf,
    /// A `postgres://` URL; overrides `server.database` from the config.
    pub database: Option<String>,
}

/// The database URL may hold a password: `Debug` shows only which kind of store it names.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.as_ref().map(|_| "<redacted>"))
            .finish()
    }
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

/// Closes the store a [`open_store`] call opened: SQLite closes its ingest connection and
/// checkpointer and closes its connections; PostgreSQL closes its pool. Call it once nothing
/// uses the store any more.
pub struct StoreCloser(Arc<dyn Store>);

impl std::fmt::Debug for StoreCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCloser")
    }
}

impl StoreCloser {
    pub async fn close(self) {
        self.0.close().await;
        tracing::info!("store closed");
    }
}

/// Opens the store the settings name: PostgreSQL for a `postgres://` URL, else SQLite in the
/// data directory.
pub async fn open_store(settings: &Settings) -> anyhow::Result<(Arc<dyn Store>, StoreCloser)> {
    match settings.database_url() {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                anyhow::bail!(
                    "database URL must start with postgres:// or postgresql:// (leave it unset to use SQLite in the data directory)"
                );
            }
            let store: Arc<dyn Store> = Arc::new(
                tocsin_store_postgres::PostgresStore::connect(&url)
                    .await
                    .context("cannot open the PostgreSQL store")?,
            );
            Ok((Arc::clone(&store), StoreCloser(store)))
        }
        None => {
            let store: Arc<dyn Store> = Arc::new(
                tocsin_store_sqlite::SqliteStore::open(&settings.data_dir)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot open the SQLite store in {}",
                            settings.data_dir.display()
                        )
                    })?,
            );
            Ok((Arc::clone(&store), StoreCloser(store)))
        }
    }
}

/// How long requests in flight may take to finish at shutdown.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the ingest writer may take to commit what is queued at shutdown.
const INGEST_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the other tasks may take to stop.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A built application: the store is open and migrated, the ingest writer runs.
pub struct App {
    engine: Arc<Engine>,
    dispatcher: Arc<tocsin_notify::Dispatcher>,
    catalog: Arc<Catalog>,
    rules: Arc<RuleSet>,
    monitors: Arc<tocsin_checks::Monitors>,
    /// Keeps the status page's snapshot current.
    status: Arc<status_page::StatusBuilder>,
    metrics: Arc<Metrics>,
    writer: tokio::task::JoinHandle<()>,
    closer: StoreCloser,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    reloader: Option<Arc<dyn ConfigReload>>,
    /// Pings the `[watchdog]` URL while the pipeline is healthy.
    watchdog: Option<watchdog::Watchdog>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("engine", &self.engine)
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .field("reloadable", &self.reloader.is_some())
            .finish()
    }
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`App::build`] with the clock the engine, the due work and the dispatcher read (a
    /// test's manual clock: escalation timeouts pass without waiting for them).
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let tls = match &settings.config.server.tls {
            Some(tls) => Some(Arc::new(tls::server_config(
                &tls.certificate,
                &tls.private_key,
            )?)),
            None => None,
        };
        let limits = ConnectionLimits::from_config(&settings.config.server);
        let (store, closer) = open_store(settings).await?;
        let catalog = Arc::new(catalog_from_config(&settings.config));
        let metrics = Arc::new(Metrics::new());
        let rules = Arc::new(RuleSet::new(rules_from_config(&settings.config)));
        // The rules count what the ingest writer commits.
        let (ingestor, writer) = Ingestor::start_with(
            Arc::new(RuleObserver::new(Arc::clone(&store), Arc::clone(&rules))),
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
            Arc::clone(&catalog),
            ingestor,
            clock,
            Arc::clone(&metrics),
        ));
        engine
            .load_link_keys()
            .await
            .context("cannot load the key of acknowledge and resolve links")?;
        let dispatcher = Arc::new(tocsin_notify::Dispatcher::new(
            Arc::clone(&engine),
            tocsin_notify::Destinations::from_config(&settings.config),
            tocsin_notify::Senders::new(settings.config.smtp.clone()),
            tocsin_notify::DispatcherSettings::default(),
        ));
        let watchdog = match &settings.config.watchdog {
            Some(config) => Some(watchdog::Watchdog::new(Arc::clone(&engine), config)?),
            None => None,
        };
        let monitors = Arc::new(tocsin_checks::Monitors::new(&settings.config.monitors));
        let status = Arc::new(status_page::StatusBuilder::new(
            Arc::clone(&engine),
            Arc::clone(&monitors),
            Arc::new(tocsin_web::PublicStatus::new()),
            &settings.config,
        ));
        Ok(App {
            engine,
            dispatcher,
            catalog,
            rules,
            monitors,
            status,
            metrics,
            writer,
            closer,
            tls,
            limits,
            reloader: None,
            watchdog,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The outbox dispatcher the app runs (tests drain it by hand).
    pub fn dispatcher(&self) -> &Arc<tocsin_notify::Dispatcher> {
        &self.dispatcher
    }

    /// Makes the running config reloadable from `file` (`SIGHUP`, `POST
    /// /api/v1/config/reload`); `config` is the config the app was built with.
    pub fn reload_from(mut self, file: ConfigFile, config: &Config) -> Self {
        self.reloader = Some(Arc::new(
            reload::Reloader::new(
                file,
                config,
                Arc::clone(&self.catalog),
                Arc::clone(&self.rules),
                Arc::clone(&self.monitors),
                Arc::clone(&self.metrics),
            )
            .with_dispatcher(Arc::clone(&self.dispatcher))
            .with_status(Arc::clone(&self.status)),
        ));
        self
    }

    /// Serves HTTP (or HTTPS when the config names a certificate) on `listener` until
    /// `shutdown` completes or an essential task ends. Then, in order: stops accepting and lets
    /// requests in flight finish (up to 10 s), commits what the ingest queue still holds (up to
    /// 30 s), stops the other tasks, and closes the store. Errors when a task ended
    /// unexpectedly, naming it.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            engine,
            dispatcher,
            catalog: _,
            rules,
            monitors,
            status,
            metrics,
            writer,
            closer,
            tls,
            limits,
            reloader,
            watchdog,
        } = self;
        listener
            .set_nonblocking(true)
            .context("cannot configure the listener")?;
        let address = listener.local_addr().context("listener has no address")?;
        let listener =
            tokio::net::TcpListener::from_std(listener).context("cannot use the listener")?;
        let mut router = tocsin_web::router_with(
            Arc::clone(&engine),
            tocsin_web::WebSettings::default(),
            Arc::clone(status.public()),
        )
        .layer(axum::Extension(Arc::clone(&monitors)));
        if let Some(reloader) = &reloader {
            let reloader: tocsin_web::Reloader = Arc::clone(reloader);
            router = router.layer(axum::Extension(reloader));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut supervisor = Supervisor::new();
        supervisor.bound(Stage::Http, HTTP_DRAIN_TIMEOUT + Duration::from_secs(5));
        supervisor.bound(Stage::Ingest, INGEST_DRAIN_TIMEOUT);
        supervisor.bound(Stage::Background, BACKGROUND_STOP_TIMEOUT);
        supervisor.spawn("http", Stage::Http, Importance::Essential, {
            let metrics = Arc::clone(&metrics);
            move |stop| {
                server::serve(
                    listener,
                    router,
                    server::ServerSettings {
                        limits,
                        tls,
                        drain_timeout: HTTP_DRAIN_TIMEOUT,
                    },
                    metrics,
                    stop,
                )
            }
        });
        supervisor.spawn("ingest-writer", Stage::Ingest, Importance::Essential, {
            let ingestor = engine.ingestor().clone();
            move |stop| async move {
                let mut writer = writer;
                tokio::select! {
                    joined = &mut writer => return writer_ended(joined),
                    () = stop.cancelled() => {}
                }
                tracing::info!(queued = ingestor.queue_depth(), "draining the ingest queue");
                ingestor.close();
                writer_ended(writer.await)
            }
        });
        supervisor.spawn("due-work", Stage::Background, Importance::Essential, {
            let runner = engine
                .due_runner(DueRunnerSettings::default())
                .with_handler(Arc::new(tocsin_checks::heartbeat::HeartbeatDeadlines::new(
                    Arc::clone(&engine),
                )))
                .with_handler(Arc::new(tocsin_checks::heartbeat::PingRetention::new(
                    Arc::clone(&engine),
                )))
                .with_handler(Arc::new(tocsin_checks::ResultsMaintenance::new(
                    engine.store(),
                    Arc::clone(&monitors),
                )))
                .with_handler(Arc::new(tocsin_engine::GapNoticeScan::new(Arc::clone(
                    &engine,
                ))))
                .with_handler(Arc::new(tocsin_engine::WatchdogBeat))
                .with_handler(Arc::new(RuleEvaluator::new(
                    Arc::clone(&rules),
                    engine.store(),
                    engine.ingestor().clone(),
                )));
            move |stop| async move {
                runner.run_until(stop).await;
                Ok(())
            }
        });
        supervisor.spawn("rules", Stage::Background, Importance::Optional, {
            let runner = RuleRunner::new(rules, engine.store(), engine.clock());
            move |stop| async move {
                runner.run_until(stop).await;
                Ok(())
            }
        });
        supervisor.spawn("monitors", Stage::Background, Importance::Essential, {
            let runner = tocsin_checks::MonitorRunner::new(
                Arc::clone(&engine),
                monitors,
                tocsin_checks::RunnerSettings::default(),
            );
            move |stop| async move {
                runner.run_until(stop).await;
                Ok(())
            }
        });
        supervisor.spawn(
            "heartbeat-watch",
            Stage::Background,
            Importance::Optional,
            {
                let watcher = tocsin_checks::heartbeat::HeartbeatWatcher::new(Arc::clone(&engine));
                move |stop| async move {
                    watcher.run_until(stop).await;
                    Ok(())
                }
            },
        );
        supervisor.spawn("status-page", Stage::Background, Importance::Optional, {
            move |stop| async move {
                status.run_until(stop).await;
                Ok(())
            }
        });
        supervisor.spawn("outbox", Stage::Background, Importance::Essential, {
            move |stop| async move {
                dispatcher.run_until(stop).await;
                Ok(())
            }
        });
        if let Some(watchdog) = watchdog {
            supervisor.spawn("watchdog", Stage::Background, Importance::Optional, {
                move |stop| async move {
                    watchdog.run_until(stop).await;
                    Ok(())
                }
            });
        }
        #[cfg(unix)]
        if let Some(reloader) = reloader {
            supervisor.spawn(
                "config-reload-signal",
                Stage::Background,
                Importance::Optional,
                move |stop| reload::reload_on_hangup(reloader, stop),
            );
        }
        supervisor.finally(closer.close());
        tracing::info!(%address, scheme, "tocsin is listening");
        supervisor.run(shutdown).await?;
        tracing::info!("tocsin stopped");
        Ok(())
    }
}

/// The ingest writer's end as a task result: a panic of the writer stays a panic.
fn writer_ended(joined: Result<(), tokio::task::JoinError>) -> anyhow::Result<()> {
    match joined {
        Ok(()) => Ok(()),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(anyhow::Error::new(error).context("the ingest writer was cancelled")),
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
