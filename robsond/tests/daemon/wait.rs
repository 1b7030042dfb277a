//! Read-your-writes (SPEC §4.4 `/wait`, §4.5 `robsond wait`): an answer as
//! soon as the stream's progress reaches the seq, 409 with the dead letter
//! for a parked stream, 504 on timeout, 503 beyond the bound on waiters, and
//! waiters never keep a stopping daemon from exiting.

use std::time::{Duration, Instant};

use crate::support::TestDb;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{
    append_all, event, guard_against_hang, robsond, stream, texts, wait_for_stream, Daemon,
};

/// The bound of `robsond::daemon::waiters::MAX_WAITERS`.
const MAX_WAITERS: usize = 1024;

const LAST_SEQ: &str = "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1";

/// An event of a type no projection handles: it only moves its stream on.
fn noted(tenant: Uuid, key: &str) -> robson_eventlog::Event {
    event(
        tenant,
        key,
        "DECISION_PROPOSED",
        json!({"n": Uuid::new_v4()}),
    )
}

/// A client that allows many connections and waits long enough for any wait.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client")
}

async fn get(client: reqwest::Client, url: String) -> (u16, Value) {
    let r = client
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let code = r.status().as_u16();
    let body = r.text().await.expect("body");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {url}: {code} with non-JSON {body:?}: {e}"));
    (code, json)
}

fn wait_url(daemon: &Daemon, key: &str, seq: i64, timeout_ms: u64) -> String {
    daemon.url(&format!(
        "/wait?stream={key}&seq={seq}&timeout_ms={timeout_ms}"
    ))
}

