//! docs/http.md against running daemons: every field its tables document
//! is in a real answer and a real answer has no undocumented field; every
//! status code of its "Status codes" table is reproduced here (or, for the
//! few that need a scenario of their own, named with the test that does);
//! and the read token guards `/streams` and `/wait` but never the probes.

use std::collections::BTreeSet;

use crate::support::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection as _;
use uuid::Uuid;

use crate::poison::{append_acked_before_submitted, append_bad_fill, LAST_SEQ, PARKED_SEQ};
use crate::support::{
    append_all, event, free_port, guard_against_hang, http, stream, url_with_port, wait_for_stream,
    Daemon,
};

const ADMIN: &str = "admin-token-0123456789";
const READ: &str = "read-token-0123456789";

/// Documented pairs reproduced by another test, with its name.
const ELSEWHERE: [(&str, u16, &str); 1] = [(
    "GET /wait",
    503,
    "wait::waiters_beyond_the_bound_get_503_and_a_stop_answers_the_others",
)];

/// Appends one valid BALANCE_SAMPLED to a new `account:` stream of
/// `tenant`; returns the stream key.
pub async fn append_balance(pool: &sqlx::PgPool, tenant: Uuid) -> String {
    let (account, key) = stream("account");
    let balance = json!({"account_id": account, "asset": "USDT", "free": "1", "locked": "0"});
    append_all(pool, &[event(tenant, &key, "BALANCE_SAMPLED", balance)]).await;
    key
}

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http.md");
    std::fs::read_to_string(path).expect("docs/http.md is readable")
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// The text of the `## HEADING…` chapter (up to the next `## `).
fn chapter<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("docs/http.md has no chapter {heading}"));
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The first cells of the rows of every `| field | …` table in a chapter.
fn fields(doc: &str, heading: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_fields = false;
    for line in chapter(doc, heading).lines() {
        if !line.starts_with('|') {
            in_fields = false;
            continue;
        }
        let c = cells(line);
        if c[0] == "field" {
            in_fields = true;
        } else if in_fields && !c[0].starts_with("---") {
            out.insert(c[0].trim_matches('`').to_string());
        }
    }
    assert!(!out.is_empty(), "{heading}: no documented field");
    out
}

