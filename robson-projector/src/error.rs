//! The projector's error type and the one classifier of database errors
//! (transient: retry; permanent: caused by the data, retrying cannot help).
//!
//! Every part of robson that must decide "retry or give up" on a
//! `sqlx::Error` calls [`classify`]; nothing else inspects SQLSTATEs.

/// Why an event could not be projected, or why a batch could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The payload breaks SPEC §3 (missing field, wrong type, bad value,
    /// tenant mismatch). Permanent: the event is dead-lettered.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The event conflicts with the projected state (missing or existing
    /// entity, Golden Rule breach). Permanent: the event is dead-lettered.
    #[error("invariant violation: {0}")]
    InvariantViolated(String),
    /// Events a stream needs before the ones in the batch are not readable
    /// from `event_log` (yet). Transient: the batch is retried.
    #[error("stream {stream_key}: events {from_seq}..={to_seq} cannot be read from event_log")]
    MissingPredecessors {
        stream_key: String,
        from_seq: i64,
        to_seq: i64,
    },
    /// Another applier started the stream first (only while two appliers of
    /// one partition overlap, e.g. during an ownership hand-over).
    /// Transient: the batch is retried and then sees that applier's progress.
    #[error("stream {stream_key} was started by a concurrent applier")]
    ConcurrentApplier { stream_key: String },
    /// A database error; [`classify`] decides whether it is transient.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What the daemon does with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry the unit of work later (capped backoff); never dead-letter.
    Transient,
    /// Retrying cannot succeed: dead-letter the event that caused it.
    Permanent,
}

/// The dead-letter `error_kind` of a permanent failure (SPEC §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `invalid_payload`
    InvalidPayload,
    /// `invariant_violation`
    InvariantViolation,
}

impl ErrorKind {
    /// Every kind (for metrics that show each at 0 from the start).
    pub const ALL: &'static [ErrorKind] =
        &[ErrorKind::InvalidPayload, ErrorKind::InvariantViolation];

    /// The spelling stored in `projection_dead_letters.error_kind` and used as
    /// the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidPayload => "invalid_payload",
            ErrorKind::InvariantViolation => "invariant_violation",
        }
    }
}

impl ProjectionError {
    /// Transient or permanent; database errors are decided by [`classify`].
    pub fn class(&self) -> ErrorClass {
        match self {
            ProjectionError::InvalidPayload(_) | ProjectionError::InvariantViolated(_) => {
                ErrorClass::Permanent
            }
            ProjectionError::MissingPredecessors { .. }
            | ProjectionError::ConcurrentApplier { .. } => ErrorClass::Transient,
            ProjectionError::Database(err) => classify(err),
        }
    }

    /// The dead-letter kind of a permanent error, `None` for a transient one.
    /// A permanent database error at write time counts as an invariant
    /// violation when a constraint refused the row (SQLSTATE class 23) and as
    /// an invalid payload otherwise (class 22, values that cannot be encoded).
    pub fn dead_letter_kind(&self) -> Option<ErrorKind> {
        match self {
            ProjectionError::InvalidPayload(_) => Some(ErrorKind::InvalidPayload),
            ProjectionError::InvariantViolated(_) => Some(ErrorKind::InvariantViolation),
            ProjectionError::MissingPredecessors { .. }
            | ProjectionError::ConcurrentApplier { .. } => None,
            ProjectionError::Database(err) => match classify(err) {
                ErrorClass::Transient => None,
                ErrorClass::Permanent if sqlstate(err).is_some_and(|c| c.starts_with("23")) => {
                    Some(ErrorKind::InvariantViolation)
                }
                ErrorClass::Permanent => Some(ErrorKind::InvalidPayload),
            },
        }
    }
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Decides whether retrying the work that failed with `err` can succeed.
///
/// **Permanent** — the data being written or read is at fault, so the same
/// work fails again; the event that caused it is dead-lettered:
/// - SQLSTATE class `22` (data exception: overflow, bad value, string too
///   long) and `23` (integrity constraint violation);
/// - a value that cannot be encoded or a column that cannot be decoded.
///
/// **Transient** — everything else, so that an error the operator can fix
/// never dead-letters good events:
/// - connection problems: I/O, TLS, protocol desynchronisation, pool timeout,
///   pool closed, crashed connection worker;
/// - SQLSTATE classes `08` (connection), `40` (serialization failure,
///   deadlock), `53` (insufficient resources), `57P` (shutdown, restart),
///   `57014` (statement timeout or cancel), `55P03` (lock not available),
///   `58` (system/I-O error), `25` (transaction state, e.g. a statement after
///   an earlier error: redo in a fresh transaction);
/// - schema, privilege and internal errors (classes `42`, `0A`, `XX`, any
///   other code) and driver states such as "row not found" or "column not
///   found": they point at the deployment or at code, not at an event. The
///   daemon retries with capped backoff, counts them in
///   `robson_db_errors_total` and shows them in `/health`, and resumes by
///   itself once the operator has fixed the cause.
pub fn classify(err: &sqlx::Error) -> ErrorClass {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) if code.starts_with("22") || code.starts_with("23") => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        },
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            ErrorClass::Permanent
        }
        _ => ErrorClass::Transient,
    }
}

