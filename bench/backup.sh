#!/usr/bin/env bash
# Backup and restore benchmark (issue 13): Ferry's direct `ferry backup now` and
# `ferry restore create` against pg_dump/pg_restore and mydumper/myloader, on the same
# throwaway servers, in the same run, medians of $REPS runs. Prints a markdown report
# (also written to bench/results/backup-latest.md).
#
#   bench/backup.sh                    # 1,000,000 rows, 3 repetitions, S3 row on
#   ROWS=200000 REPS=1 S3=0 bench/backup.sh
#
# Data: `pgbench -i -s ROWS/100000` (pgbench_accounts = ROWS rows, plus the three
# small pgbench tables) and `sysbench oltp_read_write prepare --tables=1
# --table-size=ROWS` (sbtest1). Every tool backs up the whole source database and
# restores into a new empty one; every restore is checked (row count) before its
# time counts. Each repetition starts from an empty repository / dump directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
JOBS=${JOBS:-2}
S3=${S3:-1}
need=()
command -v mydumper >/dev/null || need+=(mydumper)
command -v sysbench >/dev/null || need+=(sysbench)
command -v pgbench >/dev/null || need+=(postgresql-contrib)
command -v /usr/bin/time >/dev/null || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
BIN=${BIN:-target/release}   # BIN=target/debug (no build): a quick check of the script
[ "$BIN" = target/release ] && cargo build --release --locked -q -p ferry -p ferry-testkit
FERRY=$PWD/$BIN/ferry
WORK=$(mktemp -d /tmp/ferry-bench-backup-XXXXXX)
chmod 755 "$WORK"
# Throwaway servers of this run only (stopped and deleted at the end).
export FERRY_TESTKIT_DIR=$WORK/servers
S3PID=""
cleanup() {
  [ -n "$S3PID" ] && kill "$S3PID" 2>/dev/null || true
  "$BIN"/ferry-sandbox stop --clean >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
eval "$("$BIN"/ferry-sandbox)"
PGH="-h 127.0.0.1 -p $FERRY_PG_PORT -U postgres"
PSQL="psql -X -q -v ON_ERROR_STOP=1 $PGH"
MY="mariadb --default-character-set=utf8mb4 -h127.0.0.1 -P$FERRY_MYSQL_PORT -uroot"
PG_URL="postgres://postgres@127.0.0.1:$FERRY_PG_PORT"
MY_URL="mysql://root@127.0.0.1:$FERRY_MYSQL_PORT"
R=$WORK/res; mkdir -p "$R"

pg_fresh() { $PSQL -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; }
my_fresh() { $MY -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4"; }
bytes() { du -sb "$1" | cut -f1; }

# timed NAME DIR CMD...: wall seconds, peak RSS (MB) and, when DIR is not "-", the
# bytes under DIR afterwards, appended to $R/NAME. A failing peer stops the run; a
# failing Ferry command is recorded in $R/NAME.err (shown in the report) and the run
# goes on, so the peers' numbers survive an unfinished Ferry.
timed() {
  local name=$1 dir=$2; shift 2
  if ! /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2>&1; then
    case $name in
      ferry*) { echo "\$ ${*/#$PWD\//}"; tail -n 5 "$WORK/out"; } > "$R/$name.err"; return 1 ;;
      *) cat "$WORK/out"; exit 1 ;;
    esac
  fi
  read -r secs kb < <(tail -n 1 "$WORK/t")
  local b=0; [ "$dir" != - ] && b=$(bytes "$dir")
  echo "$secs $((kb / 1024)) $b" >> "$R/$name"
}
# verify ENGINE DB TABLE NAME: the restore really holds $ROWS rows (a tool that
# silently restored nothing must not look fast); a Ferry miss is recorded, not fatal
verify() {
  local n
  if [ "$1" = pg ]; then n=$($PSQL -d "$2" -At -c "SELECT count(*) FROM $3" 2>&1 || true)
  else n=$($MY -N -e "SELECT COUNT(*) FROM $2.$3" 2>&1 || true); fi
  [ "$n" = "$ROWS" ] && return 0
  echo "restore of $3 into $2 holds '$n' rows, expected $ROWS" > "$R/$4.err"
  case $4 in ferry*) sed -i '$d' "$R/$4" ;; *) cat "$R/$4.err" >&2; exit 1 ;; esac
}
# the set id the last `ferry backup now` wrote (its first line: `set ID`)
set_id() { awk '$1 == "set" {print $2; exit}' "$WORK/out"; }

