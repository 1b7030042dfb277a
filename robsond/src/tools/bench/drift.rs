//! The cost of drift detection (`ROBSON_BENCH_DRIFT=1 robsond bench …`):
//! on the events the benchmark appended, cold catch-up with the drift check
//! off and on (sample 200, every `ROBSON_BENCH_DRIFT_INTERVAL_SECS`, default
//! [`DEFAULT_INTERVAL_SECS`]: 30 times the daemon's default rate; 1 is the
//! stress setting of the earlier runs), alternated off, on, on, off, off,
//! on, … ([`RUNS`] of each) so that a trend of the machine's load does not
//! favour either, then end-to-end latency idle and under 2,000 events/s with
//! it on and off (at least [`PROBES`] probes each, and enough to span three
//! intervals, so that a p99 is not one unlucky sample and every "on" run
//! holds check runs). The figures are printed as a table of their own, with
//! the ratios on/off: catch-up as the mean of the runs, latency percentiles
//! of every probe of a kind pooled (a p99 of 2,000 probes is the
//! 20th-worst), and each run's p99 to show the noise. While a daemon runs,
//! its `GET /verify` is read every [`WATCH_EVERY`] (an "off" one's too, for
//! the same cost) to learn when its check runs started and ended: the table
//! gives how much of the time a run was under way, and the latency of the
//! probes that met one apart from those that did not (what a run costs
//! while it runs, whatever the interval). Off by default: it projects the
//! log eight more times. It runs last, after the references: its latency
//! runs append many events.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;

use super::daemon::{self, Daemon};
use super::probe::{self, Latencies};
use crate::tools::generate::Profile;

/// The interval of the "on" runs unless `ROBSON_BENCH_DRIFT_INTERVAL_SECS`
/// says otherwise.
const DEFAULT_INTERVAL_SECS: u64 = 10;

/// Streams per check run (the daemon's default).
const SAMPLE: &str = "200";

/// Runs of each kind (off and on), alternated.
const RUNS: usize = 4;
/// Least probes per latency run: its p99 is then the 5th-worst sample.
const PROBES: usize = 500;
/// About how long one probe takes (its 10 ms pause, the append, the wait).
const PROBE_PACE: Duration = Duration::from_millis(15);

/// How often a daemon's `GET /verify` is read during its runs.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// Off, on, on, off, off, on, on, off, …: each pair of pairs mirrored, so
/// that a steady trend of the machine (the log growing run after run,
/// autovacuum catching up) weighs on both kinds alike — in plain
/// alternation the "off" run of every pair is always the earlier one.
fn alternated() -> impl Iterator<Item = bool> {
    (0..2 * RUNS).map(|i| matches!(i % 4, 1 | 2))
}

/// The "on" runs' interval.
fn interval_secs() -> anyhow::Result<u64> {
    match std::env::var("ROBSON_BENCH_DRIFT_INTERVAL_SECS") {
        Err(_) => Ok(DEFAULT_INTERVAL_SECS),
        Ok(v) => match v.parse::<u64>() {
            Ok(secs) if secs >= 1 => Ok(secs),
            _ => anyhow::bail!(
                "ROBSON_BENCH_DRIFT_INTERVAL_SECS={v:?} is not valid: expected a whole number of seconds, 1 or more"
            ),
        },
    }
}

/// Probes per latency run: `ROBSON_BENCH_DRIFT_PROBES` if set (for a
/// control run with an interval no run reaches), else [`probes_for`].
fn probes(interval_secs: u64) -> usize {
    super::count_from_env("ROBSON_BENCH_DRIFT_PROBES").unwrap_or_else(|| probes_for(interval_secs))
}

/// [`PROBES`], or enough to span three intervals.
fn probes_for(interval_secs: u64) -> usize {
    let spanning = (3 * interval_secs * 1000).div_ceil(PROBE_PACE.as_millis() as u64);
    PROBES.max(spanning as usize)
}

/// Whether the phase was asked for.
pub fn enabled() -> bool {
    std::env::var("ROBSON_BENCH_DRIFT").is_ok_and(|v| v == "1")
}

