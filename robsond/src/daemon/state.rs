//! State the actors share with the HTTP handlers: heartbeats, checkpoints,
//! restart counts, the database probe's verdict and the last lag sample.
//! Written by the actors, the probe and the sampler ([`super::view`]), read
//! by `/health` and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use robson_eventlog::{PartitionCoverage, Position};
use serde::Serialize;

use super::waiters::Waiters;

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Per-partition runtime state.
#[derive(Debug, Default)]
pub struct PartitionState {
    /// A projector of this instance runs the partition.
    pub owned: AtomicBool,
    pub checkpoint: AtomicI64,
    pub heartbeat_ms: AtomicI64,
    pub restarts: AtomicU64,
    /// Events routed to this partition and not yet committed.
    pub in_flight: AtomicI64,
    /// Batches handed to the projector and not yet taken up: the poller
    /// queues at most [`super::projector::QUEUED_BATCHES`] (see
    /// `poller::dispatch::send`).
    pub queued: AtomicUsize,
    /// Notified each time the projector takes a batch up.
    pub taken: tokio::sync::Notify,
    pub state: Mutex<&'static str>,
}

impl PartitionState {
    /// The projector took a batch up: one fewer queued (never below zero).
    pub fn took_batch(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.taken.notify_waiters();
    }

    pub fn beat(&self) {
        self.heartbeat_ms.store(now_millis(), Ordering::Relaxed);
    }

    pub fn set_state(&self, s: &'static str) {
        if let Ok(mut g) = self.state.lock() {
            *g = s;
        }
    }

    pub fn state(&self) -> &'static str {
        self.state.lock().map_or("unknown", |g| *g)
    }
}

/// One consistent view of the log's progress: every field is read in ONE
/// statement (one snapshot), so the head is never below a checkpoint and a
/// lag of 0 means every committed event up to the head is applied or held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LagSample {
    /// False until the first successful sample.
    pub sampled: bool,
    /// When the snapshot was taken (just before the statement was sent).
    pub sampled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub lag_events: i64,
    pub held_events: i64,
    pub max_stream_lag: i64,
    pub lag_seconds: f64,
    pub head_position: i64,
    pub parked_streams: i64,
    pub coverage: Vec<PartitionCoverage>,
    /// Each partition's checkpoint (global position) in the same snapshot,
    /// indexed by partition; empty before the checkpoints exist.
    pub checkpoints: Vec<i64>,
    /// How long committed events have waited behind an open transaction
    /// (0 when none does); see [`crate::progress::lag::sample`].
    pub read_blocked_seconds: f64,
    /// The transaction holding reading back, once it has for over
    /// [`crate::progress::lag::BLOCKED_AFTER`].
    pub blocked_by: Option<Blocker>,
}

/// The oldest open transaction, which commit-safe reading waits for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Blocker {
    pub pid: Option<i32>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub xact_age_seconds: Option<f64>,
    /// At most 200 characters, string literals masked.
    pub query: Option<String>,
    /// Set when the session's details cannot be read (privileges, or no
    /// session holds the transaction): what to do about it.
    pub note: Option<String>,
}

/// Everything `/health` reports, shared by all actors of one daemon.
#[derive(Debug)]
pub struct DaemonState {
    pub instance: String,
    pub partitions: Vec<PartitionState>,
    /// Owner instance of each partition, from the last ownership round.
    pub owners: Mutex<Vec<Option<String>>>,
    pub poller_heartbeat_ms: AtomicI64,
    pub poller_restarts: AtomicU64,
    /// The database probe's verdict (see [`super::probe`]); false until the
    /// first probe answers.
    pub database_up: AtomicBool,
    /// The supervisor runs: connected, bootstrapped, checkpoints prepared.
    pub started: AtomicBool,
    /// Clients of `/wait`, woken by the projectors' commits.
    pub waiters: Arc<Waiters>,
    pub lag: Mutex<LagSample>,
    pub shutting_down: AtomicBool,
    /// Stop, abort and layout-change signals (see `super::lifecycle`).
    pub lifecycle: super::lifecycle::Lifecycle,
    /// What the drift check found (`GET /verify`, `/health`).
    pub drift: super::drift::board::Board,
    /// Set by a projector whose batch did not commit: the poller reads again
    /// from this position (the oldest requested) before going on.
    rewind_to: Mutex<Option<Position>>,
}

impl DaemonState {
    pub fn new(instance: String, partitions: usize) -> Self {
        let now = now_millis();
        let parts = (0..partitions)
            .map(|_| {
                let p = PartitionState::default();
                p.heartbeat_ms.store(now, Ordering::Relaxed);
                p.set_state("starting");
                p
            })
            .collect();
        DaemonState {
            instance,
            owners: Mutex::new(vec![None; partitions]),
            partitions: parts,
            poller_heartbeat_ms: AtomicI64::new(now),
            poller_restarts: AtomicU64::new(0),
            database_up: AtomicBool::new(false),
            started: AtomicBool::new(false),
            waiters: Arc::new(Waiters::default()),
            lag: Mutex::new(LagSample::default()),
            shutting_down: AtomicBool::new(false),
            lifecycle: super::lifecycle::Lifecycle::default(),
            drift: super::drift::board::Board::default(),
            rewind_to: Mutex::new(None),
        }
    }

    pub fn poller_beat(&self) {
        self.poller_heartbeat_ms
            .store(now_millis(), Ordering::Relaxed);
    }

    /// A report from a user of the pool (poller, projector): a failure to
    /// reach the database marks it down at once; only the probe, which owns
    /// its own connection, marks it up again (within one probe interval).
    pub fn set_database_up(&self, up: bool) {
        if !up {
            self.database_up.store(false, Ordering::Relaxed);
        }
    }

    /// The probe's verdict; true when it changed.
    pub fn probe_result(&self, up: bool) -> bool {
        self.database_up.swap(up, Ordering::Relaxed) != up
    }

    /// Asks the poller to read again from `pos` (keeps the oldest request).
    pub fn request_rewind(&self, pos: Position) {
        if let Ok(mut g) = self.rewind_to.lock() {
            *g = Some(g.map_or(pos, |old| old.min(pos)));
        }
    }

    /// Takes the pending rewind request, if any.
    pub fn take_rewind(&self) -> Option<Position> {
        self.rewind_to.lock().ok().and_then(|mut g| g.take())
    }

    pub fn lag(&self) -> LagSample {
        self.lag.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Age in seconds of the oldest heartbeat among the poller and every
    /// projector this instance runs.
    pub fn heartbeat_age_seconds(&self) -> f64 {
        let oldest = self
            .partitions
            .iter()
            .filter(|p| p.owned.load(Ordering::Relaxed))
            .map(|p| p.heartbeat_ms.load(Ordering::Relaxed))
            .chain(std::iter::once(
                self.poller_heartbeat_ms.load(Ordering::Relaxed),
            ))
            .min()
            .unwrap_or_else(now_millis);
        ((now_millis() - oldest).max(0) as f64) / 1000.0
    }
}
