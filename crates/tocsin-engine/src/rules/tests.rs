use super::*;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("timestamp")
}

fn event(service: &str, severity: Severity, source: &str, second: i64) -> Event {
    Event {
        service: ServiceId::new(service),
        integration: Integration::EventsV2,
        action: EventAction::Trigger,
        dedup_key: DedupKey::parse("k").unwrap(),
        severity,
        summary: "s".to_owned(),
        source: source.to_owned(),
        occurred_at: None,
        received_at: at(second),
        details: json!({"component": "postgres"}),
    }
}

fn rate(above: u64, baseline: Option<Baseline>) -> RuleDefinition {
    RuleDefinition {
        id: "storm".to_owned(),
        service: ServiceId::new("api"),
        condition: RuleCondition::Rate { above, baseline },
        matches: EventMatch {
            severity: Some(Severity::Error),
            ..EventMatch::default()
        },
        window: Duration::from_secs(60),
    }
}

fn absence() -> RuleDefinition {
    RuleDefinition {
        id: "quiet".to_owned(),
        service: ServiceId::new("api"),
        condition: RuleCondition::Absence,
        matches: EventMatch {
            source: Some("log-shipper".to_owned()),
            component: Some("postgres".to_owned()),
            ..EventMatch::default()
        },
        window: Duration::from_secs(300),
    }
}

/// Ticks and confirms every change, returning (firing, summary) of each.
fn tick(rules: &RuleSet, second: i64) -> Vec<(bool, String)> {
    let changes = rules.tick(at(second));
    for change in &changes {
        rules.confirm(&change.rule, change.firing);
    }
    changes
        .into_iter()
        .map(|change| (change.firing, change.event.summary))
        .collect()
}

#[test]
fn a_rate_rule_fires_above_n_in_the_window_and_resolves_when_it_slides_out() {
    let rules = RuleSet::new(vec![rate(3, None)], at(0));
    // The first evaluation records the rule's state (a resolve clears what an earlier
    // process may have left open).
    assert_eq!(
        tick(&rules, 0),
        vec![(false, "Rule storm: event rate back to normal".to_owned())]
    );
    let errors: Vec<_> = (0..4)
        .map(|n| event("api", Severity::Error, "web", 10 + n))
        .collect();
    // Other services, severities and rule events do not count.
    let mut others = vec![
        event("db", Severity::Error, "web", 10),
        event("api", Severity::Warning, "web", 10),
    ];
    let mut own = event("api", Severity::Error, "web", 10);
    own.integration = Integration::Rule;
    others.push(own);
    rules.observe(&others);
    rules.observe(&errors[..3]);
    assert!(tick(&rules, 20).is_empty(), "3 is not more than 3");
    rules.observe(&errors[3..]);
    let fired = tick(&rules, 20);
    assert_eq!(fired.len(), 1);
    assert!(fired[0].0);
    assert!(
        fired[0].1.contains("4 matching events in 1m"),
        "{}",
        fired[0].1
    );
    assert!(tick(&rules, 30).is_empty(), "fires once");
    // The window at t is (t - 60 s, t]: the event of second 10 leaves it at 70.
    assert!(tick(&rules, 69).is_empty());
    let resolved = tick(&rules, 70);
    assert_eq!(resolved.len(), 1);
    assert!(!resolved[0].0);
}

#[test]
fn an_unconfirmed_change_is_offered_again() {
    let rules = RuleSet::new(vec![rate(0, None)], at(0));
    tick(&rules, 0);
    rules.observe(&[event("api", Severity::Error, "web", 1)]);
    assert_eq!(rules.tick(at(2)).len(), 1);
    assert_eq!(rules.tick(at(3)).len(), 1, "not confirmed: offered again");
}

