//! Reading the config file with its hash, and reloading it while the server runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tocsin_config::{Config, ConfigError, ConfigErrors};
use tocsin_engine::{Catalog, ConfigReload, Metrics, ReloadError, ReloadReport};

use crate::{heartbeats_from_config, rules_from_config, services_from_config};

/// A config file as read: the validated config and the SHA-256 of the bytes it came from.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub sha256: String,
}

/// Reads, validates and hashes the config file at `path` (as `tocsin_config::load` does:
/// `${NAME}` from the environment, TLS files checked, `TOCSIN_*` overrides applied).
pub fn read_config(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let origin = path.display().to_string();
    let unreadable = |error: std::io::Error| ConfigErrors {
        errors: vec![ConfigError {
            file: origin.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {error}"),
            help: Some(
                "check the path; `tocsin config example` prints a config to start from".to_owned(),
            ),
        }],
    };
    let before = std::fs::read(path).map_err(unreadable)?;
    let config = tocsin_config::load(path)?;
    // The hash must describe what was parsed: a file replaced between the two reads is
    // reported rather than mislabelled.
    let after = std::fs::read(path).map_err(unreadable)?;
    if before != after {
        return Err(ConfigErrors {
            errors: vec![ConfigError {
                file: origin,
                line: 0,
                column: 0,
                message: "the config file changed while it was being read".to_owned(),
                help: Some("load it again once it is written completely".to_owned()),
            }],
        });
    }
    Ok(LoadedConfig {
        config,
        sha256: hex::encode(Sha256::digest(&before)),
    })
}

/// Where the running server's config came from, and the command-line values that override it.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// `--listen`, which overrides `server.listen`.
    pub listen: Option<SocketAddr>,
    /// `--database` / `TOCSIN_DATABASE`, which overrides `server.database`.
    pub database: Option<String>,
    /// SHA-256 of the file as loaded at start-up.
    pub sha256: String,
}

/// The settings that take effect only at start-up, as the running server uses them.
#[derive(PartialEq)]
struct StartupOnly {
    listen: SocketAddr,
    database: Option<String>,
    tls: Option<tocsin_config::Tls>,
    log_format: tocsin_config::LogFormat,
    header_read_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
    max_connections: Option<usize>,
    queue_capacity: usize,
    max_batch: usize,
    watchdog: Option<tocsin_config::Watchdog>,
}

impl StartupOnly {
    fn of(config: &Config, file: &ConfigFile) -> Self {
        StartupOnly {
            listen: file.listen.unwrap_or(config.server.listen),
            database: file.database.clone().or_else(|| {
                config
                    .server
                    .database
                    .as_ref()
                    .map(|url| url.expose().to_owned())
            }),
            tls: config.server.tls.clone(),
            log_format: config.server.log_format,
            header_read_timeout: config.server.header_read_timeout,
            idle_timeout: config.server.idle_timeout,
            max_connections: config.server.max_connections,
            queue_capacity: config.ingest.queue_capacity,
            max_batch: config.ingest.max_batch,
            watchdog: config.watchdog.clone(),
        }
    }

    /// The names of the settings that differ.
    fn differences(&self, other: &StartupOnly) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut differs = |name, different: bool| {
            if different {
                names.push(name);
            }
        };
        differs("server.listen", self.listen != other.listen);
        differs("server.database", self.database != other.database);
        differs("server.tls", self.tls != other.tls);
        differs("server.log_format", self.log_format != other.log_format);
        differs(
            "server.header_read_timeout",
            self.header_read_timeout != other.header_read_timeout,
        );
        differs(
            "server.idle_timeout",
            self.idle_timeout != other.idle_timeout,
        );
        differs(
            "server.max_connections",
            self.max_connections != other.max_connections,
        );
        differs(
            "ingest.queue_capacity",
            self.queue_capacity != other.queue_capacity,
        );
        differs("ingest.max_batch", self.max_batch != other.max_batch);
        differs("watchdog", self.watchdog != other.watchdog);
        names
    }
}

