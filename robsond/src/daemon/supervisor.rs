//! The supervisor actor: keeps this instance's share of the stream
//! partitions (see [`super::ownership`]), runs one supervised projector per
//! owned partition, the supervised poller that feeds them, and the monitor;
//! on shutdown it stops the poller and drains every projector, then
//! ([`Close`]) ends every actor of the daemon while the runtime still runs,
//! so that no database connection is dropped after it. Every round it also
//! checks the partition layout in the database ([`Ownership::settle_layout`])
//! and, when it is not the one this daemon runs, takes no partition and
//! asks `app::run` to re-create the daemon for it. The projectors are spread
//! over one arbiter (thread) per core; the supervisor, poller and monitor
//! run on the system arbiter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use robson_eventlog::Position;
use robson_projector::PoisonPolicy;
use sqlx::PgPool;

use super::drift::{self, DriftConfig, DriftSetup};
use super::group::Group;
use super::lifecycle::configured_partitions;
use super::monitor::Monitor;
use super::ownership::{Layout, Ownership};
use super::poller::{Poller, PollerSetup, StopPolling, StopSignal};
use super::projector::{Drain, Projector, ProjectorSetup, Retire};
use super::state::DaemonState;
use crate::config::Secret;
use crate::metrics::DbErrorKind;
use crate::metrics::Metrics;
use crate::progress::checkpoint;

/// How often ownership is rebalanced (takeover happens within about this).
pub const REBALANCE_EVERY: Duration = Duration::from_secs(1);

/// The projector of each partition this instance runs (None = not ours).
pub type Routes = Arc<RwLock<Vec<Option<Addr<Projector>>>>>;

/// What the supervisor needs to start the actors.
#[derive(Debug, Clone)]
pub struct SupervisorSetup {
    pub pool: PgPool,
    /// For the coordination session (advisory locks).
    pub database_url: Secret<String>,
    pub state: Arc<DaemonState>,
    pub metrics: Arc<Metrics>,
    pub policy: PoisonPolicy,
    pub batch_size: usize,
    pub poll_interval: Duration,
    /// One per partition, from `projection_checkpoints`.
    pub checkpoints: Vec<Position>,
    /// Drift detection (see [`super::drift`]).
    pub drift: DriftConfig,
}

#[derive(Debug)]
pub struct DaemonSupervisor {
    setup: SupervisorSetup,
    routes: Routes,
    ownership: Option<Arc<tokio::sync::Mutex<Ownership>>>,
    poller: Option<Addr<Poller>>,
    monitor: Option<Addr<Monitor>>,
    /// Threads the projectors run on, partition p on `p % len`.
    arbiters: Vec<Arbiter>,
    /// Projectors started and not yet stopped for good, and a handle on
    /// each that does not keep it alive (a supervised actor with a live
    /// address is restarted when it stops).
    live_projectors: Arc<AtomicUsize>,
    started_projectors: Vec<actix::WeakAddr<Projector>>,
    /// The database holds another layout: no more rounds.
    adopting: bool,
    /// Where the projectors commit their small batches together (None with
    /// one partition: nothing to group).
    group: Option<Arc<Group>>,
}

/// Threads for the projectors: one per core, at most one per partition. A
/// batch's decoding, folding and encoding is CPU work; on one thread the
/// projectors queue behind each other between their statements, which keeps
/// their transactions open longer (measured in docs/performance.md).
fn projector_threads(partitions: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.clamp(1, partitions.max(1))
}

impl DaemonSupervisor {
    pub fn new(setup: SupervisorSetup) -> Self {
        let partitions = setup.checkpoints.len();
        let group = (partitions > 1).then(|| {
            Arc::new(Group::new(
                setup.pool.clone(),
                setup.state.clone(),
                setup.policy,
                partitions,
                setup.batch_size,
                projector_threads(partitions),
            ))
        });
        DaemonSupervisor {
            group,
            setup,
            routes: Arc::new(RwLock::new(vec![None; partitions])),
            ownership: None,
            poller: None,
            monitor: None,
            arbiters: (0..projector_threads(partitions))
                .map(|_| Arbiter::new())
                .collect(),
            live_projectors: Arc::new(AtomicUsize::new(0)),
            started_projectors: Vec::new(),
            adopting: false,
        }
    }

