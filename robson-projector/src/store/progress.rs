//! `projection_stream_progress`, the exactly-once filter: one row per stream
//! with the last seq applied (or skipped) and the parked seq. A batch locks
//! the rows of its streams first, so two appliers of one stream serialise.

use std::collections::BTreeMap;

use robson_eventlog::EventEnvelope;
use sqlx::PgConnection;
use uuid::Uuid;

/// A stream's progress as the batch sees it (locked until commit).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Progress {
    pub stream_key: String,
    pub tenant_id: Uuid,
    pub last_seq: i64,
    pub last_event_id: Option<Uuid>,
    pub last_position: Option<i64>,
    /// The seq of the dead letter the stream waits behind.
    pub parked_seq: Option<i64>,
}

impl Progress {
    /// A stream nothing was applied to yet.
    #[cfg(test)]
    pub fn new(stream_key: &str, tenant_id: Uuid) -> Progress {
        Progress {
            stream_key: stream_key.to_string(),
            tenant_id,
            last_seq: 0,
            last_event_id: None,
            last_position: None,
            parked_seq: None,
        }
    }

    /// Moves past `event` (applied, unhandled or skipped).
    pub fn advance(&mut self, event: &EventEnvelope) {
        self.last_seq = event.seq;
        self.last_event_id = Some(event.event_id);
        self.last_position = Some(event.global_position);
    }
}

/// Streams keyed by stream_key.
pub type ProgressMap = BTreeMap<String, Progress>;

/// Creates the missing progress rows of `streams` and locks all of them, in
/// stream_key order (a fixed lock order: no deadlock between batches).
pub async fn lock(
    conn: &mut PgConnection,
    streams: &BTreeMap<String, Uuid>,
) -> Result<ProgressMap, sqlx::Error> {
    let keys: Vec<&str> = streams.keys().map(String::as_str).collect();
    let tenants: Vec<Uuid> = streams.values().copied().collect();
    sqlx::query(
        r#"
        INSERT INTO projection_stream_progress (stream_key, tenant_id)
        SELECT k.stream_key, k.tenant_id
          FROM UNNEST($1::text[], $2::uuid[]) AS k(stream_key, tenant_id)
         ORDER BY k.stream_key
        ON CONFLICT (stream_key) DO NOTHING
        "#,
    )
    .bind(&keys)
    .bind(&tenants)
    .execute(&mut *conn)
    .await?;
    let rows: Vec<Progress> = sqlx::query_as(
        r#"
        SELECT stream_key, tenant_id, last_seq, last_event_id, last_position, parked_seq
          FROM projection_stream_progress
         WHERE stream_key = ANY($1)
         ORDER BY stream_key
           FOR UPDATE
        "#,
    )
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|p| (p.stream_key.clone(), p))
        .collect())
}

/// Writes the progress of the streams a batch moved or parked. A newly
/// parked stream gets `parked_at = now()`; an unparked one loses it.
pub async fn update(conn: &mut PgConnection, changed: &[Progress]) -> Result<(), sqlx::Error> {
    if changed.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = changed.iter().map(|p| p.stream_key.as_str()).collect();
    let last_seqs: Vec<i64> = changed.iter().map(|p| p.last_seq).collect();
    let last_ids: Vec<Option<Uuid>> = changed.iter().map(|p| p.last_event_id).collect();
    let positions: Vec<Option<i64>> = changed.iter().map(|p| p.last_position).collect();
    let parked: Vec<Option<i64>> = changed.iter().map(|p| p.parked_seq).collect();
    sqlx::query(
        r#"
        UPDATE projection_stream_progress AS p
           SET last_seq = u.last_seq,
               last_event_id = u.last_event_id,
               last_position = u.last_position,
               parked_seq = u.parked_seq,
               parked_at = CASE WHEN u.parked_seq IS NULL THEN NULL
                                WHEN p.parked_seq IS NOT DISTINCT FROM u.parked_seq THEN p.parked_at
                                ELSE now() END,
               updated_at = now()
          FROM UNNEST($1::text[], $2::int8[], $3::uuid[], $4::int8[], $5::int8[])
               AS u(stream_key, last_seq, last_event_id, last_position, parked_seq)
         WHERE p.stream_key = u.stream_key
        "#,
    )
    .bind(&keys)
    .bind(&last_seqs)
    .bind(&last_ids)
    .bind(&positions)
    .bind(&parked)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
