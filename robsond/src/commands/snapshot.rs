//! `robsond snapshot [--retain N]`: stores an image of every projection
//! table with the read position it corresponds to (see
//! `replay::snapshot`), optionally keeps only the newest N snapshots, and
//! prints the snapshot's id and row counts. `robsond snapshot list [--json]`
//! lists the stored snapshots, newest first.

use anyhow::Context as _;

use crate::cli::SnapshotCommand;
use crate::config::DatabaseConfig;
use crate::replay::snapshot;

pub async fn run(
    db: &DatabaseConfig,
    action: Option<SnapshotCommand>,
    retain: Option<u32>,
) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    if let Some(SnapshotCommand::List { json }) = action {
        let snaps = snapshot::list(&pool)
            .await
            .context("Failed to list snapshots (has `robsond migrate` been run?)")?;
        pool.close().await;
        return print_list(&snaps, json);
    }
    let (snap, pruned) = snapshot::take(&pool, retain)
        .await
        .context("Failed to take a snapshot")?;
    pool.close().await;
    let total: i64 = snap.row_counts.values().sum();
    println!(
        "snapshot {} taken at {} (read position {}, as tx_id/global_position), {total} rows",
        snap.snapshot_id,
        snap.taken_at.to_rfc3339(),
        snap.position
    );
    for (table, rows) in &snap.row_counts {
        println!("  {table:<28} {rows:>10}");
    }
    if let Some(n) = retain {
        println!("retention: kept the newest {n}, deleted {pruned}");
    }
    Ok(())
}

/// The snapshots as a table (id, position, taken_at, rows) or JSON.
fn print_list(snaps: &[snapshot::SnapshotInfo], json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<serde_json::Value> = snaps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "snapshot_id": s.snapshot_id,
                    "position": s.position.to_string(),
                    "taken_at": s.taken_at,
                    "rows": s.row_counts.values().sum::<i64>(),
                    "row_counts": s.row_counts,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if snaps.is_empty() {
        println!("No snapshots (take one with `robsond snapshot`).");
        return Ok(());
    }
    println!("{:<36}  {:<21}  {:<25}  rows", "id", "position", "taken_at");
    for s in snaps {
        let rows: i64 = s.row_counts.values().sum();
        println!(
            "{:<36}  {:<21}  {:<25}  {rows}",
            s.snapshot_id.to_string(),
            s.position.to_string(),
            s.taken_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    println!("positions are tx_id/global_position; newest first");
    Ok(())
}
