//! Drift detection while the daemon runs (SPEC §4.6), with
//! ROBSON_VERIFY_INTERVAL_SECS=1: a row edited by hand is reported by the
//! first run that starts after the edit, with the column and both values,
//! counted in /metrics and shown by /health until a later run finds the
//! stream clean; runs over streams that writers keep moving, and over
//! streams with operator decisions (parked, skipped), report nothing; a
//! 100k-event stream is checked a page at a time.
//!
//! Each run's summary comes from `GET /verify`; a run is recognised by its
//! `started_at`, so "the first run after the edit" is decided by the
//! daemon's own record, never by how long the test waited.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::TestDb;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::poison::append_acked_before_submitted;
use crate::support::{
    append_all, append_flows, event, get_json, get_text, http, metric_sum, robsond, stream, texts,
    wait_caught_up, wait_for_stream, Daemon, HANG_GUARD,
};

const EVERY_SECOND: [(&str, &str); 1] = [("ROBSON_VERIFY_INTERVAL_SECS", "1")];

/// The `/verify` answer once a run that started after `after` has ended.
async fn run_after(client: &reqwest::Client, daemon: &mut Daemon, after: DateTime<Utc>) -> Value {
    run_after_within(client, daemon, after, HANG_GUARD).await
}

/// [`run_after`], failing after `limit` (a long stream on a busy machine
/// takes longer than the usual guard to project and to check).
async fn run_after_within(
    client: &reqwest::Client,
    daemon: &mut Daemon,
    after: DateTime<Utc>,
    limit: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        daemon.assert_running("while waiting for a drift run");
        let (status, body) = get_json(client, &daemon.url("/verify")).await;
        assert_eq!(status, 200, "/verify: {body}");
        let run_start = body["last_run"]["started_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if run_start.is_some_and(|t| t > after) {
            return body;
        }
        assert!(
            started.elapsed() < limit,
            "no drift-check run ended within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the last run of a `/verify` answer began.
fn started_at(body: &Value) -> DateTime<Utc> {
    let at = body["last_run"]["started_at"].as_str().expect("started_at");
    DateTime::parse_from_rfc3339(at)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// The differences `/verify` lists for `stream_key`, as (table, column) →
/// (live, expected).
fn differences(body: &Value, stream_key: &str) -> BTreeMap<(String, String), (Value, Value)> {
    let streams = body["mismatches"].as_array().expect("a list of mismatches");
    let Some(found) = streams.iter().find(|m| m["stream_key"] == stream_key) else {
        return BTreeMap::new();
    };
    found["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            let at = (
                d["table"].as_str().unwrap_or_default().to_owned(),
                d["column"].as_str().unwrap_or_default().to_owned(),
            );
            (at, (d["live"].clone(), d["expected"].clone()))
        })
        .collect()
}

fn shown(decimal: &str) -> Value {
    let d: Decimal = decimal.parse().expect("a decimal");
    Value::from(d.normalize().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_row_edited_by_hand_is_reported_by_the_next_run_until_it_is_repaired() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 11, 80).await;
    let mut daemon = Daemon::start(&db.url, &EVERY_SECOND).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    let client = http();

    let clean = run_after(&client, &mut daemon, Utc::now()).await;
    assert_eq!(clean["enabled"], true);
    assert_eq!(clean["interval_secs"], 1);
    assert!(clean["last_run"]["checked"].as_u64() > Some(0), "{clean}");
    assert_eq!(clean["mismatched_streams"], 0, "{clean}");
    let (_, health) = get_json(&client, &daemon.url("/health")).await;
    assert_eq!(health["status"], "ok", "{health}");

    let (tenant, order, filled): (Uuid, Uuid, String) = sqlx::query_as(
        "SELECT tenant_id, order_id, filled_quantity::text FROM orders_current
          ORDER BY order_id LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("an order");
    let (account, asset, locked): (Uuid, String, String) = sqlx::query_as(
        "SELECT account_id, asset, locked::text FROM balances_current ORDER BY account_id LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a balance");
    sqlx::raw_sql(&format!(
        "UPDATE orders_current SET filled_quantity = filled_quantity + 1.5
          WHERE tenant_id = '{tenant}' AND order_id = '{order}';
         UPDATE balances_current SET locked = locked + 2
          WHERE account_id = '{account}' AND asset = '{asset}';"
    ))
    .execute(&db.pool)
    .await
    .expect("edit two rows by hand");
    let edited_at = Utc::now();

    let found = run_after(&client, &mut daemon, edited_at).await;
    let (order_key, account_key) = (format!("order:{order}"), format!("account:{account}"));
    let order_diff = differences(&found, &order_key);
    let filled_now =
        (filled.parse::<Decimal>().expect("a decimal") + Decimal::new(15, 1)).to_string();
    assert_eq!(
        order_diff,
        BTreeMap::from([(
            ("orders_current".to_owned(), "filled_quantity".to_owned()),
            (shown(&filled_now), shown(&filled))
        )]),
        "{found}"
    );
    let locked_now = (locked.parse::<Decimal>().expect("a decimal") + Decimal::TWO).to_string();
    assert_eq!(
        differences(&found, &account_key),
        BTreeMap::from([(
            ("balances_current".to_owned(), "locked".to_owned()),
            (shown(&locked_now), shown(&locked))
        )]),
        "{found}"
    );
    assert_eq!(found["mismatched_streams"], 2, "{found}");
    let mismatch = found["mismatches"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["stream_key"] == order_key.as_str()))
        .expect("the order's stream is listed");
    assert_eq!(
        mismatch["differences"][0]["key"]["order_id"],
        order.to_string()
    );
    assert!(
        found["last_run"]["mismatched"].as_u64() >= Some(2),
        "{found}"
    );
    let metrics = get_text(&client, &daemon.url("/metrics")).await;
    assert!(metric_sum(&metrics, "robson_verify_mismatched_streams_total", "") >= 2.0);
    assert_eq!(
        metric_sum(&metrics, "robson_verify_mismatched_streams", ""),
        2.0
    );
    assert!(metric_sum(&metrics, "robson_verify_checked_streams_total", "") >= 2.0);
    assert!(metric_sum(&metrics, "robson_verify_last_run_timestamp_seconds", "") > 0.0);
    let (status, health) = get_json(&client, &daemon.url("/health")).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("degraded")),
        "{health}"
    );
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains("drift: 2 streams differ"), "{health}");

    // Paged by stream key: one stream per page here.
    let (_, first) = get_json(&client, &daemon.url("/verify?limit=1")).await;
    assert_eq!(first["mismatches"].as_array().map(Vec::len), Some(1));
    let after = first["next_after"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = get_json(
        &client,
        &daemon.url(&format!("/verify?limit=1&after={after}")),
    )
    .await;
    assert_eq!(second["mismatches"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        second["mismatches"][0]["stream_key"],
        first["mismatches"][0]["stream_key"]
    );
    for bad in ["/verify?limit=0", "/verify?limit=1001", "/verify?limit=x"] {
        let (status, body) = get_json(&client, &daemon.url(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    sqlx::raw_sql(&format!(
        "UPDATE orders_current SET filled_quantity = {filled}
          WHERE tenant_id = '{tenant}' AND order_id = '{order}';
         UPDATE balances_current SET locked = {locked}
          WHERE account_id = '{account}' AND asset = '{asset}';"
    ))
    .execute(&db.pool)
    .await
    .expect("repair the rows");
    let repaired_at = Utc::now();
    let repaired = run_after(&client, &mut daemon, repaired_at).await;
    assert_eq!(repaired["mismatched_streams"], 0, "{repaired}");
    assert_eq!(repaired["last_run"]["mismatched"], 0, "{repaired}");
    let (status, health) = get_json(&client, &daemon.url("/health")).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    let metrics = get_text(&client, &daemon.url("/metrics")).await;
    assert_eq!(
        metric_sum(&metrics, "robson_verify_mismatched_streams", ""),
        0.0
    );
    daemon.stop().await;
}

/// Appends to `key` until `stop` is set: an order filled again and again,
/// or an account's balance sampled again and again.
async fn keep_appending(
    pool: sqlx::PgPool,
    tenant: Uuid,
    kind: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    let (id, key) = stream(kind);
    let mut n = 0_u64;
    if kind == "order" {
        let submit = json!({
            "order_id": id, "account_id": Uuid::new_v4(), "client_order_id": format!("hot-{id}"),
            "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "1000"
        });
        append_all(&pool, &[event(tenant, &key, "ORDER_SUBMITTED", submit)]).await;
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let payload = match kind {
            "order" => json!({
                "order_id": id, "exchange_trade_id": format!("t-{n}"), "fill_price": "95000.12",
                "fill_quantity": "0.001", "fee": "0.01", "fee_asset": "USDT"
            }),
            _ => {
                json!({"account_id": id, "asset": format!("A{}", n % 4), "free": format!("{n}.5"), "locked": "1"})
            }
        };
        let event_type = if kind == "order" {
            "FILL_RECEIVED"
        } else {
            "BALANCE_SAMPLED"
        };
        append_all(&pool, &[event(tenant, &key, event_type, payload)]).await;
        // 50 events/s per stream: the streams move through every run, and
        // grow by a bounded amount (a check re-projects a whole stream, so
        // streams growing as fast as the machine appends made each run
        // longer than the last: over 120 s on a 2-core machine).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn runs_over_moving_streams_and_operator_decisions_report_no_difference() {
    let db = TestDb::with_pool_size(8).await;
    let tenant = Uuid::new_v4();
    append_flows(&db.pool, 21, 150).await;
    // One stream stays parked, one is skipped past its poison event.
    let (_, parked) = append_acked_before_submitted(&db.pool, tenant).await;
    let (_, skipped) = append_acked_before_submitted(&db.pool, tenant).await;
    let mut daemon = Daemon::start(&db.url, &EVERY_SECOND).await;
    let parked_seq =
        "SELECT coalesce(parked_seq, 0) FROM projection_stream_progress WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &skipped, parked_seq, 1_i64).await;
    wait_for_stream(&db.pool, &mut daemon, &parked, parked_seq, 1_i64).await;
    let out = robsond(&["streams", "skip", &skipped], &[("DATABASE_URL", &db.url)]).await;
    assert!(out.status.success(), "streams skip: {:?}", texts(&out));
    let last_seq = "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &skipped, last_seq, 3_i64).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for kind in ["order", "order", "account", "account"] {
        writers.spawn(keep_appending(db.pool.clone(), tenant, kind, stop.clone()));
    }
    writers.spawn({
        let (pool, stop) = (db.pool.clone(), stop.clone());
        async move {
            let mut seed = 100;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seed += 1;
                append_flows(&pool, seed, 20).await;
                // About 400 events/s of new flows, not as fast as possible.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            0
        }
    });

    let client = http();
    let mut runs: Vec<Value> = Vec::new();
    let mut since = Utc::now();
    while runs.len() < 6 {
        let body = run_after(&client, &mut daemon, since).await;
        let run = body["last_run"].clone();
        since = DateTime::parse_from_rfc3339(run["started_at"].as_str().expect("started_at"))
            .expect("an RFC 3339 time")
            .with_timezone(&Utc);
        assert_eq!(run["mismatched"], 0, "a run reported a difference: {body}");
        assert_eq!(body["mismatched_streams"], 0, "{body}");
        runs.push(run);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended: u64 = writers.join_all().await.iter().sum();
    assert!(
        appended > 50,
        "the writers kept the streams moving ({appended} events)"
    );
    let checked: u64 = runs.iter().filter_map(|r| r["checked"].as_u64()).sum();
    assert!(checked >= 6 * 10, "every run compared streams: {runs:?}");
    // The moving streams were compared, not only passed over as moving.
    assert!(
        runs.iter()
            .any(|r| r["moving"] == 0 && r["unchecked"].as_u64() <= Some(1)),
        "{runs:?}"
    );

    wait_caught_up(&db.pool, &mut daemon).await;
    let last = run_after(&client, &mut daemon, Utc::now()).await;
    assert_eq!(last["last_run"]["mismatched"], 0, "{last}");
    let metrics = get_text(&client, &daemon.url("/metrics")).await;
    assert_eq!(
        metric_sum(&metrics, "robson_verify_mismatched_streams_total", ""),
        0.0
    );
    assert!(metric_sum(&metrics, "robson_verify_checked_streams_total", "") >= checked as f64);
    daemon.stop().await;
}

/// Events of the long stream.
const LONG: usize = 100_000;

/// Bound of projecting and checking it (a debug build on a loaded machine).
const LONG_GUARD: Duration = Duration::from_secs(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_stream_of_100k_events_is_checked_one_page_at_a_time() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (account, key) = stream("account");
    let events: Vec<_> = (0..LONG)
        .map(|n| {
            let payload = json!({
                "account_id": account, "asset": format!("A{}", n % 10),
                "free": format!("{n}.25"), "locked": "0.5"
            });
            event(tenant, &key, "BALANCE_SAMPLED", payload)
        })
        .collect();
    append_all(&db.pool, &events).await;
    drop(events);
    let mut daemon = Daemon::start(&db.url, &EVERY_SECOND).await;
    let started = Instant::now();
    loop {
        daemon.assert_running("while projecting the long stream");
        let done: Option<i64> = sqlx::query_scalar(
            "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1",
        )
        .bind(&key)
        .fetch_optional(&db.pool)
        .await
        .expect("read the stream's progress");
        if done == Some(LONG as i64) {
            break;
        }
        assert!(
            started.elapsed() < LONG_GUARD,
            "{key} not projected within {LONG_GUARD:?}: {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Runs that began while it was projected kept their folds; one of the
    // next runs (at the latest the one after ten resumed checks) folds it
    // from seq 1 again.
    let client = http();
    let mut after = Utc::now();
    let mut resumed_runs = 0;
    let body = loop {
        let body = run_after_within(&client, &mut daemon, after, LONG_GUARD).await;
        if body["last_run"]["resumed"] == 0 {
            break body;
        }
        resumed_runs += 1;
        assert!(resumed_runs <= 11, "never folded from seq 1 again: {body}");
        after = started_at(&body);
    };
    let run = &body["last_run"];
    assert_eq!(run["checked"], 1, "{body}");
    assert_eq!(run["mismatched"], 0, "{body}");
    assert_eq!(run["events_read"], LONG as u64, "{body}");
    // Memory follows the page, not the stream.
    let largest = run["largest_page"].as_u64().expect("largest_page");
    assert!(largest > 0 && largest <= 500, "{body}");

    // And a difference in it is found all the same.
    sqlx::query(
        "UPDATE balances_current SET free = free + 1 WHERE account_id = $1 AND asset = 'A3'",
    )
    .bind(account)
    .execute(&db.pool)
    .await
    .expect("edit a row by hand");
    let found = run_after_within(&client, &mut daemon, Utc::now(), LONG_GUARD).await;
    // Checked again, it went on from its last clean fold: nothing read.
    assert_eq!(found["last_run"]["resumed"], 1, "{found}");
    assert_eq!(found["last_run"]["events_read"], 0, "{found}");
    let diff = differences(&found, &key);
    let free = diff
        .get(&("balances_current".to_owned(), "free".to_owned()))
        .unwrap_or_else(|| panic!("free is reported: {found}"));
    // The last A3 sample is n = 99_993.
    assert_eq!(free.1, Value::from("99993.25"), "{found}");
    assert_eq!(free.0, Value::from("99994.25"), "{found}");

    // Repaired by the events that follow. The first clean run after it
    // folds the stream (whole, or on from a clean fold of a run that saw
    // only the first of them); the next one goes on from that fold and
    // reads only what was appended between the two.
    let samples = |cents: &str, n: usize| -> Vec<_> {
        (0..n)
            .map(|i| {
                let payload = json!({
                    "account_id": account, "asset": "A3",
                    "free": format!("{i}.{cents}"), "locked": "0.5"
                });
                event(tenant, &key, "BALANCE_SAMPLED", payload)
            })
            .collect()
    };
    let progress = "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1";
    append_all(&db.pool, &samples("75", 10)).await;
    wait_for_stream(&db.pool, &mut daemon, &key, progress, LONG as i64 + 10).await;
    let clean = run_after_within(&client, &mut daemon, Utc::now(), LONG_GUARD).await;
    assert_eq!(clean["last_run"]["mismatched"], 0, "{clean}");
    append_all(&db.pool, &samples("50", 3)).await;
    wait_for_stream(&db.pool, &mut daemon, &key, progress, LONG as i64 + 13).await;
    let next = run_after_within(&client, &mut daemon, Utc::now(), LONG_GUARD).await;
    assert_eq!(next["last_run"]["mismatched"], 0, "{next}");
    assert_eq!(next["last_run"]["resumed"], 1, "{next}");
    // 3, or fewer when a run slipped in between: never the whole stream.
    let read = next["last_run"]["events_read"]
        .as_u64()
        .expect("events_read");
    assert!(read <= 3, "{next}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn verify_takes_the_read_token_and_says_when_drift_detection_is_off() {
    let db = TestDb::new().await;
    let token = "read-0123456789abcdef";
    let env = [
        ("ROBSON_VERIFY_INTERVAL_SECS", "0"),
        ("ROBSON_READ_TOKEN", token),
    ];
    let daemon = Daemon::start(&db.url, &env).await;
    let client = http();
    let (status, body) = get_json(&client, &daemon.url("/verify")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let response = client
        .get(daemon.url("/verify"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /verify");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        (
            &body["enabled"],
            &body["last_run"],
            &body["mismatched_streams"]
        ),
        (&Value::Bool(false), &Value::Null, &Value::from(0)),
        "{body}"
    );
}
