//! What an operator reads: text logs written to a file carry no colour
//! codes, an error is said once (not `Connection refused (os error 111):
//! Connection refused (os error 111)`), and counts have the right number.

use crate::support::TestDb;
use uuid::Uuid;

use crate::poison::{append_acked_before_submitted, PARKED_SEQ};
use crate::support::{
    free_port, get_json, http, robsond, texts, url_with_port, wait_for_stream, Daemon,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn logs_to_a_file_have_no_colour_and_one_parked_stream_is_singular() {
    let db = TestDb::new().await;
    let (_, key) = append_acked_before_submitted(&db.pool, Uuid::new_v4()).await;
    // The test's stderr is a file, and NO_COLOR is not set (env_clear).
    let mut daemon = Daemon::start(&db.url, &[]).await;
    wait_for_stream(&db.pool, &mut daemon, &key, PARKED_SEQ, 1_i64).await;
    let (_, health) = get_json(&http(), &daemon.url("/health")).await;
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains("\"1 parked stream\""), "{reasons}");
    let log = daemon.stderr();
    assert!(log.contains("Parked stream."), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_refused_connection_is_said_once() {
    let db = TestDb::new().await;
    let unreachable = url_with_port(&db.url, free_port());
    for command in [&["migrate"][..], &["status"], &["streams", "parked"]] {
        let out = robsond(command, &[("DATABASE_URL", &unreachable)]).await;
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert_eq!(
            stderr.matches("Connection refused").count(),
            1,
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("pool timed out"), "{command:?}: {stderr}");
    }
}
