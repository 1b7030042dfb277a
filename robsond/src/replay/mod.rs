//! Replaying the log outside the live projection (SPEC §4.6): snapshots of
//! the projection, the zero-downtime rebuild, the drift check behind
//! `robsond verify`, and the daemon's bootstrap from a snapshot.
//!
//! It all rests on one fact: the projector (`robson_projector::apply_batch`
//! and the operator actions) writes UNQUALIFIED table names. On a connection
//! whose `search_path` starts with a shadow schema holding the tables of
//! `migrations/003_projections.sql`, the very same code projects into the
//! shadow, while `event_log`, `event_streams` and `snapshots` (absent from the
//! shadow) still resolve to the live schema. Nothing here knows a projection
//! rule; the CLI output lives in `commands::{snapshot, rebuild, verify}`.
//!
//! - [`schema`]: shadow schemas (validated names, creation from 003, the
//!   one-at-a-time advisory lock);
//! - [`snapshot`]: taking, pruning and restoring snapshots;
//! - `project`, `bounded`, `decisions`: reading the log into a shadow, up to
//!   the live progress, and replaying the operator's skips and retries;
//! - `compare` (verify's diff) and `history` (what a swap carries over);
//! - [`rebuild`], [`verify`], [`bootstrap`]: the three operations.

pub mod bootstrap;
mod bounded;
mod compare;
mod decisions;
mod history;
mod project;
pub mod rebuild;
pub mod schema;
pub mod snapshot;
pub mod verify;

pub use compare::{Difference, DriftReport};
pub use project::ReplayCounts;

use robson_projector::tables;

/// The projection tables as a comma-separated list qualified by `schema`
/// (already quoted), in lock order.
fn qualified_list(schema: &str) -> String {
    tables::ALL
        .iter()
        .map(|t| format!("{schema}.{}", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a replay operation failed. (The causes are shown in the message,
/// not as `source`, so that an error chain prints each of them once.)
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A database error outside the projector.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The projector failed on a batch (transient: run the command again).
    #[error("projection failed: {0}")]
    Projection(robson_projector::ProjectionError),
    /// `--from-snapshot` with no row in `snapshots`, or without the one named.
    #[error("no such snapshot to start from: `robsond snapshot list` shows them, `robsond snapshot` takes one")]
    NoSnapshot,
    /// Another rebuild or verify holds the replay lock of this database.
    #[error("another rebuild or verify is running on this database")]
    Busy,
    /// The schema is not migrated (`projection_stream_progress` not found).
    #[error("projection tables not found: has `robsond migrate` been run?")]
    NotMigrated,
    /// A schema name that is not a plain lower-case identifier.
    #[error("invalid schema name {0:?}: expected 1-63 characters of a-z, 0-9 and _")]
    InvalidSchemaName(String),
    /// The live tables stayed locked by others through every swap attempt.
    #[error("could not lock the live tables after {attempts} attempts (lock_timeout {timeout_secs} s each)")]
    LockTimeout { attempts: u32, timeout_secs: u64 },
    /// Events the live progress says were applied cannot be read from the log.
    #[error("stream {stream_key}: events up to seq {upto} are not in event_log (archived?)")]
    MissingEvents { stream_key: String, upto: i64 },
}

impl From<sqlx::Error> for ReplayError {
    fn from(err: sqlx::Error) -> Self {
        ReplayError::Database(err)
    }
}

impl From<robson_projector::ProjectionError> for ReplayError {
    fn from(err: robson_projector::ProjectionError) -> Self {
        ReplayError::Projection(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_qualified_in_lock_order() {
        let list = qualified_list("\"public\"");
        assert!(list.starts_with("\"public\".projection_stream_progress, "));
        assert_eq!(list.matches("\"public\".").count(), 8);
    }
}
