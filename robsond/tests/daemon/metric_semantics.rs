//! Metrics count what their names say (docs/metrics.md):
//! `robson_events_dead_lettered_total` counts dead-letter rows written, so a
//! retry that fails again does not count twice; a failed ownership round is
//! a database error; and an idle, healthy daemon shows only `poll` wake-ups.

use std::time::{Duration, Instant};

use crate::support::TestDb;
use uuid::Uuid;

use crate::http_doc::append_balance;
use crate::poison::{append_acked_before_submitted, PARKED_SEQ};
use crate::support::{
    get_text, guard_against_hang, http, metric_sum, robsond, texts, wait_for_stream, Daemon,
};

async fn metric(daemon: &Daemon, name: &str, label: &str) -> f64 {
    metric_sum(
        &get_text(&http(), &daemon.url("/metrics")).await,
        name,
        label,
    )
}

/// Waits until `name{label}` is at least `want`.
async fn wait_metric(daemon: &Daemon, name: &str, label: &str, want: f64) {
    let started = Instant::now();
    while metric(daemon, name, label).await < want {
        guard_against_hang(started, &format!("{name}{{{label}}} reaching {want}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_retry_that_fails_again_is_not_a_second_dead_letter() {
    let db = TestDb::new().await;
    let (_, key) = append_acked_before_submitted(&db.pool, Uuid::new_v4()).await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 1_i64).await;
    let name = "robson_events_dead_lettered_total";
    let kind = "error_kind=\"invariant_violation\"";
    wait_metric(&daemon, name, kind, 1.0).await;

    let out = robsond(&["streams", "retry", &key], &[("DATABASE_URL", &db.url)]).await;
    assert!(out.status.success(), "retry: {:?}", texts(&out));
    let attempts = "SELECT attempts FROM projection_dead_letters WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &key, attempts, 2_i32).await;
    wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 1_i64).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&db.pool)
        .await
        .expect("count dead letters");
    assert_eq!(rows, 1);
    assert_eq!(
        metric(&daemon, name, "").await,
        rows as f64,
        "one row, one count"
    );
    assert!(
        daemon.stderr().contains("failed again"),
        "the repeat is logged as such"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_failed_ownership_round_is_counted_as_a_database_error() {
    let db = TestDb::new().await;
    let daemon = Daemon::start(&db.url, &[("ROBSON_INSTANCE_ID", "round")]).await;
    let name = "robson_db_errors_total";
    let before = metric(&daemon, name, "").await;
    // End the coordination session only (the poller and the pool live on).
    let started = Instant::now();
    loop {
        let ended: Option<bool> = sqlx::query_scalar(
            "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name = 'robsond:round'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("terminate the coordination session");
        if ended == Some(true) {
            break;
        }
        guard_against_hang(started, "the coordination session appearing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    while !daemon.stderr().contains("Partition ownership round failed") {
        guard_against_hang(started, "the ownership round failing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_metric(&daemon, name, "", before + 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn an_idle_healthy_daemon_shows_only_poll_wakeups_until_an_append() {
    let db = TestDb::new().await;
    let daemon = Daemon::start(&db.url, &[]).await;
    let name = "robson_poller_wakeups_total";
    wait_metric(&daemon, name, "source=\"poll\"", 3.0).await;
    assert_eq!(metric(&daemon, name, "source=\"notify\"").await, 0.0);
    append_balance(&db.pool, Uuid::new_v4()).await;
    wait_metric(&daemon, name, "source=\"notify\"", 1.0).await;
}
