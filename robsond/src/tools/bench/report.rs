//! The benchmark's figures and the table it prints.

use super::probe::Latencies;
use crate::tools::generate::Profile;

/// Everything one run of one profile measured.
#[derive(Debug)]
pub struct Report {
    pub pg_version: String,
    pub profile: Profile,
    pub append_eps: f64,
    pub catch_up_events: u64,
    pub catch_up_secs: f64,
    pub peak_rss_bytes: u64,
    pub snapshot_ok: bool,
    pub idle: Latencies,
    pub loaded: Latencies,
    /// Commit → waiter's answer, 1,000 concurrent waiters (measured once
    /// per run, with the first profile).
    pub wake: Option<Latencies>,
    pub rebuild_full_secs: f64,
    pub rebuild_snapshot_secs: f64,
    pub verified: bool,
    pub naive_events: u64,
    pub naive_eps: f64,
    pub limit_rows: u64,
    pub limit_secs: f64,
    /// Events of the per-event pipelined reference's sample, and its time.
    pub pipelined_events: u64,
    pub pipelined_secs: f64,
    pub read_events: u64,
    pub read_secs: f64,
    pub total_events: u64,
    /// `uptime`'s load averages when the report was made.
    pub load: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

impl Report {
    pub fn new(pg_version: String, profile: Profile) -> Report {
        Report {
            pg_version,
            profile,
            append_eps: 0.0,
            catch_up_events: 0,
            catch_up_secs: 0.0,
            peak_rss_bytes: 0,
            snapshot_ok: false,
            idle: Latencies::default(),
            loaded: Latencies::default(),
            wake: None,
            rebuild_full_secs: 0.0,
            rebuild_snapshot_secs: 0.0,
            verified: false,
            naive_events: 0,
            naive_eps: 0.0,
            limit_rows: 0,
            limit_secs: 0.0,
            pipelined_events: 0,
            pipelined_secs: 0.0,
            read_events: 0,
            read_secs: 0.0,
            total_events: 0,
            load: String::new(),
        }
    }

    /// Notes the machine's load now (at the end of the profile's run).
    pub fn note_load(&mut self) {
        self.load = load_average();
    }

    /// The per-event pipelined limit in events/s.
    pub fn pipelined_eps(&self) -> f64 {
        self.pipelined_events as f64 / self.pipelined_secs
    }

    /// Seconds per event of the full rebuild over those of the catch-up.
    pub fn rebuild_vs_catch_up(&self) -> f64 {
        (self.rebuild_full_secs / self.total_events as f64)
            / (self.catch_up_secs / self.catch_up_events as f64)
    }

    /// The catch-up in events/s.
    pub fn catch_up_eps(&self) -> f64 {
        self.catch_up_events as f64 / self.catch_up_secs
    }

    /// PostgreSQL's limit expressed as events/s: the events of the run
    /// divided by the time to write their final rows.
    pub fn limit_eps(&self) -> f64 {
        self.total_events as f64 / self.limit_secs
    }

    /// Reading every event once, in events/s.
    pub fn read_eps(&self) -> f64 {
        self.read_events as f64 / self.read_secs
    }

    /// The bound of read once + set-based limit: both, one after the
    /// other, in events/s.
    pub fn read_and_write_eps(&self) -> f64 {
        1.0 / (1.0 / self.read_eps() + 1.0 / self.limit_eps())
    }

