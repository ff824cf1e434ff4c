//! A monitor's results for a time range, a page at a time, through the API and the CLI; bad
//! times and limits are 400s naming the parameter.

use tocsin_core::Timestamp;
use tocsin_store::monitor_results::{CheckResultRow, ResultStatus};

use crate::support::spawn_app_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_by_range_and_page() {
    // A monitor checked rarely (an address nothing listens on), so the results are the ones
    // stored here.
    let app = spawn_app_with(
        r#"
[[monitors]]
id = "db-port"
service = "checkout-db"
kind = "tcp"
address = "127.0.0.1:9"
interval = "1d"
"#,
    )
    .await;
    let store = app.engine.store();
    let base = 1_800_000_000_i64;
    for n in 0..25_i64 {
        store
            .record_result(&CheckResultRow {
                monitor: "db-port".to_owned(),
                at: Timestamp::from_second(base + n * 60).expect("time"),
                status: if n % 5 == 0 {
                    ResultStatus::Down
                } else {
                    ResultStatus::Up
                },
                latency_ms: n,
                http_status: None,
                error: (n % 5 == 0).then(|| "connection refused".to_owned()),
            })
            .await
            .expect("record");
    }
    let from = Timestamp::from_second(base + 60).expect("time").to_string();
    let to = Timestamp::from_second(base + 21 * 60)
        .expect("time")
        .to_string();
    // [from, to) holds results 1 to 20: two pages of 10 and nothing more.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0..3 {
        let mut path = format!("/api/v1/monitors/db-port/results?from={from}&to={to}&limit=10");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (code, page) = app.get(&path).await;
        assert_eq!(code, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        seen.extend(
            items
                .iter()
                .map(|item| item["latency_ms"].as_i64().expect("ms")),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert_eq!(page_number, 1, "two pages: {page}");
                break;
            }
        }
    }
    assert_eq!(seen, (1..=20).collect::<Vec<i64>>());
    let (_, page) = app
        .get(&format!(
            "/api/v1/monitors/db-port/results?from={from}&to={to}&limit=1000"
        ))
        .await;
    assert_eq!(page["items"][4]["status"], "down", "{page}");
    assert_eq!(page["items"][4]["error"], "connection refused", "{page}");

    // Bad input is a 400 naming the parameter; an unknown monitor a 404 naming it.
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        (&*format!("from={to}&to={from}"), "from"),
        ("limit=1001", "limit"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let (code, body) = app
            .get(&format!("/api/v1/monitors/db-port/results?{query}"))
            .await;
        assert_eq!(code, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let (code, body) = app.get("/api/v1/monitors/nope/results").await;
    assert_eq!(code, 404, "{body}");
    assert!(body.to_string().contains("`nope`"), "{body}");

    // The CLI prints the same range.
    let base_url = app.base.clone();
    let token = app.token.clone();
    let (from_arg, to_arg) = (from.clone(), to.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args([
                "monitors", "results", "db-port", "--from", &from_arg, "--to", &to_arg, "--json",
            ])
            .env("TOCSIN_SERVER", base_url)
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
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["items"].as_array().map(Vec::len), Some(20), "{json}");
    app.stop().await;
}
