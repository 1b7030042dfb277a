//! Tracing subscriber setup: log lines to stderr as text or JSON, filtered by a
//! RUST_LOG-style directive. Nothing else lives here: metrics are in `metrics`,
//! and the choice of format and filter comes from `config`.
//!
//! Every log event is exactly one line, whatever it carries (SPEC §4.2): field
//! values hold event data — stream keys, event types, error texts, URL paths —
//! and a newline in one of them must not forge a line of its own. The JSON
//! format escapes control characters by itself; the text format formats its
//! fields through [`OneLineFields`], which escapes them.
//!
//! Colour (ANSI escapes) only when stderr is a terminal and `NO_COLOR` is not
//! set (<https://no-color.org>): a log file, a pipe or journald gets plain text.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::config::LogFormat;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
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
    use std::io::IsTerminal as _;
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.fmt_fields(OneLineFields).try_init().is_ok(),
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

/// Colour only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (an empty one counts as unset, as no-color.org says).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
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

/// The text format's fields (the message, an event's fields, its spans'
/// fields), as the default formatter writes them but with every control
/// character escaped: `\n`, `\r`, `\t`, and `\u{..}` for the others (Unicode
/// Cc, and the line and paragraph separators U+2028/U+2029), so that no value
/// can end a line, move the cursor or start a terminal escape sequence.
/// Values logged with `?` are already escaped by `Debug`; this covers those
/// logged with `%` (Display) and the message. (Field names are written
/// without colour.)
#[derive(Debug, Clone, Copy, Default)]
pub struct OneLineFields;

impl<'writer> FormatFields<'writer> for OneLineFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut raw = String::new();
        DefaultFields::new().format_fields(Writer::new(&mut raw), fields)?;
        writer.write_str(&escape_controls(&raw))
    }
}

/// `text` with its control characters escaped (see [`OneLineFields`]).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let needs_escape = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.contains(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A writer collecting everything the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 log")
        }
    }

    /// What the subscriber of `format` writes for a few events carrying
    /// hostile values, as `init_subscriber` configures it.
    fn log_hostile_events(format: LogFormat) -> String {
        let capture = Capture::default();
        let writer = capture.clone();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let forged = "order:1\n2026-01-01T00:00:00Z ERROR robsond: FORGED line\r\u{1b}[2J\u{2028}x";
        let emit = || {
            let span = tracing::info_span!("request", path = %forged);
            let _entered = span.enter();
            tracing::warn!(stream = %forged, event_type = forged, error = %forged, "Parked stream.");
            tracing::error!("message with {forged}");
        };
        match format {
            LogFormat::Text => {
                let subscriber = builder.fmt_fields(OneLineFields).finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
            LogFormat::Json => {
                let subscriber = builder.json().finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
        }
        capture.text()
    }

    #[test]
    fn control_characters_in_text_log_fields_are_escaped_so_each_event_is_one_line() {
        let log = log_hostile_events(LogFormat::Text);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(!log.contains(['\r', '\u{1b}', '\u{2028}']), "{log:?}");
        assert!(lines[0].contains(r"stream=order:1\n2026-01-01T00:00:00Z ERROR robsond: FORGED line\r\u{001b}[2J\u{2028}x"), "{}", lines[0]);
        assert!(
            lines[0].contains(r"path=order:1\n"),
            "span fields too: {}",
            lines[0]
        );
        assert!(lines[1].contains(r"message with order:1\n"), "{}", lines[1]);
    }

    #[test]
    fn json_log_lines_carry_control_characters_escaped_too() {
        let log = log_hostile_events(LogFormat::Json);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        for line in lines {
            let value: serde_json::Value =
                serde_json::from_str(line).expect("one JSON object per line");
            assert!(value["fields"].is_object(), "{line}");
        }
    }

    #[test]
    fn text_without_control_characters_is_left_as_it_is() {
        assert!(matches!(escape_controls("order:1 é \\n"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\u{7f}b\u{85}"), "a\\u{007f}b\\u{0085}");
    }

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
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn installing_twice_is_harmless() {
        // The first call may lose to another test in this binary; either way
        // one subscriber ends up installed, silent ("off"), and nothing panics.
        init_subscriber(LogFormat::Json, "off");
        assert!(!init_subscriber(LogFormat::Text, "robsond=loud"));
    }
}
