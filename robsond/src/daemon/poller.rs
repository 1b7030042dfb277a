//! The poller actor: reads committed events in commit-safe order and routes
//! each to the projector of its partition. It wakes on LISTEN/NOTIFY
//! (`robson_events`, sent by every append at commit) and, as a fallback,
//! every poll interval.
//!
//! It never buffers more than one read window: each batch is handed over
//! with `send().await`, which waits while the projector's mailbox is full —
//! or until the poller is asked to stop, so a projector stuck in backoff
//! never holds the shutdown (the batch is read again on the next start).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use robson_eventlog::{EventEnvelope, Position};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::projector::{Batch, CatchUp, RESTARTING, RETRYING};
use super::retry::Backoff;
use super::state::DaemonState;
use super::supervisor::Routes;
use crate::metrics::{Actor as MetricActor, DbErrorKind, Metrics, WakeupSource};
use crate::partition::partition_of;

/// How far the read window (and with it the batches) may grow while reads
/// come back full: to this many times the base window, at most
/// [`MAX_GROWN_WINDOW`] events (memory: a window, plus per partition the
/// batch in progress and [`super::projector::MAILBOX_CAPACITY`] queued).
const CATCH_UP_GROWTH: i64 = 4;
/// The largest window growth makes (a larger base window stays as it is).
pub const MAX_GROWN_WINDOW: i64 = 16_000;

/// Least time between two checkpoint advances of an idle partition.
const IDLE_ADVANCE_EVERY: Duration = Duration::from_millis(200);

/// What the poller needs; cloned into each restart.
#[derive(Debug, Clone)]
pub struct PollerSetup {
    pub pool: PgPool,
    /// The projector of each partition this instance owns.
    pub routes: Routes,
    pub state: Arc<DaemonState>,
    pub metrics: Arc<Metrics>,
    pub batch_size: usize,
    pub poll_interval: Duration,
    /// Where reading starts: the oldest partition checkpoint.
    pub start: Position,
    pub stop: Arc<StopSignal>,
}

/// Tells the read loop to stop, and tells the stopper when it has.
#[derive(Debug)]
pub struct StopSignal {
    requested: tokio::sync::watch::Sender<bool>,
    finished: tokio::sync::watch::Sender<bool>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            requested: tokio::sync::watch::Sender::new(false),
            finished: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl StopSignal {
    fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Asks the loop to stop and waits until it has released its connections.
    async fn stop_and_wait(&self) {
        self.requested.send_replace(true);
        let mut finished = self.finished.subscribe();
        let _ = finished.wait_for(|done| *done).await;
    }
}

/// Stop reading (shutdown); answered when the loop has stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopPolling;

#[derive(Debug)]
pub struct Poller {
    setup: PollerSetup,
}

impl Poller {
    pub fn new(setup: PollerSetup) -> Self {
        Poller { setup }
    }
}

impl Actor for Poller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let setup = self.setup.clone();
        ctx.spawn(run(setup).into_actor(self).map(|(), act, ctx| {
            if !act.setup.stop.is_requested() && !act.setup.state.lifecycle.is_aborted() {
                tracing::error!("Poller loop ended unexpectedly; restarting it.");
                ctx.stop();
            }
        }));
    }
}

impl Supervised for Poller {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.setup
            .state
            .poller_restarts
            .fetch_add(1, Ordering::Relaxed);
        self.setup.metrics.actor_restarts(MetricActor::Poller).inc();
    }
}

impl Handler<StopPolling> for Poller {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopPolling, _: &mut Self::Context) -> Self::Result {
        let stop = self.setup.stop.clone();
        Box::pin(async move { stop.stop_and_wait().await })
    }
}

/// The read loop. Returns only when asked to stop (or when the shutdown
/// aborts what is still running), after closing its listener connection
/// (inside the runtime, before the System goes away).
async fn run(setup: PollerSetup) {
    let mut listener: Option<PgListener> = None;
    let mut stop = setup.stop.requested.subscribe();
    tokio::select! {
        () = read_loop(&setup, &mut listener) => {}
        // Whatever the loop waits for — a read, or a projector that does
        // not take its batch (stuck in backoff) — has nothing to commit:
        // the batch is read again on the next start.
        _ = stop.wait_for(|s| *s) => {}
        () = setup.state.lifecycle.aborted() => {}
    }
    drop(listener);
    if setup.stop.is_requested() || setup.state.lifecycle.is_aborted() {
        setup.stop.finished.send_replace(true);
    }
}

