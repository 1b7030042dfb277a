//! Read-your-writes wake-up on its own: the delay from a projector's commit
//! to a `/wait` waiter's answer with 1,000 concurrent waiters (the phase of
//! `robsond bench`, repeated), without a database:
//! `cargo bench -p robsond --bench wake`. ROBSON_BENCH_ROUNDS sets the
//! repetitions (default 20). Prints each round's p50/p99/max, all samples
//! together, and the machine's load average, which the figures depend on.

use robsond::tools::bench::probe::Latencies;
use robsond::tools::bench::waiters::{wake_samples, WAITERS};

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("ROBSON_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.trim_end();
    println!("wake-up, {WAITERS} waiters, {rounds} rounds; load average {load}");
    let mut all = Vec::new();
    for round in 1..=rounds {
        let samples = wake_samples()?;
        let latencies = Latencies::of(samples.clone());
        println!(
            "round {round:>2}: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            latencies.p50_ms, latencies.p99_ms, latencies.max_ms
        );
        all.extend(samples);
    }
    let total = Latencies::of(all);
    println!(
        "all {} samples: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        total.count, total.p50_ms, total.p99_ms, total.max_ms
    );
    Ok(())
}
