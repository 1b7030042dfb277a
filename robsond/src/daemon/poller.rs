//! The poller actor: reads committed events in commit-safe order and routes
//! each to the projector of its partition. It wakes on LISTEN/NOTIFY
//! (`robson_events`, sent by every append at commit) and, as a fallback,
//! every poll interval.
//!
//! It never buffers more than one read window: each batch is handed over
//! with `send().await`, which waits while the projector's mailbox is full.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use robson_eventlog::{EventEnvelope, Position};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::projector::{Batch, CatchUp};
use super::retry::Backoff;
use super::state::DaemonState;
use super::supervisor::Routes;
use crate::metrics::{Actor as MetricActor, DbErrorKind, Metrics, WakeupSource};
use crate::partition::partition_of;

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
            if !act.setup.stop.is_requested() {
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

/// The read loop. Returns only when asked to stop, after closing its
/// listener connection (inside the runtime, before the System goes away).
async fn run(setup: PollerSetup) {
    let mut listener: Option<PgListener> = None;
    read_loop(&setup, &mut listener).await;
    drop(listener);
    if setup.stop.is_requested() {
        setup.stop.finished.send_replace(true);
    }
}

async fn read_loop(setup: &PollerSetup, listener: &mut Option<PgListener>) {
    let setup = setup.clone();
    let partitions = setup.state.partitions.len();
    let window = (setup.batch_size * partitions)
        .clamp(setup.batch_size, 10_000.max(setup.batch_size)) as i64;
    let mut cursor = setup.start;
    // Per partition: the position its last batch covered.
    let mut sent: Vec<Position> = vec![setup.start; partitions];
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
        if let Some(last) = events.last() {
            let upto = last.position();
            dispatch(&setup, events, upto, &mut sent).await;
            cursor = upto;
        }
        if full {
            continue;
        }
        advance_idle(&setup, cursor, &mut sent, &mut advanced).await;
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
async fn advance_idle(
    setup: &PollerSetup,
    cursor: Position,
    sent: &mut [Position],
    advanced: &mut [Instant],
) {
    for p in 0..sent.len() {
        if sent[p] < cursor && advanced[p].elapsed() >= IDLE_ADVANCE_EVERY {
            send(setup, p, Vec::new(), sent[p], cursor).await;
            sent[p] = cursor;
            advanced[p] = Instant::now();
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut l = PgListener::connect_with(pool).await.ok()?;
    l.listen("robson_events").await.ok()?;
    Some(l)
}

/// Waits for a notification, or the poll interval.
async fn wait_for_wakeup(setup: &PollerSetup, listener: &mut Option<PgListener>) {
    let m = &setup.metrics;
    let Some(l) = listener.as_mut() else {
        let mut stop = setup.stop.requested.subscribe();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(setup.poll_interval) => {}
        }
        m.poller_wakeups(WakeupSource::Poll).inc();
        return;
    };
    let mut stop = setup.stop.requested.subscribe();
    let woken = tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
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
async fn dispatch(
    setup: &PollerSetup,
    events: Vec<EventEnvelope>,
    upto: Position,
    sent: &mut [Position],
) {
    let partitions = setup.state.partitions.len();
    let mut per_partition: Vec<Vec<EventEnvelope>> = vec![Vec::new(); partitions];
    for e in events {
        per_partition[partition_of(&e.stream_key, partitions)].push(e);
    }
    for (p, events) in per_partition.into_iter().enumerate() {
        if events.is_empty() {
            continue;
        }
        let chunks = into_chunks(events, setup.batch_size);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let chunk_upto = if i == last {
                upto
            } else {
                chunk.last().map_or(upto, EventEnvelope::position)
            };
            send(setup, p, chunk, sent[p], chunk_upto).await;
            sent[p] = chunk_upto;
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

async fn send(
    setup: &PollerSetup,
    partition: usize,
    events: Vec<EventEnvelope>,
    from: Position,
    upto: Position,
) {
    let Some(addr) = route(setup, partition) else {
        // Not ours (any more): its owner reads these events itself.
        return;
    };
    let batch = Batch { events, from, upto };
    if let Err(err) = addr.send(batch).await {
        // Only when the projector's supervisor is gone (shutdown): its batch
        // is re-read from the checkpoint on the next start. Nothing is lost.
        tracing::warn!(partition, error = %err, "Projector mailbox closed.");
        setup.state.request_rewind(from);
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
        if let Some(addr) = route(setup, partition_of(&stream_key, partitions)) {
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
