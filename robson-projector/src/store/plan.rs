//! Planning a batch against its streams' progress, and applying the plan:
//! which events are re-deliveries, which are held behind a parked stream,
//! which predecessors are missing, and — once the rows are loaded — the new
//! rows, dead letters and progress. Pure; the SQL is in the sibling modules.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use robson_eventlog::EventEnvelope;

use super::progress::{Progress, ProgressMap};
use super::{BatchOutcome, DeadLetter, PoisonPolicy};
use crate::error::{ErrorKind, ProjectionError};
use crate::fold::{Applied, Keys, Tables};
use crate::rules::{self, Command, Stamp};

/// An event to apply, in its stream's seq order.
#[derive(Debug)]
pub struct Step<'a> {
    pub event: Cow<'a, EventEnvelope>,
    /// False for a predecessor read from the log: it is not counted as held.
    pub from_batch: bool,
    /// The validated payload (`None`: unhandled type), or why it is invalid.
    pub command: Result<Option<Command>, String>,
}

/// One stream's events to apply, by seq: the event and whether it came in
/// the batch (else it is a predecessor read from the log).
type StreamEvents<'a> = BTreeMap<i64, (Cow<'a, EventEnvelope>, bool)>;

/// The events of a batch sorted per stream, before the predecessors are read.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Per stream (in order of first appearance), the events after its last
    /// applied seq, keyed by seq.
    streams: Vec<(String, StreamEvents<'a>)>,
    /// Position of each stream in `streams`.
    index: HashMap<String, usize>,
    /// Re-deliveries and held events, counted up front.
    pub counts: BatchOutcome,
}

impl<'a> Plan<'a> {
    pub fn new(batch: &'a [EventEnvelope], progress: &ProgressMap) -> Plan<'a> {
        let mut plan = Plan::default();
        for event in batch {
            let Some(stream) = progress.get(&event.stream_key) else {
                continue;
            };
            if event.seq <= stream.last_seq {
                plan.counts.already_applied += 1;
                continue;
            }
            if stream.parked_seq.is_some() {
                plan.counts.held += 1;
                continue;
            }
            let events = plan.stream_mut(&event.stream_key);
            match events.entry(event.seq) {
                // The same event twice in one batch: the second is a re-delivery.
                Entry::Occupied(_) => plan.counts.already_applied += 1,
                Entry::Vacant(slot) => {
                    slot.insert((Cow::Borrowed(event), true));
                }
            }
        }
        plan
    }

    /// The events planned for `stream_key`, added on first use.
    fn stream_mut(&mut self, stream_key: &str) -> &mut StreamEvents<'a> {
        let next = self.streams.len();
        let i = *self.index.entry(stream_key.to_string()).or_insert(next);
        if i == next {
            self.streams.push((stream_key.to_string(), BTreeMap::new()));
        }
        &mut self.streams[i].1
    }

    /// Per stream with a gap between its last applied seq and the batch's
    /// events: `(stream_key, last applied seq, highest seq in the batch)`.
    pub fn gaps(&self, progress: &ProgressMap) -> Vec<(String, i64, i64)> {
        let mut gaps = Vec::new();
        for (key, events) in &self.streams {
            let last = progress.get(key).map_or(0, |p| p.last_seq);
            let max = events.keys().next_back().copied().unwrap_or(last);
            if events.len() as i64 != max - last {
                gaps.push((key.clone(), last, max));
            }
        }
        gaps
    }

    /// Adds the predecessors read from the log; every stream must then be
    /// contiguous from its last applied seq.
    pub fn fill(
        &mut self,
        read: Vec<EventEnvelope>,
        progress: &ProgressMap,
    ) -> Result<(), ProjectionError> {
        for event in read {
            if let Some(&i) = self.index.get(&event.stream_key) {
                let events = &mut self.streams[i].1;
                events
                    .entry(event.seq)
                    .or_insert((Cow::Owned(event), false));
            }
        }
        match self.gaps(progress).into_iter().next() {
            Some((stream_key, last, max)) => Err(ProjectionError::MissingPredecessors {
                stream_key,
                from_seq: last + 1,
                to_seq: max,
            }),
            None => Ok(()),
        }
    }

    /// The steps in application order (stream by stream, seq order), each
    /// event's payload validated.
    pub fn into_steps(self) -> Vec<Step<'a>> {
        let events = self
            .streams
            .into_iter()
            .flat_map(|(_, events)| events.into_values());
        events
            .map(|(event, from_batch)| {
                let command = rules::parse_event(&event).map_err(|err| match err {
                    ProjectionError::InvalidPayload(text) => text,
                    other => other.to_string(),
                });
                Step {
                    event,
                    from_batch,
                    command,
                }
            })
            .collect()
    }
}

