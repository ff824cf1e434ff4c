//! `tocsin demo` as a newcomer runs it: the real binary, its printed tour, its logs.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::support::{temp_dir, TestDir};

/// A running demo and the tour it printed.
struct Demo {
    child: tokio::process::Child,
    tour: String,
    _data: TestDir,
}

impl Demo {
    /// Starts `tocsin demo` on a free port with its data in a test directory, with stderr a
    /// pipe (as when logs go to a file), and waits for its tour.
    async fn start(envs: &[(&str, &str)]) -> Demo {
        let data = temp_dir();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"));
        command
            .args(["demo", "--listen", "127.0.0.1:0", "--data"])
            .arg(&*data)
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start tocsin demo");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut tour = String::new();
        let read = async {
            while let Some(line) = lines.next_line().await.expect("read the tour") {
                tour.push_str(&line);
                tour.push('\n');
                if line.starts_with("Press Ctrl-C") {
                    return;
                }
            }
            panic!("the demo ended before printing its tour:\n{tour}");
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the demo prints its tour within 60 s");
        Demo {
            child,
            tour,
            _data: data,
        }
    }

    /// The value after `prefix` on the first tour line that has it.
    fn after(&self, prefix: &str) -> String {
        self.tour
            .lines()
            .find_map(|line| line.split_once(prefix).map(|(_, rest)| rest))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{prefix:?} missing in the tour:\n{}", self.tour))
            .to_owned()
    }

    /// Stops the demo and returns what it logged.
    async fn stop(mut self) -> String {
        self.child.start_kill().expect("stop the demo");
        let mut logs = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut logs).await.expect("read logs");
        }
        let _ = self.child.wait().await;
        logs
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_have_no_colour_codes() {
    let demo = Demo::start(&[]).await;
    assert!(
        demo.tour.contains("Tocsin demo is running"),
        "{}",
        demo.tour
    );
    let logs = demo.stop().await;
    assert!(logs.contains(" INFO "), "{logs}");
    // Every section of the demo acts.
    assert!(!logs.contains("accepted but not acted on yet"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escape codes in logs to a pipe:\n{logs:?}"
    );
}

/// The demo's two "send an event" commands, run as printed (the CLI one through a shell with
/// `tocsin` on PATH, the curl one as the same HTTP request), fold into one alert and one
/// incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_two_example_events_fold_into_one_incident() {
    let demo = Demo::start(&[]).await;
    let base = demo.after("export TOCSIN_SERVER=");
    let token = demo.after("export TOCSIN_TOKEN=");
    assert!(
        demo.tour.contains(&format!("{base}/api/v1/docs")),
        "the tour links the API reference:\n{}",
        demo.tour
    );
    let cli_line = demo
        .tour
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("tocsin event trigger"))
        .expect("the CLI example")
        .to_owned();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_tocsin"))
        .parent()
        .expect("the binary's directory")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-c", &cli_line])
            .env("PATH", path)
            .env("TOCSIN_SERVER", server)
            .output()
            .expect("run the CLI example")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The curl example: its body, to its URL.
    let curl_body = demo
        .tour
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the curl example's body")
        .to_owned();
    assert!(
        demo.tour
            .contains(&format!("curl -X POST {base}/v2/enqueue")),
        "{}",
        demo.tour
    );
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v2/enqueue"))
        .header("content-type", "application/json")
        .body(curl_body)
        .send()
        .await
        .expect("send the curl example");
    assert_eq!(response.status(), 202);

    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON")
        }
    };
    let alerts = get("/api/v1/alerts?limit=500".to_owned()).await;
    let queue: Vec<&Value> = alerts["items"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|alert| alert["summary"] == "Queue depth above 10k")
        .collect();
    assert_eq!(queue.len(), 1, "one alert: {alerts}");
    assert_eq!(queue[0]["count"], 2, "{alerts}");
    let incidents = get("/api/v1/incidents?limit=500".to_owned()).await;
    let queue_incidents = incidents["items"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|incident| incident["title"] == "Queue depth above 10k")
        .count();
    assert_eq!(queue_incidents, 1, "one incident: {incidents}");
    demo.stop().await;
}

/// The demo's flaky endpoint fails on a cycle (shortened here to 20 s): its monitor opens an
/// incident and resolves it by itself, and the demo's job pings its heartbeat monitor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_flaky_monitor_opens_and_resolves_an_incident_by_itself() {
    let data = temp_dir();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"));
    command
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--flaky-cycle",
            "20",
            "--data",
        ])
        .arg(&*data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start tocsin demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut tour = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the tour") {
            tour.push_str(&line);
            tour.push('\n');
            if line.starts_with("Press Ctrl-C") {
                return;
            }
        }
        panic!("the demo ended before printing its tour:\n{tour}");
    })
    .await
    .expect("the demo prints its tour within 60 s");
    let demo = Demo {
        child,
        tour,
        _data: data,
    };
    assert!(
        demo.tour.contains("tocsin monitors show search-health")
            && demo.tour.contains("every 20 s"),
        "{}",
        demo.tour
    );
    let base = demo.after("export TOCSIN_SERVER=");
    let token = demo.after("export TOCSIN_TOKEN=");
    let client = reqwest::Client::new();
    let incident = |state: &'static str| {
        let request = client
            .get(format!("{base}/api/v1/incidents?limit=500"))
            .bearer_auth(&token);
        async move {
            let page: Value = request.send().await.ok()?.json().await.ok()?;
            page["items"]
                .as_array()?
                .iter()
                .find(|incident| {
                    incident["dedup_key"] == "monitor:search-health" && incident["state"] == state
                })
                .cloned()
        }
    };
    // The status page's Search component follows the flaky monitor: every status it shows
    // while the incident opens and resolves is collected.
    assert!(
        demo.tour.contains(&format!("{base}/status")),
        "{}",
        demo.tour
    );
    let mut search_statuses = std::collections::BTreeSet::new();
    let search_status = || {
        let request = client.get(format!("{base}/api/v2/components.json"));
        async move {
            let document: Value = request.send().await.ok()?.json().await.ok()?;
            document["components"]
                .as_array()?
                .iter()
                .find(|component| component["id"] == "search")?["status"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let started = std::time::Instant::now();
    let mut opened = None;
    while started.elapsed() < Duration::from_secs(60) {
        search_statuses.extend(search_status().await);
        if let Some(found) = incident("triggered").await {
            opened = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let opened = opened.expect("the flaky monitor opened an incident within 60 s");
    let mut resolved = None;
    while started.elapsed() < Duration::from_secs(90) {
        search_statuses.extend(search_status().await);
        if let Some(found) = incident("resolved").await {
            resolved = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let resolved = resolved.expect("the flaky monitor resolved its incident by itself");
    assert_eq!(resolved["number"], opened["number"]);
    assert!(
        search_statuses.contains("operational")
            && search_statuses
                .iter()
                .any(|status| status.ends_with("_outage")),
        "the status page's Search component showed {search_statuses:?}"
    );

    // The demo's job pings its heartbeat monitor.
    let heartbeat: Value = client
        .get(format!("{base}/api/v1/heartbeats/search-indexer"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert!(heartbeat["last_ping"].is_object(), "{heartbeat}");
    demo.stop().await;
}
