//! The idempotency key: Rust's `compute_idempotency_key` and SQL's
//! `robson_idempotency_key` agree byte for byte, on chosen awkward payloads
//! and on generated ones (property test).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use robson_eventlog::idempotency::{normalize_payload, write_jsonb_text};
use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_event, compute_idempotency_key};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{event, sql_append, sql_key, stored_key, SqlArgs};

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn stored_keys_of_awkward_payloads_match_the_rust_key() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let payloads = [
        r#"{"q": 1.50, "p": 1.5e2, "r": 1E-3, "s": 100e-2, "t": -0.0, "u": -0, "v": 0.00012e2}"#,
        r#"{"big": 123456789012345678901234567890.000100, "neg": -12.5e+3, "tiny": 5e-20}"#,
        r#"{"s": "q\"b\\n\nt\tc\u0001\u001f\u007f é € 😀 \u2028", "\t key\n": true}"#,
        r#"{"a": [1, [2, [3, {"x_at": 1, "y": [{"timestamp": 0, "z": null}]}]]], "b": {}}"#,
        r#"{"aa": 1, "b": 2, "ccc": 3, "ab": 4, "É": 5, "e": 6, "": 7}"#,
        r#"{"Created_AT": 1, "actor_ids": 2, "my_request_id": 3, "x_at\n": 4}"#,
    ];
    for (i, text) in payloads.iter().enumerate() {
        let payload: Value = serde_json::from_str(text).expect("valid JSON");
        let stream = format!("order:{i}:{}", Uuid::new_v4());
        let rust = compute_idempotency_key(tenant, &stream, None, &payload);
        let appended = sql_append(&db.pool, tenant, &stream, text, SqlArgs::default())
            .await
            .expect("append");
        assert_eq!(
            stored_key(&db.pool, appended.event_id).await,
            rust,
            "payload {text}"
        );
        let again = append_event(&db.pool, &event(tenant, &stream, payload))
            .await
            .expect("append from Rust");
        assert_eq!(
            (again.event_id, again.duplicate),
            (appended.event_id, true),
            "payload {text}"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_example_of_docs_eventlog_md_holds_in_rust_and_sql() {
    let db = TestDb::new().await;
    let tenant: Uuid = "6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f"
        .parse()
        .expect("uuid");
    let stream = "order:0b3f7c9e-1d2a-4e5f-8a9b-0c1d2e3f4a5b";
    let payload: Value = serde_json::from_str(
        r#"{"order_id": "o-1", "quantity": "0.50", "submitted_at": "2026-03-01T12:00:00Z",
            "meta": {"request_id": "r-7", "legs": [{"price": 1.5e2, "filled_at": "x"}]}}"#,
    )
    .expect("valid JSON");
    let mut hashed = String::new();
    let parts = json!([
        tenant.to_string(),
        stream,
        null,
        normalize_payload(&payload)
    ]);
    write_jsonb_text(&parts, &mut hashed);
    assert_eq!(
        hashed,
        r#"["6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f", "order:0b3f7c9e-1d2a-4e5f-8a9b-0c1d2e3f4a5b", null, {"meta": {"legs": [{"price": 150}]}, "order_id": "o-1", "quantity": "0.50"}]"#
    );
    let documented = "idem_772efeced45e6d593ea02557ab337b7d12a245c6de7b73b9b6e1d34bd9bf6045";
    assert_eq!(
        compute_idempotency_key(tenant, stream, None, &payload),
        documented
    );
    assert_eq!(
        sql_key(&db.pool, tenant, stream, None, &payload).await,
        documented
    );
}

// ---- Rust == SQL for all payloads (property) ----

/// Object keys: plain, volatile, near misses, and arbitrary text.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}",
        "[a-z]{0,4}(_at|timestamp|actor_id|actor_type|request_id)",
        "[a-z_]{0,3}(_at|timestamp|_id|actor)[a-z\n_A-Z]{1,2}",
        json_string(),
    ]
}

