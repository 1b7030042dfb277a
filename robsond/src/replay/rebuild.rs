//! `robsond rebuild`: recompute the projection from the log (or from the
//! latest snapshot plus the events after it) into a shadow schema while a
//! running daemon keeps projecting and serving the live tables, then swap
//! the shadow in atomically.
//!
//! The swap is ONE transaction: lock the live projection tables in ACCESS
//! EXCLUSIVE mode (progress first, as every projector transaction does; the
//! daemon's transactions then wait), read the log until nothing more is
//! committed (every event any daemon has read is then in the shadow: its
//! transaction ended before this one got its id), catch up to the live
//! progress of each stream, carry over what only the live tables know (the
//! dead letters' history, privileges), drop the live tables, move the
//! shadow's into the live schema, drop the shadow schema, commit.
//! Checkpoints are left alone: a daemon that re-reads events the shadow
//! already applied skips them by per-stream progress.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use robson_eventlog::Position;
use robson_projector::{contention, Contention, PoisonPolicy, ProjectionError};
use sqlx::{Connection, PgConnection};

use super::bounded::catch_up_to_live;
use super::project::{connect_workers, count_after, read_log, ReplayCounts, Replayer, Until};
use super::schema::{Shadow, REBUILD_SCHEMA};
use super::snapshot::{self, SnapshotInfo};
use super::{decisions, history, qualified_list, tables, ReplayError};

/// How long one swap attempt waits for the live tables' locks; meanwhile
/// the daemon's transactions queue behind the request.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Swap attempts before giving up (each one first catches up unlocked).
const SWAP_ATTEMPTS: u32 = 6;
/// Unlocked passes over the log before a swap attempt, at most.
const UNLOCKED_PASSES: u32 = 5;

/// How to rebuild.
#[derive(Debug, Clone, Copy)]
pub struct RebuildOptions {
    /// Start from a snapshot instead of the beginning of the log.
    pub from_snapshot: bool,
    /// Which snapshot (with `from_snapshot`): None = the latest.
    pub snapshot_id: Option<uuid::Uuid>,
    /// As the daemon's `ROBSON_ON_POISON`.
    pub policy: PoisonPolicy,
    /// Events per batch, as `ROBSON_BATCH_SIZE`.
    pub batch_size: usize,
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The snapshot it started from.
    pub snapshot: Option<SnapshotInfo>,
    pub counts: ReplayCounts,
    /// Events applied while the live tables were locked.
    pub events_during_swap: u64,
    /// How long the live tables were locked.
    pub locked_for: Duration,
    pub elapsed: Duration,
}

/// Rebuilds the projection of the database at `url`; `bar` shows events read.
pub async fn rebuild(
    url: &str,
    options: RebuildOptions,
    bar: &ProgressBar,
) -> Result<Rebuilt, ReplayError> {
    let started = Instant::now();
    let mut shadow = Shadow::create(url, REBUILD_SCHEMA).await?;
    match build_and_swap(url, &mut shadow, options, bar).await {
        Ok(mut rebuilt) => {
            shadow.close().await?;
            rebuilt.elapsed = started.elapsed();
            Ok(rebuilt)
        }
        Err(err) => {
            if let Err(cleanup) = shadow.discard().await {
                tracing::warn!(error = %cleanup, "Could not drop the shadow schema; the next rebuild drops it.");
            }
            Err(err)
        }
    }
}

