//! robson-eventlog: the append-only event log of robson (SPEC §2).
//!
//! Appending (one SQL function, `append_event`, for every writer), querying,
//! the commit-safe consumer read, and the schema (the migrations embedded in
//! the binary). It knows nothing about projections.

pub mod append;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod read;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use append::{append_batch, append_event, AppendOutcome};
pub use error::AppendError;
pub use event::{ActorType, Event, EventEnvelope, Position};
pub use idempotency::compute_idempotency_key;
pub use read::{
    committed_behind_xmin, ensure_partitions, event_columns, head_position, partition_coverage,
    query_events, read_committed, read_stream, EventQuery, EventRow, PartitionCoverage,
};
pub use schema::{migrate, MigrateReport, MIGRATIONS};
