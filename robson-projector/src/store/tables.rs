//! Loading the projection rows of a batch: one set-based SELECT per table
//! for every row the batch touches (their writes are one statement:
//! `store::writes`). The statements are generated from the tables'
//! declarations (`crate::rows`, see `crate::tables`).

use std::collections::BTreeSet;

use sqlx::PgConnection;

use crate::fold::{Keys, Tables};
use crate::rows::{BalanceRow, OrderRow, PositionRow, RiskRow, StrategyRow};
use crate::tables::Projection;

/// The existing rows under `keys`, as unchanged [`Tables`].
pub async fn load(conn: &mut PgConnection, keys: &Keys) -> Result<Tables, sqlx::Error> {
    let mut tables = Tables::default();
    for row in load_rows::<OrderRow>(conn, &keys.orders).await? {
        tables.orders.load(row.key(), row);
    }
    for row in load_rows::<PositionRow>(conn, &keys.positions).await? {
        tables.positions.load(row.key(), row);
    }
    for row in load_rows::<BalanceRow>(conn, &keys.balances).await? {
        tables.balances.load(row.key(), row);
    }
    for row in load_rows::<RiskRow>(conn, &keys.risks).await? {
        tables.risks.load(row.key(), row);
    }
    for row in load_rows::<StrategyRow>(conn, &keys.strategies).await? {
        tables.strategies.load(row.key(), row);
    }
    Ok(tables)
}

/// The rows of `R`'s table under `keys` that exist.
async fn load_rows<R: Projection>(
    conn: &mut PgConnection,
    keys: &BTreeSet<R::Key>,
) -> Result<Vec<R>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    R::bind_keys(keys, sqlx::query(R::load_sql()))
        .try_map(|row| R::from_row(&row))
        .fetch_all(conn)
        .await
}
