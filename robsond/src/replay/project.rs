//! Reading the log into a shadow in commit-safe order: `read_committed`
//! after a position until nothing more is committed, each batch applied
//! with the daemon's own `apply_batch`, and the operator's decisions
//! replayed on the streams that park (see `decisions`).

use std::collections::HashSet;

use indicatif::ProgressBar;
use robson_eventlog::{read_committed, EventEnvelope, Position};
use robson_projector::{apply_batch, BatchOutcome, PoisonPolicy};
use sqlx::PgConnection;

use super::{decisions, ReplayError};

/// What a replay did, event by event (the daemon's outcome categories).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayCounts {
    /// Events read from the log (in commit-safe order or per stream).
    pub events_read: u64,
    pub applied: u64,
    pub skipped_unhandled: u64,
    pub already_applied: u64,
    pub held: u64,
    pub dead_lettered: u64,
    /// Operator decisions (skip, retry) taken over from the live dead letters.
    pub decisions_replayed: u64,
}

impl ReplayCounts {
    pub(super) fn add(&mut self, outcome: &BatchOutcome) {
        self.applied += outcome.applied;
        self.skipped_unhandled += outcome.skipped_unhandled;
        self.already_applied += outcome.already_applied;
        self.held += outcome.held;
        self.dead_lettered += outcome.dead_lettered.len() as u64;
    }
}

/// The settings and running state of one replay into a shadow.
#[derive(Debug)]
pub(super) struct Replayer<'a> {
    pub policy: PoisonPolicy,
    pub batch_size: i64,
    pub bar: &'a ProgressBar,
    /// The live schema, quoted (where the operator's decisions are read).
    pub live: String,
    /// After replaying a decision, catch the stream up to its head at once
    /// (rebuild), or leave that to a bounded catch-up (verify).
    pub catch_up_resumed: bool,
    pub counts: ReplayCounts,
    /// (stream, seq) already retried in this replay: a retry that fails
    /// again parks again, and is not retried twice.
    pub retried: HashSet<(String, i64)>,
}

impl<'a> Replayer<'a> {
    pub fn new(
        policy: PoisonPolicy,
        batch_size: usize,
        bar: &'a ProgressBar,
        live: String,
        catch_up_resumed: bool,
    ) -> Self {
        Replayer {
            policy,
            batch_size: batch_size.max(1) as i64,
            bar,
            live,
            catch_up_resumed,
            counts: ReplayCounts::default(),
            retried: HashSet::new(),
        }
    }

    /// Applies `events` to the shadow and replays the decisions on the
    /// streams they parked.
    pub async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<BatchOutcome, ReplayError> {
        let outcome = apply_batch(&mut *conn, events, self.policy).await?;
        self.counts.events_read += events.len() as u64;
        self.counts.add(&outcome);
        self.bar.inc(events.len() as u64);
        if !outcome.newly_parked.is_empty() {
            decisions::replay(conn, self).await?;
        }
        Ok(outcome)
    }
}

/// Applies every event committed after `from` (in commit-safe order, until
/// a read comes back empty) and returns the position of the last one read.
pub(super) async fn read_log(
    conn: &mut PgConnection,
    from: Position,
    replayer: &mut Replayer<'_>,
) -> Result<Position, ReplayError> {
    let mut position = from;
    loop {
        let events = read_committed(&mut *conn, position, replayer.batch_size).await?;
        let Some(last) = events.last() else {
            return Ok(position);
        };
        position = last.position();
        replayer.apply(conn, &events).await?;
    }
}

/// Committed events after `from` (for the progress bar's length).
pub(super) async fn count_after(
    conn: &mut PgConnection,
    from: Position,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        r#"
        SELECT count(*) FROM event_log
         WHERE (tx_id, global_position) > ($1::text::xid8, $2)
        "#,
    )
    .bind(from.tx_id.to_string())
    .bind(from.global_position)
    .fetch_one(conn)
    .await?;
    Ok(n.max(0) as u64)
}
