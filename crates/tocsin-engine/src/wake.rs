//! In-process wake-ups: a write that makes work due now tells the task that does that work,
//! so it starts at once instead of at its next poll.
//!
//! Two of them: the due-work runner's (woken after a commit that scheduled an item due now,
//! such as the first escalation step of a new incident), and the outbox dispatcher's (woken
//! after a commit that queued notifications). A wake-up only shortens a wait: every waiter
//! still polls, so work written by another process or replica is found at the next poll, and
//! a wake-up that comes while nobody waits is not lost (the next wait returns at once).

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
