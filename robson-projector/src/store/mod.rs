//! The persistence shell: applying batches of stored events to the
//! projection tables inside the caller's transaction ([`apply_batch`]), and
//! the operator actions on parked streams ([`resume_stream`],
//! [`catch_up_stream`], [`list_parked`]). The rules themselves are in
//! `rules`; the SQL lives next to the function that runs it, one module per
//! concern.

mod batch;
mod dead_letters;
mod groups;
mod operator;
mod plan;
mod progress;
mod tables;
mod writes;

use uuid::Uuid;

use crate::error::ErrorKind;

pub use batch::{apply_batch, apply_event, try_apply_batch, try_apply_batch_with, Attempt};
pub use groups::{try_apply_groups_with, GroupsAttempt};
pub use operator::{
    catch_up_stream, list_parked, list_parked_page, resume_stream, ParkedStream, ResumeAction,
    ResumeError, Resumed,
};
/// The stored rows under a fold's keys (read-only; used by the daemon's
/// drift check to compare the live rows with a re-projection).
pub use tables::load as load_rows;

/// A write of the caller's that a batch's write statement makes as well
/// (`store::writes`): the daemon's checkpoints, one round trip fewer than a
/// statement of its own, in the same transaction and snapshot. Bound with
/// how many events each batch applied: one count for
/// [`try_apply_batch_with`], one per group for [`try_apply_groups_with`].
pub trait AlsoWrite: Sync {
    /// A data-modifying statement with a `RETURNING` clause, its
    /// parameters `$1` to `$`[`AlsoWrite::params`] with their types cast
    /// (`$1::int4`); it must not write a table the batch writes.
    fn sql(&self) -> &'static str;
    /// How many parameters [`AlsoWrite::sql`] has.
    fn params(&self) -> usize;
    /// Binds them in order, `applied[i]` the events batch `i` applied.
    fn bind<'q>(
        &self,
        query: crate::tables::PgQuery<'q>,
        applied: &[u64],
    ) -> crate::tables::PgQuery<'q>;
}

/// What happens to a stream when one of its events fails permanently
/// (`ROBSON_ON_POISON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoisonPolicy {
    /// Park the stream on the failed event: later events of the stream are
    /// held until an operator retries or skips it.
    #[default]
    Park,
    /// Dead-letter the event as `skipped` and go on with the stream.
    Skip,
}

impl PoisonPolicy {
    /// `park` or `skip`, as in `ROBSON_ON_POISON`.
    pub fn as_str(self) -> &'static str {
        match self {
            PoisonPolicy::Park => "park",
            PoisonPolicy::Skip => "skip",
        }
    }
}

/// An event recorded in `projection_dead_letters` by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub stream_key: String,
    pub seq: i64,
    pub global_position: i64,
    pub event_type: String,
    pub error_kind: ErrorKind,
    pub error: String,
    /// True when this wrote a new row of `projection_dead_letters`; false
    /// when the event had one already (a retried event that failed again:
    /// the row's `attempts` grew). Set by the write.
    pub new_row: bool,
}

/// What a batch did, for the daemon's metrics. Every event of the batch is
/// counted exactly once among `applied`, `skipped_unhandled`,
/// `already_applied`, `held` and `dead_lettered`; `applied` also counts the
/// missing predecessors the batch read from the log and applied first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events whose effect was written (a duplicate fill counts: it is
    /// applied and changes nothing).
    pub applied: u64,
    /// Events of an unhandled type (`reason="unhandled_type"`): nothing
    /// written, the stream moved on.
    pub skipped_unhandled: u64,
    /// Events at or below their stream's last applied seq (re-deliveries).
    pub already_applied: u64,
    /// Events waiting behind a parked stream.
    pub held: u64,
    /// Events that failed permanently and were dead-lettered.
    pub dead_lettered: Vec<DeadLetter>,
    /// Streams this batch parked (policy `park`).
    pub newly_parked: Vec<String>,
}

impl BatchOutcome {
    /// Adds the counts of `other` to these.
    pub fn merge(&mut self, other: BatchOutcome) {
        self.applied += other.applied;
        self.skipped_unhandled += other.skipped_unhandled;
        self.already_applied += other.already_applied;
        self.held += other.held;
        self.dead_lettered.extend(other.dead_lettered);
        self.newly_parked.extend(other.newly_parked);
    }
}
