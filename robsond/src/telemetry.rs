//! Tracing subscriber setup: log lines to stderr as text or JSON, filtered by a
//! RUST_LOG-style directive. Nothing else lives here: metrics are in `metrics`,
//! and the choice of format and filter comes from `config`.

use crate::config::LogFormat;
use tracing_subscriber::{filter::ParseError, EnvFilter};

/// The filter used when the given directive does not parse.
const FALLBACK_FILTER: &str = "info";

/// Installs the global subscriber. Returns `false` (and changes nothing) when
/// one is already installed, so calling it twice, e.g. from tests, is safe.
///
/// An invalid directive does not stop the daemon: it logs at `info` and says
/// so in a warning once the subscriber is up.
pub fn init_subscriber(format: LogFormat, filter: &str) -> bool {
    let (env_filter, parse_error) = env_filter(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder.json().try_init().is_ok(),
    };
    if let Some(error) = parse_error {
        tracing::warn!(
            filter,
            fallback = FALLBACK_FILTER,
            error = %error,
            "Invalid RUST_LOG directive; logging with the fallback filter."
        );
    }
    installed
}

/// actix-http's connection loop logs every request it cannot parse (a bad
/// request line, a head beyond its buffer, a client that hung up) as an
/// ERROR, though the client has already had its 400 or 431: silenced unless
/// the directive names `actix_http` itself, so that client input never
/// raises an ERROR line.
const CLIENT_NOISE: &str = "actix_http::h1::dispatcher=off";

/// The filter for `directive`, or the fallback filter and the reason it was needed.
fn env_filter(directive: &str) -> (EnvFilter, Option<ParseError>) {
    let with_quiet = |d: &str| {
        if d.contains("actix_http") {
            d.to_owned()
        } else {
            format!("{d},{CLIENT_NOISE}")
        }
    };
    match EnvFilter::try_new(with_quiet(directive)) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new(with_quiet(FALLBACK_FILTER)), Some(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_directives_are_used_as_given() {
        let (filter, error) = env_filter("warn,robsond=debug,sqlx=error");
        assert!(error.is_none());
        let shown = filter.to_string();
        for directive in ["warn", "robsond=debug", "sqlx=error"] {
            assert!(shown.split(',').any(|d| d == directive), "{shown}");
        }
    }

    #[test]
    fn invalid_directive_falls_back_to_info_and_reports_why() {
        let (filter, error) = env_filter("robsond=loud");
        assert!(error.is_some());
        let shown = filter.to_string();
        assert!(shown.split(',').any(|d| d == "info"), "{shown}");
    }

    #[test]
    fn the_http_codec_is_silenced_unless_the_directive_names_it() {
        let quiet = |d| env_filter(d).0.to_string().contains(CLIENT_NOISE);
        assert!(quiet("info") && quiet("robsond=debug") && quiet("robsond=loud"));
        assert!(!quiet("info,actix_http=debug"));
    }

    #[test]
    fn installing_twice_is_harmless() {
        // The first call may lose to another test in this binary; either way
        // one subscriber ends up installed, silent ("off"), and nothing panics.
        init_subscriber(LogFormat::Json, "off");
        assert!(!init_subscriber(LogFormat::Text, "robsond=loud"));
    }
}
