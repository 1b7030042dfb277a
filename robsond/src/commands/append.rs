//! `robsond append`: one event through the same append path as every writer.

use anyhow::Context as _;
use robson_eventlog::{ActorType, Event};

use crate::cli::AppendArgs;
use crate::config::DatabaseConfig;

pub async fn run(db: &DatabaseConfig, args: AppendArgs) -> anyhow::Result<()> {
    let pool = super::pool(db).await?;
    let mut event = Event::new(
        args.tenant,
        args.stream,
        args.event_type,
        args.payload,
        args.occurred_at.unwrap_or_else(chrono::Utc::now),
    );
    event.expected_seq = args.expected_seq;
    event.command_id = args.command_id;
    event.actor_type = Some(ActorType::Cli);
    let outcome = robson_eventlog::append_event(&pool, &event)
        .await
        .context("Append refused")?;
    println!(
        "{}",
        serde_json::json!({
            "event_id": outcome.event_id,
            "seq": outcome.seq,
            "global_position": outcome.global_position,
            "duplicate": outcome.duplicate,
        })
    );
    Ok(())
}