    fn partitions(&self) -> usize {
        self.setup.checkpoints.len()
    }

    fn running(&self) -> Vec<usize> {
        self.routes.read().map_or_else(
            |_| Vec::new(),
            |r| {
                r.iter()
                    .enumerate()
                    .filter(|(_, a)| a.is_some())
                    .map(|(p, _)| p)
                    .collect()
            },
        )
    }

    fn start_projector(&mut self, partition: usize, checkpoint: Position) {
        let s = &self.setup;
        let setup = ProjectorSetup {
            partition,
            partitions: s.checkpoints.len(),
            pool: s.pool.clone(),
            state: s.state.clone(),
            metrics: s.metrics.clone(),
            policy: s.policy,
            batch_size: s.batch_size,
            checkpoint,
            live: self.live_projectors.clone(),
            group: self.group.clone(),
        };
        self.live_projectors.fetch_add(1, Ordering::SeqCst);
        let arbiter = &self.arbiters[partition % self.arbiters.len()];
        let addr =
            actix::Supervisor::start_in_arbiter(&arbiter.handle(), move |_| Projector::new(setup));
        self.started_projectors.push(addr.downgrade());
        let part = &s.state.partitions[partition];
        // A new mailbox: nothing of the poller's waits in it.
        part.queued.store(0, Ordering::Release);
        part.checkpoint
            .store(checkpoint.global_position, Ordering::Relaxed);
        part.beat();
        part.owned.store(true, Ordering::Relaxed);
        if let Ok(mut routes) = self.routes.write() {
            routes[partition] = Some(addr);
        }
        // The poller may be past this checkpoint: make it read again, now.
        s.state.request_rewind(checkpoint);
        s.state.lifecycle.wake_poller();
        tracing::info!(partition, from = %checkpoint, "Took partition.");
    }

    fn take_route(&self, partition: usize) -> Option<Addr<Projector>> {
        self.routes
            .write()
            .ok()
            .and_then(|mut r| r[partition].take())
    }

