//! The daemon under test, as a child process (`robsond run`), and the other
//! subcommands the benchmark times (`snapshot`, `rebuild`, `verify`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A running `robsond run`.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    http: String,
    peak_rss: u64,
}

fn robsond(url: &str) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("Failed to find the robsond executable")?;
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // Settings to compare (e.g. ROBSON_BATCH_SIZE) pass through; the
    // database and the address are the bench's own.
    for (key, value) in std::env::vars() {
        let passed = key.starts_with("ROBSON_") && key != "ROBSON_HTTP_ADDR";
        if passed {
            cmd.env(key, value);
        }
    }
    Ok(cmd)
}

impl Daemon {
    /// Starts the daemon at default settings on a free port.
    pub fn spawn(url: &str) -> anyhow::Result<Daemon> {
        Daemon::spawn_with(url, &[])
    }

    /// [`Daemon::spawn`] with `env` on top of the defaults.
    pub fn spawn_with(url: &str, env: &[(&str, &str)]) -> anyhow::Result<Daemon> {
        let port = crate::tools::dev::cluster::free_port()?;
        let http = format!("127.0.0.1:{port}");
        let child = robsond(url)?
            .arg("run")
            .env("ROBSON_HTTP_ADDR", &http)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .context("Failed to start robsond run")?;
        Ok(Daemon {
            child,
            http,
            peak_rss: 0,
        })
    }

    /// Waits until the daemon has applied (or skipped as unhandled, or
    /// dead-lettered) `expected` events, sampling its peak RSS meanwhile.
    pub async fn wait_for_applied(&mut self, expected: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            self.sample_rss();
            if let Some(done) = self.processed().await {
                if done >= expected {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("robsond run exited early: {status}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "robsond did not catch up within an hour"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn sample_rss(&mut self) {
        let Some(pid) = self.child.id() else { return };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        // VmHWM is the kernel's own peak: nothing is missed between samples.
        for line in status.lines() {
            if let Some(kb) = line.strip_prefix("VmHWM:") {
                let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                self.peak_rss = self.peak_rss.max(kb * 1024);
            }
        }
    }

    /// Its HTTP address (`host:port`), for [`get`].
    pub fn address(&self) -> &str {
        &self.http
    }

    pub fn peak_rss_bytes(&self) -> u64 {
        self.peak_rss
    }

    /// Events processed so far, from the daemon's own counters.
    async fn processed(&self) -> Option<u64> {
        let text = http_get(&self.http, "/metrics").await.ok()?;
        let mut sum = 0.0;
        for line in text.lines() {
            let counted = line.starts_with("robson_events_applied_total")
                || line.starts_with("robson_events_dead_lettered_total")
                || line.starts_with("robson_events_skipped_total{reason=\"unhandled_type\"}");
            if counted {
                sum += line.rsplit(' ').next()?.parse::<f64>().ok()?;
            }
        }
        Some(sum as u64)
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("robsond did not stop within 60 s")??;
        anyhow::ensure!(status.success(), "robsond run exited with {status}");
        Ok(())
    }
}

/// A plain HTTP/1.0 GET on loopback (no client library needed for this).
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

/// The body of `GET path` at `addr`.
pub async fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let response = http_get(addr, path).await?;
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_owned()),
        None => anyhow::bail!("GET {path}: no body in the answer"),
    }
}

/// Runs `robsond ARGS…`; returns (success, output).
pub async fn run_command(url: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = robsond(url)?
        .args(args)
        .output()
        .await
        .with_context(|| format!("Failed to run robsond {}", args.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        eprintln!("bench: robsond {} failed:\n{text}", args.join(" "));
    }
    Ok((out.status.success(), text))
}

/// Wall time of `robsond ARGS…` (NaN when it failed).
pub async fn timed_command(url: &str, args: &[&str]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (ok, _) = run_command(url, args).await?;
    Ok(if ok {
        started.elapsed().as_secs_f64()
    } else {
        f64::NAN
    })
}