/// Runs the phase on the database at `url` (the daemon under test is
/// stopped) and prints its table. Leaves the projection caught up.
pub async fn phase(url: &str, pool: &PgPool) -> anyhow::Result<()> {
    if !enabled() {
        return Ok(());
    }
    let interval = interval_secs()?;
    let interval_text = interval.to_string();
    let on_env = [
        ("ROBSON_VERIFY_INTERVAL_SECS", interval_text.as_str()),
        ("ROBSON_VERIFY_SAMPLE", SAMPLE),
    ];
    let off_env = [("ROBSON_VERIFY_INTERVAL_SECS", "0")];
    let env = |on: bool| if on { &on_env[..] } else { &off_env[..] };
    let probes = probes(interval);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(pool)
        .await?;
    eprintln!(
        "bench: drift check off/on: {} cold catch-ups of {events} events…",
        2 * RUNS
    );
    let mut catch_up = [Vec::new(), Vec::new()];
    let mut catch_up_checks = Vec::new();
    for on in alternated() {
        reset_projection(pool).await?;
        let mut d = Daemon::spawn_with(url, env(on))?;
        let watch = RunWatch::start(d.address());
        let started = Instant::now();
        d.wait_for_applied(events as u64).await?;
        catch_up[usize::from(on)].push(started.elapsed().as_secs_f64());
        let runs = watch.finish().await?;
        if on {
            catch_up_checks.extend(runs);
        }
        d.stop().await?;
    }
    eprintln!("bench: drift check off/on: latency idle and under 2,000 events/s…");
    // Alternated too: the first runs after the catch-ups share the machine
    // with autovacuum on the tables just rewritten.
    // The catch-ups rewrote every projection table.
    super::settle(pool).await?;
    // And one loaded run not counted, so that the first counted one does
    // not carry alone the start of the load (the first autovacuums of the
    // tables it grows).
    {
        let d = Daemon::spawn_with(url, env(false))?;
        probe::latencies_under_load(pool, Profile::Mixed, PROBES, 2000).await?;
        d.stop().await?;
    }
    let mut latency = [Vec::new(), Vec::new()];
    let mut checks = Vec::new();
    let mut watched_secs = 0.0;
    for on in alternated() {
        let d = Daemon::spawn_with(url, env(on))?;
        // Watched in both kinds, so that both pay for the reads of
        // GET /verify alike.
        let watch = RunWatch::start(d.address());
        let started = Instant::now();
        let idle = probe::latencies(pool, probes).await?;
        let (loaded, _) = probe::latencies_under_load(pool, Profile::Mixed, probes, 2000).await?;
        let runs = watch.finish().await?;
        if on {
            watched_secs += started.elapsed().as_secs_f64();
            checks.extend(runs);
        }
        latency[usize::from(on)].push((idle, loaded));
        d.stop().await?;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let pooled = |runs: &[(Latencies, Latencies)]| {
        let idle: Vec<&Latencies> = runs.iter().map(|r| &r.0).collect();
        let loaded: Vec<&Latencies> = runs.iter().map(|r| &r.1).collect();
        (Latencies::pooled(&idle), Latencies::pooled(&loaded))
    };
    let (off, on) = (pooled(&latency[0]), pooled(&latency[1]));
    let (c_off, c_on) = (mean(&catch_up[0]), mean(&catch_up[1]));
    println!("| drift check (interval {interval} s, sample {SAMPLE}) | off | on | on/off |");
    println!("|---|---|---|---|");
    println!(
        "| cold catch-up of {events} events, mean of {RUNS} (s) | {c_off:.2} | {c_on:.2} | {:.3} |",
        c_on / c_off
    );
    row("latency idle", &off.0, &on.0);
    row("latency under 2,000 events/s", &off.1, &on.1);
    // Per kind of latency: the median of the runs' own p99s (one slow run
    // of either kind — a checkpoint or an autovacuum under it — moves the
    // pooled p99 by tens of per cent, the median not), and each run's p99
    // (the noise the ratios are read against).
    let mut each_run = Vec::new();
    for (what, pick) in [
        (
            "idle",
            (|r: &(Latencies, Latencies)| r.0.p99_ms) as fn(&_) -> f64,
        ),
        ("under 2,000 events/s", |r| r.1.p99_ms),
    ] {
        let med = |runs: &[(Latencies, Latencies)]| median(runs.iter().map(pick).collect());
        let (a, b) = (med(&latency[0]), med(&latency[1]));
        println!(
            "| latency {what} p99, median of the {RUNS} runs' (ms) | {a:.2} | {b:.2} | {:.3} |",
            b / a
        );
        let shown = |runs: &[(Latencies, Latencies)]| {
            runs.iter()
                .map(|r| format!("{:.1}", pick(r)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        each_run.push(format!(
            "| p99 {what} of each run (ms) | {} | {} | |",
            shown(&latency[0]),
            shown(&latency[1])
        ));
    }
    // What the writer reached (new events only): a load that appended
    // duplicates would leave the daemon idle and the comparison empty.
    let reached = |runs: &[(Latencies, Latencies)]| {
        runs.iter()
            .map(|r| format!("{:.0}", r.1.load_eps))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "| load reached in each run (new events/s) | {} | {} | |",
        reached(&latency[0]),
        reached(&latency[1])
    );
    let (m_off, m_on) = (median(catch_up[0].clone()), median(catch_up[1].clone()));
    println!(
        "| cold catch-up, median of {RUNS} (s) | {m_off:.2} | {m_on:.2} | {:.3} |",
        m_on / m_off
    );
    for line in each_run {
        println!("{line}");
    }
    println!(
        "| check runs during the \"on\" catch-ups | | {} | |",
        catch_up_checks.len()
    );
    let under_way: f64 = checks.iter().map(|(a, b)| seconds(*a, *b)).sum();
    println!(
        "| check runs during the \"on\" latency runs: count, mean length (s), share of the time under way | | {}, {:.2}, {:.1} % | |",
        checks.len(),
        under_way / checks.len().max(1) as f64,
        100.0 * under_way / watched_secs.max(f64::MIN_POSITIVE)
    );
    for (what, pick) in [
        (
            "idle",
            (|r: &(Latencies, Latencies)| &r.0) as fn(&(Latencies, Latencies)) -> &Latencies,
        ),
        ("under 2,000 events/s", |r| &r.1),
    ] {
        let (met, missed) = split_by_runs(latency[1].iter().map(pick), &checks);
        println!(
            "| \"on\" probes {what} that met a check run: count, p50 / p99 (ms) | | {}, {:.2} / {:.2} | |",
            met.count, met.p50_ms, met.p99_ms
        );
        println!(
            "| \"on\" probes {what} that met none: count, p50 / p99 (ms) | | {}, {:.2} / {:.2} | |",
            missed.count, missed.p50_ms, missed.p99_ms
        );
    }
    Ok(())
}

/// A check run's start and end (or, for one under way when the watch
/// ended, the end of the watch).
type CheckRun = (DateTime<Utc>, DateTime<Utc>);

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6
}

/// The probes of `runs` split into those whose wait (commit to row)
/// overlapped a check run and the others.
fn split_by_runs<'a>(
    runs: impl Iterator<Item = &'a Latencies>,
    checks: &[CheckRun],
) -> (Latencies, Latencies) {
    let (mut met, mut missed) = (Vec::new(), Vec::new());
    for (at, ms) in runs.flat_map(|l| l.timed.iter().copied()) {
        let end = at + chrono::Duration::microseconds((ms * 1000.0) as i64);
        if checks.iter().any(|(from, to)| *from <= end && at <= *to) {
            met.push(ms);
        } else {
            missed.push(ms);
        }
    }
    (Latencies::of(met), Latencies::of(missed))
}

/// What `GET /verify` says of the runs.
#[derive(Debug, Deserialize)]
struct VerifyPage {
    running_since: Option<DateTime<Utc>>,
    last_run: Option<LastRun>,
}

#[derive(Debug, Deserialize)]
struct LastRun {
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

/// Reads a daemon's `GET /verify` every [`WATCH_EVERY`] until finished:
/// a run that ended stays the last run until the next one ends (an
/// interval and a run later, a second or more), so none is missed.
struct RunWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<CheckRun>>>,
}

impl RunWatch {
    fn start(addr: &str) -> RunWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = addr.to_owned();
        let stopped = stop.clone();
        let task = actix_rt::spawn(async move {
            let mut ended = BTreeSet::new();
            let mut running = None;
            loop {
                let last = stopped.load(Ordering::Acquire);
                // Not up yet at the start, or a moment's refusal: the next read.
                if let Ok(body) = daemon::get(&addr, "/verify").await {
                    let page: VerifyPage = serde_json::from_str(&body)?;
                    if let Some(LastRun {
                        started_at: Some(from),
                        finished_at: Some(to),
                    }) = page.last_run
                    {
                        ended.insert((from, to));
                    }
                    running = page.running_since;
                }
                if last {
                    break;
                }
                tokio::time::sleep(WATCH_EVERY).await;
            }
            let mut runs: Vec<CheckRun> = ended.into_iter().collect();
            if let Some(from) = running {
                runs.push((from, Utc::now()));
            }
            Ok(runs)
        });
        RunWatch { stop, task }
    }

    /// Every run seen, in order.
    async fn finish(self) -> anyhow::Result<Vec<CheckRun>> {
        self.stop.store(true, Ordering::Release);
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("watch of GET /verify failed: {e}"))?
    }
}