    /// One ownership round: join if needed, check the layout, rebalance,
    /// start and stop projectors.
    fn rebalance(&mut self, ctx: &mut Context<Self>) {
        if self.adopting {
            return;
        }
        let setup = self.setup.clone();
        let current = self.ownership.clone();
        let partitions = self.partitions();
        let fut = async move {
            let ownership = match current {
                Some(o) => o,
                None => {
                    let url = setup.database_url.expose().clone();
                    let configured = configured_partitions(partitions);
                    let joined =
                        Ownership::join(&url, &setup.state.instance, partitions, configured)
                            .await?;
                    Arc::new(tokio::sync::Mutex::new(joined))
                }
            };
            let mut o = ownership.lock().await;
            if let Layout::Adopt(n) = o.settle_layout().await? {
                drop(o);
                return Ok(Round::Adopt(n, ownership));
            }
            let change = o.rebalance().await?;
            let owners = o.owners().await?;
            let owned = o.owned().clone();
            drop(o);
            let checkpoints = if change.acquired.is_empty() {
                Some(Vec::new())
            } else {
                let mut conn = setup.pool.acquire().await?;
                checkpoint::positions(&mut conn, partitions).await?
            };
            Ok::<_, sqlx::Error>(Round::Work {
                ownership,
                change,
                owned,
                owners,
                checkpoints,
            })
        };
        let life = self.setup.state.clone();
        // A round that waits on the database must not hold the shutdown.
        let fut = async move {
            tokio::select! {
                round = fut => round,
                () = life.lifecycle.stopped() => Ok(Round::Stopped),
            }
        };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(Round::Work {
                ownership,
                change,
                owned,
                owners,
                checkpoints,
            }) => {
                act.ownership = Some(ownership.clone());
                for p in act.running() {
                    if !owned.contains(&p) {
                        // Lost the lock (coordination session lost): stop.
                        act.retire(ctx, p, None);
                    }
                }
                match checkpoints {
                    Some(checkpoints) => {
                        for p in change.acquired {
                            let from = checkpoints.get(p).copied().unwrap_or(Position::START);
                            act.start_projector(p, from);
                        }
                    }
                    // The layout changed since it was settled: start
                    // nothing; the next round adopts the new one.
                    None => tracing::info!("Partition layout changed during the round."),
                }
                for p in change.to_release {
                    act.retire(ctx, p, Some(ownership.clone()));
                }
                let st = &act.setup.state;
                if let Ok(mut o) = st.owners.lock() {
                    *o = owners;
                }
                act.setup
                    .metrics
                    .partitions_owned
                    .set(act.running().len() as i64);
                act.setup.metrics.ownership_rounds.inc();
            }
            Ok(Round::Adopt(stored, ownership)) => {
                act.ownership = Some(ownership);
                act.adopt(ctx, stored);
            }
            Ok(Round::Stopped) => {}
            Err(err) => {
                let kind = match robson_projector::classify(&err) {
                    robson_projector::ErrorClass::Transient => DbErrorKind::Transient,
                    robson_projector::ErrorClass::Permanent => DbErrorKind::Permanent,
                };
                act.setup.metrics.db_errors(kind).inc();
                tracing::warn!(error = %err, "Partition ownership round failed; retrying.");
                // The advisory locks died with the session; join again next round.
                act.ownership = None;
            }
        }));
    }

    /// The database holds a layout of `stored` partitions: take nothing
    /// more, give up the partitions of this layout (their projectors could
    /// not commit anyway) and ask `app::run` to re-create the daemon.
    fn adopt(&mut self, ctx: &mut Context<Self>, stored: usize) {
        let running = self.partitions();
        tracing::warn!(
            running,
            stored,
            configured = configured_partitions(running),
            "The partition layout in the database is not the one this daemon runs: \
             re-creating the daemon for {stored} partitions."
        );
        self.adopting = true;
        for p in self.running() {
            self.retire(ctx, p, self.ownership.clone());
        }
        self.setup.metrics.partitions_owned.set(0);
        self.setup.state.lifecycle.adopt_layout(stored);
    }

    /// Drains a partition's projector, stops it for good, then (when
    /// `release` is given) hands the partition back.
    fn retire(
        &mut self,
        ctx: &mut Context<Self>,
        partition: usize,
        release: Option<Arc<tokio::sync::Mutex<Ownership>>>,
    ) {
        let Some(addr) = self.take_route(partition) else {
            return;
        };
        let state = self.setup.state.clone();
        ctx.spawn(
            async move {
                let _ = addr.send(Drain).await;
                // With no address left the supervisor does not restart it.
                addr.do_send(Retire);
                drop(addr);
                state.partitions[partition]
                    .owned
                    .store(false, Ordering::Relaxed);
                state.partitions[partition].set_state("not owned");
                if let Some(o) = release {
                    if let Err(err) = o.lock().await.release(partition).await {
                        tracing::warn!(partition, error = %err, "Could not release partition.");
                    }
                }
                tracing::info!(partition, "Released partition.");
            }
            .into_actor(self),
        );
    }
}

impl Actor for DaemonSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let s = &self.setup;
        for p in &s.state.partitions {
            p.set_state("not owned");
        }
        let poller = PollerSetup {
            pool: s.pool.clone(),
            routes: self.routes.clone(),
            state: s.state.clone(),
            metrics: s.metrics.clone(),
            batch_size: s.batch_size,
            poll_interval: s.poll_interval,
            start: s
                .checkpoints
                .iter()
                .copied()
                .min()
                .unwrap_or(Position::START),
            stop: Arc::new(StopSignal::default()),
        };
        self.poller = Some(actix::Supervisor::start(move |_| Poller::new(poller)));
        let monitor = Monitor {
            pool: s.pool.clone(),
            state: s.state.clone(),
            metrics: s.metrics.clone(),
        };
        self.monitor = Some(monitor.start());
        // Waits on this thread; each run starts a thread of its own. It
        // ends at the stop signal.
        actix::spawn(drift::run(DriftSetup {
            database_url: s.database_url.clone(),
            config: s.drift,
            state: s.state.clone(),
            metrics: s.metrics.clone(),
        }));
        tracing::info!(partitions = s.checkpoints.len(), "Supervisor started.");
        self.rebalance(ctx);
        ctx.run_interval(REBALANCE_EVERY, |act, ctx| {
            if !act.setup.state.shutting_down.load(Ordering::Relaxed) {
                act.rebalance(ctx);
            }
        });
    }
}

