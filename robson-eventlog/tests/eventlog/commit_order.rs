//! The commit-safe read: a consumer reading from its last position never
//! skips an event whose writer commits late, never reads one that was rolled
//! back, and is not stalled by a writer that rolled back.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robson_eventlog::testing::TestDb;
use robson_eventlog::{
    append_event, read_committed, AppendOutcome, EventEnvelope, LogReader, Position,
};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{event, guard_against_hang, order_stream};

/// A consumer as the daemon runs one: it reads from its last position.
#[derive(Debug, Default)]
struct Consumer {
    last: Position,
    seen: Vec<EventEnvelope>,
}

impl Consumer {
    /// One read; returns the new events and the xmin of the read's snapshot.
    async fn poll(&mut self, pool: &PgPool, limit: i64) -> (Vec<EventEnvelope>, i64) {
        // Repeatable read: the reported xmin is the one the read used.
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .expect("repeatable read");
        let xmin: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8")
                .fetch_one(&mut *tx)
                .await
                .expect("snapshot xmin");
        let events = read_committed(&mut tx, self.last, limit)
            .await
            .expect("read_committed");
        tx.commit().await.expect("end the read");
        for e in &events {
            assert!(
                e.tx_id < xmin,
                "event of a transaction not known to have ended: {e:?}"
            );
        }
        self.take(&events);
        (events, xmin)
    }

    /// One read on a [`LogReader`] (its own session: no xmin to report).
    async fn poll_reader(&mut self, reader: &mut LogReader, limit: i64) -> Vec<EventEnvelope> {
        let events = reader
            .read_committed(self.last, limit)
            .await
            .expect("LogReader::read_committed");
        self.take(&events);
        events
    }

    /// Moves on past `events`, each of which must follow the last one read.
    fn take(&mut self, events: &[EventEnvelope]) {
        for e in events {
            assert!(
                e.position() > self.last,
                "{} read again after {}",
                e.position(),
                self.last
            );
            self.last = e.position();
        }
        self.seen.extend(events.iter().cloned());
    }

    fn ids(&self) -> Vec<Uuid> {
        self.seen.iter().map(|e| e.event_id).collect()
    }
}

async fn tx_id_of(event_id: Uuid, pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT tx_id::text::int8 FROM event_log WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("tx_id of an event")
}

