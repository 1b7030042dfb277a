//! Test support (feature `testing`): a fresh, migrated database per test on
//! the PostgreSQL cluster named by `DATABASE_URL` (started by
//! `scripts/with-postgres.sh`, the README's test command).
//!
//! A template database, named after the migrations' fingerprint, is migrated
//! once per cluster; each test database is a copy of it.
//!
//! Which migrations a test database gets is its [`Schema`]: [`TestDb`] has
//! the event log's own; the projector's and robsond's tests name theirs
//! (`Database<robson_projector::schema::Projection>`, …).

use std::marker::PhantomData;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::schema::{self, EventLog, Schema};

/// A throwaway database with the migrations of `S` applied.
#[derive(Debug)]
pub struct Database<S> {
    pub pool: PgPool,
    /// URL of this database (to hand to a child process).
    pub url: String,
    pub name: String,
    schema: PhantomData<S>,
}

/// A test database with the event log's schema.
pub type TestDb = Database<EventLog>;

/// The cluster's URL. Panics with a clear message when unset: tests that need
/// PostgreSQL must never pass silently without it.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: this test needs PostgreSQL. \
             Run the suite with scripts/test.sh (see README)."
        )
    })
}

/// `url` with its database name replaced by `db`.
pub fn url_with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..path_start], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl<S: Schema> Database<S> {
    /// A new database, migrated, with a small pool.
    pub async fn new() -> Database<S> {
        Self::with_pool_size(8).await
    }

    /// A new database with a pool of `max_connections`.
    pub async fn with_pool_size(max_connections: u32) -> Database<S> {
        let admin = admin_url();
        let migrations = S::migrations();
        let template = format!("robson_tpl_{}", schema::fingerprint(migrations));
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("connect to the test cluster");
        ensure_template(&mut conn, &admin, &template, migrations).await;
        let name = format!("robson_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = url_with_database(&admin, &name);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&url)
            .await
            .expect("connect to the test database");
        Database {
            pool,
            url,
            name,
            schema: PhantomData,
        }
    }
}

async fn ensure_template(
    conn: &mut PgConnection,
    admin: &str,
    template: &str,
    migrations: &[schema::Migration],
) {
    // One creator at a time across test binaries running in parallel.
    sqlx::query("SELECT pg_advisory_lock(7262)")
        .execute(&mut *conn)
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template)
            .fetch_one(&mut *conn)
            .await
            .expect("query pg_database");
    if !exists {
        let building = format!("{template}_build");
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {building}"))
            .execute(&mut *conn)
            .await
            .expect("drop stale template");
        sqlx::raw_sql(&format!("CREATE DATABASE {building}"))
            .execute(&mut *conn)
            .await
            .expect("create template");
        let mut t = PgConnection::connect(&url_with_database(admin, &building))
            .await
            .expect("connect to template");
        schema::migrate(&mut t, migrations)
            .await
            .expect("migrate template");
        t.close().await.expect("close template connection");
        sqlx::raw_sql(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut *conn)
            .await
            .expect("publish template");
    }
    sqlx::query("SELECT pg_advisory_unlock(7262)")
        .execute(&mut *conn)
        .await
        .expect("unlock");
}

/// Writes one committed event straight into the tables, bypassing every
/// check of `append_event`, as a writer from before migrations/006 (or one
/// with direct table access) could have: `payload` is JSON text, parsed by
/// PostgreSQL only. The stream is created (owned by `tenant_id`) or its head
/// advanced, the key row written, and the daemon notified, so that readers
/// see an ordinary event with the next seq. Returns that seq.
pub async fn insert_unchecked(
    pool: &PgPool,
    tenant_id: uuid::Uuid,
    stream_key: &str,
    event_type: &str,
    payload: &str,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO event_streams AS s (stream_key, tenant_id, last_seq) VALUES ($1, $2, 1)
         ON CONFLICT (stream_key) DO UPDATE SET last_seq = s.last_seq + 1
         RETURNING s.last_seq",
    )
    .bind(stream_key)
    .bind(tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "WITH e AS (
             INSERT INTO event_log (tenant_id, stream_key, seq, event_type, payload,
                                    occurred_at, idempotency_key)
             VALUES ($1, $2, $3, $4, $5::text::jsonb, now(), 'unchecked_' || gen_random_uuid())
             RETURNING idempotency_key, event_id, stream_key, seq, global_position, ingested_at)
         INSERT INTO event_log_keys (idempotency_key, event_id, stream_key, seq,
                                     global_position, ingested_at)
         SELECT * FROM e",
    )
    .bind(tenant_id)
    .bind(stream_key)
    .bind(seq)
    .bind(event_type)
    .bind(payload)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('robson_events', '')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_in_urls() {
        assert_eq!(
            url_with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            url_with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(url_with_database("postgres://h", "x"), "postgres://h/x");
    }
}
