//! Notifications about no incident, on a real SQLite store with a manual clock: gap notices a
//! day ahead (once per gap and person, however often the scan runs), test pages, and the
//! pipeline health the watchdog asks about.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::{self, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tocsin_core::{
    EscalationLevel, EscalationPolicy, Layer, Restriction, Schedule, ServiceId, Target,
};
use tocsin_engine::oncall::{ScheduleCatalog, ScheduleEntry, UserEntry};
use tocsin_engine::paging::{
    ContactRef, NotifyStep, PagedUser, PagingDirectory, ScheduleEntry as PagingSchedule,
};
use tocsin_engine::{
    Catalog, Clock, DueRunnerSettings, Engine, IngestSettings, Ingestor, ManualClock, Metrics,
    TestPageError,
};
use tocsin_store::due::ClaimerId;
use tocsin_store::outbox::{
    NewNotification, NotificationClaim, NotificationRow, Recipient, GAP_NOTICE_KIND, TEST_KIND,
};
use tocsin_store::Store;
use tocsin_store_sqlite::SqliteStore;

use super::TestDir;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a time")
}

/// `primary` (Berlin): ana and ben, weekdays 09:00-17:00 local. `secondary` (UTC): chen,
/// Fridays 18:00 to Saturday 02:00.
fn schedules() -> Vec<Schedule> {
    let weekdays = vec![
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];
    vec![
        Schedule {
            id: "primary".to_owned(),
            name: "Primary".to_owned(),
            time_zone: "Europe/Berlin".to_owned(),
            layers: vec![Layer {
                members: vec!["ana".to_owned(), "ben".to_owned()],
                rotation: Duration::from_secs(7 * 86_400),
                handoff: civil::date(2026, 11, 2).at(9, 0, 0, 0),
                only: vec![Restriction {
                    days: weekdays,
                    start: civil::time(9, 0, 0, 0),
                    end: civil::time(17, 0, 0, 0),
                }],
            }],
        },
        Schedule {
            id: "secondary".to_owned(),
            name: "Secondary".to_owned(),
            time_zone: "UTC".to_owned(),
            layers: vec![Layer {
                members: vec!["chen".to_owned()],
                rotation: Duration::from_secs(7 * 86_400),
                handoff: civil::date(2026, 11, 2).at(0, 0, 0, 0),
                only: vec![Restriction {
                    days: vec![Weekday::Friday],
                    start: civil::time(18, 0, 0, 0),
                    end: civil::time(2, 0, 0, 0),
                }],
            }],
        },
    ]
}

fn zone(schedule: &Schedule) -> TimeZone {
    TimeZone::get(&schedule.time_zone).expect("zone")
}

fn paged(id: &str, bot: bool) -> PagedUser {
    PagedUser {
        id: id.to_owned(),
        name: format!("{id} (name)"),
        bot,
        notify: if bot {
            Vec::new()
        } else {
            vec![
                NotifyStep {
                    after_minutes: 0,
                    contact: "push".to_owned(),
                    method: "webhook".to_owned(),
                },
                NotifyStep {
                    after_minutes: 5,
                    contact: "mail".to_owned(),
                    method: "email".to_owned(),
                },
            ]
        },
    }
}

