//! `robsond bench`: the benchmark suite of the daemon, on a throwaway
//! PostgreSQL cluster it starts itself (like `robsond dev`) and removes.
//!
//! In one run, per workload profile (`--profile`, the shapes of `robsond
//! generate`; `all` runs each in turn, each on its own database), on the
//! same generated events, it measures the daemon — catch-up throughput from a
//! cold start, end-to-end latency idle and under load, peak RSS, rebuild time
//! full and from a snapshot at 90 % — and three references: a naive
//! projector (one transaction per event with a checkpoint update),
//! PostgreSQL's limit for the same final rows (set-based writes, 500 rows a
//! transaction) and the per-event pipelined limit (one upsert per event,
//! pipelined, 500 a transaction); and, once per run, the read-your-writes
//! wake-up (commit → `/wait` answer, 1,000 waiters).
//! It ends with `robsond verify`: the figures only count if the projections
//! equal a clean rebuild.

pub mod append;
mod daemon;
mod drift;
pub mod probe;
mod reference;
mod report;
pub mod waiters;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use sqlx::Connection as _;

use crate::cli::GenerateArgs;
use crate::tools::dev::binaries::{PgBin, RunAs};
use crate::tools::dev::cluster::Cluster;
use crate::tools::generate::command::append_flows;
use crate::tools::generate::Profile;
use report::Report;

/// Events of the sample the per-event pipelined reference writes, at most.
const PIPELINED_SAMPLE: u64 = 100_000;

/// `robsond bench --events N [--work-dir DIR] [--profile NAME|all]`.
pub fn run(events: u64, work_dir: Option<PathBuf>, profiles: &[Profile]) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    crate::telemetry::init_subscriber(crate::config::LogFormat::Text, &filter);
    let dir = work_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("robson-bench-{}", std::process::id()))
    });
    let reports =
        actix_rt::System::new().block_on(on_private_cluster(events.max(1000), &dir, profiles));
    let _ = std::fs::remove_dir_all(&dir);
    let reports = reports?;
    if let Some(bad) = reports.iter().find(|r| !r.verified) {
        anyhow::bail!(
            "profile {}: the projections after the run differ from a clean rebuild (see above)",
            bad.profile.name()
        );
    }
    Ok(())
}

async fn on_private_cluster(
    events: u64,
    dir: &std::path::Path,
    profiles: &[Profile],
) -> anyhow::Result<Vec<Report>> {
    let bin = PgBin::find()?;
    let version = bin.version();
    let (cluster, _) = Cluster::open(bin, RunAs::detect()?, dir)?;
    let server = cluster.start()?;
    let run = async {
        let mut reports = Vec::new();
        for (i, &profile) in profiles.iter().enumerate() {
            // Each profile on a database of its own, dropped afterwards.
            let database = format!("bench_{}", profile.name().replace('-', "_"));
            let admin = server.url("postgres");
            recreate_database(&admin, &database).await?;
            let report = measure(
                &server.url(&database),
                profile,
                events,
                version.clone(),
                i == 0,
            )
            .await?;
            drop_database(&admin, &database).await?;
            // Printed as soon as measured: a long run shows its tables as
            // it goes.
            println!("{}", report.render());
            reports.push(report);
        }
        Ok(reports)
    };
    // Ctrl-C or SIGTERM still stops the private cluster (and the daemon
    // child, killed when its handle is dropped).
    let result = tokio::select! {
        result = run => result,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    server.stop()?;
    result
}

async fn recreate_database(admin: &str, database: &str) -> anyhow::Result<()> {
    drop_database(admin, database).await?;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("Failed to create the database {database}"))?;
    let _ = conn.close().await;
    Ok(())
}

async fn drop_database(admin: &str, database: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("Failed to drop the database {database}"))?;
    let _ = conn.close().await;
    Ok(())
}

