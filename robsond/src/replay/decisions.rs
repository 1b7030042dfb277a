//! The operator's decisions, replayed in a shadow. A parked stream is
//! unparked by a human (`robsond streams skip|retry`); the log does not
//! record it, the live dead letter does (`resolution`). When a shadow stream
//! parks on an event whose live dead letter is `skipped`, the shadow skips
//! it the same way; `retried` (e.g. after a fix, or after a snapshot older
//! than the decision) is re-attempted once. Both go through the daemon's own
//! `resume_stream`, then the stream is caught up like the daemon does.

use robson_projector::{catch_up_stream, resume_stream, ResumeAction, ResumeError};
use sqlx::PgConnection;

use super::project::Replayer;
use super::ReplayError;

/// Replays the decisions on every shadow stream parked on an event the
/// operator skipped or retried live, until none is left. Returns how many
/// were replayed.
pub(super) async fn replay(
    conn: &mut PgConnection,
    replayer: &mut Replayer<'_>,
) -> Result<u64, ReplayError> {
    let mut replayed = 0;
    loop {
        let decided = decided_parked_streams(conn, &replayer.live).await?;
        let todo: Vec<(String, i64, ResumeAction)> = decided
            .into_iter()
            .filter_map(|(key, seq, resolution)| match resolution.as_str() {
                "skipped" => Some((key, seq, ResumeAction::Skip)),
                "retried" if !replayer.retried.contains(&(key.clone(), seq)) => {
                    Some((key, seq, ResumeAction::Retry))
                }
                _ => None,
            })
            .collect();
        if todo.is_empty() {
            return Ok(replayed);
        }
        for (key, seq, action) in todo {
            if action == ResumeAction::Retry {
                replayer.retried.insert((key.clone(), seq));
            }
            match resume_stream(&mut *conn, &key, action).await {
                Ok(_) => {}
                Err(ResumeError::Database(err)) => return Err(err.into()),
                // Not parked (any more): nothing to replay.
                Err(ResumeError::UnknownStream(_) | ResumeError::NotParked(_)) => continue,
            }
            replayed += 1;
            replayer.counts.decisions_replayed += 1;
            if replayer.catch_up_resumed {
                catch_up(conn, &key, replayer).await?;
            }
        }
    }
}

/// (stream, parked seq, live resolution) of the shadow streams parked on an
/// event whose live dead letter is resolved.
async fn decided_parked_streams(
    conn: &mut PgConnection,
    live: &str,
) -> Result<Vec<(String, i64, String)>, sqlx::Error> {
    let sql = format!(
        r#"
        SELECT p.stream_key, p.parked_seq, l.resolution::text
          FROM projection_stream_progress p
          JOIN projection_dead_letters d ON d.stream_key = p.stream_key AND d.seq = p.parked_seq
          JOIN {live}.projection_dead_letters l ON l.event_id = d.event_id
         WHERE p.parked_seq IS NOT NULL AND l.resolution IN ('skipped', 'retried')
         ORDER BY p.stream_key
        "#
    );
    sqlx::query_as(&sql).fetch_all(conn).await
}

/// Applies the events of a resumed stream until it reaches its head or
/// parks again (the daemon's `catch_up_stream`, to completion).
async fn catch_up(
    conn: &mut PgConnection,
    stream_key: &str,
    replayer: &mut Replayer<'_>,
) -> Result<(), ReplayError> {
    loop {
        let outcome =
            catch_up_stream(&mut *conn, stream_key, replayer.policy, replayer.batch_size).await?;
        let moved =
            outcome.applied + outcome.skipped_unhandled + outcome.dead_lettered.len() as u64;
        replayer.counts.outcome.merge(outcome);
        let pending: Option<bool> = sqlx::query_scalar(
            "SELECT resume_requested FROM projection_stream_progress WHERE stream_key = $1",
        )
        .bind(stream_key)
        .fetch_optional(&mut *conn)
        .await?;
        // Done when the flag is cleared; a read that moved nothing (the head
        // is not readable yet) leaves the rest to the ordinary reading.
        if pending != Some(true) || moved == 0 {
            return Ok(());
        }
    }
}
