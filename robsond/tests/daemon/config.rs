//! Configuration and the one-shot commands (SPEC §4.2, §4.5): a bad setting
//! stops the daemon before it does anything, with exit 2 and one line naming
//! the variable; secrets are never printed; `migrate` is idempotent;
//! `status` needs no daemon.

use std::time::{Duration, Instant};

use crate::support::TestDb;
use nix::sys::signal::Signal;
use serde_json::Value;
use sqlx::Connection as _;
use uuid::Uuid;

use crate::poison::{append_acked_before_submitted, PARKED_SEQ};
use crate::support::{
    append_flows, empty_database, guard_against_hang, robsond, robsond_within, texts,
    wait_caught_up, wait_for_stream, Daemon, HANG_GUARD,
};

const PASSWORD: &str = "s3cr3tP4ss";
/// Valid, but nothing listens on port 1: a daemon that connected before
/// checking its configuration would hang retrying instead of exiting 2.
const UNREACHABLE: &str = "postgres://robson:s3cr3tP4ss@127.0.0.1:1/robson";
const TOKEN: &str = "admin-token-7d3e91c04a";

/// A configuration error is reported at once; the limit only stops a hang.
const CONFIG_CHECK_LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_setting_stops_the_daemon_with_exit_2_and_one_line_naming_it() {
    let cases = [
        ("DATABASE_URL", None),
        (
            "DATABASE_URL",
            Some("mysql://robson:s3cr3tP4ss@127.0.0.1/robson"),
        ),
        ("ROBSON_PARTITIONS", Some("0")),
        ("ROBSON_PARTITIONS", Some("abc")),
        ("ROBSON_PARTITIONS", Some("2000")),
        ("ROBSON_BATCH_SIZE", Some("0")),
        ("ROBSON_ON_POISON", Some("maybe")),
        ("ROBSON_LOG_FORMAT", Some("xml")),
        ("ROBSON_HTTP_ADDR", Some("nonsense")),
        ("ROBSON_ADMIN_TOKEN", Some("tooShortTok1")),
        ("ROBSON_VERIFY_INTERVAL_SECS", Some("-1")),
        ("ROBSON_VERIFY_INTERVAL_SECS", Some("5m")),
        ("ROBSON_VERIFY_INTERVAL_SECS", Some("604801")),
        ("ROBSON_VERIFY_SAMPLE", Some("0")),
        ("ROBSON_VERIFY_SAMPLE", Some("many")),
    ];
    for (var, value) in cases {
        let mut env = vec![("DATABASE_URL", UNREACHABLE), ("RUST_LOG", "debug")];
        env.retain(|(k, _)| *k != var);
        if let Some(v) = value {
            env.push((var, v));
        }
        // `robsond` alone is `robsond run`.
        for args in [&["run"][..], &[]] {
            let out = robsond_within(CONFIG_CHECK_LIMIT, args, &env).await;
            let (stdout, stderr) = texts(&out);
            let case = format!("robsond {args:?} with {var}={value:?}");
            assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{case}: one line on stderr, got {stderr:?}");
            assert!(
                lines[0].contains(var),
                "{case}: the line names {var}: {stderr:?}"
            );
            assert_eq!(stdout, "", "{case}: nothing on stdout");
            assert!(
                !stderr.contains(PASSWORD),
                "{case}: the password is printed: {stderr}"
            );
            assert!(
                !stderr.contains("tooShortTok1"),
                "{case}: the token is printed"
            );
        }
    }
}

/// DATABASE_URLs that do not parse as PostgreSQL URLs, each with the
/// password in it: an unencoded space, a port beyond 65535, an empty host
/// after the credentials, a stray `%`.
const MALFORMED_URLS: [&str; 4] = [
    "postgres://robson:s3cr3tP4ss x@/",
    "postgres://robson:s3cr3tP4ss@127.0.0.1:99999/robson",
    "postgres://robson:s3cr3tP4ss@/robson",
    "postgres://robson:s3cr3tP4ss%zz@127.0.0.1/robson",
];

