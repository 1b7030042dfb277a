//! Several instances on one database (SPEC §4.1): they share the partitions,
//! take over a killed instance's partitions within seconds, rebalance when
//! one joins, and together apply every event exactly once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::TestDb;

use crate::support::{
    append_flows, assert_equals_clean_run, get_json, get_text, guard_against_hang, http,
    metric_sum, owners, wait_caught_up, Daemon,
};

const PARTITIONS: &str = "8";

/// Waits until every partition has an owner among `alive` and the partitions
/// are balanced (each owns floor or ceil of 8 / alive); returns the owners.
/// Rebalancing is gradual (an instance drains before it releases, a taker
/// waits for its next round), so a merely "all named" state can be transient.
async fn wait_shared_by(daemon: &Daemon, alive: &[&str]) -> Vec<Option<String>> {
    let client = http();
    let started = Instant::now();
    loop {
        let (_, health) = get_json(&client, &daemon.url("/health")).await;
        let owners = owners(&health);
        let named: BTreeSet<&str> = owners.iter().flatten().map(String::as_str).collect();
        let all_owned = owners.len() == 8 && owners.iter().all(Option::is_some);
        let mut counts = alive
            .iter()
            .map(|id| owners.iter().filter(|o| o.as_deref() == Some(*id)).count());
        let (low, high) = (8 / alive.len(), 8_usize.div_ceil(alive.len()));
        let balanced = counts.all(|n| (low..=high).contains(&n));
        if all_owned && balanced && named == alive.iter().copied().collect() {
            return owners;
        }
        guard_against_hang(started, "waiting for the partitions to be shared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn three_instances_share_partitions_survive_a_kill_and_a_join_and_apply_each_event_once() {
    let db = TestDb::new().await;
    let total = append_flows(&db.pool, 11, 20_000).await;
    let env = |id: &'static str| {
        [
            ("ROBSON_PARTITIONS", PARTITIONS),
            ("ROBSON_INSTANCE_ID", id),
            ("ROBSON_BATCH_SIZE", "100"),
        ]
    };
    let mut a = Daemon::start(&db.url, &env("a")).await;
    let mut b = Daemon::start(&db.url, &env("b")).await;
    let mut c = Daemon::start(&db.url, &env("c")).await;
    let shared = wait_shared_by(&a, &["a", "b", "c"]).await;
    let b_owned = shared.iter().filter(|o| o.as_deref() == Some("b")).count();
    assert!(
        (2..=3).contains(&b_owned),
        "b owns {b_owned} of 8: {shared:?}"
    );

    // Kill b in the middle of the catch-up; a and c take its partitions.
    let total = total + append_flows(&db.pool, 12, 10_000).await;
    let client = http();
    let before_kill = processed(&get_text(&client, &b.url("/metrics")).await);
    let rounds_at_kill = rounds(&a).await;
    b.kill().await;
    let killed = Instant::now();
    wait_shared_by(&a, &["a", "c"]).await;
    // Counted in the survivors' ownership rounds (one a second), not in
    // wall-clock time, so a busy machine cannot fail it: the locks die with
    // b's session, and the next rounds take them.
    let takeover = rounds(&a).await - rounds_at_kill;
    eprintln!(
        "takeover after kill -9: {takeover} rounds, {:?}",
        killed.elapsed()
    );
    assert!(takeover <= MAX_ROUNDS, "takeover took {takeover} rounds");

    // d joins later: the partitions are rebalanced over three again.
    let total = total + append_flows(&db.pool, 13, 10_000).await;
    let mut d = Daemon::start(&db.url, &env("d")).await;
    let joined = Instant::now();
    let rounds_at_join = rounds(&a).await;
    let rebalanced = wait_shared_by(&a, &["a", "c", "d"]).await;
    let rebalance = rounds(&a).await - rounds_at_join;
    eprintln!(
        "after d joined ({rebalance} rounds, {:?}): {rebalanced:?}",
        joined.elapsed()
    );
    assert!(
        rebalance <= MAX_ROUNDS,
        "rebalancing took {rebalance} rounds"
    );
    wait_caught_up(&db.pool, &mut a).await;

    // Each event counted once at most: b's count up to its last scrape plus
    // the survivors' counts never exceed the events appended (events b
    // applied after that scrape are skipped by the others as already applied).
    let mut counted = before_kill;
    for daemon in [&a, &c, &d] {
        let text = get_text(&client, &daemon.url("/metrics")).await;
        counted += processed(&text);
        let owned = metric_sum(&text, "robson_partitions_owned", "");
        assert!(owned >= 2.0, "an instance owns {owned} partitions");
    }
    assert!(
        counted <= total as f64,
        "{counted} applications for {total} events"
    );
    eprintln!("{counted} applications counted for {total} events");
    for daemon in [&mut a, &mut c, &mut d] {
        daemon.stop().await;
    }
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", PARTITIONS)]).await;
}

/// Ownership rounds within which a takeover or a rebalancing is done: a
/// taker needs one round once the locks are free, a giver drains its
/// partition first (a batch or two), so a few rounds leave room to spare.
const MAX_ROUNDS: f64 = 5.0;

/// Ownership rounds `daemon` has completed.
async fn rounds(daemon: &Daemon) -> f64 {
    let text = get_text(&http(), &daemon.url("/metrics")).await;
    metric_sum(&text, "robson_ownership_rounds_total", "")
}

/// Events a daemon applied, skipped as unhandled or dead-lettered.
fn processed(metrics: &str) -> f64 {
    metric_sum(metrics, "robson_events_applied_total", "")
        + metric_sum(
            metrics,
            "robson_events_skipped_total",
            "reason=\"unhandled_type\"",
        )
        + metric_sum(metrics, "robson_events_dead_lettered_total", "")
}
