//! The two references measured on the same events as the daemon:
//!
//! - **naive**: what a simple poller does — one transaction per event, the
//!   projection writes and a checkpoint update, through the same rules
//!   (`robson_projector::apply_event`), into a scratch schema;
//! - **limit**: PostgreSQL writing the *final* rows of the six projections
//!   set-based, 500 rows per transaction, into empty copies — the least work
//!   any projector could do to produce those tables.

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
        let page = robson_eventlog::read_committed(pool, after, 1000).await?;
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
