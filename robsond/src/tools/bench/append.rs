//! `robsond bench --append [N]`: the append path against PostgreSQL's own
//! insert limit, in one run, on a throwaway cluster of its own.
//!
//! Every measure appends the same kind of rows — the mixed trading flow of
//! `robsond generate` (orders, fills, positions, balances, risk, strategies)
//! — into a fresh copy of a migrated database, so none of them pays for the
//! rows of another:
//!
//! - SQL `append_event`, one call per transaction (autocommit), and
//!   pipelined 1,000 calls per transaction (the calls of a transaction are
//!   sent without waiting for the answers, as psycopg's pipeline or JDBC
//!   batching do), from 1 and from 4 writers (the events split by stream,
//!   so that writers never wait for each other's stream locks);
//! - SQL `append_events(jsonb)`, 1,000 events per call;
//! - the Rust `append_event` (autocommit) and `append_batch` (1,000 per call);
//! - the references, on the same rows with their seq and idempotency key
//!   computed beforehand: a plain pipelined single-row INSERT, 1,000 per
//!   transaction, into a table shaped like `event_log` with its unique
//!   indexes on `(stream_key, seq)` and `idempotency_key`; one COPY into
//!   that table; and one COPY into the log's own tables (`event_log` with
//!   its partitions and read indexes, `event_log_keys`, `event_streams`),
//!   what any append must write at least.
//!
//! Latency "per call" is, for autocommit, the round trip of each call; for a
//! pipeline, each transaction's time divided by its 1,000 calls; for the
//! batch calls, the round trip of each 1,000-event call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use futures::stream::{FuturesOrdered, StreamExt};
use robson_eventlog::{compute_idempotency_key, Event};
use sqlx::{Connection, PgConnection};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use super::probe::Latencies;
use crate::tools::dev::binaries::{PgBin, RunAs};
use crate::tools::dev::cluster::Cluster;
use crate::tools::generate::FlowGenerator;

/// Calls (or rows) per transaction of the pipelined and batched measures.
const PER_TX: usize = 1000;
/// Writers of the concurrent measures.
const WRITERS: usize = 4;
const TEMPLATE: &str = "bench_append_tpl";

/// `robsond bench --append N`: `events` rows per bulk measure, a tenth of
/// that (at least 500) per autocommit measure.
pub fn run(events: u64, work_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    crate::telemetry::init_subscriber(crate::config::LogFormat::Text, &filter);
    let dir = work_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("robson-bench-append-{}", std::process::id()))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WRITERS)
        .enable_all()
        .build()
        .context("Failed to start a tokio runtime")?;
    let bulk = events.clamp(1000, 1_000_000) as usize;
    let result = runtime.block_on(on_private_cluster(bulk, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", result?);
    Ok(())
}

async fn on_private_cluster(bulk: usize, dir: &Path) -> anyhow::Result<String> {
    let bin = PgBin::find()?;
    let version = bin.version();
    let (cluster, _) = Cluster::open(bin, RunAs::detect()?, dir)?;
    let server = cluster.start()?;
    let base = server.url("postgres");
    let result = tokio::select! {
        result = measure(&base, bulk, version) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    server.stop()?;
    result
}

/// One line of the table.
#[derive(Debug)]
struct Measure {
    name: String,
    events: usize,
    secs: f64,
    latency: Option<Latencies>,
}

impl Measure {
    fn eps(&self) -> f64 {
        self.events as f64 / self.secs
    }
}

/// The events of a measure: `n` events of the generated flow (seeded by
/// `seed`, so every measure writes rows of its own).
fn flow(seed: u64, n: usize) -> Vec<Event> {
    let mut gen = FlowGenerator::new(seed, 4);
    let mut events = Vec::with_capacity(n + 16);
    while events.len() < n {
        events.extend(gen.next_flow());
    }
    events.truncate(n);
    events
}

/// The events split over `WRITERS` writers by stream, each writer's in order.
fn by_stream(events: Vec<Event>) -> Vec<Vec<Event>> {
    let mut parts: Vec<Vec<Event>> = (0..WRITERS).map(|_| Vec::new()).collect();
    for e in events {
        let h = e
            .stream_key
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        parts[(h % WRITERS as u64) as usize].push(e);
    }
    parts
}

struct Bench {
    base: String,
    fresh: u32,
}

impl Bench {
    /// A new database, a copy of the migrated template; returns its URL.
    async fn fresh_database(&mut self) -> anyhow::Result<String> {
        self.fresh += 1;
        let name = format!("bench_append_{}", self.fresh);
        let mut admin = PgConnection::connect(&self.base).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("Failed to create {name}"))?;
        admin.close().await?;
        Ok(with_database(&self.base, &name))
    }
}

/// The server's URL `base` (ending in `/postgres`) for another database.
fn with_database(base: &str, database: &str) -> String {
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{database}")
}

async fn pg_client(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("Failed to connect (tokio-postgres)")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "bench connection ended");
        }
    });
    Ok(client)
}

