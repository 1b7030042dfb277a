//! `robsond dev`: everything a newcomer needs in one command. Starts a
//! private PostgreSQL from the machine's binaries in a local data directory
//! (or uses DATABASE_URL when set), migrates, appends a live trading flow in
//! the background, runs the daemon in-process, prints the URLs and a live
//! summary, and on Ctrl-C/SIGTERM stops all of it, leaving nothing running.
//!
//! This module is the session's order of events; the server's lifecycle is
//! in `cluster`, finding its programs in `binaries`, the summary line in
//! `live` and the stop request in `signals`.

pub(crate) mod binaries;
pub(crate) mod cluster;
mod live;
mod signals;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::app::Application;
use crate::cli::{DevArgs, GenerateArgs};
use crate::config::{redacted_url, Config, ConfigError, LogFormat, Secret};
use crate::tools::generate::command::append_flows;
use binaries::{PgBin, RunAs};
use cluster::{Cluster, Server};
use signals::Stop;

/// Stands in for the private server's URL until the server has a port.
const PLACEHOLDER_URL: &str = "postgres://robson@127.0.0.1:5432/robson";
/// Tenants of the live flow.
const TENANTS: u32 = 2;

/// The daemon's configuration and what the environment decided about it.
#[derive(Debug)]
struct DevSetup {
    config: Config,
    /// DATABASE_URL was set: use it and start no PostgreSQL.
    external_database: bool,
    /// ROBSON_HTTP_ADDR was set: bind exactly there.
    http_addr_given: bool,
}

/// `robsond dev`, in an actix System until a signal.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let vars = environment();
    let filter = vars.get("RUST_LOG").map_or("warn", |f| f.as_str());
    crate::telemetry::init_subscriber(LogFormat::Text, filter);
    // Checked before anything starts: a bad variable exits 2 at once.
    let setup = setup(vars)?;
    actix_rt::System::new().block_on(session(args, setup))?;
    eprintln!("robsond dev: stopped.");
    Ok(())
}

/// The process environment, empty values left out, as `Config` reads it.
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(key, value)| {
            let key = key.into_string().ok()?;
            let value = value.to_string_lossy().into_owned();
            (!value.trim().is_empty()).then_some((key, value))
        })
        .collect()
}

fn setup(mut vars: BTreeMap<String, String>) -> Result<DevSetup, ConfigError> {
    let external_database = vars.contains_key("DATABASE_URL");
    let http_addr_given = vars.contains_key("ROBSON_HTTP_ADDR");
    if !external_database {
        vars.insert("DATABASE_URL".into(), PLACEHOLDER_URL.into());
    }
    let config = Config::from_vars(vars)?;
    Ok(DevSetup {
        config,
        external_database,
        http_addr_given,
    })
}

async fn session(args: DevArgs, setup: DevSetup) -> anyhow::Result<()> {
    let stop = Stop::install()?;
    if setup.external_database {
        let url = redacted_url(setup.config.database.url.expose());
        eprintln!("robsond dev: DATABASE_URL is set; using {url} and starting no PostgreSQL.");
        let about = format!("database    {url} (from DATABASE_URL)");
        return serve(&args, setup, &stop, about).await;
    }
    eprintln!(
        "robsond dev: starting PostgreSQL in {} …",
        args.data_dir.display()
    );
    let (server, about) = start_postgres(args.data_dir.clone()).await?;
    let mut setup = setup;
    setup.config.database.url = Secret::new(server.url(cluster::DATABASE));
    let served = async {
        let Some(created) = stop.unless_stopped(server.ensure_database()).await else {
            return Ok(());
        };
        created?;
        serve(&args, setup, &stop, about).await
    }
    .await;
    let stopped = blocking(move || server.stop()).await;
    served.and(stopped)
}

/// Finds the programs, opens (or creates) the data directory and starts
/// the server; returns it with banner lines describing it.
async fn start_postgres(data_dir: PathBuf) -> anyhow::Result<(Server, String)> {
    blocking(move || {
        let bin = PgBin::find()?;
        let run_as = RunAs::detect()?;
        let version = bin.version();
        let (cluster, created) = Cluster::open(bin, run_as, &data_dir)?;
        let dir = cluster.dir().display().to_string();
        let server = cluster.start()?;
        let how = match (server.owned, created) {
            (false, _) => "already running: reused, and left running afterwards",
            (true, true) => "new data directory, created with initdb",
            (true, false) => "existing data directory reused",
        };
        let about = format!(
            "PostgreSQL  {version} in {dir} ({how})\n  database    {}",
            server.url(cluster::DATABASE)
        );
        Ok((server, about))
    })
    .await
}

