//! `GET /wait?stream=KEY&seq=N&timeout_ms=T` (SPEC §4.4, read-your-writes):
//! answers as soon as the stream's progress reaches seq N (200), or when it
//! is parked at or before N (409, with the dead letter), or after T ms
//! (504; T defaults to 5,000 and is capped at 30,000). The stream's
//! progress is read once when a waiter arrives (batched with the others
//! arriving meanwhile); then the projectors' commits wake it
//! (`daemon::waiters`). Beyond `MAX_WAITERS` at once: 503.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use serde::Deserialize;
use serde_json::json;

use super::error::{self, ApiError};
use super::HttpContext;
use crate::daemon::waiters::{Progress, Refused};

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const MAX_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Deserialize)]
struct Params {
    stream: String,
    seq: i64,
    timeout_ms: Option<u64>,
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    ApiError::bad_request(message).error_response()
}

pub async fn wait(ctx: web::Data<HttpContext>, req: HttpRequest) -> HttpResponse {
    if let Err(err) = super::auth::read(&ctx, &req) {
        return err.error_response();
    }
    let params = match web::Query::<Params>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(err) => {
            return bad_request(format!("expected ?stream=KEY&seq=N[&timeout_ms=T]: {err}"))
        }
    };
    let key = params.stream.as_str();
    if let Err(err) = error::stream_key("stream", key) {
        return err.error_response();
    }
    if params.seq < 1 {
        return bad_request("seq must be 1 or more");
    }
    let timeout = std::time::Duration::from_millis(
        params
            .timeout_ms
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .min(MAX_TIMEOUT_MS),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut wait = match ctx.state.waiters.register(key, params.seq) {
        Ok(w) => w,
        Err(refused @ Refused::Full) | Err(refused @ Refused::Closed) => {
            return HttpResponse::ServiceUnavailable().json(json!({ "error": refused.to_string() }))
        }
    };
    // The registry reads the stream's progress once, then commits wake it.
    let answer = wait.until(deadline).await;
    let last_seen = wait.last_seen();
    drop(wait);
    match answer {
        Some(Progress::Reached { last_seq }) => {
            HttpResponse::Ok().json(json!({ "projected": true, "last_seq": last_seq }))
        }
        Some(Progress::Parked {
            last_seq,
            parked_seq,
        }) => parked(&ctx, key, last_seq, parked_seq).await,
        Some(Progress::Closed) => {
            HttpResponse::ServiceUnavailable().json(json!({ "error": "shutting down" }))
        }
        None => HttpResponse::GatewayTimeout().json(json!({
            "projected": false,
            "last_seq": last_seen,
            "error": format!("seq {} not projected within {} ms", params.seq, timeout.as_millis()),
        })),
    }
}

/// 409 with the dead letter that parked the stream.
async fn parked(ctx: &HttpContext, key: &str, last_seq: i64, parked_seq: i64) -> HttpResponse {
    let dead_letter: Result<Option<serde_json::Value>, sqlx::Error> = sqlx::query_scalar(
        "SELECT to_jsonb(d) FROM projection_dead_letters d
          WHERE stream_key = $1 AND seq = $2 ORDER BY failed_at DESC LIMIT 1",
    )
    .bind(key)
    .bind(parked_seq)
    .fetch_optional(&ctx.pool)
    .await;
    match dead_letter {
        Ok(dead_letter) => HttpResponse::Conflict().json(json!({
            "projected": false,
            "parked": true,
            "last_seq": last_seq,
            "parked_seq": parked_seq,
            "dead_letter": dead_letter,
        })),
        Err(err) => ApiError::from(err).error_response(),
    }
}