/// Reads until `wanted` has been read; the read must return it as soon as
/// its writer is below the snapshot's xmin (older transactions of other
/// tests on the cluster may hold xmin back meanwhile).
async fn read_until_seen(consumer: &mut Consumer, pool: &PgPool, wanted: Uuid) {
    let wanted_tx = tx_id_of(wanted, pool).await;
    let started = Instant::now();
    while !consumer.ids().contains(&wanted) {
        let (events, xmin) = consumer.poll(pool, 1000).await;
        if xmin > wanted_tx {
            assert!(
                events.iter().any(|e| e.event_id == wanted),
                "{wanted} (tx {wanted_tx}) not returned by a read with xmin {xmin}"
            );
        }
        guard_against_hang(started, "consumer never reached the event");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writer A appends in an open transaction, then writer B appends (a later
/// position) and commits. Returns A's transaction, A's and B's outcomes.
async fn a_open_b_committed<'c>(
    pool: &PgPool,
    a_conn: &'c mut PgConnection,
) -> (
    sqlx::Transaction<'c, sqlx::Postgres>,
    AppendOutcome,
    AppendOutcome,
) {
    let tenant = Uuid::new_v4();
    let mut a_tx = a_conn.begin().await.expect("begin A");
    let a = append_event(
        &mut *a_tx,
        &event(tenant, &order_stream(), json!({"w": "A"})),
    )
    .await
    .expect("A appends");
    let b = append_event(pool, &event(tenant, &order_stream(), json!({"w": "B"})))
        .await
        .expect("B appends and commits");
    assert!(b.global_position > a.global_position);
    (a_tx, a, b)
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_consumer_waits_for_an_open_writer_and_then_reads_it_before_the_later_commit() {
    let db = TestDb::new().await;
    let e0 = append_event(
        &db.pool,
        &event(Uuid::new_v4(), &order_stream(), json!({"w": 0})),
    )
    .await
    .expect("first event");
    let mut consumer = Consumer::default();
    read_until_seen(&mut consumer, &db.pool, e0.event_id).await;

    let mut a_conn = PgConnection::connect(&db.url).await.expect("connect A");
    let (a_tx, a, b) = a_open_b_committed(&db.pool, &mut a_conn).await;
    for _ in 0..5 {
        let (events, _) = consumer.poll(&db.pool, 1000).await;
        assert!(events.is_empty(), "read past the open writer: {events:?}");
    }
    a_tx.commit().await.expect("A commits");

    read_until_seen(&mut consumer, &db.pool, b.event_id).await;
    assert_eq!(consumer.ids(), [e0.event_id, a.event_id, b.event_id]);
    let (events, _) = consumer.poll(&db.pool, 1000).await;
    assert!(events.is_empty(), "nothing more: {events:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_rolled_back_writer_does_not_stall_the_consumer() {
    let db = TestDb::new().await;
    let mut consumer = Consumer::default();
    let mut a_conn = PgConnection::connect(&db.url).await.expect("connect A");
    let (a_tx, a, b) = a_open_b_committed(&db.pool, &mut a_conn).await;
    let (events, _) = consumer.poll(&db.pool, 1000).await;
    assert!(events.is_empty(), "read past the open writer: {events:?}");
    a_tx.rollback().await.expect("A rolls back");

    // B comes with the first read whose snapshot no longer sees a writer older than B.
    read_until_seen(&mut consumer, &db.pool, b.event_id).await;
    assert_eq!(consumer.ids(), [b.event_id]);
    assert!(!consumer.ids().contains(&a.event_id));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_writer_that_had_an_xid_before_appending_is_read_first_even_with_a_later_seq() {
    // The known cost documented in docs/eventlog.md: order across
    // transactions is by transaction id, so per stream consumers apply by seq.
    let db = TestDb::new().await;
    let (tenant, stream) = (Uuid::new_v4(), order_stream());
    let mut a_conn = PgConnection::connect(&db.url).await.expect("connect A");
    let mut a_tx = a_conn.begin().await.expect("begin A");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *a_tx)
        .await
        .expect("A takes an xid");
    let b = append_event(&db.pool, &event(tenant, &stream, json!({"w": "B"})))
        .await
        .expect("B");
    let a = append_event(&mut *a_tx, &event(tenant, &stream, json!({"w": "A"})))
        .await
        .expect("A");
    a_tx.commit().await.expect("A commits");
    assert_eq!((b.seq, a.seq), (1, 2));

    let mut consumer = Consumer::default();
    read_until_seen(&mut consumer, &db.pool, b.event_id).await;
    let seqs: Vec<i64> = consumer.seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [2, 1], "read in transaction order, not seq order");
}

/// What the writers did: events of committed and of rolled-back transactions.
#[derive(Debug, Default)]
struct Written {
    committed: Vec<AppendOutcome>,
    rolled_back: Vec<Uuid>,
}

async fn random_writer(url: String, streams: Arc<Vec<String>>, tenant: Uuid, seed: u64) -> Written {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conn = PgConnection::connect(&url).await.expect("connect a writer");
    let mut written = Written::default();
    for t in 0..15 {
        let stream = &streams[rng.gen_range(0..streams.len())];
        let mut tx = conn.begin().await.expect("begin");
        if rng.gen_bool(0.3) {
            // An xid before appending: its events sort before later writers'.
            sqlx::query("SELECT pg_current_xact_id()")
                .execute(&mut *tx)
                .await
                .expect("xid");
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..4))).await;
        }
        let mut outcomes = Vec::new();
        for k in 0..rng.gen_range(1..=3) {
            let e = event(tenant, stream, json!({ "seed": seed, "t": t, "k": k }));
            outcomes.push(append_event(&mut *tx, &e).await.expect("append"));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..6))).await;
        if rng.gen_bool(0.2) {
            tx.rollback().await.expect("rollback");
            written
                .rolled_back
                .extend(outcomes.iter().map(|o| o.event_id));
        } else {
            tx.commit().await.expect("commit");
            written.committed.extend(outcomes);
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_consumer_sees_every_committed_event_once_and_no_rolled_back_one_under_racing_writers() {
    racing_writers(Read::Pooled).await;
}

/// The same consumer reading on a [`LogReader`], as the daemon's poller does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_log_reader_sees_every_committed_event_once_and_no_rolled_back_one_under_racing_writers()
{
    racing_writers(Read::OwnSession).await;
}

/// How the racing consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// `read_committed` on a pooled connection.
    Pooled,
    /// A [`LogReader`] of its own.
    OwnSession,
}

