//! The rules of SPEC §3: for each of the twelve handled event types, how its
//! payload is validated (a typed command) and how it turns the row(s) before
//! into the row(s) after. Pure functions: no database, no clock, no
//! randomness. Holding rows between events is `fold`'s job.

pub mod account;
pub mod fill;
pub mod order;
pub mod position;
pub mod strategy;

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::payload::Fields;
use robson_eventlog::EventEnvelope;

/// What every accepted event stamps on the row it writes (SPEC §3.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub seq: i64,
    /// The event's `occurred_at`, in microseconds.
    pub occurred_at: DateTime<Utc>,
}

impl Stamp {
    pub fn of(event: &EventEnvelope) -> Stamp {
        Stamp {
            tenant_id: event.tenant_id,
            event_id: event.event_id,
            seq: event.seq,
            occurred_at: event.occurred_at.round_subsecs(6),
        }
    }
}

/// A validated event of one of the twelve handled types.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    OrderSubmitted(order::Submit),
    OrderAcked(order::Ack),
    FillReceived(fill::Fill),
    /// ORDER_REJECTED or ORDER_CANCELED.
    OrderEnded(order::End),
    PositionOpened(position::Open),
    PositionClosed(position::Close),
    BalanceSampled(account::Balance),
    /// RISK_CHECK_FAILED or RISK_CHECK_PASSED.
    RiskChecked(account::RiskCheck),
    StrategyEnabled(strategy::Enable),
    StrategyDisabled(strategy::Disable),
}

/// The twelve handled names, exactly as spelled (SPEC §3.3).
pub const HANDLED_TYPES: [&str; 12] = [
    "ORDER_SUBMITTED",
    "ORDER_ACKED",
    "FILL_RECEIVED",
    "ORDER_REJECTED",
    "ORDER_CANCELED",
    "POSITION_OPENED",
    "POSITION_CLOSED",
    "BALANCE_SAMPLED",
    "RISK_CHECK_FAILED",
    "RISK_CHECK_PASSED",
    "STRATEGY_ENABLED",
    "STRATEGY_DISABLED",
];

/// Validates a stored event: its payload must have been decoded (one that
/// could not be, whatever its type, is an invalid payload, so its stream
/// parks or skips it like any poison event), then as [`parse`] says.
pub fn parse_event(event: &EventEnvelope) -> Result<Option<Command>, ProjectionError> {
    let payload = event
        .payload
        .as_ref()
        .map_err(|err| ProjectionError::InvalidPayload(err.to_string()))?;
    parse(&event.event_type, payload, event.tenant_id)
}

/// Validates an event's payload: `Ok(None)` for an unhandled type (it changes
/// nothing), an invalid payload for any breach of the type's payload rules,
/// including a payload `tenant_id` that is not the envelope's.
pub fn parse(
    event_type: &str,
    payload: &Value,
    tenant_id: Uuid,
) -> Result<Option<Command>, ProjectionError> {
    if !HANDLED_TYPES.contains(&event_type) {
        return Ok(None);
    }
    let fields = Fields::of(payload)?;
    if let Some(claimed) = fields.opt_uuid("tenant_id")? {
        if claimed != tenant_id {
            return Err(ProjectionError::InvalidPayload(format!(
                "tenant_id {claimed} differs from the event's tenant {tenant_id}"
            )));
        }
    }
    let command = match event_type {
        "ORDER_SUBMITTED" => Command::OrderSubmitted(order::Submit::parse(&fields)?),
        "ORDER_ACKED" => Command::OrderAcked(order::Ack::parse(&fields)?),
        "FILL_RECEIVED" => Command::FillReceived(fill::Fill::parse(&fields)?),
        "ORDER_REJECTED" => Command::OrderEnded(order::End::parse_rejected(&fields)?),
        "ORDER_CANCELED" => Command::OrderEnded(order::End::parse_canceled(&fields)?),
        "POSITION_OPENED" => Command::PositionOpened(position::Open::parse(&fields)?),
        "POSITION_CLOSED" => Command::PositionClosed(position::Close::parse(&fields)?),
        "BALANCE_SAMPLED" => Command::BalanceSampled(account::Balance::parse(&fields)?),
        "RISK_CHECK_FAILED" => Command::RiskChecked(account::RiskCheck::parse_failed(&fields)?),
        "RISK_CHECK_PASSED" => Command::RiskChecked(account::RiskCheck::parse_passed(&fields)?),
        "STRATEGY_ENABLED" => Command::StrategyEnabled(strategy::Enable::parse(&fields)?),
        "STRATEGY_DISABLED" => Command::StrategyDisabled(strategy::Disable::parse(&fields)?),
        // A type in HANDLED_TYPES without an arm here; the test
        // `every_handled_type_has_a_parser` keeps this unreachable.
        other => {
            return Err(ProjectionError::InvalidPayload(format!(
                "{other} is handled but has no parser"
            )))
        }
    };
    Ok(Some(command))
}

fn invalid(message: String) -> ProjectionError {
    ProjectionError::InvalidPayload(message)
}

fn violated(message: String) -> ProjectionError {
    ProjectionError::InvariantViolated(message)
}

/// A symbol: 1–20 characters of `A-Z0-9`.
fn symbol(fields: &Fields, field: &str) -> Result<Option<String>, ProjectionError> {
    let Some(text) = fields.opt_string(field)? else {
        return Ok(None);
    };
    let valid = (1..=20).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !valid {
        return Err(invalid(format!(
            "{field}: {text:?} is not 1-20 characters of A-Z0-9"
        )));
    }
    Ok(Some(text.to_string()))
}

/// A string of `min..=max` characters.
fn sized_string(
    text: &str,
    field: &str,
    min: usize,
    max: usize,
) -> Result<String, ProjectionError> {
    let len = text.chars().count();
    if len < min || len > max {
        return Err(invalid(format!(
            "{field}: must be {min}-{max} characters, got {len}"
        )));
    }
    Ok(text.to_string())
}

/// An enum field spelled exactly as one of `T`'s values.
fn enum_value<T>(
    text: &str,
    field: &str,
    parse: fn(&str) -> Option<T>,
    spellings: &str,
) -> Result<T, ProjectionError> {
    parse(text).ok_or_else(|| invalid(format!("{field}: {text:?} is not one of {spellings}")))
}

/// `x` > 0, else an invalid payload.
fn positive(x: Decimal, field: &str) -> Result<Decimal, ProjectionError> {
    if x > Decimal::ZERO {
        Ok(x)
    } else {
        Err(invalid(format!("{field}: must be > 0, got {x}")))
    }
}

/// `x` ≥ 0, else an invalid payload.
fn non_negative(x: Decimal, field: &str) -> Result<Decimal, ProjectionError> {
    if x >= Decimal::ZERO {
        Ok(x)
    } else {
        Err(invalid(format!("{field}: must be >= 0, got {x}")))
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
