//! `robsond migrate` on a database migrated by an older binary, the one
//! whose log crate embedded every file of `migrations/` in one list: each
//! crate now owns its files and robsond composes them, and such a database
//! must see every file as already applied (same names, same SQL, same
//! order), its `schema_migrations` untouched.

use robson_eventlog::schema::Migration;
use sqlx::Connection;

use crate::support::{empty_database, robsond, texts};

/// The list the older binary applied: every file of `migrations/`, in
/// lexical order.
fn every_file_in_lexical_order() -> Vec<Migration> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("read migrations/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| Migration {
            name: p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
                .leak(),
            sql: std::fs::read_to_string(&p).expect("read a file").leak(),
        })
        .collect()
}

type Recorded = Vec<(String, String, chrono::DateTime<chrono::Utc>)>;

async fn recorded(conn: &mut sqlx::PgConnection) -> Recorded {
    sqlx::query_as("SELECT name, checksum, applied_at FROM schema_migrations ORDER BY name")
        .fetch_all(conn)
        .await
        .expect("read schema_migrations")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_database_migrated_by_the_single_list_migrates_as_unchanged() {
    let url = empty_database().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let old = every_file_in_lexical_order();
    let first = robson_eventlog::migrate(&mut conn, &old)
        .await
        .expect("migrate with the single list");
    assert_eq!(first.newly_applied.len(), old.len());
    let before = recorded(&mut conn).await;
    assert_eq!(before.len(), old.len());

    let out = robsond(&["migrate"], &[("DATABASE_URL", &url)]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!("Schema up to date ({} migrations).\n", old.len()),
        "every file already applied"
    );
    assert_eq!(
        recorded(&mut conn).await,
        before,
        "schema_migrations unchanged"
    );
    assert_eq!(
        robson_eventlog::schema::fingerprint(robsond::schema::migrations()),
        robson_eventlog::schema::fingerprint(&old),
        "the same fingerprint"
    );
}