async fn racing_writers(read: Read) {
    let db = TestDb::with_pool_size(12).await;
    let tenant = Uuid::new_v4();
    let streams = Arc::new((0..5).map(|_| order_stream()).collect::<Vec<_>>());
    let base_seed: u64 = rand::thread_rng().gen();
    eprintln!("writer seeds start at {base_seed}");

    let done = Arc::new(AtomicBool::new(false));
    let pool = db.pool.clone();
    let flag = done.clone();
    let options = db.pool.connect_options();
    let consumer_task = tokio::spawn(async move {
        let mut consumer = Consumer::default();
        let mut reader = LogReader::connect(&options)
            .await
            .expect("connect a reader");
        while !flag.load(Ordering::Acquire) {
            // A small page, so that reading pages through the backlog too.
            match read {
                Read::Pooled => drop(consumer.poll(&pool, 7).await),
                Read::OwnSession => drop(consumer.poll_reader(&mut reader, 7).await),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reader.close().await.expect("close the reader");
        consumer
    });
    let mut writers = JoinSet::new();
    for w in 0..8u64 {
        writers.spawn(random_writer(
            db.url.clone(),
            streams.clone(),
            tenant,
            base_seed.wrapping_add(w),
        ));
    }
    let written: Vec<Written> = writers.join_all().await;
    done.store(true, Ordering::Release);
    let mut consumer = consumer_task.await.expect("consumer task");

    let committed: HashSet<Uuid> = written
        .iter()
        .flat_map(|w| w.committed.iter().map(|o| o.event_id))
        .collect();
    let rolled_back: HashSet<Uuid> = written
        .iter()
        .flat_map(|w| w.rolled_back.iter().copied())
        .collect();
    let committed_ids: Vec<Uuid> = committed.iter().copied().collect();
    let last_writer_tx: i64 =
        sqlx::query_scalar("SELECT max(tx_id::text::int8) FROM event_log WHERE event_id = ANY($1)")
            .bind(&committed_ids)
            .fetch_one(&db.pool)
            .await
            .expect("last writer transaction");
    let started = Instant::now();
    while !committed.iter().all(|id| consumer.ids().contains(id)) {
        const PAGE: i64 = 7;
        let (events, xmin) = consumer.poll(&db.pool, PAGE).await;
        // Every writer is below this snapshot's xmin and the page was not
        // full: whatever is still missing was skipped.
        if xmin > last_writer_tx && (events.len() as i64) < PAGE {
            let missing = committed
                .iter()
                .filter(|id| !consumer.ids().contains(id))
                .count();
            assert_eq!(missing, 0, "committed events skipped by the consumer");
        }
        guard_against_hang(started, "consumer never caught up with the writers");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (extra, _) = consumer.poll(&db.pool, 1000).await;
    assert!(
        extra.is_empty(),
        "events beyond the committed ones: {extra:?}"
    );

    let ids = consumer.ids();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was read twice");
    assert_eq!(unique, committed, "read exactly the committed events");
    assert!(unique.is_disjoint(&rolled_back));
    let mut per_stream: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for e in &consumer.seen {
        per_stream
            .entry(e.stream_key.as_str())
            .or_default()
            .push(e.seq);
    }
    for (stream, mut seqs) in per_stream {
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "{stream}: no gaps"
        );
    }
}

/// The read turns sorting off for itself only: neither a caller's
/// transaction nor a pooled connection keeps the setting afterwards.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_read_leaves_the_callers_settings_as_they_were() {
    let db = TestDb::new().await;
    append_event(
        &db.pool,
        &event(Uuid::new_v4(), &order_stream(), json!({"w": 0})),
    )
    .await
    .expect("append");

    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    // What it returns depends on other tests' open transactions (the xmin
    // is the cluster's); only the settings matter here.
    read_committed(&mut conn, Position::START, 10)
        .await
        .expect("read outside a transaction");
    assert_eq!(sort(&mut conn).await.expect("show"), "on");

    let mut tx = conn.begin().await.expect("begin");
    read_committed(&mut tx, Position::START, 10)
        .await
        .expect("read inside a transaction");
    assert_eq!(sort(&mut tx).await.expect("show in the transaction"), "on");
    tx.commit()
        .await
        .expect("the caller's transaction still commits");
    assert_eq!(sort(&mut conn).await.expect("show"), "on");
}

async fn sort(conn: &mut PgConnection) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SHOW enable_sort").fetch_one(conn).await
}

