//! PostgreSQL restarted under a running daemon (SPEC §4.1, §4.3): the daemon
//! stays up, says `database: "down"` (503) meanwhile, reconnects and
//! finishes with the tables of a clean run.
//!
//! Also here, as they need the cluster to themselves: a transaction held
//! open on purpose (`blocked_by`), which holds back commit-safe reading in
//! every database of the cluster, and the NOTIFY latency tests (`notify`),
//! which any other test's open transaction would hold back.
//!
//! A binary of its own: stopping the server affects every database of the
//! cluster, and cargo runs test binaries one after another, so nothing else
//! runs meanwhile; within the binary its tests take [`ONE_AT_A_TIME`], as
//! each stops the server or holds reading back for the others. It needs `scripts/with-postgres.sh`, which exports the
//! data directory, the binaries and the `runuser` prefix used here.

// The daemon tests' helpers; this binary uses only some of them.
#[allow(dead_code)]
#[path = "../daemon/support.rs"]
mod support;

mod notify;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{
    append_flows, assert_equals_clean_run, get_json, get_text, guard_against_hang, http,
    metric_sum, wait_caught_up, wait_projected, Daemon,
};

/// A test database with every migration robsond applies.
type TestDb = robson_eventlog::testing::Database<robsond::schema::Robsond>;

/// Held for the whole of each test: the libtest threads would otherwise run
/// them side by side, and one's outage would break another's database.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The test cluster's server, restarted on drop if a test left it stopped.
#[derive(Debug)]
struct Server {
    pg_ctl: PathBuf,
    data: PathBuf,
    run_as: Vec<String>,
    stopped: bool,
}

