//! Hostile events in the log (issue 12): payloads nested 65 to 10,000 levels
//! deep or 5 MB large, written straight into `event_log` as a writer from
//! before migrations/006 could have, and stream keys holding a newline. Each
//! bad event is a poison event of its own stream (dead-lettered
//! `invalid_payload`, the stream parked or skipped); every other stream goes
//! on, the operator's skip and retry work on it, a restart does not stall,
//! a rebuild gives what live projection gave, and no value forges a log line.

use std::time::Instant;

use crate::support::TestDb;
use robson_eventlog::testing::insert_unchecked;
use robson_eventlog::{append_event, MAX_PAYLOAD_BYTES};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::poison::{LAST_SEQ, PARKED_SEQ};
use crate::support::{
    append_flows, assert_same_image, event, guard_against_hang, http, projection_image, robsond,
    stream, texts, unprojected, wait_caught_up, wait_for_stream, Daemon,
};

const TOKEN: &str = "admin-token-hostile-5e1d9c";

/// `{"x": [[…1…]]}` with `depth` levels in all, as JSON text.
fn nested(depth: usize) -> String {
    let inner = depth - 1;
    format!("{{\"x\": {}1{}}}", "[".repeat(inner), "]".repeat(inner))
}

/// A JSON object of about 5 MB.
fn five_megabytes() -> String {
    format!(r#"{{"blob": "{}"}}"#, "x".repeat(5 * 1024 * 1024))
}

fn submitted(order: Uuid) -> Value {
    json!({
        "order_id": order, "account_id": Uuid::new_v4(), "client_order_id": format!("h-{order}"),
        "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "0.5"
    })
}

/// A bad stream: seq 1 written unchecked with `payload`, seq 2 a valid
/// ORDER_SUBMITTED appended normally behind it.
struct BadStream {
    key: String,
    order: Uuid,
    what: String,
}

async fn append_bad_stream(pool: &PgPool, tenant: Uuid, what: &str, payload: &str) -> BadStream {
    let (order, key) = stream("order");
    let seq = insert_unchecked(pool, tenant, &key, "ORDER_SUBMITTED", payload)
        .await
        .unwrap_or_else(|e| panic!("insert the {what} payload: {e}"));
    assert_eq!(seq, 1);
    let next = append_event(
        pool,
        &event(tenant, &key, "ORDER_SUBMITTED", submitted(order)),
    )
    .await
    .expect("append behind the bad event");
    assert_eq!(next.seq, 2, "the unchecked event is an ordinary seq 1");
    BadStream {
        key,
        order,
        what: what.to_owned(),
    }
}

/// The repro of the issue: an unhandled type nested 128 levels deep.
async fn append_deep_signal(pool: &PgPool, tenant: Uuid) -> String {
    let key = format!("signal:{}", Uuid::new_v4());
    let payload = format!("{{\"x\":{}1{}}}", "[".repeat(127), "]".repeat(127));
    insert_unchecked(pool, tenant, &key, "DECISION_PROPOSED", &payload)
        .await
        .expect("insert the deep signal");
    key
}

/// Every kind of bad payload the issue names, one stream each.
async fn append_bad_streams(pool: &PgPool, tenant: Uuid) -> Vec<BadStream> {
    let mut bad = Vec::new();
    for depth in [65, 128, 1_000, 10_000] {
        let what = format!("{depth} levels deep");
        bad.push(append_bad_stream(pool, tenant, &what, &nested(depth)).await);
    }
    bad.push(append_bad_stream(pool, tenant, "5 MB", &five_megabytes()).await);
    bad
}

/// (error_kind, error, attempts, resolution) of the stream's dead letter.
async fn dead_letter(pool: &PgPool, key: &str) -> (String, String, i32, Option<String>) {
    sqlx::query_as(
        "SELECT error_kind, error, attempts, resolution FROM projection_dead_letters
          WHERE stream_key = $1",
    )
    .bind(key)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("one dead letter for {key}: {e}"))
}

fn expected_error(what: &str) -> String {
    if what == "5 MB" {
        format!(
            "payload could not be decoded: {} bytes, larger than the limit of {MAX_PAYLOAD_BYTES}",
            five_megabytes().len()
        )
    } else {
        "payload could not be decoded: nests deeper than 64 levels".to_owned()
    }
}

async fn order_seq(pool: &PgPool, order: Uuid) -> Option<i64> {
    sqlx::query_scalar("SELECT last_seq FROM orders_current WHERE order_id = $1")
        .bind(order)
        .fetch_optional(pool)
        .await
        .expect("read the order")
}

