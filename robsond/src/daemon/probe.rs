//! The database probe: `SELECT 1` every [`EVERY`] on a connection of its
//! own (not the pool's, whose acquire timeout is 5 s and whose connections
//! may all be busy), each step bounded by [`TIMEOUT`]. Its verdict is
//! `/health`'s `database` field and `robson_database_up`: an outage shows
//! within EVERY + TIMEOUT (< 1 s), the return within EVERY plus a connect.
//! It starts before anything else waits on the database, so start-up
//! without a database shows as `down` too. The projectors' retries keep
//! their own backoff; the probe only observes.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

use super::state::DaemonState;
use crate::metrics::Metrics;

pub const EVERY: Duration = Duration::from_millis(200);
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// Probes until `stop` is set to true (or dropped).
pub async fn run(
    options: PgConnectOptions,
    state: Arc<DaemonState>,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let options = options.application_name("robsond-probe");
    let mut conn: Option<PgConnection> = None;
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = ticker.tick() => {
                let up = probe_once(&options, &mut conn).await;
                metrics.database_up.set(i64::from(up));
                if state.probe_result(up) {
                    if up {
                        tracing::info!("Database reachable.");
                    } else {
                        tracing::warn!("Database unreachable.");
                    }
                }
            }
        }
    }
    if let Some(c) = conn {
        let _ = tokio::time::timeout(TIMEOUT, c.close()).await;
    }
}

/// One probe; a failed connection is dropped and made again next time.
async fn probe_once(options: &PgConnectOptions, conn: &mut Option<PgConnection>) -> bool {
    if conn.is_none() {
        match tokio::time::timeout(TIMEOUT, options.connect()).await {
            Ok(Ok(c)) => *conn = Some(c),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "Database probe: cannot connect.");
                return false;
            }
            Err(_) => return false,
        }
    }
    let Some(c) = conn.as_mut() else {
        return false;
    };
    let answered = tokio::time::timeout(TIMEOUT, sqlx::query("SELECT 1").execute(&mut *c)).await;
    match answered {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "Database probe failed.");
            *conn = None;
            false
        }
        Err(_) => {
            *conn = None;
            false
        }
    }
}
