//! `robsond verify`: a drift detector. It projects the log into a scratch
//! schema, each stream exactly up to its live progress point, and compares
//! the result with the live tables. The scratch schema is never swapped and
//! is always dropped at the end.
//!
//! Most of the work runs with no lock. The last catch-up (whatever the
//! daemon applied meanwhile) and the comparison run in one transaction that
//! holds SHARE locks on the live projection tables (EXCLUSIVE on
//! `projection_stream_progress`, see below): the daemon's writes wait for
//! it (plain reads, the HTTP endpoints included, do not), so the live side
//! cannot move under the comparison.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use robson_projector::PoisonPolicy;
use sqlx::Connection;

use super::bounded::{catch_up_to_live, project_to_live};
use super::compare::{compare, DriftReport};
use super::project::{connect_workers, ReplayCounts, Replayer, Until};
use super::schema::{Shadow, VERIFY_SCHEMA};
use super::{tables, ReplayError};

/// How to project the scratch schema.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// As the daemon's `ROBSON_ON_POISON`.
    pub policy: PoisonPolicy,
    /// Events per batch, as `ROBSON_BATCH_SIZE`.
    pub batch_size: usize,
}

/// What a verify found and did.
#[derive(Debug, Clone)]
pub struct Verified {
    pub report: DriftReport,
    pub counts: ReplayCounts,
    /// How long the live tables were held in SHARE mode.
    pub locked_for: Duration,
    pub elapsed: Duration,
}

/// Runs a verify on the database at `url`; `bar` shows events replayed.
pub async fn verify(
    url: &str,
    options: VerifyOptions,
    bar: &ProgressBar,
) -> Result<Verified, ReplayError> {
    let started = Instant::now();
    let mut shadow = Shadow::create(url, VERIFY_SCHEMA).await?;
    let result = project_and_compare(url, &mut shadow, options, bar).await;
    let dropped = shadow.discard().await;
    let (report, counts, locked_for) = result?;
    dropped?;
    Ok(Verified {
        report,
        counts,
        locked_for,
        elapsed: started.elapsed(),
    })
}

async fn project_and_compare(
    url: &str,
    shadow: &mut Shadow,
    options: VerifyOptions,
    bar: &ProgressBar,
) -> Result<(DriftReport, ReplayCounts, Duration), ReplayError> {
    let live = shadow.live.clone();
    let conn = &mut shadow.conn;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT coalesce(sum(greatest(last_seq, coalesce(parked_seq, 0))), 0)::int8
           FROM {live}.projection_stream_progress"
    ))
    .fetch_one(&mut *conn)
    .await?;
    bar.set_length(total.max(0) as u64);
    let mut replayer = Replayer::new(options.policy, options.batch_size, bar, live.clone(), false);
    replayer.workers = connect_workers(url, conn).await?;
    project_to_live(conn, &mut replayer).await?;
    catch_up_to_live(conn, &mut replayer, Until::PassStart).await?;
    replayer.close_workers().await;

    let mut tx = conn.begin().await?;
    // Progress in EXCLUSIVE mode (plain reads still pass): every projector
    // transaction starts with `SELECT … FOR UPDATE` on it, which SHARE
    // would let through to wait on a table locked here while holding rows
    // this lock then waits for: a deadlock. Taken first, it waits for the
    // batches in flight and holds the next ones at their first statement.
    let [progress, rest @ ..] = tables::ALL;
    let rest: Vec<String> = rest.iter().map(|t| format!("{live}.{}", t.name)).collect();
    let lock = format!(
        "LOCK TABLE {live}.{} IN EXCLUSIVE MODE; LOCK TABLE {} IN SHARE MODE",
        progress.name,
        rest.join(", ")
    );
    sqlx::raw_sql(&lock).execute(&mut *tx).await?;
    let locked = Instant::now();
    catch_up_to_live(&mut tx, &mut replayer, Until::Empty).await?;
    let report = compare(&mut tx, &live).await?;
    // Nothing to keep: the scratch schema is dropped right after.
    tx.rollback().await?;
    Ok((report, replayer.counts, locked.elapsed()))
}