/// The rows the steps' commands need.
pub fn keys(steps: &[Step<'_>]) -> Keys {
    let mut keys = Keys::default();
    for step in steps {
        if let Ok(Some(command)) = &step.command {
            keys.add(command, step.event.tenant_id);
        }
    }
    keys
}

/// The result of applying steps: counts, and the progress of the streams moved.
#[derive(Debug, Default)]
pub struct StepsResult {
    pub outcome: BatchOutcome,
    pub progress: Vec<Progress>,
}

/// Applies the steps to `tables` in order, under `policy`, starting from
/// `progress` (which is not modified: the caller adopts
/// [`StepsResult::progress`] once the writes succeed).
pub fn apply_steps(
    tables: &mut Tables,
    steps: &[Step<'_>],
    progress: &ProgressMap,
    policy: PoisonPolicy,
) -> StepsResult {
    let mut moved: BTreeMap<String, Progress> = BTreeMap::new();
    let mut outcome = BatchOutcome::default();
    for step in steps {
        let event = step.event.as_ref();
        let Some(mut stream) = next_in_stream(step, &moved, progress, &mut outcome) else {
            continue;
        };
        let result = match &step.command {
            Ok(Some(command)) => tables.apply_command(command, &Stamp::of(event)),
            Ok(None) => Ok(Applied::Unhandled),
            Err(text) => Err(ProjectionError::InvalidPayload(text.clone())),
        };
        match result {
            Ok(Applied::Unhandled) => {
                outcome.skipped_unhandled += 1;
                stream.advance(event);
            }
            Ok(Applied::Changed | Applied::DuplicateFill) => {
                outcome.applied += 1;
                stream.advance(event);
            }
            Err(err) => reject(&mut stream, event, &err, policy, &mut outcome),
        }
        moved.insert(stream.stream_key.clone(), stream);
    }
    StepsResult {
        outcome,
        progress: moved.into_values().collect(),
    }
}

/// The outcome of `step` failing with a permanent database error `err` when
/// written on its own: dead-lettered like a rule error, unless its stream is
/// not at it (then it is held).
pub fn fail(
    step: &Step<'_>,
    err: &ProjectionError,
    progress: &ProgressMap,
    policy: PoisonPolicy,
) -> StepsResult {
    let mut outcome = BatchOutcome::default();
    let Some(mut stream) = next_in_stream(step, &BTreeMap::new(), progress, &mut outcome) else {
        return StepsResult {
            outcome,
            progress: Vec::new(),
        };
    };
    reject(&mut stream, step.event.as_ref(), err, policy, &mut outcome);
    StepsResult {
        outcome,
        progress: vec![stream],
    }
}

/// The progress of the step's stream if the step is the stream's next event;
/// otherwise the step is held (counted when it came in the batch).
fn next_in_stream(
    step: &Step<'_>,
    moved: &BTreeMap<String, Progress>,
    progress: &ProgressMap,
    outcome: &mut BatchOutcome,
) -> Option<Progress> {
    let key = &step.event.stream_key;
    let stream = moved.get(key).or_else(|| progress.get(key))?;
    if stream.parked_seq.is_some() || step.event.seq != stream.last_seq + 1 {
        outcome.held += u64::from(step.from_batch);
        return None;
    }
    Some(stream.clone())
}

/// Dead-letters `event` and parks its stream or moves past it.
fn reject(
    stream: &mut Progress,
    event: &EventEnvelope,
    err: &ProjectionError,
    policy: PoisonPolicy,
    outcome: &mut BatchOutcome,
) {
    let kind = err.dead_letter_kind().unwrap_or(ErrorKind::InvalidPayload);
    outcome.dead_lettered.push(dead_letter(event, kind, err));
    match policy {
        PoisonPolicy::Park => {
            stream.parked_seq = Some(event.seq);
            outcome.newly_parked.push(stream.stream_key.clone());
        }
        PoisonPolicy::Skip => stream.advance(event),
    }
}

/// The dead letter of `event` failing with `err`.
pub fn dead_letter(event: &EventEnvelope, kind: ErrorKind, err: &ProjectionError) -> DeadLetter {
    let error = match err {
        ProjectionError::InvalidPayload(text) | ProjectionError::InvariantViolated(text) => {
            text.clone()
        }
        other => other.to_string(),
    };
    DeadLetter {
        event_id: event.event_id,
        tenant_id: event.tenant_id,
        stream_key: event.stream_key.clone(),
        seq: event.seq,
        global_position: event.global_position,
        event_type: event.event_type.clone(),
        error_kind: kind,
        error,
        new_row: true,
    }
}

#[cfg(test)]
mod tests;
