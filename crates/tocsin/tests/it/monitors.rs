//! Monitors end to end: a real HTTP server on loopback that the test breaks and repairs, watched
//! by the running application, opens and resolves an incident by itself.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use tocsin_core::{IncidentState, ServiceId};
use tocsin_store::{AlertFilter, IncidentFilter, IncidentRow, PageRequest};

use crate::support::spawn_app_with;

async fn spawn_target() -> (std::net::SocketAddr, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let app = axum::Router::new().route(
        "/healthz",
        get({
            let status = Arc::clone(&status);
            move || async move {
                (
                    StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("status"),
                    "ok",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (address, status)
}

async fn monitor_incident(engine: &tocsin_engine::Engine) -> Option<IncidentRow> {
    let filter = IncidentFilter {
        states: Vec::new(),
        service: Some(ServiceId::new("checkout-api".to_owned())),
        priority: None,
    };
    engine
        .incidents(&filter, PageRequest::new(None, 10))
        .await
        .expect("incidents")
        .items
        .into_iter()
        .find(|incident| incident.dedup_key.as_str() == "monitor:checkout-health")
}

/// Polls `condition` every 100 ms for up to `limit`.
async fn wait_for<T, F>(limit: Duration, mut condition: impl FnMut() -> F) -> Option<T>
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = condition().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failing_http_monitor_opens_an_incident_and_its_recovery_resolves_it() {
    let (address, status) = spawn_target().await;
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
    assert!(monitor_incident(&app.engine).await.is_none());

    status.store(500, Ordering::SeqCst);
    let incident = wait_for(Duration::from_secs(20), || async {
        monitor_incident(&app.engine)
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

    status.store(200, Ordering::SeqCst);
    let resolved = wait_for(Duration::from_secs(20), || async {
        monitor_incident(&app.engine)
            .await
            .filter(|incident| incident.state == IncidentState::Resolved)
    })
    .await
    .expect("the recovered monitor resolved its incident");
    assert_eq!(resolved.number, incident.number);
    app.stop().await;
}
