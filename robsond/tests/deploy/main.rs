//! The files in `deploy/` checked against the daemon they deploy, without a
//! database: every metric the Grafana dashboard and the alert rules query is
//! one the daemon exports; promtool accepts the Prometheus configuration,
//! the rules and their unit tests; the Kubernetes and systemd settings are
//! valid daemon configuration and leave the daemon time to drain on SIGTERM.
//!
//! `cargo test -p robsond --test deploy`. promtool (Debian package
//! `prometheus`) must be on PATH: the promtool tests fail, naming the
//! package, when it is missing, rather than pass without checking.

mod dashboard;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use robsond::config::Config;
use robsond::metrics::Metrics;

const DASHBOARD: &str = "deploy/grafana/robson-dashboard.json";
const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERTS_TEST: &str = "deploy/prometheus/alerts_test.yml";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const DEPLOYMENT: &str = "deploy/kubernetes/deployment.yaml";
const MIGRATE_JOB: &str = "deploy/kubernetes/migrate-job.yaml";
const SERVICE: &str = "deploy/kubernetes/service.yaml";
const UNIT: &str = "deploy/systemd/robsond.service";
const ENV_EXAMPLE: &str = "deploy/systemd/robsond.env.example";
const DOCKERFILE: &str = "deploy/docker/Dockerfile";
const OPERATIONS: &str = "docs/operations.md";

/// Every variable the daemon reads (SPEC §4.2); envy ignores the others, so a
/// misspelt name would silently fall back to the default.
const KNOWN_VARS: &[&str] = &[
    "DATABASE_URL",
    "ROBSON_HTTP_ADDR",
    "ROBSON_PARTITIONS",
    "ROBSON_BATCH_SIZE",
    "ROBSON_POLL_INTERVAL_MS",
    "ROBSON_DB_MAX_CONNECTIONS",
    "ROBSON_SHUTDOWN_TIMEOUT_SECS",
    "ROBSON_HEALTH_MAX_LAG_SECONDS",
    "ROBSON_HEALTH_MAX_LAG_EVENTS",
    "ROBSON_ON_POISON",
    "ROBSON_ADMIN_TOKEN",
    "ROBSON_INSTANCE_ID",
    "ROBSON_LOG_FORMAT",
    "ROBSON_VERIFY_INTERVAL_SECS",
    "ROBSON_VERIFY_SAMPLE",
    "RUST_LOG",
];

/// Stands in for the Secret's value when a file's settings are parsed as
/// the daemon's configuration.
const PLACEHOLDER_URL: &str = "postgres://robson:placeholder@db.invalid:5432/robson";

// ---------------------------------------------------------------------------
// (a) Queried metrics exist.

