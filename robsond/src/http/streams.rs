//! `GET /streams?after=KEY&limit=N`: per-stream progress, paged by key.
//! Bad parameters are 400 (see `error`), checked before any query runs.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::{self, ApiError};
use super::HttpContext;
use crate::progress::streams::page;

/// `?after=KEY&limit=N`, as `/streams` and `/console/parked` take it.
#[derive(Debug, Deserialize)]
pub struct Page {
    after: Option<String>,
    limit: Option<i64>,
}

impl Page {
    /// `after` (a stream key; empty or absent: from the first stream) and
    /// `limit` (1 to 1000, `default` when absent), checked before any
    /// query runs.
    pub fn checked(&self, default: i64) -> Result<(Option<&str>, i64), ApiError> {
        let limit = self.limit.unwrap_or(default);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let after = self.after.as_deref().filter(|a| !a.is_empty());
        if let Some(after) = after {
            error::stream_key("after", after)?;
        }
        Ok((after, limit))
    }
}

/// The `after` of the next page: the last key of a full page, else none.
pub fn next_after<T>(items: &[T], limit: i64, key: impl Fn(&T) -> &str) -> Option<String> {
    if items.len() as i64 == limit {
        items.last().map(|i| key(i).to_owned())
    } else {
        None
    }
}

pub const MAX_PAGE: i64 = 1000;

/// `after` is a stream key (empty or absent: from the first stream); `limit`
/// 1 to 1000, 100 when absent.
pub async fn list(ctx: web::Data<HttpContext>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    super::auth::read(&ctx, &req)?;
    let q = web::Query::<Page>::from_query(req.query_string())
        .map_err(|err| ApiError::bad_request(format!("expected ?after=KEY&limit=N: {err}")))?;
    let (after, limit) = q.checked(100)?;
    let streams = page(&ctx.pool, after, limit).await?;
    let next_after = next_after(&streams, limit, |s| &s.stream_key);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "streams": streams,
        "next_after": next_after,
    })))
}
