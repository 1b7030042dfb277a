//! The checkpoint protocol's SQL: one row per partition in
//! `projection_checkpoints`, holding the commit-safe read position up to
//! which the partition's events are applied, dead-lettered or held.
//!
//! A projector writes its checkpoint in the transaction that writes the
//! batch's projections and stream progress, so the three move together.
//! Exactly-once does not rest on the checkpoint alone: per-stream progress
//! filters any re-delivered event, which is what makes restarting from an
//! older position (e.g. after changing the partition count) harmless.
//!
//! The rows also ARE the partition layout: all of them carry one
//! `partition_count`. Which layout is worked is decided by
//! `ownership::Ownership::settle_layout`; this module only reads, replaces
//! and checks it (a batch of another layout cannot commit).

use robson_eventlog::Position;
use sqlx::{PgConnection, PgPool};

/// Arbitrary constant serialising layout changes between instances.
const RESHAPE_LOCK: i64 = 0x726f_6273_6f6e_0002;

/// A checkpoint row of this daemon's layout is gone: the partition count in
/// the database changed under it (another instance re-shaped it). Not a
/// database error and not transient: the batch rolls back and the daemon
/// adopts the new layout instead of retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the partition layout changed under this daemon: partition {partition} of {partitions} \
     has no checkpoint row (the database's layout is {})",
    stored.map_or_else(|| "empty".to_owned(), |n| format!("{n} partitions"))
)]
pub struct LayoutChanged {
    pub partition: usize,
    pub partitions: usize,
    /// The partition count the database holds now (None: no rows).
    pub stored: Option<usize>,
}

/// Why a checkpoint could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The layout changed: see [`LayoutChanged`].
    #[error(transparent)]
    LayoutChanged(#[from] LayoutChanged),
    /// A database error; `robson_projector::classify` decides.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Takes the lock that serialises layout changes, for the caller's
/// transaction.
pub async fn lock_layout(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RESHAPE_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// The partition count of the stored layout, None when there are no rows.
pub async fn stored_layout(conn: &mut PgConnection) -> Result<Option<usize>, sqlx::Error> {
    let n: Option<i32> =
        sqlx::query_scalar("SELECT max(partition_count) FROM projection_checkpoints")
            .fetch_one(conn)
            .await?;
    Ok(n.map(|n| n as usize))
}

/// Replaces the stored layout with `partitions` rows, inside the caller's
/// transaction (which holds [`lock_layout`]). Every new partition starts at
/// the minimum of the old positions: an event not yet applied lies after its
/// old partition's checkpoint, so after that minimum, and events between the
/// minimum and an old partition's position are read again and skipped by
/// the per-stream progress check. A projector of the old layout that commits
/// concurrently only moves its old row, which this either sees or replaces;
/// after this commits, no old-layout batch can commit (see [`save`]).
pub async fn reshape(conn: &mut PgConnection, partitions: usize) -> Result<Position, sqlx::Error> {
    let rows: Vec<(i32, i64, i64)> = sqlx::query_as(
        "SELECT partition_count, tx_id, global_position FROM projection_checkpoints",
    )
    .fetch_all(&mut *conn)
    .await?;
    let start = rows
        .iter()
        .map(|r| Position {
            tx_id: r.1,
            global_position: r.2,
        })
        .min()
        .unwrap_or(Position::START);
    if let Some(old) = rows.first() {
        tracing::warn!(
            old_partitions = old.0,
            new_partitions = partitions,
            restart_from = %start,
            "Partition count changed: every partition restarts from the oldest checkpoint."
        );
    }
    reset(conn, partitions, start).await?;
    Ok(start)
}

/// Replaces every checkpoint row with a layout of `partitions` rows, all at
/// `position` (the caller holds [`lock_layout`] or otherwise excludes the
/// daemons, as the snapshot bootstrap does).
pub async fn reset(
    conn: &mut PgConnection,
    partitions: usize,
    position: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM projection_checkpoints")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO projection_checkpoints (partition, partition_count, tx_id, global_position)
         SELECT p, $1, $2, $3 FROM generate_series(0, $1 - 1) AS p",
    )
    .bind(partitions as i32)
    .bind(position.tx_id)
    .bind(position.global_position)
    .execute(conn)
    .await?;
    Ok(())
}

/// The positions of a layout of `partitions` partitions, one per partition
/// in order; None when the stored layout is another one.
pub async fn positions(
    conn: &mut PgConnection,
    partitions: usize,
) -> Result<Option<Vec<Position>>, sqlx::Error> {
    let rows: Vec<(i32, i32, i64, i64)> = sqlx::query_as(
        "SELECT partition, partition_count, tx_id, global_position
           FROM projection_checkpoints ORDER BY partition",
    )
    .fetch_all(conn)
    .await?;
    let same_shape = rows.len() == partitions
        && rows
            .iter()
            .enumerate()
            .all(|(i, r)| r.0 as usize == i && r.1 as usize == partitions);
    Ok(same_shape.then(|| {
        rows.into_iter()
            .map(|(_, _, tx_id, global_position)| Position {
                tx_id,
                global_position,
            })
            .collect()
    }))
}

/// At start: creates the layout of `partitions` partitions when there is
/// none and returns each partition's position. When the database holds
/// another layout it is left alone (whether to adopt it or replace it is
/// decided by the supervisor with the other instances in view, see
/// `ownership::Ownership::settle_layout`), and every partition is reported
/// at the oldest stored position, where reading would start.
pub async fn prepare(pool: &PgPool, partitions: usize) -> Result<Vec<Position>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_layout(&mut tx).await?;
    if stored_layout(&mut tx).await?.is_none() {
        reshape(&mut tx, partitions).await?;
    }
    let positions = match positions(&mut tx, partitions).await? {
        Some(p) => p,
        None => {
            let oldest: Option<(i64, i64)> = sqlx::query_as(
                "SELECT tx_id, global_position FROM projection_checkpoints
                  ORDER BY tx_id, global_position LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let oldest = oldest.map_or(Position::START, |(tx_id, global_position)| Position {
                tx_id,
                global_position,
            });
            vec![oldest; partitions]
        }
    };
    tx.commit().await?;
    Ok(positions)
}

/// Moving a partition's checkpoint: the statement of [`save`], and the
/// part a batch's write statement makes too (`robson_projector::AlsoWrite`,
/// one round trip fewer per batch). It returns one row when the partition
/// has its row in this layout, none when the layout changed.
#[derive(Debug, Clone)]
pub struct Advance {
    pub partition: usize,
    pub partitions: usize,
    pub upto: Position,
    pub owner: String,
}

const ADVANCE: &str = "UPDATE projection_checkpoints
    SET tx_id = $3::int8, global_position = $4::int8,
        events_applied = events_applied + $5::int8, owner = $6::text, updated_at = now()
  WHERE partition = $1::int4 AND partition_count = $2::int4
 RETURNING partition";

impl robson_projector::AlsoWrite for Advance {
    fn sql(&self) -> &'static str {
        ADVANCE
    }

    fn params(&self) -> usize {
        6
    }

    fn bind<'q>(
        &self,
        query: robson_projector::tables::PgQuery<'q>,
        applied: &[u64],
    ) -> robson_projector::tables::PgQuery<'q> {
        let applied: u64 = applied.iter().sum();
        query
            .bind(self.partition as i32)
            .bind(self.partitions as i32)
            .bind(self.upto.tx_id)
            .bind(self.upto.global_position)
            .bind(applied as i64)
            .bind(self.owner.clone())
    }
}

