//! The projector actor: one per stream partition. It owns the partition's
//! checkpoint and applies each batch the poller routes to it — projections,
//! stream progress and checkpoint in ONE transaction.
//!
//! Batches are handled one at a time (`ctx.wait`), and the poller queues at
//! most [`QUEUED_BATCHES`] more (each batch taken up counts itself off,
//! `PartitionState::took_batch`), so a poller that runs ahead waits: memory
//! is bounded whatever the backlog.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::FutureExt;
use robson_eventlog::{EventEnvelope, Position};
use robson_projector::{Attempt, BatchOutcome, PoisonPolicy};
use sqlx::PgPool;
use tracing::Instrument;

use super::group::Verdict;
use super::retry::{self, Backoff, Failure, Retry};
use super::state::DaemonState;
use crate::metrics::{Actor as MetricActor, GroupVerdict, Metrics, SkipReason};
use crate::progress::checkpoint::{self, SaveError};

/// Messages a projector's mailbox holds beyond the one in progress (the
/// poller's batches, see [`QUEUED_BATCHES`], and the supervisor's).
pub const MAILBOX_CAPACITY: usize = 2;

/// The poller's batches that may wait in a projector's mailbox beyond the
/// one in progress (`poller::dispatch::send` keeps to it). One: with two, a
/// catch-up of 1M events took 5 % longer and 35 % more memory
/// (docs/performance.md).
pub const QUEUED_BATCHES: usize = 1;

/// Partition states shown in `/health` (`partitions[].state`). While a
/// projector is RESTARTING (failed, pausing before it reloads its
/// checkpoint) or RETRYING (a transient error, in backoff) the poller does
/// not wait for it: see `poller::is_failing`.
pub const RUNNING: &str = "running";
pub const RESTARTING: &str = "restarting";
pub const RETRYING: &str = "retrying";

/// Events of this partition, read in commit-safe order, and the position up
/// to which the partition is covered once they are applied.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Batch {
    pub events: Vec<EventEnvelope>,
    /// The position the poller believes the partition covered before this
    /// batch. Beyond the projector's checkpoint means a batch went missing
    /// (it failed and did not commit): the batch is refused and the poller
    /// rewinds, so a checkpoint never jumps over unapplied events.
    pub from: Position,
    pub upto: Position,
}

/// Re-read one stream from the log after an operator's retry or skip.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CatchUp {
    pub stream_key: String,
}

/// Stop for good (the partition was handed to another instance); sent after
/// [`Drain`] with every address dropped, so the supervisor does not restart it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for Projector {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.retired = true;
        ctx.stop();
    }
}

/// Answered once every batch queued before it is committed (or abandoned).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// What a projector needs; cloned into each restart.
#[derive(Debug, Clone)]
pub struct ProjectorSetup {
    pub partition: usize,
    pub partitions: usize,
    pub pool: PgPool,
    pub state: Arc<DaemonState>,
    pub metrics: Arc<Metrics>,
    pub policy: PoisonPolicy,
    pub batch_size: usize,
    pub checkpoint: Position,
    /// Projectors of the daemon not yet stopped for good (this one counts
    /// itself out once retired).
    pub live: Arc<AtomicUsize>,
    /// Where a small batch is committed with other partitions' small
    /// batches (see `super::group`); None: every batch alone.
    pub group: Option<Arc<super::group::Group>>,
}

#[derive(Debug)]
pub struct Projector {
    setup: ProjectorSetup,
    checkpoint: Position,
    restarting: bool,
    /// Told to stop for good ([`Retire`]).
    retired: bool,
    /// Already counted out of [`ProjectorSetup::live`].
    counted_out: bool,
    /// The database's partition layout is not this projector's: a batch
    /// only re-checks it (the supervisor re-creates the daemon meanwhile).
    stale_layout: bool,
}

impl Projector {
    pub fn new(setup: ProjectorSetup) -> Self {
        let checkpoint = setup.checkpoint;
        Projector {
            setup,
            checkpoint,
            restarting: false,
            retired: false,
            counted_out: false,
            stale_layout: false,
        }
    }

