//! Properties over generated event sets (valid and invalid events, several
//! streams, two tenants, the same entity ids in both tenants): whatever the
//! interleaving of streams, the split into batches (or into groups of
//! several partitions' batches applied as one), or the re-delivery of
//! applied events, the projection is the same. Each case uses a fresh
//! database, so case counts are kept small.

use std::sync::OnceLock;

use proptest::prelude::*;
use robson_eventlog::{append_batch, Event, EventEnvelope};
use robson_projector::tables::PgQuery;
use robson_projector::{try_apply_groups_with, AlsoWrite, GroupsAttempt, PoisonPolicy};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{self, TestDb};

const TENANTS: [Uuid; 2] = [
    Uuid::from_u128(0x0a0a_0a0a_0a0a_4a0a_8a0a_0a0a_0a0a_0a0a),
    Uuid::from_u128(0x0b0b_0b0b_0b0b_4b0b_8b0b_0b0b_0b0b_0b0b),
];

/// One stream of the generated log: its entity kind (order, account,
/// position, strategy), tenant, entity number and the choices driving it.
#[derive(Debug, Clone)]
struct Script {
    kind: u8,
    tenant: usize,
    entity: u8,
    ops: Vec<u8>,
}

fn scripts() -> impl Strategy<Value = Vec<Script>> {
    let script = (
        0u8..4,
        0usize..2,
        0u8..2,
        prop::collection::vec(any::<u8>(), 1..7),
    )
        .prop_map(|(kind, tenant, entity, ops)| Script {
            kind,
            tenant,
            entity,
            ops,
        });
    prop::collection::vec(script, 1..7)
}

fn entity_id(kind: u8, entity: u8) -> Uuid {
    Uuid::from_u128(
        0x1000_0000_0000_4000_8000_0000_0000_0000 | (u128::from(kind) << 8) | u128::from(entity),
    )
}

