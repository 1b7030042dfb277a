//! Unit tests of `config`.

use super::*;
use std::collections::BTreeMap;

const URL: &str = "postgres://robson:hunter2-secret@db.internal:5432/robson?sslmode=require";

/// The configuration from DATABASE_URL plus `extra`, which may override it.
fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars = BTreeMap::from([("DATABASE_URL".to_owned(), URL.to_owned())]);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_vars(vars)
}

fn error(extra: &[(&str, &str)]) -> String {
    config(extra).expect_err("should be rejected").to_string()
}

#[test]
fn defaults_apply_when_only_database_url_is_set() {
    let c = config(&[]).expect("valid");
    assert_eq!(
        (c.database.url.expose().as_str(), c.database.max_connections),
        (URL, 16)
    );
    assert_eq!(
        (c.http_addr.to_string(), c.partitions, c.batch_size),
        ("127.0.0.1:9464".into(), 8, 500)
    );
    assert_eq!(
        (c.poll_interval, c.shutdown_timeout),
        (Duration::from_secs(1), Duration::from_secs(30))
    );
    assert_eq!(
        (c.health_max_lag, c.health_max_lag_events),
        (Duration::from_secs(30), 10_000)
    );
    assert_eq!(
        (c.on_poison, c.log_format, c.log_filter.as_str()),
        (PoisonPolicy::Park, LogFormat::Text, "info")
    );
    assert!(c.admin_token.is_none());
    assert_eq!(
        (c.verify.interval, c.verify.sample),
        (Duration::from_secs(300), 200)
    );
    assert!(c.instance_id.ends_with(&format!("-{}", std::process::id())));
}

#[test]
fn empty_optional_variables_count_as_unset() {
    let names = "ROBSON_HTTP_ADDR ROBSON_PARTITIONS ROBSON_BATCH_SIZE ROBSON_POLL_INTERVAL_MS \
        ROBSON_DB_MAX_CONNECTIONS ROBSON_SHUTDOWN_TIMEOUT_SECS ROBSON_HEALTH_MAX_LAG_SECONDS \
        ROBSON_HEALTH_MAX_LAG_EVENTS ROBSON_ON_POISON ROBSON_ADMIN_TOKEN ROBSON_INSTANCE_ID \
        ROBSON_LOG_FORMAT ROBSON_VERIFY_INTERVAL_SECS ROBSON_VERIFY_SAMPLE RUST_LOG";
    let empty: Vec<_> = names.split_whitespace().map(|n| (n, "")).collect();
    let c = config(&empty).expect("empty values are defaults");
    assert_eq!(
        (c.partitions, c.log_filter.as_str(), c.admin_token.is_none()),
        (8, "info", true)
    );
}

#[test]
fn missing_database_url_names_the_variable_and_an_example() {
    for vars in [vec![], vec![("DATABASE_URL".to_owned(), " ".to_owned())]] {
        let err = Config::from_vars(vars).expect_err("required").to_string();
        assert_eq!(
            err,
            format!("invalid configuration: DATABASE_URL is required ({DATABASE_URL_FORM})")
        );
        assert!(
            err.contains("postgres://user:password@host:5432/robson"),
            "{err}"
        );
    }
    assert!(DatabaseConfig::from_vars([]).is_err());
}

/// The error for DATABASE_URL=`url`, checked to name the variable, to hide
/// the value and to stay on one line.
fn url_error(url: &str) -> String {
    let err = error(&[("DATABASE_URL", url)]);
    assert!(
        err.starts_with("invalid configuration: DATABASE_URL=(value hidden) is not valid: "),
        "{url}: {err}"
    );
    assert!(
        err.contains("expected a PostgreSQL URL such as"),
        "{url}: {err}"
    );
    assert!(
        !err.contains("hunter2") && !err.contains('\n'),
        "{url}: {err}"
    );
    err
}

