//! The text of the generated statements, built once per table from its
//! declaration.
//!
//! Loads are written `FROM UNNEST(keys) CROSS JOIN LATERAL (… WHERE key =
//! k LIMIT 1)`, which plans as one primary-key probe per key whatever the
//! table's statistics. The plain `JOIN UNNEST(…)` form was planned once per
//! connection (a cached generic plan) while the table was still small — a
//! hash join over a sequential scan — and kept that plan as the table grew
//! during a catch-up from empty: a 22,000-row table scanned once per batch.

/// How one column is bound and selected (from its field's
/// [`SqlValue`](super::SqlValue)).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub name: &'static str,
    pub array: &'static str,
    pub nullable: bool,
    pub select: &'static str,
    pub insert: &'static str,
}

/// What a write does on a key conflict.
#[derive(Debug, Clone, Copy)]
pub enum OnConflict {
    /// Rows are only ever inserted (a conflict is an error).
    Fail,
    /// Replace every non-key column; the target is the `ON CONFLICT` clause
    /// (`(tenant_id, order_id)` or `ON CONSTRAINT name`).
    Update(&'static str),
}

/// One array parameter per column, numbered from `first`.
fn params(columns: &[Bound], first: usize) -> String {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", first + i, c.array))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(columns: &[Bound]) -> String {
    columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored rows of `table` under the keys bound as one array per key
/// column.
pub fn load(table: &str, key: &[Bound], columns: &[Bound]) -> String {
    let selected: Vec<String> = columns
        .iter()
        .map(|c| {
            let expr = c.select.replace("{}", &format!("x.{}", c.name));
            if c.select == "{}" {
                expr
            } else {
                format!("{expr} AS {}", c.name)
            }
        })
        .collect();
    let matches: Vec<String> = key
        .iter()
        .map(|k| {
            let op = if k.nullable {
                "IS NOT DISTINCT FROM"
            } else {
                "="
            };
            format!("x.{0} {op} k.{0}", k.name)
        })
        .collect();
    format!(
        "SELECT {} FROM UNNEST({}) AS k({}) \
         CROSS JOIN LATERAL (SELECT * FROM {table} x WHERE {} LIMIT 1) x",
        selected.join(", "),
        params(key, 1),
        names(key),
        matches.join(" AND "),
    )
}

/// Inserts the rows bound as one array per column, the first column's
/// array being parameter `$first` (1 for the statement on its own; more
/// when it is one part of a batch's single write statement, see
/// `store::writes`).
pub fn write(
    table: &str,
    key: &[&str],
    columns: &[Bound],
    on_conflict: OnConflict,
    first: usize,
) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|c| c.insert.replace("{}", &format!("u.{}", c.name)))
        .collect();
    let mut sql = format!(
        "INSERT INTO {table} ({0}) SELECT {1} FROM UNNEST({2}) AS u({0})",
        names(columns),
        values.join(", "),
        params(columns, first),
    );
    if let OnConflict::Update(target) = on_conflict {
        let set: Vec<String> = columns
            .iter()
            .filter(|c| !key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", c.name))
            .collect();
        sql.push_str(&format!(
            " ON CONFLICT {target} DO UPDATE SET {}",
            set.join(", ")
        ));
    }
    sql
}
