//! Rebuild time: the whole log against the latest snapshot (taken at 90 %
//! of the log) plus the events after it, on the PostgreSQL cluster named by
//! DATABASE_URL, e.g.
//! `scripts/with-postgres.sh cargo bench -p robsond --bench rebuild`.
//! Without DATABASE_URL it says so and measures nothing.
//! ROBSON_BENCH_EVENTS sets the size of the log (default 50 000).
//!
//! Each iteration is a complete `rebuild`: shadow schema, replay, swap.

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use indicatif::ProgressBar;
use robson_eventlog::{append_batch, Event};
use robson_projector::PoisonPolicy;
use robsond::replay::rebuild::{rebuild, RebuildOptions};
use robsond::replay::snapshot;
use robsond::tools::generate::FlowGenerator;
use sqlx::PgPool;

/// A test database with every migration robsond applies.
type TestDb = robson_eventlog::testing::Database<robsond::schema::Robsond>;

const DEFAULT_EVENTS: usize = 50_000;

fn options(from_snapshot: bool) -> RebuildOptions {
    RebuildOptions {
        from_snapshot,
        snapshot_id: None,
        policy: PoisonPolicy::Park,
        batch_size: 500,
    }
}

/// Generated flows of at least `events` events.
fn flows(gen: &mut FlowGenerator, events: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(events + 16);
    while out.len() < events {
        out.extend(gen.next_flow());
    }
    out
}

async fn append(pool: &PgPool, events: &[Event]) {
    for chunk in events.chunks(1000) {
        append_batch(pool, chunk).await.expect("append");
    }
}

/// A database holding `events` events, projected, with a snapshot taken
/// when 90 % of them were projected.
async fn prepare(events: usize) -> String {
    let db = TestDb::new().await;
    let mut gen = FlowGenerator::new(2024, 4);
    append(&db.pool, &flows(&mut gen, events * 9 / 10)).await;
    let bar = ProgressBar::hidden();
    rebuild(&db.url, options(false), &bar)
        .await
        .expect("initial projection");
    // The snapshot's position is the oldest checkpoint: the log's end here.
    sqlx::query(
        r#"
        INSERT INTO projection_checkpoints (partition, partition_count, tx_id, global_position)
        SELECT 0, 1, tx_id::text::int8, global_position FROM event_log
         ORDER BY tx_id DESC, global_position DESC LIMIT 1
        "#,
    )
    .execute(&db.pool)
    .await
    .expect("checkpoint");
    snapshot::take(&db.pool, None).await.expect("snapshot");
    append(&db.pool, &flows(&mut gen, events / 10)).await;
    let rebuilt = rebuild(&db.url, options(false), &bar)
        .await
        .expect("projection");
    let from_snapshot = rebuild(&db.url, options(true), &bar)
        .await
        .expect("rebuild from the snapshot");
    println!(
        "log: {} events; a rebuild from the snapshot reads {} of them",
        rebuilt.counts.events_read, from_snapshot.counts.events_read
    );
    db.pool.close().await;
    db.url
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

fn main() {
    if std::env::var("DATABASE_URL").is_err() {
        eprintln!("rebuild bench: DATABASE_URL is not set; nothing measured (see the file's doc).");
        return;
    }
    let events = std::env::var("ROBSON_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EVENTS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("machine: {}", machine());
    let url = rt.block_on(prepare(events));
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    let mut group = c.benchmark_group(format!("rebuild_{events}_events"));
    group.sampling_mode(SamplingMode::Flat);
    let bar = ProgressBar::hidden();
    for (name, from_snapshot) in [("full", false), ("from_snapshot_at_90pct", true)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                rebuild(&url, options(from_snapshot), &bar)
                    .await
                    .expect("rebuild")
            })
        });
    }
    group.finish();
    c.final_summary();
}
