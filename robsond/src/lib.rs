//! robsond: the robson projection daemon and its command line.
//!
//! `daemon` holds the actors (supervisor → projectors per partition ←
//! poller, and the monitor), `http` the actix-web endpoints, `commands` the
//! one-shot subcommands, `app` the wiring of a running daemon, `schema` the
//! migrations it applies. `tools` holds dev, bench and generate, apart from
//! the daemon's core, which never uses them. Projection rules live in
//! `robson-projector`, the log in `robson-eventlog`.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod partition;
pub mod progress;
pub mod replay;
pub mod schema;
pub mod telemetry;
pub mod text;
pub mod tools;

use std::process::ExitCode;

use cli::Command;
use config::{Config, ConfigError, DatabaseConfig};

/// Exit codes of SPEC §4.5. Every configuration error (`ConfigError`, for
/// any subcommand) is `USAGE`, which the systemd unit does not restart.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// `robsond wait` gave up.
    pub const TIMEOUT: u8 = 3;
}

/// An error that is only an exit code: the command has said what happened.
#[derive(Debug, thiserror::Error)]
#[error("exit code {0}")]
pub struct ExitWith(pub u8);

/// Runs one parsed command line to completion and returns the exit code.
pub fn run_command(command: Command) -> ExitCode {
    match dispatch(command) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            if let Some(ExitWith(code)) = err.downcast_ref::<ExitWith>() {
                return ExitCode::from(*code);
            }
            // Wherever in the chain: a command may add context to it.
            if let Some(cfg) = err.chain().find_map(|e| e.downcast_ref::<ConfigError>()) {
                eprintln!("robsond: {cfg}");
                return ExitCode::from(exit::USAGE);
            }
            eprintln!("robsond: error: {}", text::error_chain(&err));
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run => {
            let config = Config::from_env()?;
            telemetry::init_subscriber(config.log_format, &config.log_filter);
            app::run(config)
        }
        Command::Migrate => {
            with_database(|db| Box::pin(async move { commands::migrate(&db).await }))
        }
        Command::Status { json } => {
            with_database(move |db| Box::pin(async move { commands::status::run(&db, json).await }))
        }
        Command::Append(args) => {
            with_database(move |db| Box::pin(async move { commands::append::run(&db, args).await }))
        }
        Command::Generate(args) => with_database(move |db| {
            Box::pin(async move { tools::generate::command::run(&db, args).await })
        }),
        Command::Streams { action } => with_database(move |db| {
            Box::pin(async move { commands::streams::run(&db, action).await })
        }),
        Command::Wait(args) => {
            with_database(move |db| Box::pin(async move { commands::wait::run(&db, args).await }))
        }
        Command::Dev(args) => tools::dev::run(args),
        Command::Bench {
            work_dir,
            append: Some(events),
            ..
        } => tools::bench::append::run(events, work_dir),
        Command::Bench {
            events,
            work_dir,
            profile,
            ..
        } => tools::bench::run(events, work_dir, &profile.0),
        Command::Snapshot { action, retain } => with_database(move |db| {
            Box::pin(async move { commands::snapshot::run(&db, action, retain).await })
        }),
        Command::Rebuild { from_snapshot } => with_database(move |db| {
            Box::pin(async move { commands::rebuild::run(&db, from_snapshot).await })
        }),
        Command::Verify => {
            with_database(|db| Box::pin(async move { commands::verify::run(&db).await }))
        }
    }
}

type CommandFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;

/// Runs a database-only command on a current-thread runtime, logging as text.
fn with_database(f: impl FnOnce(DatabaseConfig) -> CommandFuture) -> anyhow::Result<()> {
    let db = DatabaseConfig::from_env()?;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    telemetry::init_subscriber(config::LogFormat::Text, &filter);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f(db))
}
