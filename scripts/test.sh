#!/usr/bin/env bash
# Runs the whole test suite exactly as CI does: installs what is missing, checks
# formatting and lints, then runs every test (unit, property and integration tests
# against throwaway PostgreSQL and MariaDB servers started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
