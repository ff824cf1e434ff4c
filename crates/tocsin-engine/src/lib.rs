//! Tocsin's engine: where requests become state changes.
//!
//! - [`Ingestor`]: group commit. Handlers hand validated events to one writer task through a
//!   bounded queue; the writer commits whatever is queued in one transaction and only then
//!   answers every waiter. A full queue is an immediate [`SubmitError::QueueFull`], never a wait
//!   without bound.
//! - [`Engine`]: incident commands and reads, with the clock passed in.
//! - [`DueRunner`]: runs durable due work (`tocsin_store::due`), claimed once across replicas.
//! - [`Catalog`]: the services declared in the config, looked up by id or integration key.

mod catalog;
mod clock;
pub mod due;
mod engine;
mod error;
mod heartbeats;
mod ingest;
pub mod links;
mod metrics;
pub mod notices;
pub mod oncall;
pub mod paging;
mod reload;
pub mod rules;
pub mod tokens;
pub mod updates;
pub mod wake;
pub mod watchdog;

pub use catalog::{Catalog, GrafanaSettings, HeartbeatEntry, ServiceEntry};
pub use clock::{Clock, ManualClock, SystemClock};
pub use due::{DueRunner, DueRunnerSettings, FOLD_LOG_CHECK};
pub use engine::{Engine, LinkFollowError, ReassignError};
pub use error::EngineError;
pub use ingest::{IngestSettings, IngestTarget, Ingestor, SubmitError, GAUGE_RECOUNT_INTERVAL};
pub use metrics::Metrics;
pub use notices::{GapNoticeScan, TestPageError};
pub use paging::{AckTimeoutHandler, EscalationHandler, PagingDirectory, ReassignRefusal};
pub use reload::{ConfigReload, ReloadError, ReloadReport};
pub use tokens::TOKEN_PREFIX;
pub use updates::UpdateChannels;
pub use wake::{Wake, Wakeup, Wakeups};
pub use watchdog::{PipelineHealth, WatchdogBeat};

/// The whole cause chain of an error on one line (`outer: cause: root cause`), for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
