//! Daemon configuration from the environment (SPEC §4.2).
//!
//! envy reads every variable as an optional string, so reading never fails on a
//! bad value; `Config::from_raw` then parses and checks each one and reports the
//! first problem as one line naming the variable and what it accepts. Secrets
//! (the database URL, the admin token) live in [`Secret`] and are never echoed.
//! What the values are used for belongs to the modules that use them.

use robson_projector::PoisonPolicy;
use serde::Deserialize;
use std::{fmt, net::SocketAddr, time::Duration};

/// A value that must never reach a log, an error or an HTTP answer.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value; call it only where the secret is actually needed.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The configuration could not be read or is invalid; displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("invalid configuration: {var} is required ({expected})")]
    Missing {
        var: &'static str,
        expected: &'static str,
    },
    /// A variable holds a value it does not accept; `shown` is the quoted value
    /// or `(value hidden)` for secrets.
    #[error("invalid configuration: {var}={shown} is not valid: expected {expected}")]
    Invalid {
        var: &'static str,
        shown: String,
        expected: String,
    },
    /// DATABASE_URL is set but is not a PostgreSQL URL robsond can use;
    /// `reason` says what is wrong without repeating any part of the value.
    #[error("invalid configuration: DATABASE_URL=(value hidden) is not valid: {reason}; expected {DATABASE_URL_FORM}")]
    InvalidDatabaseUrl { reason: String },
    /// envy could not read the environment.
    #[error("invalid configuration: {0}")]
    Env(#[from] envy::Error),
}

/// Log line format on stderr (ROBSON_LOG_FORMAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The environment as read, before any check. Empty strings count as unset.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub database_url: Option<Secret<String>>,
    pub robson_http_addr: Option<String>,
    pub robson_partitions: Option<String>,
    pub robson_batch_size: Option<String>,
    pub robson_poll_interval_ms: Option<String>,
    pub robson_db_max_connections: Option<String>,
    pub robson_shutdown_timeout_secs: Option<String>,
    pub robson_health_max_lag_seconds: Option<String>,
    pub robson_health_max_lag_events: Option<String>,
    pub robson_on_poison: Option<String>,
    pub robson_admin_token: Option<Secret<String>>,
    pub robson_read_token: Option<Secret<String>>,
    pub robson_instance_id: Option<String>,
    pub robson_log_format: Option<String>,
    pub robson_verify_interval_secs: Option<String>,
    pub robson_verify_sample: Option<String>,
    pub rust_log: Option<String>,
    pub hostname: Option<String>,
}

impl RawConfig {
    /// Reads the process environment. Values that are not UTF-8 are kept
    /// (lossily) so that validation names the variable instead of panicking.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars_os().filter_map(|(key, value)| {
            Some((
                key.into_string().ok()?,
                value.to_string_lossy().into_owned(),
            ))
        }))
    }

    /// Reads the given (name, value) pairs instead of the environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Ok(envy::from_iter(vars)?)
    }
}

/// The accepted form of DATABASE_URL, as error messages show it.
pub const DATABASE_URL_FORM: &str =
    "a PostgreSQL URL such as postgres://user:password@host:5432/robson \
     (percent-encode special characters, e.g. a space as %20; for a Unix socket \
     postgres:///robson?host=/run/postgresql)";

/// What the database-only CLI commands need (migrate, status, append, …).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Secret<String>,
    pub max_connections: u32,
}

impl DatabaseConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_raw(&RawConfig::from_env()?)
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_raw(&RawConfig::from_vars(vars)?)
    }

    pub fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let Some(url) = set(raw.database_url.as_ref().map(|s| s.expose().as_str())) else {
            return Err(ConfigError::Missing {
                var: "DATABASE_URL",
                expected: DATABASE_URL_FORM,
            });
        };
        check_database_url(url).map_err(|reason| ConfigError::InvalidDatabaseUrl { reason })?;
        let max_connections = int(&raw.robson_db_max_connections, DB_MAX_CONNECTIONS)?;
        let url = Secret::new(url.to_owned());
        // Range-checked to at most 1000, so the cast cannot truncate.
        Ok(Self {
            url,
            max_connections: max_connections as u32,
        })
    }
}

