//! Drift detection while the daemon runs (SPEC §4.6): every
//! `ROBSON_VERIFY_INTERVAL_SECS` a sample of streams (`ROBSON_VERIFY_SAMPLE`,
//! see [`sample`]) is re-projected in memory from the log, each up to its
//! current progress, with the projector's own rules, and compared with the
//! live rows it owns ([`check`], [`columns`]). What it finds goes to the
//! [`board`] (`GET /verify`, `/health` degraded while a mismatch stands) and
//! to the `robson_verify_*` metrics.
//!
//! Cost and priority: one connection of its own (never one of the pool the
//! projectors use) and a thread of its own (folding a long stream is CPU
//! work), both opened for a run and closed after it, short statements (a page of events, a statement timeout),
//! streams checked 10 at a time in one snapshot ([`group`]), each group
//! started when no projector has a batch in flight (waiting 100 ms at
//! most), and a rest after each group nine times as long as it took. The cost of a run follows the
//! sample and the sampled streams' lengths, never the log — and, for a long
//! stream checked again, the events appended since its last clean check
//! ([`resume`]). It stops at once on shutdown: every wait and statement
//! races the stop signal.
//!
//! Rows owned by several streams: none today. Every row is keyed by an
//! entity whose events SPEC §3 keeps in one stream (orders and their fills
//! in `order:`, positions in `position:`, balances and risk in `account:`,
//! strategies in `strategy:`); the check compares the rows a stream's
//! events target as if that stream alone wrote them (docs/architecture.md).

pub mod board;
pub mod check;
pub mod columns;
pub mod group;
pub mod resume;
pub mod sample;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, PgConnection};

use self::board::RunSummary;
use self::check::{Limits, Verdict};
use self::resume::Folds;
use super::state::DaemonState;
use crate::config::Secret;
use crate::metrics::Metrics;

/// `ROBSON_VERIFY_INTERVAL_SECS` and `ROBSON_VERIFY_SAMPLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftConfig {
    /// Zero turns drift detection off.
    pub interval: Duration,
    pub sample: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            interval: Duration::from_secs(300),
            sample: 200,
        }
    }
}

/// What the checker needs.
#[derive(Debug, Clone)]
pub struct DriftSetup {
    pub database_url: Secret<String>,
    pub config: DriftConfig,
    pub state: Arc<DaemonState>,
    pub metrics: Arc<Metrics>,
}

/// Least pause between two groups of streams: the projectors' statements go first.
const PAUSE_BETWEEN_GROUPS: Duration = Duration::from_millis(2);

/// After each group of streams ([`group`]) the checker rests this many
/// times as long as the group took, so it is busy at most a tenth of the
/// time (measured: at a 1 s interval with no rest, p99 latency under load
/// rose several times on a loaded 2-core machine; with three times, idle
/// p99 rose by a fifth; see docs/performance.md).
const REST_PER_WORK: u32 = 9;

/// Longest wait, before a group, for the projectors' batches in flight to
/// commit (a daemon that is never idle is checked all the same).
const YIELD_WAIT: Duration = Duration::from_millis(100);

/// Bound of every statement of the checker.
const STATEMENT_TIMEOUT: &str = "10s";

/// Bound of connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a check every interval until the daemon stops (returns at once
/// when drift detection is off). This task only waits: each run happens on
/// a thread started for it ([`on_its_own_thread`]), so that between runs the
/// checker holds no thread and no connection.
pub async fn run(setup: DriftSetup) {
    let DriftConfig { interval, sample } = setup.config;
    setup.state.drift.configure(interval.as_secs(), sample);
    if interval.is_zero() {
        return;
    }
    let life = &setup.state.lifecycle;
    let mut folds = Folds::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = life.stopped() => break,
        }
        folds = on_its_own_thread(&setup, folds).await;
    }
}

/// Name of the thread a run happens on (seen in `top -H`, and by the tests).
pub const THREAD_NAME: &str = "robson-verify";

