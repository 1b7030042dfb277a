//! `robsond dev` as a newcomer runs it: the real binary with DATABASE_URL
//! unset, a private PostgreSQL started from the machine's programs in a
//! temporary data directory, real HTTP and a real SIGINT.
//!
//! `cargo test -p robsond --all-features --test dev -- --include-ignored`.
//! The test is `#[ignore = "needs PostgreSQL binaries"]` and fails, naming
//! the package to install, when the server programs are missing.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const STARTUP: Duration = Duration::from_secs(90);
const DRAIN: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(30);

#[tokio::test]
#[ignore = "needs PostgreSQL binaries"]
async fn dev_serves_a_live_flow_stops_cleanly_and_reuses_its_data_directory() {
    assert_postgres_programs_installed();
    let root = tempfile::tempdir().expect("tempdir");
    // As root, the server runs as `postgres`, which must reach the data directory.
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = root.path().join("data");

    let mut first = DevRun::start(root.path(), &data, "first");
    first.wait_until_healthy_and_draining().await;
    let output = first.interrupt_and_wait();
    assert!(output.contains("created with initdb"), "{output}");
    assert_nothing_left_running(&data);
    let created = modified(&data.join("PG_VERSION"));

    let mut second = DevRun::start(root.path(), &data, "second");
    second.wait_until_healthy_and_draining().await;
    let output = second.interrupt_and_wait();
    assert!(
        output.contains("existing data directory reused"),
        "{output}"
    );
    assert_eq!(
        modified(&data.join("PG_VERSION")),
        created,
        "initdb ran again"
    );
    assert_nothing_left_running(&data);
}

/// One `robsond dev` process, its output in files, killed (with its server)
/// if the test fails before it exits.
struct DevRun {
    child: Child,
    data: PathBuf,
    output: [PathBuf; 2],
    http: String,
    exited: Option<ExitStatus>,
}

impl DevRun {
    fn start(root: &Path, data: &Path, name: &str) -> DevRun {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let output = ["out", "err"].map(|ext| root.join(format!("{name}.{ext}")));
        let file = |p: &Path| Stdio::from(File::create(p).expect("output file"));
        let child = Command::new(env!("CARGO_BIN_EXE_robsond"))
            .args(["dev", "--rate", "200", "--data-dir"])
            .arg(data)
            .env_remove("DATABASE_URL")
            .env("ROBSON_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(file(&output[0]))
            .stderr(file(&output[1]))
            .spawn()
            .expect("start robsond dev");
        let http = format!("http://127.0.0.1:{port}");
        DevRun {
            child,
            data: data.to_owned(),
            output,
            http,
            exited: None,
        }
    }

    fn output(&self) -> String {
        let [out, err] = &self.output;
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!("--- stdout\n{}--- stderr\n{}", read(out), read(err))
    }

    fn fail(&self, why: &str) -> ! {
        panic!("{why}\n{}", self.output())
    }

    /// /health answers 200; then, while `robson_events_applied_total` grows,
    /// the lag is seen (nearly) drained at least once.
    async fn wait_until_healthy_and_draining(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + STARTUP;
        loop {
            let status = client.get(format!("{}/health", self.http)).send().await;
            if status.is_ok_and(|r| r.status() == 200) {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("robsond dev exited early with {status}"));
            }
            if Instant::now() > deadline {
                self.fail("/health never answered 200");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let deadline = Instant::now() + DRAIN;
        let (mut first_applied, mut drained) = (None, false);
        loop {
            let applied = self.applied_total(&client).await;
            let lag = self.lag_events(&client).await;
            drained |= applied > 0 && lag.is_some_and(|l| l <= 50);
            if applied > 0 && first_applied.is_none() {
                first_applied = Some(applied);
            }
            if drained && first_applied.is_some_and(|first| applied > first) {
                return;
            }
            if Instant::now() > deadline {
                let why =
                    format!("applied {first_applied:?} then {applied}, lag drained: {drained}");
                self.fail(&format!("no drained lag while events were applied: {why}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn applied_total(&self, client: &reqwest::Client) -> u64 {
        let Ok(response) = client.get(format!("{}/metrics", self.http)).send().await else {
            return 0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("robson_events_applied_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    async fn lag_events(&self, client: &reqwest::Client) -> Option<i64> {
        let response = client
            .get(format!("{}/health", self.http))
            .send()
            .await
            .ok()?;
        let health: serde_json::Value = response.json().await.ok()?;
        health["lag_events"].as_i64()
    }

    /// Sends SIGINT; the process must exit 0 within `EXIT`. Returns its output.
    fn interrupt_and_wait(mut self) -> String {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGINT).expect("SIGINT");
        let deadline = Instant::now() + EXIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                self.fail("robsond dev did not exit within 30 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        self.exited = Some(status);
        if !status.success() {
            self.fail(&format!("robsond dev exited with {status}"));
        }
        self.output()
    }
}

impl Drop for DevRun {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Only after a failure can a server still be running here. SIGQUIT is
        // PostgreSQL's immediate shutdown; the pid is checked to be that server.
        let pid_file = fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        let mut lines = pid_file.lines();
        let (Some(pid), Some(dir)) = (lines.next(), lines.next()) else {
            return;
        };
        let cmdline = fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
        if let (Ok(pid), true) = (
            pid.trim().parse(),
            String::from_utf8_lossy(&cmdline).contains(dir),
        ) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
        }
    }
}

/// No process mentions the data directory on its command line or runs in
/// it (server backends do), and the server's pid file is gone.
fn assert_nothing_left_running(data: &Path) {
    let data = data.canonicalize().expect("data directory");
    let needle = data.to_string_lossy().into_owned();
    let mut left = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").filter_map(Result::ok) {
        let path = entry.path();
        let cmdline = fs::read(path.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let in_data = fs::read_link(path.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&data));
        if cmdline.contains(&needle) || in_data {
            left.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    assert!(left.is_empty(), "processes left running: {left:#?}");
    assert!(
        !data.join("postmaster.pid").exists(),
        "postmaster.pid left behind"
    );
}

fn modified(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("PG_VERSION")
}

/// The same places `robsond dev` searches, so a missing install fails here
/// with the package to install rather than later with a timeout.
fn assert_postgres_programs_installed() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let versioned = fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .collect::<Vec<PathBuf>>()
        })
        .unwrap_or_else(|_| Vec::new());
    let found = std::env::split_paths(&path).chain(versioned).any(|dir| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| dir.join(p).is_file())
    });
    assert!(
        found,
        "PostgreSQL server programs (initdb, pg_ctl, postgres) not found: \
         install them (`apt-get install postgresql`, `brew install postgresql@16`)"
    );
}