    /// Whether batches must be left alone: stopping for good.
    fn idle(&self) -> bool {
        self.retired || self.setup.state.lifecycle.is_aborted()
    }

    /// With a stale layout a batch cannot commit: instead, look whether the
    /// layout is this projector's again (the supervisor re-creates the
    /// daemon otherwise) and, if so, go on from the stored checkpoint.
    fn recheck_layout(&mut self, ctx: &mut Context<Self>) {
        let setup = self.setup.clone();
        ctx.wait(
            async move { stored_checkpoint(&setup).await }
                .into_actor(self)
                .map(|loaded, act, _| {
                    if let Some(pos) = loaded {
                        act.stale_layout = false;
                        act.checkpoint = pos;
                        act.setup.state.request_rewind(pos);
                        act.partition_state().set_state(RUNNING);
                    }
                }),
        );
    }

    /// What to do after a unit of work failed: restart for a fatal failure;
    /// nothing else (a stopping daemon or a changed layout is not cured by a
    /// restart).
    fn failed(&mut self, ctx: &mut Context<Self>, failure: Failure, what: &str) {
        let partition = self.setup.partition;
        self.setup.state.request_rewind(self.checkpoint);
        match failure {
            Failure::Stopped => {
                tracing::info!(partition, "{what} given up uncommitted: stopping.");
            }
            Failure::LayoutChanged(err) => {
                tracing::warn!(partition, error = %err, "{what} rolled back: the partition layout changed; waiting for the supervisor to adopt it.");
                self.stale_layout = true;
                self.partition_state().set_state("layout changed");
            }
            Failure::Fatal(_) => {
                tracing::error!(partition, error = %failure, "{what} failed; the projector will restart.");
                self.partition_state().set_state(RESTARTING);
                ctx.stop();
            }
        }
    }

    fn partition_state(&self) -> &super::state::PartitionState {
        &self.setup.state.partitions[self.setup.partition]
    }
}

impl Actor for Projector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if self.retired {
            // Restarted only because an address was still held for a
            // moment: it runs nothing any more.
            return;
        }
        // A heartbeat while idle; it stops while a batch is in progress
        // (ctx.wait holds the whole context), so a stuck batch shows.
        ctx.run_interval(Duration::from_millis(500), |act, _| {
            act.partition_state().beat();
        });
        if !self.restarting {
            self.partition_state().set_state(RUNNING);
            return;
        }
        // Reload the checkpoint: the failed batch may or may not have
        // committed. Pause first so a persistent fault does not spin; the
        // state stays RESTARTING meanwhile, so the poller does not wait.
        self.partition_state().set_state(RESTARTING);
        let setup = self.setup.clone();
        let restarts = self.partition_state().restarts.load(Ordering::Relaxed);
        let fut = async move {
            let life = &setup.state.lifecycle;
            if !retry::pause(life, Backoff::delay_for(restarts as u32)).await {
                return None;
            }
            stored_checkpoint(&setup).await
        };
        ctx.wait(fut.into_actor(self).map(|loaded, act, _| {
            if let Some(pos) = loaded {
                act.checkpoint = pos;
            }
            act.partition_state().set_state(RUNNING);
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.retired && !self.counted_out {
            self.counted_out = true;
            self.setup.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Supervised for Projector {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if self.retired {
            // An address was still held when it stopped for good: it comes
            // back idle and ends with its last address; not a restart.
            return;
        }
        self.restarting = true;
        self.partition_state()
            .restarts
            .fetch_add(1, Ordering::Relaxed);
        self.setup
            .metrics
            .actor_restarts(MetricActor::Projector)
            .inc();
        tracing::warn!(partition = self.setup.partition, "Restarting projector.");
    }
}

impl Handler<Batch> for Projector {
    type Result = ();

    fn handle(&mut self, batch: Batch, ctx: &mut Self::Context) {
        self.setup.state.partitions[self.setup.partition].took_batch();
        if self.idle() {
            return;
        }
        if self.stale_layout {
            self.recheck_layout(ctx);
            return;
        }
        let covered = self.checkpoint;
        if batch.from > covered {
            self.setup.state.request_rewind(covered);
            return;
        }
        // Events at or before the checkpoint were committed by an earlier run.
        let events: Arc<Vec<EventEnvelope>> = Arc::new(
            batch
                .events
                .into_iter()
                .filter(|e| e.position() > covered)
                .collect(),
        );
        if events.is_empty() && batch.upto <= covered {
            return;
        }
        let setup = self.setup.clone();
        let upto = batch.upto.max(covered);
        let fut = async move {
            let work = AssertUnwindSafe(project_batch(&setup, events, upto));
            match work.catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(Failure::Fatal("panic while projecting a batch".into())),
            }
        };
        ctx.wait(
            fut.into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(()) => act.checkpoint = upto,
                    Err(failure) => act.failed(ctx, failure, "Batch"),
                }),
        );
    }
}

