//! `GET /streams?after=KEY&limit=N`: per-stream progress, paged by key.
//! Bad parameters are 400 (see `error`), checked before any query runs.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::{self, ApiError};
use super::HttpContext;

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

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct StreamProgress {
    pub stream_key: String,
    pub last_seq: i64,
    pub head_seq: i64,
    pub parked: bool,
}

pub const MAX_PAGE: i64 = 1000;

/// One page of streams in key order.
pub async fn page(
    pool: &sqlx::PgPool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<StreamProgress>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.stream_key, coalesce(p.last_seq, 0) AS last_seq, s.last_seq AS head_seq,
                (p.parked_seq IS NOT NULL) AS parked
           FROM event_streams s
           LEFT JOIN projection_stream_progress p USING (stream_key)
          WHERE s.last_seq > 0 AND ($1::text IS NULL OR s.stream_key > $1)
          ORDER BY s.stream_key
          LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

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
