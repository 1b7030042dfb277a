//! The rows of the six projection tables (migrations/003_projections.sql),
//! column for column with their SQL types, and their keys: each table
//! declared once (see [`crate::tables`]). Plain data: the rules that fill
//! them live in `rules`, the statements that load and store them are
//! generated from these declarations.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::decimal::Notional;
pub use crate::enums::{OrderStatus, OrderType, PositionSide, PositionState, Side};
use crate::tables::projection_table;

projection_table! {
    /// `orders_current`, keyed by (tenant_id, order_id).
    pub struct OrderRow = "orders_current" {
        order_id: Uuid = "uuid",
        tenant_id: Uuid = "uuid",
        account_id: Uuid = "uuid",
        position_id: Option<Uuid> = "uuid",
        exchange_order_id: Option<String> = "text",
        client_order_id: String = "character varying(64)",
        /// In the order the fills were applied.
        exchange_trade_ids: Vec<String> = "text[]",
        symbol: String = "character varying(20)",
        side: Side = "character varying(4)",
        order_type: OrderType = "character varying(20)",
        quantity: Decimal = "numeric(20,8)",
        price: Option<Decimal> = "numeric(20,8)",
        stop_price: Option<Decimal> = "numeric(20,8)",
        filled_quantity: Decimal = "numeric(20,8)",
        average_fill_price: Option<Decimal> = "numeric(20,8)",
        total_fee: Decimal = "numeric(20,8)",
        fee_asset: Option<String> = "text",
        status: OrderStatus = "character varying(20)",
        last_event_id: Uuid = "uuid",
        last_seq: i64 = "bigint",
        created_at: DateTime<Utc> = "timestamp with time zone",
        updated_at: DateTime<Utc> = "timestamp with time zone",
        filled_at: Option<DateTime<Utc>> = "timestamp with time zone",
        /// Internal: exact Σ price·quantity of the fills, for the VWAP.
        fill_notional: Notional = "numeric" internal,
    }
    /// Key of `orders_current` (and of the orders whose fills are checked).
    #[derive(Copy)]
    key OrderKey { tenant_id: Uuid, order_id: Uuid }
    upsert "(tenant_id, order_id)"
}

projection_table! {
    /// `fills`, keyed by (tenant_id, fill_id); fill_id is the FILL_RECEIVED
    /// event's id. A fill is never updated.
    pub struct FillRow = "fills" {
        fill_id: Uuid = "uuid",
        tenant_id: Uuid = "uuid",
        account_id: Uuid = "uuid",
        order_id: Uuid = "uuid",
        exchange_order_id: Option<String> = "text",
        exchange_trade_id: String = "text",
        symbol: String = "character varying(20)",
        side: Side = "character varying(4)",
        fill_price: Decimal = "numeric(20,8)",
        fill_quantity: Decimal = "numeric(20,8)",
        fee: Decimal = "numeric(20,8)",
        fee_asset: String = "text",
        is_maker: bool = "boolean",
        filled_at: DateTime<Utc> = "timestamp with time zone",
    }
    /// Key of `fills`.
    #[derive(Copy)]
    key FillKey { tenant_id: Uuid, fill_id: Uuid }
    insert
}

projection_table! {
    /// `positions_current`, keyed by (tenant_id, position_id).
    pub struct PositionRow = "positions_current" {
        position_id: Uuid = "uuid",
        tenant_id: Uuid = "uuid",
        account_id: Uuid = "uuid",
        strategy_id: Option<Uuid> = "uuid",
        symbol: String = "character varying(20)",
        side: PositionSide = "character varying(5)",
        entry_price: Option<Decimal> = "numeric(20,8)",
        entry_quantity: Option<Decimal> = "numeric(20,8)",
        entry_filled_at: Option<DateTime<Utc>> = "timestamp with time zone",
        technical_stop_price: Decimal = "numeric(20,8)",
        technical_stop_distance: Decimal = "numeric(20,8)",
        current_quantity: Decimal = "numeric(20,8)",
        trailing_stop_price: Option<Decimal> = "numeric(20,8)",
        realized_pnl: Decimal = "numeric(20,8)",
        total_fees: Decimal = "numeric(20,8)",
        state: PositionState = "character varying(20)",
        entry_order_id: Option<Uuid> = "uuid",
        exit_order_id: Option<Uuid> = "uuid",
        stop_loss_order_id: Option<Uuid> = "uuid",
        last_event_id: Uuid = "uuid",
        last_seq: i64 = "bigint",
        created_at: DateTime<Utc> = "timestamp with time zone",
        updated_at: DateTime<Utc> = "timestamp with time zone",
        closed_at: Option<DateTime<Utc>> = "timestamp with time zone",
    }
    /// Key of `positions_current`.
    #[derive(Copy)]
    key PositionKey { tenant_id: Uuid, position_id: Uuid }
    upsert "(tenant_id, position_id)"
}

