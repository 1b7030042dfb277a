//! The lag figures for `/health`, `/metrics` and `status` ([`sample`]: lag,
//! held events, parked streams, head position, checkpoints, a blocking
//! transaction, all in one snapshot): a read of `projection_stream_progress`
//! and `projection_checkpoints` against the log.

use robson_eventlog::PartitionCoverage;
use sqlx::PgPool;

use crate::daemon::state::{Blocker, LagSample};

/// Reading held back longer than this names the blocking transaction.
pub const BLOCKED_AFTER: f64 = 1.0;

/// Events counted one by one at most: counting costs in proportion to the
/// lag (each event read and its stream's progress looked up), and a sample
/// every second must stay cheap during a long catch-up. When the positions
/// say more events than this wait after the oldest checkpoint, lag_events is
/// that estimate (it errs high: events already applied by partitions ahead
/// of the oldest, and gaps left by rolled-back appends, are counted too) and
/// nothing is counted. It equals the default readiness threshold
/// (`ROBSON_HEALTH_MAX_LAG_EVENTS`), so readiness is decided on an exact
/// count whenever the lag is near it.
pub const LAG_COUNT_CAP: i64 = 10_000;

/// Events after the oldest checkpoint whose streams make up max_stream_lag
/// while the lag is estimated.
const STREAM_LAG_SAMPLE: i64 = 1_000;

/// Reads the lag figures of SPEC §4.4 from the database in ONE statement,
/// so that they describe one snapshot: the head is never below a checkpoint
/// of the same sample, and a lag of 0 means every committed event up to the
/// head is applied or held. Every part costs in proportion to the lag (or
/// the parked streams), bounded by [`LAG_COUNT_CAP`], never to the size of
/// the log, so sampling is cheap whatever the history or the backlog.
///
/// - lag_events: committed events after the oldest partition checkpoint
///   that their stream's progress has not reached, including those the
///   poller cannot read yet because an older transaction is still open (a
///   long writer shows as growing lag); parked streams' events are held,
///   counted apart; exact up to [`LAG_COUNT_CAP`], estimated from positions
///   beyond;
/// - lag_seconds: the age of the oldest of those events;
/// - held_events: head seq − last seq of the parked streams;
/// - max_stream_lag: over the parked streams and the streams of the events
///   after the oldest checkpoint (the first [`STREAM_LAG_SAMPLE`] of them
///   while the lag is estimated);
/// - read_blocked_seconds: the age of the first committed event that
///   commit-safe reading cannot return because an older transaction is open
///   (its `ingested_at` is its writer's start, so this errs high by that
///   writer's own duration); the scan starts at the snapshot's xmin and stops
///   at the first visible row.
pub async fn sample(pool: &PgPool) -> Result<LagSample, sqlx::Error> {
    let sampled_at = chrono::Utc::now();
    let row: SampleRow = sqlx::query_as(SAMPLE_SQL)
        .bind(LAG_COUNT_CAP)
        .bind(STREAM_LAG_SAMPLE)
        .fetch_one(pool)
        .await?;
    let estimate = row.head_position - row.oldest_position;
    let count = estimate <= LAG_COUNT_CAP;
    let scan = if count {
        LAG_COUNT_CAP
    } else {
        STREAM_LAG_SAMPLE
    };
    let (lag_events, lag_seconds) = if count && row.after < scan {
        (row.unread, row.unread_age)
    } else if row.unread == 0 {
        // Every sampled event is applied (partitions ahead): the oldest
        // unprojected one comes later, so it is at most as old as they are.
        (estimate.max(row.after), row.after_age)
    } else {
        (estimate.max(row.after), row.unread_age)
    };
    let mut checkpoints = Vec::new();
    for (p, pos) in row
        .checkpoint_partitions
        .iter()
        .zip(&row.checkpoint_positions)
    {
        let p = usize::try_from(*p).unwrap_or(0);
        if checkpoints.len() <= p {
            checkpoints.resize(p + 1, 0);
        }
        checkpoints[p] = *pos;
    }
    let coverage = row
        .coverage_tables
        .into_iter()
        .zip(row.coverage_months)
        .zip(row.coverage_status)
        .map(|((table_name, months_ahead), status)| PartitionCoverage {
            table_name,
            months_ahead,
            status,
        })
        .collect();
    let blocked = row.blocked_seconds > BLOCKED_AFTER;
    let blocked_by = if blocked {
        Some(blocker(pool, row.xmin).await?)
    } else {
        None
    };
    Ok(LagSample {
        sampled: true,
        sampled_at: Some(sampled_at),
        lag_events,
        held_events: row.held_events,
        max_stream_lag: row.unread_max.max(row.parked_max),
        lag_seconds: lag_seconds.max(0.0),
        head_position: row.head_position,
        parked_streams: row.parked_streams,
        coverage,
        checkpoints,
        read_blocked_seconds: row.blocked_seconds.max(0.0),
        blocked_by,
    })
}

