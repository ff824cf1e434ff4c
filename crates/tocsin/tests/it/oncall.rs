//! Who is on call, over real HTTP on a real app with a real SQLite file: overrides made through
//! the API change the answers at once, and bad input is refused naming the field, with nothing
//! stored.

use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use crate::support::{spawn_app_with, TestApp};

const PEOPLE: &str = r#"
[[users]]
id = "ana"

[[users]]
id = "ben"

[[users]]
id = "dev"

[[users]]
id = "robot"
bot = true

[[schedules]]
id = "primary"
time_zone = "Europe/Berlin"

  [[schedules.layers]]
  members = ["ana", "ben"]
  rotation = "1w"
  handoff = "2026-01-05T09:00"

[[schedules]]
id = "weekdays"
time_zone = "Asia/Kolkata"

  [[schedules.layers]]
  members = ["ana"]
  rotation = "1d"
  handoff = "2026-01-05T09:00"
  only = ["mon-fri 09:00-17:00"]
"#;

fn later(hours: i64) -> Timestamp {
    Timestamp::now()
        .checked_add(SignedDuration::from_hours(hours))
        .expect("a time")
}

fn query_time(at: Timestamp) -> String {
    // `+` in an offset would need escaping in a query; UTC needs none.
    at.to_string()
}

