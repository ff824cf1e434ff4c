//! Heartbeat monitors end to end: healthchecks.io-style pings over HTTP on a real SQLite app,
//! a missed deadline that opens an incident through the due-work runner, a ping that resolves
//! it.

use std::time::Duration;

use serde_json::Value;

use crate::support::{spawn_app_with, TestApp};

const NIGHTLY_KEY: &str = "nightly-ping-key-0001";
const PREVIEW_KEY: &str = "previewed-ping-key-01";
const RID: &str = "5f1c2a3e-8d0f-4d6e-9b2a-0c7d1e2f3a4b";

fn monitors() -> String {
    format!(
        r#"
[[monitors]]
id = "nightly"
service = "checkout-api"
kind = "heartbeat"
period = "10s"
grace = "1s"
ping_key = "{NIGHTLY_KEY}"
max_starts_without_success = 2

[[monitors]]
id = "previewed"
service = "checkout-api"
kind = "heartbeat"
period = "1h"
ping_key = "{PREVIEW_KEY}"
post_only = true
"#
    )
}

async fn ping(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = app
        .client
        .request(method, app.url(path))
        .body(body.to_owned())
        .send()
        .await
        .expect("ping");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

async fn incidents(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/incidents").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().expect("items").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_speak_the_healthchecks_protocol() {
    let app = spawn_app_with(&monitors()).await;
    use reqwest::Method;

    let (status, headers, body) =
        ping(&app, Method::GET, &format!("/ping/{NIGHTLY_KEY}"), "").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert_eq!(headers["ping-body-limit"], "10000");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let (status, _, body) = ping(&app, Method::HEAD, &format!("/ping/{NIGHTLY_KEY}"), "").await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _, _) = ping(
        &app,
        Method::POST,
        &format!("/ping/{NIGHTLY_KEY}/start?rid={RID}"),
        "starting",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = ping(
        &app,
        Method::POST,
        &format!("/ping/{NIGHTLY_KEY}/0?rid={RID}"),
        "done",
    )
    .await;
    assert_eq!(status, 200);
    let big = "x".repeat(20_000);
    let (status, _, _) = ping(
        &app,
        Method::POST,
        &format!("/ping/{NIGHTLY_KEY}/log"),
        &big,
    )
    .await;
    assert_eq!(status, 200);

    // Refusals, in plain text.
    let (status, _, body) = ping(&app, Method::GET, &format!("/ping/{NIGHTLY_KEY}/256"), "").await;
    assert_eq!((status, body.as_str()), (400, "invalid url format"));
    let (status, _, body) = ping(
        &app,
        Method::GET,
        &format!("/ping/{NIGHTLY_KEY}?rid=nope"),
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (400, "invalid uuid format"));
    let (status, _, body) = ping(&app, Method::GET, "/ping/no-such-key-anywhere-1", "").await;
    assert_eq!((status, body.as_str()), (404, "not found"));
    let (status, _, _) = ping(&app, Method::GET, &format!("/ping/{NIGHTLY_KEY}/bogus"), "").await;
    assert_eq!(status, 404);
    let (status, _, _) = ping(&app, Method::PUT, &format!("/ping/{NIGHTLY_KEY}"), "").await;
    assert_eq!(status, 405);

    // POST-only: a link preview's GET is answered and ignored; the job's POST counts.
    let (status, _, body) = ping(&app, Method::GET, &format!("/ping/{PREVIEW_KEY}"), "").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, _, _) = ping(&app, Method::POST, &format!("/ping/{PREVIEW_KEY}"), "real").await;
    assert_eq!(status, 200);

    let (status, page) = app.get("/api/v1/heartbeats/nightly/pings").await;
    assert_eq!(status, 200, "{page}");
    let pings = page["items"].as_array().expect("items");
    let kinds: Vec<&str> = pings.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["log", "success", "start", "success", "success"]);
    assert_eq!(pings[0]["body"].as_str().unwrap().len(), 10_000);
    assert_eq!(pings[1]["exit_code"], 0);
    assert_eq!(pings[1]["rid"], RID);
    assert!(pings[1]["duration_ms"].is_u64(), "{}", pings[1]);
    assert_eq!(pings[1]["body"], "done");
    assert_eq!(pings[2]["body"], "starting");
    assert_eq!(pings[3]["method"], "HEAD");
    assert_eq!(pings[4]["method"], "GET");
    assert_eq!(pings[4]["remote"], "127.0.0.1");
    let (_, page) = app.get("/api/v1/heartbeats/nightly/pings?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, rest) = app
        .get(&format!(
            "/api/v1/heartbeats/nightly/pings?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"][0]["kind"], "start");

    let (_, previewed) = app.get("/api/v1/heartbeats/previewed/pings").await;
    let previewed = previewed["items"].as_array().expect("items");
    assert_eq!(previewed.len(), 1, "{previewed:?}");
    assert_eq!(previewed[0]["method"], "POST");

    let (status, list) = app.get("/api/v1/heartbeats").await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "nightly");
    assert_eq!(items[0]["status"], "up");
    assert_eq!(items[0]["schedule"], "period");
    assert_eq!(items[0]["expected"], "10s");
    assert_eq!(items[0]["last_ping"]["kind"], "success");
    assert_eq!(items[1]["post_only"], true);
    let (status, _) = app.get("/api/v1/heartbeats/nope").await;
    assert_eq!(status, 404);
    assert!(
        incidents(&app).await.is_empty(),
        "no ping was late or failed"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_deadline_opens_an_incident_and_a_ping_resolves_it() {
    let app = spawn_app_with(&monitors()).await;
    let (status, _, _) = ping(
        &app,
        reqwest::Method::POST,
        &format!("/ping/{NIGHTLY_KEY}"),
        "night 1 ok",
    )
    .await;
    assert_eq!(status, 200);
    // Period 10 s plus 1 s of grace, then the due-work runner (polling every second).
    let started = std::time::Instant::now();
    let incident = loop {
        let open = incidents(&app).await;
        if let Some(incident) = open
            .iter()
            .find(|incident| incident["dedup_key"] == "heartbeat:nightly")
        {
            break incident.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no incident 30 s after the last ping"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not before the deadline"
    );
    assert_eq!(incident["state"], "triggered");
    assert_eq!(incident["service"], "checkout-api");
    assert!(
        incident["title"].as_str().unwrap().contains("late"),
        "{incident}"
    );
    let number = incident["number"].as_i64().unwrap();
    let (_, alerts) = app.get(&format!("/api/v1/incidents/{number}/alerts")).await;
    let alert_id = alerts["items"][0]["id"].as_i64().expect("alert");
    let (_, alert) = app.get(&format!("/api/v1/alerts/{alert_id}")).await;
    assert_eq!(alert["details"]["what"], "late", "{alert}");
    assert_eq!(
        alert["details"]["last_ping"]["log"], "night 1 ok",
        "{alert}"
    );
    let (_, heartbeat) = app.get("/api/v1/heartbeats/nightly").await;
    assert_eq!(heartbeat["status"], "late");

    // The job comes back: one ping resolves the incident, in the same commit.
    let (status, _, _) = ping(
        &app,
        reqwest::Method::GET,
        &format!("/ping/{NIGHTLY_KEY}"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (_, incident) = app.get(&format!("/api/v1/incidents/{number}")).await;
    assert_eq!(incident["state"], "resolved", "{incident}");
    let (_, heartbeat) = app.get("/api/v1/heartbeats/nightly").await;
    assert_eq!(heartbeat["status"], "up");

    // A failure pages at once; a crash loop pages on a key of its own.
    let (status, _, _) = ping(
        &app,
        reqwest::Method::POST,
        &format!("/ping/{NIGHTLY_KEY}/fail"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        ping(
            &app,
            reqwest::Method::POST,
            &format!("/ping/{NIGHTLY_KEY}/start"),
            "",
        )
        .await;
    }
    let mut open: Vec<String> = incidents(&app)
        .await
        .iter()
        .filter(|incident| incident["state"] == "triggered")
        .map(|incident| incident["dedup_key"].as_str().unwrap().to_owned())
        .collect();
    open.sort();
    assert_eq!(open, ["heartbeat:nightly", "heartbeat:nightly:crash-loop"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_heartbeats_and_their_pings() {
    let app = spawn_app_with(&monitors()).await;
    let (status, _, _) = ping(
        &app,
        reqwest::Method::POST,
        &format!("/ping/{NIGHTLY_KEY}/3"),
        "exit 3: disk full",
    )
    .await;
    assert_eq!(status, 200);
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
                .args(args)
                .output()
                .expect("run tocsin")
        })
    };
    let server = vec![
        "--server".to_owned(),
        app.base.clone(),
        "--token".to_owned(),
        app.read_token.clone(),
    ];
    let output = run([
        vec![
            "heartbeats".to_owned(),
            "list".to_owned(),
            "--json".to_owned(),
        ],
        server.clone(),
    ]
    .concat())
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(page["items"][0]["id"], "nightly");
    assert_eq!(page["items"][0]["status"], "failed");
    assert_eq!(page["items"][0]["last_ping"]["exit_code"], 3);

    let output = run([
        vec!["heartbeats".to_owned(), "list".to_owned()],
        server.clone(),
    ]
    .concat())
    .await
    .expect("join");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("nightly") && table.contains("failed"),
        "{table}"
    );
    assert!(table.contains("period 10s"), "{table}");

    let output = run([
        vec![
            "heartbeats".to_owned(),
            "pings".to_owned(),
            "nightly".to_owned(),
        ],
        server,
    ]
    .concat())
    .await
    .expect("join");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("fail") && table.contains("disk full"),
        "{table}"
    );
    app.stop().await;
}

/// Two replicas on one PostgreSQL database: a missed deadline fires once, on one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_a_missed_deadline_once() {
    use tocsin_store_postgres::testing::TestDatabase;
    use tokio_util::sync::CancellationToken;

    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let config = tocsin_config::parse(
            &crate::support::test_config(&monitors()),
            "test.toml",
            &|_| None,
        )
        .unwrap_or_else(|errors| panic!("{errors}"));
        let data_dir = crate::support::temp_dir();
        let settings = tocsin::Settings {
            config,
            data_dir: data_dir.to_path_buf(),
            database: Some(database.url().to_owned()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = tocsin::App::build(&settings).await.expect("build");
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(app.serve(listener, async move { shutdown.cancelled().await }));
        replicas.push((base, stop, task, data_dir));
    }
    let client = reqwest::Client::new();
    // No ping: the deadline is the one both replicas' watchers wrote (the same instant, 10 s
    // + 1 s of grace after the monitor was first seen), due work both replicas claim from.
    // (A success would leave that item in place and move the monitor's deadline on: the item
    // would then run twice, once early to move itself, once late.)
    let metric = "tocsin_due_items_run_total{kind=\"heartbeat.deadline\"}";
    let runs = |text: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with(metric))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    let started = std::time::Instant::now();
    loop {
        let mut total = 0.0;
        for (base, ..) in &replicas {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            total += runs(&text);
        }
        if total >= 1.0 {
            // Give a second runner the time it would need to run it too.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut again = 0.0;
            for (base, ..) in &replicas {
                let text = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("text");
                again += runs(&text);
            }
            assert_eq!(again, 1.0, "the deadline ran once across replicas");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no deadline ran within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let store = tocsin_store_postgres::PostgresStore::connect(database.url())
        .await
        .expect("connect");
    use tocsin_store::IncidentStore;
    let alerts = store
        .alerts(&Default::default(), tocsin_store::PageRequest::default())
        .await
        .expect("alerts");
    let late: Vec<_> = alerts
        .items
        .iter()
        .filter(|alert| alert.dedup_key.as_str() == "heartbeat:nightly")
        .collect();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].count, 1, "one trigger");
    tocsin_store::Store::close(&store).await;
    for (_, stop, task, _dir) in replicas {
        stop.cancel();
        task.await.expect("task").expect("server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_pings_429_and_every_200_is_stored() {
    // A queue of 4 and batches of 1: a burst of concurrent pings must overflow it.
    let app = spawn_app_with(&format!(
        "[ingest]\nqueue_capacity = 4\nmax_batch = 1\n{}",
        monitors()
    ))
    .await;
    let mut senders = Vec::new();
    for n in 0..300 {
        let client = app.client.clone();
        let url = app.url(&format!("/ping/{NIGHTLY_KEY}/log"));
        senders.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .body(format!("ping {n}"))
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            (status, retry_after)
        }));
    }
    let mut accepted = 0;
    let mut throttled = 0;
    for sender in senders {
        match sender.await.expect("sender") {
            (200, _) => accepted += 1,
            (429, retry_after) => {
                throttled += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(throttled > 0, "the queue never filled");
    let (_, page) = app.get("/api/v1/heartbeats/nightly/pings?limit=500").await;
    assert_eq!(
        page["items"].as_array().expect("items").len(),
        accepted,
        "every 200 is a stored ping, no 429 is"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_deadline_and_adds_monitors() {
    let dir = crate::support::temp_dir();
    let file = dir.join("tocsin.toml");
    let hourly = monitors().replacen("period = \"10s\"", "period = \"1h\"", 1);
    std::fs::write(&file, crate::support::test_config(&hourly)).expect("write");
    let app = crate::support::spawn_app_from_file(&file).await;
    let (status, _, _) = ping(
        &app,
        reqwest::Method::POST,
        &format!("/ping/{NIGHTLY_KEY}"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (_, before) = app.get("/api/v1/heartbeats/nightly").await;
    let success: jiff::Timestamp = before["last_success_at"].as_str().unwrap().parse().unwrap();
    let deadline: jiff::Timestamp = before["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline.duration_since(success).as_secs(), 3601);

    // Back to a 10 s period, and a new monitor.
    let added = format!(
        "{}\n[[monitors]]\nid = \"weekly\"\nservice = \"checkout-api\"\nkind = \"heartbeat\"\ncron = \"0 4 * * mon\"\ntime_zone = \"Europe/Lisbon\"\ngrace = \"2h\"\nping_key = \"weekly-ping-key-00001\"\n",
        monitors()
    );
    std::fs::write(&file, crate::support::test_config(&added)).expect("write");
    let (status, body) = app.post("/api/v1/config/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    loop {
        let (_, after) = app.get("/api/v1/heartbeats/nightly").await;
        let deadline: jiff::Timestamp = after["deadline"].as_str().unwrap().parse().unwrap();
        if deadline.duration_since(success).as_secs() == 11 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deadline did not move: {after}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, weekly) = app.get("/api/v1/heartbeats/weekly").await;
    assert_eq!(weekly["schedule"], "cron");
    assert_eq!(weekly["expected"], "0 4 * * mon");
    assert_eq!(weekly["time_zone"], "Europe/Lisbon");
    // Seen by the watcher: recorded as new, with a first deadline.
    let started = std::time::Instant::now();
    loop {
        let (_, weekly) = app.get("/api/v1/heartbeats/weekly").await;
        if weekly["status"] == "new" {
            assert!(weekly["deadline"].is_string(), "{weekly}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{weekly}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
