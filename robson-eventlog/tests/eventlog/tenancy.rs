//! A stream belongs to the tenant that first appended to it.

use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_batch, append_event, AppendError};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{event, order_stream, sql_append, sqlstate, table_image, SqlArgs};

async fn log_image(pool: &PgPool) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    (
        table_image(pool, "event_log").await,
        table_image(pool, "event_log_keys").await,
        table_image(pool, "event_streams").await,
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn an_append_to_another_tenants_stream_is_refused_and_writes_nothing() {
    let db = TestDb::new().await;
    let (owner, intruder) = (Uuid::new_v4(), Uuid::new_v4());
    let stream = order_stream();
    append_event(&db.pool, &event(owner, &stream, json!({"n": 1})))
        .await
        .expect("owner appends");
    let before = log_image(&db.pool).await;

    match append_event(&db.pool, &event(intruder, &stream, json!({"n": 2}))).await {
        Err(AppendError::StreamOwnedByOtherTenant { stream_key }) => assert_eq!(stream_key, stream),
        other => panic!("expected StreamOwnedByOtherTenant, got {other:?}"),
    }
    // Even with expected_seq right, or the owner's exact payload.
    for (payload, expected_seq) in [(r#"{"n": 3}"#, Some(1)), (r#"{"n": 1}"#, None)] {
        let args = SqlArgs {
            expected_seq,
            ..SqlArgs::default()
        };
        let err = sql_append(&db.pool, intruder, &stream, payload, args)
            .await
            .expect_err("another tenant's stream");
        let (code, message) = sqlstate(&err);
        assert_eq!(code, "42501", "{message}");
        assert!(message.contains(&stream), "{message}");
    }
    assert_eq!(log_image(&db.pool).await, before, "nothing may be written");

    let o = append_event(&db.pool, &event(owner, &stream, json!({"n": 4})))
        .await
        .expect("owner again");
    assert_eq!(o.seq, 2);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_batch_touching_another_tenants_stream_is_refused_whole_and_names_that_stream() {
    let db = TestDb::new().await;
    let (owner, intruder) = (Uuid::new_v4(), Uuid::new_v4());
    let foreign = order_stream();
    append_event(&db.pool, &event(owner, &foreign, json!({"n": 1})))
        .await
        .expect("owner appends");
    let before = log_image(&db.pool).await;

    let own = order_stream();
    let batch = [
        event(intruder, &own, json!({"n": 1})),
        event(intruder, &foreign, json!({"n": 2})),
        event(intruder, &own, json!({"n": 3})),
    ];
    match append_batch(&db.pool, &batch).await {
        Err(AppendError::StreamOwnedByOtherTenant { stream_key }) => {
            assert_eq!(stream_key, foreign)
        }
        other => panic!("expected StreamOwnedByOtherTenant, got {other:?}"),
    }
    assert_eq!(log_image(&db.pool).await, before, "nothing may be written");
}
