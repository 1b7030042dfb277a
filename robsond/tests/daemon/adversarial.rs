//! Adversarial requests against the real daemon (SPEC §4.4: client mistakes
//! get a 4xx with a JSON `{error}`, 5xx only for the daemon's own failures).
//!
//! A bounded sweep (about 150 requests, one at a time, on loopback) over the
//! classes an outside tester used: stream keys the daemon does not know or
//! that PostgreSQL would refuse (quotes, SQL metacharacters, `%00`, `%0A`,
//! `..%2F`, unicode, 10 KB), bad `limit` and `after`, Authorization headers
//! in every case and shape, wrong methods, unknown paths, oversized headers
//! and bodies. Each request has one expected status; none may be a 5xx,
//! every error body is JSON with an `error` string (except the codec's
//! bodiless 431, sent before any application code runs), the daemon is
//! healthy afterwards and its log has no ERROR line.

use crate::support::TestDb;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{append_all, event, http, stream, wait_for_stream, Daemon};

const TOKEN: &str = "admin-token-a5d8e02c6b";

/// One request and the status it must get.
#[derive(Debug)]
struct Probe {
    class: &'static str,
    method: Method,
    /// Path and query, already percent-encoded as sent.
    target: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    expect: u16,
    /// A piece the `error` message must contain (which handler answered).
    says: Option<&'static str>,
}

impl Probe {
    fn new(class: &'static str, method: Method, target: impl Into<String>, expect: u16) -> Self {
        Probe {
            class,
            method,
            target: target.into(),
            headers: Vec::new(),
            body: None,
            expect,
            says: None,
        }
    }

    fn auth(self, value: &str) -> Self {
        let value = HeaderValue::from_str(value).expect("a header value");
        self.header(reqwest::header::AUTHORIZATION, value)
    }

    fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn says(mut self, piece: &'static str) -> Self {
        self.says = Some(piece);
        self
    }
}

/// Keys that are valid stream keys but unknown to the daemon, percent-encoded.
fn unknown_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "order:does-not-exist",
        "plainkey",
        "%27",                                     // '
        "%22quoted%22",                            // "quoted"
        "o%27%3B%20DROP%20TABLE%20event_log%3B--", // o'; DROP TABLE event_log;--
        "1%27%20OR%20%271%27%3D%271",              // 1' OR '1'='1
        "%241",                                    // $1
        "%5C%5Cx",                                 // \\x
        "%25",                                     // %
        "%25s%25n",                                // %s%n
        "..%2F..%2Fetc%2Fpasswd",                  // ../../etc/passwd
        "%E2%82%AC",                               // €
        "%D0%BA%D0%BB%D1%8E%D1%87",                // ключ
        "%F0%9F%92%A5",                            // an emoji
        "%FF%FE",                                  // not UTF-8 (read lossily)
        "%EF%BB%BF",                               // a byte-order mark
        "*",
        "order%3A%7B%7D",
        // Control characters (not NUL): no stream has them, so unknown.
        "line%0Abreak",
        "x%0D%0Ay",
        "%1B%5B31m",
        "%7F",
        "tab%09",
    ]
    .map(String::from)
    .to_vec();
    keys.push(format!("order:{}", Uuid::new_v4()));
    keys.push("k".repeat(200));
    keys
}

/// Keys no stream can have: NUL (PostgreSQL text cannot hold it), too long.
fn refused_keys() -> Vec<String> {
    let mut keys: Vec<String> = ["a%00b", "%00", "x%00%0Ay"].map(String::from).to_vec();
    keys.push("k".repeat(201));
    keys.push("k".repeat(10 * 1024));
    keys
}