/// Migrates, runs the daemon and the live flow until a stop is requested,
/// then stops the flow and shuts the daemon down.
async fn serve(args: &DevArgs, setup: DevSetup, stop: &Stop, about: String) -> anyhow::Result<()> {
    let Some(migrated) = stop
        .unless_stopped(crate::commands::migrate(&setup.config.database))
        .await
    else {
        return Ok(());
    };
    migrated?;
    let mut config = setup.config;
    if !setup.http_addr_given {
        avoid_busy_default_port(&mut config);
    }
    let Some(app) = stop.unless_stopped(Application::build(&config)).await else {
        return Ok(());
    };
    let app = app?;
    let pool = crate::app::connect(config.database.url.expose(), 2)
        .await
        .context("Failed to connect the live flow to the database")?;
    let flow = actix_rt::spawn(live_flow(pool.clone(), args.orders, args.rate));
    print_banner(&app, &about, args);
    live::report_until_stopped(&app, stop).await;
    flow.abort();
    // The flow was aborted: the join error says only that.
    let _ = flow.await;
    pool.close().await;
    app.shutdown().await;
    Ok(())
}

/// Serves on a free port when the default one is taken, and says so.
fn avoid_busy_default_port(config: &mut Config) {
    if std::net::TcpListener::bind(config.http_addr).is_err() {
        eprintln!(
            "robsond dev: {} is in use; serving HTTP on a free port instead \
             (set ROBSON_HTTP_ADDR to choose one).",
            config.http_addr
        );
        config.http_addr.set_port(0);
    }
}

/// `about`: the banner lines on the database.
fn print_banner(app: &Application, about: &str, args: &DevArgs) {
    let http = live::loopback(app.http_addr);
    let flow = if args.orders == 0 {
        "off (--orders 0)".to_owned()
    } else {
        format!(
            "{} orders per round at {} events/s, repeated with new seeds",
            args.orders, args.rate
        )
    };
    println!(
        "robsond dev is running; press Ctrl-C to stop.\n  \
         {about}\n  \
         console     http://{http}/\n  \
         health      http://{http}/health\n  \
         metrics     http://{http}/metrics\n  \
         live flow   {flow}"
    );
}

/// Appends generated flows until aborted, each round with the next seed
/// (the first from the clock, so runs on one database do not collide).
async fn live_flow(pool: sqlx::PgPool, orders: u64, rate: u32) {
    if orders == 0 {
        return;
    }
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    loop {
        let args = GenerateArgs {
            orders,
            tenants: TENANTS,
            rate,
            seed,
            profile: crate::tools::generate::Profile::Mixed,
        };
        match append_flows(&pool, &args, false).await {
            Ok(done) => tracing::info!(
                seed,
                events = done.events,
                "Live flow round done; starting the next."
            ),
            Err(err) => {
                tracing::warn!(seed, error = %crate::text::error_chain(&err), "Live flow failed; retrying in 2 s.");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        seed = seed.wrapping_add(1);
    }
}

/// Runs blocking work (process spawns, file system) off the System's thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("Failed to run a blocking step")?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_database_url_the_private_server_is_planned() {
        let setup = setup(vars(&[("ROBSON_PARTITIONS", "2")])).expect("valid");
        assert!(!setup.external_database && !setup.http_addr_given);
        assert_eq!(setup.config.http_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(setup.config.partitions, 2);
    }

    #[test]
    fn database_url_and_http_addr_from_the_environment_are_kept() {
        let url = "postgres://u:secret@db:5432/robson";
        let setup = setup(vars(&[
            ("DATABASE_URL", url),
            ("ROBSON_HTTP_ADDR", "127.0.0.1:0"),
        ]))
        .expect("valid");
        assert!(setup.external_database && setup.http_addr_given);
        assert_eq!(setup.config.database.url.expose(), url);
    }

    #[test]
    fn invalid_variables_are_configuration_errors() {
        let err = setup(vars(&[("ROBSON_PARTITIONS", "0")])).expect_err("invalid");
        assert!(err.to_string().contains("ROBSON_PARTITIONS"), "{err}");
    }
}
