//! `robsond verify`: projects the log into a scratch schema up to the live
//! progress of each stream and compares it with the live tables (see
//! `replay::verify`). Exit 0 and `verify: identical, N rows compared` when
//! they match; otherwise each differing row is printed (table, key, live vs
//! rebuilt) and the exit code is 1, so it can be scheduled as a drift check.

use anyhow::Context as _;

use super::rebuild::replay_bar;
use crate::config::{Config, DatabaseConfig};
use crate::replay::verify::{verify, VerifyOptions};

pub async fn run(db: &DatabaseConfig) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let options = VerifyOptions {
        policy: config.on_poison,
        batch_size: config.batch_size,
    };
    let bar = replay_bar();
    let verified = verify(db.url.expose(), options, &bar)
        .await
        .context("Verify could not complete")?;
    bar.finish_and_clear();
    let report = &verified.report;
    eprintln!(
        "verify: {} events replayed in {:.1} s; live tables held in SHARE mode for {} ms",
        verified.counts.events_read,
        verified.elapsed.as_secs_f64(),
        verified.locked_for.as_millis()
    );
    if report.is_identical() {
        println!("verify: identical, {} rows compared", report.rows_compared);
        return Ok(());
    }
    for difference in &report.differences {
        println!("{difference}");
    }
    let more = if report.truncated {
        " (output limited to 1000 rows per table)"
    } else {
        ""
    };
    println!(
        "verify: {} rows differ{more}, {} rows compared",
        report.differences.len(),
        report.rows_compared
    );
    anyhow::bail!("the rebuilt projection differs from the live tables")
}
