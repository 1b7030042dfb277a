//! `balances_current` and `risk_state_current`: loading the rows a batch
//! touches and upserting the changed ones, one statement each.

use std::collections::BTreeSet;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::rows::{BalanceKey, BalanceRow, RiskKey, RiskRow};

/// The balances under `keys` that exist.
pub async fn load_balances(
    conn: &mut PgConnection,
    keys: &BTreeSet<BalanceKey>,
) -> Result<Vec<BalanceRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        r#"
        SELECT b.tenant_id, b.account_id, b.asset, b.free, b.locked, b.total, b.sampled_at,
               b.last_event_id, b.last_seq, b.updated_at
          FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS k(tenant_id, account_id, asset)
          CROSS JOIN LATERAL (SELECT * FROM balances_current b
                               WHERE b.tenant_id = k.tenant_id AND b.account_id = k.account_id
                                 AND b.asset = k.asset
                               LIMIT 1) b
        "#,
    )
    .bind(keys.iter().map(|k| k.tenant_id).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.account_id).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.asset.as_str()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// Inserts or replaces balance rows (each key at most once).
pub async fn upsert_balances(
    conn: &mut PgConnection,
    rows: &[&BalanceRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"
        INSERT INTO balances_current
               (tenant_id, account_id, asset, free, locked, total, sampled_at, last_event_id,
                last_seq, updated_at)
        SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::numeric[], $5::numeric[],
                             $6::numeric[], $7::timestamptz[], $8::uuid[], $9::int8[],
                             $10::timestamptz[])
        ON CONFLICT (tenant_id, account_id, asset) DO UPDATE SET
               free = EXCLUDED.free,
               locked = EXCLUDED.locked,
               total = EXCLUDED.total,
               sampled_at = EXCLUDED.sampled_at,
               last_event_id = EXCLUDED.last_event_id,
               last_seq = EXCLUDED.last_seq,
               updated_at = EXCLUDED.updated_at
        "#,
    )
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.asset.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.free).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.locked).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.total).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sampled_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The risk rows under `keys` that exist (a null strategy_id matches null).
pub async fn load_risks(
    conn: &mut PgConnection,
    keys: &BTreeSet<RiskKey>,
) -> Result<Vec<RiskRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<Uuid> = keys.iter().map(|k| k.tenant_id).collect();
    let accounts: Vec<Uuid> = keys.iter().map(|k| k.account_id).collect();
    let strategies: Vec<Option<Uuid>> = keys.iter().map(|k| k.strategy_id).collect();
    sqlx::query_as(
        r#"
        SELECT r.tenant_id, r.account_id, r.strategy_id, r.total_exposure, r.max_exposure,
               r.daily_pnl, r.daily_loss_limit, r.drawdown, r.max_drawdown, r.is_violated,
               r.violation_reason, r.violated_at, r.calculated_at, r.last_event_id, r.last_seq,
               r.updated_at
          FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) AS k(tenant_id, account_id, strategy_id)
          CROSS JOIN LATERAL (SELECT * FROM risk_state_current r
                               WHERE r.tenant_id = k.tenant_id AND r.account_id = k.account_id
                                 AND r.strategy_id IS NOT DISTINCT FROM k.strategy_id
                               LIMIT 1) r
        "#,
    )
    .bind(&tenants)
    .bind(&accounts)
    .bind(&strategies)
    .fetch_all(conn)
    .await
}

/// Inserts or replaces risk rows (each key at most once; a null strategy_id
/// is one key, see the `risk_state_current_key` constraint).
pub async fn upsert_risks(conn: &mut PgConnection, rows: &[&RiskRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"
        INSERT INTO risk_state_current
               (tenant_id, account_id, strategy_id, total_exposure, max_exposure, daily_pnl,
                daily_loss_limit, drawdown, max_drawdown, is_violated, violation_reason,
                violated_at, calculated_at, last_event_id, last_seq, updated_at)
        SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::numeric[],
                             $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[],
                             $10::bool[], $11::text[], $12::timestamptz[], $13::timestamptz[],
                             $14::uuid[], $15::int8[], $16::timestamptz[])
        ON CONFLICT ON CONSTRAINT risk_state_current_key DO UPDATE SET
               total_exposure = EXCLUDED.total_exposure,
               max_exposure = EXCLUDED.max_exposure,
               daily_pnl = EXCLUDED.daily_pnl,
               daily_loss_limit = EXCLUDED.daily_loss_limit,
               drawdown = EXCLUDED.drawdown,
               max_drawdown = EXCLUDED.max_drawdown,
               is_violated = EXCLUDED.is_violated,
               violation_reason = EXCLUDED.violation_reason,
               violated_at = EXCLUDED.violated_at,
               calculated_at = EXCLUDED.calculated_at,
               last_event_id = EXCLUDED.last_event_id,
               last_seq = EXCLUDED.last_seq,
               updated_at = EXCLUDED.updated_at
        "#,
    )
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.strategy_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.total_exposure).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.max_exposure).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.daily_pnl).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.daily_loss_limit).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.drawdown).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.max_drawdown).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.is_violated).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.violation_reason.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.violated_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.calculated_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