echo "preparing $ROWS-row tables…" >&2
pg_fresh bench_src
pgbench -i -q -s $((ROWS / 100000)) $PGH bench_src >/dev/null 2>&1
$PSQL -d bench_src -c "VACUUM ANALYZE"
my_fresh bench_src
sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$FERRY_MYSQL_PORT" \
  --mysql-user=root --mysql-db=bench_src --tables=1 --table-size="$ROWS" prepare >/dev/null
$MY bench_src -e "ANALYZE TABLE sbtest1" >/dev/null

if [ "$S3" = 1 ]; then
  S3PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$S3PORT" > "$WORK/moto.log" 2>&1 &
  S3PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$S3PORT/" && break; sleep 0.2; done
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
  curl -s -X PUT "http://127.0.0.1:$S3PORT/ferry-bench" > /dev/null
fi
s3_bytes() { # bytes under s3://ferry-bench/PREFIX on the test server
  python3 - "$S3PORT" "$1" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="ferry-bench", Prefix=sys.argv[2]):
    n += sum(o["Size"] for o in page.get("Contents", []))
print(n)
PY
}

for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep/$REPS" >&2
  # ---- PostgreSQL ----
  D=$WORK/pgdump; rm -rf "$D"
  timed pgdump "$D" pg_dump $PGH -Fd -j "$JOBS" -f "$D" bench_src
  pg_fresh bench_dst
  timed pgrestore - pg_restore $PGH -j "$JOBS" -d bench_dst "$D"
  verify pg bench_dst pgbench_accounts pgrestore
  rm -rf "$D"

  REPO=$WORK/repo-pg; rm -rf "$REPO"; mkdir -p "$REPO"
  if timed ferry_pg_backup "$REPO" "$FERRY" backup now bench-pg --source "$PG_URL/bench_src" \
      --storage "file://$REPO" --jobs "$JOBS" -q; then
    SET=$(set_id)
    timed ferry_pg_verify - "$FERRY" backup verify "$SET" --storage "file://$REPO" || true
    pg_fresh bench_dst
    timed ferry_pg_restore - "$FERRY" restore create --from "$SET" --target "$PG_URL/bench_dst" \
      --storage "file://$REPO" --jobs "$JOBS" -q \
      && verify pg bench_dst public.pgbench_accounts ferry_pg_restore
  fi
  rm -rf "$REPO"
  if [ "$S3" = 1 ]; then
    if timed ferry_pg_backup_s3 - "$FERRY" backup now bench-pg --source "$PG_URL/bench_src" \
        --storage "s3://ferry-bench/pg$rep?endpoint=http://127.0.0.1:$S3PORT&region=us-east-1" --jobs "$JOBS" -q; then
      sed -i "\$s/ 0\$/ $(s3_bytes "pg$rep")/" "$R/ferry_pg_backup_s3"
    fi
  fi

  # ---- MariaDB ----
  D=$WORK/mydump; rm -rf "$D"
  timed mydumper "$D" mydumper -h 127.0.0.1 -P "$FERRY_MYSQL_PORT" -u root -B bench_src -r 100000 -t "$JOBS" -o "$D"
  my_fresh bench_dst
  timed myloader - myloader -h 127.0.0.1 -P "$FERRY_MYSQL_PORT" -u root -B bench_dst -d "$D" -t "$JOBS"
  verify my bench_dst sbtest1 myloader
  rm -rf "$D"
  timed mydumper_c "$D" mydumper -h 127.0.0.1 -P "$FERRY_MYSQL_PORT" -u root -B bench_src -r 100000 -t "$JOBS" -c -o "$D"
  rm -rf "$D"

  REPO=$WORK/repo-my; rm -rf "$REPO"; mkdir -p "$REPO"
  if timed ferry_my_backup "$REPO" "$FERRY" backup now bench-my --source "$MY_URL/bench_src" \
      --storage "file://$REPO" --jobs "$JOBS" -q; then
    SET=$(set_id)
    timed ferry_my_verify - "$FERRY" backup verify "$SET" --storage "file://$REPO" || true
    my_fresh bench_dst
    timed ferry_my_restore - "$FERRY" restore create --from "$SET" --target "$MY_URL/bench_dst" \
      --storage "file://$REPO" --jobs "$JOBS" -q \
      && verify my bench_dst sbtest1 ferry_my_restore
  fi
  rm -rf "$REPO"
  if [ "$S3" = 1 ]; then
    if timed ferry_my_backup_s3 - "$FERRY" backup now bench-my --source "$MY_URL/bench_src" \
        --storage "s3://ferry-bench/my$rep?endpoint=http://127.0.0.1:$S3PORT&region=us-east-1" --jobs "$JOBS" -q; then
      sed -i "\$s/ 0\$/ $(s3_bytes "my$rep")/" "$R/ferry_my_backup_s3"
    fi
  fi