/// What one ownership round found.
enum Round {
    Work {
        ownership: Arc<tokio::sync::Mutex<Ownership>>,
        change: super::ownership::Reassignment,
        owned: std::collections::BTreeSet<usize>,
        owners: Vec<Option<String>>,
        /// None: the stored layout changed after it was settled.
        checkpoints: Option<Vec<Position>>,
    },
    Adopt(usize, Arc<tokio::sync::Mutex<Ownership>>),
    /// The daemon is stopping: the round was given up.
    Stopped,
}

/// Stop reading, let every projector commit what it holds, then answer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for DaemonSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.setup
            .state
            .shutting_down
            .store(true, Ordering::Relaxed);
        // Ends every backoff and restart pause at once.
        self.setup.state.lifecycle.stop();
        let poller = self.poller.clone();
        let projectors: Vec<Addr<Projector>> = self
            .routes
            .read()
            .map(|r| r.iter().flatten().cloned().collect())
            .unwrap_or_default();
        Box::pin(async move {
            if let Some(p) = poller {
                let _ = p.send(StopPolling).await;
            }
            // Drain is answered after every batch queued before it.
            let drains = projectors.iter().map(|p| p.send(Drain));
            futures::future::join_all(drains).await;
        })
    }
}

/// How long [`Close`] waits for the projectors to stop before leaving their
/// threads alone (they then end with the process).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How long [`Close`] waits, once the projectors have stopped, for the
/// connections they released to be back in the pool before it stops their
/// threads: sqlx hands a released connection back on a task of the
/// releasing thread's runtime, after a ping, and a thread stopped before
/// that task ends logs "error occurred while testing the connection
/// on-release … being shutdown" (seen in about one daemon stop out of ten
/// under 2,000 events/s). A connection something else still holds (an HTTP
/// request waiting on a dead database) makes a stop wait the whole of it.
const RETURN_WAIT: Duration = Duration::from_millis(500);

/// After [`Shutdown`] (drained or not): abandon any database work still
/// running, stop every actor of the daemon — projectors and their threads,
/// poller, monitor, this supervisor — and end the coordination session,
/// all while the runtime runs, so no connection is dropped outside it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close;

/// Stops an actor for good (sent with every address dropped after it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Terminate;

impl Handler<Terminate> for Monitor {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Terminate> for Poller {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Close> for DaemonSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Close, _: &mut Self::Context) -> Self::Result {
        let state = self.setup.state.clone();
        state.shutting_down.store(true, Ordering::Relaxed);
        state.lifecycle.abort();
        self.adopting = true;
        if let Ok(mut routes) = self.routes.write() {
            routes.iter_mut().for_each(|r| *r = None);
        }
        for weak in self.started_projectors.drain(..) {
            if let Some(addr) = weak.upgrade() {
                // Dropped at once: with no address left it is not restarted.
                addr.do_send(Retire);
            }
        }
        if let Some(poller) = self.poller.take() {
            poller.do_send(Terminate);
        }
        if let Some(monitor) = self.monitor.take() {
            monitor.do_send(Terminate);
        }
        let ownership = self.ownership.take();
        let live = self.live_projectors.clone();
        let pool = self.setup.pool.clone();
        let fut = async move {
            if let Some(o) = ownership {
                match Arc::try_unwrap(o) {
                    Ok(o) => {
                        if let Err(err) = o.into_inner().close().await {
                            tracing::debug!(error = %err, "Coordination session ended uncleanly.");
                        }
                    }
                    // A release still running holds it; dropping our handle
                    // ends the session (a plain connection) when that ends.
                    Err(o) => drop(o),
                }
            }
            let started = Instant::now();
            while live.load(Ordering::SeqCst) > 0 && started.elapsed() < CLOSE_WAIT {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let all_stopped = live.load(Ordering::SeqCst) == 0;
            let returning = Instant::now();
            while all_stopped
                && (pool.size() as usize) > pool.num_idle()
                && returning.elapsed() < RETURN_WAIT
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            all_stopped
        };
        Box::pin(fut.into_actor(self).map(|all_stopped, act, ctx| {
            if all_stopped {
                // Nothing holds a connection on them any more (see
                // RETURN_WAIT).
                for arbiter in &act.arbiters {
                    arbiter.stop();
                }
            } else {
                tracing::warn!(
                    "Some projectors did not stop in time; their threads end with the process."
                );
            }
            ctx.stop();
        }))
    }
}
