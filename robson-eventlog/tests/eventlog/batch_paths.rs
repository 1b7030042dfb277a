//! The batch append's two paths (migrations/009): the set-based fast path
//! of `robson_append_batch` and `robson_append_batch_general` (007's
//! function) give the same result, errors included, and leave the same log,
//! on generated batches full of the cases the fast path hands over: repeats
//! of logged events and of earlier events of the call, explicit keys shared
//! across streams, another tenant's stream, right and wrong expected_seq,
//! invalid elements.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use robson_eventlog::testing::TestDb;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::support::sqlstate;

const TENANTS: [Uuid; 2] = [Uuid::from_u128(0xa11ce), Uuid::from_u128(0xb0b)];
const STREAMS: usize = 3;

/// One event of a case: small domains, so that repeats and clashes happen.
#[derive(Debug, Clone)]
struct Ev {
    tenant: usize,
    stream: usize,
    payload: u8,
    expected: Option<i64>,
    key: Option<u8>,
    /// An empty event type: the element is refused (22023).
    bad: bool,
}

fn stream_key(i: usize) -> String {
    format!("order:s{i}")
}

fn batch_event() -> impl Strategy<Value = Ev> {
    (
        0..TENANTS.len(),
        0..STREAMS,
        0_u8..4,
        prop::option::weighted(0.3, 0_i64..4),
        prop::option::weighted(0.2, 0_u8..2),
        prop::bool::weighted(0.04),
    )
        .prop_map(|(tenant, stream, payload, expected, key, bad)| Ev {
            tenant,
            stream,
            payload,
            expected,
            key,
            bad,
        })
}

/// Events already in the log: each stream owned by one tenant, no
/// expected_seq, valid.
fn setup_event() -> impl Strategy<Value = Ev> {
    (0..STREAMS, 0_u8..4, prop::option::weighted(0.2, 0_u8..2)).prop_map(
        |(stream, payload, key)| Ev {
            tenant: stream % TENANTS.len(),
            stream,
            payload,
            expected: None,
            key,
            bad: false,
        },
    )
}

/// One row of a call's result, with the event it names given as
/// (stream, seq) (event ids are random per run).
type Row = (i64, bool, String, i64);

/// Appends `setup` with `append_event`, then `batch` with `function`, in a
/// transaction that is rolled back: the call's result and the log it left.
async fn run(
    conn: &mut PgConnection,
    function: &str,
    setup: &[Ev],
    batch: &[Ev],
) -> (Result<Vec<Row>, (String, String)>, Value) {
    let mut tx = conn.begin().await.expect("begin");
    for e in setup {
        sqlx::query(
            "SELECT * FROM append_event($1, $2, 'ORDER_SUBMITTED', $3::jsonb,
                 p_idempotency_key => $4)",
        )
        .bind(TENANTS[e.tenant])
        .bind(stream_key(e.stream))
        .bind(json!({ "n": e.payload }).to_string())
        .bind(e.key.map(|k| format!("k{k}")))
        .execute(&mut *tx)
        .await
        .expect("setup append");
    }
    let sql = format!(
        "SELECT event_id, seq, global_position, duplicate
           FROM {function}('append_events', '', $1::uuid[], $2::text[], $3::text[],
                $4::text[]::jsonb[], $5::timestamptz[], $6::int8[], $7::uuid[], $8::text[],
                $9::uuid[], $10::uuid[], $11::uuid[], $12::text[], $13::text[])"
    );
    let none_uuid: Vec<Option<Uuid>> = vec![None; batch.len()];
    let none_text: Vec<Option<String>> = vec![None; batch.len()];
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("a time")
        .to_utc();
    // A refused call leaves the log as the setup made it: seen after
    // rolling back to here.
    sqlx::query("SAVEPOINT call")
        .execute(&mut *tx)
        .await
        .expect("savepoint");
    let result: Result<Vec<(Uuid, i64, i64, bool)>, sqlx::Error> = sqlx::query_as(&sql)
        .bind(batch.iter().map(|e| TENANTS[e.tenant]).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|e| stream_key(e.stream))
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|e| if e.bad { "" } else { "ORDER_SUBMITTED" })
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|e| json!({ "n": e.payload }).to_string())
                .collect::<Vec<_>>(),
        )
        .bind(vec![at; batch.len()])
        .bind(batch.iter().map(|e| e.expected).collect::<Vec<_>>())
        .bind(&none_uuid)
        .bind(
            batch
                .iter()
                .map(|e| e.key.map(|k| format!("k{k}")))
                .collect::<Vec<_>>(),
        )
        .bind(&none_uuid)
        .bind(&none_uuid)
        .bind(&none_uuid)
        .bind(&none_text)
        .bind(&none_text)
        .fetch_all(&mut *tx)
        .await;
    let result = match result {
        Err(e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT call")
                .execute(&mut *tx)
                .await
                .expect("rollback to savepoint");
            Err(sqlstate(&e))
        }
        Ok(rows) => {
            let mut out = Vec::with_capacity(rows.len());
            let mut last_new_position = 0;
            for (event_id, seq, position, duplicate) in rows {
                if !duplicate {
                    assert!(
                        position > last_new_position,
                        "{function}: new events' positions increase in input order"
                    );
                    last_new_position = position;
                }
                let (stream, stored_seq): (String, i64) = sqlx::query_as(
                    "SELECT stream_key, seq FROM event_log_keys WHERE event_id = $1",
                )
                .bind(event_id)
                .fetch_one(&mut *tx)
                .await
                .expect("every reported event is in the log");
                out.push((seq, duplicate, stream, stored_seq));
            }
            Ok(out)
        }
    };
    let log: sqlx::types::Json<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_array(
             (SELECT coalesce(jsonb_agg(jsonb_build_array(tenant_id, stream_key, seq, event_type,
                         payload, idempotency_key) ORDER BY stream_key, seq), '[]') FROM event_log),
             (SELECT coalesce(jsonb_agg(jsonb_build_array(idempotency_key, stream_key, seq)
                         ORDER BY idempotency_key), '[]') FROM event_log_keys),
             (SELECT coalesce(jsonb_agg(jsonb_build_array(stream_key, tenant_id, last_seq)
                         ORDER BY stream_key), '[]') FROM event_streams))",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("the log");
    tx.rollback().await.expect("rollback");
    (result, log.0)
}

