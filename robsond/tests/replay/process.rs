//! The `robsond` binary as the tests drive it: one-shot commands, and the
//! daemon as a child process that is killed when the test ends, however it
//! ends. Deadlines only turn a hang into a failure.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sqlx::PgPool;
use tokio::process::{Child, Command};

pub const ROBSOND: &str = env!("CARGO_BIN_EXE_robsond");

/// Longest wait before a test calls the system stuck.
pub const STUCK: Duration = Duration::from_secs(120);

/// Runs `robsond ARGS` on `url` (ROBSON_* from `env` on top) to completion.
pub async fn robsond(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = Command::new(ROBSOND)
        .args(args)
        .env_clear()
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn robsond");
    tokio::time::timeout(STUCK, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("robsond {args:?} did not finish within {STUCK:?}"))
        .expect("robsond output")
}

/// Runs `robsond ARGS`, asserts exit 0, returns stdout.
pub async fn robsond_ok(url: &str, args: &[&str]) -> String {
    let out = robsond(url, args, &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "robsond {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `robsond run`; its log goes to a file shown when a test fails.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Daemon {
    pub fn start(url: &str) -> Daemon {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(ROBSOND)
            .arg("run")
            .env_clear()
            .env("DATABASE_URL", url)
            .env("ROBSON_HTTP_ADDR", "127.0.0.1:0")
            .env("ROBSON_POLL_INTERVAL_MS", "200")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn robsond run");
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM, and the clean exit (0) that must follow.
    pub async fn stop(mut self) {
        let pid = Pid::from_raw(self.child.id().expect("running daemon") as i32);
        kill(pid, Signal::SIGTERM).expect("signal robsond");
        let status = tokio::time::timeout(STUCK, self.child.wait())
            .await
            .expect("robsond exits after SIGTERM")
            .expect("wait for robsond");
        assert!(
            status.success(),
            "robsond exited with {status}:\n{}",
            self.log()
        );
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("robsond exited with {status}:\n{}", self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- robsond log ---\n{}", self.log());
        }
    }
}

/// Waits until every stream that is not parked is projected up to its head
/// and no resume is pending.
pub async fn wait_caught_up(pool: &PgPool, daemon: &mut Daemon) {
    let started = Instant::now();
    loop {
        daemon.assert_running();
        let behind: i64 = sqlx::query_scalar(
            r#"
            SELECT count(*) FROM event_streams s
              LEFT JOIN projection_stream_progress p USING (stream_key)
             WHERE (p.parked_seq IS NULL AND s.last_seq > coalesce(p.last_seq, 0))
                OR p.resume_requested
            "#,
        )
        .fetch_one(pool)
        .await
        .expect("progress query");
        if behind == 0 {
            return;
        }
        assert!(
            started.elapsed() < STUCK,
            "{behind} streams still behind after {STUCK:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
