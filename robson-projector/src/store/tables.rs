//! Loading and storing the projection rows of a batch: one set-based SELECT
//! per table for every row the batch touches, and one set-based write per
//! table for the rows it changed. The per-table SQL is in the submodules.
//!
//! The loads are written `FROM UNNEST(keys) CROSS JOIN LATERAL (… WHERE key =
//! k LIMIT 1)`, which plans as one primary-key probe per key whatever the
//! table's statistics. The plain `JOIN UNNEST(…)` form was planned once per
//! connection (a cached generic plan) while the table was still small — a
//! hash join over a sequential scan — and kept that plan as the table grew
//! during a catch-up from empty: a 22,000-row table scanned once per batch.

mod accounts;
mod orders;
mod positions;
mod strategies;

use sqlx::PgConnection;

use crate::fold::{Keys, Tables};

/// The existing rows under `keys`, as unchanged [`Tables`].
pub async fn load(conn: &mut PgConnection, keys: &Keys) -> Result<Tables, sqlx::Error> {
    let mut tables = Tables::default();
    for row in orders::load(conn, &keys.orders).await? {
        tables.orders.load(row.key(), row);
    }
    for row in positions::load(conn, &keys.positions).await? {
        tables.positions.load(row.key(), row);
    }
    for row in accounts::load_balances(conn, &keys.balances).await? {
        tables.balances.load(row.key(), row);
    }
    for row in accounts::load_risks(conn, &keys.risks).await? {
        tables.risks.load(row.key(), row);
    }
    for row in strategies::load(conn, &keys.strategies).await? {
        tables.strategies.load(row.key(), row);
    }
    Ok(tables)
}

/// Writes every changed row once, and inserts the new fills.
pub async fn write(conn: &mut PgConnection, tables: &Tables) -> Result<(), sqlx::Error> {
    orders::upsert(conn, &tables.orders.changed()).await?;
    orders::insert_fills(conn, &tables.fills).await?;
    positions::upsert(conn, &tables.positions.changed()).await?;
    accounts::upsert_balances(conn, &tables.balances.changed()).await?;
    accounts::upsert_risks(conn, &tables.risks.changed()).await?;
    strategies::upsert(conn, &tables.strategies.changed()).await?;
    Ok(())
}
