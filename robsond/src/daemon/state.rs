//! State the actors share with the HTTP handlers: heartbeats, checkpoints,
//! restart counts and the last lag sample. Written by the actors, read by
//! `/health`; no database access happens in an HTTP handler.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use robson_eventlog::{PartitionCoverage, Position};
use serde::Serialize;

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
    pub state: Mutex<&'static str>,
}

impl PartitionState {
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

/// The last sample of the log's progress, taken by the monitor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LagSample {
    /// False until the monitor's first successful sample.
    pub sampled: bool,
    pub lag_events: i64,
    pub held_events: i64,
    pub max_stream_lag: i64,
    pub lag_seconds: f64,
    pub head_position: i64,
    pub parked_streams: i64,
    pub coverage: Vec<PartitionCoverage>,
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
    pub database_up: AtomicBool,
    pub lag: Mutex<LagSample>,
    pub shutting_down: AtomicBool,
    /// Stop, abort and layout-change signals (see `super::lifecycle`).
    pub lifecycle: super::lifecycle::Lifecycle,
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
            database_up: AtomicBool::new(true),
            lag: Mutex::new(LagSample::default()),
            shutting_down: AtomicBool::new(false),
            lifecycle: super::lifecycle::Lifecycle::default(),
            rewind_to: Mutex::new(None),
        }
    }

    pub fn poller_beat(&self) {
        self.poller_heartbeat_ms
            .store(now_millis(), Ordering::Relaxed);
    }

    pub fn set_database_up(&self, up: bool) {
        self.database_up.store(up, Ordering::Relaxed);
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
