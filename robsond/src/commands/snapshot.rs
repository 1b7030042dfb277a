//! `robsond snapshot [--retain N]`: stores an image of every projection
//! table with the read position it corresponds to (see
//! `replay::snapshot`), optionally keeps only the newest N snapshots, and
//! prints the snapshot's id and row counts.

use anyhow::Context as _;

use crate::config::DatabaseConfig;
use crate::replay::snapshot;

pub async fn run(db: &DatabaseConfig, retain: Option<u32>) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    let (snap, pruned) = snapshot::take(&pool, retain)
        .await
        .context("Failed to take a snapshot")?;
    pool.close().await;
    let total: i64 = snap.row_counts.values().sum();
    println!(
        "snapshot {} taken at {} (read position {}), {total} rows",
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