fn probes(known: &str) -> Vec<Probe> {
    let mut probes = Vec::new();
    let schemes = ["Bearer", "bearer", "BEARER", "bEaReR"];
    let admin = |class, action: &str, key: &str, expect, i: usize| {
        let auth = format!("{} {TOKEN}", schemes[i % schemes.len()]);
        Probe::new(
            class,
            Method::POST,
            format!("/admin/streams/{key}/{action}"),
            expect,
        )
        .auth(&auth)
    };

    // Stream keys on retry and skip.
    for (i, key) in unknown_keys().iter().enumerate() {
        for action in ["retry", "skip"] {
            probes.push(admin("unknown key", action, key, 404, i).says("unknown to the projector"));
        }
    }
    for (i, key) in refused_keys().iter().enumerate() {
        for action in ["retry", "skip"] {
            probes.push(admin("refused key", action, key, 400, i).says("stream key"));
        }
    }
    for action in ["retry", "skip"] {
        probes.push(admin("not parked", action, known, 409, 0).says("not parked"));
    }

    // /streams parameters.
    let long_after = format!("/streams?after={}", "k".repeat(201));
    let bad_queries = [
        "/streams?after=%00",
        long_after.as_str(),
        "/streams?limit=0",
        "/streams?limit=-1",
        "/streams?limit=1001",
        "/streams?limit=-9223372036854775808",
        "/streams?limit=99999999999999999999999",
        "/streams?limit=abc",
        "/streams?limit=1.5",
        "/streams?limit=",
        "/streams?limit=%00",
        "/streams?after=a&after=b",
    ];
    for q in bad_queries {
        probes.push(Probe::new("bad query", Method::GET, q, 400));
    }
    let fine_queries = [
        "/streams",
        "/streams?limit=1",
        "/streams?limit=1000",
        "/streams?after=",
        "/streams?after=%27%3B%20DROP%20TABLE%20event_log%3B--",
        "/streams?after=%FF",
        "/streams?after=a%0Ab",
        "/streams?after=%1F",
        "/streams?after=%D0%BA%D0%BB%D1%8E%D1%87&limit=5",
        "/streams?unknown=parameter",
    ];
    for q in fine_queries {
        probes.push(Probe::new("good query", Method::GET, q, 200));
    }

    // Authorization on GET /admin/parked.
    for scheme in schemes {
        probes.push(
            Probe::new("auth ok", Method::GET, "/admin/parked", 200)
                .auth(&format!("{scheme} {TOKEN}")),
        );
    }
    probes.push(
        Probe::new("auth ok", Method::GET, "/admin/parked", 200).auth(&format!("Bearer   {TOKEN}")),
    );
    // Wrong credentials after the scheme, in every case of the scheme.
    let wrong = [
        String::new(),
        " ".to_owned(),
        " wrong-token-0123456789".to_owned(),
        format!(" {TOKEN}x"),
        format!(" {}", &TOKEN[..TOKEN.len() - 1]),
        TOKEN.to_owned(),
        format!("\t{TOKEN}"),
        format!(" {}", TOKEN.to_uppercase()),
        format!(" {}", "x".repeat(8 * 1024)),
    ];
    for credentials in &wrong {
        for scheme in schemes {
            let value = format!("{scheme}{credentials}");
            probes.push(Probe::new("auth wrong", Method::GET, "/admin/parked", 401).auth(&value));
        }
    }
    for value in [
        format!("Basic {TOKEN}"),
        format!("Token {TOKEN}"),
        TOKEN.to_owned(),
    ] {
        probes.push(Probe::new("auth wrong", Method::GET, "/admin/parked", 401).auth(&value));
    }
    probes.push(Probe::new(
        "auth missing",
        Method::GET,
        "/admin/parked",
        401,
    ));
    let opaque =
        HeaderValue::from_bytes(b"Bearer \xff\xfe\x80").expect("obs-text is a valid header value");
    probes.push(
        Probe::new("auth not ASCII", Method::GET, "/admin/parked", 401)
            .header(reqwest::header::AUTHORIZATION, opaque),
    );
    probes.push(Probe::new(
        "auth missing",
        Method::POST,
        format!("/admin/streams/{known}/retry"),
        401,
    ));

    // Wrong methods on known paths.
    let wrong_methods = [
        (Method::POST, "/health"),
        (Method::DELETE, "/health/live"),
        (Method::PUT, "/health/ready"),
        (Method::PATCH, "/metrics"),
        (Method::DELETE, "/streams"),
        (Method::POST, "/streams?limit=1"),
        (Method::PUT, "/admin/parked"),
        (Method::OPTIONS, "/admin/parked"),
        (Method::GET, "/admin/streams/order:1/retry"),
        (Method::DELETE, "/admin/streams/order:1/skip"),
    ];
    for (method, target) in wrong_methods {
        probes.push(Probe::new("wrong method", method, target, 405));
    }

    // Unknown paths.
    let long_path = format!("/{}", "a".repeat(8 * 1024));
    let unknown_paths = [
        "/nope",
        "/admin",
        "/admin/",
        "/admin/nope",
        "/admin/streams",
        "/admin/streams/order:1",
        "/admin/streams//retry",
        "/admin/streams/order:1/retry/extra",
        "/streams/extra",
        "/%00",
        "/%FF",
        "/.env",
        "/metrics%0A",
        long_path.as_str(),
    ];
    for target in unknown_paths {
        probes.push(Probe::new("unknown path", Method::GET, target, 404));
    }

    // Bodies the endpoints do not read, large ones included.
    let json_type = HeaderValue::from_static("application/json");
    let key = format!("order:{}", Uuid::new_v4());
    for (size, ct) in [(2, true), (64 * 1024, true), (1024 * 1024, false)] {
        let body = if ct {
            format!("{{\"x\":\"{}\"}}", "y".repeat(size))
        } else {
            "z".repeat(size)
        };
        let mut probe = admin("body", "retry", &key, 404, 0);
        if ct {
            probe = probe.header(reqwest::header::CONTENT_TYPE, json_type.clone());
        }
        probe.body = Some(body.into_bytes());
        probes.push(probe);
    }
    probes
}

