//! `TOCSIN_*` environment variables that override `[server]` values of the file.

use std::net::SocketAddr;

use crate::error::{ConfigError, ConfigErrors};
use crate::model::{Config, LogFormat};
use crate::parse::{check_database_url, normalize_public_url, DATABASE_HELP, LISTEN_HELP};
use crate::secret::Secret;

/// The variables [`apply_overrides`] reads.
pub const OVERRIDE_VARIABLES: [&str; 4] = [
    "TOCSIN_SERVER_LISTEN",
    "TOCSIN_SERVER_PUBLIC_URL",
    "TOCSIN_SERVER_DATABASE",
    "TOCSIN_LOG_FORMAT",
];

/// Applies `TOCSIN_SERVER_LISTEN`, `TOCSIN_SERVER_PUBLIC_URL`, `TOCSIN_SERVER_DATABASE` and
/// `TOCSIN_LOG_FORMAT` over the values from the file. Unset or empty variables change nothing.
/// When the listen address changes and the public URL was the default (`http://` + listen),
/// the public URL follows it.
///
/// On error nothing is applied, and each bad variable is reported by name.
pub fn apply_overrides(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigErrors> {
    let read = |name: &str| env(name).filter(|value| !value.is_empty());
    let mut errors = Vec::new();
    let mut server = config.server.clone();

    if let Some(value) = read("TOCSIN_SERVER_LISTEN") {
        match value.parse::<SocketAddr>() {
            Ok(listen) => {
                if server.public_url == format!("http://{}", server.listen) {
                    server.public_url = format!("http://{listen}");
                }
                server.listen = listen;
            }
            Err(_) => errors.push(variable_error(
                "TOCSIN_SERVER_LISTEN",
                format!("`{value}` is not an IP address and port"),
                LISTEN_HELP,
            )),
        }
    }
    if let Some(value) = read("TOCSIN_SERVER_PUBLIC_URL") {
        match normalize_public_url(&value) {
            Ok(url) => server.public_url = url,
            Err(reason) => errors.push(variable_error(
                "TOCSIN_SERVER_PUBLIC_URL",
                reason,
                "write the URL people use to reach Tocsin, e.g. https://tocsin.acme.example",
            )),
        }
    }
    if let Some(value) = read("TOCSIN_SERVER_DATABASE") {
        match check_database_url(&value) {
            Ok(()) => server.database = Some(Secret::new(value)),
            Err(reason) => errors.push(variable_error(
                "TOCSIN_SERVER_DATABASE",
                reason,
                DATABASE_HELP,
            )),
        }
    }
    if let Some(value) = read("TOCSIN_LOG_FORMAT") {
        match value.as_str() {
            "pretty" => server.log_format = LogFormat::Pretty,
            "json" => server.log_format = LogFormat::Json,
            _ => errors.push(variable_error(
                "TOCSIN_LOG_FORMAT",
                format!("`{value}` is not a log format"),
                "allowed values: pretty, json",
            )),
        }
    }

    if errors.is_empty() {
        config.server = server;
        Ok(())
    } else {
        Err(ConfigErrors { errors })
    }
}

fn variable_error(variable: &str, reason: String, help: &str) -> ConfigError {
    ConfigError {
        file: variable.to_owned(),
        line: 0,
        column: 0,
        message: format!("invalid value of environment variable `{variable}`: {reason}"),
        help: Some(help.to_owned()),
    }
}
