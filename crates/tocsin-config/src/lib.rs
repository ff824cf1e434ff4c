//! Tocsin's config file: the structure of a team's on-call world (users, teams, schedules,
//! escalation policies, services, monitors, rules, the status page), reviewed like code.
//!
//! [`parse`] turns TOML text into a typed, validated [`Config`] or into [`ConfigErrors`]
//! listing every problem at once, each with its line, column and a hint. `${NAME}` in any
//! string value reads an environment variable; values of secret fields end up in [`Secret`],
//! whose `Debug` and `Display` never show them. [`load`] does the same for a file and then
//! applies the `TOCSIN_*` overrides.
//!
//! The model is built by walking the spanned TOML tree by hand rather than with serde derive,
//! because derive stops at the first error and knows nothing about references between
//! sections.

mod duration;
mod error;
mod inert;
mod interpolate;
mod model;
mod overrides;
mod parse;
mod reader;
mod secret;
mod suggest;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use inert::InertSection;
pub use model::*;
pub use overrides::{apply_overrides, OVERRIDE_VARIABLES};
pub use secret::Secret;
pub use tocsin_core::CronError;

/// A complete, commented example config. It passes validation as it is: the variables it names
/// (`PAYMENTS_CHAT_WEBHOOK`, `AUDIT_HOOK_SECRET`, `CHECKOUT_ROUTING_KEY`,
/// `CHECKOUT_GRAFANA_SECRET`, `BACKUP_PING_KEY`) fall back to placeholder defaults when unset.
/// `tocsin config example` prints it.
pub const EXAMPLE: &str = include_str!("../example.toml");

/// The config `tocsin demo` runs: no environment variables, fixed integration keys, no
/// monitor that needs the network.
pub const DEMO: &str = include_str!("../demo.toml");

/// Reads the config file at `path`, interpolates `${NAME}` from the process environment,
/// checks that TLS files exist, then applies the `TOCSIN_*` overrides.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given as a function, for tests and for callers that keep
/// their own view of the environment. `env` serves both `${NAME}` and the overrides.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors::single(ConfigError {
            file: origin.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {error}"),
            help: Some(
                "check the path; `tocsin config example` prints a config to start from".to_owned(),
            ),
        })
    })?;
    let base_dir = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut config = parse::parse_document(&source, &origin, env, Some(base_dir))?;
    apply_overrides(&mut config, env)?;
    Ok(config)
}

/// Parses and validates config text. `origin` is the file name shown in errors; `env`
/// resolves `${NAME}`. No `TOCSIN_*` overrides are applied and TLS paths are not checked.
pub fn parse(
    source: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    parse::parse_document(source, origin, env, None)
}

/// A fresh integration key in the required format: 32 random lowercase hex digits.
pub fn generate_integration_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
