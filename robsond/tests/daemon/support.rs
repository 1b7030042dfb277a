//! Helpers shared by the daemon tests: a real `robsond` process (killed when
//! the test ends, however it ends), the command line, HTTP, appends of
//! generated trading flows, progress queries, and images of the projection
//! tables to compare a run with a clean one.
//!
//! Deadlines here only turn a hang into a failure; they never decide a
//! verdict that a slower machine would reverse.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use robson_eventlog::{append_batch, Event};
use robson_projector::tables::{self, READ_MODELS};
use robsond::tools::generate::FlowGenerator;
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// A test database with every migration robsond applies.
pub type TestDb = robson_eventlog::testing::Database<robsond::schema::Robsond>;

/// The daemon binary under test.
pub const ROBSOND: &str = env!("CARGO_BIN_EXE_robsond");

/// How long a wait may last before the test calls the system stuck.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// How often the tests look at the database or the HTTP endpoints.
const PAUSE: Duration = Duration::from_millis(100);

/// Panics with `what` once [`HANG_GUARD`] has passed since `started`.
pub fn guard_against_hang(started: Instant, what: &str) {
    assert!(
        started.elapsed() < HANG_GUARD,
        "stuck for {HANG_GUARD:?}: {what}"
    );
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A running `robsond run`, with a clean environment and its output in files.
/// Dropping it kills the process (SIGKILL) and, when the test is failing,
/// prints the end of the daemon's log.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub pid: Pid,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    logs: tempfile::TempDir,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Spawns the daemon on `database_url` with a free HTTP port, a 200 ms
    /// poll interval and `env` on top (which may override those).
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let mut vars = BTreeMap::from([
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("ROBSON_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("ROBSON_POLL_INTERVAL_MS".to_owned(), "200".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]);
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let base = format!("http://{}", vars["ROBSON_HTTP_ADDR"]);
        let logs = tempfile::tempdir().expect("a directory for the daemon's output");
        let out = File::create(logs.path().join("stdout")).expect("stdout file");
        let err = File::create(logs.path().join("stderr")).expect("stderr file");
        let child = Command::new(ROBSOND)
            .arg("run")
            .env_clear()
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn robsond");
        let pid = Pid::from_raw(child.id().expect("a running child has a pid") as i32);
        Daemon {
            child,
            pid,
            base,
            logs,
            exited: None,
        }
    }

    /// Spawns the daemon and waits until `/health/live` answers 200.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon::spawn(database_url, env);
        daemon.wait_live().await;
        daemon
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `/health/live` answers 200; fails if the process exits.
    pub async fn wait_live(&mut self) {
        let client = http();
        let started = Instant::now();
        loop {
            self.assert_running("while starting");
            if let Ok(r) = client.get(self.url("/health/live")).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            guard_against_hang(started, "waiting for /health/live");
            tokio::time::sleep(PAUSE).await;
        }
    }

    /// Whether the process is still running (reaps it when it has exited).
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("poll the child");
        }
        self.exited.is_none()
    }

    /// Panics, showing the daemon's log, when the process has exited.
    pub fn assert_running(&mut self, when: &str) {
        if !self.is_running() {
            panic!("robsond exited {when} with {:?}", self.exited);
        }
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).expect("signal robsond");
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited {
            return Some(status);
        }
        let status = tokio::time::timeout(limit, self.child.wait()).await.ok()?;
        self.exited = Some(status.expect("wait for robsond"));
        self.exited
    }

    /// SIGTERM, then waits for the exit and checks it is a clean one (0).
    pub async fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(HANG_GUARD).await;
        assert!(status.is_some(), "robsond still runs after SIGTERM");
        assert!(
            status.is_some_and(|s| s.success()),
            "robsond did not exit 0 on SIGTERM: {status:?}"
        );
    }

    /// SIGKILL, then reaps the process.
    pub async fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        let status = self.wait_exit(HANG_GUARD).await;
        assert!(status.is_some(), "robsond survived SIGKILL");
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.logs.path().join(name)
    }

    /// Everything the daemon wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_path("stdout")).unwrap_or_default()
    }

    /// Everything the daemon wrote to stderr (its log) so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log_path("stderr")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // kill_on_drop would do it too, but only after this message.
            let _ = kill(self.pid, Signal::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- end of the log of robsond (pid {}) ---\n{}",
                self.pid,
                tail(&self.stderr(), 30)
            );
        }
    }
}

