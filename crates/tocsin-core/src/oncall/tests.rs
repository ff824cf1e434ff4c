use std::time::Duration;

use jiff::civil::{self, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use proptest::prelude::*;

use super::*;

const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
];

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("the time zone database")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

fn layer(members: &[&str], rotation: Duration, handoff: civil::DateTime) -> Layer {
    Layer {
        members: members.iter().map(|member| (*member).to_owned()).collect(),
        rotation,
        handoff,
        only: Vec::new(),
    }
}

fn schedule(layers: Vec<Layer>) -> Schedule {
    Schedule {
        id: "primary".to_owned(),
        name: "primary".to_owned(),
        time_zone: "UTC".to_owned(),
        layers,
    }
}

fn cover(user: &str, start: &str, end: &str) -> Override {
    Override {
        start: at(start),
        end: at(end),
        user: user.to_owned(),
        replaces: None,
    }
}

fn replace(user: &str, replaced: &str, start: &str, end: &str) -> Override {
    Override {
        replaces: Some(replaced.to_owned()),
        ..cover(user, start, end)
    }
}

const DAY: Duration = Duration::from_secs(86_400);
const WEEK: Duration = Duration::from_secs(7 * 86_400);

fn weekdays() -> Vec<Weekday> {
    use Weekday::*;
    vec![Monday, Tuesday, Wednesday, Thursday, Friday]
}

fn nights() -> Restriction {
    Restriction {
        days: weekdays(),
        start: civil::time(18, 0, 0, 0),
        end: civil::time(2, 0, 0, 0),
    }
}

fn user_at<'a>(roster: &Roster<'a>, text: &str) -> Option<&'a str> {
    roster.on_call_at(at(text)).map(|on_call| on_call.user)
}

#[test]
fn a_covering_override_takes_over_whoever_is_on_call_and_fills_gaps() {
    let utc = TimeZone::UTC;
    let mut nights_only = layer(&["ana"], DAY, civil::date(2026, 11, 2).at(0, 0, 0, 0));
    nights_only.only = vec![nights()];
    let schedule = schedule(vec![nights_only]);
    let overrides = [cover("dev", "2026-11-03T12:00:00Z", "2026-11-03T20:00:00Z")];
    let roster = Roster::new(&schedule, &utc, &overrides);
    assert_eq!(user_at(&roster, "2026-11-03T11:59:59Z"), None);
    assert_eq!(user_at(&roster, "2026-11-03T12:00:00Z"), Some("dev"));
    assert_eq!(user_at(&roster, "2026-11-03T19:00:00Z"), Some("dev"));
    assert_eq!(
        roster
            .on_call_at(at("2026-11-03T19:00:00Z"))
            .unwrap()
            .source,
        OnCallSource::Override(0)
    );
    assert_eq!(user_at(&roster, "2026-11-03T20:00:00Z"), Some("ana"));
    let gaps = roster.gaps(at("2026-11-03T00:00:00Z"), at("2026-11-04T00:00:00Z"));
    assert_eq!(
        gaps,
        vec![Gap {
            start: at("2026-11-03T02:00:00Z"),
            end: at("2026-11-03T12:00:00Z")
        }]
    );
}

#[test]
fn a_replacing_override_takes_only_the_replaced_persons_turns() {
    let utc = TimeZone::UTC;
    let daily = layer(
        &["ana", "ben"],
        DAY,
        civil::date(2026, 11, 2).at(9, 0, 0, 0),
    );
    let schedule = schedule(vec![daily]);
    // Ana is on call 11-02 09:00 to 11-03 09:00 and 11-04 09:00 to 11-05 09:00.
    let overrides = [replace(
        "dev",
        "ana",
        "2026-11-02T12:00:00Z",
        "2026-11-04T12:00:00Z",
    )];
    let roster = Roster::new(&schedule, &utc, &overrides);
    assert_eq!(user_at(&roster, "2026-11-02T11:00:00Z"), Some("ana"));
    assert_eq!(user_at(&roster, "2026-11-02T12:00:00Z"), Some("dev"));
    assert_eq!(user_at(&roster, "2026-11-03T10:00:00Z"), Some("ben"));
    assert_eq!(user_at(&roster, "2026-11-04T10:00:00Z"), Some("dev"));
    assert_eq!(user_at(&roster, "2026-11-04T12:00:00Z"), Some("ana"));
    let shifts = roster.shifts_of(
        "dev",
        at("2026-11-01T00:00:00Z"),
        at("2026-11-08T00:00:00Z"),
    );
    assert_eq!(
        shifts
            .iter()
            .map(|shift| (shift.start.to_string(), shift.end.to_string()))
            .collect::<Vec<_>>(),
        vec![
            (
                "2026-11-02T12:00:00Z".to_owned(),
                "2026-11-03T09:00:00Z".to_owned()
            ),
            (
                "2026-11-04T09:00:00Z".to_owned(),
                "2026-11-04T12:00:00Z".to_owned()
            ),
        ]
    );
}

