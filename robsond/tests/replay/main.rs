//! Replay, snapshots, zero-downtime rebuild and verify (SPEC §4.6), tested
//! from outside: the real `robsond` binary (daemon and CLI) against real
//! PostgreSQL (`scripts/with-postgres.sh`).
//!
//! Every test starts from a copy of one prepared database (see `fixture`):
//! a mixed trading flow of about 20 000 events with poison events, projected
//! by the daemon, with streams parked and operator skips before and after a
//! snapshot. Results are judged by comparing complete images of the
//! projection tables (`image`), never by timing.

mod bootstrap;
mod fixture;
mod image;
mod process;
mod rebuild;
mod verify;