/// The documented names under `prefix` (`""` for the top level,
/// `partitions[].` for the elements of `partitions`).
fn level(documented: &BTreeSet<String>, prefix: &str) -> BTreeSet<String> {
    documented
        .iter()
        .filter_map(|f| f.strip_prefix(prefix))
        .filter(|f| !f.contains('.'))
        .map(str::to_owned)
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn assert_level(documented: &BTreeSet<String>, prefix: &str, answer: &Value) {
    assert_eq!(
        keys(answer),
        level(documented, prefix),
        "fields under {prefix:?}: real answer (left) vs docs/http.md (right)"
    );
}

/// The `(endpoint, status)` pairs of the "Status codes" table.
fn documented_codes(doc: &str) -> BTreeSet<(String, u16)> {
    chapter(doc, "Status codes")
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(cells)
        .filter_map(|c| Some((c[0].trim_matches('`').to_string(), c[1].parse().ok()?)))
        .collect()
}

/// Sends requests and records which documented pair each one reproduced.
struct Codes {
    client: reqwest::Client,
    seen: BTreeSet<(String, u16)>,
}

impl Codes {
    /// Sends `method url` (with `token` as a bearer token) and checks that
    /// it answers `expected`, which reproduces (`endpoint`, `expected`).
    /// Returns the JSON body (Null for a body that is not JSON).
    async fn check(
        &mut self,
        endpoint: &str,
        expected: u16,
        method: Method,
        url: String,
        token: Option<&str>,
    ) -> Value {
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let body = response.text().await.expect("a body");
        assert_eq!(status, expected, "{method} {url}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        // The health report and /wait's 409 (a parked stream) are answers,
        // not errors: every other 4xx/5xx carries {error}.
        let answer =
            endpoint.starts_with("GET /health") || (endpoint, status) == ("GET /wait", 409);
        if status >= 400 && !answer {
            assert!(
                json["error"].is_string(),
                "{status} without {{error}}: {body}"
            );
        }
        self.seen.insert((endpoint.to_owned(), expected));
        json
    }
}

/// Waits until `url` answers `status` (e.g. readiness after start-up).
async fn wait_status(client: &reqwest::Client, url: &str, status: u16) {
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().as_u16() == status {
                return;
            }
        }
        guard_against_hang(started, &format!("waiting for {url} to answer {status}"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn every_documented_field_and_status_code_matches_a_running_daemon() {
    let doc = doc();
    let db = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (_, parked_first) = append_acked_before_submitted(&db.pool, tenant).await;
    let (_, parked_second) = append_bad_fill(&db.pool, tenant).await;
    let healthy = append_balance(&db.pool, tenant).await;

    let guarded = [("ROBSON_ADMIN_TOKEN", ADMIN), ("ROBSON_READ_TOKEN", READ)];
    let mut a = Daemon::start(&db.url, &guarded).await;
    wait_for_stream(&db.pool, &mut a, &parked_first, PARKED_SEQ, 1_i64).await;
    wait_for_stream(&db.pool, &mut a, &parked_second, PARKED_SEQ, 2_i64).await;
    wait_for_stream(&db.pool, &mut a, &healthy, LAST_SEQ, 1_i64).await;
    let open = Daemon::start(&db.url, &[]).await;
    let unreachable = url_with_port(&db.url, free_port());
    let down = Daemon::start(&unreachable, &[("ROBSON_READ_TOKEN", READ)]).await;
    let client = http();
    wait_status(&client, &a.url("/health/ready"), 200).await;
    let mut codes = Codes {
        client,
        seen: BTreeSet::new(),
    };
    let get = || Method::GET;
    let post = || Method::POST;

    // The probes and /metrics: no token needed, even with one configured.
    let health = codes
        .check("GET /health", 200, get(), a.url("/health"), None)
        .await;
    let documented = fields(&doc, "GET /health\n");
    assert_level(&documented, "", &health);
    assert_level(&documented, "partitions[].", &health["partitions"][0]);
    assert_level(
        &documented,
        "partition_coverage[].",
        &health["partition_coverage"][0],
    );
    let live = codes
        .check("GET /health/live", 200, get(), a.url("/health/live"), None)
        .await;
    assert_level(&fields(&doc, "GET /health/live"), "", &live);
    let ready = codes
        .check(
            "GET /health/ready",
            200,
            get(),
            a.url("/health/ready"),
            None,
        )
        .await;
    assert_level(&fields(&doc, "GET /health/ready"), "", &ready);
    codes
        .check("GET /metrics", 200, get(), a.url("/metrics"), None)
        .await;
    let down_health = codes
        .check("GET /health", 503, get(), down.url("/health"), None)
        .await;
    assert_level(&documented, "", &down_health);
    codes
        .check(
            "GET /health/ready",
            503,
            get(),
            down.url("/health/ready"),
            None,
        )
        .await;
    codes
        .check(
            "GET /health/live",
            200,
            get(),
            down.url("/health/live"),
            None,
        )
        .await;

    // /streams: the read token (or the admin token) is required.
    let streams_url = a.url("/streams?limit=2");
    codes
        .check("GET /streams", 401, get(), streams_url.clone(), None)
        .await;
    codes
        .check(
            "GET /streams",
            401,
            get(),
            streams_url.clone(),
            Some("wrong-token-0123456789"),
        )
        .await;
    codes
        .check("GET /streams", 200, get(), streams_url.clone(), Some(ADMIN))
        .await;
    let page = codes
        .check("GET /streams", 200, get(), streams_url, Some(READ))
        .await;
    let documented = fields(&doc, "GET /streams");
    assert_level(&documented, "", &page);
    assert_level(&documented, "streams[].", &page["streams"][0]);
    codes
        .check(
            "GET /streams",
            400,
            get(),
            a.url("/streams?limit=0"),
            Some(READ),
        )
        .await;
    codes
        .check("GET /streams", 200, get(), open.url("/streams"), None)
        .await;
    codes
        .check("GET /streams", 503, get(), down.url("/streams"), Some(READ))
        .await;

    // /wait: 200, 409, 504 and their fields; 400; 401.
    let wait_fields = fields(&doc, "GET /wait");
    let mut wait_seen = BTreeSet::new();
    let reached = codes
        .check(
            "GET /wait",
            200,
            get(),
            a.url(&format!("/wait?stream={healthy}&seq=1")),
            Some(READ),
        )
        .await;
    let conflict = codes
        .check(
            "GET /wait",
            409,
            get(),
            a.url(&format!("/wait?stream={parked_second}&seq=2")),
            Some(READ),
        )
        .await;
    let timeout = codes
        .check(
            "GET /wait",
            504,
            get(),
            a.url(&format!("/wait?stream={healthy}&seq=99&timeout_ms=1")),
            Some(READ),
        )
        .await;
    for answer in [&reached, &conflict, &timeout] {
        let got = keys(answer);
        assert!(
            got.is_subset(&wait_fields),
            "undocumented /wait fields: {got:?}"
        );
        wait_seen.extend(got);
    }
    assert_eq!(wait_seen, wait_fields, "documented /wait fields never seen");
    codes
        .check(
            "GET /wait",
            400,
            get(),
            a.url("/wait?stream=x&seq=0"),
            Some(READ),
        )
        .await;
    codes
        .check(
            "GET /wait",
            401,
            get(),
            a.url(&format!("/wait?stream={healthy}&seq=1")),
            None,
        )
        .await;

    // /admin/*.
    let parked = codes
        .check(
            "GET /admin/parked",
            200,
            get(),
            a.url("/admin/parked"),
            Some(ADMIN),
        )
        .await;
    let documented = fields(&doc, "GET /admin/parked");
    assert_level(&documented, "", &parked);
    assert_level(&documented, "parked[].", &parked["parked"][0]);
    codes
        .check(
            "GET /admin/parked",
            401,
            get(),
            a.url("/admin/parked"),
            Some(READ),
        )
        .await;
    let off = codes
        .check(
            "GET /admin/parked",
            404,
            get(),
            open.url("/admin/parked"),
            None,
        )
        .await;
    assert!(
        off["error"]
            .as_str()
            .is_some_and(|e| e.contains("ROBSON_ADMIN_TOKEN")),
        "{off}"
    );
    let admin = |action: &str, key: &str| a.url(&format!("/admin/streams/{key}/{action}"));
    let resume_fields = fields(&doc, "POST /admin/streams/{key}/retry");
    for action in ["retry", "skip"] {
        let endpoint = format!("POST /admin/streams/{{key}}/{action}");
        let endpoint = endpoint.as_str();
        codes
            .check(
                endpoint,
                404,
                post(),
                admin(action, "order:unknown"),
                Some(ADMIN),
            )
            .await;
        codes
            .check(endpoint, 409, post(), admin(action, &healthy), Some(ADMIN))
            .await;
        codes
            .check(
                endpoint,
                404,
                post(),
                open.url(&format!("/admin/streams/{healthy}/{action}")),
                None,
            )
            .await;
    }
    let retry = "POST /admin/streams/{key}/retry";
    codes
        .check(
            retry,
            400,
            post(),
            admin("retry", &"k".repeat(201)),
            Some(ADMIN),
        )
        .await;
    codes
        .check(retry, 401, post(), admin("retry", &parked_first), None)
        .await;
    let retried = codes
        .check(
            retry,
            200,
            post(),
            admin("retry", &parked_first),
            Some(ADMIN),
        )
        .await;
    assert_level(&resume_fields, "", &retried);
    let skipped = codes
        .check(
            "POST /admin/streams/{key}/skip",
            200,
            post(),
            admin("skip", &parked_second),
            Some(ADMIN),
        )
        .await;
    assert_level(&resume_fields, "", &skipped);

    // Routing.
    codes
        .check(
            "any other path",
            404,
            get(),
            a.url("/no-such-endpoint"),
            None,
        )
        .await;
    codes
        .check(
            "a known path, another method",
            405,
            post(),
            a.url("/health"),
            None,
        )
        .await;

    let documented = documented_codes(&doc);
    let elsewhere: BTreeSet<(String, u16)> = ELSEWHERE
        .iter()
        .map(|(e, s, _)| (e.to_string(), *s))
        .collect();
    let undocumented: Vec<_> = codes.seen.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "reproduced but not documented: {undocumented:?}"
    );
    let missing: Vec<_> = documented
        .difference(&codes.seen)
        .filter(|pair| !elsewhere.contains(pair))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but reproduced nowhere: {missing:?}"
    );
    assert!(
        elsewhere.is_subset(&documented),
        "ELSEWHERE names undocumented pairs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn blocked_by_has_exactly_the_documented_fields() {
    let documented = fields(&doc(), "GET /health\n");
    let db = TestDb::new().await;
    let daemon = Daemon::start(&db.url, &[]).await;
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql("BEGIN; SELECT pg_current_xact_id();")
        .execute(&mut blocker)
        .await
        .expect("an open transaction with an xid");
    append_balance(&db.pool, Uuid::new_v4()).await;
    let client = http();
    let started = std::time::Instant::now();
    let blocked_by = loop {
        let (_, health) = crate::support::get_json(&client, &daemon.url("/health")).await;
        if health["blocked_by"].is_object() {
            break health["blocked_by"].clone();
        }
        guard_against_hang(started, "waiting for blocked_by");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_level(&documented, "blocked_by.", &blocked_by);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("rollback");
}
