//! Shared helpers: building and appending events, projecting them in chosen
//! batches, resetting the projections. Reading them back is in `snapshot`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use robson_eventlog::{
    append_event, query_events, AppendOutcome, Event, EventEnvelope, EventQuery,
};
use robson_projector::{apply_batch, BatchOutcome, PoisonPolicy};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub use robson_projector::testing::TestDb;

/// 2024-03-01T08:00:00Z plus `millis`.
pub fn at_ms(millis: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
        .single()
        .expect("valid time")
        + Duration::milliseconds(millis)
}

/// An append request.
pub fn event(
    tenant_id: Uuid,
    stream_key: &str,
    event_type: &str,
    payload: Value,
    millis: i64,
) -> Event {
    Event::new(tenant_id, stream_key, event_type, payload, at_ms(millis))
}

pub async fn append(pool: &PgPool, event: &Event) -> AppendOutcome {
    append_event(pool, event).await.expect("append")
}

/// Every event of the log, by global_position. (Not `read_committed`: its
/// snapshot xmin is cluster-wide, so tests running in other databases would
/// hold it back. Every append here has committed.)
pub async fn committed(pool: &PgPool) -> Vec<EventEnvelope> {
    let everything = EventQuery {
        limit: Some(1_000_000),
        ..EventQuery::default()
    };
    query_events(pool, &everything).await.expect("read the log")
}

/// Applies `events` in batches of `batch_size`, one transaction each.
pub async fn project(
    pool: &PgPool,
    events: &[EventEnvelope],
    batch_size: usize,
    policy: PoisonPolicy,
) -> BatchOutcome {
    let mut total = BatchOutcome::default();
    for batch in events.chunks(batch_size.max(1)) {
        total.merge(apply_in_transaction(pool, batch, policy).await);
    }
    total
}

/// Applies one batch in its own transaction and commits it, retrying a
/// transient failure as the daemon does (e.g. a concurrent applier started
/// the same stream first).
pub async fn apply_in_transaction(
    pool: &PgPool,
    batch: &[EventEnvelope],
    policy: PoisonPolicy,
) -> BatchOutcome {
    for _ in 0..50 {
        let mut tx = pool.begin().await.expect("begin");
        match apply_batch(&mut tx, batch, policy).await {
            Ok(outcome) => {
                tx.commit().await.expect("commit");
                return outcome;
            }
            Err(err) if err.class() == robson_projector::ErrorClass::Transient => {
                tx.rollback().await.expect("rollback");
            }
            Err(err) => panic!("apply batch: {err}"),
        }
    }
    panic!("apply batch: still failing transiently after 50 attempts")
}

/// Empties the projections and the projector's state (not the log).
pub async fn reset_projections(pool: &PgPool) {
    sqlx::raw_sql(
        "TRUNCATE orders_current, fills, positions_current, balances_current, risk_state_current,
                  strategy_state_current, projection_stream_progress, projection_dead_letters",
    )
    .execute(pool)
    .await
    .expect("truncate projections");
}

pub use robson_projector::testing::{first_difference, state};
