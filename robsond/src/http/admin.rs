//! Admin endpoints (SPEC §4.4): parked streams, retry, skip. They exist only
//! when ROBSON_ADMIN_TOKEN is set (404 otherwise) and need
//! `Authorization: Bearer <token>` (401 otherwise), compared in constant time.

use actix_web::{web, HttpRequest, HttpResponse, Scope};
use robson_projector::{ResumeAction, ResumeError};
use subtle::ConstantTimeEq;

use super::HttpContext;

pub fn scope() -> Scope {
    web::scope("/admin")
        .route("/parked", web::get().to(parked))
        .route("/streams/{key}/retry", web::post().to(retry))
        .route("/streams/{key}/skip", web::post().to(skip))
}

/// `None` when authorised, else the response to send.
fn authorise(ctx: &HttpContext, req: &HttpRequest) -> Option<HttpResponse> {
    let Some(token) = ctx.admin_token.as_ref() else {
        return Some(HttpResponse::NotFound().finish());
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = given.as_bytes().ct_eq(token.expose().as_bytes()).into();
    if ok {
        None
    } else {
        Some(
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(serde_json::json!({"error": "missing or invalid bearer token"})),
        )
    }
}

/// Internal errors are logged in full and opaque to the caller.
pub fn internal_error(err: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %err, "HTTP request failed.");
    HttpResponse::InternalServerError().json(serde_json::json!({"error": "internal error"}))
}

async fn parked(ctx: web::Data<HttpContext>, req: HttpRequest) -> HttpResponse {
    if let Some(denied) = authorise(&ctx, &req) {
        return denied;
    }
    match robson_projector::list_parked(&ctx.pool).await {
        Ok(list) => HttpResponse::Ok().json(serde_json::json!({ "parked": list })),
        Err(err) => internal_error(&err),
    }
}

async fn retry(
    ctx: web::Data<HttpContext>,
    req: HttpRequest,
    key: web::Path<String>,
) -> HttpResponse {
    resume(ctx, req, key.into_inner(), ResumeAction::Retry).await
}

async fn skip(
    ctx: web::Data<HttpContext>,
    req: HttpRequest,
    key: web::Path<String>,
) -> HttpResponse {
    resume(ctx, req, key.into_inner(), ResumeAction::Skip).await
}

async fn resume(
    ctx: web::Data<HttpContext>,
    req: HttpRequest,
    key: String,
    action: ResumeAction,
) -> HttpResponse {
    if let Some(denied) = authorise(&ctx, &req) {
        return denied;
    }
    match robson_projector::resume_stream(&ctx.pool, &key, action).await {
        Ok(outcome) => HttpResponse::Ok().json(outcome),
        Err(ResumeError::NotParked(_)) => HttpResponse::Conflict()
            .json(serde_json::json!({"error": format!("stream {key} is not parked")})),
        Err(err) => internal_error(&err),
    }
}