impl Handler<CatchUp> for Projector {
    type Result = ();

    fn handle(&mut self, msg: CatchUp, ctx: &mut Self::Context) {
        if self.idle() {
            return;
        }
        let setup = self.setup.clone();
        let fut = async move { catch_up(&setup, &msg.stream_key).await };
        ctx.wait(fut.into_actor(self).map(|result, act, ctx| {
            if let Err(failure) = result {
                act.failed(ctx, failure, "Catch-up");
            }
        }));
    }
}

impl Handler<Drain> for Projector {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.partition_state().set_state("drained");
    }
}

/// The partition's committed checkpoint, None when it cannot be read or the
/// stored layout is not this projector's.
async fn stored_checkpoint(setup: &ProjectorSetup) -> Option<Position> {
    let mut conn = setup.pool.acquire().await.ok()?;
    let rows = checkpoint::positions(&mut conn, setup.partitions)
        .await
        .ok()??;
    rows.get(setup.partition).copied()
}

/// Applies one batch and advances the checkpoint, retrying transient
/// failures forever with capped backoff (the backoff ends when the daemon
/// stops, the attempt itself when the shutdown aborts it), never retrying
/// a changed layout.
async fn project_batch(
    setup: &ProjectorSetup,
    shared: Arc<Vec<EventEnvelope>>,
    upto: Position,
) -> Result<(), Failure> {
    let part = &setup.state.partitions[setup.partition];
    let events: &[EventEnvelope] = &shared;
    part.in_flight.store(events.len() as i64, Ordering::Relaxed);
    let span = tracing::info_span!(
        "batch",
        partition = setup.partition,
        size = events.len(),
        first = %events.first().map_or(upto, |e| e.position()),
        last = %upto,
    );
    let grouped = setup.group.as_ref().filter(|g| {
        g.takes(events.len()) && !crate::faults::projector_batch_configured(setup.partition)
    });
    if let Some(group) = grouped {
        let started = Instant::now();
        let verdict = tokio::select! {
            verdict = group.commit(setup.partition, shared.clone(), upto).instrument(span.clone()) => verdict,
            _ = setup.state.lifecycle.aborted() => return Err(Failure::Stopped),
        };
        match verdict {
            Verdict::Committed(outcome) => {
                setup.metrics.grouped_batches(GroupVerdict::Committed).inc();
                committed(setup, events, &outcome, upto, started);
                return Ok(());
            }
            Verdict::Alone => setup.metrics.grouped_batches(GroupVerdict::Alone).inc(),
        }
    }
    let mut retry = Retry::new("Transient database error");
    // The first attempt skips apply_batch's savepoints; one that needs them
    // is rolled back and made again with them, at once.
    let mut careful = false;
    let advance = checkpoint::Advance {
        partition: setup.partition,
        partitions: setup.partitions,
        upto,
        owner: setup.state.instance.clone(),
    };
    loop {
        let started = Instant::now();
        let attempt = async {
            let mut tx = begin(setup).await?;
            // The checkpoint moves in the batch's write statement, or in
            // a statement of its own on the careful path.
            let outcome = if careful {
                let outcome = robson_projector::apply_batch(&mut tx, events, setup.policy).await?;
                checkpoint::save(&mut tx, &advance, outcome.applied).await?;
                outcome
            } else {
                let tried = robson_projector::try_apply_batch_with(
                    &mut tx,
                    events,
                    setup.policy,
                    Some(&advance),
                )
                .await?;
                match tried {
                    (Attempt::Applied(outcome), moved) => {
                        advance.check(&mut tx, moved).await?;
                        outcome
                    }
                    (Attempt::NeedsCare, _) => return Err(BatchError::NeedsCare),
                }
            };
            crate::faults::projector_batch(&mut tx, setup.partition).await?;
            tx.commit().await?;
            Ok::<BatchOutcome, BatchError>(outcome)
        }
        .instrument(span.clone());
        match until_aborted(setup, attempt).await? {
            Attempted::NeedsCare => {
                tracing::debug!(
                    partition = setup.partition,
                    "Batch rolled back; applying it again with savepoints."
                );
                careful = true;
            }
            Attempted::Committed(outcome) => {
                committed(setup, events, &outcome, upto, started);
                return Ok(());
            }
            Attempted::Failed(err) => retry.projector_failure(setup, err).await?,
        }
    }
}

