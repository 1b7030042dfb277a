//! Streams an operator resumed (`streams retry|skip`): their waiting
//! events are re-read by their partition's projector.

use super::super::projector::CatchUp;
use super::super::retry::count_db_error;
use super::{is_failing, route, PollerSetup};
use crate::partition::partition_of;
use crate::progress;

/// Streams an operator retried or skipped: their waiting events are re-read.
pub(super) async fn resume_requested_streams(setup: &PollerSetup) {
    let keys = match progress::streams::resume_requested(&setup.pool, 100).await {
        Ok(keys) => keys,
        Err(err) => {
            // Asked again on the next round.
            count_db_error(&setup.metrics, &err);
            tracing::warn!(error = %err, "Could not read the streams resumed by an operator.");
            return;
        }
    };
    let partitions = setup.state.partitions.len();
    for stream_key in keys {
        let p = partition_of(&stream_key, partitions);
        if is_failing(setup, p) {
            // Still requested in the database: asked again on a later round.
            continue;
        }
        if let Some(addr) = route(setup, p) {
            let _ = addr.send(CatchUp { stream_key }).await;
        }
    }
}
