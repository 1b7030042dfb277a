//! Test support (feature `testing`), shared by the crates' tests: the
//! projection tables read back in the fixtures' format ([`image`]) and the
//! fixtures of `tests/fixtures/` with the check against their expected
//! state ([`fixture`]), and [`TestDb`], a throwaway database with the
//! projector's schema. Not part of the product: it panics on any failure.

pub mod fixture;
pub mod image;

pub use fixture::Fixture;
pub use image::{dead_letters, first_difference, parked_streams, sorted, state, tables};

/// A test database with the log's and the projector's migrations.
pub type TestDb = robson_eventlog::testing::Database<crate::schema::Projection>;
