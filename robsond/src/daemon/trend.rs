//! The console's recent history (`GET /console/trend`): lag and throughput
//! sampled once a second into a ring of [`CAPACITY`] samples (15 minutes),
//! so the page can draw charts without Prometheus. Memory is fixed: the
//! ring never holds more than [`CAPACITY`] samples, whatever the uptime.
//!
//! Lag comes from the shared lag view (`super::view`, the same sample as
//! `/health`, so the database sees no extra statement when someone else
//! asked within 200 ms); throughput is the per-second difference of this
//! instance's event counters (`Metrics::event_totals`). Other instances on
//! the same database show their own throughput on their own console.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::state::{now_millis, DaemonState};
use super::view::LagView;
use crate::metrics::{EventTotals, Metrics};

/// One sample a second.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// 15 minutes of samples.
pub const CAPACITY: usize = 900;

/// One second of history. Lag fields are null while the lag is unknown
/// (before the first sample, or while the database is unreachable and the
/// last sample is stale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrendSample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub lag_events: Option<i64>,
    pub lag_seconds: Option<f64>,
    /// Events per second over the last interval.
    pub applied: f64,
    pub skipped: f64,
    pub dead_lettered: f64,
}

/// The ring and the counters of the previous sample.
#[derive(Debug, Default)]
pub struct Trend {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    samples: VecDeque<TrendSample>,
    previous: Option<(Instant, EventTotals)>,
}

impl Trend {
    pub fn new() -> Arc<Trend> {
        Arc::new(Trend::default())
    }

    /// Records the counters read at `now` with the lag known then.
    pub fn record(&self, now: Instant, t: i64, totals: EventTotals, lag: Option<(i64, f64)>) {
        let Ok(mut ring) = self.inner.lock() else {
            return;
        };
        let rates = match ring.previous {
            Some((at, before)) => rates(before, totals, now.saturating_duration_since(at)),
            // The first sample has nothing to compare with.
            None => [0.0; 3],
        };
        ring.previous = Some((now, totals));
        if ring.samples.len() == CAPACITY {
            ring.samples.pop_front();
        }
        ring.samples.push_back(TrendSample {
            t,
            lag_events: lag.map(|l| l.0),
            lag_seconds: lag.map(|l| l.1),
            applied: rates[0],
            skipped: rates[1],
            dead_lettered: rates[2],
        });
    }

    /// The samples taken after `since` (ms since the epoch), oldest first.
    pub fn since(&self, since: i64) -> Vec<TrendSample> {
        self.inner
            .lock()
            .map(|ring| {
                ring.samples
                    .iter()
                    .filter(|s| s.t > since)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Events per second between two readings of the counters `elapsed` apart.
/// A counter that went down (never, for one process) counts as 0.
fn rates(before: EventTotals, after: EventTotals, elapsed: Duration) -> [f64; 3] {
    let secs = elapsed.as_secs_f64();
    let rate = |a: u64, b: u64| {
        if secs <= 0.0 {
            0.0
        } else {
            b.saturating_sub(a) as f64 / secs
        }
    };
    [
        rate(before.applied, after.applied),
        rate(before.skipped, after.skipped),
        rate(before.dead_lettered, after.dead_lettered),
    ]
}

/// Samples every [`INTERVAL`] until `stop` is set to true (or dropped).
pub async fn run(
    trend: Arc<Trend>,
    view: Arc<LagView>,
    state: Arc<DaemonState>,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = ticker.tick() => {
                // Bounded by the view's own wait (under a second).
                let lag = view.fresh().await;
                let known = lag.sampled && state.database_up.load(Ordering::Relaxed);
                trend.record(
                    Instant::now(),
                    now_millis(),
                    metrics.event_totals(),
                    known.then_some((lag.lag_events, lag.lag_seconds)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(applied: u64, skipped: u64, dead_lettered: u64) -> EventTotals {
        EventTotals {
            applied,
            skipped,
            dead_lettered,
        }
    }

    #[test]
    fn rates_are_counter_differences_per_second() {
        let r = rates(totals(10, 2, 0), totals(40, 5, 1), Duration::from_secs(2));
        assert_eq!(r, [15.0, 1.5, 0.5]);
        assert_eq!(
            rates(totals(5, 5, 5), totals(1, 5, 9), Duration::ZERO),
            [0.0; 3]
        );
        assert_eq!(
            rates(totals(5, 0, 0), totals(1, 0, 0), Duration::from_secs(1)),
            [0.0; 3],
            "a counter going down is no negative rate"
        );
    }

    #[test]
    fn the_ring_keeps_the_last_fifteen_minutes_only() {
        let trend = Trend::default();
        let start = Instant::now();
        for i in 0..(CAPACITY as u64 + 100) {
            let now = start + Duration::from_secs(i);
            trend.record(now, i as i64 * 1000, totals(i * 3, 0, 0), Some((7, 0.5)));
        }
        let all = trend.since(i64::MIN);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].t, 100_000, "the oldest samples went first");
        assert!(all.iter().all(|s| s.applied == 3.0));
        assert_eq!(trend.since(all[CAPACITY - 2].t).len(), 1);
    }

    #[test]
    fn the_first_sample_has_no_rate_and_unknown_lag_is_null() {
        let trend = Trend::default();
        trend.record(Instant::now(), 1, totals(1000, 0, 0), None);
        let s = trend.since(0);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].applied, s[0].lag_events), (0.0, None));
    }
}