impl Server {
    fn from_env() -> Server {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run this test with scripts/with-postgres.sh")
            })
        };
        Server {
            pg_ctl: PathBuf::from(var("ROBSON_TEST_PG_BIN")).join("pg_ctl"),
            data: PathBuf::from(var("ROBSON_TEST_PGDATA")),
            run_as: var("ROBSON_TEST_PG_RUN_AS")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            stopped: false,
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut command = match self.run_as.split_first() {
            Some((program, prefix)) => {
                let mut c = Command::new(program);
                c.args(prefix).arg(&self.pg_ctl);
                c
            }
            None => Command::new(&self.pg_ctl),
        };
        command
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl")
    }

    fn stop(&mut self) {
        self.stopped = true;
        let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&mut self) {
        // The server's output goes to the log file, so pg_ctl's pipes close.
        let log = self.data.with_file_name("server.log");
        let log = log.to_string_lossy();
        let out = self.pg_ctl(&["-w", "-t", "60", "-l", &log, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.stopped = false;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stopped {
            self.start();
        }
    }
}

/// How long the database stays down at least.
const DOWNTIME: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn an_outage_during_a_catch_up_shows_within_a_second_and_the_catch_up_finishes_after_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut server = Server::from_env();
    let db = TestDb::new().await;
    let total = append_flows(&db.pool, 90, 15_000).await as i64;
    let env = [("ROBSON_PARTITIONS", "4"), ("ROBSON_BATCH_SIZE", "50")];
    let mut daemon = Daemon::start(&db.url, &env).await;
    wait_projected(&db.pool, &mut daemon, total / 10).await;
    let client = http();
    let done = support::projected(&db.pool).await;
    eprintln!("stopping the database with {done} of {total} events projected");

    server.stop();
    // The precondition: the server really is down while the daemon runs.
    assert!(
        !reachable(&db.url).await,
        "the server still accepts connections"
    );
    let down_after = until_database(&mut daemon, "down").await;
    assert!(
        down_after <= Duration::from_secs(1),
        "down after {down_after:?}"
    );
    // Nothing commits while the server is down: what the daemon applies
    // later was still pending when the outage hit.
    let applied_in_outage = applied(&daemon).await;
    tokio::time::sleep(DOWNTIME).await;
    assert_eq!(until_database(&mut daemon, "down").await.as_secs(), 0);
    server.start();
    let up_after = until_database(&mut daemon, "up").await;
    eprintln!("database: down after {down_after:?}, up again {up_after:?} after its start");
    assert!(up_after <= Duration::from_secs(1), "up after {up_after:?}");
    wait_caught_up(&db.pool, &mut daemon).await;
    assert!(
        applied(&daemon).await > applied_in_outage,
        "the catch-up ended before the outage: the scenario did not happen"
    );
    append_flows(&db.pool, 91, 1_000).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    let started = Instant::now();
    loop {
        let (code, health) = get_json(&client, &daemon.url("/health")).await;
        if code == 200 && health["lag_events"] == 0 {
            let instance = health["instance"].as_str().unwrap_or_default();
            assert!(
                instance.ends_with(&format!("-{}", daemon.pid)),
                "the same process: {health}"
            );
            break;
        }
        guard_against_hang(
            started,
            &format!("/health after the catch-up: {code} {health}"),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.assert_running("at the end");
    daemon.stop().await;
    assert_equals_clean_run(&db.pool, &db.url, &[("ROBSON_PARTITIONS", "3")]).await;
}

/// Polls `/health` every 50 ms until its `database` field is `want`;
/// returns how long that took. Liveness must hold throughout.
async fn until_database(daemon: &mut Daemon, want: &str) -> Duration {
    let client = http();
    let since = Instant::now();
    loop {
        daemon.assert_running("while the database comes and goes");
        let (live, _) = get_json(&client, &daemon.url("/health/live")).await;
        assert_eq!(live, 200, "/health/live");
        let (code, health) = get_json(&client, &daemon.url("/health")).await;
        if health["database"] == want {
            if want == "down" {
                assert_eq!(code, 503, "not ready while the database is down: {health}");
                let (ready, _) = get_json(&client, &daemon.url("/health/ready")).await;
                assert_eq!(ready, 503, "/health/ready while the database is down");
            }
            return since.elapsed();
        }
        guard_against_hang(since, &format!("/health never said {want}: {health}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events the daemon has applied so far, by its own counter.
async fn applied(daemon: &Daemon) -> f64 {
    let metrics = get_text(&http(), &daemon.url("/metrics")).await;
    metric_sum(&metrics, "robson_events_applied_total", "")
}

/// Whether a new connection to `url` succeeds now.
async fn reachable(url: &str) -> bool {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_daemon_started_while_the_server_is_stopped_serves_http_and_starts_when_it_returns() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut server = Server::from_env();
    let db = TestDb::new().await;
    let total = append_flows(&db.pool, 93, 500).await as i64;
    server.stop();
    let mut daemon = Daemon::start(&db.url, &[]).await;
    let client = http();
    let (code, health) = get_json(&client, &daemon.url("/health")).await;
    assert_eq!(
        (code, &health["database"]),
        (503, &serde_json::json!("down")),
        "{health}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(until_database(&mut daemon, "down").await.as_secs(), 0);

    server.start();
    let up_after = until_database(&mut daemon, "up").await;
    eprintln!("database: up {up_after:?} after pg_ctl start returned (daemon starting)");
    assert!(up_after <= Duration::from_secs(1), "up after {up_after:?}");
    wait_projected(&db.pool, &mut daemon, total).await;
    daemon.stop().await;

    // SIGTERM while it waits for the database: exit 0 at once.
    server.stop();
    let mut waiting = Daemon::start(&db.url, &[]).await;
    waiting.signal(nix::sys::signal::Signal::SIGTERM);
    let status = waiting.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        !waiting.stderr().contains("panicked"),
        "{}",
        waiting.stderr()
    );
    server.start();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn an_open_transaction_holding_reading_back_is_named_in_health_and_metrics() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use sqlx::Connection as _;
    let db = TestDb::new().await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_PARTITIONS", "2")]).await;
    let mut blocker = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connect the blocker");
    sqlx::raw_sql("SET application_name = 'h3-blocker'; BEGIN; SELECT pg_current_xact_id()")
        .execute(&mut blocker)
        .await
        .expect("open a transaction with an xid");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await
        .expect("the blocker's pid");
    // Committed after the blocker's transaction began: unreadable until it ends.
    append_flows(&db.pool, 86, 50).await;
    let client = http();
    let started = Instant::now();
    let health = loop {
        daemon.assert_running("while reading is held back");
        let (_, health) = get_json(&client, &daemon.url("/health")).await;
        if health["blocked_by"]["pid"] == pid {
            break health;
        }
        guard_against_hang(
            started,
            &format!("blocked_by never named pid {pid}: {health}"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let blocked = &health["blocked_by"];
    assert_eq!(blocked["application_name"], "h3-blocker", "{health}");
    assert!(
        blocked["xact_age_seconds"]
            .as_f64()
            .is_some_and(|a| a > 1.0),
        "{health}"
    );
    assert!(blocked["state"].is_string(), "{health}");
    assert!(
        blocked["query"]
            .as_str()
            .is_some_and(|q| q.chars().count() <= 200),
        "{health}"
    );
    assert!(
        health["lag_events"].as_i64().is_some_and(|l| l > 0),
        "{health}"
    );
    let metrics = get_text(&client, &daemon.url("/metrics")).await;
    let seconds = metric_sum(&metrics, "robson_read_blocked_seconds", "");
    assert!(seconds > 1.0, "robson_read_blocked_seconds {seconds}");

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("end the blocker");
    wait_caught_up(&db.pool, &mut daemon).await;
    let started = Instant::now();
    loop {
        let (_, health) = get_json(&client, &daemon.url("/health")).await;
        if health["blocked_by"].is_null() && health["lag_events"] == 0 {
            break;
        }
        guard_against_hang(started, &format!("still blocked: {health}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.stop().await;
}
