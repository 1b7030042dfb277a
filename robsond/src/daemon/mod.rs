//! The daemon's actors (SPEC §1): a supervisor that starts one projector per
//! stream partition, the poller that feeds them, and the monitor that samples
//! lag and maintains partitions. Business rules live in `robson-projector`;
//! these actors own mailboxes, a little state and the wiring.

pub mod checkpoint;
pub mod lifecycle;
pub mod monitor;
pub mod ownership;
pub mod poller;
pub mod projector;
pub mod retry;
pub mod state;
pub mod supervisor;
