#!/usr/bin/env bash
# Incremental apply under load: PostgreSQL → PostgreSQL while pgbench (TPC-B-like)
# writes to the source as fast as it can. Reports the source's commit rate, Ferry's
# applied rate, lag p50/p99 (sampled every second from --metrics-addr), the time to
# catch up after the load stops, and Ferry's peak RSS. Results: bench/results/cdc-latest.md
#
#   bench/cdc-pgbench.sh [seconds=30] [clients=4] [scale=10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}; CLIENTS=${2:-4}; SCALE=${3:-10}
command -v pgbench >/dev/null || { sudo apt-get install -y postgresql-contrib >/dev/null 2>&1 || apt-get install -y postgresql-contrib >/dev/null; }
cargo build --release -q --bin ferry --bin ferry-sandbox
eval "$(target/release/ferry-sandbox)"
BASE=${FERRY_PG_URL%/*}
PGB=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1); PGB=${PGB:-pgbench}
psql -q "$BASE/postgres" -c "DROP DATABASE IF EXISTS bench_cdc_src" -c "DROP DATABASE IF EXISTS bench_cdc_dst" \
  -c "CREATE DATABASE bench_cdc_src" -c "CREATE DATABASE bench_cdc_dst" 2>/dev/null
psql -qAt "$BASE/postgres" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name='ferry_bench_cdc' AND NOT active" >/dev/null
"$PGB" -q -i -s "$SCALE" "$BASE/bench_cdc_src" 2>/dev/null
DIR=$(mktemp -d); TASK=$DIR/bench.yaml
cat > "$TASK" <<YAML
name: bench-cdc
kind: migration
mode: full+incremental
source: $BASE/bench_cdc_src
target: $BASE/bench_cdc_dst
YAML
PORT=$((20000 + RANDOM % 20000))
target/release/ferry run "$TASK" --quiet --metrics-addr 127.0.0.1:$PORT >"$DIR/ferry.log" 2>&1 &
FERRY=$!
until psql -qAt "$BASE/bench_cdc_dst" -c "SELECT phase FROM ferry.tasks" 2>/dev/null | grep -q incremental; do sleep 0.2; done
metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"[{]" {print $2}'; }
ROWS0=$(metric ferry_applied_rows_total); T0=$(date +%s.%N)
"$PGB" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" "$BASE/bench_cdc_src" >"$DIR/pgbench.out" 2>&1 &
PGBENCH=$!
: >"$DIR/lag"
while kill -0 $PGBENCH 2>/dev/null; do metric ferry_lag_seconds >>"$DIR/lag"; sleep 1; done
TPS=$(awk '/^tps/ {print $3; exit}' "$DIR/pgbench.out")
TXNS=$(awk '/number of transactions actually processed/ {print $NF}' "$DIR/pgbench.out" | cut -d/ -f1)
TLOAD=$(date +%s.%N)
# caught up: the target holds as many history rows as the source
SRC_H=$(psql -qAt "$BASE/bench_cdc_src" -c "SELECT count(*) FROM pgbench_history")
until [ "$(psql -qAt "$BASE/bench_cdc_dst" -c "SELECT count(*) FROM pgbench_history")" = "$SRC_H" ]; do sleep 0.2; done
T1=$(date +%s.%N)
ROWS1=$(metric ferry_applied_rows_total)
RSS=$(awk '/VmHWM/ {print $2}' /proc/$FERRY/status)
kill -TERM $FERRY; wait $FERRY || true
target/release/ferry compare "$TASK" >"$DIR/compare.out" || { cat "$DIR/compare.out"; echo "compare failed"; exit 1; }
target/release/ferry end "$TASK" >/dev/null
read -r P50 P99 < <(sort -g "$DIR/lag" | awk '{a[NR]=$1} END {i50=int(NR*0.5); if(i50<1)i50=1; i99=int(NR*0.99); if(i99<1)i99=1; print a[i50], a[i99]}')
APPLY_S=$(echo "$T1 - $T0" | bc -l); CATCH=$(echo "$T1 - $TLOAD" | bc -l)
ROWS=$((ROWS1 - ROWS0))
mkdir -p bench/results
{
  echo "## CDC apply under pgbench (PostgreSQL → PostgreSQL), $(date -u +%F)"
  echo
  echo "Command: \`bench/cdc-pgbench.sh $SECS $CLIENTS $SCALE\` (pgbench scale $SCALE, $CLIENTS clients, ${SECS}s, TPC-B-like; source and target on one server)"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| source commit rate (pgbench tps) | $TPS |"
  echo "| source transactions | $TXNS |"
  echo "| rows applied by Ferry | $ROWS (4 row writes per pgbench transaction) |"
  printf "| Ferry applied rate, load start → caught up | %.0f rows/s, %.0f txn/s |\n" "$(echo "$ROWS / $APPLY_S" | bc -l)" "$(echo "$TXNS / $APPLY_S" | bc -l)"
  printf "| catch-up after the load stopped | %.1f s |\n" "$CATCH"
  echo "| lag p50 / p99 during the load (1 s samples) | ${P50} s / ${P99} s |"
  echo "| Ferry peak RSS | $((RSS / 1024)) MB |"
  echo "| compare after catch-up | equal |"
} | tee bench/results/cdc-latest.md
rm -rf "$DIR"
