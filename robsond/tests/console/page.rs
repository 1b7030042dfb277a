//! What the console page must show, read from the live DOM (textContent,
//! element counts), and the console's HTTP answers (headers, JSON pages).

use serde_json::json;

use crate::browser::Browser;
use crate::corpus::{Corpus, HTML_SIDE, TOKEN};
use crate::support::{get_json, http, Daemon};

/// Waits until the partitions table has `n` rows, every one owned by
/// `instance` (the only instance on the database).
pub async fn wait_for_partitions(browser: &Browser, n: usize, instance: &str) {
    let script = format!(
        "const rows = Array.from(document.querySelectorAll('#partitions-body tr'));
         return rows.length === {n}
           && rows.every((r) => r.querySelector('.owner').textContent.startsWith({instance:?}))
           && Array.from(document.querySelectorAll('#instances-body .owner'))
                .map((c) => c.textContent).join() === {instance:?} + ' (this instance)';"
    );
    browser
        .wait_until(&format!("{n} partitions owned by {instance}"), &script)
        .await;
}

/// Waits until the instances table lists exactly `names` and the
/// partitions are shared among them, each owning at least one.
pub async fn wait_for_instances(browser: &Browser, names: &[&str]) {
    let want = serde_json::to_string(names).expect("names as JSON");
    let script = format!(
        "const name = (c) => c.textContent.replace(' (this instance)', '');
         const listed = Array.from(document.querySelectorAll('#instances-body .owner')).map(name).sort();
         const owners = new Set(Array.from(document.querySelectorAll('#partitions-body .owner')).map(name));
         const want = {want};
         return JSON.stringify(listed) === JSON.stringify(want)
           && owners.size === want.length && want.every((n) => owners.has(n));"
    );
    browser
        .wait_until(&format!("instances {want} sharing the partitions"), &script)
        .await;
}

/// Waits until the coverage table shows both monthly-partitioned tables
/// covered (2 months ahead or more, `OK`).
pub async fn wait_for_coverage(browser: &Browser) {
    let script = "const rows = Array.from(document.querySelectorAll('#coverage-body tr'))
           .map((r) => Array.from(r.cells).map((c) => c.textContent).join(' ')).sort();
         return rows.length === 2 && /^event_log ([2-9]|[1-9][0-9]+) OK$/.test(rows[0])
           && /^snapshots ([2-9]|[1-9][0-9]+) OK$/.test(rows[1]);";
    browser
        .wait_until("partition coverage of both tables", script)
        .await;
}

/// Waits until the parked-streams table lists exactly `keys`.
pub async fn wait_for_parked(browser: &Browser, keys: &[&str]) {
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_unstable();
    let want = serde_json::to_string(&want).expect("keys as JSON");
    let script = format!(
        "const keys = Array.from(document.querySelectorAll('#parked-body tr.parked-row'))
           .map((r) => r.getAttribute('data-key')).sort();
         return JSON.stringify(keys) === JSON.stringify({want});"
    );
    browser
        .wait_until(&format!("parked streams {want}"), &script)
        .await;
}

/// Waits until the text of `selector` contains `needle`.
pub async fn wait_for_text(browser: &Browser, selector: &str, needle: &str) {
    let script = format!(
        "const e = document.querySelector({selector:?});
         return !!e && e.textContent.includes({needle:?});"
    );
    browser
        .wait_until(&format!("{selector} saying {needle:?}"), &script)
        .await;
}

/// Whether `selector` in the row of `key` is enabled (None: not found).
pub async fn button_enabled(browser: &Browser, key: &str, selector: &str) -> Option<bool> {
    let got = browser
        .js(
            "const row = Array.from(document.querySelectorAll('#parked-body tr.parked-row'))
               .find((r) => r.getAttribute('data-key') === arguments[0]);
             const b = row && row.querySelector(arguments[1]);
             return b ? !b.disabled : null;",
            vec![json!(key), json!(selector)],
        )
        .await;
    got.as_bool()
}

/// Types `token` into the token field and submits it.
pub async fn enter_token(browser: &Browser, token: &str) {
    use fantoccini::Locator;
    let input = browser
        .client
        .find(Locator::Css("#token"))
        .await
        .expect("the token field");
    input.clear().await.expect("clear the token field");
    input.send_keys(token).await.expect("type the token");
    browser
        .client
        .find(Locator::Css("#token-use"))
        .await
        .expect("the Use token button")
        .click()
        .await
        .expect("click Use token");
}

