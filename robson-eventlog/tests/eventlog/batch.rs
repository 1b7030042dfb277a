//! Batch append: one statement, outcomes in input order, all or nothing.

use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_batch, append_event, read_stream, AppendError, Event};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{count_rows, event, order_stream, table_image};

async fn ids_of(pool: &PgPool, stream: &str) -> Vec<Uuid> {
    read_stream(pool, stream, 0, 10_000)
        .await
        .expect("read the stream")
        .into_iter()
        .map(|e| e.event_id)
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_batch_reports_outcomes_in_input_order_with_consecutive_seqs_per_stream() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (s1, s2) = (order_stream(), order_stream());
    for n in 0..2 {
        append_event(&db.pool, &event(tenant, &s2, json!({ "pre": n })))
            .await
            .expect("seed s2");
    }
    let mut d = event(tenant, &s2, json!({"x": "d"}));
    d.expected_seq = Some(3);
    let a = event(tenant, &s1, json!({"x": "a"}));
    let batch = vec![
        a.clone(),
        event(tenant, &s2, json!({"x": "b"})),
        event(tenant, &s1, json!({"x": "c"})),
        d,
        event(tenant, &s1, json!({"x": "e"})),
        a, // a retry inside the batch
    ];
    let outcomes = append_batch(&db.pool, &batch)
        .await
        .expect("append the batch");

    let seqs: Vec<(i64, bool)> = outcomes.iter().map(|o| (o.seq, o.duplicate)).collect();
    assert_eq!(
        seqs,
        [
            (1, false),
            (3, false),
            (2, false),
            (4, false),
            (3, false),
            (1, true)
        ]
    );
    assert_eq!(outcomes[5].event_id, outcomes[0].event_id);
    assert!(outcomes[..5]
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    assert_eq!(
        ids_of(&db.pool, &s1).await,
        [0, 2, 4].map(|i| outcomes[i].event_id)
    );
    assert_eq!(
        ids_of(&db.pool, &s2).await[2..],
        [1, 3].map(|i| outcomes[i].event_id)
    );
    assert_eq!(count_rows(&db.pool, "event_log").await, 7);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_large_batch_over_many_streams_lands_whole() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let streams: Vec<String> = (0..10).map(|_| order_stream()).collect();
    let batch: Vec<Event> = (0..500)
        .map(|i| event(tenant, &streams[i % streams.len()], json!({ "i": i })))
        .collect();
    let outcomes = append_batch(&db.pool, &batch)
        .await
        .expect("append the batch");

    assert_eq!(outcomes.len(), 500);
    for (i, o) in outcomes.iter().enumerate() {
        assert!(!o.duplicate);
        assert_eq!(o.seq, (i / streams.len()) as i64 + 1, "event {i}");
    }
    for (k, stream) in streams.iter().enumerate() {
        let expected: Vec<Uuid> = outcomes
            .iter()
            .skip(k)
            .step_by(streams.len())
            .map(|o| o.event_id)
            .collect();
        assert_eq!(ids_of(&db.pool, stream).await, expected);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_failure_in_the_middle_of_a_batch_appends_nothing() {
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let existing = order_stream();
    append_event(&db.pool, &event(tenant, &existing, json!({"n": 0})))
        .await
        .expect("seed");
    let image = || async {
        (
            table_image(&db.pool, "event_log").await,
            table_image(&db.pool, "event_log_keys").await,
            table_image(&db.pool, "event_streams").await,
        )
    };
    let before = image().await;

    let mut stale = event(tenant, &existing, json!({"n": 2}));
    stale.expected_seq = Some(0);
    let batch = [
        event(tenant, &order_stream(), json!({"n": 1})),
        event(tenant, &existing, json!({"n": 1})),
        stale,
        event(tenant, &existing, json!({"n": 3})),
    ];
    match append_batch(&db.pool, &batch).await {
        // The second event made the head 2 by the time the third was checked.
        Err(AppendError::ConcurrentModification {
            expected: 0,
            actual: 2,
        }) => {}
        other => panic!("expected ConcurrentModification {{ 0, 2 }}, got {other:?}"),
    }
    assert_eq!(image().await, before, "nothing may be written");

    let invalid = [
        event(tenant, &existing, json!({"n": 4})),
        event(tenant, &existing, json!(["not", "an", "object"])),
    ];
    assert!(matches!(
        append_batch(&db.pool, &invalid).await,
        Err(AppendError::InvalidArgument { ref argument, .. }) if argument == "p_payload"
    ));
    assert_eq!(image().await, before, "nothing may be written");
    assert!(append_batch(&db.pool, &[])
        .await
        .expect("empty batch")
        .is_empty());
}
