//! The projection tables, each declared once: its name, its key, and its
//! columns with their SQL types. Everything else about a table is derived
//! from that declaration — the row struct and its key, the set-based load
//! and upsert statements of `store`, the table lists that replay,
//! snapshots, the bench and the tests iterate, and the schema test that
//! holds the declarations to the live schema after the migrations.
//!
//! The six read models of SPEC §3.2 are declared with [`projection_table!`]
//! in [`crate::rows`] (a row struct and its table are one declaration);
//! `projection_stream_progress` and `projection_dead_letters`, whose SQL is
//! written by hand in `store::progress` and `store::dead_letters`, are
//! declared here as plain [`TableSpec`]s.
//!
//! Adding a column is the migration plus one line in the row's declaration
//! (the drift check compares and reports it with no further edit).

pub(crate) mod declare;
mod shown;
pub(crate) mod sql;
mod value;

#[cfg(test)]
mod tests;

pub(crate) use declare::projection_table;
pub use shown::Shown;
pub use value::SqlValue;

use std::collections::BTreeSet;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::Postgres;

use crate::rows::{BalanceRow, FillRow, OrderRow, PositionRow, RiskRow, StrategyRow};

/// A query whose parameters are still being bound.
pub type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// One column as the schema holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// The type as PostgreSQL's `format_type` spells it
    /// (`character varying(20)`, `numeric(20,8)`, `timestamp with time zone`).
    pub sql_type: &'static str,
    pub nullable: bool,
    /// In SPEC §3.2 (false for internal columns such as `fill_notional` and
    /// for the bookkeeping tables' operational columns).
    pub in_spec: bool,
}

/// What a table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRole {
    /// One of the six read models of SPEC §3.2.
    ReadModel,
    /// `projection_stream_progress` or `projection_dead_letters`: written in
    /// the same transactions as the read models.
    Bookkeeping,
}

/// A projection table: what a rebuild recreates, a snapshot holds and
/// verify compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub name: &'static str,
    /// The columns that identify a row (its primary key, or for
    /// `risk_state_current` its `UNIQUE NULLS NOT DISTINCT` key).
    pub key: &'static [&'static str],
    /// Every column, in table order.
    pub columns: &'static [Column],
    pub role: TableRole,
}

impl TableSpec {
    /// The column named `name`, if the table has one.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column names, in table order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> {
        self.columns.iter().map(|c| c.name)
    }
}

/// A row struct declared with [`projection_table!`]: its table, its key, and
/// the generated SQL that loads rows by key and writes them set-based.
pub trait Projection: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + Sized {
    type Key: Ord + Clone + Send + Sync;
    /// The table's declaration.
    const TABLE: &'static TableSpec;

    fn key(&self) -> Self::Key;

    /// `SELECT` of the stored rows under an array of keys (one parameter
    /// per key column, bound by [`Projection::bind_keys`]).
    fn load_sql() -> &'static str;

    /// `INSERT … SELECT FROM UNNEST(…)` of many rows (one array parameter
    /// per column, bound by [`Projection::bind_rows`]), updating every
    /// non-key column on a key conflict unless the table is insert-only.
    fn write_sql() -> &'static str;

    /// [`Projection::write_sql`] with its parameters numbered from `first`
    /// (one per column, in table order): a part of a larger statement.
    fn write_sql_from(first: usize) -> String;

    fn bind_keys<'q>(keys: &'q BTreeSet<Self::Key>, query: PgQuery<'q>) -> PgQuery<'q>;

    fn bind_rows<'q>(rows: &[&'q Self], query: PgQuery<'q>) -> PgQuery<'q>;

    /// Every column as (name, value as [`Shown`]), in table order: what the
    /// drift check compares and reports.
    fn shown_columns(&self) -> Vec<(&'static str, serde_json::Value)>;
}

/// A column of the bookkeeping tables (not derived from a row struct).
const fn bookkeeping(name: &'static str, sql_type: &'static str, nullable: bool) -> Column {
    Column {
        name,
        sql_type,
        nullable,
        in_spec: false,
    }
}

/// `projection_stream_progress`: per stream, the last seq applied (the
/// exactly-once filter), the parked marker and resume requests.
pub static PROGRESS: TableSpec = TableSpec {
    name: "projection_stream_progress",
    key: &["stream_key"],
    columns: &[
        bookkeeping("stream_key", "text", false),
        bookkeeping("tenant_id", "uuid", false),
        bookkeeping("last_seq", "bigint", false),
        bookkeeping("last_event_id", "uuid", true),
        bookkeeping("last_position", "bigint", true),
        bookkeeping("parked_seq", "bigint", true),
        bookkeeping("parked_at", "timestamp with time zone", true),
        bookkeeping("resume_requested", "boolean", false),
        bookkeeping("updated_at", "timestamp with time zone", false),
    ],
    role: TableRole::Bookkeeping,
};

/// `projection_dead_letters`: poison events and their resolution.
pub static DEAD_LETTERS: TableSpec = TableSpec {
    name: "projection_dead_letters",
    key: &["event_id"],
    columns: &[
        bookkeeping("dead_letter_id", "bigint", false),
        bookkeeping("event_id", "uuid", false),
        bookkeeping("tenant_id", "uuid", false),
        bookkeeping("stream_key", "text", false),
        bookkeeping("seq", "bigint", false),
        bookkeeping("global_position", "bigint", false),
        bookkeeping("event_type", "character varying(100)", false),
        bookkeeping("error_kind", "character varying(40)", false),
        bookkeeping("error", "text", false),
        bookkeeping("failed_at", "timestamp with time zone", false),
        bookkeeping("attempts", "integer", false),
        bookkeeping("resolution", "character varying(20)", true),
        bookkeeping("resolved_at", "timestamp with time zone", true),
    ],
    role: TableRole::Bookkeeping,
};

/// The six read models of SPEC §3.2, in SPEC order.
pub static READ_MODELS: [&TableSpec; 6] = [
    OrderRow::TABLE,
    FillRow::TABLE,
    PositionRow::TABLE,
    BalanceRow::TABLE,
    RiskRow::TABLE,
    StrategyRow::TABLE,
];

/// Every table the projector writes (those of
/// `migrations/003_projections.sql`), in the order they are locked:
/// `projection_stream_progress` first, because every projector transaction
/// touches it first, so taking it first cannot deadlock with one.
pub static ALL: [&TableSpec; 8] = [
    &PROGRESS,
    &DEAD_LETTERS,
    OrderRow::TABLE,
    FillRow::TABLE,
    PositionRow::TABLE,
    BalanceRow::TABLE,
    RiskRow::TABLE,
    StrategyRow::TABLE,
];

/// The DDL of every table in [`ALL`] (`migrations/003_projections.sql`),
/// with unqualified names only: run with `search_path` set to another
/// schema first, it creates the same tables there (what a rebuild's shadow
/// and the bench's scratch copies are made from).
pub const DDL: &str = include_str!("../../migrations/003_projections.sql");

/// The table named `name`, if the projector writes one.
pub fn by_name(name: &str) -> Option<&'static TableSpec> {
    ALL.iter().copied().find(|t| t.name == name)
}
