//! Escalation as due work, with a manual clock: level 1 at once, level 2 after its timeout,
//! an acknowledgement stops everything, a manual escalation pages the next level now; and two
//! engines on one database (a SQLite file, or PostgreSQL when `TOCSIN_TEST_DATABASE_URL` is
//! set) never page a step twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tocsin_core::{
    Actor, Command, EscalationLevel, EscalationPolicy, IncidentNumber, ServiceId, Target,
    TimelineKind,
};
use tocsin_engine::paging::{NotifyStep, PagedUser, PagingDirectory, ReassignRefusal};
use tocsin_engine::{Clock, DueRunnerSettings, Engine, IngestSettings, ManualClock, ReassignError};
use tocsin_store::outbox::{NotificationRow, NotificationState, Recipient};
use tocsin_store::{PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

use super::trigger;

fn settings() -> DueRunnerSettings {
    DueRunnerSettings {
        batch: 8,
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(50),
        backoff_base: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
    }
}

fn user(id: &str) -> PagedUser {
    PagedUser {
        id: id.to_owned(),
        name: id.to_owned(),
        bot: false,
        notify: vec![NotifyStep {
            after_minutes: 0,
            contact: "mail".to_owned(),
            method: "email".to_owned(),
        }],
    }
}

/// Service `api` escalates to ana, then (after 5 minutes) to an empty schedule, then ben.
fn directory() -> PagingDirectory {
    let users: HashMap<_, _> = ["ana", "ben"]
        .into_iter()
        .map(|id| (id.to_owned(), user(id)))
        .collect();
    let policy = EscalationPolicy {
        id: "api".to_owned(),
        name: "API".to_owned(),
        repeat: 0,
        levels: vec![
            EscalationLevel {
                targets: vec![Target::User("ana".to_owned())],
                escalate_after_minutes: Some(5),
                round_robin: false,
            },
            EscalationLevel {
                targets: vec![Target::Schedule("nights".to_owned())],
                escalate_after_minutes: Some(5),
                round_robin: false,
            },
            EscalationLevel {
                targets: vec![Target::User("ben".to_owned())],
                escalate_after_minutes: None,
                round_robin: false,
            },
        ],
    };
    PagingDirectory {
        users,
        policies: HashMap::from([("api".to_owned(), policy)]),
        service_policies: HashMap::from([(ServiceId::new("api"), "api".to_owned())]),
        ..PagingDirectory::default()
    }
}

/// A fresh SQLite store (in the returned directory) and a manual clock at 08:46 UTC.
async fn on_a_sqlite_file() -> (
    tempfile::TempDir,
    Timestamp,
    Arc<ManualClock>,
    Arc<dyn Store>,
) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let start: Timestamp = "2026-11-22T08:46:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    (dir, start, clock, store)
}

