//! The one place where HTTP errors become status codes (SPEC §4.4: client
//! mistakes are 4xx with a JSON `{error}`, 5xx only for the daemon's own
//! failures).
//!
//! Handlers return [`ApiError`]; the extractors' error handlers and the
//! default service are set up by [`configure`], and [`json_errors`] turns
//! whatever else actix answers with an error status (405 from a resource, a
//! body actix refused) into the same JSON shape. A request that the HTTP codec
//! itself refuses before routing (headers beyond its buffer: 431) gets actix's
//! bodiless answer; no application code runs for it.
//!
//! Logging follows the status: 4xx is the client's business and logs nothing
//! above `debug`; 503 (the database is unreachable or failing transiently)
//! logs a warning; 500 logs the full error at `error` and tells the caller
//! only "internal error".

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use robson_projector::{classify, ErrorClass, ResumeError};

/// The longest stream key the log accepts (SPEC §2.2).
pub const MAX_STREAM_KEY_CHARS: usize = 200;

/// Why a request failed, and so which status it gets.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a parameter is malformed or out of range; the message says which
    /// and what is accepted.
    #[error("{0}")]
    BadRequest(String),
    /// 401: the admin token is missing or wrong.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 404: no such stream, endpoint, or the admin endpoints are off.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the stream's state (e.g. not parked).
    #[error("{0}")]
    Conflict(String),
    /// 503: the database is unreachable or failed transiently
    /// ([`robson_projector::classify`]); retrying later can succeed.
    #[error("database unavailable, retry later")]
    Unavailable(#[source] sqlx::Error),
    /// 500: the daemon's own failure; the cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 whose message says which parameter is wrong and what is accepted.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// A 500 for any failure of the daemon's own; `err` is logged, not shown.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match classify(&err) {
            ErrorClass::Transient => ApiError::Unavailable(err),
            ErrorClass::Permanent => ApiError::Internal(err.into()),
        }
    }
}

impl From<ResumeError> for ApiError {
    fn from(err: ResumeError) -> Self {
        match err {
            ResumeError::UnknownStream(key) => ApiError::NotFound(format!(
                "stream {} is unknown to the projector",
                quoted(&key)
            )),
            ResumeError::NotParked(key) => {
                ApiError::Conflict(format!("stream {} is not parked", quoted(&key)))
            }
            ResumeError::Database(err) => err.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        match self {
            ApiError::Internal(err) => {
                tracing::error!(error = %crate::text::error_chain(err), "HTTP request failed.");
            }
            ApiError::Unavailable(err) => {
                tracing::warn!(error = %err, "HTTP request failed: database unavailable.");
            }
            other => {
                tracing::debug!(status = %other.status_code(), error = %other, "Refused an HTTP request.")
            }
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// A stream key from a client, checked before it reaches PostgreSQL (which
/// refuses NUL in text): 1 to 200 characters, no NUL. Other control
/// characters pass: `append_event` refuses them today (SPEC §2.2), but a key
/// written before that rule (or straight into the table) may hold one, and
/// the operator must be able to retry or skip its stream; a key nobody
/// wrote is simply unknown (404). `name` is the parameter, for the message.
pub fn stream_key(name: &str, key: &str) -> Result<(), ApiError> {
    let problem = if key.is_empty() {
        "is empty"
    } else if key.chars().count() > MAX_STREAM_KEY_CHARS {
        "is longer than 200 characters"
    } else if key.contains('\0') {
        "contains a NUL character"
    } else {
        return Ok(());
    };
    Err(ApiError::bad_request(format!(
        "{name} {problem}: a stream key is 1 to {MAX_STREAM_KEY_CHARS} characters without NUL"
    )))
}

/// `key` for a message: quoted with control characters escaped, and cut so
/// that an answer never echoes a huge value.
fn quoted(key: &str) -> String {
    let cut: String = key.chars().take(MAX_STREAM_KEY_CHARS).collect();
    format!("{cut:?}")
}

/// Extractor error handlers and the default service: malformed query strings
/// and path segments are 400, unknown paths 404 and known paths asked with
/// another method 405, all with a JSON `{error}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(format!("invalid query string: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(format!("invalid path parameter: {err}")).into()
    }))
    // No endpoint takes a JSON body yet; the limit keeps a future one safe.
    .app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _req| {
                ApiError::bad_request(format!("invalid JSON body: {err}")).into()
            }),
    )
    .default_service(web::to(no_route));
}

/// Routes carry their method as a guard, so a known path asked with another
/// method also ends here; the resource map tells the two cases apart.
async fn no_route(req: HttpRequest) -> ApiError {
    if req.resource_map().has_resource(req.path()) {
        ApiError::MethodNotAllowed
    } else {
        ApiError::NotFound("no such endpoint".to_owned())
    }
}

impl actix_web::Responder for ApiError {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse<BoxBody> {
        self.error_response()
    }
}

/// Gives every error response that is not JSON yet (actix's own 405, 413…)
/// the JSON `{error}` body, keeping its status and headers.
pub fn json_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(json_body)
}

fn json_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let body = serde_json::json!({ "error": message }).to_string();
    let (req, mut response) = res.into_parts();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let response = response.set_body(body).map_into_boxed_body();
    let res: ServiceResponse<EitherBody<B>> =
        ServiceResponse::new(req, response).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests;