/// What follows a batch's commit, alone or with its group.
fn committed(
    setup: &ProjectorSetup,
    events: &[EventEnvelope],
    outcome: &BatchOutcome,
    upto: Position,
    started: Instant,
) {
    let part = &setup.state.partitions[setup.partition];
    setup
        .state
        .waiters
        .after_commit(events, outcome, setup.policy);
    record(setup, outcome, events.len(), upto, started.elapsed());
    recovered(part);
    part.in_flight.store(0, Ordering::Relaxed);
    part.beat();
    setup.state.set_database_up(true);
}

/// Applies a resumed stream's waiting events, chunk by chunk.
async fn catch_up(setup: &ProjectorSetup, stream_key: &str) -> Result<(), Failure> {
    let mut retry = Retry::new("Transient database error");
    loop {
        let started = Instant::now();
        let attempt = async {
            let mut tx = begin(setup).await?;
            let outcome = robson_projector::catch_up_stream(
                &mut tx,
                stream_key,
                setup.policy,
                setup.batch_size as i64,
            )
            .await?;
            tx.commit().await?;
            Ok::<BatchOutcome, BatchError>(outcome)
        };
        match until_aborted(setup, attempt).await? {
            // catch_up_stream keeps its savepoints: never asked to.
            Attempted::NeedsCare => {}
            Attempted::Committed(outcome) => {
                recovered(&setup.state.partitions[setup.partition]);
                setup.state.waiters.look_up([stream_key.to_owned()]);
                let n = outcome.applied + outcome.skipped_unhandled;
                record(
                    setup,
                    &outcome,
                    n as usize,
                    Position::START,
                    started.elapsed(),
                );
                if n == 0 || outcome.held > 0 || !outcome.dead_lettered.is_empty() {
                    return Ok(());
                }
            }
            Attempted::Failed(err) => retry.projector_failure(setup, err).await?,
        }
    }
}

/// A unit of work committed: a partition that was RETRYING runs again.
fn recovered(part: &super::state::PartitionState) {
    if part.state() == RETRYING {
        part.set_state(RUNNING);
    }
}

/// How long an attempt that starts while the daemon stops may wait for a
/// connection: with the database reachable one comes at once; with it
/// unreachable the pool would wait for its acquire timeout (5 s), and there
/// is nothing in flight to finish.
const STOPPING_ACQUIRE_WAIT: Duration = Duration::from_millis(250);

