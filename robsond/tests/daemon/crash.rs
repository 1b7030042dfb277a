//! `kill -9` at any moment loses only an uncommitted transaction (SPEC §4.1).

use crate::support::TestDb;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::support::{
    append_flows, assert_equals_clean_run, projected, unprojected, wait_caught_up, wait_projected,
    Daemon,
};

const KILLS: usize = 10;

/// Events kept waiting before each start, so that every kill lands in the
/// middle of a catch-up however fast the daemon is.
const MIN_BACKLOG: i64 = 12_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn ten_kill_9s_during_a_catch_up_leave_the_tables_of_one_clean_run() {
    let db = TestDb::new().await;
    let mut flows_seed = 1;
    let mut total = append_flows(&db.pool, flows_seed, 20_000).await;
    // Small batches: many commits, so kills land between and inside them.
    let env = [("ROBSON_PARTITIONS", "4"), ("ROBSON_BATCH_SIZE", "50")];
    let seed: u64 = rand::random();
    eprintln!("kill points from seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = projected(&db.pool).await;
    for kill in 1..=KILLS {
        let backlog = unprojected(&db.pool).await;
        if backlog < MIN_BACKLOG {
            flows_seed += 1;
            total += append_flows(&db.pool, flows_seed, (MIN_BACKLOG - backlog) as usize).await;
        }
        let backlog = unprojected(&db.pool).await;
        // The kill point is a state, not a delay: a random share (at most
        // half) of this run's backlog projected, so the daemon worked in
        // this run and work is left whatever the machine's speed.
        let kill_at = done + rng.gen_range(1..=backlog / 2);
        let mut daemon = Daemon::spawn(&db.url, &env);
        wait_projected(&db.pool, &mut daemon, kill_at).await;
        daemon.assert_running("before its kill");
        daemon.kill().await;
        let before = done;
        done = projected(&db.pool).await;
        let left = unprojected(&db.pool).await;
        eprintln!("kill {kill} at {kill_at}: {done} of {total} events projected, {left} left");
        assert!(
            done > before,
            "kill {kill}: nothing was projected in this run"
        );
        assert!(left > 0, "kill {kill} landed after the catch-up ended");
    }
    let mut daemon = Daemon::start(&db.url, &env).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}

/// The largest batches catch-up growth makes: one partition, a base window
/// of 4,000 events (ROBSON_BATCH_SIZE) grown to 16,000 (the poller's
/// `MAX_GROWN_WINDOW`), all one batch, one transaction.
const LARGEST_BATCHES: [(&str, &str); 2] =
    [("ROBSON_PARTITIONS", "1"), ("ROBSON_BATCH_SIZE", "4000")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn kill_9s_during_a_catch_up_in_the_largest_batches_leave_the_tables_of_one_clean_run() {
    let db = TestDb::new().await;
    let mut flows_seed = 100;
    let mut total = append_flows(&db.pool, flows_seed, 80_000).await;
    let seed: u64 = rand::random();
    eprintln!("kill delays from seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut grown = false;
    for kill in 1..=3 {
        let backlog = unprojected(&db.pool).await;
        if backlog < 40_000 {
            flows_seed += 1;
            total += append_flows(&db.pool, flows_seed, (40_000 - backlog) as usize).await;
        }
        let mut daemon = Daemon::spawn(&db.url, &LARGEST_BATCHES);
        daemon.wait_live().await;
        let before = projected(&db.pool).await;
        // Kill once the first grown batch committed, at a random moment of
        // the next ones (so during or between large transactions).
        let client = crate::support::http();
        let started = std::time::Instant::now();
        loop {
            daemon.assert_running("before its kill");
            let metrics = crate::support::get_text(&client, &daemon.url("/metrics")).await;
            let count = crate::support::metric_sum(&metrics, "robson_batch_size_count", "");
            let sum = crate::support::metric_sum(&metrics, "robson_batch_size_sum", "");
            if count > 0.0 && sum / count > 4_000.0 {
                grown = true;
                break;
            }
            if count >= 3.0 || started.elapsed() > std::time::Duration::from_secs(120) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..=800))).await;
        daemon.assert_running("before its kill");
        daemon.kill().await;
        let done = projected(&db.pool).await;
        eprintln!("kill {kill}: {before} → {done} of {total} events projected");
    }
    assert!(
        grown,
        "no batch larger than ROBSON_BATCH_SIZE was ever projected"
    );
    let mut daemon = Daemon::start(&db.url, &LARGEST_BATCHES).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}

/// Appends `events` in transactions of `per_append` events, `pause` apart:
/// a live load, whose reads each the poller splits over the partitions.
async fn append_slowly(
    pool: sqlx::PgPool,
    events: Vec<robson_eventlog::Event>,
    per_append: usize,
    pause: std::time::Duration,
) {
    for chunk in events.chunks(per_append) {
        robson_eventlog::append_batch(&pool, chunk)
            .await
            .expect("append a few events");
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn kill_9s_under_a_live_load_of_grouped_small_batches_leave_the_tables_of_one_clean_run() {
    let db = TestDb::new().await;
    let seed: u64 = rand::random();
    eprintln!("kill moments from seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Eight partitions (the default) and small appends: most batches are
    // a few events, committed in groups.
    let env = [("ROBSON_PARTITIONS", "8")];
    let load = tokio::spawn(append_slowly(
        db.pool.clone(),
        crate::support::flows(7, 20_000),
        12,
        std::time::Duration::from_millis(4),
    ));
    let mut committed_in_groups = 0.0;
    for kill in 1..=4 {
        let mut daemon = Daemon::spawn(&db.url, &env);
        daemon.wait_live().await;
        let started = std::time::Instant::now();
        // At least one group committed in this run, then a random moment.
        while crate::support::grouped(&daemon, "committed").await == 0.0 {
            daemon.assert_running("before a group committed");
            crate::support::guard_against_hang(started, "no group of batches ever committed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..=400))).await;
        daemon.assert_running("before its kill");
        committed_in_groups += crate::support::grouped(&daemon, "committed").await;
        daemon.kill().await;
        eprintln!(
            "kill {kill}: {} events projected, {committed_in_groups} batches committed in groups so far",
            projected(&db.pool).await
        );
    }
    let mut daemon = Daemon::start(&db.url, &env).await;
    load.await.expect("the load ran to its end");
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    assert!(committed_in_groups > 0.0);
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}
