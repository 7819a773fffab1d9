#!/usr/bin/env bash
# Incremental apply under load: MariaDB → MariaDB while sysbench oltp_write_only
# (index update, non-index update, delete + insert per transaction) writes to the
# source as fast as it can. Reports the source's commit rate, Ferry's applied rate,
# lag p50/p99 (sampled every second from --metrics-addr), the time to catch up after
# the load stops, and Ferry's peak RSS. Results: bench/results/cdc-sysbench-latest.md
#
#   bench/cdc-sysbench.sh [seconds=30] [threads=4] [table_size=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}; THREADS=${2:-4}; SIZE=${3:-100000}
command -v sysbench >/dev/null || { sudo apt-get install -y sysbench >/dev/null 2>&1 || apt-get install -y sysbench >/dev/null; }
cargo build --release -q --bin ferry --bin ferry-sandbox
eval "$(target/release/ferry-sandbox)"
BASE=${FERRY_MYSQL_URL%/}
my() { mariadb -h 127.0.0.1 -P "$FERRY_MYSQL_PORT" -u root -N -B "$@"; }
my -e "DROP DATABASE IF EXISTS bench_cdc_src; DROP DATABASE IF EXISTS bench_cdc_dst; DROP DATABASE IF EXISTS ferry;
       CREATE DATABASE bench_cdc_src; CREATE DATABASE bench_cdc_dst;
       CREATE TABLE bench_cdc_src.load_done (id int PRIMARY KEY)"
SB=(sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$FERRY_MYSQL_PORT"
    --mysql-user=root --mysql-db=bench_cdc_src --tables=1 --table-size="$SIZE")
"${SB[@]}" prepare >/dev/null
DIR=$(mktemp -d); TASK=$DIR/bench.yaml
cat > "$TASK" <<YAML
name: bench-cdc-my
kind: migration
mode: full+incremental
source: $BASE/bench_cdc_src
target: $BASE/bench_cdc_dst
objects:
  rename:
    bench_cdc_src: bench_cdc_dst
YAML
PORT=$((20000 + RANDOM % 20000))
target/release/ferry run "$TASK" --quiet --metrics-addr 127.0.0.1:$PORT >"$DIR/ferry.log" 2>&1 &
FERRY=$!
until my -e "SELECT phase FROM ferry.tasks WHERE task = 'bench-cdc-my'" 2>/dev/null | grep -q incremental; do
  kill -0 $FERRY 2>/dev/null || { cat "$DIR/ferry.log"; exit 1; }; sleep 0.2
done
metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"[{]" {print $2}'; }
ROWS0=$(metric ferry_applied_rows_total); T0=$(date +%s.%N)
"${SB[@]}" --threads="$THREADS" --time="$SECS" --report-interval=0 run >"$DIR/sysbench.out" 2>&1 &
LOAD=$!
: >"$DIR/lag"
while kill -0 $LOAD 2>/dev/null; do metric ferry_lag_seconds >>"$DIR/lag"; sleep 1; done
TPS=$(awk '/transactions:/ {gsub(/[(]/, "", $3); print $3; exit}' "$DIR/sysbench.out")
TXNS=$(awk '/transactions:/ {print $2; exit}' "$DIR/sysbench.out")
TLOAD=$(date +%s.%N)
# caught up: a row committed after the load reached the target (apply keeps commit order)
my -e "INSERT INTO bench_cdc_src.load_done VALUES (1)"
until [ "$(my -e "SELECT count(*) FROM bench_cdc_dst.load_done")" = 1 ]; do sleep 0.2; done
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
  echo "## CDC apply under sysbench oltp_write_only (MariaDB → MariaDB), $(date -u +%F)"
  echo
  echo "Command: \`bench/cdc-sysbench.sh $SECS $THREADS $SIZE\` (sbtest1 with $SIZE rows, $THREADS threads, ${SECS}s; source and target on one server)"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| source commit rate (sysbench tps) | $TPS |"
  echo "| source transactions | $TXNS |"
  echo "| rows applied by Ferry | $ROWS (4 row changes per sysbench transaction) |"
  printf "| Ferry applied rate, load start → caught up | %.0f rows/s, %.0f txn/s |\n" "$(echo "$ROWS / $APPLY_S" | bc -l)" "$(echo "$TXNS / $APPLY_S" | bc -l)"
  printf "| catch-up after the load stopped | %.1f s |\n" "$CATCH"
  echo "| lag p50 / p99 during the load (1 s samples) | ${P50} s / ${P99} s |"
  echo "| Ferry peak RSS | $((RSS / 1024)) MB |"
  echo "| compare after catch-up | equal |"
} | tee bench/results/cdc-sysbench-latest.md
rm -rf "$DIR"
