//! The daemon's SQL on the projection's bookkeeping tables, in one place:
//! `projection_checkpoints` (the partitions' read positions and the
//! partition layout: [`checkpoint`]), `projection_stream_progress` outside a
//! batch ([`streams`]), and the lag figures read from both against the log
//! ([`lag`]). Used by the poller, the projectors, the supervisor, the lag
//! view, HTTP, `status` and replay. What a batch itself reads and writes is
//! `robson_projector::store`; the tables' columns are declared in
//! `robson_projector::tables`.

pub mod checkpoint;
pub mod lag;
pub mod streams;
