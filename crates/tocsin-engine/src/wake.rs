//! In-process wake-ups: a write that makes work due now tells the task that does that work,
//! so it starts at once instead of at its next poll.
//!
//! Two of them: the due-work runner's (woken after a commit that scheduled an item due now,
//! such as the first escalation step of a new incident), and the outbox dispatcher's (woken
//! after a commit that queued notifications). A wake-up only shortens a wait: every waiter
//! still polls, so work written by another process or replica is found at the next poll, and
//! a wake-up that comes while nobody waits is not lost (the next wait returns at once).
//!
//! Beside them, [`Upcoming`]: the due times of items this process scheduled for later (the
//! next escalation level), so that the due-work runner sleeps until the first of them rather
//! than finding it at a poll up to one poll interval late.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tocsin_core::Timestamp;
use tokio::sync::watch;

/// Wakes every [`Wakeup`] subscribed to it. Waking costs no allocation and never blocks.
#[derive(Debug)]
pub struct Wake {
    sender: watch::Sender<()>,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            sender: watch::Sender::new(()),
        }
    }
}

impl Wake {
    /// Wakes every subscriber waiting now, and makes the next wait of every other subscriber
    /// return at once.
    pub fn wake(&self) {
        self.sender.send_modify(|()| {});
    }

    /// A new subscriber. Wake-ups before this call do not concern it.
    pub fn subscribe(&self) -> Wakeup {
        Wakeup {
            receiver: self.sender.subscribe(),
        }
    }
}

/// What a waiting task holds: [`Wakeup::woken`] returns after the next wake-up, or at once
/// when one came since the last time it returned (or since the subscription).
#[derive(Debug, Clone)]
pub struct Wakeup {
    receiver: watch::Receiver<()>,
}

impl Wakeup {
    /// Waits for a wake-up; cancel-safe (use it in `tokio::select!` with a poll timeout).
    pub async fn woken(&mut self) {
        if self.receiver.changed().await.is_err() {
            // The waking side is gone: only the poll wakes this task from now on.
            std::future::pending::<()>().await;
        }
    }
}

/// The wake-ups of one engine, shared by its ingest writer.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// The due-work runner's.
    pub due: Wake,
    /// The outbox dispatcher's.
    pub outbox: Wake,
    /// When items this process scheduled for later come due; the due-work runner wakes then.
    pub upcoming: Upcoming,
}

/// Due times noted at most; past this the latest are forgotten and found by the poll.
pub const MAX_UPCOMING: usize = 8_192;

/// Noted due times are rounded up to this, so that items due close together (the level-2
/// steps of a storm) cost the runner one wake-up, not one each.
pub const UPCOMING_GRAIN: Duration = Duration::from_millis(10);

/// The due times of items scheduled for later, earliest first, at most [`MAX_UPCOMING`] of
/// them. Only a hint: an item noted here is still found by the runner's poll if the note is
/// lost (forgotten when full, or written by another replica).
#[derive(Debug, Default)]
pub struct Upcoming {
    /// Milliseconds since the epoch, rounded up to [`UPCOMING_GRAIN`].
    times: Mutex<BTreeSet<i64>>,
}

impl Upcoming {
    /// Notes that an item comes due at `at`. When [`MAX_UPCOMING`] times are noted already, the
    /// latest one goes (or `at` is not noted, if it is the latest).
    pub fn note(&self, at: Timestamp) {
        let grain = UPCOMING_GRAIN.as_millis() as i64;
        let millis = at.as_millisecond().div_euclid(grain).saturating_add(1) * grain;
        let mut times = self
            .times
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if times.len() >= MAX_UPCOMING {
            match times.last() {
                Some(&latest) if latest > millis => {
                    times.pop_last();
                }
                _ => return,
            }
        }
        times.insert(millis);
    }

    /// The first noted time after `now`; the times up to `now` are dropped (they are due, and
    /// the run that follows finds their items).
    pub fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        let now = now.as_millisecond();
        let mut times = self
            .times
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(&first) = times.first() {
            if first > now {
                return Timestamp::from_millisecond(first).ok();
            }
            times.pop_first();
        }
        None
    }

    /// How many times are noted.
    pub fn len(&self) -> usize {
        self.times
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wake_up_reaches_a_waiter_and_is_kept_for_one_that_is_busy() {
        let wake = Wake::default();
        let mut waiting = wake.subscribe();
        let mut busy = wake.subscribe();
        let waiter = tokio::spawn(async move {
            waiting.woken().await;
        });
        tokio::task::yield_now().await;
        wake.wake();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("the waiter ran");
        // The busy subscriber was not waiting: its next wait returns at once, once.
        tokio::time::timeout(Duration::from_secs(5), busy.woken())
            .await
            .expect("kept");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), busy.woken())
                .await
                .is_err(),
            "one wake-up wakes once"
        );
    }

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millisecond(millis).expect("a valid instant")
    }

    #[test]
    fn upcoming_times_come_back_earliest_first_rounded_up_and_due_ones_are_dropped() {
        let upcoming = Upcoming::default();
        assert_eq!(upcoming.next_after(at(0)), None);
        upcoming.note(at(1_000_005));
        upcoming.note(at(1_000_001));
        upcoming.note(at(2_000_000));
        upcoming.note(at(1_500_000));
        // 1_000_001 and 1_000_005 share one 10 ms grain, after both of them.
        assert_eq!(upcoming.len(), 3);
        assert_eq!(upcoming.next_after(at(999_000)), Some(at(1_000_010)));
        assert_eq!(upcoming.next_after(at(1_000_010)), Some(at(1_500_010)));
        assert_eq!(upcoming.len(), 2);
        assert_eq!(upcoming.next_after(at(3_000_000)), None);
        assert!(upcoming.is_empty());
    }

    #[test]
    fn a_full_set_keeps_the_earliest_times() {
        let upcoming = Upcoming::default();
        for step in 0..MAX_UPCOMING as i64 {
            upcoming.note(at(1_000_000 + step * 100));
        }
        assert_eq!(upcoming.len(), MAX_UPCOMING);
        // Later than all: not noted. Earlier than all: noted, and the latest goes.
        upcoming.note(at(1_000_000 + MAX_UPCOMING as i64 * 100));
        upcoming.note(at(500_000));
        assert_eq!(upcoming.len(), MAX_UPCOMING);
        assert_eq!(upcoming.next_after(at(0)), Some(at(500_010)));
        let mut last = None;
        while let Some(next) = upcoming.next_after(last.unwrap_or(at(0))) {
            last = Some(next);
        }
        assert_eq!(
            last,
            Some(at(1_000_000 + (MAX_UPCOMING as i64 - 2) * 100 + 10)),
            "the latest noted time was forgotten to make room"
        );
    }

    #[tokio::test]
    async fn a_subscriber_does_not_see_earlier_wake_ups() {
        let wake = Wake::default();
        wake.wake();
        let mut late = wake.subscribe();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), late.woken())
                .await
                .is_err()
        );
    }
}
