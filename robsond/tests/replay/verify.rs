//! `robsond verify`: exit 0 when the live projection is what the log
//! yields (also while the daemon projects), exit 1 naming each row that
//! differs.

use std::time::Duration;

use uuid::Uuid;

use crate::fixture::{copy, Writer};
use crate::process::{robsond, texts, wait_caught_up, Daemon};

/// Runs verify; returns the exit code and stdout.
async fn verify(url: &str) -> (Option<i32>, String) {
    let out = robsond(url, &["verify"], &[]).await;
    let (stdout, stderr) = texts(&out);
    (
        out.status.code(),
        format!("{stdout}\n--- stderr ---\n{stderr}"),
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn verify_finds_an_untouched_projection_identical_also_while_the_daemon_runs() {
    let db = copy().await;

    let (code, out) = verify(&db.url).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verify: identical, "), "{out}");
    assert!(out.contains(" rows compared"), "{out}");

    let mut daemon = Daemon::start(&db.url);
    let writer = Writer::start(db.pool.clone(), 5151);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, out) = verify(&db.url).await;
    let appended = writer.stop().await;
    wait_caught_up(&db.pool, &mut daemon).await;
    daemon.stop().await;
    assert_eq!(code, Some(0), "verify while the daemon projects: {out}");
    assert!(appended > 0, "the writer appended during the verify");
    let (code, out) = verify(&db.url).await;
    assert_eq!(code, Some(0), "verify once caught up: {out}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn verify_exits_1_naming_a_hand_modified_row() {
    let db = copy().await;
    let (tenant, order): (Uuid, Uuid) = sqlx::query_as(
        "SELECT tenant_id, order_id FROM orders_current WHERE status = 'filled' ORDER BY order_id LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a filled order");
    sqlx::query(
        "UPDATE orders_current SET filled_quantity = filled_quantity + 1 WHERE tenant_id = $1 AND order_id = $2",
    )
    .bind(tenant)
    .bind(order)
    .execute(&db.pool)
    .await
    .expect("tamper with a row");

    let (code, out) = verify(&db.url).await;

    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&order.to_string()))
        .unwrap_or_else(|| panic!("no line names order {order}:\n{out}"));
    assert!(line.starts_with("orders_current"), "{line}");
    assert!(line.contains("filled_quantity: live "), "{line}");
    assert!(out.contains("verify: 1 rows differ"), "{out}");
}
