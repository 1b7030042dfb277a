//! The supervisor actor: keeps this instance's share of the stream
//! partitions (see [`super::ownership`]), runs one supervised projector per
//! owned partition, the supervised poller that feeds them, and the monitor;
//! on shutdown it stops the poller and drains every projector. The
//! projectors are spread over one arbiter (thread) per core; the supervisor,
//! poller and monitor run on the system arbiter.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use robson_eventlog::Position;
use robson_projector::PoisonPolicy;
use sqlx::PgPool;

use super::checkpoint;
use super::monitor::Monitor;
use super::ownership::Ownership;
use super::poller::{Poller, PollerSetup, StopPolling, StopSignal};
use super::projector::{Drain, Projector, ProjectorSetup, Retire};
use super::state::DaemonState;
use crate::config::Secret;
use crate::metrics::Metrics;

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
        DaemonSupervisor {
            setup,
            routes: Arc::new(RwLock::new(vec![None; partitions])),
            ownership: None,
            poller: None,
            monitor: None,
            arbiters: (0..projector_threads(partitions))
                .map(|_| Arbiter::new())
                .collect(),
        }
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
        };
        let arbiter = &self.arbiters[partition % self.arbiters.len()];
        let addr =
            actix::Supervisor::start_in_arbiter(&arbiter.handle(), move |_| Projector::new(setup));
        let part = &s.state.partitions[partition];
        part.checkpoint
            .store(checkpoint.global_position, Ordering::Relaxed);
        part.beat();
        part.owned.store(true, Ordering::Relaxed);
        if let Ok(mut routes) = self.routes.write() {
            routes[partition] = Some(addr);
        }
        // The poller may be past this checkpoint: make it read again.
        s.state.request_rewind(checkpoint);
        tracing::info!(partition, from = %checkpoint, "Took partition.");
    }

    fn take_route(&self, partition: usize) -> Option<Addr<Projector>> {
        self.routes
            .write()
            .ok()
            .and_then(|mut r| r[partition].take())
    }

    /// One ownership round: join if needed, rebalance, start and stop projectors.
    fn rebalance(&mut self, ctx: &mut Context<Self>) {
        let setup = self.setup.clone();
        let current = self.ownership.clone();
        let fut = async move {
            let ownership = match current {
                Some(o) => o,
                None => {
                    let url = setup.database_url.expose().clone();
                    let joined =
                        Ownership::join(&url, &setup.state.instance, setup.checkpoints.len())
                            .await?;
                    Arc::new(tokio::sync::Mutex::new(joined))
                }
            };
            let (plan, owned, owners) = {
                let mut o = ownership.lock().await;
                let plan = o.rebalance().await?;
                let owners = o.owners().await?;
                (plan, o.owned().clone(), owners)
            };
            let checkpoints = if plan.acquired.is_empty() {
                Vec::new()
            } else {
                checkpoint::load(&setup.pool).await?
            };
            Ok::<_, sqlx::Error>((ownership, plan, owned, owners, checkpoints))
        };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((ownership, plan, owned, owners, checkpoints)) => {
                act.ownership = Some(ownership.clone());
                for p in act.running() {
                    if !owned.contains(&p) {
                        // Lost the lock (coordination session lost): stop.
                        act.retire(ctx, p, None);
                    }
                }
                for p in plan.acquired {
                    let from = checkpoints.get(p).map_or(Position::START, |c| c.2);
                    act.start_projector(p, from);
                }
                for p in plan.to_release {
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
            }
            Err(err) => {
                tracing::warn!(error = %err, "Partition ownership round failed; retrying.");
                // The advisory locks died with the session; join again next round.
                act.ownership = None;
            }
        }));
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
        tracing::info!(partitions = s.checkpoints.len(), "Supervisor started.");
        self.rebalance(ctx);
        ctx.run_interval(REBALANCE_EVERY, |act, ctx| {
            if !act.setup.state.shutting_down.load(Ordering::Relaxed) {
                act.rebalance(ctx);
            }
        });
    }
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
