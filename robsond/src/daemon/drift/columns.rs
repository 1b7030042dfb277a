//! The differences between a live projection row and the row the log
//! gives, column by column. The columns, their names, key and order come
//! from the table's declaration (`projection_table!` in
//! `robson_projector::rows`, [`Projection::shown_columns`]); values are
//! compared as what they mean and shown as an operator reads them
//! ([`robson_projector::tables::Shown`]: decimals by value and normalised,
//! timestamps in RFC 3339 with microseconds, ids hyphenated). A column
//! added to a declaration is compared and reported with no edit here.

use std::collections::BTreeMap;

use robson_projector::tables::Projection;
use serde::Serialize;
use serde_json::Value;

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
pub fn diff<R: Projection>(live: Option<&R>, expected: Option<&R>, out: &mut Vec<ColumnDiff>) {
    let (live, expected) = (live.map(R::shown_columns), expected.map(R::shown_columns));
    match (live, expected) {
        (None, None) => {}
        (Some(live), Some(expected)) => {
            let key = key_of(&expected, R::TABLE.key);
            for ((column, l), (_, e)) in live.into_iter().zip(expected) {
                if l != e {
                    out.push(ColumnDiff {
                        table: R::TABLE.name,
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
                R::TABLE.key,
            );
            out.push(ColumnDiff {
                table: R::TABLE.name,
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
    use chrono::{DateTime, Utc};
    use robson_projector::rows::BalanceRow;
    use robson_projector::tables::Shown;
    use rust_decimal::Decimal;
    use uuid::Uuid;

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
    fn every_declared_column_is_compared_in_table_order() {
        let shown: Vec<&str> = balance("1")
            .shown_columns()
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let declared: Vec<&str> = BalanceRow::TABLE.column_names().collect();
        assert_eq!(shown, declared);
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
            balance("1").sampled_at.shown(),
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
