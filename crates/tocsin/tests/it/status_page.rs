//! The public status page end to end: a running application with a `[status_page]`, a monitor
//! watching a real HTTP server on loopback, and plain HTTP requests for the page and its JSON.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header;
use serde_json::Value;

use crate::support::{spawn_app_with, spawn_status_target, wait_for, TestApp};

fn config(address: std::net::SocketAddr) -> String {
    format!(
        r#"
[status_page]
title = "Shop status"
public_url = "https://status.shop.example"

[[components]]
id = "checkout"
name = "Checkout"
group = "Payments"

[[components]]
id = "search"
name = "Search"

[[services]]
id = "shop"
name = "Shop"
components = ["checkout"]

[[monitors]]
id = "shop-health"
service = "shop"
kind = "http"
url = "http://{address}/healthz"
interval = "1s"
timeout = "500ms"
confirm = 1
confirm_up = 1
"#
    )
}

/// `components.json`, once the first snapshot is built (503 until then).
async fn components(app: &TestApp) -> Option<Value> {
    let response = app
        .client
        .get(app.url("/api/v2/components.json"))
        .send()
        .await
        .expect("components.json");
    if response.status() == 503 {
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        return None;
    }
    assert_eq!(response.status(), 200);
    Some(response.json().await.expect("json"))
}

async fn status_of(app: &TestApp, id: &str) -> Option<String> {
    let document = components(app).await?;
    document["components"]
        .as_array()?
        .iter()
        .find(|component| component["id"] == id)
        .and_then(|component| component["status"].as_str())
        .map(str::to_owned)
}

/// Waits up to `seconds` for `components.json` to give the component `status`.
async fn wait_for_status(app: &TestApp, id: &str, status: &str, seconds: u64) {
    let seen = wait_for(Duration::from_secs(seconds), || async {
        status_of(app, id).await.filter(|seen| seen == status)
    })
    .await;
    assert_eq!(seen.as_deref(), Some(status), "component {id}");
}

