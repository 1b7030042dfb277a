//! `strategy_state_current`: loading the strategies a batch touches and
//! upserting the changed ones, one statement each.

use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::PgConnection;

use crate::rows::{StrategyKey, StrategyRow};

/// The strategies under `keys` that exist.
pub async fn load(
    conn: &mut PgConnection,
    keys: &BTreeSet<StrategyKey>,
) -> Result<Vec<StrategyRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        r#"
        SELECT s.strategy_id, s.tenant_id, s.account_id, s.strategy_name, s.strategy_type,
               s.detector_config, s.risk_config, s.is_enabled, s.enabled_at, s.disabled_at,
               s.disabled_reason, s.last_event_id, s.last_seq, s.created_at, s.updated_at
          FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, strategy_id)
          CROSS JOIN LATERAL (SELECT * FROM strategy_state_current s
                               WHERE s.tenant_id = k.tenant_id AND s.strategy_id = k.strategy_id
                               LIMIT 1) s
        "#,
    )
    .bind(keys.iter().map(|k| k.tenant_id).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.strategy_id).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// Inserts or replaces `rows` (each key at most once).
pub async fn upsert(conn: &mut PgConnection, rows: &[&StrategyRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"
        INSERT INTO strategy_state_current
               (strategy_id, tenant_id, account_id, strategy_name, strategy_type,
                detector_config, risk_config, is_enabled, enabled_at, disabled_at,
                disabled_reason, last_event_id, last_seq, created_at, updated_at)
        SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                             $6::jsonb[], $7::jsonb[], $8::bool[], $9::timestamptz[],
                             $10::timestamptz[], $11::text[], $12::uuid[], $13::int8[],
                             $14::timestamptz[], $15::timestamptz[])
        ON CONFLICT (tenant_id, strategy_id) DO UPDATE SET
               account_id = EXCLUDED.account_id,
               strategy_name = EXCLUDED.strategy_name,
               strategy_type = EXCLUDED.strategy_type,
               detector_config = EXCLUDED.detector_config,
               risk_config = EXCLUDED.risk_config,
               is_enabled = EXCLUDED.is_enabled,
               enabled_at = EXCLUDED.enabled_at,
               disabled_at = EXCLUDED.disabled_at,
               disabled_reason = EXCLUDED.disabled_reason,
               last_event_id = EXCLUDED.last_event_id,
               last_seq = EXCLUDED.last_seq,
               created_at = EXCLUDED.created_at,
               updated_at = EXCLUDED.updated_at
        "#,
    )
    .bind(rows.iter().map(|r| r.strategy_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.strategy_name.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.strategy_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.detector_config.clone())
            .collect::<Vec<Option<Value>>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.risk_config.clone())
            .collect::<Vec<Value>>(),
    )
    .bind(rows.iter().map(|r| r.is_enabled).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.enabled_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.disabled_at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.disabled_reason.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.last_event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
