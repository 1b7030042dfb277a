//! Errors of the event log, mapped once from PostgreSQL's SQLSTATEs.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgDatabaseError;
use uuid::Uuid;

/// Why an append did not add an event.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// `expected_seq` did not match the stream's last seq (SQLSTATE 40001).
    #[error("concurrent modification: expected seq {expected}, actual {actual}")]
    ConcurrentModification { expected: i64, actual: i64 },
    /// The idempotency key is already in the log; nothing was appended.
    /// Only returned by [`crate::AppendOutcome::require_new`]: a plain append
    /// reports a duplicate as a successful outcome with `duplicate = true`.
    #[error("duplicate event: the original is {event_id} (seq {seq})")]
    Duplicate { event_id: Uuid, seq: i64 },
    /// The stream was first appended to by another tenant (SQLSTATE 42501).
    #[error("stream {stream_key} belongs to another tenant")]
    StreamOwnedByOtherTenant { stream_key: String },
    /// An argument of `append_event` breaks a rule of SPEC §2.2 (SQLSTATE
    /// 22023, or 22004 for a required null; checked in Rust first):
    /// `argument` is its name (`p_stream_key`, `p_idempotency_key`, …).
    #[error("invalid {argument}: {reason}")]
    InvalidArgument { argument: String, reason: String },
    /// The payload nests deeper than `limit` levels (SQLSTATE 22023).
    #[error("invalid p_payload: nests deeper than {limit} levels")]
    PayloadTooDeep { limit: usize },
    /// The payload's text is larger than `limit` bytes (SQLSTATE 22023;
    /// checked by SQL only).
    #[error("invalid p_payload: larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Any other refusal of the event's data (SQLSTATE class 22).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl AppendError {
    /// Maps a database error raised by `append_event` to its domain meaning.
    pub(crate) fn from_sqlx(err: sqlx::Error, stream_key: &str) -> Self {
        let Some(db) = err.as_database_error() else {
            return AppendError::Database(err);
        };
        let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() else {
            return AppendError::Database(err);
        };
        match pg.code() {
            "40001" if pg.message().contains("concurrent modification") => {
                match parse_expected_actual(pg.detail().unwrap_or_default()) {
                    Some((expected, actual)) => {
                        AppendError::ConcurrentModification { expected, actual }
                    }
                    None => AppendError::Database(err),
                }
            }
            "42501" => AppendError::StreamOwnedByOtherTenant {
                // A batch spans streams: the message names the refused one.
                stream_key: refused_stream(pg.message())
                    .unwrap_or(stream_key)
                    .to_owned(),
            },
            code if code.starts_with("22") => refused_argument(pg.message()),
            _ => AppendError::Database(err),
        }
    }
}

/// A message of the append functions without its context:
/// `append_event: ` or `append_events: element N: ` (the batch appends).
fn without_context(message: &str) -> Option<&str> {
    if let Some(rest) = message.strip_prefix("append_event: ") {
        return Some(rest);
    }
    let rest = message.strip_prefix("append_events: element ")?;
    let (index, rest) = rest.split_once(": ")?;
    index.bytes().all(|b| b.is_ascii_digit()).then_some(rest)
}

