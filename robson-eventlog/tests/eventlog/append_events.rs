//! `append_events(p_events jsonb)` (migrations/007): many events in one
//! call, the same result as one `append_event` call per event in order, the
//! same rules per event, and a refusal that names the element and the key.

use std::sync::Arc;

use robson_eventlog::testing::TestDb;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{count_rows, order_stream, sqlstate, table_image, SqlOutcome};

/// Calls `append_events` with `events` (a JSON array).
async fn append_events<'c>(
    executor: impl PgExecutor<'c>,
    events: &Value,
) -> Result<Vec<SqlOutcome>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM append_events($1::jsonb)")
        .bind(events.to_string())
        .fetch_all(executor)
        .await
}

/// The same event through `append_event`, every key of the JSON object
/// passed as the argument of that name.
async fn append_one(pool: &PgPool, e: &Value) -> Result<SqlOutcome, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM append_event(
             p_tenant_id => ($1::jsonb ->> 'tenant_id')::uuid,
             p_stream_key => $1::jsonb ->> 'stream_key',
             p_event_type => $1::jsonb ->> 'event_type',
             p_payload => $1::jsonb -> 'payload',
             p_occurred_at => ($1::jsonb ->> 'occurred_at')::timestamptz,
             p_expected_seq => ($1::jsonb ->> 'expected_seq')::bigint,
             p_command_id => ($1::jsonb ->> 'command_id')::uuid,
             p_idempotency_key => $1::jsonb ->> 'idempotency_key',
             p_actor_type => $1::jsonb ->> 'actor_type',
             p_actor_id => $1::jsonb ->> 'actor_id')",
    )
    .bind(e.to_string())
    .fetch_one(pool)
    .await
}

fn ev(tenant: Uuid, stream: &str, payload: Value) -> Value {
    json!({
        "tenant_id": tenant, "stream_key": stream, "event_type": "ORDER_SUBMITTED",
        "payload": payload, "occurred_at": "2026-03-01T12:00:00Z",
    })
}

fn with(mut e: Value, key: &str, value: Value) -> Value {
    e[key] = value;
    e
}

/// Everything of the log but what is random or time-bound (ids, positions,
/// transaction ids, ingestion time).
async fn log_content(pool: &PgPool) -> (Value, Value, Value) {
    let q = |sql: &'static str| async move {
        sqlx::query_scalar::<_, sqlx::types::Json<Value>>(sql)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .0
    };
    (
        q("SELECT coalesce(jsonb_agg(jsonb_build_array(tenant_id, stream_key, seq, event_type, payload,
                      occurred_at, idempotency_key, command_id, actor_type, actor_id)
                      ORDER BY stream_key, seq), '[]') FROM event_log")
        .await,
        q("SELECT coalesce(jsonb_agg(jsonb_build_array(idempotency_key, stream_key, seq)
                      ORDER BY idempotency_key), '[]') FROM event_log_keys")
        .await,
        q("SELECT coalesce(jsonb_agg(jsonb_build_array(stream_key, tenant_id, last_seq)
                      ORDER BY stream_key), '[]') FROM event_streams")
        .await,
    )
}