/// The daemon's full configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http_addr: SocketAddr,
    pub partitions: usize,
    pub batch_size: usize,
    pub poll_interval: Duration,
    pub shutdown_timeout: Duration,
    pub health_max_lag: Duration,
    pub health_max_lag_events: u64,
    /// ROBSON_ON_POISON: the projector's own policy type.
    pub on_poison: PoisonPolicy,
    /// `None` turns the admin endpoints off.
    pub admin_token: Option<Secret<String>>,
    /// `None` leaves `/streams` and `/wait` open (docs/http.md).
    pub read_token: Option<Secret<String>>,
    pub instance_id: String,
    pub log_format: LogFormat,
    /// The tracing filter directive (RUST_LOG), not yet parsed.
    pub log_filter: String,
    /// Drift detection (ROBSON_VERIFY_INTERVAL_SECS, ROBSON_VERIFY_SAMPLE).
    pub verify: crate::daemon::drift::DriftConfig,
}

/// An integer variable: name, default, smallest and largest accepted value.
struct IntVar(&'static str, u64, u64, u64);

const PARTITIONS: IntVar = IntVar("ROBSON_PARTITIONS", 8, 1, 1024);
const BATCH_SIZE: IntVar = IntVar("ROBSON_BATCH_SIZE", 500, 1, 10_000);
const POLL_INTERVAL_MS: IntVar = IntVar("ROBSON_POLL_INTERVAL_MS", 1000, 10, 3_600_000);
// The daemon holds one connection for LISTEN and needs at least one more to work.
const DB_MAX_CONNECTIONS: IntVar = IntVar("ROBSON_DB_MAX_CONNECTIONS", 16, 2, 1000);
const SHUTDOWN_TIMEOUT_SECS: IntVar = IntVar("ROBSON_SHUTDOWN_TIMEOUT_SECS", 30, 1, 3600);
const MAX_LAG_SECONDS: IntVar = IntVar("ROBSON_HEALTH_MAX_LAG_SECONDS", 30, 1, u64::MAX);
const MAX_LAG_EVENTS: IntVar = IntVar("ROBSON_HEALTH_MAX_LAG_EVENTS", 10_000, 1, u64::MAX);
// 0 turns drift detection off; a week is the longest interval worth having.
const VERIFY_INTERVAL_SECS: IntVar = IntVar("ROBSON_VERIFY_INTERVAL_SECS", 300, 0, 604_800);
const VERIFY_SAMPLE: IntVar = IntVar("ROBSON_VERIFY_SAMPLE", 200, 1, 100_000);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::from_env()?)
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::from_vars(vars)?)
    }

    /// Parses and checks every variable; reports the first invalid one.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let database = DatabaseConfig::from_raw(&raw)?;
        let http_addr = match set(raw.robson_http_addr.as_deref()) {
            None => SocketAddr::from(([127, 0, 0, 1], 9464)),
            Some(v) => v.parse().map_err(|_| {
                let expected = "a socket address such as 127.0.0.1:9464 or [::]:9464";
                invalid("ROBSON_HTTP_ADDR", v, expected)
            })?,
        };
        let admin_token = token(
            &raw.robson_admin_token,
            "ROBSON_ADMIN_TOKEN",
            "at least 16 characters, or unset to turn the admin endpoints off",
        )?;
        let read_token = token(
            &raw.robson_read_token,
            "ROBSON_READ_TOKEN",
            "at least 16 characters, or unset to leave /streams and /wait open",
        )?;
        let instance_id = match set(raw.robson_instance_id.as_deref()) {
            None => default_instance_id(raw.hostname.as_deref()),
            Some(v) if v.chars().count() <= 64 && !v.contains(unprintable) => v.to_owned(),
            Some(v) => {
                let expected = "1 to 64 characters without spaces";
                return Err(invalid("ROBSON_INSTANCE_ID", v, expected));
            }
        };
        let poll_ms = int(&raw.robson_poll_interval_ms, POLL_INTERVAL_MS)?;
        let shutdown_secs = int(&raw.robson_shutdown_timeout_secs, SHUTDOWN_TIMEOUT_SECS)?;
        let max_lag_secs = int(&raw.robson_health_max_lag_seconds, MAX_LAG_SECONDS)?;
        let on_poison = [("park", PoisonPolicy::Park), ("skip", PoisonPolicy::Skip)];
        let log_format = [("text", LogFormat::Text), ("json", LogFormat::Json)];
        // The casts convert values range-checked to at most 100_000.
        Ok(Self {
            database,
            http_addr,
            partitions: int(&raw.robson_partitions, PARTITIONS)? as usize,
            batch_size: int(&raw.robson_batch_size, BATCH_SIZE)? as usize,
            poll_interval: Duration::from_millis(poll_ms),
            shutdown_timeout: Duration::from_secs(shutdown_secs),
            health_max_lag: Duration::from_secs(max_lag_secs),
            health_max_lag_events: int(&raw.robson_health_max_lag_events, MAX_LAG_EVENTS)?,
            on_poison: choice(&raw.robson_on_poison, "ROBSON_ON_POISON", on_poison)?,
            admin_token,
            read_token,
            instance_id,
            log_format: choice(&raw.robson_log_format, "ROBSON_LOG_FORMAT", log_format)?,
            log_filter: set(raw.rust_log.as_deref()).unwrap_or("info").to_owned(),
            verify: crate::daemon::drift::DriftConfig {
                interval: Duration::from_secs(int(
                    &raw.robson_verify_interval_secs,
                    VERIFY_INTERVAL_SECS,
                )?),
                sample: int(&raw.robson_verify_sample, VERIFY_SAMPLE)? as usize,
            },
        })
    }
}

