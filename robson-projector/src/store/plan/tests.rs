use super::*;
use crate::error::ErrorClass;
use crate::rules::testing::*;

fn submit(stream: &str, seq: i64, order_id: &str) -> EventEnvelope {
    event(
        stream,
        seq,
        "ORDER_SUBMITTED",
        json(&format!(
            r#"{{"order_id": "{order_id}", "account_id": "{ACCOUNT}", "client_order_id": "c",
                "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "1"}}"#
        )),
    )
}

fn ack(stream: &str, seq: i64, order_id: &str) -> EventEnvelope {
    event(
        stream,
        seq,
        "ORDER_ACKED",
        json(&format!(
            r#"{{"order_id": "{order_id}", "exchange_order_id": "X{seq}"}}"#
        )),
    )
}

fn bad(stream: &str, seq: i64) -> EventEnvelope {
    event(stream, seq, "ORDER_ACKED", json("{}"))
}

const A: &str = "00000000-0000-4000-8000-00000000000a";
const B: &str = "00000000-0000-4000-8000-00000000000b";

fn progress(streams: &[(&str, i64, Option<i64>)]) -> ProgressMap {
    streams
        .iter()
        .map(|(key, last, parked)| {
            let mut p = Progress::new(key, TENANT);
            p.last_seq = *last;
            p.parked_seq = *parked;
            (key.to_string(), p)
        })
        .collect()
}

/// Plans and applies `batch` (no gaps) from `progress`.
fn run(
    batch: &[EventEnvelope],
    progress: &ProgressMap,
    policy: PoisonPolicy,
) -> (BatchOutcome, Vec<Progress>) {
    let mut plan = Plan::new(batch, progress);
    assert!(plan.gaps(progress).is_empty(), "test batch has gaps");
    let mut outcome = std::mem::take(&mut plan.counts);
    let steps = plan.into_steps();
    let result = apply_steps(&mut Tables::default(), &steps, progress, policy);
    outcome.merge(result.outcome);
    (outcome, result.progress)
}

#[test]
fn re_deliveries_at_or_below_last_seq_are_already_applied() {
    let batch = [
        submit("order:a", 1, A),
        ack("order:a", 2, A),
        ack("order:a", 3, A),
    ];
    let progress = progress(&[("order:a", 2, None)]);
    let plan = Plan::new(&batch, &progress);
    assert_eq!(plan.counts.already_applied, 2);
    assert_eq!(plan.into_steps().len(), 1);
}

#[test]
fn the_same_event_twice_in_a_batch_is_applied_once() {
    let batch = [submit("order:a", 1, A), submit("order:a", 1, A)];
    let (outcome, _) = run(
        &batch,
        &progress(&[("order:a", 0, None)]),
        PoisonPolicy::Park,
    );
    assert_eq!((outcome.applied, outcome.already_applied), (1, 1));
}

#[test]
fn events_behind_a_parked_stream_are_held() {
    let batch = [
        ack("order:a", 3, A),
        ack("order:a", 4, A),
        submit("order:b", 1, B),
    ];
    let progress = progress(&[("order:a", 1, Some(2)), ("order:b", 0, None)]);
    let (outcome, moved) = run(&batch, &progress, PoisonPolicy::Park);
    assert_eq!((outcome.held, outcome.applied), (2, 1));
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].stream_key, "order:b");
}

#[test]
fn park_dead_letters_the_event_and_holds_the_rest_of_its_stream() {
    let batch = [
        submit("order:a", 1, A),
        bad("order:a", 2),
        ack("order:a", 3, A),
        submit("order:b", 1, B),
    ];
    let (outcome, moved) = run(
        &batch,
        &progress(&[("order:a", 0, None), ("order:b", 0, None)]),
        PoisonPolicy::Park,
    );
    assert_eq!((outcome.applied, outcome.held), (2, 1));
    assert_eq!(outcome.dead_lettered.len(), 1);
    assert_eq!(outcome.dead_lettered[0].seq, 2);
    assert_eq!(
        outcome.dead_lettered[0].error_kind,
        ErrorKind::InvalidPayload
    );
    assert_eq!(outcome.newly_parked, vec!["order:a".to_string()]);
    let a = moved
        .iter()
        .find(|p| p.stream_key == "order:a")
        .expect("moved");
    assert_eq!((a.last_seq, a.parked_seq), (1, Some(2)));
}

#[test]
fn skip_dead_letters_the_event_and_moves_on() {
    let batch = [
        submit("order:a", 1, A),
        bad("order:a", 2),
        ack("order:a", 3, A),
    ];
    let (outcome, moved) = run(
        &batch,
        &progress(&[("order:a", 0, None)]),
        PoisonPolicy::Skip,
    );
    assert_eq!((outcome.applied, outcome.held), (2, 0));
    assert_eq!(outcome.dead_lettered.len(), 1);
    assert!(outcome.newly_parked.is_empty());
    assert_eq!((moved[0].last_seq, moved[0].parked_seq), (3, None));
    assert_eq!(moved[0].last_event_id, Some(batch[2].event_id));
}

