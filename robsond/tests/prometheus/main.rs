//! The alert rules and the Grafana dashboard of `deploy/` on a real
//! Prometheus server (SPEC §5) scraping the real `robsond`: the parked-streams
//! alert fires while a stream is parked and resolves once it is skipped; the
//! lag alerts fire while a catch-up is held back by an open transaction and
//! resolve after it; every query of the dashboard returns data.
//!
//! The test's copy of the rules differs from `deploy/prometheus/alerts.yml`
//! only in its `for:` durations (2 s instead of minutes), and Prometheus
//! scrapes and evaluates every second; the expressions are the shipped ones.
//!
//! `scripts/with-postgres.sh cargo test -p robsond --all-features --test
//! prometheus -- --include-ignored`. Needs Debian's `prometheus` package.
//! Its tests run one at a time: the lag test holds commit-safe reading back
//! for the whole cluster.

// The daemon tests' helpers; this binary uses only some of them.
#[allow(dead_code)]
#[path = "../daemon/support.rs"]
mod support;

#[path = "../deploy/dashboard.rs"]
mod dashboard;

mod server;

use std::time::Instant;

use serde_json::{json, Value};
use sqlx::Connection as _;
use uuid::Uuid;

use server::Prometheus;
use support::{append_all, append_flows, event, http, wait_caught_up, wait_for_stream, Daemon};

/// A test database with every migration robsond applies.
type TestDb = robson_eventlog::testing::Database<robsond::schema::Robsond>;

const TOKEN: &str = "prometheus-token-58a1c2";

/// Held for the whole of each test (see the module doc).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `host:port` of the daemon, as a scrape target.
fn target(daemon: &Daemon) -> String {
    daemon.base.trim_start_matches("http://").to_owned()
}

/// Waits until Prometheus has scraped the daemon and evaluated the rules
/// on what it scraped.
async fn wait_scraped_and_evaluated(prom: &Prometheus) {
    prom.wait_query("up{job=\"robsond\"} == 1").await;
    prom.wait_query("robson_database_up == 1").await;
    let first = Instant::now();
    // Two evaluations after the first good scrape.
    loop {
        let groups = prom.api("rules", &[]).await;
        let evaluated = groups["groups"][0]["lastEvaluation"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if evaluated.is_some_and(|t| chrono::Utc::now() - t.to_utc() < chrono::Duration::seconds(1))
            && first.elapsed().as_secs_f64() > 2.5
        {
            return;
        }
        support::guard_against_hang(first, "rules never evaluated");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn the_parked_streams_alert_fires_while_a_stream_is_parked_and_resolves_after_the_skip() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = TestDb::new().await;
    append_flows(&db.pool, 181, 200).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ADMIN_TOKEN", TOKEN)]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    let prom = Prometheus::start(&target(&daemon)).await;
    wait_scraped_and_evaluated(&prom).await;
    assert_eq!(prom.alert_state("RobsondParkedStreams").await, None);
    assert_eq!(prom.alert_state("RobsondDeadLetters").await, None);

    // An acknowledgement of an order nobody submitted parks its stream.
    let (tenant, order) = (Uuid::new_v4(), Uuid::new_v4());
    let key = format!("order:{order}");
    let ack = json!({"order_id": order, "exchange_order_id": "p-1"});
    append_all(&db.pool, &[event(tenant, &key, "ORDER_ACKED", ack)]).await;
    let parked =
        "SELECT coalesce(parked_seq, 0) FROM projection_stream_progress WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &key, parked, 1_i64).await;
    prom.wait_alert("RobsondParkedStreams", Some("firing"))
        .await;
    prom.wait_alert("RobsondDeadLetters", Some("firing")).await;
    let alerts = prom.api("alerts", &[]).await;
    let summary = alerts["alerts"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["labels"]["alertname"] == "RobsondParkedStreams")
        })
        .map(|a| a["annotations"]["summary"].clone());
    assert!(
        summary
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("1 stream(s) parked")),
        "{alerts}"
    );

    let skip = http()
        .post(daemon.url(&format!("/admin/streams/{key}/skip")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST skip");
    assert_eq!(skip.status().as_u16(), 200);
    let last =
        "SELECT coalesce(parked_seq, -1) FROM projection_stream_progress WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &key, last, -1_i64).await;
    prom.wait_alert("RobsondParkedStreams", None).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn the_lag_alerts_fire_during_a_held_back_catch_up_and_every_dashboard_query_returns_data() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "4")]).await;
    let prom = Prometheus::start(&target(&daemon)).await;
    wait_scraped_and_evaluated(&prom).await;
    for alert in ["RobsondProjectionLagEvents", "RobsondProjectionLagSeconds"] {
        assert_eq!(
            prom.alert_state(alert).await,
            None,
            "{alert} before any lag"
        );
    }

    // An open transaction with an xid: the events committed after it began
    // cannot be read (commit-safe reading) until it ends.
    let mut blocker = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connect the blocker");
    sqlx::raw_sql("SET application_name = 'h17-blocker'; BEGIN; SELECT pg_current_xact_id()")
        .execute(&mut blocker)
        .await
        .expect("open a transaction with an xid");
    let held = Instant::now();
    // More than the 10000 events of RobsondProjectionLagEvents.
    let total = append_flows(&db.pool, 182, 12_000).await as i64;
    prom.wait_alert("RobsondProjectionLagEvents", Some("firing"))
        .await;
    // The oldest held event grows older than the 30 s of the other rule.
    prom.wait_alert("RobsondProjectionLagSeconds", Some("firing"))
        .await;
    eprintln!(
        "both lag alerts firing {:?} after reading was held back ({total} events)",
        held.elapsed()
    );
    let lag = prom.query("robson_projection_lag_events").await;
    assert!(
        lag.iter().any(|s| value(s).is_some_and(|v| v > 10_000.0)),
        "{lag:?}"
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("end the blocker");
    blocker.close().await.expect("close the blocker");
    wait_caught_up(&db.pool, &mut daemon).await;
    prom.wait_alert("RobsondProjectionLagEvents", None).await;
    prom.wait_alert("RobsondProjectionLagSeconds", None).await;

    check_dashboard_queries(&prom).await;
    daemon.stop().await;
}

