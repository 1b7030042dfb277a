//! A batch's writes in ONE statement: the changed rows of every read model,
//! the new fills and the progress of the streams the batch moved, as
//! data-modifying CTEs of a single `WITH … SELECT`. Each part is the
//! table's own generated write (see `crate::tables::sql`) with its
//! parameters numbered after the previous part's. Only the tables a batch
//! writes are in its statement (an empty part would still open its table
//! and every index of it: measured, 589 µs a batch with all parts, 387 µs
//! with the written ones); the text of each combination is built once and
//! prepared once per connection.
//!
//! Why one statement: a batch's fixed cost is its round trips, and on a
//! loaded machine every round trip waits for the client and the server to
//! be scheduled in turn. Written one statement per table, a batch took up
//! to eight round trips to write; now it takes one (docs/performance.md,
//! "Round trips per batch").
//!
//! Every part of a `WITH` runs exactly once and to completion, all on the
//! same snapshot; no two parts write the same table, so none needs to see
//! another's rows. Errors are those of the parts: a refused row fails the
//! statement (the caller's savepoint rolls back and the batch is applied
//! one event at a time), a new stream's progress row inserted meanwhile by
//! another applier is [`ProgressError::Concurrent`].

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::progress::{self, Progress, ProgressError};
use super::AlsoWrite;
use crate::fold::Tables;
use crate::rows::{BalanceRow, FillRow, OrderRow, PositionRow, RiskRow, StrategyRow};
use crate::tables::Projection;

/// Writes every changed row once, the new fills, `moved`'s progress and
/// the caller's `also` (bound with `applied`, a count per batch). Returns how many rows `also`
/// returned (0 without it).
pub async fn write(
    conn: &mut PgConnection,
    tables: &Tables,
    moved: &[Progress],
    also: Option<(&dyn AlsoWrite, &[u64])>,
) -> Result<u64, ProgressError> {
    let (stored, new) = progress::split(moved);
    let orders = tables.orders.changed();
    let fills: Vec<&FillRow> = tables.fills.iter().collect();
    let positions = tables.positions.changed();
    let balances = tables.balances.changed();
    let risks = tables.risks.changed();
    let strategies = tables.strategies.changed();
    let present = [
        !orders.is_empty(),
        !fills.is_empty(),
        !positions.is_empty(),
        !balances.is_empty(),
        !risks.is_empty(),
        !strategies.is_empty(),
        !stored.is_empty(),
        !new.is_empty(),
    ];
    if !present.contains(&true) && also.is_none() {
        return Ok(0);
    }
    let mask = present
        .iter()
        .enumerate()
        .fold(0usize, |m, (i, p)| m | (usize::from(*p) << i));
    let mut query = sqlx::query(sql(mask, also.map(|(a, _)| (a.sql(), a.params()))));
    if let Some((also, applied)) = also {
        query = also.bind(query, applied);
    }
    if present[0] {
        query = OrderRow::bind_rows(&orders, query);
    }
    if present[1] {
        query = FillRow::bind_rows(&fills, query);
    }
    if present[2] {
        query = PositionRow::bind_rows(&positions, query);
    }
    if present[3] {
        query = BalanceRow::bind_rows(&balances, query);
    }
    if present[4] {
        query = RiskRow::bind_rows(&risks, query);
    }
    if present[5] {
        query = StrategyRow::bind_rows(&strategies, query);
    }
    if present[6] {
        query = progress::bind_stored(query, &stored);
    }
    if present[7] {
        query = progress::bind_new(query, &new);
    }
    let (inserted, also_returned): (Vec<String>, i64) = query
        .try_map(|row: PgRow| Ok((row.try_get(0)?, row.try_get(1)?)))
        .fetch_one(conn)
        .await?;
    progress::check_inserted(&new, &inserted)?;
    Ok(also_returned as u64)
}

