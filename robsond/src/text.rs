//! Wording shared by human-readable output (logs, `/health` reasons, the
//! CLI): counts with their noun in the right number. Nothing else.

/// `n` and `noun`, plural unless n is 1: "1 parked stream", "2 months".
pub fn count(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1, "parked stream"), "1 parked stream");
        assert_eq!(count(0, "month"), "0 months");
        assert_eq!(count(2, "month"), "2 months");
        assert_eq!(count(-1, "event"), "-1 events");
    }
}
