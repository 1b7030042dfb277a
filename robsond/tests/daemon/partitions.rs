//! Changing ROBSON_PARTITIONS between runs is safe (SPEC §4.2).

use robson_eventlog::testing::TestDb;

use crate::support::{
    append_flows, assert_equals_clean_run, projected, wait_caught_up, wait_projected, Daemon,
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

    let counts: Vec<i32> =
        sqlx::query_scalar("SELECT DISTINCT partition_count FROM projection_checkpoints")
            .fetch_all(&db.pool)
            .await
            .expect("read the checkpoints");
    assert_eq!(
        counts,
        vec![7],
        "the checkpoints follow the new partition count"
    );
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "1")]).await;
}
