//! The database schema: every file of `migrations/`, embedded in the binary,
//! and the runner behind `robsond migrate`.
//!
//! Each file is plain re-runnable SQL (IF NOT EXISTS, CREATE OR REPLACE), so
//! migrating means applying every file in lexical order, every time: a second
//! run, or a run after the files were applied with psql, changes nothing.
//! A `schema_migrations` table records what was applied and when.

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            sql: include_str!(concat!("../../migrations/", $name)),
        }
    };
}

/// The migrations, in the order they apply (lexical order of the files).
pub const MIGRATIONS: &[Migration] = &[
    migration!("001_payload_normalization.sql"),
    migration!("002_event_log_phase9.sql"),
    migration!("003_projections.sql"),
    migration!("004_snapshots.sql"),
    migration!("005_daemon_state.sql"),
    migration!("006_append_hostile_input.sql"),
    migration!("007_append_fast.sql"),
    migration!("008_drop_commands.sql"),
];

/// Arbitrary constant serialising concurrent migrators (several pods starting).
const MIGRATION_LOCK: i64 = 0x726f_6273_6f6e_0001;

/// A short fingerprint of all migration files (template databases of the tests
/// are named after it).
pub fn fingerprint() -> String {
    let mut h = Sha256::new();
    for m in MIGRATIONS {
        h.update(m.name.as_bytes());
        h.update(m.sql.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Files not recorded before (or changed since).
    pub newly_applied: Vec<&'static str>,
    /// Files applied again with no change to record.
    pub unchanged: usize,
}

/// Applies every migration, each in its own transaction, under an advisory lock.
pub async fn migrate(conn: &mut PgConnection) -> Result<MigrateReport, sqlx::Error> {
    sqlx::query("SET client_min_messages = warning")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = apply_all(conn).await;
    // Unlock even after a failure; the session ends soon anyway.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

async fn apply_all(conn: &mut PgConnection) -> Result<MigrateReport, sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name       text PRIMARY KEY,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *conn)
    .await?;
    let mut report = MigrateReport::default();
    for m in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(m.sql.as_bytes()));
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE name = $1")
                .bind(m.name)
                .fetch_optional(&mut *tx)
                .await?;
        if recorded.as_deref() == Some(checksum.as_str()) {
            report.unchanged += 1;
        } else {
            sqlx::query(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
            )
            .bind(m.name)
            .bind(&checksum)
            .execute(&mut *tx)
            .await?;
            report.newly_applied.push(m.name);
        }
        tx.commit().await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_listed_in_lexical_order_and_cover_every_file() {
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        on_disk.sort_unstable();
        assert_eq!(names, on_disk);
    }

    #[test]
    fn the_event_log_migration_has_the_name_the_spec_fixes() {
        assert!(MIGRATIONS
            .iter()
            .any(|m| m.name == "002_event_log_phase9.sql"));
    }
}
