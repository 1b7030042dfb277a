//! Partition ownership among several instances on one database, coordinated
//! by PostgreSQL session advisory locks on one dedicated connection:
//!
//! - every instance holds a SHARED lock on the membership key (member class,
//!   its configured `ROBSON_PARTITIONS`), so the live instances are the
//!   holders of that class (a `kill -9` closes the session and the lock goes
//!   with it, at once), and their configured counts are visible;
//! - partition p of a layout of P partitions is owned by whoever holds the
//!   EXCLUSIVE lock (partition class, P × 1024 + p): two layouts never share
//!   a lock key, so an instance still draining an old layout blocks nobody;
//! - the layout worked is the one in `projection_checkpoints`; it is replaced
//!   by an instance's configured count only when no live instance is
//!   configured with it ([`Ownership::settle_layout`]);
//! - each instance aims at ceil(P / live instances) partitions, takes free
//!   ones when below, and releases its highest-numbered ones when above (the
//!   caller drains the projector first, then unlocks).
//!
//! No home-made consensus: a lock is held or not. Ownership only decides who
//! does the work; exactly-once rests on per-stream progress, so even two
//! instances briefly projecting the same partition cannot apply an event twice.

use std::collections::BTreeSet;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// Advisory lock classes (first key of the two-key form).
const MEMBER_CLASS: i32 = 0x524f_4231;
const PARTITION_CLASS: i32 = 0x524f_4232;

/// Partition numbers are below this (ROBSON_PARTITIONS ≤ 1024).
const LAYOUT_STRIDE: i64 = 1024;

/// The second key of partition `partition`'s lock in a layout of `partitions`.
fn partition_key(partitions: usize, partition: usize) -> i32 {
    // ≤ 1024 × 1024 + 1023: fits an int4.
    (partitions as i64 * LAYOUT_STRIDE + partition as i64) as i32
}

/// What a layout check found (see [`Ownership::settle_layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The database holds the layout this daemon runs: work it.
    Work,
    /// The database holds a layout of this many partitions: re-create the
    /// daemon for it, and take no partition meanwhile.
    Adopt(usize),
}

/// What to change after a rebalancing round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reassignment {
    /// Partitions just locked: start their projectors.
    pub acquired: Vec<usize>,
    /// Partitions to hand back: drain their projectors, then [`Ownership::release`].
    pub to_release: Vec<usize>,
}

/// This instance's coordination session.
#[derive(Debug)]
pub struct Ownership {
    conn: PgConnection,
    /// The layout this daemon runs.
    partitions: usize,
    /// This instance's ROBSON_PARTITIONS (its membership key).
    configured: usize,
    owned: BTreeSet<usize>,
    /// Where this instance starts looking for free partitions, so instances
    /// starting together do not all race for partition 0.
    first_choice: usize,
}

impl Ownership {
    /// Opens the coordination session and joins the membership as an
    /// instance configured with `configured` partitions that runs a layout
    /// of `partitions`.
    pub async fn join(
        url: &str,
        instance: &str,
        partitions: usize,
        configured: usize,
    ) -> Result<Self, sqlx::Error> {
        let options: PgConnectOptions = url.parse()?;
        // The application name lets /health name each partition's owner.
        let name: String = format!("robsond:{instance}").chars().take(63).collect();
        let mut conn = options.application_name(&name).connect().await?;
        sqlx::query("SELECT pg_advisory_lock_shared($1, $2)")
            .bind(MEMBER_CLASS)
            .bind(configured as i32)
            .execute(&mut conn)
            .await?;
        let first_choice =
            (crate::partition::stable_hash(instance) % partitions.max(1) as u64) as usize;
        Ok(Ownership {
            conn,
            partitions,
            configured,
            owned: BTreeSet::new(),
            first_choice,
        })
    }

    pub fn owned(&self) -> &BTreeSet<usize> {
        &self.owned
    }

