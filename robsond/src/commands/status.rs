//! `robsond status [--json]`: checkpoints, lag and parked streams, read from
//! the database; no daemon needed.

use anyhow::Context as _;
use serde::Serialize;

use crate::config::DatabaseConfig;
use crate::progress::{checkpoint, lag as monitor};

#[derive(Debug, Serialize)]
struct PartitionStatus {
    partition: i32,
    partition_count: i32,
    checkpoint_tx: i64,
    checkpoint_position: i64,
    owner: Option<String>,
}

pub async fn run(db: &DatabaseConfig, json: bool) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    let lag = monitor::sample(&pool)
        .await
        .context("Failed to read the log's progress (has `robsond migrate` been run?)")?;
    let partitions: Vec<PartitionStatus> = checkpoint::load(&pool)
        .await
        .context("Failed to read checkpoints")?
        .into_iter()
        .map(|(partition, partition_count, pos, owner)| PartitionStatus {
            partition,
            partition_count,
            checkpoint_tx: pos.tx_id,
            checkpoint_position: pos.global_position,
            owner,
        })
        .collect();
    let parked = robson_projector::list_parked(&pool)
        .await
        .context("Failed to list parked streams")?;
    if json {
        let doc = serde_json::json!({
            "head_position": lag.head_position,
            "lag_events": lag.lag_events,
            "held_events": lag.held_events,
            "max_stream_lag": lag.max_stream_lag,
            "lag_seconds": lag.lag_seconds,
            "parked_streams": parked,
            "partitions": partitions,
            "partition_coverage": lag.coverage,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("head position   {}", lag.head_position);
    println!(
        "lag             {} events, {:.1} s (largest stream lag {})",
        lag.lag_events, lag.lag_seconds, lag.max_stream_lag
    );
    println!(
        "parked streams  {} ({} events held)",
        lag.parked_streams, lag.held_events
    );
    if partitions.is_empty() {
        println!("checkpoints     none yet (the daemon has not run)");
    }
    for p in &partitions {
        println!(
            "partition {:>4}/{}  checkpoint {}/{}  owner {}",
            p.partition,
            p.partition_count,
            p.checkpoint_tx,
            p.checkpoint_position,
            p.owner.as_deref().unwrap_or("-")
        );
    }
    for c in &lag.coverage {
        println!(
            "coverage        {} {} months ahead: {}",
            c.table_name, c.months_ahead, c.status
        );
    }
    for p in &parked {
        println!(
            "parked          {} at seq {}: {}: {}",
            p.stream_key, p.parked_seq, p.error_kind, p.error
        );
    }
    Ok(())
}
