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
                out(format!(
                    "{}: ok ({} services, {} users, {} escalation policies, {} monitors)",
                    file.display(),
                    config.services.len(),
                    config.users.len(),
                    config.escalation_policies.len(),
                    config.monitors.len()
                ))?;
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
