//! Building and running the daemon (`robsond run`): serve HTTP first (so
//! `/health/live` answers and `/health` says `database: "down"` while the
//! database does not), then connect, bootstrap and prepare the checkpoints
//! with retry, then start the supervisor, all in one actix System; shut down
//! in order on SIGTERM/SIGINT (or re-create the daemon when the partition
//! layout in the database changes under it).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, PgPool};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::daemon::retry::Retry;
use crate::daemon::state::DaemonState;
use crate::daemon::supervisor::{Close, DaemonSupervisor, Shutdown, SupervisorSetup};
use crate::daemon::trend::{self, Trend};
use crate::daemon::view::LagView;
use crate::daemon::{probe, waiters};
use crate::http::{self, HttpContext};
use crate::metrics::Metrics;
use crate::progress::checkpoint;

/// How long the shutdown waits for the last pool connections to come back,
/// once every actor has stopped.
const POOL_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A started daemon.
#[derive(Debug)]
pub struct Application {
    pub http_addr: SocketAddr,
    pub state: Arc<DaemonState>,
    server: ServerHandle,
    supervisor: Addr<DaemonSupervisor>,
    shutdown_timeout: Duration,
    pool: PgPool,
    /// The database probe runs until this is dropped.
    _probe: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A pool for `url` (never logged) with `max` connections.
pub async fn connect(url: &str, max: u32) -> Result<PgPool, sqlx::Error> {
    Ok(pool_for(url.parse()?, max))
}

/// A pool that connects lazily (nothing waits on the database here).
fn pool_for(options: PgConnectOptions, max: u32) -> PgPool {
    // A batch of thousands of rows or a lag sample during a long catch-up
    // may take over a second: that is expected, not worth a warning with
    // the whole statement; the daemon logs its own slow batches.
    // No JIT: the daemon's statements are short; the estimates of some
    // (the lag sample's generic plan) grow with the log past
    // `jit_above_cost`, and compiling them took ~0.4 s per lag sample.
    let options = options
        .options([("jit", "off")])
        .application_name("robsond")
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
    // No ping before every acquire (sqlx's default): it was one round trip
    // more per batch, per read and per check — on a loaded 2-core machine
    // about a millisecond each (docs/performance.md, "Round trips per
    // batch"). A connection that broke while idle fails its first
    // statement instead: a transient error, retried like any other, and
    // sqlx closes it when it comes back (it is pinged on release).
    PgPoolOptions::new()
        .max_connections(max)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// A daemon that serves HTTP and probes the database, before it has
/// connected: [`Starting::connect`] finishes the start.
#[derive(Debug)]
pub struct Starting {
    pub http_addr: SocketAddr,
    pub state: Arc<DaemonState>,
    metrics: Arc<Metrics>,
    pool: PgPool,
    server: ServerHandle,
    probe: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Starting {
    /// Binds and serves HTTP, starts the database probe and the waiters'
    /// look-ups. Fails only on what no retry can fix: an unusable
    /// DATABASE_URL or ROBSON_HTTP_ADDR.
    pub fn serve(config: &Config) -> anyhow::Result<Starting> {
        let options: PgConnectOptions = config
            .database
            .url
            .expose()
            .parse()
            .context("DATABASE_URL is not a valid PostgreSQL URL")?;
        let state = Arc::new(DaemonState::new(
            config.instance_id.clone(),
            config.partitions,
        ));
        let metrics =
            Arc::new(Metrics::new(config.partitions).context("Failed to create metrics")?);
        let pool = pool_for(options.clone(), config.database.max_connections);
        let view = LagView::new(pool.clone(), state.clone(), metrics.clone());
        let trend = Trend::new();
        let ctx = HttpContext {
            state: state.clone(),
            metrics: metrics.clone(),
            view: view.clone(),
            trend: trend.clone(),
            pool: pool.clone(),
            poll_interval: config.poll_interval,
            max_lag_seconds: config.health_max_lag.as_secs_f64(),
            max_lag_events: config.health_max_lag_events as i64,
            admin_token: config.admin_token.clone(),
            read_token: config.read_token.clone(),
        };
        let (server, http_addr) = http::serve(ctx, config.http_addr)
            .with_context(|| format!("Failed to bind ROBSON_HTTP_ADDR {}", config.http_addr))?;
        let server_handle = server.handle();
        actix_rt::spawn(server);
        let (probe, stop_probe) = tokio::sync::watch::channel(false);
        // The console's sampler ends with the probe.
        actix_rt::spawn(trend::run(
            trend,
            view,
            state.clone(),
            metrics.clone(),
            stop_probe.clone(),
        ));
        actix_rt::spawn(probe::run(
            options,
            state.clone(),
            metrics.clone(),
            stop_probe,
        ));
        actix_rt::spawn(waiters::run_lookups(state.waiters.clone(), pool.clone()));
        tracing::info!(
            instance = %config.instance_id,
            http = %http_addr,
            database = %crate::config::redacted_url(config.database.url.expose()),
            "Serving HTTP; connecting to the database."
        );
        Ok(Starting {
            http_addr,
            state,
            metrics,
            pool,
            server: server_handle,
            probe: Arc::new(probe),
        })
    }

    /// Bootstraps from a snapshot if due and prepares the checkpoints, both
    /// retrying while the database is unreachable, then starts the actors.
    pub async fn connect(&self, config: &Config) -> anyhow::Result<Application> {
        let pool = &self.pool;
        crate::replay::bootstrap::run(pool, config.partitions).await?;
        let checkpoints = prepare_with_retry(pool, config.partitions).await?;
        for (p, pos) in checkpoints.iter().enumerate() {
            self.state.partitions[p]
                .checkpoint
                .store(pos.global_position, Ordering::Relaxed);
        }
        let policy = config.on_poison;
        let supervisor = DaemonSupervisor::new(SupervisorSetup {
            pool: pool.clone(),
            database_url: config.database.url.clone(),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
            policy,
            batch_size: config.batch_size,
            poll_interval: config.poll_interval,
            checkpoints,
            drift: config.verify,
        })
        .start();
        self.state.started.store(true, Ordering::Relaxed);
        tracing::info!(
            instance = %config.instance_id,
            http = %self.http_addr,
            partitions = config.partitions,
            "robsond started."
        );
        Ok(Application {
            http_addr: self.http_addr,
            state: self.state.clone(),
            server: self.server.clone(),
            supervisor,
            shutdown_timeout: config.shutdown_timeout,
            pool: self.pool.clone(),
            _probe: self.probe.clone(),
        })
    }

    /// Stops what [`Starting::serve`] started (a signal came before the
    /// database answered): nothing is in flight, there is nothing to drain.
    pub async fn stop(self) {
        self.state.shutting_down.store(true, Ordering::Relaxed);
        self.state.waiters.close();
        // The pool first: a connection opened by the HTTP worker (a lag
        // sample) is closed while that worker's runtime still runs.
        self.pool.close().await;
        self.server.stop(false).await;
    }
}

impl Application {
    /// Serves HTTP, then connects (retrying while the database is
    /// unreachable), prepares the checkpoints and starts every actor.
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        Starting::serve(config)?.connect(config).await
    }

    async fn stop_on(self, signal: &'static str) {
        tracing::info!(
            signal,
            timeout_secs = self.shutdown_timeout.as_secs(),
            "Shutting down: draining projectors."
        );
        // Waiting clients get their answer (503) now, not at the drain limit.
        self.state.waiters.close();
        self.shutdown().await;
    }

    /// Stops reading, lets projectors commit what they hold, then ends every
    /// actor, the HTTP server and the pool — all within the shutdown timeout,
    /// in every state (draining, database down, a projector in backoff, a
    /// statement that does not return), and while the runtime still runs, so
    /// no connection is dropped outside it (sqlx hands a dropped connection
    /// to a task of the current runtime).
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        // Kept back from the drain for the steps after it.
        let reserve = (self.shutdown_timeout / 4).min(Duration::from_secs(3));
        let left = || deadline.saturating_duration_since(Instant::now());
        // Backoffs and restart pauses end now: their batches did not commit.
        self.state.lifecycle.stop();
        let drained = tokio::time::timeout(
            self.shutdown_timeout.saturating_sub(reserve),
            self.supervisor.send(Shutdown),
        )
        .await;
        match drained {
            Ok(Ok(())) => tracing::info!("Drained; every batch in flight is committed."),
            _ => tracing::warn!(
                "Shutdown timeout reached; uncommitted batches will be re-read on the next start."
            ),
        }
        // Abandons what still runs and stops every actor of the daemon.
        self.state.lifecycle.abort();
        if tokio::time::timeout(left(), self.supervisor.send(Close))
            .await
            .is_err()
        {
            tracing::warn!("The actors did not all stop in time.");
        }
        if tokio::time::timeout(left(), self.server.stop(true))
            .await
            .is_err()
        {
            tracing::warn!("HTTP requests still in progress were cut off.");
        }
        // What still holds a connection now is not ours to wait for (a lag
        // sample or a request waiting for the pool's acquire timeout while
        // the database is unreachable): the process ends it.
        let close_wait = left().min(POOL_CLOSE_WAIT);
        if tokio::time::timeout(close_wait, self.pool.close())
            .await
            .is_err()
        {
            tracing::info!("Database connections still in use are cut off.");
        }
    }
}

async fn prepare_with_retry(
    pool: &PgPool,
    partitions: usize,
) -> anyhow::Result<Vec<robson_eventlog::Position>> {
    let mut retry = Retry::new("Database unreachable at startup");
    loop {
        match checkpoint::prepare(pool, partitions).await {
            Ok(c) => return Ok(c),
            Err(err) => {
                if let Err(gave_up) = retry.after(err, std::future::pending()).await {
                    return Err(anyhow::Error::new(gave_up.into_error()).context(
                        "Failed to read projection_checkpoints (has `robsond migrate` been run?)",
                    ));
                }
            }
        }
    }
}

/// SIGTERM and SIGINT, installed before anything waits on the database so a
/// signal during start-up also ends the process cleanly (exit 0).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("Failed to install SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("Failed to install SIGINT handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// `robsond run`: the daemon, in an actix System, until a signal.
///
/// The System is dropped while a spare Tokio runtime is entered: anything
/// the actors still hold when it goes (in the worst case a connection of a
/// unit of work that did not end) is then handed to that runtime instead of
/// panicking for want of one ("this functionality requires a Tokio
/// context"). The shutdown itself closes every connection before that.
pub fn run(config: Config) -> anyhow::Result<()> {
    crate::daemon::lifecycle::set_configured_partitions(config.partitions);
    let spare = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Failed to create a Tokio runtime")?;
    let entered = spare.enter();
    let system = actix_rt::System::new();
    let result = system.block_on(run_daemon(config));
    drop(system);
    drop(entered);
    drop(spare);
    result
}

/// What ended a daemon's run.
enum Ended {
    Signal(&'static str),
    /// The database holds a layout of this many partitions.
    Layout(usize),
}

/// Runs the daemon until a signal; when the partition layout in the
/// database changes under it, stops it in order and builds it again for
/// the new layout (HTTP is down for the moment that takes).
async fn run_daemon(mut config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let mut rebuilding = false;
    loop {
        let starting = match Starting::serve(&config) {
            Ok(starting) => starting,
            Err(err) if rebuilding => {
                // E.g. the HTTP port not yet free again: try once more soon.
                tracing::warn!(error = %crate::text::error_chain(&err), "Could not start the daemon again; retrying.");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    which = signals.next() => {
                        tracing::info!(signal = which, "Stopped while starting.");
                        return Ok(());
                    }
                }
            }
            Err(err) => return Err(err),
        };
        let built = tokio::select! {
            app = starting.connect(&config) => app,
            which = signals.next() => {
                tracing::info!(signal = which, "Stopped while starting.");
                starting.stop().await;
                return Ok(());
            }
        };
        let app = match built {
            Ok(app) => app,
            Err(err) => {
                starting.stop().await;
                return Err(err);
            }
        };
        let ended = tokio::select! {
            which = signals.next() => Ended::Signal(which),
            n = app.state.lifecycle.layout_changed() => Ended::Layout(n),
        };
        match ended {
            Ended::Signal(which) => {
                app.stop_on(which).await;
                return Ok(());
            }
            Ended::Layout(partitions) => {
                tracing::warn!(
                    from = config.partitions,
                    to = partitions,
                    "Re-creating the daemon for the partition layout in the database."
                );
                app.state.waiters.close();
                app.shutdown().await;
                config.partitions = partitions;
                rebuilding = true;
            }
        }
    }
}
