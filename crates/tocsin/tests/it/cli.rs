//! The `tocsin` binary as a person uses it.

use std::process::Command;

use crate::support::{spawn_app, temp_dir, API_KEY};

fn tocsin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
}

#[test]
fn config_check_reports_every_error_with_line_and_column() {
    let dir = temp_dir();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"[server]
listen = "127.0.0.1:8080"

[[users]]
id = "bot"
name = "Deploy bot"
bot = true

[[escalation_policies]]
id = "main"
levels = [{ targets = ["user:bot"] }]

[[services]]
id = "api"
name = "API"
escalation_policy = "missing"
integration_keys = ["tooshort"]
"#,
    )
    .expect("write");
    let output = tocsin()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:11:"), "{stderr}");
    assert!(stderr.contains("bad.toml:16:"), "{stderr}");
    assert!(stderr.contains("bad.toml:17:"), "{stderr}");
    assert!(stderr.contains("bot"), "{stderr}");
    assert!(stderr.contains("32"), "{stderr}");

    let good = dir.join("good.toml");
    let example = tocsin().args(["config", "example"]).output().expect("run");
    assert!(example.status.success());
    std::fs::write(&good, tocsin_config::DEMO).expect("write");
    let output = tocsin()
        .args(["config", "check"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok"), "{stdout}");
    // Every section of the demo acts (its status page, schedule, monitors, rule and escalation
    // policy), so none is listed as accepted but not acted on.
    assert!(
        !stdout.contains("accepted but not acted on yet"),
        "{stdout}"
    );
    for acting in [
        "[status_page]",
        "[[schedules]]",
        "[[monitors]]",
        "[[rules]]",
        "[[escalation_policies]]",
    ] {
        assert!(!stdout.contains(acting), "{acting} acts: {stdout}");
    }
    assert!(!stdout.contains(" monitors)"), "{stdout}");
}

#[test]
fn config_check_names_unset_environment_variables() {
    let dir = temp_dir();
    let file = dir.join("env.toml");
    std::fs::write(
        &file,
        "[[services]]\nid = \"api\"\nname = \"API\"\nintegration_keys = [\"${TOCSIN_TEST_SURELY_UNSET}\"]\n",
    )
    .expect("write");
    let output = tocsin()
        .args(["config", "check"])
        .arg(&file)
        .env_remove("TOCSIN_TEST_SURELY_UNSET")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("env.toml:4:"), "{stderr}");
    assert!(stderr.contains("TOCSIN_TEST_SURELY_UNSET"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_and_incident_commands_talk_to_a_running_server() {
    let app = spawn_app().await;
    let base = app.base.clone();
    let token = app.token.clone();
    let run = move |args: Vec<String>| {
        let base = base.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || {
            tocsin()
                .args(&args)
                .env("TOCSIN_SERVER", base)
                .env("TOCSIN_TOKEN", token)
                .output()
                .expect("run")
        })
    };
    let args = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let output = run(args(&format!(
        "event trigger --routing-key {API_KEY} --dedup-key cli-key --summary Queue-depth-high --severity critical --detail queue=orders"
    )))
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("cli-key"));

    let output = run(args("incidents list")).await.expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Queue-depth-high") && stdout.contains("triggered"),
        "{stdout}"
    );

    let output = run(args("incidents ack 1")).await.expect("join");
    assert!(String::from_utf8_lossy(&output.stdout).contains("acknowledged"));
    let mut note = args("incidents note 1");
    note.push("rolled back to v41".to_owned());
    let output = run(note).await.expect("join");
    assert!(output.status.success());
    let output = run(args("incidents resolve 1")).await.expect("join");
    assert!(String::from_utf8_lossy(&output.stdout).contains("resolved"));
    let output = run(args("incidents show 1")).await.expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(stdout.contains("rolled back to v41"), "{stdout}");
    assert!(stdout.contains("incident resolved"), "{stdout}");

    // Errors are clear and exit non-zero.
    let output = run(args("incidents show 99")).await.expect("join");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
    let output = run(args(&format!("event resolve --routing-key {API_KEY}")))
        .await
        .expect("join");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--dedup-key"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_prints_a_working_token() {
    let dir = temp_dir();
    let data = dir.join("data");
    let output = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            tocsin()
                .args([
                    "token", "create", "--name", "ops", "--scope", "write", "--create", "--data",
                ])
                .arg(&data)
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secret = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(secret.starts_with("tcn_"), "{secret}");
    let store = tocsin_store_sqlite::SqliteStore::open(&data)
        .await
        .expect("open");
    let engine_token =
        tocsin_store::TokenStore::api_tokens(&store, tocsin_store::PageRequest::default())
            .await
            .expect("tokens");
    assert_eq!(engine_token.items.len(), 1);
    assert_eq!(engine_token.items[0].name, "ops");
    let output = tocsin()
        .args([
            "token", "create", "--name", "x", "--scope", "admin", "--data",
        ])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("read, write"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassign_pages_the_new_assignee_through_the_api_and_the_cli() {
    let app = crate::support::spawn_app_with(
        r#"
[[users]]
id = "ana"
contact = [{ id = "hook", kind = "webhook", url = "http://127.0.0.1:9/ana" }]
notify = [{ after_minutes = 0, contact = "hook" }]

[[users]]
id = "ben"
contact = [{ id = "hook", kind = "webhook", url = "http://127.0.0.1:9/hook" }]

[[users]]
id = "deploy-bot"
bot = true
"#,
    )
    .await;
    app.trigger(API_KEY, "disk-full", "Disk 99% on db1").await;

    // Bad input names the field and stores nothing.
    for (body, status) in [
        (serde_json::json!({ "user": "nobody" }), 404),
        (serde_json::json!({ "user": "deploy-bot" }), 400),
        (serde_json::json!({ "who": "ana" }), 400),
    ] {
        let (got, error) = app
            .post("/api/v1/incidents/1/reassign", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {error}");
        if body.get("user").is_some() {
            assert_eq!(error["field"], "user", "{error}");
        }
    }
    let (status, _) = app
        .post(
            "/api/v1/incidents/99/reassign",
            Some(serde_json::json!({ "user": "ana" })),
        )
        .await;
    assert_eq!(status, 404);
    let store = app.engine.store();
    let number = tocsin_core::IncidentNumber(1);
    assert!(store
        .notifications(number, 50)
        .await
        .expect("rows")
        .is_empty());

    let (status, result) = app
        .post(
            "/api/v1/incidents/1/reassign",
            Some(serde_json::json!({ "user": "ana" })),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let rows = store.notifications(number, 50).await.expect("rows");
    assert_eq!(rows.len(), 1, "ana's one notify rule");
    assert_eq!(rows[0].method, "webhook");

    let output = tokio::task::spawn_blocking({
        let base = app.base.clone();
        let token = app.token.clone();
        move || {
            tocsin()
                .args(["incidents", "reassign", "1", "deploy-bot"])
                .env("TOCSIN_SERVER", base)
                .env("TOCSIN_TOKEN", token)
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(stderr.contains("bot"), "{stderr}");

    let output = tokio::task::spawn_blocking({
        let base = app.base.clone();
        let token = app.token.clone();
        move || {
            let reassign = tocsin()
                .args(["incidents", "reassign", "1", "ana"])
                .env("TOCSIN_SERVER", &base)
                .env("TOCSIN_TOKEN", &token)
                .output()
                .expect("run");
            let show = tocsin()
                .args(["incidents", "show", "1"])
                .env("TOCSIN_SERVER", &base)
                .env("TOCSIN_TOKEN", &token)
                .output()
                .expect("run");
            (reassign, show)
        }
    })
    .await
    .expect("join");
    let (reassign, show) = output;
    assert!(
        reassign.status.success(),
        "{}",
        String::from_utf8_lossy(&reassign.stderr)
    );
    let shown = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(shown.contains("reassigned to ana"), "{shown}");
    assert!(shown.contains("tester"), "who did it: {shown}");
    let rows = store.notifications(number, 50).await.expect("rows");
    let states: Vec<_> = rows.iter().map(|row| row.state).collect();
    assert_eq!(
        states,
        [
            tocsin_store::outbox::NotificationState::Cancelled,
            tocsin_store::outbox::NotificationState::Pending
        ],
        "the first page withdrawn, ana paged again"
    );
    app.stop().await;
}
