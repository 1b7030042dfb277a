//! Poison events (SPEC §4.3): with `park` the failed event's stream waits and
//! every other stream goes on; `streams skip` resumes it, `streams retry`
//! re-attempts it; with `skip` the event is dead-lettered and passed over.

use std::time::Instant;

use crate::support::TestDb;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    append_all, append_flows, assert_equals_clean_run, event, get_json, get_text, grouped,
    guard_against_hang, http, metric_sum, robsond, stream, texts, unprojected, wait_caught_up,
    wait_for_stream, Daemon,
};

pub const PARKED_SEQ: &str =
    "SELECT coalesce(parked_seq, 0) FROM projection_stream_progress WHERE stream_key = $1";
pub const LAST_SEQ: &str = "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1";

fn submitted(order: Uuid, account: Uuid) -> Value {
    json!({
        "order_id": order, "account_id": account, "client_order_id": format!("poison-{order}"),
        "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "0.5"
    })
}

/// A fill whose quantity has 9 fractional digits: an invalid payload.
fn bad_fill(order: Uuid) -> Value {
    json!({
        "order_id": order, "exchange_trade_id": "t-bad", "fill_price": "95000.12",
        "fill_quantity": "0.123456789", "fee": "0", "fee_asset": "USDT"
    })
}

/// `order:X` whose first event acknowledges an order that does not exist
/// (an invariant violation), followed by two valid events.
pub async fn append_acked_before_submitted(pool: &PgPool, tenant: Uuid) -> (Uuid, String) {
    let (order, key) = stream("order");
    let ack = json!({"order_id": order, "exchange_order_id": "ex-1"});
    let events = [
        event(tenant, &key, "ORDER_ACKED", ack),
        event(
            tenant,
            &key,
            "ORDER_SUBMITTED",
            submitted(order, Uuid::new_v4()),
        ),
        event(
            tenant,
            &key,
            "ORDER_ACKED",
            json!({"order_id": order, "exchange_order_id": "ex-2"}),
        ),
    ];
    append_all(pool, &events).await;
    (order, key)
}

/// `order:X`: a valid order, a fill with a bad decimal, a cancel.
pub async fn append_bad_fill(pool: &PgPool, tenant: Uuid) -> (Uuid, String) {
    let (order, key) = stream("order");
    let events = [
        event(
            tenant,
            &key,
            "ORDER_SUBMITTED",
            submitted(order, Uuid::new_v4()),
        ),
        event(tenant, &key, "FILL_RECEIVED", bad_fill(order)),
        event(
            tenant,
            &key,
            "ORDER_CANCELED",
            json!({"order_id": order, "reason": "user"}),
        ),
    ];
    append_all(pool, &events).await;
    (order, key)
}

async fn order_status(pool: &PgPool, order: Uuid) -> Option<(String, i64)> {
    sqlx::query_as("SELECT status, last_seq FROM orders_current WHERE order_id = $1")
        .bind(order)
        .fetch_optional(pool)
        .await
        .expect("read the order")
}

/// (error_kind, attempts, resolution) of the stream's dead letter.
async fn dead_letter(pool: &PgPool, key: &str) -> (String, i32, Option<String>) {
    sqlx::query_as(
        "SELECT error_kind, attempts, resolution FROM projection_dead_letters WHERE stream_key = $1",
    )
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("one dead letter for the stream")
}

