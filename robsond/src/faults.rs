//! Fault injection for tests (cargo feature `failpoints`, which the test
//! command enables): named points where a test makes an actor fail as it
//! would in production, configured by the `FAILPOINTS` variable of the
//! `fail` crate (`name=actions;…`, e.g. `projector-batch-1=3*panic->off`).
//! Without the feature every point compiles to nothing and `FAILPOINTS` is
//! not read.
//!
//! Points:
//! - `projector-batch-<partition>`: inside a batch's transaction, after the
//!   projections are written and before the checkpoint. `panic` panics
//!   there; `return` runs a statement that fails with a permanent database
//!   error not caused by any event (division by zero, SQLSTATE 22012), so
//!   the transaction is rolled back and the projector stops as on any fatal
//!   error. (Schema errors such as a missing table are transient by design:
//!   retried until the operator fixes them; see `robson_projector::classify`.)
//!   A partition with this point configured commits every batch alone (never
//!   in a group of small batches, `daemon::group`), so that each of its
//!   batches meets the point where the projector handles what it does.
//! - `poller-after-read`: after each successful read of the log, before the
//!   poller looks for events still unread. `return(MS)` pauses the poller
//!   there for MS milliseconds (without blocking its thread), so a test can
//!   end a transaction between the read and that check.

use sqlx::PgConnection;

/// Keeps the configured fail points for the life of the process.
#[cfg(feature = "failpoints")]
pub fn setup() {
    // The scenario guard only clears the registry when dropped: keep it.
    std::mem::forget(fail::FailScenario::setup());
}

#[cfg(not(feature = "failpoints"))]
pub fn setup() {}

/// The `projector-batch-<partition>` point (see the module doc).
#[cfg(feature = "failpoints")]
pub async fn projector_batch(conn: &mut PgConnection, partition: usize) -> Result<(), sqlx::Error> {
    let name = format!("projector-batch-{partition}");
    if fail::eval(&name, |_| ()).is_some() {
        sqlx::query("SELECT 1 / 0 AS robson_injected_fault")
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Whether `projector-batch-<partition>` is configured (even if spent).
#[cfg(feature = "failpoints")]
pub fn projector_batch_configured(partition: usize) -> bool {
    let name = format!("projector-batch-{partition}");
    fail::list().iter().any(|(point, _)| *point == name)
}

#[cfg(not(feature = "failpoints"))]
pub fn projector_batch_configured(_: usize) -> bool {
    false
}

#[cfg(not(feature = "failpoints"))]
pub async fn projector_batch(_: &mut PgConnection, _: usize) -> Result<(), sqlx::Error> {
    Ok(())
}

/// The `poller-after-read` point (see the module doc).
#[cfg(feature = "failpoints")]
pub async fn poller_after_read() {
    let pause = fail::eval("poller-after-read", |arg| {
        arg.and_then(|ms| ms.parse::<u64>().ok())
    })
    .flatten();
    if let Some(ms) = pause {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

#[cfg(not(feature = "failpoints"))]
pub async fn poller_after_read() {}
