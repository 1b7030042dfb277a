//! The one-shot subcommands of SPEC §4.5 that work on the database without a
//! running daemon. Each returns `anyhow::Result`; `main` maps errors to exit
//! codes.

pub mod append;
pub mod rebuild;
pub mod snapshot;
pub mod status;
pub mod streams;
pub mod verify;
pub mod wait;

use crate::config::DatabaseConfig;

/// A small pool for a command. One connection is opened first, so that an
/// unreachable database is reported at once with its cause (`Connection
/// refused`), not as a pool timeout 5 s later behind a misleading context.
pub async fn pool(db: &DatabaseConfig) -> anyhow::Result<sqlx::PgPool> {
    use anyhow::Context as _;
    use sqlx::Connection as _;
    let first = sqlx::PgConnection::connect(db.url.expose())
        .await
        .context("Failed to connect to the database")?;
    // Only a check: a failure to say goodbye changes nothing.
    let _ = first.close().await;
    let pool = crate::app::connect(db.url.expose(), db.max_connections.min(4)).await?;
    Ok(pool)
}

/// `robsond migrate`.
pub async fn migrate(db: &DatabaseConfig) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(db.url.expose())
        .await
        .context("Failed to connect to the database")?;
    let report = crate::schema::migrate(&mut conn)
        .await
        .context("Failed to apply migrations")?;
    if report.newly_applied.is_empty() {
        println!("Schema up to date ({} migrations).", report.unchanged);
    } else {
        for name in &report.newly_applied {
            println!("applied {name}");
        }
        println!(
            "Schema migrated ({} applied, {} unchanged).",
            report.newly_applied.len(),
            report.unchanged
        );
    }
    Ok(())
}