#[test]
fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let exported = Exported::from_daemon();
    let mut exprs = dashboard_exprs();
    assert!(exprs.len() >= 15, "too few dashboard queries: {exprs:?}");
    let alerts = alert_exprs();
    assert!(alerts.len() >= 8, "too few alert expressions: {alerts:?}");
    exprs.extend(alerts);

    let mut problems = Vec::new();
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        let parts = PromQl::scan(expr);
        for metric in parts.metrics {
            // The process collector exists only on Linux.
            if metric.starts_with("process_") && !cfg!(target_os = "linux") {
                continue;
            }
            if !exported.series.contains(&metric) {
                problems.push(format!("`{metric}` (in `{expr}`) is not exported"));
            }
            queried.insert(metric);
        }
        for label in parts.labels {
            // Target labels Prometheus adds at scrape time.
            let target_label = ["instance", "job"].contains(&label.as_str());
            if !target_label && !exported.labels.contains(&label) {
                problems.push(format!("label `{label}` (in `{expr}`) is not exported"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The scan really found names (a broken scanner would pass vacuously).
    for name in [
        "robson_events_applied_total",
        "robson_batch_duration_seconds_bucket",
        "robson_projection_lag_events",
        "robson_heartbeat_age_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(queried.contains(name), "{name} is never queried");
    }
}

#[test]
fn the_scanner_finds_metrics_and_labels_but_not_quoted_values() {
    let parts = PromQl::scan(
        r#"histogram_quantile(0.99, sum by (le) (rate(robson_batch_duration_seconds_bucket{instance=~"robson_x|$instance"}[5m]))) and on (job) up == 0"#,
    );
    let names = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&parts.metrics),
        ["robson_batch_duration_seconds_bucket"]
    );
    assert_eq!(names(&parts.labels), ["instance", "job", "le"]);
}

#[test]
fn every_alert_points_at_an_existing_runbook_section() {
    let anchors: BTreeSet<String> = read(OPERATIONS)
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| slug(heading.trim_start_matches('#')))
        .collect();
    let alerts = read(ALERTS);
    let urls: Vec<&str> = alerts
        .lines()
        .filter_map(|line| line.trim().strip_prefix("runbook_url:"))
        .map(|v| unquote(v.trim()))
        .collect();
    let alert_count = alerts
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert_eq!(urls.len(), alert_count, "every alert needs a runbook_url");
    // The base is the external label robson_docs_url when set (absolute),
    // else the path from the repository root.
    const BASE: &str = "{{ with $externalLabels.robson_docs_url }}{{ . }}{{ else }}docs{{ end }}/";
    let page = OPERATIONS.trim_start_matches("docs/");
    for url in urls {
        let anchor = url
            .strip_prefix(BASE)
            .and_then(|rest| rest.strip_prefix(&format!("{page}#")))
            .unwrap_or_else(|| panic!("runbook_url {url} is not {BASE}{page}#…"));
        assert!(
            anchors.contains(anchor),
            "{OPERATIONS} has no section #{anchor}; sections: {anchors:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// (b) promtool.

#[test]
fn promtool_accepts_the_scrape_config() {
    promtool(&["check", "config", PROMETHEUS]);
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let out = promtool(&["check", "rules", ALERTS]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn alert_unit_tests_pass() {
    promtool(&["test", "rules", ALERTS_TEST]);
}

// ---------------------------------------------------------------------------
// (c) Kubernetes, systemd, container settings.

#[test]
fn kubernetes_grace_period_exceeds_the_drain_timeout() {
    let deployment = read(DEPLOYMENT);
    let grace: u64 = scalar(&deployment, "terminationGracePeriodSeconds")
        .parse()
        .expect("terminationGracePeriodSeconds is an integer");
    let config = daemon_config(DEPLOYMENT, literal_env(&deployment));
    assert!(
        Duration::from_secs(grace) > config.shutdown_timeout,
        "terminationGracePeriodSeconds {grace} must exceed ROBSON_SHUTDOWN_TIMEOUT_SECS {:?}",
        config.shutdown_timeout
    );
}

#[test]
fn kubernetes_probes_use_the_health_endpoints_on_the_http_port() {
    let deployment = read(DEPLOYMENT);
    for (probe, path) in [
        ("livenessProbe", "/health/live"),
        ("readinessProbe", "/health/ready"),
    ] {
        let block = block(&deployment, probe);
        assert_eq!(scalar(&block, "path"), path, "{probe}");
        assert_eq!(scalar(&block, "port"), "http", "{probe}");
    }
    let ports = block(&deployment, "ports");
    assert_eq!(scalar(&ports, "name"), "http");
    assert_eq!(scalar(&ports, "containerPort"), "9464");
    let config = daemon_config(DEPLOYMENT, literal_env(&deployment));
    assert_eq!(config.http_addr.to_string(), "0.0.0.0:9464");
    assert_eq!(config.log_format, robsond::config::LogFormat::Json);

    let service = read(SERVICE);
    assert_eq!(scalar(&service, "prometheus.io/port"), "9464");
    assert_eq!(scalar(&service, "prometheus.io/path"), "/metrics");
    assert_eq!(scalar(&service, "targetPort"), "http");
}

#[test]
fn kubernetes_secrets_come_from_secret_refs_only() {
    for file in [DEPLOYMENT, MIGRATE_JOB] {
        let text = read(file);
        let env = literal_env(&text);
        for secret in ["DATABASE_URL", "ROBSON_ADMIN_TOKEN"] {
            assert!(!env.contains_key(secret), "{file}: {secret} as a literal");
        }
        let database_url = block(&text, "- name: DATABASE_URL");
        assert!(
            database_url.contains("secretKeyRef:"),
            "{file}: DATABASE_URL must come from a Secret"
        );
        daemon_config(file, env);
    }
}

#[test]
fn systemd_stop_timeout_exceeds_the_drain_timeout() {
    let unit = read(UNIT);
    let stop = unit_setting(&unit, "TimeoutStopSec");
    let stop = seconds(&stop).unwrap_or_else(|| panic!("TimeoutStopSec={stop} is not seconds"));
    let config = daemon_config(ENV_EXAMPLE, env_file(&read(ENV_EXAMPLE)));
    assert!(
        Duration::from_secs(stop) > config.shutdown_timeout,
        "TimeoutStopSec {stop}s must exceed ROBSON_SHUTDOWN_TIMEOUT_SECS {:?}",
        config.shutdown_timeout
    );
    assert_eq!(unit_setting(&unit, "KillSignal"), "SIGTERM");
    // Migrate, then exec the daemon: one main process, whose exit code 2
    // (configuration) RestartPreventExitStatus= sees, for migrate as for run.
    assert_eq!(
        unit_setting(&unit, "ExecStart"),
        "/bin/sh -c '/usr/local/bin/robsond migrate && exec /usr/local/bin/robsond run'"
    );
    assert_eq!(unit_setting(&unit, "RestartPreventExitStatus"), "2");
    assert!(
        !unit.lines().any(|l| l.trim().starts_with("ExecStartPre=")),
        "RestartPreventExitStatus= does not apply to ExecStartPre= commands"
    );
    assert_eq!(
        unit_setting(&unit, "EnvironmentFile"),
        "/etc/robsond/robsond.env"
    );
}

#[test]
fn container_image_serves_on_the_exposed_port_as_non_root() {
    let dockerfile = read(DOCKERFILE);
    let has = |line: &str| dockerfile.lines().any(|l| l.trim() == line);
    assert!(has("EXPOSE 9464"), "EXPOSE 9464");
    assert!(has("ENTRYPOINT [\"robsond\"]"), "ENTRYPOINT");
    assert!(has("CMD [\"run\"]"), "CMD");
    assert!(dockerfile.contains("ROBSON_HTTP_ADDR=0.0.0.0:9464"));
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("a USER instruction");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "USER {user}");
}

// ---------------------------------------------------------------------------
// Helpers.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("robsond/ has a parent")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Series and label names in the daemon's /metrics output at startup
/// (every series exists from the start). Histograms appear as their
/// `_bucket`, `_sum` and `_count` series, which is what queries use.
struct Exported {
    series: BTreeSet<String>,
    labels: BTreeSet<String>,
}

impl Exported {
    fn from_daemon() -> Self {
        let text = Metrics::new(4).expect("metrics").render();
        let mut series = BTreeSet::new();
        let mut labels = BTreeSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..end].to_owned());
            if let Some(rest) = line[end..].strip_prefix('{') {
                // Label values the daemon writes contain no `,` or `"`.
                for pair in rest.split('}').next().unwrap_or_default().split(',') {
                    if let Some((name, _)) = pair.split_once('=') {
                        labels.insert(name.to_owned());
                    }
                }
            }
        }
        assert!(series.contains("robson_database_up"), "{text}");
        Self { series, labels }
    }
}

/// The `expr` of every dashboard target and the templating queries.
fn dashboard_exprs() -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    let schema = json["schemaVersion"].as_u64().expect("schemaVersion");
    assert!(schema >= 36, "schemaVersion {schema}");
    dashboard::exprs(&json)
}

