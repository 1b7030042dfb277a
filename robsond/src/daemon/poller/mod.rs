//! The poller actor: reads committed events in commit-safe order and routes
//! each to the projector of its partition. It wakes on LISTEN/NOTIFY
//! (`robson_events`, sent by every append at commit) and, as a fallback,
//! every poll interval.
//!
//! It reads on a session of its own ([`LogReader`]: one round trip per
//! read) and never buffers more than one read window: each batch is queued
//! in the projector's mailbox without waiting for it to be taken up, unless
//! one of the poller's batches already waits there — then it waits for the
//! projector, or until the poller is asked to stop, so a projector stuck in
//! backoff never holds the shutdown (the batch is read again on the next
//! start).
//!
//! One job per part: this module reads (the loop, commit-safe windows,
//! held-back reads) and owns the actor; [`listen`] waits for a wake-up,
//! [`dispatch`] splits a window into batches and hands them over, [`idle`]
//! advances idle partitions, [`resume`] re-reads streams an operator
//! resumed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use robson_eventlog::{LogReader, Position};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::projector::{RESTARTING, RETRYING};
use super::retry::{count_db_error, sleep_or_stop, Retry};
use super::state::DaemonState;
use super::supervisor::Routes;
use crate::metrics::{Actor as MetricActor, Metrics};

mod dispatch;
mod idle;
mod listen;
mod resume;

use dispatch::dispatch;
use idle::advance_idle;
use listen::{listen, wait_for_wakeup};
use resume::resume_requested_streams;

/// How far the read window (and with it the batches) may grow while reads
/// come back full: to this many times the base window, at most
/// [`MAX_GROWN_WINDOW`] events (memory: a window, plus per partition the
/// batch in progress and [`super::projector::QUEUED_BATCHES`] queued).
const CATCH_UP_GROWTH: i64 = 4;
/// The largest window growth makes (a larger base window stays as it is).
pub const MAX_GROWN_WINDOW: i64 = 16_000;

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

    /// Resolves once the loop is asked to stop.
    async fn requested(&self) {
        let mut requested = self.requested.subscribe();
        let _ = requested.wait_for(|s| *s).await;
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

/// How long a stop lets the read loop end the step it is in — a read, a
/// check, a hand-over: milliseconds — before cancelling it. The loop ends
/// at its next wait once asked to stop. Cancelled in the middle of a
/// statement, it would drop a pooled connection whose `ROLLBACK` was sent
/// but not answered: sqlx then queues a second one, which the server
/// answers with a warning ("there is no transaction in progress") when the
/// pool tests the connection, possibly while the runtime is already going
/// away (a second warning). Seen at the end of bench runs under load.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// The read loop. Returns when asked to stop (or when the shutdown aborts
/// what is still running), after closing its listener connection (inside
/// the runtime, before the System goes away).
async fn run(setup: PollerSetup) {
    let mut listener: Option<PgListener> = None;
    let mut reader: Option<LogReader> = None;
    let stopped = async {
        setup.stop.requested().await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::select! {
        () = read_loop(&setup, &mut listener, &mut reader) => {}
        // Whatever the loop still waits for after the grace — a database
        // that does not answer, or a projector that does not take its batch
        // (stuck in backoff) — has nothing to commit: the batch is read
        // again on the next start.
        () = stopped => {}
        () = setup.state.lifecycle.aborted() => {}
    }
    drop(listener);
    drop(reader);
    if setup.stop.is_requested() || setup.state.lifecycle.is_aborted() {
        setup.stop.finished.send_replace(true);
    }
}

async fn read_loop(
    setup: &PollerSetup,
    listener: &mut Option<PgListener>,
    reader: &mut Option<LogReader>,
) {
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
    let mut resume_checked = Instant::now() - RESUME_CHECK_EVERY;
    let mut retry = Retry::new("Poller read failed");

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
        let read = async {
            let reader = connected(&setup, reader).await?;
            reader.read_committed(cursor, window).await
        };
        let events = match read.await {
            Ok(events) => events,
            Err(err) => {
                *reader = None;
                // Whatever the class, a reader has nothing to give up: it
                // reads again (a permanent error is the operator's to fix).
                count_db_error(&setup.metrics, &err);
                setup.state.set_database_up(false);
                let delay = retry.next_delay();
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "Poller read failed; retrying.");
                *listener = None;
                if !sleep_or_stop(delay, setup.stop.requested()).await {
                    return;
                }
                continue;
            }
        };
        retry.reset();
        crate::faults::poller_after_read().await;
        let full = events.len() as i64 >= window;
        // Far behind, batches grow with the window (more events folded per
        // row write and per transaction); caught up, they are batch_size.
        let batch = (window as usize / partitions).max(setup.batch_size);
        if let Some(last) = events.last() {
            // The log moves: a wait for held-back events starts short again.
            held_back_delay = HeldBackDelay::default();
            let upto = last.position();
            dispatch(&setup, events, upto, batch, &mut sent, &mut stale).await;
            cursor = upto;
        }
        if full {
            // Catching up: read on only once every batch handed over has
            // been taken up, as the handover used to wait for — memory
            // stays at one window plus a batch in progress per partition
            // (reading the next window while batches still waited in the
            // mailboxes took a catch-up at ROBSON_BATCH_SIZE=10000 from 104
            // to 129 MiB, for no gain: the projectors had work queued).
            dispatch::until_taken_up(&setup, &stale).await;
            window = (window * 2).min(max_window);
            continue;
        }
        window = base_window;
        advance_idle(&setup, cursor, &mut sent, &stale, &mut advanced).await;
        if resume_checked.elapsed() >= RESUME_CHECK_EVERY {
            resume_requested_streams(&setup).await;
            resume_checked = Instant::now();
        }
        if held_back(&setup, reader, cursor).await {
            // Committed events wait behind an open transaction (often a
            // projector's own, a few milliseconds): read again soon, the
            // notification for them may already have been consumed.
            if !sleep_or_stop(held_back_delay.next(), setup.stop.requested()).await {
                return;
            }
            continue;
        }
        held_back_delay = HeldBackDelay::default();
        wait_for_wakeup(&setup, listener).await;
    }
}

