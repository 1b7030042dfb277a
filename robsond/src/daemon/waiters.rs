//! Read-your-writes (`GET /wait`): a registry of clients waiting for a
//! stream's progress to reach a seq. A projector that committed a batch
//! tells the registry how far the streams with waiters got
//! ([`Waiters::after_commit`]); no waiter polls the database.
//!
//! A new waiter's stream, and streams whose progress a batch's outcome
//! cannot say (events held behind a parked stream, an operator's catch-up),
//! are looked up by [`run_lookups`]: one query for all the streams asked
//! for since the last, so a thousand clients arriving at once cost a few
//! statements and one pooled connection, not a thousand. The same task re-checks every waited
//! stream every [`FALLBACK_EVERY`] in one query: streams owned by another
//! instance are committed there, and this is how a waiter here learns of it.
//!
//! Bounded: at most [`MAX_WAITERS`] at once (beyond: refused), each holding
//! one key of at most 200 characters and a oneshot channel.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use robson_eventlog::EventEnvelope;
use robson_projector::{BatchOutcome, PoisonPolicy};
use sqlx::PgPool;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};

/// Concurrent waiters per daemon.
pub const MAX_WAITERS: usize = 1024;

/// How often every waited stream is re-checked in the database (the path
/// for streams another instance projects).
pub const FALLBACK_EVERY: Duration = Duration::from_millis(250);

/// What a waiter learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The stream's progress is at `last_seq`, at or past the seq waited for.
    Reached { last_seq: i64 },
    /// The stream is parked at `parked_seq`, at or before the seq waited for.
    Parked { last_seq: i64, parked_seq: i64 },
    /// The daemon is shutting down.
    Closed,
}

impl Progress {
    /// The answer for a waiter on `seq`, given a stream's progress, if any.
    pub fn decide(seq: i64, last_seq: i64, parked_seq: Option<i64>) -> Option<Progress> {
        match parked_seq {
            Some(parked_seq) if parked_seq <= seq => Some(Progress::Parked {
                last_seq,
                parked_seq,
            }),
            _ if last_seq >= seq => Some(Progress::Reached { last_seq }),
            _ => None,
        }
    }
}

/// The registry was full or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// [`MAX_WAITERS`] clients already wait.
    #[error("too many waiters (at most {MAX_WAITERS})")]
    Full,
    /// The daemon is shutting down.
    #[error("shutting down")]
    Closed,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    seq: i64,
    tx: oneshot::Sender<Progress>,
    /// The stream's progress as last seen, while short of `seq`.
    last_seen: Option<i64>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    streams: HashMap<String, Vec<Entry>>,
    /// Streams to look up in the database soon.
    dirty: HashSet<String>,
}

#[derive(Debug)]
pub struct Waiters {
    inner: Mutex<Inner>,
    waiting: AtomicUsize,
    slots: Arc<Semaphore>,
    lookup: Notify,
    closed: AtomicBool,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters::new(MAX_WAITERS)
    }
}

/// One registered waiter; dropping it deregisters.
#[derive(Debug)]
pub struct Wait {
    waiters: Arc<Waiters>,
    key: String,
    id: u64,
    rx: oneshot::Receiver<Progress>,
    _slot: OwnedSemaphorePermit,
}

impl Wait {
    /// The answer, or None once `deadline` has passed.
    pub async fn until(&mut self, deadline: tokio::time::Instant) -> Option<Progress> {
        match tokio::time::timeout_at(deadline, &mut self.rx).await {
            Ok(Ok(p)) => Some(p),
            // The sender went with the registry entry: only on close.
            Ok(Err(_)) => Some(Progress::Closed),
            Err(_) => None,
        }
    }
}

impl Wait {
    /// The stream's progress as last seen while short of the seq (e.g. for
    /// a timeout's answer).
    pub fn last_seen(&self) -> Option<i64> {
        let inner = self.waiters.inner.lock().ok()?;
        inner
            .streams
            .get(&self.key)?
            .iter()
            .find(|e| e.id == self.id)?
            .last_seen
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.waiters.remove(&self.key, self.id);
    }
}