#[test]
fn the_later_override_wins_where_overrides_overlap() {
    let utc = TimeZone::UTC;
    let daily = layer(&["ana"], DAY, civil::date(2026, 11, 2).at(0, 0, 0, 0));
    let schedule = schedule(vec![daily]);
    let overrides = [
        cover("ben", "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z"),
        cover("chen", "2026-11-03T06:00:00Z", "2026-11-03T08:00:00Z"),
        // Replaces Ana, who is not on call here any more: changes nothing.
        replace("dev", "ana", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z"),
        // Replaces Ben, who is.
        replace("eve", "ben", "2026-11-03T12:00:00Z", "2026-11-03T13:00:00Z"),
    ];
    let roster = Roster::new(&schedule, &utc, &overrides);
    assert_eq!(user_at(&roster, "2026-11-03T05:00:00Z"), Some("ben"));
    assert_eq!(user_at(&roster, "2026-11-03T07:00:00Z"), Some("chen"));
    assert_eq!(user_at(&roster, "2026-11-03T08:00:00Z"), Some("ben"));
    assert_eq!(user_at(&roster, "2026-11-03T10:30:00Z"), Some("ben"));
    assert_eq!(user_at(&roster, "2026-11-03T12:30:00Z"), Some("eve"));
    assert_eq!(user_at(&roster, "2026-11-04T00:00:00Z"), Some("ana"));
}

#[test]
fn an_empty_or_reversed_range_has_no_segments() {
    let utc = TimeZone::UTC;
    let schedule = schedule(vec![layer(
        &["ana"],
        DAY,
        civil::date(2026, 1, 1).at(0, 0, 0, 0),
    )]);
    let roster = Roster::new(&schedule, &utc, &[]);
    let now = at("2026-02-01T00:00:00Z");
    assert!(roster.timeline(now, now).is_empty());
    assert!(roster
        .timeline(now, now.checked_sub(SignedDuration::from_hours(1)).unwrap())
        .is_empty());
    // Before the first hand-off nobody is on call.
    let gaps = roster.gaps(at("2025-12-31T00:00:00Z"), at("2026-01-02T00:00:00Z"));
    assert_eq!(
        gaps,
        vec![Gap {
            start: at("2025-12-31T00:00:00Z"),
            end: at("2026-01-01T00:00:00Z")
        }]
    );
}

/// The local wall-clock time of an instant.
fn local(zone: &TimeZone, at: Timestamp) -> civil::DateTime {
    Zoned::new(at, zone.clone()).datetime()
}

#[test]
fn a_weekly_nine_oclock_handoff_stays_at_nine_local_through_a_year_in_every_zone() {
    for name in ZONES {
        let zone = zone(name);
        let weekly = layer(
            &["ana", "ben", "chen"],
            WEEK,
            civil::date(2026, 1, 5).at(9, 0, 0, 0),
        );
        let schedule = schedule(vec![weekly]);
        let roster = Roster::new(&schedule, &zone, &[]);
        let from = civil::date(2026, 1, 5)
            .at(9, 0, 0, 0)
            .to_zoned(zone.clone())
            .unwrap()
            .timestamp();
        let to = from
            .checked_add(SignedDuration::from_hours(24 * 366))
            .unwrap();
        let shifts = roster.shifts(from, to);
        assert!(shifts.len() >= 52, "{name}: {}", shifts.len());
        let members = ["ana", "ben", "chen"];
        for (index, shift) in shifts.iter().enumerate() {
            assert_eq!(shift.user, members[index % 3], "{name}: shift {index}");
            let starts = local(&zone, shift.start);
            assert_eq!(starts.time(), civil::time(9, 0, 0, 0), "{name}: {shift:?}");
            assert_eq!(starts.weekday(), Weekday::Monday, "{name}: {shift:?}");
            if shift.end < to {
                let ends = local(&zone, shift.end);
                assert_eq!(ends.time(), civil::time(9, 0, 0, 0), "{name}: {shift:?}");
                let hours = shift.end.duration_since(shift.start).as_secs() / 3600;
                assert!(
                    (7 * 24 - 1..=7 * 24 + 1).contains(&hours),
                    "{name}: {hours} h"
                );
            }
        }
    }
}

#[test]
fn a_night_window_crossing_midnight_opens_at_six_and_closes_at_two_local_across_changes() {
    for name in ZONES {
        let zone = zone(name);
        let mut night = layer(&["chen"], DAY, civil::date(2025, 12, 1).at(0, 0, 0, 0));
        // Every night, so that the nights of the changes (Saturday to Sunday here) are among them.
        night.only = vec![Restriction {
            days: Weekday::Monday.cycle_forward().take(7).collect(),
            ..nights()
        }];
        let schedule = schedule(vec![night]);
        let roster = Roster::new(&schedule, &zone, &[]);
        let from = at("2026-01-01T00:00:00Z");
        let to = at("2027-01-01T00:00:00Z");
        let shifts = roster.shifts(from, to);
        assert!(
            (365..=367).contains(&shifts.len()),
            "{name}: {}",
            shifts.len()
        );
        let mut lengths = std::collections::BTreeSet::new();
        // A window cut by the ends of the range is not a whole one.
        for shift in shifts
            .iter()
            .filter(|shift| shift.start != from && shift.end != to)
        {
            let opens = local(&zone, shift.start);
            assert_eq!(opens.time(), civil::time(18, 0, 0, 0), "{name}: {shift:?}");
            // Closed at the first moment the clock shows 02:00 or later the next day: just
            // before, it showed an earlier time; 02:00 itself, or the end of a jump over it.
            let closes = local(&zone, shift.end);
            let before = local(
                &zone,
                shift.end.checked_sub(SignedDuration::from_secs(1)).unwrap(),
            );
            let two = opens.date().tomorrow().unwrap().at(2, 0, 0, 0);
            assert!(before < two && two <= closes, "{name}: {shift:?}");
            assert!(
                closes == two
                    || zone
                        .preceding(shift.end.checked_add(SignedDuration::from_secs(1)).unwrap())
                        .next()
                        .unwrap()
                        .timestamp()
                        == shift.end,
                "{name}: closes at {closes} for {shift:?}"
            );
            lengths.insert(shift.end.duration_since(shift.start).as_secs() / 60);
        }
        // The window closes the first time the clock shows 02:00 or later. New York jumps from
        // 02:00 to 03:00 in spring (8 h that night) and shows 01:00-02:00 twice in autumn
        // (9 h); Berlin jumps at 02:00 too and repeats 02:00-03:00, so it closes at the first
        // 02:00 (8 h); Lord Howe jumps from 02:00 to 02:30 and repeats 01:30-02:00 (8 h 30).
        let expected: std::collections::BTreeSet<i64> = match *name {
            "America/New_York" => [8 * 60, 9 * 60].into(),
            "Australia/Lord_Howe" => [8 * 60, 8 * 60 + 30].into(),
            _ => [8 * 60].into(),
        };
        assert_eq!(lengths, expected, "{name}");
    }
}

#[test]
fn a_window_closing_in_a_repeated_hour_closes_once() {
    // New York repeats 01:00-02:00 on 2026-11-01 (a Sunday): a Saturday window until 01:30
    // closes at the first 01:30 and does not open again at the second 01:00.
    let zone = zone("America/New_York");
    let mut night = layer(&["chen"], DAY, civil::date(2026, 1, 1).at(0, 0, 0, 0));
    night.only = vec![Restriction {
        days: vec![Weekday::Saturday],
        start: civil::time(22, 0, 0, 0),
        end: civil::time(1, 30, 0, 0),
    }];
    let schedule = schedule(vec![night]);
    let roster = Roster::new(&schedule, &zone, &[]);
    let shifts = roster.shifts(at("2026-10-31T12:00:00Z"), at("2026-11-01T12:00:00Z"));
    assert_eq!(shifts.len(), 1, "{shifts:?}");
    assert_eq!(shifts[0].start, at("2026-11-01T02:00:00Z"));
    // The first 01:30 is EDT (UTC-4).
    assert_eq!(shifts[0].end, at("2026-11-01T05:30:00Z"));
    assert_eq!(
        user_at(&roster, "2026-11-01T06:10:00Z"),
        None,
        "the second 01:10"
    );
}

// ---------------------------------------------------------------- property tests

const POOL: &[&str] = &["ana", "ben", "chen", "dev", "eve", "fay"];

fn arb_rotation() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_secs(3600)),
        Just(Duration::from_secs(8 * 3600)),
        Just(Duration::from_secs(12 * 3600)),
        Just(DAY),
        Just(Duration::from_secs(2 * 86_400)),
        Just(WEEK),
        (60u64..20_000).prop_map(|minutes| Duration::from_secs(minutes * 60)),
    ]
}

