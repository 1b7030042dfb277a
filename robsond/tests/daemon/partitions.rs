//! Changing ROBSON_PARTITIONS is safe (SPEC §4.2), between runs and under
//! running instances: instances started with different counts never stall
//! and never hold partitions they cannot work (SPEC §4.3).

use std::time::{Duration, Instant};

use crate::support::TestDb;
use sqlx::PgPool;

use crate::support::{
    append_flows, assert_equals_clean_run, assert_no_panic, guard_against_hang, http, owners,
    projected, try_get_json, unprojected, wait_caught_up, wait_projected, Daemon, HANG_GUARD,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn changing_the_partition_count_between_runs_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let first = append_flows(&db.pool, 70, 10_000).await as i64;
    let four = [("ROBSON_PARTITIONS", "4"), ("ROBSON_BATCH_SIZE", "50")];
    let mut daemon = Daemon::start(&db.url, &four).await;
    wait_projected(&db.pool, &mut daemon, first / 2).await;
    daemon.stop().await;
    let done = projected(&db.pool).await;
    eprintln!("4 partitions stopped with {done} of {first} events projected");

    append_flows(&db.pool, 71, 3_000).await;
    let seven = [("ROBSON_PARTITIONS", "7"), ("ROBSON_BATCH_SIZE", "50")];
    let mut daemon = Daemon::start(&db.url, &seven).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;

    assert_eq!(
        stored_layout(&db.pool).await,
        vec![7],
        "the checkpoints follow the new partition count"
    );
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "1")]).await;
}

/// The partition counts of the rows of `projection_checkpoints`.
async fn stored_layout(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar("SELECT DISTINCT partition_count FROM projection_checkpoints")
        .fetch_all(pool)
        .await
        .expect("read the checkpoints")
}

/// The layout (partition count) of every partition lock held in the
/// database (the lock key is count × 1024 + partition).
async fn locked_layouts(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT DISTINCT objid::int8 / 1024 FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 2
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND classid = x'524f4232'::int4::oid",
    )
    .fetch_all(pool)
    .await
    .expect("read pg_locks")
}

/// Appends generated flows in small steps until told to stop; returns how
/// many events it appended.
fn writer(
    pool: PgPool,
    seed: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut appended = 0;
        let mut round = 0;
        while !*stop.borrow() {
            appended += append_flows(&pool, seed * 1000 + round, 300).await;
            round += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        appended
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn instances_with_different_partition_counts_agree_on_one_layout_and_converge() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 72, 15_000).await;
    let env = |id: &'static str, partitions: &'static str| {
        [
            ("ROBSON_PARTITIONS", partitions),
            ("ROBSON_INSTANCE_ID", id),
            ("ROBSON_BATCH_SIZE", "20"),
            ("ROBSON_SHUTDOWN_TIMEOUT_SECS", "10"),
        ]
    };
    let (stop_writers, writers_stop) = tokio::sync::watch::channel(false);
    let writers = [
        writer(db.pool.clone(), 73, writers_stop.clone()),
        writer(db.pool.clone(), 74, writers_stop),
    ];
    // Started together: a rolling deploy that changes the count.
    let mut four = Daemon::spawn(&db.url, &env("four", "4"));
    let mut seven = Daemon::spawn(&db.url, &env("seven", "7"));
    four.wait_live().await;
    seven.wait_live().await;

    // Precondition: both run, one layout, both own partitions of it, and
    // work is pending meanwhile.
    let client = http();
    let started = Instant::now();
    let (layout, pending) = loop {
        four.assert_running("while sharing");
        seven.assert_running("while sharing");
        let a = try_get_json(&client, &four.url("/health")).await;
        let b = try_get_json(&client, &seven.url("/health")).await;
        if let (Some((_, a)), Some((_, b))) = (a, b) {
            let (oa, ob) = (owners(&a), owners(&b));
            let both_named = ["four", "seven"]
                .iter()
                .all(|id| oa.iter().chain(&ob).flatten().any(|o| o == id));
            let pending = unprojected(&db.pool).await;
            if oa.len() == ob.len() && both_named && oa.iter().all(Option::is_some) && pending > 0 {
                break (oa.len(), pending);
            }
        }
        guard_against_hang(started, "waiting for both instances to work one layout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "both instances work a layout of {layout} partitions after {:?}, {pending} events pending",
        started.elapsed()
    );
    assert_eq!(stored_layout(&db.pool).await, vec![layout as i32]);
    assert_eq!(locked_layouts(&db.pool).await, vec![layout as i64]);

    // Stop the instance configured with the layout in the database: the
    // other one is then the only one left and switches to its own count.
    let (mut gone, mut survivor, survivor_id, survivor_count) = if layout == 4 {
        (four, seven, "seven", 7)
    } else {
        (seven, four, "four", 4)
    };
    gone.signal(nix::sys::signal::Signal::SIGTERM);
    let status = gone.wait_exit(HANG_GUARD).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}"
    );
    assert_no_panic(&gone, "the instance stopped first");
    stop_writers.send_replace(true);
    for w in writers {
        w.await.expect("a writer");
    }

    wait_caught_up(&db.pool, &mut survivor).await;
    let started = Instant::now();
    loop {
        survivor.assert_running("after the other instance left");
        if let Some((code, health)) = try_get_json(&client, &survivor.url("/health")).await {
            let owners = owners(&health);
            let all_mine = owners.len() == survivor_count
                && owners.iter().all(|o| o.as_deref() == Some(survivor_id));
            if code == 200 && health["lag_events"] == 0 && all_mine {
                break;
            }
        }
        guard_against_hang(
            started,
            "waiting for the survivor to work its own layout, caught up",
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the survivor works {survivor_count} partitions, caught up");
    assert_eq!(stored_layout(&db.pool).await, vec![survivor_count as i32]);
    assert_eq!(locked_layouts(&db.pool).await, vec![survivor_count as i64]);
    survivor.stop().await;
    assert_no_panic(&survivor, "the survivor");
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn an_instance_stopped_while_it_adopts_another_layout_exits_0_without_a_panic() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 75, 10_000).await;
    let four = [("ROBSON_PARTITIONS", "4"), ("ROBSON_BATCH_SIZE", "20")];
    let mut old = Daemon::start(&db.url, &four).await;
    wait_projected(&db.pool, &mut old, 100).await;
    let seven = [("ROBSON_PARTITIONS", "7"), ("ROBSON_BATCH_SIZE", "20")];
    let mut newcomer = Daemon::spawn(&db.url, &seven);
    let started = Instant::now();
    while !newcomer.stderr().contains("re-creating the daemon") {
        newcomer.assert_running("before adopting the layout");
        guard_against_hang(started, "waiting for the newcomer to adopt the layout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    newcomer.signal(nix::sys::signal::Signal::SIGTERM);
    let status = newcomer.wait_exit(HANG_GUARD).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}"
    );
    assert_no_panic(&newcomer, "the newcomer");
    assert_eq!(
        stored_layout(&db.pool).await,
        vec![4],
        "the running layout stays"
    );
    wait_caught_up(&db.pool, &mut old).await;
    old.stop().await;
    assert_no_panic(&old, "the old instance");
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "2")]).await;
}
