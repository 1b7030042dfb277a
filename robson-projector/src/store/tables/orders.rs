//! `orders_current` and `fills`: loading the orders a batch touches, upserting
//! the changed ones, inserting the new fills. One statement each.

use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rows::{FillRow, OrderKey, OrderRow};

/// The orders under `keys` that exist.
pub async fn load(
    conn: &mut PgConnection,
    keys: &BTreeSet<OrderKey>,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<Uuid> = keys.iter().map(|k| k.tenant_id).collect();
    let ids: Vec<Uuid> = keys.iter().map(|k| k.order_id).collect();
    sqlx::query_as(
        r#"
        SELECT o.order_id, o.tenant_id, o.account_id, o.position_id, o.exchange_order_id,
               o.client_order_id, o.exchange_trade_ids, o.symbol, o.side, o.order_type,
               o.quantity, o.price, o.stop_price, o.filled_quantity, o.average_fill_price,
               o.total_fee, o.fee_asset, o.status, o.last_event_id, o.last_seq, o.created_at,
               o.updated_at, o.filled_at, o.fill_notional::text AS fill_notional
          FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, order_id)
          CROSS JOIN LATERAL (SELECT * FROM orders_current o
                               WHERE o.tenant_id = k.tenant_id AND o.order_id = k.order_id
                               LIMIT 1) o
        "#,
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await
}

/// Inserts or replaces `rows` (each key at most once).
pub async fn upsert(conn: &mut PgConnection, rows: &[&OrderRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // text[][] cannot hold rows of different lengths: one JSON array per order.
    let trade_ids: Vec<Value> = rows
        .iter()
        .map(|r| Value::from(r.exchange_trade_ids.clone()))
        .collect();
    sqlx::query(
        r#"
        INSERT INTO orders_current
               (order_id, tenant_id, account_id, position_id, exchange_order_id, client_order_id,
                exchange_trade_ids, symbol, side, order_type, quantity, price, stop_price,
                filled_quantity, average_fill_price, total_fee, fee_asset, status, last_event_id,
                last_seq, created_at, updated_at, filled_at, fill_notional)
        SELECT u.order_id, u.tenant_id, u.account_id, u.position_id, u.exchange_order_id,
               u.client_order_id,
               ARRAY(SELECT t.id FROM jsonb_array_elements_text(u.trade_ids) WITH ORDINALITY AS t(id, n)
                      ORDER BY t.n),
               u.symbol, u.side, u.order_type, u.quantity, u.price, u.stop_price,
               u.filled_quantity, u.average_fill_price, u.total_fee, u.fee_asset, u.status,
               u.last_event_id, u.last_seq, u.created_at, u.updated_at, u.filled_at,
               u.fill_notional::numeric
          FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                      $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::numeric[],
                      $12::numeric[], $13::numeric[], $14::numeric[], $15::numeric[],
                      $16::numeric[], $17::text[], $18::text[], $19::uuid[], $20::int8[],
                      $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::text[])
               AS u(order_id, tenant_id, account_id, position_id, exchange_order_id,
                    client_order_id, trade_ids, symbol, side, order_type, quantity, price,
                    stop_price, filled_quantity, average_fill_price, total_fee, fee_asset, status,
                    last_event_id, last_seq, created_at, updated_at, filled_at, fill_notional)
        ON CONFLICT (tenant_id, order_id) DO UPDATE SET
               account_id = EXCLUDED.account_id,
               position_id = EXCLUDED.position_id,
               exchange_order_id = EXCLUDED.exchange_order_id,
               client_order_id = EXCLUDED.client_order_id,
               exchange_trade_ids = EXCLUDED.exchange_trade_ids,
               symbol = EXCLUDED.symbol,
               side = EXCLUDED.side,
               order_type = EXCLUDED.order_type,
               quantity = EXCLUDED.quantity,
               price = EXCLUDED.price,
               stop_price = EXCLUDED.stop_price,
               filled_quantity = EXCLUDED.filled_quantity,
               average_fill_price = EXCLUDED.average_fill_price,
               total_fee = EXCLUDED.total_fee,
               fee_asset = EXCLUDED.fee_asset,
               status = EXCLUDED.status,
               last_event_id = EXCLUDED.last_event_id,
               last_seq = EXCLUDED.last_seq,
               created_at = EXCLUDED.created_at,
               updated_at = EXCLUDED.updated_at,
               filled_at = EXCLUDED.filled_at,
               fill_notional = EXCLUDED.fill_notional
        "#,
    )
    .bind(rows.iter().map(|r| r.order_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.position_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.exchange_order_id.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.client_order_id.as_str()).collect::<Vec<_>>())
    .bind(trade_ids)
    .bind(rows.iter().map(|r| r.symbol.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.side.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.order_type.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.quantity).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.price).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.stop_price).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.filled_quantity).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.average_fill_price).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.total_fee).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.fee_asset.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.filled_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.fill_notional.to_db_text()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new fills (a fill is never updated).
pub async fn insert_fills(conn: &mut PgConnection, fills: &[FillRow]) -> Result<(), sqlx::Error> {
    if fills.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"
        INSERT INTO fills
               (fill_id, tenant_id, account_id, order_id, exchange_order_id, exchange_trade_id,
                symbol, side, fill_price, fill_quantity, fee, fee_asset, is_maker, filled_at)
        SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::numeric[], $10::numeric[],
                             $11::numeric[], $12::text[], $13::bool[], $14::timestamptz[])
        "#,
    )
    .bind(fills.iter().map(|f| f.fill_id).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.tenant_id).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.account_id).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.order_id).collect::<Vec<_>>())
    .bind(
        fills
            .iter()
            .map(|f| f.exchange_order_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        fills
            .iter()
            .map(|f| f.exchange_trade_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(fills.iter().map(|f| f.symbol.as_str()).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.side.as_str()).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.fill_price).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.fill_quantity).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.fee).collect::<Vec<_>>())
    .bind(
        fills
            .iter()
            .map(|f| f.fee_asset.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(fills.iter().map(|f| f.is_maker).collect::<Vec<_>>())
    .bind(fills.iter().map(|f| f.filled_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
