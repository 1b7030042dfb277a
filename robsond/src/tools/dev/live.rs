//! The live summary of `robsond dev`: one line every two seconds on stderr
//! with the events applied per second (from the daemon's own `/metrics`),
//! the lag and the parked streams (from the monitor's last sample).
//! On a terminal the line is rewritten in place; otherwise each is printed.

use std::io::{IsTerminal as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::signals::Stop;
use crate::app::Application;

const EVERY: Duration = Duration::from_secs(2);

/// Prints the summary until a stop is requested.
pub async fn report_until_stopped(app: &Application, stop: &Stop) {
    let terminal = std::io::stderr().is_terminal();
    let metrics_addr = loopback(app.http_addr);
    let mut ticker = tokio::time::interval(EVERY);
    let mut previous: Option<(Instant, u64)> = None;
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = ticker.tick() => {}
        }
        let applied = applied_total(metrics_addr).await;
        let now = Instant::now();
        let rate = match (previous, applied) {
            (Some((then, before)), Some(total)) => {
                Some(total.saturating_sub(before) as f64 / (now - then).as_secs_f64())
            }
            _ => None,
        };
        if let Some(total) = applied {
            previous = Some((now, total));
        }
        let lag = app.state.lag();
        let line = summary_line(
            rate,
            applied,
            lag.lag_events,
            lag.lag_seconds,
            lag.parked_streams,
        );
        show(&line, terminal);
    }
    if terminal {
        eprintln!();
    }
}

fn summary_line(
    rate: Option<f64>,
    applied: Option<u64>,
    lag_events: i64,
    lag_seconds: f64,
    parked: i64,
) -> String {
    let rate = rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"));
    let applied = applied.map_or_else(|| "-".to_owned(), |a| a.to_string());
    format!(
        "applied {rate} events/s ({applied} total) | lag {lag_events} events, {lag_seconds:.1} s | parked streams {parked}"
    )
}

fn show(line: &str, terminal: bool) {
    let mut err = std::io::stderr().lock();
    // A failed write to stderr has nowhere better to be reported.
    let _ = if terminal {
        write!(err, "\r\x1b[2K{line}").and_then(|()| err.flush())
    } else {
        writeln!(err, "{line}")
    };
}

/// Where to reach the HTTP server from this host (a wildcard bind means loopback).
pub(super) fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// `robson_events_applied_total` summed over partitions, or `None` when
/// `/metrics` does not answer within a second.
async fn applied_total(addr: SocketAddr) -> Option<u64> {
    let body = tokio::time::timeout(Duration::from_secs(1), get(addr, "/metrics")).await;
    match body {
        Ok(Ok(text)) => Some(sum_of(&text, "robson_events_applied_total")),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "Failed to read /metrics.");
            None
        }
        Err(_) => None,
    }
}

/// A minimal HTTP/1.0 GET; the server closes the connection after answering.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The sum of every sample of `name` in a Prometheus text exposition.
fn sum_of(text: &str, name: &str) -> u64 {
    let total: f64 = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    total as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_total_sums_every_partition_and_ignores_other_series() {
        let text = "# HELP robson_events_applied_total Events applied.\n\
                    # TYPE robson_events_applied_total counter\n\
                    robson_events_applied_total{partition=\"0\"} 10\n\
                    robson_events_applied_total{partition=\"1\"} 32\n\
                    robson_events_applied_total_extra 1000\n\
                    robson_events_skipped_total{reason=\"unhandled_type\"} 7\n";
        assert_eq!(sum_of(text, "robson_events_applied_total"), 42);
        assert_eq!(sum_of("", "robson_events_applied_total"), 0);
    }

    #[test]
    fn wildcard_addresses_are_reached_over_loopback() {
        let any: SocketAddr = "0.0.0.0:9464".parse().expect("addr");
        let any6: SocketAddr = "[::]:9464".parse().expect("addr");
        let given: SocketAddr = "10.1.2.3:9464".parse().expect("addr");
        assert_eq!(loopback(any).to_string(), "127.0.0.1:9464");
        assert_eq!(loopback(any6).to_string(), "[::1]:9464");
        assert_eq!(loopback(given), given);
    }

    #[test]
    fn the_summary_line_shows_dashes_until_a_rate_is_known() {
        let first = summary_line(None, Some(12), 3, 0.3, 0);
        assert_eq!(
            first,
            "applied - events/s (12 total) | lag 3 events, 0.3 s | parked streams 0"
        );
        let later = summary_line(Some(199.6), Some(412), 0, 0.0, 1);
        assert!(
            later.starts_with("applied 200 events/s (412 total)"),
            "{later}"
        );
    }
}
