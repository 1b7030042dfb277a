//! Operator actions on parked streams (SPEC §4.3), shared by the CLI and the
//! HTTP admin endpoints: listing them, retrying or skipping the failed event,
//! and catching a resumed stream up with the log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Acquire, Connection, PgConnection, PgExecutor, Postgres};
use uuid::Uuid;

use robson_eventlog::read_stream;

use super::{apply_batch, BatchOutcome, PoisonPolicy};
use crate::error::ProjectionError;

/// What to do with the event a stream is parked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeAction {
    /// Re-attempt it (e.g. after a fix); the dead letter is resolved `retried`.
    Retry,
    /// Move past it; the dead letter is resolved `skipped`.
    Skip,
}

/// A stream that was resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resumed {
    pub stream_key: String,
    /// The seq the stream was parked on.
    pub parked_seq: i64,
    pub action: ResumeAction,
}

/// Why a stream could not be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The projector has never seen this stream.
    #[error("stream {0} is unknown to the projector")]
    UnknownStream(String),
    /// The stream is not parked; there is nothing to retry or skip.
    #[error("stream {0} is not parked")]
    NotParked(String),
    /// A database error; see [`crate::classify`].
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A parked stream, for `robsond streams parked` and `GET /admin/parked`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ParkedStream {
    pub stream_key: String,
    pub tenant_id: Uuid,
    /// The seq of the failed event.
    pub parked_seq: i64,
    /// The last seq applied (parked_seq − 1).
    pub last_seq: i64,
    /// The stream's last appended seq (`event_streams.last_seq`).
    pub head_seq: i64,
    /// The failed event (from its dead letter).
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    /// `invalid_payload` or `invariant_violation`.
    pub error_kind: String,
    pub error: String,
    pub failed_at: Option<DateTime<Utc>>,
    /// How many times the event failed (retries included).
    pub attempts: i32,
}

impl ParkedStream {
    /// Events waiting behind the failed one.
    pub fn waiting_events(&self) -> i64 {
        (self.head_seq - self.parked_seq).max(0)
    }
}

/// Every parked stream, by stream_key.
pub async fn list_parked<'c>(
    executor: impl PgExecutor<'c>,
) -> Result<Vec<ParkedStream>, sqlx::Error> {
    list_parked_page(executor, None, None).await
}

/// The parked streams after `after` (by stream_key), at most `limit` of
/// them (all when None): the console's pages.
pub async fn list_parked_page<'c>(
    executor: impl PgExecutor<'c>,
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<ParkedStream>, sqlx::Error> {
    sqlx::query_as(
        r#"
        SELECT p.stream_key, p.tenant_id, p.parked_seq, p.last_seq,
               COALESCE(s.last_seq, p.last_seq) AS head_seq,
               d.event_id, d.event_type::text AS event_type,
               COALESCE(d.error_kind::text, 'unknown') AS error_kind,
               COALESCE(d.error, 'dead letter not found') AS error,
               d.failed_at, COALESCE(d.attempts, 0) AS attempts
          FROM projection_stream_progress p
          LEFT JOIN event_streams s ON s.stream_key = p.stream_key
          LEFT JOIN projection_dead_letters d ON d.stream_key = p.stream_key AND d.seq = p.parked_seq
         WHERE p.parked_seq IS NOT NULL AND ($1::text IS NULL OR p.stream_key > $1)
         ORDER BY p.stream_key
         LIMIT $2
        "#,
    )
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Unparks `stream_key`: `Retry` re-attempts the failed event, `Skip` moves
/// past it. Either way the dead letter is resolved, `resume_requested` is
/// set and the daemon is woken (`pg_notify('robson_events')`); the daemon
/// then applies the held events with [`catch_up_stream`]. Takes a pool, a
/// connection or a transaction; inside a transaction the wake-up is sent
/// when it commits.
pub async fn resume_stream<'a>(
    conn: impl Acquire<'a, Database = Postgres>,
    stream_key: &str,
    action: ResumeAction,
) -> Result<Resumed, ResumeError> {
    let mut tx = conn.begin().await?;
    let resumed = resume_locked(&mut tx, stream_key, action).await?;
    tx.commit().await?;
    Ok(resumed)
}

