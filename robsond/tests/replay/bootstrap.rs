//! `robsond snapshot` and the daemon's bootstrap from it: a daemon started
//! on an emptied projection restores the latest snapshot, then catches up.

use crate::fixture::{append, copy};
use crate::image::{assert_same, image, row_count};
use crate::process::{robsond_ok, wait_caught_up, Daemon};
use robsond::tools::generate::FlowGenerator;

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_daemon_started_on_an_emptied_projection_restores_the_latest_snapshot_and_catches_up() {
    let db = copy().await;
    let out = robsond_ok(&db.url, &["snapshot"]).await;
    assert!(out.starts_with("snapshot "), "{out}");
    let later = FlowGenerator::new(77, 2).events(100);
    let appended_after_snapshot = later.len() as i64;
    append(&db.pool, later).await;
    sqlx::raw_sql(
        "TRUNCATE orders_current, fills, positions_current, balances_current, risk_state_current, \
         strategy_state_current, projection_stream_progress, projection_dead_letters, \
         projection_checkpoints",
    )
    .execute(&db.pool)
    .await
    .expect("empty the projection");

    let mut daemon = Daemon::start(&db.url);
    wait_caught_up(&db.pool, &mut daemon).await;
    let log = daemon.log();
    daemon.stop().await;

    assert!(
        log.contains("bootstrapped from the latest snapshot"),
        "{log}"
    );
    let applied: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(events_applied), 0)::int8 FROM projection_checkpoints",
    )
    .fetch_one(&db.pool)
    .await
    .expect("checkpoints");
    assert!(
        applied > 0 && applied <= appended_after_snapshot,
        "{applied} events applied after the restore; {appended_after_snapshot} were appended after the snapshot"
    );
    let bootstrapped = image(&db.pool).await;
    robsond_ok(&db.url, &["rebuild"]).await;
    assert_same(
        &image(&db.pool).await,
        &bootstrapped,
        "bootstrapped tables vs a full rebuild",
    );
    assert!(row_count(&bootstrapped) > 10_000);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn snapshot_retain_keeps_only_the_newest_snapshots() {
    let db = copy().await;
    let first = robsond_ok(&db.url, &["snapshot"]).await;
    let second = robsond_ok(&db.url, &["snapshot", "--retain", "1"]).await;

    let id = |out: &str| {
        out.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let kept: Vec<String> = sqlx::query_scalar("SELECT snapshot_id::text FROM snapshots")
        .fetch_all(&db.pool)
        .await
        .expect("snapshots");
    assert_eq!(kept, vec![id(&second)], "first was {}", id(&first));
    // The image lives in parts (no 256 MB jsonb cap); pruning takes them too.
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM snapshot_parts p
          WHERE NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.snapshot_id = p.snapshot_id)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("parts");
    assert_eq!(orphans, 0, "parts of pruned snapshots remain");
    let parts: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshot_parts")
        .fetch_one(&db.pool)
        .await
        .expect("parts");
    assert!(parts >= 6, "the kept snapshot has {parts} parts");
    assert!(
        second.contains("retention: kept the newest 1, deleted 2"),
        "{second}"
    );
    assert!(second.contains("orders_current"), "{second}");
}
