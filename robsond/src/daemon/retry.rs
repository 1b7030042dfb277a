//! Failure handling shared by the actors: the transient/permanent decision is
//! `robson_projector::classify` (the one classifier); this module only turns
//! it into "wait and retry" or "stop and let the supervisor restart me".
//! Every wait here ends at once when the daemon stops (SIGTERM/SIGINT): a
//! batch waiting to be retried has not committed and is simply read again on
//! the next start.

use std::time::Duration;

use super::projector::ProjectorSetup;
use crate::metrics::DbErrorKind;

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
    LayoutChanged(#[from] super::checkpoint::LayoutChanged),
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

    /// Sleeps before a retry when `err` is transient (or gives up at once
    /// when the daemon is stopping); otherwise a fatal failure.
    pub async fn handle(
        &mut self,
        setup: &ProjectorSetup,
        err: robson_projector::ProjectionError,
    ) -> Result<(), Failure> {
        if err.class() == robson_projector::ErrorClass::Transient {
            setup.metrics.db_errors(DbErrorKind::Transient).inc();
            setup.state.set_database_up(false);
            let life = &setup.state.lifecycle;
            if life.is_stopping() {
                tracing::info!(partition = setup.partition, error = %err, "Transient database error while stopping; the batch is read again on the next start.");
                return Err(Failure::Stopped);
            }
            setup.state.partitions[setup.partition].set_state(super::projector::RETRYING);
            let delay = self.next_delay();
            tracing::warn!(partition = setup.partition, error = %err, retry_in_ms = delay.as_millis() as u64, "Transient database error; retrying.");
            tokio::select! {
                _ = tokio::time::sleep(delay) => Ok(()),
                _ = life.stopped() => Err(Failure::Stopped),
            }
        } else {
            setup.metrics.db_errors(DbErrorKind::Permanent).inc();
            Err(Failure::Fatal(err.to_string()))
        }
    }
}

/// Sleeps for `delay`, or less when the daemon stops; false when stopped.
pub async fn pause(life: &super::lifecycle::Lifecycle, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => !life.is_stopping(),
        _ = life.stopped() => false,
    }
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
}
