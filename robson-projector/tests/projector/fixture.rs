//! The fixtures (tests/fixtures/trading-small, made by hand outside the
//! project, and trading-medium, generated with an independent oracle by
//! scripts/fixtures/trading_medium.py): every line appended in order,
//! projected under both poison policies in several delivery orders and batch
//! sizes, and compared exactly with the expected tables, dead letters, parked
//! streams and waiting events. (robsond's tests replay the same fixtures
//! through SQL `append_event` and the real daemon.)

use robson_eventlog::{append_event, Event, EventEnvelope};
use robson_projector::testing::Fixture;
use robson_projector::PoisonPolicy;
use sqlx::PgPool;

use crate::support::{self, TestDb};

/// Delivery orders that a daemon may produce, or worse. A large fixture
/// gets the three that differ in kind (each transaction costs a commit, and
/// thousands of them would take minutes on a loaded machine); the small one
/// also gets tiny batches.
fn arrangements(events: &[EventEnvelope]) -> Vec<(&'static str, Vec<EventEnvelope>, usize)> {
    let mut by_stream = events.to_vec();
    by_stream.sort_by(|a, b| a.stream_key.cmp(&b.stream_key).then(a.seq.cmp(&b.seq)));
    let mut reversed = events.to_vec();
    reversed.reverse();
    if events.len() > 1000 {
        return vec![
            ("log order, batches of 1000", events.to_vec(), 1000),
            ("stream by stream, batches of 64", by_stream, 64),
            // Every stream's last event first: predecessors are read from the log.
            ("reversed, batches of 64", reversed, 64),
        ];
    }
    vec![
        ("log order, one batch", events.to_vec(), 1000),
        ("log order, batches of 1", events.to_vec(), 1),
        ("log order, batches of 7", events.to_vec(), 7),
        ("stream by stream, batches of 64", by_stream, 64),
        // Every stream's last event first: predecessors are read from the log.
        ("reversed, batches of 13", reversed, 13),
    ]
}

/// Appends the fixture's requests in file order, a few hundred per
/// transaction (the README: grouping into transactions does not matter);
/// returns (seq, duplicate) of each.
async fn append_all(pool: &PgPool, events: Vec<Event>) -> Vec<(i64, bool)> {
    let mut outcomes = Vec::with_capacity(events.len());
    for chunk in events.chunks(250) {
        let mut tx = pool.begin().await.expect("begin");
        for event in chunk {
            let outcome = append_event(&mut *tx, event).await.expect("append");
            outcomes.push((outcome.seq, outcome.duplicate));
        }
        tx.commit().await.expect("commit");
    }
    outcomes
}

async fn check_fixture(name: &'static str, policy: PoisonPolicy) {
    let fixture = Fixture::load(name, policy);
    let db = TestDb::new().await;
    let outcomes = append_all(&db.pool, fixture.events()).await;
    fixture.assert_appended(&db.pool, &outcomes).await;
    let events = support::committed(&db.pool).await;
    let waiting = fixture.waiting_events();

    for (label, delivery, batch_size) in arrangements(&events) {
        support::reset_projections(&db.pool).await;
        let outcome = support::project(&db.pool, &delivery, batch_size, policy).await;
        let label = format!("{} / {label}", policy.as_str());
        fixture.assert_projected(&db.pool, &label).await;
        assert_eq!(
            outcome.dead_lettered.len(),
            fixture.dead_letter_count(),
            "{label}"
        );
        if label.contains("log order") {
            assert_eq!(outcome.already_applied, 0, "{label}");
            assert_eq!(outcome.held as i64, waiting, "{label}: held");
            let counted = outcome.applied
                + outcome.skipped_unhandled
                + outcome.held
                + outcome.dead_lettered.len() as u64;
            assert_eq!(
                counted,
                events.len() as u64,
                "{label}: every event counted once"
            );
        }
    }
    let resolutions: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT resolution::text FROM projection_dead_letters")
            .fetch_all(&db.pool)
            .await
            .expect("resolutions");
    let wanted = match policy {
        PoisonPolicy::Park => None,
        PoisonPolicy::Skip => Some("skipped".to_string()),
    };
    assert_eq!(resolutions, vec![wanted]);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn trading_small_projects_exactly_as_expected_when_parking() {
    check_fixture("trading-small", PoisonPolicy::Park).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn trading_small_projects_exactly_as_expected_when_skipping() {
    check_fixture("trading-small", PoisonPolicy::Skip).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn trading_medium_projects_exactly_as_expected_when_parking() {
    check_fixture("trading-medium", PoisonPolicy::Park).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn trading_medium_projects_exactly_as_expected_when_skipping() {
    check_fixture("trading-medium", PoisonPolicy::Skip).await;
}
