//! Integration tests of the event log against real PostgreSQL.
//!
//! Every test takes a fresh migrated database from `TestDb` on the cluster of
//! `DATABASE_URL` (run them with `scripts/with-postgres.sh cargo test -p
//! robson-eventlog --features testing -- --include-ignored`). Without
//! `DATABASE_URL` they fail loudly; they never pass without a database.

mod append_events;
mod batch;
mod batch_paths;
mod commit_order;
mod concurrency;
mod golden;
mod hostile;
mod idempotency;
mod idempotency_key;
mod migrations;
mod notify;
mod partitions;
mod query;
mod support;
mod tenancy;