/// The payload of step `step` (op `op`) of a stream of `kind` for entity `id`.
fn payload(kind: u8, step: usize, op: u8, id: Uuid) -> (&'static str, Value) {
    let account = "1e2feb89-414c-443c-9027-c4d1c386bbc4";
    match (kind, step, op % 8) {
        (0, 0, 0) => ("ORDER_SUBMITTED", json!({"order_id": id, "account_id": account, "client_order_id": "c",
            "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "-1"})),
        (0, 0, _) | (0, _, 7) => ("ORDER_SUBMITTED", json!({"order_id": id, "account_id": account,
            "client_order_id": "c", "symbol": "BTCUSDT", "side": "buy", "order_type": "limit",
            "quantity": "1", "price": "100"})),
        (0, _, 0) => ("ORDER_ACKED", json!({"order_id": id, "exchange_order_id": format!("E{op}")})),
        (0, _, 1) => ("FILL_RECEIVED", json!({"order_id": id, "exchange_trade_id": format!("T{}", op % 3),
            "fill_price": format!("{}.00000001", op % 5 + 1), "fill_quantity": "0.3", "fee": "0.01", "fee_asset": "USDT"})),
        (0, _, 2) => ("FILL_RECEIVED", serde_json::from_str(&format!(
            r#"{{"order_id": "{id}", "exchange_trade_id": "N{op}", "fill_price": 1.1, "fill_quantity": 0.1, "fee": 0, "fee_asset": "BNB"}}"#
        )).unwrap_or(Value::Null)),
        (0, _, 3) => ("ORDER_CANCELED", json!({"order_id": id})),
        (0, _, 4) => ("ORDER_REJECTED", json!({"order_id": id, "reason": "r"})),
        (0, _, 5) => ("FILL_RECEIVED", json!({"order_id": id, "exchange_trade_id": "X", "fill_price": "1",
            "fill_quantity": "1", "fee": "-1", "fee_asset": "USDT"})),
        (1, _, 0 | 6) => ("BALANCE_SAMPLED", json!({"account_id": id, "asset": if op / 8 % 2 == 0 { "BTC" } else { "ETH" },
            "free": format!("{}.5", op), "locked": "0.25"})),
        (1, _, 1) => ("RISK_CHECK_FAILED", json!({"account_id": id, "violation_reason": "limit", "daily_pnl": format!("-{op}")})),
        (1, _, 2) => ("RISK_CHECK_PASSED", json!({"account_id": id, "strategy_id": entity_id(3, op % 2), "drawdown": "0.1"})),
        (1, _, 3) => ("BALANCE_SAMPLED", json!({"account_id": id, "asset": "BTC", "free": "-1", "locked": "0"})),
        (1, _, 4) => ("RISK_CHECK_FAILED", json!({"account_id": id, "tenant_id": TENANTS[1]})),
        (2, 0, _) => ("POSITION_OPENED", json!({"position_id": id, "account_id": account, "symbol": "ETHUSDT",
            "side": "long", "entry_price": "100", "entry_quantity": "2", "technical_stop_price": "95",
            "technical_stop_distance": if op % 5 == 0 { "4" } else { "5" }})),
        (2, _, 0..=3) => ("POSITION_CLOSED", json!({"position_id": id, "realized_pnl": format!("-{op}.5")})),
        (3, _, 0..=3) => ("STRATEGY_ENABLED", json!({"strategy_id": id, "account_id": account,
            "strategy_name": format!("s{op}"), "strategy_type": "trend", "risk_config": {"max": op}})),
        (3, _, 4 | 5) => ("STRATEGY_DISABLED", json!({"strategy_id": id, "reason": "manual"})),
        _ => ("DECISION_PROPOSED", json!({"decision_id": id})),
    }
}

/// The append requests of `scripts`, round-robin over the streams (one
/// stream per tenant and entity: a repeated one is dropped).
fn requests(scripts: &[Script]) -> Vec<Event> {
    let mut streams: Vec<(String, Uuid, &Script, Uuid)> = Vec::new();
    for script in scripts {
        let id = entity_id(script.kind, script.entity);
        let prefix = ["order", "account", "position", "strategy"][usize::from(script.kind)];
        let key = format!("{prefix}:{}:{id}", script.tenant);
        if streams.iter().all(|(k, ..)| *k != key) {
            streams.push((key, TENANTS[script.tenant], script, id));
        }
    }
    let mut out = Vec::new();
    let longest = streams
        .iter()
        .map(|(_, _, s, _)| s.ops.len())
        .max()
        .unwrap_or(0);
    for step in 0..longest {
        for (key, tenant, script, id) in &streams {
            if let Some(op) = script.ops.get(step) {
                let (event_type, payload) = payload(script.kind, step, *op, *id);
                let mut event =
                    support::event(*tenant, key, event_type, payload, out.len() as i64 * 7);
                event.idempotency_key = Some(format!("{key}#{step}"));
                out.push(event);
            }
        }
    }
    out
}

/// `events` reordered by `choices`: each choice picks the stream whose next
/// event comes next, so every stream keeps its own order.
fn interleave(events: &[EventEnvelope], choices: &[u8]) -> Vec<EventEnvelope> {
    let mut queues: Vec<std::collections::VecDeque<EventEnvelope>> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for event in events {
        match keys.iter().position(|k| *k == event.stream_key) {
            Some(i) => queues[i].push_back(event.clone()),
            None => {
                keys.push(&event.stream_key);
                queues.push(std::iter::once(event.clone()).collect());
            }
        }
    }
    let mut out = Vec::with_capacity(events.len());
    let mut choice = choices.iter().cycle();
    while out.len() < events.len() {
        let open: Vec<usize> = (0..queues.len())
            .filter(|i| !queues[*i].is_empty())
            .collect();
        let pick = open[usize::from(*choice.next().unwrap_or(&0)) % open.len()];
        out.extend(queues[pick].pop_front());
    }
    out
}

/// `events` cut into batches whose sizes cycle through `sizes`.
fn batches<'a>(events: &'a [EventEnvelope], sizes: &[usize]) -> Vec<&'a [EventEnvelope]> {
    let mut out = Vec::new();
    let mut start = 0;
    for size in sizes.iter().cycle() {
        if start >= events.len() {
            break;
        }
        let end = (start + size).min(events.len());
        out.push(&events[start..end]);
        start = end;
    }
    out
}

/// `events` with the pairs `shuffle` names swapped: out of seq order
/// within streams, so that predecessors are read from the log.
fn shuffled(events: &[EventEnvelope], shuffle: &[u8]) -> Vec<EventEnvelope> {
    let mut delivery = events.to_vec();
    for (i, s) in shuffle.iter().enumerate() {
        let n = delivery.len();
        delivery.swap(i % n, usize::from(*s) % n);
    }
    delivery
}

/// Applies `events` in batches whose sizes cycle through `sizes`.
async fn project_in_batches(
    db: &TestDb,
    events: &[EventEnvelope],
    sizes: &[usize],
    policy: PoisonPolicy,
) {
    for batch in batches(events, sizes) {
        support::apply_in_transaction(&db.pool, batch, policy).await;
    }
}

/// The part of a group's write statement the daemon uses for its
/// checkpoints; here a row per group and nothing written.
struct RowPerGroup;

impl AlsoWrite for RowPerGroup {
    fn sql(&self) -> &'static str {
        "SELECT unnest($1::int8[]) AS applied"
    }

    fn params(&self) -> usize {
        1
    }

    fn bind<'q>(&self, query: PgQuery<'q>, applied: &[u64]) -> PgQuery<'q> {
        query.bind(applied.iter().map(|n| *n as i64).collect::<Vec<_>>())
    }
}

