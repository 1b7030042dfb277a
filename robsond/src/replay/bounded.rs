//! Projecting a shadow up to the LIVE progress of each stream: every event
//! whose seq is at most the stream's live `last_seq`, plus the event a live
//! stream is parked on. This is what makes `verify` point-in-time
//! consistent however far the daemon lags, and what lets the rebuild's swap
//! cover every event the live tables reflect, including those the daemon
//! read per stream (after an operator's resume) rather than in commit order.

use robson_eventlog::{event_columns, EventEnvelope, EventRow};
use sqlx::PgConnection;

use super::project::{Replayer, Until};
use super::ReplayError;

/// Every event of `live`'s streams up to their live progress point, read
/// in `global_position` order up to the log's head when the pass began
/// (the live point may move on meanwhile: what a moving point leaves
/// behind is picked up by [`catch_up_to_live`]).
pub(super) async fn project_to_live(
    conn: &mut PgConnection,
    replayer: &mut Replayer<'_>,
) -> Result<(), ReplayError> {
    let sql = format!(
        r#"
        SELECT {columns} FROM event_log e
          JOIN {live}.projection_stream_progress l ON l.stream_key = e.stream_key
         WHERE e.global_position > $1 AND e.global_position <= $2
           AND e.seq <= greatest(l.last_seq, coalesce(l.parked_seq, 0))
         ORDER BY e.global_position LIMIT $3
        "#,
        live = replayer.live,
        columns = event_columns("e"),
    );
    let head = robson_eventlog::head_position(&mut *conn).await?;
    let mut cursor = 0_i64;
    loop {
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(cursor)
            .bind(head)
            .bind(replayer.window())
            .fetch_all(&mut *conn)
            .await?;
        let events: Vec<EventEnvelope> = rows.into_iter().map(EventEnvelope::from).collect();
        let Some(last) = events.last() else {
            return Ok(());
        };
        cursor = last.global_position;
        replayer.apply(conn, events).await?;
    }
}

/// Applies, stream by stream, whatever the shadow lacks up to each live
/// stream's progress point (shadow streams parked on their own are left
/// alone). With [`Until::PassStart`] it sweeps the streams once, in key
/// order, and may leave some behind if the daemon moves on meanwhile; with
/// [`Until::Empty`] (the live tables locked) it sweeps until nothing is
/// missing.
pub(super) async fn catch_up_to_live(
    conn: &mut PgConnection,
    replayer: &mut Replayer<'_>,
    until: Until,
) -> Result<(), ReplayError> {
    let sql = format!(
        r#"
        WITH todo AS MATERIALIZED (
            SELECT l.stream_key, coalesce(s.last_seq, 0) AS after_seq,
                   greatest(l.last_seq, coalesce(l.parked_seq, 0)) AS upto_seq
              FROM {live}.projection_stream_progress l
              LEFT JOIN projection_stream_progress s ON s.stream_key = l.stream_key
             WHERE l.stream_key > $2 AND s.parked_seq IS NULL
               AND greatest(l.last_seq, coalesce(l.parked_seq, 0)) > coalesce(s.last_seq, 0)
             ORDER BY l.stream_key LIMIT $1)
        SELECT {columns} FROM todo t
          JOIN event_log e ON e.stream_key = t.stream_key
                          AND e.seq > t.after_seq AND e.seq <= t.upto_seq
         ORDER BY e.stream_key, e.seq LIMIT $1
        "#,
        live = replayer.live,
        columns = event_columns("e"),
    );
    let mut cursor = String::new();
    loop {
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(replayer.batch_size)
            .bind(&cursor)
            .fetch_all(&mut *conn)
            .await?;
        let events: Vec<EventEnvelope> = rows.into_iter().map(EventEnvelope::from).collect();
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let (stream_key, upto) = (first.stream_key.clone(), first.seq);
        if until == Until::PassStart {
            cursor = last.stream_key.clone();
        }
        let outcome = replayer.apply(conn, events).await?;
        let moved =
            outcome.applied + outcome.skipped_unhandled + outcome.dead_lettered.len() as u64;
        if moved == 0 {
            // Only possible when a stream's earlier events are gone from
            // the log: stop rather than read the same events forever.
            return Err(ReplayError::MissingEvents { stream_key, upto });
        }
    }
}
