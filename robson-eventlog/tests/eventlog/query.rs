//! Queries over the log: by tenant, stream, type, time range and correlation ids.

use chrono::{DateTime, Duration, TimeZone, Utc};
use robson_eventlog::testing::TestDb;
use robson_eventlog::{append_event, query_events, ActorType, Event, EventQuery};
use serde_json::json;
use uuid::Uuid;

use crate::support::order_stream;

/// The seeded events, in append order.
struct Seeded {
    events: Vec<Event>,
    ids: Vec<Uuid>,
}

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
        + Duration::minutes(minute)
}

/// Ten events: two tenants, three streams, two types, one minute apart;
/// a command, a trace, a causation and a workflow id on a few of them.
async fn seed(db: &TestDb) -> Seeded {
    let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
    let (s1, s2, s3) = (order_stream(), order_stream(), order_stream());
    let (command, trace, cause, workflow) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let mut events = Vec::new();
    for i in 0..10i64 {
        let (tenant, stream) = match i % 3 {
            0 => (t1, &s1),
            1 => (t1, &s2),
            _ => (t2, &s3),
        };
        let kind = if i % 2 == 0 {
            "ORDER_SUBMITTED"
        } else {
            "FILL_RECEIVED"
        };
        let mut e = Event::new(tenant, stream.as_str(), kind, json!({ "i": i }), at(i));
        if i == 4 || i == 7 {
            e.command_id = Some(command);
        }
        if i >= 8 {
            e.trace_id = Some(trace);
        }
        if i == 5 {
            e.causation_id = Some(cause);
            e.workflow_id = Some(workflow);
            e.actor_type = Some(ActorType::Cli);
            e.actor_id = Some("operator-1".into());
        }
        events.push(e);
    }
    let mut ids = Vec::new();
    for e in &events {
        ids.push(append_event(&db.pool, e).await.expect("append").event_id);
    }
    Seeded { events, ids }
}

impl Seeded {
    /// Ids of the seeded events matching `keep`, in append order.
    fn matching(&self, keep: impl Fn(usize, &Event) -> bool) -> Vec<Uuid> {
        self.events
            .iter()
            .enumerate()
            .filter(|(i, e)| keep(*i, e))
            .map(|(i, _)| self.ids[i])
            .collect()
    }
}

async fn ids(db: &TestDb, q: EventQuery) -> Vec<Uuid> {
    query_events(&db.pool, &q)
        .await
        .expect("query_events")
        .into_iter()
        .map(|e| e.event_id)
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn queries_filter_by_tenant_stream_type_time_and_correlation_ids() {
    let db = TestDb::new().await;
    let s = seed(&db).await;
    let e5 = &s.events[5];

    let tenant = s.events[0].tenant_id;
    let by_tenant = ids(
        &db,
        EventQuery {
            tenant_id: Some(tenant),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_tenant, s.matching(|_, e| e.tenant_id == tenant));

    let stream = s.events[1].stream_key.clone();
    let by_stream = ids(
        &db,
        EventQuery {
            stream_key: Some(stream.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_stream, s.matching(|_, e| e.stream_key == stream));

    let fills = EventQuery {
        event_types: Some(vec!["FILL_RECEIVED".into()]),
        ..Default::default()
    };
    assert_eq!(ids(&db, fills).await, s.matching(|i, _| i % 2 == 1));

    let window = EventQuery {
        from: Some(at(2)),
        to: Some(at(5)),
        ..Default::default()
    };
    assert_eq!(
        ids(&db, window).await,
        s.matching(|i, _| (2..5).contains(&i))
    );

    let fills_of_tenant = EventQuery {
        tenant_id: Some(tenant),
        event_types: Some(vec!["FILL_RECEIVED".into()]),
        ..Default::default()
    };
    assert_eq!(
        ids(&db, fills_of_tenant).await,
        s.matching(|i, e| i % 2 == 1 && e.tenant_id == tenant)
    );

    let command = EventQuery {
        command_id: s.events[4].command_id,
        ..Default::default()
    };
    assert_eq!(ids(&db, command).await, s.matching(|i, _| i == 4 || i == 7));
    let trace = EventQuery {
        trace_id: s.events[9].trace_id,
        ..Default::default()
    };
    assert_eq!(ids(&db, trace).await, s.matching(|i, _| i >= 8));
    let cause = EventQuery {
        causation_id: e5.causation_id,
        ..Default::default()
    };
    assert_eq!(ids(&db, cause).await, [s.ids[5]]);
    let workflow = EventQuery {
        workflow_id: e5.workflow_id,
        ..Default::default()
    };
    let found = query_events(&db.pool, &workflow)
        .await
        .expect("query_events");
    assert_eq!(found.len(), 1);
    let got = &found[0];
    assert_eq!(
        (
            got.event_id,
            got.tenant_id,
            got.stream_key.as_str(),
            got.event_type.as_str()
        ),
        (
            s.ids[5],
            e5.tenant_id,
            e5.stream_key.as_str(),
            e5.event_type.as_str()
        )
    );
    assert_eq!(
        (got.occurred_at, got.payload.as_ref().ok()),
        (e5.occurred_at, Some(&e5.payload))
    );
    assert_eq!(
        (got.actor_type.as_deref(), got.actor_id.as_deref()),
        (Some("CLI"), Some("operator-1"))
    );

    let nobody = EventQuery {
        tenant_id: Some(Uuid::new_v4()),
        ..Default::default()
    };
    assert!(ids(&db, nobody).await.is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn queries_page_by_position_and_limit() {
    let db = TestDb::new().await;
    let s = seed(&db).await;
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let q = EventQuery {
            after_position: after,
            limit: Some(3),
            ..Default::default()
        };
        let page = query_events(&db.pool, &q).await.expect("query_events");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.global_position);
        pages.extend(page.into_iter().map(|e| e.event_id));
    }
    assert_eq!(pages, s.ids);
}
