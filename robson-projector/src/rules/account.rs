//! Account events (SPEC §3.1): BALANCE_SAMPLED → `balances_current`,
//! RISK_CHECK_FAILED and RISK_CHECK_PASSED → `risk_state_current`. Both are
//! upserts: a missing row is created, an existing one replaced.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{invalid, non_negative, sized_string, Stamp};
use crate::decimal::within_bound;
use crate::error::ProjectionError;
use crate::payload::Fields;
use crate::rows::{BalanceKey, BalanceRow, RiskKey, RiskRow};

type Result<T> = std::result::Result<T, ProjectionError>;

/// BALANCE_SAMPLED `{account_id, asset, free, locked, sampled_at?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub account_id: Uuid,
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
    /// free + locked, below 10^12.
    pub total: Decimal,
    pub sampled_at: Option<DateTime<Utc>>,
}

impl Balance {
    pub fn parse(fields: &Fields) -> Result<Balance> {
        let account_id = fields.uuid("account_id")?;
        let asset = sized_string(fields.string("asset")?, "asset", 1, 10)?;
        let free = non_negative(fields.decimal("free")?, "free")?;
        let locked = non_negative(fields.decimal("locked")?, "locked")?;
        let total = within_bound("total", free + locked).map_err(invalid)?;
        let sampled_at = fields.opt_timestamp("sampled_at")?;
        Ok(Balance {
            account_id,
            asset,
            free,
            locked,
            total,
            sampled_at,
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> BalanceKey {
        BalanceKey {
            tenant_id,
            account_id: self.account_id,
            asset: self.asset.clone(),
        }
    }
}

/// BALANCE_SAMPLED: the sampled balance replaces the row (whatever was there).
pub fn sample_balance(cmd: &Balance, stamp: &Stamp) -> BalanceRow {
    BalanceRow {
        tenant_id: stamp.tenant_id,
        account_id: cmd.account_id,
        asset: cmd.asset.clone(),
        free: cmd.free,
        locked: cmd.locked,
        total: cmd.total,
        sampled_at: cmd.sampled_at.unwrap_or(stamp.occurred_at),
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        updated_at: stamp.occurred_at,
    }
}

/// The numeric limits a risk event may carry; absent ones are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskLimits {
    pub total_exposure: Option<Decimal>,
    pub max_exposure: Option<Decimal>,
    pub daily_pnl: Option<Decimal>,
    pub daily_loss_limit: Option<Decimal>,
    pub drawdown: Option<Decimal>,
    pub max_drawdown: Option<Decimal>,
}

/// RISK_CHECK_FAILED `{account_id, strategy_id?, violation_reason,
/// failed_checks?, severity?}` or RISK_CHECK_PASSED `{account_id,
/// strategy_id?, checks_performed?}`, both with optional limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskCheck {
    pub account_id: Uuid,
    pub strategy_id: Option<Uuid>,
    /// `Some(reason)` for a failed check, `None` for a passed one.
    pub violation_reason: Option<String>,
    pub limits: RiskLimits,
}

impl RiskCheck {
    pub fn parse_failed(fields: &Fields) -> Result<RiskCheck> {
        let account_id = fields.uuid("account_id")?;
        let strategy_id = fields.opt_uuid("strategy_id")?;
        let reason = fields.string("violation_reason")?.to_string();
        fields.opt_array("failed_checks")?;
        fields.opt_string("severity")?;
        let limits = parse_limits(fields)?;
        Ok(RiskCheck {
            account_id,
            strategy_id,
            violation_reason: Some(reason),
            limits,
        })
    }

    pub fn parse_passed(fields: &Fields) -> Result<RiskCheck> {
        let account_id = fields.uuid("account_id")?;
        let strategy_id = fields.opt_uuid("strategy_id")?;
        fields.opt_array("checks_performed")?;
        let limits = parse_limits(fields)?;
        Ok(RiskCheck {
            account_id,
            strategy_id,
            violation_reason: None,
            limits,
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> RiskKey {
        RiskKey {
            tenant_id,
            account_id: self.account_id,
            strategy_id: self.strategy_id,
        }
    }
}

fn parse_limits(fields: &Fields) -> Result<RiskLimits> {
    Ok(RiskLimits {
        total_exposure: fields.opt_decimal("total_exposure")?,
        max_exposure: fields.opt_decimal("max_exposure")?,
        daily_pnl: fields.opt_decimal("daily_pnl")?,
        daily_loss_limit: fields.opt_decimal("daily_loss_limit")?,
        drawdown: fields.opt_decimal("drawdown")?,
        max_drawdown: fields.opt_decimal("max_drawdown")?,
    })
}

/// RISK_CHECK_FAILED / RISK_CHECK_PASSED: the row of (account, strategy) is
/// violated or not as of occurred_at; each limit comes from the payload when
/// present, else is kept, else is 0.
pub fn check_risk(before: Option<&RiskRow>, cmd: &RiskCheck, stamp: &Stamp) -> RiskRow {
    let kept = |new: Option<Decimal>, old: fn(&RiskRow) -> Decimal| {
        new.or_else(|| before.map(old)).unwrap_or(Decimal::ZERO)
    };
    let limits = &cmd.limits;
    let violated = cmd.violation_reason.is_some();
    RiskRow {
        tenant_id: stamp.tenant_id,
        account_id: cmd.account_id,
        strategy_id: cmd.strategy_id,
        total_exposure: kept(limits.total_exposure, |r| r.total_exposure),
        max_exposure: kept(limits.max_exposure, |r| r.max_exposure),
        daily_pnl: kept(limits.daily_pnl, |r| r.daily_pnl),
        daily_loss_limit: kept(limits.daily_loss_limit, |r| r.daily_loss_limit),
        drawdown: kept(limits.drawdown, |r| r.drawdown),
        max_drawdown: kept(limits.max_drawdown, |r| r.max_drawdown),
        is_violated: violated,
        violation_reason: cmd.violation_reason.clone(),
        violated_at: violated.then_some(stamp.occurred_at),
        calculated_at: stamp.occurred_at,
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        updated_at: stamp.occurred_at,
    }
}

#[cfg(test)]
mod tests;
