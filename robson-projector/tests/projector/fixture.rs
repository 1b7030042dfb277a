//! The trading-small fixture (tests/fixtures/trading-small): every line
//! appended in order, projected under both poison policies in several
//! delivery orders and batch sizes, and compared exactly with the expected
//! tables, dead letters, parked streams and waiting events.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use robson_eventlog::{Event, EventEnvelope};
use robson_projector::{list_parked, PoisonPolicy};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{self, TestDb};

fn fixture_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trading-small")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// The append requests of events.jsonl, in file order.
fn requests() -> Vec<Event> {
    fixture_file("events.jsonl")
        .lines()
        .map(|line| {
            let request: Value = serde_json::from_str(line).expect("fixture line is JSON");
            let text = |field: &str| request[field].as_str().map(str::to_string);
            let occurred: DateTime<Utc> = text("occurred_at")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
                .expect("occurred_at");
            let mut event = Event::new(
                text("tenant_id")
                    .and_then(|t| Uuid::parse_str(&t).ok())
                    .expect("tenant_id"),
                text("stream_key").expect("stream_key"),
                text("event_type").expect("event_type"),
                request["payload"].clone(),
                occurred,
            );
            event.command_id = text("command_id").and_then(|t| Uuid::parse_str(&t).ok());
            event
        })
        .collect()
}

/// Appends every request in file order; checks the duplicates and the count.
async fn append_fixture(pool: &PgPool, expected: &Value) {
    let duplicates: Vec<(u64, String)> = expected["duplicates"]
        .as_array()
        .expect("duplicates")
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().expect("line"),
                d["duplicate_of"].as_str().expect("ref").to_string(),
            )
        })
        .collect();
    let requests = requests();
    assert_eq!(
        requests.len() as u64,
        expected["requests"].as_u64().expect("requests")
    );
    for (index, request) in requests.iter().enumerate() {
        let line = index as u64 + 1;
        let outcome = support::append(pool, request).await;
        match duplicates.iter().find(|(l, _)| *l == line) {
            Some((_, original)) => {
                assert!(outcome.duplicate, "line {line} should be a duplicate");
                assert_eq!(
                    format!("{}#{}", request.stream_key, outcome.seq),
                    *original,
                    "line {line}"
                );
            }
            None => assert!(!outcome.duplicate, "line {line} should append"),
        }
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(events as u64, expected["events"].as_u64().expect("events"));
}

/// Delivery orders that a daemon may produce, or worse.
fn arrangements(events: &[EventEnvelope]) -> Vec<(&'static str, Vec<EventEnvelope>, usize)> {
    let mut by_stream = events.to_vec();
    by_stream.sort_by(|a, b| a.stream_key.cmp(&b.stream_key).then(a.seq.cmp(&b.seq)));
    let mut reversed = events.to_vec();
    reversed.reverse();
    vec![
        ("log order, one batch", events.to_vec(), 1000),
        ("log order, batches of 1", events.to_vec(), 1),
        ("log order, batches of 7", events.to_vec(), 7),
        ("stream by stream, batches of 64", by_stream, 64),
        // Every stream's last event first: predecessors are read from the log.
        ("reversed, batches of 13", reversed, 13),
    ]
}

async fn check_fixture(policy: PoisonPolicy, file: &str) {
    let expected: Value = serde_json::from_str(&fixture_file(file)).expect("expected JSON");
    assert_eq!(expected["policy"].as_str(), Some(policy.as_str()));
    let db = TestDb::new().await;
    append_fixture(&db.pool, &expected).await;
    let events = support::committed(&db.pool).await;
    let expected_tables = sorted_tables(&expected["tables"]);
    let expected_letters = support::sorted(
        expected["dead_letters"]
            .as_array()
            .expect("dead_letters")
            .clone(),
    );
    let mut expected_parked: Vec<String> = expected["parked_streams"]
        .as_array()
        .expect("parked_streams")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    expected_parked.sort();
    let waiting = expected["waiting_events"].as_i64().expect("waiting_events");

    for (label, delivery, batch_size) in arrangements(&events) {
        support::reset_projections(&db.pool).await;
        let outcome = support::project(&db.pool, &delivery, batch_size, policy).await;
        let tables = support::tables(&db.pool).await;
        if let Some(diff) = support::first_difference(&tables, &expected_tables) {
            panic!("{} / {label}: {diff}", policy.as_str());
        }
        assert_eq!(
            support::dead_letters(&db.pool).await,
            expected_letters,
            "{label}: dead letters"
        );
        assert_eq!(
            support::parked_streams(&db.pool).await,
            expected_parked,
            "{label}: parked streams"
        );
        let parked = list_parked(&db.pool).await.expect("list parked");
        let held: i64 = parked.iter().map(|p| p.waiting_events()).sum();
        assert_eq!(held, waiting, "{label}: waiting events");
        assert_eq!(
            outcome.dead_lettered.len(),
            expected_letters.len(),
            "{label}"
        );
        if label.starts_with("log order") {
            assert_eq!(outcome.already_applied, 0, "{label}");
            assert_eq!(outcome.held as i64, waiting, "{label}: held");
            let counted = outcome.applied
                + outcome.skipped_unhandled
                + outcome.held
                + outcome.dead_lettered.len() as u64;
            assert_eq!(
                counted,
                events.len() as u64,
                "{label}: every event counted once"
            );
        }
    }
    let resolutions: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT resolution::text FROM projection_dead_letters")
            .fetch_all(&db.pool)
            .await
            .expect("resolutions");
    let wanted = match policy {
        PoisonPolicy::Park => None,
        PoisonPolicy::Skip => Some("skipped".to_string()),
    };
    assert_eq!(resolutions, vec![wanted]);
}

fn sorted_tables(tables: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (name, rows) in tables.as_object().expect("tables object") {
        out.insert(
            name.clone(),
            Value::Array(support::sorted(rows.as_array().expect("rows").clone())),
        );
    }
    Value::Object(out)
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn trading_small_projects_exactly_as_expected_when_parking() {
    check_fixture(PoisonPolicy::Park, "expected-park.json").await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn trading_small_projects_exactly_as_expected_when_skipping() {
    check_fixture(PoisonPolicy::Skip, "expected-skip.json").await;
}