/// One run on a thread of its own, with a runtime and a connection that end
/// with it: folding a long stream is CPU work that must not hold up the
/// thread this is called on. Returns the folds to resume from next time
/// (none if the thread could not start or the run did not end normally).
async fn on_its_own_thread(setup: &DriftSetup, mut folds: Folds) -> Folds {
    let (done, finished) = tokio::sync::oneshot::channel();
    let setup = setup.clone();
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!(error = %err, "Drift check: no runtime for the run; trying again at the next interval.");
                    return;
                }
            };
            runtime.block_on(async {
                let mut conn = None;
                tokio::select! {
                    () = run_once(&setup, &mut conn, &mut folds) => {}
                    () = setup.state.lifecycle.stopped() => {}
                }
                // Closed on the runtime it was opened on.
                drop(conn);
            });
            let _ = done.send(folds);
        });
    if let Err(err) = thread {
        tracing::warn!(error = %err, "Drift check: no thread for the run; trying again at the next interval.");
        return Folds::default();
    }
    finished.await.unwrap_or_default()
}

/// One run: pick the streams, check each, publish.
async fn run_once(setup: &DriftSetup, conn: &mut Option<PgConnection>, folds: &mut Folds) {
    let started = Instant::now();
    let started_at = Utc::now();
    let board = &setup.state.drift;
    board.run_started(started_at);
    let mut summary = RunSummary {
        started_at: Some(started_at),
        ..RunSummary::default()
    };
    match checked_run(setup, conn, folds, &mut summary).await {
        Ok(()) => {}
        Err(err) => {
            tracing::warn!(error = %err, "Drift check failed; trying again at the next interval.");
            *conn = None;
        }
    }
    summary.finished_at = Some(Utc::now());
    summary.duration_seconds = started.elapsed().as_secs_f64();
    setup
        .metrics
        .verify_last_run_timestamp_seconds
        .set(Utc::now().timestamp_millis() as f64 / 1000.0);
    if summary.mismatched > 0 {
        tracing::warn!(
            checked = summary.checked,
            mismatched = summary.mismatched,
            "Drift check: live rows differ from the log (GET /verify lists them)."
        );
    } else {
        tracing::debug!(checked = summary.checked, "Drift check: no difference.");
    }
    board.run_finished(summary);
}

async fn checked_run(
    setup: &DriftSetup,
    conn: &mut Option<PgConnection>,
    folds: &mut Folds,
    summary: &mut RunSummary,
) -> Result<(), sqlx::Error> {
    let conn = match conn {
        Some(c) => c,
        None => conn.insert(connect(&setup.database_url).await?),
    };
    let board = &setup.state.drift;
    let streams = sample::pick(&mut *conn, setup.config.sample, board.standing_streams()).await?;
    summary.sample_size = streams.len();
    let limits = Limits::default();
    for group in streams.chunks(group::GROUP) {
        yield_to_projection(&setup.state, YIELD_WAIT).await;
        let began = Instant::now();
        let mut times = Vec::with_capacity(group.len());
        let mut taken = Vec::with_capacity(group.len());
        for key in group {
            let (resume, resumed) = folds.take(key).unzip();
            times.push(resumed);
            taken.push((key.as_str(), resume));
        }
        let checked = match group::check_group(&mut *conn, taken, limits).await {
            Ok(g) => {
                summary.largest_page = summary.largest_page.max(g.largest_read);
                g.checked.into_iter().map(Ok).collect()
            }
            Err(err) if is_transient(&err) => return Err(err),
            Err(err) => {
                // A row that cannot be read (say, a value a rule never
                // writes) fails the group's statements: each stream alone,
                // so that the others still get their verdict.
                tracing::debug!(error = %err, "Drift check of a group failed; checking its streams one by one.");
                let mut one_by_one = Vec::with_capacity(group.len());
                for key in group {
                    match check::check(&mut *conn, key, limits, None).await {
                        Err(err) if is_transient(&err) => return Err(err),
                        other => one_by_one.push(other),
                    }
                }
                one_by_one
            }
        };
        for ((key, checked), resumed) in group.iter().zip(checked).zip(times) {
            let checked = match checked {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(stream = %key, error = %err, "Drift check of a stream failed.");
                    summary.errors += 1;
                    continue;
                }
            };
            record(setup, folds, summary, key, checked, resumed);
        }
        let rest = (began.elapsed() * REST_PER_WORK).max(PAUSE_BETWEEN_GROUPS);
        tokio::time::sleep(rest).await;
    }
    Ok(())
}

