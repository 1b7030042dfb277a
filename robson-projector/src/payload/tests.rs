use super::*;
use serde_json::json;
use std::str::FromStr;

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("test JSON")
}

#[test]
fn null_means_absent_for_optional_and_missing_for_required_fields() {
    let payload = json!({"a": null});
    let fields = Fields::of(&payload).expect("object");
    assert_eq!(fields.opt_uuid("a").ok(), Some(None));
    assert!(matches!(
        fields.uuid("a"),
        Err(ProjectionError::InvalidPayload(_))
    ));
    assert!(matches!(
        fields.string("b"),
        Err(ProjectionError::InvalidPayload(_))
    ));
}

#[test]
fn a_payload_that_is_not_an_object_is_invalid() {
    assert!(Fields::of(&json!([1, 2])).is_err());
    assert!(Fields::of(&json!("x")).is_err());
}

#[test]
fn uuids_must_be_hyphenated_strings() {
    let payload = json!({
        "ok": "4FDF8E1A-060C-4A63-9D3B-993F79490EAB",
        "simple": "4fdf8e1a060c4a639d3b993f79490eab",
        "braced": "{4fdf8e1a-060c-4a63-9d3b-993f79490eab}",
        "number": 5,
    });
    let fields = Fields::of(&payload).expect("object");
    let expected = Uuid::from_str("4fdf8e1a-060c-4a63-9d3b-993f79490eab").expect("uuid");
    assert_eq!(fields.uuid("ok").ok(), Some(expected));
    assert!(fields.uuid("simple").is_err());
    assert!(fields.uuid("braced").is_err());
    assert!(fields.uuid("number").is_err());
}

#[test]
fn decimals_come_from_strings_or_number_literals() {
    let payload =
        parse(r#"{"s": "0.5", "n": 0.1, "big": 1000000000000, "b": true, "nine": "1.100000000"}"#);
    let fields = Fields::of(&payload).expect("object");
    assert_eq!(fields.decimal("s").ok(), Decimal::from_str("0.5").ok());
    assert_eq!(fields.decimal("n").ok(), Decimal::from_str("0.1").ok());
    assert!(fields.decimal("big").is_err());
    assert!(fields.decimal("b").is_err());
    assert!(fields.decimal("nine").is_err());
}

#[test]
fn json_number_decimals_keep_their_literal() {
    // 0.1 + 0.2 through f64 is 0.30000000000000004.
    let payload = parse(r#"{"a": 0.1, "b": 0.2}"#);
    let fields = Fields::of(&payload).expect("object");
    let sum = fields
        .decimal("a")
        .ok()
        .zip(fields.decimal("b").ok())
        .map(|(a, b)| a + b);
    assert_eq!(sum, Decimal::from_str("0.3").ok());
}

#[test]
fn timestamps_need_t_and_an_offset_and_are_kept_in_microseconds() {
    let payload = json!({
        "utc": "2024-03-01T08:00:03.405Z",
        "offset": "2024-03-01T10:00:04.393+02:00",
        "nanos": "2024-03-01T08:00:00.1234567Z",
        "space": "2024-03-01 08:00:00Z",
        "naive": "2024-03-01T08:00:00",
        "text": "not-a-time",
    });
    let fields = Fields::of(&payload).expect("object");
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
    };
    assert_eq!(
        fields.opt_timestamp("utc").ok().flatten(),
        at("2024-03-01T08:00:03.405Z")
    );
    assert_eq!(
        fields.opt_timestamp("offset").ok().flatten(),
        at("2024-03-01T08:00:04.393Z")
    );
    assert_eq!(
        fields.opt_timestamp("nanos").ok().flatten(),
        at("2024-03-01T08:00:00.123457Z")
    );
    assert!(fields.opt_timestamp("space").is_err());
    assert!(fields.opt_timestamp("naive").is_err());
    assert!(fields.opt_timestamp("text").is_err());
}

#[test]
fn wrong_types_are_invalid_payloads() {
    let payload = json!({"s": 1, "b": "true", "o": [1], "a": {}});
    let fields = Fields::of(&payload).expect("object");
    assert!(fields.string("s").is_err());
    assert!(fields.opt_bool("b").is_err());
    assert!(fields.object("o").is_err());
    assert!(fields.opt_array("a").is_err());
    assert!(fields.opt_array("missing").is_ok());
}
