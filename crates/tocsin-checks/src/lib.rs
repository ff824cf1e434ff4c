//! Monitors: the scheduler that runs checks as due work, the probes (http, tcp, dns, tls) and
//! the state machine that turns results into alerts, and heartbeat deadlines. Results feed the
//! same ingest pipeline as external events.

pub mod heartbeat;
pub mod probe;
pub mod runner;
pub mod state;
pub mod stored;

pub use probe::{CheckResult, CheckStatus, Prober};
pub use runner::{dedup_key, MonitorRunner, Monitors, RunReport, RunnerSettings, MONITOR_CHECK};
pub use state::{AlertAction, AlertLink, Decision, MonitorState, MonitorStatus, Thresholds};
