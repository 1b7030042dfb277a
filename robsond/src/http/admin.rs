//! Admin endpoints (SPEC §4.4): parked streams, retry, skip. They answer 404
//! with a message saying so when ROBSON_ADMIN_TOKEN is unset, and need
//! `Authorization: Bearer <token>` (401 otherwise; the scheme is matched
//! case-insensitively as RFC 7235 says, the token in constant time). The
//! token is checked before anything else about the request.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Scope};
use robson_projector::ResumeAction;
use subtle::ConstantTimeEq;

use super::error::{self, ApiError};
use super::HttpContext;

pub fn scope() -> Scope {
    web::scope("/admin")
        .route("/parked", web::get().to(parked))
        .route("/streams/{key}/retry", web::post().to(retry))
        .route("/streams/{key}/skip", web::post().to(skip))
}

/// `Ok` when the request carries the configured token.
fn authorise(ctx: &HttpContext, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = ctx.admin_token.as_ref() else {
        let off = "admin endpoints are off: set ROBSON_ADMIN_TOKEN to enable them";
        return Err(ApiError::NotFound(off.to_owned()));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    let ok: bool = given.as_bytes().ct_eq(token.expose().as_bytes()).into();
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme
/// is case-insensitive and separated from the token by one or more spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

async fn parked(ctx: web::Data<HttpContext>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorise(&ctx, &req)?;
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
    authorise(&ctx, &req)?;
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

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_matched_case_insensitively() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "bEaReR   tok"] {
            assert_eq!(bearer_token(value), Some("tok"), "{value}");
        }
        for value in ["Basic tok", "Bearertok", "tok", "Token tok", ""] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
