//! The fixtures end to end (trading-small, made by hand outside the project,
//! and trading-medium, generated with an independent oracle by
//! scripts/fixtures/trading_medium.py): every request appended through SQL
//! `append_event` (as a writer in any language would), projected by the real
//! `robsond run`, and compared with the fixture's expected tables, dead
//! letters, parked streams and waiting events — data the project did not
//! produce, so the rules are judged at the daemon level too, not only
//! against another run of the same code.

use crate::support::TestDb;
use robson_projector::testing::Fixture;
use robson_projector::PoisonPolicy;
use serde_json::Value;
use sqlx::PgConnection;

use crate::support::{wait_caught_up, Daemon};

/// Appends one request line with SQL `append_event`, exactly as the
/// fixture's README says; returns (seq, duplicate).
async fn append_with_sql(conn: &mut PgConnection, request: &Value) -> (i64, bool) {
    let text = |field: &str| request[field].as_str().map(str::to_owned);
    sqlx::query_as(
        "SELECT seq, duplicate FROM append_event(
             p_tenant_id => $1::uuid, p_stream_key => $2, p_event_type => $3,
             p_payload => $4::jsonb, p_occurred_at => $5::timestamptz,
             p_command_id => $6::uuid)",
    )
    .bind(text("tenant_id"))
    .bind(text("stream_key"))
    .bind(text("event_type"))
    // The payload as written in the file: numbers keep their literal.
    .bind(request["payload"].to_string())
    .bind(text("occurred_at"))
    .bind(text("command_id"))
    .fetch_one(conn)
    .await
    .unwrap_or_else(|e| panic!("append_event {request}: {e}"))
}

async fn replay_through_the_daemon(name: &'static str, policy: PoisonPolicy) {
    let fixture = Fixture::load(name, policy);
    let db = TestDb::new().await;
    let mut outcomes = Vec::with_capacity(fixture.requests.len());
    // A few hundred lines per transaction (grouping does not matter, says
    // the README; a commit per line would dominate the test's time).
    for chunk in fixture.requests.chunks(250) {
        let mut tx = db.pool.begin().await.expect("begin");
        for request in chunk {
            outcomes.push(append_with_sql(&mut tx, request).await);
        }
        tx.commit().await.expect("commit");
    }
    fixture.assert_appended(&db.pool, &outcomes).await;

    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ON_POISON", policy.as_str())]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    let label = format!("robsond run, ROBSON_ON_POISON={}", policy.as_str());
    fixture.assert_projected(&db.pool, &label).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn trading_small_through_sql_and_the_daemon_gives_the_expected_tables_when_parking() {
    replay_through_the_daemon("trading-small", PoisonPolicy::Park).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn trading_small_through_sql_and_the_daemon_gives_the_expected_tables_when_skipping() {
    replay_through_the_daemon("trading-small", PoisonPolicy::Skip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn trading_medium_through_sql_and_the_daemon_gives_the_expected_tables_when_parking() {
    replay_through_the_daemon("trading-medium", PoisonPolicy::Park).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn trading_medium_through_sql_and_the_daemon_gives_the_expected_tables_when_skipping() {
    replay_through_the_daemon("trading-medium", PoisonPolicy::Skip).await;
}
