//! `/health`, `/health/live`, `/health/ready`: readiness is decided here,
//! from one lag sample at most ~250 ms old (shared by all requests, see
//! `daemon::view`), the probe's verdict on the database and this
//! instance's live actor state.

use std::sync::atomic::Ordering;

use actix_web::{http::StatusCode, web, HttpResponse};
use robson_eventlog::PartitionCoverage;
use serde::Serialize;

use super::HttpContext;
use crate::daemon::state::{Blocker, LagSample};

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub partition: usize,
    /// The instance running the partition (null while nobody does).
    pub owner: Option<String>,
    /// From the sample's snapshot, like `head_position`.
    pub checkpoint: i64,
    /// Events handed to this partition's projector and not yet committed.
    pub lag_events: i64,
    pub state: &'static str,
    pub restarts: u64,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub status: &'static str,
    pub database: &'static str,
    /// When the log figures below were read (one snapshot); null before the
    /// first sample.
    pub sampled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub lag_events: i64,
    pub max_stream_lag: i64,
    pub lag_seconds: f64,
    pub heartbeat_age_seconds: f64,
    pub head_position: i64,
    pub parked_streams: i64,
    pub held_events: i64,
    pub instance: String,
    pub partitions: Vec<PartitionReport>,
    pub partition_coverage: Vec<PartitionCoverage>,
    /// The open transaction holding commit-safe reading back for over 1 s.
    pub blocked_by: Option<Blocker>,
    /// Why the daemon is not ready or degraded (empty when ok).
    pub reasons: Vec<String>,
}

impl HealthReport {
    pub fn ready(&self) -> bool {
        self.status != "down"
    }
}

/// Builds the report from a fresh sample and decides the status (SPEC §4.4).
pub async fn fresh_report(ctx: &HttpContext) -> HealthReport {
    let lag = ctx.view.fresh().await;
    health_report(ctx, lag)
}

/// Builds the report from `lag` and decides the status (SPEC §4.4).
pub fn health_report(ctx: &HttpContext, lag: LagSample) -> HealthReport {
    let s = &ctx.state;
    let owners = s.owners.lock().map(|o| o.clone()).unwrap_or_default();
    let database_up = s.database_up.load(Ordering::Relaxed);
    let heartbeat_age = s.heartbeat_age_seconds();
    let in_flight: i64 = s
        .partitions
        .iter()
        .map(|p| p.in_flight.load(Ordering::Relaxed))
        .sum();
    let stall_limit = (3.0 * ctx.poll_interval.as_secs_f64()).max(10.0);
    let work_pending = lag.lag_events > 0 || in_flight > 0;

    let mut down = Vec::new();
    if !s.started.load(Ordering::Relaxed) {
        down.push("starting: waiting for the database and the checkpoints".to_owned());
    } else if !lag.sampled {
        down.push("starting: lag not measured yet".to_owned());
    }
    if !database_up {
        down.push("database unreachable".to_owned());
    }
    if lag.lag_seconds > ctx.max_lag_seconds {
        down.push(format!(
            "lag {:.1}s above {}s",
            lag.lag_seconds, ctx.max_lag_seconds
        ));
    }
    if lag.lag_events > ctx.max_lag_events {
        down.push(format!(
            "lag {} events above {}",
            lag.lag_events, ctx.max_lag_events
        ));
    }
    if work_pending && heartbeat_age > stall_limit {
        down.push(format!(
            "no cycle completed for {heartbeat_age:.1}s with work pending"
        ));
    }
    let mut degraded = Vec::new();
    if lag.parked_streams > 0 {
        degraded.push(crate::text::count(lag.parked_streams, "parked stream"));
    }
    for c in &lag.coverage {
        if c.months_ahead < 2 {
            let months = crate::text::count(c.months_ahead.into(), "month");
            degraded.push(format!("{} partitioned only {months} ahead", c.table_name));
        }
    }
    let drifted = s.drift.mismatched_streams();
    if drifted > 0 {
        degraded.push(format!(
            "drift: {drifted} streams differ from the log (GET /verify)"
        ));
    }
    let status = if !down.is_empty() {
        "down"
    } else if !degraded.is_empty() {
        "degraded"
    } else {
        "ok"
    };
    down.extend(degraded);
    HealthReport {
        status,
        database: if database_up { "up" } else { "down" },
        sampled_at: lag.sampled_at,
        lag_events: lag.lag_events,
        max_stream_lag: lag.max_stream_lag,
        lag_seconds: lag.lag_seconds,
        heartbeat_age_seconds: heartbeat_age,
        head_position: lag.head_position,
        parked_streams: lag.parked_streams,
        held_events: lag.held_events,
        instance: s.instance.clone(),
        partitions: s
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionReport {
                partition: i,
                owner: owners.get(i).cloned().flatten(),
                checkpoint: lag.checkpoints.get(i).copied().unwrap_or(0),
                lag_events: p.in_flight.load(Ordering::Relaxed),
                state: p.state(),
                restarts: p.restarts.load(Ordering::Relaxed),
            })
            .collect(),
        partition_coverage: lag.coverage,
        blocked_by: lag.blocked_by,
        reasons: down,
    }
}

fn code(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

pub async fn health(ctx: web::Data<HttpContext>) -> HttpResponse {
    let report = fresh_report(&ctx).await;
    HttpResponse::build(code(report.ready())).json(report)
}

pub async fn ready(ctx: web::Data<HttpContext>) -> HttpResponse {
    let report = fresh_report(&ctx).await;
    HttpResponse::build(code(report.ready())).json(serde_json::json!({
        "status": report.status,
        "reasons": report.reasons,
    }))
}

/// Answers while the actor system runs; lag never fails it.
pub async fn live(ctx: web::Data<HttpContext>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "alive",
        "instance": ctx.state.instance,
    }))
}
