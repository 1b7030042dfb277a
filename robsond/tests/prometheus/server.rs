//! A real Prometheus server (Debian package `prometheus`, /usr/bin/prometheus)
//! on a free loopback port, scraping one daemon every second with the rule
//! files of `deploy/prometheus/`, and its HTTP API. The process is killed
//! when the value is dropped, however the test ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::support::{free_port, guard_against_hang, http};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// How long an alert must hold before it fires, in the test's copy of the
/// rules (see [`fast_rules`]).
pub const TEST_FOR: &str = "2s";

#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    pub base: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port` of a daemon) and
    /// waits until it is ready.
    pub async fn start(target: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install Debian's prometheus package \
             (apt-get install prometheus); .ci/run does this in CI"
        );
        let dir = tempfile::tempdir().expect("a directory for Prometheus");
        let deploy = repo().join("deploy/prometheus");
        let rule_files = rule_files(&deploy);
        let mut names = Vec::new();
        for file in &rule_files {
            let name = file.file_name().expect("a file name").to_owned();
            let text = std::fs::read_to_string(file).expect("read a rule file");
            std::fs::write(dir.path().join(&name), fast_rules(&text)).expect("write a rule file");
            names.push(format!("  - {:?}", name.to_string_lossy()));
        }
        // 1 s scrapes and evaluations instead of the shipped 15 s: the rules'
        // expressions are the shipped ones, only their timing is faster.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\n\
             scrape_configs:\n  - job_name: robsond\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: [\"{target}\"]\n",
            names.join("\n")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write the config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn prometheus");
        let server = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let client = http();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            guard_against_hang(started, &format!("Prometheus ready; log:\n{}", self.log()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What Prometheus logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET `/api/v1/{path}` with `query` parameters; the `data` of a
    /// `success` answer (fails on any other).
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = http()
            .get(format!("{}/api/v1/{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /api/v1/{path}: {e}"));
        let body: Value = response
            .json()
            .await
            .expect("a JSON answer from Prometheus");
        assert_eq!(
            body["status"], "success",
            "/api/v1/{path} {query:?}: {body}"
        );
        body["data"].clone()
    }

    /// The result of the instant query `expr` (a vector's samples).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", expr)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The state of alert `name` in `/api/v1/alerts`: `pending`, `firing`, or
    /// None when it is neither (inactive or resolved).
    pub async fn alert_state(&self, name: &str) -> Option<String> {
        let data = self.api("alerts", &[]).await;
        let alerts = data["alerts"].as_array().cloned().unwrap_or_default();
        let states: Vec<String> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .filter_map(|a| a["state"].as_str().map(str::to_owned))
            .collect();
        if states.iter().any(|s| s == "firing") {
            Some("firing".to_owned())
        } else {
            states.into_iter().next()
        }
    }

    /// Waits until alert `name` is in `state` (None: neither pending nor
    /// firing); `daemon_alive` is checked on each round.
    pub async fn wait_alert(&self, name: &str, state: Option<&str>) {
        let started = Instant::now();
        loop {
            let now = self.alert_state(name).await;
            if now.as_deref() == state {
                return;
            }
            guard_against_hang(
                started,
                &format!(
                    "alert {name} is {now:?}, want {state:?}; Prometheus log:\n{}",
                    self.log()
                ),
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the instant query `expr` returns at least one sample.
    pub async fn wait_query(&self, expr: &str) {
        let started = Instant::now();
        while self.query(expr).await.is_empty() {
            guard_against_hang(started, &format!("no result for {expr}"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // kill_on_drop does it too; this also reaps it before the data
        // directory goes.
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("robsond/ has a parent")
        .to_path_buf()
}

/// The rule files of `deploy/prometheus/` (the `rule_files:` of the shipped
/// configuration), resolved against that directory.
fn rule_files(deploy: &Path) -> Vec<PathBuf> {
    let config = std::fs::read_to_string(deploy.join("prometheus.yml")).expect("prometheus.yml");
    let mut files = Vec::new();
    let mut in_list = false;
    for line in config.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if trimmed == "rule_files:" {
            in_list = true;
            continue;
        }
        if in_list {
            match trimmed.strip_prefix("- ") {
                Some(file) => files.push(deploy.join(file.trim().trim_matches(['"', '\'']))),
                None => in_list = false,
            }
        }
    }
    assert!(
        !files.is_empty(),
        "no rule_files in deploy/prometheus/prometheus.yml"
    );
    files
}

/// The rules as shipped, except that every `for:` lasts [`TEST_FOR`]: the
/// shipped durations (minutes) only keep short bursts from paging, and
/// the test would wait them out. The expressions are untouched.
pub fn fast_rules(text: &str) -> String {
    text.lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            if line.trim_start().starts_with("for:") {
                format!("{indent}for: {TEST_FOR}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