#[test]
fn database_urls_that_do_not_parse_are_refused_with_the_reason() {
    let cases = [
        ("postgres://user:hunter2 x@/", "unencoded space"),
        (
            "postgres://user:hunter2@db:99999/robson",
            "port is not a number from 1 to 65535",
        ),
        ("postgres://user:hunter2@db:+5432/robson", "port"),
        ("postgres://user:hunter2@db:0/robson", "port"),
        ("postgres://user:hunter2@db:/robson", "port"),
        ("postgres://user:hunter2@db:54x2/robson", "port"),
        ("postgres://user:hunter2@/robson", "host is empty"),
        ("postgres://user:hunter2@:5432/robson", "host is empty"),
        ("postgres://:5432/robson", "host is empty"),
        ("postgres://user:hunter2%zz@db/robson", "'%'"),
        ("postgres://user:hunter2@db/robson%", "'%'"),
        ("postgres://user:hunter2@db/ro\tbson", "control character"),
        ("postgres://user:hunter2@db1:5432,db2:5432/robson", "port"),
        ("postgres://user:hunter2@[::1/robson", "IPv6"),
        (
            "postgres://user:hunter2@db/robson?sslmode=sometimes",
            "does not parse",
        ),
        (
            "postgres://user:hunter2@db/robson?port=high",
            "does not parse",
        ),
        ("postgres://user:hunter2%FF@db/robson", "does not parse"),
        ("mysql://user:hunter2@db/robson", "postgres://"),
        ("postgres://", "neither a server nor a database"),
        (
            "postgres://user@/robson?host=/run/postgresql",
            "host is empty",
        ),
    ];
    for (url, reason) in cases {
        let err = url_error(url);
        assert!(err.contains(reason), "{url}: {err}");
    }
}

#[test]
fn database_urls_in_every_form_libpq_documents_are_accepted() {
    for url in [
        URL,
        "postgresql://robson@db.internal/robson",
        "postgres://db.internal",
        "postgres://robson:p%40ss%20word@127.0.0.1:5432/robson",
        "postgres://robson@[::1]:5432/robson",
        "postgres:///robson",
        "postgres:///robson?host=/run/postgresql",
        "postgres:///robson?host=/run/postgresql&user=robson",
        "postgres://%2Frun%2Fpostgresql/robson",
        "postgres://db:65535/robson?sslmode=verify-full&application_name=robsond",
    ] {
        let db = DatabaseConfig::from_vars([("DATABASE_URL".into(), url.into())]);
        assert!(db.is_ok(), "{url}: {:?}", db.err().map(|e| e.to_string()));
    }
}

#[test]
fn integer_variables_reject_bad_values_naming_the_variable_and_range() {
    let cases = "ROBSON_PARTITIONS 0 from 1 to 1024 | ROBSON_PARTITIONS 1025 from 1 to 1024 \
        | ROBSON_PARTITIONS eight from 1 to 1024 | ROBSON_BATCH_SIZE 10001 from 1 to 10000 \
        | ROBSON_POLL_INTERVAL_MS 9 from 10 to 3600000 | ROBSON_DB_MAX_CONNECTIONS 1 from 2 to 1000 \
        | ROBSON_SHUTDOWN_TIMEOUT_SECS 3601 from 1 to 3600 | ROBSON_HEALTH_MAX_LAG_SECONDS 0 of at least 1 \
        | ROBSON_HEALTH_MAX_LAG_EVENTS -5 of at least 1";
    for case in cases.split(" | ") {
        let (var, rest) = case.split_once(' ').expect("case has a variable");
        let (value, range) = rest.split_once(' ').expect("case has a value");
        let expected = format!(
            "invalid configuration: {var}=\"{value}\" is not valid: expected an integer {range}"
        );
        assert_eq!(error(&[(var, value)]), expected);
    }
    let c = config(&[
        ("ROBSON_PARTITIONS", "1024"),
        ("ROBSON_DB_MAX_CONNECTIONS", " 2 "),
    ])
    .expect("bounds");
    assert_eq!((c.partitions, c.database.max_connections), (1024, 2));
}