const APPEND_SQL: &str = "SELECT event_id, seq, global_position, duplicate \
     FROM append_event($1, $2, $3, $4, $5, p_command_id => $6)";

fn append_params(e: &Event) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &e.tenant_id,
        &e.stream_key,
        &e.event_type,
        &e.payload,
        &e.occurred_at,
        &e.command_id,
    ]
}

/// A row of the references: the event with its seq and key computed.
struct Row {
    event: Event,
    seq: i64,
    key: String,
}

fn rows_of(events: Vec<Event>) -> Vec<Row> {
    let mut heads: HashMap<String, i64> = HashMap::new();
    events
        .into_iter()
        .map(|event| {
            let head = heads.entry(event.stream_key.clone()).or_insert(0);
            *head += 1;
            let key = compute_idempotency_key(
                event.tenant_id,
                &event.stream_key,
                event.command_id,
                &event.payload,
            );
            Row {
                seq: *head,
                key,
                event,
            }
        })
        .collect()
}

const REFERENCE_DDL: &str = "CREATE TABLE bench_ref (LIKE event_log INCLUDING DEFAULTS);
     CREATE UNIQUE INDEX ON bench_ref (stream_key, seq);
     CREATE UNIQUE INDEX ON bench_ref (idempotency_key);";

const INSERT_SQL: &str =
    "INSERT INTO bench_ref (event_id, tenant_id, stream_key, seq, event_type, \
     payload, occurred_at, idempotency_key, command_id) \
     VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8)";

fn insert_params(r: &Row) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &r.event.tenant_id,
        &r.event.stream_key,
        &r.seq,
        &r.event.event_type,
        &r.event.payload,
        &r.event.occurred_at,
        &r.key,
        &r.event.command_id,
    ]
}

/// Each item one autocommit call; the latency of each.
async fn autocommit<T>(
    client: &Client,
    stmt: &Statement,
    items: &[T],
    params: fn(&T) -> Vec<&(dyn ToSql + Sync)>,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(items.len());
    for item in items {
        let started = Instant::now();
        client.execute_raw(stmt, params(item)).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(samples)
}

/// `PER_TX` calls per transaction, each transaction's calls pipelined; per
/// transaction, its time divided by its calls (answers arrive in bursts, so
/// a single call of a pipeline has no latency of its own).
async fn pipelined<T>(
    client: &Client,
    stmt: &Statement,
    items: &[T],
    params: fn(&T) -> Vec<&(dyn ToSql + Sync)>,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(items.len() / PER_TX + 1);
    for chunk in items.chunks(PER_TX) {
        let started = Instant::now();
        client.batch_execute("BEGIN").await?;
        let mut calls: FuturesOrdered<_> = chunk
            .iter()
            .map(|item| client.execute_raw(stmt, params(item)))
            .collect();
        while let Some(done) = calls.next().await {
            done?;
        }
        client.batch_execute("COMMIT").await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0 / chunk.len() as f64);
    }
    Ok(samples)
}

type Runner<T> = for<'a> fn(
    &'a Client,
    &'a Statement,
    &'a [T],
    fn(&T) -> Vec<&(dyn ToSql + Sync)>,
) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<f64>>>;