fn engine_on(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> Arc<Engine> {
    let engine = super::engine_with(store, clock, IngestSettings::default());
    engine.catalog().replace_paging(directory());
    Arc::new(engine)
}

fn paged(rows: &[NotificationRow]) -> Vec<String> {
    rows.iter()
        .map(|row| match &row.recipient {
            Recipient::User { user, .. } => user.clone(),
            Recipient::Channel { channel } => channel.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_climbs_on_the_clock_and_an_acknowledgement_stops_it() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let start: Timestamp = "2026-11-22T08:46:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let engine = engine_on(Arc::clone(&store), Arc::clone(&clock));
    let runner = engine.due_runner(settings());
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    let number = IncidentNumber(1);

    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    let rows = store.notifications(number, 50).await.expect("rows");
    assert_eq!(paged(&rows), ["ana"], "level 1 at once");
    assert_eq!(rows[0].next_attempt_at, start);

    clock.advance(SignedDuration::from_secs(4 * 60 + 59));
    assert_eq!(runner.run_due_once().await.expect("run").ran, 0, "not yet");
    clock.advance(SignedDuration::from_secs(1));
    // Level 2 resolves to nobody: skipped, and level 3 is due at once (the next poll).
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    assert_eq!(
        paged(&store.notifications(number, 50).await.expect("rows")),
        ["ana"]
    );
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    let rows = store.notifications(number, 50).await.expect("rows");
    assert_eq!(paged(&rows), ["ana", "ben"]);
    let timeline = engine
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    let kinds: Vec<_> = timeline.items.iter().map(|entry| entry.kind()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == TimelineKind::EscalationNotified)
            .count(),
        2
    );
    let skipped = timeline
        .items
        .iter()
        .find(|entry| entry.kind() == TimelineKind::EscalationSkipped)
        .expect("the empty level is on the timeline");
    assert_eq!(skipped.at, start + SignedDuration::from_secs(300));

    // A manual escalation past the last level pages it again, at once.
    engine
        .command(number, &Command::Escalate, &Actor::token("ana"))
        .await
        .expect("escalate");
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    // Ben's first page is still pending: the repeat collapses into it.
    assert_eq!(
        paged(&store.notifications(number, 50).await.expect("rows")),
        ["ana", "ben"]
    );

    engine
        .command(number, &Command::Acknowledge, &Actor::token("ben"))
        .await
        .expect("acknowledge");
    let states: Vec<_> = store
        .notifications(number, 50)
        .await
        .expect("rows")
        .iter()
        .map(|row| row.state)
        .collect();
    assert_eq!(
        states,
        [NotificationState::Cancelled, NotificationState::Cancelled],
        "nothing queued is sent after the acknowledgement"
    );
    clock.advance(SignedDuration::from_secs(24 * 3600 * 365 * 20));
    assert_eq!(
        runner.run_due_once().await.expect("run").ran,
        0,
        "no step is left"
    );
}

/// Two engines on one database run the same steps at once; every step pages once.
async fn two_engines_page_each_step_once(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let start: Timestamp = "2026-11-22T08:46:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let one = engine_on(Arc::clone(&first), Arc::clone(&clock));
    let two = engine_on(second, Arc::clone(&clock));
    let incidents = 20;
    for n in 0..incidents {
        one.submit(vec![trigger(&format!("key-{n}"), clock.now())])
            .await
            .expect("submit");
    }
    let (runner_one, runner_two) = (one.due_runner(settings()), two.due_runner(settings()));
    for _ in 0..3 {
        let (a, b) = tokio::join!(runner_one.run_due_once(), runner_two.run_due_once());
        a.expect("run one");
        b.expect("run two");
        clock.advance(SignedDuration::from_secs(300));
    }
    for n in 1..=incidents {
        let rows = first
            .notifications(IncidentNumber(n), 50)
            .await
            .expect("rows");
        assert_eq!(paged(&rows), ["ana", "ben"], "incident {n}");
        let timeline = one
            .timeline(IncidentNumber(n), PageRequest::default())
            .await
            .expect("timeline");
        let steps = timeline
            .items
            .iter()
            .filter(|entry| {
                matches!(
                    entry.kind(),
                    TimelineKind::EscalationNotified | TimelineKind::EscalationSkipped
                )
            })
            .count();
        assert_eq!(steps, 3, "incident {n}: each step once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_sqlite_file_page_each_step_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let path = dir.path().join(tocsin_store_sqlite::DATABASE_FILE);
    let first: Arc<dyn Store> = Arc::new(SqliteStore::open_file(&path).await.expect("first"));
    let second: Arc<dyn Store> = Arc::new(SqliteStore::open_file(&path).await.expect("second"));
    two_engines_page_each_step_once(first, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_page_each_step_once() {
    let Some(database) = tocsin_store_postgres::testing::TestDatabase::create().await else {
        return;
    };
    let first: Arc<dyn Store> = Arc::new(
        tocsin_store_postgres::PostgresStore::connect(database.url())
            .await
            .expect("first replica"),
    );
    let second: Arc<dyn Store> = Arc::new(
        tocsin_store_postgres::PostgresStore::connect(database.url())
            .await
            .expect("second replica"),
    );
    two_engines_page_each_step_once(first, second).await;
    drop(database);
}

/// A schedule target pages whoever the schedule has on call with its stored overrides: Ana by
/// the rota, Ben while his override covers her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_target_pages_whoever_an_override_puts_on_call() {
    use jiff::civil;
    use tocsin_core::{Layer, Schedule};
    use tocsin_engine::oncall::{OverrideRequest, ScheduleCatalog, ScheduleEntry, UserEntry};

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let start: Timestamp = "2026-11-22T08:46:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let schedule = Schedule {
        id: "nights".to_owned(),
        name: "nights".to_owned(),
        time_zone: "UTC".to_owned(),
        layers: vec![Layer {
            members: vec!["ana".to_owned()],
            rotation: Duration::from_secs(7 * 86_400),
            handoff: civil::date(2026, 11, 2).at(9, 0, 0, 0),
            only: Vec::new(),
        }],
    };
    let engine = super::engine_with(
        Arc::clone(&store),
        Arc::clone(&clock),
        IngestSettings::default(),
    );
    let users = ["ana", "ben"]
        .map(|id| UserEntry {
            id: id.to_owned(),
            name: id.to_owned(),
            bot: false,
        })
        .to_vec();
    engine.catalog().replace_with_schedules(
        Vec::new(),
        ScheduleCatalog::new(
            vec![ScheduleEntry {
                schedule: schedule.clone(),
                time_zone: jiff::tz::TimeZone::UTC,
            }],
            users,
        ),
    );
    let mut paging = directory();
    paging.schedules.insert(
        "nights".to_owned(),
        tocsin_engine::paging::ScheduleEntry {
            schedule,
            time_zone: jiff::tz::TimeZone::UTC,
        },
    );
    let policy = paging.policies.get_mut("api").expect("policy");
    policy.levels[0].targets = vec![Target::Schedule("nights".to_owned())];
    engine.catalog().replace_paging(paging);
    let engine = Arc::new(engine);
    engine
        .create_override(
            &OverrideRequest {
                schedule: "nights".to_owned(),
                start: start - SignedDuration::from_hours(1),
                end: start + SignedDuration::from_hours(8),
                user: "ben".to_owned(),
                replaces: None,
            },
            &Actor::token("lead"),
        )
        .await
        .expect("override");
    let runner = engine.due_runner(settings());
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    let rows = store
        .notifications(IncidentNumber(1), 50)
        .await
        .expect("rows");
    assert_eq!(paged(&rows), ["ben"], "the override, not the rota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassigning_pages_the_new_assignee_at_once_and_refuses_who_cannot_be_paged() {
    let (_dir, start, clock, store) = on_a_sqlite_file().await;
    let engine = super::engine_with(
        Arc::clone(&store),
        Arc::clone(&clock),
        IngestSettings::default(),
    );
    let mut people = directory();
    let mut bot = user("deploy-bot");
    bot.bot = true;
    people.users.insert(bot.id.clone(), bot);
    let mut quiet = user("quiet");
    quiet.notify.clear();
    people.users.insert(quiet.id.clone(), quiet);
    let mut ben = user("ben");
    ben.notify.push(NotifyStep {
        after_minutes: 3,
        contact: "phone".to_owned(),
        method: "ntfy".to_owned(),
    });
    people.users.insert(ben.id.clone(), ben);
    engine.catalog().replace_paging(people);
    let engine = Arc::new(engine);
    let runner = engine.due_runner(settings());
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    let number = IncidentNumber(1);
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    assert_eq!(
        paged(&store.notifications(number, 50).await.expect("rows")),
        ["ana"]
    );

    // Who cannot be paged is refused before anything is stored.
    for (who, expected) in [
        ("nobody", ReassignRefusal::UnknownUser("nobody".to_owned())),
        ("deploy-bot", ReassignRefusal::Bot("deploy-bot".to_owned())),
        ("quiet", ReassignRefusal::Unreachable("quiet".to_owned())),
    ] {
        let error = engine
            .reassign(number, who, &Actor::token("ana"))
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, ReassignError::Refused(refusal) if *refusal == expected),
            "{who}: {error}"
        );
    }
    let before = engine
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline")
        .items
        .len();

    clock.advance(SignedDuration::from_secs(60));
    let outcome = engine
        .reassign(number, "ben", &Actor::token("ana"))
        .await
        .expect("reassign");
    assert_eq!(outcome.transition, tocsin_core::Transition::Changed);
    let rows = store.notifications(number, 50).await.expect("rows");
    let ben_rows: Vec<_> = rows
        .iter()
        .filter(|row| matches!(&row.recipient, Recipient::User { user, .. } if user == "ben"))
        .map(|row| (row.method.as_str(), row.state, row.next_attempt_at))
        .collect();
    let now = start + SignedDuration::from_secs(60);
    assert_eq!(
        ben_rows,
        [
            ("email", NotificationState::Pending, now),
            (
                "ntfy",
                NotificationState::Pending,
                now + SignedDuration::from_secs(180)
            ),
        ],
        "every notify rule of ben, the first at once"
    );
    let timeline = engine
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    assert_eq!(timeline.items.len(), before + 1, "refusals stored nothing");
    let last = timeline.items.last().expect("an entry");
    assert_eq!(last.kind(), TimelineKind::IncidentReassigned);
    assert_eq!(last.actor, Actor::token("ana"));
    assert_eq!(
        last.data,
        tocsin_core::TimelineData::IncidentReassigned {
            to: "ben".to_owned()
        }
    );

    // A resolved incident is not reassigned.
    engine
        .command(number, &Command::Resolve, &Actor::token("ben"))
        .await
        .expect("resolve");
    let error = engine
        .reassign(number, "ben", &Actor::token("ana"))
        .await
        .expect_err("resolved");
    assert!(matches!(error, ReassignError::Engine(_)), "{error}");
}

/// An engine on `store` with the real clock and service `api` of [`directory`].
fn engine_on_the_real_clock(store: Arc<dyn Store>) -> Arc<Engine> {
    let catalog = Arc::new(tocsin_engine::Catalog::new(vec![
        tocsin_engine::ServiceEntry {
            id: ServiceId::new("api"),
            name: "API".to_owned(),
            integration_keys: vec!["0123456789abcdef0123456789abcdef".to_owned()],
            resolve: tocsin_core::ResolvePolicy::Auto,
            grafana: None,
        },
    ]));
    catalog.replace_paging(directory());
    let metrics = Arc::new(tocsin_engine::Metrics::new());
    let (ingestor, _writer) = tocsin_engine::Ingestor::start(
        Arc::clone(&store),
        Arc::clone(&catalog),
        Arc::clone(&metrics),
        IngestSettings::default(),
    )
    .expect("ingest writer starts");
    Arc::new(Engine::new(
        store,
        catalog,
        ingestor,
        Arc::new(tocsin_engine::SystemClock),
        metrics,
    ))
}

/// Level 1 is paged at once: with the due-work runner and a dispatcher each polling only every
/// 30 s, the page is claimed and sent within a fraction of a second of the trigger, because the
/// ingest commit wakes the runner and the step's commit wakes the dispatcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_one_is_sent_at_once_without_waiting_for_a_poll() {
    const POLL: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let engine = engine_on_the_real_clock(Arc::clone(&store));
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = engine.due_runner(DueRunnerSettings {
        poll: POLL,
        ..settings()
    });
    let due = tokio::spawn({
        let stop = stop.clone();
        async move { runner.run_until(stop).await }
    });
    // A dispatcher as the notify crate runs one: drain, then wait for the poll or a wake-up.
    let (sent, mut sent_rows) = tokio::sync::mpsc::unbounded_channel();
    let dispatcher = tokio::spawn({
        let (engine, stop) = (Arc::clone(&engine), stop.clone());
        async move {
            let claimer = tocsin_store::due::ClaimerId::parse("test-dispatcher").expect("id");
            let mut wakeup = engine.outbox_wakeup();
            loop {
                let now = engine.now();
                let rows = engine
                    .store()
                    .claim_notifications(&tocsin_store::outbox::NotificationClaim {
                        claimer: &claimer,
                        now,
                        claim_until: now + Duration::from_secs(60),
                        limit: 10,
                    })
                    .await
                    .expect("claim");
                for row in rows {
                    engine
                        .store()
                        .settle_notification(
                            &row,
                            &tocsin_store::outbox::Delivery::Sent,
                            0,
                            engine.now(),
                        )
                        .await
                        .expect("settle");
                    let _ = sent.send(row.incident);
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(POLL) => {}
                    () = wakeup.woken() => {}
                }
            }
        }
    });

    engine
        .submit(vec![trigger("db-down", engine.now())])
        .await
        .expect("submit");
    let number = tokio::time::timeout(Duration::from_secs(10), sent_rows.recv())
        .await
        .expect("paged well before either poll")
        .expect("a page")
        .expect("a page of an incident");
    let incident = engine.incident(number).await.expect("incident");
    let rows = store.notifications(number, 50).await.expect("rows");
    assert_eq!(paged(&rows), ["ana"]);
    let settled = rows[0].settled_at.expect("sent");
    let latency = settled.duration_since(incident.created_at);
    println!("trigger to sent: {latency:?}");
    assert!(
        latency < SignedDuration::from_millis(300),
        "sent {latency:?} after the incident opened"
    );
    stop.cancel();
    due.await.expect("runner stops");
    dispatcher.await.expect("dispatcher stops");
}

/// Runs items of `test.later`, sending when each ran.
struct RanAt(tokio::sync::mpsc::UnboundedSender<Timestamp>);

#[async_trait::async_trait]
impl tocsin_engine::due::DueHandler for RanAt {
    fn kind(&self) -> tocsin_store::due::DueKind {
        tocsin_store::due::DueKind::from_static("test.later")
    }

    async fn run(
        &self,
        _item: &tocsin_store::due::ClaimedDueItem,
        now: Timestamp,
    ) -> Result<tocsin_engine::due::DueOutcome, tocsin_engine::due::DueError> {
        let _ = self.0.send(now);
        Ok(tocsin_engine::due::DueOutcome::Done)
    }
}

/// An item this process noted as coming due later (the next escalation level) is claimed when
/// it comes due, not at the runner's next poll: with a 30 s poll, an item due 300 ms ahead runs
/// within a few tens of milliseconds of its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_noted_as_due_later_runs_on_time_without_waiting_for_a_poll() {
    use tocsin_store::due::{DueKey, DueKind, NewDueItem, WhenScheduled};
    const POLL: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let engine = engine_on_the_real_clock(Arc::clone(&store));
    let (ran, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let runner = engine
        .due_runner(DueRunnerSettings {
            poll: POLL,
            ..settings()
        })
        .with_handler(Arc::new(RanAt(ran)));
    let stop = tokio_util::sync::CancellationToken::new();
    let due = tokio::spawn({
        let stop = stop.clone();
        async move { runner.run_until(stop).await }
    });
    // Let the runner make its first claim and go to sleep for its poll.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let item = |key: &str, due_at: Timestamp| {
        NewDueItem::new(
            DueKind::from_static("test.later"),
            DueKey::parse(key).expect("key"),
            &serde_json::json!({}),
            due_at,
        )
        .expect("item")
    };
    let noted_at = engine.now() + SignedDuration::from_millis(300);
    let unnoted_at = engine.now() + SignedDuration::from_millis(150);
    store
        .schedule(
            &item("unnoted", unnoted_at),
            WhenScheduled::Replace,
            engine.now(),
        )
        .await
        .expect("schedule");
    store
        .schedule(
            &item("noted", noted_at),
            WhenScheduled::Replace,
            engine.now(),
        )
        .await
        .expect("schedule");
    engine.note_due_at(noted_at);
    engine.wake_due(); // the runner takes up the new note now, as after a step it ran itself

    // The claim at the noted time finds both items (the unnoted one, due earlier, first).
    for _ in 0..2 {
        let ran = tokio::time::timeout(Duration::from_secs(10), runs.recv())
            .await
            .expect("ran well before the poll")
            .expect("a run");
        let late = ran.duration_since(noted_at);
        println!("ran {late:?} after the noted due time");
        assert!(
            late >= SignedDuration::ZERO && late < SignedDuration::from_millis(150),
            "ran {late:?} after the noted item was due"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), runs.recv())
            .await
            .is_err(),
        "two items, two runs"
    );
    stop.cancel();
    due.await.expect("runner stops");
}

