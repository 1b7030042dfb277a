//! `robsond generate`: appends generated trading flows through the batch
//! append, at a given rate (events per second; 0 = as fast as possible),
//! with a progress bar on a terminal.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::FlowGenerator;
use crate::cli::GenerateArgs;
use crate::config::DatabaseConfig;

/// Events that go into one batch append (one round trip) at full speed; at
/// a set rate, fewer, so the flow is steady rather than bursty: about a
/// hundred appends a second, as the bench's load writer does. (While an
/// append's transaction is open, the events committed after it began wait
/// for it — commit-safe reading — so ten appends a second of 200 events
/// each added up to their duration to the latency of every other writer's
/// events.)
const EVENTS_PER_APPEND: usize = 450;

fn events_per_append(rate: u32) -> usize {
    if rate == 0 {
        EVENTS_PER_APPEND
    } else {
        (rate as usize / 100).clamp(1, EVENTS_PER_APPEND)
    }
}

pub async fn run(db: &DatabaseConfig, args: GenerateArgs) -> anyhow::Result<()> {
    let pool = crate::commands::pool(db).await?;
    let summary = append_flows(&pool, &args, true).await?;
    println!(
        "{}",
        serde_json::json!({
            "orders": args.orders,
            "profile": args.profile.name(),
            "events": summary.events,
            "duplicates": summary.duplicates,
            "seconds": summary.elapsed.as_secs_f64(),
        })
    );
    Ok(())
}

/// What an append run did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub events: u64,
    pub duplicates: u64,
    pub elapsed: Duration,
}

/// Appends `args.orders` flows; shared by `generate`, `dev` and `bench`.
pub async fn append_flows(
    pool: &sqlx::PgPool,
    args: &GenerateArgs,
    progress: bool,
) -> anyhow::Result<Summary> {
    let mut gen = FlowGenerator::with_profile(args.seed, args.tenants, args.profile);
    let bar = if progress {
        ProgressBar::new(args.orders)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} orders  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut summary = Summary {
        events: 0,
        duplicates: 0,
        elapsed: Duration::ZERO,
    };
    loop {
        let events = gen.take(events_per_append(args.rate), args.orders);
        if events.is_empty() {
            break;
        }
        let outcomes = robson_eventlog::append_batch(pool, &events)
            .await
            .context("Failed to append generated events")?;
        summary.duplicates += outcomes.iter().filter(|o| o.duplicate).count() as u64;
        summary.events += outcomes.len() as u64;
        bar.set_position(gen.flows_started());
        if args.rate > 0 {
            // Hold the average at `rate` events per second.
            let due = Duration::from_secs_f64(summary.events as f64 / f64::from(args.rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::events_per_append;

    #[test]
    fn a_set_rate_is_appended_about_a_hundred_times_a_second_in_small_transactions() {
        assert_eq!(events_per_append(2000), 20);
        assert_eq!(events_per_append(50), 1);
        assert_eq!(events_per_append(1_000_000), 450);
        assert_eq!(events_per_append(0), 450);
    }
}
