//! The projector's migrations: the projection tables, the per-stream
//! progress and the dead letters (`migrations/003_projections.sql`, the
//! same text as [`tables::DDL`]), and [`Projection`], the schema a database
//! needs for the projector to work on it (the log's files and these).
//!
//! `robsond` composes the list it applies from these and the other crates'
//! lists; nothing here applies them.

use std::sync::LazyLock;

use robson_eventlog::schema::{compose, Migration, Schema};

use crate::tables;

/// The projector's own migrations, in lexical order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "003_projections.sql",
    sql: tables::DDL,
}];

/// The event log's migrations and the projector's: what the projector reads
/// and writes.
#[derive(Debug, Clone, Copy)]
pub struct Projection;

impl Schema for Projection {
    fn migrations() -> &'static [Migration] {
        static ALL: LazyLock<Vec<Migration>> =
            LazyLock::new(|| compose(&[robson_eventlog::MIGRATIONS, MIGRATIONS]));
        &ALL
    }
}
