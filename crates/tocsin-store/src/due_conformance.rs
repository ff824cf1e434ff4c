//! The due-work conformance suite: what every backend's queue must do, with two stores on one
//! database, as two processes or two replicas would have.
//!
//! A backend's tests call `tocsin_store::due_work_suite!(make_pair)` where `make_pair` is an
//! async fn returning `Option<DuePair>`: two stores opened separately on one fresh, empty,
//! migrated database, and a guard that removes the database when dropped (`None` when the
//! backend is not available here; the function prints why).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tocsin_core::Timestamp;

use crate::due::{
    ClaimRequest, ClaimedDueItem, ClaimerId, DueKey, DueKind, DueWorkStore, NewDueItem, Settled,
    WhenScheduled,
};

/// Two stores on one database, and what removes that database.
pub struct DuePair {
    pub first: Arc<dyn DueWorkStore>,
    pub second: Arc<dyn DueWorkStore>,
    /// Dropped after the stores: removes the database.
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[tokio::test]` per due-work conformance case.
#[macro_export]
macro_rules! due_work_suite {
    ($make:path) => {
        $crate::due_work_suite!(@cases $make;
            two_stores_claim_a_thousand_items_and_run_each_once,
            an_expired_lease_is_taken_over_by_the_other_store,
            a_claimer_that_dies_before_settling_is_run_again_and_its_effect_stays_once,
            items_not_yet_due_or_of_other_kinds_are_not_claimed,
            scheduling_again_is_idempotent_and_a_schedule_made_during_a_run_stands,
            many_items_are_scheduled_in_one_call_as_one_by_one,
            failed_items_are_retried_later_or_parked,
            a_renewed_lease_holds_and_a_released_item_is_claimable_at_once,
            bad_claim_limits_are_clamped,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(pair) = $make().await {
                    $crate::due_conformance::$case(pair).await;
                }
            }
        )*
    };
}

const WORK: DueKind = DueKind::from_static("conformance.work");
const EFFECT: DueKind = DueKind::from_static("conformance.effect");
const OTHER: DueKind = DueKind::from_static("conformance.other");

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("valid timestamp")
}

fn key(key: &str) -> DueKey {
    DueKey::parse(key).expect("valid key")
}

fn claimer(name: &str) -> ClaimerId {
    ClaimerId::parse(name).expect("valid claimer")
}

fn item(kind: &DueKind, name: &str, due: i64) -> NewDueItem {
    NewDueItem::new(kind.clone(), key(name), &json!({ "name": name }), at(due)).expect("item")
}

/// Claims `WORK` items due at `now` for `who`, leased for `lease` seconds.
async fn claim(
    store: &dyn DueWorkStore,
    who: &ClaimerId,
    now: i64,
    lease: i64,
    limit: usize,
) -> Vec<ClaimedDueItem> {
    store
        .claim(&ClaimRequest {
            kinds: &[WORK],
            claimer: who,
            now: at(now),
            lease_until: at(now + lease),
            limit,
        })
        .await
        .expect("claim")
}

pub async fn two_stores_claim_a_thousand_items_and_run_each_once(pair: DuePair) {
    const ITEMS: usize = 1_000;
    for n in 0..ITEMS {
        let store = if n % 2 == 0 {
            &pair.first
        } else {
            &pair.second
        };
        store
            .schedule(
                &item(&WORK, &format!("item-{n}"), 0),
                WhenScheduled::Keep,
                at(0),
            )
            .await
            .expect("schedule");
    }
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut claimers = Vec::new();
    // Two claimers on each store, all at once, in small batches so that their claims overlap.
    for index in 0..4 {
        let store = Arc::clone(if index % 2 == 0 {
            &pair.first
        } else {
            &pair.second
        });
        let runs = Arc::clone(&runs);
        claimers.push(tokio::spawn(async move {
            let who = claimer(&format!("claimer-{index}"));
            let mut ran = 0_usize;
            loop {
                let items = claim(store.as_ref(), &who, 10, 300, 20).await;
                if items.is_empty() {
                    return ran;
                }
                for item in items {
                    *runs
                        .lock()
                        .expect("runs")
                        .entry(item.key.as_str().to_owned())
                        .or_default() += 1;
                    assert_eq!(item.attempts, 1, "{} was claimed before", item.key);
                    assert_eq!(
                        store.complete(&item).await.expect("complete"),
                        Settled::Applied,
                        "{} was held by its claimer",
                        item.key
                    );
                    ran += 1;
                }
            }
        }));
    }
    let mut total = 0;
    for claimer in claimers {
        total += claimer.await.expect("claimer");
    }
    let runs = runs.lock().expect("runs").clone();
    assert_eq!(total, ITEMS, "every item ran once in all");
    assert_eq!(runs.len(), ITEMS, "every item ran");
    assert!(
        runs.values().all(|count| *count == 1),
        "no item ran twice: {:?}",
        runs.iter()
            .filter(|(_, count)| **count > 1)
            .collect::<Vec<_>>()
    );
    assert!(
        claim(pair.first.as_ref(), &claimer("late"), 1_000_000, 300, 500)
            .await
            .is_empty(),
        "completed items are gone"
    );
    assert_eq!(
        pair.second
            .due_item(&WORK, &key("item-999"))
            .await
            .expect("read"),
        None
    );
}

pub async fn an_expired_lease_is_taken_over_by_the_other_store(pair: DuePair) {
    let (a, b) = (claimer("store-a"), claimer("store-b"));
    pair.first
        .schedule(&item(&WORK, "sweep", 0), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    let held_by_a = claim(pair.first.as_ref(), &a, 0, 30, 10).await;
    assert_eq!(held_by_a.len(), 1);
    assert_eq!(held_by_a[0].lease.until, at(30));

    assert!(
        claim(pair.second.as_ref(), &b, 29, 30, 10).await.is_empty(),
        "a lease that has not ended is not taken over"
    );
    let held_by_b = claim(pair.second.as_ref(), &b, 30, 30, 10).await;
    assert_eq!(held_by_b.len(), 1, "an ended lease is taken over");
    assert_eq!(held_by_b[0].id, held_by_a[0].id);
    assert_eq!(held_by_b[0].attempts, 2);
    assert!(held_by_b[0].lease.claim > held_by_a[0].lease.claim);

    // The first claimer comes back: it can neither renew nor settle what is no longer its own.
    assert!(!pair
        .first
        .renew(&held_by_a[0], at(100))
        .await
        .expect("renew"));
    assert_eq!(
        pair.first.complete(&held_by_a[0]).await.expect("complete"),
        Settled::LeaseLost
    );
    assert_eq!(
        pair.first
            .retry(&held_by_a[0], Some(at(500)), "late", at(40))
            .await
            .expect("retry"),
        Settled::LeaseLost
    );
    let row = pair
        .second
        .due_item(&WORK, &key("sweep"))
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(row.claimed_by.as_deref(), Some("store-b"));
    assert_eq!(row.lease_until, Some(at(60)));
    assert_eq!(row.due_at, at(0), "the stale retry changed nothing");

    assert_eq!(
        pair.second.complete(&held_by_b[0]).await.expect("complete"),
        Settled::Applied
    );
    assert_eq!(
        pair.first
            .due_item(&WORK, &key("sweep"))
            .await
            .expect("read"),
        None
    );
}

pub async fn a_claimer_that_dies_before_settling_is_run_again_and_its_effect_stays_once(
    pair: DuePair,
) {
    // The item's effect is itself idempotent: it schedules a follow-up under a key derived from
    // the item, so running it twice leaves one follow-up.
    async fn run(store: &dyn DueWorkStore, item: &ClaimedDueItem, now: i64) -> bool {
        let follow_up = NewDueItem::new(
            EFFECT,
            key(&format!("after-{}", item.key)),
            &item.payload,
            at(now + 3_600),
        )
        .expect("follow-up");
        store
            .schedule(&follow_up, WhenScheduled::Keep, at(now))
            .await
            .expect("effect")
            .inserted
    }

    pair.first
        .schedule(&item(&WORK, "escalate-7", 0), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    let mut runs = 0;
    {
        let claimed = claim(pair.first.as_ref(), &claimer("dies"), 0, 30, 10).await;
        assert_eq!(claimed.len(), 1);
        assert!(
            run(pair.first.as_ref(), &claimed[0], 0).await,
            "first effect"
        );
        runs += 1;
        // The claimer dies here: its claim is dropped, never settled.
    }
    assert!(
        claim(pair.second.as_ref(), &claimer("survivor"), 10, 30, 10)
            .await
            .is_empty(),
        "the dead claimer's lease holds until it ends"
    );
    let claimed = claim(pair.second.as_ref(), &claimer("survivor"), 31, 30, 10).await;
    assert_eq!(claimed.len(), 1, "the item runs again after the lease");
    assert_eq!(claimed[0].attempts, 2);
    assert_eq!(claimed[0].payload, json!({ "name": "escalate-7" }));
    assert!(
        !run(pair.second.as_ref(), &claimed[0], 31).await,
        "the second run finds the effect done"
    );
    runs += 1;
    assert_eq!(
        pair.second.complete(&claimed[0]).await.expect("complete"),
        Settled::Applied
    );

    assert_eq!(runs, 2, "at least once: the item ran twice");
    let effect = pair
        .first
        .due_item(&EFFECT, &key("after-escalate-7"))
        .await
        .expect("read")
        .expect("the effect happened");
    assert_eq!(
        effect.due_at,
        at(3_600),
        "once: the first run's effect stands"
    );
    assert_eq!(effect.revision, 0);
    assert_eq!(
        pair.first
            .due_item(&WORK, &key("escalate-7"))
            .await
            .expect("read"),
        None
    );
}

pub async fn items_not_yet_due_or_of_other_kinds_are_not_claimed(pair: DuePair) {
    let who = claimer("claimer");
    pair.first
        .schedule(&item(&WORK, "later", 60), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    pair.first
        .schedule(
            &item(&OTHER, "from-a-newer-version", 0),
            WhenScheduled::Keep,
            at(0),
        )
        .await
        .expect("schedule");
    assert!(claim(pair.second.as_ref(), &who, 59, 30, 10)
        .await
        .is_empty());
    let claimed = claim(pair.second.as_ref(), &who, 60, 30, 10).await;
    assert_eq!(claimed.len(), 1, "due at its due time");
    assert_eq!(claimed[0].key, key("later"));
    assert_eq!(claimed[0].due_at, at(60));
    assert!(
        pair.second
            .claim(&ClaimRequest {
                kinds: &[],
                claimer: &who,
                now: at(1_000),
                lease_until: at(1_030),
                limit: 10,
            })
            .await
            .expect("claim")
            .is_empty(),
        "no kinds, nothing claimed"
    );
    // The kind no claimer asked for is left alone, untouched.
    let other = pair
        .first
        .due_item(&OTHER, &key("from-a-newer-version"))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!((other.attempts, other.claims), (0, 0));
    assert_eq!(other.claimed_by, None);
}

pub async fn many_items_are_scheduled_in_one_call_as_one_by_one(pair: DuePair) {
    let store = pair.first.as_ref();
    let existing = store
        .schedule(&item(&WORK, "m-1", 100), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    let items: Vec<NewDueItem> = (0..600)
        .map(|n| item(&WORK, &format!("m-{n}"), 10 + n))
        .collect();
    let placed = pair
        .second
        .schedule_many(&items, WhenScheduled::Keep, at(1))
        .await
        .expect("schedule many");
    assert_eq!(placed.len(), 600);
    assert!(placed[0].inserted && placed[2].inserted);
    assert_eq!(
        (placed[1].id, placed[1].due_at, placed[1].inserted),
        (existing.id, at(100), false),
        "keep leaves the item already scheduled as it was"
    );
    assert_eq!(placed[599].due_at, at(609));
    // Every one is there, once: all 600 come due by second 700.
    let claimed = store
        .claim(&ClaimRequest {
            kinds: &[WORK],
            claimer: &claimer("one"),
            now: at(700),
            lease_until: at(760),
            limit: 500,
        })
        .await
        .expect("claim");
    let more = store
        .claim(&ClaimRequest {
            kinds: &[WORK],
            claimer: &claimer("one"),
            now: at(700),
            lease_until: at(760),
            limit: 500,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len() + more.len(), 600);
    // Earlier moves an existing item forward, in the same call as new ones.
    let moved = store
        .schedule_many(
            &[item(&WORK, "m-1", 50), item(&WORK, "new", 5)],
            WhenScheduled::Earlier,
            at(2),
        )
        .await
        .expect("schedule many");
    assert_eq!(
        moved.iter().map(|placed| placed.due_at).collect::<Vec<_>>(),
        [at(50), at(5)]
    );
    assert!(store
        .schedule_many(&[], WhenScheduled::Keep, at(3))
        .await
        .expect("nothing")
        .is_empty());
    let too_many: Vec<NewDueItem> = (0..=crate::due::MAX_SCHEDULE_MANY)
        .map(|n| item(&OTHER, &format!("x-{n}"), 1))
        .collect();
    let error = store
        .schedule_many(&too_many, WhenScheduled::Keep, at(4))
        .await
        .expect_err("over the maximum");
    assert!(error.to_string().contains("at most"), "{error}");
    assert!(
        store
            .due_item(&OTHER, &key("x-0"))
            .await
            .expect("read")
            .is_none(),
        "nothing written"
    );
    drop(pair);
}

pub async fn scheduling_again_is_idempotent_and_a_schedule_made_during_a_run_stands(pair: DuePair) {
    let store = pair.first.as_ref();
    let first = store
        .schedule(&item(&WORK, "step", 100), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    assert!(first.inserted);
    // The same item again, from the other store: one row, nothing moved.
    let again = pair
        .second
        .schedule(&item(&WORK, "step", 100), WhenScheduled::Replace, at(1))
        .await
        .expect("schedule");
    assert_eq!(
        (again.id, again.due_at, again.inserted),
        (first.id, at(100), false)
    );
    let kept = store
        .schedule(&item(&WORK, "step", 50), WhenScheduled::Keep, at(2))
        .await
        .expect("schedule");
    assert_eq!(kept.due_at, at(100), "keep leaves the due time");
    let later = store
        .schedule(&item(&WORK, "step", 200), WhenScheduled::Earlier, at(3))
        .await
        .expect("schedule");
    assert_eq!(later.due_at, at(100), "earlier keeps the earlier time");
    let row = store
        .due_item(&WORK, &key("step"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.revision, 0, "no schedule so far changed the item");
    assert_eq!(row.created_at, at(0));
    let earlier = store
        .schedule(&item(&WORK, "step", 80), WhenScheduled::Earlier, at(4))
        .await
        .expect("schedule");
    assert_eq!(earlier.due_at, at(80));
    let moved = store
        .schedule(&item(&WORK, "step", 90), WhenScheduled::Replace, at(5))
        .await
        .expect("schedule");
    assert_eq!((moved.id, moved.due_at), (first.id, at(90)));

    let claimed = claim(pair.second.as_ref(), &claimer("runner"), 90, 1_000, 10).await;
    assert_eq!(claimed.len(), 1, "one row however often it was scheduled");
    // Scheduled anew while it runs: the lease stays, and completing does not delete the new
    // schedule.
    store
        .schedule(&item(&WORK, "step", 400), WhenScheduled::Replace, at(95))
        .await
        .expect("schedule");
    assert!(
        claim(store, &claimer("other"), 400, 30, 10)
            .await
            .is_empty(),
        "the lease still holds"
    );
    assert_eq!(
        pair.second.complete(&claimed[0]).await.expect("complete"),
        Settled::Superseded
    );
    let row = store
        .due_item(&WORK, &key("step"))
        .await
        .expect("read")
        .expect("the new schedule stands");
    assert_eq!(row.due_at, at(400));
    assert_eq!(row.claimed_by, None);
    let claimed = claim(store, &claimer("other"), 400, 30, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        store
            .reschedule(&claimed[0], at(500))
            .await
            .expect("reschedule"),
        Settled::Applied
    );
    let row = store
        .due_item(&WORK, &key("step"))
        .await
        .expect("read")
        .expect("recurring");
    assert_eq!(
        (row.due_at, row.attempts, row.claimed_by),
        (at(500), 0, None)
    );
}

pub async fn failed_items_are_retried_later_or_parked(pair: DuePair) {
    let store = pair.first.as_ref();
    let who = claimer("runner");
    store
        .schedule(&item(&WORK, "flaky", 0), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    let claimed = claim(store, &who, 0, 30, 10).await;
    assert_eq!(
        store
            .retry(&claimed[0], Some(at(20)), "smtp said 451\0", at(1))
            .await
            .expect("retry"),
        Settled::Applied
    );
    let row = store
        .due_item(&WORK, &key("flaky"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.due_at, row.attempts), (at(20), 1));
    assert_eq!(row.last_error.as_deref(), Some("smtp said 451\u{FFFD}"));
    assert!(claim(store, &who, 19, 30, 10).await.is_empty(), "backs off");

    let claimed = claim(pair.second.as_ref(), &who, 20, 30, 10).await;
    assert_eq!(claimed[0].attempts, 2);
    assert_eq!(
        pair.second
            .retry(&claimed[0], None, "gave up", at(21))
            .await
            .expect("park"),
        Settled::Applied
    );
    let row = store
        .due_item(&WORK, &key("flaky"))
        .await
        .expect("read")
        .expect("a parked item is kept");
    assert_eq!(row.parked_at, Some(at(21)));
    assert!(
        claim(store, &who, 10_000, 30, 10).await.is_empty(),
        "parked items are not claimed"
    );
    store
        .schedule(&item(&WORK, "flaky", 30), WhenScheduled::Keep, at(22))
        .await
        .expect("schedule");
    assert!(
        claim(store, &who, 10_000, 30, 10).await.is_empty(),
        "keep leaves it parked"
    );
    store
        .schedule(&item(&WORK, "flaky", 30), WhenScheduled::Replace, at(23))
        .await
        .expect("schedule");
    let claimed = claim(store, &who, 30, 30, 10).await;
    assert_eq!(claimed.len(), 1, "scheduled anew, it runs again");
    assert_eq!(claimed[0].attempts, 1);
    assert!(store.cancel(&WORK, &key("flaky")).await.expect("cancel"));
    assert_eq!(
        store.complete(&claimed[0]).await.expect("complete"),
        Settled::LeaseLost,
        "a cancelled item is gone for its claimer too"
    );
    assert!(!store.cancel(&WORK, &key("flaky")).await.expect("cancel"));
}

pub async fn a_renewed_lease_holds_and_a_released_item_is_claimable_at_once(pair: DuePair) {
    let (a, b) = (claimer("store-a"), claimer("store-b"));
    pair.first
        .schedule(&item(&WORK, "long", 0), WhenScheduled::Keep, at(0))
        .await
        .expect("schedule");
    let claimed = claim(pair.first.as_ref(), &a, 0, 30, 10).await;
    assert!(pair.first.renew(&claimed[0], at(90)).await.expect("renew"));
    assert!(
        claim(pair.second.as_ref(), &b, 60, 30, 10).await.is_empty(),
        "the renewed lease holds past the first one"
    );
    assert_eq!(
        pair.first.release(&claimed[0]).await.expect("release"),
        Settled::Applied
    );
    let row = pair
        .second
        .due_item(&WORK, &key("long"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.attempts, row.claimed_by), (0, None));
    let taken = claim(pair.second.as_ref(), &b, 61, 30, 10).await;
    assert_eq!(
        taken.len(),
        1,
        "released: claimable before its lease would have ended"
    );
    assert_eq!(taken[0].attempts, 1);
}

pub async fn bad_claim_limits_are_clamped(pair: DuePair) {
    let store = pair.first.as_ref();
    for n in 0..3 {
        store
            .schedule(
                &item(&WORK, &format!("n{n}"), n),
                WhenScheduled::Keep,
                at(0),
            )
            .await
            .expect("schedule");
    }
    let one = claim(store, &claimer("zero"), 10, 30, 0).await;
    assert_eq!(one.len(), 1, "a limit of 0 claims one");
    assert_eq!(one[0].key, key("n0"), "oldest due first");
    let rest = claim(store, &claimer("huge"), 10, 30, usize::MAX).await;
    assert_eq!(
        rest.iter()
            .map(|item| item.key.as_str())
            .collect::<Vec<_>>(),
        vec!["n1", "n2"]
    );
}
