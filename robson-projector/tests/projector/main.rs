//! Integration tests of robson-projector against real PostgreSQL: one fresh,
//! migrated database per test (`robson_projector::testing::TestDb` on the
//! cluster named by DATABASE_URL). Every test is `#[ignore = "needs
//! PostgreSQL"]`; run them with
//! `scripts/with-postgres.sh cargo test -p robson-projector -- --include-ignored`.

mod support;

mod batches;
mod classify;
mod fixture;
mod operator;
mod properties;
mod schema;
