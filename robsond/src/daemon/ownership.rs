//! Partition ownership among several instances on one database, coordinated
//! by PostgreSQL session advisory locks on one dedicated connection:
//!
//! - every instance holds a SHARED lock on the membership key, so the live
//!   instances are the holders of that lock (a `kill -9` closes the session
//!   and the lock goes with it, at once);
//! - partition p is owned by whoever holds the EXCLUSIVE lock (class, p);
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

/// What to change after a rebalancing round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Partitions just locked: start their projectors.
    pub acquired: Vec<usize>,
    /// Partitions to hand back: drain their projectors, then [`Ownership::release`].
    pub to_release: Vec<usize>,
}

/// This instance's coordination session.
#[derive(Debug)]
pub struct Ownership {
    conn: PgConnection,
    partitions: usize,
    owned: BTreeSet<usize>,
    /// Where this instance starts looking for free partitions, so instances
    /// starting together do not all race for partition 0.
    first_choice: usize,
}

impl Ownership {
    /// Opens the coordination session and joins the membership.
    pub async fn join(url: &str, instance: &str, partitions: usize) -> Result<Self, sqlx::Error> {
        let options: PgConnectOptions = url.parse()?;
        // The application name lets /health name each partition's owner.
        let name: String = format!("robsond:{instance}").chars().take(63).collect();
        let mut conn = options.application_name(&name).connect().await?;
        sqlx::query("SELECT pg_advisory_lock_shared($1, 0)")
            .bind(MEMBER_CLASS)
            .execute(&mut conn)
            .await?;
        let first_choice =
            (crate::partition::stable_hash(instance) % partitions.max(1) as u64) as usize;
        Ok(Ownership {
            conn,
            partitions,
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
                AND classid = $1::int4::oid AND objid = 0 AND objsubid = 2",
        )
        .bind(MEMBER_CLASS)
        .fetch_one(&mut self.conn)
        .await?;
        Ok((n as usize).max(1))
    }

    /// One round: take free partitions up to the fair share, name the
    /// excess to release.
    pub async fn rebalance(&mut self) -> Result<Plan, sqlx::Error> {
        let live = self.live_instances().await?;
        let target = self.partitions.div_ceil(live);
        let mut plan = Plan::default();
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
                    .bind(p as i32)
                    .fetch_one(&mut self.conn)
                    .await?;
                if got {
                    self.owned.insert(p);
                    plan.acquired.push(p);
                }
            }
        } else if self.owned.len() > target {
            let excess = self.owned.len() - target;
            plan.to_release = self.owned.iter().rev().take(excess).copied().collect();
        }
        Ok(plan)
    }

    /// Hands a drained partition back.
    pub async fn release(&mut self, partition: usize) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(PARTITION_CLASS)
            .bind(partition as i32)
            .execute(&mut self.conn)
            .await?;
        self.owned.remove(&partition);
        Ok(())
    }

    /// Owner instance of every partition (None when unowned), from the locks
    /// and the owners' application names.
    pub async fn owners(&mut self) -> Result<Vec<Option<String>>, sqlx::Error> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT l.objid::int8, substr(a.application_name, 9)
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = $1::int4::oid",
        )
        .bind(PARTITION_CLASS)
        .fetch_all(&mut self.conn)
        .await?;
        let mut owners = vec![None; self.partitions];
        for (p, owner) in rows {
            if let Some(slot) = owners.get_mut(p as usize) {
                *slot = Some(owner);
            }
        }
        Ok(owners)
    }

    /// Checks the session is alive (the locks live and die with it).
    pub async fn ping(&mut self) -> Result<(), sqlx::Error> {
        self.conn.ping().await
    }
}
