//! The HTTP surface of SPEC §4.4: `/health` and its two probes, `/metrics`,
//! `/streams`, and what they must never show.

use std::time::{Duration, Instant};

use crate::support::TestDb;
use serde_json::Value;

use crate::support::{
    append_flows, flows, free_port, get_json, get_text, guard_against_hang, http, metric_sum,
    unprojected, url_with_password, wait_caught_up, Daemon,
};

const HEALTH_FIELDS: [&str; 14] = [
    "status",
    "database",
    "sampled_at",
    "blocked_by",
    "lag_events",
    "max_stream_lag",
    "lag_seconds",
    "heartbeat_age_seconds",
    "head_position",
    "parked_streams",
    "held_events",
    "instance",
    "partitions",
    "partition_coverage",
];

const PARTITION_FIELDS: [&str; 6] = [
    "partition",
    "owner",
    "checkpoint",
    "lag_events",
    "state",
    "restarts",
];

const METRICS: [(&str, &str); 17] = [
    ("robson_read_blocked_seconds", "gauge"),
    ("robson_events_applied_total", "counter"),
    ("robson_events_skipped_total", "counter"),
    ("robson_events_dead_lettered_total", "counter"),
    ("robson_projection_checkpoint", "gauge"),
    ("robson_projection_lag_events", "gauge"),
    ("robson_projection_lag_seconds", "gauge"),
    ("robson_eventlog_head_position", "gauge"),
    ("robson_parked_streams", "gauge"),
    ("robson_batch_duration_seconds", "histogram"),
    ("robson_batch_size", "histogram"),
    ("robson_actor_restarts_total", "counter"),
    ("robson_poller_wakeups_total", "counter"),
    ("robson_db_errors_total", "counter"),
    ("robson_partition_coverage_months", "gauge"),
    ("robson_partitions_owned", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
];

/// Polls `/health` until the daemon reports itself caught up with the log
/// (lag 0 and the database's head), then returns (code, body).
async fn caught_up_health(daemon: &mut Daemon, db: &TestDb) -> (u16, Value) {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM event_log")
        .fetch_one(&db.pool)
        .await
        .expect("head position");
    wait_caught_up(&db.pool, daemon).await;
    let client = http();
    let started = Instant::now();
    loop {
        let (code, health) = get_json(&client, &daemon.url("/health")).await;
        let coverage_ok = health["partition_coverage"]
            .as_array()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|t| t["status"] == "OK"));
        if health["lag_events"] == 0 && health["head_position"] == head && coverage_ok {
            return (code, health);
        }
        guard_against_hang(started, &format!("/health never caught up: {health}"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn health_reports_every_field_of_the_spec_and_the_probes_agree_with_it() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 80, 500).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "3")]).await;
    let (code, health) = caught_up_health(&mut daemon, &db).await;

    for field in HEALTH_FIELDS {
        assert!(
            health.get(field).is_some(),
            "/health has no {field}: {health}"
        );
    }
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"], "up", "{health}");
    for zero in [
        "lag_events",
        "max_stream_lag",
        "parked_streams",
        "held_events",
    ] {
        assert_eq!(health[zero], 0, "{zero}: {health}");
    }
    assert_eq!(health["lag_seconds"].as_f64(), Some(0.0), "{health}");
    // Idle and caught up: the poller beats every poll (200 ms here), an
    // idle projector every 500 ms; 2 s leaves room for a busy machine and
    // still shows a loop that stopped.
    let heartbeat = health["heartbeat_age_seconds"].as_f64();
    assert!(
        heartbeat.is_some_and(|age| (0.0..2.0).contains(&age)),
        "heartbeat_age_seconds {heartbeat:?}: {health}"
    );
    let instance = health["instance"].as_str().expect("instance is text");
    assert!(
        instance.ends_with(&format!("-{}", daemon.pid)),
        "hostname-pid by default: {instance}"
    );
    let partitions = health["partitions"]
        .as_array()
        .expect("partitions is a list");
    assert_eq!(partitions.len(), 3, "{health}");
    for (i, p) in partitions.iter().enumerate() {
        for field in PARTITION_FIELDS {
            assert!(p.get(field).is_some(), "partition has no {field}: {p}");
        }
        assert_eq!(p["partition"], i, "{p}");
        assert_eq!(p["owner"], instance, "{p}");
        let checkpoint = p["checkpoint"].as_i64().expect("checkpoint is a number");
        assert!((0..=health["head_position"].as_i64().unwrap_or(0)).contains(&checkpoint));
        assert_eq!(p["restarts"], 0, "{p}");
    }
    for table in health["partition_coverage"]
        .as_array()
        .expect("coverage is a list")
    {
        assert!(table["table_name"].is_string(), "{table}");
        assert!(
            table["months_ahead"].as_i64().is_some_and(|m| m >= 2),
            "{table}"
        );
    }

    let client = http();
    let (live, _) = get_json(&client, &daemon.url("/health/live")).await;
    let (ready, _) = get_json(&client, &daemon.url("/health/ready")).await;
    assert_eq!(
        (live, ready),
        (200, code),
        "live always 200, ready mirrors /health"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn metrics_expose_every_series_of_the_spec_and_no_stream_key() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 81, 500).await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    caught_up_health(&mut daemon, &db).await;
    // A catch-up done by the first read needs no wake-up; the first poll
    // (200 ms here) counts one.
    let started = Instant::now();
    let text = loop {
        let text = get_text(&http(), &daemon.url("/metrics")).await;
        if metric_sum(&text, "robson_poller_wakeups_total", "") > 0.0 {
            break text;
        }
        guard_against_hang(started, "no poller wake-up counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    for (name, kind) in METRICS {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "no {kind} {name} in\n{text}"
        );
    }
    assert_metric_values(&text, &db.pool).await;
    let keys: Vec<String> = sqlx::query_scalar("SELECT stream_key FROM event_streams")
        .fetch_all(&db.pool)
        .await
        .expect("stream keys");
    assert!(!keys.is_empty());
    for key in &keys {
        let id = key.split(':').nth(1).unwrap_or(key);
        assert!(!text.contains(id), "a stream key in /metrics: {key}");
    }
    daemon.stop().await;
}

