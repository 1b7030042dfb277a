//! robson-eventlog: the append-only event log of robson (SPEC §2).
//!
//! Appending (one SQL function, `append_event`, for every writer), querying,
//! and the commit-safe consumer read. It knows nothing about projections.

pub mod event;

pub use event::{ActorType, Event, EventEnvelope, Position};
