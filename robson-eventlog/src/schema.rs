//! The database schema's runner (behind `robsond migrate`) and the event
//! log's own migration files.
//!
//! Each crate owns the files of `migrations/` that create what it reads and
//! writes: this crate the log, its idempotency functions, the append path
//! and the snapshots table, whose monthly partitions SPEC §2.1 puts beside
//! the log's (`create_snapshot_partitions`, `check_partition_coverage`);
//! `robson-projector` the projection tables; `robsond` its read positions.
//! Whoever applies them composes one list ([`compose`]) and hands it to
//! [`migrate`]; this crate knows nothing of the other crates' files.
//!
//! Each file is plain re-runnable SQL (IF NOT EXISTS, CREATE OR REPLACE), so
//! migrating means applying every file of the list in lexical order, every
//! time: a second run, or a run after the files were applied with psql,
//! changes nothing. A `schema_migrations` table records what was applied and
//! when.

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

/// One migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// A `Migration` for the file `migrations/<name>`, embedded in the binary.
/// Paths are relative to the calling crate's `src/`, one level below the
/// workspace root, like every crate of the repository.
#[macro_export]
macro_rules! migration {
    ($name:literal) => {
        $crate::schema::Migration {
            name: $name,
            sql: include_str!(concat!("../../migrations/", $name)),
        }
    };
}

/// The event log's own migrations, in lexical order.
pub const MIGRATIONS: &[Migration] = &[
    migration!("001_payload_normalization.sql"),
    migration!("002_event_log_phase9.sql"),
    migration!("004_snapshots.sql"),
    migration!("006_append_hostile_input.sql"),
    migration!("007_append_fast.sql"),
    migration!("009_append_batch_fast_path.sql"),
];

/// A set of migrations that makes a working schema for some reader: the
/// event log's alone, or the log's with the projector's, or everything
/// `robsond` needs. (Test databases are made per set; see `testing`.)
pub trait Schema {
    /// The files to apply, in lexical order of their names.
    fn migrations() -> &'static [Migration];
}

/// The event log's schema: [`MIGRATIONS`].
#[derive(Debug, Clone, Copy)]
pub struct EventLog;

impl Schema for EventLog {
    fn migrations() -> &'static [Migration] {
        MIGRATIONS
    }
}

/// The crates' lists as one, in lexical order of the names (the order the
/// files apply in, whoever owns them). A name listed twice is kept once
/// when both entries are the same file; two different files under one name
/// are the caller's bug, caught by its tests (see [`duplicate_names`]).
pub fn compose(parts: &[&[Migration]]) -> Vec<Migration> {
    let mut all: Vec<Migration> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    all.sort_by(|a, b| a.name.cmp(b.name));
    all.dedup();
    all
}

/// Names that appear more than once in `migrations` (two different files
/// under one name, after [`compose`]).
pub fn duplicate_names(migrations: &[Migration]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = migrations.iter().map(|m| m.name).collect();
    names.sort_unstable();
    let mut dups: Vec<&'static str> = names
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    dups
}

/// Arbitrary constant serialising concurrent migrators (several pods starting).
const MIGRATION_LOCK: i64 = 0x726f_6273_6f6e_0001;

/// A short fingerprint of a list of migration files (names and SQL, in list
/// order); template databases of the tests are named after it.
pub fn fingerprint(migrations: &[Migration]) -> String {
    let mut h = Sha256::new();
    for m in migrations {
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

/// Applies every migration of `migrations`, in the order given (see
/// [`compose`]), each in its own transaction, under an advisory lock.
pub async fn migrate(
    conn: &mut PgConnection,
    migrations: &[Migration],
) -> Result<MigrateReport, sqlx::Error> {
    sqlx::query("SET client_min_messages = warning")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = apply_all(conn, migrations).await;
    // Unlock even after a failure; the session ends soon anyway.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

async fn apply_all(
    conn: &mut PgConnection,
    migrations: &[Migration],
) -> Result<MigrateReport, sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name       text PRIMARY KEY,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *conn)
    .await?;
    let mut report = MigrateReport::default();
    for m in migrations {
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
    fn the_logs_migrations_are_listed_in_lexical_order_and_are_files_of_migrations() {
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        for m in MIGRATIONS {
            let on_disk = std::fs::read_to_string(format!("{dir}/{}", m.name)).expect("a file");
            assert_eq!(on_disk, m.sql, "{}", m.name);
        }
    }

    #[test]
    fn the_event_log_migration_has_the_name_the_spec_fixes() {
        assert!(MIGRATIONS
            .iter()
            .any(|m| m.name == "002_event_log_phase9.sql"));
    }

    const A: Migration = Migration {
        name: "001_a.sql",
        sql: "a",
    };
    const B: Migration = Migration {
        name: "002_b.sql",
        sql: "b",
    };
    const C: Migration = Migration {
        name: "003_c.sql",
        sql: "c",
    };

    #[test]
    fn compose_orders_the_parts_by_name_and_keeps_a_shared_file_once() {
        assert_eq!(compose(&[&[A, C], &[B], &[A]]), vec![A, B, C]);
        assert_eq!(
            fingerprint(&compose(&[&[C], &[A, B]])),
            fingerprint(&[A, B, C])
        );
    }

    #[test]
    fn two_files_under_one_name_are_reported() {
        let other_a = Migration {
            name: A.name,
            sql: "not a",
        };
        assert_eq!(
            duplicate_names(&compose(&[&[A, B], &[other_a]])),
            vec![A.name]
        );
        assert!(duplicate_names(&compose(&[&[A, B], &[A]])).is_empty());
    }
}
