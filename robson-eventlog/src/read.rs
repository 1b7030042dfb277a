//! Reading the log: the commit-safe consumer read, per-stream reads and
//! queries by tenant, type, time range and correlation ids.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::event::{EventEnvelope, Position};

/// The columns of an [`EventEnvelope`], `tx_id` as a plain number and the
/// payload as text: it is decoded per event ([`crate::payload::decode`]),
/// so that one undecodable payload cannot fail the whole statement.
const COLUMNS: &str = "event_id, tenant_id, stream_key, seq, global_position, \
     tx_id::text::int8 AS tx_id, event_type, payload::text AS payload, payload_schema_version, occurred_at, \
     ingested_at, idempotency_key, trace_id, causation_id, command_id, workflow_id, \
     actor_type, actor_id";

/// The select list that [`EventRow`] decodes, for queries of `event_log`
/// written elsewhere (e.g. with joins): `alias` qualifies every column.
pub fn event_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `event_log` row as selected by [`event_columns`]; converts into an
/// [`EventEnvelope`].
#[derive(Debug, FromRow)]
pub struct EventRow {
    event_id: Uuid,
    tenant_id: Uuid,
    stream_key: String,
    seq: i64,
    global_position: i64,
    tx_id: i64,
    event_type: String,
    payload: String,
    payload_schema_version: i32,
    occurred_at: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    idempotency_key: String,
    trace_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    command_id: Option<Uuid>,
    workflow_id: Option<Uuid>,
    actor_type: Option<String>,
    actor_id: Option<String>,
}

impl From<EventRow> for EventEnvelope {
    fn from(r: EventRow) -> Self {
        EventEnvelope {
            event_id: r.event_id,
            tenant_id: r.tenant_id,
            stream_key: r.stream_key,
            seq: r.seq,
            global_position: r.global_position,
            tx_id: r.tx_id,
            event_type: r.event_type,
            payload: crate::payload::decode(&r.payload),
            payload_schema_version: r.payload_schema_version,
            occurred_at: r.occurred_at,
            ingested_at: r.ingested_at,
            idempotency_key: r.idempotency_key,
            trace_id: r.trace_id,
            causation_id: r.causation_id,
            command_id: r.command_id,
            workflow_id: r.workflow_id,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
        }
    }
}

/// Committed events after `after`, at most `limit`, in commit-safe order.
///
/// Only events whose transaction id is below the xmin of this statement's
/// snapshot are returned: every such transaction has ended, so no event can
/// later appear before the last one returned. An event whose writer is still
/// open is therefore never skipped (it is returned once its writer commits),
/// and a rolled-back writer holds readers back only while it is open.
///
/// The ORDER BY names the table's columns: the output column `tx_id` is a
/// cast, and sorting by it would defeat the (tx_id, global_position) index.
/// The xmin is a scalar subquery on purpose: evaluated once (an InitPlan),
/// it becomes an index bound of the (tx_id, global_position) scan; written
/// inline it is a per-row filter and the planner scans whole partitions.
///
/// The read walks that index whatever the table's statistics say: it runs
/// with `enable_sort` off, in a transaction of its own (or a savepoint of
/// the caller's), rolled back once the rows are in — so the setting never
/// outlives the read. Without it, a log appended faster than autovacuum
/// analyses it (a burst, a bulk import, a restored backup) looks nearly
/// empty to the planner, which then sorts every event after `after` —
/// spilling to disk — to return the first `limit`: on 180,000 events
/// appended just before a catch-up, 115 ms per read instead of 15 ms, and
/// growing with the backlog.
pub async fn read_committed(
    conn: &mut PgConnection,
    after: Position,
    limit: i64,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let mut tx = in_index_order(conn).await?;
    let events = read_committed_in(&mut *tx, after, limit, Planned::PerCall).await?;
    tx.rollback().await?;
    Ok(events)
}

/// How the log's consumer reads are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    /// Not prepared: planned with the call's bounds, every call (a one-off
    /// read; sorting is off in its transaction, so that plan walks the
    /// index and stops at the limit).
    PerCall,
    /// Prepared once on a [`LogReader`]'s session, whose generic plan is
    /// kept (`plan_cache_mode = force_generic_plan`). With sorting off that
    /// plan is the same index walk (a merge of each partition's index scan,
    /// the xmin an InitPlan evaluated per execution), and planning it on
    /// every call cost PostgreSQL more than running it: 0.53 ms against
    /// 0.13 ms per read, 0.40 ms against 0.01 ms per held-back check, at
    /// ~100 reads a second under a live load (docs/performance.md).
    Generic,
}

