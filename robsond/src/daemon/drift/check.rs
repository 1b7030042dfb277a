//! Checking one stream: its events are read from the log in pages (seq
//! order) up to the stream's progress, folded in memory with the
//! projector's own rules (`robson_projector::fold`), and the rows they
//! target are compared with the live ones, column by column.
//!
//! - **Decisions**: an event whose dead letter is `skipped` (policy `skip`
//!   or `robsond streams skip`) is not applied; a parked stream is folded up
//!   to its progress (`last_seq`), never past it. Any other event at or
//!   below `last_seq` was applied live: if the rules now refuse it, that is
//!   reported as a difference of its outcome.
//! - **Point in time**: the rows are read in ONE repeatable-read, read-only
//!   transaction together with the stream's progress; the events the stream
//!   applied since the fold began are read and folded inside that same
//!   snapshot before comparing. A stream that moved by more than a few
//!   pages meanwhile is folded on outside the snapshot and looked at again,
//!   at most [`Limits::attempts`] times; then it counts as `moving`, never
//!   as a difference. (A read-only transaction takes no transaction id, so
//!   it does not hold commit-safe reading back.)
//! - **Bounded memory**: one page of events at a time; fills (insert-only,
//!   one per FILL_RECEIVED) are compared page by page and dropped, their
//!   count per order at the end; the other rows are held per key, at most
//!   [`Limits::max_rows`] (a stream touching more is `unchecked`).
//! - **Resuming**: a clean check hands back its fold ([`Resume`]: the
//!   expected rows at the seq it reached and that event's id). Given to the
//!   next check of the same stream, the fold goes on from there instead of
//!   from seq 1 — the log is append-only and the rules do not change in a
//!   running daemon, so the expected rows at that seq are the same — once
//!   the log still holds that event under that seq (else, or when the
//!   stream's progress went back, it folds from seq 1). Every current row
//!   is still compared; only fills recorded before the resumed seq are not
//!   compared again (their count per order is). Which folds are kept, and
//!   how often a stream is folded from seq 1 all the same, is
//!   [`super::resume`]'s.

use std::collections::BTreeMap;

use robson_eventlog::{event_columns, EventEnvelope, EventRow};
use robson_projector::fold::{Keys, Tables};
use robson_projector::rows::{FillRow, OrderKey};
use robson_projector::rules::{self, Stamp};
use serde_json::Value;
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use super::columns::{diff, ColumnDiff};

/// How far one stream's check may go.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Events read (and held) at a time.
    pub page: i64,
    /// Distinct rows (other than fills) a stream may target.
    pub max_rows: usize,
    /// Snapshots taken before a stream that keeps moving is given up.
    pub attempts: u32,
    /// Events the stream may have moved on by for them to be folded inside
    /// the snapshot (more: fold outside and take a new one).
    pub catch_up_in_snapshot: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            page: 500,
            max_rows: 10_000,
            attempts: 5,
            catch_up_in_snapshot: 2_000,
        }
    }
}

/// What the check of one stream found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every targeted row equals the log's.
    Clean,
    /// Some rows differ (or an event's outcome does).
    Differs(Vec<ColumnDiff>),
    /// The stream kept moving through every attempt.
    Moving,
    /// Not checked, and why (events missing from the log, too many rows…).
    Unchecked(String),
}

/// A verdict and what it cost.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    pub events_read: u64,
    /// The most events held in memory at once (a page).
    pub largest_page: usize,
    /// The fold began where an earlier check left it.
    pub resumed: bool,
    /// Where this check left the fold, to resume it: only after a clean
    /// verdict (a difference found in an event's outcome is found again
    /// only by folding that event again).
    pub resume: Option<Resume>,
}

/// A stream's fold as a clean check left it: the expected rows after
/// event `folded_to` (whose id is `last_event_id`).
#[derive(Debug, Clone)]
pub struct Resume {
    folded_to: i64,
    last_event_id: Uuid,
    tables: Tables,
    keys: Keys,
    fills: BTreeMap<OrderKey, i64>,
}

impl Resume {
    /// The seq the fold reached.
    pub fn folded_to(&self) -> i64 {
        self.folded_to
    }

    /// Rows it holds (one per key it targets, and one fill count per
    /// order): what keeping it costs.
    pub fn rows(&self) -> usize {
        let k = &self.keys;
        k.orders.len()
            + k.positions.len()
            + k.balances.len()
            + k.risks.len()
            + k.strategies.len()
            + self.fills.len()
    }
}

/// Why a fold stopped early.
pub(super) enum Stop {
    Database(sqlx::Error),
    Unchecked(String),
}

impl Stop {
    pub(super) fn no_progress() -> Stop {
        Stop::Unchecked("no progress row (not projected yet)".into())
    }

