use super::*;
use proptest::prelude::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn period(seconds: u64, grace: u64) -> Expectation {
    Expectation {
        schedule: HeartbeatSchedule::Period(Duration::from_secs(seconds)),
        grace: Duration::from_secs(grace),
        max_starts_without_success: Some(2),
    }
}

fn nightly(zone: &str) -> Expectation {
    Expectation {
        schedule: HeartbeatSchedule::Cron {
            cron: Cron::parse("0 3 * * *").expect("cron"),
            zone: TimeZone::get(zone).expect("zone"),
        },
        grace: Duration::from_secs(30 * 60),
        max_starts_without_success: None,
    }
}

fn input(expectation: &Expectation, signal: HeartbeatSignal, now: Timestamp) -> HeartbeatInput {
    HeartbeatInput {
        monitor: "backup".to_owned(),
        service: ServiceId::new("backups"),
        expectation: expectation.clone(),
        signal,
        now,
    }
}

fn ping(kind: PingKind) -> HeartbeatSignal {
    HeartbeatSignal::Ping(Ping {
        kind,
        rid: None,
        exit_code: None,
        body: String::new(),
        remote: None,
        method: "POST".to_owned(),
    })
}

fn ping_with(
    kind: PingKind,
    rid: Option<&str>,
    exit_code: Option<u8>,
    body: &str,
) -> HeartbeatSignal {
    HeartbeatSignal::Ping(Ping {
        kind,
        rid: rid.map(str::to_owned),
        exit_code,
        body: body.to_owned(),
        remote: Some("127.0.0.1".to_owned()),
        method: "POST".to_owned(),
    })
}

/// Applies the signals in order, returning every plan.
fn run(
    expectation: &Expectation,
    signals: Vec<(HeartbeatSignal, Timestamp)>,
) -> Vec<HeartbeatPlan> {
    let mut state: Option<HeartbeatState> = None;
    let mut plans = Vec::new();
    for (signal, now) in signals {
        let plan = plan_heartbeat(state.as_ref(), &input(expectation, signal, now));
        state = Some(plan.state.clone());
        plans.push(plan);
    }
    plans
}

fn actions(plan: &HeartbeatPlan) -> Vec<(EventAction, String)> {
    plan.events
        .iter()
        .map(|event| (event.action, event.dedup_key.to_string()))
        .collect()
}

#[test]
fn a_period_deadline_is_the_last_success_plus_period_plus_grace() {
    let expectation = period(3600, 300);
    let plans = run(
        &expectation,
        vec![
            (HeartbeatSignal::Watch, at("2026-12-01T00:00:00Z")),
            (ping(PingKind::Success), at("2026-12-01T00:10:00Z")),
        ],
    );
    assert_eq!(plans[0].state.status, HeartbeatStatus::New);
    assert_eq!(plans[0].state.deadline, Some(at("2026-12-01T01:05:00Z")));
    assert_eq!(plans[1].state.status, HeartbeatStatus::Up);
    assert_eq!(plans[1].state.deadline, Some(at("2026-12-01T01:15:00Z")));
    assert!(plans[1].events.is_empty(), "first success resolves nothing");
}

#[test]
fn a_ping_before_the_cron_time_does_not_count_for_that_run() {
    let expectation = nightly("UTC");
    // 02:59: counts for the run of the day before, not for 03:00.
    assert_eq!(
        expectation.deadline_after(at("2026-12-01T02:59:00Z")),
        at("2026-12-01T03:30:00Z")
    );
    // 03:05: counts for the 03:00 run; the next is due tomorrow.
    assert_eq!(
        expectation.deadline_after(at("2026-12-01T03:05:00Z")),
        at("2026-12-02T03:30:00Z")
    );
    let plans = run(
        &expectation,
        vec![
            (ping(PingKind::Success), at("2026-12-01T02:59:00Z")),
            (HeartbeatSignal::Deadline, at("2026-12-01T03:30:00Z")),
        ],
    );
    assert_eq!(plans[1].state.status, HeartbeatStatus::Late);
    assert_eq!(
        actions(&plans[1]),
        vec![(EventAction::Trigger, "heartbeat:backup".to_owned())]
    );
}

#[test]
fn cron_times_are_read_in_the_monitors_time_zone() {
    let expectation = nightly("Europe/Lisbon");
    // Lisbon is UTC+0 in winter and UTC+1 in summer.
    assert_eq!(
        expectation.deadline_after(at("2026-12-01T04:00:00Z")),
        at("2026-12-02T03:30:00Z")
    );
    assert_eq!(
        expectation.deadline_after(at("2026-07-01T04:00:00Z")),
        at("2026-07-02T02:30:00Z")
    );
}