async fn log_image(pool: &PgPool) -> (Value, Value, Value) {
    (
        table_image(pool, "event_log").await,
        table_image(pool, "event_log_keys").await,
        table_image(pool, "event_streams").await,
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn one_call_equals_one_append_event_per_event_in_order() {
    let (one_by_one, batched) = (TestDb::new().await, TestDb::new().await);
    let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
    let (s1, s2, s3) = (order_stream(), order_stream(), order_stream());
    let before = [
        ev(t1, &s1, json!({"n": 0})),
        with(
            ev(t2, &s3, json!({"n": 0})),
            "idempotency_key",
            json!("k-0"),
        ),
    ];
    let call = vec![
        with(ev(t1, &s1, json!({"n": 1})), "expected_seq", json!(1)),
        ev(t1, &s2, json!({"n": 1, "sent_at": "a"})),
        // A repeat of an event from before the call (its volatile key differs).
        ev(t1, &s1, json!({"n": 0, "submitted_at": "b"})),
        with(ev(t1, &s2, json!({"n": 2})), "expected_seq", json!(1)),
        // A repeat of an earlier event of the call.
        ev(t1, &s2, json!({"n": 1, "sent_at": "c"})),
        with(
            ev(t1, &s1, json!({"n": 3})),
            "command_id",
            json!(Uuid::new_v4()),
        ),
        // An explicit key, and one given before the call.
        with(
            ev(t2, &s3, json!({"n": 4})),
            "idempotency_key",
            json!("k-1"),
        ),
        with(
            ev(t2, &s3, json!({"n": 5})),
            "idempotency_key",
            json!("k-0"),
        ),
        with(
            ev(t2, &s3, json!({"n": 6})),
            "actor_type",
            json!("Exchange"),
        ),
    ];
    let mut singles = Vec::new();
    for e in before.iter().chain(&call) {
        singles.push(append_one(&one_by_one.pool, e).await.expect("append_event"));
    }
    for e in &before {
        append_one(&batched.pool, e).await.expect("append_event");
    }
    let outcomes = append_events(&batched.pool, &Value::Array(call.clone()))
        .await
        .expect("append_events");
    let singles = &singles[before.len()..];
    let shape =
        |o: &[SqlOutcome]| -> Vec<(i64, bool)> { o.iter().map(|o| (o.seq, o.duplicate)).collect() };
    assert_eq!(shape(&outcomes), shape(singles));
    assert_eq!(
        shape(&outcomes),
        [
            (2, false),
            (1, false),
            (1, true),
            (2, false),
            (1, true),
            (3, false),
            (2, false),
            (1, true),
            (3, false)
        ]
    );
    assert_eq!(outcomes[4].event_id, outcomes[1].event_id);
    assert!(outcomes
        .iter()
        .filter(|o| !o.duplicate)
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    assert_eq!(
        log_content(&batched.pool).await,
        log_content(&one_by_one.pool).await,
        "the same log either way"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn duplicates_within_one_call_and_across_calls_return_the_original() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (s1, s2) = (order_stream(), order_stream());
    let (a, b, c) = (
        ev(tenant, &s1, json!({"x": "a"})),
        ev(tenant, &s2, json!({"x": "b"})),
        ev(tenant, &s1, json!({"x": "c"})),
    );
    let first = append_events(&db.pool, &json!([a, b, a, a]))
        .await
        .expect("first call");
    assert_eq!(
        first.iter().map(|o| o.duplicate).collect::<Vec<_>>(),
        [false, false, true, true]
    );
    assert_eq!(
        first[2],
        SqlOutcome {
            duplicate: true,
            ..first[0].clone()
        }
    );
    assert_eq!(first[3], first[2]);

    let second = append_events(&db.pool, &json!([b, c, a]))
        .await
        .expect("second call");
    assert_eq!(
        second[0],
        SqlOutcome {
            duplicate: true,
            ..first[1].clone()
        }
    );
    assert_eq!((second[1].seq, second[1].duplicate), (2, false));
    assert_eq!(
        second[2],
        SqlOutcome {
            duplicate: true,
            ..first[0].clone()
        }
    );
    assert_eq!(count_rows(&db.pool, "event_log").await, 3);

    // A call of repeats only writes nothing, not even a stream.
    let fresh = order_stream();
    let explicit = with(
        ev(tenant, &s1, json!({"x": "k"})),
        "idempotency_key",
        json!("given"),
    );
    append_events(&db.pool, &json!([explicit]))
        .await
        .expect("explicit key");
    let before = log_image(&db.pool).await;
    let again = with(
        ev(tenant, &fresh, json!({"x": "other"})),
        "idempotency_key",
        json!("given"),
    );
    let repeat = append_events(&db.pool, &json!([again, a]))
        .await
        .expect("repeats");
    assert!(repeat.iter().all(|o| o.duplicate));
    assert_eq!(log_image(&db.pool).await, before, "a repeat writes nothing");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn expected_seq_holds_per_event_including_two_events_of_one_stream_in_one_call() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let stream = order_stream();
    let at = |n: i64, expected: i64| {
        with(
            ev(tenant, &stream, json!({ "n": n })),
            "expected_seq",
            json!(expected),
        )
    };
    let ok = append_events(&db.pool, &json!([at(1, 0), at(2, 1), at(3, 2)]))
        .await
        .expect("expected_seq 0, 1, 2 in one call");
    assert_eq!(ok.iter().map(|o| o.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let before = log_image(&db.pool).await;

    // The second event expects the head before the first one: refused.
    let err = append_events(&db.pool, &json!([at(4, 3), at(5, 3)]))
        .await
        .expect_err("a stale expected_seq in the call");
    let (code, message) = sqlstate(&err);
    assert_eq!(code, "40001", "{message}");
    assert_eq!(
        message,
        format!(
            "append_events: element 1: concurrent modification of stream {stream}: expected seq 3, actual 4"
        )
    );
    let detail = err
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .and_then(|d| d.detail().map(str::to_owned));
    assert_eq!(detail.as_deref(), Some("expected=3 actual=4"));
    // expected_seq 0 on an existing stream, in a later element.
    let err = append_events(
        &db.pool,
        &json!([ev(tenant, &order_stream(), json!({})), at(6, 0)]),
    )
    .await
    .expect_err("the stream exists");
    assert_eq!(sqlstate(&err).0, "40001");
    assert_eq!(log_image(&db.pool).await, before, "nothing written");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn another_tenants_stream_is_refused_whole_naming_the_element_and_stream() {
    let db = TestDb::new().await;
    let (owner, intruder) = (Uuid::new_v4(), Uuid::new_v4());
    let foreign = order_stream();
    append_events(&db.pool, &json!([ev(owner, &foreign, json!({"n": 1}))]))
        .await
        .expect("owner");
    let before = log_image(&db.pool).await;
    for (call, element) in [
        (
            json!([
                ev(intruder, &order_stream(), json!({})),
                ev(intruder, &foreign, json!({"n": 2}))
            ]),
            1,
        ),
        // The owner's exact payload: still another tenant's stream.
        (json!([ev(intruder, &foreign, json!({"n": 1}))]), 0),
        // A new stream taken by the first event of the call.
        {
            let s = order_stream();
            (
                json!([ev(owner, &s, json!({})), ev(intruder, &s, json!({}))]),
                1,
            )
        },
    ] {
        let err = append_events(&db.pool, &call)
            .await
            .expect_err("another tenant's stream");
        let (code, message) = sqlstate(&err);
        assert_eq!(code, "42501", "{message}");
        assert!(
            message.starts_with(&format!("append_events: element {element}: stream "))
                && message.ends_with(" belongs to another tenant"),
            "{message}"
        );
    }
    assert_eq!(log_image(&db.pool).await, before, "nothing written");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn hostile_input_is_refused_whole_naming_the_element_and_the_key() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let good = ev(tenant, &order_stream(), json!({"n": 1}));
    append_events(&db.pool, &json!([good.clone()]))
        .await
        .expect("a good call");
    let before = log_image(&db.pool).await;
    let deep: Value = serde_json::from_str(&crate::hostile::nested(65)).expect("65 levels");
    let base = ev(tenant, &order_stream(), json!({"n": 2}));
    let without = |key: &str| {
        let mut e = base.clone();
        e.as_object_mut().expect("object").remove(key);
        e
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"events": []}),
            "22023",
            "append_events: p_events must be a JSON array",
        ),
        (
            json!([good, 5]),
            "22023",
            "element 1: must be a JSON object",
        ),
        (
            json!([with(base.clone(), "colour", json!("red"))]),
            "22023",
            "element 0: has an unknown key \"colour\"",
        ),
        (
            json!([with(without("stream_key"), "p_stream_key", json!("s:1"))]),
            "22023",
            "element 0: has an unknown key \"p_stream_key\"",
        ),
        (
            json!([with(base.clone(), "stream_key", json!(7))]),
            "22023",
            "element 0: stream_key must be a JSON string",
        ),
        (
            json!([with(base.clone(), "payload", json!([1]))]),
            "22023",
            "element 0: payload must be a JSON object",
        ),
        (
            json!([with(base.clone(), "expected_seq", json!("1"))]),
            "22023",
            "element 0: expected_seq must be a JSON number",
        ),
        (
            json!([with(base.clone(), "expected_seq", json!(1.5))]),
            "22023",
            "element 0: expected_seq is not a valid bigint",
        ),
        (
            json!([with(base.clone(), "expected_seq", json!(-1))]),
            "22023",
            "element 0: expected_seq must be >= 0",
        ),
        (
            json!([with(base.clone(), "tenant_id", json!("not-a-uuid"))]),
            "22023",
            "element 0: tenant_id is not a valid uuid",
        ),
        (
            json!([
                good,
                with(base.clone(), "occurred_at", json!("2026-02-30T00:00:00Z"))
            ]),
            "22023",
            "element 1: occurred_at is not a valid timestamptz",
        ),
        (
            json!([with(base.clone(), "stream_key", json!("order:1\nFORGED"))]),
            "22023",
            "element 0: stream_key must not contain control characters",
        ),
        (
            json!([with(base.clone(), "stream_key", json!(""))]),
            "22023",
            "element 0: stream_key must be 1-200 characters",
        ),
        (
            json!([with(base.clone(), "event_type", json!("T".repeat(101)))]),
            "22023",
            "element 0: event_type must be 1-100 characters",
        ),
        (
            json!([with(base.clone(), "payload", deep)]),
            "22023",
            "element 0: payload nests deeper than 64 levels",
        ),
        (
            json!([with(base.clone(), "idempotency_key", json!(""))]),
            "22023",
            "element 0: idempotency_key must not be empty",
        ),
        (
            json!([with(base.clone(), "actor_type", json!("Robot"))]),
            "22023",
            "element 0: actor_type must be one of",
        ),
        (
            json!([good, without("tenant_id")]),
            "22004",
            "element 1: tenant_id is required",
        ),
        (
            json!([with(base.clone(), "payload", Value::Null)]),
            "22004",
            "element 0: payload is required",
        ),
        (
            json!([with(base.clone(), "occurred_at", Value::Null)]),
            "22004",
            "element 0: occurred_at is required",
        ),
    ];
    for (call, code, wanted) in &cases {
        let err = append_events(&db.pool, call)
            .await
            .expect_err(&format!("{call} must be refused"));
        let (got, message) = sqlstate(&err);
        assert_eq!(&got, code, "{message}");
        assert!(
            message.contains(wanted),
            "{message:?} should contain {wanted:?}"
        );
    }
    let err = sqlx::query("SELECT * FROM append_events(NULL)")
        .execute(&db.pool)
        .await
        .expect_err("NULL");
    assert_eq!(sqlstate(&err).0, "22004");
    assert!(append_events(&db.pool, &json!([]))
        .await
        .expect("empty")
        .is_empty());
    assert_eq!(log_image(&db.pool).await, before, "nothing written");
    // Absent keys take append_event's defaults.
    let minimal = json!([{"tenant_id": tenant, "stream_key": order_stream(),
                          "event_type": "T", "payload": {}}]);
    let o = append_events(&db.pool, &minimal).await.expect("defaults");
    assert_eq!((o[0].seq, o[0].duplicate), (1, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn racing_calls_leave_one_winner_per_head_and_one_owner_per_stream() {
    const WRITERS: usize = 8;
    const ROUNDS: i64 = 6;
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let stream = order_stream();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let (url, stream, barrier) = (db.url.clone(), stream.clone(), barrier.clone());
        tasks.spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("connect");
            let (mut wins, mut conflicts, mut owned, mut refused) = (0, 0, 0, 0);
            for round in 0..ROUNDS {
                // Every writer expects the same head; two events of the stream each.
                barrier.wait().await;
                let head = round * 2;
                let call = json!([
                    with(
                        ev(tenant, &stream, json!({"w": writer, "r": round})),
                        "expected_seq",
                        json!(head)
                    ),
                    ev(
                        tenant,
                        &stream,
                        json!({"w": writer, "r": round, "second": true})
                    ),
                ]);
                match append_events(&mut conn, &call).await {
                    Ok(o) => {
                        assert_eq!((o[0].seq, o[1].seq), (head + 1, head + 2));
                        wins += 1;
                    }
                    Err(e) => {
                        let (code, message) = sqlstate(&e);
                        assert_eq!(code, "40001", "{message}");
                        assert!(
                            message.ends_with(&format!("expected seq {head}, actual {}", head + 2)),
                            "{message}"
                        );
                        conflicts += 1;
                    }
                }
                barrier.wait().await;
                // Every writer, as another tenant, claims the same new stream.
                let contested = format!("order:contested:{round}");
                let mine = Uuid::from_u128(writer as u128 + 1);
                match append_events(
                    &mut conn,
                    &json!([ev(mine, &contested, json!({"w": writer}))]),
                )
                .await
                {
                    Ok(_) => owned += 1,
                    Err(e) => {
                        assert_eq!(sqlstate(&e).0, "42501");
                        refused += 1;
                    }
                }
            }
            (wins, conflicts, owned, refused)
        });
    }
    let tallies: Vec<(i64, i64, i64, i64)> = tasks.join_all().await;
    let sum = |f: fn(&(i64, i64, i64, i64)) -> i64| tallies.iter().map(f).sum::<i64>();
    assert_eq!(sum(|t| t.0), ROUNDS, "one winner per round");
    assert_eq!(sum(|t| t.1), ROUNDS * (WRITERS as i64 - 1));
    assert_eq!(sum(|t| t.2), ROUNDS, "one owner per contested stream");
    assert_eq!(sum(|t| t.3), ROUNDS * (WRITERS as i64 - 1));
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM event_log WHERE stream_key = $1 ORDER BY seq")
            .bind(&stream)
            .fetch_all(&db.pool)
            .await
            .expect("seqs");
    assert_eq!(
        seqs,
        (1..=ROUNDS * 2).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}