/// `committed_after` says whether committed events follow a position,
/// readable now or held back by an older open transaction, and leaves the
/// caller's settings as they were.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn committed_after_sees_readable_and_held_back_events_and_nothing_else() {
    use robson_eventlog::committed_after;
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let first = append_event(&db.pool, &event(tenant, &order_stream(), json!({"n": 1})))
        .await
        .expect("append");
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    let at_first = position_of(&db.pool, first.global_position).await;
    assert!(committed_after(&mut conn, Position::START)
        .await
        .expect("check"));
    assert!(!committed_after(&mut conn, at_first).await.expect("check"));

    // An open older writer holds a later committed event back: still true.
    let mut older = db.pool.begin().await.expect("begin");
    append_event(
        &mut *older,
        &event(tenant, &order_stream(), json!({"n": 2})),
    )
    .await
    .expect("the older append");
    append_event(&db.pool, &event(tenant, &order_stream(), json!({"n": 3})))
        .await
        .expect("the later append");
    assert!(committed_after(&mut conn, at_first).await.expect("check"));
    older.rollback().await.expect("rollback");
    assert!(committed_after(&mut conn, at_first).await.expect("check"));

    let mut tx = conn.begin().await.expect("begin");
    committed_after(&mut tx, at_first)
        .await
        .expect("check in a transaction");
    assert_eq!(sort(&mut tx).await.expect("show in the transaction"), "on");
    tx.commit()
        .await
        .expect("the caller's transaction still commits");
    assert_eq!(sort(&mut conn).await.expect("show"), "on");
}

async fn position_of(pool: &PgPool, global_position: i64) -> Position {
    let tx_id: String =
        sqlx::query_scalar("SELECT tx_id::text FROM event_log WHERE global_position = $1")
            .bind(global_position)
            .fetch_one(pool)
            .await
            .expect("the event's transaction id");
    Position {
        tx_id: tx_id.parse().expect("a transaction id"),
        global_position,
    }
}

