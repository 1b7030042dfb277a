//! Supervision (SPEC §1, §4.1 "Isolation"): a projector actor that panics,
//! or hits a fatal database error in the middle of a batch, is restarted by
//! the supervisor with a growing pause, its partition's `restarts` and
//! `robson_actor_restarts_total{actor="projector"}` count it, the other
//! partitions keep applying meanwhile, and nothing is lost or applied twice.
//! Faults are injected with the `failpoints` feature (src/faults.rs).

use std::time::{Duration, Instant};

use crate::support::TestDb;
use robsond::partition::partition_of;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    append_all, assert_equals_clean_run, event, get_json, get_text, guard_against_hang, http,
    metric_sum, stream, wait_caught_up, Daemon,
};

const PARTITIONS: usize = 4;

/// Pauses before the 1st..4th restart of one projector (`Backoff::delay_for`
/// of the restart count): 200 + 400 + 800 + 1600 ms.
const FOUR_RESTART_PAUSES: Duration = Duration::from_millis(3000);

/// A new account stream key whose partition is `partition`.
fn stream_in(partition: usize) -> String {
    loop {
        let (_, key) = stream("account");
        if partition_of(&key, PARTITIONS) == partition {
            return key;
        }
    }
}

/// Appends `n` balance samples to `key`.
async fn append_balances(pool: &PgPool, tenant: Uuid, key: &str, n: usize) {
    let account = key.trim_start_matches("account:");
    let events: Vec<_> = (0..n)
        .map(|i| {
            let payload = json!({"account_id": account, "asset": "USDT", "free": i.to_string(), "locked": "0"});
            event(tenant, key, "BALANCE_SAMPLED", payload)
        })
        .collect();
    append_all(pool, &events).await;
}

async fn last_seq(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .expect("read progress")
        .unwrap_or(0)
}

async fn wait_seq(pool: &PgPool, daemon: &mut Daemon, key: &str, seq: i64) -> Instant {
    let started = Instant::now();
    while last_seq(pool, key).await < seq {
        daemon.assert_running("while waiting for a stream");
        guard_against_hang(started, &format!("{key} never reached seq {seq}"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Instant::now()
}

/// Each partition's `restarts` in `/health`.
async fn restarts(daemon: &Daemon) -> Vec<u64> {
    let (_, health) = get_json(&http(), &daemon.url("/health")).await;
    health["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["restarts"].as_u64().expect("restarts"))
        .collect()
}

async fn wait_restarted(daemon: &mut Daemon, partition: usize) {
    let started = Instant::now();
    while restarts(daemon).await[partition] == 0 {
        daemon.assert_running("while its projector fails");
        guard_against_hang(started, "the failing projector was never restarted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn projector_restarts_metric(daemon: &Daemon) -> f64 {
    let text = get_text(&http(), &daemon.url("/metrics")).await;
    metric_sum(&text, "robson_actor_restarts_total", r#"actor="projector""#)
}

/// Runs the scenario with `actions` on partition 1's batch point (four
/// failures, then none) and returns the daemon's log.
async fn four_failures_of_one_projector(actions: &str) -> String {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let failing = 1;
    let failpoints = format!("projector-batch-{failing}={actions}");
    let partitions = PARTITIONS.to_string();
    let env = [
        ("ROBSON_PARTITIONS", partitions.as_str()),
        ("FAILPOINTS", failpoints.as_str()),
    ];
    let mut daemon = Daemon::start(&db.url, &env).await;

    let victim = stream_in(failing);
    let appended = Instant::now();
    append_balances(&db.pool, tenant, &victim, 5).await;
    wait_restarted(&mut daemon, failing).await;

    // While partition 1 fails and pauses, the others apply new work.
    for sibling in (0..PARTITIONS).filter(|p| *p != failing) {
        let key = stream_in(sibling);
        append_balances(&db.pool, tenant, &key, 3).await;
        wait_seq(&db.pool, &mut daemon, &key, 3).await;
        assert!(
            restarts(&daemon).await[failing] < 4 && last_seq(&db.pool, &victim).await == 0,
            "partition {sibling} applied only after partition {failing} had recovered"
        );
    }

    let recovered = wait_seq(&db.pool, &mut daemon, &victim, 5).await;
    let took = recovered - appended;
    assert!(
        took >= FOUR_RESTART_PAUSES,
        "recovered after {took:?}: four restarts without their pauses (backoff)"
    );
    let counts = restarts(&daemon).await;
    let expected: Vec<u64> = (0..PARTITIONS)
        .map(|p| if p == failing { 4 } else { 0 })
        .collect();
    assert_eq!(counts, expected, "restarts per partition in /health");
    assert_eq!(projector_restarts_metric(&daemon).await, 4.0);
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    let log = daemon.stderr();
    let none: [(&str, &str); 0] = [];
    assert_equals_clean_run(&db.pool, &db.url, &none).await;
    let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&db.pool)
        .await
        .expect("count dead letters");
    assert_eq!(letters, 0, "a fault of the daemon is never a dead letter");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_panicking_projector_is_restarted_with_backoff_while_its_siblings_apply() {
    let log = four_failures_of_one_projector("4*panic->off").await;
    assert_eq!(
        log.matches("panic while projecting a batch").count(),
        4,
        "each injected panic is caught and logged once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_fatal_error_mid_batch_rolls_the_batch_back_and_restarts_the_projector() {
    let log = four_failures_of_one_projector("4*return->off").await;
    assert_eq!(
        log.matches("division by zero").count(),
        4,
        "each injected fatal error is logged once"
    );
}
