#!/usr/bin/env bash
# One source transaction of N rows (insert N, then update all N in the same
# transaction) through the change stream, for MariaDB → MariaDB and PostgreSQL →
# PostgreSQL: time from COMMIT on the source to the last row on the target, Ferry's
# peak RSS, compare. Results: bench/results/cdc-big-txn-latest.md
#
#   bench/cdc-big-txn.sh [rows=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build --release -q --bin ferry --bin ferry-sandbox
eval "$(target/release/ferry-sandbox)"
DIR=$(mktemp -d)
my() { mariadb -h 127.0.0.1 -P "$FERRY_MYSQL_PORT" -u root -N -B "$@"; }
pg() { psql -qAtX -v ON_ERROR_STOP=1 --no-psqlrc -c "SET client_min_messages = warning" "${FERRY_PG_URL%/*}/$1" -c "$2"; }
out=()

run() { # engine src_url dst_url exec_src count_dst
  local engine=$1 src=$2 dst=$3 task=$DIR/$1.yaml
  printf 'name: bench-big-%s\nkind: migration\nmode: full+incremental\nsource: %s\ntarget: %s\n' "$engine" "$src" "$dst" >"$task"
  [ "$engine" = mariadb ] && printf 'objects:\n  rename:\n    big_src: big_dst\n' >>"$task"
  target/release/ferry run "$task" --quiet --exit-when-caught-up >"$DIR/$engine.log" 2>&1 || { cat "$DIR/$engine.log"; exit 1; }
  target/release/ferry run "$task" --quiet >>"$DIR/$engine.log" 2>&1 &
  local ferry=$!
  sleep 2
  local t0 t1
  "$4" "$N"
  t0=$(date +%s.%N)
  until [ "$("$5")" = "$N" ]; do kill -0 $ferry || { cat "$DIR/$engine.log"; exit 1; }; sleep 0.5; done
  t1=$(date +%s.%N)
  local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$ferry/status)
  kill -TERM $ferry; wait $ferry || true
  target/release/ferry compare "$task" >"$DIR/cmp" || { cat "$DIR/cmp"; exit 1; }
  target/release/ferry end "$task" >/dev/null
  out+=("| $engine → $engine | $N | $(printf %.1f "$(echo "$t1 - $t0" | bc -l)") s | $((rss / 1024)) MB | equal |")
}

my -e "DROP DATABASE IF EXISTS big_src; DROP DATABASE IF EXISTS big_dst; CREATE DATABASE big_src; CREATE DATABASE big_dst;
       CREATE TABLE big_src.t (id bigint PRIMARY KEY, v varchar(40), n int)"
my_txn() { my big_src -e "START TRANSACTION;
  INSERT INTO big_src.t SELECT seq, concat('row ', seq), 1 FROM seq_1_to_$1;
  UPDATE big_src.t SET n = 2; COMMIT"; }
my_count() { my -e "SELECT count(*) FROM big_dst.t WHERE n = 2"; }
run mariadb "${FERRY_MYSQL_URL%/}/big_src" "${FERRY_MYSQL_URL%/}/big_dst" my_txn my_count

pg postgres "DROP DATABASE IF EXISTS big_src" >/dev/null; pg postgres "DROP DATABASE IF EXISTS big_dst" >/dev/null
pg postgres "CREATE DATABASE big_src" >/dev/null; pg postgres "CREATE DATABASE big_dst" >/dev/null
pg postgres "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'ferry_bench_big_postgres' AND NOT active" >/dev/null
pg big_src "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(40), n int)" >/dev/null
pg_txn() { pg big_src "BEGIN; INSERT INTO t SELECT g, 'row ' || g, 1 FROM generate_series(1, $1) g; UPDATE t SET n = 2; COMMIT" >/dev/null; }
pg_count() { pg big_dst "SELECT count(*) FROM public.t WHERE n = 2"; }
run postgres "${FERRY_PG_URL%/*}/big_src" "${FERRY_PG_URL%/*}/big_dst" pg_txn pg_count

mkdir -p bench/results
{
  echo "## One big source transaction through the change stream, $(date -u +%F)"
  echo
  echo "Command: \`bench/cdc-big-txn.sh $N\` (insert $N rows, then update all of them, in one transaction: $((2 * N)) row changes)"
  echo
  echo "| pair | rows | source COMMIT → all rows on the target | Ferry peak RSS | compare |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${out[@]}"
} | tee bench/results/cdc-big-txn-latest.md
rm -rf "$DIR"