#[test]
fn a_missed_deadline_is_late_once_and_a_success_resolves_it() {
    let expectation = period(60, 10);
    let plans = run(
        &expectation,
        vec![
            (
                ping_with(PingKind::Success, None, None, "backup done"),
                at("2026-12-01T00:00:00Z"),
            ),
            // Too early: nothing happens.
            (HeartbeatSignal::Deadline, at("2026-12-01T00:01:09Z")),
            (HeartbeatSignal::Deadline, at("2026-12-01T00:01:10Z")),
            // Again (a runner died before settling): no second trigger.
            (HeartbeatSignal::Deadline, at("2026-12-01T00:01:20Z")),
            (ping(PingKind::Success), at("2026-12-01T00:02:00Z")),
        ],
    );
    assert_eq!(plans[1].state.status, HeartbeatStatus::Up);
    assert!(plans[1].events.is_empty());
    assert_eq!(plans[2].state.status, HeartbeatStatus::Late);
    assert_eq!(plans[2].state.since, at("2026-12-01T00:01:10Z"));
    assert_eq!(plans[2].state.deadline, None);
    let late = &plans[2].events[0];
    assert_eq!(late.integration, Integration::Heartbeat);
    assert!(late.summary.contains("is late"), "{}", late.summary);
    assert_eq!(late.details["what"], "late");
    assert_eq!(late.details["last_ping"]["log"], "backup done");
    assert_eq!(late.details["last_ping"]["kind"], "success");
    assert!(plans[3].events.is_empty());
    assert_eq!(
        actions(&plans[4]),
        vec![(EventAction::Resolve, "heartbeat:backup".to_owned())]
    );
    assert_eq!(plans[4].state.status, HeartbeatStatus::Up);
    assert_eq!(plans[4].state.deadline, Some(at("2026-12-01T00:03:10Z")));
}

#[test]
fn a_failure_is_down_at_once_and_exit_codes_count() {
    let expectation = period(3600, 60);
    let plans = run(
        &expectation,
        vec![
            (ping(PingKind::Success), at("2026-12-01T00:00:00Z")),
            (
                ping_with(PingKind::of_exit_code(3), None, Some(3), "disk full"),
                at("2026-12-01T00:10:00Z"),
            ),
            (
                ping_with(PingKind::of_exit_code(0), None, Some(0), ""),
                at("2026-12-01T00:20:00Z"),
            ),
        ],
    );
    assert_eq!(plans[1].state.status, HeartbeatStatus::Failed);
    assert_eq!(plans[1].state.deadline, None);
    let failed = &plans[1].events[0];
    assert_eq!(failed.action, EventAction::Trigger);
    assert!(
        failed.summary.contains("exit status 3"),
        "{}",
        failed.summary
    );
    assert_eq!(failed.details["last_ping"]["log"], "disk full");
    assert_eq!(
        actions(&plans[2]),
        vec![(EventAction::Resolve, "heartbeat:backup".to_owned())]
    );
}

#[test]
fn logs_change_nothing() {
    let expectation = period(3600, 60);
    let plans = run(
        &expectation,
        vec![
            (ping(PingKind::Success), at("2026-12-01T00:00:00Z")),
            (
                ping_with(PingKind::Log, None, None, "step 2"),
                at("2026-12-01T00:30:00Z"),
            ),
        ],
    );
    assert_eq!(plans[1].state, plans[0].state);
    assert!(plans[1].events.is_empty());
    assert_eq!(
        plans[1].ping.as_ref().map(|ping| ping.body.as_str()),
        Some("step 2")
    );
}

#[test]
fn a_run_must_end_within_grace_and_its_duration_is_measured_by_run_id() {
    let expectation = period(3600, 60);
    let rid = "5f1c2a3e-8d0f-4d6e-9b2a-0c7d1e2f3a4b";
    let plans = run(
        &expectation,
        vec![
            (ping(PingKind::Success), at("2026-12-01T00:00:00Z")),
            (
                ping_with(PingKind::Start, Some(rid), None, ""),
                at("2026-12-01T00:30:00Z"),
            ),
            (
                ping_with(PingKind::Success, Some(rid), None, ""),
                at("2026-12-01T00:30:42Z"),
            ),
            (
                ping_with(PingKind::Start, Some(rid), None, ""),
                at("2026-12-01T01:00:00Z"),
            ),
            (HeartbeatSignal::Deadline, at("2026-12-01T01:01:00Z")),
        ],
    );
    assert_eq!(plans[1].state.deadline, Some(at("2026-12-01T00:31:00Z")));
    assert_eq!(
        plans[2].ping.as_ref().and_then(|ping| ping.duration),
        Some(Duration::from_secs(42))
    );
    assert_eq!(plans[2].state.deadline, Some(at("2026-12-01T01:31:42Z")));
    assert_eq!(plans[4].state.status, HeartbeatStatus::Late);
}

#[test]
fn a_success_with_another_run_id_has_no_duration() {
    let expectation = period(3600, 60);
    let plans = run(
        &expectation,
        vec![
            (
                ping_with(
                    PingKind::Start,
                    Some("5f1c2a3e-8d0f-4d6e-9b2a-0c7d1e2f3a4b"),
                    None,
                    "",
                ),
                at("2026-12-01T00:30:00Z"),
            ),
            (
                ping_with(
                    PingKind::Success,
                    Some("00000000-0000-4000-8000-000000000000"),
                    None,
                    "",
                ),
                at("2026-12-01T00:30:42Z"),
            ),
        ],
    );
    assert_eq!(plans[1].ping.as_ref().and_then(|ping| ping.duration), None);
    assert_eq!(plans[1].state.started_at, None);
}