#[derive(Debug, sqlx::FromRow)]
struct SampleRow {
    head_position: i64,
    oldest_position: i64,
    /// Events read after the oldest checkpoint, unread among them, ages of
    /// the oldest unread and of the newest read (seconds), largest stream
    /// lag among them.
    after: i64,
    unread: i64,
    unread_age: f64,
    after_age: f64,
    unread_max: i64,
    held_events: i64,
    parked_streams: i64,
    parked_max: i64,
    checkpoint_partitions: Vec<i32>,
    checkpoint_positions: Vec<i64>,
    coverage_tables: Vec<String>,
    coverage_months: Vec<i32>,
    coverage_status: Vec<String>,
    blocked_seconds: f64,
    xmin: i64,
}

/// $1 = LAG_COUNT_CAP, $2 = STREAM_LAG_SAMPLE. The bounds taken from other
/// parts of the statement are scalar subqueries on purpose: evaluated once
/// (InitPlans), they become index bounds of the (tx_id, global_position)
/// scan (see `robson_eventlog::read_committed`).
pub const SAMPLE_SQL: &str = r#"
WITH cp AS MATERIALIZED (
    SELECT partition, tx_id, global_position FROM projection_checkpoints),
oldest AS MATERIALIZED (
    SELECT coalesce((SELECT tx_id FROM cp ORDER BY tx_id, global_position LIMIT 1), 0) AS tx_id,
           coalesce((SELECT global_position FROM cp ORDER BY tx_id, global_position LIMIT 1), 0) AS position,
           (SELECT coalesce(max(global_position), 0) FROM event_log)::int8 AS head),
after AS (
    SELECT e.stream_key, e.seq, e.ingested_at FROM event_log e
     WHERE (e.tx_id, e.global_position)
           > ((SELECT tx_id::text::xid8 FROM oldest), (SELECT position FROM oldest))
     ORDER BY e.tx_id, e.global_position
     LIMIT (SELECT CASE WHEN head - position <= $1 THEN $1 ELSE $2 END FROM oldest)),
unread AS (
    -- Partitions that are ahead have applied some of these already;
    -- parked streams' events are held, counted apart. One key probe per
    -- event (LATERAL … LIMIT 1): a plain join was planned as a hash join
    -- over every progress row (the LIMIT's row count is unknown when
    -- planning), 130 ms a sample at 150,000 streams.
    SELECT a.stream_key, a.ingested_at FROM after a
      LEFT JOIN LATERAL (SELECT p.last_seq, p.parked_seq FROM projection_stream_progress p
                          WHERE p.stream_key = a.stream_key LIMIT 1) p ON true
     WHERE a.seq > coalesce(p.last_seq, 0) AND p.parked_seq IS NULL),
parked AS (
    SELECT (SELECT s.last_seq FROM event_streams s
             WHERE s.stream_key = p.stream_key) - p.last_seq AS behind
      FROM projection_stream_progress p
     WHERE p.parked_seq IS NOT NULL),
behind_xmin AS (
    SELECT e.ingested_at FROM event_log e
     WHERE e.tx_id >= (SELECT pg_snapshot_xmin(pg_current_snapshot()))
     ORDER BY e.tx_id, e.global_position
     LIMIT 1),
