//! `robsond status [--json]`: checkpoints, lag and parked streams, read from
//! the database; no daemon needed. A partition's owner is the holder of its
//! advisory lock (`ownership::lock_holders`), not whoever committed its
//! checkpoint last: that one is shown beside it, marked stale when it is not
//! the holder (a dead or departed instance) or when nobody holds the lock.
//! Positions are printed `tx_id/global_position` (see [`POSITION_FORMAT`]).

use anyhow::Context as _;
use serde::Serialize;

use crate::config::DatabaseConfig;
use crate::daemon::ownership;
use crate::progress::{checkpoint, lag as monitor};
use crate::text::count;

/// How positions read, for the output and `--help`.
pub const POSITION_FORMAT: &str = "positions are tx_id/global_position: the appending \
transaction's id and the event's global_position (events are read in that order, so \
every event at or before a checkpoint is applied)";

#[derive(Debug, Serialize)]
struct PartitionStatus {
    partition: i32,
    partition_count: i32,
    checkpoint_tx: i64,
    checkpoint_position: i64,
    /// The instance holding the partition's lock now; None when nobody does.
    owner: Option<String>,
    /// The instance that committed the checkpoint last.
    last_committed_by: Option<String>,
    /// No holder, or a holder other than the last committer.
    stale: bool,
}

pub async fn run(db: &DatabaseConfig, json: bool) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    let lag = monitor::sample(&pool)
        .await
        .context("Failed to read the log's progress (has `robsond migrate` been run?)")?;
    let checkpoints = checkpoint::load(&pool)
        .await
        .context("Failed to read checkpoints")?;
    let layout = checkpoints.first().map_or(0, |c| c.1.max(0) as usize);
    let holders = ownership::lock_holders(&pool, layout)
        .await
        .context("Failed to read the partition locks")?;
    let partitions: Vec<PartitionStatus> = checkpoints
        .into_iter()
        .map(|(partition, partition_count, pos, committer)| {
            let owner = holders.get(partition as usize).cloned().flatten();
            PartitionStatus {
                partition,
                partition_count,
                checkpoint_tx: pos.tx_id,
                checkpoint_position: pos.global_position,
                stale: owner.is_none() || owner != committer,
                owner,
                last_committed_by: committer,
            }
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
        "parked streams  {} ({} held)",
        lag.parked_streams,
        count(lag.held_events, "event")
    );
    if partitions.is_empty() {
        println!("checkpoints     none yet (the daemon has not run)");
    } else {
        println!("checkpoints     {POSITION_FORMAT}");
    }
    for p in &partitions {
        let committer = p.last_committed_by.as_deref().unwrap_or("-");
        let note = match (&p.owner, p.stale) {
            (None, _) => format!("  (nobody holds it; last committed by {committer})"),
            (Some(_), true) => format!("  (last committed by {committer}: stale)"),
            (Some(_), false) => String::new(),
        };
        println!(
            "partition {:>4}/{}  checkpoint {}/{}  owner {}{note}",
            p.partition,
            p.partition_count,
            p.checkpoint_tx,
            p.checkpoint_position,
            p.owner.as_deref().unwrap_or("-"),
        );
    }
    for c in &lag.coverage {
        println!(
            "coverage        {} {} ahead: {}",
            c.table_name,
            count(c.months_ahead.into(), "month"),
            c.status
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