async fn cli(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = robsond(args, &[("DATABASE_URL", url)]).await;
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn undecodable_payloads_park_only_their_streams_and_the_operator_resumes_them() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    append_flows(&db.pool, 120, 300).await;
    let signal = append_deep_signal(&db.pool, tenant).await;
    let bad = append_bad_streams(&db.pool, tenant).await;
    append_flows(&db.pool, 121, 300).await;

    let env = [("ROBSON_ADMIN_TOKEN", TOKEN)];
    let mut daemon = Daemon::start(&db.url, &env).await;
    for b in &bad {
        wait_for_stream(&db.pool, &mut daemon, &b.key, PARKED_SEQ, 1_i64).await;
    }
    wait_for_stream(&db.pool, &mut daemon, &signal, PARKED_SEQ, 1_i64).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    for b in &bad {
        let (kind, error, attempts, resolution) = dead_letter(&db.pool, &b.key).await;
        assert_eq!(
            (kind.as_str(), error, attempts, resolution),
            ("invalid_payload", expected_error(&b.what), 1, None),
            "{}",
            b.what
        );
        assert_eq!(order_seq(&db.pool, b.order).await, None, "held: {}", b.what);
    }
    assert_eq!(dead_letter(&db.pool, &signal).await.0, "invalid_payload");

    // Other streams go on, also after a restart with the bad streams parked.
    append_flows(&db.pool, 122, 200).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    let mut daemon = Daemon::start(&db.url, &env).await;
    append_flows(&db.pool, 123, 200).await;
    wait_caught_up(&db.pool, &mut daemon).await;

    // The issue's repro: `streams skip` knows the stream and resumes it.
    let (code, out) = cli(&db.url, &["streams", "skip", &signal]).await;
    assert_eq!(code, Some(0), "streams skip {signal}: {out}");
    wait_for_stream(&db.pool, &mut daemon, &signal, LAST_SEQ, 1_i64).await;
    for b in &bad[..3] {
        let (code, out) = cli(&db.url, &["streams", "skip", &b.key]).await;
        assert_eq!(code, Some(0), "streams skip ({}): {out}", b.what);
    }
    // The 10,000-level one through the admin endpoint.
    let response = http()
        .post(daemon.url(&format!("/admin/streams/{}/skip", bad[3].key)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST skip");
    assert_eq!(response.status().as_u16(), 200, "admin skip");
    for b in &bad[..4] {
        wait_for_stream(&db.pool, &mut daemon, &b.key, LAST_SEQ, 2_i64).await;
        assert_eq!(order_seq(&db.pool, b.order).await, Some(2), "{}", b.what);
        assert_eq!(
            dead_letter(&db.pool, &b.key).await.3.as_deref(),
            Some("skipped")
        );
    }
    // Retrying the 5 MB one fails again: it stays parked, one more attempt.
    let five = &bad[4];
    let (code, out) = cli(&db.url, &["streams", "retry", &five.key]).await;
    assert_eq!(code, Some(0), "streams retry: {out}");
    let attempts = "SELECT attempts FROM projection_dead_letters WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &five.key, attempts, 2_i32).await;
    let settled = "SELECT coalesce(parked_seq, 0) FROM projection_stream_progress
                    WHERE stream_key = $1 AND NOT resume_requested";
    wait_for_stream(&db.pool, &mut daemon, &five.key, settled, 1_i64).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    assert_eq!(unprojected(&db.pool).await, 0);
    daemon.stop().await;

    // Rebuild and verify read the same log the same way.
    let (code, out) = cli(&db.url, &["verify"]).await;
    assert_eq!(code, Some(0), "verify: {out}");
    let live = projection_image(&db.pool).await;
    let (code, out) = cli(&db.url, &["rebuild"]).await;
    assert_eq!(code, Some(0), "rebuild: {out}");
    assert_same_image(&projection_image(&db.pool).await, &live, "rebuilt vs live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn with_on_poison_skip_undecodable_payloads_are_dead_lettered_and_passed_over() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let bad = append_bad_streams(&db.pool, tenant).await;
    append_flows(&db.pool, 124, 300).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ON_POISON", "skip")]).await;
    for b in &bad {
        wait_for_stream(&db.pool, &mut daemon, &b.key, LAST_SEQ, 2_i64).await;
        let (kind, error, _, resolution) = dead_letter(&db.pool, &b.key).await;
        assert_eq!(
            (kind.as_str(), error, resolution.as_deref()),
            ("invalid_payload", expected_error(&b.what), Some("skipped")),
            "{}",
            b.what
        );
        assert_eq!(order_seq(&db.pool, b.order).await, Some(2), "{}", b.what);
    }
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
}

/// A stream key that tries to forge a log line of its own.
const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR robsond: FORGED by a stream key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_stream_key_holding_a_newline_forges_no_log_line_in_text_or_json() {
    for format in ["text", "json"] {
        let db = TestDb::new().await;
        let tenant = Uuid::new_v4();
        let key = format!("order:{}\n{FORGED}", Uuid::new_v4());
        // An invalid payload, so that the daemon logs the stream key.
        insert_unchecked(&db.pool, tenant, &key, "ORDER_ACKED", "{}")
            .await
            .expect("insert the event");
        let env = [("ROBSON_LOG_FORMAT", format), ("ROBSON_ADMIN_TOKEN", TOKEN)];
        let mut daemon = Daemon::start(&db.url, &env).await;
        wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 1_i64).await;
        // The key, newline and all, through the admin URL path as well.
        let path = format!(
            "/admin/streams/{}/skip",
            key.replace('\n', "%0A").replace(' ', "%20")
        );
        let response = http()
            .post(daemon.url(&path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("POST skip");
        assert_eq!(response.status().as_u16(), 200, "admin skip of the key");
        wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 0_i64).await;
        // The log lines about it are written by now or very soon.
        let started = Instant::now();
        while !daemon.stderr().contains("FORGED") {
            guard_against_hang(started, "waiting for the daemon to log the stream key");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        daemon.stop().await;
        let log = daemon.stderr();
        for line in log.lines() {
            assert!(
                !line.trim_start().starts_with("2026-01-01T00:00:00.000000Z"),
                "{format}: a forged line:\n{log}"
            );
            if format == "json" {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("json: not one object per line ({e}): {line}"));
            }
        }
        // Both formats write the newline as the two characters `\n`.
        assert!(
            log.lines().any(|l| l.contains(&format!(r"\n{FORGED}"))),
            "{format}: the key is logged, its newline escaped:\n{log}"
        );
    }
}
