//! The operator console (`GET /`, SPEC §4.4) in a real browser: the real
//! `robsond` on a fresh migrated database of the test cluster, with streams
//! parked by poison events, and headless Chromium driven over WebDriver
//! (fantoccini on chromedriver). The page must show the partitions and the
//! parked streams, take the admin token once, Skip and Retry from the page
//! (both seen resolved in the page and in the database), and render values
//! holding markup as text.
//!
//! `scripts/with-postgres.sh cargo test -p robsond --all-features --test
//! console -- --include-ignored`. Screenshots (desktop 1280×800, phone
//! 390×844) go to `target/console/`.

// The daemon tests' helpers; this binary uses only some of them.
#[allow(dead_code)]
#[path = "../daemon/support.rs"]
mod support;

mod browser;
mod corpus;
mod page;

use std::path::PathBuf;

use serde_json::json;

use browser::Browser;
use corpus::{Corpus, TOKEN};
use support::{append_flows, wait_caught_up, wait_for_stream, Daemon};

/// A test database with every migration robsond applies.
type TestDb = robson_eventlog::testing::Database<robsond::schema::Robsond>;

/// `target/console/NAME` (the target directory cargo builds this test in).
pub fn screenshot_path(name: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map(|target| target.join("console"))
        .unwrap_or_else(|| tmp.join("console"))
        .join(name)
}

/// Takes a snapshot with `robsond snapshot`; returns its id.
async fn take_snapshot(url: &str, pool: &sqlx::PgPool) -> String {
    let out = support::robsond(&["snapshot"], &[("DATABASE_URL", url)]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", support::texts(&out));
    sqlx::query_scalar("SELECT snapshot_id::text FROM snapshots ORDER BY taken_at DESC LIMIT 1")
        .fetch_one(pool)
        .await
        .expect("the snapshot just taken")
}

/// Waits until the stream `key` (three events) is projected to its head,
/// and checks its dead letter is resolved as `resolution`.
async fn resumed_in_database(
    pool: &sqlx::PgPool,
    daemon: &mut Daemon,
    key: &str,
    resolution: &str,
) {
    wait_for_stream(pool, daemon, key, corpus::LAST_SEQ, 3_i64).await;
    let got = corpus::resolution(pool, key).await;
    assert_eq!(got.as_deref(), Some(resolution), "{key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn the_console_shows_parked_streams_as_text_and_resumes_them_with_the_token() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 171, 400).await;
    let corpus = Corpus::append(&db.pool).await;
    let mut daemon = Daemon::start(
        &db.url,
        &[
            ("ROBSON_ADMIN_TOKEN", TOKEN),
            ("ROBSON_PARTITIONS", "4"),
            ("ROBSON_INSTANCE_ID", "console-a"),
            ("ROBSON_VERIFY_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    corpus.wait_parked(&db.pool, &mut daemon).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    let snapshot = take_snapshot(&db.url, &db.pool).await;
    page::check_headers_and_json(&daemon, &corpus).await;

    let browser = Browser::open(&daemon.url("/")).await;
    page::wait_for_partitions(&browser, 4, "console-a").await;
    page::wait_for_parked(&browser, &corpus.all_keys()).await;
    page::assert_shown_as_text(&browser, &corpus).await;
    page::wait_for_text(&browser, "#snapshot", &snapshot).await;
    page::wait_for_coverage(&browser).await;
    // The drift check's last run (every second here) is on the page.
    page::wait_for_text(&browser, "#verify", "checked / mismatched").await;

    // Without a token the buttons cannot be used; with it they can.
    assert_eq!(
        page::button_enabled(&browser, &corpus.skip_key, "button.skip").await,
        Some(false),
        "Skip before a token was entered"
    );
    page::enter_token(&browser, "wrong-token-0000").await;
    page::wait_for_text(&browser, "#action-result", "Token refused").await;
    page::enter_token(&browser, TOKEN).await;
    page::wait_for_text(&browser, "#token-state", "token set for this tab").await;
    let stored = browser
        .js(
            "return sessionStorage.getItem('robsond.adminToken');",
            vec![],
        )
        .await;
    assert_eq!(stored, json!(TOKEN), "the token is kept in sessionStorage");

    // Skip: two steps (the event's effect is dropped).
    browser.click_in_row(&corpus.skip_key, "button.skip").await;
    browser
        .click_in_row(&corpus.skip_key, "button.confirm-skip")
        .await;
    resumed_in_database(&db.pool, &mut daemon, &corpus.skip_key, "skipped").await;
    page::wait_for_text(&browser, "#action-result", "Skipped seq 1").await;
    page::wait_for_parked(&browser, &[&corpus.retry_key, &corpus.html_key]).await;

    // Retry after the cause is fixed: the bad fill's quantity corrected.
    corpus.fix_retry_cause(&db.pool).await;
    browser
        .click_in_row(&corpus.retry_key, "button.retry")
        .await;
    resumed_in_database(&db.pool, &mut daemon, &corpus.retry_key, "retried").await;
    assert_eq!(
        corpus::order_status(&db.pool, &corpus.retry_key).await,
        Some("canceled".to_owned()),
        "the retried fill and the cancel behind it are applied"
    );
    page::wait_for_text(&browser, "#action-result", "Retrying seq 2").await;
    page::wait_for_parked(&browser, &[&corpus.html_key]).await;
    page::wait_for_text(&browser, "#parked-count", "(1)").await;
    page::assert_shown_as_text(&browser, &corpus).await;

    // Both sizes: no horizontal scrolling, and a screenshot of each.
    page::assert_fits(&browser).await;
    browser.screenshot(&screenshot_path("desktop.png")).await;
    browser.viewport(390, 844).await;
    page::wait_for_layout(&browser).await;
    page::assert_fits(&browser).await;
    browser.screenshot(&screenshot_path("phone.png")).await;
    browser
        .js(
            "document.getElementById('parked-panel').scrollIntoView();",
            vec![],
        )
        .await;
    browser
        .screenshot(&screenshot_path("phone-parked.png"))
        .await;
    browser.close().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn without_an_admin_token_the_console_hides_retry_and_skip_and_says_why_and_lists_every_instance(
) {
    let db = TestDb::new().await;
    let corpus = Corpus::append(&db.pool).await;
    let env = |id| [("ROBSON_PARTITIONS", "2"), ("ROBSON_INSTANCE_ID", id)];
    let mut daemon = Daemon::start(&db.url, &env("plain-a")).await;
    corpus.wait_parked(&db.pool, &mut daemon).await;
    // A second instance on the same database: both listed, sharing the work.
    let mut other = Daemon::start(&db.url, &env("plain-b")).await;
    let browser = Browser::open(&daemon.url("/")).await;
    page::wait_for_parked(&browser, &corpus.all_keys()).await;
    page::wait_for_instances(&browser, &["plain-a", "plain-b"]).await;
    page::wait_for_text(&browser, "#admin-off", "ROBSON_ADMIN_TOKEN is not set").await;
    let hidden = browser
        .js(
            "const shown = (e) => e.offsetParent !== null;
             return {
               form: shown(document.getElementById('token-form')),
               off: shown(document.getElementById('admin-off')),
               buttons: Array.from(document.querySelectorAll('#parked-body button')).filter(shown).length,
             };",
            vec![],
        )
        .await;
    assert_eq!(
        hidden,
        json!({"form": false, "off": true, "buttons": 0}),
        "no token form and no Retry/Skip without ROBSON_ADMIN_TOKEN"
    );
    browser.close().await;
    other.stop().await;
    daemon.stop().await;
}
