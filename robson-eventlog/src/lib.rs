//! robson-eventlog: the append-only event log of robson (SPEC §2).
//!
//! Appending (one SQL function, `append_event`, for every writer, and the
//! rules it enforces), querying, the commit-safe consumer read with payloads
//! decoded one event at a time, the migration runner and the log's own
//! migrations (embedded in the binary). It knows nothing about projections.

pub mod append;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod payload;
pub mod read;
pub mod rules;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use append::{append_batch, append_event, AppendOutcome};
pub use error::{AppendError, PayloadError};
pub use event::{ActorType, Event, EventEnvelope, Position};
pub use idempotency::compute_idempotency_key;
pub use read::{
    committed_after, ensure_partitions, event_columns, head_position, partition_coverage,
    query_events, read_committed, read_stream, EventQuery, EventRow, LogReader, PartitionCoverage,
};
pub use rules::{MAX_EVENT_TYPE_CHARS, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, MAX_STREAM_KEY_CHARS};
pub use schema::{compose, migrate, MigrateReport, Migration, Schema, MIGRATIONS};
