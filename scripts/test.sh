#!/usr/bin/env bash
# Runs the whole test suite exactly as CI does: installs what is missing, checks
# formatting and lints, then runs every test (unit, property and integration tests
# against throwaway PostgreSQL and MariaDB servers started by the tests), and stops
# those servers at the end (their data stays for the next run; free it with
# `cargo run -q -p ferry-testkit --bin ferry-sandbox -- stop --clean`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
status=0
cargo nextest run --workspace --locked --no-fail-fast || status=$?
FERRY_BIN=target/debug/ferry scripts/api-fuzz.sh || status=$?
cargo build --locked -q -p ferry -p ferry-chaos && target/debug/ferry-chaos --quick --seed 1 || status=$?
cargo run -q --locked -p ferry-testkit --bin ferry-sandbox -- stop ||
  echo "warning: could not stop the test servers" >&2
exit "$status"
