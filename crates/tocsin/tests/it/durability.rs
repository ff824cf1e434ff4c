//! Durability: kill -9 the server while clients send; after restart every event that got a 202
//! is stored, and nothing is half-written.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tocsin_store::{AlertFilter, EventFilter, IncidentFilter, PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

use crate::support::{temp_dir, test_config, API_KEY};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

pub(crate) async fn start_server(config: &Path, data: &Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start tocsin");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if response.status().is_success() {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tocsin did not become ready");
}

async fn all<T>(mut fetch: impl FnMut(PageRequest) -> futures_page::PageFuture<T>) -> Vec<T> {
    let mut items = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let result = fetch(page).await.expect("page");
        items.extend(result.items);
        match result.next {
            Some(next) => page = PageRequest::new(Some(next), PageRequest::MAX_LIMIT),
            None => return items,
        }
    }
}

mod futures_page {
    pub type PageFuture<T> = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<tocsin_store::Page<T>, tocsin_store::StoreError>,
                > + Send,
        >,
    >;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_accepted_event_and_leaves_nothing_half_written() {
    let dir = temp_dir();
    let config = dir.join("tocsin.toml");
    std::fs::write(&config, test_config("")).expect("config");
    let data = dir.join("data");
    let port = free_port();
    let mut server = start_server(&config, &data, port).await;

    // (dedup key, sequence number, is a trigger) of every event that got a 202.
    let accepted: Arc<Mutex<Vec<(String, usize, bool)>>> = Arc::default();
    let mut clients = Vec::new();
    for client_number in 0..8 {
        let accepted = Arc::clone(&accepted);
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            for n in 0.. {
                // Keys repeat, so events fold as well as open alerts.
                let key = format!("c{client_number}-k{}", n % 40);
                let trigger = n % 7 != 6;
                let body = if trigger {
                    json!({"routing_key": API_KEY, "event_action": "trigger", "dedup_key": key,
                           "payload": {"summary": format!("event {n}"), "source": "c", "severity": "error"}})
                } else {
                    json!({"routing_key": API_KEY, "event_action": "resolve", "dedup_key": key})
                };
                let sent = client
                    .post(format!("http://127.0.0.1:{port}/v2/enqueue"))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().as_u16() == 202 => {
                        accepted.lock().expect("lock").push((key, n, trigger));
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    // Let them run, then kill the server without warning.
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if accepted.lock().expect("lock").len() >= 2_000 {
            break;
        }
    }
    server.start_kill().expect("kill -9");
    server.wait().await.expect("wait");
    for client in clients {
        client.await.expect("client");
    }
    let accepted = accepted.lock().expect("lock").clone();
    assert!(accepted.len() >= 2_000);

    // Restart: the server boots on the same data and is ready.
    let mut server = start_server(&config, &data, port).await;
    server.start_kill().expect("kill");
    server.wait().await.expect("wait");

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data).await.expect("open"));
    let events = {
        let store = Arc::clone(&store);
        all(move |page| {
            let store = Arc::clone(&store);
            Box::pin(async move { store.events(&EventFilter::default(), page).await })
        })
        .await
    };
    let stored_triggers: BTreeSet<(String, String)> = events
        .iter()
        .filter(|event| event.action == tocsin_core::EventAction::Trigger)
        .map(|event| (event.dedup_key.to_string(), event.summary.clone()))
        .collect();
    let mut stored_resolves: HashMap<String, usize> = HashMap::new();
    for event in &events {
        if event.action == tocsin_core::EventAction::Resolve {
            *stored_resolves
                .entry(event.dedup_key.to_string())
                .or_default() += 1;
        }
    }
    let mut accepted_resolves: HashMap<String, usize> = HashMap::new();
    for (key, n, trigger) in &accepted {
        if *trigger {
            assert!(
                stored_triggers.contains(&(key.clone(), format!("event {n}"))),
                "accepted trigger {key} #{n} is missing after kill -9"
            );
        } else {
            *accepted_resolves.entry(key.clone()).or_default() += 1;
        }
    }
    for (key, count) in &accepted_resolves {
        assert!(
            stored_resolves.get(key).copied().unwrap_or(0) >= *count,
            "accepted resolves of {key} are missing after kill -9"
        );
    }
    assert!(events.len() >= accepted.len());

    // Nothing half-written: alert counts match their trigger events, incidents' open-alert
    // counts match their open alerts, every folded event points at an alert.
    let alerts = {
        let store = Arc::clone(&store);
        all(move |page| {
            let store = Arc::clone(&store);
            Box::pin(async move { store.alerts(&AlertFilter::default(), page).await })
        })
        .await
    };
    let mut triggers_per_alert: HashMap<i64, i64> = HashMap::new();
    for event in &events {
        if matches!(event.outcome.as_str(), "opened" | "folded") {
            let alert = event.alert.expect("a folded event points at its alert");
            *triggers_per_alert.entry(alert.0).or_default() += 1;
        }
    }
    for alert in &alerts {
        assert_eq!(
            triggers_per_alert.get(&alert.id.0).copied().unwrap_or(0),
            alert.count,
            "alert {} count differs from its events",
            alert.id
        );
    }
    let incidents = {
        let store = Arc::clone(&store);
        all(move |page| {
            let store = Arc::clone(&store);
            Box::pin(async move { store.incidents(&IncidentFilter::default(), page).await })
        })
        .await
    };
    for incident in &incidents {
        let open = alerts
            .iter()
            .filter(|alert| alert.incident == incident.number && alert.state.is_open())
            .count() as i64;
        assert_eq!(incident.open_alerts, open, "incident {}", incident.number);
        assert!(alerts.iter().any(|alert| alert.incident == incident.number));
    }
}
