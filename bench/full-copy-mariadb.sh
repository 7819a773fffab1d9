#!/usr/bin/env bash
# MariaDB → MariaDB full copy against the target server's own bulk-load speed, in the
# same run, on the same throwaway server: the sysbench table `sbtest1` (id PK, `k`
# with a secondary index, c char(120), pad char(60)) of $ROWS rows, copied
#
#  - by `LOAD DATA LOCAL INFILE` of the table's rows (exported to a file beforehand,
#    not timed) into the table with its primary key, then `ALTER TABLE … ADD KEY` —
#    what the server itself takes for the data and the index built after (the
#    baseline), once as the server is configured (binary log on) and once with
#    `SET sql_log_bin = 0`;
#  - by `ferry run` (`mode: full`, `--jobs $JOBS`), with the task's defaults and with
#    `target_binlog: off`;
#  - by mydumper + myloader when they are installed (not installed by this script).
#
# Every copy's row count is checked before its time counts. Medians of $REPS runs;
# the report is printed and written to bench/results/full-copy-mariadb-latest.md.
# The servers are the project's testkit servers (`ferry-sandbox`) in a folder of
# their own, stopped and deleted at the end.
#
#   bench/full-copy-mariadb.sh                   # 1,000,000 rows, 3 repetitions
#   ROWS=200000 REPS=1 bench/full-copy-mariadb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
JOBS=${JOBS:-2}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked -q -p ferry -p ferry-testkit
WORK=$(mktemp -d); chmod 755 "$WORK"  # the servers run as their own users
OWN_SERVERS=0
if [ -z "${FERRY_TESTKIT_DIR:-}" ]; then
  export FERRY_TESTKIT_DIR="$WORK/servers"
  OWN_SERVERS=1
fi
cleanup() {
  [ "$OWN_SERVERS" = 1 ] && target/release/ferry-sandbox stop --clean >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
eval "$(target/release/ferry-sandbox)"
FERRY=target/release/ferry
MY="mariadb --default-character-set=utf8mb4 -h127.0.0.1 -P$FERRY_MYSQL_PORT -uroot"
MY_URL="mysql://root@127.0.0.1:$FERRY_MYSQL_PORT"
my_fresh() { $MY -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4"; }

# timed NAME CMD...: wall seconds and peak RSS (MB) of CMD, appended to $WORK/NAME
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
  read -r secs kb < "$WORK/t"
  echo "$secs $((kb / 1024))" >> "$WORK/$name"
}
verify() {
  local n
  n=$($MY -N -e "SELECT COUNT(*) FROM bench_dst.sbtest1")
  [ "$n" = "$ROWS" ] || { echo "copy holds $n rows, expected $ROWS" >&2; exit 1; }
  n=$($MY -N -e "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'bench_dst' AND TABLE_NAME = 'sbtest1' AND INDEX_NAME = 'k_1'")
  [ "$n" = 1 ] || { echo "the copy lacks index k_1" >&2; exit 1; }
}
median() { sort -n "$WORK/$1" | awk '{a[NR]=$1; m[NR]=$2} END {i=int((NR+1)/2); print a[i], m[i]}'; }

echo "preparing the $ROWS-row table…" >&2
my_fresh bench_src
$MY bench_src -e "CREATE TABLE sbtest1 (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, k int NOT NULL DEFAULT 0,
  c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB;
  INSERT INTO sbtest1 (k, c, pad) SELECT FLOOR(RAND(seq) * $ROWS),
  CONCAT_WS('-', LPAD(seq, 11, '0'), LPAD(seq * 7, 11, '0'), LPAD(seq * 13, 11, '0'), LPAD(seq * 17, 11, '0'), LPAD(seq * 19, 11, '0'), LPAD(seq * 23, 11, '0'), LPAD(seq * 29, 11, '0'), LPAD(seq * 31, 11, '0'), LPAD(seq * 37, 11, '0'), LPAD(seq * 41, 11, '0')),
  CONCAT_WS('-', LPAD(seq, 11, '0'), LPAD(seq * 3, 11, '0'), LPAD(seq * 5, 11, '0'), LPAD(seq * 11, 11, '0'), LPAD(seq * 43, 11, '0'))
  FROM seq_1_to_$ROWS; ANALYZE TABLE sbtest1;" >/dev/null
# the baseline's input: the rows as LOAD DATA's default text format (tab-separated,
# backslash escapes — what `mariadb --batch` prints), exported once, not timed
$MY -N -B bench_src -e "SELECT id, k, c, pad FROM sbtest1 ORDER BY id" > "$WORK/sbtest1.tsv"
BARE="CREATE TABLE sbtest1 (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, k int NOT NULL DEFAULT 0,
  c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '') ENGINE=InnoDB"
