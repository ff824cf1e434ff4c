//! `tocsin demo` as a newcomer runs it: the real binary, its printed tour, its logs.

use std::process::Stdio;
use std::time::Duration;

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
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("accepted but not acted on yet"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escape codes in logs to a pipe:\n{logs:?}"
    );
}