    pub(super) fn went_back(from: i64, to: i64) -> Stop {
        Stop::Unchecked(format!(
            "progress went back from {from} to {to} (a rebuild?)"
        ))
    }
}

impl From<sqlx::Error> for Stop {
    fn from(err: sqlx::Error) -> Self {
        Stop::Database(err)
    }
}

#[cfg(test)]
impl Resume {
    /// A fold at `folded_to` holding `rows` fill counts (for the tests of
    /// what is kept).
    pub(crate) fn of_size(folded_to: i64, rows: usize) -> Resume {
        Resume {
            folded_to,
            last_event_id: Uuid::nil(),
            tables: Tables::default(),
            keys: Keys::default(),
            fills: (0..rows)
                .map(|n| {
                    let key = OrderKey {
                        tenant_id: Uuid::nil(),
                        order_id: Uuid::from_u128(n as u128),
                    };
                    (key, 1)
                })
                .collect(),
        }
    }
}

/// A stream folded in memory up to `folded_to`.
pub(super) struct Replay<'a> {
    stream_key: &'a str,
    limits: Limits,
    pub(super) folded_to: i64,
    /// The id of event `folded_to` (none before the first).
    last_event_id: Option<Uuid>,
    tables: Tables,
    pub(super) keys: Keys,
    /// Fills the fold recorded, per order (their rows are compared and dropped).
    fills: BTreeMap<OrderKey, i64>,
    diffs: Vec<ColumnDiff>,
    events_read: u64,
    largest_page: usize,
    resumed: bool,
}

/// Checks `stream_key` on `conn` (outside any transaction), going on
/// from `resume` (an earlier clean check of the same stream) when given.
pub async fn check(
    conn: &mut PgConnection,
    stream_key: &str,
    limits: Limits,
    resume: Option<Resume>,
) -> Result<Checked, sqlx::Error> {
    let mut replay = Replay::new(stream_key, limits);
    if let Some(resume) = resume {
        replay.resume(conn, resume).await?;
    }
    let verdict = replay.run(conn).await;
    replay.checked(verdict)
}

impl<'a> Replay<'a> {
    pub(super) fn new(stream_key: &'a str, limits: Limits) -> Self {
        Replay {
            stream_key,
            limits,
            folded_to: 0,
            last_event_id: None,
            tables: Tables::default(),
            keys: Keys::default(),
            fills: BTreeMap::new(),
            diffs: Vec::new(),
            events_read: 0,
            largest_page: 0,
            resumed: false,
        }
    }