/// The median (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn row(what: &str, off: &Latencies, on: &Latencies) {
    for (name, a, b) in [
        ("p50", off.p50_ms, on.p50_ms),
        ("p99", off.p99_ms, on.p99_ms),
    ] {
        println!(
            "| {what} {name}, {} probes of {RUNS} runs pooled (ms) | {a:.2} | {b:.2} | {:.3} |",
            off.count.min(on.count),
            b / a
        );
    }
}

/// Forgets the projection, leaving one progress row so that the daemon
/// catches up from the log instead of bootstrapping from the bench's
/// snapshot (a bootstrap needs an empty projection).
async fn reset_projection(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "TRUNCATE orders_current, fills, positions_current, balances_current,
                  risk_state_current, strategy_state_current, projection_stream_progress,
                  projection_checkpoints, projection_dead_letters;
         INSERT INTO projection_stream_progress (stream_key, tenant_id)
         VALUES ('bench:drift-marker', '00000000-0000-0000-0000-000000000000');",
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_run_as_often_and_at_the_same_mean_position() {
        let order: Vec<bool> = alternated().collect();
        assert_eq!(order.len(), 2 * RUNS);
        let at =
            |kind: bool| -> Vec<usize> { (0..order.len()).filter(|&i| order[i] == kind).collect() };
        let (off, on) = (at(false), at(true));
        assert_eq!(off.len(), RUNS);
        assert_eq!(on.len(), RUNS);
        assert_eq!(
            off.iter().sum::<usize>(),
            on.iter().sum::<usize>(),
            "{order:?}"
        );
        assert!(!order[0], "off first: {order:?}");
    }

    #[test]
    fn a_probe_meets_a_check_run_when_its_wait_overlaps_it() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let run = Latencies::of_timed(vec![
            (at(0), 5.0),  // ends at 5 ms, before the run
            (at(8), 4.0),  // waits 8..12: the run starts at 10
            (at(15), 1.0), // inside
            (at(19), 3.0), // starts inside, ends after
            (at(30), 2.0), // after
        ]);
        let checks = [(at(10), at(20))];
        let (met, missed) = split_by_runs([&run].into_iter(), &checks);
        assert_eq!(met.sorted, vec![1.0, 3.0, 4.0]);
        assert_eq!(missed.sorted, vec![2.0, 5.0]);
        let (met, missed) = split_by_runs([&run].into_iter(), &[]);
        assert_eq!((met.count, missed.count), (0, 5));
    }

    #[test]
    fn a_latency_run_spans_three_intervals_and_never_fewer_probes_than_the_least() {
        assert_eq!(probes_for(1), PROBES);
        assert_eq!(probes_for(10), 2000);
        assert!(probes_for(60) as u64 * PROBE_PACE.as_millis() as u64 >= 180_000);
    }

    #[test]
    fn the_watch_reads_the_runs_from_the_daemons_own_verify_page() {
        use crate::daemon::drift::board::{Board, RunSummary};
        let board = Board::default();
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::milliseconds(1200);
        board.run_started(t0);
        board.run_finished(RunSummary {
            started_at: Some(t0),
            finished_at: Some(t1),
            ..RunSummary::default()
        });
        let t2 = t1 + chrono::Duration::seconds(10);
        board.run_started(t2);
        let json = serde_json::to_string(&board.page(None, 0)).expect("page as JSON");
        let page: VerifyPage = serde_json::from_str(&json).expect("read by the watch");
        let last = page.last_run.expect("last run");
        assert_eq!((last.started_at, last.finished_at), (Some(t0), Some(t1)));
        assert_eq!(page.running_since, Some(t2));
    }

    #[test]
    fn the_median_of_runs_ignores_one_slow_run() {
        let m = median(vec![61.9, 25.4, 24.7, 22.4]);
        assert!((m - 25.05).abs() < 1e-9, "{m}");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
