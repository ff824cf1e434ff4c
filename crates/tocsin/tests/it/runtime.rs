//! The server as a running process: config reload (API, CLI, SIGHUP), connection limits and
//! timeouts, the supervised shutdown, and secrets kept out of help texts and debug output.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{spawn_app_from_file, spawn_app_with, temp_dir, test_config, API_KEY, DB_KEY};

const NEW_KEY: &str = "abcdefabcdefabcdefabcdefabcdef12";

fn tocsin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// A generic-JSON event for the service with integration key `key`: unknown keys get 404.
fn generic_path(key: &str) -> String {
    format!("/integrations/generic/{key}")
}

fn generic_event() -> serde_json::Value {
    json!({"summary": "reload check", "dedup_key": "reload-check"})
}

/// The test config with `checkout-db`'s key replaced by `NEW_KEY`, in a new service.
fn config_with_new_key() -> String {
    test_config("").replace(DB_KEY, NEW_KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_through_the_api_swaps_keys_and_refuses_an_invalid_file() {
    let dir = temp_dir();
    let file = dir.join("tocsin.toml");
    std::fs::write(&file, test_config("")).expect("write");
    let app = spawn_app_from_file(&file).await;

    let (status, _) = app.post_json(&generic_path(DB_KEY), &generic_event()).await;
    assert_eq!(status, 202);
    let (status, _) = app
        .post_json(&generic_path(NEW_KEY), &generic_event())
        .await;
    assert_eq!(status, 404, "unknown before the reload");
    let (_, metrics) = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await;
    let metrics = metrics.as_str().expect("text").to_owned();
    let first_hash = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tocsin_config_info{sha256=\""))
        .and_then(|rest| rest.split('"').next())
        .expect("the config hash is exported")
        .to_owned();
    assert_eq!(first_hash.len(), 64, "{metrics}");
    assert!(
        metrics.contains("tocsin_config_loaded_timestamp_seconds"),
        "{metrics}"
    );

    // A read token may not reload.
    let (status, _) = app
        .request(
            reqwest::Method::POST,
            "/api/v1/config/reload",
            None,
            Some(&app.read_token),
        )
        .await;
    assert_eq!(status, 403);

    // Valid: the new key works at once, the removed one is 404; listen is start-up only.
    std::fs::write(
        &file,
        config_with_new_key().replace("127.0.0.1:0", "127.0.0.1:9"),
    )
    .expect("write");
    let (status, body) = app.post("/api/v1/config/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "reloaded");
    assert_eq!(body["changed"], true);
    assert_eq!(body["services"], 4);
    assert_eq!(body["needs_restart"], json!(["server.listen"]));
    let (status, _) = app
        .post_json(&generic_path(NEW_KEY), &generic_event())
        .await;
    assert_eq!(status, 202, "a new key works at once");
    let (status, _) = app.post_json(&generic_path(DB_KEY), &generic_event()).await;
    assert_eq!(status, 404, "a removed key is unknown at once");
    let (_, metrics) = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await;
    let metrics = metrics.as_str().expect("text").to_owned();
    let sha = body["sha256"].as_str().expect("hash");
    assert!(
        metrics.contains(&format!("tocsin_config_info{{sha256=\"{sha}\"}} 1")),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&first_hash),
        "the old hash is gone: {metrics}"
    );
    assert!(
        metrics.contains("tocsin_config_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );

    // Invalid: refused with line and column, and the running config stays.
    std::fs::write(
        &file,
        format!(
            "{}\n[[services]]\nid = \"broken\"\nintegration_keys = [\"short\"]\n",
            config_with_new_key()
        ),
    )
    .expect("write");
    let (status, body) = app.post("/api/v1/config/reload", None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_config");
    let report = body["report"].as_str().expect("a report");
    let lines = config_with_new_key().lines().count();
    assert!(
        report.contains(&format!("tocsin.toml:{}:", lines + 4)),
        "the report names the line: {report}"
    );
    let check = tocsin()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .expect("run");
    let checked = String::from_utf8_lossy(&check.stderr);
    assert_eq!(
        checked.trim_end(),
        report,
        "the same report as `config check`"
    );
    let (status, _) = app
        .post_json(&generic_path(NEW_KEY), &generic_event())
        .await;
    assert_eq!(status, 202, "the running config stays");
    let (_, metrics) = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await;
    assert!(
        metrics
            .as_str()
            .expect("text")
            .contains("tocsin_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );

    // The CLI: refused with the report on stderr, then accepted.
    let refused = tocsin()
        .args(["config", "reload"])
        .env("TOCSIN_SERVER", &app.base)
        .env("TOCSIN_TOKEN", &app.token)
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("tocsin.toml:{}:", lines + 4)),
        "{stderr}"
    );
    std::fs::write(&file, test_config("")).expect("write");
    let accepted = tocsin()
        .args(["config", "reload"])
        .env("TOCSIN_SERVER", &app.base)
        .env("TOCSIN_TOKEN", &app.token)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(
        accepted.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(stdout.contains("reloaded: 4 services"), "{stdout}");
    // For scripts: the server's answer as JSON (the same file again: unchanged).
    let again = tocsin()
        .args(["config", "reload", "--json"])
        .env("TOCSIN_SERVER", &app.base)
        .env("TOCSIN_TOKEN", &app.token)
        .output()
        .expect("run");
    let answer: serde_json::Value = serde_json::from_slice(&again.stdout).expect("a JSON answer");
    assert_eq!(answer["services"], 4, "{answer}");
    assert_eq!(answer["changed"], false, "{answer}");
    let (status, _) = app.post_json(&generic_path(DB_KEY), &generic_event()).await;
    assert_eq!(status, 202);
    app.stop().await;
}

#[tokio::test]
async fn reload_without_a_config_file_is_refused() {
    let app = spawn_app_with("").await;
    let (status, body) = app.post("/api/v1/config/reload", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "no_config_file");
    let (status, _) = app
        .post_json(&generic_path(API_KEY), &generic_event())
        .await;
    assert_eq!(status, 202);
    app.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

#[tokio::test]
async fn sighup_reloads_the_binary_and_sigterm_stops_every_task_then_the_store() {
    let dir = temp_dir();
    let file = dir.join("tocsin.toml");
    std::fs::write(&file, test_config("")).expect("write");
    let port = free_port();
    let mut child = tocsin()
        .args(["serve", "--config"])
        .arg(&file)
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("TOCSIN_DATABASE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tocsin");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let post = |key: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .post(format!("{base}{}", generic_path(key)))
                .json(&generic_event())
                .send()
                .await
                .map(|response| response.status().as_u16())
                .unwrap_or(0)
        }
    };
    let started = Instant::now();
    while post(API_KEY).await != 202 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(post(NEW_KEY).await, 404);
    std::fs::write(&file, config_with_new_key()).expect("write");
    let signalled = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let reloaded = Instant::now();
    while post(NEW_KEY).await != 202 {
        assert!(
            reloaded.elapsed() < Duration::from_secs(10),
            "SIGHUP reloads the config"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(post(DB_KEY).await, 404);
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(status.success(), "a clean exit: {stderr}");
    for task in ["http", "ingest-writer", "due-work", "config-reload-signal"] {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains("task stopped") && line.contains(task)),
            "task {task} is logged as stopped: {stderr}"
        );
    }
    assert!(stderr.contains("config reloaded"), "{stderr}");
    let stopped = stderr.find("task stopped").expect("tasks stop");
    let closed = stderr.find("store closed").expect("the store is closed");
    assert!(
        closed > stopped,
        "the store closes after the tasks: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_beyond_the_limit_do_not_block_healthz() {
    let app = spawn_app_with(
        "header_read_timeout = \"1s\"\nidle_timeout = \"1s\"\nmax_connections = 40\n",
    )
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    // 60 connections that never send a byte, 20 that trickle their headers.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(std::net::TcpStream::connect(&address).expect("connect"));
    }
    let mut trickling = Vec::new();
    for _ in 0..20 {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        trickling.push(stream);
    }
    let trickler = std::thread::spawn(move || {
        // One header byte every 100 ms, for longer than the header-read timeout allows.
        let mut closed = 0;
        for _ in 0..30 {
            for stream in &mut trickling {
                let _ = stream.write_all(b"X");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for stream in &mut trickling {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buffer = [0_u8; 512];
            // Closed by the server: end of file, a reset, or a 408 answer and then the end.
            match stream.read(&mut buffer) {
                Ok(_) => closed += 1,
                Err(error)
                    if error.kind() != std::io::ErrorKind::WouldBlock
                        && error.kind() != std::io::ErrorKind::TimedOut =>
                {
                    closed += 1
                }
                Err(_) => {}
            }
        }
        closed
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for attempt in 0..3 {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let response = client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        let took = started.elapsed();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            took < Duration::from_millis(100),
            "attempt {attempt}: /healthz took {took:?} with 80 idle connections and a limit of 40"
        );
    }
    // The idle connections are closed by the server within the idle timeout (plus slack).
    let deadline = Instant::now() + Duration::from_secs(4);
    let idle_closed = tokio::task::spawn_blocking(move || {
        for stream in &mut idle {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(10))))
                .expect("timeout");
            let mut buffer = [0_u8; 16];
            let read = stream.read(&mut buffer);
            assert!(
                matches!(read, Ok(0))
                    || matches!(&read, Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset),
                "an idle connection is closed by the server: {read:?}"
            );
        }
    });
    idle_closed.await.expect("every idle connection is closed");
    let trickled = tokio::task::spawn_blocking(move || trickler.join().expect("trickler"));
    assert_eq!(
        trickled.await.expect("join"),
        20,
        "every trickling connection is closed"
    );
    let (_, metrics) = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await;
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(
        metrics.contains("tocsin_http_connections_closed_total{reason=\"evicted\"}"),
        "{metrics}"
    );
    app.stop().await;
}

#[test]
fn help_never_shows_a_secret_from_the_environment() {
    for command in [
        vec!["serve", "--help"],
        vec!["token", "list", "--help"],
        vec!["event", "trigger", "--help"],
        vec!["config", "reload", "--help"],
    ] {
        let output = tocsin()
            .args(&command)
            .env(
                "TOCSIN_DATABASE",
                "postgres://tocsin:hunter2-password@db/tocsin",
            )
            .env("TOCSIN_TOKEN", "tcn_secret-token-value")
            .env("TOCSIN_ROUTING_KEY", "routing-key-secret-value")
            .output()
            .expect("run");
        assert!(output.status.success(), "{command:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("TOCSIN_"), "{command:?}: {help}");
        for secret in [
            "hunter2-password",
            "secret-token-value",
            "routing-key-secret-value",
        ] {
            assert!(
                !help.contains(secret),
                "{command:?} prints {secret}: {help}"
            );
        }
    }
}

#[test]
fn settings_debug_never_shows_a_password_or_an_integration_key() {
    let source = test_config("database = \"postgres://tocsin:hunter2-password@db/tocsin\"");
    let config = tocsin_config::parse(&source, "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let catalog = tocsin::catalog_from_config(&config);
    let data_dir = temp_dir();
    let settings = tocsin::Settings {
        config,
        data_dir: data_dir.to_path_buf(),
        database: Some("postgres://tocsin:other-password@db/tocsin".to_owned()),
    };
    let printed = format!("{settings:?} {settings:#?} {catalog:?} {catalog:#?}");
    for secret in [
        "hunter2-password",
        "other-password",
        API_KEY,
        DB_KEY,
        "grafana-shared-secret",
    ] {
        assert!(
            !printed.contains(secret),
            "Debug prints {secret}: {printed}"
        );
    }
    assert!(printed.contains("checkout-api"), "{printed}");
}