/// Service `api`, owned by team `payments` (ana, ben and a bot), escalates to `primary`;
/// nothing targets `secondary`. Dora has no contact methods.
fn directory() -> PagingDirectory {
    let users: HashMap<_, _> = [
        ("ana", false),
        ("ben", false),
        ("chen", false),
        ("dora", false),
        ("bot", true),
    ]
    .into_iter()
    .map(|(id, bot)| (id.to_owned(), paged(id, bot)))
    .collect();
    let contacts = ["ana", "ben", "chen"]
        .into_iter()
        .map(|id| {
            (
                id.to_owned(),
                vec![
                    ContactRef {
                        id: "push".to_owned(),
                        method: "webhook".to_owned(),
                    },
                    ContactRef {
                        id: "mail".to_owned(),
                        method: "email".to_owned(),
                    },
                ],
            )
        })
        .collect();
    PagingDirectory {
        users,
        contacts,
        teams: HashMap::from([(
            "payments".to_owned(),
            vec!["ben".to_owned(), "ana".to_owned(), "bot".to_owned()],
        )]),
        schedules: schedules()
            .into_iter()
            .map(|schedule| {
                let time_zone = zone(&schedule);
                (
                    schedule.id.clone(),
                    PagingSchedule {
                        schedule,
                        time_zone,
                    },
                )
            })
            .collect(),
        policies: HashMap::from([(
            "api".to_owned(),
            EscalationPolicy {
                id: "api".to_owned(),
                name: "API".to_owned(),
                repeat: 0,
                levels: vec![EscalationLevel {
                    targets: vec![Target::Schedule("primary".to_owned())],
                    escalate_after_minutes: None,
                    round_robin: false,
                }],
            },
        )]),
        service_policies: HashMap::from([(ServiceId::new("api"), "api".to_owned())]),
        service_teams: HashMap::from([(ServiceId::new("api"), "payments".to_owned())]),
        ..PagingDirectory::default()
    }
}

async fn engine(clock: Arc<ManualClock>) -> (Arc<Engine>, Arc<dyn Store>, TestDir) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let users = ["ana", "ben", "chen", "dora", "bot"]
        .into_iter()
        .map(|id| UserEntry {
            id: id.to_owned(),
            name: id.to_owned(),
            bot: id == "bot",
        })
        .collect();
    let entries = schedules()
        .into_iter()
        .map(|schedule| ScheduleEntry {
            time_zone: zone(&schedule),
            schedule,
        })
        .collect();
    let catalog = Arc::new(Catalog::with_schedules(
        Vec::new(),
        ScheduleCatalog::new(entries, users),
    ));
    catalog.replace_paging(directory());
    let metrics = Arc::new(Metrics::new());
    let (ingestor, _writer) = Ingestor::start(
        Arc::clone(&store),
        Arc::clone(&catalog),
        Arc::clone(&metrics),
        IngestSettings::default(),
    )
    .expect("ingest writer starts");
    (
        Arc::new(Engine::new(
            Arc::clone(&store),
            catalog,
            ingestor,
            clock,
            metrics,
        )),
        store,
        TestDir(Some(dir)),
    )
}

/// A due-work runner with the handlers the server adds for notices and the watchdog.
fn runner_of(engine: &Arc<Engine>) -> tocsin_engine::DueRunner {
    engine
        .due_runner(settings())
        .with_handler(Arc::new(tocsin_engine::GapNoticeScan::new(Arc::clone(
            engine,
        ))))
        .with_handler(Arc::new(tocsin_engine::WatchdogBeat))
}

fn settings() -> DueRunnerSettings {
    DueRunnerSettings {
        batch: 8,
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(50),
        backoff_base: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
    }
}

/// Claims every notification due at `now` (as a dispatcher would): what was queued since the
/// last call.
async fn queued(store: &dyn Store, now: Timestamp) -> Vec<NotificationRow> {
    let claimer = ClaimerId::parse("test-dispatcher").expect("claimer");
    let mut rows = store
        .claim_notifications(&NotificationClaim {
            claimer: &claimer,
            now,
            claim_until: now
                .checked_add(SignedDuration::from_hours(1000))
                .expect("later"),
            limit: 100,
        })
        .await
        .expect("claim");
    rows.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    rows
}

