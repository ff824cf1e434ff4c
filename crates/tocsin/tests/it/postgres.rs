//! The same application on PostgreSQL (`--database postgres://...`): ingest, fold, commands and
//! the API behave as on SQLite. Skipped (with a message) when `TOCSIN_TEST_DATABASE_URL` is unset,
//! failed instead when `TOCSIN_REQUIRE_POSTGRES=1`.

use std::sync::Arc;

use serde_json::json;
use tocsin_store::TokenScope;
use tocsin_store_postgres::testing::TestDatabase;
use tokio_util::sync::CancellationToken;

use crate::support::{temp_dir, test_config, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_api_on_postgres() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let config = tocsin_config::parse(&test_config(""), "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let data_dir = temp_dir();
    let settings = tocsin::Settings {
        config,
        data_dir: data_dir.to_path_buf(),
        database: Some(database.url().to_owned()),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = tocsin::App::build(&settings).await.expect("build");
    let engine = Arc::clone(app.engine());
    assert_eq!(engine.backend(), "postgres");
    let (token, _) = engine
        .create_token("pg", TokenScope::Write)
        .await
        .expect("token");
    drop(engine);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(app.serve(listener, async move { stop.cancelled().await }));
    let client = reqwest::Client::new();

    let mut senders = Vec::new();
    for n in 0..200 {
        let client = client.clone();
        let base = base.clone();
        senders.push(tokio::spawn(async move {
            client
                .post(format!("{base}/v2/enqueue"))
                .json(&json!({"routing_key": API_KEY, "event_action": "trigger",
                              "dedup_key": format!("pg-{}", n % 5),
                              "payload": {"summary": format!("pg {n}"), "source": "s", "severity": "error"}}))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }));
    }
    for sender in senders {
        assert_eq!(sender.await.expect("sender"), 202);
    }
    let incidents: serde_json::Value = client
        .get(format!("{base}/api/v1/incidents"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(incidents["items"].as_array().map(Vec::len), Some(5));
    let alerts: serde_json::Value = client
        .get(format!("{base}/api/v1/alerts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let total: i64 = alerts["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|alert| alert["count"].as_i64())
        .sum();
    assert_eq!(total, 200);
    let resolved: serde_json::Value = client
        .post(format!("{base}/api/v1/incidents/1/resolve"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("resolve")
        .json()
        .await
        .expect("json");
    assert_eq!(resolved["incident"]["state"], "resolved");
    let ready: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["store"], "postgres");
    shutdown.cancel();
    server.await.expect("task").expect("server");
}
