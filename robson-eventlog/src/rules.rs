//! The rules an appended event obeys (SPEC §2.2) and the limits a reader of
//! the log holds stored payloads to. SQL (`robson_check_append` of
//! migrations/007, behind `append_event` and `append_events`) checks the
//! same rules for every writer; the Rust append checks them here
//! first, so that a hostile payload is refused before it is hashed or sent
//! (hashing and serialising recurse over the payload).
//!
//! The limits are the same on both sides of the log: whatever an append
//! accepts, a reader decodes ([`crate::payload::decode`]).

use serde_json::Value;

use crate::error::AppendError;
use crate::event::Event;

/// Longest stream key, in characters.
pub const MAX_STREAM_KEY_CHARS: usize = 200;
/// Longest event type, in characters (`event_log.event_type` is `varchar(100)`).
pub const MAX_EVENT_TYPE_CHARS: usize = 100;
/// Deepest payload: the payload object is level 1, a container inside it
/// level 2, and so on.
pub const MAX_PAYLOAD_DEPTH: usize = 64;
/// Largest payload, in bytes of its text as PostgreSQL prints the jsonb
/// (`octet_length(payload::text)`), which is what a reader receives.
/// Checked by SQL only: Rust would have to print the payload as jsonb does.
pub const MAX_PAYLOAD_BYTES: usize = 1_048_576;

/// Checks every rule that does not need the database; the error names the
/// argument of SQL `append_event` that breaks it.
pub fn check_event(event: &Event) -> Result<(), AppendError> {
    check_name("p_stream_key", &event.stream_key, MAX_STREAM_KEY_CHARS)?;
    check_name("p_event_type", &event.event_type, MAX_EVENT_TYPE_CHARS)?;
    if !event.payload.is_object() {
        return Err(invalid("p_payload", "must be a JSON object".into()));
    }
    if nests_deeper_than(&event.payload, MAX_PAYLOAD_DEPTH) {
        return Err(AppendError::PayloadTooDeep {
            limit: MAX_PAYLOAD_DEPTH,
        });
    }
    if event.expected_seq.is_some_and(|n| n < 0) {
        return Err(invalid("p_expected_seq", "must be >= 0".into()));
    }
    if event.idempotency_key.as_deref() == Some("") {
        return Err(invalid(
            "p_idempotency_key",
            "must not be empty (pass NULL for none)".into(),
        ));
    }
    Ok(())
}

/// A stream key or event type: 1 to `max_chars` characters, none of them a
/// control character (Unicode Cc, as SQL's `[\x01-\x1f\x7f-\x9f]`).
fn check_name(argument: &'static str, value: &str, max_chars: usize) -> Result<(), AppendError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(invalid(
            argument,
            format!("must be 1-{max_chars} characters, got {chars}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            argument,
            "must not contain control characters".into(),
        ));
    }
    Ok(())
}

fn invalid(argument: &'static str, reason: String) -> AppendError {
    AppendError::InvalidArgument {
        argument: argument.to_owned(),
        reason,
    }
}

/// True when `value` nests containers (objects, arrays) deeper than `limit`
/// levels: `{}` is 1 level, `{"a": [1]}` 2. Descends at most `limit + 1`
/// levels, so a value of any depth is measured in bounded stack.
pub fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    match value {
        Value::Object(map) => limit == 0 || map.values().any(|v| nests_deeper_than(v, limit - 1)),
        Value::Array(items) => limit == 0 || items.iter().any(|v| nests_deeper_than(v, limit - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    /// `{"x": [[…1…]]}` with `depth` levels in all.
    fn nested(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 1..depth {
            v = Value::Array(vec![v]);
        }
        // Not json!: it would serialise `v`, recursing once per level.
        Value::Object([("x".to_owned(), v)].into_iter().collect())
    }

    fn event(stream: &str, event_type: &str, payload: Value) -> Event {
        Event::new(Uuid::nil(), stream, event_type, payload, Utc::now())
    }

    fn refusal(e: &Event) -> Option<(String, String)> {
        match check_event(e) {
            Ok(()) => None,
            Err(AppendError::InvalidArgument { argument, reason }) => Some((argument, reason)),
            Err(other) => Some(("other".into(), other.to_string())),
        }
    }

    #[test]
    fn depth_counts_the_payload_object_as_level_one() {
        assert!(!nests_deeper_than(&json!({}), 1));
        assert!(nests_deeper_than(&json!({"a": {}}), 1));
        assert!(!nests_deeper_than(&json!({"a": [1, 2]}), 2));
        assert!(nests_deeper_than(&json!({"a": [[]]}), 2));
        assert!(!nests_deeper_than(&json!(5), 0));
    }

    #[test]
    fn a_payload_of_64_levels_is_accepted_and_65_refused() {
        assert!(check_event(&event("s:1", "T", nested(64))).is_ok());
        assert!(matches!(
            check_event(&event("s:1", "T", nested(65))),
            Err(AppendError::PayloadTooDeep { limit: 64 })
        ));
    }

    #[test]
    fn a_value_nested_ten_thousand_levels_is_measured_without_deep_recursion() {
        // Built by hand: serde_json would not parse it.
        let deep = nested(10_000);
        assert!(nests_deeper_than(&deep, MAX_PAYLOAD_DEPTH));
        // Dropping it would recurse 10,000 levels (serde_json's Drop), not ours to test.
        std::mem::forget(deep);
    }

    #[test]
    fn stream_keys_and_event_types_are_held_to_length_and_control_characters() {
        let ok = json!({});
        assert_eq!(refusal(&event("order:1", "ORDER_ACKED", ok.clone())), None);
        let long_key = "k".repeat(201);
        let max_key = "é".repeat(200);
        assert_eq!(refusal(&event(&max_key, "T", ok.clone())), None);
        for (stream, event_type, argument) in [
            ("", "T", "p_stream_key"),
            (long_key.as_str(), "T", "p_stream_key"),
            ("order:1\nforged", "T", "p_stream_key"),
            ("order:\u{1b}[31m", "T", "p_stream_key"),
            ("order:\u{85}", "T", "p_stream_key"),
            ("s", "", "p_event_type"),
            ("s", "ORDER\r", "p_event_type"),
            ("s", "ORDER\u{7f}", "p_event_type"),
        ] {
            let got = refusal(&event(stream, event_type, ok.clone()));
            assert_eq!(
                got.as_ref().map(|(a, _)| a.as_str()),
                Some(argument),
                "{stream:?} {event_type:?}: {got:?}"
            );
        }
        let long_type = "T".repeat(101);
        assert!(refusal(&event("s", &long_type, ok)).is_some());
    }

    #[test]
    fn an_empty_idempotency_key_is_refused_and_none_is_not() {
        let mut e = event("s:1", "T", json!({}));
        assert_eq!(refusal(&e), None);
        e.idempotency_key = Some(String::new());
        assert_eq!(
            refusal(&e).map(|(a, _)| a),
            Some("p_idempotency_key".into())
        );
        e.idempotency_key = Some("k".into());
        assert_eq!(refusal(&e), None);
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_refused() {
        assert_eq!(
            refusal(&event("s", "T", json!([1]))).map(|(a, _)| a),
            Some("p_payload".into())
        );
    }
}
