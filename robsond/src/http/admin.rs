//! Admin endpoints (SPEC §4.4): parked streams, retry, skip. They answer 404
//! with a message saying so when ROBSON_ADMIN_TOKEN is unset, and need
//! `Authorization: Bearer <token>` (401 otherwise; see `auth`). The token is
//! checked before anything else about the request.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Scope};
use robson_projector::ResumeAction;

use super::auth;
use super::error::{self, ApiError};
use super::HttpContext;

pub fn scope() -> Scope {
    web::scope("/admin")
        .route("/parked", web::get().to(parked))
        .route("/streams/{key}/retry", web::post().to(retry))
        .route("/streams/{key}/skip", web::post().to(skip))
}

async fn parked(ctx: web::Data<HttpContext>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    auth::admin(&ctx, &req)?;
    let list = robson_projector::list_parked(&ctx.pool).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "parked": list })))
}

async fn retry(ctx: web::Data<HttpContext>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    resume(ctx, req, ResumeAction::Retry).await
}

async fn skip(ctx: web::Data<HttpContext>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    resume(ctx, req, ResumeAction::Skip).await
}

async fn resume(
    ctx: web::Data<HttpContext>,
    req: HttpRequest,
    action: ResumeAction,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&ctx, &req)?;
    // Extracted only after the token check, so that nothing about the
    // request is judged for a caller without it.
    let key = web::Path::<String>::extract(&req)
        .await
        .map_err(|err| ApiError::bad_request(err.to_string()))?
        .into_inner();
    error::stream_key("stream key", &key)?;
    let outcome = robson_projector::resume_stream(&ctx.pool, &key, action).await?;
    Ok(HttpResponse::Ok().json(outcome))
}
