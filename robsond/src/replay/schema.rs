//! Shadow schemas: a validated, always-quoted name; a dedicated connection
//! that holds the replay lock (one rebuild or verify per database at a
//! time), creates the schema from `migrations/003_projections.sql` and
//! points its `search_path` at it; and dropping it again.
//!
//! Identifiers never come from user input, but they are still checked and
//! quoted: SQL text is only ever built from a [`SchemaName`] or from a name
//! read back from the catalog and passed through [`quote_ident`].

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::ReplayError;

/// The schema `robsond rebuild` builds before swapping it in.
pub const REBUILD_SCHEMA: &str = "robson_shadow";
/// The scratch schema of `robsond verify`, never swapped.
pub const VERIFY_SCHEMA: &str = "robson_verify";

/// Session advisory lock held by a rebuild or verify (one per database).
const REPLAY_LOCK: i64 = 0x726f_6273_6f6e_0003;

/// A schema name of 1-63 characters of `a-z`, `0-9` and `_`, not starting
/// with a digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaName(String);

impl SchemaName {
    pub fn new(name: &str) -> Result<SchemaName, ReplayError> {
        let valid = (1..=63).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(SchemaName(name.to_owned()))
        } else {
            Err(ReplayError::InvalidSchemaName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an SQL identifier.
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }
}

/// `name` as a double-quoted SQL identifier (inner quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A dedicated connection whose unqualified projection tables are those of
/// a fresh shadow schema.
#[derive(Debug)]
pub struct Shadow {
    pub conn: PgConnection,
    pub schema: SchemaName,
    /// The schema of the live projection tables, quoted.
    pub live: String,
}

impl Shadow {
    /// Connects to `url`, takes the replay lock (else [`ReplayError::Busy`]),
    /// drops a shadow `name` left over by an interrupted run, creates it
    /// from 003 and puts it first in the connection's `search_path`.
    pub async fn create(url: &str, name: &str) -> Result<Shadow, ReplayError> {
        let schema = SchemaName::new(name)?;
        let options: PgConnectOptions = url.parse()?;
        let mut conn = options
            .application_name(&format!("robsond:{name}"))
            .connect()
            .await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(REPLAY_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            return Err(ReplayError::Busy);
        }
        let live: Option<String> = sqlx::query_scalar(
            r#"
            SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = to_regclass('projection_stream_progress')
            "#,
        )
        .fetch_one(&mut conn)
        .await?;
        let live = live.ok_or(ReplayError::NotMigrated)?;
        if live == schema.as_str() {
            return Err(ReplayError::InvalidSchemaName(live));
        }
        let q = schema.quoted();
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {q} CASCADE; CREATE SCHEMA {q};"
        ))
        .execute(&mut conn)
        .await?;
        // A bound value, parsed by the server as a list of identifiers: the
        // shadow first, then whatever the session had (the live schema).
        let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&mut conn)
            .await?;
        let path = match path.trim() {
            "" => q.clone(),
            rest => format!("{q}, {rest}"),
        };
        sqlx::query("SELECT set_config('search_path', $1, false)")
            .bind(&path)
            .execute(&mut conn)
            .await?;
        sqlx::raw_sql(robson_projector::tables::DDL)
            .execute(&mut conn)
            .await?;
        Ok(Shadow {
            conn,
            schema,
            live: quote_ident(&live),
        })
    }

    /// The shadow's name, quoted.
    pub fn quoted(&self) -> String {
        self.schema.quoted()
    }

    /// Drops the shadow schema (if still there), releases the replay lock
    /// and closes the connection.
    pub async fn discard(mut self) -> Result<(), ReplayError> {
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.quoted()))
            .execute(&mut self.conn)
            .await?;
        self.close().await
    }

    /// Releases the replay lock and closes the connection (after a swap,
    /// the schema is gone already). The explicit unlock matters: a closed
    /// session's locks go only when its server process has exited, which
    /// may be after the next rebuild asked for the lock.
    pub async fn close(mut self) -> Result<(), ReplayError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(REPLAY_LOCK)
            .execute(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_accept_only_plain_lower_case_identifiers() {
        for good in ["robson_shadow", "robson_verify", "_x", "s1"] {
            assert!(SchemaName::new(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "Shadow",
            "x\"; DROP TABLE fills; --",
            "a b",
            &long,
        ] {
            assert!(SchemaName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("public"), "\"public\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
