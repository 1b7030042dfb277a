//! HTTP (SPEC §4.4): health, readiness, metrics, read-your-writes waits,
//! per-stream progress, the drift check's findings and the admin endpoints, served by actix-web in the
//! daemon's actix System. `/health` and `/metrics` share one lag sample per
//! 200 ms (`daemon::view`); `/wait` reads the database once per waiter;
//! `/streams` and the admin endpoints query it. `GET /` is the operator
//! console (`console`), which reads the same state.

mod admin;
pub mod auth;
mod console;
pub mod error;
mod health;
mod streams;
mod verify;
mod wait;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{dev::Server, web, App, HttpResponse, HttpServer};
use sqlx::PgPool;

use crate::config::Secret;
use crate::daemon::state::DaemonState;
use crate::daemon::trend::Trend;
use crate::daemon::view::LagView;
use crate::metrics::Metrics;

pub use health::{fresh_report, health_report, HealthReport};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub state: Arc<DaemonState>,
    pub metrics: Arc<Metrics>,
    pub view: Arc<LagView>,
    /// The console's last 15 minutes of lag and throughput.
    pub trend: Arc<Trend>,
    pub pool: PgPool,
    pub poll_interval: Duration,
    pub max_lag_seconds: f64,
    pub max_lag_events: i64,
    pub admin_token: Option<Secret<String>>,
    /// `None`: `/streams` and `/wait` are open (see `auth::read`).
    pub read_token: Option<Secret<String>>,
}

/// Binds the server (port 0 allowed) and returns it with its bound address.
/// Signals are handled by the daemon, not by actix-web.
pub fn serve(ctx: HttpContext, addr: SocketAddr) -> std::io::Result<(Server, SocketAddr)> {
    let data = web::Data::new(ctx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(error::configure)
            .wrap(error::json_errors())
            .wrap(tracing_actix_web::TracingLogger::default())
            .route("/health", web::get().to(health::health))
            .route("/health/live", web::get().to(health::live))
            .route("/health/ready", web::get().to(health::ready))
            .route("/metrics", web::get().to(metrics))
            .route("/streams", web::get().to(streams::list))
            .route("/wait", web::get().to(wait::wait))
            .route("/verify", web::get().to(verify::report))
            .service(admin::scope())
            .configure(console::configure)
            .service(console::scope())
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

async fn metrics(ctx: web::Data<HttpContext>) -> HttpResponse {
    // The gauges of the lag are set when a sample is published.
    ctx.view.fresh().await;
    ctx.metrics
        .heartbeat_age_seconds
        .set(ctx.state.heartbeat_age_seconds());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(ctx.metrics.render())
}