/// The `expr:` values of alerts.yml: on the line itself, or a `|`/`>` block
/// of the lines indented below it.
fn alert_exprs() -> Vec<String> {
    let text = read(ALERTS);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let base = indent(line);
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > base)
                .map(|l| l.trim())
                .collect();
            out.push(block.join(" "));
        } else {
            out.push(unquote(value).to_owned());
        }
    }
    out
}

/// Metric and label names in a PromQL expression, found by a lexical scan:
/// identifiers outside string literals; `robson_*`/`process_*` ones are
/// metrics, those inside `{…}` matchers and `by`/`without`/`on`/`ignoring`
/// lists are labels.
#[derive(Debug, Default)]
struct PromQl {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

impl PromQl {
    fn scan(expr: &str) -> Self {
        let chars: Vec<char> = expr.chars().collect();
        let mut found = Self::default();
        let (mut i, mut in_braces, mut in_label_list, mut list_next) = (0, false, false, false);
        while i < chars.len() {
            let c = chars[i];
            if c == '"' || c == '\'' || c == '`' {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            if c.is_ascii_alphabetic() || c == '_' || c == ':' {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if in_braces || in_label_list {
                    found.labels.insert(word);
                } else if ["by", "without", "on", "ignoring"].contains(&word.as_str()) {
                    list_next = true;
                } else if word.starts_with("robson_") || word.starts_with("process_") {
                    found.metrics.insert(word);
                }
                continue;
            }
            match c {
                '{' => in_braces = true,
                '}' => in_braces = false,
                '(' if list_next => in_label_list = true,
                ')' => in_label_list = false,
                _ => {}
            }
            if !c.is_whitespace() {
                list_next = false;
            }
            i += 1;
        }
        found
    }
}

/// A GitHub-style anchor for a Markdown heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Runs promtool from the repository root; fails when it is missing.
fn promtool(args: &[&str]) -> String {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("promtool").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "promtool is not on PATH: install Debian's `prometheus` package \
         (apt-get install prometheus), which provides it; .ci/run does this in CI"
    );
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        output.status
    );
    text
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// The lines below the first line whose content starts with `key` (e.g.
/// `livenessProbe` or `- name: DATABASE_URL`), while they are indented
/// deeper than that line.
fn block(text: &str, key: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(&format!("{key}:")) || t == key
        })
        .unwrap_or_else(|| panic!("no `{key}` in\n{text}"));
    // A `- name: X` item's other keys sit under `name`, deeper than the dash.
    let base = indent(lines[at]);
    lines[at + 1..]
        .iter()
        .filter(|l| !l.trim_start().starts_with('#'))
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of the first `key: value` line (comments skipped), unquoted.
fn scalar(text: &str, key: &str) -> String {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.trim_start_matches("- ")
                .strip_prefix(&format!("{key}:"))
                .map(|v| unquote(v).to_owned())
        })
        .unwrap_or_else(|| panic!("no `{key}:` in\n{text}"))
}

