//! Duplicates: a retry appends nothing and reports the original; an explicit
//! key is unique across the whole log.

use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_event, compute_idempotency_key, AppendError};
use serde_json::json;
use uuid::Uuid;

use crate::support::{
    count_rows, event, last_seq, order_stream, sql_append, sql_key, stored_key, SqlArgs,
};

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_same_event_appended_twice_from_rust_returns_the_original_and_appends_nothing() {
    let db = TestDb::new().await;
    let e = event(
        Uuid::new_v4(),
        &order_stream(),
        json!({"order_id": "o-1", "quantity": "1.5"}),
    );
    let first = append_event(&db.pool, &e).await.expect("first append");
    let second = append_event(&db.pool, &e).await.expect("second append");

    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(
        (second.event_id, second.seq, second.global_position),
        (first.event_id, first.seq, first.global_position)
    );
    assert_eq!(count_rows(&db.pool, "event_log").await, 1);
    assert_eq!(last_seq(&db.pool, &e.stream_key).await, 1);

    assert_eq!(first.require_new().expect("a new event passes"), first);
    match second.require_new() {
        Err(AppendError::Duplicate { event_id, seq }) => {
            assert_eq!((event_id, seq), (first.event_id, first.seq));
        }
        other => panic!("expected AppendError::Duplicate, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_same_event_appended_twice_through_sql_returns_the_original_and_appends_nothing() {
    let db = TestDb::new().await;
    let (tenant, stream) = (Uuid::new_v4(), order_stream());
    let payload = r#"{"order_id": "o-1", "quantity": "1.5"}"#;
    let first = sql_append(&db.pool, tenant, &stream, payload, SqlArgs::default())
        .await
        .expect("first");
    // A retry may carry a stale expected_seq: it still sees its first success.
    let retry = SqlArgs {
        expected_seq: Some(0),
        ..SqlArgs::default()
    };
    let second = sql_append(&db.pool, tenant, &stream, payload, retry)
        .await
        .expect("second");

    assert!(!first.duplicate && second.duplicate);
    assert_eq!(
        (second.event_id, second.seq, second.global_position),
        (first.event_id, first.seq, first.global_position)
    );
    assert_eq!(count_rows(&db.pool, "event_log").await, 1);
    assert_eq!(last_seq(&db.pool, &stream).await, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn payloads_differing_only_in_volatile_keys_are_one_event_in_rust_and_sql() {
    let db = TestDb::new().await;
    let (tenant, stream) = (Uuid::new_v4(), order_stream());
    let original = json!({
        "order_id": "o-1", "quantity": "2", "submitted_at": "2026-01-01T00:00:00Z",
        "timestamp": 1, "actor_id": "alice", "actor_type": "CLI", "request_id": "r-1",
        "meta": {"exchange_timestamp": 5, "trace": {"received_at": "x", "hops": 2}},
        "legs": [{"price": "1.0", "filled_at": "t1"}, [{"request_id": "r-9", "n": 1}]]
    });
    let retries = [
        // every volatile value changed
        json!({
            "order_id": "o-1", "quantity": "2", "submitted_at": "2026-02-02T00:00:00Z",
            "timestamp": 2, "actor_id": "bob", "actor_type": "Daemon", "request_id": "r-2",
            "meta": {"exchange_timestamp": 6, "trace": {"received_at": "y", "hops": 2}},
            "legs": [{"price": "1.0", "filled_at": "t2"}, [{"request_id": "r-8", "n": 1}]]
        }),
        // every volatile key gone, or new ones added
        json!({
            "order_id": "o-1", "quantity": "2", "meta": {"trace": {"hops": 2}},
            "legs": [{"price": "1.0"}, [{"n": 1, "sent_at": 3}]], "created_at": null
        }),
    ];
    let first = sql_append(
        &db.pool,
        tenant,
        &stream,
        &original.to_string(),
        SqlArgs::default(),
    )
    .await
    .expect("first append");
    let key = stored_key(&db.pool, first.event_id).await;
    assert_eq!(
        key,
        compute_idempotency_key(tenant, &stream, None, &original)
    );

    for retry in &retries {
        assert_eq!(
            compute_idempotency_key(tenant, &stream, None, retry),
            key,
            "Rust key of {retry}"
        );
        assert_eq!(
            sql_key(&db.pool, tenant, &stream, None, retry).await,
            key,
            "SQL key of {retry}"
        );
        let through_sql = sql_append(
            &db.pool,
            tenant,
            &stream,
            &retry.to_string(),
            SqlArgs::default(),
        )
        .await
        .expect("retry through SQL");
        let through_rust = append_event(&db.pool, &event(tenant, &stream, retry.clone()))
            .await
            .expect("retry through Rust");
        for outcome in [
            (through_sql.event_id, through_sql.duplicate),
            (through_rust.event_id, through_rust.duplicate),
        ] {
            assert_eq!(
                outcome,
                (first.event_id, true),
                "{retry} must be taken for a retry"
            );
        }
    }
    // A non-volatile difference, and a volatile-looking name that is not a suffix, count.
    for other in [
        json!({"order_id": "o-1", "quantity": "2.0"}),
        json!({"order_id": "o-1", "quantity": "2", "at_price": "1"}),
    ] {
        let o = append_event(&db.pool, &event(tenant, &stream, other.clone()))
            .await
            .expect("append");
        assert!(!o.duplicate, "{other} is another event");
    }
    assert_eq!(count_rows(&db.pool, "event_log").await, 3);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn another_command_id_makes_another_event() {
    let db = TestDb::new().await;
    let (tenant, stream) = (Uuid::new_v4(), order_stream());
    let payload = json!({"order_id": "o-1"});
    let (c1, c2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut e = event(tenant, &stream, payload.clone());

    e.command_id = Some(c1);
    let a = append_event(&db.pool, &e).await.expect("command 1");
    e.command_id = Some(c2);
    let b = append_event(&db.pool, &e).await.expect("command 2");
    let args = SqlArgs {
        command_id: Some(c2),
        ..SqlArgs::default()
    };
    let b_again = sql_append(&db.pool, tenant, &stream, &payload.to_string(), args)
        .await
        .expect("command 2 again");
    let no_command = sql_append(
        &db.pool,
        tenant,
        &stream,
        &payload.to_string(),
        SqlArgs::default(),
    )
    .await
    .expect("no command");

    assert!(!a.duplicate && !b.duplicate && !no_command.duplicate);
    assert_eq!((b_again.event_id, b_again.duplicate), (b.event_id, true));
    assert_eq!((a.seq, b.seq, no_command.seq), (1, 2, 3));
    assert_eq!(
        stored_key(&db.pool, b.event_id).await,
        sql_key(&db.pool, tenant, &stream, Some(c2), &payload).await
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn an_explicit_key_is_unique_across_streams_and_partitions() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (s1, s2, s3) = (order_stream(), order_stream(), order_stream());
    let mut e = event(tenant, &s1, json!({"n": 1}));
    e.idempotency_key = Some("client-key-1".into());
    let original = append_event(&db.pool, &e).await.expect("original");

    // Another stream, another payload, the same key: the original is reported.
    let mut other = event(tenant, &s2, json!({"n": 2}));
    other.idempotency_key = Some("client-key-1".into());
    let dup = append_event(&db.pool, &other)
        .await
        .expect("duplicate through Rust");
    assert_eq!(
        (dup.event_id, dup.seq, dup.duplicate),
        (original.event_id, 1, true)
    );

    // Move the original into another month's partition: the key still holds.
    let moved = sqlx::query(
        "UPDATE event_log SET ingested_at = ingested_at - interval '2 months' WHERE event_id = $1",
    )
    .bind(original.event_id)
    .execute(&db.pool)
    .await
    .expect("move the original to an older partition");
    assert_eq!(moved.rows_affected(), 1);
    let args = SqlArgs {
        idempotency_key: Some("client-key-1"),
        ..SqlArgs::default()
    };
    let dup = sql_append(&db.pool, tenant, &s3, r#"{"n": 3}"#, args)
        .await
        .expect("duplicate through SQL");
    assert_eq!((dup.event_id, dup.duplicate), (original.event_id, true));

    assert_eq!(count_rows(&db.pool, "event_log").await, 1);
    assert_eq!(
        stored_key(&db.pool, original.event_id).await,
        "client-key-1"
    );
    assert_eq!(
        (last_seq(&db.pool, &s2).await, last_seq(&db.pool, &s3).await),
        (0, 0)
    );
    // A repeat creates nothing, not even the streams it named: they stay free
    // for any tenant.
    let named: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_streams WHERE stream_key IN ($1, $2)")
            .bind(&s2)
            .bind(&s3)
            .fetch_one(&db.pool)
            .await
            .expect("count streams");
    assert_eq!(named, 0, "a duplicate created the stream it named");
}
