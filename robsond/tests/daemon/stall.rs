//! A loop that stops completing cycles while work is pending must never look
//! healthy (SPEC §4.4), and the metrics must be valid Prometheus text.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::TestDb;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;

use crate::support::{
    append_flows, get_json, get_text, guard_against_hang, http, wait_caught_up, Daemon,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_projector_stuck_in_a_batch_turns_health_503_and_recovers() {
    let db = TestDb::new().await;
    let env = [
        ("ROBSON_PARTITIONS", "2"),
        ("ROBSON_POLL_INTERVAL_MS", "200"),
    ];
    let mut daemon = Daemon::start(&db.url, &env).await;
    append_flows(&db.pool, 21, 200).await;
    wait_caught_up(&db.pool, &mut daemon).await;

    // Another session keeps the orders table from being written: the next
    // batch blocks on it, with work pending, and its projector completes no
    // cycle. (SHARE mode gives the blocker no transaction id, so it does not
    // hold back the commit-safe read itself: the events are read and handed
    // to the projector, which then hangs.)
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query("LOCK TABLE orders_current IN SHARE MODE")
        .execute(&mut blocker)
        .await
        .expect("lock");
    append_flows(&db.pool, 22, 200).await;
    let client = http();
    let started = Instant::now();
    let reasons = loop {
        let (code, health) = get_json(&client, &daemon.url("/health")).await;
        if code == 503 {
            break health["reasons"].to_string();
        }
        guard_against_hang(started, "waiting for /health to report the stall");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(reasons.contains("no cycle completed"), "{reasons}");
    let (live, _) = get_json(&client, &daemon.url("/health/live")).await;
    assert_eq!(live, 200, "liveness must not fail because of a stall");

    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("release");
    wait_caught_up(&db.pool, &mut daemon).await;
    let started = Instant::now();
    loop {
        let (code, _) = get_json(&client, &daemon.url("/health")).await;
        if code == 200 {
            break;
        }
        guard_against_hang(started, "waiting for /health to recover");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and promtool"]
async fn promtool_accepts_the_metrics_output() {
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    append_flows(&db.pool, 23, 300).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    let text = get_text(&http(), &daemon.url("/metrics")).await;
    daemon.stop().await;
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package `prometheus`; .ci/run installs it)");
    let mut stdin = promtool.stdin.take().expect("stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .expect("write metrics");
    drop(stdin);
    let out = promtool.wait_with_output().await.expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lint remarks (e.g. naming advice) are printed but only errors fail.
    assert!(out.status.success(), "promtool check metrics: {report}");
}
