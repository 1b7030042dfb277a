//! A read window split per partition into batches of at most
//! `ROBSON_BATCH_SIZE`, each handed over with backpressure.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::dev::SendError;
use robson_eventlog::{EventEnvelope, Position};

use super::super::projector::{Batch, QUEUED_BATCHES};
use super::{is_failing, route, PollerSetup};
use crate::daemon::state::PartitionState;
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

/// How often a handover waiting for room looks at the projector.
pub(super) const FAILING_CHECK_EVERY: Duration = Duration::from_millis(20);

/// Queues a batch in the projector's mailbox without waiting for it to be
/// taken up (see [`queue`]), but gives up as soon as the projector is
/// failing.
///
/// (It used to wait, with `send().await`, until the projector had taken
/// the batch up, i.e. until the batch before it had committed: under load
/// the poller then read the next window only after the busiest partition's
/// batch in progress, a third of an event's wait from its commit to its
/// row — see docs/performance.md.)
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
    let part = &setup.state.partitions[partition];
    let batch = Batch { events, from, upto };
    match queue(
        part,
        batch,
        |b| addr.try_send(b),
        || is_failing(setup, partition),
    )
    .await
    {
        Queued::Yes => Handover::Taken,
        Queued::Closed => {
            // Only when the projector's supervisor is gone (shutdown).
            tracing::warn!(partition, "Projector mailbox closed.");
            setup.state.request_rewind(from);
            Handover::Taken
        }
        Queued::Failing => Handover::Failing,
    }
}

/// Waits until every partition's projector has taken up the batches the
/// poller queued for it (a stale or failing partition, or one this
/// instance no longer runs, is not waited for).
pub(super) async fn until_taken_up(setup: &PollerSetup, stale: &[bool]) {
    let waited_for = |p: usize| !stale[p] && route(setup, p).is_some() && !is_failing(setup, p);
    until_all_taken_up(&setup.state.partitions, waited_for).await;
}

/// [`until_taken_up`] over `parts`, waiting for partition `p` while
/// `waited_for(p)` (asked again every [`FAILING_CHECK_EVERY`]).
pub(super) async fn until_all_taken_up(
    parts: &[PartitionState],
    waited_for: impl Fn(usize) -> bool,
) {
    for (p, part) in parts.iter().enumerate() {
        until_fewer_queued(part, 1, || !waited_for(p)).await;
    }
}

/// Waits until fewer than `than` of the poller's batches wait in `part`'s
/// mailbox (true), or `give_up` says so first (false; asked every
/// [`FAILING_CHECK_EVERY`] while there is no room).
async fn until_fewer_queued(
    part: &PartitionState,
    than: usize,
    give_up: impl Fn() -> bool,
) -> bool {
    loop {
        // Registered before the count is looked at: a batch taken up in
        // between still ends this wait.
        let taken = part.taken.notified();
        tokio::pin!(taken);
        taken.as_mut().enable();
        if part.queued.load(Ordering::Acquire) < than {
            return true;
        }
        if give_up() {
            return false;
        }
        tokio::select! {
            () = &mut taken => {}
            () = tokio::time::sleep(FAILING_CHECK_EVERY) => {}
        }
    }
}

/// What became of a message given to [`queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    Yes,
    /// The mailbox is closed: the message is gone.
    Closed,
    /// `failing` said so while the queue had no room: not sent.
    Failing,
}