/// The last `n` lines of `text`, without the frames of a backtrace.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("  ")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `robsond ARGS` with exactly the environment `env` and returns its
/// output; fails if it does not end within [`HANG_GUARD`].
pub async fn robsond(args: &[&str], env: &[(&str, &str)]) -> Output {
    robsond_within(HANG_GUARD, args, env).await
}

/// [`robsond`], failing if the command has not ended after `limit`.
pub async fn robsond_within(limit: Duration, args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = Command::new(ROBSOND)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn robsond");
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("robsond {args:?} did not finish within {limit:?}"))
        .expect("robsond output")
}

/// stdout and stderr of a command as text.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An HTTP client that gives up on a request after a few seconds.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// GET `url`: the status code and the body parsed as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("response body");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {url} answered {status} with non-JSON {body:?}: {e}"));
    (status, json)
}

/// GET `url`: the body as text (after checking for a 200).
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    response.text().await.expect("response body")
}

/// The sum of the samples of metric `name` whose labels contain `label`
/// (e.g. `reason="unhandled_type"`; "" for every sample).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            if metric != name || !series.contains(label) {
                return None;
            }
            value.parse::<f64>().ok()
        })
        .sum()
}

/// Small batches a daemon handed to its group, by outcome (`committed`,
/// `alone`: `robson_grouped_batches_total`).
pub async fn grouped(daemon: &Daemon, outcome: &str) -> f64 {
    let metrics = get_text(&http(), &daemon.url("/metrics")).await;
    metric_sum(
        &metrics,
        "robson_grouped_batches_total",
        &format!(r#"outcome="{outcome}""#),
    )
}

/// Generated trading flows (see `robsond generate`) of at least `events`
/// events in all, whole flows only, from `seed`.
pub fn flows(seed: u64, events: usize) -> Vec<Event> {
    let mut generator = FlowGenerator::new(seed, 3);
    let mut out = Vec::with_capacity(events + 16);
    while out.len() < events {
        out.extend(generator.next_flow());
    }
    out
}

/// Appends `events` in chunks of 1000 (one statement and commit each).
pub async fn append_all(pool: &PgPool, events: &[Event]) {
    for chunk in events.chunks(1000) {
        let outcomes = append_batch(pool, chunk)
            .await
            .expect("append a chunk of events");
        assert!(
            outcomes.iter().all(|o| !o.duplicate),
            "generated events are all new"
        );
    }
}

/// Appends generated flows of about `events` events; returns how many.
pub async fn append_flows(pool: &PgPool, seed: u64, events: usize) -> usize {
    let events = flows(seed, events);
    append_all(pool, &events).await;
    events.len()
}

/// Committed events not yet projected, except those of parked streams.
pub async fn unprojected(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(s.last_seq - coalesce(p.last_seq, 0)), 0)::int8
           FROM event_streams s
           LEFT JOIN projection_stream_progress p USING (stream_key)
          WHERE p.parked_seq IS NULL",
    )
    .fetch_one(pool)
    .await
    .expect("read the projection lag")
}

/// Events applied or skipped so far (the streams' progress, summed).
pub async fn projected(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(last_seq), 0)::int8 FROM projection_stream_progress")
        .fetch_one(pool)
        .await
        .expect("read the projection progress")
}

/// Waits until every stream that is not parked is projected up to its head;
/// fails if the daemon exits meanwhile.
pub async fn wait_caught_up(pool: &PgPool, daemon: &mut Daemon) {
    let started = Instant::now();
    loop {
        daemon.assert_running("before catching up");
        let lag = unprojected(pool).await;
        if lag == 0 {
            return;
        }
        guard_against_hang(started, &format!("catching up ({lag} events behind)"));
        tokio::time::sleep(PAUSE).await;
    }
}