coverage AS (SELECT * FROM check_partition_coverage())
SELECT (SELECT head FROM oldest) AS head_position,
       (SELECT position FROM oldest) AS oldest_position,
       (SELECT count(*) FROM after)::int8 AS after,
       (SELECT count(*) FROM unread)::int8 AS unread,
       coalesce((SELECT extract(epoch FROM now() - min(ingested_at)) FROM unread), 0)::float8 AS unread_age,
       coalesce((SELECT extract(epoch FROM now() - max(ingested_at)) FROM after), 0)::float8 AS after_age,
       coalesce((SELECT max((SELECT s.last_seq FROM event_streams s
                              WHERE s.stream_key = u.stream_key LIMIT 1)
                            - coalesce((SELECT p.last_seq FROM projection_stream_progress p
                                         WHERE p.stream_key = u.stream_key LIMIT 1), 0))
                   FROM (SELECT DISTINCT stream_key FROM unread) u), 0)::int8 AS unread_max,
       (SELECT coalesce(sum(behind), 0) FROM parked)::int8 AS held_events,
       (SELECT count(*) FROM parked)::int8 AS parked_streams,
       (SELECT coalesce(max(behind), 0) FROM parked)::int8 AS parked_max,
       coalesce((SELECT array_agg(partition ORDER BY partition) FROM cp), '{}') AS checkpoint_partitions,
       coalesce((SELECT array_agg(global_position ORDER BY partition) FROM cp), '{}') AS checkpoint_positions,
       coalesce((SELECT array_agg(table_name ORDER BY table_name) FROM coverage), '{}') AS coverage_tables,
       coalesce((SELECT array_agg(months_ahead ORDER BY table_name) FROM coverage), '{}') AS coverage_months,
       coalesce((SELECT array_agg(status ORDER BY table_name) FROM coverage), '{}') AS coverage_status,
       coalesce((SELECT extract(epoch FROM now() - ingested_at) FROM behind_xmin), 0)::float8 AS blocked_seconds,
       pg_snapshot_xmin(pg_current_snapshot())::text::int8 AS xmin
"#;

/// The session holding transaction `xmin` open. Its pid comes from
/// `pg_locks` (readable by every role); the rest from `pg_stat_activity`,
/// which shows other roles' sessions only to members of
/// `pg_read_all_stats` (or `pg_monitor`): without it those fields are null
/// and `note` says so.
pub async fn blocker(pool: &PgPool, xmin: i64) -> Result<Blocker, sqlx::Error> {
    type Row = (
        Option<i32>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        r#"
        SELECT l.pid, a.application_name, host(a.client_addr), a.state,
               extract(epoch FROM now() - a.xact_start)::float8, left(a.query, 4000),
               (SELECT gid FROM pg_prepared_xacts x WHERE x.transaction = l.transactionid)
          FROM pg_locks l
          LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
           AND l.transactionid::text::int8 = $1 % 4294967296
         LIMIT 1
        "#,
    )
    .bind(xmin)
    .fetch_optional(pool)
    .await?;
    let Some((pid, application_name, client_addr, state, xact_age, query, prepared)) = row else {
        return Ok(Blocker {
            note: Some("the transaction has ended since".into()),
            ..Blocker::default()
        });
    };
    let note = if let Some(gid) = prepared {
        Some(format!(
            "prepared transaction {gid:?} (see pg_prepared_xacts)"
        ))
    } else if state.is_none() {
        Some(
            "this role cannot see other sessions: GRANT pg_read_all_stats TO the daemon's role"
                .into(),
        )
    } else {
        None
    };
    Ok(Blocker {
        pid,
        application_name,
        client_addr,
        state,
        xact_age_seconds: xact_age,
        query: query.map(|q| shorten_query(&q, 200)),
        note,
    })
}

/// `query` with every string literal masked (`'…'`: a literal may hold a
/// password or personal data) and cut to `max` characters.
pub fn shorten_query(query: &str, max: usize) -> String {
    let mut out = String::with_capacity(query.len().min(max * 2));
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            out.push(if c.is_control() { ' ' } else { c });
            continue;
        }
        out.push_str("'…'");
        // Skip to the closing quote; '' inside a literal is an escaped quote.
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    break;
                }
            }
        }
    }
    out.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::shorten_query;

    #[test]
    fn literals_are_masked_and_the_query_is_cut() {
        assert_eq!(
            shorten_query("ALTER ROLE x PASSWORD 'se''cret' VALID", 200),
            "ALTER ROLE x PASSWORD '…' VALID"
        );
        assert_eq!(shorten_query("SELECT 'open", 200), "SELECT '…'");
        assert_eq!(shorten_query(&"x".repeat(500), 200).chars().count(), 200);
        assert_eq!(shorten_query("SELECT\n1", 200), "SELECT 1");
    }
}
