//! Errors of the event log, mapped once from PostgreSQL's SQLSTATEs.

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
    /// The event itself is not acceptable (SQLSTATE class 22, or checked in Rust).
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
            code if code.starts_with("22") => AppendError::InvalidEvent(pg.message().to_owned()),
            _ => AppendError::Database(err),
        }
    }
}

/// The stream named by the 42501 message `append_event` raises.
fn refused_stream(message: &str) -> Option<&str> {
    message
        .strip_prefix("append_event: stream ")?
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
            refused_stream("permission denied for table event_log"),
            None
        );
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
