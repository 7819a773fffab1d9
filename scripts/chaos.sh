#!/usr/bin/env bash
# Runs the full fault-injection suite (crates/ferry-chaos) against a release build of
# `ferry` and rewrites RELIABILITY.md from its results (also kept as JSON in
# target/chaos/results.json). Every pair, every fault kind, at least 50 kill -9 of
# Ferry per pair: about an hour on 2 cores. Needs root for the target's tmpfs (the
# disk-full fault; without it that fault is skipped and the report says so).
#
#   scripts/chaos.sh                   # the full suite, a fresh seed
#   scripts/chaos.sh --seed 42         # repeat a run (any ferry-chaos option passes through)
#   PROFILE=dev scripts/chaos.sh ...   # drive a debug build instead (faster to build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
profile="${PROFILE:-release}"
dir=release
[ "$profile" = dev ] && dir=debug
cargo build --locked --profile "$profile" -p ferry -p ferry-chaos
mkdir -p target/chaos
status=0
"target/$dir/ferry-chaos" --out target/chaos/results.json --markdown RELIABILITY.md "$@" ||
  status=$?
echo "RELIABILITY.md rewritten (exit status $status)"
exit "$status"
