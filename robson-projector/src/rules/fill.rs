//! FILL_RECEIVED (SPEC §3.1, §3.3): its payload, the new `fills` row, and the
//! order's quantities, fees, trade ids, VWAP and status after it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::order::{existing, order_key, stamped};
use super::{enum_value, invalid, non_negative, positive, symbol, Stamp};
use crate::decimal::within_bound;
use crate::error::ProjectionError;
use crate::payload::Fields;
use crate::rows::{FillRow, OrderKey, OrderRow, OrderStatus, Side};

type Result<T> = std::result::Result<T, ProjectionError>;

/// FILL_RECEIVED `{order_id, exchange_trade_id, fill_price, fill_quantity,
/// fee, fee_asset, is_maker?, filled_at?, exchange_order_id?, account_id?,
/// symbol?, side?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    pub order_id: Uuid,
    pub exchange_trade_id: String,
    pub fill_price: Decimal,
    pub fill_quantity: Decimal,
    pub fee: Decimal,
    pub fee_asset: String,
    pub is_maker: Option<bool>,
    pub filled_at: Option<DateTime<Utc>>,
    pub exchange_order_id: Option<String>,
    pub account_id: Option<Uuid>,
    pub symbol: Option<String>,
    pub side: Option<Side>,
}

impl Fill {
    /// A fill lands on its order's row (and adds a row of its own to
    /// `order_fills`, keyed by the order and the trade).
    pub fn key(&self, tenant_id: Uuid) -> OrderKey {
        order_key(tenant_id, self.order_id)
    }

    pub fn parse(fields: &Fields) -> Result<Fill> {
        let side = match fields.opt_string("side")? {
            Some(text) => Some(enum_value(text, "side", Side::parse, Side::spellings())?),
            None => None,
        };
        Ok(Fill {
            order_id: fields.uuid("order_id")?,
            exchange_trade_id: fields.string("exchange_trade_id")?.to_string(),
            fill_price: positive(fields.decimal("fill_price")?, "fill_price")?,
            fill_quantity: positive(fields.decimal("fill_quantity")?, "fill_quantity")?,
            fee: non_negative(fields.decimal("fee")?, "fee")?,
            fee_asset: fields.string("fee_asset")?.to_string(),
            is_maker: fields.opt_bool("is_maker")?,
            filled_at: fields.opt_timestamp("filled_at")?,
            exchange_order_id: fields.opt_string("exchange_order_id")?.map(str::to_string),
            account_id: fields.opt_uuid("account_id")?,
            symbol: symbol(fields, "symbol")?,
            side,
        })
    }
}

/// What a fill does.
#[derive(Debug, Clone, PartialEq)]
pub enum FillEffect {
    /// The order already has a fill with this exchange_trade_id: nothing
    /// changes, not even last_event_id (the event still counts as applied).
    Duplicate,
    /// A new fill and the order after it.
    Recorded {
        order: Box<OrderRow>,
        fill: Box<FillRow>,
    },
}

/// FILL_RECEIVED: records the fill (fill_id = the event's id, missing fields
/// taken from the order) and updates the order. Only an open order changes
/// status: `filled` once filled_quantity ≥ quantity (filled_at = this
/// fill's), else `partial`; a final status and its filled_at are kept.
pub fn fill(before: Option<&OrderRow>, cmd: &Fill, stamp: &Stamp) -> Result<FillEffect> {
    let order = existing(before, cmd.order_id)?;
    if order.exchange_trade_ids.contains(&cmd.exchange_trade_id) {
        return Ok(FillEffect::Duplicate);
    }
    let filled_quantity =
        within_bound("filled_quantity", order.filled_quantity + cmd.fill_quantity)
            .map_err(invalid)?;
    let total_fee = within_bound("total_fee", order.total_fee + cmd.fee).map_err(invalid)?;
    let filled_at = cmd.filled_at.unwrap_or(stamp.occurred_at);
    let fill = FillRow {
        fill_id: stamp.event_id,
        tenant_id: stamp.tenant_id,
        account_id: cmd.account_id.unwrap_or(order.account_id),
        order_id: order.order_id,
        exchange_order_id: cmd
            .exchange_order_id
            .clone()
            .or_else(|| order.exchange_order_id.clone()),
        exchange_trade_id: cmd.exchange_trade_id.clone(),
        symbol: cmd.symbol.clone().unwrap_or_else(|| order.symbol.clone()),
        side: cmd.side.unwrap_or(order.side),
        fill_price: cmd.fill_price,
        fill_quantity: cmd.fill_quantity,
        fee: cmd.fee,
        fee_asset: cmd.fee_asset.clone(),
        is_maker: cmd.is_maker.unwrap_or(false),
        filled_at,
    };
    let mut after = stamped(order, stamp);
    after.filled_quantity = filled_quantity;
    after.total_fee = total_fee;
    after.fee_asset = Some(cmd.fee_asset.clone());
    after.exchange_trade_ids.push(cmd.exchange_trade_id.clone());
    after.fill_notional = order
        .fill_notional
        .plus_fill(cmd.fill_price, cmd.fill_quantity);
    after.average_fill_price = after.fill_notional.vwap(filled_quantity);
    if order.status.is_open() {
        if filled_quantity >= order.quantity {
            after.status = OrderStatus::Filled;
            after.filled_at = Some(filled_at);
        } else {
            after.status = OrderStatus::Partial;
        }
    }
    Ok(FillEffect::Recorded {
        order: Box::new(after),
        fill: Box::new(fill),
    })
}

#[cfg(test)]
mod tests;