async fn resume_locked(
    conn: &mut PgConnection,
    stream_key: &str,
    action: ResumeAction,
) -> Result<Resumed, ResumeError> {
    let parked: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT parked_seq FROM projection_stream_progress WHERE stream_key = $1 FOR UPDATE",
    )
    .bind(stream_key)
    .fetch_optional(&mut *conn)
    .await?;
    let parked_seq = match parked {
        None => return Err(ResumeError::UnknownStream(stream_key.to_string())),
        Some(None) => return Err(ResumeError::NotParked(stream_key.to_string())),
        Some(Some(seq)) => seq,
    };
    let (resolution, skip) = match action {
        ResumeAction::Retry => ("retried", false),
        ResumeAction::Skip => ("skipped", true),
    };
    sqlx::query(
        r#"
        UPDATE projection_dead_letters SET resolution = $3, resolved_at = now()
         WHERE stream_key = $1 AND seq = $2
        "#,
    )
    .bind(stream_key)
    .bind(parked_seq)
    .bind(resolution)
    .execute(&mut *conn)
    .await?;
    // Skipping moves past the failed event as if it had been applied.
    sqlx::query(
        r#"
        UPDATE projection_stream_progress AS p
           SET parked_seq = NULL, parked_at = NULL, resume_requested = true, updated_at = now(),
               last_seq = CASE WHEN $2 THEN $3 ELSE p.last_seq END,
               last_event_id = CASE WHEN $2 THEN e.event_id ELSE p.last_event_id END,
               last_position = CASE WHEN $2 THEN e.global_position ELSE p.last_position END
          FROM (SELECT $1::text AS stream_key) AS k
          LEFT JOIN event_log e ON e.stream_key = k.stream_key AND e.seq = $3
         WHERE p.stream_key = k.stream_key
        "#,
    )
    .bind(stream_key)
    .bind(skip)
    .bind(parked_seq)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify('robson_events', '')")
        .execute(&mut *conn)
        .await?;
    Ok(Resumed {
        stream_key: stream_key.to_string(),
        parked_seq,
        action,
    })
}

/// Applies up to `max_events` events of `stream_key` after its last applied
/// seq (how held events get applied after a resume). Clears
/// `resume_requested` once the stream has reached its head or is parked
/// again; call it until then. Runs in the caller's transaction if there is
/// one.
pub async fn catch_up_stream(
    conn: &mut PgConnection,
    stream_key: &str,
    policy: PoisonPolicy,
    max_events: i64,
) -> Result<BatchOutcome, ProjectionError> {
    if !conn.is_in_transaction() {
        let mut tx = Connection::begin(&mut *conn).await?;
        let outcome = catch_up_locked(&mut tx, stream_key, policy, max_events).await?;
        tx.commit().await?;
        return Ok(outcome);
    }
    catch_up_locked(conn, stream_key, policy, max_events).await
}

async fn catch_up_locked(
    conn: &mut PgConnection,
    stream_key: &str,
    policy: PoisonPolicy,
    max_events: i64,
) -> Result<BatchOutcome, ProjectionError> {
    let state: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT last_seq, parked_seq FROM projection_stream_progress WHERE stream_key = $1",
    )
    .bind(stream_key)
    .fetch_optional(&mut *conn)
    .await?;
    let (last_seq, parked_seq) = state.unwrap_or((0, None));
    let mut outcome = BatchOutcome::default();
    if parked_seq.is_none() {
        let events = read_stream(&mut *conn, stream_key, last_seq, max_events.max(1)).await?;
        outcome = apply_batch(conn, &events, policy).await?;
    }
    sqlx::query(
        r#"
        UPDATE projection_stream_progress AS p SET resume_requested = false, updated_at = now()
         WHERE p.stream_key = $1 AND p.resume_requested
           AND (p.parked_seq IS NOT NULL
                OR p.last_seq >= COALESCE((SELECT s.last_seq FROM event_streams s
                                            WHERE s.stream_key = p.stream_key), 0))
        "#,
    )
    .bind(stream_key)
    .execute(&mut *conn)
    .await?;
    Ok(outcome)
}