fn who(rows: &[NotificationRow]) -> Vec<(String, String)> {
    rows.iter()
        .map(|row| match &row.recipient {
            Recipient::User { user, contact } => (user.clone(), contact.clone()),
            Recipient::Channel { channel } => (channel.clone(), String::new()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_a_day_ahead_is_noticed_once_per_person_and_a_later_one_not_yet() {
    // Thursday 21:00 in Berlin. Primary's gap of the night is under way; its next one starts
    // on Friday at 17:00 Berlin, 20 h ahead. Secondary's next gap starts on Saturday at
    // 02:00 UTC, 30 h ahead.
    let start = at("2026-12-03T20:00:00Z");
    let clock = Arc::new(ManualClock::new(start));
    let (engine, store, _dir) = engine(Arc::clone(&clock)).await;
    let runner = runner_of(&engine);
    runner.schedule_recurring().await.expect("schedule");
    runner.run_due_once().await.expect("scan");
    let rows = queued(store.as_ref(), clock.now()).await;
    assert_eq!(
        who(&rows),
        [
            ("ana".to_owned(), "push".to_owned()),
            ("ben".to_owned(), "push".to_owned())
        ],
        "the team of the service that escalates to primary, not the bot, each once by \
         their first notify rule"
    );
    for row in &rows {
        assert_eq!(row.kind, GAP_NOTICE_KIND);
        assert_eq!(row.incident, None);
        assert_eq!(row.method, "webhook");
        assert_eq!(row.payload["schedule"], "primary");
        assert_eq!(row.payload["start"], "2026-12-04T16:00:00Z");
        assert_eq!(row.payload["end"], "2026-12-07T08:00:00Z");
        assert_eq!(
            row.payload["message"],
            "Nobody is on call for Primary from Fri 2026-12-04 17:00 CET to Mon 2026-12-07 \
             09:00 CET (2 days 16 h); add an override: tocsin override create --schedule \
             primary --user USER --start 2026-12-04T16:00:00Z --end 2026-12-07T08:00:00Z"
        );
    }

    // An hour later the scan runs again (and once more, as a second replica would): nothing
    // new for primary, and secondary's gap is still 29 h ahead.
    clock.advance(SignedDuration::from_hours(1));
    runner.run_due_once().await.expect("scan");
    let second = runner_of(&engine);
    let scan = tocsin_engine::GapNoticeScan::new(Arc::clone(&engine));
    let again = scan.notices(clock.now()).await.expect("notices");
    assert_eq!(again.len(), 2, "the scan still sees primary's gap");
    assert!(store
        .enqueue_notices(&again, clock.now())
        .await
        .expect("queue again")
        .is_empty());
    second.run_due_once().await.expect("scan");
    assert!(queued(store.as_ref(), clock.now()).await.is_empty());

    // Ten hours on, secondary's gap is 19 h ahead: nobody's team targets it, so its layer's
    // member is told.
    clock.advance(SignedDuration::from_hours(10));
    runner.run_due_once().await.expect("scan");
    let rows = queued(store.as_ref(), clock.now()).await;
    assert_eq!(who(&rows), [("chen".to_owned(), "push".to_owned())]);
    assert_eq!(rows[0].payload["start"], "2026-12-05T02:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_that_closes_the_gap_before_the_scan_leaves_nobody_to_tell() {
    let start = at("2026-12-03T20:00:00Z");
    let clock = Arc::new(ManualClock::new(start));
    let (engine, store, _dir) = engine(Arc::clone(&clock)).await;
    engine
        .create_override(
            &tocsin_engine::oncall::OverrideRequest {
                schedule: "primary".to_owned(),
                start: at("2026-12-04T16:00:00Z"),
                end: at("2026-12-07T08:00:00Z"),
                user: "ana".to_owned(),
                replaces: None,
            },
            &tocsin_core::Actor::token("ops"),
        )
        .await
        .expect("override");
    let runner = runner_of(&engine);
    runner.schedule_recurring().await.expect("schedule");
    runner.run_due_once().await.expect("scan");
    assert!(queued(store.as_ref(), clock.now()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_page_queues_one_row_per_contact_method_and_refuses_whom_it_cannot_page() {
    let clock = Arc::new(ManualClock::new(at("2026-12-03T20:00:00Z")));
    let (engine, store, _dir) = engine(Arc::clone(&clock)).await;
    let rows = engine.test_page("ana").await.expect("test page");
    assert_eq!(
        who(&rows),
        [
            ("ana".to_owned(), "push".to_owned()),
            ("ana".to_owned(), "mail".to_owned())
        ]
    );
    for row in &rows {
        assert_eq!(row.kind, TEST_KIND);
        assert_eq!(row.incident, None);
        assert_eq!(row.next_attempt_at, clock.now());
        assert_eq!(row.payload["name"], "ana (name)");
    }
    assert_eq!(
        engine.notification(rows[1].id).await.expect("read").method,
        "email"
    );
    // A second test is a test of its own.
    assert_eq!(engine.test_page("ana").await.expect("again").len(), 2);
    assert!(matches!(
        engine.test_page("nobody").await,
        Err(TestPageError::UnknownUser(_))
    ));
    assert!(matches!(
        engine.test_page("bot").await,
        Err(TestPageError::Bot(_))
    ));
    assert!(matches!(
        engine.test_page("dora").await,
        Err(TestPageError::NoContact(_))
    ));
    assert_eq!(queued(store.as_ref(), clock.now()).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_is_unhealthy_while_due_work_lags_the_outbox_is_stuck_or_the_store_is_gone() {
    let clock = Arc::new(ManualClock::new(at("2026-12-03T20:00:00Z")));
    let (engine, store, _dir) = engine(Arc::clone(&clock)).await;
    // Nobody to tell of gaps: the only notification in the outbox is the one below.
    engine.catalog().replace_paging(PagingDirectory::default());
    let runner = runner_of(&engine);
    runner.schedule_recurring().await.expect("schedule");
    runner.run_due_once().await.expect("run");
    assert!(engine.pipeline_health().await.is_healthy());

    // The runner stops running: within a minute it is still fine, after it is lagging.
    clock.advance(SignedDuration::from_secs(60));
    assert!(engine.pipeline_health().await.is_healthy());
    clock.advance(SignedDuration::from_secs(30));
    let health = engine.pipeline_health().await;
    assert_eq!(health.problems.len(), 1, "{health}");
    assert!(
        health.problems[0].starts_with("due work is lagging"),
        "{health}"
    );
    runner.run_due_once().await.expect("run");
    assert!(engine.pipeline_health().await.is_healthy());

    // A notification nobody sends: fine for five minutes, then the outbox is stuck.
    let notice = NewNotification {
        incident: None,
        recipient: Recipient::User {
            user: "ana".to_owned(),
            contact: "push".to_owned(),
        },
        method: "webhook".to_owned(),
        kind: TEST_KIND.to_owned(),
        payload: serde_json::json!({"name": "ana", "contact": "push"}),
        idempotency_key: "stuck".to_owned(),
        not_before: clock.now(),
    };
    store
        .enqueue_notices(&[notice], clock.now())
        .await
        .expect("queue");
    for _ in 0..10 {
        clock.advance(SignedDuration::from_secs(30));
        runner.run_due_once().await.expect("run");
        assert!(engine.pipeline_health().await.is_healthy());
    }
    clock.advance(SignedDuration::from_secs(30));
    runner.run_due_once().await.expect("run");
    let health = engine.pipeline_health().await;
    assert_eq!(health.problems.len(), 1, "{health}");
    assert!(
        health.problems[0].starts_with("the outbox is not draining"),
        "{health}"
    );
    assert_eq!(queued(store.as_ref(), clock.now()).await.len(), 1);
    let claimed_long_ago = engine.pipeline_health().await;
    assert!(
        !claimed_long_ago.is_healthy(),
        "a notification being sent is still waiting"
    );

    // The store goes away: nothing can be written.
    store.close().await;
    let health = engine.pipeline_health().await;
    assert!(
        health.problems[0].starts_with("the store does not take writes"),
        "{health}"
    );
}