/// Reloads the config file into the running server: the catalog of services swaps in whole;
/// start-up-only settings are reported as needing a restart.
pub(crate) struct Reloader {
    file: ConfigFile,
    catalog: Arc<Catalog>,
    rules: Arc<tocsin_engine::rules::RuleSet>,
    monitors: Arc<tocsin_checks::Monitors>,
    metrics: Arc<Metrics>,
    startup: StartupOnly,
    /// The hash in force; also serialises reloads.
    current: Mutex<String>,
    /// Gets the new contact methods.
    dispatcher: Option<Arc<tocsin_notify::Dispatcher>>,
    /// Gets the new `[status_page]` and components.
    status: Option<Arc<crate::status_page::StatusBuilder>>,
}

impl Reloader {
    pub(crate) fn new(
        file: ConfigFile,
        config: &Config,
        catalog: Arc<Catalog>,
        rules: Arc<tocsin_engine::rules::RuleSet>,
        monitors: Arc<tocsin_checks::Monitors>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.config_loaded(&file.sha256, unix_now());
        Reloader {
            startup: StartupOnly::of(config, &file),
            current: Mutex::new(file.sha256.clone()),
            file,
            catalog,
            rules,
            monitors,
            metrics,
            dispatcher: None,
            status: None,
        }
    }

    pub(crate) fn with_dispatcher(mut self, dispatcher: Arc<tocsin_notify::Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    pub(crate) fn with_status(mut self, status: Arc<crate::status_page::StatusBuilder>) -> Self {
        self.status = Some(status);
        self
    }
}

impl ConfigReload for Reloader {
    fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let loaded = match read_config(&self.file.path) {
            Ok(loaded) => loaded,
            Err(errors) => {
                self.metrics.count_reload("failure");
                let report = errors.to_string().trim_end().to_owned();
                tracing::error!(
                    file = %self.file.path.display(),
                    report = %report,
                    "config reload refused; the running config stays in force"
                );
                return Err(ReloadError::Invalid {
                    file: self.file.path.display().to_string(),
                    report,
                });
            }
        };
        let needs_restart = self
            .startup
            .differences(&StartupOnly::of(&loaded.config, &self.file));
        self.catalog.replace_with_schedules(
            services_from_config(&loaded.config),
            crate::catalog::schedules_from_config(&loaded.config),
        );
        self.catalog
            .replace_heartbeats(heartbeats_from_config(&loaded.config));
        self.rules.replace(rules_from_config(&loaded.config));
        self.monitors.replace(&loaded.config.monitors);
        self.catalog
            .replace_paging(crate::catalog::paging_from_config(&loaded.config));
        self.catalog
            .replace_update_channels(crate::catalog::update_channels_from_config(&loaded.config));
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher
                .replace_destinations(tocsin_notify::Destinations::from_config(&loaded.config));
        }
        if let Some(status) = &self.status {
            status.replace_config(&loaded.config);
        }
        let changed = *current != loaded.sha256;
        *current = loaded.sha256.clone();
        self.metrics.config_loaded(&loaded.sha256, unix_now());
        self.metrics.count_reload("success");
        for setting in &needs_restart {
            tracing::warn!(
                setting,
                "config reload: this setting changed and takes effect only after a restart"
            );
        }
        tracing::info!(
            sha256 = %loaded.sha256,
            services = loaded.config.services.len(),
            changed,
            "config reloaded"
        );
        Ok(ReloadReport {
            sha256: loaded.sha256,
            services: loaded.config.services.len(),
            changed,
            needs_restart,
        })
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Reloads on every `SIGHUP` until `stop` is cancelled.
#[cfg(unix)]
pub(crate) async fn reload_on_hangup(
    reloader: Arc<dyn ConfigReload>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            received = hangups.recv() => {
                if received.is_none() {
                    return Ok(());
                }
                tracing::info!("SIGHUP: reloading the config");
                let reloader = Arc::clone(&reloader);
                // Refusals are logged by the reloader; the server goes on either way.
                let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
            }
        }
    }
}
