//! `robsond rebuild [--from-snapshot [ID]]`: recomputes the projection into a
//! shadow schema while the daemon keeps serving, swaps it in atomically
//! (see `replay::rebuild`), and prints a summary. A progress bar with
//! events per second is shown on a terminal.

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Config, DatabaseConfig};
use crate::replay::rebuild::{rebuild, RebuildOptions};

/// `from_snapshot`: None = from the log; Some(None) = the latest snapshot;
/// Some(Some(id)) = that snapshot.
pub async fn run(
    db: &DatabaseConfig,
    from_snapshot: Option<Option<uuid::Uuid>>,
) -> anyhow::Result<()> {
    // The daemon's settings: ROBSON_ON_POISON and ROBSON_BATCH_SIZE.
    let config = Config::from_env()?;
    let options = RebuildOptions {
        from_snapshot: from_snapshot.is_some(),
        snapshot_id: from_snapshot.flatten(),
        policy: config.on_poison,
        batch_size: config.batch_size,
    };
    let bar = replay_bar();
    let rebuilt = rebuild(db.url.expose(), options, &bar)
        .await
        .context("Rebuild failed; the live tables are unchanged")?;
    bar.finish_and_clear();
    let c = &rebuilt.counts;
    let o = &c.outcome;
    let secs = rebuilt.elapsed.as_secs_f64();
    match &rebuilt.snapshot {
        Some(s) => println!(
            "rebuild: started from snapshot {} ({}, read position {} as tx_id/global_position)",
            s.snapshot_id,
            s.taken_at.to_rfc3339(),
            s.position
        ),
        None => println!("rebuild: started from the beginning of the log"),
    }
    println!(
        "rebuild: {} events read in {secs:.1} s ({:.0} events/s): {} applied, {} unhandled, \
         {} already applied, {} held, {} dead-lettered, {} operator decisions replayed",
        c.events_read,
        c.events_read as f64 / secs.max(1e-9),
        o.applied,
        o.skipped_unhandled,
        o.already_applied,
        o.held,
        o.dead_lettered.len(),
        c.decisions_replayed
    );
    println!(
        "rebuild: swapped in; live tables locked for {} ms ({} events caught up under the lock)",
        rebuilt.locked_for.as_millis(),
        rebuilt.events_during_swap
    );
    Ok(())
}

/// A progress bar of events on stderr, hidden when it is not a terminal.
pub(crate) fn replay_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