#[test]
fn too_many_starts_without_a_success_is_a_crash_loop_of_its_own() {
    let expectation = period(3600, 600);
    let start = || ping(PingKind::Start);
    let plans = run(
        &expectation,
        vec![
            (start(), at("2026-12-01T00:00:00Z")),
            (start(), at("2026-12-01T00:01:00Z")),
            (start(), at("2026-12-01T00:02:00Z")),
            (start(), at("2026-12-01T00:03:00Z")),
            (ping(PingKind::Success), at("2026-12-01T00:04:00Z")),
        ],
    );
    assert!(plans[1].events.is_empty(), "two starts are allowed");
    assert_eq!(
        actions(&plans[2]),
        vec![(
            EventAction::Trigger,
            "heartbeat:backup:crash-loop".to_owned()
        )]
    );
    assert!(
        plans[2].events[0].summary.contains("3 starts"),
        "{}",
        plans[2].events[0].summary
    );
    assert!(plans[3].events.is_empty(), "the crash loop pages once");
    assert_eq!(
        actions(&plans[4]),
        vec![(
            EventAction::Resolve,
            "heartbeat:backup:crash-loop".to_owned()
        )]
    );
    assert_eq!(plans[4].state.starts_without_success, 0);
}

#[test]
fn a_changed_expectation_moves_the_deadline_on_watch() {
    let state = plan_heartbeat(
        None,
        &input(
            &period(3600, 0),
            ping(PingKind::Success),
            at("2026-12-01T00:00:00Z"),
        ),
    )
    .state;
    let plan = plan_heartbeat(
        Some(&state),
        &input(
            &period(60, 0),
            HeartbeatSignal::Watch,
            at("2026-12-01T00:00:30Z"),
        ),
    );
    assert_eq!(plan.state.deadline, Some(at("2026-12-01T00:01:00Z")));
    assert!(plan.events.is_empty());
    assert!(plan.ping.is_none());
}

#[test]
fn kinds_and_statuses_round_trip() {
    for kind in [
        PingKind::Success,
        PingKind::Start,
        PingKind::Fail,
        PingKind::Log,
    ] {
        assert_eq!(PingKind::parse(kind.as_str()), Ok(kind));
    }
    for status in [
        HeartbeatStatus::New,
        HeartbeatStatus::Up,
        HeartbeatStatus::Late,
        HeartbeatStatus::Failed,
    ] {
        assert_eq!(HeartbeatStatus::parse(status.as_str()), Ok(status));
    }
    assert!(PingKind::parse("ok").is_err());
}

fn signal_strategy() -> impl Strategy<Value = HeartbeatSignal> {
    prop_oneof![
        Just(ping(PingKind::Success)),
        Just(ping(PingKind::Start)),
        Just(ping(PingKind::Fail)),
        Just(ping(PingKind::Log)),
        Just(HeartbeatSignal::Deadline),
        Just(HeartbeatSignal::Watch),
    ]
}

proptest! {
    /// Whatever happens, the down alert is triggered only by a change to down or a failure,
    /// resolved only on the way up, and a down monitor has no deadline while an up one has.
    #[test]
    fn alerts_follow_the_status(
        steps in proptest::collection::vec((signal_strategy(), 0u64..7_200), 1..40),
        period_seconds in 1u64..3_600,
        grace in 0u64..600,
    ) {
        let expectation = period(period_seconds, grace);
        let mut now = at("2026-12-01T00:00:00Z");
        let mut state: Option<HeartbeatState> = None;
        for (signal, gap) in steps {
            now = now.checked_add(jiff::SignedDuration::from_secs(gap as i64)).expect("time");
            let was_down = state.as_ref().is_some_and(|state| state.status.is_down());
            let plan = plan_heartbeat(state.as_ref(), &input(&expectation, signal.clone(), now));
            prop_assert_eq!(plan.state.deadline.is_none(), plan.state.status.is_down());
            if let Some(deadline) = plan.state.deadline {
                // A deadline always lies after the last success.
                prop_assert!(deadline >= plan.state.last_success_at.unwrap_or(plan.state.created_at));
            }
            for event in &plan.events {
                if event.dedup_key.as_str() == "heartbeat:backup" {
                    match event.action {
                        EventAction::Trigger => prop_assert!(plan.state.status.is_down()),
                        EventAction::Resolve => {
                            prop_assert!(was_down);
                            prop_assert_eq!(plan.state.status, HeartbeatStatus::Up);
                        }
                        EventAction::Acknowledge => prop_assert!(false, "never acknowledges"),
                    }
                }
            }
            if matches!(signal, HeartbeatSignal::Deadline) && was_down {
                prop_assert!(plan.events.is_empty(), "a down monitor is not late again");
            }
            state = Some(plan.state);
        }
    }
}
