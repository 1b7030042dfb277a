//! `apply_batch` against PostgreSQL: exactly once, per-stream order with
//! predecessors read from the log, the caller's transaction, concurrent
//! appliers, and poison isolation when the database refuses a write; and
//! `try_apply_batch`, the same without savepoints, and the caller's write
//! it makes in its write statement (`try_apply_batch_with`); several
//! partitions' batches applied as one (`try_apply_groups_with`).

use robson_eventlog::EventEnvelope;
use robson_projector::tables::PgQuery;
use robson_projector::{
    apply_batch, apply_event, try_apply_batch, try_apply_batch_with, try_apply_groups_with,
    AlsoWrite, Attempt, ErrorClass, ErrorKind, GroupsAttempt, PoisonPolicy, ProjectionError,
};
use serde_json::json;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::support::{self, TestDb};

const TENANT: Uuid = Uuid::from_u128(0x9755_d4c1_3a90_4931_8d44_7e35_b8b6_d8fe);
const ACCOUNT: &str = "619699cf-e198-4ad9-b06c-144a025b413f";

/// An order stream: submit, ack, two fills; and an account stream: balances.
async fn seed(pool: &PgPool) -> Vec<EventEnvelope> {
    let order = "7bd55800-1dd3-4048-8db4-255d74c6224f";
    let stream = format!("order:{order}");
    let events = [
        (
            "ORDER_SUBMITTED",
            json!({"order_id": order, "account_id": ACCOUNT, "client_order_id": "c1",
            "symbol": "SOLUSDT", "side": "buy", "order_type": "limit", "quantity": "0.36", "price": "141.386"}),
        ),
        (
            "ORDER_ACKED",
            json!({"order_id": order, "exchange_order_id": "65712145441"}),
        ),
        (
            "FILL_RECEIVED",
            json!({"order_id": order, "exchange_trade_id": "T1", "fill_price": "139.775",
            "fill_quantity": "0.1", "fee": "0.0139775", "fee_asset": "USDT"}),
        ),
        (
            "FILL_RECEIVED",
            json!({"order_id": order, "exchange_trade_id": "T2", "fill_price": "140",
            "fill_quantity": "0.26", "fee": "0.0364", "fee_asset": "USDT"}),
        ),
    ];
    for (i, (event_type, payload)) in events.into_iter().enumerate() {
        support::append(
            pool,
            &support::event(TENANT, &stream, event_type, payload, i as i64 * 10),
        )
        .await;
    }
    for (i, asset) in ["BTC", "ETH", "SOL"].into_iter().enumerate() {
        let payload =
            json!({"account_id": ACCOUNT, "asset": asset, "free": "1.5", "locked": "0.5"});
        support::append(
            pool,
            &support::event(
                TENANT,
                &format!("account:{ACCOUNT}"),
                "BALANCE_SAMPLED",
                payload,
                100 + i as i64,
            ),
        )
        .await;
    }
    support::committed(pool).await
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn redelivering_an_applied_batch_changes_nothing() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let first = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!(first.applied, 7);
    let before = support::state(&db.pool).await;
    let again = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!((again.applied, again.already_applied), (0, 7));
    assert_eq!(support::state(&db.pool).await, before);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn redelivering_a_stream_parked_on_its_first_event_holds_it_without_a_second_dead_letter() {
    let db = TestDb::new().await;
    // An ack of an order nobody submitted: seq 1 fails, seq 2 waits behind it.
    let stream = "order:fe0c4a47-8f0a-4c53-9a43-0b3c5a4e2d11";
    let order = "fe0c4a47-8f0a-4c53-9a43-0b3c5a4e2d11";
    let events = [
        (
            "ORDER_ACKED",
            json!({"order_id": order, "exchange_order_id": "E1"}),
        ),
        ("ORDER_CANCELED", json!({"order_id": order})),
    ];
    for (i, (event_type, payload)) in events.into_iter().enumerate() {
        support::append(
            &db.pool,
            &support::event(TENANT, stream, event_type, payload, i as i64),
        )
        .await;
    }
    let events = support::committed(&db.pool).await;
    let first = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!((first.dead_lettered.len(), first.held), (1, 1), "{first:?}");
    let before = support::state(&db.pool).await;
    let again = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!(
        (again.applied, again.dead_lettered.len(), again.held),
        (0, 0, 2)
    );
    assert_eq!(support::state(&db.pool).await, before);
    let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(letters, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_later_event_brings_its_predecessors_from_the_log() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let last_fill = events.iter().find(|e| e.seq == 4).expect("fill #4").clone();
    let outcome = support::apply_in_transaction(&db.pool, &[last_fill], PoisonPolicy::Park).await;
    assert_eq!(outcome.applied, 4);
    let status: String = sqlx::query_scalar("SELECT status FROM orders_current")
        .fetch_one(&db.pool)
        .await
        .expect("order");
    assert_eq!(status, "filled");
    let rest = support::project(&db.pool, &events, 2, PoisonPolicy::Park).await;
    assert_eq!((rest.applied, rest.already_applied), (3, 4));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn unreadable_predecessors_are_a_transient_error() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let mut phantom = events[3].clone();
    phantom.seq = 9;
    phantom.event_id = Uuid::from_u128(9);
    let mut conn = db.pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    let err = apply_batch(&mut tx, &[phantom], PoisonPolicy::Park)
        .await
        .expect_err("seqs 5-8 do not exist");
    assert!(
        matches!(err, ProjectionError::MissingPredecessors { .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_batch_is_part_of_the_callers_transaction() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let mut tx = db.pool.begin().await.expect("begin");
    let outcome = apply_batch(&mut tx, &events, PoisonPolicy::Park)
        .await
        .expect("apply");
    assert_eq!(outcome.applied, 7);
    tx.rollback().await.expect("rollback");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders_current")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    let progress: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_stream_progress")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!((rows, progress), (0, 0));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn outside_a_transaction_a_batch_commits_on_its_own() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let outcome = apply_event(&mut conn, &events[0], PoisonPolicy::Park)
        .await
        .expect("apply");
    assert_eq!(outcome.applied, 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders_current")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(rows, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn concurrent_appliers_of_one_stream_apply_each_event_once() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let mut appliers = Vec::new();
    for _ in 0..4 {
        let (pool, events) = (db.pool.clone(), events.clone());
        appliers.push(tokio::spawn(async move {
            support::project(&pool, &events, 3, PoisonPolicy::Park).await
        }));
    }
    let mut applied = 0;
    let mut already = 0;
    for applier in appliers {
        let outcome = applier.await.expect("applier");
        applied += outcome.applied;
        already += outcome.already_applied;
    }
    assert_eq!((applied, already), (7, 21));
    let (filled, fills): (String, i64) = sqlx::query_as(
        "SELECT filled_quantity::text, (SELECT count(*) FROM fills) FROM orders_current",
    )
    .fetch_one(&db.pool)
    .await
    .expect("order");
    assert_eq!((filled.as_str(), fills), ("0.36000000", 2));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_write_the_database_refuses_dead_letters_only_its_event() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    // A rule the core does not know: the database refuses SOL balances.
    sqlx::raw_sql("ALTER TABLE balances_current ADD CONSTRAINT test_no_sol CHECK (asset <> 'SOL')")
        .execute(&db.pool)
        .await
        .expect("add constraint");
    let outcome = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!(outcome.applied, 6);
    assert_eq!(outcome.dead_lettered.len(), 1);
    let letter = &outcome.dead_lettered[0];
    assert_eq!(
        (letter.seq, letter.error_kind),
        (3, ErrorKind::InvariantViolation)
    );
    assert_eq!(outcome.newly_parked, vec![format!("account:{ACCOUNT}")]);
    let balances: i64 = sqlx::query_scalar("SELECT count(*) FROM balances_current")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders_current")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!((balances, orders), (2, 1));
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_lock_timeout_is_returned_as_a_transient_error() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    support::apply_in_transaction(&db.pool, &events[..1], PoisonPolicy::Park).await;
    let mut holder = db.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM projection_stream_progress FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("lock");
    let mut tx = db.pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL lock_timeout = '100ms'")
        .execute(&mut *tx)
        .await
        .expect("set");
    let err = apply_batch(&mut tx, &events, PoisonPolicy::Park)
        .await
        .expect_err("lock timeout");
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
}

/// Empties the projection tables and the bookkeeping (the log stays).
async fn forget_projections(pool: &PgPool) {
    let names: Vec<&str> = robson_projector::tables::ALL
        .iter()
        .map(|t| t.name)
        .collect();
    sqlx::raw_sql(&format!("TRUNCATE {}", names.join(", ")))
        .execute(pool)
        .await
        .expect("truncate");
}

/// `try_apply_batch` in a transaction of its own, committed when applied.
async fn try_in_transaction(pool: &PgPool, events: &[EventEnvelope]) -> Attempt {
    let mut tx = pool.begin().await.expect("begin");
    let attempt = try_apply_batch(&mut tx, events, PoisonPolicy::Park)
        .await
        .expect("no transient error here");
    match attempt {
        Attempt::Applied(_) => tx.commit().await.expect("commit"),
        Attempt::NeedsCare => tx.rollback().await.expect("rollback"),
    }
    attempt
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn without_savepoints_a_batch_writes_what_apply_batch_writes() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    let Attempt::Applied(fast) = try_in_transaction(&db.pool, &events).await else {
        panic!("a first delivery needs no care");
    };
    let written = support::state(&db.pool).await;
    forget_projections(&db.pool).await;
    let careful = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!(fast, careful);
    assert_eq!(written, support::state(&db.pool).await);
    // A later event of a stream already applied: its row is locked, not
    // presumed new.
    let later = support::event(
        TENANT,
        &format!("account:{ACCOUNT}"),
        "BALANCE_SAMPLED",
        json!({"account_id": ACCOUNT, "asset": "BTC", "free": "2", "locked": "0"}),
        200,
    );
    support::append(&db.pool, &later).await;
    let log = support::committed(&db.pool).await;
    let Attempt::Applied(outcome) = try_in_transaction(&db.pool, &log[log.len() - 1..]).await
    else {
        panic!("the next event of a stream needs no care");
    };
    assert_eq!(outcome.applied, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_redelivered_first_event_or_a_refused_write_needs_the_careful_path() {
    let db = TestDb::new().await;
    let events = seed(&db.pool).await;
    support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    let applied = support::state(&db.pool).await;
    // Seq 1 of both streams again: presumed new, but their rows exist.
    assert!(matches!(
        try_in_transaction(&db.pool, &events).await,
        Attempt::NeedsCare
    ));
    assert_eq!(support::state(&db.pool).await, applied, "rolled back");
    let again = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!((again.applied, again.already_applied), (0, 7));

    forget_projections(&db.pool).await;
    sqlx::raw_sql("ALTER TABLE balances_current ADD CONSTRAINT test_no_sol CHECK (asset <> 'SOL')")
        .execute(&db.pool)
        .await
        .expect("add constraint");
    assert!(matches!(
        try_in_transaction(&db.pool, &events).await,
        Attempt::NeedsCare
    ));
    let careful = support::apply_in_transaction(&db.pool, &events, PoisonPolicy::Park).await;
    assert_eq!((careful.applied, careful.dead_lettered.len()), (6, 1));
}

/// Counts applied events in a row of `test_also`, as the daemon's
/// checkpoint does in `projection_checkpoints`.
struct CountApplied(i32);

impl AlsoWrite for CountApplied {
    fn sql(&self) -> &'static str {
        "UPDATE test_also SET applied = applied + $2::int8, moves = moves + 1
          WHERE id = $1::int4 RETURNING id"
    }

    fn params(&self) -> usize {
        2
    }

    fn bind<'q>(&self, query: PgQuery<'q>, applied: &[u64]) -> PgQuery<'q> {
        assert_eq!(applied.len(), 1, "one batch, one count");
        query.bind(self.0).bind(applied[0] as i64)
    }
}

/// `try_apply_batch_with` in a transaction of its own, committed when applied.
async fn try_with(pool: &PgPool, events: &[EventEnvelope], also: &CountApplied) -> (u64, u64) {
    let mut tx = pool.begin().await.expect("begin");
    let (attempt, returned) = try_apply_batch_with(&mut tx, events, PoisonPolicy::Park, Some(also))
        .await
        .expect("no transient error here");
    let Attempt::Applied(outcome) = attempt else {
        panic!("needs no care");
    };
    tx.commit().await.expect("commit");
    (outcome.applied, returned)
}

/// `test_also` with rows 1 to `rows`, nothing applied, never moved.
async fn create_test_also(pool: &PgPool, rows: i32) {
    sqlx::raw_sql(&format!(
        "CREATE TABLE test_also (id int PRIMARY KEY, applied bigint NOT NULL, moves bigint NOT NULL);
         INSERT INTO test_also SELECT id, 0, 0 FROM generate_series(1, {rows}) AS id;"
    ))
    .execute(pool)
    .await
    .expect("test_also");
}

async fn also_row(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT applied, moves FROM test_also WHERE id = 1")
        .fetch_one(pool)
        .await
        .expect("test_also")
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_callers_write_is_made_by_the_batch_statement_even_when_the_batch_writes_nothing() {
    let db = TestDb::new().await;
    create_test_also(&db.pool, 1).await;
    let events = seed(&db.pool).await;

    let (applied, returned) = try_with(&db.pool, &events, &CountApplied(1)).await;
    assert!(applied > 0);
    assert_eq!(returned, 1);
    assert_eq!(
        also_row(&db.pool).await,
        (applied as i64, 1),
        "bound with the events applied"
    );
    let written = support::state(&db.pool).await;

    // Re-deliveries only (no seq 1: nothing presumed new): no row to write,
    // the caller's part runs all the same.
    let again: Vec<EventEnvelope> = events.iter().filter(|e| e.seq > 1).cloned().collect();
    assert!(!again.is_empty());
    assert_eq!(try_with(&db.pool, &again, &CountApplied(1)).await, (0, 1));
    assert_eq!(
        try_with(&db.pool, &[], &CountApplied(1)).await,
        (0, 1),
        "no events"
    );
    assert_eq!(also_row(&db.pool).await, (applied as i64, 3));
    assert_eq!(support::state(&db.pool).await, written);

    // A part that finds no row returns none: the caller learns it (the
    // daemon's changed layout).
    assert_eq!(try_with(&db.pool, &again, &CountApplied(2)).await, (0, 0));
}

/// Counts each group's applied events in its own row of `test_also`
/// (group i in row i + 1), as the daemon's checkpoints of a group do.
struct CountEach;

impl AlsoWrite for CountEach {
    fn sql(&self) -> &'static str {
        "UPDATE test_also AS t SET applied = t.applied + v.applied, moves = t.moves + 1
           FROM unnest($1::int4[], $2::int8[]) AS v(id, applied)
          WHERE t.id = v.id RETURNING t.id"
    }

    fn params(&self) -> usize {
        2
    }

    fn bind<'q>(&self, query: PgQuery<'q>, applied: &[u64]) -> PgQuery<'q> {
        let ids: Vec<i32> = (1..=applied.len() as i32).collect();
        let applied: Vec<i64> = applied.iter().map(|n| *n as i64).collect();
        query.bind(ids).bind(applied)
    }
}

/// `try_apply_groups_with` in a transaction of its own, committed when
/// applied: each group's applied count, and the rows `also` returned.
async fn try_groups(pool: &PgPool, groups: &[&[EventEnvelope]]) -> Option<(Vec<u64>, u64)> {
    let mut tx = pool.begin().await.expect("begin");
    let (attempt, returned) =
        try_apply_groups_with(&mut tx, groups, PoisonPolicy::Park, &CountEach)
            .await
            .expect("no transient error here");
    match attempt {
        GroupsAttempt::Applied(outcomes) => {
            tx.commit().await.expect("commit");
            Some((outcomes.iter().map(|o| o.applied).collect(), returned))
        }
        GroupsAttempt::NeedsCare => {
            tx.rollback().await.expect("rollback");
            None
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn batches_of_several_partitions_applied_as_one_write_what_each_alone_writes() {
    let db = TestDb::new().await;
    create_test_also(&db.pool, 2).await;
    let events = seed(&db.pool).await;
    let (orders, accounts): (Vec<EventEnvelope>, Vec<EventEnvelope>) = events
        .iter()
        .cloned()
        .partition(|e| e.stream_key.starts_with("order:"));
    assert_eq!((orders.len(), accounts.len()), (4, 3));

    let applied = try_groups(&db.pool, &[&orders, &accounts]).await;
    assert_eq!(applied, Some((vec![4, 3], 2)), "each group's own count");
    let grouped = support::state(&db.pool).await;
    let rows: Vec<(i32, i64, i64)> =
        sqlx::query_as("SELECT id, applied, moves FROM test_also ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("test_also");
    assert_eq!(rows, vec![(1, 4, 1), (2, 3, 1)], "bound per group");

    forget_projections(&db.pool).await;
    support::apply_in_transaction(&db.pool, &orders, PoisonPolicy::Park).await;
    support::apply_in_transaction(&db.pool, &accounts, PoisonPolicy::Park).await;
    assert_eq!(grouped, support::state(&db.pool).await, "as each alone");

    // Delivered again: the streams presumed new exist; nothing is written.
    let written = support::state(&db.pool).await;
    assert_eq!(try_groups(&db.pool, &[&orders, &accounts]).await, None);
    assert_eq!(support::state(&db.pool).await, written);
    // A stream in two groups is refused, not applied twice.
    let later: Vec<EventEnvelope> = orders.iter().filter(|e| e.seq > 2).cloned().collect();
    assert_eq!(try_groups(&db.pool, &[&orders, &later]).await, None);
    // Later events alone go through, counted as re-deliveries.
    assert_eq!(
        try_groups(&db.pool, &[&later, &accounts[1..]]).await,
        Some((vec![0, 0], 2))
    );
    assert_eq!(support::state(&db.pool).await, written);
}
