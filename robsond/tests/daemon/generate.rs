//! `robsond generate`: deterministic for a seed, and its flows project with
//! no dead letter.

use crate::support::TestDb;

use crate::support::{robsond, texts, wait_caught_up, Daemon};

/// The log a generate run leaves, without database-assigned ids and times.
async fn log_of(db: &TestDb) -> Vec<(String, i64, String, String, String)> {
    sqlx::query_as(
        "SELECT stream_key, seq, event_type, payload::text, occurred_at::text
           FROM event_log ORDER BY stream_key, seq",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn generate_is_deterministic_for_a_seed_and_projects_without_dead_letters() {
    let first = TestDb::new().await;
    let second = TestDb::new().await;
    for db in [&first, &second] {
        let out = robsond(
            &[
                "generate",
                "--orders",
                "300",
                "--tenants",
                "3",
                "--seed",
                "7",
            ],
            &[("DATABASE_URL", db.url.as_str())],
        )
        .await;
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "generate failed: {stdout}{stderr}");
    }
    let log = log_of(&first).await;
    assert!(
        log.len() > 2000,
        "300 orders gave only {} events",
        log.len()
    );
    assert_eq!(log, log_of(&second).await, "same seed, different events");

    let mut daemon = Daemon::start(&first.url, &[]).await;
    wait_caught_up(&first.pool, &mut daemon).await;
    daemon.stop().await;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&first.pool)
        .await
        .expect("count dead letters");
    assert_eq!(dead, 0, "generated flows must be valid");
}
