//! The NOTIFY wake-up (SPEC §2.2, §4.1 "Latency"): with a poll interval of
//! ten minutes, only `LISTEN robson_events` can make an append visible
//! within seconds. A daemon that never listened, or never listened again
//! after losing its listening connection, fails here.
//!
//! In this binary (one test at a time, nothing else on the cluster):
//! commit-safe reading waits for the oldest open transaction of the whole
//! cluster, so another test's long transaction would hold the read back
//! and make a latency bound meaningless.

use std::time::{Duration, Instant};

use crate::TestDb;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    get_text, guard_against_hang, http, metric_sum, stream, wait_caught_up, Daemon,
};

/// Ten minutes: the fallback poll can never explain a wake-up in a test.
const NO_POLLING: &str = "600000";

/// How soon an append must be projected when the daemon is caught up. With
/// polling every ten minutes any bound far below that proves the wake-up;
/// 5 s leaves room for a loaded CI machine (measured: a few milliseconds;
/// latency figures come from `robsond bench`, not from this test).
const VISIBLE_WITHIN: Duration = Duration::from_secs(5);

const NOTIFY: &str = r#"source="notify""#;

/// Appends one balance sample to a new account stream through SQL
/// `append_event` (as any writer would) and returns the stream key.
async fn append_balance(pool: &PgPool, tenant: Uuid) -> String {
    let (account, key) = stream("account");
    let payload = json!({"account_id": account, "asset": "USDT", "free": "10", "locked": "0"});
    sqlx::query("SELECT * FROM append_event($1, $2, 'BALANCE_SAMPLED', $3)")
        .bind(tenant)
        .bind(&key)
        .bind(payload)
        .execute(pool)
        .await
        .expect("append_event");
    key
}

/// How long `key`'s first event took to be projected, failing past
/// [`VISIBLE_WITHIN`] (a hang guard would only say "stuck").
async fn time_to_visible(
    pool: &PgPool,
    daemon: &mut Daemon,
    key: &str,
    since: Instant,
) -> Duration {
    loop {
        daemon.assert_running("while waiting for a notified event");
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1",
        )
        .bind(key)
        .fetch_optional(pool)
        .await
        .expect("read progress");
        if seq == Some(1) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < VISIBLE_WITHIN,
            "{key} not projected within {VISIBLE_WITHIN:?} with polling every 10 minutes: \
             the NOTIFY wake-up does not work"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn notify_wakeups(daemon: &Daemon) -> f64 {
    let text = get_text(&http(), &daemon.url("/metrics")).await;
    metric_sum(&text, "robson_poller_wakeups_total", NOTIFY)
}

/// The backends of this database whose last statement was a LISTEN.
async fn listening_backends(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'robsond'
            AND query ILIKE 'LISTEN%' ORDER BY pid",
    )
    .fetch_all(pool)
    .await
    .expect("read pg_stat_activity")
}

/// Waits until the daemon has a listening backend other than `old`.
async fn wait_listening(pool: &PgPool, daemon: &mut Daemon, old: Option<i32>) -> i32 {
    let started = Instant::now();
    loop {
        daemon.assert_running("while waiting for its LISTEN");
        if let Some(pid) = listening_backends(pool)
            .await
            .into_iter()
            .find(|p| Some(*p) != old)
        {
            return pid;
        }
        guard_against_hang(started, "the daemon never LISTENed (again)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three appends, each visible within [`VISIBLE_WITHIN`]; the notify counter grows by
/// at least one per append.
async fn assert_woken_by_notify(pool: &PgPool, daemon: &mut Daemon, tenant: Uuid) {
    for _ in 0..3 {
        let before = notify_wakeups(daemon).await;
        let since = Instant::now();
        let key = append_balance(pool, tenant).await;
        let took = time_to_visible(pool, daemon, &key, since).await;
        // The poller may have read the event on a re-read (events held
        // behind a projector's open transaction) before it took the
        // notification from its buffer: wait for the count, bounded.
        let counted = Instant::now();
        while notify_wakeups(daemon).await <= before {
            assert!(
                counted.elapsed() < VISIBLE_WITHIN,
                "{key} projected after {took:?} but robson_poller_wakeups_total{{{NOTIFY}}} \
                 stayed at {before}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn appends_are_projected_within_seconds_by_notify_alone_with_a_ten_minute_poll() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_POLL_INTERVAL_MS", NO_POLLING)]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    wait_listening(&db.pool, &mut daemon, None).await;
    assert_woken_by_notify(&db.pool, &mut daemon, Uuid::new_v4()).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_killed_listen_connection_is_replaced_and_latency_comes_back() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_POLL_INTERVAL_MS", NO_POLLING)]).await;
    let tenant = Uuid::new_v4();
    wait_caught_up(&db.pool, &mut daemon).await;
    let first = wait_listening(&db.pool, &mut daemon, None).await;
    assert_woken_by_notify(&db.pool, &mut daemon, tenant).await;

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&db.pool)
        .await
        .expect("pg_terminate_backend");
    assert!(terminated, "the LISTEN backend {first} was not terminated");

    let second = wait_listening(&db.pool, &mut daemon, Some(first)).await;
    assert_ne!(first, second);
    assert_woken_by_notify(&db.pool, &mut daemon, tenant).await;
    daemon.stop().await;
}
