//! Monitors: the scheduler that runs checks as due work, the probes (http, tcp, dns, tls) and
//! heartbeat deadlines. Results feed the same ingest pipeline as external events.

pub mod heartbeat;
