use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

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
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check { file } => match tocsin_config::load(&file) {
            Ok(config) => {
                out(check_summary(&file, &config))?;
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
            "\naccepted but not acted on yet (validated only: nothing pages, probes, evaluates \
             rules, sends messages or serves a status page):",
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