async fn on_call(app: &TestApp, schedule: &str, at: Timestamp) -> Value {
    let (status, body) = app
        .get(&format!(
            "/api/v1/oncall?schedule={schedule}&at={}",
            query_time(at)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["schedules"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    body["schedules"][0].clone()
}

async fn overrides_of(app: &TestApp, schedule: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/schedules/{schedule}/overrides"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn assert_refused(status: u16, body: &Value, expected_status: u16, field: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["field"], field, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn an_override_made_over_http_changes_who_is_on_call_until_it_is_deleted() {
    let app = spawn_app_with(PEOPLE).await;
    let at = later(24);
    let before = on_call(&app, "primary", at).await;
    let scheduled = before["user"]
        .as_str()
        .expect("someone is on call")
        .to_owned();
    assert!(scheduled == "ana" || scheduled == "ben", "{before}");
    assert_eq!(before["layer"], 1, "{before}");
    assert_eq!(before["override"], Value::Null, "{before}");

    // Dev covers the next two days.
    let (status, created) = app
        .post(
            "/api/v1/schedules/primary/overrides",
            Some(json!({
                "start": later(0).to_string(),
                "end": later(48).to_string(),
                "user": "dev",
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["user"], "dev");
    assert_eq!(created["created_by"], "token:tester");
    let id = created["id"].as_i64().expect("an id");
    let during = on_call(&app, "primary", at).await;
    assert_eq!(during["user"], "dev", "{during}");
    assert_eq!(during["override"], id, "{during}");
    assert_eq!(during["layer"], Value::Null, "{during}");
    // Without `at`: now.
    let (status, now) = app.get("/api/v1/oncall").await;
    assert_eq!(status, 200, "{now}");
    let primary = now["schedules"]
        .as_array()
        .and_then(|schedules| {
            schedules
                .iter()
                .find(|entry| entry["schedule"] == "primary")
        })
        .expect("the primary schedule");
    assert_eq!(primary["user"], "dev", "{now}");
    assert_eq!(now["schedules"].as_array().map(Vec::len), Some(2), "{now}");
    // Dev's shifts show it; the scheduled person's do not during those hours.
    let (status, shifts) = app.get("/api/v1/users/dev/shifts").await;
    assert_eq!(status, 200, "{shifts}");
    assert_eq!(
        shifts["shifts"].as_array().map(Vec::len),
        Some(1),
        "{shifts}"
    );
    assert_eq!(shifts["shifts"][0]["schedule"], "primary");
    assert_eq!(shifts["shifts"][0]["end"], created["end"]);

    let (status, body) = app
        .post(
            "/api/v1/schedules/primary/overrides",
            Some(json!({
                "start": later(20).to_string(),
                "end": later(30).to_string(),
                "user": "ana",
                "replaces": "dev",
            })),
        )
        .await;
    // Dev is not a member of the schedule: there is nobody to replace.
    assert_refused(status, &body, 400, "replaces");
    // Sixty hours on, whoever the rotation has then is replaced by Dev for two hours; a
    // replacement of the member not on call then changes nothing.
    let at_61 = later(61);
    let rotation_at_61 = on_call(&app, "primary", at_61).await["user"]
        .as_str()
        .expect("someone is on call")
        .to_owned();
    let not_on_call_at_61 = if rotation_at_61 == "ana" {
        "ben"
    } else {
        "ana"
    };
    let (status, idle) = app
        .post(
            "/api/v1/schedules/primary/overrides",
            Some(json!({
                "start": later(60).to_string(),
                "end": later(62).to_string(),
                "user": "dev",
                "replaces": not_on_call_at_61,
            })),
        )
        .await;
    assert_eq!(status, 201, "{idle}");
    assert_eq!(
        on_call(&app, "primary", at_61).await["user"],
        rotation_at_61
    );
    let (status, replacing) = app
        .post(
            "/api/v1/schedules/primary/overrides",
            Some(json!({
                "start": later(60).to_string(),
                "end": later(62).to_string(),
                "user": "dev",
                "replaces": rotation_at_61,
            })),
        )
        .await;
    assert_eq!(status, 201, "{replacing}");
    let replaced = on_call(&app, "primary", at_61).await;
    assert_eq!(replaced["user"], "dev", "{replaced}");
    assert_eq!(replaced["override"], replacing["id"], "{replaced}");
    assert_ne!(on_call(&app, "primary", later(63)).await["user"], "dev");

    let listed = overrides_of(&app, "primary").await;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["id"], replacing["id"], "newest first");
    let (status, one) = app
        .get(&format!("/api/v1/schedules/primary/overrides/{id}"))
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one, created);

    // Deleting needs a write token; with one, the schedule's own person is back at once.
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/schedules/primary/overrides/{id}"),
            None,
            Some(&app.read_token),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, deleted) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/schedules/primary/overrides/{id}"),
            None,
            Some(&app.token),
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["id"], id);
    let after = on_call(&app, "primary", at).await;
    assert_eq!(after["user"], before["user"], "{after}");
    assert_eq!(after["layer"], 1, "{after}");
    assert_eq!(after["override"], Value::Null, "{after}");
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/schedules/primary/overrides/{id}"),
            None,
            Some(&app.token),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn bad_on_call_input_is_refused_naming_the_field_and_nothing_is_stored() {
    let app = spawn_app_with(PEOPLE).await;
    let start = later(1).to_string();
    let end = later(5).to_string();

    for bad in ["tomorrow", "2026-11-02T09:00", "2026-11-02"] {
        let (status, body) = app.get(&format!("/api/v1/oncall?at={bad}")).await;
        assert_refused(status, &body, 400, "at");
        assert!(
            body["message"].as_str().unwrap().contains("RFC 3339"),
            "{body}"
        );
    }
    let (status, body) = app.get("/api/v1/oncall?schedule=nope").await;
    assert_refused(status, &body, 404, "schedule");
    let (status, body) = app.get("/api/v1/schedules/nope/gaps").await;
    assert_refused(status, &body, 404, "id");
    let (status, body) = app.get("/api/v1/users/nobody/shifts").await;
    assert_refused(status, &body, 404, "id");
    let (status, body) = app
        .get("/api/v1/schedules/primary/gaps?from=yesterday")
        .await;
    assert_refused(status, &body, 400, "from");
    let (status, body) = app
        .get(&format!(
            "/api/v1/schedules/primary/gaps?from={}&to={}",
            query_time(later(5)),
            query_time(later(1))
        ))
        .await;
    assert_refused(status, &body, 400, "to");
    let (status, body) = app
        .get(&format!(
            "/api/v1/schedules/primary/gaps?to={}",
            query_time(later(24 * 200))
        ))
        .await;
    assert_refused(status, &body, 400, "to");

    let attempts = [
        (
            json!({"start": end, "end": start, "user": "dev"}),
            400,
            "end",
        ),
        (
            json!({"start": start, "end": start, "user": "dev"}),
            400,
            "end",
        ),
        (
            json!({"start": later(-5).to_string(), "end": later(-1).to_string(), "user": "dev"}),
            400,
            "end",
        ),
        (
            json!({"start": "soon", "end": end, "user": "dev"}),
            400,
            "start",
        ),
        (
            json!({"start": start, "end": "2026-11-02 09:00", "user": "dev"}),
            400,
            "end",
        ),
        (
            json!({"start": start, "end": end, "user": "anna"}),
            400,
            "user",
        ),
        (
            json!({"start": start, "end": end, "user": "robot"}),
            400,
            "user",
        ),
        (
            json!({"start": start, "end": end, "user": "dev", "replaces": "robot"}),
            400,
            "replaces",
        ),
        (
            json!({"start": start, "end": end, "user": "ana", "replaces": "ana"}),
            400,
            "replaces",
        ),
        (json!({"start": start, "end": end}), 400, "body"),
        (
            json!({"start": start, "end": end, "user": "dev", "colour": "red"}),
            400,
            "body",
        ),
    ];
    for (request, expected_status, field) in attempts {
        let (status, body) = app
            .post("/api/v1/schedules/primary/overrides", Some(request.clone()))
            .await;
        assert_refused(status, &body, expected_status, field);
        let _ = request;
    }
    let (status, body) = app
        .post(
            "/api/v1/schedules/nope/overrides",
            Some(json!({"start": start, "end": end, "user": "dev"})),
        )
        .await;
    assert_refused(status, &body, 404, "id");
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            "/api/v1/schedules/primary/overrides",
            Some(json!({"start": start, "end": end, "user": "dev"})),
            Some(&app.read_token),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/schedules/primary/overrides/abc",
            None,
            Some(&app.token),
        )
        .await;
    assert_refused(status, &body, 400, "override_id");
    assert!(overrides_of(&app, "primary").await.is_empty());
    let stored = app
        .engine
        .store()
        .overrides(
            &tocsin_store::OverrideFilter::default(),
            tocsin_store::PageRequest::first(10),
        )
        .await
        .expect("list");
    assert!(stored.items.is_empty(), "{:?}", stored.items);
    app.stop().await;
}

#[tokio::test]
async fn gaps_of_a_restricted_schedule_are_the_hours_outside_its_window() {
    let app = spawn_app_with(PEOPLE).await;
    let (status, body) = app.get("/api/v1/schedules/weekdays/gaps").await;
    assert_eq!(status, 200, "{body}");
    let gaps = body["gaps"].as_array().expect("gaps");
    // Thirty days of a 09:00-17:00 weekday window: at least 21 nights and weekends.
    assert!(gaps.len() >= 20, "{body}");
    for gap in gaps {
        let seconds = gap["seconds"].as_i64().unwrap();
        // A weekday night is 16 hours, a weekend 64; the ends of the range cut the others.
        assert!(seconds <= 64 * 3600, "{gap}");
    }
    let (status, body) = app.get("/api/v1/schedules/primary/gaps").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["gaps"], json!([]), "{body}");
    let (status, body) = app.get("/api/v1/schedules/weekdays/gaps?limit=3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["gaps"].as_array().map(Vec::len), Some(3));
    assert!(body["next_from"].is_string(), "{body}");

    // The whole of the next gap covered by an override: one gap fewer.
    let first = &gaps[0];
    let (status, created) = app
        .post(
            "/api/v1/schedules/weekdays/overrides",
            Some(json!({"start": first["start"], "end": first["end"], "user": "ben"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, after) = app.get("/api/v1/schedules/weekdays/gaps").await;
    assert_eq!(status, 200, "{after}");
    assert!(
        !after["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|gap| gap["start"] == first["start"] && gap["end"] == first["end"]),
        "{after}"
    );
    app.stop().await;
}

fn tocsin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
}

#[tokio::test]
async fn the_cli_answers_who_is_on_call_and_refuses_a_bad_time() {
    let app = spawn_app_with(PEOPLE).await;
    let base = app.base.clone();
    let token = app.token.clone();
    let run = move |args: Vec<String>| {
        let base = base.clone();
        let token = token.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                tocsin()
                    .args(&args)
                    .env("TOCSIN_SERVER", &base)
                    .env("TOCSIN_TOKEN", &token)
                    .output()
                    .expect("run tocsin")
            })
            .await
            .expect("join")
        }
    };
    let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();

    let output = run(args(&["oncall", "--at", "tomorrow 9am"])).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--at"), "{stderr}");
    assert!(stderr.contains("RFC 3339"), "{stderr}");

    let output = run(args(&[
        "override",
        "create",
        "--schedule",
        "primary",
        "--user",
        "dev",
        "--start",
        &later(0).to_string(),
        "--end",
        &later(24).to_string(),
    ]))
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("dev is on call in primary"), "{stdout}");

    let output = run(args(&["oncall", "--schedule", "primary", "--json"])).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["schedules"][0]["user"], "dev", "{answer}");

    let output = run(args(&["oncall"])).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("SCHEDULE"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("primary") && line.contains("dev")),
        "{stdout}"
    );

    let output = run(args(&[
        "oncall",
        "gaps",
        "--schedule",
        "weekdays",
        "--days",
        "7",
    ]))
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("weekdays: nobody is on call"), "{stdout}");

    let output = run(args(&[
        "override",
        "create",
        "--schedule",
        "primary",
        "--user",
        "robot",
        "--start",
        &later(0).to_string(),
        "--end",
        &later(24).to_string(),
    ]))
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bot") && stderr.contains("field `user`"),
        "{stderr}"
    );

    let output = run(args(&["override", "list", "--schedule", "primary"])).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().count(),
        2,
        "a header and one override: {stdout}"
    );
    let id = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let output = run(args(&["override", "delete", "--schedule", "primary", &id])).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(overrides_of(&app, "primary").await.is_empty());
    app.stop().await;
}

