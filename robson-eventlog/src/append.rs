//! Appending: the Rust side of the one append path. [`append_event`] calls
//! the SQL function `append_event` and [`append_batch`] the set-based
//! `robson_append_batch` (migrations/007 and 009, behind SQL
//! `append_events` too),
//! so SQL writers and Rust writers follow the same rules; the rules that
//! need no database are checked here first ([`crate::rules`]), before the
//! payload is hashed or sent. The idempotency key is computed here (it is
//! byte-identical to the SQL computation) to spare the server the work.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::AppendError;
use crate::event::Event;
use crate::idempotency::compute_idempotency_key;
use crate::rules::check_event;

/// What `append_event` reports for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The new event, or the original one when `duplicate`.
    pub event_id: Uuid,
    pub seq: i64,
    pub global_position: i64,
    /// The idempotency key was already in the log: nothing was appended.
    pub duplicate: bool,
}

impl AppendOutcome {
    /// Turns a duplicate into [`AppendError::Duplicate`], for callers that
    /// must append something new.
    pub fn require_new(self) -> Result<AppendOutcome, AppendError> {
        if self.duplicate {
            Err(AppendError::Duplicate {
                event_id: self.event_id,
                seq: self.seq,
            })
        } else {
            Ok(self)
        }
    }
}

fn key_of(event: &Event) -> String {
    event.idempotency_key.clone().unwrap_or_else(|| {
        compute_idempotency_key(
            event.tenant_id,
            &event.stream_key,
            event.command_id,
            &event.payload,
        )
    })
}

/// Appends one event in the caller's transaction (or autocommit).
pub async fn append_event<'c>(
    executor: impl PgExecutor<'c>,
    event: &Event,
) -> Result<AppendOutcome, AppendError> {
    check_event(event)?;
    let row: (Uuid, i64, i64, bool) = sqlx::query_as(
        r#"
        SELECT event_id, seq, global_position, duplicate
          FROM append_event(
                p_tenant_id => $1, p_stream_key => $2, p_event_type => $3,
                p_payload => $4::jsonb, p_occurred_at => $5, p_expected_seq => $6,
                p_command_id => $7, p_idempotency_key => $8, p_trace_id => $9,
                p_causation_id => $10, p_workflow_id => $11, p_actor_type => $12,
                p_actor_id => $13)
        "#,
    )
    .bind(event.tenant_id)
    .bind(&event.stream_key)
    .bind(&event.event_type)
    .bind(sqlx::types::Json(&event.payload))
    .bind(event.occurred_at)
    .bind(event.expected_seq)
    .bind(event.command_id)
    .bind(key_of(event))
    .bind(event.trace_id)
    .bind(event.causation_id)
    .bind(event.workflow_id)
    .bind(event.actor_type.map(|a| a.as_str()))
    .bind(event.actor_id.as_deref())
    .fetch_one(executor)
    .await
    .map_err(|e| AppendError::from_sqlx(e, &event.stream_key))?;
    Ok(AppendOutcome {
        event_id: row.0,
        seq: row.1,
        global_position: row.2,
        duplicate: row.3,
    })
}

/// Appends many events in one round trip and one call of the set-based
/// `robson_append_batch` (the function behind SQL `append_events`): the
/// result of appending them one by one in order, in one transaction — all
/// are appended or none is (the first event, in order, that breaks a rule
/// refuses the whole batch). Outcomes come back in input order.
pub async fn append_batch<'c>(
    executor: impl PgExecutor<'c>,
    events: &[Event],
) -> Result<Vec<AppendOutcome>, AppendError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    for event in events {
        check_event(event)?;
    }
    let mut tenants = Vec::with_capacity(events.len());
    let mut streams = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut occurred = Vec::with_capacity(events.len());
    let mut expected = Vec::with_capacity(events.len());
    let mut commands = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut traces = Vec::with_capacity(events.len());
    let mut causations = Vec::with_capacity(events.len());
    let mut workflows = Vec::with_capacity(events.len());
    let mut actor_types = Vec::with_capacity(events.len());
    let mut actor_ids = Vec::with_capacity(events.len());
    for e in events {
        tenants.push(e.tenant_id);
        streams.push(e.stream_key.as_str());
        types.push(e.event_type.as_str());
        payloads.push(e.payload.to_string());
        occurred.push(e.occurred_at);
        expected.push(e.expected_seq);
        commands.push(e.command_id);
        keys.push(key_of(e));
        traces.push(e.trace_id);
        causations.push(e.causation_id);
        workflows.push(e.workflow_id);
        actor_types.push(e.actor_type.map(|a| a.as_str()));
        actor_ids.push(e.actor_id.as_deref());
    }
    let rows: Vec<(Uuid, i64, i64, bool)> = sqlx::query_as(
        "SELECT event_id, seq, global_position, duplicate
           FROM robson_append_batch('append_events', 'p_', $1::uuid[], $2::text[], $3::text[],
                $4::text[]::jsonb[], $5::timestamptz[], $6::int8[], $7::uuid[], $8::text[],
                $9::uuid[], $10::uuid[], $11::uuid[], $12::text[], $13::text[])",
    )
    .bind(&tenants)
    .bind(&streams)
    .bind(&types)
    .bind(&payloads)
    .bind(&occurred)
    .bind(&expected)
    .bind(&commands)
    .bind(&keys)
    .bind(&traces)
    .bind(&causations)
    .bind(&workflows)
    .bind(&actor_types)
    .bind(&actor_ids)
    .fetch_all(executor)
    .await
    .map_err(|e| {
        // The ownership error names its stream (and element); others are
        // reported against the first one.
        AppendError::from_sqlx(e, &events[0].stream_key)
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(event_id, seq, global_position, duplicate)| AppendOutcome {
                event_id,
                seq,
                global_position,
                duplicate,
            },
        )
        .collect())
}
