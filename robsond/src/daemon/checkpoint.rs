//! The checkpoint protocol's SQL: one row per partition in
//! `projection_checkpoints`, holding the commit-safe read position up to
//! which the partition's events are applied, dead-lettered or held.
//!
//! A projector writes its checkpoint in the transaction that writes the
//! batch's projections and stream progress, so the three move together.
//! Exactly-once does not rest on the checkpoint alone: per-stream progress
//! filters any re-delivered event, which is what makes restarting from an
//! older position (e.g. after changing the partition count) harmless.

use robson_eventlog::Position;
use sqlx::{PgConnection, PgPool};

/// Arbitrary constant serialising checkpoint reshaping between instances.
const RESHAPE_LOCK: i64 = 0x726f_6273_6f6e_0002;

/// Makes sure `projection_checkpoints` has exactly the rows 0..partitions and
/// returns each partition's position. When the partition count changed since
/// the last run, every new partition starts at the minimum of the old
/// positions: events between that minimum and an old partition's position are
/// read again and skipped by the per-stream progress check.
pub async fn prepare(pool: &PgPool, partitions: usize) -> Result<Vec<Position>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RESHAPE_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(i32, i32, i64, i64)> = sqlx::query_as(
        "SELECT partition, partition_count, tx_id, global_position
           FROM projection_checkpoints ORDER BY partition",
    )
    .fetch_all(&mut *tx)
    .await?;
    let same_shape = rows.len() == partitions
        && rows
            .iter()
            .enumerate()
            .all(|(i, r)| r.0 as usize == i && r.1 as usize == partitions);
    if !same_shape {
        let start = rows
            .iter()
            .map(|r| Position {
                tx_id: r.2,
                global_position: r.3,
            })
            .min()
            .unwrap_or(Position::START);
        if !rows.is_empty() {
            tracing::warn!(
                old_partitions = rows.first().map_or(0, |r| r.1),
                new_partitions = partitions,
                restart_from = %start,
                "Partition count changed: every partition restarts from the oldest checkpoint."
            );
        }
        sqlx::query("DELETE FROM projection_checkpoints")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO projection_checkpoints (partition, partition_count, tx_id, global_position)
             SELECT p, $1, $2, $3 FROM generate_series(0, $1 - 1) AS p",
        )
        .bind(partitions as i32)
        .bind(start.tx_id)
        .bind(start.global_position)
        .execute(&mut *tx)
        .await?;
    }
    let positions: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT tx_id, global_position FROM projection_checkpoints ORDER BY partition",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(positions
        .into_iter()
        .map(|(tx_id, global_position)| Position {
            tx_id,
            global_position,
        })
        .collect())
}

/// Advances a partition's checkpoint inside the caller's transaction.
/// Fails (and so rolls the batch back) when the partition layout changed
/// under this daemon, e.g. another instance started with another count.
pub async fn save(
    conn: &mut PgConnection,
    partition: usize,
    partitions: usize,
    upto: Position,
    applied: u64,
    owner: &str,
) -> Result<(), sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE projection_checkpoints
            SET tx_id = $3, global_position = $4, events_applied = events_applied + $5,
                owner = $6, updated_at = now()
          WHERE partition = $1 AND partition_count = $2",
    )
    .bind(partition as i32)
    .bind(partitions as i32)
    .bind(upto.tx_id)
    .bind(upto.global_position)
    .bind(applied as i64)
    .bind(owner)
    .execute(conn)
    .await?
    .rows_affected();
    if updated == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "checkpoint row for partition {partition} of {partitions} is missing: \
             the partition layout changed under this daemon"
        )))
    }
}

/// Each partition's stored position (for `status` and `/health`).
pub async fn load(pool: &PgPool) -> Result<Vec<(i32, i32, Position, Option<String>)>, sqlx::Error> {
    let rows: Vec<(i32, i32, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT partition, partition_count, tx_id, global_position, owner
           FROM projection_checkpoints ORDER BY partition",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, n, tx_id, global_position, owner)| {
            (
                p,
                n,
                Position {
                    tx_id,
                    global_position,
                },
                owner,
            )
        })
        .collect())
}