/// Sends `probe` and returns its status and body.
async fn send(client: &reqwest::Client, base: &str, probe: &Probe) -> (u16, String) {
    let mut request = client.request(probe.method.clone(), format!("{base}{}", probe.target));
    for (name, value) in &probe.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &probe.body {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {:?}: no answer: {e}", probe.class, probe.target));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Sends `head` (request line and headers, without the final blank line)
/// on a new connection; returns the answer's status and everything after
/// the status line. A server may close while the request is still being
/// written, so a failed write is not an error: the answer is read anyway.
async fn send_raw(base: &str, head: &str) -> (Option<u16>, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("{head}Host: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = conn.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let read = conn.read_to_end(&mut answer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn client_mistakes_get_a_json_4xx_and_never_a_5xx() {
    let db = TestDb::new().await;
    let (account, known) = stream("account");
    let tenant = Uuid::new_v4();
    let sampled = json!({"account_id": account, "asset": "USDT", "free": "1", "locked": "0"});
    append_all(
        &db.pool,
        &[event(tenant, &known, "BALANCE_SAMPLED", sampled)],
    )
    .await;
    let mut daemon = Daemon::start(&db.url, &[("ROBSON_ADMIN_TOKEN", TOKEN)]).await;
    let progress = "SELECT last_seq FROM projection_stream_progress WHERE stream_key = $1";
    wait_for_stream(&db.pool, &mut daemon, &known, progress, 1_i64).await;

    let client = http();
    let probes = probes(&known);
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for probe in &probes {
        let (status, body) = send(&client, &daemon.base, probe).await;
        let shown: String = body.chars().take(200).collect();
        let what = format!("{} {} {:.120}", probe.class, probe.method, probe.target);
        if status != probe.expect {
            failures.push(format!("{what}: {status} (want {}) {shown}", probe.expect));
            continue;
        }
        if status < 400 {
            continue;
        }
        let error = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        match (error, probe.says) {
            (None, _) => failures.push(format!("{what}: {status} without a JSON error: {shown:?}")),
            (Some(e), Some(piece)) if !e.contains(piece) => {
                failures.push(format!("{what}: {status} says {e:?}, not {piece:?}"))
            }
            _ => {}
        }
    }

    // Requests a URL parser would normalise or refuse, sent as raw bytes: the
    // path is routed as written, so `..` is a key or an unknown path.
    let auth = format!("Authorization: bearer {TOKEN}\r\n");
    let raw_app: [(String, u16); 2] = [
        (
            format!("POST /admin/streams/../retry HTTP/1.1\r\n{auth}"),
            404,
        ),
        ("GET /health/../metrics HTTP/1.1\r\n".to_owned(), 404),
    ];
    // Heads the HTTP codec refuses before routing (bodiless answers).
    let padding = "h".repeat(160 * 1024);
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let raw_codec: [(String, u16); 5] = [
        // httparse refuses `"` and `<` in a request target.
        (
            format!("POST /admin/streams/a\"b<c>/skip HTTP/1.1\r\n{auth}"),
            400,
        ),
        (
            format!("GET /health HTTP/1.1\r\nx-padding: {padding}\r\n"),
            431,
        ),
        (format!("GET /health HTTP/1.1\r\n{many}"), 431),
        (format!("GET /{padding} HTTP/1.1\r\n"), 431),
        ("NOT A REQUEST\r\n".to_owned(), 400),
    ];
    for (head, expect) in raw_app.iter().chain(&raw_codec) {
        let (status, body) = send_raw(&daemon.base, head).await;
        let what = format!("raw {:.60?}", head);
        if status != Some(*expect) {
            failures.push(format!("{what}: {status:?} (want {expect})"));
        } else if raw_app.iter().any(|(h, _)| h == head) && !body.contains("\"error\"") {
            failures.push(format!("{what}: no JSON error in {body:.200?}"));
        }
    }
    let sent = probes.len() + raw_app.len() + raw_codec.len();
    eprintln!("adversarial: {sent} requests in {:?}", started.elapsed());

    assert!(
        failures.is_empty(),
        "{} of {} requests answered wrongly:\n{}",
        failures.len(),
        sent,
        failures.join("\n")
    );
    assert!(sent >= 100, "a sweep of {sent} requests");

    let live = client
        .get(daemon.url("/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200, "alive after the sweep");
    let health = client
        .get(daemon.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200, "ready after the sweep");
    daemon.assert_running("after the sweep");
    daemon.stop().await;
    let log = daemon.stderr();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "client input caused ERROR lines:\n{}",
        errors.join("\n")
    );
}