#[test]
#[ignore = "needs PostgreSQL"]
fn the_fast_path_and_the_general_path_give_the_same_result_and_log() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let db = rt.block_on(TestDb::new());
    // The runner's closure is `Fn`: the connection and tallies sit in cells.
    let conn = std::cell::RefCell::new(
        rt.block_on(PgConnection::connect(&db.url))
            .expect("connect"),
    );
    let strategy = (
        prop::collection::vec(setup_event(), 0..5),
        prop::collection::vec(batch_event(), 1..9),
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let (appended, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = runner.run(&strategy, |(setup, batch)| {
        let mut conn = conn.borrow_mut();
        let fast = rt.block_on(run(&mut conn, "robson_append_batch", &setup, &batch));
        let general = rt.block_on(run(
            &mut conn,
            "robson_append_batch_general",
            &setup,
            &batch,
        ));
        let tally = if fast.0.is_ok() { &appended } else { &refused };
        tally.set(tally.get() + 1);
        prop_assert_eq!(&fast.0, &general.0, "result");
        prop_assert_eq!(&fast.1, &general.1, "log");
        Ok::<(), TestCaseError>(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Both kinds of outcome were compared, not only one.
    let (appended, refused) = (appended.get(), refused.get());
    assert!(
        appended > 30 && refused > 30,
        "{appended} appended, {refused} refused"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn many_batches_in_one_transaction_each_see_the_ones_before() {
    let db = TestDb::new().await;
    let mut tx = db.pool.begin().await.expect("begin");
    let stream = format!("order:{}", Uuid::new_v4());
    for round in 0..100_i64 {
        // The second event repeats the first of the previous round: the
        // fast path hands it over, the first event still gets its seq.
        let events = json!([
            { "tenant_id": TENANTS[0], "stream_key": stream, "event_type": "T",
              "payload": { "round": round }, "expected_seq": round },
            { "tenant_id": TENANTS[0], "stream_key": stream, "event_type": "T",
              "payload": { "round": (round - 1).max(0) } },
        ]);
        let rows: Vec<(i64, bool)> =
            sqlx::query_as("SELECT seq, duplicate FROM append_events($1::jsonb)")
                .bind(events.to_string())
                .fetch_all(&mut *tx)
                .await
                .expect("append_events");
        assert_eq!(rows, vec![(round + 1, false), (round.max(1), true)]);
    }
    tx.commit().await.expect("commit");
    let heads: i64 = sqlx::query_scalar("SELECT last_seq FROM event_streams WHERE stream_key = $1")
        .bind(&stream)
        .fetch_one(&db.pool)
        .await
        .expect("head");
    assert_eq!(heads, 100);
}
