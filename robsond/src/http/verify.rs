//! `GET /verify?after=KEY&limit=N`: what the running drift check found
//! (SPEC §4.6): the configuration, the last run (start, end, duration,
//! sample size, streams checked and mismatched) and, paged by stream key,
//! the streams whose last check found a difference with each differing
//! column's live and expected value. Served from memory (the checker's
//! board): no query runs. Bad parameters are 400, checked first.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::error::{self, ApiError};
use super::HttpContext;

#[derive(Debug, Deserialize)]
pub struct Page {
    after: Option<String>,
    limit: Option<i64>,
}

/// Mismatched streams per page at most.
pub const MAX_PAGE: i64 = 1000;

/// `after` is a stream key (empty or absent: from the first); `limit` 1 to
/// 1000, 100 when absent.
pub async fn report(
    ctx: web::Data<HttpContext>,
    q: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let after = q.after.as_deref().filter(|a| !a.is_empty());
    if let Some(after) = after {
        error::stream_key("after", after)?;
    }
    // Range-checked to 1..=1000 above.
    let page = ctx.state.drift.page(after, limit as usize);
    Ok(HttpResponse::Ok().json(page))
}
