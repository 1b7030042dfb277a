//! Operator actions on parked streams: listing them, retrying and skipping
//! the failed event, catching up the held events, and the wake-up.

use robson_projector::{
    catch_up_stream, list_parked, resume_stream, PoisonPolicy, ResumeAction, ResumeError,
};
use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{self, TestDb};

const TENANT: Uuid = Uuid::from_u128(0xcd61_3e30_d8f1_4adf_91b7_584a_2265_b1f5);
const ORDER: &str = "82f01b58-2c61-4bec-9698-71bca4ab4eec";
const ACCOUNT: &str = "1e2feb89-414c-443c-9027-c4d1c386bbc4";
const ACKS: &str = "acks:82f01b58";

fn submit() -> serde_json::Value {
    json!({"order_id": ORDER, "account_id": ACCOUNT, "client_order_id": "c1", "symbol": "BTCUSDT",
           "side": "buy", "order_type": "market", "quantity": "1"})
}

/// A stream parked on an ack of an order that does not exist yet (it is
/// submitted in another stream), with two events held behind it.
async fn parked_stream(pool: &PgPool) {
    for (i, (event_type, payload)) in [
        (
            "ORDER_ACKED",
            json!({"order_id": ORDER, "exchange_order_id": "E1"}),
        ),
        ("ORDER_CANCELED", json!({"order_id": ORDER})),
        ("INTENT_CREATED", json!({"intent_id": "i1"})),
    ]
    .into_iter()
    .enumerate()
    {
        support::append(
            pool,
            &support::event(TENANT, ACKS, event_type, payload, i as i64),
        )
        .await;
    }
    let outcome = support::project(
        pool,
        &support::committed(pool).await,
        10,
        PoisonPolicy::Park,
    )
    .await;
    assert_eq!((outcome.dead_lettered.len(), outcome.held), (1, 2));
}

async fn order_status(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM orders_current")
        .fetch_optional(pool)
        .await
        .expect("order")
}

