//! Snapshots (SPEC §4.6): an image of every projection table, built server
//! side (`jsonb_agg`, in parts of 10,000 rows in `snapshot_parts`) in one
//! REPEATABLE READ transaction together with the
//! read position it corresponds to; pruning to the newest N; and restoring
//! one into the tables the connection's `search_path` names (the live ones
//! for the bootstrap, a shadow's for `rebuild --from-snapshot`).
//!
//! The position is the oldest partition checkpoint seen by the same
//! snapshot: every event at or before it is reflected in the image (applied,
//! dead-lettered or held behind a parked stream). Events after it may be
//! reflected too; reading them again after a restore is harmless, because
//! the restored per-stream progress filters them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use robson_eventlog::Position;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::tables;

/// A stored snapshot, without its image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    pub snapshot_id: Uuid,
    pub taken_at: DateTime<Utc>,
    /// The read position the image corresponds to.
    pub position: Position,
    /// Rows per table.
    pub row_counts: BTreeMap<String, i64>,
}

type InfoRow = (Uuid, DateTime<Utc>, i64, i64, Json<BTreeMap<String, i64>>);

impl From<InfoRow> for SnapshotInfo {
    fn from((snapshot_id, taken_at, tx_id, global_position, counts): InfoRow) -> Self {
        SnapshotInfo {
            snapshot_id,
            taken_at,
            position: Position {
                tx_id,
                global_position,
            },
            row_counts: counts.0,
        }
    }
}

/// Rows per part of a snapshot image (a few MB of JSON each).
const ROWS_PER_PART: i64 = 10_000;

/// Takes a snapshot of the live projection, then deletes all but the newest
/// `retain` snapshots (none when `None`). Returns the snapshot and how many
/// were deleted. The image is written table by table in parts of
/// [`ROWS_PER_PART`] rows, all in one REPEATABLE READ transaction, so its
/// size is not bounded by the 256 MB limit of one jsonb value.
pub async fn take(pool: &PgPool, retain: Option<u32>) -> Result<(SnapshotInfo, u64), sqlx::Error> {
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    for t in tables::ALL {
        let sql = format!(
            r#"
            INSERT INTO snapshot_parts (snapshot_id, table_name, part, rows)
            SELECT $1, '{0}', (x.n - 1) / $2, jsonb_agg(x.j ORDER BY x.n)
              FROM (SELECT to_jsonb(r) AS j, row_number() OVER () AS n FROM {0} r) x
             GROUP BY (x.n - 1) / $2
            "#,
            t.name
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(ROWS_PER_PART)
            .execute(&mut *tx)
            .await?;
    }
    let row: InfoRow = sqlx::query_as(
        r#"
        WITH c AS (SELECT tx_id, global_position FROM projection_checkpoints
                    ORDER BY tx_id, global_position LIMIT 1),
             counts AS (SELECT t.name, coalesce(sum(jsonb_array_length(p.rows)), 0)::int8 AS n
                          FROM unnest($2::text[]) AS t(name)
                          LEFT JOIN snapshot_parts p
                            ON p.snapshot_id = $1 AND p.table_name = t.name
                         GROUP BY t.name)
        INSERT INTO snapshots (snapshot_id, checkpoint_tx, checkpoint_position, format_version,
                               row_counts, payload)
        SELECT $1, coalesce((SELECT tx_id FROM c), 0), coalesce((SELECT global_position FROM c), 0),
               2, (SELECT jsonb_object_agg(name, n) FROM counts), '{}'::jsonb
        RETURNING snapshot_id, taken_at, checkpoint_tx, checkpoint_position, row_counts
        "#,
    )
    .bind(id)
    .bind(tables::ALL.iter().map(|t| t.name).collect::<Vec<_>>())
    .fetch_one(&mut *tx)
    .await?;
    let pruned = match retain {
        Some(n) => prune(&mut *tx, n).await?,
        None => 0,
    };
    tx.commit().await?;
    Ok((row.into(), pruned))
}

/// Deletes every snapshot but the newest `retain`.
pub async fn prune<'c>(executor: impl PgExecutor<'c>, retain: u32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        r#"
        WITH old AS (
            DELETE FROM snapshots WHERE snapshot_id IN (
                SELECT snapshot_id FROM snapshots
                 ORDER BY taken_at DESC, snapshot_id DESC OFFSET $1)
            RETURNING snapshot_id),
             parts AS (DELETE FROM snapshot_parts WHERE snapshot_id IN (SELECT snapshot_id FROM old))
        SELECT 1 FROM old
        "#,
    )
    .bind(i64::from(retain))
    .fetch_all(executor)
    .await?;
    Ok(done.len() as u64)
}

/// The newest snapshot, if any.
pub async fn latest<'c>(
    executor: impl PgExecutor<'c>,
) -> Result<Option<SnapshotInfo>, sqlx::Error> {
    let row: Option<InfoRow> = sqlx::query_as(
        r#"
        SELECT snapshot_id, taken_at, checkpoint_tx, checkpoint_position, row_counts
          FROM snapshots ORDER BY taken_at DESC, snapshot_id DESC LIMIT 1
        "#,
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(SnapshotInfo::from))
}

/// Every stored snapshot, newest first.
pub async fn list<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<SnapshotInfo>, sqlx::Error> {
    let rows: Vec<InfoRow> = sqlx::query_as(
        r#"
        SELECT snapshot_id, taken_at, checkpoint_tx, checkpoint_position, row_counts
          FROM snapshots ORDER BY taken_at DESC, snapshot_id DESC
        "#,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(SnapshotInfo::from).collect())
}

/// Snapshot `id`, or the newest when `id` is None.
pub async fn find<'c>(
    executor: impl PgExecutor<'c>,
    id: Option<Uuid>,
) -> Result<Option<SnapshotInfo>, sqlx::Error> {
    let Some(id) = id else {
        return latest(executor).await;
    };
    let row: Option<InfoRow> = sqlx::query_as(
        r#"
        SELECT snapshot_id, taken_at, checkpoint_tx, checkpoint_position, row_counts
          FROM snapshots WHERE snapshot_id = $1
        "#,
    )
    .bind(id)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(SnapshotInfo::from))
}

/// Fills the (empty) projection tables the connection's `search_path`
/// resolves with the image of snapshot `id`, in one transaction (the
/// caller's, when there is one), and moves the dead-letter id sequence past
/// the restored ids.
pub async fn restore(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    for t in tables::ALL {
        let sql = format!(
            r#"
            INSERT INTO {0}
            SELECT r.* FROM snapshot_parts p
             CROSS JOIN LATERAL jsonb_populate_recordset(NULL::{0}, p.rows) AS r
             WHERE p.snapshot_id = $1 AND p.table_name = '{0}'
            UNION ALL
            -- format 1: the whole image in snapshots.payload
            SELECT r.* FROM snapshots s
             CROSS JOIN LATERAL jsonb_populate_recordset(NULL::{0}, s.payload -> '{0}') AS r
             WHERE s.snapshot_id = $1
            "#,
            t.name
        );
        sqlx::query(&sql).bind(id).execute(&mut *tx).await?;
    }
    sqlx::query(
        r#"
        SELECT setval(pg_get_serial_sequence('projection_dead_letters', 'dead_letter_id'),
                      coalesce(max(dead_letter_id), 0) + 1, false)
          FROM projection_dead_letters
        "#,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