/// Waits until at least `events` events are projected.
pub async fn wait_projected(pool: &PgPool, daemon: &mut Daemon, events: i64) {
    let started = Instant::now();
    while projected(pool).await < events {
        daemon.assert_running("while projecting");
        guard_against_hang(started, &format!("projecting {events} events"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of the projection tables (all columns), the dead letters
/// (event, kind) and the streams' progress (last and parked seq), each
/// table's rows as JSON text in a fixed order.
pub type Image = Vec<(&'static str, Vec<String>)>;

pub async fn projection_image(pool: &PgPool) -> Image {
    let mut queries: Vec<(&'static str, String)> = READ_MODELS
        .iter()
        .map(|t| {
            let name = t.name;
            (
                name,
                format!("SELECT to_jsonb(t)::text FROM {name} t ORDER BY 1"),
            )
        })
        .collect();
    queries.push((
        "projection_dead_letters",
        "SELECT jsonb_build_object('event_id', event_id, 'error_kind', error_kind)::text
           FROM projection_dead_letters ORDER BY 1"
            .to_owned(),
    ));
    queries.push((
        "projection_stream_progress",
        "SELECT jsonb_build_object('stream_key', stream_key, 'last_seq', last_seq,
                                   'parked_seq', parked_seq)::text
           FROM projection_stream_progress ORDER BY 1"
            .to_owned(),
    ));
    let mut image = Vec::new();
    for (table, sql) in queries {
        let rows: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("read {table}: {e}"));
        image.push((table, rows));
    }
    image
}

/// Fails on the first difference, naming the table and showing the rows.
pub fn assert_same_image(actual: &Image, expected: &Image, what: &str) {
    for ((table, a), (_, e)) in actual.iter().zip(expected) {
        if a == e {
            continue;
        }
        let first = a.iter().zip(e).position(|(x, y)| x != y);
        let (row_a, row_e) = match first {
            Some(i) => (a[i].as_str(), e[i].as_str()),
            None if a.len() > e.len() => (a[e.len()].as_str(), "(no more rows)"),
            None => ("(no more rows)", e[a.len()].as_str()),
        };
        panic!(
            "{what}: {table} differs ({} rows vs {} expected); first difference:\n  got      {row_a}\n  expected {row_e}",
            a.len(),
            e.len()
        );
    }
}

/// Rows in the six projection tables.
pub fn projection_rows(image: &Image) -> usize {
    image
        .iter()
        .filter(|(t, _)| READ_MODELS.iter().any(|m| m.name == *t))
        .map(|(_, rows)| rows.len())
        .sum()
}

/// Forgets every projection: tables, progress, checkpoints, dead letters.
pub async fn reset_projection(pool: &PgPool) {
    let tables: Vec<&str> = tables::ALL.iter().map(|t| t.name).collect();
    let sql = format!("TRUNCATE {}, projection_checkpoints", tables.join(", "));
    sqlx::raw_sql(&sql)
        .execute(pool)
        .await
        .expect("reset the projection state");
}

/// Checks that the tables as they are (the daemon stopped, caught up) equal
/// what one clean run over the whole log gives: the projection state is reset
/// in the same database, a fresh daemon (with `env`) catches up from nothing
/// and is stopped, and the two images are compared.
pub async fn assert_equals_clean_run(pool: &PgPool, database_url: &str, env: &[(&str, &str)]) {
    let live = projection_image(pool).await;
    assert!(projection_rows(&live) > 0, "nothing was projected at all");
    reset_projection(pool).await;
    let mut daemon = Daemon::start(database_url, env).await;
    wait_caught_up(pool, &mut daemon).await;
    daemon.stop().await;
    let clean = projection_image(pool).await;
    assert_same_image(&live, &clean, "tables compared with a clean run");
}

/// A stream key of the given kind with a fresh id, e.g. `order:<uuid>`.
pub fn stream(kind: &str) -> (uuid::Uuid, String) {
    let id = uuid::Uuid::new_v4();
    (id, format!("{kind}:{id}"))
}

/// One event with the current time.
pub fn event(tenant: uuid::Uuid, stream_key: &str, event_type: &str, payload: Value) -> Event {
    Event::new(tenant, stream_key, event_type, payload, chrono::Utc::now())
}

/// `url` with `password` for its user (the test cluster trusts every local
/// connection, so any password works and can be checked for leaks).
pub fn url_with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (userinfo, location) = rest.split_once('@').expect("a URL with a user");
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    format!("{scheme}://{user}:{password}@{location}")
}

/// A new database on the test cluster with nothing in it, not even the schema.
pub async fn empty_database() -> String {
    use robson_eventlog::testing::{admin_url, url_with_database};
    use sqlx::Connection as _;
    let admin = admin_url();
    let name = format!("robson_empty_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create an empty database");
    conn.close().await.expect("close the admin connection");
    url_with_database(&admin, &name)
}

/// Polls `query` (a scalar SELECT with the stream key as $1) until it
/// returns `want`; fails if the daemon exits meanwhile.
pub async fn wait_for_stream<T>(pool: &PgPool, daemon: &mut Daemon, key: &str, query: &str, want: T)
where
    T: PartialEq + std::fmt::Debug + Send + Unpin,
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let started = Instant::now();
    loop {
        daemon.assert_running("while waiting on a stream");
        let got: Option<T> = sqlx::query_scalar(query)
            .bind(key)
            .fetch_optional(pool)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        if got.as_ref() == Some(&want) {
            return;
        }
        guard_against_hang(
            started,
            &format!("{key}: `{query}` is {got:?}, want {want:?}"),
        );
        tokio::time::sleep(PAUSE).await;
    }
}

// Helpers of the partition-layout and shutdown tests.

/// Fails when a daemon's output shows a panic: SPEC §4.3 allows none, at
/// shutdown least of all.
pub fn assert_no_panic(daemon: &Daemon, who: &str) {
    for (name, text) in [("stdout", daemon.stdout()), ("stderr", daemon.stderr())] {
        assert!(
            !text.contains("panicked"),
            "the {name} of {who} shows a panic:\n{}",
            tail(&text, 40)
        );
    }
}

/// GET `url` as JSON, or None while nothing answers (a daemon that
/// re-creates itself for a new partition layout is briefly not listening).
pub async fn try_get_json(client: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.text().await.ok()?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// `url` with `param` (`name=value`, already encoded) added to its query.
pub fn url_with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// `url` with its port replaced by `port` (same host, user and database).
pub fn url_with_port(url: &str, port: u16) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host = match authority[host_start..].rfind(':') {
        Some(i) => &authority[..host_start + i],
        None => authority,
    };
    format!("{}{host}:{port}{}", &url[..start], &url[end..])
}

/// The host and port of a PostgreSQL `url`.
pub fn url_address(url: &str) -> std::net::SocketAddr {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host = &authority[authority.rfind('@').map_or(0, |i| i + 1)..];
    let host = host.replace("localhost", "127.0.0.1");
    host.parse()
        .unwrap_or_else(|e| panic!("{host} as an address: {e}"))
}

/// A TCP relay in front of the test cluster: cutting it makes the database
/// unreachable for whoever connects through it (connections reset, new ones
/// refused) without stopping the server the other tests share.
#[derive(Debug)]
pub struct Relay {
    pub port: u16,
    accept: tokio::task::JoinHandle<()>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let links = links.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    links.lock().expect("relay links").push(link);
                }
            }
        });
        Relay {
            port,
            accept,
            links,
        }
    }

    /// The database is "down" from now on, for good.
    pub fn cut(&self) {
        self.accept.abort();
        for link in self.links.lock().expect("relay links").drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Each partition's `owner` in a `/health` answer (None while unowned).
pub fn owners(health: &Value) -> Vec<Option<String>> {
    health["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["owner"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