/// Waits until no projector has a batch in flight, at most `wait`, so that
/// a group's statements start when the projectors' have just committed.
async fn yield_to_projection(state: &DaemonState, wait: Duration) {
    let until = Instant::now() + wait;
    while Instant::now() < until
        && state
            .partitions
            .iter()
            .any(|p| p.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn is_transient(err: &sqlx::Error) -> bool {
    robson_projector::classify(err) == robson_projector::ErrorClass::Transient
}

/// Counts, publishes and keeps (for resuming) what checking `key` found;
/// `resumed` is how many checks led to the fold it resumed from, if any.
fn record(
    setup: &DriftSetup,
    folds: &mut Folds,
    summary: &mut RunSummary,
    key: &str,
    checked: check::Checked,
    resumed: Option<u32>,
) {
    let board = &setup.state.drift;
    summary.events_read += checked.events_read;
    summary.largest_page = summary.largest_page.max(checked.largest_page);
    if let Some(resume) = checked.resume {
        let times = if checked.resumed {
            resumed.unwrap_or(0) + 1
        } else {
            0
        };
        folds.keep(key, resume, times);
    }
    summary.resumed += u64::from(checked.resumed);
    let standing = match checked.verdict {
        Verdict::Clean => {
            summary.checked += 1;
            setup.metrics.verify_checked_streams.inc();
            Some(board.clean(key))
        }
        Verdict::Differs(diffs) => {
            summary.checked += 1;
            summary.mismatched += 1;
            setup.metrics.verify_checked_streams.inc();
            setup.metrics.verify_mismatched_streams.inc();
            tracing::warn!(stream = %key, differences = diffs.len(), "Drift: live rows differ from the log.");
            Some(board.mismatch(key, diffs, Utc::now()))
        }
        Verdict::Moving => {
            summary.moving += 1;
            None
        }
        Verdict::Unchecked(why) => {
            tracing::debug!(stream = %key, why = %why, "Drift check passed a stream over.");
            summary.unchecked += 1;
            None
        }
    };
    if let Some(n) = standing {
        setup.metrics.verify_mismatched_streams_now.set(n as i64);
    }
}

async fn connect(url: &Secret<String>) -> Result<PgConnection, sqlx::Error> {
    let options: PgConnectOptions = url.expose().parse()?;
    let options = options
        .application_name("robsond-verify")
        .options([("statement_timeout", STATEMENT_TIMEOUT)])
        .log_statements(log::LevelFilter::Trace);
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(conn) => conn,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connecting for the drift check timed out",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads of this process named [`THREAD_NAME`].
    fn verify_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == THREAD_NAME)
            .count()
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        let began = Instant::now();
        while !ok() {
            assert!(began.elapsed() < Duration::from_secs(3), "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_run_has_a_thread_of_its_own_that_ends_with_it_and_none_is_held_between_runs() {
        // A server that takes the connection and never answers: the run
        // waits on it until the stop signal.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("address").port();
        let state = Arc::new(DaemonState::new("test".into(), 2));
        let setup = DriftSetup {
            database_url: Secret::new(format!("postgres://robson@127.0.0.1:{port}/robson")),
            config: DriftConfig {
                interval: Duration::from_millis(300),
                sample: 10,
            },
            state: state.clone(),
            metrics: Arc::new(Metrics::new(2).expect("metrics")),
        };
        let checker = tokio::spawn(run(setup));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(verify_threads(), 0, "before the first run");
        until("a run starts", || {
            state.drift.page(None, 0).running_since.is_some()
        })
        .await;
        assert_eq!(verify_threads(), 1, "during a run");

        state.lifecycle.stop();
        tokio::time::timeout(Duration::from_secs(3), checker)
            .await
            .expect("the checker ends at the stop signal")
            .expect("checker task");
        until("the run's thread ends", || verify_threads() == 0).await;
    }

    #[tokio::test]
    async fn a_group_waits_for_the_batches_in_flight_but_never_longer_than_its_bound() {
        let state = DaemonState::new("test".into(), 4);
        let began = Instant::now();
        yield_to_projection(&state, Duration::from_secs(5)).await;
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "idle: no wait"
        );

        state.partitions[2]
            .in_flight
            .store(20, std::sync::atomic::Ordering::Relaxed);
        let began = Instant::now();
        yield_to_projection(&state, Duration::from_millis(150)).await;
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        let state = Arc::new(state);
        let projector = {
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                state.partitions[2]
                    .in_flight
                    .store(0, std::sync::atomic::Ordering::Relaxed);
            })
        };
        let began = Instant::now();
        yield_to_projection(&state, Duration::from_secs(5)).await;
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert!(
            waited < Duration::from_secs(2),
            "the batch committed: {waited:?}"
        );
        projector.await.expect("projector task");
    }
}
