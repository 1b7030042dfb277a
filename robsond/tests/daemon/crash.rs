//! `kill -9` at any moment loses only an uncommitted transaction (SPEC §4.1).

use std::time::Duration;

use rand::{rngs::StdRng, Rng, SeedableRng};
use robson_eventlog::testing::TestDb;

use crate::support::{
    append_flows, assert_equals_clean_run, projected, unprojected, wait_caught_up, Daemon,
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
    eprintln!("kill delays from seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for kill in 1..=KILLS {
        let backlog = unprojected(&db.pool).await;
        if backlog < MIN_BACKLOG {
            flows_seed += 1;
            total += append_flows(&db.pool, flows_seed, (MIN_BACKLOG - backlog) as usize).await;
        }
        let mut daemon = Daemon::spawn(&db.url, &env);
        let delay = Duration::from_millis(rng.gen_range(200..=1500));
        tokio::time::sleep(delay).await;
        daemon.assert_running("before its kill");
        daemon.kill().await;
        let done = projected(&db.pool).await;
        eprintln!("kill {kill} after {delay:?}: {done} of {total} events projected");
    }
    let mut daemon = Daemon::start(&db.url, &env).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}
