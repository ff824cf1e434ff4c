//! The alert storm: many triggers on one dedup key must fold into one alert (its count equal to
//! the number of accepted events) and one incident. Sent over HTTP, then read back through
//! `/api/v1`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{json, Value};

use crate::client::{self, Target};
use crate::load::{self, LoadPlan, LoadReport, Payload, RequestKind};

/// Pages of incidents read at most while looking for the storm's incident.
const MAX_PAGES: usize = 100;
const API_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct StormPlan {
    pub target: Target,
    pub token: String,
    pub routing_key: String,
    pub events: u64,
    pub clients: usize,
    pub time_limit: Duration,
    pub request_timeout: Duration,
    pub server_pid: Option<u32>,
}

#[derive(Debug)]
pub struct StormReport {
    pub dedup_key: String,
    pub load: LoadReport,
    /// From the first event sent to the last answer.
    pub elapsed: Duration,
    /// Incidents on the server whose dedup key is the storm's.
    pub incidents: usize,
    /// Incidents listed on the server, all keys.
    pub incidents_total: usize,
    /// Alerts of the storm's incident, and the count of the first one.
    pub alerts: usize,
    pub alert_count: Option<i64>,
    pub verify_time: Duration,
}

impl StormReport {
    /// One incident, one alert, and the alert counted every accepted event.
    pub fn confirmed(&self) -> bool {
        self.incidents == 1
            && self.alerts == 1
            && self.alert_count == Some(self.load.accepted as i64)
            && self.load.accepted > 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "dedup_key": self.dedup_key,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "incidents_with_key": self.incidents,
            "incidents_total": self.incidents_total,
            "alerts": self.alerts,
            "alert_count": self.alert_count,
            "verify_s": self.verify_time.as_secs_f64(),
            "confirmed": self.confirmed(),
            "load": self.load.to_json(),
        })
    }

    pub fn print(&self, title: &str) {
        self.load.print(title);
        println!(
            "  storm       {} events on `{}` in {:.1} s; read back: {} incident(s) with the key \
             ({} in total), {} alert(s), count {} -> {}",
            self.load.accepted,
            self.dedup_key,
            self.elapsed.as_secs_f64(),
            self.incidents,
            self.incidents_total,
            self.alerts,
            self.alert_count
                .map_or_else(|| "-".to_owned(), |count| count.to_string()),
            if self.confirmed() {
                "confirmed"
            } else {
                "NOT confirmed"
            }
        );
    }
}

pub async fn run(plan: StormPlan) -> anyhow::Result<StormReport> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let key_prefix = format!("storm-{stamp}");
    let dedup_key = format!("{key_prefix}-0");
    let load = load::run(LoadPlan {
        target: plan.target.clone(),
        clients: plan.clients,
        rate: 0.0,
        warmup: Duration::ZERO,
        duration: None,
        events: Some(plan.events),
        time_limit: plan.time_limit,
        request_timeout: plan.request_timeout,
        payload: Payload {
            kind: RequestKind::Enqueue,
            routing_key: plan.routing_key.clone(),
            keys: 1,
            key_prefix,
        },
        server_pid: plan.server_pid,
        progress: true,
    })
    .await?;
    let elapsed = load.measured;

    let verify_started = Instant::now();
    let (incidents, incidents_total) = incidents_with_key(&plan, &dedup_key).await?;
    let (alerts, alert_count) = match incidents.first() {
        Some(number) => alerts_of(&plan, *number).await?,
        None => (0, None),
    };
    Ok(StormReport {
        dedup_key,
        load,
        elapsed,
        incidents: incidents.len(),
        incidents_total,
        alerts,
        alert_count,
        verify_time: verify_started.elapsed(),
    })
}

/// Numbers of the incidents opened by `dedup_key`, and how many incidents there are in all.
async fn incidents_with_key(
    plan: &StormPlan,
    dedup_key: &str,
) -> anyhow::Result<(Vec<i64>, usize)> {
    let mut matching = Vec::new();
    let mut total = 0;
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/incidents?limit=100&cursor={cursor}"),
            None => "/api/v1/incidents?limit=100".to_owned(),
        };
        let page = api_get(plan, &path).await?;
        let items = page["items"]
            .as_array()
            .context("the incident list has no `items`")?;
        total += items.len();
        for incident in items {
            if incident["dedup_key"] == dedup_key {
                matching.push(
                    incident["number"]
                        .as_i64()
                        .context("an incident has no `number`")?,
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok((matching, total))
}

async fn alerts_of(plan: &StormPlan, incident: i64) -> anyhow::Result<(usize, Option<i64>)> {
    let page = api_get(
        plan,
        &format!("/api/v1/incidents/{incident}/alerts?limit=100"),
    )
    .await?;
    let items = page["items"]
        .as_array()
        .context("the alert list has no `items`")?;
    Ok((
        items.len(),
        items.first().and_then(|alert| alert["count"].as_i64()),
    ))
}

async fn api_get(plan: &StormPlan, path: &str) -> anyhow::Result<Value> {
    let (status, body) =
        client::get_once(&plan.target, path, Some(&plan.token), API_TIMEOUT).await?;
    if !status.is_success() {
        anyhow::bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: the body is not JSON"))
}