/// A transaction (a savepoint inside the caller's) with `enable_sort` off,
/// for statements that must walk the `(tx_id, global_position)` index
/// whatever the statistics; the caller rolls it back, so the setting never
/// outlives it.
async fn in_index_order(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    if conn.is_in_transaction() {
        let mut savepoint = conn.begin().await?;
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *savepoint)
            .await?;
        Ok(savepoint)
    } else {
        // One round trip for both.
        conn.begin_with("BEGIN; SET LOCAL enable_sort = off").await
    }
}

/// The consumer read: `$1` the cursor's transaction id (text), `$2` its
/// position, `$3` the limit. Built once: the poller sends it on every read.
static COMMITTED_READ_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM event_log \
          WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
            AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
          ORDER BY event_log.tx_id, event_log.global_position LIMIT $3"
    )
});

/// The held-back check: `$1`, `$2` as in [`COMMITTED_READ_SQL`].
const COMMITTED_AFTER_SQL: &str = "SELECT 1 FROM event_log \
      WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
      ORDER BY event_log.tx_id, event_log.global_position LIMIT 1";

async fn read_committed_in<'c>(
    executor: impl PgExecutor<'c>,
    after: Position,
    limit: i64,
    planned: Planned,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(COMMITTED_READ_SQL.as_str())
        .persistent(planned == Planned::Generic)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(EventEnvelope::from).collect())
}

/// True when committed events after `after` exist, whether
/// [`read_committed`] can return them now or only once an older transaction
/// (any writer on the cluster, a projector's included) has ended. A reader
/// that just got fewer events than it asked for asks this before waiting
/// for the next notification, which may already have been sent: true means
/// read again (soon, if they are held back).
///
/// It asks about every committed event, not only those behind the snapshot's
/// xmin: an older transaction that ends between the read and this check
/// lets the held-back events through, and a check restricted to those still
/// behind xmin would then say false, leaving them unread until the next
/// poll. Like [`read_committed`] it walks the commit-order index whatever
/// the statistics (the first row in index order, sorting off): planned on
/// stale statistics, a plain `EXISTS` scanned the whole log when nothing
/// followed `after` — the idle case — 10 ms on 69,000 events.
pub async fn committed_after(
    conn: &mut PgConnection,
    after: Position,
) -> Result<bool, sqlx::Error> {
    let mut tx = in_index_order(conn).await?;
    let any = committed_after_in(&mut *tx, after, Planned::PerCall).await?;
    tx.rollback().await?;
    Ok(any)
}

async fn committed_after_in<'c>(
    executor: impl PgExecutor<'c>,
    after: Position,
    planned: Planned,
) -> Result<bool, sqlx::Error> {
    let first: Option<i32> = sqlx::query_scalar(COMMITTED_AFTER_SQL)
        .persistent(planned == Planned::Generic)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .fetch_optional(executor)
        .await?;
    Ok(first.is_some())
}

/// A connection of its own for a reader that reads the log all the time (a
/// daemon's poller): sorting is off for its whole session, so that each
/// [`read_committed`] and [`committed_after`] on it is one statement, one
/// round trip, instead of three (the transaction that scopes the setting,
/// the statement, its rollback). Its two statements are prepared once and
/// keep their generic plan ([`Planned::Generic`]). Nothing else runs on it.
#[derive(Debug)]
pub struct LogReader {
    conn: PgConnection,
}

impl LogReader {
    /// Opens the session (a session of its own: the setting would not hold
    /// through a transaction-mode connection pooler).
    pub async fn connect(options: &PgConnectOptions) -> Result<Self, sqlx::Error> {
        let mut conn = PgConnection::connect_with(options).await?;
        // One round trip, simple protocol: nothing prepared for them.
        conn.execute("SET enable_sort = off; SET plan_cache_mode = force_generic_plan")
            .await?;
        Ok(LogReader { conn })
    }