/// A sample's value (`[time, "value"]`) as a number.
fn value(sample: &Value) -> Option<f64> {
    sample["value"][1].as_str()?.parse().ok()
}

/// Every query of the Grafana dashboard, with its variables set as Grafana
/// would for "all instances", returns data; at least one value of each is
/// a number (a rate over a window with activity, not NaN).
async fn check_dashboard_queries(prom: &Prometheus) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/robson-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let json: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let exprs = dashboard::exprs(&json);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let mut empty = Vec::new();
    for expr in &exprs {
        if let Some(args) = expr
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
        {
            // A Grafana templating function: the label values API.
            let (metric, label) = args.split_once(',').expect("label_values(metric, label)");
            let values = prom
                .api(
                    &format!("label/{}/values", label.trim()),
                    &[("match[]", metric.trim())],
                )
                .await;
            if values.as_array().is_none_or(Vec::is_empty) {
                empty.push(expr.clone());
            }
            continue;
        }
        // "All" instances (the variable's allValue), and a rate interval
        // wide enough to hold the catch-up just done.
        let query = expr
            .replace("$instance", ".*")
            .replace("$__rate_interval", "5m");
        let result = prom.query(&query).await;
        if !result.iter().any(|s| value(s).is_some_and(f64::is_finite)) {
            empty.push(format!("{query} → {result:?}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
}

#[test]
fn the_test_rules_differ_from_the_shipped_ones_only_in_their_for_durations() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml");
    let shipped = std::fs::read_to_string(path).expect("alerts.yml");
    let fast = server::fast_rules(&shipped);
    let (a, b): (Vec<&str>, Vec<&str>) = (shipped.lines().collect(), fast.lines().collect());
    assert_eq!(a.len(), b.len());
    let mut changed = 0;
    for (x, y) in a.iter().zip(&b) {
        if x.trim_start().starts_with("for:") {
            assert_eq!(y.trim(), format!("for: {}", server::TEST_FOR));
            changed += 1;
        } else {
            assert_eq!(x, y);
        }
    }
    assert!(changed >= 5, "only {changed} for: lines");
}