LOAD="LOAD DATA LOCAL INFILE '$WORK/sbtest1.tsv' INTO TABLE sbtest1 CHARACTER SET utf8mb4 (id, k, c, pad);
  ALTER TABLE sbtest1 ADD KEY k_1 (k)"

task() { # name [extra line]
  cat > "$WORK/$1.yaml" <<YAML
name: $1-$$
kind: migration
mode: full
source: $MY_URL/bench_src
target: $MY_URL/bench_dst
objects:
  include: ["bench_src.sbtest1"]
existing_data: drop
${2:-}
YAML
  echo "$WORK/$1.yaml"
}

for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep/$REPS" >&2
  my_fresh bench_dst; $MY bench_dst -e "$BARE"
  timed load $MY --local-infile=1 bench_dst -e "$LOAD"
  verify
  my_fresh bench_dst; $MY bench_dst -e "$BARE"
  timed load_nobinlog $MY --local-infile=1 bench_dst -e "SET SESSION sql_log_bin = 0; $LOAD"
  verify
  my_fresh bench_dst
  timed ferry $FERRY run --quiet --jobs "$JOBS" "$(task mymy$rep)"
  verify
  my_fresh bench_dst
  timed ferry_nobinlog $FERRY run --quiet --jobs "$JOBS" "$(task mymynb$rep 'target_binlog: off')"
  verify
  if command -v myloader >/dev/null && command -v mydumper >/dev/null; then
    my_fresh bench_dst; rm -rf "$WORK/dump"
    timed mydumper bash -c "mydumper -h 127.0.0.1 -P $FERRY_MYSQL_PORT -u root -B bench_src -T sbtest1 --rows 100000 -t $JOBS -o $WORK/dump && myloader -h 127.0.0.1 -P $FERRY_MYSQL_PORT -u root -B bench_dst -d $WORK/dump -t $JOBS"
    verify
  fi
done

row() { # label file
  read -r s m <<< "$(median "$2")"
  read -r b _ <<< "$(median load)"
  printf "| %s | %.2f | %.0f | %s | %.2f× |\n" "$1" "$s" "$(echo "$ROWS / $s" | bc -l)" "$m" "$(echo "$b / $s" | bc -l)"
}
{
  echo "### MariaDB → MariaDB full copy against LOAD DATA, $ROWS rows of sbtest1, --jobs $JOBS, median of $REPS ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "Command: \`ROWS=$ROWS REPS=$REPS JOBS=$JOBS bench/full-copy-mariadb.sh\`; one MariaDB server (the testkit's: row binary log on, \`innodb_flush_log_at_trx_commit=2\`) holds source and target."
  echo
  echo "| path | seconds | rows/s | peak RSS MB | rate ÷ LOAD DATA's |"
  echo "|---|---:|---:|---:|---:|"
  row "LOAD DATA LOCAL INFILE + ADD KEY (baseline; file exported beforehand)" load
  row "LOAD DATA LOCAL INFILE + ADD KEY, sql_log_bin = 0" load_nobinlog
  row "Ferry (reads the source too)" ferry
  row "Ferry, target_binlog: off" ferry_nobinlog
  [ -s "$WORK/mydumper" ] && row "mydumper + myloader" mydumper
  true
} | tee bench/results/full-copy-mariadb-latest.md
