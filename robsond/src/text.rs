//! Wording shared by human-readable output (logs, `/health` reasons, the
//! CLI): counts with their noun in the right number, and an error with its
//! causes said once. Nothing else.

/// `n` and `noun`, plural unless n is 1: "1 parked stream", "2 months".
pub fn count(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `err` and its causes, `: `-separated like `{:#}`, but a cause whose text
/// the message before it already ends with is left out: sqlx's
/// `error communicating with database: Connection refused (os error 111)`
/// also returns that io error as its source, which `{:#}` printed twice.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{count, error_chain};

    #[test]
    fn a_cause_already_said_by_its_parent_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let said = io.to_string();
        let err = anyhow::Error::new(sqlx::Error::Io(io)).context("Failed to connect");
        let shown = error_chain(&err);
        assert_eq!(shown.matches(&said).count(), 1, "{shown}");
        assert!(shown.starts_with("Failed to connect: "), "{shown}");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1, "parked stream"), "1 parked stream");
        assert_eq!(count(0, "month"), "0 months");
        assert_eq!(count(2, "month"), "2 months");
        assert_eq!(count(-1, "event"), "-1 events");
    }
}
