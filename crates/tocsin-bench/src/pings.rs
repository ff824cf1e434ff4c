//! `tocsin-bench pings`: heartbeat pings accepted durably. Writes a config with `keys`
//! heartbeat monitors (ping keys `bench-ping-key-<n>`), starts the release `tocsin serve` on a
//! fresh SQLite store, and drives `POST /ping/<key>` over all keys with the closed-loop client
//! of `tocsin-bench enqueue`. A `200` means the ping, the monitor's new state and its deadline
//! are committed (the ingest group commit).

use std::path::PathBuf;
use std::time::Duration;

use crate::load::{self, LoadPlan, LoadReport, Payload, RequestKind};
use crate::serve::{self, Served};

pub const PING_KEY_PREFIX: &str = "bench-ping-key";

#[derive(Debug, Clone)]
pub struct PingsPlan {
    pub tocsin: PathBuf,
    pub keys: u64,
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub work_dir: Option<PathBuf>,
}

pub struct PingsReport {
    pub load: LoadReport,
    pub load_before: String,
    pub load_after: String,
    pub rss: Option<(u64, u64)>,
}

impl PingsReport {
    /// Server CPU time per accepted ping, in µs.
    pub fn cpu_us_per_ping(&self) -> Option<f64> {
        let cores = self.load.cpu?.server?;
        let per_second = self.load.accepted_per_second();
        (per_second > 0.0).then(|| cores / per_second * 1e6)
    }

    pub fn print(&self) {
        self.load.print("pings");
        println!(
            "  server CPU per accepted ping: {} µs; RSS {} (peak {}); load average {} before, {} after",
            self.cpu_us_per_ping()
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
            self.rss
                .map_or_else(|| "-".to_owned(), |(rss, _)| format!("{:.0} MB", rss as f64 / 1e6)),
            self.rss
                .map_or_else(|| "-".to_owned(), |(_, hwm)| format!("{:.0} MB", hwm as f64 / 1e6)),
            self.load_before,
            self.load_after
        );
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut value = self.load.to_json();
        value["server_cpu_us_per_ping"] = serde_json::json!(self.cpu_us_per_ping());
        value["rss_bytes"] = serde_json::json!(self.rss.map(|(rss, _)| rss));
        value["vm_hwm_bytes"] = serde_json::json!(self.rss.map(|(_, hwm)| hwm));
        value["load_before"] = serde_json::json!(self.load_before);
        value["load_after"] = serde_json::json!(self.load_after);
        value
    }
}

fn config_file(listen: std::net::SocketAddr, plan: &PingsPlan) -> String {
    let mut config = format!(
        "[server]\nlisten = \"{listen}\"\n\n[ingest]\nqueue_capacity = {}\nmax_batch = {}\n\n\
         [[services]]\nid = \"bench\"\nname = \"Bench\"\n",
        plan.queue_capacity, plan.max_batch
    );
    for n in 0..plan.keys {
        config.push_str(&format!(
            "\n[[monitors]]\nid = \"hb-{n:05}\"\nservice = \"bench\"\nkind = \"heartbeat\"\nperiod = \"1h\"\ngrace = \"1h\"\nping_key = \"{PING_KEY_PREFIX}-{n}\"\n"
        ));
    }
    config
}

pub async fn run(plan: PingsPlan) -> anyhow::Result<PingsReport> {
    anyhow::ensure!(
        (1..=65_536).contains(&plan.keys),
        "--keys must be between 1 and 65536"
    );
    let server = Served::start(&plan.tocsin, plan.work_dir.as_deref(), |listen| {
        config_file(listen, &plan)
    })
    .await?;
    let load_before = serve::load_average();
    let outcome = load::run(LoadPlan {
        target: server.target.clone(),
        clients: plan.clients,
        rate: 0.0,
        warmup: plan.warmup,
        duration: Some(plan.duration),
        events: None,
        time_limit: plan.duration,
        request_timeout: Duration::from_secs(30),
        payload: Payload {
            kind: RequestKind::Ping,
            routing_key: String::new(),
            keys: plan.keys,
            key_prefix: PING_KEY_PREFIX.to_owned(),
        },
        server_pid: server.pid,
        progress: true,
    })
    .await;
    let rss = server.pid.and_then(serve::memory);
    let load_after = serve::load_average();
    if outcome.is_err() {
        eprintln!("server log:\n{}", server.log_tail());
    }
    server.stop().await?;
    Ok(PingsReport {
        load: outcome?,
        load_before,
        load_after,
        rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_has_one_heartbeat_per_key() {
        let plan = PingsPlan {
            tocsin: PathBuf::new(),
            keys: 3,
            clients: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            queue_capacity: 20_000,
            max_batch: 2048,
            work_dir: None,
        };
        let config = config_file("127.0.0.1:8080".parse().unwrap(), &plan);
        assert_eq!(config.matches("kind = \"heartbeat\"").count(), 3);
        assert!(config.contains("ping_key = \"bench-ping-key-2\""));
    }
}
