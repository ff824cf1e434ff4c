//! Config reload: what the HTTP layer and the signal handler call, implemented by the binary
//! (which knows the config file and how to read it).

/// Re-reads the config file the server was started with and swaps in what can change while it
/// runs. Blocking (it reads and parses a file): call it from a blocking thread.
pub trait ConfigReload: Send + Sync {
    fn reload(&self) -> Result<ReloadReport, ReloadError>;
}

/// A reload that took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// SHA-256 (hex) of the file now in force.
    pub sha256: String,
    /// Services now known.
    pub services: usize,
    /// Whether the file differs from the one in force before.
    pub changed: bool,
    /// Settings the file changes that take effect only after a restart (`server.listen`,
    /// `ingest.queue_capacity`, ...); the running server keeps the old values.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload was refused; the running config stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The file has errors: `report` lists each with its line and column, as
    /// `tocsin config check` prints them.
    #[error("the config file {file} is invalid; the running config stays in force")]
    Invalid { file: String, report: String },
    /// The server was not started from a config file (the demo, tests).
    #[error("this server was not started from a config file; there is nothing to reload")]
    NoFile,
}
