//! The admin endpoints (SPEC §4.4): a bearer token is required (401 without
//! it or with a wrong one), and they do not exist (404) when no token is
//! configured.

use robson_eventlog::testing::TestDb;
use serde_json::Value;
use uuid::Uuid;

use crate::poison::{append_acked_before_submitted, append_bad_fill, LAST_SEQ, PARKED_SEQ};
use crate::support::{http, wait_for_stream, Daemon};

const TOKEN: &str = "admin-token-4f9c2e7a1b";

/// Sends `request` and returns its status and body text.
async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("an HTTP answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
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
    assert!(
        (400..500).contains(&status),
        "skipping a stream that is not parked: {status} {body}"
    );
    bodies.push(body);

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
async fn without_a_configured_token_the_admin_endpoints_do_not_exist() {
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
    }
    daemon.stop().await;
}
