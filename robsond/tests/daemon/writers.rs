//! Concurrent writers that commit in any order, hold transactions open and
//! sometimes roll back (SPEC §2.2): every committed event is projected
//! exactly once, none is skipped, rolled-back gaps do not stall the daemon.

use std::time::{Duration, Instant};

use crate::support::TestDb;
use rand::{rngs::StdRng, Rng, SeedableRng};
use robson_eventlog::append_event;
use robsond::tools::generate::FlowGenerator;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::support::{
    assert_equals_clean_run, get_text, guard_against_hang, http, metric_sum, wait_caught_up, Daemon,
};

const WRITERS: u64 = 8;
const FLOWS_PER_WRITER: usize = 120;

/// Appends flows one event per statement, each flow in one transaction held
/// open a random few milliseconds, one in ten rolled back. Returns the
/// numbers of events committed and rolled back.
async fn writer(pool: PgPool, seed: u64) -> (u64, u64) {
    let mut flows = FlowGenerator::new(seed, 1);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut committed, mut rolled_back) = (0, 0);
    for _ in 0..FLOWS_PER_WRITER {
        let flow = flows.next_flow();
        let mut tx = pool.begin().await.expect("begin a writer transaction");
        for event in &flow {
            append_event(&mut *tx, event)
                .await
                .expect("append an event");
            if rng.gen_bool(0.3) {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..4))).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..12))).await;
        if rng.gen_bool(0.1) {
            tx.rollback().await.expect("roll back");
            rolled_back += flow.len() as u64;
        } else {
            tx.commit().await.expect("commit");
            committed += flow.len() as u64;
        }
    }
    (committed, rolled_back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn interleaved_commits_and_rollbacks_are_each_projected_exactly_once() {
    let db = TestDb::with_pool_size(WRITERS as u32 + 4).await;
    let env = [("ROBSON_PARTITIONS", "4")];
    let mut daemon = Daemon::start(&db.url, &env).await;
    let base_seed: u64 = rand::random();
    eprintln!("writer seeds from {base_seed}");
    let mut writers = JoinSet::new();
    for w in 0..WRITERS {
        writers.spawn(writer(db.pool.clone(), base_seed.wrapping_add(w)));
    }
    let tallies = writers.join_all().await;
    let committed: u64 = tallies.iter().map(|t| t.0).sum();
    let rolled_back: u64 = tallies.iter().map(|t| t.1).sum();
    assert!(rolled_back > 0, "some appends were rolled back");

    wait_caught_up(&db.pool, &mut daemon).await;
    let (in_log, dead_letters): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM projection_dead_letters)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count events and dead letters");
    assert_eq!(
        in_log as u64, committed,
        "the log holds the committed events only"
    );
    assert_eq!(dead_letters, 0, "generated flows are valid");
    // Positions handed out in one order, transactions ending in another.
    let interleaved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT tx_id < lag(tx_id) OVER (ORDER BY global_position) AS back
                                 FROM event_log) t WHERE back",
    )
    .fetch_one(&db.pool)
    .await
    .expect("compare positions and transactions");
    assert!(interleaved > 0, "the writers' transactions interleaved");

    // The counters move right after each commit; wait for them to reach the
    // total, then check they did not overshoot it.
    let client = http();
    let started = Instant::now();
    let counted = loop {
        let text = get_text(&client, &daemon.url("/metrics")).await;
        let counted = metric_sum(&text, "robson_events_applied_total", "")
            + metric_sum(
                &text,
                "robson_events_skipped_total",
                "reason=\"unhandled_type\"",
            );
        if counted >= committed as f64 {
            break counted;
        }
        guard_against_hang(
            started,
            &format!("metrics count {counted} of {committed} events"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        counted, committed as f64,
        "applied + unhandled = committed events"
    );

    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &env).await;
}

/// An event held back by an older open transaction that ends (here, rolls
/// back: no notification) between the poller's read and its look for
/// unread events is read at once, not at the next poll. The poller is
/// paused after every read (fail point `poller-after-read`) so that the
/// rollback lands in that window; the poll interval is 60 s, so only the
/// look after the read can find the event in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn an_event_let_through_between_the_read_and_the_check_is_read_at_once() {
    use crate::support::{event, stream, wait_for_stream};
    let db = TestDb::new().await;
    let env = [
        ("ROBSON_POLL_INTERVAL_MS", "60000"),
        ("FAILPOINTS", "poller-after-read=return(600)"),
    ];
    let mut daemon = Daemon::start(&db.url, &env).await;
    let tenant = uuid::Uuid::new_v4();
    let (account, key) = stream("account");
    let (other_account, other_key) = stream("account");
    let balance = |account: uuid::Uuid, total: &str| {
        serde_json::json!({
            "account_id": account, "asset": "USDT", "free": total, "locked": "0", "total": total
        })
    };
    // Let the daemon's first reads pass.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // An older writer takes its transaction id and stays open.
    let mut older = db.pool.begin().await.expect("begin");
    append_event(
        &mut *older,
        &event(
            tenant,
            &other_key,
            "BALANCE_SAMPLED",
            balance(other_account, "1"),
        ),
    )
    .await
    .expect("the older append");
    // A later one commits: its notification wakes the poller, whose read
    // cannot return the event yet (the older transaction is open).
    append_event(
        &db.pool,
        &event(tenant, &key, "BALANCE_SAMPLED", balance(account, "2")),
    )
    .await
    .expect("the later append");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Inside the pause after that read, the older transaction ends without
    // a notification.
    older.rollback().await.expect("rollback");

    let started = Instant::now();
    wait_for_stream(
        &db.pool,
        &mut daemon,
        &key,
        "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1",
        1_i64,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "projected after {:?}: the event waited for the poll",
        started.elapsed()
    );
    daemon.stop().await;
}
