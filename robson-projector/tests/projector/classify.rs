//! The one classifier on errors raised by a real server and driver.

use robson_projector::{classify, ErrorClass};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

use crate::support::TestDb;

async fn error_of(conn: &mut PgConnection, sql: &str) -> sqlx::Error {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .expect_err("statement fails")
}

fn raise(sqlstate: &str) -> String {
    format!("DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$")
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn data_errors_from_the_server_are_permanent() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let overflow = error_of(&mut conn, "SELECT 1e13::numeric(20,8)").await;
    assert_eq!(classify(&overflow), ErrorClass::Permanent, "{overflow}");
    sqlx::raw_sql("CREATE TEMP TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .execute(&mut *conn)
        .await
        .expect("setup");
    let unique = error_of(&mut conn, "INSERT INTO t VALUES (1)").await;
    assert_eq!(classify(&unique), ErrorClass::Permanent, "{unique}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn retryable_server_states_are_transient() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    for sqlstate in ["40001", "40P01", "53300", "57P01", "08006"] {
        let err = error_of(&mut conn, &raise(sqlstate)).await;
        assert_eq!(classify(&err), ErrorClass::Transient, "{sqlstate}: {err}");
    }
    let missing = error_of(&mut conn, "SELECT * FROM no_such_table").await;
    assert_eq!(classify(&missing), ErrorClass::Transient, "{missing}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn connection_failures_and_pool_timeouts_are_transient() {
    let refused = PgConnection::connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(classify(&refused), ErrorClass::Transient, "{refused}");

    let db = TestDb::new().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_millis(100))
        .connect(&db.url)
        .await
        .expect("pool");
    let _held = pool.acquire().await.expect("the only connection");
    let timeout = pool.acquire().await.expect_err("pool exhausted");
    assert_eq!(classify(&timeout), ErrorClass::Transient, "{timeout}");
}
