//! Monthly partitions: coverage, appends while a month is missing, and
//! maintenance that recreates the month and moves stranded rows into it.

use std::time::Instant;

use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_event, ensure_partitions, partition_coverage, read_stream};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::support::{
    count_rows, event, guard_against_hang, order_stream, read_committed_until, sql_append, SqlArgs,
};

/// Name of the current month's partition of `parent` (UTC months).
async fn current_partition(pool: &PgPool, parent: &str) -> String {
    sqlx::query_scalar(
        r#"SELECT format('%s_y%s', $1::text,
                  to_char(date_trunc('month', now() AT TIME ZONE 'UTC'), 'YYYY"m"MM'))"#,
    )
    .bind(parent)
    .fetch_one(pool)
    .await
    .expect("current partition name")
}

async fn status_of(pool: &PgPool, table: &str) -> String {
    let rows = partition_coverage(pool).await.expect("partition coverage");
    rows.into_iter()
        .find(|r| r.table_name == table)
        .unwrap_or_else(|| panic!("no coverage row for {table}"))
        .status
}

async fn drop_table(pool: &PgPool, table: &str) {
    sqlx::raw_sql(&format!("DROP TABLE {table}"))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("drop {table}: {e}"));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn after_migrate_the_log_and_snapshots_are_covered_at_least_two_months_ahead() {
    let db = TestDb::new().await;
    let rows: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT table_name, months_ahead, status FROM check_partition_coverage() ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("check_partition_coverage()");
    let tables: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(tables, ["event_log", "snapshots"]);
    for (table, months_ahead, status) in &rows {
        assert_eq!(status, "OK", "{table}");
        assert!(*months_ahead >= 2, "{table}: {months_ahead} months ahead");
    }
    assert_eq!(
        ensure_partitions(&db.pool, 2)
            .await
            .expect("ensure_partitions"),
        0,
        "nothing to create"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn appends_survive_a_missing_month_and_maintenance_moves_them_into_it() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let stream = order_stream();
    let month = current_partition(&db.pool, "event_log").await;
    drop_table(&db.pool, &month).await;
    assert_ne!(status_of(&db.pool, "event_log").await, "OK");

    for n in 1..=3 {
        append_event(&db.pool, &event(tenant, &stream, json!({ "n": n })))
            .await
            .expect("append");
    }
    sql_append(
        &db.pool,
        tenant,
        &order_stream(),
        r#"{"n": 4}"#,
        SqlArgs::default(),
    )
    .await
    .expect("append through SQL");
    assert_eq!(
        count_rows(&db.pool, "event_log_default").await,
        4,
        "stranded in DEFAULT"
    );

    let created: i32 = sqlx::query_scalar("SELECT create_event_log_partitions(2)")
        .fetch_one(&db.pool)
        .await
        .expect("create_event_log_partitions(2)");
    assert_eq!(created, 1);
    assert_eq!(count_rows(&db.pool, "event_log_default").await, 0);
    assert_eq!(count_rows(&db.pool, &month).await, 4);
    assert_eq!(status_of(&db.pool, "event_log").await, "OK");

    let seqs: Vec<i64> = read_stream(&db.pool, &stream, 0, 10)
        .await
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(read_committed_until(&db.pool, 4).await, 4);
    let repeated = count_rows(
        &db.pool,
        "(SELECT stream_key, seq FROM event_log GROUP BY 1, 2 HAVING count(*) > 1) r",
    )
    .await;
    assert_eq!(repeated, 0, "(stream_key, seq) stays unique");

    let next = append_event(&db.pool, &event(tenant, &stream, json!({"n": 5})))
        .await
        .expect("append");
    assert_eq!(next.seq, 4);
    assert_eq!(count_rows(&db.pool, &month).await, 5);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_missing_snapshot_month_is_reported_and_recreated() {
    let db = TestDb::new().await;
    let month = current_partition(&db.pool, "snapshots").await;
    drop_table(&db.pool, &month).await;
    assert_ne!(status_of(&db.pool, "snapshots").await, "OK");
    assert_eq!(status_of(&db.pool, "event_log").await, "OK");

    assert_eq!(
        ensure_partitions(&db.pool, 2)
            .await
            .expect("ensure_partitions"),
        1
    );
    assert_eq!(status_of(&db.pool, "snapshots").await, "OK");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn maintenance_waits_for_an_open_append_into_default_instead_of_failing() {
    let db = TestDb::new().await;
    let month = current_partition(&db.pool, "event_log").await;
    drop_table(&db.pool, &month).await;

    let mut writer = PgConnection::connect(&db.url)
        .await
        .expect("connect the writer");
    let mut tx = writer.begin().await.expect("begin");
    let e = event(Uuid::new_v4(), &order_stream(), json!({"n": 1}));
    let appended = append_event(&mut *tx, &e)
        .await
        .expect("append into DEFAULT");

    let mut maintainer = PgConnection::connect(&db.url)
        .await
        .expect("connect the maintainer");
    let maintainer_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut maintainer)
        .await
        .expect("pid");
    let maintenance = tokio::spawn(async move {
        sqlx::query_scalar::<_, i32>("SELECT create_event_log_partitions(2)")
            .fetch_one(&mut maintainer)
            .await
    });
    // Deterministic interleaving: commit only once maintenance waits on a lock.
    let started = Instant::now();
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT coalesce((SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1), false)",
        )
        .bind(maintainer_pid)
        .fetch_one(&db.pool)
        .await
        .expect("pg_stat_activity");
        if waiting {
            break;
        }
        guard_against_hang(started, "maintenance never waited for the open append");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tx.commit().await.expect("commit the append");

    let created = maintenance
        .await
        .expect("join")
        .expect("maintenance must not fail");
    assert_eq!(created, 1);
    assert_eq!(count_rows(&db.pool, "event_log_default").await, 0);
    let home: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM event_log WHERE event_id = $1")
            .bind(appended.event_id)
            .fetch_one(&db.pool)
            .await
            .expect("locate the event");
    assert_eq!(home, month);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_detached_month_counts_as_missing_and_is_left_to_the_operator() {
    let db = TestDb::new().await;
    let month = current_partition(&db.pool, "event_log").await;
    sqlx::raw_sql(&format!("ALTER TABLE event_log DETACH PARTITION {month}"))
        .execute(&db.pool)
        .await
        .expect("detach the current month");
    assert_eq!(status_of(&db.pool, "event_log").await, "CRITICAL");

    let e = event(Uuid::new_v4(), &order_stream(), json!({"n": 1}));
    let appended = append_event(&db.pool, &e)
        .await
        .expect("append while detached");
    assert_eq!(count_rows(&db.pool, "event_log_default").await, 1);
    // The table of that name is not touched (it may be on its way to an archive).
    assert_eq!(
        ensure_partitions(&db.pool, 2)
            .await
            .expect("ensure_partitions"),
        0
    );
    assert_eq!(status_of(&db.pool, "event_log").await, "CRITICAL");

    sqlx::raw_sql(&format!("ALTER TABLE {month} RENAME TO {month}_archived"))
        .execute(&db.pool)
        .await
        .expect("the operator moves it aside");
    assert_eq!(
        ensure_partitions(&db.pool, 2)
            .await
            .expect("ensure_partitions"),
        1
    );
    assert_eq!(status_of(&db.pool, "event_log").await, "OK");
    assert_eq!(count_rows(&db.pool, "event_log_default").await, 0);
    let read = read_stream(&db.pool, &e.stream_key, 0, 10)
        .await
        .expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].event_id, appended.event_id);
}
