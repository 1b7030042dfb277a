//! apply_batch of 500 mixed events in one transaction, against the same
//! events applied one transaction each, on real PostgreSQL (DATABASE_URL,
//! e.g. `scripts/with-postgres.sh cargo bench -p robson-projector`).
//! Without DATABASE_URL it says so and measures nothing.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
/// A test database with the projector's schema (the bench builds without
/// the `testing` feature).
type TestDb = robson_eventlog::testing::Database<robson_projector::schema::Projection>;
use robson_eventlog::{append_batch, query_events, Event, EventEnvelope, EventQuery};
use robson_projector::{apply_batch, PoisonPolicy};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const EVENTS: usize = 500;

/// 100 order streams of five events (submit, ack, two fills, cancel) and
/// their account's balance samples: every table but positions and
/// strategies, and the fill VWAP path.
fn workload() -> Vec<Event> {
    let tenant = Uuid::from_u128(7);
    let account = Uuid::from_u128(8);
    let start = Utc
        .with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let mut events = Vec::with_capacity(EVENTS);
    for n in 0..(EVENTS / 5) {
        let order = Uuid::from_u128(1_000 + n as u128);
        let stream = format!("order:{order}");
        let at = |k: i64| start + chrono::Duration::milliseconds(n as i64 * 10 + k);
        let payloads = [
            (
                "ORDER_SUBMITTED",
                json!({"order_id": order, "account_id": account, "client_order_id": format!("c{n}"),
                "symbol": "BTCUSDT", "side": "buy", "order_type": "limit", "quantity": "1", "price": "95000.12"}),
            ),
            (
                "ORDER_ACKED",
                json!({"order_id": order, "exchange_order_id": format!("E{n}")}),
            ),
            (
                "FILL_RECEIVED",
                json!({"order_id": order, "exchange_trade_id": format!("T{n}a"), "fill_price": "95000.1",
                "fill_quantity": "0.4", "fee": "0.38", "fee_asset": "USDT"}),
            ),
            (
                "FILL_RECEIVED",
                json!({"order_id": order, "exchange_trade_id": format!("T{n}b"), "fill_price": "95000.3",
                "fill_quantity": "0.6", "fee": "0.57", "fee_asset": "USDT"}),
            ),
            (
                "BALANCE_SAMPLED",
                json!({"account_id": account, "asset": format!("A{}", n % 10), "free": format!("{n}.5"), "locked": "1"}),
            ),
        ];
        for (k, (event_type, payload)) in payloads.into_iter().enumerate() {
            let key = if event_type == "BALANCE_SAMPLED" {
                format!("account:{account}")
            } else {
                stream.clone()
            };
            events.push(Event::new(tenant, key, event_type, payload, at(k as i64)));
        }
    }
    events
}

async fn reset(pool: &PgPool) {
    sqlx::raw_sql(
        "TRUNCATE orders_current, fills, positions_current, balances_current, risk_state_current,
                  strategy_state_current, projection_stream_progress, projection_dead_letters",
    )
    .execute(pool)
    .await
    .expect("truncate");
}

async fn one_transaction(pool: &PgPool, events: &[EventEnvelope]) {
    let mut tx = pool.begin().await.expect("begin");
    let outcome = apply_batch(&mut tx, events, PoisonPolicy::Park)
        .await
        .expect("apply");
    assert_eq!(outcome.applied as usize, events.len());
    tx.commit().await.expect("commit");
}

async fn transaction_per_event(pool: &PgPool, events: &[EventEnvelope]) {
    for event in events {
        one_transaction(pool, std::slice::from_ref(event)).await;
    }
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("DATABASE_URL").is_none() {
        eprintln!("apply_batch bench: DATABASE_URL is not set; nothing measured (run it under scripts/with-postgres.sh).");
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (db, events) = rt.block_on(async {
        let db = TestDb::new().await;
        append_batch(&db.pool, &workload()).await.expect("append");
        let all = EventQuery {
            limit: Some(10_000),
            ..EventQuery::default()
        };
        let events = query_events(&db.pool, &all).await.expect("read");
        (db, events)
    });
    assert_eq!(events.len(), EVENTS);
    let mut group = c.benchmark_group("apply_batch");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    for (name, per_event) in [
        ("500 events, one transaction", false),
        ("500 events, one transaction each", true),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (pool, events) = (db.pool.clone(), events.clone());
                async move {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        reset(&pool).await;
                        let started = Instant::now();
                        if per_event {
                            transaction_per_event(&pool, &events).await;
                        } else {
                            one_transaction(&pool, &events).await;
                        }
                        spent += started.elapsed();
                    }
                    spent
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
