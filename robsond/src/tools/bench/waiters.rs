//! Read-your-writes wake-up: the delay from a projector's commit (the call
//! of `Waiters::after_commit` a projector makes right after it) to the
//! moment a waiter has its answer, with [`WAITERS`] concurrent waiters on
//! distinct streams. As in the daemon, the waiters run on one
//! current-thread runtime (the HTTP worker's) and the commits come from
//! another thread (a projector's arbiter). HTTP itself is not measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use robson_eventlog::EventEnvelope;
use robson_projector::{BatchOutcome, PoisonPolicy};

use super::probe::Latencies;
use crate::daemon::waiters::{Progress, Waiters, MAX_WAITERS};

pub const WAITERS: usize = 1_000;
/// Streams committed per batch, as a projector batch would hold them.
const PER_BATCH: usize = 50;

/// Runs the measurement on threads of its own; no database needed.
pub fn wake_latencies() -> anyhow::Result<Latencies> {
    Ok(Latencies::of(wake_samples()?))
}

/// One delay per waiter, in milliseconds.
pub fn wake_samples() -> anyhow::Result<Vec<f64>> {
    let waiters = Arc::new(Waiters::new(MAX_WAITERS));
    let keys: Vec<String> = (0..WAITERS).map(|i| format!("bench:{i}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let committer = {
        let (waiters, keys) = (waiters.clone(), keys.clone());
        std::thread::spawn(move || -> Vec<Instant> {
            // Every waiter is registered before the first commit.
            let _ = ready_rx.recv();
            keys.chunks(PER_BATCH)
                .flat_map(|chunk| {
                    let events: Vec<EventEnvelope> = chunk.iter().map(|k| envelope(k)).collect();
                    let committed = Instant::now();
                    waiters.after_commit(&events, &BatchOutcome::default(), PoisonPolicy::Park);
                    std::thread::sleep(Duration::from_millis(2));
                    vec![committed; chunk.len()]
                })
                .collect()
        })
    };
    let answered: Vec<Option<Instant>> = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(WAITERS);
        for key in &keys {
            let mut wait = waiters.register(key, 1)?;
            tasks.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                match wait.until(deadline).await {
                    // The answer a handler would send, serialised.
                    Some(Progress::Reached { last_seq }) => {
                        let body = serde_json::json!({"projected": true, "last_seq": last_seq});
                        std::hint::black_box(body.to_string());
                        Some(Instant::now())
                    }
                    _ => None,
                }
            }));
        }
        let _ = ready_tx.send(());
        let mut answered = Vec::with_capacity(WAITERS);
        for t in tasks {
            answered.push(t.await.ok().flatten());
        }
        Ok::<_, anyhow::Error>(answered)
    })?;
    let committed = committer
        .join()
        .map_err(|_| anyhow::anyhow!("the committing thread panicked"))?;
    committed
        .iter()
        .zip(&answered)
        .map(|(c, a)| a.map(|a| (a - *c).as_secs_f64() * 1000.0))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| anyhow::anyhow!("a waiter was never answered"))
}

fn envelope(stream_key: &str) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        stream_key: stream_key.to_owned(),
        seq: 1,
        global_position: 1,
        tx_id: 1,
        event_type: "BENCH".into(),
        payload: Ok(serde_json::json!({})),
        payload_schema_version: 1,
        occurred_at: chrono::Utc::now(),
        ingested_at: chrono::Utc::now(),
        idempotency_key: String::new(),
        trace_id: None,
        causation_id: None,
        command_id: None,
        workflow_id: None,
        actor_type: None,
        actor_id: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_waiter_is_answered_and_the_figures_are_ordered() {
        let l = super::wake_latencies().expect("the measurement runs");
        eprintln!("wake-up: {l:?}");
        assert_eq!(l.count, super::WAITERS);
        assert!(l.p50_ms <= l.p99_ms && l.p99_ms <= l.max_ms, "{l:?}");
    }
}
