//! The daemon's actors (SPEC §1): a supervisor that starts one projector per
//! stream partition, the poller that feeds them, and the monitor that
//! maintains partitions; beside them the database probe, the on-demand lag
//! view, the console's one-second trend ring and the registry of
//! read-your-writes waiters. Business rules live in `robson-projector`;
//! these actors own mailboxes, a little state and the wiring.

pub mod drift;
pub mod group;
pub mod lifecycle;
pub mod monitor;
pub mod ownership;
pub mod poller;
pub mod probe;
pub mod projector;
pub mod retry;
pub mod state;
pub mod supervisor;
pub mod trend;
pub mod view;
pub mod waiters;