/// Environment variables with a literal `value:` in a Kubernetes manifest
/// (those from secretKeyRef or fieldRef have none).
fn literal_env(manifest: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = manifest.lines().map(str::trim).collect();
    let mut env = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("- name:").map(unquote) else {
            continue;
        };
        if let Some(value) = lines.get(i + 1).and_then(|l| l.strip_prefix("value:")) {
            env.insert(name.to_owned(), unquote(value).to_owned());
        }
    }
    assert!(!env.is_empty(), "no literal env values in\n{manifest}");
    env
}

/// `VAR=value` lines of an EnvironmentFile.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not VAR=value: {l}"));
            (k.trim().to_owned(), unquote(v).to_owned())
        })
        .collect()
}

/// The daemon's configuration from a deploy file's settings (the secret
/// replaced by a placeholder): names must be ones the daemon reads and
/// values ones it accepts.
fn daemon_config(file: &str, env: BTreeMap<String, String>) -> Config {
    for name in env.keys() {
        assert!(
            KNOWN_VARS.contains(&name.as_str()),
            "{file}: robsond does not read {name}"
        );
    }
    let mut vars = env;
    vars.insert("DATABASE_URL".to_owned(), PLACEHOLDER_URL.to_owned());
    Config::from_vars(vars).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The last `Key=value` of a unit file (later assignments win).
fn unit_setting(unit: &str, key: &str) -> String {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .next_back()
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .trim()
        .to_owned()
}

/// A systemd time span of whole seconds or minutes (`45`, `45s`, `2min`).
fn seconds(span: &str) -> Option<u64> {
    let digits = span.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.trim().parse().ok()?;
    match &span[digits.len()..] {
        "" | "s" | "sec" => Some(n),
        "m" | "min" => Some(n * 60),
        _ => None,
    }
}
