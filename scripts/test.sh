#!/usr/bin/env bash
# The one test command: every test of the workspace, including those that
# need PostgreSQL (marked `#[ignore = "needs PostgreSQL"]`), against a
# throwaway cluster that is started first and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
# --all-targets: the benches compile too (they are not run here;
# `robsond bench` is the benchmark). --locked: exactly the Cargo.lock versions.
cargo build --workspace --all-features --all-targets --locked
exec scripts/with-postgres.sh cargo test --workspace --all-features --locked --no-fail-fast -- --include-ignored "$@"