/// A local date and time in 2025 or 2026, on the quarter hour.
fn arb_civil() -> impl Strategy<Value = civil::DateTime> {
    (
        0i64..730,
        0i8..24,
        prop_oneof![Just(0i8), Just(15), Just(30), Just(45)],
    )
        .prop_map(|(day, hour, minute)| {
            civil::date(2025, 1, 1)
                .checked_add(jiff::Span::new().days(day))
                .unwrap()
                .at(hour, minute, 0, 0)
        })
}

fn arb_restriction() -> impl Strategy<Value = Restriction> {
    use Weekday::*;
    let all = [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ];
    (
        proptest::sample::subsequence(all.to_vec(), 1..=7),
        0i8..24,
        prop_oneof![Just(0i8), Just(30)],
        0i8..24,
        prop_oneof![Just(0i8), Just(30)],
    )
        .prop_map(
            |(days, start_hour, start_minute, end_hour, end_minute)| Restriction {
                days,
                start: civil::time(start_hour, start_minute, 0, 0),
                end: civil::time(end_hour, end_minute, 0, 0),
            },
        )
}

fn arb_layer() -> impl Strategy<Value = Layer> {
    (
        proptest::sample::subsequence(POOL.to_vec(), 1..=4).prop_shuffle(),
        arb_rotation(),
        arb_civil(),
        proptest::collection::vec(arb_restriction(), 0..=2),
    )
        .prop_map(|(members, rotation, handoff, only)| Layer {
            members: members.into_iter().map(str::to_owned).collect(),
            rotation,
            handoff,
            only,
        })
}

