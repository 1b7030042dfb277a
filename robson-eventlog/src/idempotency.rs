//! Idempotency keys computed in Rust exactly as SQL `robson_idempotency_key`
//! does (migrations/001): `idem_` + hex(SHA-256) of the jsonb text of
//! `[tenant_id, stream_key, command_id | null, normalized payload]`.
//!
//! Matching PostgreSQL byte for byte means reproducing jsonb's text output:
//! object keys ordered by length then bytes, `", "` and `": "` separators,
//! numbers printed as `numeric` prints them, strings escaped like `escape_json`.

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Key suffixes dropped by normalization, at every depth.
const VOLATILE_SUFFIXES: [&str; 5] = ["_at", "timestamp", "actor_id", "actor_type", "request_id"];

/// True when a payload key is left out of the idempotency key.
pub fn is_volatile_key(key: &str) -> bool {
    VOLATILE_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// The payload without its volatile keys (objects inside arrays included).
pub fn normalize_payload(payload: &Value) -> Value {
    match payload {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !is_volatile_key(k))
                .map(|(k, v)| (k.clone(), normalize_payload(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize_payload).collect()),
        other => other.clone(),
    }
}

/// The key `append_event` computes when none is given.
pub fn compute_idempotency_key(
    tenant_id: Uuid,
    stream_key: &str,
    command_id: Option<Uuid>,
    payload: &Value,
) -> String {
    let parts = Value::Array(vec![
        Value::String(tenant_id.to_string()),
        Value::String(stream_key.to_owned()),
        command_id.map_or(Value::Null, |c| Value::String(c.to_string())),
        normalize_payload(payload),
    ]);
    let mut text = String::new();
    write_jsonb_text(&parts, &mut text);
    format!("idem_{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// Writes `value` as PostgreSQL prints a jsonb value (`jsonb::text`).
pub fn write_jsonb_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&numeric_text(n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb_text(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // jsonb orders keys by length first, then bytewise.
            keys.sort_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_string(key, out);
                out.push_str(": ");
                write_jsonb_text(&map[key.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number literal as PostgreSQL's `numeric` prints it: no exponent,
/// display scale = fractional digits written minus the exponent (at least 0),
/// no leading zeros, no negative zero.
pub fn numeric_text(n: &Number) -> String {
    let literal = n.to_string();
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, literal.as_str()),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int_part}{frac_part}");
    let scale = frac_part.len() as i64 - exponent;
    let (int_digits, frac_digits) = if scale <= 0 {
        digits.extend(std::iter::repeat_n('0', (-scale) as usize));
        (digits, String::new())
    } else {
        let scale = scale as usize;
        if digits.len() <= scale {
            let pad = scale - digits.len() + 1;
            digits = format!("{}{}", "0".repeat(pad), digits);
        }
        let split = digits.len() - scale;
        (digits[..split].to_owned(), digits[split..].to_owned())
    };
    let int_trimmed = int_digits.trim_start_matches('0');
    let int_trimmed = if int_trimmed.is_empty() {
        "0"
    } else {
        int_trimmed
    };
    let is_zero = int_trimmed == "0" && frac_digits.bytes().all(|b| b == b'0');
    let sign = if negative && !is_zero { "-" } else { "" };
    if frac_digits.is_empty() {
        format!("{sign}{int_trimmed}")
    } else {
        format!("{sign}{int_trimmed}.{frac_digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jsonb(v: &Value) -> String {
        let mut s = String::new();
        write_jsonb_text(v, &mut s);
        s
    }

    fn num(literal: &str) -> String {
        let v: Value = serde_json::from_str(literal).expect("number literal");
        match v {
            Value::Number(n) => numeric_text(&n),
            _ => panic!("not a number"),
        }
    }

    #[test]
    fn volatile_keys_are_dropped_at_every_depth_including_inside_arrays() {
        let payload = json!({
            "order_id": "a", "submitted_at": "x", "timestamp": 1, "exchange_timestamp": 2,
            "actor_id": "u", "actor_type": "CLI", "request_id": "r",
            "legs": [{"price": "1", "filled_at": "y"}],
            "nested": {"created_at": 1, "keep": true}
        });
        assert_eq!(
            normalize_payload(&payload),
            json!({"order_id": "a", "legs": [{"price": "1"}], "nested": {"keep": true}})
        );
    }

    #[test]
    fn keys_that_merely_contain_a_volatile_suffix_elsewhere_are_kept() {
        assert!(!is_volatile_key("at_price"));
        assert!(!is_volatile_key("timestamps"));
        assert!(is_volatile_key("sampled_at"));
    }

    #[test]
    fn jsonb_text_orders_keys_by_length_then_bytes() {
        let v = json!({"bb": 1, "a": [true, null], "c": "x", "aaa": {}});
        assert_eq!(
            jsonb(&v),
            r#"{"a": [true, null], "c": "x", "bb": 1, "aaa": {}}"#
        );
    }

    #[test]
    fn jsonb_text_escapes_strings_like_postgresql() {
        let v = json!("q\"b\\n\nt\tc\u{1}é");
        assert_eq!(jsonb(&v), "\"q\\\"b\\\\n\\nt\\tc\\u0001é\"");
    }

    #[test]
    fn numbers_print_as_numeric_prints_them() {
        assert_eq!(num("0.1"), "0.1");
        assert_eq!(num("1.50"), "1.50");
        assert_eq!(num("1.5e2"), "150");
        assert_eq!(num("1E-3"), "0.001");
        assert_eq!(num("100e-2"), "1.00");
        assert_eq!(num("-0"), "0");
        assert_eq!(num("-0.0"), "0.0");
        assert_eq!(num("-12.5"), "-12.5");
        assert_eq!(num("1000000000000"), "1000000000000");
        assert_eq!(num("0.00012e2"), "0.012");
    }

    #[test]
    fn payloads_differing_only_in_volatile_keys_share_a_key() {
        let tenant = Uuid::nil();
        let a =
            compute_idempotency_key(tenant, "order:1", None, &json!({"q": "1", "sent_at": "a"}));
        let b =
            compute_idempotency_key(tenant, "order:1", None, &json!({"sent_at": "b", "q": "1"}));
        assert_eq!(a, b);
        assert!(a.starts_with("idem_") && a.len() == 5 + 64);
    }

    #[test]
    fn another_command_or_stream_gives_another_key() {
        let tenant = Uuid::nil();
        let p = json!({"q": "1"});
        let base = compute_idempotency_key(tenant, "order:1", None, &p);
        assert_ne!(
            base,
            compute_idempotency_key(tenant, "order:1", Some(Uuid::from_u128(1)), &p)
        );
        assert_ne!(base, compute_idempotency_key(tenant, "order:2", None, &p));
    }

    #[test]
    fn key_matches_a_value_computed_by_postgresql() {
        // SELECT robson_idempotency_key('00000000-0000-0000-0000-000000000000',
        //   'order:1', NULL, '{"q": "1", "n": 0.10, "sent_at": "x"}');
        let key = compute_idempotency_key(
            Uuid::nil(),
            "order:1",
            None,
            &serde_json::from_str(r#"{"q": "1", "n": 0.10, "sent_at": "x"}"#).expect("json"),
        );
        assert_eq!(key, EXPECTED_FROM_POSTGRES);
    }

    const EXPECTED_FROM_POSTGRES: &str =
        "idem_274a636560065b22b3fe9e8707a21c454df4f8b1aa8e66edac427127278cc26e";
}
