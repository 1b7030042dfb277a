//! [`apply_batch`]: a batch of stored events applied exactly once, in
//! per-stream seq order, with set-based reads and writes, inside the
//! caller's transaction. Poison events are dead-lettered without stopping
//! the rest of the batch.

use std::collections::{BTreeMap, BTreeSet};

use robson_eventlog::{read_stream, EventEnvelope};
use sqlx::{Connection, PgConnection};
use tracing::{debug, warn};
use uuid::Uuid;

use super::groups::{self, GroupsAttempt};
use super::plan::{self, Plan, Step, StepsResult};
use super::progress::{self, Progress, ProgressMap};
use super::{dead_letters, tables, writes, AlsoWrite, BatchOutcome, PoisonPolicy};
use crate::error::{ErrorClass, ProjectionError};

/// Applies `events` (any order, any streams, re-deliveries allowed) to the
/// projection tables.
///
/// Runs inside the caller's transaction (begun through sqlx: `pool.begin()`
/// or `Connection::begin`, so that nested work becomes savepoints) and never
/// commits it: the caller commits the projection writes together with its
/// own checkpoint. Called on a connection outside any transaction, the batch
/// is its own transaction.
///
/// Per stream, events at or below the last applied seq are re-deliveries
/// and change nothing; missing predecessors are read from `event_log` and
/// applied first; events behind a parked stream are held. The result does
/// not depend on how events are split into batches.
///
/// Errors are transient (see [`ProjectionError::class`]): the caller rolls
/// back and retries the batch. Permanent failures do not surface here: the
/// event is dead-lettered and the batch goes on. (Only if recording a dead
/// letter itself were refused by the database would a permanent error be
/// returned.)
pub async fn apply_batch(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    policy: PoisonPolicy,
) -> Result<BatchOutcome, ProjectionError> {
    if events.is_empty() {
        return Ok(BatchOutcome::default());
    }
    if !conn.is_in_transaction() {
        let mut tx = conn.begin().await?;
        let outcome = apply_in_transaction(&mut tx, events, policy).await?;
        tx.commit().await?;
        return Ok(outcome);
    }
    apply_in_transaction(conn, events, policy).await
}

/// [`apply_batch`] of one event.
pub async fn apply_event(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    policy: PoisonPolicy,
) -> Result<BatchOutcome, ProjectionError> {
    apply_batch(conn, std::slice::from_ref(event), policy).await
}

/// What [`try_apply_batch`] did.
#[derive(Debug)]
pub enum Attempt {
    /// The batch is written in the caller's transaction, as
    /// [`apply_batch`] would have written it.
    Applied(BatchOutcome),
    /// The batch needs [`apply_batch`]: the database refused a write, or a
    /// stream presumed new had a progress row after all. The caller's
    /// transaction may be aborted and holds writes to throw away: the
    /// caller rolls it back and applies the batch with [`apply_batch`] in a
    /// new one (no backoff: nothing is wrong with the database).
    NeedsCare,
}

/// [`apply_batch`] without its savepoints, for a caller that can roll back
/// and start again: the common case in fewer round trips.
///
/// [`apply_batch`] sets a savepoint around its writes (two round trips,
/// `SAVEPOINT` and `RELEASE`) so that it can take them back and go on in
/// the same transaction when the database refuses one — to find the
/// culprit one event at a time — or when a stream it presumed new turns out
/// to have been applied already. Both are rare; on a loaded machine the two
/// round trips were a fifth of a small batch's time. This does the same
/// work without them and answers [`Attempt::NeedsCare`] in those cases.
/// Transient errors are returned as by [`apply_batch`].
pub async fn try_apply_batch(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    policy: PoisonPolicy,
) -> Result<Attempt, ProjectionError> {
    Ok(try_apply_batch_with(conn, events, policy, None).await?.0)
}

/// [`try_apply_batch`] whose write statement makes the caller's `also`
/// too (even for a batch that writes nothing else). Returns how many rows
/// `also` returned when the batch was [`Attempt::Applied`] (0 otherwise, and
/// without `also`).
pub async fn try_apply_batch_with(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    policy: PoisonPolicy,
    also: Option<&dyn AlsoWrite>,
) -> Result<(Attempt, u64), ProjectionError> {
    if events.is_empty() && also.is_none() {
        return Ok((Attempt::Applied(BatchOutcome::default()), 0));
    }
    // One batch is one group.
    Ok(
        match groups::apply_groups(conn, &[events], policy, also).await? {
            (GroupsAttempt::Applied(mut outcomes), returned) => (
                Attempt::Applied(outcomes.pop().unwrap_or_default()),
                returned,
            ),
            (GroupsAttempt::NeedsCare, _) => (Attempt::NeedsCare, 0),
        },
    )
}

/// Reads the missing predecessors of the plan's streams from the log.
/// Rare: a stream's events committed in an order other than seq order
/// reach the daemon out of order. Their predecessors are committed.
pub(super) async fn read_predecessors(
    conn: &mut PgConnection,
    plan: &mut Plan<'_>,
    progress: &ProgressMap,
) -> Result<(), ProjectionError> {
    let gaps = plan.gaps(progress);
    if gaps.is_empty() {
        return Ok(());
    }
    let mut read = Vec::new();
    for (stream_key, last_seq, max_seq) in &gaps {
        read.extend(read_stream(&mut *conn, stream_key, *last_seq, max_seq - last_seq).await?);
    }
    plan.fill(read, progress)
}