async fn build_and_swap(
    url: &str,
    shadow: &mut Shadow,
    options: RebuildOptions,
    bar: &ProgressBar,
) -> Result<Rebuilt, ReplayError> {
    let (live, schema) = (shadow.live.clone(), shadow.quoted());
    let conn = &mut shadow.conn;
    let snapshot = if options.from_snapshot {
        let snap = snapshot::find(&mut *conn, options.snapshot_id)
            .await?
            .ok_or(ReplayError::NoSnapshot)?;
        snapshot::restore(conn, snap.snapshot_id).await?;
        Some(snap)
    } else {
        None
    };
    let start = snapshot.as_ref().map_or(Position::START, |s| s.position);
    bar.set_length(count_after(conn, start).await?);
    let mut replayer = Replayer::new(options.policy, options.batch_size, bar, live.clone(), true);
    replayer.workers = connect_workers(url, conn).await?;
    // Decisions taken since the snapshot apply to its parked streams.
    decisions::replay(conn, &mut replayer).await?;
    let (mut position, mut attempt) = (start, 1);
    loop {
        position = catch_up_unlocked(conn, position, &mut replayer).await?;
        let before = replayer.counts.events_read;
        let saved = (
            replayer.counts.clone(),
            replayer.retried.clone(),
            bar.position(),
        );
        match swap(conn, &live, &schema, position, &mut replayer).await {
            Ok(locked_for) => {
                replayer.close_workers().await;
                return Ok(Rebuilt {
                    snapshot,
                    events_during_swap: replayer.counts.events_read - before,
                    counts: replayer.counts,
                    locked_for,
                    elapsed: Duration::ZERO,
                });
            }
            Err(err) if attempt < SWAP_ATTEMPTS && is_contention(&err) => {
                // The attempt was rolled back, and so was what it replayed.
                (replayer.counts, replayer.retried) = (saved.0, saved.1);
                bar.set_position(saved.2);
                tracing::warn!(attempt, error = %err, "Swap attempt failed; catching up and trying again.");
                attempt += 1;
            }
            Err(err)
                if database_error(&err).and_then(contention)
                    == Some(Contention::LockNotAvailable) =>
            {
                return Err(ReplayError::LockTimeout {
                    attempts: SWAP_ATTEMPTS,
                    timeout_secs: LOCK_TIMEOUT.as_secs(),
                })
            }
            Err(err) => return Err(err),
        }
    }
}

/// The swap transaction; returns how long the live tables were locked.
async fn swap(
    conn: &mut PgConnection,
    live: &str,
    schema: &str,
    position: Position,
    replayer: &mut Replayer<'_>,
) -> Result<Duration, ReplayError> {
    let mut tx = conn.begin().await?;
    // The commit that counts waits for the WAL flush (and with it every
    // shadow commit before it): see `project`.
    sqlx::query("SET LOCAL synchronous_commit = on")
        .execute(&mut *tx)
        .await?;
    let timeout = format!("SET LOCAL lock_timeout = '{}ms'", LOCK_TIMEOUT.as_millis());
    sqlx::query(&timeout).execute(&mut *tx).await?;
    let lock = format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        qualified_list(live)
    );
    sqlx::query(&lock).execute(&mut *tx).await?;
    let locked = Instant::now();
    sqlx::query("SET LOCAL lock_timeout = 0")
        .execute(&mut *tx)
        .await?;
    read_log(&mut tx, position, replayer, Until::Empty).await?;
    catch_up_to_live(&mut tx, replayer, Until::Empty).await?;
    history::carry_over(&mut tx, live, schema).await?;
    let mut ddl = format!("DROP TABLE {};\n", qualified_list(live));
    for t in tables::ALL {
        ddl.push_str(&format!(
            "ALTER TABLE {schema}.{} SET SCHEMA {live};\n",
            t.name
        ));
    }
    ddl.push_str(&format!("DROP SCHEMA {schema} CASCADE;\n"));
    sqlx::raw_sql(&ddl).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(locked.elapsed())
}

/// Catches the shadow up without locks: passes over the log (each bounded
/// by what was committed when it began, so writers cannot keep it going)
/// until one finds less than a batch, then a sweep up to the live progress.
/// Whatever is left is read under the swap's lock.
async fn catch_up_unlocked(
    conn: &mut PgConnection,
    from: Position,
    replayer: &mut Replayer<'_>,
) -> Result<Position, ReplayError> {
    let mut position = from;
    for _ in 0..UNLOCKED_PASSES {
        let before = replayer.counts.events_read;
        position = read_log(conn, position, replayer, Until::PassStart).await?;
        if replayer.counts.events_read - before < replayer.batch_size as u64 {
            break;
        }
    }
    catch_up_to_live(conn, replayer, Until::PassStart).await?;
    Ok(position)
}

/// A failure of the swap that another attempt can overcome: a lock
/// timeout, a deadlock or serialization failure, a concurrent applier.
/// (Not every transient error: a view on a live table fails the `DROP` the
/// same way every time.)
fn is_contention(err: &ReplayError) -> bool {
    match err {
        ReplayError::Projection(ProjectionError::ConcurrentApplier { .. }) => true,
        _ => database_error(err).and_then(contention).is_some(),
    }
}

/// The database error behind `err`, if any.
fn database_error(err: &ReplayError) -> Option<&sqlx::Error> {
    match err {
        ReplayError::Database(e) | ReplayError::Projection(ProjectionError::Database(e)) => Some(e),
        _ => None,
    }
}
