#!/usr/bin/env bash
# Full-copy benchmark: Ferry against the raw pipe and the peer tools, on the same
# throwaway servers, in the same run, medians of $REPS runs. Prints a markdown report
# (also written to bench/results/full-copy-latest.md).
#
#   bench/full-copy.sh                 # 1,000,000 rows, 3 repetitions
#   ROWS=200000 REPS=1 bench/full-copy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
JOBS=${JOBS:-2}
need=()
for t in pgcopydb pgloader mydumper sysbench; do command -v $t >/dev/null || need+=($t); done
command -v /usr/bin/time >/dev/null || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
cargo build --release --locked -q -p ferry -p ferry-testkit
eval "$(target/release/ferry-sandbox)"
FERRY=target/release/ferry
PGH="-h 127.0.0.1 -p $FERRY_PG_PORT -U postgres"
PSQL="psql -X -q -v ON_ERROR_STOP=1 $PGH"
MY="mariadb --default-character-set=utf8mb4 -h127.0.0.1 -P$FERRY_MYSQL_PORT -uroot"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

pg_fresh() { $PSQL -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; }
my_fresh() { $MY -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4"; }

# timed NAME CMD...: wall seconds and peak RSS (MB) of CMD, appended to $WORK/NAME
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
  read -r secs kb < "$WORK/t"
  echo "$secs $((kb / 1024))" >> "$WORK/$name"
}
# verify ENGINE TABLE: the copy really holds $ROWS rows (a peer that silently copied
# nothing must not look fast)
verify() {
  local n
  if [ "$1" = pg ]; then n=$($PSQL -d bench_dst -At -c "SELECT count(*) FROM $2"); else n=$($MY -N -e "SELECT COUNT(*) FROM bench_dst.$2"); fi
  [ "$n" = "$ROWS" ] || { echo "copy of $2 holds $n rows, expected $ROWS" >&2; exit 1; }
}
median() { sort -n "$WORK/$1" | awk '{a[NR]=$1; m[NR]=$2} END {i=int((NR+1)/2); print a[i], m[i]}'; }

echo "preparing $ROWS-row tables…" >&2
pg_fresh bench_src
pgbench -i -q -s $((ROWS / 100000)) $PGH bench_src >/dev/null 2>&1
$PSQL -d bench_src -c "CREATE TABLE mixed (id bigint PRIMARY KEY, i int, n numeric(12,2), f double precision,
  t text, vc varchar(50), ts timestamptz, d date, b boolean, j jsonb);
  INSERT INTO mixed SELECT g, g % 1000, g / 7.0, g / 3.0, md5(g::text) || ' text', 'v' || g,
  '2024-01-01'::timestamptz + g * interval '1 second', '2000-01-01'::date + g % 9000, g % 2 = 0,
  jsonb_build_object('k', g, 's', 'x') FROM generate_series(1, $ROWS) g; ANALYZE;"
my_fresh bench_src
$MY bench_src -e "CREATE TABLE sbtest1 (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, k int NOT NULL DEFAULT 0,
  c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB;
  INSERT INTO sbtest1 (k, c, pad) SELECT FLOOR(RAND(seq) * $ROWS),
  CONCAT_WS('-', LPAD(seq, 11, '0'), LPAD(seq * 7, 11, '0'), LPAD(seq * 13, 11, '0'), LPAD(seq * 17, 11, '0'), LPAD(seq * 19, 11, '0'), LPAD(seq * 23, 11, '0'), LPAD(seq * 29, 11, '0'), LPAD(seq * 31, 11, '0'), LPAD(seq * 37, 11, '0'), LPAD(seq * 41, 11, '0')),
  CONCAT_WS('-', LPAD(seq, 11, '0'), LPAD(seq * 3, 11, '0'), LPAD(seq * 5, 11, '0'), LPAD(seq * 11, 11, '0'), LPAD(seq * 43, 11, '0'))
  FROM seq_1_to_$ROWS;
  CREATE TABLE mixed (id bigint PRIMARY KEY, i int, n decimal(12,2), f double, t text, vc varchar(50),
  ts datetime(6), d date, b tinyint(1), j json);
  INSERT INTO mixed SELECT seq, seq % 1000, seq / 7, seq / 3, CONCAT(MD5(seq), ' text'), CONCAT('v', seq),
  TIMESTAMP('2024-01-01') + INTERVAL seq SECOND, DATE('2000-01-01') + INTERVAL (seq % 9000) DAY, seq % 2,
  JSON_OBJECT('k', seq, 's', 'x') FROM seq_1_to_$ROWS; ANALYZE TABLE sbtest1, mixed;" >/dev/null

task() { # name source target include
  cat > "$WORK/$1.yaml" <<YAML
name: $1-$$
kind: migration
mode: full
source: $2
target: $3
objects:
  include: ["$4"]
YAML
  echo "$WORK/$1.yaml"
}
PG_URL="postgres://postgres@127.0.0.1:$FERRY_PG_PORT"
MY_URL="mysql://root@127.0.0.1:$FERRY_MYSQL_PORT"

