//! `positions_current`: loading the positions a batch touches and upserting
//! the changed ones, one statement each.

use std::collections::BTreeSet;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::rows::{PositionKey, PositionRow};

/// The positions under `keys` that exist.
pub async fn load(
    conn: &mut PgConnection,
    keys: &BTreeSet<PositionKey>,
) -> Result<Vec<PositionRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<Uuid> = keys.iter().map(|k| k.tenant_id).collect();
    let ids: Vec<Uuid> = keys.iter().map(|k| k.position_id).collect();
    sqlx::query_as(
        r#"
        SELECT p.position_id, p.tenant_id, p.account_id, p.strategy_id, p.symbol, p.side,
               p.entry_price, p.entry_quantity, p.entry_filled_at, p.technical_stop_price,
               p.technical_stop_distance, p.current_quantity, p.trailing_stop_price,
               p.realized_pnl, p.total_fees, p.state, p.entry_order_id, p.exit_order_id,
               p.stop_loss_order_id, p.last_event_id, p.last_seq, p.created_at, p.updated_at,
               p.closed_at
          FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, position_id)
          CROSS JOIN LATERAL (SELECT * FROM positions_current p
                               WHERE p.tenant_id = k.tenant_id AND p.position_id = k.position_id
                               LIMIT 1) p
        "#,
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await
}

/// Inserts or replaces `rows` (each key at most once).
pub async fn upsert(conn: &mut PgConnection, rows: &[&PositionRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"
        INSERT INTO positions_current
               (position_id, tenant_id, account_id, strategy_id, symbol, side, entry_price,
                entry_quantity, entry_filled_at, technical_stop_price, technical_stop_distance,
                current_quantity, trailing_stop_price, realized_pnl, total_fees, state,
                entry_order_id, exit_order_id, stop_loss_order_id, last_event_id, last_seq,
                created_at, updated_at, closed_at)
        SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                             $6::text[], $7::numeric[], $8::numeric[], $9::timestamptz[],
                             $10::numeric[], $11::numeric[], $12::numeric[], $13::numeric[],
                             $14::numeric[], $15::numeric[], $16::text[], $17::uuid[],
                             $18::uuid[], $19::uuid[], $20::uuid[], $21::int8[],
                             $22::timestamptz[], $23::timestamptz[], $24::timestamptz[])
        ON CONFLICT (tenant_id, position_id) DO UPDATE SET
               account_id = EXCLUDED.account_id,
               strategy_id = EXCLUDED.strategy_id,
               symbol = EXCLUDED.symbol,
               side = EXCLUDED.side,
               entry_price = EXCLUDED.entry_price,
               entry_quantity = EXCLUDED.entry_quantity,
               entry_filled_at = EXCLUDED.entry_filled_at,
               technical_stop_price = EXCLUDED.technical_stop_price,
               technical_stop_distance = EXCLUDED.technical_stop_distance,
               current_quantity = EXCLUDED.current_quantity,
               trailing_stop_price = EXCLUDED.trailing_stop_price,
               realized_pnl = EXCLUDED.realized_pnl,
               total_fees = EXCLUDED.total_fees,
               state = EXCLUDED.state,
               entry_order_id = EXCLUDED.entry_order_id,
               exit_order_id = EXCLUDED.exit_order_id,
               stop_loss_order_id = EXCLUDED.stop_loss_order_id,
               last_event_id = EXCLUDED.last_event_id,
               last_seq = EXCLUDED.last_seq,
               created_at = EXCLUDED.created_at,
               updated_at = EXCLUDED.updated_at,
               closed_at = EXCLUDED.closed_at
        "#,
    )
    .bind(rows.iter().map(|r| r.position_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.strategy_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.symbol.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.side.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.entry_price).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.entry_quantity).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.entry_filled_at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.technical_stop_price)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.technical_stop_distance)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.current_quantity).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.trailing_stop_price)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.realized_pnl).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.total_fees).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.entry_order_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.exit_order_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.stop_loss_order_id)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.last_event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.closed_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