    pub fn render(&self) -> String {
        let eps = self.catch_up_eps();
        let vs_naive = eps / self.naive_eps;
        let vs_limit = eps / self.limit_eps();
        let vs_pipelined = eps / self.pipelined_eps();
        let rebuild_ratio = self.rebuild_vs_catch_up();
        let rss_mib = self.peak_rss_bytes as f64 / (1024.0 * 1024.0);
        let tail = self.rebuild_snapshot_secs / self.rebuild_full_secs;
        let mut out = String::new();
        out.push_str(&format!(
            "robson bench, profile {}: {} events, PostgreSQL {}, {}, load average {}\n\n",
            self.profile.name(),
            self.total_events,
            self.pg_version,
            machine(),
            self.load,
        ));
        out.push_str("| measure | value | target |\n|---|---|---|\n");
        let rows = [
            (
                "append (batch append, generate)".to_owned(),
                format!("{:.0} events/s", self.append_eps),
                String::new(),
            ),
            (
                format!("catch-up, cold start, {} events", self.catch_up_events),
                format!("{eps:.0} events/s ({:.1} s)", self.catch_up_secs),
                String::new(),
            ),
            (
                format!(
                    "naive baseline (1 tx/event + checkpoint), {} events",
                    self.naive_events
                ),
                format!("{:.0} events/s", self.naive_eps),
                String::new(),
            ),
            (
                format!("set-based limit ({} final rows, 500/tx)", self.limit_rows),
                format!(
                    "{:.0} rows/s = {:.0} events/s",
                    self.limit_rows as f64 / self.limit_secs,
                    self.limit_eps()
                ),
                String::new(),
            ),
            (
                format!(
                    "per-event pipelined limit (1 upsert/event, 500/tx), {} events",
                    self.pipelined_events
                ),
                format!("{:.0} events/s", self.pipelined_eps()),
                String::new(),
            ),
            (
                format!("read every event once ({} events)", self.read_events),
                format!(
                    "{:.0} events/s; with the set-based limit {:.0} events/s",
                    self.read_eps(),
                    self.read_and_write_eps()
                ),
                String::new(),
            ),
            (
                "catch-up / naive".to_owned(),
                format!("{vs_naive:.1}×"),
                format!("≥ 10× {}", verdict(vs_naive >= 10.0)),
            ),
            (
                "catch-up / limit".to_owned(),
                format!("{:.0} %", vs_limit * 100.0),
                format!("≥ 50 % {}", verdict(vs_limit >= 0.5)),
            ),
            (
                "catch-up / (read once + set-based limit)".to_owned(),
                format!("{:.0} %", eps / self.read_and_write_eps() * 100.0),
                String::new(),
            ),
            (
                "catch-up / per-event pipelined limit".to_owned(),
                format!("{vs_pipelined:.2}×"),
                format!("≥ 1× {}", verdict(vs_pipelined >= 1.0)),
            ),
            (
                "latency idle p50 / p99 / max".to_owned(),
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    self.idle.p50_ms, self.idle.p99_ms, self.idle.max_ms
                ),
                format!("p99 < 10 ms {}", verdict(self.idle.p99_ms < 10.0)),
            ),
            (
                "latency at 2,000 events/s p50 / p99 / max".to_owned(),
                format!(
                    "{:.1} / {:.1} / {:.1} ms ({:.0} events/s reached)",
                    self.loaded.p50_ms,
                    self.loaded.p99_ms,
                    self.loaded.max_ms,
                    self.loaded.load_eps
                ),
                format!("p99 < 25 ms {}", verdict(self.loaded.p99_ms < 25.0)),
            ),
            (
                "peak RSS during catch-up".to_owned(),
                format!("{rss_mib:.1} MiB"),
                format!("< 150 MiB {}", verdict(rss_mib < 150.0)),
            ),
            (
                "rebuild, full".to_owned(),
                format!("{:.1} s", self.rebuild_full_secs),
                String::new(),
            ),
            (
                "rebuild / catch-up, per event".to_owned(),
                format!("{rebuild_ratio:.2}×"),
                format!("≤ 1.2× {}", verdict(rebuild_ratio <= 1.2)),
            ),
            (
                "rebuild, from the snapshot at 90 %".to_owned(),
                format!(
                    "{:.1} s ({:.0} % of full)",
                    self.rebuild_snapshot_secs,
                    tail * 100.0
                ),
                format!("∝ events after it {}", verdict(tail < 0.5)),
            ),
            (
                "snapshot taken".to_owned(),
                self.snapshot_ok.to_string(),
                String::new(),
            ),
            (
                "projections equal a clean rebuild (verify)".to_owned(),
                self.verified.to_string(),
                "true".to_owned(),
            ),
        ];
        let wake = self.wake.as_ref().map(|w| {
            (
                "commit → /wait answer, 1,000 waiters, p50 / p99 / max".to_owned(),
                format!("{:.3} / {:.3} / {:.3} ms", w.p50_ms, w.p99_ms, w.max_ms),
                format!("p99 < 2 ms {}", verdict(w.p99_ms < 2.0)),
            )
        });
        for (m, v, t) in rows.into_iter().chain(wake) {
            out.push_str(&format!("| {m} | {v} | {t} |\n"));
        }
        out
    }
}
