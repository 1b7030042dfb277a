//! The cost of drift detection (`ROBSON_BENCH_DRIFT=1 robsond bench …`):
//! on the events the benchmark appended, cold catch-up with the drift check
//! off and on (every second, 200 streams: 300 times the default rate),
//! alternated off, on, on, off, off, on, … ([`RUNS`] of each) so that a trend of the
//! machine's load does not favour either, then end-to-end latency idle and
//! under 2,000 events/s with it on and off ([`PROBES`] probes each, so that
//! a p99 is not one unlucky sample). The figures are printed as a table of
//! their own, with the ratios on/off: catch-up as the mean of the runs,
//! latency percentiles of every probe of a kind pooled (a p99 of 1,500
//! probes is the 15th-worst), and each run's p99 to show the noise. Off by default: it projects the log
//! six more times.

use std::time::Instant;

use sqlx::PgPool;

use super::daemon::Daemon;
use super::probe::{self, Latencies};
use crate::tools::generate::Profile;

/// The drift check as the "on" runs configure it.
const ON: [(&str, &str); 2] = [
    ("ROBSON_VERIFY_INTERVAL_SECS", "1"),
    ("ROBSON_VERIFY_SAMPLE", "200"),
];
const OFF: [(&str, &str); 1] = [("ROBSON_VERIFY_INTERVAL_SECS", "0")];

/// Runs of each kind (off and on), alternated.
const RUNS: usize = 4;
/// Probes per latency run: its p99 is then the 5th-worst sample.
const PROBES: usize = 500;

/// Off, on, on, off, off, on, on, off, …: each pair of pairs mirrored, so
/// that a steady trend of the machine (the log growing run after run,
/// autovacuum catching up) weighs on both kinds alike — in plain
/// alternation the "off" run of every pair is always the earlier one.
fn alternated() -> impl Iterator<Item = bool> {
    (0..2 * RUNS).map(|i| matches!(i % 4, 1 | 2))
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
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(pool)
        .await?;
    eprintln!(
        "bench: drift check off/on: {} cold catch-ups of {events} events…",
        2 * RUNS
    );
    let mut catch_up = [Vec::new(), Vec::new()];
    for on in alternated() {
        reset_projection(pool).await?;
        let mut d = Daemon::spawn_with(url, if on { &ON[..] } else { &OFF[..] })?;
        let started = Instant::now();
        d.wait_for_applied(events as u64).await?;
        catch_up[usize::from(on)].push(started.elapsed().as_secs_f64());
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
        let d = Daemon::spawn_with(url, &OFF[..])?;
        probe::latencies_under_load(pool, Profile::Mixed, PROBES, 2000).await?;
        d.stop().await?;
    }
    let mut latency = [Vec::new(), Vec::new()];
    for on in alternated() {
        let d = Daemon::spawn_with(url, if on { &ON[..] } else { &OFF[..] })?;
        let idle = probe::latencies(pool, PROBES).await?;
        let (loaded, _) = probe::latencies_under_load(pool, Profile::Mixed, PROBES, 2000).await?;
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
    println!("| drift check (interval 1 s, sample 200) | off | on | on/off |");
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
    Ok(())
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
    fn the_median_of_runs_ignores_one_slow_run() {
        let m = median(vec![61.9, 25.4, 24.7, 22.4]);
        assert!((m - 25.05).abs() < 1e-9, "{m}");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
