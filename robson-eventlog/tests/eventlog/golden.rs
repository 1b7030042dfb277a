//! The idempotency key judged by a tool outside the project: the canonical
//! text documented in docs/eventlog.md is written out here by hand, hashed by
//! the system's `sha256sum`, and both write paths (Rust and SQL) must give
//! `idem_` + that digest. A change to the normalization, the jsonb text or
//! the hash input of either path turns this red, even if both change alike.

use std::io::Write as _;
use std::process::{Command, Stdio};

use robson_eventlog::compute_idempotency_key;
use robson_eventlog::testing::TestDb;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{sql_append, stored_key, SqlArgs};

const TENANT: &str = "6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f";
const STREAM: &str = "order:0b3f7c9e-1d2a-4e5f-8a9b-0c1d2e3f4a5b";

/// The example payload of docs/eventlog.md: volatile keys at three depths,
/// one inside an array, and a number in exponent form.
const PAYLOAD: &str = r#"{"order_id": "o-1", "quantity": "0.50", "submitted_at": "2026-03-01T12:00:00Z",
 "meta": {"request_id": "r-7", "legs": [{"price": 1.5e2, "filled_at": "x"}]}}"#;

/// What is hashed, as docs/eventlog.md documents it: jsonb text of
/// [tenant, stream, command id, normalized payload] (keys by length then
/// bytes, `", "` and `": "` separators, numbers as numeric prints them).
const CANONICAL: &str = r#"["6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f", "order:0b3f7c9e-1d2a-4e5f-8a9b-0c1d2e3f4a5b", null, {"meta": {"legs": [{"price": 150}]}, "order_id": "o-1", "quantity": "0.50"}]"#;

/// The key docs/eventlog.md prints for this example.
const DOCUMENTED_KEY: &str =
    "idem_772efeced45e6d593ea02557ab337b7d12a245c6de7b73b9b6e1d34bd9bf6045";

/// `sha256sum` of `text` (no trailing newline), as lowercase hex.
fn sha256sum(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum (coreutils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to sha256sum");
    let out = child.wait_with_output().expect("sha256sum output");
    assert!(out.status.success(), "sha256sum failed");
    let text = String::from_utf8(out.stdout).expect("hex digest");
    text.split_whitespace().next().expect("a digest").to_owned()
}

#[test]
fn the_documented_key_is_the_sha256sum_of_the_documented_text() {
    let outside = format!("idem_{}", sha256sum(CANONICAL));
    assert_eq!(outside, DOCUMENTED_KEY, "docs/eventlog.md's example");
    let payload: Value = serde_json::from_str(PAYLOAD).expect("payload");
    let tenant = Uuid::parse_str(TENANT).expect("tenant");
    assert_eq!(
        compute_idempotency_key(tenant, STREAM, None, &payload),
        outside
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn sql_append_stores_the_sha256sum_of_the_documented_text() {
    let db = TestDb::new().await;
    let tenant = Uuid::parse_str(TENANT).expect("tenant");
    let appended = sql_append(&db.pool, tenant, STREAM, PAYLOAD, SqlArgs::default())
        .await
        .expect("append");
    let outside = format!("idem_{}", sha256sum(CANONICAL));
    assert_eq!(stored_key(&db.pool, appended.event_id).await, outside);
}