/// The domain error of a 22xxx raised by `append_event` or the batch
/// appends, whose messages read `append_event: <argument> <reason>` or
/// `append_events: element N: <argument> <reason>`.
fn refused_argument(message: &str) -> AppendError {
    let parsed = without_context(message)
        .and_then(|rest| rest.split_once(' '))
        .filter(|(argument, _)| argument.starts_with("p_"));
    let Some((argument, reason)) = parsed else {
        return AppendError::InvalidEvent(message.to_owned());
    };
    let limit = |prefix: &str, suffix: &str| {
        reason
            .strip_prefix(prefix)?
            .strip_suffix(suffix)?
            .parse::<usize>()
            .ok()
    };
    if argument == "p_payload" {
        if let Some(limit) = limit("nests deeper than ", " levels") {
            return AppendError::PayloadTooDeep { limit };
        }
        if let Some(limit) = limit("is larger than ", " bytes") {
            return AppendError::PayloadTooLarge { limit };
        }
    }
    AppendError::InvalidArgument {
        argument: argument.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Why a stored payload could not be decoded by a reader of the log (see
/// [`crate::payload`]). It travels on the event's envelope: the event is a
/// poison event of its stream, the rest of the read is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PayloadError {
    /// Containers nested deeper than `limit` levels.
    #[error("payload could not be decoded: nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// Text of `bytes` bytes, more than `limit`.
    #[error("payload could not be decoded: {bytes} bytes, larger than the limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
    /// Not JSON the reader can parse (the parser's reason).
    #[error("payload could not be decoded: {0}")]
    Malformed(String),
}

/// The stream named by the 42501 message the append functions raise.
fn refused_stream(message: &str) -> Option<&str> {
    without_context(message)?
        .strip_prefix("stream ")?
        .strip_suffix(" belongs to another tenant")
}

/// Parses the DETAIL `expected=N actual=M` that `append_event` raises with.
fn parse_expected_actual(detail: &str) -> Option<(i64, i64)> {
    let mut expected = None;
    let mut actual = None;
    for part in detail.split_whitespace() {
        if let Some(v) = part.strip_prefix("expected=") {
            expected = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("actual=") {
            actual = v.parse().ok();
        }
    }
    Some((expected?, actual?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_detail_is_parsed_into_expected_and_actual() {
        assert_eq!(parse_expected_actual("expected=3 actual=5"), Some((3, 5)));
        assert_eq!(parse_expected_actual("expected=0 actual=12"), Some((0, 12)));
    }

    #[test]
    fn malformed_concurrency_detail_is_not_guessed() {
        assert_eq!(parse_expected_actual("expected=3"), None);
        assert_eq!(parse_expected_actual(""), None);
    }

    #[test]
    fn the_refused_stream_is_read_from_the_ownership_message() {
        assert_eq!(
            refused_stream("append_event: stream order:1 belongs to another tenant"),
            Some("order:1")
        );
        assert_eq!(
            refused_stream("append_events: element 12: stream order:2 belongs to another tenant"),
            Some("order:2")
        );
        assert_eq!(
            refused_stream("permission denied for table event_log"),
            None
        );
    }

    #[test]
    fn refusals_are_mapped_to_the_argument_they_name() {
        assert!(matches!(
            refused_argument("append_event: p_payload nests deeper than 64 levels"),
            AppendError::PayloadTooDeep { limit: 64 }
        ));
        assert!(matches!(
            refused_argument("append_event: p_payload is larger than 1048576 bytes"),
            AppendError::PayloadTooLarge { limit: 1_048_576 }
        ));
        match refused_argument("append_event: p_stream_key must not contain control characters") {
            AppendError::InvalidArgument { argument, reason } => {
                assert_eq!(argument, "p_stream_key");
                assert_eq!(reason, "must not contain control characters");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refused_argument("append_events: element 3: p_payload is larger than 1048576 bytes"),
            AppendError::PayloadTooLarge { limit: 1_048_576 }
        ));
        match refused_argument(
            "append_events: element 0: p_stream_key must be 1-200 characters, got 0",
        ) {
            AppendError::InvalidArgument { argument, .. } => assert_eq!(argument, "p_stream_key"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refused_argument("append_events: element x: p_payload is larger than 1 bytes"),
            AppendError::InvalidEvent(_)
        ));
        assert!(matches!(
            refused_argument("invalid input syntax for type json"),
            AppendError::InvalidEvent(_)
        ));
    }

    #[test]
    fn non_database_errors_stay_database_errors() {
        let err = AppendError::from_sqlx(sqlx::Error::PoolTimedOut, "order:1");
        assert!(matches!(
            err,
            AppendError::Database(sqlx::Error::PoolTimedOut)
        ));
    }
}
