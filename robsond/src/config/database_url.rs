//! The check of DATABASE_URL (SPEC §4.2): a value that is not a PostgreSQL
//! URL robsond can use is a configuration error (exit 2) for every
//! subcommand, found before anything connects.

/// Why `url` cannot be used as DATABASE_URL, or `Ok`. The reasons never
/// quote the value (it holds the password).
///
/// Beyond what sqlx's parser refuses (a port that is not a number up to
/// 65535, bad query parameters, a user or password that is not UTF-8), this
/// refuses what it would silently reinterpret: unencoded spaces or control
/// characters (encoded for you, so the password would be wrong), a `%` not
/// followed by two hex digits, port 0, and a bare `postgres://`. An empty
/// host next to a user or port (`postgres://user:pw@/db`, usually a template
/// whose host variable was empty) is refused with that reason; libpq would
/// read it as "the local Unix socket", which robsond accepts only when
/// written without an authority: `postgres:///db`, optionally with
/// `?host=/run/postgresql&user=robson`.
pub fn check_database_url(url: &str) -> Result<(), String> {
    let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
    else {
        return Err("it does not start with postgres:// or postgresql://".into());
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains an unencoded space or control character".into());
    }
    if !percent_encoding_is_valid(url) {
        return Err(
            "it has a '%' that is not followed by two hex digits ('%' itself is %25)".into(),
        );
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err("an IPv6 host has no closing ']'".into()),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port_ok =
        |p: &str| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0);
    if port.is_some_and(|p| !port_ok(p)) {
        return Err("the port is not a number from 1 to 65535".into());
    }
    if rest.is_empty() {
        return Err("it names neither a server nor a database".into());
    }
    if host.is_empty() && !authority.is_empty() {
        return Err("the host is empty".into());
    }
    match url.parse::<sqlx::postgres::PgConnectOptions>() {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Configuration(cause)) => Err(format!("it does not parse ({cause})")),
        Err(_) => Err("it does not parse".into()),
    }
}

fn percent_encoding_is_valid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}
