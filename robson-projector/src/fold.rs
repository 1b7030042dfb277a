//! Folding events over rows held in memory: the rows a batch touches are
//! loaded once, every event is applied with the rules, and each changed row
//! is written once at the end. Pure (no database); loading and storing the
//! [`Tables`] is `store`'s job.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::error::ProjectionError;
use crate::rows::{
    BalanceKey, BalanceRow, FillRow, OrderKey, OrderRow, PositionKey, PositionRow, RiskKey,
    RiskRow, StrategyKey, StrategyRow,
};
use crate::rules::fill::FillEffect;
use crate::rules::{account, fill, order, position, strategy, Command, Stamp};

/// The rows of one table known to the fold, and which of them changed.
#[derive(Debug, Clone)]
pub struct Table<K, R> {
    rows: BTreeMap<K, R>,
    changed: BTreeSet<K>,
}

impl<K, R> Default for Table<K, R> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, R> Table<K, R> {
    /// The row under `key`, if it exists.
    pub fn get(&self, key: &K) -> Option<&R> {
        self.rows.get(key)
    }

    /// Adds a row as stored (unchanged).
    pub fn load(&mut self, key: K, row: R) {
        self.rows.insert(key, row);
    }

    /// Stores a row produced by a rule (changed).
    pub fn put(&mut self, key: K, row: R) {
        self.changed.insert(key.clone());
        self.rows.insert(key, row);
    }

    /// The changed rows, in key order.
    pub fn changed(&self) -> Vec<&R> {
        self.changed
            .iter()
            .filter_map(|key| self.rows.get(key))
            .collect()
    }

    /// Every row, in key order.
    pub fn rows(&self) -> impl Iterator<Item = &R> {
        self.rows.values()
    }
}

/// The projection rows a batch works on.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub orders: Table<OrderKey, OrderRow>,
    /// Fills recorded by this fold (fills are only ever inserted).
    pub fills: Vec<FillRow>,
    pub positions: Table<PositionKey, PositionRow>,
    pub balances: Table<BalanceKey, BalanceRow>,
    pub risks: Table<RiskKey, RiskRow>,
    pub strategies: Table<StrategyKey, StrategyRow>,
}

/// What an accepted event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Rows were written (stamped with the event).
    Changed,
    /// A repeated exchange report: nothing changed, but the event is applied.
    DuplicateFill,
    /// Not one of the twelve handled types: nothing changed (skipped).
    Unhandled,
}

/// The rows every parsed command needs, to be loaded before folding.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub orders: BTreeSet<OrderKey>,
    pub positions: BTreeSet<PositionKey>,
    pub balances: BTreeSet<BalanceKey>,
    pub risks: BTreeSet<RiskKey>,
    pub strategies: BTreeSet<StrategyKey>,
}

impl Keys {
    /// Adds the row `command` reads and writes, for an event of `tenant_id`.
    pub fn add(&mut self, command: &Command, tenant_id: Uuid) {
        match command.row_key(tenant_id) {
            RowKey::Order(key) => self.orders.insert(key),
            RowKey::Position(key) => self.positions.insert(key),
            RowKey::Balance(key) => self.balances.insert(key),
            RowKey::Risk(key) => self.risks.insert(key),
            RowKey::Strategy(key) => self.strategies.insert(key),
        };
    }
}

/// The one row a command reads and writes (a fill also adds its own
/// `order_fills` row, keyed by that order). Which table it is in is the
/// type of the command's `key`: stated once per command, in its rule's
/// module, and used both here and by [`Tables::apply_command`], so the
/// rows loaded for a batch are the rows its rules touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    Order(OrderKey),
    Position(PositionKey),
    Balance(BalanceKey),
    Risk(RiskKey),
    Strategy(StrategyKey),
}

macro_rules! row_key_from {
    ($($key:ident => $variant:ident),* $(,)?) => {$(
        impl From<$key> for RowKey {
            fn from(key: $key) -> RowKey {
                RowKey::$variant(key)
            }
        }
    )*};
}

row_key_from!(
    OrderKey => Order,
    PositionKey => Position,
    BalanceKey => Balance,
    RiskKey => Risk,
    StrategyKey => Strategy,
);

impl Command {
    /// See [`RowKey`].
    pub fn row_key(&self, tenant_id: Uuid) -> RowKey {
        match self {
            Command::OrderSubmitted(c) => c.key(tenant_id).into(),
            Command::OrderAcked(c) => c.key(tenant_id).into(),
            Command::FillReceived(c) => c.key(tenant_id).into(),
            Command::OrderEnded(c) => c.key(tenant_id).into(),
            Command::PositionOpened(c) => c.key(tenant_id).into(),
            Command::PositionClosed(c) => c.key(tenant_id).into(),
            Command::BalanceSampled(c) => c.key(tenant_id).into(),
            Command::RiskChecked(c) => c.key(tenant_id).into(),
            Command::StrategyEnabled(c) => c.key(tenant_id).into(),
            Command::StrategyDisabled(c) => c.key(tenant_id).into(),
        }
    }
}

impl Tables {
    /// Applies an already validated command. On error nothing changes.
    pub fn apply_command(
        &mut self,
        command: &Command,
        stamp: &Stamp,
    ) -> Result<Applied, ProjectionError> {
        let tenant_id = stamp.tenant_id;
        match command {
            Command::OrderSubmitted(c) => {
                let key = c.key(tenant_id);
                let row = order::submit(self.orders.get(&key), c, stamp)?;
                self.orders.put(key, row);
            }
            Command::OrderAcked(c) => {
                let key = c.key(tenant_id);
                let row = order::ack(self.orders.get(&key), c, stamp)?;
                self.orders.put(key, row);
            }
            Command::OrderEnded(c) => {
                let key = c.key(tenant_id);
                let row = order::end(self.orders.get(&key), c, stamp)?;
                self.orders.put(key, row);
            }
            Command::FillReceived(c) => {
                let key = c.key(tenant_id);
                match fill::fill(self.orders.get(&key), c, stamp)? {
                    FillEffect::Duplicate => return Ok(Applied::DuplicateFill),
                    FillEffect::Recorded { order, fill } => {
                        self.orders.put(key, *order);
                        self.fills.push(*fill);
                    }
                }
            }
            Command::PositionOpened(c) => {
                let key = c.key(tenant_id);
                let row = position::open(self.positions.get(&key), c, stamp)?;
                self.positions.put(key, row);
            }
            Command::PositionClosed(c) => {
                let key = c.key(tenant_id);
                let row = position::close(self.positions.get(&key), c, stamp)?;
                self.positions.put(key, row);
            }
            Command::BalanceSampled(c) => {
                self.balances
                    .put(c.key(tenant_id), account::sample_balance(c, stamp));
            }
            Command::RiskChecked(c) => {
                let key = c.key(tenant_id);
                let row = account::check_risk(self.risks.get(&key), c, stamp);
                self.risks.put(key, row);
            }
            Command::StrategyEnabled(c) => {
                let key = c.key(tenant_id);
                let row = strategy::enable(self.strategies.get(&key), c, stamp);
                self.strategies.put(key, row);
            }
            Command::StrategyDisabled(c) => {
                let key = c.key(tenant_id);
                let row = strategy::disable(self.strategies.get(&key), c, stamp)?;
                self.strategies.put(key, row);
            }
        }
        Ok(Applied::Changed)
    }
}

#[cfg(test)]
mod tests;