/// The parts of the statement, in the order they are bound: the CTE's name,
/// its text from its first parameter's number, and its parameter count.
type Part = (&'static str, fn(usize) -> String, usize);

const PARTS: [Part; 8] = [
    (
        "write_orders",
        OrderRow::write_sql_from,
        OrderRow::TABLE.columns.len(),
    ),
    (
        "write_fills",
        FillRow::write_sql_from,
        FillRow::TABLE.columns.len(),
    ),
    (
        "write_positions",
        PositionRow::write_sql_from,
        PositionRow::TABLE.columns.len(),
    ),
    (
        "write_balances",
        BalanceRow::write_sql_from,
        BalanceRow::TABLE.columns.len(),
    ),
    (
        "write_risks",
        RiskRow::write_sql_from,
        RiskRow::TABLE.columns.len(),
    ),
    (
        "write_strategies",
        StrategyRow::write_sql_from,
        StrategyRow::TABLE.columns.len(),
    ),
    ("progress_stored", progress::update_sql, 5),
    ("progress_new", progress::insert_sql, 6),
];

/// The statement of the parts in `mask` (bit i: `PARTS[i]`), after the
/// caller's part (its text and parameter count) if any, built once per
/// combination. Only the tables written are in it: a part with nothing to
/// write would still open its table and every index of it.
fn sql(mask: usize, also: Option<(&'static str, usize)>) -> &'static str {
    static SQL: [OnceLock<String>; 1 << PARTS.len()] =
        [const { OnceLock::new() }; 1 << PARTS.len()];
    type Key = (usize, &'static str);
    static WITH_ALSO: Mutex<BTreeMap<Key, &'static str>> = Mutex::new(BTreeMap::new());
    let Some((also_sql, also_params)) = also else {
        return SQL[mask].get_or_init(|| build(mask, None));
    };
    let mut built = WITH_ALSO.lock().unwrap_or_else(PoisonError::into_inner);
    // Leaked once per combination and caller's part: a few hundred at most.
    built
        .entry((mask, also_sql))
        .or_insert_with(|| build(mask, Some((also_sql, also_params))).leak())
}

fn build(mask: usize, also: Option<(&str, usize)>) -> String {
    let mut ctes = Vec::new();
    let mut next = 1;
    if let Some((text, params)) = also {
        ctes.push(format!("also_write AS ({text})"));
        next += params;
    }
    for (i, (name, part, params)) in PARTS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            ctes.push(format!("{name} AS ({})", part(next)));
            next += params;
        }
    }
    let inserted = if mask & (1 << 7) != 0 {
        "ARRAY(SELECT stream_key FROM progress_new)"
    } else {
        "'{}'::text[]"
    };
    let also_returned = if also.is_some() {
        "(SELECT count(*) FROM also_write)"
    } else {
        "0::int8"
    };
    format!(
        "WITH {} SELECT {inserted}, {also_returned}",
        ctes.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_of_every_combination_is_used_once_in_order() {
        for mask in 1..(1usize << PARTS.len()) {
            let sql = sql(mask, None);
            let count: usize = PARTS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, p)| p.2)
                .sum();
            for n in 1..=count {
                assert_eq!(sql.matches(&format!("${n}::")).count(), 1, "{mask}: ${n}");
            }
            assert!(!sql.contains(&format!("${}::", count + 1)), "{mask}");

            // The caller's part first, its parameters before all others.
            let also = "UPDATE t SET a = $1::int4, b = $2::text RETURNING a";
            let with = super::sql(mask, Some((also, 2)));
            assert!(
                with.starts_with(&format!("WITH also_write AS ({also})")),
                "{mask}"
            );
            for n in 1..=count + 2 {
                assert_eq!(with.matches(&format!("${n}::")).count(), 1, "{mask}: ${n}");
            }
            assert!(!with.contains(&format!("${}::", count + 3)), "{mask}");
            assert_eq!(super::sql(mask, Some((also, 2))), with, "built once");
        }
        let alone = sql(0, Some(("UPDATE t SET a = $1::int4 RETURNING a", 1)));
        assert!(
            alone.ends_with("SELECT '{}'::text[], (SELECT count(*) FROM also_write)"),
            "{alone}"
        );
    }

    #[test]
    fn every_read_model_and_the_progress_are_written_by_a_part() {
        let sql = sql((1 << PARTS.len()) - 1, None);
        for table in crate::tables::ALL {
            let written = sql.contains(&format!("INSERT INTO {} ", table.name))
                || sql.contains(&format!("UPDATE {} ", table.name));
            assert_eq!(
                written,
                table.name != "projection_dead_letters",
                "{}",
                table.name
            );
        }
    }
}
