//! What the drift check found, shared with HTTP (`GET /verify`, `/health`):
//! the last run's summary and the streams whose last check found a
//! difference ("standing" mismatches). A stream leaves the board only when
//! a later check finds it clean; a stream that was moving or could not be
//! checked keeps its previous standing. Bounded: at most
//! [`MAX_STANDING`] streams and [`MAX_DIFFS_PER_STREAM`] differences each.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::columns::ColumnDiff;

/// Streams held on the board at most (the rest are counted, not listed).
pub const MAX_STANDING: usize = 10_000;

/// Differences kept per stream at most.
pub const MAX_DIFFS_PER_STREAM: usize = 100;

/// One drift-check run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: f64,
    /// Streams picked (random, most recently changed, standing mismatches).
    pub sample_size: usize,
    /// Streams compared to the end (clean + mismatched).
    pub checked: u64,
    pub mismatched: u64,
    /// Streams that kept moving through every attempt (not compared).
    pub moving: u64,
    /// Streams that could not be checked (see the log for why).
    pub unchecked: u64,
    /// Streams whose check failed on a database error.
    pub errors: u64,
    pub events_read: u64,
    /// The most events held in memory at once by any stream's check.
    pub largest_page: usize,
    /// Streams whose fold went on from an earlier clean check's instead of
    /// from seq 1 (`drift::resume`).
    pub resumed: u64,
}

/// A stream whose last check found differences.
#[derive(Debug, Clone, Serialize)]
pub struct StreamMismatch {
    pub stream_key: String,
    pub first_found_at: DateTime<Utc>,
    pub last_checked_at: DateTime<Utc>,
    pub differences: Vec<ColumnDiff>,
    /// More differences were found than are kept.
    pub truncated: bool,
}

#[derive(Debug, Default)]
struct Inner {
    interval_secs: u64,
    sample: usize,
    running_since: Option<DateTime<Utc>>,
    last_run: Option<RunSummary>,
    standing: BTreeMap<String, StreamMismatch>,
    /// Mismatched streams beyond [`MAX_STANDING`] (not listed).
    unlisted: usize,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Board {
    inner: Mutex<Inner>,
}

/// A consistent copy of the board, one page of its mismatches.
#[derive(Debug, Clone, Serialize)]
pub struct BoardPage {
    pub enabled: bool,
    pub interval_secs: u64,
    pub sample: usize,
    /// Set while a run is under way.
    pub running_since: Option<DateTime<Utc>>,
    pub last_run: Option<RunSummary>,
    /// Streams whose last check found differences.
    pub mismatched_streams: usize,
    pub mismatches: Vec<StreamMismatch>,
    /// The `after` of the next page (null on the last one).
    pub next_after: Option<String>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it cannot leave the maps half-written in a
        // way that matters to readers: take the data as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn configure(&self, interval_secs: u64, sample: usize) {
        let mut g = self.lock();
        g.interval_secs = interval_secs;
        g.sample = sample;
    }

    pub fn run_started(&self, at: DateTime<Utc>) {
        self.lock().running_since = Some(at);
    }

    pub fn run_finished(&self, summary: RunSummary) {
        let mut g = self.lock();
        g.running_since = None;
        g.last_run = Some(summary);
    }

    /// Records a stream found different; returns the standing count.
    pub fn mismatch(
        &self,
        stream_key: &str,
        mut diffs: Vec<ColumnDiff>,
        at: DateTime<Utc>,
    ) -> usize {
        let mut g = self.lock();
        let truncated = diffs.len() > MAX_DIFFS_PER_STREAM;
        diffs.truncate(MAX_DIFFS_PER_STREAM);
        let first = g.standing.get(stream_key).map_or(at, |m| m.first_found_at);
        if g.standing.contains_key(stream_key) || g.standing.len() < MAX_STANDING {
            g.standing.insert(
                stream_key.to_owned(),
                StreamMismatch {
                    stream_key: stream_key.to_owned(),
                    first_found_at: first,
                    last_checked_at: at,
                    differences: diffs,
                    truncated,
                },
            );
        } else {
            g.unlisted += 1;
        }
        g.standing.len() + g.unlisted
    }

    /// Records a stream found clean; returns the standing count.
    pub fn clean(&self, stream_key: &str) -> usize {
        let mut g = self.lock();
        g.standing.remove(stream_key);
        g.standing.len() + g.unlisted
    }

    /// The streams to check again in the next run.
    pub fn standing_streams(&self) -> Vec<String> {
        self.lock().standing.keys().cloned().collect()
    }

    /// Streams whose last check found differences.
    pub fn mismatched_streams(&self) -> usize {
        let g = self.lock();
        g.standing.len() + g.unlisted
    }

    /// The board with the mismatches of streams after `after`, at most `limit`.
    pub fn page(&self, after: Option<&str>, limit: usize) -> BoardPage {
        let g = self.lock();
        let range = match after {
            Some(a) => g
                .standing
                .range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => g.standing.range::<str, _>(..),
        };
        let mismatches: Vec<StreamMismatch> = range.take(limit).map(|(_, m)| m.clone()).collect();
        let next_after = if mismatches.len() == limit {
            mismatches.last().map(|m| m.stream_key.clone())
        } else {
            None
        };
        BoardPage {
            enabled: g.interval_secs > 0,
            interval_secs: g.interval_secs,
            sample: g.sample,
            running_since: g.running_since,
            last_run: g.last_run.clone(),
            mismatched_streams: g.standing.len() + g.unlisted,
            mismatches,
            next_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_stands_until_the_stream_is_found_clean_and_pages_by_key() {
        let board = Board::default();
        let now = Utc::now();
        for key in ["c", "a", "b"] {
            board.mismatch(key, Vec::new(), now);
        }
        let page = board.page(None, 2);
        let keys: Vec<_> = page
            .mismatches
            .iter()
            .map(|m| m.stream_key.as_str())
            .collect();
        assert_eq!(
            (keys, page.next_after.as_deref()),
            (vec!["a", "b"], Some("b"))
        );
        let rest = board.page(Some("b"), 2);
        assert_eq!((rest.mismatches.len(), rest.next_after), (1, None));
        assert_eq!(board.clean("a"), 2);
        assert_eq!(board.standing_streams(), ["b", "c"]);
    }
}
