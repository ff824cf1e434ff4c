//! Who is on call through the engine, on a real SQLite store with a manual clock: the clock
//! decides what "now", "the next day" and "in the past" mean.

use std::sync::Arc;
use std::time::Duration;

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tocsin_core::{Actor, Layer, Restriction, Schedule};
use tocsin_engine::oncall::{
    OnCallBy, OnCallError, OverrideRequest, ScheduleCatalog, ScheduleEntry, UserEntry,
};
use tocsin_engine::{Catalog, Clock, Engine, IngestSettings, Ingestor, ManualClock, Metrics};
use tocsin_store::Store;
use tocsin_store_sqlite::SqliteStore;

use super::TestDir;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a time")
}

fn user(id: &str, bot: bool) -> UserEntry {
    UserEntry {
        id: id.to_owned(),
        name: id.to_owned(),
        bot,
    }
}

/// `weekdays`: Ana 09:00-17:00 UTC on weekdays only.
fn catalog() -> ScheduleCatalog {
    let schedule = Schedule {
        id: "weekdays".to_owned(),
        name: "weekdays".to_owned(),
        time_zone: "UTC".to_owned(),
        layers: vec![Layer {
            members: vec!["ana".to_owned()],
            rotation: Duration::from_secs(86_400),
            handoff: civil::date(2026, 11, 2).at(0, 0, 0, 0),
            only: vec![Restriction {
                days: vec![
                    civil::Weekday::Monday,
                    civil::Weekday::Tuesday,
                    civil::Weekday::Wednesday,
                    civil::Weekday::Thursday,
                    civil::Weekday::Friday,
                ],
                start: civil::time(9, 0, 0, 0),
                end: civil::time(17, 0, 0, 0),
            }],
        }],
    };
    ScheduleCatalog::new(
        vec![ScheduleEntry {
            schedule,
            time_zone: TimeZone::UTC,
        }],
        vec![user("ana", false), user("ben", false), user("bot", true)],
    )
}

async fn engine(clock: Arc<ManualClock>) -> (Engine, TestDir) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let catalog = Arc::new(Catalog::with_schedules(Vec::new(), catalog()));
    let metrics = Arc::new(Metrics::new());
    let (ingestor, _writer) = Ingestor::start(
        Arc::clone(&store),
        Arc::clone(&catalog),
        Arc::clone(&metrics),
        IngestSettings::default(),
    )
    .expect("ingest writer starts");
    (
        Engine::new(store, catalog, ingestor, clock, metrics),
        TestDir(Some(dir)),
    )
}

#[tokio::test]
async fn the_next_days_gaps_follow_the_clock_and_count_overrides() {
    // Friday 2026-11-06, 12:00 UTC.
    let clock = Arc::new(ManualClock::new(at("2026-11-06T12:00:00Z")));
    let (engine, _dir) = engine(Arc::clone(&clock)).await;
    let day = SignedDuration::from_hours(24);
    let gaps = engine.gaps_in_next(day).await.expect("gaps");
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].schedule, "weekdays");
    assert_eq!(gaps[0].gaps.len(), 1);
    assert_eq!(gaps[0].gaps[0].start, at("2026-11-06T17:00:00Z"));
    assert_eq!(gaps[0].gaps[0].end, at("2026-11-07T12:00:00Z"));

    // Ben covers Friday evening: the gap starts later.
    let ben = engine
        .create_override(
            &OverrideRequest {
                schedule: "weekdays".to_owned(),
                start: at("2026-11-06T17:00:00Z"),
                end: at("2026-11-06T22:00:00Z"),
                user: "ben".to_owned(),
                replaces: None,
            },
            &Actor::token("lead"),
        )
        .await
        .expect("override");
    assert_eq!(ben.created_by, "token:lead");
    assert_eq!(ben.created_at, clock.now());
    let gaps = engine.gaps_in_next(day).await.expect("gaps");
    assert_eq!(gaps[0].gaps[0].start, at("2026-11-06T22:00:00Z"));
    let now = engine
        .on_call_at(at("2026-11-06T18:00:00Z"), Some("weekdays"))
        .await
        .expect("on call");
    assert_eq!(now[0].user.as_deref(), Some("ben"));
    assert_eq!(now[0].source, Some(OnCallBy::Override(ben.id)));
    assert_eq!(now[0].until, Some(at("2026-11-06T22:00:00Z")));

    // On Monday morning the next day has a gap only from 17:00.
    clock.set(at("2026-11-09T08:00:00Z"));
    let gaps = engine.gaps_in_next(day).await.expect("gaps");
    assert_eq!(
        gaps[0]
            .gaps
            .iter()
            .map(|gap| (gap.start, gap.end))
            .collect::<Vec<_>>(),
        vec![
            (at("2026-11-09T08:00:00Z"), at("2026-11-09T09:00:00Z")),
            (at("2026-11-09T17:00:00Z"), at("2026-11-10T08:00:00Z")),
        ]
    );
    // The Friday override has ended; one ending before the clock's now is refused.
    let refused = engine
        .create_override(
            &OverrideRequest {
                schedule: "weekdays".to_owned(),
                start: at("2026-11-08T00:00:00Z"),
                end: at("2026-11-09T07:00:00Z"),
                user: "ben".to_owned(),
                replaces: None,
            },
            &Actor::token("lead"),
        )
        .await;
    assert!(
        matches!(refused, Err(OnCallError::Invalid { field: "end", .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn overrides_naming_bots_strangers_or_other_schedules_are_refused() {
    let clock = Arc::new(ManualClock::new(at("2026-11-06T12:00:00Z")));
    let (engine, _dir) = engine(clock).await;
    let request = |schedule: &str, user: &str, replaces: Option<&str>| OverrideRequest {
        schedule: schedule.to_owned(),
        start: at("2026-11-07T00:00:00Z"),
        end: at("2026-11-08T00:00:00Z"),
        user: user.to_owned(),
        replaces: replaces.map(str::to_owned),
    };
    let actor = Actor::token("lead");
    for (request, field) in [
        (request("weekdays", "bot", None), "user"),
        (request("weekdays", "zoe", None), "user"),
        (request("weekdays", "ben", Some("bot")), "replaces"),
        (request("weekdays", "ben", Some("ben")), "replaces"),
        // Ben is not a member of the schedule: nobody to replace.
        (request("weekdays", "ana", Some("ben")), "replaces"),
    ] {
        match engine.create_override(&request, &actor).await {
            Err(OnCallError::Invalid { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{request:?}: {other:?}"),
        }
    }
    assert!(matches!(
        engine
            .create_override(&request("nights", "ben", None), &actor)
            .await,
        Err(OnCallError::UnknownSchedule(_))
    ));
    let page = engine
        .schedule_overrides("weekdays", None, None, tocsin_store::PageRequest::first(10))
        .await
        .expect("list");
    assert!(page.items.is_empty(), "nothing stored: {:?}", page.items);
}
