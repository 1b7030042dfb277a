//! The prepared database: built once per run of this binary, then copied
//! (`CREATE DATABASE … TEMPLATE`) for each test. It holds about 20 000
//! events of generated trading flows plus poison events, projected by the
//! daemon, in two phases with a snapshot between them:
//!
//! - phase A: flows; a position stream whose first event breaks the Golden
//!   Rule (parked, then skipped by the operator before the snapshot); an
//!   order stream whose first event is a fill of an unknown order (parked);
//!   an order stream with an invalid quantity and an account stream with a
//!   negative balance (both parked for good);
//! - `robsond snapshot`;
//! - phase B: more flows, and the operator skips the parked fill: a
//!   decision taken after the snapshot, on a stream that parked before it
//!   (no stream parks in phase B, so only the replay of decisions after a
//!   restore can reproduce it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use robson_eventlog::testing::{admin_url, url_with_database};
use robson_eventlog::{append_batch, Event};
use robsond::tools::generate::FlowGenerator;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::process::{robsond_ok, wait_caught_up, Daemon};

/// A test database with every migration robsond applies.
type TestDb = robson_eventlog::testing::Database<robsond::schema::Robsond>;

const PHASE_A_ORDERS: u64 = 1900;
const PHASE_B_ORDERS: u64 = 460;

/// A copy of the prepared database.
#[derive(Debug)]
pub struct Db {
    pub pool: PgPool,
    pub url: String,
}

static BASE: OnceCell<String> = OnceCell::const_new();

/// A fresh copy of the prepared database.
pub async fn copy() -> Db {
    let base = BASE.get_or_init(build_base).await;
    let admin = admin_url();
    let name = format!("robson_replay_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.expect("connect");
    sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE {base}"))
        .execute(&mut conn)
        .await
        .expect("copy the prepared database");
    conn.close().await.expect("close");
    let url = url_with_database(&admin, &name);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect to the copy");
    Db { pool, url }
}

async fn build_base() -> String {
    let db = TestDb::new().await;
    let poison = Poison::new();
    let mut flows = FlowGenerator::new(11, 3);
    append(&db.pool, flows.events(PHASE_A_ORDERS / 2)).await;
    append(&db.pool, poison.events()).await;
    append(&db.pool, flows.events(PHASE_A_ORDERS / 2)).await;
    let mut daemon = Daemon::start(&db.url);
    wait_caught_up(&db.pool, &mut daemon).await;
    robsond_ok(&db.url, &["streams", "skip", &poison.position_stream]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    robsond_ok(&db.url, &["snapshot"]).await;
    append(&db.pool, flows.events(PHASE_B_ORDERS)).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    robsond_ok(&db.url, &["streams", "skip", &poison.fill_stream]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    db.pool.close().await;
    db.name
}

/// Appends `events` in batches.
pub async fn append(pool: &PgPool, events: Vec<Event>) {
    for chunk in events.chunks(500) {
        append_batch(pool, chunk).await.expect("append events");
    }
}

/// Asserts that the projection has what the fixture promises: parked
/// streams, and dead letters skipped by the operator.
pub async fn assert_mixed(pool: &PgPool) {
    let (parked, skipped, events): (i64, i64, i64) = sqlx::query_as(
        r#"
        SELECT (SELECT count(*) FROM projection_stream_progress WHERE parked_seq IS NOT NULL),
               (SELECT count(*) FROM projection_dead_letters WHERE resolution = 'skipped'),
               (SELECT count(*) FROM event_log)
        "#,
    )
    .fetch_one(pool)
    .await
    .expect("fixture query");
    assert_eq!(
        (parked, skipped),
        (2, 2),
        "parked streams, skipped dead letters"
    );
    assert!(events >= 20_000, "{events} events in the log");
}

/// Poison events on streams of their own tenant.
struct Poison {
    tenant: Uuid,
    account: Uuid,
    position_stream: String,
    fill_stream: String,
}

impl Poison {
    fn new() -> Poison {
        Poison {
            tenant: Uuid::new_v4(),
            account: Uuid::new_v4(),
            position_stream: format!("position:{}", Uuid::new_v4()),
            fill_stream: format!("order:{}", Uuid::new_v4()),
        }
    }

    fn event(&self, stream: &str, ty: &str, payload: Value) -> Event {
        let at = Utc
            .with_ymd_and_hms(2024, 3, 2, 9, 0, 0)
            .single()
            .unwrap_or_default();
        let mut e = Event::new(self.tenant, stream, ty, payload, at);
        e.command_id = Some(Uuid::new_v4());
        e
    }

    fn events(&self) -> Vec<Event> {
        let a = self.account;
        let position = |stream: &str| stream.trim_start_matches("position:").to_string();
        let p = position(&self.position_stream);
        let o = self.fill_stream.trim_start_matches("order:").to_string();
        let bad = Uuid::new_v4();
        let bad_stream = format!("order:{bad}");
        let account_stream = format!("account:{a}");
        let sample =
            |free: &str| json!({"account_id": a, "asset": "USDT", "free": free, "locked": "0"});
        let opened = |stop: &str| {
            json!({"position_id": p, "account_id": a, "symbol": "BTCUSDT",
            "side": "long", "entry_price": "100", "entry_quantity": "1",
            "technical_stop_price": stop, "technical_stop_distance": "10"})
        };
        let submitted = |id: &str, qty: &str| {
            json!({"order_id": id, "account_id": a,
            "client_order_id": format!("poison-{id}"), "symbol": "BTCUSDT", "side": "buy",
            "order_type": "market", "quantity": qty})
        };
        vec![
            // Stop above the entry of a long: invariant violation.
            self.event(&self.position_stream, "POSITION_OPENED", opened("110")),
            self.event(&self.position_stream, "POSITION_OPENED", opened("90")),
            self.event(
                &self.position_stream,
                "POSITION_CLOSED",
                json!({"position_id": p}),
            ),
            // A fill before its order exists: invariant violation.
            self.event(
                &self.fill_stream,
                "FILL_RECEIVED",
                json!({"order_id": o,
                "exchange_trade_id": "t-poison", "fill_price": "100", "fill_quantity": "1",
                "fee": "0", "fee_asset": "USDT"}),
            ),
            self.event(&self.fill_stream, "ORDER_SUBMITTED", submitted(&o, "2")),
            self.event(
                &self.fill_stream,
                "ORDER_ACKED",
                json!({"order_id": o, "exchange_order_id": "x-1"}),
            ),
            // Not a decimal: invalid payload.
            self.event(
                &bad_stream,
                "ORDER_SUBMITTED",
                submitted(&bad.to_string(), "abc"),
            ),
            self.event(
                &bad_stream,
                "ORDER_ACKED",
                json!({"order_id": bad, "exchange_order_id": "x-2"}),
            ),
            // A negative balance: invalid payload.
            self.event(&account_stream, "BALANCE_SAMPLED", sample("-1")),
            self.event(&account_stream, "BALANCE_SAMPLED", sample("5")),
        ]
    }
}

/// Appends generated flows (seeded by `seed`) a few orders at a time until
/// stopped, as a live writer would while the daemon projects.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Writer {
    pub fn start(pool: PgPool, seed: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut flows = FlowGenerator::new(seed, 2);
            let mut appended = 0;
            while !flag.load(Ordering::Relaxed) {
                let events = flows.events(5);
                appended += events.len() as u64;
                append(&pool, events).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            appended
        });
        Writer { stop, task }
    }

    /// Stops appending; returns how many events were appended.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer task")
    }
}
