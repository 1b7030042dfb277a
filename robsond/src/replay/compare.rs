//! Comparing the live projection with a shadow (`verify`): the six read
//! models column by column, per-stream progress (`last_seq`, `parked_seq`)
//! and the dead letters that decide state (`event_id`, `error_kind`,
//! `resolution`; a `retried` one is history, not state), each table's
//! columns as declared in `robson_projector::tables`. Both ways with
//! `EXCEPT`, then paired by key so that each differing row is reported once
//! with the columns that differ.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use sqlx::PgConnection;

use super::schema::quote_ident;
use super::tables::{self, TableSpec};

/// Differing rows fetched per table at most (a drift report, not a dump).
const MAX_ROWS_PER_TABLE: i64 = 1000;

/// One row that is not the same in the live table and the rebuilt one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    pub table: &'static str,
    /// The key columns and their values.
    pub key: BTreeMap<String, Value>,
    /// The compared columns of the live row; `None` when it has no such row.
    pub live: Option<BTreeMap<String, Value>>,
    pub rebuilt: Option<BTreeMap<String, Value>>,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DriftReport {
    /// Live rows that took part in the comparison.
    pub rows_compared: i64,
    pub differences: Vec<Difference>,
    /// Whether some table had more differing rows than were fetched.
    pub truncated: bool,
}

impl DriftReport {
    pub fn is_identical(&self) -> bool {
        self.differences.is_empty()
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key: Vec<String> = self
            .key
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect();
        write!(f, "{} [{}]: ", self.table, key.join(", "))?;
        match (&self.live, &self.rebuilt) {
            (Some(_), None) => write!(f, "only in the live table"),
            (None, Some(_)) => write!(f, "missing from the live table"),
            (Some(live), Some(rebuilt)) => {
                let changed: Vec<String> = live
                    .iter()
                    .filter(|(col, v)| rebuilt.get(*col) != Some(*v))
                    .map(|(col, v)| {
                        let other = rebuilt.get(col).unwrap_or(&Value::Null);
                        format!("{col}: live {} vs rebuilt {}", plain(v), plain(other))
                    })
                    .collect();
                write!(f, "{}", changed.join("; "))
            }
            (None, None) => Ok(()),
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares the live tables (schema `live`, quoted) with those the
/// connection's `search_path` resolves first (the shadow).
pub(super) async fn compare(
    conn: &mut PgConnection,
    live: &str,
) -> Result<DriftReport, sqlx::Error> {
    let mut report = DriftReport::default();
    for table in tables::READ_MODELS {
        let columns: Vec<String> = table.column_names().map(quote_ident).collect();
        diff(conn, live, table, &columns, "true", &mut report).await?;
    }
    let (progress, dead_letters) = (&tables::PROGRESS, &tables::DEAD_LETTERS);
    let cols = |names: &[&str]| names.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
    // A stream with nothing applied and not parked is the same as no row.
    let filter = "last_seq > 0 OR parked_seq IS NOT NULL";
    let columns = cols(&["stream_key", "last_seq", "parked_seq"]);
    diff(conn, live, progress, &columns, filter, &mut report).await?;
    let filter = "resolution IS DISTINCT FROM 'retried'";
    let columns = cols(&["event_id", "stream_key", "seq", "error_kind", "resolution"]);
    diff(conn, live, dead_letters, &columns, filter, &mut report).await?;
    Ok(report)
}

/// Adds the rows of `table` (restricted to `filter`) that differ between
/// `live` and the shadow to `report`.
async fn diff(
    conn: &mut PgConnection,
    live: &str,
    table: &TableSpec,
    columns: &[String],
    filter: &str,
    report: &mut DriftReport,
) -> Result<(), sqlx::Error> {
    let (t, cols) = (table.name, columns.join(", "));
    let count = format!("SELECT count(*) FROM {live}.{t} WHERE {filter}");
    report.rows_compared += sqlx::query_scalar::<_, i64>(&count)
        .fetch_one(&mut *conn)
        .await?;
    let sql = format!(
        r#"
        (SELECT true, to_jsonb(x) FROM (SELECT {cols} FROM {live}.{t} WHERE {filter}
                                        EXCEPT SELECT {cols} FROM {t} WHERE {filter}) x LIMIT $1)
        UNION ALL
        (SELECT false, to_jsonb(x) FROM (SELECT {cols} FROM {t} WHERE {filter}
                                         EXCEPT SELECT {cols} FROM {live}.{t} WHERE {filter}) x LIMIT $1)
        "#
    );
    let rows: Vec<(bool, sqlx::types::Json<BTreeMap<String, Value>>)> = sqlx::query_as(&sql)
        .bind(MAX_ROWS_PER_TABLE)
        .fetch_all(&mut *conn)
        .await?;
    report.truncated |= rows.iter().filter(|r| r.0).count() as i64 >= MAX_ROWS_PER_TABLE
        || rows.iter().filter(|r| !r.0).count() as i64 >= MAX_ROWS_PER_TABLE;
    let mut paired: BTreeMap<String, Difference> = BTreeMap::new();
    for (is_live, row) in rows {
        let row = row.0;
        let key: BTreeMap<String, Value> = table
            .key
            .iter()
            .map(|k| (k.to_string(), row.get(*k).cloned().unwrap_or(Value::Null)))
            .collect();
        let entry = paired
            .entry(Value::from(serde_json::Map::from_iter(key.clone())).to_string())
            .or_insert_with(|| Difference {
                table: table.name,
                key,
                live: None,
                rebuilt: None,
            });
        if is_live {
            entry.live = Some(row);
        } else {
            entry.rebuilt = Some(row);
        }
    }
    report.differences.extend(paired.into_values());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).expect("an object")
    }

    fn difference(live: Option<Value>, rebuilt: Option<Value>) -> String {
        Difference {
            table: "orders_current",
            key: row(json!({"order_id": "o-1", "tenant_id": "t-1"})),
            live: live.map(row),
            rebuilt: rebuilt.map(row),
        }
        .to_string()
    }

    #[test]
    fn a_changed_row_names_its_key_and_only_the_columns_that_differ() {
        let live = json!({"order_id": "o-1", "filled_quantity": 2.5, "status": "filled"});
        let rebuilt = json!({"order_id": "o-1", "filled_quantity": 1.5, "status": "filled"});
        assert_eq!(
            difference(Some(live), Some(rebuilt)),
            "orders_current [order_id=o-1, tenant_id=t-1]: filled_quantity: live 2.5 vs rebuilt 1.5"
        );
    }

    #[test]
    fn a_row_on_one_side_only_says_which() {
        let r = json!({"order_id": "o-1"});
        assert!(difference(Some(r.clone()), None).ends_with(": only in the live table"));
        assert!(difference(None, Some(r)).ends_with(": missing from the live table"));
    }
}
