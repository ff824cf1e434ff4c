//! Whole-file tests: the shipped example and demo, and that every kind of mistake is reported
//! at the right place with a useful message.

use std::time::Duration;

use super::*;

const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const SLACK_URL: &str = "https://hooks.slack.example/services/T000/B000/XXXX";
const AUDIT_SECRET: &str = "audit-hook-signing-secret";
const GRAFANA_SECRET: &str = "grafana-contact-point-secret";
const PING_KEY: &str = "6f1c3a52-8d1e-4b7a-9f0e-2c4d5e6f7a8b";

fn example_env(name: &str) -> Option<String> {
    match name {
        "PAYMENTS_CHAT_WEBHOOK" => Some(SLACK_URL.to_owned()),
        "AUDIT_HOOK_SECRET" => Some(AUDIT_SECRET.to_owned()),
        "CHECKOUT_ROUTING_KEY" => Some(ROUTING_KEY.to_owned()),
        "CHECKOUT_GRAFANA_SECRET" => Some(GRAFANA_SECRET.to_owned()),
        "BACKUP_PING_KEY" => Some(PING_KEY.to_owned()),
        _ => None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The errors of `source`, which must not be valid.
fn errors_of(source: &str) -> Vec<ConfigError> {
    match parse(source, "tocsin.toml", &no_env) {
        Ok(_) => panic!("expected errors, the config is valid"),
        Err(errors) => errors.errors,
    }
}

/// Asserts that `errors` has exactly one error at `line:column` whose message contains
/// `message`, and returns it.
#[track_caller]
fn find<'a>(
    errors: &'a [ConfigError],
    line: usize,
    column: usize,
    message: &str,
) -> &'a ConfigError {
    let found: Vec<&ConfigError> = errors
        .iter()
        .filter(|error| {
            error.line == line && error.column == column && error.message.contains(message)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one error at {line}:{column} containing {message:?}, got:\n{}",
        ConfigErrors {
            errors: errors.to_vec()
        }
    );
    found[0]
}

/// Users, a team and a policy that other tests add to.
const PEOPLE: &str = r#"
[[users]]
id = "ana"

[[users]]
id = "ben"

[[teams]]
id = "payments"
members = ["ana", "ben"]

[[escalation_policies]]
id = "payments"
levels = [{ targets = ["team:payments"] }]
"#;

// ---------------------------------------------------------------- shipped configs

#[test]
fn the_example_parses_with_its_variables_set() {
    let config =
        parse(EXAMPLE, "example.toml", &example_env).unwrap_or_else(|errors| panic!("{errors}"));

    assert_eq!(config.users.len(), 4);
    assert!(config.user("image-bot").unwrap().bot);
    let ana = config.user("ana").unwrap();
    assert_eq!(ana.role, Role::Admin);
    assert_eq!(
        ana.notify[1],
        NotifyRule {
            after_minutes: 2,
            contact: "mail".to_owned()
        }
    );
    // Without `notify`, every contact method is used at once.
    assert_eq!(
        config.user("ben").unwrap().notify,
        [NotifyRule {
            after_minutes: 0,
            contact: "mail".to_owned()
        }]
    );

    let schedule = config.schedule("payments-primary").unwrap();
    assert_eq!(schedule.layers[0].rotation, Duration::from_secs(7 * 86_400));
    assert_eq!(
        schedule.layers[0].handoff,
        jiff::civil::date(2026, 11, 2).at(9, 0, 0, 0)
    );
    assert_eq!(
        schedule.layers[1].only[0].length(),
        Duration::from_secs(8 * 3600)
    );

    let policy = config.escalation_policy("payments").unwrap();
    assert_eq!(policy.repeat, 2);
    assert_eq!(
        policy.levels[0].targets,
        [Target::Schedule("payments-primary".to_owned())]
    );
    assert_eq!(policy.levels[2].escalate_after_minutes, None);
    assert_eq!(
        policy.minutes_after_level(2),
        EscalationPolicy::DEFAULT_REPEAT_AFTER_MINUTES
    );

    let checkout = config.service("checkout-api").unwrap();
    assert_eq!(checkout.integration_keys[0].expose(), ROUTING_KEY);
    assert_eq!(
        config.service_for_integration_key(ROUTING_KEY).unwrap().id,
        "checkout-api"
    );
    assert!(config
        .service_for_integration_key("0123456789abcdef0123456789abcdeF")
        .is_none());
    assert_eq!(
        checkout.grafana.as_ref().unwrap().secret.expose(),
        GRAFANA_SECRET
    );
    assert_eq!(
        config.service("backups").unwrap().resolve,
        ResolveMode::Manual
    );

    match &config.channel("audit-hook").unwrap().kind {
        ChannelKind::Webhook { url, secret } => {
            assert_eq!(url.expose(), "https://hooks.acme.example/tocsin");
            assert_eq!(secret.as_ref().unwrap().expose(), AUDIT_SECRET);
        }
        other => panic!("unexpected channel kind {other:?}"),
    }
    assert_eq!(
        config
            .channel("payments-chat")
            .unwrap()
            .kind
            .url()
            .unwrap()
            .expose(),
        SLACK_URL
    );

    let health = config.monitor("checkout-health").unwrap();
    let MonitorKind::Http(http) = &health.kind else {
        panic!("not http")
    };
    assert_eq!(http.probe.interval, Duration::from_secs(30));
    assert_eq!(http.probe.confirm, 3);
    assert_eq!(http.probe.degraded_above, Some(Duration::from_millis(800)));
    assert_eq!(http.expect_status, [StatusPattern::Class(2)]);
    let db = config.monitor("checkout-db").unwrap().probe().unwrap();
    assert_eq!(
        (db.interval, db.timeout, db.confirm),
        (Duration::from_secs(15), Duration::from_secs(10), 2)
    );
    assert_eq!(
        config.monitor_for_ping_key(PING_KEY).unwrap().id,
        "nightly-backup"
    );
    let MonitorKind::Heartbeat(heartbeat) = &config.monitor("nightly-backup").unwrap().kind else {
        panic!("not heartbeat")
    };
    assert_eq!(heartbeat.grace, Duration::from_secs(30 * 60));
    assert!(
        matches!(&heartbeat.expected, HeartbeatSchedule::Cron { cron, .. } if cron.as_str() == "0 3 * * *")
    );

    assert_eq!(
        config.rules[0].kind,
        RuleKind::Rate {
            above: 1000,
            baseline: None
        }
    );
    assert_eq!(
        config.rules[0].matches.severity,
        Some(tocsin_core::Severity::Error)
    );
    assert_eq!(config.rules[1].kind, RuleKind::Absence);
    assert_eq!(config.status_page.as_ref().unwrap().history_days, 90);
    assert_eq!(
        config.component("checkout").unwrap().group.as_deref(),
        Some("Payments")
    );
}

#[test]
fn the_example_checks_clean_as_printed_with_placeholder_secrets() {
    let config =
        parse(EXAMPLE, "example.toml", &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    let checkout = config.service("checkout-api").unwrap();
    assert_eq!(
        checkout.integration_keys[0].expose(),
        "changemechangemechangemechangeme"
    );
    assert!(config
        .monitor_for_ping_key("change-me-backup-ping-key")
        .is_some());
    // Every variable the example reads has a default, and each default says it is one.
    let references: Vec<&str> = EXAMPLE
        .match_indices("${")
        .map(|(at, _)| &EXAMPLE[at..at + EXAMPLE[at..].find('}').unwrap() + 1])
        .filter(|reference| reference.contains(":-") && !reference.starts_with("${NAME:"))
        .collect();
    assert_eq!(references.len(), 6, "{references:?}");
    for reference in references {
        assert!(
            reference.contains("change-me") || reference.contains("changeme"),
            "{reference} is not a clearly fake default"
        );
    }
}

#[test]
fn a_reference_without_default_still_fails_when_unset() {
    let source = EXAMPLE.replace(
        "${CHECKOUT_ROUTING_KEY:-changemechangemechangemechangeme}",
        "${CHECKOUT_ROUTING_KEY}",
    );
    assert_ne!(source, EXAMPLE);
    let errors = parse(&source, "example.toml", &no_env).unwrap_err().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        "environment variable `CHECKOUT_ROUTING_KEY` is not set"
    );
    // Set, it is used.
    let config = parse(&source, "example.toml", &example_env).unwrap();
    assert_eq!(
        config.service("checkout-api").unwrap().integration_keys[0].expose(),
        ROUTING_KEY
    );
}

#[test]
fn inert_sections_name_what_is_accepted_but_not_acted_on() {
    let config =
        parse(EXAMPLE, "example.toml", &example_env).unwrap_or_else(|errors| panic!("{errors}"));
    let inert: Vec<(&str, usize)> = config
        .inert_sections()
        .iter()
        .map(|section| (section.name, section.count))
        .collect();
    // Its channels (slack, webhook, email) and its status page act.
    assert_eq!(inert, []);
    // Discord and Teams channels do not.
    let chat = parse(
        "[[channels]]\nid = \"d\"\nkind = \"discord\"\nurl = \"https://discord.example/x\"\n\
         [[channels]]\nid = \"s\"\nkind = \"slack\"\nurl = \"https://slack.example/x\"\n",
        "chat.toml",
        &no_env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(
        chat.inert_sections()
            .iter()
            .map(|section| (section.name, section.count))
            .collect::<Vec<_>>(),
        [("[[channels]] of kind discord or teams", 1)]
    );
    assert_eq!(
        chat.inert_sections()[0].to_string(),
        "[[channels]] of kind discord or teams (1): accepted, not acted on yet; it would post \
         a service's incidents to Discord and Microsoft Teams"
    );

    // Services, users (with their contact methods), teams, escalation policies and the SMTP
    // relay act today (ingestion, paging); a config of only those has no inert section.
    let minimal = parse(
        &format!("[[services]]\nid = \"api\"\nintegration_keys = [\"{ROUTING_KEY}\"]\n"),
        "minimal.toml",
        &no_env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(minimal.inert_sections(), []);
}

#[test]
fn the_demo_parses_without_any_environment() {
    assert!(
        !DEMO.contains("${"),
        "the demo must not read the environment"
    );
    let config = parse(DEMO, "demo.toml", &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert!((3..=4).contains(&config.users.len()));
    assert_eq!(config.users.iter().filter(|user| user.bot).count(), 1);
    assert!(!config.teams.is_empty() && !config.schedules.is_empty());
    assert!(!config.escalation_policies.is_empty() && !config.components.is_empty());
    assert_eq!(config.services.len(), 3);
    for service in &config.services {
        assert_eq!(service.integration_keys.len(), 1);
        let key = service.integration_keys[0].expose();
        assert!(key.len() == 32 && key.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            config.service_for_integration_key(key).unwrap().id,
            service.id
        );
    }
    // It probes only its own flaky endpoint on loopback.
    assert!(
        config.monitors.iter().all(|monitor| match &monitor.kind {
            MonitorKind::Http(check) => check.url.starts_with("http://127.0.0.1:"),
            _ => monitor.probe().is_none(),
        }),
        "the demo must not probe the network beyond loopback"
    );
}

#[test]
fn an_empty_file_is_all_defaults() {
    let config = parse("", "empty.toml", &no_env).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.server.public_url, "http://127.0.0.1:8080");
    assert_eq!(config.server.log_format, LogFormat::Pretty);
    assert!(config.server.database.is_none());
    assert_eq!(
        config.ingest,
        Ingest {
            queue_capacity: 20_000,
            max_batch: 2048
        }
    );
    assert!(config.services.is_empty() && config.smtp.is_none() && config.status_page.is_none());
}

#[test]
fn time_zones_are_stored_in_their_canonical_spelling() {
    let source = "[[users]]\nid = \"ana\"\ntime_zone = \"europe/lisbon\"\n";
    let config = parse(source, "tocsin.toml", &no_env).unwrap();
    assert_eq!(config.users[0].time_zone, "Europe/Lisbon");
}

#[test]
fn generated_keys_are_valid_integration_keys() {
    let key = generate_integration_key();
    assert_ne!(key, generate_integration_key());
    let source = format!("[[services]]\nid = \"a\"\nintegration_keys = [\"{key}\"]\n");
    let config = parse(&source, "tocsin.toml", &no_env).unwrap();
    assert!(config.service_for_integration_key(&key).is_some());
}

// ---------------------------------------------------------------- many errors at once

/// Eight different mistakes; each must be reported once, at its own position.
pub(crate) const EIGHT_MISTAKES: &str = r#"[server]
listen = "127.0.0.1:8080"

[[users]]
id = "ana"
time_zone = "Europe/Lisbn"
role = "owner"

[[teams]]
id = "payments"
members = ["ana"]

[[services]]
id = "checkout-api"
team = "paymnts"
escalation_polcy = "payments"
integration_keys = ["short"]

[[monitors]]
id = "checkout-health"
service = "checkout-api"
kind = "http"
interval = "5 min"
confirm = "3"
"#;

#[test]
fn every_mistake_in_a_file_is_reported_with_its_position() {
    let errors = errors_of(EIGHT_MISTAKES);
    assert_eq!(
        errors.len(),
        8,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );

    let time_zone = find(&errors, 6, 13, "unknown time zone `Europe/Lisbn`");
    assert!(time_zone
        .help
        .as_deref()
        .unwrap()
        .contains("did you mean `Europe/Lisbon`?"));
    let role = find(
        &errors,
        7,
        8,
        "invalid value `owner` for `role` in [[users]] \"ana\"",
    );
    assert!(role
        .help
        .as_deref()
        .unwrap()
        .contains("admin, responder, viewer"));
    let team = find(
        &errors,
        15,
        8,
        "[[services]] \"checkout-api\" refers to team `paymnts`, which is not defined",
    );
    assert!(team
        .help
        .as_deref()
        .unwrap()
        .contains("did you mean `payments`?"));
    find(
        &errors,
        16,
        1,
        "unknown field `escalation_polcy` in [[services]] \"checkout-api\"",
    );
    let key = find(
        &errors,
        17,
        21,
        "integration key must be exactly 32 ASCII letters and digits",
    );
    assert!(key
        .help
        .as_deref()
        .unwrap()
        .contains("openssl rand -hex 16"));
    find(
        &errors,
        19,
        1,
        "missing required field `url` in [[monitors]] \"checkout-health\"",
    );
    find(&errors, 23, 12, "invalid duration `5 min` for `interval`");
    find(&errors, 24, 11, "wrong type for `confirm` in [[monitors]] \"checkout-health\": expected an integer, found a string");

    // Sorted by position.
    let positions: Vec<(usize, usize)> = errors
        .iter()
        .map(|error| (error.line, error.column))
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted);
}

#[test]
fn the_report_reads_like_a_compiler_diagnostic() {
    let report = parse(EIGHT_MISTAKES, "tocsin.toml", &no_env)
        .unwrap_err()
        .to_string();
    println!("{report}");
    assert!(report.starts_with(
        "tocsin.toml:6:13: error: unknown time zone `Europe/Lisbn` for `time_zone` in [[users]] \"ana\"\n  help: did you mean `Europe/Lisbon`?"
    ));
    assert!(report.contains(
        "tocsin.toml:16:1: error: unknown field `escalation_polcy` in [[services]] \"checkout-api\"\n  \
         help: did you mean `escalation_policy`? allowed fields: id, name, description, team, escalation_policy,"
    ));
    assert!(report.ends_with("\n\n8 errors in tocsin.toml"));
}

// ---------------------------------------------------------------- one rule at a time

#[test]
fn unknown_fields_suggest_the_closest_name() {
    let errors =
        errors_of("[server]\nlisten = \"127.0.0.1:8080\"\npublc_url = \"http://x\"\nzzz = 1\n");
    let typo = find(&errors, 3, 1, "unknown field `publc_url` in [server]");
    assert_eq!(
        typo.help.as_deref(),
        Some("did you mean `public_url`? allowed fields: listen, public_url, database, tls, log_format, header_read_timeout, idle_timeout, max_connections")
    );
    let unrelated = find(&errors, 4, 1, "unknown field `zzz`");
    assert_eq!(
        unrelated.help.as_deref(),
        Some("allowed fields: listen, public_url, database, tls, log_format, header_read_timeout, idle_timeout, max_connections")
    );

    let errors = errors_of("[[sevices]]\nid = \"a\"\n");
    let section = find(&errors, 1, 3, "unknown section `sevices`");
    assert!(section
        .help
        .as_deref()
        .unwrap()
        .starts_with("did you mean `services`?"));
}

#[test]
fn fields_of_another_kind_are_named_as_such() {
    let source = format!(
        "{PEOPLE}\n[[services]]\nid = \"s\"\n\n[[monitors]]\nid = \"m\"\nservice = \"s\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_key = \"{PING_KEY}\"\nurl = \"https://x.example\"\n"
    );
    let errors = errors_of(&source);
    assert_eq!(errors.len(), 1);
    assert!(errors[0]
        .message
        .contains("field `url` does not apply to heartbeat monitors (it belongs to kind http)"));
}

#[test]
fn unset_variables_are_reported_where_they_are_used() {
    let source = "[server]\ndatabase = \"postgres://tocsin:${DB_PASSWORD}@db/tocsin\"\n";
    let errors = errors_of(source);
    assert_eq!(errors.len(), 1);
    let error = find(
        &errors,
        2,
        12,
        "environment variable `DB_PASSWORD` is not set",
    );
    assert_eq!(
        error.help.as_deref(),
        Some(
            "export DB_PASSWORD=..., write `${DB_PASSWORD:-default}` to fall back to a default, \
             or remove the reference"
        )
    );

    let env = |name: &str| (name == "DB_PASSWORD").then(|| "s3cret".to_owned());
    let config = parse(source, "tocsin.toml", &env).unwrap();
    assert_eq!(
        config.server.database.unwrap().expose(),
        "postgres://tocsin:s3cret@db/tocsin"
    );

    // `$${` is a literal `${`.
    let config = parse(
        "[status_page]\ntitle = \"costs $${PRICE}\"\n",
        "tocsin.toml",
        &no_env,
    )
    .unwrap();
    assert_eq!(config.status_page.unwrap().title, "costs ${PRICE}");
}

#[test]
fn duplicate_ids_point_at_the_second_and_name_the_first() {
    let source = r#"[[users]]
id = "ana"

[[users]]
id = "ana"

[[components]]
id = "web"

[[services]]
id = "checkout"

[[services]]
id = "search"

[[services]]
  id = "checkout"
"#;
    let errors = errors_of(source);
    assert_eq!(
        errors.len(),
        2,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(
        &errors,
        5,
        6,
        "duplicate user id `ana`: first defined at line 2",
    );
    let service = find(
        &errors,
        17,
        8,
        "duplicate service id `checkout`: first defined at line 11",
    );
    assert!(service
        .help
        .as_deref()
        .unwrap()
        .contains("unique among services"));
}

#[test]
fn bots_can_never_be_paged() {
    let source = r#"[[users]]
id = "ana"

[[users]]
id = "image-bot"
bot = true

[[teams]]
id = "builders"
members = ["ana", "image-bot"]

[[schedules]]
id = "primary"
  [[schedules.layers]]
  members = ["ana", "image-bot"]
  rotation = "1w"
  handoff = "2026-11-02T09:00"

[[escalation_policies]]
id = "builds"
levels = [
  { targets = ["user:image-bot"], escalate_after_minutes = 5 },
  { targets = ["schedule:primary"], escalate_after_minutes = 5 },
  { targets = ["team:builders", "user:ana"] },
]
"#;
    let errors = errors_of(source);
    assert_eq!(
        errors.len(),
        3,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    let in_schedule = find(
        &errors,
        15,
        21,
        "bot `image-bot` is a member of [[schedules]] \"primary\", layer 1",
    );
    let direct = find(
        &errors,
        22,
        16,
        "[[escalation_policies]] \"builds\", level 1 targets bot `image-bot`",
    );
    let via_team = find(
        &errors,
        24,
        16,
        "targets team `builders`, which includes bot `image-bot`: the bot would be paged when the team is a target",
    );
    for error in [in_schedule, direct, via_team] {
        assert!(
            error
                .help
                .as_deref()
                .unwrap()
                .starts_with("bots can send events but can never be paged; remove"),
            "{error}"
        );
    }
    assert!(direct
        .help
        .as_deref()
        .unwrap()
        .contains("remove `user:image-bot` or target a human"));
    assert!(via_team
        .help
        .as_deref()
        .unwrap()
        .contains("remove `image-bot` from team `builders`"));

    // A bot with contact methods is pointless and flagged.
    let errors = errors_of("[[users]]\nid = \"bot\"\nbot = true\nnotify = []\n");
    find(&errors, 4, 1, "is a bot but has `notify`");
}

#[test]
fn bad_durations_explain_the_format() {
    let source = format!("{PEOPLE}\n[[services]]\nid = \"s\"\n\n[[rules]]\nid = \"r\"\nservice = \"s\"\nkind = \"absence\"\nwindow = \"15min\"\n");
    let errors = errors_of(&source);
    assert_eq!(errors.len(), 1);
    assert!(errors[0]
        .message
        .contains("invalid duration `15min` for `window` in [[rules]] \"r\": `min` is not a unit"));
    assert!(errors[0]
        .help
        .as_deref()
        .unwrap()
        .contains("ms, s, m, h, d, w"));
    assert_eq!(
        (errors[0].line, errors[0].column),
        (source.lines().count(), 10)
    );

    let errors = errors_of("[[monitors]]\nid = \"m\"\nservice = \"s\"\nkind = \"tcp\"\naddress = \"db:5432\"\ninterval = 30\n");
    find(
        &errors,
        6,
        12,
        "expected a duration string, found an integer",
    );
    let errors = errors_of("[[monitors]]\nid = \"m\"\nservice = \"s\"\nkind = \"tcp\"\naddress = \"db:5432\"\ninterval = \"10s\"\ntimeout = \"30s\"\n");
    find(
        &errors,
        7,
        1,
        "`timeout` in [[monitors]] \"m\" is longer than its `interval`",
    );
}

#[test]
fn references_to_missing_things_are_errors() {
    let source = r#"[[users]]
id = "ana"

[[teams]]
id = "ops"
members = ["ana", "bob"]

[[schedules]]
id = "rota"
  [[schedules.layers]]
  members = ["anna"]
  rotation = "1d"
  handoff = "2026-11-02T09:00"

[[escalation_policies]]
id = "ops"
levels = [{ targets = ["user:zed", "schedule:nope", "team:nope", "usr:ana", "ana"] }]

[[services]]
id = "api"
escalation_policy = "opz"
components = ["web"]
channels = ["chat"]

[[monitors]]
id = "m"
service = "apy"
kind = "heartbeat"
period = "1h"
ping_key = "0123456789abcdef"

[[rules]]
id = "r"
service = "ghost"
kind = "absence"
window = "5m"
"#;
    let errors = errors_of(source);
    find(
        &errors,
        6,
        19,
        "[[teams]] \"ops\" refers to user `bob`, which is not defined",
    );
    let layer = find(
        &errors,
        11,
        14,
        "[[schedules]] \"rota\", layer 1 refers to user `anna`",
    );
    assert!(layer
        .help
        .as_deref()
        .unwrap()
        .contains("did you mean `ana`?"));
    find(&errors, 17, 24, "refers to user `zed`");
    find(&errors, 17, 36, "refers to schedule `nope`");
    find(&errors, 17, 53, "refers to team `nope`");
    let prefix = find(&errors, 17, 66, "`usr` is not a kind of target");
    assert!(prefix
        .help
        .as_deref()
        .unwrap()
        .starts_with("did you mean `user`?"));
    let bare = find(&errors, 17, 77, "invalid escalation target `ana`");
    assert!(bare
        .help
        .as_deref()
        .unwrap()
        .starts_with("did you mean `user:ana`?"));
    find(&errors, 21, 21, "refers to escalation policy `opz`");
    let component = find(&errors, 22, 15, "refers to component `web`");
    assert!(component
        .help
        .as_deref()
        .unwrap()
        .contains("no components are defined; add a [[components]] entry"));
    find(&errors, 23, 13, "refers to channel `chat`");
    find(
        &errors,
        27,
        11,
        "[[monitors]] \"m\" refers to service `apy`",
    );
    find(&errors, 34, 11, "[[rules]] \"r\" refers to service `ghost`");
    assert_eq!(
        errors.len(),
        12,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
}

#[test]
fn escalation_ladders_must_be_complete() {
    let source = format!(
        r#"{PEOPLE}
[[escalation_policies]]
id = "empty"
levels = []

[[escalation_policies]]
id = "missing"

[[escalation_policies]]
id = "gaps"
levels = [
  {{ targets = [] , escalate_after_minutes = 5 }},
  {{ targets = ["user:ana"] }},
  {{ targets = ["user:ben"], escalate_after_minutes = 0 }},
]
"#
    );
    let base = PEOPLE.lines().count();
    let errors = errors_of(&source);
    assert_eq!(
        errors.len(),
        5,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(
        &errors,
        base + 4,
        1,
        "[[escalation_policies]] \"empty\" has no levels",
    );
    find(
        &errors,
        base + 6,
        1,
        "missing required field `levels` in [[escalation_policies]] \"missing\"",
    );
    find(
        &errors,
        base + 12,
        3,
        "[[escalation_policies]] \"gaps\", level 1 has no targets",
    );
    let silent = find(
        &errors,
        base + 13,
        3,
        "level 2 does not say when to escalate",
    );
    assert!(silent
        .help
        .as_deref()
        .unwrap()
        .contains("only the last level may leave it out"));
    let zero = find(
        &errors,
        base + 14,
        54,
        "`escalate_after_minutes` in [[escalation_policies]] \"gaps\", level 3 is 0",
    );
    assert_eq!(zero.help.as_deref(), Some("use a value from 1 to 1440"));
}

#[test]
fn integration_keys_are_well_formed_and_unique() {
    let source = format!(
        r#"[[services]]
id = "a"
integration_keys = ["{ROUTING_KEY}", "has-dashes-0123456789abcdef01234"]

[[services]]
id = "b"
integration_keys = ["{ROUTING_KEY}"]
"#
    );
    let errors = errors_of(&source);
    assert_eq!(errors.len(), 2);
    find(&errors, 3, 57, "this one contains other characters");
    let reused = find(
        &errors,
        7,
        21,
        "integration key of [[services]] \"b\" is already used by [[services]] \"a\" (line 3)",
    );
    assert!(reused
        .help
        .as_deref()
        .unwrap()
        .contains("tocsin config gen-key"));
    for error in &errors {
        assert!(
            !error.to_string().contains(ROUTING_KEY),
            "a key was printed: {error}"
        );
    }
}

#[test]
fn monitors_need_their_kind_specific_fields() {
    let source = r#"[[services]]
id = "s"

[[monitors]]
id = "web"
service = "s"
kind = "http"

[[monitors]]
id = "db"
service = "s"
kind = "tcp"

[[monitors]]
id = "dns"
service = "s"
kind = "dns"

[[monitors]]
id = "job"
service = "s"
kind = "heartbeat"

[[monitors]]
id = "bad"
service = "s"
kind = "smtp"
"#;
    let errors = errors_of(source);
    assert_eq!(
        errors.len(),
        6,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(&errors, 4, 1, "missing required field `url`");
    find(&errors, 9, 1, "missing required field `address`");
    find(&errors, 14, 1, "missing required field `name`");
    find(
        &errors,
        19,
        1,
        "[[monitors]] \"job\" needs `cron` or `period`",
    );
    find(&errors, 19, 1, "missing required field `ping_key`");
    let kind = find(&errors, 27, 8, "invalid value `smtp` for `kind`");
    assert_eq!(
        kind.help.as_deref(),
        Some("allowed values: http, tcp, dns, tls, heartbeat")
    );
}

#[test]
fn heartbeat_schedules_are_checked() {
    let source = r#"[[services]]
id = "s"

[[monitors]]
id = "a"
service = "s"
kind = "heartbeat"
cron = "0 25 * * *"
time_zone = "Mars/Olympus"
ping_key = "aaaaaaaaaaaaaaaa"

[[monitors]]
id = "b"
service = "s"
kind = "heartbeat"
period = "1h"
time_zone = "UTC"
ping_key = "aaaaaaaaaaaaaaaa"
"#;
    let errors = errors_of(source);
    assert_eq!(
        errors.len(),
        4,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(&errors, 8, 8, "invalid cron expression `0 25 * * *` in [[monitors]] \"a\": 25 is out of range for the hour field");
    find(&errors, 9, 13, "unknown time zone `Mars/Olympus`");
    find(
        &errors,
        17,
        1,
        "`time_zone` in [[monitors]] \"b\" only applies with `cron`",
    );
    find(
        &errors,
        18,
        12,
        "ping key of [[monitors]] \"b\" is already used by [[monitors]] \"a\" (line 10)",
    );
}

#[test]
fn schedules_layers_are_checked() {
    let source = r#"[[users]]
id = "ana"

[[schedules]]
id = "a"

[[schedules]]
id = "b"
  [[schedules.layers]]
  members = []
  rotation = "1w"
  handoff = "2026-11-02T09:00Z"
  only = ["mon-fry 09:00-17:00"]

  [[schedules.layers]]
  members = ["ana"]
  rotation = "1w"
  handoff = 2026-11-02T09:00:00
"#;
    let errors = errors_of(source);
    assert_eq!(
        errors.len(),
        4,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(
        &errors,
        4,
        1,
        "missing required field `layers` in [[schedules]] \"a\"",
    );
    find(
        &errors,
        10,
        3,
        "[[schedules]] \"b\", layer 1 has no members",
    );
    find(&errors, 12, 13, "has a UTC offset");
    let restriction = find(&errors, 13, 11, "invalid restriction `mon-fry 09:00-17:00`");
    assert!(restriction.message.contains("`fry` is not a day"));
}

#[test]
fn wrong_types_say_what_was_expected() {
    let errors =
        errors_of("[server]\nlisten = 8080\n\n[ingest]\nmax_batch = 0\n\n[services]\nid = \"x\"\n");
    find(
        &errors,
        2,
        10,
        "wrong type for `listen` in [server]: expected a string, found an integer",
    );
    let batch = find(
        &errors,
        5,
        13,
        "`max_batch` in [ingest] is 0, which is out of range",
    );
    assert_eq!(batch.help.as_deref(), Some("use a value from 1 to 65536"));
    let table = find(
        &errors,
        7,
        1,
        "wrong type for `services` in the top level: expected an array of tables, found a table",
    );
    assert_eq!(
        table.help.as_deref(),
        Some("write `[[services]]` (double brackets) for each entry")
    );
    assert_eq!(errors.len(), 3);

    let errors = errors_of("[server]\nlisten = \"localhost:8080\"\nlog_format = \"jsno\"\n");
    find(&errors, 2, 10, "invalid listen address `localhost:8080`");
    let format = find(&errors, 3, 14, "invalid value `jsno` for `log_format`");
    assert_eq!(
        format.help.as_deref(),
        Some("did you mean `json`? allowed values: pretty, json")
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errors = errors_of(
        "[server]\nlisten = \"127.0.0.1:8080\"\nlisten = \"0.0.0.0:8080\"\n\n[smtp\nhost = 1\n",
    );
    // The first syntax error alone: what follows it is read out of step and would only echo it.
    assert_eq!(
        errors.len(),
        1,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(&errors, 3, 1, "invalid TOML: duplicate key");
    let errors = errors_of("[server]\nlisten = \"127.0.0.1:8080\"\n\n[smtp\nhost = 1\n");
    assert_eq!(
        errors.len(),
        1,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    assert_eq!(
        errors[0].line,
        4,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    assert!(errors[0].message.starts_with("invalid TOML: "));
}

#[test]
fn one_missing_bracket_is_one_error_that_names_where_it_opened() {
    let broken = EXAMPLE.replacen(
        "contact = [{ id = \"mail\", kind = \"email\", address = \"ben@acme.example\" }]",
        "contact = [{ id = \"mail\", kind = \"email\", address = \"ben@acme.example\" }",
        1,
    );
    assert_ne!(
        broken, EXAMPLE,
        "the example no longer has the line this test breaks"
    );
    let opened = EXAMPLE
        .lines()
        .position(|line| line.starts_with("contact = [{ id = \"mail\""))
        .expect("line")
        + 1;
    let errors = errors_of(&broken);
    let report = ConfigErrors {
        errors: errors.clone(),
    };
    assert_eq!(errors.len(), 1, "{report}");
    assert!(errors[0].message.starts_with("invalid TOML: "), "{report}");
    assert!(errors[0].line > opened, "{report}");
    let help = errors[0].help.as_deref().unwrap_or_default();
    assert!(
        help.contains(&format!("`[` opened at line {opened}, column 11")),
        "{report}"
    );
}

#[test]
fn email_needs_smtp() {
    let source = r#"[[users]]
id = "ana"
contact = [{ id = "mail", kind = "email", address = "ana@acme.example" }]

[[channels]]
id = "team-mail"
kind = "email"
to = ["team@acme.example"]
"#;
    let errors = errors_of(source);
    assert_eq!(
        errors.len(),
        2,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    find(&errors, 3, 27, "uses email, but there is no [smtp] section");
    find(
        &errors,
        7,
        1,
        "[[channels]] \"team-mail\" uses email, but there is no [smtp] section",
    );
    let with_smtp =
        format!("[smtp]\nhost = \"localhost\"\nfrom = \"tocsin@acme.example\"\n{source}");
    let config = parse(&with_smtp, "tocsin.toml", &no_env).unwrap();
    assert_eq!(config.smtp.unwrap().security, SmtpSecurity::StartTls);
}

#[test]
fn an_smtp_ca_file_needs_tls_and_is_resolved_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relay-ca.pem"), "not checked here").unwrap();
    let with = |security: &str, ca: &str| {
        format!(
            "[smtp]\nhost = \"relay.acme.example\"\nfrom = \"tocsin@acme.example\"\n\
             security = \"{security}\"\nca_file = \"{ca}\"\n"
        )
    };
    let path = dir.path().join("tocsin.toml");
    std::fs::write(&path, with("starttls", "relay-ca.pem")).unwrap();
    let config = crate::load_with_env(&path, &no_env).unwrap();
    let smtp = config.smtp.unwrap();
    assert_eq!(smtp.ca_file, Some(dir.path().join("relay-ca.pem")));

    std::fs::write(&path, with("tls", "missing.pem")).unwrap();
    let errors = crate::load_with_env(&path, &no_env).unwrap_err().errors;
    find(&errors, 5, 11, "cannot read the TLS CA file of [smtp]");

    let errors = errors_of(&with("none", "relay-ca.pem"));
    find(&errors, 5, 11, "`ca_file` in [smtp] only applies with");
}

#[test]
fn a_slack_contact_method_needs_a_url_and_takes_nothing_else() {
    let source = r#"[[users]]
id = "ana"
contact = [{ id = "chat", kind = "slack", url = "${ANA_SLACK}" }]
"#;
    let env = |name: &str| (name == "ANA_SLACK").then(|| SLACK_URL.to_owned());
    let config = parse(source, "tocsin.toml", &env).unwrap();
    let method = &config.users[0].contact[0];
    assert_eq!(method.kind.name(), "slack");
    let ContactKind::Slack { url } = &method.kind else {
        panic!("{:?}", method.kind);
    };
    assert_eq!(url.expose(), SLACK_URL);
    assert!(!format!("{config:?}").contains(SLACK_URL));

    let errors = errors_of(
        r#"[[users]]
id = "ana"
contact = [{ id = "chat", kind = "slack", secret = "x" }]
"#,
    );
    assert!(
        errors.iter().any(|error| error.message.contains("`url`")),
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    assert!(
        errors.iter().any(|error| error.message.contains("secret")),
        "{}",
        ConfigErrors { errors }
    );
}

// ---------------------------------------------------------------- secrets

#[test]
fn secrets_never_appear_in_debug_output() {
    let mut config = parse(EXAMPLE, "example.toml", &example_env).unwrap();
    config.server.database = Some(Secret::new("postgres://tocsin:db-password@db/tocsin"));
    let debug = format!("{config:?} {config:#?}");
    for secret in [
        ROUTING_KEY,
        SLACK_URL,
        AUDIT_SECRET,
        GRAFANA_SECRET,
        PING_KEY,
        "db-password",
        "ntfy.acme.example",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    assert!(debug.contains("<redacted>"));
    // Non-secret values are still there.
    assert!(debug.contains("checkout-api") && debug.contains("Europe/Lisbon"));
}

// ---------------------------------------------------------------- load and overrides

#[test]
fn load_resolves_tls_paths_and_checks_the_files() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir(directory.path().join("tls")).unwrap();
    std::fs::write(directory.path().join("tls/cert.pem"), "cert").unwrap();
    let path = directory.path().join("tocsin.toml");
    std::fs::write(
        &path,
        "[server]\ntls = { certificate = \"tls/cert.pem\", private_key = \"tls/missing.pem\" }\n",
    )
    .unwrap();
    let errors = load_with_env(&path, &no_env).unwrap_err().errors;
    assert_eq!(
        errors.len(),
        1,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    assert_eq!(errors[0].file, path.display().to_string());
    assert_eq!((errors[0].line, errors[0].column), (2, 53));
    assert!(errors[0]
        .message
        .starts_with("cannot read the TLS private key"));

    std::fs::write(directory.path().join("tls/missing.pem"), "key").unwrap();
    let config = load_with_env(&path, &no_env).unwrap();
    let tls = config.server.tls.unwrap();
    assert_eq!(tls.certificate, directory.path().join("tls/cert.pem"));
    assert_eq!(tls.private_key, directory.path().join("tls/missing.pem"));

    // `parse` has no directory to check against and leaves paths as written.
    let source = std::fs::read_to_string(&path).unwrap();
    let parsed = parse(&source, "tocsin.toml", &no_env).unwrap();
    assert_eq!(
        parsed.server.tls.unwrap().certificate,
        std::path::Path::new("tls/cert.pem")
    );
}

#[test]
fn load_reports_an_unreadable_file() {
    let errors =
        load_with_env(std::path::Path::new("/nonexistent/tocsin.toml"), &no_env).unwrap_err();
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(errors.errors[0].line, 0);
    assert!(errors
        .to_string()
        .starts_with("/nonexistent/tocsin.toml: error: cannot read the config file"));
}

#[test]
fn environment_overrides_win_over_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("tocsin.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    let env = |name: &str| match name {
        "TOCSIN_SERVER_LISTEN" => Some("0.0.0.0:9090".to_owned()),
        "TOCSIN_SERVER_DATABASE" => Some("postgres://tocsin@db/tocsin".to_owned()),
        "TOCSIN_LOG_FORMAT" => Some("json".to_owned()),
        _ => None,
    };
    let config = load_with_env(&path, &env).unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:9090".parse().unwrap());
    // The public URL was the default, so it follows the listen address.
    assert_eq!(config.server.public_url, "http://0.0.0.0:9090");
    assert_eq!(
        config.server.database.unwrap().expose(),
        "postgres://tocsin@db/tocsin"
    );
    assert_eq!(config.server.log_format, LogFormat::Json);

    let mut config = parse(
        "[server]\npublic_url = \"https://tocsin.acme.example/\"\n",
        "tocsin.toml",
        &no_env,
    )
    .unwrap();
    assert_eq!(config.server.public_url, "https://tocsin.acme.example");
    apply_overrides(&mut config, &|name| {
        (name == "TOCSIN_SERVER_LISTEN").then(|| "0.0.0.0:1".to_owned())
    })
    .unwrap();
    assert_eq!(
        config.server.public_url, "https://tocsin.acme.example",
        "an explicit public URL stays"
    );
}

#[test]
fn bad_overrides_name_the_variable_and_change_nothing() {
    let mut config = parse("", "tocsin.toml", &no_env).unwrap();
    let before = config.clone();
    let env = |name: &str| match name {
        "TOCSIN_SERVER_LISTEN" => Some("localhost".to_owned()),
        "TOCSIN_SERVER_PUBLIC_URL" => Some("https://ok.example".to_owned()),
        "TOCSIN_SERVER_DATABASE" => Some("mysql://secret-password@db".to_owned()),
        "TOCSIN_LOG_FORMAT" => Some("xml".to_owned()),
        _ => None,
    };
    let errors = apply_overrides(&mut config, &env).unwrap_err();
    let files: Vec<&str> = errors
        .errors
        .iter()
        .map(|error| error.file.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "TOCSIN_SERVER_LISTEN",
            "TOCSIN_SERVER_DATABASE",
            "TOCSIN_LOG_FORMAT"
        ]
    );
    assert!(errors.errors[0]
        .message
        .contains("environment variable `TOCSIN_SERVER_LISTEN`"));
    assert!(!errors.to_string().contains("secret-password"));
    assert_eq!(config, before);
}

// ---------------------------------------------------------------- robustness

mod properties {
    use proptest::prelude::*;

    use super::{example_env, no_env};
    use crate::{parse, EXAMPLE};

    /// An edit of the example: delete, insert or replace one character.
    #[derive(Debug, Clone)]
    enum Edit {
        Delete(usize),
        Insert(usize, char),
        Replace(usize, char),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let characters = prop_oneof![
            Just('"'),
            Just('['),
            Just(']'),
            Just('{'),
            Just('}'),
            Just('='),
            Just(','),
            Just('\n'),
            Just('$'),
            Just('#'),
            Just(':'),
            Just('-'),
            Just('0'),
            Just('x'),
            Just('é'),
            Just(' '),
            Just('\''),
            Just('\\'),
        ];
        prop_oneof![
            any::<usize>().prop_map(Edit::Delete),
            (any::<usize>(), characters.clone()).prop_map(|(at, c)| Edit::Insert(at, c)),
            (any::<usize>(), characters).prop_map(|(at, c)| Edit::Replace(at, c)),
        ]
    }

    fn apply(source: &str, edits: &[Edit]) -> String {
        let mut characters: Vec<char> = source.chars().collect();
        for edit in edits {
            let length = characters.len().max(1);
            match *edit {
                Edit::Delete(at) if !characters.is_empty() => {
                    characters.remove(at % length);
                }
                Edit::Insert(at, c) => characters.insert(at % (characters.len() + 1), c),
                Edit::Replace(at, c) if !characters.is_empty() => characters[at % length] = c,
                _ => {}
            }
        }
        characters.into_iter().collect()
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(source in any::<String>()) {
            let _ = parse(&source, "fuzz.toml", &no_env);
        }

        #[test]
        fn parse_never_panics_on_toml_like_text(source in "[\\[\\]{}=,\"a-z0-9_.\\n $#:-]{0,200}") {
            let _ = parse(&source, "fuzz.toml", &no_env);
        }

        #[test]
        fn parse_never_panics_on_a_mutated_example(edits in proptest::collection::vec(edit(), 1..8)) {
            let source = apply(EXAMPLE, &edits);
            if let Err(errors) = parse(&source, "example.toml", &example_env) {
                prop_assert!(!errors.errors.is_empty());
                let lines = source.lines().count().max(1);
                for error in &errors.errors {
                    prop_assert!(error.line >= 1 && error.line <= lines + 1, "{}", error);
                    prop_assert!(error.column >= 1, "{}", error);
                }
            }
        }
    }
}

#[test]
fn server_connection_settings_have_defaults_and_are_checked() {
    let config = parse("", "empty.toml", &no_env).unwrap();
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.server.max_connections, None);
    let config = parse(
        "[server]\nheader_read_timeout = \"2s\"\nidle_timeout = \"30s\"\nmax_connections = 500\n",
        "limits.toml",
        &no_env,
    )
    .unwrap();
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(2));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(30));
    assert_eq!(config.server.max_connections, Some(500));
    let errors = errors_of("[server]\nidle_timeout = 30\nmax_connections = 0\n");
    find(&errors, 2, 16, "idle_timeout");
    find(&errors, 3, 19, "max_connections");
}

#[test]
fn active_monitors_read_every_probe_setting() {
    let source = r#"[[services]]
id = "s"

[[monitors]]
id = "web"
service = "s"
kind = "http"
url = "https://web.example/healthz"
method = "PUT"
headers = { "X-Api-Key" = "k-123", Accept = "application/json" }
body = '{"ping":true}'
expect_status = ["200", "3xx"]
expect_body_absent = "error"
expect_json = { path = "checks.0.ok", equals = true }
follow_redirects = false
ca_file = "/etc/tocsin/internal-ca.pem"
confirm = 3
confirm_up = 1
flap_threshold = 10
depends_on = ["db"]

[[monitors]]
id = "db"
service = "s"
kind = "tcp"
address = "db.internal:5432"
tls = true
skip_tls_verify = true

[[monitors]]
id = "dns"
service = "s"
kind = "dns"
name = "web.example"
resolver = "127.0.0.1:5353"
depends_on = ["db"]
"#;
    let config = parse(source, "tocsin.toml", &no_env).expect("valid");
    let web = config.monitor("web").unwrap();
    assert_eq!(web.depends_on, vec!["db".to_owned()]);
    let MonitorKind::Http(http) = &web.kind else {
        panic!("http")
    };
    assert_eq!(http.method, HttpMethod::Put);
    assert_eq!(http.headers.len(), 2);
    assert_eq!(http.headers[0].0, "X-Api-Key");
    assert_eq!(http.headers[0].1.expose(), "k-123");
    assert!(!format!("{http:?}").contains("k-123"));
    assert_eq!(http.body.as_deref(), Some(r#"{"ping":true}"#));
    assert_eq!(http.expect_body_absent.as_deref(), Some("error"));
    assert_eq!(
        http.expect_json,
        Some(ExpectJson {
            path: "checks.0.ok".to_owned(),
            equals: JsonScalar::Boolean(true)
        })
    );
    assert!(!http.follow_redirects);
    assert_eq!(
        http.tls,
        TlsTrust::CaFile("/etc/tocsin/internal-ca.pem".into())
    );
    assert_eq!((http.probe.confirm, http.probe.confirm_up), (3, 1));
    assert_eq!(http.probe.flap_threshold, 10);
    let MonitorKind::Tcp(tcp) = &config.monitor("db").unwrap().kind else {
        panic!("tcp")
    };
    assert!(tcp.tls);
    assert_eq!(tcp.tls_trust, TlsTrust::SkipVerify);
    assert_eq!(tcp.probe.confirm_up, Probe::DEFAULT_CONFIRM);
    let MonitorKind::Dns(dns) = &config.monitor("dns").unwrap().kind else {
        panic!("dns")
    };
    assert_eq!(dns.resolver, Some("127.0.0.1:5353".parse().unwrap()));
}

#[test]
fn monitor_mistakes_are_reported_where_they_are() {
    let source = r#"[[services]]
id = "s"

[[monitors]]
id = "a"
service = "s"
kind = "tcp"
address = "a:1"
depends_on = ["c"]

[[monitors]]
id = "b"
service = "s"
kind = "tcp"
address = "b:1"
depends_on = ["a"]

[[monitors]]
id = "c"
service = "s"
kind = "tcp"
address = "c:1"
depends_on = ["b", "nope"]
ca_file = "ca.pem"

[[monitors]]
id = "web"
service = "s"
kind = "http"
url = "http://web.example/"
headers = { "bad header" = "x" }
expect_json = { path = "a..b" }
skip_tls_verify = true

[[monitors]]
id = "dns"
service = "s"
kind = "dns"
name = "web.example"
resolver = "dns.example"
"#;
    let errors = errors_of(source);
    find(&errors, 9, 1, "forms a cycle: a -> c -> b -> a");
    find(&errors, 23, 20, "refers to monitor `nope`");
    find(&errors, 32, 24, "has an empty segment");
    find(
        &errors,
        24,
        1,
        "`ca_file` in [[monitors]] \"c\" only applies with `tls = true`",
    );
    find(&errors, 31, 13, "`bad header`");
    find(&errors, 32, 15, "missing required field `equals`");
    find(
        &errors,
        33,
        1,
        "`skip_tls_verify` in [[monitors]] \"web\" needs an https:// url",
    );
    find(&errors, 40, 12, "`dns.example` is not an IP address");
    assert_eq!(
        errors.len(),
        8,
        "{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
}

#[test]
fn heartbeats_take_post_only_and_rate_rules_a_baseline() {
    let source = r#"
[[services]]
id = "s"

[[monitors]]
id = "job"
service = "s"
kind = "heartbeat"
period = "1h"
ping_key = "job-ping-key-0000001"
post_only = true

[[rules]]
id = "storm"
service = "s"
kind = "rate"
above = 10
window = "5m"
baseline = 4

[[rules]]
id = "storm-day"
service = "s"
kind = "rate"
above = 10
window = "5m"
baseline = 4
baseline_window = "1d"
"#;
    let config = parse(source, "tocsin.toml", &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    let MonitorKind::Heartbeat(check) = &config.monitors[0].kind else {
        panic!("a heartbeat");
    };
    assert!(check.post_only);
    assert_eq!(
        config.rules[0].kind,
        RuleKind::Rate {
            above: 10,
            baseline: Some(RateBaseline {
                factor: 4,
                window: std::time::Duration::from_secs(3600),
            }),
        }
    );
    assert!(matches!(
        config.rules[1].kind,
        RuleKind::Rate { baseline: Some(RateBaseline { window, .. }), .. } if window.as_secs() == 86_400
    ));

    let errors = errors_of(
        "[[services]]\nid = \"s\"\n\n[[rules]]\nid = \"r\"\nservice = \"s\"\nkind = \"rate\"\nabove = 1\nwindow = \"5m\"\nbaseline = 3\nbaseline_window = \"6m\"\n",
    );
    find(&errors, 11, 1, "must be at least twice `window`");
    let errors = errors_of(
        "[[services]]\nid = \"s\"\n\n[[rules]]\nid = \"r\"\nservice = \"s\"\nkind = \"absence\"\nwindow = \"5m\"\nbaseline = 3\n",
    );
    assert!(
        errors
            .iter()
            .any(|error| error.message.contains("baseline")),
        "{errors:?}"
    );
    let errors = errors_of(
        "[[services]]\nid = \"s\"\n\n[[monitors]]\nid = \"m\"\nservice = \"s\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_key = \"job-ping-key-0000001\"\npost_only = \"yes\"\n",
    );
    assert!(
        errors
            .iter()
            .any(|error| error.message.contains("post_only")),
        "{errors:?}"
    );
}

#[test]
fn services_declare_what_they_depend_on_without_cycles() {
    let chain = r#"[[services]]
id = "a"

[[services]]
id = "b"
depends_on = ["a"]

[[services]]
id = "c"
depends_on = ["b"]
"#;
    let config = parse(chain, "tocsin.toml", &no_env).expect("valid");
    assert_eq!(config.services[2].depends_on, vec!["b".to_owned()]);
    assert!(config.services[0].depends_on.is_empty());

    let source = r#"[[services]]
id = "a"
depends_on = ["c"]

[[services]]
id = "b"
depends_on = ["a"]

[[services]]
id = "c"
depends_on = ["b", "nope"]

[[services]]
id = "d"
depends_on = ["d"]
"#;
    let errors = errors_of(source);
    find(&errors, 3, 1, "forms a cycle: a -> c -> b -> a");
    find(&errors, 11, 20, "refers to service `nope`");
    find(&errors, 15, 1, "depends on itself");
}

#[test]
fn services_may_set_an_acknowledgement_timeout_and_levels_may_take_turns() {
    let source = format!(
        r#"{PEOPLE}
[[escalation_policies]]
id = "turns"
levels = [{{ targets = ["team:payments"], escalate_after_minutes = 5, round_robin = true }}, {{ targets = ["user:ana"] }}]

[[services]]
id = "api"
escalation_policy = "turns"
ack_timeout_minutes = 45

[[services]]
id = "web"
"#
    );
    let config = parse(&source, "tocsin.toml", &no_env).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.services[0].ack_timeout_minutes, Some(45));
    assert_eq!(config.services[1].ack_timeout_minutes, None, "optional");
    let policy = config.escalation_policy("turns").expect("policy");
    assert!(policy.levels[0].round_robin);
    assert!(!policy.levels[1].round_robin, "off unless asked");

    let source = format!(
        r#"{PEOPLE}
[[services]]
id = "zero"
ack_timeout_minutes = 0

[[services]]
id = "text"
ack_timeout_minutes = "30"

[[escalation_policies]]
id = "odd"
levels = [{{ targets = ["user:ana"], round_robin = "yes" }}]
"#
    );
    let base = PEOPLE.lines().count();
    let errors = errors_of(&source);
    let zero = find(
        &errors,
        base + 4,
        23,
        "`ack_timeout_minutes` in [[services]] \"zero\" is 0, which is out of range",
    );
    assert_eq!(zero.help.as_deref(), Some("use a value from 1 to 10080"));
    find(&errors, base + 8, 23, "ack_timeout_minutes");
    find(&errors, base + 12, 51, "round_robin");
}

// ---------------------------------------------------------------- [watchdog]

#[test]
fn the_watchdog_takes_its_url_from_the_environment_and_pings_every_minute_by_default() {
    let env = |name: &str| {
        (name == "WATCHDOG_URL").then(|| "https://hc-ping.example/0b7c4a2e".to_owned())
    };
    let config = parse(
        "[watchdog]\nurl = \"${WATCHDOG_URL}\"\n",
        "tocsin.toml",
        &env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    let watchdog = config.watchdog.expect("a watchdog");
    assert_eq!(watchdog.url.expose(), "https://hc-ping.example/0b7c4a2e");
    assert_eq!(watchdog.every, Duration::from_secs(60));
    assert!(
        !format!("{watchdog:?}").contains("0b7c4a2e"),
        "the URL is a secret"
    );
    let config = parse(
        "[watchdog]\nurl = \"http://127.0.0.1:9/ping\"\nevery = \"30s\"\n",
        "tocsin.toml",
        &no_env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(
        config.watchdog.expect("a watchdog").every,
        Duration::from_secs(30)
    );
    assert!(parse("", "tocsin.toml", &no_env)
        .expect("empty")
        .watchdog
        .is_none());
}

#[test]
fn watchdog_mistakes_are_reported_where_they_are() {
    let errors = errors_of("[watchdog]\nevery = \"2h\"\nsecret = 1\n");
    find(&errors, 1, 1, "`url`");
    find(&errors, 2, 9, "out of range");
    find(&errors, 3, 1, "secret");
    let errors = errors_of("[watchdog]\nurl = \"ftp://example.com/x\"\nevery = 60\n");
    find(&errors, 2, 7, "invalid `url` in [watchdog]");
    find(&errors, 3, 9, "duration");
}

// ---------------------------------------------------------------- status page

#[test]
fn a_status_page_takes_a_logo_links_and_a_time_zone() {
    let source = "[status_page]\ntitle = \"Acme status\"\nlogo_url = \"https://acme.example/logo.svg\"\n\
        time_zone = \"europe/lisbon\"\nlinks = [\n  { label = \"Home\", url = \"https://acme.example\" },\n  \
        { label = \"Support\", url = \"https://acme.example/support\" },\n]\n";
    let config = parse(source, "tocsin.toml", &no_env).unwrap();
    let page = config.status_page.unwrap();
    assert_eq!(
        page.logo_url.as_deref(),
        Some("https://acme.example/logo.svg")
    );
    assert_eq!(page.time_zone, "Europe/Lisbon");
    assert_eq!(
        page.links,
        [
            StatusLink {
                label: "Home".to_owned(),
                url: "https://acme.example".to_owned()
            },
            StatusLink {
                label: "Support".to_owned(),
                url: "https://acme.example/support".to_owned()
            },
        ]
    );
    let plain = parse("[status_page]\ntitle = \"Acme\"\n", "tocsin.toml", &no_env).unwrap();
    let plain = plain.status_page.unwrap();
    assert_eq!(
        (plain.time_zone.as_str(), plain.logo_url, plain.links.len()),
        ("UTC", None, 0)
    );
}

#[test]
fn status_page_links_logo_and_zone_are_checked() {
    let source = "[status_page]\ntitle = \"Acme\"\nlogo_url = \"logo.svg\"\ntime_zone = \"Mars/Olympus\"\n\
        links = [{ label = \"Home\", url = \"ftp://acme.example\" }, { url = \"https://a.example\", colour = 1 }]\n";
    let errors = errors_of(source);
    find(&errors, 3, 12, "invalid `logo_url` in [status_page]");
    find(&errors, 4, 13, "unknown time zone `Mars/Olympus`");
    find(&errors, 5, 34, "invalid `url` in link 1 of [status_page]");
    find(
        &errors,
        5,
        87,
        "unknown field `colour` in link 2 of [status_page]",
    );
    find(
        &errors,
        5,
        58,
        "missing required field `label` in link 2 of [status_page]",
    );
    assert_eq!(errors.len(), 5, "{errors:?}");
}
