//! The command line of SPEC §4.5 as clap definitions: what `robsond` accepts
//! and nothing more. Each command is carried out elsewhere; this module only
//! parses. Usage errors exit with 2 (clap's default), `--help`/`--version` with 0.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use uuid::Uuid;

/// The robson projection daemon and its operator tools.
#[derive(Debug, Parser)]
#[command(name = "robsond", version, propagate_version = true)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The chosen command, `run` when none was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Run)
    }
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Apply the embedded migrations; a no-op when they are already applied.
    Migrate,
    /// Show checkpoints, lag, partition owners and parked streams, read from the database.
    ///
    /// No daemon needed. A partition's owner is the instance holding its
    /// advisory lock now (from pg_locks and the holder's application_name,
    /// `robsond:<ROBSON_INSTANCE_ID>`); the instance that committed its
    /// checkpoint last is shown beside it, marked stale when it is not the
    /// holder or nobody holds the partition. Positions are
    /// tx_id/global_position: the appending transaction's id and the event's
    /// global_position, the order the daemon reads the log in.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Append one event to the log.
    Append(AppendArgs),
    /// Append realistic trading flows, for demos and benchmarks.
    Generate(GenerateArgs),
    /// Store a consistent image of every projection table.
    Snapshot {
        /// Keep only the newest N snapshots afterwards (all when omitted).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        retain: Option<u32>,
    },
    /// Recompute the projections from the log.
    Rebuild {
        /// Start from the latest snapshot and replay only the events after it.
        #[arg(long)]
        from_snapshot: bool,
    },
    /// Rebuild into a scratch schema and compare with the live projections; exit 1 on a difference.
    Verify,
    /// List, retry or skip parked streams.
    Streams {
        #[command(subcommand)]
        action: StreamsCommand,
    },
    /// Wait until a stream is projected up to a seq (read-your-writes); exit
    /// 0 when it is, 1 when the stream is parked at or before it, 3 on timeout.
    Wait(WaitArgs),
    /// Start a private PostgreSQL, migrate, generate a live flow and run the daemon.
    Dev(DevArgs),
    /// Measure projection throughput on generated events.
    Bench {
        /// Number of events to project.
        #[arg(long, value_name = "N", default_value_t = 1_000_000)]
        events: u64,
        /// Where the throwaway PostgreSQL cluster lives (removed afterwards).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct WaitArgs {
    /// Stream key, e.g. order:<uuid>.
    #[arg(long, value_name = "KEY")]
    pub stream: String,
    /// The seq the stream's progress must reach.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub seq: i64,
    /// Give up after this many milliseconds (at most 30000).
    #[arg(long, value_name = "T", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(0..=30_000))]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct AppendArgs {
    #[arg(long, value_name = "UUID")]
    pub tenant: Uuid,
    /// Stream key, e.g. order:<uuid>.
    #[arg(long, value_name = "KEY")]
    pub stream: String,
    /// Event type, e.g. ORDER_SUBMITTED (the twelve projected types: docs/events.md;
    /// any other type is stored and skipped as unhandled).
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: String,
    /// Event payload as JSON (normally an object).
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub payload: serde_json::Value,
    /// Fail unless the stream's last seq is N (0: the stream must not exist).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub expected_seq: Option<i64>,
    #[arg(long, value_name = "UUID")]
    pub command_id: Option<Uuid>,
    /// Producer time (RFC 3339); now when omitted.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct GenerateArgs {
    /// Number of orders to generate, with the events that follow each one.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub orders: u64,
    #[arg(long, value_name = "K", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub tenants: u32,
    /// Events per second (the average held); 0 means as fast as possible.
    #[arg(long, value_name = "R", default_value_t = 0)]
    pub rate: u32,
    /// Seed of the random generator, so a run can be repeated exactly.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum StreamsCommand {
    /// List parked streams and the event each one failed on.
    Parked {
        #[arg(long)]
        json: bool,
    },
    /// Re-attempt a parked stream from its failed event.
    Retry { key: String },
    /// Skip a parked stream's failed event and resume it.
    Skip { key: String },
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct DevArgs {
    /// Where the private PostgreSQL keeps its files.
    #[arg(long, value_name = "DIR", default_value = "./.robson-dev")]
    pub data_dir: PathBuf,
    /// Orders of the live trading flow.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub orders: u64,
    /// Events per second of the live flow.
    #[arg(long, value_name = "R", default_value_t = 200)]
    pub rate: u32,
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))
}

fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2024-05-01T12:00:00Z: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("robsond").chain(args.iter().copied()))
            .map(Cli::into_command)
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_run() {
        assert_eq!(parse(&[]).expect("parses"), Command::Run);
    }

    #[test]
    fn append_reads_every_option() {
        let tenant = "6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f";
        let cmd = parse(&[
            "append",
            "--tenant",
            tenant,
            "--stream",
            "order:1",
            "--type",
            "OrderPlaced",
            "--payload",
            r#"{"qty":"0.1"}"#,
            "--expected-seq",
            "0",
            "--occurred-at",
            "2024-05-01T12:00:00+02:00",
        ]);
        let Command::Append(args) = cmd.expect("parses") else {
            panic!("not append")
        };
        assert_eq!(
            (args.stream.as_str(), args.event_type.as_str()),
            ("order:1", "OrderPlaced")
        );
        assert_eq!(args.payload["qty"], serde_json::json!("0.1"));
        assert_eq!((args.expected_seq, args.command_id), (Some(0), None));
        assert_eq!(
            args.occurred_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-05-01T10:00:00+00:00")
        );
    }

    #[test]
    fn defaults_fill_generate_dev_and_streams() {
        let Command::Generate(g) = parse(&["generate"]).expect("parses") else {
            panic!("not generate")
        };
        assert_eq!((g.orders, g.tenants, g.rate, g.seed), (1000, 2, 0, 42));
        let Command::Dev(d) = parse(&["dev", "--rate", "5"]).expect("parses") else {
            panic!("not dev")
        };
        assert_eq!((d.data_dir, d.rate), (PathBuf::from("./.robson-dev"), 5));
        let retry = parse(&["streams", "retry", "order:9"]).expect("parses");
        assert_eq!(
            retry,
            Command::Streams {
                action: StreamsCommand::Retry {
                    key: "order:9".into()
                }
            }
        );
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        for bad in [
            &["bogus"][..],
            &["append", "--tenant", "not-a-uuid"],
            &["generate", "--tenants", "0"],
            &[
                "append",
                "--tenant",
                "6f1c2b8e-8d3e-4c36-9a51-0a7b4c1d2e3f",
                "--stream",
                "s",
                "--type",
                "t",
                "--payload",
                "{oops",
            ],
            &["streams"],
            &["status", "--jsn"],
        ] {
            assert_eq!(
                parse(bad).expect_err("usage error").exit_code(),
                2,
                "{bad:?}"
            );
        }
        assert_eq!(parse(&["--help"]).expect_err("help").exit_code(), 0);
        assert_eq!(parse(&["--version"]).expect_err("version").exit_code(), 0);
    }
}
