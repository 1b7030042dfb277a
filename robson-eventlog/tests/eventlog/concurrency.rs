//! Optimistic concurrency: `expected_seq`, from Rust and from plain SQL.

use std::sync::Arc;

use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_event, read_stream, AppendError};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{count_rows, event, last_seq, order_stream, sql_append, sqlstate, SqlArgs};

const WRITERS: usize = 16;

/// What one writer saw: the seqs it won and the conflicts it got.
#[derive(Debug, Default)]
struct Tally {
    wins: Vec<i64>,
    /// (head the writer read, expected, actual) of each refused append.
    conflicts: Vec<(i64, i64, i64)>,
}

async fn try_append(
    conn: &mut PgConnection,
    tenant: Uuid,
    stream: &str,
    writer: usize,
    head: i64,
    tally: &mut Tally,
) {
    // A payload of its own, so that no append is taken for a retry of another.
    let mut e = event(tenant, stream, json!({ "writer": writer, "head": head }));
    e.expected_seq = Some(head);
    match append_event(&mut *conn, &e).await {
        Ok(outcome) => {
            assert!(!outcome.duplicate, "writer {writer}: unexpected duplicate");
            assert_eq!(
                outcome.seq,
                head + 1,
                "writer {writer}: seq after head {head}"
            );
            tally.wins.push(outcome.seq);
        }
        Err(AppendError::ConcurrentModification { expected, actual }) => {
            tally.conflicts.push((head, expected, actual));
        }
        Err(other) => panic!("writer {writer}: unexpected error {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn racing_appenders_in_lockstep_leave_one_winner_per_seq_and_exact_conflicts() {
    const ROUNDS: i64 = 12;
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let stream = order_stream();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let (url, stream, barrier) = (db.url.clone(), stream.clone(), barrier.clone());
        tasks.spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("connect a writer");
            let mut tally = Tally::default();
            for _ in 0..ROUNDS {
                // Every writer reads the same head, then all append on it.
                let head = last_seq(&mut conn, &stream).await;
                barrier.wait().await;
                try_append(&mut conn, tenant, &stream, writer, head, &mut tally).await;
                barrier.wait().await;
            }
            tally
        });
    }
    let tallies: Vec<Tally> = tasks.join_all().await;

    let mut wins: Vec<i64> = tallies
        .iter()
        .flat_map(|t| t.wins.iter().copied())
        .collect();
    wins.sort_unstable();
    assert_eq!(wins, (1..=ROUNDS).collect::<Vec<_>>(), "one winner per seq");
    let conflicts: Vec<_> = tallies
        .iter()
        .flat_map(|t| t.conflicts.iter().copied())
        .collect();
    assert_eq!(conflicts.len(), (WRITERS - 1) * ROUNDS as usize);
    for (head, expected, actual) in conflicts {
        assert_eq!(
            (expected, actual),
            (head, head + 1),
            "conflict reported on head {head}"
        );
    }
    assert_stream_is_gapless(&db, &stream, ROUNDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn sixteen_free_running_appenders_fill_every_seq_exactly_once() {
    const TARGET: i64 = 200;
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let stream = order_stream();
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let (url, stream) = (db.url.clone(), stream.clone());
        tasks.spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("connect a writer");
            let mut tally = Tally::default();
            loop {
                let head = last_seq(&mut conn, &stream).await;
                if head >= TARGET {
                    return tally;
                }
                try_append(&mut conn, tenant, &stream, writer, head, &mut tally).await;
            }
        });
    }
    let tallies: Vec<Tally> = tasks.join_all().await;

    let mut wins: Vec<i64> = tallies
        .iter()
        .flat_map(|t| t.wins.iter().copied())
        .collect();
    wins.sort_unstable();
    assert_eq!(wins, (1..=TARGET).collect::<Vec<_>>(), "one winner per seq");
    for (head, expected, actual) in tallies.iter().flat_map(|t| t.conflicts.iter().copied()) {
        assert_eq!(expected, head);
        // The stream only grows: a refused append saw a later head, never past the end.
        assert!(
            actual > head && actual <= TARGET,
            "actual {actual} after head {head}"
        );
    }
    assert_stream_is_gapless(&db, &stream, TARGET).await;
}

async fn assert_stream_is_gapless(db: &TestDb, stream: &str, n: i64) {
    let events = read_stream(&db.pool, stream, 0, n + 10)
        .await
        .expect("read the stream");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "seqs 1..{n}, no gaps, no duplicates"
    );
    assert_eq!(last_seq(&db.pool, stream).await, n);
    assert_eq!(count_rows(&db.pool, "event_log").await, n);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_stale_expected_seq_through_sql_raises_40001_naming_expected_and_actual() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let stream = order_stream();
    for n in 0..2 {
        sql_append(
            &db.pool,
            tenant,
            &stream,
            &format!(r#"{{"n": {n}}}"#),
            SqlArgs::default(),
        )
        .await
        .expect("append");
    }
    let args = SqlArgs {
        expected_seq: Some(5),
        ..SqlArgs::default()
    };
    let err = sql_append(&db.pool, tenant, &stream, r#"{"n": 2}"#, args)
        .await
        .expect_err("a stale expected_seq must fail");
    let (code, message) = sqlstate(&err);
    assert_eq!(code, "40001");
    assert!(
        message.contains("expected seq 5") && message.contains("actual 2"),
        "{message}"
    );
    assert_eq!(count_rows(&db.pool, "event_log").await, 2);

    let args = SqlArgs {
        expected_seq: Some(2),
        ..SqlArgs::default()
    };
    let ok = sql_append(&db.pool, tenant, &stream, r#"{"n": 2}"#, args)
        .await
        .expect("append on the head");
    assert_eq!(ok.seq, 3);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn expected_seq_zero_means_the_stream_must_not_exist_yet() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();

    // SQL
    let stream = order_stream();
    let args = || SqlArgs {
        expected_seq: Some(0),
        ..SqlArgs::default()
    };
    let first = sql_append(&db.pool, tenant, &stream, r#"{"n": 1}"#, args())
        .await
        .expect("new stream");
    assert_eq!((first.seq, first.duplicate), (1, false));
    let err = sql_append(&db.pool, tenant, &stream, r#"{"n": 2}"#, args())
        .await
        .expect_err("the stream exists");
    let (code, message) = sqlstate(&err);
    assert_eq!(code, "40001");
    assert!(
        message.contains("expected seq 0") && message.contains("actual 1"),
        "{message}"
    );

    // Rust
    let stream = order_stream();
    let mut e = event(tenant, &stream, json!({"n": 1}));
    e.expected_seq = Some(0);
    assert_eq!(append_event(&db.pool, &e).await.expect("new stream").seq, 1);
    let mut e = event(tenant, &stream, json!({"n": 2}));
    e.expected_seq = Some(0);
    match append_event(&db.pool, &e).await {
        Err(AppendError::ConcurrentModification {
            expected: 0,
            actual: 1,
        }) => {}
        other => panic!("expected ConcurrentModification {{ 0, 1 }}, got {other:?}"),
    }
    assert_eq!(count_rows(&db.pool, "event_log").await, 2);
}
