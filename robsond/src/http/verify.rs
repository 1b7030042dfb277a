//! `GET /verify?after=KEY&limit=N`: what the running drift check found
//! (SPEC §4.6): the configuration, the last run (start, end, duration,
//! sample size, streams checked and mismatched) and, paged by stream key,
//! the streams whose last check found a difference with each differing
//! column's live and expected value. Served from memory (the checker's
//! board): no query runs. Values come from events, so it takes the read
//! token like `/streams`; bad parameters are 400, checked first.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::streams::Page;
use super::HttpContext;

/// `after` is a stream key (empty or absent: from the first); `limit` 1 to
/// 1000, 100 when absent.
pub async fn report(
    ctx: web::Data<HttpContext>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::auth::read(&ctx, &req)?;
    let q = web::Query::<Page>::from_query(req.query_string())
        .map_err(|err| ApiError::bad_request(format!("expected ?after=KEY&limit=N: {err}")))?;
    let (after, limit) = q.checked(100)?;
    // Range-checked to 1..=1000 by `checked`.
    let page = ctx.state.drift.page(after, limit as usize);
    Ok(HttpResponse::Ok().json(page))
}
