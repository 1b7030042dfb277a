//! Reading the log into a shadow in commit-safe order: `read_committed`
//! after a position, in passes that end where [`Until`] says, each batch
//! applied with the daemon's own `apply_batch` (retried when it fails
//! transiently), and the operator's decisions replayed on the streams that
//! park (see `decisions`).
//!
//! Outside a transaction a window of the log is applied by [`WORKERS`]
//! connections at once, each the streams of one partition (per stream the
//! order is the log's, as in the daemon), and the decisions are replayed
//! once every worker is done with the window. The shadow's commits do not
//! wait for the WAL flush (`synchronous_commit = off`): a crash loses at
//! most a shadow that is dropped and rebuilt anyway; the swap, the one
//! commit that counts, is synchronous.

use std::collections::HashSet;

use indicatif::ProgressBar;
use robson_eventlog::{read_committed, EventEnvelope, Position};
use robson_projector::{apply_batch, BatchOutcome, PoisonPolicy};
use sqlx::{Connection, PgConnection};

use super::{decisions, ReplayError};
use crate::daemon::retry::Retry;
use crate::partition::partition_of;

/// Attempts at a batch that fails transiently before the replay gives up.
const MAX_BATCH_ATTEMPTS: u32 = 5;

/// Connections that apply a window of the log in parallel.
pub(super) const WORKERS: usize = 4;
/// Events read per window: this many batches (split among the workers).
/// 32, 16,000 events at the default batch size (the daemon's largest
/// catch-up window): fewer reads and fewer waits for the slowest worker;
/// a rebuild of 773k short-streams events took a tenth less than with 8
/// (docs/performance.md).
const BATCHES_PER_WINDOW: i64 = 32;

/// Connections like the shadow's (same `search_path`) that apply the
/// partitions of a window in parallel; commits not waiting for the WAL
/// flush; no JIT (as the daemon's connections).
pub(super) async fn connect_workers(
    url: &str,
    shadow: &mut PgConnection,
) -> Result<Vec<PgConnection>, ReplayError> {
    sqlx::raw_sql("SET synchronous_commit = off; SET jit = off")
        .execute(&mut *shadow)
        .await?;
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut *shadow)
        .await?;
    let mut workers = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::query("SELECT set_config('search_path', $1, false)")
            .bind(&path)
            .execute(&mut conn)
            .await?;
        sqlx::raw_sql("SET synchronous_commit = off; SET jit = off")
            .execute(&mut conn)
            .await?;
        workers.push(conn);
    }
    Ok(workers)
}

/// What a replay did: its batches' outcomes (the daemon's own categories,
/// merged by [`BatchOutcome::merge`]) and what only a replay does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    /// Events read from the log (in commit-safe order or per stream).
    pub events_read: u64,
    /// Every batch's outcome, merged (its dead letters and parked streams
    /// too: a few per poison event, already written to the tables).
    pub outcome: BatchOutcome,
    /// Operator decisions (skip, retry) taken over from the live dead letters.
    pub decisions_replayed: u64,
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
    /// Connections applying windows in parallel (none: all on the caller's).
    pub workers: Vec<PgConnection>,
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
            workers: Vec::new(),
        }
    }

    /// Events read at once: several batches when workers share them out.
    pub fn window(&self) -> i64 {
        if self.workers.is_empty() {
            self.batch_size
        } else {
            self.batch_size * BATCHES_PER_WINDOW
        }
    }

    /// Closes the workers' connections.
    pub async fn close_workers(&mut self) {
        for conn in self.workers.drain(..) {
            let _ = conn.close().await;
        }
    }

    /// Applies `events` to the shadow and replays the decisions on the
    /// streams they parked.
    pub async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: Vec<EventEnvelope>,
    ) -> Result<BatchOutcome, ReplayError> {
        let read = events.len() as u64;
        let outcome = if self.workers.is_empty() || conn.is_in_transaction() {
            apply_with_retry(conn, &events, self.policy).await?
        } else {
            self.apply_in_parallel(events).await?
        };
        self.counts.events_read += read;
        self.counts.outcome.merge(outcome.clone());
        self.bar.inc(read);
        if !outcome.newly_parked.is_empty() {
            decisions::replay(conn, self).await?;
        }
        Ok(outcome)
    }

    /// `events` split by partition, each part applied on its worker, all
    /// at once; returns when every part is committed.
    async fn apply_in_parallel(
        &mut self,
        events: Vec<EventEnvelope>,
    ) -> Result<BatchOutcome, ReplayError> {
        let n = self.workers.len();
        let mut parts: Vec<Vec<EventEnvelope>> = (0..n).map(|_| Vec::new()).collect();
        for e in events {
            parts[partition_of(&e.stream_key, n)].push(e);
        }
        let policy = self.policy;
        let work = self
            .workers
            .iter_mut()
            .zip(&parts)
            .filter(|(_, part)| !part.is_empty())
            .map(|(conn, part)| apply_with_retry(conn, part, policy));
        let mut outcome = BatchOutcome::default();
        for part in futures::future::try_join_all(work).await? {
            outcome.merge(part);
        }
        Ok(outcome)
    }
}

/// `apply_batch`, retried after a transient failure when the batch is its
/// own transaction (inside the caller's, the caller retries).
async fn apply_with_retry(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    policy: PoisonPolicy,
) -> Result<BatchOutcome, ReplayError> {
    let attempts = if conn.is_in_transaction() {
        1
    } else {
        MAX_BATCH_ATTEMPTS
    };
    let mut retry = Retry::new("Transient failure replaying a batch").at_most(attempts);
    loop {
        match apply_batch(&mut *conn, events, policy).await {
            Ok(outcome) => return Ok(outcome),
            Err(err) => retry
                .after(err, std::future::pending())
                .await
                .map_err(|gave_up| gave_up.into_error())?,
        }
    }
}

/// Where a reading pass stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// When a read comes back empty. Only for the locked phase, where the
    /// live side cannot move (and the log can only grow beyond the
    /// reader's own transaction id, which commit-safe reading never passes).
    Empty,
    /// Once what existed when the pass began is read (or a read comes back
    /// empty), so that an unlocked pass ends even while writers and the
    /// daemon keep going; the locked phase reads the rest.
    PassStart,
}

/// Applies the events committed after `from` in commit-safe order, up to
/// `until`, and returns the position of the last one read.
pub(super) async fn read_log(
    conn: &mut PgConnection,
    from: Position,
    replayer: &mut Replayer<'_>,
    until: Until,
) -> Result<Position, ReplayError> {
    let target = match until {
        Until::Empty => None,
        Until::PassStart => last_committed(conn).await?,
    };
    let mut position = from;
    loop {
        let events = read_committed(&mut *conn, position, replayer.window()).await?;
        let Some(last) = events.last() else {
            return Ok(position);
        };
        position = last.position();
        replayer.apply(conn, events).await?;
        if target.is_some_and(|t| position >= t) {
            return Ok(position);
        }
    }
}

/// The commit-order position of the last event committed so far.
async fn last_committed(conn: &mut PgConnection) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        r#"
        SELECT tx_id::text::int8, global_position FROM event_log
         ORDER BY tx_id DESC, global_position DESC LIMIT 1
        "#,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(tx_id, global_position)| Position {
        tx_id,
        global_position,
    }))
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
