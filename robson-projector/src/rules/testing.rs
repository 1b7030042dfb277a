//! Builders shared by the unit tests of the rules, the fold and the plan.

use chrono::{DateTime, TimeZone, Utc};
use robson_eventlog::EventEnvelope;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;
use uuid::Uuid;

use super::{parse, Command, Stamp};
use crate::error::ProjectionError;
use crate::payload::Fields;

pub const TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);
pub const OTHER_TENANT: Uuid = Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222);
pub const ORDER: &str = "4fdf8e1a-060c-4a63-9d3b-993f79490eab";
pub const ACCOUNT: &str = "1e2feb89-414c-443c-9027-c4d1c386bbc4";
pub const POSITION: &str = "65d60b6e-46e3-4b95-9435-0b28fbb41d14";
pub const STRATEGY: &str = "2adf559a-11cb-4288-8a50-12dc582c18c9";

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("test decimal")
}

pub fn uuid(text: &str) -> Uuid {
    Uuid::from_str(text).expect("test uuid")
}

/// 2024-03-01T08:00:00Z plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
        .single()
        .expect("valid time")
        + chrono::Duration::seconds(seconds)
}

pub fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

/// A payload from JSON text (numbers keep their literal).
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("test JSON")
}

/// The stamp of event `seq` of the test tenant, occurring `seq` seconds in.
pub fn stamp(seq: i64) -> Stamp {
    Stamp {
        tenant_id: TENANT,
        event_id: Uuid::from_u128(0xe000 + seq as u128),
        seq,
        occurred_at: at(seq),
    }
}

/// A deterministic event id for `stream_key#seq`.
pub fn event_id(stream_key: &str, seq: i64) -> Uuid {
    let hash = stream_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Uuid::from_u128((u128::from(hash) << 64) | seq as u128)
}

/// A stored event of the test tenant.
pub fn event(stream_key: &str, seq: i64, event_type: &str, payload: Value) -> EventEnvelope {
    let stamp = stamp(seq);
    EventEnvelope {
        event_id: event_id(stream_key, seq),
        tenant_id: TENANT,
        stream_key: stream_key.to_string(),
        seq,
        global_position: seq,
        tx_id: seq,
        event_type: event_type.to_string(),
        payload: Ok(payload),
        payload_schema_version: 1,
        occurred_at: stamp.occurred_at,
        ingested_at: stamp.occurred_at,
        idempotency_key: format!("idem_{stream_key}_{seq}"),
        trace_id: None,
        causation_id: None,
        command_id: None,
        workflow_id: None,
        actor_type: None,
        actor_id: None,
    }
}

/// Parses a payload of a handled type for the test tenant.
pub fn command(event_type: &str, payload: &Value) -> Result<Command, ProjectionError> {
    parse(event_type, payload, TENANT)?
        .ok_or_else(|| ProjectionError::InvalidPayload("unhandled".into()))
}

/// The fields of a payload.
pub fn fields(payload: &Value) -> Fields<'_> {
    Fields::of(payload).expect("object payload")
}

/// `payload` without `field`.
pub fn without(payload: &Value, field: &str) -> Value {
    let mut copy = payload.clone();
    if let Value::Object(map) = &mut copy {
        map.remove(field);
    }
    copy
}

/// `payload` with `field` set to `value` (JSON text).
pub fn with(payload: &Value, field: &str, value: &str) -> Value {
    let mut copy = payload.clone();
    if let Value::Object(map) = &mut copy {
        map.insert(field.to_string(), json(value));
    }
    copy
}

pub fn is_invalid<T: std::fmt::Debug>(result: Result<T, ProjectionError>) -> bool {
    matches!(result, Err(ProjectionError::InvalidPayload(_)))
}

pub fn is_violation<T: std::fmt::Debug>(result: Result<T, ProjectionError>) -> bool {
    matches!(result, Err(ProjectionError::InvariantViolated(_)))
}