projection_table! {
    /// `balances_current`, keyed by (tenant_id, account_id, asset).
    pub struct BalanceRow = "balances_current" {
        tenant_id: Uuid = "uuid",
        account_id: Uuid = "uuid",
        asset: String = "character varying(10)",
        free: Decimal = "numeric(20,8)",
        locked: Decimal = "numeric(20,8)",
        total: Decimal = "numeric(20,8)",
        sampled_at: DateTime<Utc> = "timestamp with time zone",
        last_event_id: Uuid = "uuid",
        last_seq: i64 = "bigint",
        updated_at: DateTime<Utc> = "timestamp with time zone",
    }
    /// Key of `balances_current`.
    key BalanceKey { tenant_id: Uuid, account_id: Uuid, asset: String }
    upsert "(tenant_id, account_id, asset)"
}

projection_table! {
    /// `risk_state_current`, keyed by (tenant_id, account_id, strategy_id),
    /// where a null strategy_id is one key (the account-wide row).
    pub struct RiskRow = "risk_state_current" {
        tenant_id: Uuid = "uuid",
        account_id: Uuid = "uuid",
        strategy_id: Option<Uuid> = "uuid",
        total_exposure: Decimal = "numeric(20,8)",
        max_exposure: Decimal = "numeric(20,8)",
        daily_pnl: Decimal = "numeric(20,8)",
        daily_loss_limit: Decimal = "numeric(20,8)",
        drawdown: Decimal = "numeric(20,8)",
        max_drawdown: Decimal = "numeric(20,8)",
        is_violated: bool = "boolean",
        violation_reason: Option<String> = "text",
        violated_at: Option<DateTime<Utc>> = "timestamp with time zone",
        calculated_at: DateTime<Utc> = "timestamp with time zone",
        last_event_id: Uuid = "uuid",
        last_seq: i64 = "bigint",
        updated_at: DateTime<Utc> = "timestamp with time zone",
    }
    /// Key of `risk_state_current` (`None` sorts first, like the fixtures).
    #[derive(Copy)]
    key RiskKey { tenant_id: Uuid, account_id: Uuid, strategy_id: Option<Uuid> }
    upsert "ON CONSTRAINT risk_state_current_key"
}

projection_table! {
    /// `strategy_state_current`, keyed by (tenant_id, strategy_id).
    pub struct StrategyRow = "strategy_state_current" {
        strategy_id: Uuid = "uuid",
        tenant_id: Uuid = "uuid",
        account_id: Uuid = "uuid",
        strategy_name: String = "text",
        strategy_type: String = "text",
        detector_config: Option<Value> = "jsonb",
        risk_config: Value = "jsonb",
        is_enabled: bool = "boolean",
        enabled_at: Option<DateTime<Utc>> = "timestamp with time zone",
        disabled_at: Option<DateTime<Utc>> = "timestamp with time zone",
        disabled_reason: Option<String> = "text",
        last_event_id: Uuid = "uuid",
        last_seq: i64 = "bigint",
        created_at: DateTime<Utc> = "timestamp with time zone",
        updated_at: DateTime<Utc> = "timestamp with time zone",
    }
    /// Key of `strategy_state_current`.
    #[derive(Copy)]
    key StrategyKey { tenant_id: Uuid, strategy_id: Uuid }
    upsert "(tenant_id, strategy_id)"
}
