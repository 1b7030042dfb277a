//! The supervisor actor: starts one supervised projector per partition, the
//! supervised poller that feeds them, and the monitor; on shutdown it stops
//! the poller and drains every projector.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use robson_eventlog::Position;
use robson_projector::PoisonPolicy;
use sqlx::PgPool;

use super::monitor::Monitor;
use super::poller::{Poller, PollerSetup, StopPolling, StopSignal};
use super::projector::{Drain, Projector, ProjectorSetup};
use super::state::DaemonState;
use crate::metrics::Metrics;

/// What the supervisor needs to start the actors.
#[derive(Debug, Clone)]
pub struct SupervisorSetup {
    pub pool: PgPool,
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
    projectors: Vec<Addr<Projector>>,
    poller: Option<Addr<Poller>>,
    monitor: Option<Addr<Monitor>>,
}

impl DaemonSupervisor {
    pub fn new(setup: SupervisorSetup) -> Self {
        DaemonSupervisor {
            setup,
            projectors: Vec::new(),
            poller: None,
            monitor: None,
        }
    }
}

impl Actor for DaemonSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let s = &self.setup;
        let partitions = s.checkpoints.len();
        for (partition, checkpoint) in s.checkpoints.iter().enumerate() {
            let setup = ProjectorSetup {
                partition,
                partitions,
                pool: s.pool.clone(),
                state: s.state.clone(),
                metrics: s.metrics.clone(),
                policy: s.policy,
                batch_size: s.batch_size,
                checkpoint: *checkpoint,
            };
            self.projectors
                .push(actix::Supervisor::start(move |_| Projector::new(setup)));
        }
        let poller = PollerSetup {
            pool: s.pool.clone(),
            projectors: self.projectors.clone(),
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
        s.metrics.partitions_owned.set(partitions as i64);
        tracing::info!(partitions, "Projectors, poller and monitor started.");
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
        let projectors = self.projectors.clone();
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
