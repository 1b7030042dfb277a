//! SIGTERM and SIGINT: stop reading, commit what is in flight, exit 0 within
//! ROBSON_SHUTDOWN_TIMEOUT_SECS; the next run goes on where it stopped
//! (SPEC §4.3).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use robson_eventlog::testing::TestDb;

use crate::support::{
    append_flows, assert_equals_clean_run, projected, wait_caught_up, wait_projected, Daemon,
};

const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// Room for process exit and a busy 2-core machine; only a hang exceeds it.
const MARGIN: Duration = Duration::from_secs(15);

async fn signal_mid_catch_up_then_restart(signal: Signal, seed: u64) {
    let db = TestDb::new().await;
    let total = append_flows(&db.pool, seed, 10_000).await as i64;
    let timeout = SHUTDOWN_TIMEOUT_SECS.to_string();
    let env = [
        ("ROBSON_PARTITIONS", "4"),
        ("ROBSON_BATCH_SIZE", "50"),
        ("ROBSON_SHUTDOWN_TIMEOUT_SECS", timeout.as_str()),
    ];
    let mut daemon = Daemon::start(&db.url, &env).await;
    wait_projected(&db.pool, &mut daemon, total / 5).await;

    daemon.signal(signal);
    let signalled = Instant::now();
    let limit = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS) + MARGIN;
    let status = daemon.wait_exit(limit).await;
    let took = signalled.elapsed();
    assert!(
        status.is_some(),
        "robsond still runs {took:?} after {signal}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after {signal}: {status:?}"
    );
    let done = projected(&db.pool).await;
    eprintln!("{signal}: exited after {took:?} with {done} of {total} events projected");
    drop(daemon);

    let mut daemon = Daemon::start(&db.url, &env).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "2")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn sigterm_mid_catch_up_exits_0_in_time_and_the_restart_loses_and_doubles_nothing() {
    signal_mid_catch_up_then_restart(Signal::SIGTERM, 41).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn sigint_mid_catch_up_exits_0_in_time_and_the_restart_loses_and_doubles_nothing() {
    signal_mid_catch_up_then_restart(Signal::SIGINT, 42).await;
}
