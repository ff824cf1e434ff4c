//! `depends_on` between services, end to end: a chain A → B → C whose root fails pages once
//! (a webhook receiver on loopback counts the pages); the others are noted on the root's
//! incident; a recovery is never held; an incident still triggered once the root is resolved
//! pages then.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use tocsin_core::{IncidentState, TimelineData};
use tocsin_store::{IncidentRow, PageRequest};

use crate::support::{service_incidents, spawn_app_with, wait_for, TestApp};

const A_KEY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const B_KEY: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
const C_KEY: &str = "ccccccccccccccccccccccccccccccc3";

/// A webhook receiver on loopback; returns its URL and the incident numbers it was paged for.
pub(crate) async fn pager() -> (String, Arc<Mutex<Vec<i64>>>) {
    let pages: Arc<Mutex<Vec<i64>>> = Arc::default();
    let seen = Arc::clone(&pages);
    let app = axum::Router::new().route(
        "/page",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let number = json["incident"]["number"].as_i64().unwrap_or(-1);
                seen.lock().expect("lock").push(number);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/page"), pages)
}

async fn incident_of(app: &TestApp, service: &str) -> Option<IncidentRow> {
    service_incidents(&app.engine, service)
        .await
        .into_iter()
        .next()
}

async fn notes(app: &TestApp, incident: &IncidentRow) -> Vec<String> {
    app.engine
        .timeline(incident.number, PageRequest::first(500))
        .await
        .expect("timeline")
        .items
        .into_iter()
        .filter_map(|entry| match entry.data {
            TimelineData::NoteAdded { text } => Some(text),
            _ => None,
        })
        .collect()
}

async fn send(app: &TestApp, key: &str, action: &str, dedup: &str) {
    let (code, body) = app
        .enqueue(&json!({
            "routing_key": key,
            "event_action": action,
            "dedup_key": dedup,
            "payload": {"summary": format!("{dedup} is failing"), "source": "test", "severity": "critical"}
        }))
        .await;
    assert_eq!(code, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_whose_root_fails_pages_once() {
    let (hook, pages) = pager().await;
    let app = spawn_app_with(&format!(
        r#"
[[users]]
id = "ana"
contact = [{{ id = "hook", kind = "webhook", url = "{hook}", secret = "s" }}]
notify = [{{ after_minutes = 0, contact = "hook" }}]

[[escalation_policies]]
id = "all"
levels = [{{ targets = ["user:ana"] }}]

[[services]]
id = "network"
escalation_policy = "all"
integration_keys = ["{A_KEY}"]

[[services]]
id = "database"
escalation_policy = "all"
depends_on = ["network"]
integration_keys = ["{B_KEY}"]

[[services]]
id = "shop"
escalation_policy = "all"
depends_on = ["database"]
integration_keys = ["{C_KEY}"]
"#
    ))
    .await;

    // The root fails and pages.
    send(&app, A_KEY, "trigger", "switch-down").await;
    let root = wait_for(Duration::from_secs(20), || async {
        let root = incident_of(&app, "network").await?;
        pages
            .lock()
            .expect("lock")
            .contains(&root.number.0)
            .then_some(root)
    })
    .await
    .expect("the root's incident paged");

    // What depends on it fails too: recorded, noted on the root's incident, not paged.
    send(&app, B_KEY, "trigger", "db-unreachable").await;
    send(&app, C_KEY, "trigger", "checkout-500").await;
    let database = wait_for(Duration::from_secs(10), || incident_of(&app, "database"))
        .await
        .expect("the database's alert is recorded as an incident");
    let shop = wait_for(Duration::from_secs(10), || incident_of(&app, "shop"))
        .await
        .expect("the shop's alert is recorded as an incident");
    let noted = wait_for(Duration::from_secs(20), || async {
        let notes = notes(&app, &root).await;
        (notes.len() >= 2).then_some(notes)
    })
    .await
    .expect("both are noted on the root's incident");
    for child in [&database, &shop] {
        assert!(
            noted
                .iter()
                .any(|note| note.contains(&format!("incident #{}", child.number.0))),
            "{noted:?}"
        );
    }
    assert!(
        notes(&app, &shop)
            .await
            .iter()
            .any(|note| note.contains(&format!("#{}", root.number.0))),
        "the shop's incident says where it is noted"
    );
    // Two more rounds of the hold: still one page.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        *pages.lock().expect("lock"),
        vec![root.number.0],
        "one page for the chain"
    );
    assert_eq!(notes(&app, &root).await.len(), 2, "each is noted once");

    // A recovery is never held.
    send(&app, C_KEY, "resolve", "checkout-500").await;
    wait_for(Duration::from_secs(10), || async {
        let shop = incident_of(&app, "shop").await?;
        (shop.state == IncidentState::Resolved).then_some(())
    })
    .await
    .expect("the shop's recovery resolved its incident");

    // Once the root is resolved, what is still triggered pages on its own.
    let (code, body) = app
        .post(
            &format!("/api/v1/incidents/{}/resolve", root.number.0),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // The same person got the root's page less than 30 s ago: this one waits for the end of
    // that contact method's bundling window.
    wait_for(Duration::from_secs(45), || async {
        pages
            .lock()
            .expect("lock")
            .contains(&database.number.0)
            .then_some(())
    })
    .await
    .expect("the database's incident paged once the root was resolved");
    assert!(!pages.lock().expect("lock").contains(&shop.number.0));
    app.stop().await;
}
