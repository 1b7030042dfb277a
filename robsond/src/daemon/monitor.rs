//! The monitor actor: samples the log's progress for `/health` and
//! `/metrics` (lag, held events, parked streams, head position) every
//! [`SAMPLE_EVERY`], and keeps the monthly partitions of the log and the
//! snapshots at least [`MONTHS_AHEAD`] months ahead.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use robson_eventlog::Position;
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
/// lag (each event read and its stream's progress looked up), and a sample
/// every second must stay cheap during a long catch-up. When the positions
/// say more events than this wait after the oldest checkpoint, lag_events is
/// that estimate (it errs high: events already applied by partitions ahead
/// of the oldest, and gaps left by rolled-back appends, are counted too) and
/// nothing is counted. It equals the default readiness threshold
/// (`ROBSON_HEALTH_MAX_LAG_EVENTS`), so readiness is decided on an exact
/// count whenever the lag is near it.
pub const LAG_COUNT_CAP: i64 = 10_000;

/// Events after the oldest checkpoint whose streams make up max_stream_lag
/// while the lag is estimated.
const STREAM_LAG_SAMPLE: i64 = 1_000;

/// Reads the lag figures of SPEC §4.4 from the database. Every query costs in
/// proportion to the lag (or the parked streams), bounded by
/// [`LAG_COUNT_CAP`], never to the size of the log, so sampling is cheap
/// whatever the history or the backlog.
///
/// - lag_events: committed events after the oldest partition checkpoint
///   that their stream's progress has not reached, including those the
///   poller cannot read yet because an older transaction is still open (a
///   long writer shows as growing lag); parked streams' events are held,
///   counted apart; exact up to [`LAG_COUNT_CAP`], estimated from positions
///   beyond;
/// - lag_seconds: the age of the oldest of those events;
/// - held_events: head seq − last seq of the parked streams;
/// - max_stream_lag: over the parked streams and the streams of the events
///   after the oldest checkpoint (the first [`STREAM_LAG_SAMPLE`] of them
///   while the lag is estimated).
pub async fn sample(pool: &PgPool) -> Result<LagSample, sqlx::Error> {
    let oldest = super::checkpoint::load(pool)
        .await?
        .into_iter()
        .map(|(_, _, checkpoint, _)| checkpoint)
        .min()
        .unwrap_or(Position::START);
    let head_position = robson_eventlog::head_position(pool).await?;
    let (tx_id, position) = (oldest.tx_id, oldest.global_position);
    let estimate = head_position - position;
    // Count exactly only when the positions allow a small lag; `after` is
    // read up to the cap, so out-of-order commits cannot make it unbounded.
    let (scan, count) = if estimate <= LAG_COUNT_CAP {
        (LAG_COUNT_CAP, true)
    } else {
        (STREAM_LAG_SAMPLE, false)
    };
    // Events read, unread among them, ages of the oldest unread and of the
    // newest read (seconds), largest stream lag among them.
    type Counted = (i64, i64, f64, f64, i64);
    let (after, unread, unread_age, after_age, unread_max): Counted = sqlx::query_as(
        r#"
        WITH after AS (
            SELECT e.stream_key, e.seq, e.ingested_at FROM event_log e
             WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2)
             ORDER BY e.tx_id, e.global_position
             LIMIT $3),
        unread AS (
            -- Partitions that are ahead have applied some of these already;
            -- parked streams' events are held, counted apart.
            SELECT a.stream_key, a.ingested_at FROM after a
              LEFT JOIN projection_stream_progress p USING (stream_key)
             WHERE a.seq > coalesce(p.last_seq, 0) AND p.parked_seq IS NULL)
        SELECT (SELECT count(*) FROM after)::int8,
               (SELECT count(*) FROM unread)::int8,
               coalesce((SELECT extract(epoch FROM now() - min(ingested_at)) FROM unread), 0)::float8,
               coalesce((SELECT extract(epoch FROM now() - max(ingested_at)) FROM after), 0)::float8,
               coalesce((SELECT max(s.last_seq - coalesce(p.last_seq, 0))
                           FROM (SELECT DISTINCT stream_key FROM unread) u
                           JOIN event_streams s USING (stream_key)
                           LEFT JOIN projection_stream_progress p USING (stream_key)), 0)::int8
        "#,
    )
    .bind(tx_id.to_string())
    .bind(position)
    .bind(scan)
    .fetch_one(pool)
    .await?;
    let (lag_events, lag_seconds) = if count && after < scan {
        (unread, unread_age)
    } else if unread == 0 {
        // Every sampled event is applied (partitions ahead): the oldest
        // unprojected one comes later, so it is at most as old as they are.
        (estimate.max(after), after_age)
    } else {
        (estimate.max(after), unread_age)
    };
    let (held_events, parked_streams, parked_max): (i64, i64, i64) = sqlx::query_as(
        r#"
        SELECT coalesce(sum(behind), 0)::int8, count(*)::int8, coalesce(max(behind), 0)::int8
          FROM (SELECT (SELECT s.last_seq FROM event_streams s
                         WHERE s.stream_key = p.stream_key) - p.last_seq AS behind
                  FROM projection_stream_progress p
                 WHERE p.parked_seq IS NOT NULL) parked
        "#,
    )
    .fetch_one(pool)
    .await?;
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