#[test]
fn config_check_warns_about_schedules_with_gaps() {
    let dir = crate::support::temp_dir();
    let file = dir.join("gaps.toml");
    std::fs::write(&file, crate::support::test_config(PEOPLE)).expect("write");
    let output = tocsin()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("warning: schedule `weekdays` has nobody on call"),
        "{stdout}"
    );
    assert!(
        stdout.contains("from 20"),
        "the instants are listed: {stdout}"
    );
    assert!(!stdout.contains("schedule `primary`"), "{stdout}");
    assert!(!stdout.contains("[[schedules]]"), "schedules act: {stdout}");
}

#[tokio::test]
async fn a_reload_swaps_the_schedules_and_a_gap_notice_sees_the_overrides() {
    let dir = crate::support::temp_dir();
    let file = dir.join("tocsin.toml");
    std::fs::write(&file, crate::support::test_config(PEOPLE)).expect("write");
    let app = crate::support::spawn_app_from_file(&file).await;

    // What a notice "nobody is on call in the next day" reads: every schedule's gaps from now.
    let day = SignedDuration::from_hours(24);
    let gaps = app.engine.gaps_in_next(day).await.expect("gaps");
    assert!(
        gaps.iter().all(|schedule| schedule.schedule == "weekdays"),
        "{gaps:?}"
    );
    // Covering the whole day closes every gap of it.
    let (status, body) = app
        .post(
            "/api/v1/schedules/weekdays/overrides",
            Some(json!({"start": later(-1).to_string(), "end": later(48).to_string(), "user": "ben"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(app.engine.gaps_in_next(day).await.expect("gaps").is_empty());

    // The file loses the weekdays schedule and gains another: a reload swaps them at once.
    let replaced = PEOPLE.replace("id = \"weekdays\"", "id = \"nights\"");
    std::fs::write(&file, crate::support::test_config(&replaced)).expect("write");
    let (status, body) = app.post("/api/v1/config/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/api/v1/schedules/weekdays/gaps").await;
    assert_refused(status, &body, 404, "id");
    let (status, body) = app.get("/api/v1/oncall?schedule=nights").await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}
