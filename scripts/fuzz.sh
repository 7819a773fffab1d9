#!/usr/bin/env bash
# Bounded fuzzing runs of every cargo-fuzz target in fuzz/ (see fuzz/README.md).
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 300) each
#   scripts/fuzz.sh position api_request   # just these
# Installs cargo-fuzz if missing. The targets need nightly compiler flags:
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take them. Each target's corpus grows
# in fuzz/corpus/<target> (not committed), seeded from fuzz/seeds/<target>; a crash
# leaves its input in fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-300}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
features_of() {
  case "$1" in
    # one feature set for both, so the second build reuses the first
    pgoutput | binlog_value | api_request) echo "--features net,service" ;;
    *) echo "" ;;
  esac
}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(task_spec endpoint position pgoutput binlog_value api_request)
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${seconds}s"
  # -s none: Rust is memory-safe here (unsafe_code is forbidden); what we look for is
  # panics, and without a sanitizer the runs are faster. Debug assertions stay on, so
  # an integer overflow is a crash too.
  # shellcheck disable=SC2046
  if ! cargo fuzz run -s none $(features_of "$t") "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    echo "== $t: FAILED (input in fuzz/artifacts/$t/)" >&2
    status=1
  fi
done
exit "$status"
