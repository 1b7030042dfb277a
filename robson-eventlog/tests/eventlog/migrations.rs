//! The event log's migrations: re-runnable SQL files, applied by `migrate`
//! or by hand (psql), in lexical order; running `migrate` again changes
//! nothing. (The other crates' files, and the one list robsond applies, are
//! tested in robsond.)

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_event, migrate, MIGRATIONS};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::support::{empty_database, event, order_stream};

/// The log's files of `migrations/` in lexical order, as an operator finds them.
fn migration_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .filter(|p| MIGRATIONS.iter().any(|m| p.ends_with(m.name)))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        MIGRATIONS.len(),
        "every file of the log is on disk"
    );
    files
}

type Recorded = Vec<(String, String, DateTime<Utc>)>;

async fn recorded(conn: &mut PgConnection) -> Recorded {
    sqlx::query_as("SELECT name, checksum, applied_at FROM schema_migrations ORDER BY name")
        .fetch_all(conn)
        .await
        .expect("read schema_migrations")
}

/// `migrate` must succeed and record nothing new.
async fn assert_migrate_is_a_no_op(conn: &mut PgConnection) {
    let before = recorded(conn).await;
    let report = migrate(conn, MIGRATIONS).await.expect("migrate");
    assert!(
        report.newly_applied.is_empty(),
        "applied again: {:?}",
        report.newly_applied
    );
    assert_eq!(report.unchanged, MIGRATIONS.len());
    assert_eq!(recorded(conn).await, before, "schema_migrations unchanged");
}