/// Runs `robsond ARGS` with `env` and checks the configuration-error
/// contract: exit 2, nothing on stdout, one line on stderr naming `var`,
/// no secret printed.
async fn assert_config_error(args: &[&str], env: &[(&str, &str)], var: &str) {
    let out = robsond_within(CONFIG_CHECK_LIMIT, args, env).await;
    let (stdout, stderr) = texts(&out);
    let case = format!("robsond {args:?} with {env:?}");
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{case}: one line on stderr, got {stderr:?}");
    assert!(
        lines[0].contains(var),
        "{case}: the line names {var}: {stderr:?}"
    );
    assert_eq!(stdout, "", "{case}: nothing on stdout");
    assert!(
        !stderr.contains(PASSWORD),
        "{case}: the password is printed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_database_url_exits_2_naming_it_for_every_subcommand() {
    let tenant = Uuid::new_v4().to_string();
    let append = [
        "append",
        "--tenant",
        &tenant,
        "--stream",
        "order:1",
        "--type",
        "X",
        "--payload",
        "{}",
    ];
    let commands: [&[&str]; 14] = [
        &[],
        &["run"],
        &["migrate"],
        &["status"],
        &["status", "--json"],
        &append,
        &["generate", "--orders", "1"],
        &["streams", "parked"],
        &["streams", "retry", "order:1"],
        &["streams", "skip", "order:1"],
        &["snapshot"],
        &["rebuild"],
        &["verify"],
        // With DATABASE_URL set, dev uses it and starts no PostgreSQL.
        &["dev"],
    ];
    for url in MALFORMED_URLS {
        for args in commands {
            assert_config_error(args, &[("DATABASE_URL", url)], "DATABASE_URL").await;
        }
    }
    // The database-only commands read the pool size too; rebuild and verify
    // the daemon's batch size and poison policy.
    let pool_size = [
        ("DATABASE_URL", UNREACHABLE),
        ("ROBSON_DB_MAX_CONNECTIONS", "1"),
    ];
    for args in [
        &["migrate"][..],
        &["status"],
        &["streams", "parked"],
        &["snapshot"],
    ] {
        assert_config_error(args, &pool_size, "ROBSON_DB_MAX_CONNECTIONS").await;
    }
    let batch = [("DATABASE_URL", UNREACHABLE), ("ROBSON_BATCH_SIZE", "0")];
    for args in [&["rebuild"][..], &["verify"]] {
        assert_config_error(args, &batch, "ROBSON_BATCH_SIZE").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_is_never_printed_while_the_database_is_unreachable() {
    let mut daemons: Vec<(&str, Daemon)> = ["text", "json"]
        .into_iter()
        .map(|format| {
            let env = [
                ("ROBSON_ADMIN_TOKEN", TOKEN),
                ("ROBSON_LOG_FORMAT", format),
                ("RUST_LOG", "debug"),
            ];
            (format, Daemon::spawn(UNREACHABLE, &env))
        })
        .collect();
    // Until each has reported at least one failed attempt to connect.
    let started = Instant::now();
    while daemons.iter().any(|(_, d)| !d.stderr().contains("retry")) {
        for (_, daemon) in daemons.iter_mut() {
            daemon.assert_running("while its database is unreachable");
        }
        guard_against_hang(started, "no connection attempt was logged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (format, daemon) in daemons.iter_mut() {
        daemon.signal(Signal::SIGTERM);
        let status = daemon.wait_exit(HANG_GUARD).await;
        assert!(status.is_some(), "robsond ignored SIGTERM");
        let (stdout, stderr) = (daemon.stdout(), daemon.stderr());
        for secret in [PASSWORD, TOKEN] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{format}: a secret is printed:\n{stdout}\n{stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_the_database_exits_0() {
    let mut daemon = Daemon::spawn(UNREACHABLE, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    daemon.assert_running("while its database is unreachable");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_subcommand_or_option_is_a_usage_error() {
    for args in [&["frobnicate"][..], &["status", "--bogus"]] {
        let out = robsond(args, &[("DATABASE_URL", UNREACHABLE)]).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "robsond {args:?}: {:?}",
            texts(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn migrate_applies_the_schema_and_then_is_a_no_op() {
    let url = empty_database().await;
    for run in 1..=2 {
        let out = robsond(&["migrate"], &[("DATABASE_URL", &url)]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "migrate #{run}: {:?}",
            texts(&out)
        );
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let tables: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT to_regclass(t)::text FROM unnest(ARRAY['event_log', 'orders_current',
                'projection_checkpoints', 'projection_dead_letters']) AS t",
    )
    .fetch_all(&mut conn)
    .await
    .expect("look the tables up");
    assert!(tables.iter().all(Option::is_some), "{tables:?}");

    // A database migrated beforehand (as psql would) is left as it is.
    let db = TestDb::new().await;
    let out = robsond(&["migrate"], &[("DATABASE_URL", &db.url)]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn status_reads_checkpoints_lag_and_parked_streams_without_a_daemon() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 60, 300).await;
    let (_, parked) = append_acked_before_submitted(&db.pool, Uuid::new_v4()).await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "3")]).await;
    wait_for_stream(&db.pool, &mut daemon, &parked, PARKED_SEQ, 1_i64).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    let behind = append_flows(&db.pool, 61, 100).await;

    let env = [("DATABASE_URL", db.url.as_str())];
    let out = robsond(&["status", "--json"], &env).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("status --json prints JSON");
    assert_eq!(status["lag_events"], behind, "{status}");
    // The failed event and the two behind it: lag + held = every unprojected event.
    assert_eq!(status["held_events"], 3, "{status}");
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM event_log")
        .fetch_one(&db.pool)
        .await
        .expect("head");
    assert_eq!(status["head_position"], head, "{status}");
    let listed = status["parked_streams"].to_string();
    assert!(listed.contains(&parked), "{status}");
    let partitions = status["partitions"].as_array().expect("partitions");
    assert_eq!(
        partitions.len(),
        3,
        "one checkpoint per partition: {status}"
    );
    for p in partitions {
        let position = p["checkpoint_position"]
            .as_i64()
            .expect("a checkpoint position");
        assert!((0..=head).contains(&position), "{p}");
    }

    let out = robsond(&["status"], &env).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&parked),
        "the table names the parked stream: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn status_reads_a_lag_beyond_ten_thousand_events_from_positions() {
    let db = TestDb::new().await;
    let appended = append_flows(&db.pool, 62, 12_000).await as i64;
    let env = [("DATABASE_URL", db.url.as_str())];
    let out = robsond(&["status", "--json"], &env).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("status --json prints JSON");
    // Nothing projected and no gap in the positions: the estimate (head −
    // oldest checkpoint) is exact here, and beyond the cap nothing is counted.
    assert!(appended > 10_000);
    assert_eq!(status["lag_events"], appended, "{status}");
    assert!(status["lag_seconds"].as_f64() > Some(0.0), "{status}");
    assert!(status["max_stream_lag"].as_i64() > Some(0), "{status}");
}
