//! The daemon's bootstrap (SPEC §4.6): a daemon that starts on an EMPTY
//! projection (no per-stream progress and no row in the six read models)
//! while a snapshot exists restores the latest snapshot into the live
//! tables and sets every partition's checkpoint to the snapshot's position;
//! it then catches up from the log as usual. On any other start it does
//! nothing.
//!
//! Instances starting together are serialised by an advisory lock, and the
//! emptiness is checked again with the tables locked, so only one restores.

use sqlx::{Connection, PgConnection, PgPool};

use super::snapshot::{self, SnapshotInfo};
use super::tables;
use crate::daemon::retry::Retry;
use crate::progress::checkpoint;

/// Serialises bootstrapping instances.
const BOOTSTRAP_LOCK: i64 = 0x726f_6273_6f6e_0004;

/// Bootstraps from the latest snapshot if the projection is empty; retries
/// while the database is unreachable, like the rest of the daemon's start.
pub async fn run(pool: &PgPool, partitions: usize) -> anyhow::Result<Option<SnapshotInfo>> {
    let mut retry = Retry::new("Could not check for a snapshot to bootstrap from");
    loop {
        match bootstrap(pool, partitions).await {
            Ok(None) => return Ok(None),
            Ok(Some(snap)) => {
                let rows: i64 = snap.row_counts.values().sum();
                tracing::info!(
                    snapshot = %snap.snapshot_id,
                    taken_at = %snap.taken_at,
                    position = %snap.position,
                    rows,
                    partitions,
                    "Empty projection bootstrapped from the latest snapshot; catching up from its position."
                );
                return Ok(Some(snap));
            }
            Err(err) => {
                if let Err(gave_up) = retry.after(err, std::future::pending()).await {
                    return Err(anyhow::Error::new(gave_up.into_error())
                        .context("Failed to bootstrap the projection from a snapshot"));
                }
            }
        }
    }
}

/// One attempt: restores the latest snapshot when the projection is empty.
pub async fn bootstrap(
    pool: &PgPool,
    partitions: usize,
) -> Result<Option<SnapshotInfo>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if !projection_is_empty(&mut conn).await? {
        return Ok(None);
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(BOOTSTRAP_LOCK)
        .execute(&mut *tx)
        .await?;
    let Some(snap) = snapshot::latest(&mut *tx).await? else {
        return Ok(None);
    };
    let tables: Vec<&str> = tables::ALL.iter().map(|t| t.name).collect();
    let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", tables.join(", "));
    sqlx::query(&lock).execute(&mut *tx).await?;
    if !projection_is_empty(&mut tx).await? {
        return Ok(None);
    }
    // Dead letters of a projection that was emptied by hand describe
    // nothing any more; the snapshot brings its own.
    sqlx::query("DELETE FROM projection_dead_letters")
        .execute(&mut *tx)
        .await?;
    snapshot::restore(&mut tx, snap.snapshot_id).await?;
    checkpoint::reset(&mut tx, partitions, snap.position).await?;
    tx.commit().await?;
    Ok(Some(snap))
}

/// No per-stream progress and no row in any of the six read models.
async fn projection_is_empty(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let probes: Vec<String> = tables::ALL
        .iter()
        .filter(|t| t.name != "projection_dead_letters")
        .map(|t| format!("NOT EXISTS (SELECT 1 FROM {})", t.name))
        .collect();
    sqlx::query_scalar(&format!("SELECT {}", probes.join(" AND ")))
        .fetch_one(conn)
        .await
}