async fn raw_apply(conn: &mut PgConnection, file: &PathBuf) {
    let sql = std::fs::read_to_string(file).expect("read a migration file");
    sqlx::raw_sql(&sql)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// The schema works: an append goes through.
async fn assert_log_accepts_appends(conn: &mut PgConnection) {
    let o = append_event(
        &mut *conn,
        &event(Uuid::new_v4(), &order_stream(), json!({"n": 1})),
    )
    .await
    .expect("append after migrating");
    assert_eq!(o.seq, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn migrate_on_an_empty_database_applies_everything_once_and_then_nothing() {
    let mut conn = PgConnection::connect(&empty_database().await)
        .await
        .expect("connect");
    let first = migrate(&mut conn, MIGRATIONS).await.expect("first migrate");
    let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(first.newly_applied, names);
    assert_migrate_is_a_no_op(&mut conn).await;
    assert_migrate_is_a_no_op(&mut conn).await;
    assert_log_accepts_appends(&mut conn).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn migrate_on_a_migrated_database_with_events_changes_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    assert_log_accepts_appends(&mut conn).await;
    assert_migrate_is_a_no_op(&mut conn).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn migrate_after_the_files_were_applied_by_hand_succeeds_and_is_then_a_no_op() {
    let mut conn = PgConnection::connect(&empty_database().await)
        .await
        .expect("connect");
    for file in migration_files() {
        raw_apply(&mut conn, &file).await;
    }
    assert_log_accepts_appends(&mut conn).await;
    migrate(&mut conn, MIGRATIONS)
        .await
        .expect("migrate after a manual apply");
    assert_migrate_is_a_no_op(&mut conn).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn every_migration_file_applies_twice_in_a_row_on_an_empty_database() {
    let mut conn = PgConnection::connect(&empty_database().await)
        .await
        .expect("connect");
    for file in migration_files() {
        raw_apply(&mut conn, &file).await;
        raw_apply(&mut conn, &file).await;
    }
    assert_log_accepts_appends(&mut conn).await;
}

/// psql from the cluster's binaries, else from PATH.
fn psql() -> PathBuf {
    std::env::var_os("ROBSON_TEST_PG_BIN")
        .map(|dir| PathBuf::from(dir).join("psql"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn every_migration_file_applies_with_psql_on_error_stop_twice_in_lexical_order() {
    let url = empty_database().await;
    for round in 0..2 {
        for file in migration_files() {
            let out = tokio::process::Command::new(psql())
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
                .arg(&file)
                .output()
                .await
                .unwrap_or_else(|e| panic!("run psql (needed by this test): {e}"));
            assert!(
                out.status.success(),
                "round {round}, {}: psql exited with {}: {}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    assert_log_accepts_appends(&mut conn).await;
    migrate(&mut conn, MIGRATIONS)
        .await
        .expect("migrate after psql");
    assert_migrate_is_a_no_op(&mut conn).await;
}

async fn log_images(
    conn: &mut PgConnection,
) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    use crate::support::table_image;
    (
        table_image(&mut *conn, "event_log").await,
        table_image(&mut *conn, "event_log_keys").await,
        table_image(&mut *conn, "event_streams").await,
    )
}

/// A database made by migrations 001–006, with events in it (volatile keys
/// at several depths, explicit keys, duplicates, expected_seq), migrated to
/// the current schema: its data is unchanged, the new functions compute the
/// keys the old ones stored, and every rule still holds on the old streams.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn migrating_a_006_database_with_events_keeps_them_and_the_rules() {
    use crate::support::sqlstate;
    let mut conn = PgConnection::connect(&empty_database().await)
        .await
        .expect("connect");
    for m in MIGRATIONS.iter().filter(|m| m.name < "007") {
        sqlx::raw_sql(m.sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
    }
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let streams: Vec<String> = (0..4).map(|_| order_stream()).collect();
    let payloads = [
        json!({"order_id": "o-1", "quantity": "0.50"}),
        json!({"order_id": "o-2", "submitted_at": "x", "meta": {"request_id": "r", "legs": [{"filled_at": 1, "p": 1.5e2}]}}),
        json!({"q": 1, "actor_type": "CLI", "timestamps": [1]}),
        json!({"deep": {"a": {"b": {"c": {"sent_at": 1, "d": [{"x_at": 2}]}}}}}),
    ];
    let mut originals = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        for stream in &streams[..=i] {
            let o: (Uuid, i64) =
                sqlx::query_as("SELECT event_id, seq FROM append_event($1, $2, 'T', $3::jsonb)")
                    .bind(tenant)
                    .bind(stream)
                    .bind(payload.to_string())
                    .fetch_one(&mut conn)
                    .await
                    .expect("append with 006");
            originals.push((stream.clone(), payload.clone(), o.0));
        }
    }
    sqlx::query(
        "SELECT * FROM append_event($1, $2, 'T', '{\"k\": 1}', p_idempotency_key => 'given-1')",
    )
    .bind(tenant)
    .bind(&streams[0])
    .execute(&mut conn)
    .await
    .expect("explicit key with 006");
    let before = log_images(&mut conn).await;

    let report = migrate(&mut conn, MIGRATIONS)
        .await
        .expect("migrate to the current schema");
    assert!(
        report.newly_applied.iter().any(|n| n.starts_with("007")),
        "{report:?}"
    );
    assert_eq!(log_images(&mut conn).await, before, "the data is unchanged");
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_log WHERE idempotency_key LIKE 'idem_%'
            AND idempotency_key <> robson_idempotency_key(tenant_id, stream_key, command_id, payload)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("recompute the keys");
    assert_eq!(stale, 0, "the new functions compute the keys 006 stored");

    // Repeats of old events, through both functions, return the originals.
    for (stream, payload, original) in &originals {
        let single: (Uuid, bool) =
            sqlx::query_as("SELECT event_id, duplicate FROM append_event($1, $2, 'T', $3::jsonb)")
                .bind(tenant)
                .bind(stream)
                .bind(payload.to_string())
                .fetch_one(&mut conn)
                .await
                .expect("repeat through append_event");
        assert_eq!(single, (*original, true));
        let batch: (Uuid, bool) = sqlx::query_as(
            "SELECT event_id, duplicate FROM append_events(jsonb_build_array(jsonb_build_object(
                 'tenant_id', $1::uuid, 'stream_key', $2::text, 'event_type', 'T', 'payload', $3::jsonb)))",
        )
        .bind(tenant)
        .bind(stream)
        .bind(payload.to_string())
        .fetch_one(&mut conn)
        .await
        .expect("repeat through append_events");
        assert_eq!(batch, (*original, true));
    }
    assert_eq!(log_images(&mut conn).await, before, "repeats write nothing");

    // New events continue the old streams; the rules hold on them.
    let next: (i64, bool) = sqlx::query_as(
        "SELECT seq, duplicate FROM append_event($1, $2, 'T', '{\"new\": 1}', p_expected_seq => 5)",
    )
    .bind(tenant)
    .bind(&streams[0])
    .fetch_one(&mut conn)
    .await
    .expect("append after the upgrade");
    assert_eq!(next, (6, false));
    let stale =
        sqlx::query("SELECT * FROM append_event($1, $2, 'T', '{\"new\": 2}', p_expected_seq => 5)")
            .bind(tenant)
            .bind(&streams[0])
            .execute(&mut conn)
            .await
            .expect_err("stale expected_seq");
    assert_eq!(sqlstate(&stale).0, "40001");
    let foreign = sqlx::query("SELECT * FROM append_event($1, $2, 'T', '{\"new\": 3}')")
        .bind(other)
        .bind(&streams[1])
        .execute(&mut conn)
        .await
        .expect_err("another tenant's stream");
    assert_eq!(sqlstate(&foreign).0, "42501");
    let rust = append_event(&mut conn, &event(tenant, &streams[3], json!({"new": 4})))
        .await
        .expect("Rust append after the upgrade");
    assert_eq!(rust.seq, 2);
    assert_migrate_is_a_no_op(&mut conn).await;
}

/// A database made by migrations up to 008, with batches appended by 007's
/// `robson_append_batch`, migrated to 009: the data is unchanged, new
/// batches (through the fast path) continue the old streams, and repeats of
/// the old events (handed to the general path, 007's function under its new
/// name) return the originals and write nothing.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn migrating_an_008_database_with_batches_keeps_them_and_continues_the_streams() {
    use robson_eventlog::append_batch;
    let mut conn = PgConnection::connect(&empty_database().await)
        .await
        .expect("connect");
    let old: Vec<_> = MIGRATIONS
        .iter()
        .copied()
        .filter(|m| m.name < "009")
        .collect();
    migrate(&mut conn, &old).await.expect("migrate to 008");
    let tenant = Uuid::new_v4();
    let streams: Vec<String> = (0..3).map(|_| order_stream()).collect();
    let batch = |round: i64| -> Vec<robson_eventlog::Event> {
        streams
            .iter()
            .flat_map(|s| (0..2).map(move |i| event(tenant, s, json!({"round": round, "i": i}))))
            .collect()
    };
    let first = append_batch(&mut conn, &batch(0))
        .await
        .expect("a batch with 007");
    let before = log_images(&mut conn).await;

    let report = migrate(&mut conn, MIGRATIONS)
        .await
        .expect("migrate to the current schema");
    assert_eq!(report.newly_applied, vec!["009_append_batch_fast_path.sql"]);
    assert_eq!(log_images(&mut conn).await, before, "the data is unchanged");

    let repeats = append_batch(&mut conn, &batch(0))
        .await
        .expect("the same batch again");
    assert_eq!(
        repeats
            .iter()
            .map(|o| (o.event_id, o.seq))
            .collect::<Vec<_>>(),
        first
            .iter()
            .map(|o| (o.event_id, o.seq))
            .collect::<Vec<_>>()
    );
    assert!(repeats.iter().all(|o| o.duplicate));
    assert_eq!(log_images(&mut conn).await, before, "repeats write nothing");

    let next = append_batch(&mut conn, &batch(1))
        .await
        .expect("a new batch with 009");
    assert_eq!(
        next.iter()
            .map(|o| (o.seq, o.duplicate))
            .collect::<Vec<_>>(),
        [(3, false), (4, false)].repeat(3)
    );
    assert_migrate_is_a_no_op(&mut conn).await;
}