/// A transaction for one attempt (see [`STOPPING_ACQUIRE_WAIT`]).
async fn begin(
    setup: &ProjectorSetup,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, BatchError> {
    let give_up = async {
        setup.state.lifecycle.stopped().await;
        tokio::time::sleep(STOPPING_ACQUIRE_WAIT).await;
    };
    tokio::select! {
        tx = setup.pool.begin() => Ok(tx?),
        () = give_up => Err(BatchError::Stopped),
    }
}

/// Runs one attempt unless the drain is over: what the caller records or
/// retries; a layout change and a stop end the unit of work. (Abandoned,
/// the transaction is dropped here, inside the runtime, and rolls back; its
/// events are read again on the next start.)
async fn until_aborted(
    setup: &ProjectorSetup,
    attempt: impl std::future::Future<Output = Result<BatchOutcome, BatchError>>,
) -> Result<Attempted, Failure> {
    let attempt = tokio::select! {
        attempt = attempt => attempt,
        _ = setup.state.lifecycle.aborted() => return Err(Failure::Stopped),
    };
    match attempt {
        Ok(outcome) => Ok(Attempted::Committed(outcome)),
        Err(BatchError::LayoutChanged(err)) => Err(err.into()),
        Err(BatchError::Stopped) => Err(Failure::Stopped),
        Err(BatchError::NeedsCare) => Ok(Attempted::NeedsCare),
        Err(BatchError::Projection(err)) => Ok(Attempted::Failed(err)),
    }
}

/// How an attempt that ran to its end went.
enum Attempted {
    Committed(BatchOutcome),
    /// Retried after a backoff, or fatal, as `robson_projector` classifies it.
    Failed(robson_projector::ProjectionError),
    /// Rolled back: made again at once with `apply_batch`'s savepoints
    /// (see `robson_projector::try_apply_batch`).
    NeedsCare,
}

/// Why one attempt at a batch did not commit.
#[derive(Debug)]
enum BatchError {
    /// Retried or fatal, as `robson_projector` classifies it.
    Projection(robson_projector::ProjectionError),
    /// Never retried: see [`checkpoint::LayoutChanged`].
    LayoutChanged(checkpoint::LayoutChanged),
    /// No connection while the daemon stops: nothing to finish.
    Stopped,
    /// See [`Attempted::NeedsCare`].
    NeedsCare,
}

impl From<robson_projector::ProjectionError> for BatchError {
    fn from(err: robson_projector::ProjectionError) -> Self {
        BatchError::Projection(err)
    }
}

impl From<sqlx::Error> for BatchError {
    fn from(err: sqlx::Error) -> Self {
        BatchError::Projection(err.into())
    }
}

impl From<SaveError> for BatchError {
    fn from(err: SaveError) -> Self {
        match err {
            SaveError::LayoutChanged(err) => BatchError::LayoutChanged(err),
            SaveError::Database(err) => err.into(),
        }
    }
}

fn record(
    setup: &ProjectorSetup,
    outcome: &BatchOutcome,
    size: usize,
    upto: Position,
    took: Duration,
) {
    let m = &setup.metrics;
    m.events_applied(setup.partition).inc_by(outcome.applied);
    m.events_skipped(SkipReason::UnhandledType)
        .inc_by(outcome.skipped_unhandled);
    m.events_skipped(SkipReason::AlreadyApplied)
        .inc_by(outcome.already_applied);
    for dl in &outcome.dead_lettered {
        // Rows written, not attempts: a retried event that fails again
        // updates its row (attempts + 1) and is not counted twice.
        if dl.new_row {
            m.events_dead_lettered(dl.error_kind).inc();
            tracing::warn!(stream = %dl.stream_key, seq = dl.seq, error = %dl.error, kind = dl.error_kind.as_str(), "Dead-lettered an event.");
        } else {
            tracing::warn!(stream = %dl.stream_key, seq = dl.seq, error = %dl.error, kind = dl.error_kind.as_str(), "A retried event failed again; its dead letter's attempts grew.");
        }
    }
    if setup.policy == PoisonPolicy::Skip {
        m.events_skipped(SkipReason::PoisonSkipped)
            .inc_by(outcome.dead_lettered.len() as u64);
    }
    for key in &outcome.newly_parked {
        tracing::warn!(stream = %key, "Parked stream.");
    }
    if upto > Position::START {
        m.projection_checkpoint(setup.partition)
            .set(upto.global_position);
        setup.state.partitions[setup.partition]
            .checkpoint
            .store(upto.global_position, Ordering::Relaxed);
    }
    m.batch_duration_seconds.observe(took.as_secs_f64());
    m.batch_size.observe(size as f64);
}
