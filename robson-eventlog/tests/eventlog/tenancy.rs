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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn tenants_racing_for_a_new_stream_leave_one_owner_and_refuse_the_others() {
    use std::sync::Arc;
    use tokio::sync::Barrier;
    const TENANTS: usize = 8;
    const ROUNDS: usize = 8;
    let db = TestDb::new().await;
    let barrier = Arc::new(Barrier::new(TENANTS));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TENANTS {
        let (pool, barrier) = (db.pool.clone(), barrier.clone());
        tasks.spawn(async move {
            let tenant = Uuid::from_u128(t as u128 + 1);
            let mut results = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let stream = format!("order:raced:{round}");
                let r = append_event(&pool, &event(tenant, &stream, json!({ "t": t }))).await;
                results.push(match r {
                    Ok(o) => {
                        assert_eq!((o.seq, o.duplicate), (1, false));
                        true
                    }
                    Err(AppendError::StreamOwnedByOtherTenant { stream_key }) => {
                        assert_eq!(stream_key, stream);
                        false
                    }
                    Err(other) => panic!("tenant {t}: {other}"),
                });
            }
            results
        });
    }
    let all: Vec<Vec<bool>> = tasks.join_all().await;
    for round in 0..ROUNDS {
        let winners = all.iter().filter(|r| r[round]).count();
        assert_eq!(winners, 1, "round {round}: one owner");
    }
    assert_eq!(
        crate::support::count_rows(&db.pool, "event_log").await,
        ROUNDS as i64
    );
}