async fn read_loop(setup: &PollerSetup, listener: &mut Option<PgListener>) {
    let setup = setup.clone();
    let partitions = setup.state.partitions.len();
    let base_window = (setup.batch_size * partitions)
        .clamp(setup.batch_size, 10_000.max(setup.batch_size)) as i64;
    let max_window = (base_window * CATCH_UP_GROWTH)
        .min(MAX_GROWN_WINDOW)
        .max(base_window);
    let mut window = base_window;
    let mut cursor = setup.start;
    // Per partition: the position its last batch covered.
    let mut sent: Vec<Position> = vec![setup.start; partitions];
    // Partitions passed over while their projector failed: nothing more is
    // sent to them (not even idle advances) until they run again, then they
    // are read again from `sent`.
    let mut stale: Vec<bool> = vec![false; partitions];
    let mut advanced: Vec<Instant> = vec![Instant::now(); partitions];
    let mut held_back_delay = HeldBackDelay::default();
    let mut backoff = Backoff::default();

    while !setup.stop.is_requested() {
        setup.state.poller_beat();
        if let Some(pos) = setup.state.take_rewind() {
            tracing::info!(from = %pos, "Reading again from an earlier position (a new partition, or a batch that did not commit).");
            cursor = cursor.min(pos);
            for s in sent.iter_mut() {
                *s = (*s).min(pos);
            }
        }
        for p in 0..partitions {
            if stale[p] && !is_failing(&setup, p) {
                tracing::info!(partition = p, from = %sent[p], "Projector runs again; reading its events again.");
                stale[p] = false;
                cursor = cursor.min(sent[p]);
            }
        }
        if listener.is_none() {
            *listener = listen(&setup.pool).await;
        }
        let events = match robson_eventlog::read_committed(&setup.pool, cursor, window).await {
            Ok(events) => events,
            Err(err) => {
                setup.metrics.db_errors(DbErrorKind::Transient).inc();
                setup.state.set_database_up(false);
                let delay = backoff.next_delay();
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "Poller read failed; retrying.");
                *listener = None;
                let mut stop = setup.stop.requested.subscribe();
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff = Backoff::default();
        let full = events.len() as i64 >= window;
        // Far behind, batches grow with the window (more events folded per
        // row write and per transaction); caught up, they are batch_size.
        let batch = (window as usize / partitions).max(setup.batch_size);
        if let Some(last) = events.last() {
            let upto = last.position();
            dispatch(&setup, events, upto, batch, &mut sent, &mut stale).await;
            cursor = upto;
        }
        if full {
            window = (window * 2).min(max_window);
            continue;
        }
        window = base_window;
        advance_idle(&setup, cursor, &mut sent, &stale, &mut advanced).await;
        resume_requested_streams(&setup).await;
        if held_back(&setup, cursor).await {
            // Committed events wait behind an open transaction (often a
            // projector's own): read again soon, the notification for them
            // may already have been consumed.
            let mut stop = setup.stop.requested.subscribe();
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(held_back_delay.next()) => continue,
            }
        }
        held_back_delay = HeldBackDelay::default();
        wait_for_wakeup(&setup, listener).await;
    }
}

/// How long to wait before reading again while events are held back: 1 ms,
/// doubling to 64 ms while a writer keeps its transaction open.
#[derive(Debug, Default)]
struct HeldBackDelay(u32);

impl HeldBackDelay {
    fn next(&mut self) -> Duration {
        let d = Duration::from_millis(1 << self.0.min(6));
        self.0 = self.0.saturating_add(1);
        d
    }
}

async fn held_back(setup: &PollerSetup, cursor: Position) -> bool {
    robson_eventlog::committed_behind_xmin(&setup.pool, cursor)
        .await
        .unwrap_or(false)
}

/// Idle partitions learn how far the log has been read, so their checkpoints
/// follow it (a restart then re-reads little) — at most every
/// [`IDLE_ADVANCE_EVERY`] each, as every advance is a transaction.
///
/// A stale partition is never advanced: its checkpoint would jump over the
/// events it was not given.
async fn advance_idle(
    setup: &PollerSetup,
    cursor: Position,
    sent: &mut [Position],
    stale: &[bool],
    advanced: &mut [Instant],
) {
    for p in 0..sent.len() {
        if !stale[p] && sent[p] < cursor && advanced[p].elapsed() >= IDLE_ADVANCE_EVERY {
            if send(setup, p, Vec::new(), sent[p], cursor).await != Handover::Failing {
                sent[p] = cursor;
            }
            advanced[p] = Instant::now();
        }
    }
}

