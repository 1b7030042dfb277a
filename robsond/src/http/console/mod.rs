//! The operator console (SPEC §4.4, `GET /`): one page, its scripts and its
//! style sheet, embedded in the binary (no CDN, no build step, works
//! offline), and the read-only JSON it refreshes from every 2 s besides
//! `/health`: `/console/overview` (instances, last snapshot, whether the
//! admin endpoints are on), `/console/trend` (the last 15 minutes, from
//! `daemon::trend`) and `/console/parked` (parked streams with their dead
//! letters, paged). None needs the admin token; Retry and Skip call the
//! admin endpoints with the token the operator types into the page.
//!
//! The page renders every value from events or errors as text (DOM nodes
//! built with `textContent`), and is served with a Content-Security-Policy
//! that allows only this daemon's own script and styles: no inline script,
//! no other origin.

use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{web, HttpResponse, Scope};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::streams::{next_after, Page};
use super::HttpContext;
use crate::daemon::ownership::{self, Member};
use crate::daemon::trend;

const INDEX_HTML: &str = include_str!("index.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The page's files under `/console/`: name, content type, content. The
/// script is ES modules (`console.js` imports the others), so each file
/// stays about one part of the page.
const FILES: &[(&str, &str, &str)] = &[
    ("console.js", JAVASCRIPT, include_str!("console.js")),
    ("dom.js", JAVASCRIPT, include_str!("dom.js")),
    ("chart.js", JAVASCRIPT, include_str!("chart.js")),
    ("parked.js", JAVASCRIPT, include_str!("parked.js")),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console.css"),
    ),
];

/// Only this origin's script, styles and JSON; nothing inline, no frames,
/// no forms posted anywhere. `data:` images: the page's empty favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Parked streams per page when the page does not say.
const PARKED_PAGE: i64 = 20;

/// `GET /` and its files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
}

/// `/console/*`: the page's files and its JSON.
pub fn scope() -> Scope {
    web::scope("/console")
        .route("/overview", web::get().to(overview))
        .route("/trend", web::get().to(trend_json))
        .route("/parked", web::get().to(parked))
        // Last: the JSON routes above take their names first.
        .route("/{file}", web::get().to(file))
}

/// A response with the console's security headers.
fn page_file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // The files change only with the binary; revalidating is cheap.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    page_file("text/html; charset=utf-8", INDEX_HTML)
}

async fn file(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name.as_str())
        .map(|(_, content_type, body)| page_file(content_type, body))
        .ok_or_else(|| ApiError::NotFound("no such endpoint".to_owned()))
}

/// JSON that is never cached (it is the state of the moment).
fn fresh_json(body: impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .json(body)
}

#[derive(Debug, Serialize)]
struct Overview {
    instance: String,
    /// Retry and Skip are possible (ROBSON_ADMIN_TOKEN is set); the token
    /// itself is never sent.
    admin_enabled: bool,
    /// The partition layout this instance runs.
    partitions: usize,
    /// Every live instance on the database; null when it could not be read.
    instances: Option<Vec<Member>>,
    /// The newest snapshot; null when there is none or it could not be read.
    last_snapshot: Option<LastSnapshot>,
    /// The drift check's state and last run, without stream keys (those
    /// are in `GET /verify`, which the read token guards).
    verify: crate::daemon::drift::board::BoardPage,
    /// What could not be read, and why (empty when everything was).
    unavailable: Vec<String>,
}

#[derive(Debug, Serialize)]
struct LastSnapshot {
    snapshot_id: uuid::Uuid,
    taken_at: chrono::DateTime<chrono::Utc>,
    /// The global position the image corresponds to.
    position: i64,
    rows: i64,
}

/// `GET /console/overview`. Answers 200 even while the database does not
/// (what it could not read is null and named in `unavailable`), so that the
/// page keeps its bearings; a database that is down is not asked.
async fn overview(ctx: web::Data<HttpContext>) -> HttpResponse {
    let mut unavailable = Vec::new();
    let reachable =
        ctx.state.started.load(Ordering::Relaxed) && ctx.state.database_up.load(Ordering::Relaxed);
    let (mut instances, mut last_snapshot) = (None, None);
    if reachable {
        match ownership::live_members(&ctx.pool).await {
            Ok(m) => instances = Some(m),
            Err(err) => unavailable.push(problem("instances", err)),
        }
        match crate::replay::snapshot::latest(&ctx.pool).await {
            Ok(s) => {
                last_snapshot = s.map(|s| LastSnapshot {
                    snapshot_id: s.snapshot_id,
                    taken_at: s.taken_at,
                    position: s.position.global_position,
                    rows: s.row_counts.values().sum(),
                })
            }
            Err(err) => unavailable.push(problem("last snapshot", err)),
        }
    } else {
        unavailable.push("instances and last snapshot: the database is not reachable".to_owned());
    }
    fresh_json(Overview {
        instance: ctx.state.instance.clone(),
        admin_enabled: ctx.admin_token.is_some(),
        partitions: ctx.state.partitions.len(),
        instances,
        last_snapshot,
        // No mismatch listed: a page of none carries the counts only.
        verify: ctx.state.drift.page(None, 0),
        unavailable,
    })
}

/// What the page says about a part it could not read; the error itself is
/// logged (it may name tables, never a secret, but the page is unauthenticated).
fn problem(what: &str, err: sqlx::Error) -> String {
    tracing::warn!(error = %err, part = what, "The console could not read a part of its overview.");
    format!("{what}: could not be read (see the daemon's log)")
}

#[derive(Debug, Deserialize)]
struct TrendQuery {
    /// Only samples taken after this (ms since the Unix epoch).
    since: Option<i64>,
}

/// `GET /console/trend?since=MS`: at most [`trend::CAPACITY`] samples.
async fn trend_json(ctx: web::Data<HttpContext>, q: web::Query<TrendQuery>) -> HttpResponse {
    fresh_json(serde_json::json!({
        "interval_ms": trend::INTERVAL.as_millis() as u64,
        "capacity": trend::CAPACITY,
        "now": crate::daemon::state::now_millis(),
        "samples": ctx.trend.since(q.since.unwrap_or(i64::MIN)),
    }))
}

/// `GET /console/parked?after=KEY&limit=N` (1 to 1000, 20 when absent): the
/// parked streams after KEY with their dead letters; `total` is the count
/// of the last lag sample.
async fn parked(
    ctx: web::Data<HttpContext>,
    q: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = q.checked(PARKED_PAGE)?;
    let list = robson_projector::list_parked_page(&ctx.pool, after, Some(limit)).await?;
    let next = next_after(&list, limit, |p| &p.stream_key);
    Ok(fresh_json(serde_json::json!({
        "parked": list,
        "next_after": next,
        "total": ctx.state.lag().parked_streams,
    })))
}
