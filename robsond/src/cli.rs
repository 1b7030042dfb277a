//! The command line of SPEC §4.5 as clap definitions: what `robsond` accepts
//! and nothing more. Each command is carried out elsewhere; this module only
//! parses. Usage errors exit with 2 (clap's default), `--help`/`--version` with 0.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use uuid::Uuid;

/// What every help page ends with: the environment and the exit codes.
const FOOTER: &str = "\
Environment:
  DATABASE_URL   PostgreSQL URL, required by every command but `dev` and `bench`
                 (postgres://user:password@host:5432/robson; never printed)
  ROBSON_*       the daemon's settings (README, Configuration); RUST_LOG the log filter
  NO_COLOR       set (to anything) to turn off colour in text logs; colour is only
                 used when stderr is a terminal

Exit codes:
  0  success
  1  failure (database error, a difference found by verify, a parked stream for wait)
  2  usage or configuration error (a missing or invalid variable is named)
  3  wait: timed out

Docs: docs/operations.md (runbooks), docs/events.md (event types), docs/http.md (HTTP)";

/// The robson projection daemon and its operator tools.
///
/// Without a command, runs the daemon (`robsond run`).
#[derive(Debug, Parser)]
#[command(name = "robsond", version, propagate_version = true, after_help = FOOTER)]
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
    /// Run the daemon (the default): project the log, serve /health, /metrics and the HTTP API.
    ///
    /// Configured by the environment (DATABASE_URL and ROBSON_*, see the
    /// README). Stops on SIGTERM/SIGINT within ROBSON_SHUTDOWN_TIMEOUT_SECS.
    #[command(after_help = FOOTER)]
    Run,
    /// Apply the embedded migrations; a no-op when they are already applied.
    #[command(after_help = FOOTER)]
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
    #[command(after_help = FOOTER)]
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Append one event to the log (through the SQL function append_event).
    #[command(after_help = FOOTER)]
    Append(AppendArgs),
    /// Append realistic trading flows, for demos and benchmarks.
    ///
    /// Deterministic per seed: the same options append the same events.
    #[command(after_help = FOOTER)]
    Generate(GenerateArgs),
    /// Store a consistent image of every projection table, or list the stored ones.
    ///
    /// Without a subcommand, takes a snapshot and prints its id, position
    /// (tx_id/global_position) and rows per table.
    #[command(after_help = FOOTER, args_conflicts_with_subcommands = true)]
    Snapshot {
        #[command(subcommand)]
        action: Option<SnapshotCommand>,
        /// After storing, keep only the newest N snapshots (all are kept when omitted).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        retain: Option<u32>,
    },
    /// Recompute the projections from the log beside the live ones, then swap atomically.
    ///
    /// Uses the daemon's ROBSON_ON_POISON and ROBSON_BATCH_SIZE. A running
    /// daemon keeps serving meanwhile.
    #[command(after_help = FOOTER)]
    Rebuild {
        /// Start from a snapshot and replay only the events after it: snapshot ID
        /// (see `robsond snapshot list`), or the latest when no ID is given.
        #[arg(long, value_name = "ID", num_args = 0..=1)]
        from_snapshot: Option<Option<Uuid>>,
    },
    /// Rebuild into a scratch schema and compare with the live projections; exit 1 on a difference.
    #[command(after_help = FOOTER)]
    Verify,
    /// List, retry or skip parked streams.
    #[command(after_help = FOOTER)]
    Streams {
        #[command(subcommand)]
        action: StreamsCommand,
    },
    /// Wait until a stream is projected up to a seq (read-your-writes).
    ///
    /// Reads the database (DATABASE_URL), not a daemon. Prints the same JSON
    /// as GET /wait; exit 0 when projected, 1 when the stream is parked at or
    /// before the seq, 3 on timeout.
    #[command(after_help = FOOTER)]
    Wait(WaitArgs),
    /// Start a private PostgreSQL, migrate, generate a live flow and run the daemon.
    ///
    /// Needs the PostgreSQL server binaries (PATH or /usr/lib/postgresql/*/bin),
    /// not DATABASE_URL. Ctrl-C stops everything it started.
    #[command(after_help = FOOTER)]
    Dev(DevArgs),
    /// Measure projection throughput on generated events, on a throwaway cluster.
    ///
    /// Needs the PostgreSQL server binaries, not DATABASE_URL (docs/performance.md).
    #[command(after_help = FOOTER)]
    Bench {
        /// Number of events to project.
        #[arg(long, value_name = "N", default_value_t = 1_000_000)]
        events: u64,
        /// Where the throwaway PostgreSQL cluster lives (a temporary directory when
        /// omitted; removed afterwards).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<std::path::PathBuf>,
        /// Measure the append path instead (SQL and Rust appends against a
        /// plain INSERT and COPY of the same rows), N events per bulk measure.
        #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "20000")]
        append: Option<u64>,
        /// Workload shape: mixed, short-streams, hot-streams, wide-tenants,
        /// or all (each in turn, on its own database, in one run).
        #[arg(long, value_name = "NAME", default_value = "mixed", value_parser = parse_bench_profile)]
        profile: BenchProfiles,
    },
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum SnapshotCommand {
    /// List the stored snapshots, newest first: id, position, taken_at, rows.
    #[command(after_help = FOOTER)]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct WaitArgs {
    /// Stream key, e.g. order:<uuid>.
    #[arg(long, value_name = "KEY")]
    pub stream: String,
    /// The seq the stream's progress must reach (1 or more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub seq: i64,
    /// Give up after this many milliseconds (0 to 30000).
    #[arg(long, value_name = "T", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(0..=30_000))]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct AppendArgs {
    /// Tenant (UUID) the event belongs to; a stream belongs to the tenant that appended to it first.
    #[arg(long, value_name = "UUID")]
    pub tenant: Uuid,
    /// Stream key, e.g. order:<uuid> (1-200 characters).
    #[arg(long, value_name = "KEY")]
    pub stream: String,
    /// Event type, e.g. ORDER_SUBMITTED (the twelve projected types: docs/events.md;
    /// any other type is stored and skipped as unhandled).
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: String,
    /// Event payload, a JSON object (its fields per type: docs/events.md).
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub payload: serde_json::Value,
    /// Fail unless the stream's last seq is N (0: the stream must not exist).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub expected_seq: Option<i64>,
    /// Command id (UUID): part of the computed idempotency key, so the same payload
    /// sent by two commands is two events, and a retried command is one.
    #[arg(long, value_name = "UUID")]
    pub command_id: Option<Uuid>,
    /// Producer time (RFC 3339); now when omitted.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// The profiles `robsond bench --profile` runs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchProfiles(pub Vec<crate::tools::generate::Profile>);

fn parse_bench_profile(s: &str) -> Result<BenchProfiles, String> {
    use clap::ValueEnum as _;
    if s == "all" {
        return Ok(BenchProfiles(crate::tools::generate::Profile::ALL.to_vec()));
    }
    crate::tools::generate::Profile::from_str(s, false)
        .map(|p| BenchProfiles(vec![p]))
        .map_err(|_| "expected mixed, short-streams, hot-streams, wide-tenants or all".to_owned())
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct GenerateArgs {
    /// Number of orders to generate, with the events that follow each one.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub orders: u64,
    /// Number of tenants the flows are spread over (1 or more).
    #[arg(long, value_name = "K", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub tenants: u32,
    /// Events per second (the average held); 0 means as fast as possible.
    #[arg(long, value_name = "R", default_value_t = 0)]
    pub rate: u32,
    /// Seed of the random generator, so a run can be repeated exactly.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
    /// Shape of the workload (see docs/performance.md); wide-tenants uses
    /// at least 200 tenants.
    #[arg(long, value_enum, value_name = "NAME", default_value = "mixed")]
    pub profile: crate::tools::generate::Profile,
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum StreamsCommand {
    /// List parked streams and the event each one failed on.
    #[command(after_help = FOOTER)]
    Parked {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-attempt a parked stream from its failed event (after a fix); it parks again if it fails again.
    #[command(after_help = FOOTER)]
    Retry {
        /// Stream key of the parked stream, e.g. order:<uuid>.
        key: String,
    },
    /// Skip a parked stream's failed event (its effect is dropped) and resume the stream.
    #[command(after_help = FOOTER)]
    Skip {
        /// Stream key of the parked stream, e.g. order:<uuid>.
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Args)]
pub struct DevArgs {
    /// Where the private PostgreSQL keeps its files (created on first use, reused afterwards).
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
            "ORDER_SUBMITTED",
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
            ("order:1", "ORDER_SUBMITTED")
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

    #[test]
    fn rebuild_takes_an_optional_snapshot_id_and_snapshot_a_list_subcommand() {
        let id = "0b3f7c9e-1d2a-4e5f-8a9b-0c1d2e3f4a5b";
        let from = |args: &[&str]| match parse(args).expect("parses") {
            Command::Rebuild { from_snapshot } => from_snapshot,
            other => panic!("not rebuild: {other:?}"),
        };
        assert_eq!(from(&["rebuild"]), None);
        assert_eq!(from(&["rebuild", "--from-snapshot"]), Some(None));
        assert_eq!(
            from(&["rebuild", "--from-snapshot", id]).map(|o| o.map(|u| u.to_string())),
            Some(Some(id.to_owned()))
        );
        assert_eq!(
            parse(&["rebuild", "--from-snapshot", "latest"])
                .expect_err("not a uuid")
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["snapshot", "list", "--json"]).expect("parses"),
            Command::Snapshot {
                action: Some(SnapshotCommand::List { json: true }),
                retain: None
            }
        );
        assert_eq!(
            parse(&["snapshot", "--retain", "3"]).expect("parses"),
            Command::Snapshot {
                action: None,
                retain: Some(3)
            }
        );
    }
}
