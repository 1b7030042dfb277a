//! Helpers shared by the tests: events, appends through plain SQL (as psql
//! or Python writers do), SQLSTATE checks and table fingerprints.

use std::time::{Duration, Instant};

use chrono::Utc;
use robson_eventlog::testing::{admin_url, url_with_database};
use robson_eventlog::Event;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// How long a liveness loop may wait before it calls the system stuck. Never
/// reached when things work; it only turns a hang into a failure.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// A fresh stream key of the `order:<uuid>` shape.
pub fn order_stream() -> String {
    format!("order:{}", Uuid::new_v4())
}

/// An event with only the required fields.
pub fn event(tenant: Uuid, stream: &str, payload: Value) -> Event {
    Event::new(tenant, stream, "ORDER_SUBMITTED", payload, Utc::now())
}

/// One row returned by SQL `append_event`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SqlOutcome {
    pub event_id: Uuid,
    pub seq: i64,
    pub global_position: i64,
    pub duplicate: bool,
}

/// Optional arguments of SQL `append_event`.
#[derive(Debug, Clone, Default)]
pub struct SqlArgs<'a> {
    pub expected_seq: Option<i64>,
    pub command_id: Option<Uuid>,
    pub idempotency_key: Option<&'a str>,
}

/// Appends through the SQL function, the payload sent as JSON text.
pub async fn sql_append<'c>(
    executor: impl PgExecutor<'c>,
    tenant: Uuid,
    stream: &str,
    payload: &str,
    args: SqlArgs<'_>,
) -> Result<SqlOutcome, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM append_event($1, $2, 'ORDER_SUBMITTED', $3::jsonb, \
             p_expected_seq => $4, p_command_id => $5, p_idempotency_key => $6)",
    )
    .bind(tenant)
    .bind(stream)
    .bind(payload)
    .bind(args.expected_seq)
    .bind(args.command_id)
    .bind(args.idempotency_key)
    .fetch_one(executor)
    .await
}

/// SQLSTATE and message of a database error; panics on any other error.
pub fn sqlstate(err: &sqlx::Error) -> (String, String) {
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("expected a database error, got {err:?}"));
    (
        db.code().map(|c| c.into_owned()).unwrap_or_default(),
        db.message().to_owned(),
    )
}

/// The whole content of a table as one JSON value, to show it did not change.
pub async fn table_image<'c>(executor: impl PgExecutor<'c>, table: &str) -> Value {
    let sql = format!(
        "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]'::jsonb) \
           FROM {table} t"
    );
    sqlx::query_scalar::<_, sqlx::types::Json<Value>>(&sql)
        .fetch_one(executor)
        .await
        .unwrap_or_else(|e| panic!("read {table}: {e}"))
        .0
}

/// `SELECT count(*)` of a query's FROM part, e.g. `count_rows(db, "event_log")`.
pub async fn count_rows<'c>(executor: impl PgExecutor<'c>, from: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {from}"))
        .fetch_one(executor)
        .await
        .unwrap_or_else(|e| panic!("count {from}: {e}"))
}

/// The stream's last seq (0 when it does not exist).
pub async fn last_seq<'c>(executor: impl PgExecutor<'c>, stream: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce((SELECT last_seq FROM event_streams WHERE stream_key = $1), 0)",
    )
    .bind(stream)
    .fetch_one(executor)
    .await
    .expect("read the stream head")
}

/// A new database with nothing in it (not even the schema); returns its URL.
pub async fn empty_database() -> String {
    let admin = admin_url();
    let name = format!("robson_empty_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create an empty database");
    conn.close().await.expect("close the admin connection");
    url_with_database(&admin, &name)
}

/// Panics with `what` once [`HANG_GUARD`] has passed since `started`.
pub fn guard_against_hang(started: Instant, what: &str) {
    assert!(started.elapsed() < HANG_GUARD, "stuck: {what}");
}

/// The idempotency key stored with an event.
pub async fn stored_key(pool: &PgPool, event_id: Uuid) -> String {
    sqlx::query_scalar("SELECT idempotency_key FROM event_log WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("read the stored key")
}

/// The key SQL `robson_idempotency_key` computes.
pub async fn sql_key(
    pool: &PgPool,
    tenant: Uuid,
    stream: &str,
    command: Option<Uuid>,
    payload: &Value,
) -> String {
    sqlx::query_scalar("SELECT robson_idempotency_key($1, $2, $3, $4::jsonb)")
        .bind(tenant)
        .bind(stream)
        .bind(command)
        .bind(payload.to_string())
        .fetch_one(pool)
        .await
        .expect("robson_idempotency_key")
}

/// Reads from the start until `n` committed events are readable. Every test
/// shares one cluster, and the commit-safe read waits for any transaction
/// open anywhere on it (another test's), so visibility may lag a little.
pub async fn read_committed_until(pool: &PgPool, n: usize) -> usize {
    let started = Instant::now();
    loop {
        let got = robson_eventlog::read_committed(
            &mut pool.acquire().await.expect("connection"),
            robson_eventlog::Position::START,
            n as i64 + 10,
        )
        .await
        .expect("read_committed")
        .len();
        if got >= n || started.elapsed() > std::time::Duration::from_secs(30) {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