/// The stream key and error text holding markup appear as text, and no
/// element was made from them: no `b`, `img` or extra `script` anywhere,
/// no handler ran.
pub async fn assert_shown_as_text(browser: &Browser, corpus: &Corpus) {
    let seen = browser
        .js(
            "const row = Array.from(document.querySelectorAll('#parked-body tr.parked-row'))
               .find((r) => r.getAttribute('data-key') === arguments[0]);
             return {
               key: row.querySelector('.key-text').textContent,
               error: row.querySelector('.error-text').textContent,
               type: row.querySelector('.event-type').textContent,
               kind: row.querySelector('.error-kind').textContent,
               injected: document.querySelectorAll('b, img, iframe, [onerror], [onload]').length,
               scripts: Array.from(document.scripts).map((s) => s.getAttribute('src')),
               pwned: typeof window.__pwned,
             };",
            vec![json!(corpus.html_key)],
        )
        .await;
    assert_eq!(seen["key"], json!(corpus.html_key), "{seen}");
    let error = seen["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(HTML_SIDE.split('"').next().unwrap_or(HTML_SIDE)),
        "the error text with its markup, as text: {seen}"
    );
    assert_eq!(seen["type"], "ORDER_SUBMITTED", "{seen}");
    assert_eq!(seen["kind"], "invalid_payload", "{seen}");
    assert_eq!(seen["injected"], 0, "elements made from data: {seen}");
    assert_eq!(seen["scripts"], json!(["/console/console.js"]), "{seen}");
    assert_eq!(
        seen["pwned"], "undefined",
        "a handler from data ran: {seen}"
    );
}

/// Nothing is wider than the viewport (no horizontal scrolling).
pub async fn assert_fits(browser: &Browser) {
    let sizes = browser
        .js(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await;
    assert!(
        sizes[0].as_u64() <= sizes[1].as_u64(),
        "the page is wider than the viewport (scrollWidth, innerWidth): {sizes}"
    );
}

/// Waits for one refresh of the page after a resize.
pub async fn wait_for_layout(browser: &Browser) {
    let before = browser
        .js(
            "return document.getElementById('updated').textContent;",
            vec![],
        )
        .await;
    let script = format!(
        "return document.getElementById('updated').textContent !== {};",
        before
    );
    browser
        .wait_until("a refresh after the resize", &script)
        .await;
}

/// The page's files and JSON over plain HTTP: content types, the CSP,
/// nothing from elsewhere, pages and their limits, no token in sight.
pub async fn check_headers_and_json(daemon: &Daemon, corpus: &Corpus) {
    let client = http();
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/dom.js", "text/javascript; charset=utf-8"),
        ("/console/chart.js", "text/javascript; charset=utf-8"),
        ("/console/parked.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let r = client
            .get(daemon.url(path))
            .send()
            .await
            .expect("GET a console file");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), kind, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(csp.contains(part), "{path}: CSP {csp:?} lacks {part}");
        }
        assert!(!csp.contains("unsafe"), "{path}: CSP {csp:?}");
        let body = r.text().await.expect("a body");
        for attribute in ["src=\"", "href=\""] {
            for value in body.split(attribute).skip(1) {
                assert!(
                    value.starts_with('/') || value.starts_with("data:"),
                    "{path}: {attribute}{} loads from elsewhere",
                    &value[..value.len().min(40)]
                );
            }
        }
        if path == "/" {
            assert!(
                body.split("<script")
                    .skip(1)
                    .all(|s| s.starts_with(" type=\"module\" src=\"/")),
                "inline script in the page"
            );
        }
    }

    for missing in ["/console/nope.js", "/console/", "/console/../index.html"] {
        let (code, body) = get_json(&client, &daemon.url(missing)).await;
        assert_eq!(code, 404, "{missing}: {body}");
    }

    // Parked streams, one per page, in key order, then the limits.
    let mut keys = Vec::new();
    let mut after = String::new();
    loop {
        let url = daemon.url(&format!(
            "/console/parked?limit=1&after={}",
            percent(&after)
        ));
        let (code, page) = get_json(&client, &url).await;
        assert_eq!(code, 200, "{page}");
        let listed = page["parked"].as_array().expect("parked").clone();
        assert!(listed.len() <= 1, "{page}");
        keys.extend(
            listed
                .iter()
                .map(|p| p["stream_key"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
        assert!(keys.len() <= 3, "pages never end: {keys:?}");
    }
    let mut want: Vec<String> = corpus.all_keys().iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(keys, want);
    for bad in ["limit=0", "limit=1001", "limit=x", "after=%00"] {
        let (code, body) = get_json(&client, &daemon.url(&format!("/console/parked?{bad}"))).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    let (code, overview) = get_json(&client, &daemon.url("/console/overview")).await;
    assert_eq!(code, 200, "{overview}");
    assert_eq!(overview["admin_enabled"], true, "{overview}");
    assert!(!overview.to_string().contains(TOKEN), "{overview}");
    let instances = overview["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(instances.len(), 1, "{overview}");
    assert_eq!(instances[0]["instance"], "console-a", "{overview}");
    assert_eq!(instances[0]["configured_partitions"], 4, "{overview}");

    let (code, trend) = get_json(&client, &daemon.url("/console/trend")).await;
    assert_eq!(code, 200, "{trend}");
    let samples = trend["samples"].as_array().cloned().unwrap_or_default();
    assert!(!samples.is_empty() && samples.len() <= 900, "{trend}");
    let times: Vec<i64> = samples.iter().filter_map(|s| s["t"].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{trend}");
    let last = times.last().copied().unwrap_or_default();
    let (_, newer) = get_json(
        &client,
        &daemon.url(&format!("/console/trend?since={last}")),
    )
    .await;
    assert!(
        newer["samples"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["t"].as_i64() > Some(last))),
        "{newer}"
    );
    let (code, body) = get_json(&client, &daemon.url("/console/trend?since=soon")).await;
    assert_eq!(code, 400, "{body}");
}

/// `text` percent-encoded for a query string.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
