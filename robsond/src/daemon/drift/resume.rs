//! The folds the drift check keeps between runs, so that a long stream
//! checked again (the recently changed half of the sample picks the busy
//! streams every run) is folded from where its last clean check stopped
//! instead of from seq 1: a run then reads about the events appended since,
//! not the streams' whole lengths (see [`super::check`] for why that is
//! sound).
//!
//! Bounds: only folds of at least [`MIN_EVENTS`] events are kept (a
//! shorter stream is cheaper to fold again than to hold), at most
//! [`MAX_ROWS`] rows in all, the least recently used given up first; and a
//! fold resumed [`FULL_EVERY`] times is given up, so every stream is folded
//! from seq 1 again at least every that many checks (which also compares
//! again the fills recorded before the resumed seq).

use std::collections::HashMap;

use super::check::Resume;

/// Folds of fewer events are not kept.
pub const MIN_EVENTS: i64 = 1_000;

/// Rows (of every kept fold together) kept at most.
pub const MAX_ROWS: usize = 10_000;

/// Checks resumed from a kept fold before the stream is folded from seq 1.
pub const FULL_EVERY: u32 = 10;

#[derive(Debug)]
struct Kept {
    resume: Resume,
    /// Checks that resumed this fold (0: folded from seq 1).
    resumed: u32,
    /// When it was last kept, in [`Folds::clock`] ticks.
    used: u64,
}

/// The kept folds, by stream key.
#[derive(Debug, Default)]
pub struct Folds {
    kept: HashMap<String, Kept>,
    rows: usize,
    clock: u64,
}

impl Folds {
    /// The fold to resume `stream_key`'s check from, taken out (it is kept
    /// again by [`Folds::keep`] after a clean check), with how many checks
    /// resumed it before; none when there is none or it was resumed
    /// [`FULL_EVERY`] times already.
    pub fn take(&mut self, stream_key: &str) -> Option<(Resume, u32)> {
        let kept = self.kept.remove(stream_key)?;
        self.rows -= kept.resume.rows();
        (kept.resumed < FULL_EVERY).then_some((kept.resume, kept.resumed))
    }

    /// Keeps the fold a clean check of `stream_key` left; `resumed` is how
    /// many checks led to it since the stream was last folded from seq 1.
    pub fn keep(&mut self, stream_key: &str, resume: Resume, resumed: u32) {
        let rows = resume.rows();
        if resume.folded_to() < MIN_EVENTS || rows > MAX_ROWS {
            return;
        }
        if let Some(old) = self.kept.remove(stream_key) {
            self.rows -= old.resume.rows();
        }
        while self.rows + rows > MAX_ROWS {
            let Some(oldest) = self
                .kept
                .iter()
                .min_by_key(|(_, k)| k.used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(gone) = self.kept.remove(&oldest) {
                self.rows -= gone.resume.rows();
            }
        }
        self.clock += 1;
        self.rows += rows;
        self.kept.insert(
            stream_key.to_owned(),
            Kept {
                resume,
                resumed,
                used: self.clock,
            },
        );
    }

    /// Folds kept and the rows they hold.
    pub fn size(&self) -> (usize, usize) {
        (self.kept.len(), self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_is_resumed_full_every_minus_one_times_then_folded_from_seq_1() {
        let mut folds = Folds::default();
        folds.keep("account:a", Resume::of_size(5_000, 3), 0);
        let mut resumed = 0;
        while let Some((resume, times)) = folds.take("account:a") {
            assert_eq!(times, resumed);
            resumed += 1;
            folds.keep("account:a", resume, times + 1);
        }
        assert_eq!(resumed, FULL_EVERY);
        assert_eq!(folds.size(), (0, 0));
    }

    #[test]
    fn short_or_large_folds_are_not_kept_and_the_rows_stay_bounded() {
        let mut folds = Folds::default();
        folds.keep("order:short", Resume::of_size(MIN_EVENTS - 1, 2), 0);
        folds.keep("account:huge", Resume::of_size(50_000, MAX_ROWS + 1), 0);
        assert_eq!(folds.size(), (0, 0));
        for n in 0..40 {
            folds.keep(
                &format!("account:{n}"),
                Resume::of_size(2_000, MAX_ROWS / 8),
                0,
            );
            assert!(folds.size().1 <= MAX_ROWS, "{:?}", folds.size());
        }
        // The least recently kept went first: the last eight are there.
        assert_eq!(folds.size(), (8, MAX_ROWS));
        assert!(folds.take("account:39").is_some());
        assert!(folds.take("account:31").is_none());
    }
}
