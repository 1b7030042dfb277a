//! Retrying transient failures, one policy for every loop of robsond (the
//! projectors, the poller, the start-up steps, replay): the
//! transient/permanent decision is `robson_projector::classify` (the one
//! classifier, through [`Transient`]); this module turns it into "wait with
//! capped backoff and try again" or "give up", counts database errors in
//! `robson_db_errors_total`, and ends every wait at once when asked to stop
//! (SIGTERM/SIGINT): work waiting to be retried has not committed and is
//! simply done again on the next start.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use robson_projector::{classify, ErrorClass, ProjectionError};

use super::projector::ProjectorSetup;
use crate::metrics::{DbErrorKind, Metrics};

/// Why an actor gives up its current unit of work.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Not caused by an event and not transient (e.g. a missing table), or a
    /// panic: the actor stops and the supervisor restarts it after a pause.
    #[error("{0}")]
    Fatal(String),
    /// The daemon is stopping: the unit of work was given up uncommitted (in
    /// backoff, or aborted at the drain limit). Nothing to restart.
    #[error("given up uncommitted: the daemon is stopping")]
    Stopped,
    /// The partition layout in the database is not the one this projector
    /// works (another instance changed the partition count). Retrying cannot
    /// help; the supervisor adopts the new layout.
    #[error("{0}")]
    LayoutChanged(#[from] crate::progress::checkpoint::LayoutChanged),
}

/// An error the retry loop can ask "is trying again worth it?".
pub trait Transient {
    fn class(&self) -> ErrorClass;
}

impl Transient for sqlx::Error {
    fn class(&self) -> ErrorClass {
        classify(self)
    }
}

impl Transient for ProjectionError {
    fn class(&self) -> ErrorClass {
        ProjectionError::class(self)
    }
}

/// Counts `err` in `robson_db_errors_total` under its class, and returns it.
pub fn count_db_error(metrics: &Metrics, err: &impl Transient) -> ErrorClass {
    let class = err.class();
    let kind = match class {
        ErrorClass::Transient => DbErrorKind::Transient,
        ErrorClass::Permanent => DbErrorKind::Permanent,
    };
    metrics.db_errors(kind).inc();
    class
}

/// Capped exponential backoff: 100 ms, 200 ms, … up to 30 s.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub const CAP: Duration = Duration::from_secs(30);

    pub fn delay_for(attempt: u32) -> Duration {
        let ms = 100u64.saturating_mul(1u64 << attempt.min(16));
        Duration::from_millis(ms).min(Self::CAP)
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = Self::delay_for(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }
}

/// Why a retry loop gave up.
#[derive(Debug)]
pub enum GaveUp<E> {
    /// The error is not transient, or the attempts are used up.
    Failed(E),
    /// Asked to stop while waiting to try again (the error that was waited on).
    Stopped(E),
}

impl<E> GaveUp<E> {
    pub fn into_error(self) -> E {
        match self {
            GaveUp::Failed(e) | GaveUp::Stopped(e) => e,
        }
    }
}

/// The retry policy of one unit of work. A loop calls [`Retry::after`] with
/// each failure:
///
/// ```text
/// let mut retry = Retry::new("Could not prepare the checkpoints");
/// let checkpoints = loop {
///     match checkpoint::prepare(pool, partitions).await {
///         Ok(c) => break c,
///         Err(err) => retry.after(err, std::future::pending()).await?,
///     }
/// };
/// ```
#[derive(Debug)]
pub struct Retry {
    what: &'static str,
    backoff: Backoff,
    attempts: u32,
    max_attempts: u32,
    /// Logged with each retry when the work is a partition's.
    partition: Option<usize>,
}

impl Retry {
    /// Retries transient failures without limit; `what` begins the warning
    /// logged before each wait ("… ; retrying.").
    pub fn new(what: &'static str) -> Self {
        Retry {
            what,
            backoff: Backoff::default(),
            attempts: 0,
            max_attempts: u32::MAX,
            partition: None,
        }
    }

