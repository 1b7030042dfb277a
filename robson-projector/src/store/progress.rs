//! `projection_stream_progress`, the exactly-once filter: one row per stream
//! with the last seq applied (or skipped) and the parked seq. A batch locks
//! the existing rows of its streams first, so two appliers of one stream
//! serialise. A stream seen for the first time has no row to lock: its row is
//! inserted with the batch's writes, and if another applier inserted it
//! meanwhile the insert finds it, the batch fails as transient and is
//! retried — then it sees that row. One write per new stream, not two.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use robson_eventlog::EventEnvelope;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::tables::PgQuery;

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
    // Every stream presumed new (a catch-up's usual batch): no statement.
    let rows: Vec<Progress> = if keys.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
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
        .await?
    };
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
/// (A batch's usual path writes progress inside its one write statement,
/// `store::writes`; this is the path of an event dead-lettered on its own.)
pub async fn update(conn: &mut PgConnection, changed: &[Progress]) -> Result<(), ProgressError> {
    static UPDATE: OnceLock<String> = OnceLock::new();
    static INSERT: OnceLock<String> = OnceLock::new();
    let (stored, new) = split(changed);
    if !stored.is_empty() {
        bind_stored(sqlx::query(UPDATE.get_or_init(|| update_sql(1))), &stored)
            .execute(&mut *conn)
            .await?;
    }
    if !new.is_empty() {
        let inserted: Vec<String> =
            bind_new(sqlx::query(INSERT.get_or_init(|| insert_sql(1))), &new)
                .try_map(|row: PgRow| row.try_get(0))
                .fetch_all(&mut *conn)
                .await?;
        check_inserted(&new, &inserted)?;
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

/// The stored rows and the new ones among `changed`.
pub(super) fn split(changed: &[Progress]) -> (Vec<&Progress>, Vec<&Progress>) {
    changed.iter().partition(|p| p.stored)
}

/// The UPDATE of stored rows, its five array parameters numbered from
/// `first` (bound by [`bind_stored`]).
pub(super) fn update_sql(first: usize) -> String {
    let [keys, seqs, ids, positions, parked] = numbered(first);
    format!(
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
          FROM UNNEST(${keys}::text[], ${seqs}::int8[], ${ids}::uuid[], ${positions}::int8[],
                      ${parked}::int8[])
               AS u(stream_key, last_seq, last_event_id, last_position, parked_seq)
         WHERE p.stream_key = u.stream_key
        "#
    )
}

/// The INSERT of new rows, returning the keys it inserted (a key missing
/// was inserted by another applier), its six array parameters numbered
/// from `first` (bound by [`bind_new`]).
pub(super) fn insert_sql(first: usize) -> String {
    let [keys, tenants, seqs, ids, positions, parked] = numbered(first);
    format!(
        r#"
        INSERT INTO projection_stream_progress
               (stream_key, tenant_id, last_seq, last_event_id, last_position, parked_seq, parked_at)
        SELECT u.stream_key, u.tenant_id, u.last_seq, u.last_event_id, u.last_position,
               u.parked_seq, CASE WHEN u.parked_seq IS NULL THEN NULL ELSE now() END
          FROM UNNEST(${keys}::text[], ${tenants}::uuid[], ${seqs}::int8[], ${ids}::uuid[],
                      ${positions}::int8[], ${parked}::int8[])
               AS u(stream_key, tenant_id, last_seq, last_event_id, last_position, parked_seq)
         ORDER BY u.stream_key
        ON CONFLICT (stream_key) DO NOTHING
        RETURNING stream_key
        "#
    )
}

/// `N` parameter numbers from `first`.
fn numbered<const N: usize>(first: usize) -> [usize; N] {
    std::array::from_fn(|i| first + i)
}

/// Binds the parameters of [`update_sql`].
pub(super) fn bind_stored<'q>(query: PgQuery<'q>, rows: &[&'q Progress]) -> PgQuery<'q> {
    query
        .bind(
            rows.iter()
                .map(|p| p.stream_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|p| p.last_seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.last_event_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.last_position).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.parked_seq).collect::<Vec<_>>())
}

/// Binds the parameters of [`insert_sql`].
pub(super) fn bind_new<'q>(query: PgQuery<'q>, rows: &[&'q Progress]) -> PgQuery<'q> {
    query
        .bind(
            rows.iter()
                .map(|p| p.stream_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|p| p.tenant_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.last_seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.last_event_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.last_position).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.parked_seq).collect::<Vec<_>>())
}

/// [`ProgressError::Concurrent`] unless every row of `new` was inserted.
pub(super) fn check_inserted(new: &[&Progress], inserted: &[String]) -> Result<(), ProgressError> {
    let inserted: BTreeSet<&str> = inserted.iter().map(String::as_str).collect();
    match new
        .iter()
        .find(|p| !inserted.contains(p.stream_key.as_str()))
    {
        None => Ok(()),
        Some(p) => Err(ProgressError::Concurrent(p.stream_key.clone())),
    }
}
