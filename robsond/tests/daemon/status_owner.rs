//! `robsond status` names the real owner of each partition — the instance
//! holding its advisory lock — with two real instances and a `kill -9`, and
//! marks the last committer stale when it no longer holds the partition or
//! nobody does.

use std::time::{Duration, Instant};

use crate::support::TestDb;
use serde_json::Value;

use crate::support::{
    append_flows, get_json, guard_against_hang, http, owners, robsond, texts, wait_caught_up,
    Daemon,
};

fn env(id: &'static str) -> [(&'static str, &'static str); 2] {
    [("ROBSON_PARTITIONS", "4"), ("ROBSON_INSTANCE_ID", id)]
}

/// `robsond status --json`'s partitions.
async fn status(url: &str) -> Vec<Value> {
    let out = robsond(&["status", "--json"], &[("DATABASE_URL", url)]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "status failed: {stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("status --json is JSON");
    doc["partitions"].as_array().expect("partitions").clone()
}

fn status_owners(partitions: &[Value]) -> Vec<Option<String>> {
    partitions
        .iter()
        .map(|p| p["owner"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `daemon`'s /health shows every partition owned by one of
/// `alive`, each of them owning at least one; returns those owners.
async fn wait_owned_by(daemon: &Daemon, alive: &[&str]) -> Vec<Option<String>> {
    let client = http();
    let started = Instant::now();
    loop {
        let (_, health) = get_json(&client, &daemon.url("/health")).await;
        let owners = owners(&health);
        let all = owners.len() == 4
            && owners
                .iter()
                .all(|o| o.as_deref().is_some_and(|o| alive.contains(&o)));
        let each = alive
            .iter()
            .all(|id| owners.iter().any(|o| o.as_deref() == Some(*id)));
        if all && each {
            return owners;
        }
        guard_against_hang(
            started,
            &format!("partitions owned by {alive:?}: {owners:?}"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn status_shows_the_lock_holder_and_marks_stale_committers_after_a_kill() {
    let db = TestDb::new().await;
    let mut b1 = Daemon::start(&db.url, &env("b1")).await;
    let mut b2 = Daemon::start(&db.url, &env("b2")).await;
    let shared = wait_owned_by(&b1, &["b1", "b2"]).await;
    // Events in every partition, so each one's holder commits its checkpoint.
    append_flows(&db.pool, 5, 2_000).await;
    wait_caught_up(&db.pool, &mut b1).await;

    // Both alive: status agrees with /health, which reads the same locks.
    let started = Instant::now();
    loop {
        let partitions = status(&db.url).await;
        let (_, health) = get_json(&http(), &b1.url("/health")).await;
        if status_owners(&partitions) == owners(&health) {
            break;
        }
        guard_against_hang(started, "status and /health agreeing on the owners");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b2_held: Vec<usize> = shared
        .iter()
        .enumerate()
        .filter(|(_, o)| o.as_deref() == Some("b2"))
        .map(|(p, _)| p)
        .collect();
    assert!(!b2_held.is_empty(), "b2 owns nothing: {shared:?}");

    // kill -9 b2: b1 takes everything; status must say b1, never b2.
    b2.kill().await;
    wait_owned_by(&b1, &["b1"]).await;
    let partitions = status(&db.url).await;
    assert_eq!(
        status_owners(&partitions),
        vec![Some("b1".to_owned()); 4],
        "{partitions:?}"
    );
    for p in &partitions {
        let committer = p["last_committed_by"].as_str();
        assert_eq!(
            p["stale"].as_bool(),
            Some(committer != Some("b1")),
            "stale marks a committer that is not the holder: {p}"
        );
    }
    let out = robsond(&["status"], &[("DATABASE_URL", &db.url)]).await;
    let (text, _) = texts(&out);
    assert!(text.contains("tx_id/global_position"), "{text}");
    assert!(!text.contains("owner b2"), "{text}");
    assert_eq!(text.matches("owner b1").count(), 4, "{text}");

    // Nobody left: no owner anywhere, every committer stale.
    b1.kill().await;
    let started = Instant::now();
    loop {
        let partitions = status(&db.url).await;
        if status_owners(&partitions).iter().all(Option::is_none) {
            assert!(
                partitions.iter().all(|p| p["stale"] == Value::Bool(true)),
                "{partitions:?}"
            );
            break;
        }
        guard_against_hang(started, "the killed instances' locks being released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = robsond(&["status"], &[("DATABASE_URL", &db.url)]).await;
    let (text, _) = texts(&out);
    assert_eq!(text.matches("nobody holds it").count(), 4, "{text}");
}