    /// Gives up after `n` attempts in all.
    pub fn at_most(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// After a failed attempt: when `err` is transient and attempts are
    /// left, waits (capped backoff) and returns `Ok` to try again — unless
    /// `stopped` resolves first. Otherwise gives the error back.
    pub async fn after<E: Transient + Display>(
        &mut self,
        err: E,
        stopped: impl Future<Output = ()>,
    ) -> Result<(), GaveUp<E>> {
        self.step(err, stopped, None).await
    }

    /// [`Retry::after`], counting the error in `metrics` when given.
    async fn step<E: Transient + Display>(
        &mut self,
        err: E,
        stopped: impl Future<Output = ()>,
        metrics: Option<&Metrics>,
    ) -> Result<(), GaveUp<E>> {
        self.attempts = self.attempts.saturating_add(1);
        let class = match metrics {
            Some(m) => count_db_error(m, &err),
            None => err.class(),
        };
        if class == ErrorClass::Permanent || self.attempts >= self.max_attempts {
            return Err(GaveUp::Failed(err));
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(partition = self.partition, error = %err, retry_in_ms = delay.as_millis() as u64, "{}; retrying.", self.what);
        if sleep_or_stop(delay, stopped).await {
            Ok(())
        } else {
            Err(GaveUp::Stopped(err))
        }
    }

    /// Waits before the next attempt whatever the error was (for a reader
    /// such as the poller, which has nothing to give up); false when
    /// `stopped` resolved first.
    pub async fn wait(&mut self, stopped: impl Future<Output = ()>) -> bool {
        self.attempts = self.attempts.saturating_add(1);
        sleep_or_stop(self.backoff.next_delay(), stopped).await
    }

    /// The next delay, without waiting (for a caller that logs it first).
    pub fn next_delay(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        self.backoff.next_delay()
    }

    /// A unit of work succeeded: the next failure starts the backoff over.
    pub fn reset(&mut self) {
        self.backoff = Backoff::default();
        self.attempts = 0;
    }

    /// A projector's failed batch: a transient error marks the partition
    /// `retrying` and waits (unless the daemon is stopping); anything else
    /// is fatal for the actor.
    pub async fn projector_failure(
        &mut self,
        setup: &ProjectorSetup,
        err: ProjectionError,
    ) -> Result<(), Failure> {
        let life = &setup.state.lifecycle;
        if err.class() == ErrorClass::Transient {
            setup.state.set_database_up(false);
            if life.is_stopping() {
                count_db_error(&setup.metrics, &err);
                tracing::info!(partition = setup.partition, error = %err, "Transient database error while stopping; the batch is read again on the next start.");
                return Err(Failure::Stopped);
            }
            setup.state.partitions[setup.partition].set_state(super::projector::RETRYING);
        }
        self.partition = Some(setup.partition);
        let outcome = self.step(err, life.stopped(), Some(&setup.metrics)).await;
        match outcome {
            Ok(()) => Ok(()),
            Err(GaveUp::Stopped(_)) => Err(Failure::Stopped),
            Err(GaveUp::Failed(err)) => Err(Failure::Fatal(err.to_string())),
        }
    }
}

/// Sleeps for `delay` unless `stopped` resolves first; false when it did.
pub async fn sleep_or_stop(delay: Duration, stopped: impl Future<Output = ()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stopped => false,
    }
}

/// Sleeps for `delay`, or less when the daemon stops; false when stopped.
pub async fn pause(life: &super::lifecycle::Lifecycle, delay: Duration) -> bool {
    sleep_or_stop(delay, life.stopped()).await && !life.is_stopping()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_and_is_capped_at_30s() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..12).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(&delays[..4], &[100, 200, 400, 800]);
        assert_eq!(*delays.last().unwrap_or(&0), 30_000);
        assert_eq!(Backoff::delay_for(60), Backoff::CAP);
    }

    #[tokio::test]
    async fn a_transient_error_is_retried_a_permanent_one_given_back() {
        let mut retry = Retry::new("test").at_most(3);
        assert!(retry
            .after(sqlx::Error::PoolTimedOut, std::future::pending())
            .await
            .is_ok());
        let decode = sqlx::Error::Decode("bad".into());
        assert!(matches!(
            retry.after(decode, std::future::pending()).await,
            Err(GaveUp::Failed(sqlx::Error::Decode(_)))
        ));
        assert!(
            retry
                .after(sqlx::Error::PoolTimedOut, std::future::pending())
                .await
                .is_err(),
            "third attempt was the last"
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait() {
        let mut retry = Retry::new("test");
        let outcome = retry
            .after(sqlx::Error::PoolTimedOut, std::future::ready(()))
            .await;
        assert!(matches!(outcome, Err(GaveUp::Stopped(_))));
    }
}