    /// Live instances: holders of the membership lock in this database.
    pub async fn live_instances(&mut self) -> Result<usize, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks
              WHERE locktype = 'advisory' AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND classid = $1::int4::oid AND objsubid = 2",
        )
        .bind(MEMBER_CLASS)
        .fetch_one(&mut self.conn)
        .await?;
        Ok((n as usize).max(1))
    }

    /// Live instances configured with `partitions` (this one excluded
    /// unless it is configured so).
    async fn configured_with(
        conn: &mut PgConnection,
        partitions: usize,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks
              WHERE locktype = 'advisory' AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2",
        )
        .bind(MEMBER_CLASS)
        .bind(partitions as i32)
        .fetch_one(conn)
        .await
    }

    /// Decides which layout to work, serialised with every other instance's
    /// decision: the layout in the database wins while a live instance is
    /// configured with it; when none is (they all stopped, or this is the
    /// first start), this instance's configured count replaces it. Then
    /// [`Layout::Work`] when that is the layout this daemon runs, else
    /// [`Layout::Adopt`]. An empty table gets the configured layout.
    ///
    /// The stable outcome of a rolling deploy from P to Q: instances
    /// configured with Q work P until the last P instance leaves, then the
    /// layout becomes Q and every instance re-creates its projectors once.
    pub async fn settle_layout(&mut self) -> Result<Layout, sqlx::Error> {
        let mut tx = self.conn.begin().await?;
        crate::progress::checkpoint::lock_layout(&mut tx).await?;
        let mut stored = crate::progress::checkpoint::stored_layout(&mut tx).await?;
        if stored.is_none() {
            crate::progress::checkpoint::reshape(&mut tx, self.configured).await?;
            stored = Some(self.configured);
        }
        let mut layout = stored.unwrap_or(self.configured);
        if layout != self.configured && Self::configured_with(&mut tx, layout).await? == 0 {
            tracing::info!(
                stored = layout,
                configured = self.configured,
                "No live instance is configured with the stored partition layout: replacing it."
            );
            crate::progress::checkpoint::reshape(&mut tx, self.configured).await?;
            layout = self.configured;
        }
        tx.commit().await?;
        Ok(if layout == self.partitions {
            Layout::Work
        } else {
            Layout::Adopt(layout)
        })
    }

    /// One round: take free partitions up to the fair share, name the
    /// excess to release.
    pub async fn rebalance(&mut self) -> Result<Reassignment, sqlx::Error> {
        let live = self.live_instances().await?;
        let target = self.partitions.div_ceil(live);
        let mut change = Reassignment::default();
        if self.owned.len() < target {
            for i in 0..self.partitions {
                if self.owned.len() >= target {
                    break;
                }
                let p = (self.first_choice + i) % self.partitions;
                if self.owned.contains(&p) {
                    continue;
                }
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                    .bind(PARTITION_CLASS)
                    .bind(partition_key(self.partitions, p))
                    .fetch_one(&mut self.conn)
                    .await?;
                if got {
                    self.owned.insert(p);
                    change.acquired.push(p);
                }
            }
        } else if self.owned.len() > target {
            let excess = self.owned.len() - target;
            change.to_release = self.owned.iter().rev().take(excess).copied().collect();
        }
        Ok(change)
    }

    /// Hands a drained partition back.
    pub async fn release(&mut self, partition: usize) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(PARTITION_CLASS)
            .bind(partition_key(self.partitions, partition))
            .execute(&mut self.conn)
            .await?;
        self.owned.remove(&partition);
        Ok(())
    }

    /// Owner instance of every partition of this layout (None when
    /// unowned), from the locks and the owners' application names.
    pub async fn owners(&mut self) -> Result<Vec<Option<String>>, sqlx::Error> {
        lock_holders(&mut self.conn, self.partitions).await
    }

    /// Ends the session (and with it every lock) in an orderly way.
    pub async fn close(self) -> Result<(), sqlx::Error> {
        self.conn.close().await
    }

    /// Checks the session is alive (the locks live and die with it).
    pub async fn ping(&mut self) -> Result<(), sqlx::Error> {
        self.conn.ping().await
    }
}

/// A live instance: a holder of the membership lock (see the module doc).
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Member {
    /// Its ROBSON_INSTANCE_ID (from its coordination session's name).
    pub instance: String,
    /// Its configured ROBSON_PARTITIONS.
    pub configured_partitions: i64,
    /// When its coordination session connected (about when it started).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub client_addr: Option<String>,
}

/// Every live instance on this database, by name (for the console).
pub async fn live_members<'c>(
    executor: impl sqlx::PgExecutor<'c>,
) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT substr(a.application_name, 9) AS instance,
                l.objid::int8 AS configured_partitions,
                a.backend_start AS since, host(a.client_addr) AS client_addr
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = $1::int4::oid
          ORDER BY 1",
    )
    .bind(MEMBER_CLASS)
    .fetch_all(executor)
    .await
}

/// The instance holding each partition lock of a layout of `partitions`
/// (None when nobody does): the real owner, whoever committed the
/// checkpoint last. The instance id is the holder session's
/// `application_name` (`robsond:<ROBSON_INSTANCE_ID>`, set by [`Ownership::join`]);
/// a session whose name this role may not read (another role, without
/// `pg_read_all_stats`) is named by its backend pid, `pid N`.
pub async fn lock_holders<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    partitions: usize,
) -> Result<Vec<Option<String>>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT l.objid::int8,
                coalesce(nullif(substr(a.application_name, 9), ''), 'pid ' || l.pid)
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = $1::int4::oid",
    )
    .bind(PARTITION_CLASS)
    .fetch_all(conn)
    .await?;
    let mut owners = vec![None; partitions];
    for (key, owner) in rows {
        if key / LAYOUT_STRIDE != partitions as i64 {
            continue; // another layout's lock
        }
        if let Some(slot) = owners.get_mut((key % LAYOUT_STRIDE) as usize) {
            *slot = Some(owner);
        }
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_of_two_layouts_never_collide() {
        let mut keys = std::collections::BTreeSet::new();
        for partitions in [1, 2, 4, 7, 8, 1024] {
            for p in 0..partitions {
                assert!(keys.insert(partition_key(partitions, p)));
            }
        }
        assert_eq!(partition_key(1024, 1023), 1024 * 1024 + 1023);
    }
}
