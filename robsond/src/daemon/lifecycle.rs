//! The daemon's lifecycle signals, shared by every actor through
//! [`super::state::DaemonState`]:
//!
//! - **stop** (SIGTERM/SIGINT): stop reading; a unit of work in transient
//!   backoff, or a projector pausing before a restart, gives up at once
//!   (its batch did not commit and is read again on the next start); work
//!   that is talking to the database goes on and may commit;
//! - **abort** (the drain limit is reached, or the drain is over): every
//!   unit of database work still running is dropped where it stands, inside
//!   the runtime, so no connection outlives the actor system;
//! - **layout**: the partition layout in the database differs from the one
//!   this daemon runs; `app::run` re-creates the daemon for it;
//! - **poller wake-up**: a partition was taken (its projector must be fed
//!   from its checkpoint now, not at the next notification or poll).
//!
//! Nothing here decides anything; it only carries the decision to every
//! loop that must hear it without polling.

use std::sync::OnceLock;

use tokio::sync::watch;

/// See the module documentation.
#[derive(Debug)]
pub struct Lifecycle {
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    layout: watch::Sender<Option<usize>>,
    poller: tokio::sync::Notify,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            stop: watch::Sender::new(false),
            abort: watch::Sender::new(false),
            layout: watch::Sender::new(None),
            poller: tokio::sync::Notify::new(),
        }
    }
}

impl Lifecycle {
    /// Asks every loop to stop reading and every backoff to end.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once [`Lifecycle::stop`] (or [`Lifecycle::abort`]) was called.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Abandons every unit of database work still running.
    pub fn abort(&self) {
        self.stop();
        self.abort.send_replace(true);
    }

    pub fn is_aborted(&self) -> bool {
        *self.abort.borrow()
    }

    /// Resolves once [`Lifecycle::abort`] was called.
    pub async fn aborted(&self) {
        let mut rx = self.abort.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The database holds a layout of `partitions` partitions, not the one
    /// this daemon runs: re-create the daemon for it.
    pub fn adopt_layout(&self, partitions: usize) {
        self.layout.send_replace(Some(partitions));
    }

    /// Makes the poller's next (or current) wait end at once.
    pub fn wake_poller(&self) {
        self.poller.notify_one();
    }

    /// Resolves at the next [`Lifecycle::wake_poller`] (or at once for one
    /// that came while nobody waited).
    pub async fn poller_woken(&self) {
        self.poller.notified().await;
    }

    /// Resolves with the partition count to adopt, once there is one.
    pub async fn layout_changed(&self) -> usize {
        let mut rx = self.layout.subscribe();
        let seen = rx.wait_for(Option::is_some).await.map(|n| *n);
        match seen {
            Ok(Some(n)) => n,
            // The sender lives as long as `self`: never reached.
            _ => std::future::pending().await,
        }
    }
}

/// `ROBSON_PARTITIONS` of this process, which may differ from the layout it
/// runs (the database's layout wins while instances configured with it are
/// live). Set once by `app::run`; a daemon built without it (in-process
/// tests) counts as configured with the layout it runs.
static CONFIGURED_PARTITIONS: OnceLock<usize> = OnceLock::new();

/// Records the operator's `ROBSON_PARTITIONS` (the first call wins).
pub fn set_configured_partitions(partitions: usize) {
    let _ = CONFIGURED_PARTITIONS.set(partitions);
}

/// The operator's `ROBSON_PARTITIONS`, or `running` when it was not recorded.
pub fn configured_partitions(running: usize) -> usize {
    CONFIGURED_PARTITIONS.get().copied().unwrap_or(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_and_abort_wake_waiters_that_came_before_and_after() {
        let life = std::sync::Arc::new(Lifecycle::default());
        let early = tokio::spawn({
            let life = life.clone();
            async move { life.stopped().await }
        });
        assert!(!life.is_stopping());
        life.abort();
        early.await.expect("the waiter ends");
        life.stopped().await;
        life.aborted().await;
        assert!(life.is_stopping() && life.is_aborted());
    }

    #[tokio::test]
    async fn a_layout_to_adopt_is_seen_by_a_later_waiter() {
        let life = Lifecycle::default();
        life.adopt_layout(7);
        assert_eq!(life.layout_changed().await, 7);
    }
}
