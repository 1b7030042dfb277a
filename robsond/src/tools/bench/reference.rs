//! The two references measured on the same events as the daemon:
//!
//! - **naive**: what a simple poller does — one transaction per event, the
//!   projection writes and a checkpoint update, through the same rules
//!   (`robson_projector::apply_event`), into a scratch schema;
//! - **limit**: PostgreSQL writing the *final* rows of the six projections
//!   set-based, 500 rows per transaction, into empty copies — the least work
//!   any projector could do to produce those tables;
//! - **per-event pipelined**: one upsert per event, pipelined;
//! - **read once**: every event of the log read once, commit-safe, in
//!   windows as the poller reads — what any projector that reads each event
//!   pays before it writes anything. With the limit it bounds catch-up:
//!   reading and writing take at least the sum of the two.

use std::time::Instant;

use robson_eventlog::Position;
use robson_projector::tables::READ_MODELS;
use robson_projector::PoisonPolicy;
use sqlx::{Connection, PgConnection, PgPool};

const ROWS_PER_TRANSACTION: usize = 500;

/// A scratch schema holding empty copies of the projection tables.
async fn scratch(conn: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
    let ddl = robson_projector::tables::DDL;
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
         SET search_path = {schema}, public; {ddl}"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Events per second of the naive projector over the first `n` events.
pub async fn naive(pool: &PgPool, n: u64) -> anyhow::Result<f64> {
    let mut conn = pool.acquire().await?.detach();
    scratch(&mut conn, "bench_naive").await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_naive.checkpoint (id int PRIMARY KEY, tx_id bigint, position bigint);
         INSERT INTO bench_naive.checkpoint VALUES (1, 0, 0);",
    )
    .execute(&mut conn)
    .await?;
    let mut events = Vec::new();
    let mut after = Position::START;
    while (events.len() as u64) < n {
        let page =
            robson_eventlog::read_committed(&mut *pool.acquire().await?, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.position();
        events.extend(page);
    }
    events.truncate(n as usize);
    let started = Instant::now();
    for e in &events {
        let mut tx = conn.begin().await?;
        robson_projector::apply_event(&mut tx, e, PoisonPolicy::Park).await?;
        sqlx::query("UPDATE bench_naive.checkpoint SET tx_id = $1, position = $2 WHERE id = 1")
            .bind(e.tx_id)
            .bind(e.global_position)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let eps = events.len() as f64 / started.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP SCHEMA bench_naive CASCADE")
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(eps)
}

/// Writes the final rows of the live projections into empty copies,
/// set-based, 500 rows a transaction; returns (rows, seconds). The rows are
/// fetched before the clock starts.
pub async fn set_based_limit(pool: &PgPool) -> anyhow::Result<(u64, f64)> {
    let mut conn = pool.acquire().await?.detach();
    let mut chunks: Vec<(&str, String)> = Vec::new();
    let mut rows = 0u64;
    for table in READ_MODELS.iter().map(|t| t.name) {
        let all: Vec<String> =
            sqlx::query_scalar(&format!("SELECT to_jsonb(t)::text FROM public.{table} t"))
                .fetch_all(&mut conn)
                .await?;
        rows += all.len() as u64;
        for chunk in all.chunks(ROWS_PER_TRANSACTION) {
            chunks.push((table, format!("[{}]", chunk.join(","))));
        }
    }
    scratch(&mut conn, "bench_limit").await?;
    let started = Instant::now();
    for (table, json) in &chunks {
        let mut tx = conn.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO bench_limit.{table} \
             SELECT * FROM jsonb_populate_recordset(NULL::bench_limit.{table}, $1::jsonb) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let secs = started.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP SCHEMA bench_limit CASCADE")
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok((rows, secs))
}

/// Events per read of the read-once reference (the poller's base window
/// with the default batch size and partitions).
const READ_WINDOW: i64 = 16_000;

/// Reads every event of the log once, commit-safe, `READ_WINDOW` at a
/// time, decoded as the poller decodes them; returns (events, seconds).
pub async fn read_once(pool: &PgPool) -> anyhow::Result<(u64, f64)> {
    let mut conn = pool.acquire().await?;
    let mut after = Position::START;
    let mut events = 0u64;
    let started = Instant::now();
    loop {
        let page = robson_eventlog::read_committed(&mut conn, after, READ_WINDOW).await?;
        let Some(last) = page.last() else { break };
        after = last.position();
        events += page.len() as u64;
    }
    Ok((events, started.elapsed().as_secs_f64()))
}

/// Rows per pipelined transaction of the per-event reference.
const EVENTS_PER_TRANSACTION: usize = 500;

/// The projection row each handled event of the sample lands in, in log
/// order: (table, final row as JSON). Joined on the payload's ids as text,
/// so a payload that is not a valid id simply matches nothing.
const EVENT_ROWS: &str = r#"
WITH ev AS (
    SELECT tx_id::text::int8 AS t, global_position AS g, tenant_id, event_type, payload
      FROM event_log ORDER BY tx_id, global_position LIMIT $1)
SELECT tbl, row_json FROM (
    SELECT 'orders_current' AS tbl, to_jsonb(o)::text AS row_json, t, g FROM ev
      JOIN orders_current o ON o.tenant_id = ev.tenant_id AND o.order_id::text = ev.payload->>'order_id'
     WHERE ev.event_type LIKE 'ORDER\_%' OR ev.event_type = 'FILL_RECEIVED'
    UNION ALL
    SELECT 'positions_current', to_jsonb(p)::text, t, g FROM ev
      JOIN positions_current p ON p.tenant_id = ev.tenant_id AND p.position_id::text = ev.payload->>'position_id'
     WHERE ev.event_type LIKE 'POSITION\_%'
    UNION ALL
    SELECT 'balances_current', to_jsonb(b)::text, t, g FROM ev
      JOIN balances_current b ON b.tenant_id = ev.tenant_id AND b.account_id::text = ev.payload->>'account_id'
                             AND b.asset = ev.payload->>'asset'
     WHERE ev.event_type = 'BALANCE_SAMPLED'
    UNION ALL
    SELECT 'risk_state_current', to_jsonb(r)::text, t, g FROM ev
      JOIN risk_state_current r ON r.tenant_id = ev.tenant_id AND r.account_id::text = ev.payload->>'account_id'
                               AND r.strategy_id::text IS NOT DISTINCT FROM ev.payload->>'strategy_id'
     WHERE ev.event_type LIKE 'RISK\_CHECK\_%'
    UNION ALL
    SELECT 'strategy_state_current', to_jsonb(s)::text, t, g FROM ev
      JOIN strategy_state_current s ON s.tenant_id = ev.tenant_id AND s.strategy_id::text = ev.payload->>'strategy_id'
     WHERE ev.event_type LIKE 'STRATEGY\_%'
) rows ORDER BY t, g
"#;

/// The per-event pipelined limit: for each of the first `n` events of the
/// log, one upsert of the row it lands in (its final content), into empty
/// copies, the upserts of 500 events pipelined in one transaction (through
/// `tokio-postgres`, which pipelines requests in flight on one connection:
/// sqlx waits for each answer). The least a projector writing one row per
/// event could cost. Returns (events of the sample, seconds).
pub async fn per_event_pipelined(pool: &PgPool, url: &str, n: u64) -> anyhow::Result<(u64, f64)> {
    let mut conn = pool.acquire().await?.detach();
    // Hash joins only: the planner cannot estimate the CTE's rows per event
    // type, and with statistics taken before the last load (the latency
    // phase's VACUUM ANALYZE) it once chose a merge join on tenant_id alone
    // for positions — a near cross join that ran for minutes.
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    sqlx::query("SET LOCAL enable_mergejoin = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL enable_nestloop = off")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(EVENT_ROWS)
        .bind(n as i64)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let sample: i64 =
        sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM event_log LIMIT $1) e")
            .bind(n as i64)
            .fetch_one(&mut conn)
            .await?;
    scratch(&mut conn, "bench_pipe").await?;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = actix_rt::spawn(connection);
    let mut statements = std::collections::HashMap::new();
    for table in READ_MODELS.iter() {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
              WHERE table_schema = 'bench_pipe' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table.name)
        .fetch_all(&mut conn)
        .await?;
        let set: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO bench_pipe.{t} SELECT * FROM jsonb_populate_record(NULL::bench_pipe.{t}, $1::text::jsonb) \
             ON CONFLICT ({key}) DO UPDATE SET {set}",
            t = table.name,
            key = table.key.join(", "),
            set = set.join(", "),
        );
        statements.insert(table.name, client.prepare(&sql).await?);
    }
    let started = Instant::now();
    for chunk in rows.chunks(EVENTS_PER_TRANSACTION) {
        client.batch_execute("BEGIN").await?;
        let upserts = chunk.iter().filter_map(|(table, row)| {
            let statement = statements.get(table.as_str())?;
            let param: &(dyn tokio_postgres::types::ToSql + Sync) = row;
            Some(client.execute_raw(statement, [param]))
        });
        futures::future::try_join_all(upserts).await?;
        client.batch_execute("COMMIT").await?;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(client);
    let _ = driver.await;
    sqlx::raw_sql("DROP SCHEMA bench_pipe CASCADE")
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok((sample.max(0) as u64, secs))
}
