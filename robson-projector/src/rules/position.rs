//! POSITION_OPENED and POSITION_CLOSED (SPEC §3.1, §3.3): their payloads,
//! the Golden Rule of the technical stop, and `positions_current`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{enum_value, invalid, positive, symbol, violated, Stamp};
use crate::error::ProjectionError;
use crate::payload::Fields;
use crate::rows::{PositionKey, PositionRow, PositionSide, PositionState};

type Result<T> = std::result::Result<T, ProjectionError>;

/// POSITION_OPENED `{position_id, account_id, strategy_id?, symbol, side,
/// entry_price?, entry_quantity?, entry_filled_at?, technical_stop_price,
/// technical_stop_distance, entry_order_id?, stop_loss_order_id?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    pub position_id: Uuid,
    pub account_id: Uuid,
    pub strategy_id: Option<Uuid>,
    pub symbol: String,
    pub side: PositionSide,
    pub entry_price: Option<Decimal>,
    pub entry_quantity: Option<Decimal>,
    pub entry_filled_at: Option<DateTime<Utc>>,
    /// Present, but its sign is a Golden-Rule matter (invariant), not a
    /// payload one.
    pub technical_stop_price: Decimal,
    pub technical_stop_distance: Decimal,
    pub entry_order_id: Option<Uuid>,
    pub stop_loss_order_id: Option<Uuid>,
}

impl Open {
    pub fn parse(fields: &Fields) -> Result<Open> {
        let position_id = fields.uuid("position_id")?;
        let account_id = fields.uuid("account_id")?;
        let strategy_id = fields.opt_uuid("strategy_id")?;
        let symbol = symbol(fields, "symbol")?.ok_or_else(|| invalid("symbol: required".into()))?;
        let side = enum_value(
            fields.string("side")?,
            "side",
            PositionSide::parse,
            PositionSide::spellings(),
        )?;
        let entry_price = fields.opt_decimal("entry_price")?;
        let entry_quantity = fields
            .opt_decimal("entry_quantity")?
            .map(|x| positive(x, "entry_quantity"))
            .transpose()?;
        Ok(Open {
            position_id,
            account_id,
            strategy_id,
            symbol,
            side,
            entry_price,
            entry_quantity,
            entry_filled_at: fields.opt_timestamp("entry_filled_at")?,
            technical_stop_price: fields.decimal("technical_stop_price")?,
            technical_stop_distance: fields.decimal("technical_stop_distance")?,
            entry_order_id: fields.opt_uuid("entry_order_id")?,
            stop_loss_order_id: fields.opt_uuid("stop_loss_order_id")?,
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> PositionKey {
        PositionKey {
            tenant_id,
            position_id: self.position_id,
        }
    }
}

/// The Golden Rule: a positive stop and distance; with an entry price (which
/// must then be positive), the stop strictly on the losing side of it and
/// the distance exactly |entry − stop|.
pub fn check_golden_rule(cmd: &Open) -> Result<()> {
    let stop = cmd.technical_stop_price;
    let distance = cmd.technical_stop_distance;
    if stop <= Decimal::ZERO {
        return Err(violated(format!(
            "technical_stop_price must be > 0, got {stop}"
        )));
    }
    if distance <= Decimal::ZERO {
        return Err(violated(format!(
            "technical_stop_distance must be > 0, got {distance}"
        )));
    }
    let Some(entry) = cmd.entry_price else {
        return Ok(());
    };
    if entry <= Decimal::ZERO {
        return Err(violated(format!("entry_price must be > 0, got {entry}")));
    }
    let stop_on_losing_side = match cmd.side {
        PositionSide::Long => stop < entry,
        PositionSide::Short => stop > entry,
    };
    if !stop_on_losing_side {
        let side = cmd.side.as_str();
        let wanted = if cmd.side == PositionSide::Long {
            "below"
        } else {
            "above"
        };
        return Err(violated(format!(
            "{side} position: technical_stop_price {stop} must be {wanted} entry_price {entry}"
        )));
    }
    let actual = (entry - stop).abs();
    if distance != actual {
        return Err(violated(format!(
            "technical_stop_distance {distance} differs from |entry_price - technical_stop_price| = {actual}"
        )));
    }
    Ok(())
}

/// POSITION_OPENED: a new position, `active` with an entry price and
/// quantity, else `entering`.
pub fn open(before: Option<&PositionRow>, cmd: &Open, stamp: &Stamp) -> Result<PositionRow> {
    check_golden_rule(cmd)?;
    if before.is_some() {
        return Err(violated(format!(
            "position {} already exists",
            cmd.position_id
        )));
    }
    let entered = cmd.entry_price.is_some() && cmd.entry_quantity.is_some();
    Ok(PositionRow {
        position_id: cmd.position_id,
        tenant_id: stamp.tenant_id,
        account_id: cmd.account_id,
        strategy_id: cmd.strategy_id,
        symbol: cmd.symbol.clone(),
        side: cmd.side,
        entry_price: cmd.entry_price,
        entry_quantity: cmd.entry_quantity,
        entry_filled_at: cmd.entry_filled_at,
        technical_stop_price: cmd.technical_stop_price,
        technical_stop_distance: cmd.technical_stop_distance,
        current_quantity: cmd.entry_quantity.unwrap_or(Decimal::ZERO),
        trailing_stop_price: Some(cmd.technical_stop_price),
        realized_pnl: Decimal::ZERO,
        total_fees: Decimal::ZERO,
        state: if entered {
            PositionState::Active
        } else {
            PositionState::Entering
        },
        entry_order_id: cmd.entry_order_id,
        exit_order_id: None,
        stop_loss_order_id: cmd.stop_loss_order_id,
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        created_at: stamp.occurred_at,
        updated_at: stamp.occurred_at,
        closed_at: None,
    })
}

/// POSITION_CLOSED `{position_id, exit_order_id?, closed_at?, realized_pnl?, exit_reason?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub position_id: Uuid,
    pub exit_order_id: Option<Uuid>,
    pub closed_at: Option<DateTime<Utc>>,
    /// May be negative.
    pub realized_pnl: Option<Decimal>,
}

impl Close {
    pub fn parse(fields: &Fields) -> Result<Close> {
        let close = Close {
            position_id: fields.uuid("position_id")?,
            exit_order_id: fields.opt_uuid("exit_order_id")?,
            closed_at: fields.opt_timestamp("closed_at")?,
            realized_pnl: fields.opt_decimal("realized_pnl")?,
        };
        fields.opt_string("exit_reason")?;
        Ok(close)
    }

    pub fn key(&self, tenant_id: Uuid) -> PositionKey {
        PositionKey {
            tenant_id,
            position_id: self.position_id,
        }
    }
}

/// POSITION_CLOSED: an open position becomes `closed` with quantity 0;
/// realized_pnl is kept when the payload has none.
pub fn close(before: Option<&PositionRow>, cmd: &Close, stamp: &Stamp) -> Result<PositionRow> {
    let position =
        before.ok_or_else(|| violated(format!("position {} does not exist", cmd.position_id)))?;
    if position.state == PositionState::Closed {
        return Err(violated(format!(
            "position {} is already closed",
            cmd.position_id
        )));
    }
    Ok(PositionRow {
        state: PositionState::Closed,
        closed_at: Some(cmd.closed_at.unwrap_or(stamp.occurred_at)),
        exit_order_id: cmd.exit_order_id,
        current_quantity: Decimal::ZERO,
        realized_pnl: cmd.realized_pnl.unwrap_or(position.realized_pnl),
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        updated_at: stamp.occurred_at,
        ..position.clone()
    })
}

#[cfg(test)]
mod tests;
