//! robson-projector: the projection rules of SPEC §3, as a pure core and a
//! set-based persistence shell. No actors, no HTTP. The rules read no clock:
//! every projection column comes from events (only operational columns such
//! as `failed_at` take the database's `now()`).
//!
//! - [`rules`]: each handled event type's payload validation and its effect
//!   on the row(s) it targets, as plain functions (row before, event) → row
//!   after; [`fold`] applies them over rows held in memory.
//! - [`decimal`], [`payload`], [`rows`]: the values and rows the rules work on.
//! - [`store`]: [`apply_batch`] and the operator actions, inside the caller's
//!   transaction; the exactly-once filter is `projection_stream_progress`.
//! - [`tables`]: every projection table declared once; [`schema`]: the
//!   migration that creates them.
//! - [`error`]: [`ProjectionError`] and [`classify`], the one place that
//!   decides whether a database error is transient.

pub mod decimal;
mod enums;
pub mod error;
pub mod fold;
pub mod payload;
pub mod rows;
pub mod rules;
pub mod schema;
pub mod store;
pub mod tables;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{classify, contention, Contention, ErrorClass, ErrorKind, ProjectionError};
pub use store::{
    apply_batch, apply_event, catch_up_stream, list_parked, list_parked_page, load_rows,
    resume_stream, try_apply_batch, try_apply_batch_with, try_apply_groups_with, AlsoWrite,
    Attempt, BatchOutcome, DeadLetter, GroupsAttempt, ParkedStream, PoisonPolicy, ResumeAction,
    ResumeError, Resumed,
};