async fn apply_in_transaction(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    policy: PoisonPolicy,
) -> Result<BatchOutcome, ProjectionError> {
    let streams: BTreeMap<String, Uuid> = events
        .iter()
        .map(|e| (e.stream_key.clone(), e.tenant_id))
        .collect();
    let fresh = starting_at_seq_one(events);
    if !fresh.is_empty() {
        let progress = progress::lock(conn, &streams, &fresh).await?;
        if let Some(outcome) = write_presuming_new(conn, events, &progress, policy).await {
            return Ok(outcome);
        }
    }
    let mut progress = progress::lock(conn, &streams, &BTreeSet::new()).await?;
    let mut plan = Plan::new(events, &progress);
    read_predecessors(conn, &mut plan, &progress).await?;
    let mut outcome = std::mem::take(&mut plan.counts);
    let steps = plan.into_steps();
    match write_steps(conn, &steps, &progress, policy).await {
        Ok(result) => outcome.merge(result.outcome),
        Err(err) if err.class() == ErrorClass::Permanent => {
            warn!(events = steps.len(), error = %err, "Batch refused by the database; applying its events one at a time.");
            for step in &steps {
                outcome.merge(apply_one(conn, step, &mut progress, policy).await?);
            }
        }
        Err(err) => return Err(err),
    }
    Ok(outcome)
}

/// Streams whose first event in the batch is seq 1. Such a stream has no
/// progress row unless this is a re-delivery (or another applier is at it),
/// so looking its row up is skipped — during a catch-up that is nearly every
/// stream of a batch, and the lookup one of its costliest statements.
pub(super) fn starting_at_seq_one(events: &[EventEnvelope]) -> BTreeSet<&str> {
    let mut lowest: BTreeMap<&str, i64> = BTreeMap::new();
    for e in events {
        let seq = lowest.entry(e.stream_key.as_str()).or_insert(e.seq);
        *seq = (*seq).min(e.seq);
    }
    lowest
        .into_iter()
        .filter(|(_, seq)| *seq == 1)
        .map(|(key, _)| key)
        .collect()
}

/// The batch written with `progress` in which the streams starting at seq 1
/// were presumed new (not looked up). `None` when that did not work out —
/// a row existed after all (a re-delivery: inserting it conflicted), a gap
/// to fill, any failure: the savepoint is rolled back, nothing is written,
/// and the caller applies the batch the general way, every stream looked up.
async fn write_presuming_new(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    progress: &ProgressMap,
    policy: PoisonPolicy,
) -> Option<BatchOutcome> {
    let mut plan = Plan::new(events, progress);
    if !plan.gaps(progress).is_empty() {
        return None;
    }
    let mut outcome = std::mem::take(&mut plan.counts);
    let steps = plan.into_steps();
    match write_steps(conn, &steps, progress, policy).await {
        Ok(result) => {
            outcome.merge(result.outcome);
            Some(outcome)
        }
        Err(err) => {
            debug!(error = %err, "Batch not written presuming new streams; looking every stream up.");
            None
        }
    }
}

/// [`apply_and_write`] in a savepoint that is rolled back on error.
async fn write_steps(
    conn: &mut PgConnection,
    steps: &[Step<'_>],
    progress: &ProgressMap,
    policy: PoisonPolicy,
) -> Result<StepsResult, ProjectionError> {
    let mut savepoint = conn.begin().await?;
    match apply_and_write(&mut savepoint, steps, progress, policy).await {
        Ok(result) => {
            savepoint.commit().await?;
            Ok(result)
        }
        Err(err) => {
            if let Err(rollback) = savepoint.rollback().await {
                warn!(error = %rollback, "Rollback to savepoint failed.");
            }
            Err(err)
        }
    }
}

/// Loads the rows `steps` touch, applies the steps to them, and writes
/// rows, fills and progress (one statement) and dead letters.
async fn apply_and_write(
    conn: &mut PgConnection,
    steps: &[Step<'_>],
    progress: &ProgressMap,
    policy: PoisonPolicy,
) -> Result<StepsResult, ProjectionError> {
    let mut rows = tables::load(&mut *conn, &plan::keys(steps)).await?;
    let mut result = plan::apply_steps(&mut rows, steps, progress, policy);
    writes::write(&mut *conn, &rows, &result.progress, None).await?;
    dead_letters::record(&mut *conn, &mut result.outcome.dead_lettered, policy).await?;
    Ok(result)
}

/// Applies one step in its own savepoint; if the database refuses its
/// writes permanently, dead-letters it instead (the culprit of a refused
/// batch).
async fn apply_one(
    conn: &mut PgConnection,
    step: &Step<'_>,
    progress: &mut ProgressMap,
    policy: PoisonPolicy,
) -> Result<BatchOutcome, ProjectionError> {
    let result = match write_steps(conn, std::slice::from_ref(step), progress, policy).await {
        Ok(result) => result,
        Err(err) if err.class() == ErrorClass::Permanent => {
            let event = step.event.as_ref();
            warn!(stream = %event.stream_key, seq = event.seq, error = %err, "Event refused by the database; dead-lettering it.");
            let mut result = plan::fail(step, &err, progress, policy);
            dead_letters::record(conn, &mut result.outcome.dead_lettered, policy).await?;
            progress::update(conn, &result.progress).await?;
            result
        }
        Err(err) => return Err(err),
    };
    for stream in &result.progress {
        let written = Progress {
            stored: true,
            ..stream.clone()
        };
        progress.insert(stream.stream_key.clone(), written);
    }
    Ok(result.outcome)
}
