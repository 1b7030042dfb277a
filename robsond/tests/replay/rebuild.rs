//! `robsond rebuild [--from-snapshot]`: exactly what live projection
//! yields, from the log or from the latest snapshot, also while the daemon
//! keeps projecting new events.

use std::time::Duration;

use crate::fixture::{assert_mixed, copy, Writer};
use crate::image::{assert_same, image};
use crate::process::{robsond_ok, wait_caught_up, Daemon};

async fn shadow_schemas(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'robson\\_%'")
        .fetch_one(pool)
        .await
        .expect("catalog query")
}

/// Every index of the live schema's tables (the shadow is built without
/// its secondary indexes and builds them before the swap).
async fn indexes(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
          WHERE schemaname = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("catalog query")
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn rebuild_reproduces_the_live_tables_of_a_mixed_run_with_parked_and_skipped_streams() {
    let db = copy().await;
    assert_mixed(&db.pool).await;
    let live = image(&db.pool).await;
    let migrated = indexes(&db.pool).await;
    assert!(
        migrated
            .iter()
            .any(|(name, _)| name == "orders_current_account_idx"),
        "{migrated:?}"
    );

    let out = robsond_ok(&db.url, &["rebuild"]).await;

    assert!(
        out.contains("started from the beginning of the log"),
        "{out}"
    );
    assert!(out.contains("swapped in"), "{out}");
    assert_same(
        &live,
        &image(&db.pool).await,
        "tables after a rebuild vs live",
    );
    assert_eq!(
        indexes(&db.pool).await,
        migrated,
        "the swapped-in tables have the migrations' indexes"
    );
    assert_eq!(
        shadow_schemas(&db.pool).await,
        0,
        "the shadow schema is gone"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn rebuild_from_the_snapshot_gives_exactly_a_full_rebuild() {
    let db = copy().await;
    let live = image(&db.pool).await;
    let migrated = indexes(&db.pool).await;

    let out = robsond_ok(&db.url, &["rebuild", "--from-snapshot"]).await;
    assert!(out.contains("started from snapshot"), "{out}");
    let from_snapshot = image(&db.pool).await;
    assert_eq!(
        indexes(&db.pool).await,
        migrated,
        "indexes after the rebuild"
    );
    robsond_ok(&db.url, &["rebuild"]).await;
    let full = image(&db.pool).await;

    assert_same(
        &full,
        &from_snapshot,
        "rebuild from the snapshot vs full rebuild",
    );
    assert_same(&live, &full, "full rebuild vs live");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn rebuild_while_the_daemon_projects_new_events_loses_and_doubles_nothing() {
    let db = copy().await;
    let mut daemon = Daemon::start(&db.url);
    let writer = Writer::start(db.pool.clone(), 4242);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = robsond_ok(&db.url, &["rebuild"]).await;
    assert!(out.contains("swapped in"), "{out}");
    let appended = writer.stop().await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    let after_swap = image(&db.pool).await;

    assert!(appended > 0, "the writer appended during the rebuild");
    robsond_ok(&db.url, &["rebuild"]).await;
    assert_same(
        &image(&db.pool).await,
        &after_swap,
        "live tables after a rebuild under load vs a clean rebuild afterwards",
    );
}