/// A stream with one projected event.
async fn projected_stream(db: &TestDb, daemon: &mut Daemon, tenant: Uuid) -> String {
    let (_, key) = stream("strategy");
    append_all(&db.pool, &[noted(tenant, &key)]).await;
    wait_for_stream(&db.pool, daemon, &key, LAST_SEQ, 1_i64).await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_wait_is_answered_after_the_append_that_reaches_its_seq() {
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "2")]).await;
    let tenant = Uuid::new_v4();
    let key = projected_stream(&db, &mut daemon, tenant).await;
    let c = client();

    let (code, body) = get(c.clone(), wait_url(&daemon, &key, 1, 1000)).await;
    assert_eq!(
        (code, &body["projected"], &body["last_seq"]),
        (200, &json!(true), &json!(1))
    );

    let pending = tokio::spawn(get(c.clone(), wait_url(&daemon, &key, 2, 20_000)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Seq 2 does not exist yet: no correct daemon can have answered.
    assert!(!pending.is_finished(), "answered before seq 2 was appended");
    append_all(&db.pool, &[noted(tenant, &key)]).await;
    let (code, body) = pending.await.expect("the waiter");
    assert_eq!((code, &body["last_seq"]), (200, &json!(2)), "{body}");

    let (code, body) = get(c.clone(), wait_url(&daemon, &key, 3, 300)).await;
    assert_eq!((code, &body["projected"]), (504, &json!(false)), "{body}");

    for bad in [
        "seq=1",
        "stream=x&seq=0",
        "stream=x&seq=two",
        "stream=&seq=1",
    ] {
        let (code, body) = get(c.clone(), daemon.url(&format!("/wait?{bad}"))).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    // The CLI: exit 0 when reached, 3 on timeout.
    let env = [("DATABASE_URL", db.url.as_str())];
    let out = robsond(&["wait", "--stream", &key, "--seq", "2"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    let args = [
        "wait",
        "--stream",
        &key,
        "--seq",
        "9",
        "--timeout-ms",
        "200",
    ];
    let out = robsond(&args, &env).await;
    assert_eq!(out.status.code(), Some(3), "{:?}", texts(&out));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_wait_on_a_stream_parked_at_or_before_its_seq_gets_409_and_the_dead_letter() {
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ON_POISON", "park")]).await;
    let tenant = Uuid::new_v4();
    let key = projected_stream(&db, &mut daemon, tenant).await;
    let c = client();
    let pending = tokio::spawn(get(c.clone(), wait_url(&daemon, &key, 3, 20_000)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "answered before anything happened");
    // Seq 2 acknowledges an order nobody submitted: an invariant violation.
    let ack = json!({"order_id": Uuid::new_v4(), "exchange_order_id": "x"});
    append_all(
        &db.pool,
        &[event(tenant, &key, "ORDER_ACKED", ack), noted(tenant, &key)],
    )
    .await;
    let (code, body) = pending.await.expect("the waiter");
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        (&body["parked_seq"], &body["last_seq"]),
        (&json!(2), &json!(1)),
        "{body}"
    );
    assert_eq!(body["dead_letter"]["seq"], 2, "{body}");
    assert_eq!(
        body["dead_letter"]["error_kind"], "invariant_violation",
        "{body}"
    );

    // Arriving after the park: the first look settles it.
    let (code, body) = get(c.clone(), wait_url(&daemon, &key, 2, 1000)).await;
    assert_eq!(
        (code, &body["dead_letter"]["stream_key"]),
        (409, &json!(key)),
        "{body}"
    );
    let (code, _) = get(c.clone(), wait_url(&daemon, &key, 1, 1000)).await;
    assert_eq!(code, 200, "seq 1 was projected before the park");

    let env = [("DATABASE_URL", db.url.as_str())];
    let out = robsond(&["wait", "--stream", &key, "--seq", "2"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", texts(&out));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn five_hundred_concurrent_waiters_are_all_answered_by_one_append() {
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "4")]).await;
    let tenant = Uuid::new_v4();
    let mut keys = Vec::new();
    for _ in 0..50 {
        keys.push(projected_stream(&db, &mut daemon, tenant).await);
    }
    let c = client();
    let waiters: Vec<_> = (0..500)
        .map(|i| tokio::spawn(get(c.clone(), wait_url(&daemon, &keys[i % 50], 2, 30_000))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "answered before the append"
    );
    let second: Vec<_> = keys.iter().map(|k| noted(tenant, k)).collect();
    append_all(&db.pool, &second).await;
    for w in waiters {
        let (code, body) = w.await.expect("a waiter");
        assert_eq!((code, &body["last_seq"]), (200, &json!(2)), "{body}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn waiters_beyond_the_bound_get_503_and_a_stop_answers_the_others() {
    let db = TestDb::new().await;
    let env = [("ROBSON_SHUTDOWN_TIMEOUT_SECS", "10")];
    let mut daemon = Daemon::start(&db.url, &env).await;
    let key = projected_stream(&db, &mut daemon, Uuid::new_v4()).await;
    let c = client();
    // Ten more than the bound, each holding its slot for 30 s: exactly ten
    // are refused, whatever order they arrive in.
    let mut long: Vec<_> = (0..MAX_WAITERS + 10)
        .map(|_| tokio::spawn(get(c.clone(), wait_url(&daemon, &key, 99, 30_000))))
        .collect();
    let started = Instant::now();
    let mut refused = Vec::new();
    while refused.len() < 10 {
        let (ended, pending): (Vec<_>, Vec<_>) = long.into_iter().partition(|w| w.is_finished());
        long = pending;
        for w in ended {
            refused.push(w.await.expect("a waiter"));
        }
        guard_against_hang(started, &format!("{} refused so far", refused.len()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (code, body) in &refused {
        assert_eq!(*code, 503, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(long.len(), MAX_WAITERS, "waiting: the bound");

    let stopping = Instant::now();
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit with waiters connected: {status:?}"
    );
    eprintln!(
        "exited {:?} after SIGTERM with {MAX_WAITERS} waiters",
        stopping.elapsed()
    );
    for w in long {
        // Answered (503, shutting down) or cut off by the stop: never left hanging.
        let _ = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a waiter left hanging after the daemon exited");
    }
}