/// True while partition `p`'s projector is failing: pausing before a
/// restart, or in backoff after a transient error. The poller then does not
/// wait for it, so one failing partition never holds the others back.
fn is_failing(setup: &PollerSetup, p: usize) -> bool {
    let state = setup.state.partitions[p].state();
    state == RESTARTING || state == RETRYING
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut l = PgListener::connect_with(pool).await.ok()?;
    l.listen("robson_events").await.ok()?;
    Some(l)
}

/// Waits for a notification, or the poll interval.
async fn wait_for_wakeup(setup: &PollerSetup, listener: &mut Option<PgListener>) {
    let m = &setup.metrics;
    let partition_taken = setup.state.lifecycle.poller_woken();
    let Some(l) = listener.as_mut() else {
        let mut stop = setup.stop.requested.subscribe();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = partition_taken => return,
            _ = tokio::time::sleep(setup.poll_interval) => {}
        }
        m.poller_wakeups(WakeupSource::Poll).inc();
        return;
    };
    let mut stop = setup.stop.requested.subscribe();
    let woken = tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
        // A partition was taken: read from its checkpoint now.
        () = partition_taken => return,
        woken = tokio::time::timeout(setup.poll_interval, l.try_recv()) => woken,
    };
    match woken {
        Ok(Ok(Some(_))) => {
            m.poller_wakeups(WakeupSource::Notify).inc();
            // Collapse a burst of notifications into one read.
            while l.next_buffered().is_some() {}
        }
        Ok(Ok(None)) | Ok(Err(_)) => {
            // Connection lost: notifications may be missed, so read now and
            // listen again on the next round.
            *listener = None;
            m.poller_wakeups(WakeupSource::Poll).inc();
        }
        Err(_) => {
            m.poller_wakeups(WakeupSource::Poll).inc();
        }
    }
}

/// Routes a window to the partitions, in chunks of at most batch_size.
/// Events a partition was already given (at or before its `sent`, after a
/// read again) are not sent twice; a stale partition is passed over.
async fn dispatch(
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
    for (p, events) in per_partition.into_iter().enumerate() {
        if events.is_empty() {
            continue;
        }
        let chunks = into_chunks(events, batch);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let chunk_upto = if i == last {
                upto
            } else {
                chunk.last().map_or(upto, EventEnvelope::position)
            };
            match send(setup, p, chunk, sent[p], chunk_upto).await {
                // Not ours: `sent` moves on all the same, so that if the
                // partition becomes ours before the rewind its start asks
                // for, the projector refuses the gap (`from` beyond its
                // checkpoint) instead of an idle advance jumping over it.
                Handover::Taken | Handover::NotOurs => sent[p] = chunk_upto,
                Handover::Failing => {
                    tracing::warn!(partition = p, from = %sent[p], "Projector failing; passing its partition over until it runs again.");
                    stale[p] = true;
                    break;
                }
            }
        }
    }
}

/// `events` split into runs of at most `size`, moved, not copied (a payload
/// is a tree of allocations).
fn into_chunks<T>(mut items: Vec<T>, size: usize) -> Vec<Vec<T>> {
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
enum Handover {
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
const FAILING_CHECK_EVERY: Duration = Duration::from_millis(20);

/// Hands a batch over with `send().await` (the backpressure that bounds
/// memory), but gives up as soon as the projector is failing.
async fn send(
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

/// Streams an operator retried or skipped: their waiting events are re-read.
async fn resume_requested_streams(setup: &PollerSetup) {
    let keys: Vec<String> = match sqlx::query_scalar(
        "SELECT stream_key FROM projection_stream_progress WHERE resume_requested
          ORDER BY stream_key LIMIT 100",
    )
    .fetch_all(&setup.pool)
    .await
    {
        Ok(keys) => keys,
        Err(_) => return,
    };
    let partitions = setup.state.partitions.len();
    for stream_key in keys {
        let p = partition_of(&stream_key, partitions);
        if is_failing(setup, p) {
            // Still requested in the database: asked again on a later round.
            continue;
        }
        if let Some(addr) = route(setup, p) {
            let _ = addr.send(CatchUp { stream_key }).await;
        }
    }
}

fn route(
    setup: &PollerSetup,
    partition: usize,
) -> Option<actix::Addr<super::projector::Projector>> {
    setup
        .routes
        .read()
        .ok()
        .and_then(|r| r.get(partition).cloned().flatten())
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
