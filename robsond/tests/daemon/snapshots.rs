//! `robsond snapshot list` and `robsond rebuild --from-snapshot [ID]`: the
//! list shows every snapshot newest first (id, position, taken_at, rows);
//! a rebuild starts from the snapshot named, or the latest without an ID,
//! and yields what a rebuild from the log yields.

use crate::support::TestDb;
use serde_json::Value;

use crate::support::{
    append_flows, assert_same_image, projection_image, robsond, texts, wait_caught_up, Daemon,
};

async fn ok(url: &str, args: &[&str]) -> String {
    let out = robsond(args, &[("DATABASE_URL", url)]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "robsond {args:?}: {stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn snapshots_are_listed_and_a_rebuild_starts_from_the_one_named() {
    let db = TestDb::new().await;
    append_flows(&db.pool, 31, 1_000).await;
    let mut daemon = Daemon::start(&db.url, &[]).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    ok(&db.url, &["snapshot"]).await;
    append_flows(&db.pool, 32, 300).await;
    wait_caught_up(&db.pool, &mut daemon).await;
    ok(&db.url, &["snapshot"]).await;
    daemon.stop().await;

    let list: Value = serde_json::from_str(&ok(&db.url, &["snapshot", "list", "--json"]).await)
        .expect("snapshot list --json is JSON");
    let list = list.as_array().expect("an array").clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let (newest, oldest) = (&list[0], &list[1]);
    assert!(newest["taken_at"].as_str() >= oldest["taken_at"].as_str());
    assert!(
        newest["rows"].as_i64() > oldest["rows"].as_i64(),
        "{list:?}"
    );
    for s in &list {
        let position = s["position"].as_str().expect("a position");
        let (tx, global) = position.split_once('/').expect("tx_id/global_position");
        assert!(
            tx.parse::<i64>().is_ok() && global.parse::<i64>().is_ok(),
            "{position}"
        );
    }
    let (newest_id, oldest_id) = (
        newest["snapshot_id"].as_str().expect("an id").to_owned(),
        oldest["snapshot_id"].as_str().expect("an id").to_owned(),
    );
    let text = ok(&db.url, &["snapshot", "list"]).await;
    let first = text.lines().nth(1).unwrap_or_default();
    assert!(
        first.starts_with(&newest_id) && text.contains(&oldest_id),
        "{text}"
    );
    assert!(text.contains("tx_id/global_position"), "{text}");

    let from_log = {
        ok(&db.url, &["rebuild"]).await;
        projection_image(&db.pool).await
    };
    let out = ok(&db.url, &["rebuild", "--from-snapshot", &oldest_id]).await;
    assert!(
        out.contains(&format!("started from snapshot {oldest_id}")),
        "{out}"
    );
    assert_same_image(
        &projection_image(&db.pool).await,
        &from_log,
        "from the older snapshot",
    );
    let out = ok(&db.url, &["rebuild", "--from-snapshot"]).await;
    assert!(
        out.contains(&format!("started from snapshot {newest_id}")),
        "{out}"
    );
    assert_same_image(
        &projection_image(&db.pool).await,
        &from_log,
        "from the latest snapshot",
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    let out = robsond(
        &["rebuild", "--from-snapshot", &unknown],
        &[("DATABASE_URL", &db.url)],
    )
    .await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("snapshot list"), "{stderr}");
}
