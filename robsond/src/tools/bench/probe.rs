//! End-to-end latency: from the commit of an append to the moment its
//! effect is visible in `orders_current`, observed on a dedicated
//! connection.
//!
//! The observer looks inside the server: one statement per probe, a loop
//! in a temporary function that checks for the row (each check a fresh
//! snapshot) and sleeps about a millisecond between checks, returning the
//! server's clock when it sees it. Polling from the client (a query every
//! 0.5 ms, the bench's observer until 2026-12-07) cost a round trip per
//! check — up to 2,000 a second; the idle phase alone kept a 2-core
//! machine 18 % busy — and its wake-ups shared the bench's thread with the
//! load writer: the instrument competed with what it measured, more the
//! slower the daemon was (docs/performance.md, "Planned once").

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use robson_eventlog::Event;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::tools::generate::{FlowGenerator, Profile};

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Events/s the load writer reached meanwhile (0 when idle).
    pub load_eps: f64,
    /// The samples, sorted (to pool several runs: [`Latencies::pooled`]).
    pub sorted: Vec<f64>,
    /// Each probe's commit time and latency, in the order they were sent
    /// (empty where the source has no time of day: [`Latencies::of`]).
    pub timed: Vec<(DateTime<Utc>, f64)>,
}

impl Latencies {
    pub fn of(mut samples: Vec<f64>) -> Latencies {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            samples[((samples.len() as f64 - 1.0) * q).round() as usize]
        };
        Latencies {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: samples.last().copied().unwrap_or(0.0),
            load_eps: 0.0,
            sorted: samples,
            timed: Vec::new(),
        }
    }

    /// [`Latencies::of`] the latencies of `timed`, which it keeps.
    pub fn of_timed(timed: Vec<(DateTime<Utc>, f64)>) -> Latencies {
        let values = timed.iter().map(|(_, ms)| *ms).collect();
        Latencies {
            timed,
            ..Latencies::of(values)
        }
    }

    /// The percentiles of every sample of `runs` together (the load rate:
    /// their mean).
    pub fn pooled(runs: &[&Latencies]) -> Latencies {
        let mut all = Latencies::of(runs.iter().flat_map(|l| l.sorted.iter().copied()).collect());
        all.load_eps = runs.iter().map(|l| l.load_eps).sum::<f64>() / runs.len().max(1) as f64;
        all
    }
}

/// `n` probes, one every 10 ms.
pub async fn latencies(pool: &PgPool, n: usize) -> anyhow::Result<Latencies> {
    let tenant = Uuid::new_v4();
    let account = Uuid::new_v4();
    let mut watcher = pool.acquire().await?.detach();
    sqlx::raw_sql(SEEN_FUNCTION).execute(&mut watcher).await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        samples.push(one_probe(pool, &mut watcher, tenant, account, i).await?);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = watcher.close().await;
    Ok(Latencies::of_timed(samples))
}

/// `n` probes while a writer appends generated flows at `rate` events/s.
/// Returns the latencies and the number of load events appended.
pub async fn latencies_under_load(
    pool: &PgPool,
    profile: Profile,
    n: usize,
    rate: u64,
) -> anyhow::Result<(Latencies, u64)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = actix_rt::spawn(load(pool.clone(), profile, rate, stop.clone()));
    let started = Instant::now();
    let result = latencies(pool, n).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = writer
        .await
        .map_err(|e| anyhow::anyhow!("load writer failed: {e}"))??;
    let mut latencies = result?;
    latencies.load_eps = appended as f64 / started.elapsed().as_secs_f64();
    Ok((latencies, appended))
}

/// Appends ~rate/100 events every 10 ms until stopped: small transactions,
/// as producers append (a long append transaction holds readers back while
/// it is open — see docs/eventlog.md).
async fn load(
    pool: PgPool,
    profile: Profile,
    rate: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<u64> {
    // A seed of its own per load run: with one seed for all, every load
    // after the first appended the same flows again — duplicates, which
    // the daemon does not project — and "under load" meant idle.
    let seed = 99 + LOAD_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut gen = FlowGenerator::with_profile(seed, 2, profile);
    let mut pending: Vec<Event> = Vec::new();
    let mut appended = 0u64;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        // At most a few ticks' worth per append: a writer that falls behind
        // stays behind (the rate reached is reported) instead of appending
        // ever larger transactions, each holding every reader back while
        // it is open.
        let want = (due.saturating_sub(appended) as usize).min(per_tick_cap(rate));
        if pending.len() < want {
            pending.extend(gen.take(want - pending.len(), u64::MAX));
        }
        // Whole flows only would be simpler, but the rate must hold: split
        // at `want`, the rest waits for the next tick (stream order is kept).
        let batch: Vec<Event> = pending.drain(..want).collect();
        let outcomes = robson_eventlog::append_batch(&pool, &batch).await?;
        appended += outcomes.iter().filter(|o| !o.duplicate).count() as u64;
    }
    Ok(appended)
}

/// Load runs started by this process.
static LOAD_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Events one 10 ms tick may append at most: four ticks' worth.
fn per_tick_cap(rate: u64) -> usize {
    (rate as usize / 100 * 4).max(1)
}

/// Waits (in the server, on the watcher's session) until the order is in
/// `orders_current`, checking about every millisecond (`pg_sleep` rounds a
/// wait up to whole milliseconds); returns the server's clock when it saw
/// the row, NULL after `timeout_ms`. A volatile function: each check takes
/// a new snapshot.
const SEEN_FUNCTION: &str = "
CREATE FUNCTION pg_temp.robson_probe_seen(t uuid, o uuid, timeout_ms int)
RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout_ms * interval '1 millisecond';
BEGIN
    LOOP
        IF EXISTS (SELECT 1 FROM orders_current WHERE tenant_id = t AND order_id = o) THEN
            RETURN clock_timestamp();
        END IF;
        IF clock_timestamp() > deadline THEN
            RETURN NULL;
        END IF;
        PERFORM pg_sleep(0.0005);
    END LOOP;
END $$";

async fn one_probe(
    pool: &PgPool,
    watcher: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    i: usize,
) -> anyhow::Result<(DateTime<Utc>, f64)> {
    let order = Uuid::new_v4();
    let event = Event::new(
        tenant,
        format!("order:{order}"),
        "ORDER_SUBMITTED",
        json!({
            "order_id": order, "account_id": account, "client_order_id": format!("probe-{i}"),
            "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "0.001"
        }),
        Utc::now(),
    );
    robson_eventlog::append_event(pool, &event).await?;
    let committed_at = Utc::now();
    let seen: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT pg_temp.robson_probe_seen($1, $2, 10000)")
            .bind(tenant)
            .bind(order)
            .fetch_one(&mut *watcher)
            .await?;
    let seen =
        seen.ok_or_else(|| anyhow::anyhow!("a probe event was not projected within 10 s"))?;
    let ms = (seen - committed_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    Ok((committed_at, ms.max(0.0)))
}