/// Applies `events` in batches whose sizes cycle through `sizes`, each
/// batch split over `partitions` by stream and its parts applied as one
/// group (as the daemon's group does); a group that needs care is rolled
/// back and its parts applied one by one.
async fn project_in_groups(
    db: &TestDb,
    events: &[EventEnvelope],
    sizes: &[usize],
    partitions: usize,
    policy: PoisonPolicy,
) {
    for batch in batches(events, sizes) {
        let mut parts: Vec<Vec<EventEnvelope>> = vec![Vec::new(); partitions];
        for e in batch {
            let hash: usize = e.stream_key.bytes().map(usize::from).sum();
            parts[hash % partitions].push(e.clone());
        }
        parts.retain(|p| !p.is_empty());
        let groups: Vec<&[EventEnvelope]> = parts.iter().map(Vec::as_slice).collect();
        let mut tx = db.pool.begin().await.expect("begin");
        let (attempt, rows) = try_apply_groups_with(&mut tx, &groups, policy, &RowPerGroup)
            .await
            .expect("no transient error here");
        match attempt {
            GroupsAttempt::Applied(outcomes) => {
                assert_eq!(
                    (outcomes.len(), rows as usize),
                    (groups.len(), groups.len())
                );
                tx.commit().await.expect("commit");
            }
            GroupsAttempt::NeedsCare => {
                tx.rollback().await.expect("rollback");
                for part in &parts {
                    support::apply_in_transaction(&db.pool, part, policy).await;
                }
            }
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A fresh database with `scripts` appended; the log, and the state after
/// projecting it in log order in one batch.
async fn baseline(scripts: &[Script], policy: PoisonPolicy) -> (TestDb, Vec<EventEnvelope>, Value) {
    let db = TestDb::new().await;
    append_batch(&db.pool, &requests(scripts))
        .await
        .expect("append");
    let events = support::committed(&db.pool).await;
    support::project(&db.pool, &events, events.len(), policy).await;
    let state = support::state(&db.pool).await;
    support::reset_projections(&db.pool).await;
    (db, events, state)
}

fn policy(skip: bool) -> PoisonPolicy {
    if skip {
        PoisonPolicy::Skip
    } else {
        PoisonPolicy::Park
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    #[ignore = "needs PostgreSQL"]
    fn any_interleaving_of_streams_gives_the_same_tables(
        scripts in scripts(), choices in prop::collection::vec(any::<u8>(), 1..16), skip in any::<bool>(),
    ) {
        let (same, diff) = runtime().block_on(async {
            let (db, events, expected) = baseline(&scripts, policy(skip)).await;
            let delivery = interleave(&events, &choices);
            support::project(&db.pool, &delivery, 1, policy(skip)).await;
            let actual = support::state(&db.pool).await;
            (actual == expected, support::first_difference(&actual["tables"], &expected["tables"]))
        });
        prop_assert!(same, "{:?}", diff);
    }

    #[test]
    #[ignore = "needs PostgreSQL"]
    fn any_split_into_batches_gives_the_same_tables(
        scripts in scripts(), sizes in prop::collection::vec(1usize..9, 1..5),
        shuffle in prop::collection::vec(any::<u8>(), 0..8), skip in any::<bool>(),
    ) {
        let (same, diff) = runtime().block_on(async {
            let (db, events, expected) = baseline(&scripts, policy(skip)).await;
            let delivery = shuffled(&events, &shuffle);
            project_in_batches(&db, &delivery, &sizes, policy(skip)).await;
            let actual = support::state(&db.pool).await;
            (actual == expected, support::first_difference(&actual["tables"], &expected["tables"]))
        });
        prop_assert!(same, "{:?}", diff);
    }

    #[test]
    #[ignore = "needs PostgreSQL"]
    fn any_split_into_groups_of_partitions_gives_the_same_tables(
        scripts in scripts(), sizes in prop::collection::vec(1usize..12, 1..5),
        partitions in 1usize..5, shuffle in prop::collection::vec(any::<u8>(), 0..8),
        skip in any::<bool>(),
    ) {
        let (same, diff) = runtime().block_on(async {
            let (db, events, expected) = baseline(&scripts, policy(skip)).await;
            let delivery = shuffled(&events, &shuffle);
            project_in_groups(&db, &delivery, &sizes, partitions, policy(skip)).await;
            let actual = support::state(&db.pool).await;
            (actual == expected, support::first_difference(&actual["tables"], &expected["tables"]))
        });
        prop_assert!(same, "{:?}", diff);
    }

    #[test]
    #[ignore = "needs PostgreSQL"]
    fn redelivering_applied_events_changes_nothing(
        scripts in scripts(), from in any::<prop::sample::Index>(), len in 1usize..12, skip in any::<bool>(),
    ) {
        let (same, counts) = runtime().block_on(async {
            let (db, events, expected) = baseline(&scripts, policy(skip)).await;
            support::project(&db.pool, &events, 5, policy(skip)).await;
            let start = from.index(events.len());
            let again = &events[start..(start + len).min(events.len())];
            let outcome = support::apply_in_transaction(&db.pool, again, policy(skip)).await;
            let actual = support::state(&db.pool).await;
            let counts = (outcome.applied, outcome.dead_lettered.len(), outcome.already_applied + outcome.held);
            (actual == expected, (counts, again.len() as u64))
        });
        let ((applied, dead, passed), delivered) = counts;
        prop_assert!(same);
        prop_assert_eq!((applied, dead, passed), (0, 0, delivered));
    }
}
