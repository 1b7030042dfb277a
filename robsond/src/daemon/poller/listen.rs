//! Waiting for the next read: a NOTIFY on `robson_events`, the poll
//! interval, a partition taken, or the stop.

use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::super::retry::sleep_or_stop;
use super::PollerSetup;
use crate::metrics::WakeupSource;

pub(super) async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut l = PgListener::connect_with(pool).await.ok()?;
    l.listen("robson_events").await.ok()?;
    Some(l)
}

/// Waits for a notification, or the poll interval.
pub(super) async fn wait_for_wakeup(setup: &PollerSetup, listener: &mut Option<PgListener>) {
    let m = &setup.metrics;
    let partition_taken = setup.state.lifecycle.poller_woken();
    // Stopping, or a partition was taken (read from its checkpoint now).
    let interrupted = async {
        tokio::select! {
            () = setup.stop.requested() => {}
            () = partition_taken => {}
        }
    };
    let Some(l) = listener.as_mut() else {
        if sleep_or_stop(setup.poll_interval, interrupted).await {
            m.poller_wakeups(WakeupSource::Poll).inc();
        }
        return;
    };
    let woken = tokio::select! {
        () = interrupted => return,
        woken = tokio::time::timeout(setup.poll_interval, l.try_recv()) => woken,
    };
    match woken {
        Ok(Ok(Some(_))) => {
            m.poller_wakeups(WakeupSource::Notify).inc();
            // Collapse a burst of notifications into one read.
            while l.next_buffered().is_some() {}
        }
        Ok(Ok(None)) | Ok(Err(_)) => {
            // Connection lost: notifications may be missed, so read now and
            // listen again on the next round.
            *listener = None;
            m.poller_wakeups(WakeupSource::Poll).inc();
        }
        Err(_) => {
            m.poller_wakeups(WakeupSource::Poll).inc();
        }
    }
}