    pub(super) fn stream_key(&self) -> &'a str {
        self.stream_key
    }

    /// The verdict of `outcome` and what the check cost; the fold to
    /// resume from after a clean verdict.
    pub(super) fn checked(self, outcome: Result<Verdict, Stop>) -> Result<Checked, sqlx::Error> {
        let verdict = match outcome {
            Ok(verdict) => verdict,
            Err(Stop::Unchecked(why)) => Verdict::Unchecked(why),
            Err(Stop::Database(err)) => return Err(err),
        };
        let resume = match (&verdict, self.last_event_id) {
            (Verdict::Clean, Some(last_event_id)) => Some(Resume {
                folded_to: self.folded_to,
                last_event_id,
                tables: self.tables,
                keys: self.keys,
                fills: self.fills,
            }),
            _ => None,
        };
        Ok(Checked {
            verdict,
            events_read: self.events_read,
            largest_page: self.largest_page,
            resumed: self.resumed,
            resume,
        })
    }

    /// Takes `resume` as the fold so far when the log still holds its last
    /// event under its seq and the stream's progress has not gone back
    /// below it (else the fold starts from seq 1).
    pub(super) async fn resume(
        &mut self,
        conn: &mut PgConnection,
        resume: Resume,
    ) -> Result<(), sqlx::Error> {
        let upto = progress(&mut *conn, self.stream_key).await?;
        if upto.is_none_or(|upto| upto < resume.folded_to) {
            return Ok(());
        }
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT event_id FROM event_log WHERE stream_key = $1 AND seq = $2")
                .bind(self.stream_key)
                .bind(resume.folded_to)
                .fetch_optional(&mut *conn)
                .await?;
        if id != Some(resume.last_event_id) {
            return Ok(());
        }
        self.folded_to = resume.folded_to;
        self.last_event_id = Some(resume.last_event_id);
        self.tables = resume.tables;
        self.keys = resume.keys;
        self.fills = resume.fills;
        self.resumed = true;
        Ok(())
    }

    /// Checks the stream alone: folded outside a snapshot, compared inside one.
    pub(super) async fn run(&mut self, conn: &mut PgConnection) -> Result<Verdict, Stop> {
        for _ in 0..self.limits.attempts {
            let Some(upto) = progress(&mut *conn, self.stream_key).await? else {
                return Err(Stop::no_progress());
            };
            self.fold_to(&mut *conn, upto).await?;
            if let Some(diffs) = self.compare_in_snapshot(conn).await? {
                return Ok(if diffs.is_empty() {
                    Verdict::Clean
                } else {
                    Verdict::Differs(diffs)
                });
            }
        }
        Ok(Verdict::Moving)
    }

    /// In one snapshot: the progress, the events applied since the fold
    /// (if few), the live rows. `None` when the stream moved too far.
    async fn compare_in_snapshot(
        &mut self,
        conn: &mut PgConnection,
    ) -> Result<Option<Vec<ColumnDiff>>, Stop> {
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let upto = progress(&mut tx, self.stream_key).await?.unwrap_or(0);
        if upto < self.folded_to {
            return Err(Stop::went_back(self.folded_to, upto));
        }
        if upto - self.folded_to > self.limits.catch_up_in_snapshot {
            tx.commit().await?;
            return Ok(None);
        }
        self.fold_to(&mut tx, upto).await?;
        let live = robson_projector::load_rows(&mut tx, &self.keys).await?;
        let orders: Vec<OrderKey> = self.keys.orders.iter().copied().collect();
        let counts = fill_counts(&mut tx, &orders).await?;
        tx.commit().await?;
        Ok(Some(self.finish(&live, &counts)))
    }

    /// The differences between the fold and the live rows (`live` and
    /// `fill_counts` may hold other streams' rows too).
    pub(super) fn finish(
        &mut self,
        live: &Tables,
        fill_counts: &BTreeMap<OrderKey, i64>,
    ) -> Vec<ColumnDiff> {
        let mut diffs = std::mem::take(&mut self.diffs);
        self.compare_rows(live, &mut diffs);
        for order in &self.keys.orders {
            let live_count = fill_counts.get(order).copied().unwrap_or(0);
            let expected = self.fills.get(order).copied().unwrap_or(0);
            if live_count != expected {
                diffs.push(ColumnDiff {
                    table: "fills",
                    key: BTreeMap::from([
                        ("tenant_id", Value::from(order.tenant_id.to_string())),
                        ("order_id", Value::from(order.order_id.to_string())),
                    ]),
                    column: "(count)",
                    live: Value::from(live_count),
                    expected: Value::from(expected),
                });
            }
        }
        diffs
    }

    fn compare_rows(&self, live: &Tables, out: &mut Vec<ColumnDiff>) {
        let (k, e) = (&self.keys, &self.tables);
        for key in &k.orders {
            diff(live.orders.get(key), e.orders.get(key), out);
        }
        for key in &k.positions {
            diff(live.positions.get(key), e.positions.get(key), out);
        }
        for key in &k.balances {
            diff(live.balances.get(key), e.balances.get(key), out);
        }
        for key in &k.risks {
            diff(live.risks.get(key), e.risks.get(key), out);
        }
        for key in &k.strategies {
            diff(live.strategies.get(key), e.strategies.get(key), out);
        }
    }

    /// Reads and folds the stream's events after `folded_to` up to `upto`,
    /// a page at a time.
    async fn fold_to(&mut self, conn: &mut PgConnection, upto: i64) -> Result<(), Stop> {
        while self.folded_to < upto {
            let page = read_page(
                &mut *conn,
                self.stream_key,
                self.folded_to,
                upto,
                self.limits.page,
            )
            .await?;
            self.apply_page(&page)?;
            let fills = self.take_fills();
            if !fills.is_empty() {
                let live = live_fills(&mut *conn, &fills).await?;
                self.compare_fills(&fills, &live);
            }
        }
        Ok(())
    }

    /// Folds a page of the stream's next events (in seq order, each with
    /// whether it was skipped).
    pub(super) fn apply_page(&mut self, page: &[(EventEnvelope, bool)]) -> Result<(), Stop> {
        self.largest_page = self.largest_page.max(page.len());
        if page
            .first()
            .is_none_or(|(e, _)| e.seq != self.folded_to + 1)
        {
            return Err(Stop::Unchecked(format!(
                "events after seq {} are not in event_log (archived?)",
                self.folded_to
            )));
        }
        for (event, skipped) in page {
            if event.seq != self.folded_to + 1 {
                return Err(Stop::Unchecked(format!(
                    "seq {} is missing from event_log",
                    self.folded_to + 1
                )));
            }
            self.events_read += 1;
            self.folded_to = event.seq;
            self.last_event_id = Some(event.event_id);
            if !skipped {
                self.fold(event)?;
            }
        }
        Ok(())
    }

    /// Applies one event the live projection applied.
    fn fold(&mut self, event: &EventEnvelope) -> Result<(), Stop> {
        let result = rules::parse_event(event).and_then(|command| match command {
            None => Ok(()),
            Some(command) => {
                self.keys.add(&command, event.tenant_id);
                self.tables
                    .apply_command(&command, &Stamp::of(event))
                    .map(|_| ())
            }
        });
        if let Err(err) = result {
            self.diffs.push(ColumnDiff {
                table: "event_log",
                key: BTreeMap::from([
                    ("stream_key", Value::from(event.stream_key.clone())),
                    ("seq", Value::from(event.seq)),
                ]),
                column: "(outcome)",
                live: Value::from("applied"),
                expected: Value::from(format!("refused: {err}")),
            });
        }
        let k = &self.keys;
        let rows = k.orders.len()
            + k.positions.len()
            + k.balances.len()
            + k.risks.len()
            + k.strategies.len();
        if rows > self.limits.max_rows {
            return Err(Stop::Unchecked(format!(
                "targets more than {} rows",
                self.limits.max_rows
            )));
        }
        Ok(())
    }

    /// The fills the pages folded since the last call recorded, counted
    /// per order and handed out to be compared ([`Replay::compare_fills`])
    /// and dropped (fills are only ever inserted, with their event).
    pub(super) fn take_fills(&mut self) -> Vec<FillRow> {
        let fills = std::mem::take(&mut self.tables.fills);
        for f in &fills {
            let order = OrderKey {
                tenant_id: f.tenant_id,
                order_id: f.order_id,
            };
            *self.fills.entry(order).or_default() += 1;
        }
        fills
    }

    /// Compares `fills` (from [`Replay::take_fills`]) with the `live` rows
    /// of their ids (which may hold other streams' fills too).
    pub(super) fn compare_fills(&mut self, fills: &[FillRow], live: &[FillRow]) {
        let live: BTreeMap<(Uuid, Uuid), &FillRow> =
            live.iter().map(|l| ((l.tenant_id, l.fill_id), l)).collect();
        for expected in fills {
            let found = live.get(&(expected.tenant_id, expected.fill_id)).copied();
            diff(found, Some(expected), &mut self.diffs);
        }
    }
}

