//! The event types of the log: what a writer appends ([`Event`]) and what a
//! reader gets back ([`EventEnvelope`]). No SQL here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::PayloadError;

/// Who produced an event (`event_log.actor_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorType {
    /// An operator through the command line.
    #[serde(rename = "CLI")]
    Cli,
    /// A robson daemon.
    Daemon,
    /// The platform itself (schedulers, migrations).
    System,
    /// An exchange report.
    Exchange,
}

impl ActorType {
    /// The spelling stored in `event_log.actor_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Cli => "CLI",
            ActorType::Daemon => "Daemon",
            ActorType::System => "System",
            ActorType::Exchange => "Exchange",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CLI" => Some(ActorType::Cli),
            "Daemon" => Some(ActorType::Daemon),
            "System" => Some(ActorType::System),
            "Exchange" => Some(ActorType::Exchange),
            _ => None,
        }
    }
}

/// A request to append one event (the arguments of SQL `append_event`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub tenant_id: Uuid,
    pub stream_key: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    /// Optimistic concurrency: the stream's last seq must be this (0 = new stream).
    pub expected_seq: Option<i64>,
    pub command_id: Option<Uuid>,
    /// When `None`, the key is computed from tenant, stream, command and payload.
    pub idempotency_key: Option<String>,
    pub trace_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub actor_type: Option<ActorType>,
    pub actor_id: Option<String>,
}

impl Event {
    /// An event with only the required fields set; the others are `None`.
    pub fn new(
        tenant_id: Uuid,
        stream_key: impl Into<String>,
        event_type: impl Into<String>,
        payload: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Event {
            tenant_id,
            stream_key: stream_key.into(),
            event_type: event_type.into(),
            payload,
            occurred_at,
            expected_seq: None,
            command_id: None,
            idempotency_key: None,
            trace_id: None,
            causation_id: None,
            workflow_id: None,
            actor_type: None,
            actor_id: None,
        }
    }
}

/// A committed event as stored in `event_log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub stream_key: String,
    pub seq: i64,
    pub global_position: i64,
    /// The appending transaction's id (`xid8`, as a number): with
    /// `global_position` it gives the commit-safe reading order.
    pub tx_id: i64,
    pub event_type: String,
    /// The decoded payload, or why this event's payload could not be
    /// decoded (too deep, too large, malformed): a reader handles that
    /// event as a poison event of its stream; the other events of the read
    /// are not affected.
    pub payload: Result<serde_json::Value, PayloadError>,
    pub payload_schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub idempotency_key: String,
    pub trace_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub command_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
}

impl EventEnvelope {
    /// The commit-safe reading position of this event.
    pub fn position(&self) -> Position {
        Position {
            tx_id: self.tx_id,
            global_position: self.global_position,
        }
    }
}

/// A point in the commit-safe reading order: events are read in
/// `(tx_id, global_position)` order. `Position::START` is before every event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    pub tx_id: i64,
    pub global_position: i64,
}

impl Position {
    /// Before the first event.
    pub const START: Position = Position {
        tx_id: 0,
        global_position: 0,
    };
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tx_id, self.global_position)
    }
}
