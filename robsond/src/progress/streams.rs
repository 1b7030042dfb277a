//! The daemon's reads of `projection_stream_progress` outside a batch: the
//! paged listing of `GET /streams`, the positions of waited streams
//! (`/wait`), and the streams an operator asked to resume. (A batch's own
//! reads and writes of the table are `robson_projector::store`.)

use sqlx::PgPool;

/// One stream's progress, as `GET /streams` lists it.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct StreamProgress {
    pub stream_key: String,
    pub last_seq: i64,
    pub head_seq: i64,
    pub parked: bool,
}

/// One page of streams with events, in key order, after `after`.
pub async fn page(
    pool: &PgPool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<StreamProgress>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.stream_key, coalesce(p.last_seq, 0) AS last_seq, s.last_seq AS head_seq,
                (p.parked_seq IS NOT NULL) AS parked
           FROM event_streams s
           LEFT JOIN projection_stream_progress p USING (stream_key)
          WHERE s.last_seq > 0 AND ($1::text IS NULL OR s.stream_key > $1)
          ORDER BY s.stream_key
          LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// `(stream_key, last_seq, parked_seq)` of the given streams that have progress.
pub async fn positions(
    pool: &PgPool,
    keys: &[String],
) -> Result<Vec<(String, i64, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT stream_key, last_seq, parked_seq FROM projection_stream_progress
          WHERE stream_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(pool)
    .await
}

/// Streams resumed by an operator (`streams retry|skip`) whose waiting
/// events the daemon has not re-read yet, at most `limit`, in key order.
pub async fn resume_requested(pool: &PgPool, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT stream_key FROM projection_stream_progress WHERE resume_requested
          ORDER BY stream_key LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