/// Polls `/health` until `done` holds for its body; returns (code, body).
async fn wait_health(daemon: &mut Daemon, done: impl Fn(&Value) -> bool) -> (u16, Value) {
    let client = http();
    let started = Instant::now();
    loop {
        daemon.assert_running("while watching /health");
        let (code, body) = get_json(&client, &daemon.url("/health")).await;
        if done(&body) {
            return (code, body);
        }
        guard_against_hang(started, &format!("/health is {code} {body}"));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn parked_keys(url: &str) -> Vec<String> {
    let out = robsond(&["streams", "parked", "--json"], &[("DATABASE_URL", url)]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "streams parked: {stderr}");
    let list: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("streams parked --json printed {stdout:?}: {e}"));
    list.iter()
        .map(|p| p["stream_key"].as_str().expect("stream_key").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_poison_event_parks_only_its_stream_until_the_cli_skips_it() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 50, 500).await;
    let tenant = Uuid::new_v4();
    let (order, key) = append_acked_before_submitted(&db.pool, tenant).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ON_POISON", "park")]).await;

    wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 1_i64).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    assert_eq!(
        order_status(&db.pool, order).await,
        None,
        "nothing applied behind the poison"
    );
    assert_eq!(
        dead_letter(&db.pool, &key).await,
        ("invariant_violation".into(), 1, None)
    );
    assert_eq!(parked_keys(&db.url).await, vec![key.clone()]);
    let (code, health) = wait_health(&mut daemon, |h| {
        h["parked_streams"] == 1 && h["lag_events"] == 0
    })
    .await;
    assert_eq!(code, 200, "parked streams leave the daemon ready: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    // lag_events + held_events count every unprojected event, so the parked
    // stream's failed event is held along with the two behind it.
    assert_eq!(
        health["held_events"], 3,
        "the parked stream's events: {health}"
    );

    // Other streams go on while this one waits.
    append_flows(&db.pool, 51, 300).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    assert_eq!(order_status(&db.pool, order).await, None);

    let out = robsond(&["streams", "skip", &key], &[("DATABASE_URL", &db.url)]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "streams skip: {:?}",
        texts(&out)
    );
    wait_for_stream(&db.pool, &mut daemon, &key, LAST_SEQ, 3_i64).await;
    assert_eq!(
        order_status(&db.pool, order).await,
        Some(("acknowledged".into(), 3)),
        "the held events are applied after the skip"
    );
    let resolution = dead_letter(&db.pool, &key).await.2;
    assert_eq!(resolution.as_deref(), Some("skipped"));
    assert!(parked_keys(&db.url).await.is_empty());
    let (code, health) = wait_health(&mut daemon, |h| h["parked_streams"] == 0).await;
    assert_eq!((code, &health["status"]), (200, &json!("ok")), "{health}");
    assert_eq!(health["held_events"], 0, "{health}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn retrying_a_stream_whose_event_is_still_bad_keeps_it_parked_and_counts_the_attempt() {
    let db = TestDb::new().await;
    let (order, key) = append_bad_fill(&db.pool, Uuid::new_v4()).await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 2_i64).await;
    assert_eq!(
        dead_letter(&db.pool, &key).await,
        ("invalid_payload".into(), 1, None)
    );

    let out = robsond(&["streams", "retry", &key], &[("DATABASE_URL", &db.url)]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "streams retry: {:?}",
        texts(&out)
    );
    let attempts = "SELECT attempts FROM projection_dead_letters WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &key, attempts, 2_i32).await;
    let settled = "SELECT coalesce(parked_seq, 0) FROM projection_stream_progress
                    WHERE stream_key = $1 AND NOT resume_requested";
    wait_for_stream(&db.pool, &mut daemon, &key, settled, 2_i64).await;
    assert_eq!(
        dead_letter(&db.pool, &key).await,
        ("invalid_payload".into(), 2, None)
    );
    assert_eq!(
        order_status(&db.pool, order).await,
        Some(("submitted".into(), 1)),
        "the cancel still waits behind the bad fill"
    );
    assert_eq!(parked_keys(&db.url).await, vec![key]);

    let other = format!("order:{}", Uuid::new_v4());
    let out = robsond(&["streams", "retry", &other], &[("DATABASE_URL", &db.url)]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "retrying a stream that is not parked fails"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn with_on_poison_skip_a_bad_event_is_dead_lettered_and_its_stream_goes_on() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 52, 300).await;
    let (order, key) = append_bad_fill(&db.pool, Uuid::new_v4()).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ON_POISON", "skip")]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    assert_eq!(unprojected(&db.pool).await, 0);

    assert_eq!(
        order_status(&db.pool, order).await,
        Some(("canceled".into(), 3))
    );
    let resolution = dead_letter(&db.pool, &key).await;
    assert_eq!(
        resolution,
        ("invalid_payload".into(), 1, Some("skipped".into()))
    );
    assert!(parked_keys(&db.url).await.is_empty());

    let client = http();
    let started = Instant::now();
    let dead_lettered = loop {
        let text = get_text(&client, &daemon.url("/metrics")).await;
        let n = metric_sum(
            &text,
            "robson_events_dead_lettered_total",
            "error_kind=\"invalid_payload\"",
        );
        if n >= 1.0 {
            break n;
        }
        guard_against_hang(started, "waiting for the dead-letter counter");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(dead_lettered, 1.0);
    daemon.stop().await;
}

/// A write the database refuses, in a group of small batches of several
/// partitions (`daemon::group`): the group commits nothing, each batch is
/// applied alone, and only the refused event is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_write_the_database_refuses_in_a_group_parks_only_its_stream() {
    let db = TestDb::new().await;
    sqlx::raw_sql("ALTER TABLE balances_current ADD CONSTRAINT test_no_sol CHECK (asset <> 'SOL')")
        .execute(&db.pool)
        .await
        .expect("add constraint");
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "8")]).await;
    let tenant = Uuid::new_v4();
    // One append, so one read: a balance sample on each of 8 accounts, a
    // few events per partition, the first refused by the database.
    let accounts: Vec<(Uuid, String)> = (0..8).map(|_| stream("account")).collect();
    let events: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(i, (account, key))| {
            let asset = if i == 0 { "SOL" } else { "USDT" };
            let payload =
                json!({"account_id": account, "asset": asset, "free": "1", "locked": "0"});
            event(tenant, key, "BALANCE_SAMPLED", payload)
        })
        .collect();
    append_all(&db.pool, &events).await;
    wait_caught_up(&db.pool, &mut daemon).await;

    assert!(
        grouped(&daemon, "alone").await >= 1.0,
        "the group fell back"
    );
    let parked: i64 = sqlx::query_scalar(PARKED_SEQ)
        .bind(&accounts[0].1)
        .fetch_one(&db.pool)
        .await
        .expect("parked seq");
    assert_eq!(parked, 1, "the refused event's stream is parked on it");
    let letters: Vec<String> = sqlx::query_scalar("SELECT stream_key FROM projection_dead_letters")
        .fetch_all(&db.pool)
        .await
        .expect("dead letters");
    assert_eq!(letters, vec![accounts[0].1.clone()]);
    let balances: i64 = sqlx::query_scalar("SELECT count(*) FROM balances_current")
        .fetch_one(&db.pool)
        .await
        .expect("balances");
    assert_eq!(balances, 7, "every other stream applied");
    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}
