//! Every committed append wakes listeners on channel `robson_events`;
//! an uncommitted or rolled-back one does not.

use robson_eventlog::append_event;
use robson_eventlog::testing::TestDb;
use serde_json::json;
use sqlx::postgres::{PgListener, PgNotification};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::support::{event, order_stream, sql_append, SqlArgs, HANG_GUARD};

async fn next(listener: &mut PgListener) -> PgNotification {
    tokio::time::timeout(HANG_GUARD, listener.recv())
        .await
        .expect("no notification arrived")
        .expect("listener connection")
}

/// Notifications arrive in commit order: one committed now arrives before
/// any notification of a transaction that commits later.
async fn send_sentinel(pool: &PgPool, payload: &str) {
    sqlx::query("SELECT pg_notify('robson_events', $1)")
        .bind(payload)
        .execute(pool)
        .await
        .expect("notify the sentinel");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn an_append_notifies_robson_events_on_commit_and_not_before() {
    let db = TestDb::new().await;
    let mut listener = PgListener::connect(&db.url).await.expect("listener");
    listener.listen("robson_events").await.expect("LISTEN");
    let mut writer = PgConnection::connect(&db.url).await.expect("writer");
    let writer_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut writer)
        .await
        .expect("pid");
    let tenant = Uuid::new_v4();

    let mut tx = writer.begin().await.expect("begin");
    append_event(&mut *tx, &event(tenant, &order_stream(), json!({"n": 1})))
        .await
        .expect("append");
    send_sentinel(&db.pool, "before-commit").await;
    assert_eq!(
        next(&mut listener).await.payload(),
        "before-commit",
        "notified before commit"
    );
    tx.commit().await.expect("commit");
    let n = next(&mut listener).await;
    assert_eq!(
        (n.channel(), n.process_id()),
        ("robson_events", writer_pid as u32)
    );

    let mut tx = writer.begin().await.expect("begin");
    append_event(&mut *tx, &event(tenant, &order_stream(), json!({"n": 2})))
        .await
        .expect("append");
    tx.rollback().await.expect("rollback");
    send_sentinel(&db.pool, "after-rollback").await;
    assert_eq!(
        next(&mut listener).await.payload(),
        "after-rollback",
        "a rollback notified"
    );

    // Plain SQL in autocommit, like psql.
    sql_append(
        &mut writer,
        tenant,
        &order_stream(),
        r#"{"n": 3}"#,
        SqlArgs::default(),
    )
    .await
    .expect("append through SQL");
    let n = next(&mut listener).await;
    assert_eq!(
        (n.channel(), n.process_id()),
        ("robson_events", writer_pid as u32)
    );
}
