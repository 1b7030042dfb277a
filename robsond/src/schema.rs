//! The schema `robsond migrate` applies: the daemon's own migrations (the
//! read positions of `migrations/005_daemon_state.sql` and the drop of its
//! unused `commands` table in 008) composed with the log's and the
//! projector's lists into one, in lexical order of the file names.
//!
//! That order, names and SQL are exactly what the binary applied when the
//! log crate embedded every file: a database migrated by an older robsond
//! migrates as unchanged (tests below and in `tests/daemon/migrate.rs`).
//!
//! 004 (snapshots) belongs to the log although robsond writes it: SPEC §2.1
//! puts its monthly partitions beside the log's, maintained by the log's
//! functions (`create_snapshot_partitions`, `check_partition_coverage`).

use std::sync::LazyLock;

use robson_eventlog::migration;
use robson_eventlog::schema::{compose, MigrateReport, Migration, Schema};
use sqlx::PgConnection;

/// The daemon's own migrations, in lexical order.
pub const MIGRATIONS: &[Migration] = &[
    migration!("005_daemon_state.sql"),
    migration!("008_drop_commands.sql"),
];

/// Everything robsond reads and writes: the log's, the projector's and the
/// daemon's migrations.
#[derive(Debug, Clone, Copy)]
pub struct Robsond;

impl Schema for Robsond {
    fn migrations() -> &'static [Migration] {
        static ALL: LazyLock<Vec<Migration>> = LazyLock::new(|| {
            compose(&[
                robson_eventlog::MIGRATIONS,
                robson_projector::schema::MIGRATIONS,
                MIGRATIONS,
            ])
        });
        &ALL
    }
}

/// The one ordered list of every migration (see the module doc).
pub fn migrations() -> &'static [Migration] {
    Robsond::migrations()
}

/// Applies [`migrations`] (what `robsond migrate` does).
pub async fn migrate(conn: &mut PgConnection) -> Result<MigrateReport, sqlx::Error> {
    robson_eventlog::migrate(conn, migrations()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of `migrations/`, in lexical order, with their text: the
    /// list the binary embedded before each crate owned its files.
    pub(crate) fn files_on_disk() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("read migrations/")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| {
                let name = p
                    .file_name()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned();
                let sql = std::fs::read_to_string(&p).expect("read a migration");
                (name, sql)
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_file_of_migrations_belongs_to_one_crates_list_with_its_text_in_lexical_order() {
        let listed: Vec<(String, String)> = migrations()
            .iter()
            .map(|m| (m.name.to_owned(), m.sql.to_owned()))
            .collect();
        let on_disk = files_on_disk();
        let unowned: Vec<&str> = on_disk
            .iter()
            .filter(|(name, _)| !listed.iter().any(|(n, _)| n == name))
            .map(|(name, _)| name.as_str())
            .collect();
        assert!(unowned.is_empty(), "in no crate's list: {unowned:?}");
        assert_eq!(listed, on_disk);
        assert!(robson_eventlog::schema::duplicate_names(migrations()).is_empty());
    }

    #[test]
    fn no_file_is_owned_by_two_crates() {
        let parts = [
            robson_eventlog::MIGRATIONS,
            robson_projector::schema::MIGRATIONS,
            MIGRATIONS,
        ];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(total, migrations().len());
    }

    #[test]
    fn the_fingerprint_is_the_one_of_every_file_in_lexical_order() {
        // What the binary computed when it embedded every file: the
        // template databases of the tests key on it.
        let old: Vec<Migration> = files_on_disk()
            .into_iter()
            .map(|(name, sql)| Migration {
                name: name.leak(),
                sql: sql.leak(),
            })
            .collect();
        assert_eq!(
            robson_eventlog::schema::fingerprint(migrations()),
            robson_eventlog::schema::fingerprint(&old)
        );
    }

    #[test]
    fn the_first_eight_files_fingerprint_as_before_the_split() {
        // The value of 1fb23bf's `fingerprint()` (the last with one list in
        // the log crate) over its eight files, computed independently
        // (SHA-256 of each name then text, first 6 bytes in hex); a later
        // file does not change it.
        let first: Vec<Migration> = migrations()
            .iter()
            .copied()
            .filter(|m| m.name < "009")
            .collect();
        assert_eq!(
            robson_eventlog::schema::fingerprint(&first),
            FINGERPRINT_AT_1FB23BF
        );
    }

    const FINGERPRINT_AT_1FB23BF: &str = "fe5f59188a7e";
}
