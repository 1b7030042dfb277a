//! Snapshots (SPEC §4.6): an image of every projection table, built server
//! side (`jsonb_agg`) in one REPEATABLE READ transaction together with the
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

use super::PROJECTION_TABLES;

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

/// Takes a snapshot of the live projection, then deletes all but the newest
/// `retain` snapshots (none when `None`). Returns the snapshot and how many
/// were deleted.
pub async fn take(pool: &PgPool, retain: Option<u32>) -> Result<(SnapshotInfo, u64), sqlx::Error> {
    let image = PROJECTION_TABLES
        .iter()
        .map(|t| {
            format!(
                "'{0}', (SELECT coalesce(jsonb_agg(r), '[]'::jsonb) FROM {0} r)",
                t.name
            )
        })
        .collect::<Vec<_>>()
        .join(",\n");
    let sql = format!(
        r#"
        WITH c AS (SELECT tx_id, global_position FROM projection_checkpoints
                    ORDER BY tx_id, global_position LIMIT 1),
             image AS (SELECT jsonb_build_object({image}) AS payload)
        INSERT INTO snapshots (snapshot_id, checkpoint_tx, checkpoint_position, row_counts, payload)
        SELECT $1, coalesce((SELECT tx_id FROM c), 0), coalesce((SELECT global_position FROM c), 0),
               (SELECT jsonb_object_agg(e.key, jsonb_array_length(e.value))
                  FROM jsonb_each(i.payload) AS e),
               i.payload
          FROM image i
        RETURNING snapshot_id, taken_at, checkpoint_tx, checkpoint_position, row_counts
        "#
    );
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    let row: InfoRow = sqlx::query_as(&sql)
        .bind(Uuid::new_v4())
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
        DELETE FROM snapshots WHERE snapshot_id IN (
            SELECT snapshot_id FROM snapshots ORDER BY taken_at DESC, snapshot_id DESC OFFSET $1)
        "#,
    )
    .bind(i64::from(retain))
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
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

/// Fills the (empty) projection tables the connection's `search_path`
/// resolves with the image of snapshot `id`, in one transaction (the
/// caller's, when there is one), and moves the dead-letter id sequence past
/// the restored ids.
pub async fn restore(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    for t in PROJECTION_TABLES {
        let sql = format!(
            r#"
            INSERT INTO {0}
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
