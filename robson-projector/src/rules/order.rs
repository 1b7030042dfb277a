//! ORDER_SUBMITTED, ORDER_ACKED, ORDER_REJECTED and ORDER_CANCELED
//! (SPEC §3.1, §3.3): their payloads and their effect on `orders_current`.
//! Fills are in `fill`.

use rust_decimal::Decimal;
use uuid::Uuid;

use super::{enum_value, invalid, positive, sized_string, symbol, violated, Stamp};
use crate::decimal::Notional;
use crate::error::ProjectionError;
use crate::payload::Fields;
use crate::rows::{OrderKey, OrderRow, OrderStatus, OrderType, Side};

type Result<T> = std::result::Result<T, ProjectionError>;

/// ORDER_SUBMITTED `{order_id, account_id, position_id?, client_order_id,
/// symbol, side, order_type, quantity, price?, stop_price?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Submit {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub position_id: Option<Uuid>,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: Decimal,
    pub price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
}

impl Submit {
    pub fn parse(fields: &Fields) -> Result<Submit> {
        let order_id = fields.uuid("order_id")?;
        let account_id = fields.uuid("account_id")?;
        let position_id = fields.opt_uuid("position_id")?;
        let client_order_id =
            sized_string(fields.string("client_order_id")?, "client_order_id", 1, 64)?;
        let symbol = symbol(fields, "symbol")?.ok_or_else(|| invalid("symbol: required".into()))?;
        let side = enum_value(
            fields.string("side")?,
            "side",
            Side::parse,
            Side::spellings(),
        )?;
        let order_type = enum_value(
            fields.string("order_type")?,
            "order_type",
            OrderType::parse,
            OrderType::spellings(),
        )?;
        let quantity = positive(fields.decimal("quantity")?, "quantity")?;
        let price = fields
            .opt_decimal("price")?
            .map(|p| positive(p, "price"))
            .transpose()?;
        let stop_price = fields
            .opt_decimal("stop_price")?
            .map(|p| positive(p, "stop_price"))
            .transpose()?;
        if order_type.needs_price() && price.is_none() {
            return Err(invalid(format!(
                "price: required for a {} order",
                order_type.as_str()
            )));
        }
        if order_type.needs_stop_price() && stop_price.is_none() {
            return Err(invalid(format!(
                "stop_price: required for a {} order",
                order_type.as_str()
            )));
        }
        Ok(Submit {
            order_id,
            account_id,
            position_id,
            client_order_id,
            symbol,
            side,
            order_type,
            quantity,
            price,
            stop_price,
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> OrderKey {
        order_key(tenant_id, self.order_id)
    }
}

/// The row of order `order_id`: the one every order command and every fill
/// targets.
pub(crate) fn order_key(tenant_id: Uuid, order_id: Uuid) -> OrderKey {
    OrderKey {
        tenant_id,
        order_id,
    }
}

/// ORDER_SUBMITTED: a new order, `submitted`, nothing filled.
pub fn submit(before: Option<&OrderRow>, cmd: &Submit, stamp: &Stamp) -> Result<OrderRow> {
    if before.is_some() {
        return Err(violated(format!("order {} already exists", cmd.order_id)));
    }
    Ok(OrderRow {
        order_id: cmd.order_id,
        tenant_id: stamp.tenant_id,
        account_id: cmd.account_id,
        position_id: cmd.position_id,
        exchange_order_id: None,
        client_order_id: cmd.client_order_id.clone(),
        exchange_trade_ids: Vec::new(),
        symbol: cmd.symbol.clone(),
        side: cmd.side,
        order_type: cmd.order_type,
        quantity: cmd.quantity,
        price: cmd.price,
        stop_price: cmd.stop_price,
        filled_quantity: Decimal::ZERO,
        average_fill_price: None,
        total_fee: Decimal::ZERO,
        fee_asset: None,
        status: OrderStatus::Submitted,
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        created_at: stamp.occurred_at,
        updated_at: stamp.occurred_at,
        filled_at: None,
        fill_notional: Notional::default(),
    })
}

/// ORDER_ACKED `{order_id, exchange_order_id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub order_id: Uuid,
    pub exchange_order_id: String,
}

impl Ack {
    pub fn parse(fields: &Fields) -> Result<Ack> {
        Ok(Ack {
            order_id: fields.uuid("order_id")?,
            exchange_order_id: fields.string("exchange_order_id")?.to_string(),
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> OrderKey {
        order_key(tenant_id, self.order_id)
    }
}

/// The order a command targets, or the invariant violation of its absence.
pub(crate) fn existing(before: Option<&OrderRow>, order_id: Uuid) -> Result<&OrderRow> {
    before.ok_or_else(|| violated(format!("order {order_id} does not exist")))
}

/// The row after an accepted event, stamped (SPEC §3.0).
pub(crate) fn stamped(order: &OrderRow, stamp: &Stamp) -> OrderRow {
    OrderRow {
        last_event_id: stamp.event_id,
        last_seq: stamp.seq,
        updated_at: stamp.occurred_at,
        ..order.clone()
    }
}

/// ORDER_ACKED: exchange_order_id overwritten whatever the status;
/// `submitted` becomes `acknowledged`.
pub fn ack(before: Option<&OrderRow>, cmd: &Ack, stamp: &Stamp) -> Result<OrderRow> {
    let order = existing(before, cmd.order_id)?;
    let mut after = stamped(order, stamp);
    after.exchange_order_id = Some(cmd.exchange_order_id.clone());
    if order.status == OrderStatus::Submitted {
        after.status = OrderStatus::Acknowledged;
    }
    Ok(after)
}

/// ORDER_REJECTED `{order_id, reason}` or ORDER_CANCELED `{order_id, reason?}`;
/// reasons are validated but not stored.
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    pub order_id: Uuid,
    /// `rejected` or `canceled`.
    pub status: OrderStatus,
}

impl End {
    pub fn parse_rejected(fields: &Fields) -> Result<End> {
        let order_id = fields.uuid("order_id")?;
        fields.string("reason")?;
        Ok(End {
            order_id,
            status: OrderStatus::Rejected,
        })
    }

    pub fn parse_canceled(fields: &Fields) -> Result<End> {
        let order_id = fields.uuid("order_id")?;
        fields.opt_string("reason")?;
        Ok(End {
            order_id,
            status: OrderStatus::Canceled,
        })
    }

    pub fn key(&self, tenant_id: Uuid) -> OrderKey {
        order_key(tenant_id, self.order_id)
    }
}

/// ORDER_REJECTED / ORDER_CANCELED: an open order takes the final status;
/// any other status is kept (the row is still stamped).
pub fn end(before: Option<&OrderRow>, cmd: &End, stamp: &Stamp) -> Result<OrderRow> {
    let order = existing(before, cmd.order_id)?;
    let mut after = stamped(order, stamp);
    if order.status.is_open() {
        after.status = cmd.status;
    }
    Ok(after)
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