#[tokio::test]
async fn the_page_and_its_json_follow_the_monitors_and_are_served_from_the_snapshot() {
    let (address, target) = spawn_status_target().await;
    let app = spawn_app_with(&config(address)).await;

    wait_for_status(&app, "checkout", "operational", 15).await;
    // A component without monitors is operational too.
    assert_eq!(
        status_of(&app, "search").await.as_deref(),
        Some("operational")
    );

    // The page: HTML, no credentials, cacheable, with the title, the components and the
    // uptime formula.
    let page = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let html = page.text().await.expect("body");
    for expected in [
        "Shop status",
        "Checkout",
        "Search",
        "All systems operational",
    ] {
        assert!(html.contains(expected), "the page lacks {expected:?}");
    }
    assert!(html.contains("Uptime is"), "the page states its formula");

    // Asked again with its ETag: 304 and no body.
    let again = app
        .client
        .get(app.url("/status"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // Compressed bodies, each with an ETag of its own, smaller than the page.
    for encoding in ["br", "gzip"] {
        let response = app
            .client
            .get(app.url("/status"))
            .header(header::ACCEPT_ENCODING, encoding)
            .send()
            .await
            .expect("compressed");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], encoding);
        assert_ne!(response.headers()[header::ETAG].to_str().unwrap(), etag);
        let body = response.bytes().await.unwrap();
        assert!(
            body.len() * 2 < html.len(),
            "{encoding}: {} of {} bytes",
            body.len(),
            html.len()
        );
    }

    // The Statuspage API: CORS for widgets, the page and its status.
    let summary = app
        .client
        .get(app.url("/api/v2/summary.json"))
        .send()
        .await
        .expect("summary");
    assert_eq!(summary.status(), 200);
    assert_eq!(summary.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let summary: Value = summary.json().await.unwrap();
    assert_eq!(summary["page"]["name"], "Shop status", "{summary}");
    assert_eq!(summary["page"]["url"], "https://status.shop.example");
    assert_eq!(summary["status"]["indicator"], "none", "{summary}");
    assert_eq!(
        summary["components"].as_array().unwrap().len(),
        3,
        "{summary}"
    );

    // `/` is the page on the status page's host only.
    let root = app
        .client
        .get(app.url("/"))
        .header(header::HOST, "status.shop.example")
        .send()
        .await
        .expect("root");
    assert_eq!(root.status(), 200);
    assert!(root.text().await.unwrap().contains("Shop status"));
    let elsewhere = app.client.get(app.url("/")).send().await.expect("root");
    assert_eq!(elsewhere.status(), 404);

    // The monitor fails: the component is in an outage within a few seconds, on the page and
    // in the JSON; the incident it opened stays internal.
    target.store(500, Ordering::SeqCst);
    wait_for_status(&app, "checkout", "major_outage", 20).await;
    let html = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Major outage"), "the page shows the outage");
    let incidents: Value = app
        .client
        .get(app.url("/api/v2/incidents.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incidents["incidents"], serde_json::json!([]), "{incidents}");

    // Recovered: operational again.
    target.store(200, Ordering::SeqCst);
    wait_for_status(&app, "checkout", "operational", 20).await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_status_page_its_routes_say_how_to_add_one() {
    let app = spawn_app_with("").await;
    for path in ["/status", "/api/v2/summary.json"] {
        let (code, body) = app.get(path).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body.to_string().contains("[status_page]"), "{path}: {body}");
    }
    app.stop().await;
}

const SHOP_KEY: &str = "shopshopshopshopshopshopshopshop";
/// Planted in an alert payload, a note and a user's name: none may reach a public response.
const MARKERS: [&str; 4] = [
    "MARKER-SUMMARY-5c1d",
    "MARKER-DETAIL-8e2a",
    "MARKER-NOTE-91bc",
    "MARKER-USER-3f7e",
];

fn publishing_config() -> String {
    format!(
        r#"
[status_page]
title = "Shop status"
public_url = "https://status.shop.example"

[[components]]
id = "checkout"
name = "Checkout"

[[components]]
id = "search"
name = "Search"

[[users]]
id = "zed"
name = "{user}"
contact = [{{ id = "log", kind = "console" }}]

[[escalation_policies]]
id = "shop"
levels = [{{ targets = ["user:zed"] }}]

[[services]]
id = "shop"
name = "Shop"
components = ["checkout"]
escalation_policy = "shop"
integration_keys = ["{SHOP_KEY}"]
"#,
        user = MARKERS[3]
    )
}

/// Every public document of the page (and the incident pages named by `incident_ids`).
async fn public_responses(app: &TestApp, incident_ids: &[String]) -> Vec<(String, String)> {
    let mut paths: Vec<String> = [
        "/status",
        "/status/history",
        "/status/feed.atom",
        "/api/v2/summary.json",
        "/api/v2/status.json",
        "/api/v2/components.json",
        "/api/v2/incidents.json",
        "/api/v2/incidents/unresolved.json",
        "/api/v2/scheduled-maintenances.json",
        "/api/v2/scheduled-maintenances/upcoming.json",
        "/api/v2/scheduled-maintenances/active.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    paths.extend(
        incident_ids
            .iter()
            .map(|id| format!("/status/incidents/{id}")),
    );
    let mut responses = Vec::new();
    for path in paths {
        let response = app.client.get(app.url(&path)).send().await.expect("get");
        assert_eq!(response.status(), 200, "{path}");
        responses.push((path, response.text().await.expect("body")));
    }
    responses
}

fn assert_private(responses: &[(String, String)]) {
    for (path, body) in responses {
        for marker in MARKERS {
            assert!(!body.contains(marker), "{path} shows {marker}");
        }
    }
}

/// Waits until `path`'s JSON satisfies `check`.
async fn wait_for_json(app: &TestApp, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let found = wait_for(Duration::from_secs(15), || async {
        let response = app.client.get(app.url(path)).send().await.ok()?;
        let value: Value = response.json().await.ok()?;
        check(&value).then_some(value)
    })
    .await;
    found.unwrap_or_else(|| panic!("{path} never became as expected"))
}

#[tokio::test]
async fn published_updates_maintenance_and_overrides_reach_the_page_and_nothing_internal_does() {
    let app = spawn_app_with(&publishing_config()).await;
    let (code, body) = app
        .enqueue(&serde_json::json!({
            "routing_key": SHOP_KEY,
            "event_action": "trigger",
            "dedup_key": "checkout-errors",
            "payload": {
                "summary": MARKERS[0],
                "source": "web-1",
                "severity": "critical",
                "custom_details": {"detail": MARKERS[1]}
            }
        }))
        .await;
    assert_eq!(code, 202, "{body}");
    let (code, body) = app
        .post(
            "/api/v1/incidents/1/notes",
            Some(serde_json::json!({"text": MARKERS[2]})),
        )
        .await;
    assert!(code == 201 || code == 200, "{body}");

    // Internal until published: nothing of it is public.
    wait_for_json(&app, "/api/v2/summary.json", |v| v["page"].is_object()).await;
    assert_private(&public_responses(&app, &[]).await);
    let incidents: Value = wait_for_json(&app, "/api/v2/incidents.json", |_| true).await;
    assert_eq!(incidents["incidents"], serde_json::json!([]));

    // Publishing needs a public title.
    let (code, body) = app
        .post(
            "/api/v1/incidents/1/status",
            Some(serde_json::json!({"status": "investigating", "message": "Looking"})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("title"),
        "{body}"
    );
    let (code, body) = app
        .post(
            "/api/v1/incidents/1/status",
            Some(serde_json::json!({
                "status": "investigating", "message": "Looking", "name": "x", "impact": "minor",
                "components": [{"component": "nope", "status": "major_outage"}]
            })),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["field"], "components", "{body}");

    // Published from the CLI, as a responder would.
    // From a child process while this test's runtime keeps serving.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args([
            "status",
            "update",
            "1",
            "--status",
            "investigating",
            "--title",
            "Card payments fail",
            "--impact",
            "major",
            "--component",
            "checkout=partial_outage",
            "We are investigating failed card payments.",
        ])
        .env("TOCSIN_SERVER", &app.base)
        .env("TOCSIN_TOKEN", &app.token)
        .output()
        .await
        .expect("run tocsin status update");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Card payments fail"), "{stdout}");

    let unresolved = wait_for_json(&app, "/api/v2/incidents/unresolved.json", |v| {
        v["incidents"]
            .as_array()
            .is_some_and(|list| list.len() == 1)
    })
    .await;
    let incident = &unresolved["incidents"][0];
    assert_eq!(incident["name"], "Card payments fail");
    assert_eq!(incident["status"], "investigating");
    assert_eq!(incident["impact"], "major");
    assert_eq!(
        incident["incident_updates"][0]["body"],
        "We are investigating failed card payments."
    );
    let public_id = incident["id"].as_str().unwrap().to_owned();
    wait_for_status(&app, "checkout", "partial_outage", 15).await;
    let summary = wait_for_json(&app, "/api/v2/summary.json", |_| true).await;
    assert_ne!(summary["status"]["indicator"], "none", "{summary}");

    // On the incident's timeline.
    let (_, timeline) = app.get("/api/v1/incidents/1/timeline").await;
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"status.updated"), "{timeline}");

    // Resolved: the component's status is its monitors' again (none here: operational).
    let (code, body) = app
        .post(
            "/api/v1/incidents/1/status",
            Some(serde_json::json!({"status": "resolved", "message": "Payments work again."})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["updates"].as_array().unwrap().len(), 2, "{body}");
    wait_for_json(&app, "/api/v2/incidents/unresolved.json", |v| {
        v["incidents"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    wait_for_status(&app, "checkout", "operational", 15).await;

    // Maintenance: one running on search, one ahead.
    let now = jiff::Timestamp::now();
    let window = |name: &str, start: jiff::Timestamp, end: jiff::Timestamp| {
        serde_json::json!({
            "name": name, "message": "Index rebuild", "components": ["search"],
            "start": start.to_string(), "end": end.to_string()
        })
    };
    let hour = jiff::SignedDuration::from_hours(1);
    let (code, running) = app
        .post(
            "/api/v1/maintenance",
            Some(window("Rebuild", now - hour, now + hour)),
        )
        .await;
    assert_eq!(code, 201, "{running}");
    assert_eq!(running["state"], "in_progress");
    let (code, ahead) = app
        .post(
            "/api/v1/maintenance",
            Some(window("Upgrade", now + hour * 24, now + hour * 26)),
        )
        .await;
    assert_eq!(code, 201, "{ahead}");
    assert_eq!(ahead["state"], "scheduled");
    let (code, refused) = app
        .post(
            "/api/v1/maintenance",
            Some(window("Backwards", now + hour, now)),
        )
        .await;
    assert_eq!(code, 400, "{refused}");
    wait_for_status(&app, "search", "under_maintenance", 15).await;
    let active = wait_for_json(&app, "/api/v2/scheduled-maintenances/active.json", |v| {
        v["scheduled_maintenances"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    assert_eq!(active["scheduled_maintenances"][0]["name"], "Rebuild");
    let upcoming = wait_for_json(&app, "/api/v2/scheduled-maintenances/upcoming.json", |v| {
        v["scheduled_maintenances"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    assert_eq!(
        upcoming["scheduled_maintenances"][0]["name"], "Upgrade",
        "{upcoming}"
    );
    let id = running["id"].as_i64().unwrap();
    let (code, cancelled) = app
        .post(&format!("/api/v1/maintenance/{id}/cancel"), None)
        .await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "completed", "{cancelled}");
    wait_for_status(&app, "search", "operational", 15).await;

    // An override wins over everything, until cleared.
    let (code, body) = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/components/checkout/override",
            Some(serde_json::json!({"status": "major_outage"})),
            Some(&app.token),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    wait_for_status(&app, "checkout", "major_outage", 15).await;
    let (code, body) = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/components/checkout/override",
            Some(serde_json::json!({"status": "broken"})),
            Some(&app.token),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/components/checkout/override",
            Some(serde_json::json!({"status": "operational"})),
            Some(&app.read_token),
        )
        .await;
    assert_eq!(code, 403, "a read token cannot override");
    let (code, body) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/components/checkout/override",
            None,
            Some(&app.token),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    wait_for_status(&app, "checkout", "operational", 15).await;

    // After all of it: still nothing internal in any public response.
    let responses = public_responses(&app, std::slice::from_ref(&public_id)).await;
    assert_private(&responses);
    let page = &responses
        .iter()
        .find(|(path, _)| path == &format!("/status/incidents/{public_id}"))
        .unwrap()
        .1;
    assert!(page.contains("Card payments fail") && page.contains("Payments work again."));
    app.stop().await;
}

#[tokio::test]
async fn export_writes_the_page_as_static_files_and_watch_keeps_them_fresh() {
    let app = spawn_app_with(&publishing_config()).await;
    app.trigger(SHOP_KEY, "checkout-errors", "internal summary")
        .await;
    wait_for_json(&app, "/api/v2/summary.json", |v| v["page"].is_object()).await;
    let dir = crate::support::temp_dir();
    let export = || {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"));
        command
            .args(["status", "export"])
            .arg(&*dir)
            .env("TOCSIN_SERVER", &app.base)
            .env("TOCSIN_TOKEN", &app.token)
            .kill_on_drop(true);
        command
    };
    let output = export().output().await.expect("run tocsin status export");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("exported"), "{stdout}");
    let page = std::fs::read_to_string(dir.join("status/index.html")).expect("the page");
    assert!(page.contains("Shop status") && page.contains("Checkout"));
    assert_eq!(
        std::fs::read_to_string(dir.join("index.html")).expect("the root page"),
        page
    );
    assert!(dir.join("status/history/index.html").is_file());
    assert!(std::fs::read_to_string(dir.join("status/feed.atom"))
        .expect("the feed")
        .contains("<feed"));
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("api/v2/summary.json")).expect("summary"),
    )
    .expect("JSON");
    assert_eq!(summary["page"]["name"], "Shop status");
    assert!(!dir.join("status/index.html.tmp").exists());

    // --watch: a published incident reaches the files without another command.
    let mut watcher = export()
        .args(["--watch", "--every", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the watcher");
    let (code, body) = app
        .post(
            "/api/v1/incidents/1/status",
            Some(serde_json::json!({
                "status": "identified", "message": "A bad deploy", "name": "Checkout errors",
                "impact": "minor"
            })),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let public_id = body["public_id"].as_str().unwrap().to_owned();
    let incident_page = dir.join(format!("status/incidents/{public_id}/index.html"));
    let seen = wait_for(Duration::from_secs(20), || async {
        let incidents = std::fs::read_to_string(dir.join("api/v2/incidents.json")).ok()?;
        (incidents.contains("Checkout errors") && incident_page.is_file()).then_some(())
    })
    .await;
    watcher.kill().await.expect("stop the watcher");
    assert!(seen.is_some(), "--watch wrote the published incident");
    assert!(std::fs::read_to_string(&incident_page)
        .unwrap()
        .contains("A bad deploy"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_records_its_services_incidents_without_paging_until_it_ends() {
    let (hook, pages) = crate::service_deps::pager().await;
    let app = spawn_app_with(&format!(
        r#"
[status_page]
title = "Shop status"

[[components]]
id = "checkout"

[[users]]
id = "ana"
contact = [{{ id = "hook", kind = "webhook", url = "{hook}", secret = "s" }}]
notify = [{{ after_minutes = 0, contact = "hook" }}]

[[escalation_policies]]
id = "all"
levels = [{{ targets = ["user:ana"] }}]

[[services]]
id = "shop"
components = ["checkout"]
escalation_policy = "all"
integration_keys = ["{SHOP_KEY}"]
"#
    ))
    .await;
    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    let (code, window) = app
        .post(
            "/api/v1/maintenance",
            Some(serde_json::json!({
                "name": "DB upgrade", "components": ["checkout"],
                "start": (now - hour).to_string(), "end": (now + hour).to_string()
            })),
        )
        .await;
    assert_eq!(code, 201, "{window}");

    app.trigger(SHOP_KEY, "checkout-errors", "checkout fails")
        .await;
    let incident = wait_for(Duration::from_secs(10), || async {
        crate::support::service_incidents(&app.engine, "shop")
            .await
            .into_iter()
            .next()
    })
    .await
    .expect("the alert is recorded as an incident");
    let suppressed = wait_for(Duration::from_secs(20), || async {
        let timeline = app
            .engine
            .timeline(incident.number, tocsin_store::PageRequest::first(500))
            .await
            .ok()?;
        timeline
            .items
            .into_iter()
            .find_map(|entry| match entry.data {
                tocsin_core::TimelineData::NoteAdded { text }
                    if text.starts_with("Suppressed by maintenance") =>
                {
                    Some(text)
                }
                _ => None,
            })
    })
    .await
    .expect("the timeline says maintenance suppressed it");
    assert!(suppressed.contains("DB upgrade"), "{suppressed}");
    // More rounds of the step: still nobody paged, and the note is written once.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        pages.lock().expect("lock").is_empty(),
        "paged during maintenance"
    );
    let (_, timeline) = app
        .get(&format!("/api/v1/incidents/{}/timeline", incident.number.0))
        .await;
    let notes = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] == "note.added")
        .count();
    assert_eq!(notes, 1, "{timeline}");

    // The window is cancelled while the incident is still triggered: it pages.
    let id = window["id"].as_i64().unwrap();
    let (code, body) = app
        .post(&format!("/api/v1/maintenance/{id}/cancel"), None)
        .await;
    assert_eq!(code, 200, "{body}");
    let paged = wait_for(Duration::from_secs(20), || async {
        pages
            .lock()
            .expect("lock")
            .contains(&incident.number.0)
            .then_some(())
    })
    .await;
    assert!(
        paged.is_some(),
        "the incident pages once the window is over"
    );
    app.stop().await;
}