/// A transient error caused by other transactions, which trying the same
/// work again soon may get past (a rebuild's table swap retries on these
/// and no others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contention {
    /// SQLSTATE `55P03`: a lock was not granted within `lock_timeout`.
    LockNotAvailable,
    /// SQLSTATE `40001` or `40P01`: a serialization failure or a deadlock.
    Conflict,
}

/// The contention behind `err`, if that is what it is.
pub fn contention(err: &sqlx::Error) -> Option<Contention> {
    match sqlstate(err)?.as_str() {
        "55P03" => Some(Contention::LockNotAvailable),
        "40001" | "40P01" => Some(Contention::Conflict),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::error::Error as StdError;

    /// A database error carrying only a SQLSTATE.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl StdError for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn class_of(code: &'static str) -> ErrorClass {
        classify(&sqlx::Error::Database(Box::new(Sqlstate(code))))
    }

    #[test]
    fn connection_serialization_resource_and_shutdown_states_are_transient() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "53200", "57P01", "57P03", "57014",
            "55P03",
        ] {
            assert_eq!(class_of(code), ErrorClass::Transient, "{code}");
        }
    }

    #[test]
    fn lock_timeouts_deadlocks_and_serialization_failures_are_contention() {
        let of = |code| contention(&sqlx::Error::Database(Box::new(Sqlstate(code))));
        assert_eq!(of("55P03"), Some(Contention::LockNotAvailable));
        assert_eq!(of("40001"), Some(Contention::Conflict));
        assert_eq!(of("40P01"), Some(Contention::Conflict));
        assert_eq!(of("57014"), None);
        assert_eq!(of("23505"), None);
        assert_eq!(contention(&sqlx::Error::PoolTimedOut), None);
    }

    #[test]
    fn data_exceptions_and_constraint_violations_are_permanent() {
        for code in ["22003", "22001", "22P02", "23505", "23514", "23502"] {
            assert_eq!(class_of(code), ErrorClass::Permanent, "{code}");
        }
    }

    #[test]
    fn schema_privilege_and_internal_errors_are_transient() {
        for code in ["42P01", "42501", "XX000", "25P02", "0A000"] {
            assert_eq!(class_of(code), ErrorClass::Transient, "{code}");
        }
    }

    #[test]
    fn refused_writes_map_to_dead_letter_kinds() {
        let unique = ProjectionError::Database(sqlx::Error::Database(Box::new(Sqlstate("23505"))));
        assert_eq!(
            unique.dead_letter_kind(),
            Some(ErrorKind::InvariantViolation)
        );
        let overflow =
            ProjectionError::Database(sqlx::Error::Database(Box::new(Sqlstate("22003"))));
        assert_eq!(overflow.dead_letter_kind(), Some(ErrorKind::InvalidPayload));
        let deadlock =
            ProjectionError::Database(sqlx::Error::Database(Box::new(Sqlstate("40P01"))));
        assert_eq!(deadlock.dead_letter_kind(), None);
    }

    #[test]
    fn io_and_pool_errors_are_transient() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&io), ErrorClass::Transient);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorClass::Transient);
        assert_eq!(classify(&sqlx::Error::PoolClosed), ErrorClass::Transient);
        assert_eq!(classify(&sqlx::Error::WorkerCrashed), ErrorClass::Transient);
    }

    #[test]
    fn encode_and_decode_errors_are_permanent() {
        let encode = sqlx::Error::Encode("bad".into());
        let decode = sqlx::Error::Decode("bad".into());
        assert_eq!(classify(&encode), ErrorClass::Permanent);
        assert_eq!(classify(&decode), ErrorClass::Permanent);
    }

    #[test]
    fn missing_predecessors_are_transient_and_rule_errors_permanent() {
        let missing = ProjectionError::MissingPredecessors {
            stream_key: "order:x".into(),
            from_seq: 1,
            to_seq: 2,
        };
        assert_eq!(missing.class(), ErrorClass::Transient);
        assert_eq!(missing.dead_letter_kind(), None);
        let invalid = ProjectionError::InvalidPayload("x".into());
        assert_eq!(invalid.class(), ErrorClass::Permanent);
        assert_eq!(invalid.dead_letter_kind(), Some(ErrorKind::InvalidPayload));
        let violated = ProjectionError::InvariantViolated("x".into());
        assert_eq!(
            violated.dead_letter_kind(),
            Some(ErrorKind::InvariantViolation)
        );
    }

    #[test]
    fn error_kinds_are_spelled_as_in_the_dead_letter_table() {
        assert_eq!(ErrorKind::InvalidPayload.as_str(), "invalid_payload");
        assert_eq!(
            ErrorKind::InvariantViolation.as_str(),
            "invariant_violation"
        );
    }
}
