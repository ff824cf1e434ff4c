//! Monitors end to end: a real HTTP server on loopback that the test breaks and repairs, watched
//! by the running application, opens and resolves an incident by itself.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tocsin_core::IncidentState;
use tocsin_store::{AlertFilter, PageRequest};

use crate::support::{checkout_health_incident, spawn_app_with, spawn_status_target, wait_for};

#[tokio::test]
async fn a_failing_http_monitor_opens_an_incident_and_its_recovery_resolves_it() {
    let (address, status) = spawn_status_target().await;
    let app = spawn_app_with(&format!(
        r#"
[[monitors]]
id = "checkout-health"
service = "checkout-api"
kind = "http"
url = "http://{address}/healthz"
interval = "1s"
timeout = "500ms"
confirm = 2
confirm_up = 1
expect_body = "ok"
"#
    ))
    .await;
    // Healthy: no incident.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(checkout_health_incident(&app.engine).await.is_none());

    status.store(500, Ordering::SeqCst);
    let incident = wait_for(Duration::from_secs(20), || async {
        checkout_health_incident(&app.engine)
            .await
            .filter(|incident| incident.state == IncidentState::Triggered)
    })
    .await
    .expect("the failing monitor opened an incident");
    assert!(
        incident.title.contains("checkout-health") && incident.title.contains("HTTP 500"),
        "{}",
        incident.title
    );
    let alerts = app
        .engine
        .alerts(
            &AlertFilter {
                incident: Some(incident.number),
                ..AlertFilter::default()
            },
            PageRequest::new(None, 10),
        )
        .await
        .expect("alerts");
    let alert = app.engine.alert(alerts.items[0].id).await.expect("alert");
    assert_eq!(alert.alert.severity, tocsin_core::Severity::Critical);
    let details = &alert.details;
    assert_eq!(details["status"], "down", "{details}");
    assert_eq!(details["last_error"], "HTTP 500, expected 2xx", "{details}");
    assert_eq!(details["last_good"]["status"], "up", "{details}");
    assert_eq!(details["last_good"]["http_status"], 200, "{details}");
    assert!(details["failing_since"].is_string(), "{details}");

    // The API and the CLI show the state.
    let (code, page) = app.get("/api/v1/monitors").await;
    assert_eq!(code, 200, "{page}");
    let monitor = &page["items"][0];
    assert_eq!(monitor["id"], "checkout-health", "{page}");
    assert_eq!(monitor["status"], "down", "{page}");
    assert_eq!(monitor["alert"], "own", "{page}");
    assert_eq!(monitor["last_good"]["status"], "up", "{page}");
    assert_eq!(monitor["last_failure"]["http_status"], 500, "{page}");
    assert!(monitor["next_check_at"].is_string(), "{page}");
    let (code, one) = app.get("/api/v1/monitors/checkout-health").await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["target"], format!("GET http://{address}/healthz"));
    let (code, missing) = app.get("/api/v1/monitors/nope").await;
    assert_eq!(code, 404, "{missing}");
    let cli = |args: &'static [&'static str]| {
        let base = app.base.clone();
        let token = app.token.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
                .args(args)
                .env("TOCSIN_SERVER", base)
                .env("TOCSIN_TOKEN", token)
                .output()
                .expect("run")
        })
    };
    let listed = cli(&["monitors", "list"]).await.expect("cli");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("checkout-health") && line.contains("down")),
        "{stdout}"
    );
    let shown = cli(&["monitors", "show", "checkout-health", "--json"])
        .await
        .expect("cli");
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(shown["status"], "down", "{shown}");

    status.store(200, Ordering::SeqCst);
    let resolved = wait_for(Duration::from_secs(20), || async {
        checkout_health_incident(&app.engine)
            .await
            .filter(|incident| incident.state == IncidentState::Resolved)
    })
    .await
    .expect("the recovered monitor resolved its incident");
    assert_eq!(resolved.number, incident.number);
    app.stop().await;
}
