//! Loading and storing the projection rows of a batch: one set-based SELECT
//! per table for every row the batch touches, and one set-based write per
//! table for the rows it changed. The statements are generated from the
//! tables' declarations (`crate::rows`, see `crate::tables`).

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

/// Writes every changed row once, and inserts the new fills.
pub async fn write(conn: &mut PgConnection, tables: &Tables) -> Result<(), sqlx::Error> {
    write_rows(conn, &tables.orders.changed()).await?;
    write_rows(conn, &tables.fills.iter().collect::<Vec<_>>()).await?;
    write_rows(conn, &tables.positions.changed()).await?;
    write_rows(conn, &tables.balances.changed()).await?;
    write_rows(conn, &tables.risks.changed()).await?;
    write_rows(conn, &tables.strategies.changed()).await?;
    Ok(())
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

/// Inserts (or, for an upserted table, replaces) `rows`, each key at most
/// once.
async fn write_rows<R: Projection>(
    conn: &mut PgConnection,
    rows: &[&R],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    R::bind_rows(rows, sqlx::query(R::write_sql()))
        .execute(conn)
        .await?;
    Ok(())
}
