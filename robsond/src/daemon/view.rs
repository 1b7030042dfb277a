//! Fresh lag samples on demand, shared by every `/health` and `/metrics`
//! request: a sample younger than [`FRESH_FOR`] is reused; otherwise ONE
//! request takes a new one (the others wait for it), so the database sees
//! at most one sample per [`FRESH_FOR`] however many clients ask. One
//! client always asks once a second: the console's trend (`super::trend`).
//!
//! The sample runs in a task of its own holding the single-flight lock: a
//! client that gives up does not cancel it, and a slow database never has
//! two samples running. A request waits at most [`WAIT_AT_MOST`] and then
//! answers with the last sample it has (`sampled_at` says how old).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::retry::count_db_error;
use super::state::{DaemonState, LagSample};
use crate::metrics::{CoverageTable, Metrics};

/// A sample is reused while younger than this; with the time a sample
/// takes, every answer is at most ~250 ms old (SPEC §4.4).
pub const FRESH_FOR: Duration = Duration::from_millis(200);

/// How long a request waits for a sample before answering with the last one.
pub const WAIT_AT_MOST: Duration = Duration::from_millis(800);

/// A sample that takes longer than this is abandoned (its connection too).
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct LagView {
    pool: PgPool,
    state: Arc<DaemonState>,
    metrics: Arc<Metrics>,
    /// Held by the task taking a sample.
    flight: Arc<tokio::sync::Mutex<()>>,
    /// When the published sample was started, and when the last failed
    /// attempt was (failures are not retried sooner than [`FRESH_FOR`]).
    times: Mutex<Times>,
}

#[derive(Debug, Default)]
struct Times {
    sampled: Option<Instant>,
    failed: Option<Instant>,
}

impl LagView {
    pub fn new(pool: PgPool, state: Arc<DaemonState>, metrics: Arc<Metrics>) -> Arc<LagView> {
        Arc::new(LagView {
            pool,
            state,
            metrics,
            flight: Arc::new(tokio::sync::Mutex::new(())),
            times: Mutex::new(Times::default()),
        })
    }

    /// A sample at most [`FRESH_FOR`] old when the database answers in
    /// time, else the last one (also while the probe says it is down: a
    /// sample would only wait for the pool's timeout).
    pub async fn fresh(self: &Arc<Self>) -> LagSample {
        if self.recent() || !self.state.database_up.load(Ordering::Relaxed) {
            return self.state.lag();
        }
        let deadline = tokio::time::Instant::now() + WAIT_AT_MOST;
        let Ok(guard) = tokio::time::timeout_at(deadline, self.flight.clone().lock_owned()).await
        else {
            return self.state.lag();
        };
        // Whoever held the lock may just have taken one.
        if self.recent() {
            return self.state.lag();
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _flight = guard;
            let started = Instant::now();
            let result =
                tokio::time::timeout(SAMPLE_TIMEOUT, crate::progress::lag::sample(&this.pool))
                    .await
                    .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut));
            let ok = result.is_ok();
            // Published before it counts as fresh, so that a fresh time
            // always goes with the sample it describes.
            this.publish(result);
            if let Ok(mut t) = this.times.lock() {
                if ok {
                    t.sampled = Some(started);
                } else {
                    t.failed = Some(Instant::now());
                }
            }
        });
        // On timeout the task goes on and publishes for the next request.
        let _ = tokio::time::timeout_at(deadline, task).await;
        self.state.lag()
    }

    /// The published sample is fresh, or the last attempt failed just now.
    fn recent(&self) -> bool {
        let young = |t: Option<Instant>| t.is_some_and(|at| at.elapsed() < FRESH_FOR);
        self.times
            .lock()
            .is_ok_and(|t| young(t.sampled) || young(t.failed))
    }

    fn publish(&self, result: Result<LagSample, sqlx::Error>) {
        let m = &self.metrics;
        match result {
            Ok(s) => {
                m.projection_lag_events.set(s.lag_events);
                m.projection_lag_seconds.set(s.lag_seconds);
                m.eventlog_head_position.set(s.head_position);
                m.parked_streams.set(s.parked_streams);
                m.held_events.set(s.held_events);
                m.read_blocked_seconds.set(s.read_blocked_seconds);
                for c in &s.coverage {
                    let table = match c.table_name.as_str() {
                        "event_log" => CoverageTable::EventLog,
                        _ => CoverageTable::Snapshots,
                    };
                    m.partition_coverage_months(table)
                        .set(i64::from(c.months_ahead));
                }
                if let Ok(mut g) = self.state.lag.lock() {
                    *g = s;
                }
            }
            Err(_) if self.state.shutting_down.load(Ordering::Relaxed) => {}
            Err(err) => {
                count_db_error(m, &err);
                // Before the schema exists (start-up) this fails every time:
                // not worth a warning per request.
                if self.state.started.load(Ordering::Relaxed) {
                    tracing::warn!(error = %err, "Could not sample the lag.");
                } else {
                    tracing::debug!(error = %err, "Could not sample the lag.");
                }
            }
        }
    }
}