for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep/$REPS" >&2
  # PostgreSQL → PostgreSQL, pgbench_accounts
  pg_fresh bench_dst
  $PSQL -d bench_dst -c "CREATE TABLE pgbench_accounts (aid integer NOT NULL, bid integer, abalance integer, filler character(84))"
  timed pipe_pg bash -c "psql -X $PGH -d bench_src -c 'COPY pgbench_accounts TO STDOUT (FORMAT binary)' | psql -X $PGH -d bench_dst -c 'COPY pgbench_accounts FROM STDIN (FORMAT binary)' && psql -X $PGH -d bench_dst -c 'ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)'"
  verify pg pgbench_accounts
  pg_fresh bench_dst
  timed ferry_pg $FERRY run --quiet --jobs "$JOBS" "$(task pgpg$rep "$PG_URL/bench_src" "$PG_URL/bench_dst" 'public.pgbench_accounts')"
  verify pg public.pgbench_accounts
  pg_fresh bench_dst
  printf '[include-only-table]\npublic.pgbench_accounts\n' > "$WORK/filters.ini"
  timed pgcopydb_pg pgcopydb clone --source "$PG_URL/bench_src" --target "$PG_URL/bench_dst" --filters "$WORK/filters.ini" \
    --table-jobs "$JOBS" --index-jobs "$JOBS" --no-owner --no-acl --skip-extensions --dir "$WORK/pgcopydb$rep" --not-consistent
  verify pg public.pgbench_accounts
  # PostgreSQL → PostgreSQL, mixed types
  pg_fresh bench_dst
  timed ferry_pg_mixed $FERRY run --quiet --jobs "$JOBS" "$(task pgmixed$rep "$PG_URL/bench_src" "$PG_URL/bench_dst" 'public.mixed')"
  verify pg public.mixed

  # MariaDB → MariaDB, sbtest1
  my_fresh bench_dst
  timed dump_my bash -c "mariadb-dump --single-transaction -h127.0.0.1 -P$FERRY_MYSQL_PORT -uroot bench_src sbtest1 | $MY bench_dst"
  verify my sbtest1
  my_fresh bench_dst
  timed ferry_my $FERRY run --quiet --jobs "$JOBS" "$(task mymy$rep "$MY_URL/bench_src" "$MY_URL/bench_dst" 'bench_src.sbtest1')"
  verify my sbtest1
  my_fresh bench_dst; rm -rf "$WORK/dump"
  timed mydumper_my bash -c "mydumper -h 127.0.0.1 -P $FERRY_MYSQL_PORT -u root -B bench_src -T sbtest1 --rows 100000 -t $JOBS -o $WORK/dump && myloader -h 127.0.0.1 -P $FERRY_MYSQL_PORT -u root -B bench_dst -d $WORK/dump -t $JOBS"
  verify my sbtest1

  # MariaDB → PostgreSQL, sbtest1 and mixed
  pg_fresh bench_dst
  timed ferry_mypg $FERRY run --quiet --jobs "$JOBS" "$(task mypg$rep "$MY_URL/bench_src" "$PG_URL/bench_dst" 'bench_src.sbtest1')"
  verify pg bench_src.sbtest1
  pg_fresh bench_dst
  timed ferry_mypg_mixed $FERRY run --quiet --jobs "$JOBS" "$(task mypgmixed$rep "$MY_URL/bench_src" "$PG_URL/bench_dst" 'bench_src.mixed')"
  verify pg bench_src.mixed
  pg_fresh bench_dst
  printf "LOAD DATABASE FROM mysql://root@127.0.0.1:%s/bench_src INTO postgresql://postgres@127.0.0.1:%s/bench_dst\n INCLUDING ONLY TABLE NAMES MATCHING 'sbtest1'\n WITH workers = %s, concurrency = 1;\n" \
    "$FERRY_MYSQL_PORT" "$FERRY_PG_PORT" "$((JOBS * 2))" > "$WORK/pgloader.load"
  timed pgloader_mypg pgloader --quiet "$WORK/pgloader.load"
  verify pg bench_src.sbtest1
done

row() { # label file baseline-file
  read -r s m <<< "$(median "$2")"
  read -r b _ <<< "$(median "$3")"
  printf "| %s | %.2f | %.0f | %s | %.2f× |\n" "$1" "$s" "$(echo "$ROWS / $s" | bc -l)" "$m" "$(echo "$s / $b" | bc -l)"
}
{
  echo "### Full copy, $ROWS rows, --jobs $JOBS, median of $REPS ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "| path | seconds | rows/s | peak RSS MB | time ÷ baseline |"
  echo "|---|---:|---:|---:|---:|"
  echo "| **PG→PG pgbench_accounts** (baseline: binary COPY pipe + ADD PRIMARY KEY) | | | | |"
  row "raw pipe (baseline)" pipe_pg pipe_pg
  row "Ferry" ferry_pg pipe_pg
  row "pgcopydb clone" pgcopydb_pg pipe_pg
  row "Ferry, 10-column mixed table" ferry_pg_mixed pipe_pg
  echo "| **MariaDB→MariaDB sbtest1** (baseline: mariadb-dump \| mariadb) | | | | |"
  row "mariadb-dump --single-transaction \| mariadb (baseline)" dump_my dump_my
  row "Ferry" ferry_my dump_my
  row "mydumper + myloader" mydumper_my dump_my
  echo "| **MariaDB→PostgreSQL sbtest1** (baseline: pgloader) | | | | |"
  row "pgloader (baseline)" pgloader_mypg pgloader_mypg
  row "Ferry" ferry_mypg pgloader_mypg
  row "Ferry, 10-column mixed table" ferry_mypg_mixed pgloader_mypg
} | tee bench/results/full-copy-latest.md
