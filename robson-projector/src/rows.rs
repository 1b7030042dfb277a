//! The rows of the six projection tables (migrations/003_projections.sql),
//! column for column, and their keys. Plain data: the rules that fill them
//! live in `rules`, the SQL that loads and stores them in `store`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::decimal::Notional;
pub use crate::enums::{OrderStatus, OrderType, PositionSide, PositionState, Side};

/// `orders_current`, keyed by (tenant_id, order_id).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrderRow {
    pub order_id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub position_id: Option<Uuid>,
    pub exchange_order_id: Option<String>,
    pub client_order_id: String,
    /// In the order the fills were applied.
    pub exchange_trade_ids: Vec<String>,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: Decimal,
    pub price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub filled_quantity: Decimal,
    pub average_fill_price: Option<Decimal>,
    pub total_fee: Decimal,
    pub fee_asset: Option<String>,
    pub status: OrderStatus,
    pub last_event_id: Uuid,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub filled_at: Option<DateTime<Utc>>,
    /// Internal: exact Σ price·quantity of the fills, for the VWAP.
    pub fill_notional: Notional,
}

/// `fills`, keyed by (tenant_id, fill_id); fill_id is the FILL_RECEIVED event's id.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FillRow {
    pub fill_id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub order_id: Uuid,
    pub exchange_order_id: Option<String>,
    pub exchange_trade_id: String,
    pub symbol: String,
    pub side: Side,
    pub fill_price: Decimal,
    pub fill_quantity: Decimal,
    pub fee: Decimal,
    pub fee_asset: String,
    pub is_maker: bool,
    pub filled_at: DateTime<Utc>,
}

/// `positions_current`, keyed by (tenant_id, position_id).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PositionRow {
    pub position_id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub strategy_id: Option<Uuid>,
    pub symbol: String,
    pub side: PositionSide,
    pub entry_price: Option<Decimal>,
    pub entry_quantity: Option<Decimal>,
    pub entry_filled_at: Option<DateTime<Utc>>,
    pub technical_stop_price: Decimal,
    pub technical_stop_distance: Decimal,
    pub current_quantity: Decimal,
    pub trailing_stop_price: Option<Decimal>,
    pub realized_pnl: Decimal,
    pub total_fees: Decimal,
    pub state: PositionState,
    pub entry_order_id: Option<Uuid>,
    pub exit_order_id: Option<Uuid>,
    pub stop_loss_order_id: Option<Uuid>,
    pub last_event_id: Uuid,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// `balances_current`, keyed by (tenant_id, account_id, asset).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BalanceRow {
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
    pub total: Decimal,
    pub sampled_at: DateTime<Utc>,
    pub last_event_id: Uuid,
    pub last_seq: i64,
    pub updated_at: DateTime<Utc>,
}

/// `risk_state_current`, keyed by (tenant_id, account_id, strategy_id), where
/// a null strategy_id is one key (the account-wide row).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RiskRow {
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub strategy_id: Option<Uuid>,
    pub total_exposure: Decimal,
    pub max_exposure: Decimal,
    pub daily_pnl: Decimal,
    pub daily_loss_limit: Decimal,
    pub drawdown: Decimal,
    pub max_drawdown: Decimal,
    pub is_violated: bool,
    pub violation_reason: Option<String>,
    pub violated_at: Option<DateTime<Utc>>,
    pub calculated_at: DateTime<Utc>,
    pub last_event_id: Uuid,
    pub last_seq: i64,
    pub updated_at: DateTime<Utc>,
}

/// `strategy_state_current`, keyed by (tenant_id, strategy_id).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StrategyRow {
    pub strategy_id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub strategy_name: String,
    pub strategy_type: String,
    pub detector_config: Option<Value>,
    pub risk_config: Value,
    pub is_enabled: bool,
    pub enabled_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub last_event_id: Uuid,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Key of `orders_current` (and of the orders whose fills are checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    pub tenant_id: Uuid,
    pub order_id: Uuid,
}

/// Key of `positions_current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositionKey {
    pub tenant_id: Uuid,
    pub position_id: Uuid,
}

/// Key of `balances_current`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BalanceKey {
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub asset: String,
}

/// Key of `risk_state_current` (`None` sorts first, like the fixtures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RiskKey {
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub strategy_id: Option<Uuid>,
}

/// Key of `strategy_state_current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StrategyKey {
    pub tenant_id: Uuid,
    pub strategy_id: Uuid,
}

impl OrderRow {
    pub fn key(&self) -> OrderKey {
        OrderKey {
            tenant_id: self.tenant_id,
            order_id: self.order_id,
        }
    }
}

impl PositionRow {
    pub fn key(&self) -> PositionKey {
        PositionKey {
            tenant_id: self.tenant_id,
            position_id: self.position_id,
        }
    }
}

impl BalanceRow {
    pub fn key(&self) -> BalanceKey {
        BalanceKey {
            tenant_id: self.tenant_id,
            account_id: self.account_id,
            asset: self.asset.clone(),
        }
    }
}

impl RiskRow {
    pub fn key(&self) -> RiskKey {
        RiskKey {
            tenant_id: self.tenant_id,
            account_id: self.account_id,
            strategy_id: self.strategy_id,
        }
    }
}

impl StrategyRow {
    pub fn key(&self) -> StrategyKey {
        StrategyKey {
            tenant_id: self.tenant_id,
            strategy_id: self.strategy_id,
        }
    }
}