/// An acknowledged incident of a service with an acknowledgement timeout is triggered again
/// and escalates from level 1 when nobody resolves it in time; a new acknowledgement restarts
/// the timer, and resolving removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_that_times_out_triggers_the_incident_again() {
    let (_dir, start, clock, store) = on_a_sqlite_file().await;
    let engine = super::engine_with(
        Arc::clone(&store),
        Arc::clone(&clock),
        IngestSettings::default(),
    );
    let mut paging = directory();
    paging
        .ack_timeouts
        .insert(ServiceId::new("api"), Duration::from_secs(30 * 60));
    engine.catalog().replace_paging(paging);
    let engine = Arc::new(engine);
    let runner = engine.due_runner(settings());
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    let number = IncidentNumber(1);
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);

    clock.advance(SignedDuration::from_mins(1));
    engine
        .command(number, &Command::Acknowledge, &Actor::token("ana"))
        .await
        .expect("acknowledge");
    clock.advance(SignedDuration::from_secs(30 * 60 - 1));
    assert_eq!(runner.run_due_once().await.expect("run").ran, 0, "not yet");
    clock.advance(SignedDuration::from_secs(1));
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    let incident = engine.incident(number).await.expect("incident");
    assert_eq!(incident.state, tocsin_core::IncidentState::Triggered);
    let timeline = engine
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    let timed_out = timeline.items.last().expect("an entry");
    assert_eq!(timed_out.kind(), TimelineKind::IncidentAckTimeout);
    assert_eq!(timed_out.actor, Actor::system());
    assert_eq!(timed_out.at, start + SignedDuration::from_mins(31));
    assert_eq!(
        timed_out.data,
        tocsin_core::TimelineData::IncidentAckTimeout {
            timeout_minutes: 30
        }
    );
    // The escalation starts over at level 1: ana is paged again, by a page of its own.
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    let rows = store.notifications(number, 50).await.expect("rows");
    assert_eq!(paged(&rows), ["ana", "ana"]);
    assert_eq!(
        rows.iter().map(|row| row.state).collect::<Vec<_>>(),
        [NotificationState::Cancelled, NotificationState::Pending]
    );

    // Acknowledged again five minutes later: the timer starts from that acknowledgement.
    clock.advance(SignedDuration::from_mins(5));
    engine
        .command(number, &Command::Acknowledge, &Actor::token("ana"))
        .await
        .expect("acknowledge again");
    clock.advance(SignedDuration::from_secs(30 * 60 - 1));
    assert_eq!(runner.run_due_once().await.expect("run").ran, 0, "not yet");
    engine
        .command(number, &Command::Resolve, &Actor::token("ana"))
        .await
        .expect("resolve");
    clock.advance(SignedDuration::from_hours(24));
    assert_eq!(
        runner.run_due_once().await.expect("run").ran,
        0,
        "resolving removed the timer"
    );
    assert_eq!(
        engine.incident(number).await.expect("incident").state,
        tocsin_core::IncidentState::Resolved
    );
}

