//! The monitor actor: samples the log's progress for `/health` and
//! `/metrics` (lag, held events, parked streams, head position) every
//! [`SAMPLE_EVERY`], and keeps the monthly partitions of the log and the
//! snapshots at least [`MONTHS_AHEAD`] months ahead.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use super::state::{DaemonState, LagSample};
use crate::metrics::{CoverageTable, DbErrorKind, Metrics};

pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
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
        self.sample_now(ctx);
        ctx.run_interval(SAMPLE_EVERY, |act, ctx| act.sample_now(ctx));
    }
}

impl Monitor {
    fn sample_now(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        // One sample at a time: a slow database must not pile them up.
        ctx.wait(
            async move { sample(&pool).await }
                .into_actor(self)
                .map(|res, act, _| act.publish(res)),
        );
    }

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

    fn publish(&mut self, res: Result<LagSample, sqlx::Error>) {
        let m = &self.metrics;
        match res {
            Ok(s) => {
                self.state.set_database_up(true);
                m.projection_lag_events.set(s.lag_events);
                m.projection_lag_seconds.set(s.lag_seconds);
                m.eventlog_head_position.set(s.head_position);
                m.parked_streams.set(s.parked_streams);
                m.held_events.set(s.held_events);
                for c in &s.coverage {
                    let table = match c.table_name.as_str() {
                        "event_log" => CoverageTable::EventLog,
                        _ => CoverageTable::Snapshots,
                    };
                    m.partition_coverage_months(table)
                        .set(i64::from(c.months_ahead));
                }
                if let Ok(mut g) = self.state.lag.lock() {
                    *g = s;
                }
            }
            Err(_)
                if self
                    .state
                    .shutting_down
                    .load(std::sync::atomic::Ordering::Relaxed) => {}
            Err(err) => {
                self.state.set_database_up(false);
                m.db_errors(DbErrorKind::Transient).inc();
                tracing::warn!(error = %err, "Could not sample lag: database unreachable?");
            }
        }
        m.database_up.set(i64::from(
            self.state
                .database_up
                .load(std::sync::atomic::Ordering::Relaxed),
        ));
        m.heartbeat_age_seconds
            .set(self.state.heartbeat_age_seconds());
    }
}

/// Events counted one by one at most: counting costs in proportion to the
/// lag, and a sample every second must stay cheap during a long catch-up.
/// Beyond it lag_events is estimated from positions (an upper bound: gaps
/// left by rolled-back appends are counted too).
pub const LAG_COUNT_CAP: i64 = 100_000;

/// Reads the lag figures of SPEC §4.4 from the database. Every query costs in
/// proportion to the lag (or the parked streams), not to the size of the
/// log, so sampling a caught-up daemon is cheap whatever its history.
///
/// - lag_events: committed events after the oldest partition checkpoint
///   that their stream's progress has not reached, including those the
///   poller cannot read yet because an older transaction is still open (a
///   long writer shows as growing lag); parked streams' events are held,
///   counted up to [`LAG_COUNT_CAP`] and estimated from positions beyond;
/// - held_events: head seq − last seq of the parked streams;
/// - max_stream_lag: over the parked streams and the streams of the events
///   after the oldest checkpoint.
pub async fn sample(pool: &PgPool) -> Result<LagSample, sqlx::Error> {
    let (lag_events, lag_seconds, unread_max): (i64, f64, i64) = sqlx::query_as(
        r#"
        WITH c AS (
            SELECT coalesce((SELECT tx_id FROM projection_checkpoints
                              ORDER BY tx_id, global_position LIMIT 1), 0) AS tx_id,
                   coalesce((SELECT global_position FROM projection_checkpoints
                              ORDER BY tx_id, global_position LIMIT 1), 0) AS global_position),
        after AS (
            SELECT e.stream_key, e.seq, e.ingested_at FROM event_log e, c
             WHERE (e.tx_id, e.global_position) > (c.tx_id::text::xid8, c.global_position)
             ORDER BY e.tx_id, e.global_position
             LIMIT $1),
        unread AS (
            -- Partitions that are ahead have applied some of these already;
            -- parked streams' events are held, counted apart.
            SELECT a.stream_key, a.ingested_at FROM after a
              LEFT JOIN projection_stream_progress p USING (stream_key)
             WHERE a.seq > coalesce(p.last_seq, 0) AND p.parked_seq IS NULL)
        SELECT CASE WHEN (SELECT count(*) FROM after) < $1 THEN (SELECT count(*) FROM unread)
                    ELSE greatest($1, (SELECT coalesce(max(global_position), 0) FROM event_log)
                                      - (SELECT global_position FROM c)) END::int8,
               coalesce((SELECT extract(epoch FROM now() - min(ingested_at)) FROM unread), 0)::float8,
               coalesce((SELECT max(s.last_seq - coalesce(p.last_seq, 0))
                           FROM (SELECT DISTINCT stream_key FROM unread LIMIT 10000) u
                           JOIN event_streams s USING (stream_key)
                           LEFT JOIN projection_stream_progress p USING (stream_key)), 0)::int8
        "#,
    )
    .bind(LAG_COUNT_CAP)
    .fetch_one(pool)
    .await?;
    let (held_events, parked_streams, parked_max): (i64, i64, i64) = sqlx::query_as(
        r#"
        SELECT coalesce(sum(s.last_seq - p.last_seq), 0)::int8, count(*)::int8,
               coalesce(max(s.last_seq - p.last_seq), 0)::int8
          FROM projection_stream_progress p
          JOIN event_streams s USING (stream_key)
         WHERE p.parked_seq IS NOT NULL
        "#,
    )
    .fetch_one(pool)
    .await?;
    let head_position = robson_eventlog::head_position(pool).await?;
    let coverage = robson_eventlog::partition_coverage(pool).await?;
    Ok(LagSample {
        sampled: true,
        lag_events,
        held_events,
        max_stream_lag: unread_max.max(parked_max),
        lag_seconds: lag_seconds.max(0.0),
        head_position,
        parked_streams,
        coverage,
    })
}
