//! [`try_apply_groups_with`]: several callers' batches applied as one, so
//! that small batches of different stream partitions share one progress
//! lock, one row load, one write statement and the caller's one commit.
//! A single batch is one group (`try_apply_batch_with`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use robson_eventlog::EventEnvelope;
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{read_predecessors, starting_at_seq_one};
use super::plan::{self, Plan};
use super::{dead_letters, progress, tables, writes, AlsoWrite, BatchOutcome, PoisonPolicy};
use crate::error::{ErrorClass, ProjectionError};

/// What [`try_apply_groups_with`] did.
#[derive(Debug)]
pub enum GroupsAttempt {
    /// Every group is written in the caller's transaction; one outcome per
    /// group, in the order of the groups.
    Applied(Vec<BatchOutcome>),
    /// As [`super::Attempt::NeedsCare`]: the caller rolls back and applies
    /// each group on its own.
    NeedsCare,
}

/// [`super::try_apply_batch_with`] of several batches at once: `groups`
/// must not share a stream (each group is one stream partition's batch).
/// The result is what applying the groups one after the other, each with
/// [`super::apply_batch`], would have written, with one outcome per group;
/// `also` is bound with each group's applied count. Returns how many rows
/// `also` returned when the groups were applied.
pub async fn try_apply_groups_with(
    conn: &mut PgConnection,
    groups: &[&[EventEnvelope]],
    policy: PoisonPolicy,
    also: &dyn AlsoWrite,
) -> Result<(GroupsAttempt, u64), ProjectionError> {
    apply_groups(conn, groups, policy, Some(also)).await
}

/// [`try_apply_groups_with`] with `also` optional; one group is
/// [`super::try_apply_batch_with`].
pub(super) async fn apply_groups(
    conn: &mut PgConnection,
    groups: &[&[EventEnvelope]],
    policy: PoisonPolicy,
    also: Option<&dyn AlsoWrite>,
) -> Result<(GroupsAttempt, u64), ProjectionError> {
    let mut streams: BTreeMap<String, Uuid> = BTreeMap::new();
    let mut fresh: BTreeSet<&str> = BTreeSet::new();
    for events in groups {
        for e in *events {
            streams.insert(e.stream_key.clone(), e.tenant_id);
        }
        fresh.extend(starting_at_seq_one(events));
    }
    if groups.len() > 1
        && streams.len() != groups.iter().map(|g| distinct_streams(g)).sum::<usize>()
    {
        // A stream in two groups: applied as one batch each, in turn.
        return Ok((GroupsAttempt::NeedsCare, 0));
    }
    let progress = progress::lock(conn, &streams, &fresh).await?;
    let mut outcomes = Vec::with_capacity(groups.len());
    let mut steps = Vec::new();
    let mut bounds: Vec<Range<usize>> = Vec::with_capacity(groups.len());
    for events in groups {
        let mut plan = Plan::new(events, &progress);
        read_predecessors(conn, &mut plan, &progress).await?;
        outcomes.push(std::mem::take(&mut plan.counts));
        let start = steps.len();
        steps.extend(plan.into_steps());
        bounds.push(start..steps.len());
    }
    let written = async {
        let mut rows = tables::load(&mut *conn, &plan::keys(&steps)).await?;
        let mut results: Vec<_> = bounds
            .iter()
            .map(|range| plan::apply_steps(&mut rows, &steps[range.clone()], &progress, policy))
            .collect();
        let moved: Vec<_> = results
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.progress))
            .collect();
        let applied: Vec<u64> = outcomes
            .iter()
            .zip(&results)
            .map(|(before, result)| before.applied + result.outcome.applied)
            .collect();
        let also = also.map(|a| (a, applied.as_slice()));
        let returned = writes::write(&mut *conn, &rows, &moved, also).await?;
        for result in &mut results {
            dead_letters::record(&mut *conn, &mut result.outcome.dead_lettered, policy).await?;
        }
        Ok::<_, ProjectionError>((results, returned))
    };
    match written.await {
        Ok((results, returned)) => {
            for (outcome, result) in outcomes.iter_mut().zip(results) {
                outcome.merge(result.outcome);
            }
            Ok((GroupsAttempt::Applied(outcomes), returned))
        }
        Err(ProjectionError::ConcurrentApplier { .. }) => Ok((GroupsAttempt::NeedsCare, 0)),
        Err(err) if err.class() == ErrorClass::Permanent => Ok((GroupsAttempt::NeedsCare, 0)),
        Err(err) => Err(err),
    }
}

fn distinct_streams(events: &[EventEnvelope]) -> usize {
    events
        .iter()
        .map(|e| e.stream_key.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}
