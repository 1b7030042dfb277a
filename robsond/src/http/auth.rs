//! Bearer tokens: the admin token (ROBSON_ADMIN_TOKEN) guards `/admin/*`,
//! the optional read token (ROBSON_READ_TOKEN) guards the endpoints that
//! show stream keys (`/streams`, `/wait`). The admin token is accepted
//! wherever the read token is. The probes and `/metrics` are never guarded
//! (docs/http.md, "Protecting the read endpoints", says why).
//!
//! The scheme is matched case-insensitively as RFC 7235 says, the token in
//! constant time. A token is checked before anything else about a request,
//! so that nothing is judged for a caller without it.

use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::HttpContext;
use crate::config::Secret;

/// `Ok` when the request carries the admin token; 404 saying so when admin
/// is off, 401 otherwise.
pub fn admin(ctx: &HttpContext, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = ctx.admin_token.as_ref() else {
        let off = "admin endpoints are off: set ROBSON_ADMIN_TOKEN to enable them";
        return Err(ApiError::NotFound(off.to_owned()));
    };
    if carries(req, token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `Ok` when no read token is configured, or the request carries it (or
/// the admin token); 401 otherwise.
pub fn read(ctx: &HttpContext, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = ctx.read_token.as_ref() else {
        return Ok(());
    };
    let admin = ctx.admin_token.as_ref().is_some_and(|t| carries(req, t));
    if admin || carries(req, token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn carries(req: &HttpRequest, token: &Secret<String>) -> bool {
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    given.as_bytes().ct_eq(token.expose().as_bytes()).into()
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme
/// is case-insensitive and separated from the token by one or more spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
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