fn base() -> Timestamp {
    at("2025-01-01T00:00:00Z")
}

fn arb_instant() -> impl Strategy<Value = Timestamp> {
    (0i64..(2 * 365 * 86_400)).prop_map(|second| {
        base()
            .checked_add(SignedDuration::from_secs(second))
            .unwrap()
    })
}

fn arb_override() -> impl Strategy<Value = Override> {
    (
        arb_instant(),
        1i64..(5 * 86_400),
        proptest::sample::select(POOL.to_vec()),
        proptest::option::of(proptest::sample::select(POOL.to_vec())),
    )
        .prop_map(|(start, seconds, user, replaces)| Override {
            start,
            end: start
                .checked_add(SignedDuration::from_secs(seconds))
                .unwrap(),
            user: user.to_owned(),
            replaces: replaces.map(str::to_owned),
        })
}

fn arb_zone() -> impl Strategy<Value = TimeZone> {
    proptest::sample::select(ZONES.to_vec()).prop_map(zone)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// For any instant, the timeline names exactly the person `on_call_at` names: checked at
    /// every segment's first and last second and at random instants of the range.
    #[test]
    fn the_timeline_names_whoever_is_on_call_at_every_instant(
        layers in proptest::collection::vec(arb_layer(), 1..=3),
        overrides in proptest::collection::vec(arb_override(), 0..=3),
        time_zone in arb_zone(),
        from in arb_instant(),
        days in 1i64..15,
        probes in proptest::collection::vec(0.0f64..1.0, 40),
    ) {
        let schedule = schedule(layers);
        let roster = Roster::new(&schedule, &time_zone, &overrides);
        let to = from.checked_add(SignedDuration::from_hours(24 * days)).unwrap();
        let timeline = roster.timeline(from, to);
        prop_assert_eq!(timeline.first().map(|segment| segment.start), Some(from));
        prop_assert_eq!(timeline.last().map(|segment| segment.end), Some(to));
        for pair in timeline.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
            prop_assert_ne!(pair[0].on_call, pair[1].on_call);
        }
        let answer_at = |instant: Timestamp| {
            timeline
                .iter()
                .find(|segment| segment.start <= instant && instant < segment.end)
                .and_then(|segment| segment.on_call)
        };
        for segment in &timeline {
            prop_assert!(segment.start < segment.end);
            prop_assert_eq!(roster.on_call_at(segment.start), segment.on_call);
            let last = segment.end.checked_sub(SignedDuration::from_secs(1)).unwrap();
            prop_assert_eq!(roster.on_call_at(last), segment.on_call, "{:?}", segment);
        }
        let span = to.duration_since(from).as_secs();
        for probe in probes {
            let instant = from
                .checked_add(SignedDuration::from_secs((span as f64 * probe) as i64))
                .unwrap();
            prop_assert_eq!(answer_at(instant), roster.on_call_at(instant), "at {}", instant);
        }
        // Gaps and shifts split the range between them.
        let covered: i64 = roster
            .gaps(from, to)
            .iter()
            .map(|gap| gap.end.duration_since(gap.start).as_secs())
            .chain(
                roster
                    .shifts(from, to)
                    .iter()
                    .map(|shift| shift.end.duration_since(shift.start).as_secs()),
            )
            .sum();
        prop_assert_eq!(covered, span);
        for gap in roster.gaps(from, to) {
            prop_assert_eq!(roster.on_call_at(gap.start), None);
        }
    }

    /// A rotation hands over to the next member every time, in order, never skipping one and
    /// never giving anyone two turns in a row; each full turn lasts one rotation (in calendar
    /// days on the local clock for whole-day rotations).
    #[test]
    fn a_rotation_never_skips_or_doubles_a_member(
        members in proptest::sample::subsequence(POOL.to_vec(), 2..=5).prop_shuffle(),
        rotation in arb_rotation(),
        handoff in arb_civil(),
        time_zone in arb_zone(),
        days in 1i64..60,
    ) {
        let rotating = layer(&members, rotation, handoff);
        let schedule = schedule(vec![rotating.clone()]);
        let roster = Roster::new(&schedule, &time_zone, &[]);
        let from = handoff.to_zoned(time_zone.clone()).unwrap().timestamp();
        let to = from.checked_add(SignedDuration::from_hours(24 * days)).unwrap();
        let shifts = roster.shifts(from, to);
        prop_assert!(!shifts.is_empty());
        prop_assert_eq!(&shifts[0].user, members[0]);
        for (index, shift) in shifts.iter().enumerate() {
            prop_assert_eq!(&shift.user, members[index % members.len()], "shift {}", index);
            if shift.end == to {
                continue;
            }
            match whole_days(rotation) {
                Some(days) => {
                    let starts = local(&time_zone, shift.start);
                    let ends = local(&time_zone, shift.end);
                    prop_assert_eq!(
                        starts.date().until((jiff::Unit::Day, ends.date())).unwrap().get_days() as i64,
                        days,
                        "{:?}", shift
                    );
                    // The hand-off time of day stays, unless the clock skipped it that day.
                    let skipped = |at: Timestamp| time_zone.preceding(at.checked_add(SignedDuration::from_secs(1)).unwrap()).next().is_some_and(|transition| transition.timestamp().duration_since(at).abs() < SignedDuration::from_hours(3));
                    if !skipped(shift.end) && !skipped(shift.start) {
                        prop_assert_eq!(ends.time(), starts.time(), "{:?}", shift);
                    }
                }
                None => prop_assert_eq!(
                    shift.end.duration_since(shift.start),
                    SignedDuration::try_from(rotation).unwrap()
                ),
            }
        }
    }
}

#[test]
fn a_handoff_at_a_skipped_time_happens_an_hour_later_that_day_only() {
    // New York skips 02:00-03:00 on 2026-03-08: the 02:30 hand-off is at 03:30 that day, and
    // back at 02:30 the next.
    let zone = zone("America/New_York");
    let daily = layer(
        &["ana", "ben"],
        DAY,
        civil::date(2026, 3, 6).at(2, 30, 0, 0),
    );
    let schedule = schedule(vec![daily]);
    let roster = Roster::new(&schedule, &zone, &[]);
    let starts: Vec<civil::DateTime> = roster
        .shifts(at("2026-03-06T12:00:00Z"), at("2026-03-10T12:00:00Z"))
        .iter()
        .skip(1)
        .map(|shift| local(&zone, shift.start))
        .collect();
    assert_eq!(
        starts,
        vec![
            civil::date(2026, 3, 7).at(2, 30, 0, 0),
            civil::date(2026, 3, 8).at(3, 30, 0, 0),
            civil::date(2026, 3, 9).at(2, 30, 0, 0),
            civil::date(2026, 3, 10).at(2, 30, 0, 0),
        ]
    );
}