#[test]
fn a_baseline_rule_fires_only_above_k_times_the_trailing_average() {
    let baseline = Baseline {
        factor: 3,
        window: Duration::from_secs(600),
    };
    let rules = RuleSet::new(vec![rate(5, Some(baseline))], at(0));
    tick(&rules, 0);
    // Ten windows of 10 events each: busy, but normal for this service.
    let mut second = 0;
    for window in 0..10 {
        let events: Vec<_> = (0..10)
            .map(|n| event("api", Severity::Error, "web", window * 60 + n))
            .collect();
        rules.observe(&events);
        second = window * 60 + 30;
        assert!(
            tick(&rules, second).is_empty(),
            "10 a minute is the baseline (window {window})"
        );
    }
    // 25 in the next minute: above 5, but not above 3 x 10.
    let events: Vec<_> = (0..25)
        .map(|n| event("api", Severity::Error, "web", 600 + n))
        .collect();
    rules.observe(&events);
    assert!(tick(&rules, 630).is_empty());
    // 40 in the following minute: above 3 x the average.
    let events: Vec<_> = (0..40)
        .map(|n| event("api", Severity::Error, "web", 660 + n))
        .collect();
    rules.observe(&events);
    let fired = tick(&rules, 700);
    assert_eq!(fired.len(), 1, "after {second}");
    assert!(fired[0].0);
}

#[test]
fn an_absence_rule_fires_when_the_source_goes_quiet_and_resolves_when_it_speaks() {
    let rules = RuleSet::new(vec![absence()], at(0));
    assert_eq!(tick(&rules, 0).len(), 1, "first state recorded");
    rules.observe(&[event("api", Severity::Info, "log-shipper", 100)]);
    // A non-matching source does not keep it alive.
    rules.observe(&[event("api", Severity::Info, "other", 390)]);
    assert!(tick(&rules, 399).is_empty());
    let fired = tick(&rules, 400);
    assert_eq!(fired.len(), 1);
    assert!(fired[0].0);
    assert!(
        fired[0].1.contains("no matching event for 5m"),
        "{}",
        fired[0].1
    );
    rules.observe(&[event("api", Severity::Info, "log-shipper", 401)]);
    let resolved = tick(&rules, 402);
    assert_eq!(
        resolved,
        vec![(false, "Rule quiet: matching events arrive again".to_owned())]
    );
}

#[test]
fn an_absence_rule_counts_from_when_it_started() {
    let rules = RuleSet::new(vec![absence()], at(1_000));
    tick(&rules, 1_000);
    assert!(tick(&rules, 1_299).is_empty());
    let fired = tick(&rules, 1_300);
    assert!(fired[0].0);
    assert!(fired[0].1.contains("none since"), "{}", fired[0].1);
}

#[test]
fn replacing_keeps_unchanged_rules_and_restarts_changed_ones() {
    let rules = RuleSet::new(vec![rate(0, None), absence()], at(0));
    tick(&rules, 0);
    rules.observe(&[event("api", Severity::Error, "web", 1)]);
    assert_eq!(tick(&rules, 2).len(), 1, "storm fires");
    let mut changed = absence();
    changed.window = Duration::from_secs(60);
    rules.replace(vec![rate(0, None), changed], at(3));
    assert_eq!(rules.len(), 2);
    let changes = tick(&rules, 4);
    // The unchanged rate rule keeps its state; the changed absence rule reports afresh.
    assert_eq!(changes.len(), 1);
    assert!(!changes[0].0);
}

#[test]
fn memory_is_bounded_whatever_the_rate() {
    let baseline = Baseline {
        factor: 2,
        window: Duration::from_secs(86_400 * 30),
    };
    let mut definition = rate(10, Some(baseline));
    definition.window = Duration::from_secs(1);
    let rules = RuleSet::new(vec![definition], at(0));
    for second in 0..3_000 {
        rules.observe(&[event("api", Severity::Error, "web", second)]);
    }
    tick(&rules, 3_000);
    let state = &rules.lock()[0];
    assert_eq!(state.counts.counters.len(), WINDOW_BUCKETS);
    assert!(state.history.len() <= MAX_BASELINE_WINDOWS);
}
