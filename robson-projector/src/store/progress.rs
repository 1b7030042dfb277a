//! `projection_stream_progress`, the exactly-once filter: one row per stream
//! with the last seq applied (or skipped) and the parked seq. A batch locks
//! the existing rows of its streams first, so two appliers of one stream
//! serialise. A stream seen for the first time has no row to lock: its row is
//! inserted with the batch's writes, and if another applier inserted it
//! meanwhile the insert finds it, the batch fails as transient and is
//! retried — then it sees that row. One write per new stream, not two.

use std::collections::{BTreeMap, BTreeSet};

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
    /// The row exists in the table (false: a stream seen for the first time).
    #[sqlx(default)]
    pub stored: bool,
}

impl Progress {
    /// A stream nothing was applied to yet.
    pub fn new(stream_key: &str, tenant_id: Uuid) -> Progress {
        Progress {
            stream_key: stream_key.to_string(),
            tenant_id,
            last_seq: 0,
            last_event_id: None,
            last_position: None,
            parked_seq: None,
            stored: false,
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

/// Locks the existing progress rows of `streams`, in stream_key order (a
/// fixed lock order: no deadlock between batches); streams without a row get
/// a fresh, unstored [`Progress`]. Streams in `presumed_new` are not looked
/// up at all: they get a fresh [`Progress`] too, and if a row exists after
/// all, writing theirs fails as [`ProgressError::Concurrent`].
pub async fn lock(
    conn: &mut PgConnection,
    streams: &BTreeMap<String, Uuid>,
    presumed_new: &BTreeSet<&str>,
) -> Result<ProgressMap, sqlx::Error> {
    let keys: Vec<&str> = streams
        .keys()
        .map(String::as_str)
        .filter(|k| !presumed_new.contains(k))
        .collect();
    let rows: Vec<Progress> = sqlx::query_as(
        r#"
        SELECT stream_key, tenant_id, last_seq, last_event_id, last_position, parked_seq,
               true AS stored
          FROM projection_stream_progress
         WHERE stream_key = ANY($1)
         ORDER BY stream_key
           FOR UPDATE
        "#,
    )
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    let mut map: ProgressMap = rows
        .into_iter()
        .map(|p| (p.stream_key.clone(), p))
        .collect();
    for (key, tenant) in streams {
        map.entry(key.clone())
            .or_insert_with(|| Progress::new(key, *tenant));
    }
    Ok(map)
}

/// Writes the progress of the streams a batch moved or parked: an UPDATE of
/// the stored rows and an INSERT of the new ones. A new row that another
/// applier inserted meanwhile is [`ProgressError::Concurrent`] (transient).
pub async fn update(conn: &mut PgConnection, changed: &[Progress]) -> Result<(), ProgressError> {
    let (stored, new): (Vec<&Progress>, Vec<&Progress>) = changed.iter().partition(|p| p.stored);
    if !stored.is_empty() {
        update_stored(conn, &stored).await?;
    }
    if !new.is_empty() {
        insert_new(conn, &new).await?;
    }
    Ok(())
}

/// Why progress could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// Another applier created the stream's row first; retry the batch.
    #[error("stream {0} was started by a concurrent applier")]
    Concurrent(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ProgressError> for crate::ProjectionError {
    fn from(err: ProgressError) -> Self {
        match err {
            ProgressError::Concurrent(stream_key) => {
                crate::ProjectionError::ConcurrentApplier { stream_key }
            }
            ProgressError::Database(e) => crate::ProjectionError::Database(e),
        }
    }
}

async fn update_stored(conn: &mut PgConnection, rows: &[&Progress]) -> Result<(), sqlx::Error> {
    let keys: Vec<&str> = rows.iter().map(|p| p.stream_key.as_str()).collect();
    let last_seqs: Vec<i64> = rows.iter().map(|p| p.last_seq).collect();
    let last_ids: Vec<Option<Uuid>> = rows.iter().map(|p| p.last_event_id).collect();
    let positions: Vec<Option<i64>> = rows.iter().map(|p| p.last_position).collect();
    let parked: Vec<Option<i64>> = rows.iter().map(|p| p.parked_seq).collect();
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

async fn insert_new(conn: &mut PgConnection, rows: &[&Progress]) -> Result<(), ProgressError> {
    let keys: Vec<&str> = rows.iter().map(|p| p.stream_key.as_str()).collect();
    let tenants: Vec<Uuid> = rows.iter().map(|p| p.tenant_id).collect();
    let last_seqs: Vec<i64> = rows.iter().map(|p| p.last_seq).collect();
    let last_ids: Vec<Option<Uuid>> = rows.iter().map(|p| p.last_event_id).collect();
    let positions: Vec<Option<i64>> = rows.iter().map(|p| p.last_position).collect();
    let parked: Vec<Option<i64>> = rows.iter().map(|p| p.parked_seq).collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        r#"
        INSERT INTO projection_stream_progress
               (stream_key, tenant_id, last_seq, last_event_id, last_position, parked_seq, parked_at)
        SELECT u.stream_key, u.tenant_id, u.last_seq, u.last_event_id, u.last_position,
               u.parked_seq, CASE WHEN u.parked_seq IS NULL THEN NULL ELSE now() END
          FROM UNNEST($1::text[], $2::uuid[], $3::int8[], $4::uuid[], $5::int8[], $6::int8[])
               AS u(stream_key, tenant_id, last_seq, last_event_id, last_position, parked_seq)
         ORDER BY u.stream_key
        ON CONFLICT (stream_key) DO NOTHING
        RETURNING stream_key
        "#,
    )
    .bind(&keys)
    .bind(&tenants)
    .bind(&last_seqs)
    .bind(&last_ids)
    .bind(&positions)
    .bind(&parked)
    .fetch_all(&mut *conn)
    .await?;
    if inserted.len() == rows.len() {
        return Ok(());
    }
    let missing = keys
        .iter()
        .find(|k| !inserted.iter().any(|i| i == *k))
        .map_or_else(String::new, |k| (*k).to_string());
    Err(ProgressError::Concurrent(missing))
}