/// Strings with JSON escapes, control characters and non-ASCII text
/// (never NUL, which jsonb refuses).
fn json_string() -> impl Strategy<Value = String> {
    let awkward = prop::sample::select(vec![
        '"', '\\', '/', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{1}', '\u{1f}', '\u{7f}', 'é', 'ß',
        '€', '中', '😀', '\u{2028}', '\u{feff}', 'a', ' ',
    ]);
    prop_oneof![
        "[a-zA-Z0-9 ]{0,8}",
        "\\PC{0,6}",
        prop::collection::vec(awkward, 0..8).prop_map(String::from_iter),
    ]
}

/// Number literals as a writer may spell them: signs, leading "0.",
/// trailing zeros, exponents in both cases and with signs.
fn json_number() -> impl Strategy<Value = Value> {
    let exponent = prop::option::of((
        prop::sample::select(vec!["e", "E"]),
        prop::sample::select(vec!["", "+", "-"]),
        // Small exponents mostly; PostgreSQL takes up to 1000 either way.
        prop_oneof![4 => 0u32..40, 1 => 300u32..1000],
    ));
    (
        any::<bool>(),
        "0|[1-9][0-9]{0,24}",
        prop::option::of("[0-9]{1,14}"),
        exponent,
    )
        .prop_map(|(negative, int, frac, exp)| {
            let mut literal = String::new();
            if negative {
                literal.push('-');
            }
            literal.push_str(&int);
            if let Some(frac) = frac {
                literal.push('.');
                literal.push_str(&frac);
            }
            if let Some((e, sign, n)) = exp {
                literal.push_str(&format!("{e}{sign}{n}"));
            }
            serde_json::from_str(&literal).expect("a valid number literal")
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_payload() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(json_key(), json_value(), 0..7)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

#[derive(Debug, Clone)]
struct KeyCase {
    tenant: Uuid,
    stream: String,
    command: Option<Uuid>,
    payload: Value,
}

fn key_case() -> impl Strategy<Value = KeyCase> {
    (
        any::<u128>(),
        json_string(),
        prop::option::of(any::<u128>()),
        json_payload(),
    )
        .prop_map(|(tenant, stream, command, payload)| KeyCase {
            tenant: Uuid::from_u128(tenant),
            // A prefix keeps the key non-empty and each case in a stream of its
            // own; control characters are refused in stream keys (escaping is
            // still exercised by the payload's strings).
            stream: format!(
                "order:{}:{}",
                Uuid::new_v4(),
                stream.replace(char::is_control, "")
            ),
            command: command.map(Uuid::from_u128),
            payload,
        })
}

async fn check_key_case(pool: &PgPool, case: &KeyCase) -> Result<(), TestCaseError> {
    let text = case.payload.to_string();
    let mut rust_normalized = String::new();
    write_jsonb_text(&normalize_payload(&case.payload), &mut rust_normalized);
    let sql_normalized: String =
        sqlx::query_scalar("SELECT robson_normalize_payload($1::jsonb)::text")
            .bind(&text)
            .fetch_one(pool)
            .await
            .map_err(|e| TestCaseError::fail(format!("normalize {text}: {e}")))?;
    prop_assert_eq!(
        &rust_normalized,
        &sql_normalized,
        "normalized text of {}",
        text
    );

    let rust = compute_idempotency_key(case.tenant, &case.stream, case.command, &case.payload);
    let sql = sql_key(pool, case.tenant, &case.stream, case.command, &case.payload).await;
    prop_assert_eq!(&rust, &sql, "key of {}", text);

    let args = SqlArgs {
        command_id: case.command,
        ..SqlArgs::default()
    };
    let appended = sql_append(pool, case.tenant, &case.stream, &text, args)
        .await
        .map_err(|e| TestCaseError::fail(format!("append {text}: {e}")))?;
    prop_assert_eq!(
        &stored_key(pool, appended.event_id).await,
        &rust,
        "stored key of {}",
        text
    );
    Ok(())
}

#[test]
#[ignore = "needs PostgreSQL"]
fn rust_and_sql_compute_the_same_key_for_any_payload() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let db = rt.block_on(TestDb::new());
    let config = Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&key_case(), |case| {
        rt.block_on(check_key_case(&db.pool, &case))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