/// An engine on `store` whose policy `api` has one level, team ops (ana, ben, cy), taking
/// turns, repeated `repeat` times five minutes apart.
fn round_robin_engine(store: Arc<dyn Store>, clock: Arc<ManualClock>, repeat: u32) -> Arc<Engine> {
    let engine = super::engine_with(store, clock, IngestSettings::default());
    let mut paging = directory();
    for id in ["ana", "ben", "cy"] {
        paging.users.insert(id.to_owned(), user(id));
    }
    paging.teams.insert(
        "ops".to_owned(),
        ["ana", "ben", "cy"].map(str::to_owned).to_vec(),
    );
    let policy = paging.policies.get_mut("api").expect("policy");
    policy.repeat = repeat;
    policy.levels = vec![EscalationLevel {
        targets: vec![Target::Team("ops".to_owned())],
        escalate_after_minutes: Some(5),
        round_robin: true,
    }];
    engine.catalog().replace_paging(paging);
    Arc::new(engine)
}

/// A round-robin level of a team of three pages one of them per incident, in turn.
async fn three_incidents_page_a_round_robin_level_in_turn(store: Arc<dyn Store>) {
    let start: Timestamp = "2026-11-22T08:46:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let engine = round_robin_engine(Arc::clone(&store), Arc::clone(&clock), 0);
    let runner = engine.due_runner(settings());
    let mut turns = Vec::new();
    for n in 1..=3 {
        engine
            .submit(vec![trigger(&format!("disk-{n}"), clock.now())])
            .await
            .expect("submit");
        assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
        let rows = store
            .notifications(IncidentNumber(n), 50)
            .await
            .expect("rows");
        turns.push(paged(&rows));
        let timeline = engine
            .timeline(IncidentNumber(n), PageRequest::default())
            .await
            .expect("timeline");
        let notified = timeline
            .items
            .iter()
            .find(|entry| entry.kind() == TimelineKind::EscalationNotified)
            .expect("notified");
        assert_eq!(
            notified.data,
            tocsin_core::TimelineData::EscalationNotified {
                pass: 0,
                level: 1,
                recipients: paged(&rows),
            },
            "the timeline says who"
        );
    }
    assert_eq!(turns, [["ana"], ["ben"], ["cy"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_robin_level_takes_turns_on_sqlite() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    three_incidents_page_a_round_robin_level_in_turn(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_robin_level_takes_turns_on_postgres() {
    let Some(database) = tocsin_store_postgres::testing::TestDatabase::create().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(
        tocsin_store_postgres::PostgresStore::connect(database.url())
            .await
            .expect("store"),
    );
    three_incidents_page_a_round_robin_level_in_turn(store).await;
    drop(database);
}

/// The repeats of one ladder take turns too: each pass pages the next person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_repeat_of_a_round_robin_level_pages_the_next_person() {
    let (_dir, _start, clock, store) = on_a_sqlite_file().await;
    let engine = round_robin_engine(Arc::clone(&store), Arc::clone(&clock), 3);
    let runner = engine.due_runner(settings());
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    for _ in 0..4 {
        assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
        clock.advance(SignedDuration::from_mins(5));
    }
    let rows = store
        .notifications(IncidentNumber(1), 50)
        .await
        .expect("rows");
    assert_eq!(paged(&rows), ["ana", "ben", "cy", "ana"]);
}
