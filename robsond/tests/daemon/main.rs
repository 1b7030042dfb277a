//! The daemon tested from outside, as SPEC §4 is written: the real `robsond`
//! binary in its own process, real signals, a real HTTP client, and a fresh
//! migrated database per test on the cluster of `DATABASE_URL`.
//!
//! Run them with `scripts/test.sh`, or for this binary alone:
//! `scripts/with-postgres.sh cargo test -p robsond --all-features --test daemon
//! -- --include-ignored --test-threads=2`. Tests that need PostgreSQL are
//! `#[ignore = "needs PostgreSQL"]` and fail loudly without `DATABASE_URL`.
//!
//! Most tests end by comparing the tables with what one clean run over the
//! same log gives (`support::assert_equals_clean_run`): that is what "nothing
//! lost, nothing applied twice" means for a projection. The database-restart
//! scenario lives in its own binary (`tests/pg_restart`), as it stops the
//! server every test shares.

mod admin;
mod adversarial;
mod allocator;
mod cli_help;
mod config;
mod crash;
mod drift;
mod fixture;
mod generate;
mod hostile;
mod http;
mod http_doc;
mod instances;
mod lag_cost;
mod logs;
mod metric_semantics;
mod migrate;
mod partitions;
mod poison;
mod runbooks;
mod shutdown;
mod snapshots;
mod stall;
mod status_owner;
mod supervision;
mod support;
mod wait;
mod writers;
