//! What the CLI shows people and scripts: the incident view, `alerts` and `services`, `--json`,
//! and the errors a mistyped argument gets.

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::support::{spawn_app, temp_dir, TestApp, API_KEY, MANUAL_KEY};

fn tocsin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// Runs the CLI against `app` (its write token) without blocking the server's runtime.
async fn run(app: &TestApp, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let base = app.base.clone();
    let token = app.token.clone();
    tokio::task::spawn_blocking(move || {
        tocsin()
            .args(&args)
            .env("TOCSIN_SERVER", base)
            .env("TOCSIN_TOKEN", token)
            .env("NO_COLOR", "1")
            .output()
            .expect("run tocsin")
    })
    .await
    .expect("join")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Incident #1 of a service that resolves incidents by hand, with two alerts: the first folded
/// twice and resolved by its sender, the second opened afterwards; then acknowledged by the CLI,
/// with a note.
async fn worked_incident(app: &TestApp) {
    app.trigger(MANUAL_KEY, "disk-db1", "Disk 91% on db1").await;
    app.trigger(MANUAL_KEY, "disk-db1", "Disk 93% on db1").await;
    let (status, body) = app
        .enqueue(
            &json!({"routing_key": MANUAL_KEY, "event_action": "resolve", "dedup_key": "disk-db1"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.trigger(MANUAL_KEY, "disk-db1", "Disk 97% on db1").await;
    succeeded(&run(app, &["incidents", "ack", "1"]).await);
    succeeded(&run(app, &["incidents", "note", "1", "failing over to db2"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_show_reads_as_sentences_with_counts_and_times() {
    let app = spawn_app().await;
    worked_incident(&app).await;

    let text = succeeded(&run(&app, &["incidents", "show", "1"]).await);
    assert!(text.contains("Incident #1: Disk 91% on db1"), "{text}");
    assert!(text.contains("alerts             2 (1 open)"), "{text}");
    assert!(text.contains("time to ack        "), "{text}");
    assert!(text.contains("not resolved yet"), "{text}");
    // Timeline rows: when, who, what, in words; no JSON.
    assert!(!text.contains("{\""), "raw JSON in:\n{text}");
    assert!(!text.contains("incident.triggered"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("Timeline"))
        .skip(2)
        .collect();
    let expected = [
        (
            "integration:events-v2",
            "opened by alert `disk-db1` (critical, from web-1): Disk 91% on db1",
        ),
        // Folds are logged by whatever next touches the alert (here the resolve event).
        (
            "integration:events-v2",
            "1 more event folded into alert `disk-db1` (2 events in all); latest: Disk 93% on db1",
        ),
        ("integration:events-v2", "alert `disk-db1` resolved"),
        (
            "integration:events-v2",
            "every alert resolved; the service resolves incidents by hand",
        ),
        (
            "integration:events-v2",
            "alert `disk-db1` joined (critical, from web-1): Disk 97% on db1",
        ),
        (
            "token:tester",
            "incident acknowledged (1 alert acknowledged with it)",
        ),
        ("token:tester", "note: failing over to db2"),
    ];
    assert_eq!(rows.len(), expected.len(), "{text}");
    for (row, (who, what)) in rows.iter().zip(expected) {
        // `  2026-12-02 14:55:01  who  what`
        let when = row.get(2..21).unwrap_or_default();
        assert!(
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", when).is_ok(),
            "{row:?}"
        );
        let rest: Vec<&str> = row[21..].trim_start().splitn(2, "  ").collect();
        assert_eq!(rest[0], who, "{row:?}");
        assert_eq!(rest[1].trim_start(), what, "{row:?}");
    }

    // Resolved: time to resolve is shown.
    succeeded(&run(&app, &["incidents", "resolve", "1"]).await);
    let text = succeeded(&run(&app, &["incidents", "show", "1"]).await);
    assert!(!text.contains("not resolved yet"), "{text}");
    assert!(text.contains("alerts             2 (0 open)"), "{text}");
    assert!(
        text.contains("incident resolved (1 alert resolved with it)"),
        "{text}"
    );

    // --json: the API's own objects.
    let json: Value = serde_json::from_str(&succeeded(
        &run(&app, &["incidents", "show", "1", "--json"]).await,
    ))
    .expect("JSON");
    assert_eq!(json["incident"]["number"], 1);
    assert!(json["incident"]["time_to_resolve_seconds"].is_number());
    assert_eq!(json["timeline"]["items"][0]["kind"], "incident.triggered");
    assert_eq!(
        json["timeline"]["items"].as_array().map(Vec::len),
        Some(expected.len() + 1)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_services_commands_list_what_the_api_has() {
    let app = spawn_app().await;
    worked_incident(&app).await;

    let text = succeeded(&run(&app, &["alerts", "list"]).await);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SUMMARY"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains("acknowledged") && lines[1].contains("Disk 97% on db1"),
        "{text}"
    );
    assert!(
        lines[2].contains("resolved") && lines[2].contains("Disk 93% on db1"),
        "{text}"
    );

    let json: Value =
        serde_json::from_str(&succeeded(&run(&app, &["alerts", "list", "--json"]).await))
            .expect("JSON");
    let folded = json["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["count"] == 2))
        .cloned()
        .expect("the alert with two events");
    let id = folded["id"].to_string();

    let text = succeeded(&run(&app, &["alerts", "show", &id]).await);
    assert!(
        text.contains(&format!("Alert {id}: Disk 93% on db1")),
        "{text}"
    );
    assert!(text.contains("events        2"), "{text}");
    assert!(!text.contains("{\"routing_key"), "{text}");
    let events: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("Events"))
        .skip(2)
        .collect();
    assert_eq!(events.len(), 3, "two triggers and a resolve: {text}");
    assert!(events[0].contains("resolve"), "{text}");
    let json: Value = serde_json::from_str(&succeeded(
        &run(&app, &["alerts", "show", &id, "--json"]).await,
    ))
    .expect("JSON");
    assert_eq!(json["alert"]["dedup_key"], "disk-db1");
    assert_eq!(json["events"]["items"].as_array().map(Vec::len), Some(3));

    let text = succeeded(&run(&app, &["services", "list"]).await);
    for id in ["checkout-api", "checkout-db", "batch", "dashboards"] {
        assert!(text.contains(id), "{id} missing in {text}");
    }
    assert!(text.contains("manual"), "{text}");
    let json: Value = serde_json::from_str(&succeeded(
        &run(&app, &["services", "list", "--json"]).await,
    ))
    .expect("JSON");
    assert_eq!(json["items"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["items"][0]["id"], "checkout-api");

    let (status, body) = app
        .post_json(
            "/v2/change/enqueue",
            &json!({"routing_key": API_KEY, "payload": {"summary": "Deployed v42", "source": "ci"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let text = succeeded(&run(&app, &["services", "changes", "checkout-api"]).await);
    assert!(
        text.contains("Deployed v42") && text.contains("ci"),
        "{text}"
    );

    // The event commands answer in JSON too.
    let json: Value = serde_json::from_str(&succeeded(
        &run(
            &app,
            &[
                "event",
                "trigger",
                "--routing-key",
                API_KEY,
                "--dedup-key",
                "cli-json",
                "--summary",
                "From a script",
                "--json",
            ],
        )
        .await,
    ))
    .expect("JSON");
    assert_eq!(json["dedup_key"], "cli-json");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_service_is_named_with_the_known_ones() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "disk-db1", "Disk 91% on db1").await;
    for args in [
        &["incidents", "list", "--service", "nosuch"][..],
        &["alerts", "list", "--service", "nosuch"][..],
        &["services", "changes", "nosuch"][..],
    ] {
        let output = run(&app, args).await;
        assert!(!output.status.success(), "{args:?}: {}", stdout(&output));
        let error = stderr(&output);
        assert!(
            error.contains("there is no service `nosuch`")
                && error.contains("checkout-api, checkout-db, batch, dashboards")
                && error.contains("tocsin services list"),
            "{args:?}: {error}"
        );
        assert_eq!(stdout(&output), "", "{args:?}: no table");
    }
    // A known service without incidents is an empty table, not an error.
    let text = succeeded(&run(&app, &["incidents", "list", "--service", "batch"]).await);
    assert_eq!(text.lines().count(), 1, "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_errors_say_what_could_not_be_done() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "disk-db1", "Disk 91% on db1").await;
    let output = run(&app, &["incidents", "priority", "1", "P9"]).await;
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("cannot change the priority of incident #1: HTTP 400"),
        "{error}"
    );
    let output = run(&app, &["incidents", "ack", "7"]).await;
    assert!(
        stderr(&output).contains("cannot acknowledge incident #7: HTTP 404"),
        "{}",
        stderr(&output)
    );
    let output = run(&app, &["incidents", "note", "7", "hello"]).await;
    assert!(
        stderr(&output).contains("cannot add the note to incident #7: HTTP 404"),
        "{}",
        stderr(&output)
    );
    let output = run(&app, &["alerts", "show", "99"]).await;
    assert!(
        stderr(&output).contains("cannot show alert 99: HTTP 404"),
        "{}",
        stderr(&output)
    );
    app.stop().await;
}

#[test]
fn token_commands_refuse_a_data_directory_without_a_database() {
    let dir = temp_dir();
    let missing = dir.join("tocsin-dat");
    let output = tocsin()
        .args(["token", "list", "--data"])
        .arg(&missing)
        .env_remove("TOCSIN_DATABASE")
        .env_remove("TOCSIN_CONFIG")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("does not exist") && error.contains("--create") && error.contains("--data"),
        "{error}"
    );
    assert!(!missing.exists(), "nothing was created");

    // An existing directory that holds no database (a mistyped path that happens to exist).
    let output = tocsin()
        .args(["token", "create", "--name", "ops", "--data"])
        .arg(&*dir)
        .env_remove("TOCSIN_DATABASE")
        .env_remove("TOCSIN_CONFIG")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("holds no Tocsin database"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.join(tocsin_store_sqlite::DATABASE_FILE).exists());

    // Asked to, it creates one; then the directory works without the flag.
    let output = tocsin()
        .args([
            "token", "create", "--name", "ops", "--create", "--json", "--data",
        ])
        .arg(&missing)
        .output()
        .expect("run");
    let created: Value = serde_json::from_str(&succeeded(&output)).expect("JSON");
    assert_eq!(created["name"], "ops");
    assert!(created["token"]
        .as_str()
        .is_some_and(|token| token.starts_with("tcn_")));
    let output = tocsin()
        .args(["token", "list", "--json", "--data"])
        .arg(&missing)
        .output()
        .expect("run");
    let listed: Value = serde_json::from_str(&succeeded(&output)).expect("JSON");
    assert_eq!(listed[0]["name"], "ops");
    assert!(listed[0].get("token").is_none(), "no secret in {listed}");
}

#[test]
fn config_example_checks_clean_as_printed() {
    let dir = temp_dir();
    let file = dir.join("tocsin.toml");
    let example = tocsin().args(["config", "example"]).output().expect("run");
    std::fs::write(&file, succeeded(&example)).expect("write");
    let mut check = tocsin();
    check.args(["config", "check"]).arg(&file);
    for variable in [
        "PAYMENTS_CHAT_WEBHOOK",
        "AUDIT_HOOK_SECRET",
        "CHECKOUT_ROUTING_KEY",
        "CHECKOUT_GRAFANA_SECRET",
        "BACKUP_PING_KEY",
        "SMTP_PASSWORD",
    ] {
        check.env_remove(variable);
    }
    let text = succeeded(&check.output().expect("run"));
    assert!(text.contains("tocsin.toml: ok"), "{text}");

    // A production-style reference without a default still fails when its variable is unset.
    let strict = std::fs::read_to_string(&file)
        .expect("read")
        .replace("${AUDIT_HOOK_SECRET:-change-me}", "${AUDIT_HOOK_SECRET}");
    std::fs::write(&file, strict).expect("write");
    let output = tocsin()
        .args(["config", "check"])
        .arg(&file)
        .env_remove("AUDIT_HOOK_SECRET")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("environment variable `AUDIT_HOOK_SECRET` is not set"),
        "{}",
        stderr(&output)
    );
}
