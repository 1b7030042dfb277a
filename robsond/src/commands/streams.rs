//! `robsond streams parked|retry|skip`: the operator's hands on parked
//! streams. A running daemon picks the change up at once (NOTIFY); without
//! one, the next start does.

use anyhow::Context as _;
use robson_projector::{ResumeAction, ResumeError};

use crate::cli::StreamsCommand;
use crate::config::DatabaseConfig;

pub async fn run(db: &DatabaseConfig, cmd: StreamsCommand) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    match cmd {
        StreamsCommand::Parked { json } => {
            let parked = robson_projector::list_parked(&pool)
                .await
                .context("Failed to list parked streams")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&parked)?);
            } else if parked.is_empty() {
                println!("No parked streams.");
            } else {
                for p in &parked {
                    println!(
                        "{}  parked at seq {} (head {}): {}: {}",
                        p.stream_key, p.parked_seq, p.head_seq, p.error_kind, p.error
                    );
                }
            }
        }
        StreamsCommand::Retry { key } => resume(&pool, &key, ResumeAction::Retry).await?,
        StreamsCommand::Skip { key } => resume(&pool, &key, ResumeAction::Skip).await?,
    }
    Ok(())
}

async fn resume(pool: &sqlx::PgPool, key: &str, action: ResumeAction) -> anyhow::Result<()> {
    match robson_projector::resume_stream(pool, key, action).await {
        Ok(outcome) => {
            println!("{}", serde_json::to_string(&outcome)?);
            Ok(())
        }
        Err(ResumeError::NotParked(_)) => anyhow::bail!("stream {key} is not parked"),
        Err(err) => Err(anyhow::Error::new(err).context("Failed to resume the stream")),
    }
}
