//! The monitor actor, which keeps the monthly partitions of the log and the
//! snapshots at least [`MONTHS_AHEAD`] months ahead. (The lag figures it
//! once sampled are `crate::progress::lag`, taken on demand by
//! [`super::view`].)

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use super::state::DaemonState;
use crate::metrics::Metrics;

const MAINTAIN_EVERY: Duration = Duration::from_secs(3600);
/// Partitions created ahead; coverage is `OK` from 2 on.
pub const MONTHS_AHEAD: i32 = 3;

#[derive(Debug)]
pub struct Monitor {
    pub pool: PgPool,
    pub state: Arc<DaemonState>,
    pub metrics: Arc<Metrics>,
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.maintain(ctx);
        ctx.run_interval(MAINTAIN_EVERY, |act, ctx| act.maintain(ctx));
    }
}

impl Monitor {
    fn maintain(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        ctx.spawn(
            async move {
                match robson_eventlog::ensure_partitions(&pool, MONTHS_AHEAD).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(created = n, "Created monthly partitions."),
                    Err(err) => {
                        tracing::warn!(error = %err, "Partition maintenance failed; will retry.")
                    }
                }
            }
            .into_actor(self),
        );
    }
}