#[test]
fn words_and_addresses_accept_only_their_values() {
    let long_id = "x".repeat(65);
    let cases = [
        ("ROBSON_ON_POISON", "drop", "park or skip"),
        ("ROBSON_LOG_FORMAT", "JSON", "text or json"),
        ("ROBSON_HTTP_ADDR", "localhost", "a socket address"),
        ("ROBSON_INSTANCE_ID", "a b", "1 to 64"),
        ("ROBSON_INSTANCE_ID", &long_id, "1 to 64"),
    ];
    for (var, value, expected) in cases {
        let err = error(&[(var, value)]);
        assert!(
            err.starts_with(&format!("invalid configuration: {var}=\"")) && err.contains(expected),
            "{err}"
        );
    }
    let set = [
        ("ROBSON_ON_POISON", "skip"),
        ("ROBSON_LOG_FORMAT", "json"),
        ("ROBSON_HTTP_ADDR", "[::]:80"),
    ];
    let c = config(&set).expect("valid");
    assert_eq!(
        (c.on_poison, c.log_format, c.http_addr.port()),
        (PoisonPolicy::Skip, LogFormat::Json, 80)
    );
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let err = error(&[("ROBSON_ADMIN_TOKEN", "short-token")]);
    assert!(
        err.contains("ROBSON_ADMIN_TOKEN=(value hidden)") && !err.contains("short"),
        "{err}"
    );
    let err = error(&[("DATABASE_URL", "mysql://robson:hunter2-secret@db/robson")]);
    assert!(
        err.contains("DATABASE_URL=(value hidden)") && !err.contains("hunter2"),
        "{err}"
    );
    assert!(!error(&[("ROBSON_PARTITIONS", "0")]).contains("hunter2"));
    let c = config(&[("ROBSON_ADMIN_TOKEN", "0123456789abcdef-token")]).expect("valid");
    let raw = RawConfig::from_vars([("DATABASE_URL".into(), URL.into())]).expect("raw");
    let shown = format!("{c:?} {c:#?} {raw:?} {}", c.database.url);
    assert!(
        !shown.contains("hunter2") && !shown.contains("-token") && shown.contains("[redacted]")
    );
    assert_eq!(
        c.admin_token.map(|t| t.expose().clone()).as_deref(),
        Some("0123456789abcdef-token")
    );
}

#[test]
fn errors_stay_on_one_line_even_for_values_with_newlines() {
    let err = error(&[("ROBSON_LOG_FORMAT", "json\nEVIL")]);
    assert!(
        !err.contains('\n') && err.contains(r#""json\nEVIL""#),
        "{err}"
    );
}

#[test]
fn redacted_url_keeps_host_and_database_but_drops_password_and_query() {
    assert_eq!(
        redacted_url(URL),
        "postgres://robson@db.internal:5432/robson"
    );
    assert_eq!(
        redacted_url("postgresql://u:p/a@ss@h/db"),
        "postgresql://u@h/db"
    );
    assert_eq!(
        redacted_url("postgres://h:5432/db?password=x"),
        "postgres://h:5432/db"
    );
    assert_eq!(redacted_url("not a url"), "[redacted]");
}

#[test]
fn database_config_reads_only_its_two_variables() {
    let vars = [
        ("DATABASE_URL", URL),
        ("ROBSON_PARTITIONS", "0"),
        ("ROBSON_DB_MAX_CONNECTIONS", "4"),
    ];
    let db =
        DatabaseConfig::from_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned()))).expect("valid");
    assert_eq!((db.url.expose().as_str(), db.max_connections), (URL, 4));
}

#[test]
fn default_instance_id_is_hostname_dash_pid_within_64_characters() {
    let id = default_instance_id(Some(&"h".repeat(100)));
    assert!(
        id.chars().count() <= 64 && id.ends_with(&format!("-{}", std::process::id())),
        "{id}"
    );
}

#[test]
fn the_read_token_is_optional_hidden_and_at_least_16_characters() {
    assert!(config(&[]).expect("valid").read_token.is_none());
    assert!(config(&[("ROBSON_READ_TOKEN", "")])
        .expect("valid")
        .read_token
        .is_none());
    let err = error(&[("ROBSON_READ_TOKEN", "short-read")]);
    assert!(
        err.contains("ROBSON_READ_TOKEN=(value hidden)") && !err.contains("short-read"),
        "{err}"
    );
    let c = config(&[("ROBSON_READ_TOKEN", "read-0123456789abcdef")]).expect("valid");
    assert!(!format!("{c:?}").contains("read-0123"));
    assert_eq!(
        c.read_token.map(|t| t.expose().clone()).as_deref(),
        Some("read-0123456789abcdef")
    );
}

#[test]
fn drift_detection_is_turned_off_by_an_interval_of_zero_and_bounded_in_its_sample() {
    let c = config(&[
        ("ROBSON_VERIFY_INTERVAL_SECS", "0"),
        ("ROBSON_VERIFY_SAMPLE", "5"),
    ])
    .expect("valid");
    assert_eq!((c.verify.interval, c.verify.sample), (Duration::ZERO, 5));
    assert_eq!(
        error(&[("ROBSON_VERIFY_SAMPLE", "0")]),
        "invalid configuration: ROBSON_VERIFY_SAMPLE=\"0\" is not valid: expected an integer from 1 to 100000"
    );
    assert_eq!(
        error(&[("ROBSON_VERIFY_INTERVAL_SECS", "-1")]),
        "invalid configuration: ROBSON_VERIFY_INTERVAL_SECS=\"-1\" is not valid: expected an integer from 0 to 604800"
    );
}
