//! The columns of a projection row as JSON values, and the differences
//! between a live row and the row the log gives. Values are compared as
//! what they mean (decimals by value: `0` and `0.00000000` are equal) and
//! shown as an operator reads them (decimals normalised, timestamps in
//! RFC 3339 with microseconds, ids hyphenated).
//!
//! The column lists below are the drift check's own reading of
//! `robson_projector::rows`; when the tables are declared once, they are
//! to be derived from those declarations.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use robson_projector::decimal::Notional;
use robson_projector::rows::{
    BalanceRow, FillRow, OrderRow, OrderStatus, OrderType, PositionRow, PositionSide,
    PositionState, RiskRow, Side, StrategyRow,
};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// One column of one row that differs between the live table and the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDiff {
    pub table: &'static str,
    /// The row's key columns and their values.
    pub key: BTreeMap<&'static str, Value>,
    /// A column name, or `(row)` when the row exists on one side only (the
    /// values are then the whole row, or null on the side without it).
    pub column: &'static str,
    pub live: Value,
    pub expected: Value,
}

/// A value as it is compared and shown.
pub trait Cell {
    fn cell(&self) -> Value;
}

impl Cell for Uuid {
    fn cell(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl Cell for String {
    fn cell(&self) -> Value {
        Value::String(self.clone())
    }
}

impl Cell for Decimal {
    fn cell(&self) -> Value {
        Value::String(self.normalize().to_string())
    }
}

impl Cell for Notional {
    fn cell(&self) -> Value {
        let text = self.to_db_text();
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        Value::String(trimmed.to_owned())
    }
}

impl Cell for DateTime<Utc> {
    fn cell(&self) -> Value {
        Value::String(self.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Cell for bool {
    fn cell(&self) -> Value {
        Value::Bool(*self)
    }
}

impl Cell for i64 {
    fn cell(&self) -> Value {
        Value::from(*self)
    }
}

impl Cell for Value {
    fn cell(&self) -> Value {
        self.clone()
    }
}

impl Cell for Vec<String> {
    fn cell(&self) -> Value {
        Value::from(self.clone())
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> Value {
        self.as_ref().map_or(Value::Null, Cell::cell)
    }
}

macro_rules! text_cells {
    ($($t:ty),+) => {
        $(impl Cell for $t {
            fn cell(&self) -> Value {
                Value::String(self.as_str().to_owned())
            }
        })+
    };
}

text_cells!(Side, OrderType, OrderStatus, PositionSide, PositionState);

/// A projection row: its table, key columns and every column.
pub trait Columns {
    const TABLE: &'static str;
    const KEY: &'static [&'static str];
    fn columns(&self) -> Vec<(&'static str, Value)>;
}

macro_rules! columns {
    ($row:ty, $table:literal, [$($key:literal),+], [$($col:ident),+ $(,)?]) => {
        impl Columns for $row {
            const TABLE: &'static str = $table;
            const KEY: &'static [&'static str] = &[$($key),+];
            fn columns(&self) -> Vec<(&'static str, Value)> {
                vec![$((stringify!($col), self.$col.cell())),+]
            }
        }
    };
}

columns!(
    OrderRow,
    "orders_current",
    ["tenant_id", "order_id"],
    [
        order_id,
        tenant_id,
        account_id,
        position_id,
        exchange_order_id,
        client_order_id,
        exchange_trade_ids,
        symbol,
        side,
        order_type,
        quantity,
        price,
        stop_price,
        filled_quantity,
        average_fill_price,
        total_fee,
        fee_asset,
        status,
        last_event_id,
        last_seq,
        created_at,
        updated_at,
        filled_at,
        fill_notional,
    ]
);

columns!(
    FillRow,
    "fills",
    ["tenant_id", "fill_id"],
    [
        fill_id,
        tenant_id,
        account_id,
        order_id,
        exchange_order_id,
        exchange_trade_id,
        symbol,
        side,
        fill_price,
        fill_quantity,
        fee,
        fee_asset,
        is_maker,
        filled_at,
    ]
);

columns!(
    PositionRow,
    "positions_current",
    ["tenant_id", "position_id"],
    [
        position_id,
        tenant_id,
        account_id,
        strategy_id,
        symbol,
        side,
        entry_price,
        entry_quantity,
        entry_filled_at,
        technical_stop_price,
        technical_stop_distance,
        current_quantity,
        trailing_stop_price,
        realized_pnl,
        total_fees,
        state,
        entry_order_id,
        exit_order_id,
        stop_loss_order_id,
        last_event_id,
        last_seq,
        created_at,
        updated_at,
        closed_at,
    ]
);

columns!(
    BalanceRow,
    "balances_current",
    ["tenant_id", "account_id", "asset"],
    [
        tenant_id,
        account_id,
        asset,
        free,
        locked,
        total,
        sampled_at,
        last_event_id,
        last_seq,
        updated_at,
    ]
);

columns!(
    RiskRow,
    "risk_state_current",
    ["tenant_id", "account_id", "strategy_id"],
    [
        tenant_id,
        account_id,
        strategy_id,
        total_exposure,
        max_exposure,
        daily_pnl,
        daily_loss_limit,
        drawdown,
        max_drawdown,
        is_violated,
        violation_reason,
        violated_at,
        calculated_at,
        last_event_id,
        last_seq,
        updated_at,
    ]
);

columns!(
    StrategyRow,
    "strategy_state_current",
    ["tenant_id", "strategy_id"],
    [
        strategy_id,
        tenant_id,
        account_id,
        strategy_name,
        strategy_type,
        detector_config,
        risk_config,
        is_enabled,
        enabled_at,
        disabled_at,
        disabled_reason,
        last_event_id,
        last_seq,
        created_at,
        updated_at,
    ]
);

/// The marker column of a row that exists on one side only.
pub const WHOLE_ROW: &str = "(row)";

fn key_of(
    columns: &[(&'static str, Value)],
    key: &[&'static str],
) -> BTreeMap<&'static str, Value> {
    key.iter()
        .map(|k| {
            let value = columns.iter().find(|(c, _)| c == k).map(|(_, v)| v.clone());
            (*k, value.unwrap_or(Value::Null))
        })
        .collect()
}

fn object(columns: Vec<(&'static str, Value)>) -> Value {
    Value::Object(
        columns
            .into_iter()
            .map(|(c, v)| (c.to_owned(), v))
            .collect(),
    )
}

/// The differences between a live row and the expected one (either may be
/// absent), appended to `out`.
pub fn diff<R: Columns>(live: Option<&R>, expected: Option<&R>, out: &mut Vec<ColumnDiff>) {
    let (live, expected) = (live.map(R::columns), expected.map(R::columns));
    match (live, expected) {
        (None, None) => {}
        (Some(live), Some(expected)) => {
            let key = key_of(&expected, R::KEY);
            for ((column, l), (_, e)) in live.into_iter().zip(expected) {
                if l != e {
                    out.push(ColumnDiff {
                        table: R::TABLE,
                        key: key.clone(),
                        column,
                        live: l,
                        expected: e,
                    });
                }
            }
        }
        (live, expected) => {
            let key = key_of(
                live.as_ref().or(expected.as_ref()).map_or(&[][..], |c| c),
                R::KEY,
            );
            out.push(ColumnDiff {
                table: R::TABLE,
                key,
                column: WHOLE_ROW,
                live: live.map_or(Value::Null, object),
                expected: expected.map_or(Value::Null, object),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(free: &str) -> BalanceRow {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
            .expect("a timestamp")
            .with_timezone(&Utc);
        BalanceRow {
            tenant_id: Uuid::nil(),
            account_id: Uuid::nil(),
            asset: "BTC".into(),
            free: free.parse().expect("a decimal"),
            locked: Decimal::ZERO,
            total: free.parse().expect("a decimal"),
            sampled_at: at,
            last_event_id: Uuid::nil(),
            last_seq: 3,
            updated_at: at,
        }
    }

    #[test]
    fn equal_rows_differ_nowhere_even_when_decimals_have_other_scales() {
        let mut out = Vec::new();
        diff(
            Some(&balance("1.50000000")),
            Some(&balance("1.5")),
            &mut out,
        );
        assert_eq!(out, []);
    }

    #[test]
    fn a_changed_column_is_named_with_both_values_and_the_key() {
        let mut out = Vec::new();
        diff(Some(&balance("9")), Some(&balance("1.5")), &mut out);
        let columns: Vec<_> = out
            .iter()
            .map(|d| (d.column, d.live.clone(), d.expected.clone()))
            .collect();
        assert_eq!(
            columns,
            [
                ("free", Value::from("9"), Value::from("1.5")),
                ("total", Value::from("9"), Value::from("1.5")),
            ]
        );
        assert_eq!(out[0].table, "balances_current");
        assert_eq!(out[0].key["asset"], Value::from("BTC"));
        assert_eq!(
            balance("1").sampled_at.cell(),
            Value::from("2026-01-02T03:04:05.123456Z")
        );
    }

    #[test]
    fn a_row_on_one_side_only_is_one_difference_with_the_whole_row() {
        let mut out = Vec::new();
        diff(Some(&balance("1")), None, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].column, WHOLE_ROW);
        assert_eq!(out[0].expected, Value::Null);
        assert_eq!(out[0].live["free"], Value::from("1"));
    }
}
