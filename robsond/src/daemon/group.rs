//! Small batches of several partitions committed in one transaction.
//!
//! Under a steady load each read of the poller is split over the
//! partitions its events fall in: with 8 partitions, a read of 20 events
//! becomes 7 batches of about 3, each paying a transaction's fixed cost
//! (its statements and its commit). On a machine with fewer cores than
//! partitions those transactions wait for each other's CPU, and an event's
//! wait from commit to row grows with the partition count
//! (docs/performance.md, "Small batches in one transaction").
//!
//! A projector whose batch is small hands it to the [`Group`] and waits for
//! the verdict instead of opening a transaction of its own. A round of the
//! group (at most one per core at a time) takes every batch handed over by
//! the time its transaction has begun and applies them as one: one progress
//! lock, one row load, one write statement that also moves each partition's
//! checkpoint, one commit. Each projector still has one batch in progress
//! at a time and learns what its own batch did; nothing about ordering,
//! exactly-once or poison changes, because whenever a round cannot commit
//! cleanly — a write the database refuses, a stream presumed new that was
//! not, a transient error, a changed layout — it commits nothing and
//! answers [`Verdict::Alone`]: each projector then applies its batch on its
//! own, exactly as it would have without the group.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use robson_eventlog::{EventEnvelope, Position};
use robson_projector::{BatchOutcome, GroupsAttempt, PoisonPolicy};
use sqlx::PgPool;
use tokio::sync::oneshot;

use super::state::DaemonState;
use crate::progress::checkpoint::AdvanceMany;

/// What became of a batch handed to the group.
#[derive(Debug)]
pub enum Verdict {
    /// Committed with the others of its round; what it did.
    Committed(BatchOutcome),
    /// Not committed: the projector applies it on its own.
    Alone,
}

/// The group of one daemon's projectors.
#[derive(Debug)]
pub struct Group {
    pool: PgPool,
    state: Arc<DaemonState>,
    policy: PoisonPolicy,
    partitions: usize,
    /// A batch of fewer events than this joins the group.
    small: usize,
    /// A round takes batches up to this many events in all.
    round_events: usize,
    /// Rounds under way at once, at most.
    lanes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    waiting: Vec<Handed>,
    rounds: usize,
}

#[derive(Debug)]
struct Handed {
    partition: usize,
    events: Arc<Vec<EventEnvelope>>,
    upto: Position,
    reply: oneshot::Sender<Verdict>,
}

impl Group {
    /// `batch_size` is the daemon's `ROBSON_BATCH_SIZE`: a batch of under an
    /// eighth of it is small, a round holds at most that many events.
    /// (Batches of a read's burst, a hundred events each, are better
    /// committed in parallel than in one transaction.)
    pub fn new(
        pool: PgPool,
        state: Arc<DaemonState>,
        policy: PoisonPolicy,
        partitions: usize,
        batch_size: usize,
        lanes: usize,
    ) -> Self {
        Group {
            pool,
            state,
            policy,
            partitions,
            small: (batch_size / 8).max(2),
            round_events: batch_size.max(1),
            lanes: lanes.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether a batch of `events` events joins the group.
    pub fn takes(&self, events: usize) -> bool {
        events > 0 && events < self.small
    }

    /// Hands partition `partition`'s batch to the group and waits for what
    /// became of it. Must run inside the actix system (a round is spawned
    /// on the caller's thread).
    pub async fn commit(
        self: &Arc<Self>,
        partition: usize,
        events: Arc<Vec<EventEnvelope>>,
        upto: Position,
    ) -> Verdict {
        let (reply, verdict) = oneshot::channel();
        let lead = {
            let mut inner = self.lock();
            inner.waiting.push(Handed {
                partition,
                events,
                upto,
                reply,
            });
            let lead = inner.rounds < self.lanes;
            if lead {
                inner.rounds += 1;
            }
            lead
        };
        if lead {
            actix::spawn(self.clone().rounds());
        }
        // A round dropped before it answered (the daemon stops) leaves the
        // batch to its projector.
        verdict.await.unwrap_or(Verdict::Alone)
    }

    /// Rounds one after the other while batches wait; then this lane ends.
    async fn rounds(self: Arc<Self>) {
        while !self.end_lane_if_idle() {
            tokio::select! {
                round = AssertUnwindSafe(self.round()).catch_unwind() => {
                    // A panic drops the round's answers: its projectors
                    // apply their batches alone (and meet it themselves).
                    if round.is_err() {
                        tracing::error!("Panic in a group of batches; each goes alone.");
                    }
                }
                _ = self.state.lifecycle.aborted() => {
                    // What still waits goes back to its projectors, which
                    // see the abort themselves.
                    for handed in self.take_all() {
                        let _ = handed.reply.send(Verdict::Alone);
                    }
                    self.lock().rounds -= 1;
                    return;
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends this lane when nothing waits (looked at under the lock, so that
    /// a batch handed over just after starts a lane of its own).
    fn end_lane_if_idle(&self) -> bool {
        let mut inner = self.lock();
        if inner.waiting.is_empty() {
            inner.rounds -= 1;
            return true;
        }
        false
    }

    fn take_all(&self) -> Vec<Handed> {
        std::mem::take(&mut self.lock().waiting)
    }

    /// The batches waiting, oldest first, up to [`Group::round_events`]
    /// events (at least one batch).
    fn take_round(&self) -> Vec<Handed> {
        let mut inner = self.lock();
        let mut events = 0;
        let mut count = 0;
        for handed in &inner.waiting {
            events += handed.events.len();
            if count > 0 && events > self.round_events {
                break;
            }
            count += 1;
        }
        inner.waiting.drain(..count).collect()
    }

    /// One round: a transaction begun, then the batches waiting by then
    /// applied in it and committed, each answered.
    async fn round(&self) {
        let tx = self.pool.begin().await;
        let taken = self.take_round();
        if taken.is_empty() {
            return;
        }
        let verdicts = match tx {
            Ok(tx) => self.apply(tx, &taken).await,
            Err(err) => {
                tracing::debug!(error = %err, "No transaction for a group of batches; each goes alone.");
                None
            }
        };
        match verdicts {
            Some(outcomes) => {
                for (handed, outcome) in taken.into_iter().zip(outcomes) {
                    let _ = handed.reply.send(Verdict::Committed(outcome));
                }
            }
            None => {
                for handed in taken {
                    let _ = handed.reply.send(Verdict::Alone);
                }
            }
        }
    }

    /// The batches applied and committed in `tx`: one outcome per batch,
    /// or None when nothing was committed.
    async fn apply(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        taken: &[Handed],
    ) -> Option<Vec<BatchOutcome>> {
        let groups: Vec<&[EventEnvelope]> = taken.iter().map(|h| &h.events[..]).collect();
        let advance = AdvanceMany {
            partitions: self.partitions,
            owner: self.state.instance.clone(),
            each: taken.iter().map(|h| (h.partition, h.upto)).collect(),
        };
        let tried =
            robson_projector::try_apply_groups_with(&mut tx, &groups, self.policy, &advance).await;
        let outcomes = match tried {
            Ok((GroupsAttempt::Applied(outcomes), moved)) if moved as usize == taken.len() => {
                outcomes
            }
            Ok(_) => return None,
            Err(err) => {
                tracing::debug!(error = %err, "A group of batches failed; each goes alone.");
                return None;
            }
        };
        tx.commit().await.ok()?;
        Some(outcomes)
    }
}