#[test]
fn invariant_violations_are_dead_lettered_with_their_kind() {
    let batch = [ack("order:a", 1, A)];
    let (outcome, _) = run(
        &batch,
        &progress(&[("order:a", 0, None)]),
        PoisonPolicy::Park,
    );
    assert_eq!(
        outcome.dead_lettered[0].error_kind,
        ErrorKind::InvariantViolation
    );
}

#[test]
fn unhandled_events_are_skipped_and_advance_the_stream() {
    let batch = [event("order:a", 1, "INTENT_CREATED", json("{}"))];
    let (outcome, moved) = run(
        &batch,
        &progress(&[("order:a", 0, None)]),
        PoisonPolicy::Park,
    );
    assert_eq!((outcome.skipped_unhandled, outcome.applied), (1, 0));
    assert_eq!(moved[0].last_seq, 1);
}

#[test]
fn steps_follow_seq_order_whatever_the_batch_order() {
    let batch = [ack("order:a", 2, A), submit("order:a", 1, A)];
    let progress = progress(&[("order:a", 0, None)]);
    let steps = Plan::new(&batch, &progress).into_steps();
    assert_eq!(
        steps.iter().map(|s| s.event.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let (outcome, _) = run(&batch, &progress, PoisonPolicy::Park);
    assert_eq!(outcome.applied, 2);
}

#[test]
fn gaps_name_the_range_to_read_and_filling_them_completes_the_stream() {
    let batch = [ack("order:a", 3, A), ack("order:a", 5, A)];
    let progress = progress(&[("order:a", 1, None)]);
    let mut plan = Plan::new(&batch, &progress);
    assert_eq!(plan.gaps(&progress), vec![("order:a".to_string(), 1, 5)]);
    let read = vec![
        ack("order:a", 2, A),
        ack("order:a", 3, A),
        ack("order:a", 4, A),
        ack("order:a", 5, A),
    ];
    assert!(plan.fill(read, &progress).is_ok());
    let steps = plan.into_steps();
    let from_batch: Vec<(i64, bool)> = steps.iter().map(|s| (s.event.seq, s.from_batch)).collect();
    assert_eq!(
        from_batch,
        vec![(2, false), (3, true), (4, false), (5, true)]
    );
}

#[test]
fn unreadable_predecessors_are_a_transient_error() {
    let batch = [ack("order:a", 3, A)];
    let progress = progress(&[("order:a", 0, None)]);
    let mut plan = Plan::new(&batch, &progress);
    let err = plan
        .fill(vec![ack("order:a", 2, A)], &progress)
        .expect_err("seq 1 missing");
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[test]
fn predecessors_behind_a_new_park_are_not_counted() {
    let batch = [ack("order:a", 3, A)];
    let progress = progress(&[("order:a", 0, None)]);
    let mut plan = Plan::new(&batch, &progress);
    plan.fill(vec![bad("order:a", 1), ack("order:a", 2, A)], &progress)
        .expect("complete");
    let steps = plan.into_steps();
    let result = apply_steps(
        &mut Tables::default(),
        &steps,
        &progress,
        PoisonPolicy::Park,
    );
    assert_eq!((result.outcome.held, result.outcome.applied), (1, 0));
    assert_eq!(result.outcome.dead_lettered.len(), 1);
}

#[test]
fn a_database_refusal_dead_letters_the_step_like_a_rule_error() {
    let batch = [submit("order:a", 1, A)];
    let fresh = progress(&[("order:a", 0, None)]);
    let steps = Plan::new(&batch, &fresh).into_steps();
    let err = ProjectionError::InvariantViolated("unique".into());
    let result = fail(&steps[0], &err, &fresh, PoisonPolicy::Park);
    assert_eq!(result.outcome.dead_lettered.len(), 1);
    assert_eq!(result.progress[0].parked_seq, Some(1));
    let parked = progress(&[("order:a", 0, Some(1))]);
    let held = fail(&steps[0], &err, &parked, PoisonPolicy::Park);
    assert_eq!(
        (held.outcome.held, held.outcome.dead_lettered.len()),
        (1, 0)
    );
}

#[test]
fn an_undecodable_payload_is_dead_lettered_as_invalid_whatever_its_type() {
    let mut deep = event("signal:deep", 1, "DECISION_PROPOSED", json("{}"));
    deep.payload = Err(robson_eventlog::PayloadError::TooDeep { limit: 64 });
    let batch = [
        deep,
        event("signal:deep", 2, "DECISION_PROPOSED", json("{}")),
        submit("order:b", 1, B),
    ];
    let (outcome, moved) = run(
        &batch,
        &progress(&[("signal:deep", 0, None), ("order:b", 0, None)]),
        PoisonPolicy::Park,
    );
    assert_eq!((outcome.applied, outcome.held), (1, 1));
    let dead = &outcome.dead_lettered[0];
    assert_eq!(
        (dead.seq, dead.error_kind, dead.error.as_str()),
        (
            1,
            ErrorKind::InvalidPayload,
            "payload could not be decoded: nests deeper than 64 levels"
        )
    );
    assert_eq!(outcome.newly_parked, vec!["signal:deep".to_string()]);
    assert!(moved.iter().any(|p| p.stream_key == "order:b"));
}