async fn measure(
    url: &str,
    profile: Profile,
    events: u64,
    pg_version: String,
    with_waiters: bool,
) -> anyhow::Result<Report> {
    let pool = crate::app::connect(url, 8).await?;
    {
        let mut conn = pool.acquire().await?;
        crate::schema::migrate(&mut conn)
            .await
            .context("Failed to migrate")?;
    }
    let mut report = Report::new(pg_version, profile);
    eprintln!("bench: profile {}", profile.name());
    if with_waiters {
        eprintln!(
            "bench: read-your-writes wake-up, {} waiters…",
            waiters::WAITERS
        );
        // Its own threads and runtime: off this (actix) thread.
        report.wake = Some(tokio::task::spawn_blocking(waiters::wake_latencies).await??);
    }
    let first = events * 9 / 10;
    eprintln!("bench: appending {first} events (90 %)…");
    let started = Instant::now();
    let appended = append_events(&pool, profile, first, 1).await?;
    report.append_eps = appended as f64 / started.elapsed().as_secs_f64();
    let mut expected = appended;

    eprintln!("bench: cold catch-up…");
    let mut d = daemon::Daemon::spawn(url)?;
    let started = Instant::now();
    d.wait_for_applied(expected).await?;
    report.catch_up_secs = started.elapsed().as_secs_f64();
    report.catch_up_events = expected;
    report.peak_rss_bytes = d.peak_rss_bytes();

    eprintln!("bench: snapshot at 90 %, then the last 10 %…");
    report.snapshot_ok = daemon::run_command(url, &["snapshot"]).await?.0;
    expected += append_events(&pool, profile, events - first, 2).await?;
    d.wait_for_applied(expected).await?;

    eprintln!("bench: latency, idle and under 2,000 events/s…");
    settle(&pool).await?;
    let probes = latency_probes();
    report.idle = probe::latencies(&pool, probes).await?;
    expected += report.idle.count as u64;
    let (loaded, load_events) = probe::latencies_under_load(&pool, profile, probes, 2000).await?;
    report.loaded = loaded;
    expected += report.loaded.count as u64 + load_events;
    d.wait_for_applied(expected).await?;
    d.stop().await?;

    eprintln!("bench: rebuild, full and from the snapshot…");
    report.rebuild_full_secs = daemon::timed_command(url, &["rebuild"]).await?;
    report.rebuild_snapshot_secs =
        daemon::timed_command(url, &["rebuild", "--from-snapshot"]).await?;
    report.verified = daemon::run_command(url, &["verify"]).await?.0;

    eprintln!("bench: references on the same events…");
    // The naive reference is slow by nature: a sample is enough for its rate.
    let naive_events = (events / 10).clamp(100, 20_000);
    report.naive_eps = reference::naive(&pool, naive_events).await?;
    report.naive_events = naive_events;
    let (rows, secs) = reference::set_based_limit(&pool).await?;
    report.limit_rows = rows;
    report.limit_secs = secs;
    let (sample, secs) = reference::per_event_pipelined(&pool, url, PIPELINED_SAMPLE).await?;
    report.pipelined_events = sample;
    report.pipelined_secs = secs;
    let (read, secs) = reference::read_once(&pool).await?;
    report.read_events = read;
    report.read_secs = secs;
    report.total_events = expected;
    // Last: it appends many more events (its latency runs), which the
    // references above must not count.
    drift::phase(url, &pool).await?;
    report.note_load();
    pool.close().await;
    Ok(report)
}

/// Probes per latency measure (idle, and under load): a p99 is then the
/// 5th-worst sample. `ROBSON_BENCH_PROBES` sets another count (the test
/// suite's smoke run, which asserts no timing, takes fewer: every probe
/// under load adds 2,000 events/s to the log the later phases work on).
const LATENCY_PROBES: usize = 500;

fn latency_probes() -> usize {
    count_from_env("ROBSON_BENCH_PROBES").unwrap_or(LATENCY_PROBES)
}

/// A positive count from the environment variable `var`, if it holds one.
pub(crate) fn count_from_env(var: &str) -> Option<usize> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// Lets the database settle after a bulk load before latency is measured:
/// the catch-up just wrote every projection table, and the autovacuum and
/// the spread checkpoint that follow would otherwise run during the
/// probes. Latency is then that of steady operation, which is what its
/// targets are about.
pub(crate) async fn settle(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query("VACUUM (ANALYZE)").execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

/// Appends generated flows of `profile` for about `events` events; returns
/// how many were appended.
async fn append_events(
    pool: &sqlx::PgPool,
    profile: Profile,
    events: u64,
    seed: u64,
) -> anyhow::Result<u64> {
    let args = GenerateArgs {
        orders: ((events as f64 / profile.events_per_flow()).ceil() as u64).max(1),
        tenants: 4,
        rate: 0,
        seed,
        profile,
    };
    let summary = append_flows(pool, &args, true).await?;
    Ok(summary.events - summary.duplicates)
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
