//! STRATEGY_ENABLED and STRATEGY_DISABLED (SPEC §3.1, §3.3): their payloads
//! and `strategy_state_current`.

use serde_json::Value;
use uuid::Uuid;

use super::{violated, Stamp};
use crate::error::ProjectionError;
use crate::payload::Fields;
use crate::rows::{StrategyKey, StrategyRow};

type Result<T> = std::result::Result<T, ProjectionError>;

/// STRATEGY_ENABLED `{strategy_id, account_id, strategy_name, strategy_type,
/// detector_config?, risk_config}`; configs are JSON objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Enable {
    pub strategy_id: Uuid,
    pub account_id: Uuid,
    pub strategy_name: String,
    pub strategy_type: String,
    pub detector_config: Option<Value>,
    pub risk_config: Value,
}

impl Enable {
    pub fn parse(fields: &Fields) -> Result<Enable> {
        Ok(Enable {
            strategy_id: fields.uuid("strategy_id")?,
            account_id: fields.uuid("account_id")?,
            strategy_name: fields.string("strategy_name")?.to_string(),
            strategy_type: fields.string("strategy_type")?.to_string(),
            detector_config: fields.opt_object("detector_config")?,
            risk_config: fields.object("risk_config")?,
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> StrategyKey {
        StrategyKey {
            tenant_id,
            strategy_id: self.strategy_id,
        }
    }
}

/// STRATEGY_ENABLED: name, type and configs replaced, enabled as of
/// occurred_at (refreshed on every enable), disable fields cleared;
/// created_at kept from the first enable.
pub fn enable(before: Option<&StrategyRow>, cmd: &Enable, stamp: &Stamp) -> StrategyRow {
    StrategyRow {
        strategy_id: cmd.strategy_id,
        tenant_id: stamp.tenant_id,
        account_id: cmd.account_id,
        strategy_name: cmd.strategy_name.clone(),
        strategy_type: cmd.strategy_type.clone(),
        detector_config: cmd.detector_config.clone(),
        risk_config: cmd.risk_config.clone(),
        is_enabled: true,
        enabled_at: Some(stamp.occurred_at),
        disabled_at: None,
        disabled_reason: None,
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        created_at: before.map_or(stamp.occurred_at, |row| row.created_at),
        updated_at: stamp.occurred_at,
    }
}

/// STRATEGY_DISABLED `{strategy_id, reason?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Disable {
    pub strategy_id: Uuid,
    pub reason: Option<String>,
}

impl Disable {
    pub fn parse(fields: &Fields) -> Result<Disable> {
        Ok(Disable {
            strategy_id: fields.uuid("strategy_id")?,
            reason: fields.opt_string("reason")?.map(str::to_string),
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> StrategyKey {
        StrategyKey {
            tenant_id,
            strategy_id: self.strategy_id,
        }
    }
}

/// STRATEGY_DISABLED: the strategy must exist; disabled as of occurred_at
/// with the given reason (or none); enabled_at is kept.
pub fn disable(before: Option<&StrategyRow>, cmd: &Disable, stamp: &Stamp) -> Result<StrategyRow> {
    let strategy =
        before.ok_or_else(|| violated(format!("strategy {} does not exist", cmd.strategy_id)))?;
    Ok(StrategyRow {
        is_enabled: false,
        disabled_at: Some(stamp.occurred_at),
        disabled_reason: cmd.reason.clone(),
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        updated_at: stamp.occurred_at,
        ..strategy.clone()
    })
}

#[cfg(test)]
mod tests;
