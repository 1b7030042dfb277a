//! Idle partitions learn how far the log has been read.

use std::time::{Duration, Instant};

use robson_eventlog::Position;

use super::dispatch::{send, Handover};
use super::PollerSetup;

/// Least time between two checkpoint advances of an idle partition.
const IDLE_ADVANCE_EVERY: Duration = Duration::from_millis(200);

/// Idle partitions learn how far the log has been read, so their checkpoints
/// follow it (a restart then re-reads little) — at most every
/// [`IDLE_ADVANCE_EVERY`] each, as every advance is a transaction.
///
/// A stale partition is never advanced: its checkpoint would jump over the
/// events it was not given.
pub(super) async fn advance_idle(
    setup: &PollerSetup,
    cursor: Position,
    sent: &mut [Position],
    stale: &[bool],
    advanced: &mut [Instant],
) {
    for p in 0..sent.len() {
        if !stale[p] && sent[p] < cursor && advanced[p].elapsed() >= IDLE_ADVANCE_EVERY {
            if send(setup, p, Vec::new(), sent[p], cursor).await != Handover::Failing {
                sent[p] = cursor;
            }
            advanced[p] = Instant::now();
        }
    }
}