/// A bearer token variable: unset, or at least 16 characters (never echoed).
fn token(
    raw: &Option<Secret<String>>,
    var: &'static str,
    expected: &'static str,
) -> Result<Option<Secret<String>>, ConfigError> {
    match set(raw.as_ref().map(|s| s.expose().as_str())) {
        None => Ok(None),
        Some(t) if t.chars().count() >= 16 => Ok(Some(Secret::new(t.to_owned()))),
        Some(_) => Err(invalid_hidden(var, expected)),
    }
}

/// The URL for logs: scheme, user, host, port and database; never the password
/// nor the query string (which may carry `password=`).
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".to_owned();
    };
    // The password sits before the last '@' even when it contains '/', '?' or '@'.
    let (user, location) = match rest.rsplit_once('@') {
        Some((userinfo, location)) => (userinfo.split(':').next(), location),
        None => (None, rest),
    };
    let location = location.split(['?', '#']).next().unwrap_or_default();
    match user {
        Some(user) => format!("{scheme}://{user}@{location}"),
        None => format!("{scheme}://{location}"),
    }
}

/// A trimmed value, or `None` when unset or empty.
fn set(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn unprintable(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

fn int(value: &Option<String>, IntVar(var, default, min, max): IntVar) -> Result<u64, ConfigError> {
    let Some(v) = set(value.as_deref()) else {
        return Ok(default);
    };
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == u64::MAX => Err(invalid(var, v, &format!("an integer of at least {min}"))),
        _ => Err(invalid(var, v, &format!("an integer from {min} to {max}"))),
    }
}

/// One of the named values; the first is the default.
fn choice<T: Copy, const N: usize>(
    value: &Option<String>,
    var: &'static str,
    named: [(&str, T); N],
) -> Result<T, ConfigError> {
    let Some(v) = set(value.as_deref()) else {
        return Ok(named[0].1);
    };
    match named.iter().find(|(name, _)| *name == v) {
        Some(&(_, t)) => Ok(t),
        None => Err(invalid(var, v, &named.map(|(name, _)| name).join(" or "))),
    }
}

fn invalid(var: &'static str, value: &str, expected: &str) -> ConfigError {
    // Debug quoting escapes newlines, so the message stays on one line; long
    // values are cut so a pasted blob does not flood the terminal.
    let shown: String = value.chars().take(80).collect();
    ConfigError::Invalid {
        var,
        shown: format!("{shown:?}"),
        expected: expected.to_owned(),
    }
}

fn invalid_hidden(var: &'static str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        shown: "(value hidden)".to_owned(),
        expected: expected.to_owned(),
    }
}

/// `<hostname>-<pid>`, the hostname cut so the whole stays within 64 characters.
fn default_instance_id(hostname_var: Option<&str>) -> String {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let host = set(from_proc.as_deref())
        .or(set(hostname_var))
        .unwrap_or("robsond");
    let suffix = format!("-{}", std::process::id());
    let host: String = host
        .chars()
        .filter(|&c| !unprintable(c))
        .take(64 - suffix.len())
        .collect();
    format!("{host}{suffix}")
}

mod database_url;

pub use database_url::check_database_url;

#[cfg(test)]
mod tests;
