//! The runbooks of docs/operations.md followed literally, with two real
//! instances: "Bootstrap from a snapshot" (its SQL is read from the page and
//! run as written) and "Changing the partition count", between runs.

use std::time::{Duration, Instant};

use crate::support::TestDb;

use crate::support::{
    append_flows, assert_equals_clean_run, assert_same_image, get_json, get_text,
    guard_against_hang, http, metric_sum, owners, projection_image, projection_rows, robsond,
    texts, wait_caught_up, Daemon,
};

fn operations() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
    std::fs::read_to_string(path).expect("docs/operations.md is readable")
}

/// The text of the section under `heading` (a `#…` line), up to the next
/// heading of the same or a higher level.
fn section(doc: &str, heading: &str) -> String {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/operations.md has no {heading:?}"));
    let level = heading.split(' ').next().unwrap_or("#").len();
    let body = &doc[start + heading.len() + 2..];
    let end = body
        .lines()
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len() + 1;
            Some((at, line))
        })
        .find(|(_, line)| {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            hashes > 0 && hashes <= level && line[hashes..].starts_with(' ')
        })
        .map_or(body.len(), |(at, _)| at);
    body[..end].to_owned()
}

/// The first ```sql block of `text`, without its indentation.
fn sql_block(text: &str) -> String {
    let start = text.find("```sql\n").expect("an SQL block") + 7;
    let len = text[start..].find("```").expect("the SQL block ends");
    text[start..start + len]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

async fn status_text(url: &str) -> String {
    let out = robsond(&["status"], &[("DATABASE_URL", url)]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "robsond status: {stderr}");
    stdout
}

/// Step "check that none is left": every partition says nobody holds it.
async fn wait_nobody_holds(url: &str, partitions: usize) {
    let started = Instant::now();
    loop {
        let text = status_text(url).await;
        if text.matches("nobody holds it").count() == partitions {
            return;
        }
        guard_against_hang(
            started,
            &format!("status after stopping everything:\n{text}"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until both instances' /health list `partitions` partitions, all
/// owned, and their robson_partitions_owned add up to it.
async fn wait_all_owned(instances: &[&Daemon], partitions: usize) {
    let client = http();
    let started = Instant::now();
    loop {
        let mut ok = true;
        let mut owned = 0.0;
        for daemon in instances {
            let (_, health) = get_json(&client, &daemon.url("/health")).await;
            let o = owners(&health);
            ok &= o.len() == partitions && o.iter().all(Option::is_some);
            let metrics = get_text(&client, &daemon.url("/metrics")).await;
            owned += metric_sum(&metrics, "robson_partitions_owned", "");
        }
        if ok && owned == partitions as f64 {
            return;
        }
        guard_against_hang(started, &format!("{partitions} partitions all owned"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn env(id: &'static str, partitions: &'static str) -> [(&'static str, &'static str); 2] {
    [
        ("ROBSON_PARTITIONS", partitions),
        ("ROBSON_INSTANCE_ID", id),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn the_bootstrap_runbook_restores_the_snapshot_with_two_instances() {
    let runbook = section(&operations(), "### Bootstrap from a snapshot");
    let db = TestDb::new().await;
    append_flows(&db.pool, 21, 2_000).await;
    let mut a = Daemon::start(&db.url, &env("a", "4")).await;
    let b = Daemon::start(&db.url, &env("b", "4")).await;
    wait_caught_up(&db.pool, &mut a).await;
    let out = robsond(&["snapshot"], &[("DATABASE_URL", &db.url)]).await;
    assert!(out.status.success(), "snapshot: {:?}", texts(&out));
    append_flows(&db.pool, 22, 500).await;
    wait_caught_up(&db.pool, &mut a).await;

    // 1. Stop every instance. 2. Check that none is left.
    for mut daemon in [a, b] {
        daemon.stop().await;
    }
    wait_nobody_holds(&db.url, 4).await;
    // 3. Empty the projection with the page's own statement.
    let truncate = sql_block(&runbook);
    sqlx::raw_sql(&truncate)
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("the runbook's SQL failed: {e}\n{truncate}"));
    assert_eq!(projection_rows(&projection_image(&db.pool).await), 0);
    // 4. Start the instances: one restores, both catch up.
    let mut a = Daemon::start(&db.url, &env("a", "4")).await;
    let b = Daemon::start(&db.url, &env("b", "4")).await;
    wait_caught_up(&db.pool, &mut a).await;
    let restored = [a.stderr(), b.stderr()]
        .iter()
        .filter(|log| log.contains("Empty projection bootstrapped from the latest snapshot"))
        .count();
    assert_eq!(restored, 1, "exactly one instance restores");
    // 5. Check: every partition owned, and the tables are what the log gives.
    wait_all_owned(&[&a, &b], 4).await;
    let text = status_text(&db.url).await;
    assert!(!text.contains("nobody holds it"), "{text}");
    let bootstrapped = projection_image(&db.pool).await;
    for mut daemon in [a, b] {
        daemon.stop().await;
    }
    let out = robsond(&["rebuild"], &[("DATABASE_URL", &db.url)]).await;
    assert!(out.status.success(), "rebuild: {:?}", texts(&out));
    assert_same_image(
        &projection_image(&db.pool).await,
        &bootstrapped,
        "the bootstrapped tables vs a rebuild from the log",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn the_partition_count_runbook_between_runs_moves_every_instance_to_the_new_count() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 23, 2_000).await;
    let mut a = Daemon::start(&db.url, &env("a", "4")).await;
    let b = Daemon::start(&db.url, &env("b", "4")).await;
    wait_caught_up(&db.pool, &mut a).await;

    // 1. Stop every instance. 2. Check that none is left.
    for mut daemon in [a, b] {
        daemon.stop().await;
    }
    wait_nobody_holds(&db.url, 4).await;
    // 3. The new count on every instance; start them.
    append_flows(&db.pool, 24, 500).await;
    let mut a = Daemon::start(&db.url, &env("a", "6")).await;
    let b = Daemon::start(&db.url, &env("b", "6")).await;
    wait_caught_up(&db.pool, &mut a).await;
    // 4. Check: status lists 6 partitions, each owned; /health and the metric agree.
    wait_all_owned(&[&a, &b], 6).await;
    let text = status_text(&db.url).await;
    let listed = text.lines().filter(|l| l.starts_with("partition")).count();
    assert_eq!(listed, 6, "{text}");
    assert_eq!(text.matches("/6  checkpoint").count(), 6, "{text}");
    assert!(!text.contains("nobody holds it"), "{text}");
    for mut daemon in [a, b] {
        daemon.stop().await;
    }
    assert_equals_clean_run(&db.pool, &db.url, &env("a", "6")).await;
}