impl Waiters {
    pub fn new(max: usize) -> Waiters {
        Waiters {
            inner: Mutex::new(Inner::default()),
            waiting: AtomicUsize::new(0),
            slots: Arc::new(Semaphore::new(max)),
            lookup: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Registers a waiter for `key` reaching `seq` and asks for its
    /// stream's progress to be read once ([`run_lookups`], one query for
    /// every waiter that arrived meanwhile). Registered before that read, a
    /// waiter misses no commit: one before the read shows in it, one after
    /// wakes it.
    pub fn register(self: &Arc<Self>, key: &str, seq: i64) -> Result<Wait, Refused> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Refused::Closed);
        }
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Full)?;
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock().map_err(|_| Refused::Closed)?;
        let id = inner.next_id;
        inner.next_id += 1;
        inner
            .streams
            .entry(key.to_owned())
            .or_default()
            .push(Entry {
                id,
                seq,
                tx,
                last_seen: None,
            });
        self.waiting.fetch_add(1, Ordering::Relaxed);
        inner.dirty.insert(key.to_owned());
        drop(inner);
        self.lookup.notify_one();
        Ok(Wait {
            waiters: self.clone(),
            key: key.to_owned(),
            id,
            rx,
            _slot: slot,
        })
    }

    fn remove(&self, key: &str, id: u64) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(entries) = inner.streams.get_mut(key) {
            if let Some(i) = entries.iter().position(|e| e.id == id) {
                entries.swap_remove(i);
                self.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            if entries.is_empty() {
                inner.streams.remove(key);
            }
        }
    }

    /// Clients waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// `key`'s progress is known: answers its waiters that it settles.
    pub fn progressed(&self, key: &str, last_seq: i64, parked_seq: Option<i64>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(entries) = inner.streams.get_mut(key) else {
            return;
        };
        let mut i = 0;
        while i < entries.len() {
            if let Some(answer) = Progress::decide(entries[i].seq, last_seq, parked_seq) {
                let entry = entries.swap_remove(i);
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                // The waiter may have given up meanwhile: nobody to tell.
                let _ = entry.tx.send(answer);
            } else {
                entries[i].last_seen = Some(last_seq);
                i += 1;
            }
        }
        if entries.is_empty() {
            inner.streams.remove(key);
        }
    }

    /// Called by a projector after its batch of `events` committed with
    /// `outcome`: the streams with waiters reached their last seq in the
    /// batch, unless an event was held or (with `park`) dead-lettered.
    pub fn after_commit(
        &self,
        events: &[EventEnvelope],
        outcome: &BatchOutcome,
        policy: PoisonPolicy,
    ) {
        if self.waiting() == 0 {
            return;
        }
        let mut reached: HashMap<&str, i64> = HashMap::new();
        {
            let Ok(inner) = self.inner.lock() else {
                return;
            };
            for e in events {
                if inner.streams.contains_key(&e.stream_key) {
                    let seq = reached.entry(e.stream_key.as_str()).or_insert(e.seq);
                    *seq = (*seq).max(e.seq);
                }
            }
        }
        if reached.is_empty() {
            return;
        }
        if outcome.held > 0 {
            // Which streams were held is not in the outcome: look them up.
            self.look_up(reached.keys().map(|k| k.to_string()));
            return;
        }
        let mut parked: HashMap<&str, i64> = HashMap::new();
        if policy == PoisonPolicy::Park {
            for dl in &outcome.dead_lettered {
                let seq = parked.entry(dl.stream_key.as_str()).or_insert(dl.seq);
                *seq = (*seq).min(dl.seq);
            }
        }
        for (key, last_seq) in reached {
            match parked.get(key) {
                Some(&at) => self.progressed(key, at - 1, Some(at)),
                None => self.progressed(key, last_seq, None),
            }
        }
    }

    /// Asks [`run_lookups`] to read these streams' progress now.
    pub fn look_up(&self, keys: impl IntoIterator<Item = String>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.dirty.extend(keys);
        }
        self.lookup.notify_one();
    }

    /// Answers every waiter [`Progress::Closed`] and refuses new ones.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(mut inner) = self.inner.lock() {
            for (_, entries) in inner.streams.drain() {
                for e in entries {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    let _ = e.tx.send(Progress::Closed);
                }
            }
        }
        self.lookup.notify_one();
    }

    fn take_keys(&self, all: bool) -> Vec<String> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut keys: HashSet<String> = std::mem::take(&mut inner.dirty);
        if all {
            keys.extend(inner.streams.keys().cloned());
        }
        keys.retain(|k| inner.streams.contains_key(k));
        keys.into_iter().collect()
    }
}

/// Looks up the streams asked for, and every [`FALLBACK_EVERY`] every
/// waited stream, in one query each time; ends when the registry closes.
pub async fn run_lookups(waiters: Arc<Waiters>, pool: PgPool) {
    let mut fallback = tokio::time::interval(FALLBACK_EVERY);
    fallback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !waiters.closed.load(Ordering::Relaxed) {
        let all = tokio::select! {
            _ = waiters.lookup.notified() => false,
            _ = fallback.tick() => true,
        };
        let keys = waiters.take_keys(all);
        if keys.is_empty() {
            continue;
        }
        match crate::progress::streams::positions(&pool, &keys).await {
            Ok(rows) => {
                for (key, last_seq, parked_seq) in rows {
                    waiters.progressed(&key, last_seq, parked_seq);
                }
            }
            Err(err) => tracing::debug!(error = %err, "Could not look up waited streams."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_is_answered_when_its_seq_is_reached_or_parked_at_or_before() {
        assert_eq!(Progress::decide(3, 2, None), None);
        assert_eq!(
            Progress::decide(3, 3, None),
            Some(Progress::Reached { last_seq: 3 })
        );
        assert_eq!(
            Progress::decide(3, 1, Some(2)),
            Some(Progress::Parked {
                last_seq: 1,
                parked_seq: 2
            })
        );
        assert_eq!(
            Progress::decide(3, 2, Some(3)),
            Some(Progress::Parked {
                last_seq: 2,
                parked_seq: 3
            })
        );
        assert_eq!(
            Progress::decide(3, 4, Some(5)),
            Some(Progress::Reached { last_seq: 4 })
        );
    }

    #[tokio::test]
    async fn progress_wakes_only_the_waiters_it_settles_and_the_bound_holds() {
        let waiters = Arc::new(Waiters::new(3));
        let mut early = waiters.register("s", 2).expect("room");
        let late = waiters.register("s", 5).expect("room");
        let _other = waiters.register("t", 1).expect("room");
        assert_eq!(waiters.register("u", 1).err(), Some(Refused::Full));
        waiters.progressed("s", 3, None);
        let soon = tokio::time::Instant::now() + Duration::from_secs(1);
        assert_eq!(
            early.until(soon).await,
            Some(Progress::Reached { last_seq: 3 })
        );
        assert_eq!(waiters.waiting(), 2);
        drop(late);
        drop(early);
        assert_eq!(waiters.waiting(), 1);
        assert!(waiters.register("u", 1).is_ok(), "slots come back");
        waiters.close();
        assert_eq!(waiters.waiting(), 0);
        assert_eq!(waiters.register("u", 1).err(), Some(Refused::Closed));
    }
}
