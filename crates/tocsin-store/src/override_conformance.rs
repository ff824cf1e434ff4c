//! The schedule override conformance suite: what every backend must do with overrides.
//!
//! A backend's tests call `tocsin_store::override_suite!(make_store)` with the same `make_store`
//! as `conformance_suite!`. Compiled with the `testsuite` feature only.

use std::sync::Arc;

use tocsin_core::Timestamp;

use crate::{NewOverride, OverrideFilter, PageRequest, Store, StoreError};

/// Generates one `#[tokio::test]` per override conformance case.
#[macro_export]
macro_rules! override_suite {
    ($make:path) => {
        $crate::override_suite!(@cases $make;
            overrides_are_created_read_listed_and_deleted,
            an_override_that_does_not_end_after_its_start_is_refused_and_nothing_is_stored,
            override_lists_filter_by_schedule_and_overlapping_range,
            override_lists_paginate_newest_first_with_a_hard_maximum,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some((store, guard)) = $make().await {
                    $crate::override_conformance::$case(store).await;
                    drop(guard);
                }
            }
        )*
    };
}

fn hour(hour: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + hour * 3600).expect("valid timestamp")
}

fn new_override(schedule: &str, start: i64, end: i64, user: &str) -> NewOverride {
    NewOverride {
        schedule: schedule.to_owned(),
        start: hour(start),
        end: hour(end),
        user: user.to_owned(),
        replaces: None,
        created_by: "token:conformance".to_owned(),
    }
}

async fn all_ids(store: &dyn Store, filter: &OverrideFilter) -> Vec<i64> {
    store
        .overrides(filter, PageRequest::first(500))
        .await
        .expect("list overrides")
        .items
        .iter()
        .map(|row| row.id)
        .collect()
}

pub async fn overrides_are_created_read_listed_and_deleted(store: Arc<dyn Store>) {
    let covering = store
        .create_override(&new_override("primary", 0, 8, "ana"), hour(-1))
        .await
        .expect("create");
    assert_eq!(covering.schedule, "primary");
    assert_eq!(covering.start, hour(0));
    assert_eq!(covering.end, hour(8));
    assert_eq!(covering.user, "ana");
    assert_eq!(covering.replaces, None);
    assert_eq!(covering.created_by, "token:conformance");
    assert_eq!(covering.created_at, hour(-1));
    let replacing = store
        .create_override(
            &NewOverride {
                replaces: Some("ben".to_owned()),
                ..new_override("primary", 4, 12, "chen")
            },
            hour(-1),
        )
        .await
        .expect("create");
    assert_eq!(replacing.replaces.as_deref(), Some("ben"));
    assert!(replacing.id > covering.id);
    assert_eq!(
        store
            .schedule_override("primary", replacing.id)
            .await
            .expect("read"),
        replacing
    );
    let listed = store
        .overrides(&OverrideFilter::default(), PageRequest::first(50))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![replacing.clone(), covering.clone()]);
    assert_eq!(listed.next, None);
    // Another schedule's id is not found, and deleting through it deletes nothing.
    assert!(matches!(
        store.delete_override("secondary", covering.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.schedule_override("secondary", covering.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let deleted = store
        .delete_override("primary", covering.id)
        .await
        .expect("delete");
    assert_eq!(deleted, covering);
    assert!(matches!(
        store.delete_override("primary", covering.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.schedule_override("primary", covering.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        all_ids(store.as_ref(), &OverrideFilter::default()).await,
        vec![replacing.id]
    );
    // Ids are never given again.
    let next = store
        .create_override(&new_override("primary", 0, 1, "ana"), hour(0))
        .await
        .expect("create");
    assert!(next.id > replacing.id);
}

pub async fn an_override_that_does_not_end_after_its_start_is_refused_and_nothing_is_stored(
    store: Arc<dyn Store>,
) {
    for (start, end) in [(5, 5), (5, 4)] {
        match store
            .create_override(&new_override("primary", start, end, "ana"), hour(0))
            .await
        {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains("end"), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    match store
        .create_override(&new_override("primary", 0, 1, "an\0a"), hour(0))
        .await
    {
        Err(StoreError::Invalid(message)) => assert!(message.contains("user"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(all_ids(store.as_ref(), &OverrideFilter::default())
        .await
        .is_empty());
    // A NUL in a filter or id finds nothing rather than failing.
    assert!(all_ids(
        store.as_ref(),
        &OverrideFilter {
            schedule: Some("pri\0mary".to_owned()),
            ..OverrideFilter::default()
        }
    )
    .await
    .is_empty());
    assert!(matches!(
        store.delete_override("pri\0mary", 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn override_lists_filter_by_schedule_and_overlapping_range(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for (schedule, start, end) in [
        ("primary", 0, 10),
        ("primary", 10, 20),
        ("primary", 20, 30),
        ("secondary", 5, 25),
    ] {
        ids.push(
            store
                .create_override(&new_override(schedule, start, end, "ana"), hour(0))
                .await
                .expect("create")
                .id,
        );
    }
    let primary = |from: Option<i64>, to: Option<i64>| OverrideFilter {
        schedule: Some("primary".to_owned()),
        from: from.map(hour),
        to: to.map(hour),
    };
    let store = store.as_ref();
    assert_eq!(
        all_ids(store, &primary(None, None)).await,
        vec![ids[2], ids[1], ids[0]]
    );
    // Overlapping [from, to): an override ending at `from` or starting at `to` does not.
    assert_eq!(
        all_ids(store, &primary(Some(10), Some(20))).await,
        vec![ids[1]]
    );
    assert_eq!(
        all_ids(store, &primary(Some(9), Some(11))).await,
        vec![ids[1], ids[0]]
    );
    assert_eq!(all_ids(store, &primary(Some(25), None)).await, vec![ids[2]]);
    assert_eq!(all_ids(store, &primary(None, Some(1))).await, vec![ids[0]]);
    assert!(all_ids(store, &primary(Some(30), Some(40)))
        .await
        .is_empty());
    assert_eq!(
        all_ids(
            store,
            &OverrideFilter {
                from: Some(hour(12)),
                to: Some(hour(13)),
                ..OverrideFilter::default()
            }
        )
        .await,
        vec![ids[3], ids[1]]
    );
    assert!(all_ids(
        store,
        &OverrideFilter {
            schedule: Some("nobody".to_owned()),
            ..OverrideFilter::default()
        }
    )
    .await
    .is_empty());
}

pub async fn override_lists_paginate_newest_first_with_a_hard_maximum(store: Arc<dyn Store>) {
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(
            store
                .create_override(&new_override("primary", n, n + 1, "ana"), hour(0))
                .await
                .expect("create")
                .id,
        );
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let listed = store
            .overrides(&OverrideFilter::default(), page)
            .await
            .expect("list");
        assert!(listed.items.len() <= 3);
        seen.extend(listed.items.iter().map(|row| row.id));
        match listed.next {
            Some(next) => page = PageRequest::new(Some(next), 3),
            None => break,
        }
    }
    assert_eq!(seen, created, "every override once, newest first");
    assert_eq!(
        PageRequest::new(None, 100_000).limit(),
        PageRequest::MAX_LIMIT
    );
}