/// Least time between two look-ups of the streams an operator resumed: at
/// most ten a second, not one per read (under load the poller reads about a
/// hundred times a second, and each look-up is a round trip).
const RESUME_CHECK_EVERY: Duration = Duration::from_millis(100);

/// How long to wait before reading again while events are held back: 1 ms,
/// doubling to 64 ms while nothing new can be read (a writer keeps its
/// transaction open); every read that brings events starts it at 1 ms
/// again. (Without that restart, continuous writers — some event always
/// committed since the last read — drove it to 64 ms: 11 waits of 64 ms in
/// 12 s at 2,000 events/s. Ending the wait on each notification was tried:
/// no difference to latency, more reads. Dropped.)
#[derive(Debug, Default)]
struct HeldBackDelay(u32);

impl HeldBackDelay {
    fn next(&mut self) -> Duration {
        let d = Duration::from_millis(1 << self.0.min(6));
        self.0 = self.0.saturating_add(1);
        d
    }
}

/// Whether committed events after `cursor` are still unread: held back by
/// an open transaction, or let through since the read (see
/// `robson_eventlog::committed_after`). A failed check says no (the next
/// wake-up or poll reads again), logged and counted.
async fn held_back(setup: &PollerSetup, reader: &mut Option<LogReader>, cursor: Position) -> bool {
    let check = async {
        connected(setup, reader)
            .await?
            .committed_after(cursor)
            .await
    };
    match check.await {
        Ok(held) => held,
        Err(err) => {
            *reader = None;
            count_db_error(&setup.metrics, &err);
            tracing::warn!(error = %err, "Could not check for events held back by an open transaction.");
            false
        }
    }
}

/// The poller's reading connection, connected first if it is not (again,
/// after a failure).
async fn connected<'r>(
    setup: &PollerSetup,
    reader: &'r mut Option<LogReader>,
) -> Result<&'r mut LogReader, sqlx::Error> {
    if reader.is_none() {
        *reader = Some(LogReader::connect(&setup.pool.connect_options()).await?);
    }
    Ok(reader.as_mut().expect("connected just now"))
}

/// True while partition `p`'s projector is failing: pausing before a
/// restart, or in backoff after a transient error. The poller then does not
/// wait for it, so one failing partition never holds the others back.
pub(super) fn is_failing(setup: &PollerSetup, p: usize) -> bool {
    let state = setup.state.partitions[p].state();
    state == RESTARTING || state == RETRYING
}

pub(super) fn route(
    setup: &PollerSetup,
    partition: usize,
) -> Option<actix::Addr<super::projector::Projector>> {
    setup
        .routes
        .read()
        .ok()
        .and_then(|r| r.get(partition).cloned().flatten())
}
