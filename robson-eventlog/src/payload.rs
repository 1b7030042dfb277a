//! Decoding a stored payload, one event at a time.
//!
//! The log may hold payloads that no reader should be asked to decode whole
//! — written before `append_event` refused them (migrations/006), or by a
//! writer that bypassed it: nested thousands of levels deep, many megabytes
//! large. Readers therefore fetch the payload as text and decode each one
//! here, so that a bad payload becomes a [`PayloadError`] on its own
//! [`crate::EventEnvelope`] — a poison event of its stream — and never the
//! failure of a whole read (serde_json stops at 128 levels, and a failed
//! column decode fails every row of the statement).
//!
//! The limits are those of the append path ([`crate::rules`]): whatever an
//! append accepts today decodes, and nothing else does.

use serde_json::Value;

use crate::error::PayloadError;
use crate::rules::{MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH};

/// Decodes a payload's JSON text (as PostgreSQL prints jsonb).
pub fn decode(text: &str) -> Result<Value, PayloadError> {
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge {
            bytes: text.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    // Measured on the text before parsing: the parser recurses per level.
    if text_nests_deeper_than(text.as_bytes(), MAX_PAYLOAD_DEPTH) {
        return Err(PayloadError::TooDeep {
            limit: MAX_PAYLOAD_DEPTH,
        });
    }
    serde_json::from_str(text).map_err(|err| PayloadError::Malformed(err.to_string()))
}

/// True when the JSON text opens containers more than `limit` deep (brackets
/// inside strings do not count). One pass over the bytes, stopping at the
/// first level beyond the limit; malformed text is left to the parser.
fn text_nests_deeper_than(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `{"x": [[…1…]]}` with `depth` levels in all, as text.
    fn nested(depth: usize) -> String {
        let inner = depth - 1;
        format!("{{\"x\": {}1{}}}", "[".repeat(inner), "]".repeat(inner))
    }

    #[test]
    fn a_payload_within_the_limits_decodes() {
        assert_eq!(
            decode(r#"{"a": [1, {"b": "x"}]}"#),
            Ok(json!({"a": [1, {"b": "x"}]}))
        );
        assert!(decode(&nested(64)).is_ok());
    }

    #[test]
    fn payloads_nested_beyond_64_levels_are_too_deep_however_deep() {
        for depth in [65, 128, 1_000, 10_000, 100_000] {
            assert_eq!(
                decode(&nested(depth)),
                Err(PayloadError::TooDeep { limit: 64 }),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_levels() {
        let text = format!(r#"{{"s": "{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(decode(&text).is_ok(), "{text}");
    }

    #[test]
    fn a_payload_beyond_the_size_limit_is_too_large() {
        let fits = format!(r#"{{"s": "{}"}}"#, "a".repeat(MAX_PAYLOAD_BYTES - 9));
        assert_eq!(fits.len(), MAX_PAYLOAD_BYTES);
        assert!(decode(&fits).is_ok());
        let over = format!(r#"{{"s": "{}"}}"#, "a".repeat(MAX_PAYLOAD_BYTES - 8));
        assert_eq!(
            decode(&over),
            Err(PayloadError::TooLarge {
                bytes: MAX_PAYLOAD_BYTES + 1,
                limit: MAX_PAYLOAD_BYTES
            })
        );
    }

    #[test]
    fn malformed_text_is_reported_with_the_parsers_reason() {
        let err = decode(r#"{"a": "#).expect_err("malformed");
        assert!(matches!(err, PayloadError::Malformed(_)), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("payload could not be decoded: "));
    }

    #[test]
    fn the_too_deep_error_says_what_happened_and_names_the_limit() {
        assert_eq!(
            PayloadError::TooDeep { limit: 64 }.to_string(),
            "payload could not be decoded: nests deeper than 64 levels"
        );
    }
}
