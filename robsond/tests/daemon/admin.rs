//! The admin endpoints (SPEC §4.4): a bearer token is required (401 without
//! it or with a wrong one; the scheme in any case), 404 for a stream the
//! daemon does not know, 409 for one that is not parked, and 404 saying that
//! admin is off when no token is configured. Every error is JSON `{error}`.

use crate::support::TestDb;
use serde_json::Value;
use uuid::Uuid;

use crate::poison::{append_acked_before_submitted, append_bad_fill, LAST_SEQ, PARKED_SEQ};
use crate::support::{http, wait_for_stream, Daemon};

const TOKEN: &str = "admin-token-4f9c2e7a1b";

/// Sends `request` and returns its status and body text; an error status
/// must come with a JSON `{error}` body.
async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("an HTTP answer");
    let status = response.status().as_u16();
    let body = response.text().await.expect("a body");
    if status >= 400 {
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{status} with a body that is not JSON: {body:?}: {e}"));
        assert!(json["error"].is_string(), "{status}: {body}");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn admin_endpoints_need_the_bearer_token_and_resume_parked_streams() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (_, skipped) = append_acked_before_submitted(&db.pool, tenant).await;
    let (_, retried) = append_bad_fill(&db.pool, tenant).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ADMIN_TOKEN", TOKEN)]).await;
    wait_for_stream(&db.pool, &mut daemon, &skipped, PARKED_SEQ, 1_i64).await;
    wait_for_stream(&db.pool, &mut daemon, &retried, PARKED_SEQ, 2_i64).await;

    let client = http();
    let parked = daemon.url("/admin/parked");
    let mut bodies = Vec::new();
    // No header, a wrong token, and the right token without the Bearer scheme.
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
        let mut request = client.get(&parked);
        if let Some(value) = auth {
            request = request.header("Authorization", value);
        }
        let (status, body) = send(request).await;
        assert_eq!(
            status, 401,
            "GET /admin/parked with Authorization {auth:?}: {body}"
        );
        bodies.push(body);
    }
    // RFC 7235: the scheme is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {TOKEN}");
        let (status, body) = send(client.get(&parked).header("Authorization", auth)).await;
        assert_eq!(status, 200, "scheme {scheme}: {body}");
    }
    let (status, body) = send(client.get(&parked).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).expect("JSON");
    let text = listed.to_string();
    assert!(text.contains(&skipped) && text.contains(&retried), "{body}");
    bodies.push(body);

    let skip = daemon.url(&format!("/admin/streams/{skipped}/skip"));
    let (status, body) = send(client.post(&skip).bearer_auth("wrong-token-0123456789")).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = send(client.post(&skip).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200, "POST skip: {body}");
    bodies.push(body);
    wait_for_stream(&db.pool, &mut daemon, &skipped, LAST_SEQ, 3_i64).await;
    let (status, body) = send(client.post(&skip).bearer_auth(TOKEN)).await;
    assert_eq!(status, 409, "skipping a stream that is not parked: {body}");
    bodies.push(body);
    let unknown = format!("order:{}", Uuid::new_v4());
    for action in ["retry", "skip"] {
        let url = daemon.url(&format!("/admin/streams/{unknown}/{action}"));
        let (status, body) = send(client.post(&url).bearer_auth(TOKEN)).await;
        assert_eq!(
            status, 404,
            "{action} of a stream the daemon does not know: {body}"
        );
    }

    let retry = daemon.url(&format!("/admin/streams/{retried}/retry"));
    let (status, body) = send(client.post(&retry).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200, "POST retry: {body}");
    bodies.push(body);
    let attempts = "SELECT attempts FROM projection_dead_letters WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &retried, attempts, 2_i32).await;

    for body in bodies {
        assert!(!body.contains(TOKEN), "the token is never shown: {body}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn without_a_configured_token_the_admin_endpoints_answer_404_saying_they_are_off() {
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    let client = http();
    let key = format!("order:{}", Uuid::new_v4());
    let requests = [
        client.get(daemon.url("/admin/parked")),
        client.get(daemon.url("/admin/parked")).bearer_auth(TOKEN),
        client
            .post(daemon.url(&format!("/admin/streams/{key}/skip")))
            .bearer_auth(TOKEN),
        client.post(daemon.url(&format!("/admin/streams/{key}/retry"))),
    ];
    for request in requests {
        let (status, body) = send(request).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body.contains("ROBSON_ADMIN_TOKEN"),
            "says how to turn admin on: {body}"
        );
    }
    daemon.stop().await;
}