impl Advance {
    /// Checks what moving the checkpoint returned: one row, or none when
    /// the layout changed ([`LayoutChanged`]).
    pub async fn check(&self, conn: &mut PgConnection, rows: u64) -> Result<(), SaveError> {
        if rows == 1 {
            return Ok(());
        }
        Err(LayoutChanged {
            partition: self.partition,
            partitions: self.partitions,
            stored: stored_layout(conn).await?,
        }
        .into())
    }
}

/// [`Advance`] of several partitions at once: the checkpoints of a group
/// of small batches (`daemon::group`), moved by the group's write
/// statement. It returns one row per partition whose row is in this layout.
#[derive(Debug, Clone)]
pub struct AdvanceMany {
    pub partitions: usize,
    pub owner: String,
    /// Each partition of the group and the position it is covered up to.
    pub each: Vec<(usize, Position)>,
}

const ADVANCE_MANY: &str = "UPDATE projection_checkpoints AS c
    SET tx_id = v.tx_id, global_position = v.global_position,
        events_applied = c.events_applied + v.applied, owner = $6::text, updated_at = now()
   FROM unnest($1::int4[], $3::int8[], $4::int8[], $5::int8[])
        AS v(partition, tx_id, global_position, applied)
  WHERE c.partition = v.partition AND c.partition_count = $2::int4
 RETURNING c.partition";

impl robson_projector::AlsoWrite for AdvanceMany {
    fn sql(&self) -> &'static str {
        ADVANCE_MANY
    }

    fn params(&self) -> usize {
        6
    }

    fn bind<'q>(
        &self,
        query: robson_projector::tables::PgQuery<'q>,
        applied: &[u64],
    ) -> robson_projector::tables::PgQuery<'q> {
        let partitions: Vec<i32> = self.each.iter().map(|(p, _)| *p as i32).collect();
        let tx_ids: Vec<i64> = self.each.iter().map(|(_, at)| at.tx_id).collect();
        let positions: Vec<i64> = self.each.iter().map(|(_, at)| at.global_position).collect();
        let applied: Vec<i64> = applied.iter().map(|n| *n as i64).collect();
        query
            .bind(partitions)
            .bind(self.partitions as i32)
            .bind(tx_ids)
            .bind(positions)
            .bind(applied)
            .bind(self.owner.clone())
    }
}

/// Advances a partition's checkpoint inside the caller's transaction, by a
/// statement of its own. Fails with [`LayoutChanged`] (and so rolls the
/// batch back) when the partition layout changed under this daemon.
pub async fn save(
    conn: &mut PgConnection,
    advance: &Advance,
    applied: u64,
) -> Result<(), SaveError> {
    use robson_projector::AlsoWrite as _;
    let rows = advance
        .bind(sqlx::query(ADVANCE), &[applied])
        .execute(&mut *conn)
        .await?
        .rows_affected();
    advance.check(conn, rows).await
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