/// The values of /metrics after a finished catch-up of a daemon with the
/// default 8 partitions, against what the database holds: not only the
/// names of the series.
async fn assert_metric_values(text: &str, pool: &sqlx::PgPool) {
    let value = |name: &str, label: &str| metric_sum(text, name, label);
    let (progress, parked, head): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(last_seq), 0)::int8 FROM projection_stream_progress),
                (SELECT count(*) FROM projection_stream_progress WHERE parked_seq IS NOT NULL),
                (SELECT coalesce(max(global_position), 0) FROM event_log)",
    )
    .fetch_one(pool)
    .await
    .expect("read the projection state");
    let applied = value("robson_events_applied_total", "");
    let skipped = value("robson_events_skipped_total", "");
    assert!(applied > 0.0, "nothing applied:\n{text}");
    assert_eq!(
        applied + skipped,
        progress as f64,
        "applied + skipped = the streams' progress"
    );
    assert_eq!(value("robson_eventlog_head_position", ""), head as f64);
    assert_eq!(value("robson_parked_streams", ""), parked as f64);
    assert_eq!(value("robson_projection_lag_events", ""), 0.0);
    assert_eq!(value("robson_projection_lag_seconds", ""), 0.0);
    assert_eq!(value("robson_partitions_owned", ""), 8.0);
    let checkpoints: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, global_position FROM projection_checkpoints")
            .fetch_all(pool)
            .await
            .expect("read the checkpoints");
    assert_eq!(checkpoints.len(), 8);
    for (partition, position) in checkpoints {
        let label = format!("partition=\"{partition}\"");
        assert_eq!(
            value("robson_projection_checkpoint", &label),
            position as f64,
            "checkpoint of partition {partition}"
        );
    }
    let batches = value("robson_batch_size_count", "");
    assert!(batches > 0.0, "no batch counted");
    assert!(value("robson_batch_duration_seconds_count", "") >= batches);
    assert_eq!(value("robson_actor_restarts_total", ""), 0.0);
    assert_eq!(value("robson_db_errors_total", ""), 0.0);
    for line in text
        .lines()
        .filter(|l| l.starts_with("robson_partition_coverage_months{"))
    {
        let months: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(months >= 2.0, "coverage below 2 months: {line}");
    }
    assert!(
        text.contains("robson_partition_coverage_months{"),
        "no coverage sample"
    );
    assert!(value("process_resident_memory_bytes", "") > 1e6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn streams_are_paged_by_key_and_a_zero_limit_is_refused() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 82, 60).await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    let client = http();

    let mut seen = Vec::new();
    let mut url = daemon.url("/streams?limit=2");
    loop {
        let (code, page) = get_json(&client, &url).await;
        assert_eq!(code, 200, "{page}");
        let streams = page["streams"].as_array().expect("streams is a list");
        assert!(streams.len() <= 2, "{page}");
        for s in streams {
            assert_eq!(s["last_seq"], s["head_seq"], "caught up: {s}");
            assert_eq!(s["parked"], false, "{s}");
            seen.push(s["stream_key"].as_str().expect("stream_key").to_owned());
        }
        match page["next_after"].as_str() {
            Some(after) => {
                assert_eq!(Some(after), seen.last().map(String::as_str), "{page}");
                let query = [("after", after), ("limit", "2")];
                let next = reqwest::Url::parse_with_params(&daemon.url("/streams"), query);
                url = next.expect("a URL").to_string();
            }
            None => break,
        }
    }
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT stream_key FROM event_streams ORDER BY stream_key")
            .fetch_all(&db.pool)
            .await
            .expect("stream keys");
    assert_eq!(seen, keys, "the pages list every stream once, in key order");

    for bad in [
        "/streams?limit=0",
        "/streams?limit=-1",
        "/streams?limit=abc",
    ] {
        let status = client
            .get(daemon.url(bad))
            .send()
            .await
            .expect("an answer")
            .status();
        assert_eq!(status.as_u16(), 400, "GET {bad}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn no_response_or_log_line_shows_the_database_password_or_the_admin_token() {
    const PASSWORD: &str = "pw-8c1d0e5f3a";
    const TOKEN: &str = "admin-token-b2a64f0e93";
    let db = TestDb::new().await;
    append_flows(&db.pool, 83, 200).await;
    let url = url_with_password(&db.url, PASSWORD);
    let env = [("ROBSON_ADMIN_TOKEN", TOKEN), ("RUST_LOG", "debug")];
    let mut daemon = Daemon::start(&url, &env).await;
    wait_caught_up(&db.pool, &mut daemon).await;

    let client = http();
    let mut bodies = Vec::new();
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/streams?limit=1000",
    ] {
        bodies.push(
            client
                .get(daemon.url(path))
                .send()
                .await
                .expect(path)
                .text()
                .await
                .expect(path),
        );
    }
    for auth in ["", "Bearer nope"] {
        let request = client
            .get(daemon.url("/admin/parked"))
            .header("Authorization", auth);
        bodies.push(
            request
                .send()
                .await
                .expect("admin")
                .text()
                .await
                .expect("admin"),
        );
    }
    let request = client.get(daemon.url("/admin/parked")).bearer_auth(TOKEN);
    bodies.push(
        request
            .send()
            .await
            .expect("admin")
            .text()
            .await
            .expect("admin"),
    );
    daemon.stop().await;
    bodies.push(daemon.stdout());
    bodies.push(daemon.stderr());
    for body in bodies {
        assert!(!body.contains(PASSWORD), "the password is shown: {body}");
        assert!(!body.contains(TOKEN), "the token is shown: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn readiness_fails_during_a_large_catch_up_while_liveness_holds() {
    const MAX_LAG: i64 = 10;
    let db = TestDb::new().await;
    // Below the view's exact-count cap (10,000), so lag_events is exact.
    append_flows(&db.pool, 84, 8_000).await;
    let max_lag = MAX_LAG.to_string();
    let env = [
        ("ROBSON_HEALTH_MAX_LAG_EVENTS", max_lag.as_str()),
        ("ROBSON_BATCH_SIZE", "50"),
        ("ROBSON_PARTITIONS", "4"),
    ];
    let mut daemon = Daemon::start(&db.url, &env).await;
    crate::support::wait_projected(&db.pool, &mut daemon, 100).await;
    let client = http();

    // The catch-up held in place: no batch can commit (every batch moves
    // its checkpoint), reads go on. The lag is a state now, not a race
    // against a fast daemon.
    let mut hold = db.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .expect("hold the checkpoints");
    let behind = unprojected(&db.pool).await;
    assert!(behind > MAX_LAG, "the catch-up ended before the hold");
    let started = Instant::now();
    let mut answers = 0;
    while started.elapsed() < Duration::from_secs(2) || answers < 5 {
        let (code, health) = get_json(&client, &daemon.url("/health")).await;
        let (ready, _) = get_json(&client, &daemon.url("/health/ready")).await;
        let (live, _) = get_json(&client, &daemon.url("/health/live")).await;
        assert_eq!(live, 200, "liveness never fails because of lag: {health}");
        assert_eq!(
            (code, ready),
            (503, 503),
            "{behind} events behind: {health}"
        );
        assert_eq!(
            health["lag_events"], behind,
            "the lag is the log's: {health}"
        );
        answers += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hold.rollback().await.expect("release the hold");

    // Released: every "ready" must be true. The lag only shrinks (no
    // writers), so the lag read after an answer is at most the lag the
    // answer saw: an answer of 200 with more than MAX_LAG left after it
    // was wrong.
    let started = Instant::now();
    loop {
        daemon.assert_running("during the catch-up");
        let (code, health) = get_json(&client, &daemon.url("/health")).await;
        let (ready, _) = get_json(&client, &daemon.url("/health/ready")).await;
        let (live, _) = get_json(&client, &daemon.url("/health/live")).await;
        let after = unprojected(&db.pool).await;
        assert_eq!(live, 200, "liveness never fails because of lag: {health}");
        if code == 200 || ready == 200 {
            assert!(
                after <= MAX_LAG,
                "ready ({code}/{ready}) with {after} events still behind after it: {health}"
            );
        }
        if after == 0 && code == 200 && health["lag_events"] == 0 {
            assert_eq!(ready, 200, "ready mirrors /health at the end: {health}");
            break;
        }
        guard_against_hang(
            started,
            &format!("catch-up: {after} behind, /health {code} {health}"),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
}

/// Fails unless `health` is one consistent view: `sampled_at` present and
/// at most 250 ms older than the request (`sent`), and `head_position` at or
/// above every partition's checkpoint. Returns (head, age in ms).
fn assert_consistent(health: &Value, sent: chrono::DateTime<chrono::Utc>) -> (i64, i64) {
    let sampled_at = health["sampled_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no RFC 3339 sampled_at: {health}"));
    let age = (sent - sampled_at.with_timezone(&chrono::Utc)).num_milliseconds();
    assert!(age <= 250, "a view {age} ms old: {health}");
    let head = health["head_position"].as_i64().expect("head_position");
    for p in health["partitions"].as_array().expect("partitions") {
        let checkpoint = p["checkpoint"].as_i64().expect("checkpoint");
        assert!(
            checkpoint <= head,
            "checkpoint {checkpoint} above head {head}: {health}"
        );
    }
    (head, age)
}

/// Events up to `head` that are neither applied nor held behind a parked stream.
async fn unapplied_up_to(pool: &sqlx::PgPool, head: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*)::int8 FROM event_log e
           LEFT JOIN projection_stream_progress p USING (stream_key)
          WHERE e.global_position <= $1 AND e.seq > coalesce(p.last_seq, 0)
            AND p.parked_seq IS NULL",
    )
    .bind(head)
    .fetch_one(pool)
    .await
    .expect("count unapplied events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn every_health_answer_during_a_burst_is_one_fresh_consistent_view() {
    let db = TestDb::new().await;
    let env = [("ROBSON_PARTITIONS", "4"), ("ROBSON_BATCH_SIZE", "100")];
    let mut daemon = Daemon::start(&db.url, &env).await;
    let events = flows(85, 20_000);
    let pool = db.pool.clone();
    // One writer, chunks committed in order: an event up to a head seen in
    // one snapshot was committed in it.
    let burst = tokio::spawn(async move { crate::support::append_all(&pool, &events).await });
    let client = http();
    let started = Instant::now();
    let (mut answers, mut zero_lag, mut oldest) = (0, 0, 0);
    loop {
        daemon.assert_running("during the burst");
        let done = burst.is_finished();
        let sent = chrono::Utc::now();
        let (_, health) = get_json(&client, &daemon.url("/health")).await;
        let (head, age) = assert_consistent(&health, sent);
        answers += 1;
        oldest = oldest.max(age);
        if health["lag_events"] == 0 {
            zero_lag += 1;
            let unapplied = unapplied_up_to(&db.pool, head).await;
            assert_eq!(
                unapplied, 0,
                "lag_events 0 with events up to {head} unapplied: {health}"
            );
            if done && unprojected(&db.pool).await == 0 {
                break;
            }
        }
        guard_against_hang(started, &format!("burst: {health}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{answers} answers, {zero_lag} with lag 0, oldest view {oldest} ms");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn without_a_database_at_start_up_http_answers_and_sigterm_exits_0() {
    // Nothing listens on this port: the database is unreachable, not misconfigured.
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let mut daemon = Daemon::start(&url, &[]).await;
    let client = http();
    let (live, _) = get_json(&client, &daemon.url("/health/live")).await;
    assert_eq!(live, 200);
    let (code, health) = get_json(&client, &daemon.url("/health")).await;
    assert_eq!(
        (code, &health["database"]),
        (503, &Value::from("down")),
        "{health}"
    );
    let (ready, _) = get_json(&client, &daemon.url("/health/ready")).await;
    assert_eq!(ready, 503);
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM while starting: {status:?}"
    );
    let log = daemon.stderr();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_port_in_use_exits_1_with_one_error_and_no_panic() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let mut daemon = Daemon::spawn(&db.url, &[("ROBSON_HTTP_ADDR", &addr)]);
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{status:?}");
    let log = daemon.stderr();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains(&format!("Failed to bind ROBSON_HTTP_ADDR {addr}"))
            && log.contains("Address already in use"),
        "{log}"
    );
    drop(taken);
}
