//! The fixtures of `tests/fixtures/` (format in their README): the append
//! requests, and the check of a projected database against the expected
//! tables, dead letters, parked streams and waiting events. Used by this
//! crate's tests (through `apply_batch`) and by robsond's (through SQL
//! `append_event` and the real daemon), so both judge by the same data,
//! which neither produced.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use robson_eventlog::Event;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::image;
use crate::{list_parked, PoisonPolicy};

/// A fixture: its append requests (one JSON object per line of
/// `events.jsonl`) and what projecting them must give under one policy.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: &'static str,
    pub requests: Vec<Value>,
    pub expected: Value,
}

fn read(name: &str, file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

impl Fixture {
    /// `tests/fixtures/<name>` with the expectation for `policy`.
    pub fn load(name: &'static str, policy: PoisonPolicy) -> Fixture {
        let requests = read(name, "events.jsonl")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a fixture line is JSON"))
            .collect();
        let file = format!("expected-{}.json", policy.as_str());
        let expected: Value = serde_json::from_str(&read(name, &file)).expect("expected JSON");
        assert_eq!(expected["policy"].as_str(), Some(policy.as_str()));
        Fixture {
            name,
            requests,
            expected,
        }
    }

    /// The requests as `robson-eventlog` events, in file order.
    pub fn events(&self) -> Vec<Event> {
        self.requests.iter().map(request_event).collect()
    }

    /// (line, `stream_key#seq` of the original) of the requests that are
    /// idempotent repeats and append nothing.
    pub fn duplicates(&self) -> Vec<(u64, String)> {
        self.expected["duplicates"]
            .as_array()
            .expect("duplicates")
            .iter()
            .map(|d| {
                (
                    d["line"].as_u64().expect("line"),
                    d["duplicate_of"].as_str().expect("ref").to_string(),
                )
            })
            .collect()
    }

    /// The rows `event_log` holds once every request is appended.
    pub fn event_count(&self) -> i64 {
        self.expected["events"].as_i64().expect("events")
    }

    /// Events of parked streams waiting behind their failed event.
    pub fn waiting_events(&self) -> i64 {
        self.expected["waiting_events"]
            .as_i64()
            .expect("waiting_events")
    }

    /// Asserts that the appends gave what the fixture says: `outcomes[i]` is
    /// (seq, duplicate) of request i, and the log holds the expected count.
    pub async fn assert_appended(&self, pool: &PgPool, outcomes: &[(i64, bool)]) {
        assert_eq!(
            outcomes.len(),
            self.requests.len(),
            "one outcome per request"
        );
        let duplicates = self.duplicates();
        for (index, (request, (seq, duplicate))) in self.requests.iter().zip(outcomes).enumerate() {
            let line = index as u64 + 1;
            let key = request["stream_key"].as_str().expect("stream_key");
            match duplicates.iter().find(|(l, _)| *l == line) {
                Some((_, original)) => {
                    assert!(*duplicate, "line {line} should be a duplicate");
                    assert_eq!(format!("{key}#{seq}"), *original, "line {line}");
                }
                None => assert!(!*duplicate, "line {line} should append"),
            }
        }
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
            .fetch_one(pool)
            .await
            .expect("count the log");
        assert_eq!(
            events,
            self.event_count(),
            "{}: events in the log",
            self.name
        );
    }

    /// Fails, naming `label` and the first difference, unless the database
    /// holds exactly the expected tables, dead letters, parked streams and
    /// waiting events.
    pub async fn assert_projected(&self, pool: &PgPool, label: &str) {
        let tables = image::tables(pool).await;
        if let Some(diff) = image::first_difference(&tables, &self.expected_tables()) {
            panic!("{} / {label}: {diff}", self.name);
        }
        let letters = image::sorted(
            self.expected["dead_letters"]
                .as_array()
                .expect("dead_letters")
                .clone(),
        );
        assert_eq!(
            image::dead_letters(pool).await,
            letters,
            "{label}: dead letters"
        );
        let mut parked: Vec<String> = self.expected["parked_streams"]
            .as_array()
            .expect("parked_streams")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        parked.sort();
        assert_eq!(
            image::parked_streams(pool).await,
            parked,
            "{label}: parked streams"
        );
        let held: i64 = list_parked(pool)
            .await
            .expect("list parked streams")
            .iter()
            .map(|p| p.waiting_events())
            .sum();
        assert_eq!(held, self.waiting_events(), "{label}: waiting events");
    }

    /// Dead letters the fixture expects.
    pub fn dead_letter_count(&self) -> usize {
        self.expected["dead_letters"].as_array().map_or(0, Vec::len)
    }

    fn expected_tables(&self) -> Value {
        let mut out = serde_json::Map::new();
        let tables = self.expected["tables"].as_object().expect("tables object");
        for (name, rows) in tables {
            let rows = rows.as_array().expect("rows").clone();
            out.insert(name.clone(), Value::Array(image::sorted(rows)));
        }
        Value::Object(out)
    }
}

/// One request line as an append request.
pub fn request_event(request: &Value) -> Event {
    let text = |field: &str| request[field].as_str().map(str::to_string);
    let occurred: DateTime<Utc> = text("occurred_at")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .expect("occurred_at");
    let tenant = text("tenant_id")
        .and_then(|t| Uuid::parse_str(&t).ok())
        .expect("tenant_id");
    let mut event = Event::new(
        tenant,
        text("stream_key").expect("stream_key"),
        text("event_type").expect("event_type"),
        request["payload"].clone(),
        occurred,
    );
    event.command_id = text("command_id").and_then(|t| Uuid::parse_str(&t).ok());
    event
}