async fn resolution(pool: &PgPool) -> (Option<String>, i32) {
    sqlx::query_as("SELECT resolution::text, attempts FROM projection_dead_letters")
        .fetch_one(pool)
        .await
        .expect("dead letter")
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn parked_streams_list_the_failed_event_and_the_head() {
    let db = TestDb::new().await;
    parked_stream(&db.pool).await;
    let parked = list_parked(&db.pool).await.expect("list");
    assert_eq!(parked.len(), 1);
    let p = &parked[0];
    assert_eq!(
        (
            p.stream_key.as_str(),
            p.tenant_id,
            p.parked_seq,
            p.last_seq,
            p.head_seq
        ),
        (ACKS, TENANT, 1, 0, 3)
    );
    assert_eq!(
        (p.error_kind.as_str(), p.event_type.as_deref(), p.attempts),
        ("invariant_violation", Some("ORDER_ACKED"), 1)
    );
    assert_eq!(p.waiting_events(), 2);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn retry_after_the_cause_is_fixed_applies_the_failed_and_held_events() {
    let db = TestDb::new().await;
    parked_stream(&db.pool).await;
    // The fix: the order now exists.
    support::append(
        &db.pool,
        &support::event(
            TENANT,
            &format!("order:{ORDER}"),
            "ORDER_SUBMITTED",
            submit(),
            10,
        ),
    )
    .await;
    let all = support::committed(&db.pool).await;
    support::project(&db.pool, &all, 10, PoisonPolicy::Park).await;

    let resumed = resume_stream(&db.pool, ACKS, ResumeAction::Retry)
        .await
        .expect("retry");
    assert_eq!(
        (resumed.parked_seq, resumed.action),
        (1, ResumeAction::Retry)
    );
    assert_eq!(resolution(&db.pool).await, (Some("retried".into()), 1));
    let requested: bool = sqlx::query_scalar(
        "SELECT resume_requested FROM projection_stream_progress WHERE stream_key = $1",
    )
    .bind(ACKS)
    .fetch_one(&db.pool)
    .await
    .expect("progress");
    assert!(requested);

    let mut conn = db.pool.acquire().await.expect("connection");
    let outcome = catch_up_stream(&mut conn, ACKS, PoisonPolicy::Park, 100)
        .await
        .expect("catch up");
    assert_eq!((outcome.applied, outcome.skipped_unhandled), (2, 1));
    assert_eq!(order_status(&db.pool).await.as_deref(), Some("canceled"));
    let (last_seq, requested): (i64, bool) = sqlx::query_as(
        "SELECT last_seq, resume_requested FROM projection_stream_progress WHERE stream_key = $1",
    )
    .bind(ACKS)
    .fetch_one(&db.pool)
    .await
    .expect("progress");
    assert_eq!((last_seq, requested), (3, false));
    assert!(list_parked(&db.pool).await.expect("list").is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_retried_event_that_fails_again_parks_the_stream_again() {
    let db = TestDb::new().await;
    parked_stream(&db.pool).await;
    resume_stream(&db.pool, ACKS, ResumeAction::Retry)
        .await
        .expect("retry");
    let mut conn = db.pool.acquire().await.expect("connection");
    let outcome = catch_up_stream(&mut conn, ACKS, PoisonPolicy::Park, 100)
        .await
        .expect("catch up");
    assert_eq!(
        (
            outcome.dead_lettered.len(),
            outcome.newly_parked.len(),
            outcome.held
        ),
        (1, 1, 2)
    );
    assert_eq!(resolution(&db.pool).await, (None, 2));
    let requested: bool = sqlx::query_scalar(
        "SELECT resume_requested FROM projection_stream_progress WHERE stream_key = $1",
    )
    .bind(ACKS)
    .fetch_one(&db.pool)
    .await
    .expect("progress");
    assert!(!requested, "parked again: nothing more to catch up");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn skip_moves_past_the_failed_event_and_catch_up_applies_the_rest() {
    let db = TestDb::new().await;
    parked_stream(&db.pool).await;
    let resumed = resume_stream(&db.pool, ACKS, ResumeAction::Skip)
        .await
        .expect("skip");
    assert_eq!(resumed.action, ResumeAction::Skip);
    assert_eq!(resolution(&db.pool).await, (Some("skipped".into()), 1));
    let last_seq: i64 =
        sqlx::query_scalar("SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1")
            .bind(ACKS)
            .fetch_one(&db.pool)
            .await
            .expect("progress");
    assert_eq!(last_seq, 1);
    let mut conn = db.pool.acquire().await.expect("connection");
    // The cancel fails too (no order): under skip it is dead-lettered and passed.
    let outcome = catch_up_stream(&mut conn, ACKS, PoisonPolicy::Skip, 1)
        .await
        .expect("catch up");
    assert_eq!(outcome.dead_lettered.len(), 1);
    let outcome = catch_up_stream(&mut conn, ACKS, PoisonPolicy::Skip, 1)
        .await
        .expect("catch up");
    assert_eq!(outcome.skipped_unhandled, 1);
    let (last_seq, requested): (i64, bool) = sqlx::query_as(
        "SELECT last_seq, resume_requested FROM projection_stream_progress WHERE stream_key = $1",
    )
    .bind(ACKS)
    .fetch_one(&db.pool)
    .await
    .expect("progress");
    assert_eq!((last_seq, requested), (3, false));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn only_a_parked_stream_can_be_resumed() {
    let db = TestDb::new().await;
    let err = resume_stream(&db.pool, "order:nope", ResumeAction::Retry)
        .await
        .expect_err("unknown");
    assert!(matches!(err, ResumeError::UnknownStream(_)), "{err}");
    support::append(
        &db.pool,
        &support::event(TENANT, "order:x", "ORDER_SUBMITTED", submit(), 0),
    )
    .await;
    support::project(
        &db.pool,
        &support::committed(&db.pool).await,
        10,
        PoisonPolicy::Park,
    )
    .await;
    let err = resume_stream(&db.pool, "order:x", ResumeAction::Skip)
        .await
        .expect_err("not parked");
    assert!(matches!(err, ResumeError::NotParked(_)), "{err}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn resuming_wakes_the_daemon() {
    let db = TestDb::new().await;
    parked_stream(&db.pool).await;
    let mut listener = PgListener::connect_with(&db.pool).await.expect("listener");
    listener.listen("robson_events").await.expect("listen");
    resume_stream(&db.pool, ACKS, ResumeAction::Retry)
        .await
        .expect("retry");
    let wake = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv()).await;
    assert!(matches!(wake, Ok(Ok(_))), "no notification");
}