/// A [`LogReader`] waits for an open writer like `read_committed`, then
/// reads its event before the later one; `committed_after` on it sees the
/// held-back event; the caller's pooled connections keep sorting on.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_log_reader_waits_for_an_open_writer_and_keeps_its_setting_to_itself() {
    let db = TestDb::new().await;
    let mut reader = LogReader::connect(&db.pool.connect_options())
        .await
        .expect("connect a reader");
    let mut consumer = Consumer::default();
    let mut a_conn = PgConnection::connect(&db.url).await.expect("connect A");
    let (a_tx, a, b) = a_open_b_committed(&db.pool, &mut a_conn).await;
    for _ in 0..5 {
        let events = consumer.poll_reader(&mut reader, 1000).await;
        assert!(events.is_empty(), "read past the open writer: {events:?}");
    }
    assert!(reader
        .committed_after(Position::START)
        .await
        .expect("check"));
    a_tx.commit().await.expect("A commits");
    let started = Instant::now();
    while !consumer.ids().contains(&b.event_id) {
        consumer.poll_reader(&mut reader, 1000).await;
        guard_against_hang(started, "the reader never reached B");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(consumer.ids(), [a.event_id, b.event_id]);
    assert!(!reader.committed_after(consumer.last).await.expect("check"));
    let mut pooled = db.pool.acquire().await.expect("a pooled connection");
    assert_eq!(sort(&mut pooled).await.expect("show"), "on");
    reader.close().await.expect("close");
}

/// A [`LogReader`]'s two statements keep one generic plan for the session
/// (planning them on every call cost more than running them): after many
/// reads and checks, two prepared statements and no custom plan. And that
/// plan must walk the commit-order index however full the log was when it
/// was made: a seq scan and a sort planned on an empty log would be kept
/// as the log grows. Checked on an empty log, then on the same session and
/// on a new one once thousands of events are in and analysed.
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_log_readers_kept_plans_walk_the_index_on_an_empty_log_and_a_full_one() {
    let db = TestDb::new().await;
    let options = db.pool.connect_options();
    let mut early = LogReader::connect(&options).await.expect("connect");
    assert_index_walks(&mut early, "planned on an empty log").await;

    let tenant = Uuid::new_v4();
    let events: Vec<_> = (0..4000)
        .map(|i| event(tenant, &format!("order:{}", i % 400), json!({ "i": i })))
        .collect();
    let mut expected = Vec::new();
    for chunk in events.chunks(500) {
        let outcomes = robson_eventlog::append_batch(&db.pool, chunk)
            .await
            .expect("append");
        expected.extend(outcomes.iter().map(|o| o.event_id));
    }
    sqlx::query("ANALYZE event_log")
        .execute(&db.pool)
        .await
        .expect("analyze");

    assert_index_walks(&mut early, "the same session, 4,000 events later").await;
    let mut late = LogReader::connect(&options).await.expect("connect");
    assert_index_walks(&mut late, "planned on 4,000 events").await;
    // Tests beside this one hold transactions open on the same cluster, so
    // a read may stop at their horizon: read on until every event is in.
    let mut consumer = Consumer::default();
    let started = Instant::now();
    while consumer.seen.len() < expected.len() {
        consumer.poll_reader(&mut late, 10_000).await;
        guard_against_hang(started, "the reader never read every event");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(consumer.ids(), expected, "every event read once, in order");
    for _ in 0..10 {
        early
            .read_committed(Position::START, 100)
            .await
            .expect("read");
        early.committed_after(Position::START).await.expect("check");
    }
    let (statements, generic, custom) = early.plans_made().await.expect("plans");
    assert_eq!(statements, 2, "the read and the check, prepared");
    assert_eq!(custom, 0, "no plan made for one call's bounds");
    assert!(
        generic >= 20,
        "one generic plan used by every call: {generic}"
    );
    early.close().await.expect("close");
    late.close().await.expect("close");
}

async fn assert_index_walks(reader: &mut LogReader, when: &str) {
    for plan in reader.explain_plans().await.expect("explain") {
        // The plan's nodes: "Name  (cost=…" lines, without the arrows.
        let nodes: Vec<&str> = plan
            .lines()
            .filter_map(|line| line.split_once("  (cost=").map(|(name, _)| name))
            .map(|name| name.trim_start().trim_start_matches("->").trim_start())
            .collect();
        assert!(
            nodes.iter().any(|n| n.starts_with("Index")),
            "{when}: no index scan in\n{plan}"
        );
        assert!(
            !nodes
                .iter()
                .any(|n| n.starts_with("Seq Scan") || n.ends_with("Sort")),
            "{when}: a scan or a sort in\n{plan}"
        );
    }
}
