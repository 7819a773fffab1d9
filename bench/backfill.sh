#!/usr/bin/env bash
# Adding a table to a task that streams (PostgreSQL → PostgreSQL): pgbench writes to
# the source at a fixed rate while Ferry replicates the pgbench tables; then the task's
# objects grow by a table of ROWS rows, which the running stream copies chunk by chunk.
# Reports the backfill's rate against a plain full copy of the same table measured in
# the same run (under the same load), and the streaming tables' lag before and during
# the backfill. Results: bench/results/backfill-latest.md
#
#   bench/backfill.sh [rows=2000000] [tps=500] [scale=10]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-2000000}; RATE=${2:-500}; SCALE=${3:-10}
command -v pgbench >/dev/null || { sudo apt-get install -y postgresql-contrib >/dev/null 2>&1 || apt-get install -y postgresql-contrib >/dev/null; }
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin ferry --bin ferry-sandbox
eval "$(target/release/ferry-sandbox)"
BASE=${FERRY_PG_URL%/*}
PGB=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1); PGB=${PGB:-pgbench}
for db in bench_bf_src bench_bf_dst bench_bf_copy; do
  psql -q "$BASE/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
done
psql -qAt "$BASE/postgres" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ('ferry_bench_bf', 'ferry_bench_bf_copy') AND NOT active" >/dev/null
"$PGB" -q -i -s "$SCALE" "$BASE/bench_bf_src" 2>/dev/null
psql -q "$BASE/bench_bf_src" -c "CREATE TABLE extra (id bigint PRIMARY KEY, note text, n int);
  INSERT INTO extra SELECT g, md5(g::text), g FROM generate_series(1, $ROWS) g;" -c "VACUUM ANALYZE extra"
DIR=$(mktemp -d)
task() { # name target include...
  local name=$1 target=$2; shift 2
  printf 'name: %s\nkind: migration\nmode: %s\nsource: %s\ntarget: %s\nobjects:\n  include: [%s]\n' \
    "$name" "${MODE:-full+incremental}" "$BASE/bench_bf_src" "$BASE/$target" "$(IFS=,; echo "$*")"
}
PGBENCH_TABLES='"public.pgbench_accounts","public.pgbench_branches","public.pgbench_tellers","public.pgbench_history"'
task bench-bf bench_bf_dst "$PGBENCH_TABLES" >"$DIR/task.yaml"
PORT=$((20000 + RANDOM % 20000))
metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"[{]" {print $2}'; }
start_ferry() {
  target/release/ferry run "$DIR/task.yaml" --quiet --metrics-addr 127.0.0.1:$PORT >>"$DIR/ferry.log" 2>&1 &
  FERRY=$!
}
start_ferry
until psql -qAt "$BASE/bench_bf_dst" -c "SELECT phase FROM ferry.tasks" 2>/dev/null | grep -q incremental; do sleep 0.2; done
"$PGB" -n -c 4 -j 4 -R "$RATE" -T 100000 "$BASE/bench_bf_src" >"$DIR/pgbench.out" 2>&1 &
PGBENCH=$!
sleep 5

# baseline under the same load: a plain full copy of the table alone
MODE=full task bench-bf-copy bench_bf_copy '"public.extra"' >"$DIR/copy.yaml"
T0=$(date +%s.%N)
target/release/ferry run "$DIR/copy.yaml" --quiet >/dev/null
COPY_S=$(echo "$(date +%s.%N) - $T0" | bc -l)

# lag of the streaming tables for 15 s before the edit
: >"$DIR/lag_before"
for _ in $(seq 15); do metric ferry_lag_seconds >>"$DIR/lag_before"; sleep 1; done

# the edit: the task file's objects grow by `extra`; the stream copies it
kill -TERM $FERRY; wait $FERRY || true
task bench-bf bench_bf_dst "$PGBENCH_TABLES" '"public.extra"' >"$DIR/task.yaml"
T0=$(date +%s.%N)
start_ferry
: >"$DIR/lag_during"
until [ "$(psql -qAt "$BASE/bench_bf_dst" -c "SELECT done FROM ferry.backfill WHERE table_name = 'public.extra'" 2>/dev/null)" = "1" ]; do
  metric ferry_lag_seconds >>"$DIR/lag_during" || true
  sleep 1
done
BF_S=$(echo "$(date +%s.%N) - $T0" | bc -l)
RSS=$(awk '/VmHWM/ {print $2}' /proc/$FERRY/status)
kill -TERM $PGBENCH; wait $PGBENCH || true
# caught up: the target holds as many history rows as the source
SRC_H=$(psql -qAt "$BASE/bench_bf_src" -c "SELECT count(*) FROM pgbench_history")
until [ "$(psql -qAt "$BASE/bench_bf_dst" -c "SELECT count(*) FROM pgbench_history")" = "$SRC_H" ]; do sleep 0.2; done
kill -TERM $FERRY; wait $FERRY || true
target/release/ferry compare "$DIR/task.yaml" >"$DIR/compare.out" || { cat "$DIR/compare.out"; echo "compare failed"; exit 1; }
target/release/ferry end "$DIR/task.yaml" >/dev/null
pct() { sort -g "$1" | awk '{a[NR]=$1} END {i50=int(NR*0.5); if(i50<1)i50=1; i99=int(NR*0.99); if(i99<1)i99=1; print a[i50], a[i99]}'; }
read -r B50 B99 < <(pct "$DIR/lag_before")
read -r D50 D99 < <(pct "$DIR/lag_during")
mkdir -p bench/results
{
  echo "## Adding a table to a running sync (PostgreSQL → PostgreSQL), $(date -u +%F)"
  echo
  echo "Command: \`bench/backfill.sh $ROWS $RATE $SCALE\` (pgbench scale $SCALE at $RATE tps, 4 clients, on the source the whole time; the added table has $ROWS rows of (bigint, md5 text, int); source and targets on one server)"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  printf "| plain full copy of the table alone (\`mode: full\`), under the same load | %.1f s, %.0f rows/s |\n" "$COPY_S" "$(echo "$ROWS / $COPY_S" | bc -l)"
  printf "| backfill by the running stream (restart with the grown objects → table copied) | %.1f s, %.0f rows/s |\n" "$BF_S" "$(echo "$ROWS / $BF_S" | bc -l)"
  printf "| backfill rate / full copy rate | %.2f× |\n" "$(echo "$COPY_S / $BF_S" | bc -l)"
  echo "| lag of the streaming tables p50 / p99, 15 s before the edit | ${B50} s / ${B99} s |"
  echo "| lag of the streaming tables p50 / p99, during the backfill | ${D50} s / ${D99} s |"
  echo "| Ferry peak RSS during the backfill | $((RSS / 1024)) MB |"
  echo "| compare after catch-up | equal |"
} | tee bench/results/backfill-latest.md
rm -rf "$DIR"
