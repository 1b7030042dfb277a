#!/usr/bin/env bash
# The one test command: every test of the workspace, including those that
# need PostgreSQL (marked `#[ignore = "needs PostgreSQL"]`), against a
# throwaway cluster that is started first and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-features --bins
exec scripts/with-postgres.sh cargo test --workspace --all-features --no-fail-fast -- --include-ignored "$@"
