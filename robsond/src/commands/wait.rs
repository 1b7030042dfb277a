//! `robsond wait --stream KEY --seq N [--timeout-ms T]`: read-your-writes
//! for scripts. It reads the stream's progress from the database, not from a
//! daemon's `/wait`: no address to know, and the answer is the same whichever
//! instance projects the stream. One waiter reading one row by primary key
//! every [`EVERY`] costs the database nothing worth a notification channel.
//! Exit 0 when reached, 1 when parked at or before N (the dead letter is
//! printed), 3 on timeout.

use std::time::Duration;

use anyhow::Context as _;

use crate::cli::WaitArgs;
use crate::config::DatabaseConfig;
use crate::daemon::waiters::Progress;
use crate::progress::streams;
use crate::{exit, ExitWith};

const EVERY: Duration = Duration::from_millis(50);

pub async fn run(db: &DatabaseConfig, args: WaitArgs) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(args.timeout_ms);
    let keys = [args.stream.clone()];
    let mut last_seq = None;
    loop {
        let row = streams::positions(&pool, &keys)
            .await
            .context("Failed to read the stream's progress (has `robsond migrate` been run?)")?
            .into_iter()
            .next();
        if let Some((_, last, parked)) = row {
            last_seq = Some(last);
            match Progress::decide(args.seq, last, parked) {
                Some(Progress::Reached { last_seq }) => {
                    println!(
                        "{}",
                        serde_json::json!({"projected": true, "last_seq": last_seq})
                    );
                    return Ok(());
                }
                Some(Progress::Parked {
                    last_seq,
                    parked_seq,
                }) => {
                    let dead_letter: Option<serde_json::Value> = sqlx::query_scalar(
                        "SELECT to_jsonb(d) FROM projection_dead_letters d
                          WHERE stream_key = $1 AND seq = $2 ORDER BY failed_at DESC LIMIT 1",
                    )
                    .bind(&args.stream)
                    .bind(parked_seq)
                    .fetch_optional(&pool)
                    .await
                    .context("Failed to read the dead letter")?;
                    println!(
                        "{}",
                        serde_json::json!({"projected": false, "parked": true, "last_seq": last_seq,
                                           "parked_seq": parked_seq, "dead_letter": dead_letter})
                    );
                    eprintln!(
                        "robsond: {} is parked at seq {parked_seq}: `robsond streams retry|skip` resumes it",
                        args.stream.escape_debug()
                    );
                    return Err(ExitWith(exit::FAILURE).into());
                }
                Some(Progress::Closed) | None => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            println!(
                "{}",
                serde_json::json!({"projected": false, "last_seq": last_seq})
            );
            eprintln!(
                "robsond: seq {} of {} not projected within {} ms",
                args.seq,
                args.stream.escape_debug(),
                args.timeout_ms
            );
            return Err(ExitWith(exit::TIMEOUT).into());
        }
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + EVERY)).await;
    }
}
