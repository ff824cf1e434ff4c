//! Pausing and resuming monitors through the API and the CLI, on SQLite and on PostgreSQL: a
//! paused monitor is not checked, its open alert stays open, the pause outlives a reload and a
//! restart, and a resume lets its checks (and the recovery) go on.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tocsin_core::{IncidentState, Timestamp};
use tocsin_store_postgres::testing::TestDatabase;

use crate::support::{
    checkout_health_incident, spawn_status_target, start_app_at, temp_dir, test_config, wait_for,
    TestApp,
};

async fn results_count(app: &TestApp) -> usize {
    app.engine
        .store()
        .results(
            "checkout-health",
            Timestamp::UNIX_EPOCH,
            Timestamp::MAX,
            10_000,
        )
        .await
        .expect("results")
        .len()
}

fn config(address: std::net::SocketAddr, interval: &str) -> String {
    test_config(&format!(
        r#"
[[monitors]]
id = "checkout-health"
service = "checkout-api"
kind = "http"
url = "http://{address}/healthz"
interval = "{interval}"
timeout = "500ms"
confirm = 1
confirm_up = 1

[[monitors]]
id = "nightly-backup"
service = "batch"
kind = "heartbeat"
ping_key = "nightlybackupnightlybackup0123"
period = "1h"
grace = "5m"
"#
    ))
}