/// Sends `msg` with `try_send` once fewer than [`QUEUED_BATCHES`] of the
/// poller's messages wait in the partition's mailbox (`part.queued`, which
/// the projector counts down as it takes one up: the backpressure that
/// bounds memory, per partition the batch in progress and that many
/// queued); until then waits for one to be taken up, looking at `failing`
/// every [`FAILING_CHECK_EVERY`].
pub(super) async fn queue<M>(
    part: &PartitionState,
    mut msg: M,
    mut try_send: impl FnMut(M) -> Result<(), SendError<M>>,
    failing: impl Fn() -> bool,
) -> Queued {
    loop {
        // The poller is the only sender of batches: room seen stays room.
        if !until_fewer_queued(part, QUEUED_BATCHES, &failing).await {
            return Queued::Failing;
        }
        part.queued.fetch_add(1, Ordering::AcqRel);
        match try_send(msg) {
            Ok(()) => return Queued::Yes,
            Err(SendError::Closed(_)) => {
                part.took_batch();
                return Queued::Closed;
            }
            // The address's own bound (not ours: a fresh address never
            // has it): try again a little later.
            Err(SendError::Full(back)) => {
                part.took_batch();
                msg = back;
                if failing() {
                    return Queued::Failing;
                }
                tokio::time::sleep(FAILING_CHECK_EVERY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use actix::dev::SendError;

    use super::{
        into_chunks, queue, until_all_taken_up, Queued, FAILING_CHECK_EVERY, QUEUED_BATCHES,
    };
    use crate::daemon::state::PartitionState;

    fn sent_into(
        log: &std::sync::Mutex<Vec<u32>>,
    ) -> impl FnMut(u32) -> Result<(), SendError<u32>> + '_ {
        move |m| {
            log.lock().expect("log").push(m);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_message_is_queued_at_once_while_there_is_room_and_waits_for_a_take_up_when_not() {
        let part = Arc::new(PartitionState::default());
        let log = std::sync::Mutex::new(Vec::new());
        for m in 0..QUEUED_BATCHES as u32 {
            let started = Instant::now();
            assert_eq!(
                queue(&part, m, sent_into(&log), || false).await,
                Queued::Yes
            );
            assert!(
                started.elapsed() < FAILING_CHECK_EVERY,
                "waited with room left"
            );
        }
        assert_eq!(part.queued.load(Ordering::Acquire), QUEUED_BATCHES);

        // Full: the next one waits until the projector takes one up.
        let taker = part.clone();
        let take_up = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            taker.took_batch();
        });
        let started = Instant::now();
        assert_eq!(
            queue(&part, 99, sent_into(&log), || false).await,
            Queued::Yes
        );
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "sent past a full queue after {:?}",
            started.elapsed()
        );
        take_up.await.expect("take-up task");
        assert_eq!(part.queued.load(Ordering::Acquire), QUEUED_BATCHES);
        let mut expected: Vec<u32> = (0..QUEUED_BATCHES as u32).collect();
        expected.push(99);
        assert_eq!(
            *log.lock().expect("log"),
            expected,
            "every message once, in order"
        );
    }

    #[tokio::test]
    async fn a_full_queue_gives_up_once_the_projector_fails_and_a_closed_one_counts_nothing() {
        let part = PartitionState::default();
        part.queued.store(QUEUED_BATCHES, Ordering::Release);
        let failing = AtomicBool::new(false);
        let log = std::sync::Mutex::new(Vec::new());
        let fail_soon = async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            failing.store(true, Ordering::Release);
        };
        let (queued, ()) = tokio::join!(
            queue(&part, 1, sent_into(&log), || failing
                .load(Ordering::Acquire)),
            fail_soon
        );
        assert_eq!(queued, Queued::Failing);
        assert!(log.lock().expect("log").is_empty(), "sent while full");
        assert_eq!(part.queued.load(Ordering::Acquire), QUEUED_BATCHES);

        let part = PartitionState::default();
        let closed = queue(&part, 2, |m| Err(SendError::Closed(m)), || false).await;
        assert_eq!(closed, Queued::Closed);
        assert_eq!(
            part.queued.load(Ordering::Acquire),
            0,
            "a closed mailbox holds nothing"
        );
        part.took_batch();
        assert_eq!(part.queued.load(Ordering::Acquire), 0, "never below zero");
    }

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

    #[tokio::test]
    async fn a_catch_up_read_waits_until_every_partition_took_its_batches_up_but_not_for_one_passed_over(
    ) {
        let parts: Arc<Vec<PartitionState>> =
            Arc::new((0..3).map(|_| PartitionState::default()).collect());
        parts[0].queued.store(1, Ordering::Release);
        parts[2].queued.store(1, Ordering::Release);
        let taker = parts.clone();
        let take_up = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            taker[0].took_batch();
            tokio::time::sleep(Duration::from_millis(60)).await;
            taker[2].took_batch();
        });
        let started = Instant::now();
        until_all_taken_up(&parts, |_| true).await;
        assert!(
            started.elapsed() >= Duration::from_millis(110),
            "read on before every batch was taken up: {:?}",
            started.elapsed()
        );
        assert!(parts.iter().all(|p| p.queued.load(Ordering::Acquire) == 0));
        take_up.await.expect("take-up task");

        // A partition passed over (stale, failing, not ours) is not waited for.
        parts[1].queued.store(1, Ordering::Release);
        let started = Instant::now();
        until_all_taken_up(&parts, |p| p != 1).await;
        assert!(
            started.elapsed() < FAILING_CHECK_EVERY,
            "waited for a partition passed over"
        );
    }
}