    /// [`read_committed`] in one round trip.
    pub async fn read_committed(
        &mut self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<EventEnvelope>, sqlx::Error> {
        read_committed_in(&mut self.conn, after, limit, Planned::Generic).await
    }

    /// [`committed_after`] in one round trip.
    pub async fn committed_after(&mut self, after: Position) -> Result<bool, sqlx::Error> {
        committed_after_in(&mut self.conn, after, Planned::Generic).await
    }

    /// The plans this session's two statements get, as `EXPLAIN EXECUTE`
    /// prints them (the read's first, then the check's), prepared here under
    /// names of their own with the session's settings: what the reads get.
    #[cfg(feature = "testing")]
    pub async fn explain_plans(&mut self) -> Result<[String; 2], sqlx::Error> {
        let mut plans = [String::new(), String::new()];
        let statements = [
            (COMMITTED_READ_SQL.as_str(), "('0', 0, 500)"),
            (COMMITTED_AFTER_SQL, "('0', 0)"),
        ];
        for ((sql, args), plan) in statements.iter().zip(plans.iter_mut()) {
            sqlx::raw_sql(&format!("PREPARE robson_explained AS {sql}"))
                .execute(&mut self.conn)
                .await?;
            let lines: Vec<String> =
                sqlx::query_scalar(&format!("EXPLAIN EXECUTE robson_explained{args}"))
                    .persistent(false)
                    .fetch_all(&mut self.conn)
                    .await?;
            sqlx::raw_sql("DEALLOCATE robson_explained")
                .execute(&mut self.conn)
                .await?;
            *plan = lines.join("\n");
        }
        Ok(plans)
    }

    /// The generic and the custom plans made so far for the statements this
    /// session has prepared (`pg_prepared_statements`), summed, and how many
    /// statements those are.
    #[cfg(feature = "testing")]
    pub async fn plans_made(&mut self) -> Result<(i64, i64, i64), sqlx::Error> {
        sqlx::query_as(
            "SELECT count(*), coalesce(sum(generic_plans), 0)::int8, \
                    coalesce(sum(custom_plans), 0)::int8 \
               FROM pg_prepared_statements",
        )
        .persistent(false)
        .fetch_one(&mut self.conn)
        .await
    }

    /// Ends the session.
    pub async fn close(self) -> Result<(), sqlx::Error> {
        self.conn.close().await
    }
}

/// Events of one stream with seq > `after_seq`, in seq order, at most `limit`.
/// (Reads committed data only, like any statement; an event's predecessors in
/// its stream always committed before it.)
pub async fn read_stream<'c>(
    executor: impl PgExecutor<'c>,
    stream_key: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM event_log WHERE stream_key = $1 AND seq > $2 \
          ORDER BY seq LIMIT $3"
    );
    let rows: Vec<EventRow> = sqlx::query_as(&sql)
        .bind(stream_key)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(EventEnvelope::from).collect())
}

/// Filters for [`query_events`]; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub tenant_id: Option<Uuid>,
    pub stream_key: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// occurred_at >= from
    pub from: Option<DateTime<Utc>>,
    /// occurred_at < to
    pub to: Option<DateTime<Utc>>,
    pub trace_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub command_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    /// Only events with global_position > this (paging).
    pub after_position: Option<i64>,
    /// At most this many (default 1000).
    pub limit: Option<i64>,
}

/// Events matching every given filter, ordered by global_position.
pub async fn query_events<'c>(
    executor: impl PgExecutor<'c>,
    q: &EventQuery,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM event_log \
          WHERE ($1::uuid IS NULL OR tenant_id = $1) \
            AND ($2::text IS NULL OR stream_key = $2) \
            AND ($3::text[] IS NULL OR event_type = ANY($3)) \
            AND ($4::timestamptz IS NULL OR occurred_at >= $4) \
            AND ($5::timestamptz IS NULL OR occurred_at < $5) \
            AND ($6::uuid IS NULL OR trace_id = $6) \
            AND ($7::uuid IS NULL OR causation_id = $7) \
            AND ($8::uuid IS NULL OR command_id = $8) \
            AND ($9::uuid IS NULL OR workflow_id = $9) \
            AND ($10::int8 IS NULL OR global_position > $10) \
          ORDER BY global_position LIMIT $11"
    );
    let rows: Vec<EventRow> = sqlx::query_as(&sql)
        .bind(q.tenant_id)
        .bind(q.stream_key.as_deref())
        .bind(q.event_types.as_deref())
        .bind(q.from)
        .bind(q.to)
        .bind(q.trace_id)
        .bind(q.causation_id)
        .bind(q.command_id)
        .bind(q.workflow_id)
        .bind(q.after_position)
        .bind(q.limit.unwrap_or(1000))
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(EventEnvelope::from).collect())
}

/// The highest global_position in the log (0 when empty), committed or not yet.
pub async fn head_position<'c>(executor: impl PgExecutor<'c>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(global_position), 0)::int8 FROM event_log")
        .fetch_one(executor)
        .await
}

/// One row of `check_partition_coverage()`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct PartitionCoverage {
    pub table_name: String,
    pub months_ahead: i32,
    pub status: String,
}

/// The partition coverage of the partitioned tables (SPEC §2.1).
pub async fn partition_coverage<'c>(
    executor: impl PgExecutor<'c>,
) -> Result<Vec<PartitionCoverage>, sqlx::Error> {
    sqlx::query_as("SELECT table_name, months_ahead, status FROM check_partition_coverage()")
        .fetch_all(executor)
        .await
}

/// Creates the partitions of the log and snapshots up to `months_ahead`
/// months after the current one; returns how many were created.
pub async fn ensure_partitions<'c>(
    executor: impl PgExecutor<'c>,
    months_ahead: i32,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT create_event_log_partitions($1) + create_snapshot_partitions($1)")
        .bind(months_ahead)
        .fetch_one(executor)
        .await
}
