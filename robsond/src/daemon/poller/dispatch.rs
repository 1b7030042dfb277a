//! A read window split per partition into batches of at most
//! `ROBSON_BATCH_SIZE`, each handed over with backpressure.

use std::time::Duration;

use robson_eventlog::{EventEnvelope, Position};

use super::super::projector::Batch;
use super::{is_failing, route, PollerSetup};
use crate::partition::partition_of;

/// Routes a window to the partitions, in chunks of at most `batch` events.
/// Events a partition was already given (at or before its `sent`, after a
/// read again) are not sent twice; a stale partition is passed over.
///
/// The partitions are handed their chunks concurrently (each partition's
/// in order): a projector still busy with its previous batch holds back
/// only its own partition's handover, not those after it. (Handed over one
/// partition after the other, an event of the last partition waited for
/// every busy projector before it: under 2,000 events/s on 2 cores that
/// was a third of the end-to-end latency, see docs/performance.md.)
pub(super) async fn dispatch(
    setup: &PollerSetup,
    events: Vec<EventEnvelope>,
    upto: Position,
    batch: usize,
    sent: &mut [Position],
    stale: &mut [bool],
) {
    let partitions = setup.state.partitions.len();
    let mut per_partition: Vec<Vec<EventEnvelope>> = vec![Vec::new(); partitions];
    for e in events {
        let p = partition_of(&e.stream_key, partitions);
        if !stale[p] && e.position() > sent[p] {
            per_partition[p].push(e);
        }
    }
    let handovers = per_partition
        .into_iter()
        .enumerate()
        .filter(|(_, events)| !events.is_empty())
        .map(|(p, events)| hand_over(setup, p, events, batch, sent[p], upto));
    for (p, handed) in futures::future::join_all(handovers).await {
        match handed {
            Ok(upto) => sent[p] = upto,
            Err(from) => {
                tracing::warn!(partition = p, from = %from, "Projector failing; passing its partition over until it runs again.");
                sent[p] = from;
                stale[p] = true;
            }
        }
    }
}

/// Hands partition `p` its events chunk by chunk, in order. `Ok`: the
/// position the partition was given up to; `Err`: the projector is failing,
/// and its partition was given up to that position.
async fn hand_over(
    setup: &PollerSetup,
    p: usize,
    events: Vec<EventEnvelope>,
    batch: usize,
    mut sent: Position,
    upto: Position,
) -> (usize, Result<Position, Position>) {
    let chunks = into_chunks(events, batch);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let chunk_upto = if i == last {
            upto
        } else {
            chunk.last().map_or(upto, EventEnvelope::position)
        };
        match send(setup, p, chunk, sent, chunk_upto).await {
            // Not ours: `sent` moves on all the same, so that if the
            // partition becomes ours before the rewind its start asks
            // for, the projector refuses the gap (`from` beyond its
            // checkpoint) instead of an idle advance jumping over it.
            Handover::Taken | Handover::NotOurs => sent = chunk_upto,
            Handover::Failing => return (p, Err(sent)),
        }
    }
    (p, Ok(sent))
}

/// `events` split into runs of at most `size`, moved, not copied (a payload
/// is a tree of allocations).
pub(super) fn into_chunks<T>(mut items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let size = size.max(1);
    let mut chunks = Vec::with_capacity(items.len().div_ceil(size));
    while items.len() > size {
        let rest = items.split_off(size);
        chunks.push(std::mem::replace(&mut items, rest));
    }
    chunks.push(items);
    chunks
}

/// What became of a batch handed to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handover {
    /// The projector took it up (or its mailbox closed at shutdown: the
    /// batch is then read again from the checkpoint on the next start).
    Taken,
    /// Not this instance's partition: its owner reads these events itself.
    NotOurs,
    /// The projector is failing and was not waited for; the batch may or
    /// may not have been queued. Either is safe: the partition is read again
    /// from before it, and a projector drops what it already covered.
    Failing,
}

/// How often a handover blocked on a full mailbox looks at the projector.
pub(super) const FAILING_CHECK_EVERY: Duration = Duration::from_millis(20);

/// Hands a batch over with `send().await` (the backpressure that bounds
/// memory), but gives up as soon as the projector is failing.
pub(super) async fn send(
    setup: &PollerSetup,
    partition: usize,
    events: Vec<EventEnvelope>,
    from: Position,
    upto: Position,
) -> Handover {
    let Some(addr) = route(setup, partition) else {
        return Handover::NotOurs;
    };
    let request = addr.send(Batch { events, from, upto });
    tokio::pin!(request);
    loop {
        tokio::select! {
            answer = &mut request => {
                if let Err(err) = answer {
                    // Only when the projector's supervisor is gone (shutdown).
                    tracing::warn!(partition, error = %err, "Projector mailbox closed.");
                    setup.state.request_rewind(from);
                }
                return Handover::Taken;
            }
            _ = tokio::time::sleep(FAILING_CHECK_EVERY) => {
                if is_failing(setup, partition) {
                    return Handover::Failing;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::into_chunks;

    #[test]
    fn chunks_keep_every_item_in_order_and_none_is_longer_than_the_size() {
        for len in 0..12 {
            for size in 1..5 {
                let items: Vec<usize> = (0..len).collect();
                let chunks = into_chunks(items.clone(), size);
                assert!(chunks.iter().all(|c| c.len() <= size), "{chunks:?}");
                assert!(chunks.iter().skip(1).all(|c| !c.is_empty()), "{chunks:?}");
                assert_eq!(chunks.concat(), items);
            }
        }
    }
}