async fn pause_and_resume(database: Option<&str>, with_cli: bool) {
    let (address, status) = spawn_status_target().await;
    let dir = temp_dir();
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, config(address, "1s")).expect("write config");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let app = start_app_at(&path, &data, database).await;

    // Unknown monitors are named in a 404; a read token cannot pause.
    let (code, body) = app.post("/api/v1/monitors/nope/pause", None).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.to_string().contains("`nope`"), "{body}");
    let (code, body) = app.post("/api/v1/monitors/nope/resume", None).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = app
        .request(
            reqwest::Method::POST,
            "/api/v1/monitors/checkout-health/pause",
            None,
            Some(&app.read_token),
        )
        .await;
    assert_eq!(code, 403, "{body}");

    // It fails and pages; then it is paused with its alert open.
    status.store(500, Ordering::SeqCst);
    let opened = wait_for(Duration::from_secs(20), || async {
        checkout_health_incident(&app.engine)
            .await
            .filter(|incident| incident.state == IncidentState::Triggered)
    })
    .await
    .expect("the failing monitor opened an incident");
    if with_cli {
        let output = cli(&app, &["monitors", "pause", "checkout-health"]).await;
        assert!(output.contains("checkout-health paused"), "{output}");
    } else {
        let (code, body) = app
            .post("/api/v1/monitors/checkout-health/pause", None)
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["paused"], true, "{body}");
        assert_eq!(body["changed"], true, "{body}");
        assert_eq!(body["paused_by"], "token:tester", "{body}");
    }
    // Pausing again changes nothing.
    let (code, again) = app
        .post("/api/v1/monitors/checkout-health/pause", None)
        .await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["changed"], false, "{again}");
    let (code, shown) = app.get("/api/v1/monitors/checkout-health").await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["status"], "paused", "{shown}");
    assert_eq!(shown["checked_status"], "down", "{shown}");
    assert_eq!(shown["paused_by"], "token:tester", "{shown}");
    if with_cli {
        let listed = cli(&app, &["monitors", "list"]).await;
        assert!(
            listed
                .lines()
                .any(|line| line.starts_with("checkout-health") && line.contains("paused")),
            "{listed}"
        );
    }

    // Not checked while paused: no new results, and the recovery is not seen (the alert is
    // left as it is).
    status.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = results_count(&app).await;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        results_count(&app).await,
        before,
        "a paused monitor was checked"
    );
    let still = checkout_health_incident(&app.engine)
        .await
        .expect("incident");
    assert_eq!(still.number, opened.number);
    assert_eq!(still.state, IncidentState::Triggered);

    // A reload (the interval changes) keeps the pause.
    std::fs::write(&path, config(address, "2s")).expect("write config");
    let (code, body) = app.post("/api/v1/config/reload", None).await;
    assert_eq!(code, 200, "{body}");
    let (_, shown) = app.get("/api/v1/monitors/checkout-health").await;
    assert_eq!(shown["status"], "paused", "{shown}");
    app.stop().await;

    // So does a restart.
    let app = start_app_at(&path, &data, database).await;
    let (_, shown) = app.get("/api/v1/monitors/checkout-health").await;
    assert_eq!(shown["status"], "paused", "{shown}");
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(
        results_count(&app).await,
        before,
        "a paused monitor was checked after a restart"
    );
    assert_eq!(
        checkout_health_incident(&app.engine)
            .await
            .expect("incident")
            .state,
        IncidentState::Triggered
    );

    // A heartbeat monitor pauses and resumes on the same path.
    let (code, body) = app
        .post("/api/v1/monitors/nightly-backup/pause", None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "heartbeat", "{body}");
    // The heartbeats API and CLI show it as paused.
    let (code, shown) = app.get("/api/v1/heartbeats/nightly-backup").await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["status"], "paused", "{shown}");
    assert_eq!(shown["checked_status"], "new", "{shown}");
    assert_eq!(shown["paused_by"], "token:tester", "{shown}");
    assert!(shown["paused_at"].is_string(), "{shown}");
    let (code, listed) = app.get("/api/v1/heartbeats").await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["items"][0]["id"], "nightly-backup", "{listed}");
    assert_eq!(listed["items"][0]["status"], "paused", "{listed}");
    if with_cli {
        let listed = cli(&app, &["heartbeats", "list"]).await;
        assert!(
            listed
                .lines()
                .any(|line| line.starts_with("nightly-backup") && line.contains("paused")),
            "{listed}"
        );
        let shown = cli(&app, &["heartbeats", "show", "nightly-backup"]).await;
        assert!(shown.contains("status:         paused"), "{shown}");
        assert!(shown.contains("by token:tester"), "{shown}");
    }
    let (code, body) = app
        .post("/api/v1/monitors/nightly-backup/resume", None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["changed"], true, "{body}");
    let (_, shown) = app.get("/api/v1/heartbeats/nightly-backup").await;
    assert_eq!(shown["status"], "new", "{shown}");
    assert!(shown["paused_at"].is_null(), "{shown}");

    // Resumed, it is checked again and its recovery resolves the incident.
    if with_cli {
        let output = cli(&app, &["monitors", "resume", "checkout-health"]).await;
        assert!(output.contains("checkout-health resumed"), "{output}");
    } else {
        let (code, body) = app
            .post("/api/v1/monitors/checkout-health/resume", None)
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["changed"], true, "{body}");
    }
    let resolved = wait_for(Duration::from_secs(20), || async {
        checkout_health_incident(&app.engine)
            .await
            .filter(|incident| incident.state == IncidentState::Resolved)
    })
    .await
    .expect("the resumed monitor resolved its incident");
    assert_eq!(resolved.number, opened.number);
    // Results are written in batches, a moment after the state they led to.
    let more = wait_for(Duration::from_secs(10), || async {
        let count = results_count(&app).await;
        (count > before).then_some(count)
    })
    .await;
    assert!(more.is_some(), "the resumed monitor's checks are stored");
    let (_, shown) = app.get("/api/v1/monitors/checkout-health").await;
    assert_eq!(shown["status"], "up", "{shown}");
    assert!(shown["paused_at"].is_null(), "{shown}");
    app.stop().await;
}

/// Runs the `tocsin` binary against `app`; returns its stdout (panics when it fails).
async fn cli(app: &TestApp, args: &[&str]) -> String {
    let base = app.base.clone();
    let token = app.token.clone();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(&args)
            .env("TOCSIN_SERVER", base)
            .env("TOCSIN_TOKEN", token)
            .output()
            .expect("run")
    })
    .await
    .expect("cli");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_monitor_is_not_checked_across_reload_and_restart_on_sqlite() {
    pause_and_resume(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_monitor_is_not_checked_across_reload_and_restart_on_postgres() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    pause_and_resume(Some(database.url()), false).await;
}