done

# median NAME: the median line (by seconds) of $R/NAME
median() { sort -n "$R/$1" | awk '{l[NR]=$0} END {print l[int((NR+1)/2)]}'; }
row() { # label name baseline-name
  if [ ! -s "$R/$2" ]; then
    if [ -s "$R/$2.err" ]; then
      printf "| %s | failed: %s | | | | | |\n" "$1" "$(tr '\n|' ' /' < "$R/$2.err" | cut -c1-400)"
    else
      printf "| %s | not run (the backup failed) | | | | | |\n" "$1"
    fi
    return
  fi
  read -r s m b <<< "$(median "$2")"
  read -r bs _ bb <<< "$(median "$3")"
  local mb="" br="" n
  n=$(wc -l < "$R/$2")
  if [ "$b" -gt 0 ]; then mb=$(printf "%.1f" "$(echo "$b / 1048576" | bc -l)"); fi
  if [ "$b" -gt 0 ] && [ "$bb" -gt 0 ]; then br=$(printf "%.2f×" "$(echo "$b / $bb" | bc -l)"); fi
  printf "| %s | %.2f | %.0f | %s | %s | %.2f× | %s |%s\n" "$1" "$s" "$(echo "$ROWS / $s" | bc -l)" "$mb" "$m" \
    "$(echo "$s / $bs" | bc -l)" "$br" "$([ "$n" -lt "$REPS" ] && echo " ($n of $REPS runs)")"
}
{
  echo "### Backup and restore, $ROWS rows, $JOBS jobs, median of $REPS ($(date -u +%Y-%m-%d), $(nproc) cores, Ferry $(git rev-parse --short HEAD))"
  echo
  echo "| path | seconds | rows/s | stored MB | peak RSS MB | time ÷ baseline | bytes ÷ baseline |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| **PostgreSQL backup, pgbench -s $((ROWS / 100000))** (baseline: pg_dump -Fd -j $JOBS) | | | | | | |"
  row "pg_dump -Fd -j $JOBS (gzip, its default) (baseline)" pgdump pgdump
  row "Ferry backup now, file://" ferry_pg_backup pgdump
  [ "$S3" = 1 ] && row "Ferry backup now, s3:// (moto_server on 127.0.0.1)" ferry_pg_backup_s3 pgdump
  row "Ferry backup verify (re-reads the set)" ferry_pg_verify pgdump
  echo "| **PostgreSQL restore into an empty database** (baseline: pg_restore -j $JOBS) | | | | | | |"
  row "pg_restore -j $JOBS (baseline)" pgrestore pgrestore
  row "Ferry restore create, file://" ferry_pg_restore pgrestore
  echo "| **MariaDB backup, sysbench sbtest1** (baseline: mydumper -t $JOBS -r 100000) | | | | | | |"
  row "mydumper -t $JOBS -r 100000 (uncompressed, its default) (baseline)" mydumper mydumper
  row "mydumper -t $JOBS -r 100000 -c (gzip)" mydumper_c mydumper
  row "Ferry backup now, file://" ferry_my_backup mydumper
  [ "$S3" = 1 ] && row "Ferry backup now, s3:// (moto_server on 127.0.0.1)" ferry_my_backup_s3 mydumper
  row "Ferry backup verify (re-reads the set)" ferry_my_verify mydumper
  echo "| **MariaDB restore into an empty database** (baseline: myloader -t $JOBS) | | | | | | |"
  row "myloader -t $JOBS, from the uncompressed dump (baseline)" myloader myloader
  row "Ferry restore create, file://" ferry_my_restore myloader
} | tee bench/results/backup-latest.md
