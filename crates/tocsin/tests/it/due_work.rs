//! Due work in the running application: the runner starts with the server, runs the fold log
//! sweep, and two servers on one data directory share it (one of them runs each sweep).

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::support::test_config;

const SWEEP_RUNS: &str = "tocsin_due_items_run_total{kind=\"fold_log.sweep\"}";

struct Server {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(data_dir: &Path) -> Server {
    let config = tocsin_config::parse(&test_config(""), "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    let settings = tocsin::Settings {
        config,
        data_dir: data_dir.to_owned(),
        database: None,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(tocsin::launch(settings, listener, async move {
        shutdown.cancelled().await
    }));
    Server { base, stop, task }
}

impl Server {
    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    async fn shut_down(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .expect("server task")
            .expect("server result");
    }
}

/// Waits (up to 10 s) until the server answers `/metrics`, and returns them.
async fn metrics_once_up(server: &Server, until: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("{}/metrics", server.base)).await {
            let text = response.text().await.expect("text");
            if until(&text) || started.elapsed() > Duration::from_secs(10) {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_data_directory_run_each_fold_log_sweep_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let first = start(dir.path()).await;
    let metrics = metrics_once_up(&first, |text| text.contains(SWEEP_RUNS)).await;
    assert!(
        metrics.contains(&format!("{SWEEP_RUNS} 1")),
        "the first server scheduled the sweep and ran it at once:\n{metrics}"
    );
    assert!(
        metrics.contains("tocsin_due_item_lag_seconds_count{kind=\"fold_log.sweep\"} 1"),
        "{metrics}"
    );

    let second = start(dir.path()).await;
    metrics_once_up(&second, |_| true).await;
    // The second server polls every second; the sweep is next due 15 s after the first ran it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let metrics = second.metrics().await;
    assert!(
        !metrics.contains(SWEEP_RUNS),
        "the second server found the sweep scheduled and not due:\n{metrics}"
    );
    assert!(first.metrics().await.contains(&format!("{SWEEP_RUNS} 1")));
    second.shut_down().await;
    first.shut_down().await;
}