/// The stream's `last_seq`, if it has a progress row.
pub(super) async fn progress(
    conn: &mut PgConnection,
    stream_key: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1")
        .bind(stream_key)
        .fetch_optional(conn)
        .await
}

#[derive(sqlx::FromRow)]
struct StoredEvent {
    #[sqlx(flatten)]
    event: EventRow,
    /// Its dead letter is `skipped`: the live projection passed over it.
    skipped: bool,
}

/// Events `after < seq <= upto` of the stream, at most `limit`, in seq
/// order, each with whether it was skipped.
async fn read_page(
    conn: &mut PgConnection,
    stream_key: &str,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<(EventEnvelope, bool)>, sqlx::Error> {
    let sql = format!(
        r#"
        SELECT {columns}, coalesce(d.resolution = 'skipped', false) AS skipped
          FROM event_log e
          LEFT JOIN projection_dead_letters d ON d.event_id = e.event_id
         WHERE e.stream_key = $1 AND e.seq > $2 AND e.seq <= $3
         ORDER BY e.seq LIMIT $4
        "#,
        columns = event_columns("e"),
    );
    let rows: Vec<StoredEvent> = sqlx::query_as(&sql)
        .bind(stream_key)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (EventEnvelope::from(r.event), r.skipped))
        .collect())
}

/// The live fills with the ids of `fills`.
pub(super) async fn live_fills(
    conn: &mut PgConnection,
    fills: &[FillRow],
) -> Result<Vec<FillRow>, sqlx::Error> {
    let tenants: Vec<Uuid> = fills.iter().map(|f| f.tenant_id).collect();
    let ids: Vec<Uuid> = fills.iter().map(|f| f.fill_id).collect();
    sqlx::query_as(
        r#"
        SELECT f.* FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, fill_id)
         CROSS JOIN LATERAL (SELECT * FROM fills f
                              WHERE f.tenant_id = k.tenant_id AND f.fill_id = k.fill_id
                              LIMIT 1) f
        "#,
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await
}

/// How many live fills each of `orders` has.
pub(super) async fn fill_counts(
    conn: &mut PgConnection,
    orders: &[OrderKey],
) -> Result<BTreeMap<OrderKey, i64>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(BTreeMap::new());
    }
    let tenants: Vec<Uuid> = orders.iter().map(|o| o.tenant_id).collect();
    let ids: Vec<Uuid> = orders.iter().map(|o| o.order_id).collect();
    let counts: Vec<i64> = sqlx::query_scalar(
        r#"
        SELECT (SELECT count(*) FROM fills f
                 WHERE f.tenant_id = k.tenant_id AND f.order_id = k.order_id)
          FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(tenant_id, order_id, n)
         ORDER BY k.n
        "#,
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(orders.iter().copied().zip(counts).collect())
}