fn boxed_autocommit<'a, T: Sync>(
    c: &'a Client,
    s: &'a Statement,
    i: &'a [T],
    p: fn(&T) -> Vec<&(dyn ToSql + Sync)>,
) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<f64>>> {
    Box::pin(autocommit(c, s, i, p))
}

fn boxed_pipelined<'a, T: Sync>(
    c: &'a Client,
    s: &'a Statement,
    i: &'a [T],
    p: fn(&T) -> Vec<&(dyn ToSql + Sync)>,
) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<f64>>> {
    Box::pin(pipelined(c, s, i, p))
}

/// Runs `runner` from one writer per part, each on its own connection and
/// fresh copy of nothing: all writers share the database at `url`.
async fn writers<T: Send + Sync + 'static>(
    url: &str,
    setup: Option<&str>,
    sql: &'static str,
    parts: Vec<Vec<T>>,
    runner: Runner<T>,
    params: fn(&T) -> Vec<&(dyn ToSql + Sync)>,
) -> anyhow::Result<(f64, Vec<f64>)> {
    if let Some(ddl) = setup {
        pg_client(url).await?.batch_execute(ddl).await?;
    }
    let mut clients = Vec::new();
    for _ in &parts {
        let client = pg_client(url).await?;
        let stmt = client.prepare(sql).await?;
        clients.push((client, stmt));
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(parts)
        .map(|((client, stmt), part)| {
            tokio::spawn(async move { runner(&client, &stmt, &part, params).await })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok((started.elapsed().as_secs_f64(), samples))
}

async fn measure(base: &str, bulk: usize, pg_version: String) -> anyhow::Result<String> {
    let small = (bulk / 10).max(500);
    {
        let mut admin = PgConnection::connect(base).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {TEMPLATE}"))
            .execute(&mut admin)
            .await?;
        let mut tpl = PgConnection::connect(&with_database(base, TEMPLATE)).await?;
        crate::schema::migrate(&mut tpl)
            .await
            .context("Failed to migrate")?;
        tpl.close().await?;
        admin.close().await?;
    }
    let load_before = load_average();
    let mut bench = Bench {
        base: base.to_owned(),
        fresh: 0,
    };
    let mut out: Vec<Measure> = Vec::new();
    let mut seed = 100;
    let mut next_seed = || {
        seed += 1;
        seed
    };

    let sql_runs: [(&str, usize, Runner<Event>, usize); 4] = [
        ("SQL append_event, autocommit", 1, boxed_autocommit, small),
        (
            "SQL append_event, autocommit",
            WRITERS,
            boxed_autocommit,
            small,
        ),
        (
            "SQL append_event, pipelined 1,000/tx",
            1,
            boxed_pipelined,
            bulk,
        ),
        (
            "SQL append_event, pipelined 1,000/tx",
            WRITERS,
            boxed_pipelined,
            bulk,
        ),
    ];
    for (name, n_writers, runner, n) in sql_runs {
        eprintln!("bench --append: {name}, {n_writers} writer(s), {n} events…");
        let events = flow(next_seed(), n);
        let parts = if n_writers == 1 {
            vec![events]
        } else {
            by_stream(events)
        };
        let url = bench.fresh_database().await?;
        let (secs, samples) = writers(&url, None, APPEND_SQL, parts, runner, append_params).await?;
        out.push(Measure {
            name: format!("{name}, {n_writers} writer(s)"),
            events: n,
            secs,
            latency: Some(Latencies::of(samples)),
        });
    }

    let url = bench.fresh_database().await?;
    if has_append_events(&url).await? {
        eprintln!("bench --append: SQL append_events(jsonb), {bulk} events…");
        out.push(sql_append_events(&url, flow(next_seed(), bulk)).await?);
    }

    eprintln!("bench --append: Rust append_event and append_batch…");
    out.push(rust_single(&bench.fresh_database().await?, flow(next_seed(), small)).await?);
    out.push(rust_batch(&bench.fresh_database().await?, flow(next_seed(), bulk)).await?);

    eprintln!("bench --append: references (plain INSERT, COPY)…");
    let url = bench.fresh_database().await?;
    let (secs, samples) = writers(
        &url,
        Some(REFERENCE_DDL),
        INSERT_SQL,
        vec![rows_of(flow(next_seed(), small))],
        boxed_autocommit,
        insert_params,
    )
    .await?;
    out.push(Measure {
        name: "reference: plain INSERT, autocommit, 1 writer(s)".into(),
        events: small,
        secs,
        latency: Some(Latencies::of(samples)),
    });
    for n_writers in [1, WRITERS] {
        let rows = rows_of(flow(next_seed(), bulk));
        let parts = if n_writers == 1 {
            vec![rows]
        } else {
            let mut parts: Vec<Vec<Row>> = (0..WRITERS).map(|_| Vec::new()).collect();
            for (i, r) in rows.into_iter().enumerate() {
                parts[i % WRITERS].push(r);
            }
            parts
        };
        let url = bench.fresh_database().await?;
        let (secs, samples) = writers(
            &url,
            Some(REFERENCE_DDL),
            INSERT_SQL,
            parts,
            boxed_pipelined,
            insert_params,
        )
        .await?;
        out.push(Measure {
            name: format!("reference: plain INSERT, pipelined 1,000/tx, {n_writers} writer(s)"),
            events: bulk,
            secs,
            latency: Some(Latencies::of(samples)),
        });
    }
    out.push(
        copy_reference(
            &bench.fresh_database().await?,
            rows_of(flow(next_seed(), bulk)),
        )
        .await?,
    );
    out.push(
        copy_log_reference(
            &bench.fresh_database().await?,
            rows_of(flow(next_seed(), bulk)),
        )
        .await?,
    );
    Ok(render(
        &out,
        &pg_version,
        bulk,
        &load_before,
        &load_average(),
    ))
}

/// Whether the schema has `append_events(jsonb)` (migration 007 on).
async fn has_append_events(url: &str) -> anyhow::Result<bool> {
    let mut conn = PgConnection::connect(url).await?;
    let found: bool =
        sqlx::query_scalar("SELECT to_regprocedure('append_events(jsonb)') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(found)
}

async fn sql_append_events(url: &str, events: Vec<Event>) -> anyhow::Result<Measure> {
    let client = pg_client(url).await?;
    let stmt = client
        .prepare("SELECT count(*) FROM append_events($1::jsonb)")
        .await?;
    let docs: Vec<serde_json::Value> = events
        .chunks(PER_TX)
        .map(|chunk| {
            serde_json::Value::Array(
                chunk
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "tenant_id": e.tenant_id, "stream_key": e.stream_key,
                            "event_type": e.event_type, "payload": e.payload,
                            "occurred_at": e.occurred_at, "command_id": e.command_id,
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    for doc in &docs {
        let t = Instant::now();
        client.query_one(&stmt, &[doc]).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Measure {
        name: "SQL append_events(jsonb), 1,000 per call (latency per call)".into(),
        events: events.len(),
        secs: started.elapsed().as_secs_f64(),
        latency: Some(Latencies::of(samples)),
    })
}

async fn rust_single(url: &str, events: Vec<Event>) -> anyhow::Result<Measure> {
    let mut conn = PgConnection::connect(url).await?;
    let mut samples = Vec::with_capacity(events.len());
    let started = Instant::now();
    for e in &events {
        let t = Instant::now();
        robson_eventlog::append_event(&mut conn, e).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Measure {
        name: "Rust append_event, autocommit, 1 writer".into(),
        events: events.len(),
        secs: started.elapsed().as_secs_f64(),
        latency: Some(Latencies::of(samples)),
    })
}

async fn rust_batch(url: &str, events: Vec<Event>) -> anyhow::Result<Measure> {
    let mut conn = PgConnection::connect(url).await?;
    let mut samples = Vec::new();
    let started = Instant::now();
    for chunk in events.chunks(PER_TX) {
        let t = Instant::now();
        robson_eventlog::append_batch(&mut conn, chunk).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Measure {
        name: "Rust append_batch, 1,000 per call (latency per call)".into(),
        events: events.len(),
        secs: started.elapsed().as_secs_f64(),
        latency: Some(Latencies::of(samples)),
    })
}

/// COPY text format: `\N` for NULL, backslash escapes for the rest.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(v) = value else {
        out.push_str("\\N");
        return;
    };
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// One COPY text line of `fields`.
fn copy_line(text: &mut String, fields: &[Option<String>]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            text.push('\t');
        }
        copy_field(text, f.as_deref());
    }
    text.push('\n');
}

async fn copy_in(conn: &mut PgConnection, statement: &str, text: String) -> anyhow::Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// The fields of a row that both COPY references write to their event table.
fn event_fields(r: &Row, event_id: &uuid::Uuid) -> Vec<Option<String>> {
    let e = &r.event;
    vec![
        Some(event_id.to_string()),
        Some(e.tenant_id.to_string()),
        Some(e.stream_key.clone()),
        Some(r.seq.to_string()),
        Some(e.event_type.clone()),
        Some(e.payload.to_string()),
        Some(e.occurred_at.to_rfc3339()),
        Some(r.key.clone()),
        e.command_id.map(|c| c.to_string()),
    ]
}

const EVENT_COLUMNS: &str =
    "event_id, tenant_id, stream_key, seq, event_type, payload, occurred_at, idempotency_key, \
     command_id";

/// COPY of the rows into the reference table of the issue: `event_log`'s
/// columns, two unique indexes.
async fn copy_reference(url: &str, rows: Vec<Row>) -> anyhow::Result<Measure> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(REFERENCE_DDL).execute(&mut conn).await?;
    let mut text = String::new();
    for r in &rows {
        copy_line(&mut text, &event_fields(r, &uuid::Uuid::new_v4()));
    }
    // The text is ready before the clock starts, as the rows of the INSERT
    // reference are.
    let started = Instant::now();
    copy_in(
        &mut conn,
        &format!("COPY bench_ref ({EVENT_COLUMNS}) FROM STDIN"),
        text,
    )
    .await?;
    Ok(Measure {
        name: "reference: COPY, one transaction".into(),
        events: rows.len(),
        secs: started.elapsed().as_secs_f64(),
        latency: None,
    })
}

/// COPY of the rows, with their seqs, keys and positions computed, into the
/// log's own tables as an append leaves them (`event_log` with its
/// partitions and indexes, `event_log_keys`, `event_streams`), in one
/// transaction: what the append path must write at least.
async fn copy_log_reference(url: &str, rows: Vec<Row>) -> anyhow::Result<Measure> {
    let mut conn = PgConnection::connect(url).await?;
    let now = chrono::Utc::now().to_rfc3339();
    let (mut events, mut keys, mut streams) = (String::new(), String::new(), String::new());
    let mut heads: HashMap<&str, (String, i64)> = HashMap::new();
    for (position, r) in (1_i64..).zip(&rows) {
        let id = uuid::Uuid::new_v4();
        let mut fields = event_fields(r, &id);
        fields.push(Some(position.to_string()));
        copy_line(&mut events, &fields);
        copy_line(
            &mut keys,
            &[
                Some(r.key.clone()),
                Some(id.to_string()),
                Some(r.event.stream_key.clone()),
                Some(r.seq.to_string()),
                Some(position.to_string()),
                Some(now.clone()),
            ],
        );
        heads.insert(&r.event.stream_key, (r.event.tenant_id.to_string(), r.seq));
    }
    for (stream, (tenant, head)) in heads {
        copy_line(
            &mut streams,
            &[
                Some(stream.to_owned()),
                Some(tenant),
                Some(head.to_string()),
            ],
        );
    }
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    copy_in(
        &mut tx,
        "COPY event_streams (stream_key, tenant_id, last_seq) FROM STDIN",
        streams,
    )
    .await?;
    copy_in(
        &mut tx,
        "COPY event_log_keys (idempotency_key, event_id, stream_key, seq, global_position, \
         ingested_at) FROM STDIN",
        keys,
    )
    .await?;
    copy_in(
        &mut tx,
        &format!("COPY event_log ({EVENT_COLUMNS}, global_position) FROM STDIN"),
        events,
    )
    .await?;
    tx.commit().await?;
    Ok(Measure {
        name: "reference: COPY into the log's own tables, one transaction".into(),
        events: rows.len(),
        secs: started.elapsed().as_secs_f64(),
        latency: None,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn find<'a>(out: &'a [Measure], prefix: &str) -> Option<&'a Measure> {
    out.iter().find(|m| m.name.starts_with(prefix))
}

fn render(out: &[Measure], pg: &str, bulk: usize, before: &str, after: &str) -> String {
    let insert1 = find(out, "reference: plain INSERT, pipelined 1,000/tx, 1 ");
    let insert4 = find(out, "reference: plain INSERT, pipelined 1,000/tx, 4 ");
    let copy = find(out, "reference: COPY, one");
    let copy_log = find(out, "reference: COPY into the log's own tables");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = format!(
        "robson bench --append: PostgreSQL {pg}, {cores} cores, load average {before} (start) / {after} (end)\n\
         workload: the mixed trading flow of `robsond generate`, {bulk} events per bulk measure, \
         {} per autocommit one; a fresh database each\n\n\
         latency per call: autocommit, its round trip; pipelined, a transaction's time / its calls; \
         batch calls, their round trip\n\n\
         | measure | events | events/s | p50 ms | p99 ms | ratio |\n|---|---|---|---|---|---|\n",
        (bulk / 10).max(500)
    );
    for m in out {
        let reference = if m.name.starts_with("SQL append_event, pipelined") {
            if m.name.contains(", 1 ") {
                insert1.map(|r| ("plain INSERT, 1 writer", r))
            } else {
                insert4.map(|r| ("plain INSERT, 4 writers", r))
            }
        } else if m.name.starts_with("SQL append_event, autocommit, 1 ")
            || m.name.starts_with("Rust append_event")
        {
            find(out, "reference: plain INSERT, autocommit").map(|r| ("plain INSERT autocommit", r))
        } else if m.name.starts_with("Rust append_batch") || m.name.starts_with("SQL append_events")
        {
            copy.map(|r| ("COPY", r))
        } else {
            None
        };
        let mut ratio = reference
            .map(|(what, r)| format!("{:.1} % of {what}", 100.0 * m.eps() / r.eps()))
            .unwrap_or_default();
        if let (Some(("COPY", _)), Some(log)) = (reference, copy_log) {
            ratio.push_str(&format!(
                ", {:.1} % of COPY into the log's tables",
                100.0 * m.eps() / log.eps()
            ));
        }
        let (p50, p99) = m
            .latency
            .as_ref()
            .map(|l| (format!("{:.2}", l.p50_ms), format!("{:.2}", l.p99_ms)))
            .unwrap_or_default();
        s.push_str(&format!(
            "| {} | {} | {:.0} | {p50} | {p99} | {ratio} |\n",
            m.name,
            m.events,
            m.eps()
        ));
    }
    let target = |ok: bool| if ok { "met" } else { "NOT met" };
    let ratio = |a: Option<&Measure>, b: Option<&Measure>| match (a, b) {
        (Some(a), Some(b)) => a.eps() / b.eps(),
        _ => 0.0,
    };
    let pipelined = ratio(
        find(out, "SQL append_event, pipelined 1,000/tx, 1 "),
        insert1,
    );
    let batch = ratio(find(out, "Rust append_batch"), copy);
    let p99 = find(out, "SQL append_event, autocommit, 1 ")
        .and_then(|m| m.latency.clone())
        .map_or(f64::INFINITY, |l| l.p99_ms);
    s.push_str(&format!(
        "\ntargets: SQL pipelined >= 25 % of plain INSERT: {:.1} % ({}); \
         Rust batch >= 50 % of COPY: {:.1} % ({}); autocommit p99 < 3 ms: {p99:.2} ms ({})\n",
        100.0 * pipelined,
        target(pipelined >= 0.25),
        100.0 * batch,
        target(batch >= 0.5),
        target(p99 < 3.0)
    ));
    s
}
