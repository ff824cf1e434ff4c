use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::out;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a config file: every error with file, line and column, all at once.
    Check {
        /// The config file.
        file: PathBuf,
    },
    /// Print a documented example config.
    Example,
    /// Print a new random integration key (32 alphanumeric characters).
    GenKey,
    /// Make a running server re-read the config file it was started with (as SIGHUP does).
    /// An invalid file is refused with every error, and the running config stays.
    Reload(ReloadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// Base URL of the Tocsin server.
    #[arg(long, env = "TOCSIN_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A PEM CA certificate to trust (for a server with a private certificate).
    #[arg(long, env = "TOCSIN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// API token with scope `write` (create one with `tocsin token create --scope write`).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Reload(args) => reload(args).await,
        ConfigCommand::Check { file } => match tocsin_config::load(&file) {
            Ok(config) => {
                out(check_summary(&file, &config))?;
                for warning in gap_warnings(&config, jiff::Timestamp::now()) {
                    out(warning)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{}", errors.to_string().trim_end());
                Ok(ExitCode::FAILURE)
            }
        },
        ConfigCommand::Example => {
            out(tocsin_config::EXAMPLE.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::GenKey => {
            out(tocsin_config::generate_integration_key())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `config check` prints for a valid file: what acts today, then each section that is
/// accepted but not acted on yet, so that nobody mistakes a validated monitor for a running one.
fn check_summary(file: &std::path::Path, config: &tocsin_config::Config) -> String {
    let mut summary = format!(
        "{}: ok ({} services, {} users, {} teams)",
        file.display(),
        config.services.len(),
        config.users.len(),
        config.teams.len(),
    );
    let inert = config.inert_sections();
    if !inert.is_empty() {
        summary.push_str(
            "\naccepted but not acted on yet (validated only: nothing posts to Discord or Teams \
             channels):",
        );
        for section in inert {
            summary.push_str(&format!(
                "\n  {} {}: would {}",
                section.count, section.name, section.what_it_would_do
            ));
        }
    }
    summary
}

/// The most gaps listed per schedule; the rest are counted.
const GAPS_LISTED: usize = 20;

/// One warning per schedule that has nobody on call at some moment of the 30 days from `now`,
/// with those ranges, as the config alone makes them (overrides are made at run time and
/// live in the database: `tocsin oncall gaps` counts them).
pub(crate) fn gap_warnings(config: &tocsin_config::Config, now: jiff::Timestamp) -> Vec<String> {
    let to = now
        .checked_add(tocsin_engine::oncall::GAP_HORIZON)
        .unwrap_or(jiff::Timestamp::MAX);
    let catalog = tocsin::schedules_from_config(config);
    catalog
        .gaps_without_overrides(now, to)
        .into_iter()
        .map(|schedule| {
            let mut warning = format!(
                "warning: schedule `{}` has nobody on call {} time{} in the next 30 days \
                 (overrides aside):",
                schedule.schedule,
                schedule.gaps.len(),
                if schedule.gaps.len() == 1 { "" } else { "s" }
            );
            for gap in schedule.gaps.iter().take(GAPS_LISTED) {
                warning.push_str(&format!("\n  from {} to {}", gap.start, gap.end));
            }
            if schedule.gaps.len() > GAPS_LISTED {
                warning.push_str(&format!(
                    "\n  and {} more",
                    schedule.gaps.len() - GAPS_LISTED
                ));
            }
            warning
        })
        .collect()
}

async fn reload(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("tocsin-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    let client = builder.build().context("cannot build the HTTP client")?;
    let url = format!("{}/api/v1/config/reload", args.server.trim_end_matches('/'));
    let response = client
        .post(&url)
        .bearer_auth(&args.token)
        .send()
        .await
        .context("cannot reach the server to reload its config")?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    if status.is_success() && args.json {
        out(serde_json::to_string_pretty(&body)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if status.is_success() {
        out(format!(
            "reloaded: {} services, sha256 {}{}",
            body.get("services").and_then(Value::as_u64).unwrap_or(0),
            field("sha256"),
            if body.get("changed").and_then(Value::as_bool) == Some(false) {
                " (unchanged)"
            } else {
                ""
            }
        ))?;
        for setting in body
            .get("needs_restart")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            out(format!(
                "needs a restart: `{setting}` changed; the server keeps the old value until then"
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = field("report");
    if !report.is_empty() {
        eprintln!("{report}");
    }
    let message = match field("message") {
        "" => text.trim().to_owned(),
        message => message.to_owned(),
    };
    anyhow::bail!("the server refused the reload: HTTP {status}: {message}")
}
