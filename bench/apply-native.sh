#!/usr/bin/env bash
# Ferry's change apply side by side with the databases' own replication (issue 15).
#
# Starts its own throwaway servers on this machine (all with the settings of the
# project's testkit: fsync off / flush-at-commit 2, 256 MB buffers):
#   PostgreSQL: source S (wal_level=logical) and target T. T holds one database fed by
#     PostgreSQL's native publication + subscription ("native") and one per Ferry
#     variant (`ferry run`, --apply-jobs 1 / default / 4).
#   MariaDB: source M (ROW binlog, GTID), native replicas R0 (slave_parallel_threads=0)
#     and R4 (slave_parallel_threads=4), and Ferry's target F (one database per
#     variant). The targets run without a binlog of their own (a replica without
#     log_slave_updates writes none either).
# Workloads are applied from a backlog: every consumer is stopped (subscription
# DISABLEd, STOP SLAVE, Ferry not running), the source runs the workload and then
# commits a marker row; then each consumer in turn is started (ENABLE / START SLAVE /
# `ferry run --exit-when-caught-up`) and timed from that instant until the marker is on
# its target (all consumers commit in source order, so everything before it is there
# too); then the workload's tables are compared with the source (count + sums).
#   W1 one UPDATE transaction of all rows of a W1_ROWS-row table
#   W2 W2_TXNS one-row INSERT transactions
#   W3 pgbench (TPC-B-like) / sysbench oltp_write_only, W3_TXNS transactions, 4 clients
# While a consumer drains, its target is sampled every 0.1 s (a snapshot per sample)
# for torn transactions: W1 the first and last row must carry the same value; W2 the
# rows present are a prefix of the source's commit order; W3 pgbench's balances agree
# (tellers = branches = history) / sysbench's row count stays at its table size.
# Live: pgbench / sysbench as fast as they go for LIVE_SECS with Ferry streaming:
# source tps, Ferry's applied rate (load start → caught up) ÷ source rate, lag p50/p99
# (metrics endpoint, every 0.5 s), Ferry's peak RSS.
# Cross-engine: W2 drained by Ferry MariaDB → PostgreSQL and PostgreSQL → MariaDB.
#
#   bench/apply-native.sh [--quick]
#   env: PARTS="pg my cross live"  FERRY_JOBS="1 default 4"  LIVE_JOBS="1 default"
#        W1_ROWS W2_TXNS W3_TXNS LIVE_SECS PG_SCALE SB_SIZE CLIENTS OUT
# Results: bench/results/apply-native-latest.md (--quick: apply-native-quick.md).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
if [ $QUICK = 1 ]; then
  W1=${W1_ROWS:-200000}; W2=${W2_TXNS:-20000}; W3=${W3_TXNS:-20000}; LIVE=${LIVE_SECS:-15}
  SCALE=${PG_SCALE:-2}; SBSIZE=${SB_SIZE:-20000}; OUT=${OUT:-bench/results/apply-native-quick.md}
else
  W1=${W1_ROWS:-1000000}; W2=${W2_TXNS:-100000}; W3=${W3_TXNS:-100000}; LIVE=${LIVE_SECS:-60}
  SCALE=${PG_SCALE:-10}; SBSIZE=${SB_SIZE:-100000}; OUT=${OUT:-bench/results/apply-native-latest.md}
fi
PARTS=${PARTS:-"pg my cross live"}
FERRY_JOBS=${FERRY_JOBS:-"1 default 4"}
LIVE_JOBS=${LIVE_JOBS:-"1 default"}
CLIENTS=${CLIENTS:-4}
has() { [[ " $PARTS " == *" $1 "* ]]; }

command -v pgbench >/dev/null || apt-get install -y -qq postgresql-contrib >/dev/null
command -v sysbench >/dev/null || apt-get install -y -qq sysbench >/dev/null
# FERRY_BIN: a ferry binary built elsewhere (e.g. another commit), else this checkout's release build
if [ -n "${FERRY_BIN:-}" ]; then FERRY=$FERRY_BIN; else cargo build --release -q --bin ferry; FERRY=$PWD/target/release/ferry; fi
CORES=$(nproc)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
ROOT=0; [ "$(id -u)" = 0 ] && ROOT=1

DIR=$(mktemp -d /tmp/apply-native.XXXXXX)
chmod 755 "$DIR"
cleanup() {
  set +e
  local p
  for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  for d in "$DIR"/pg-*; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
  done
  local pids=()
  for d in "$DIR"/my-*; do
    [ -f "$d/mysqld.pid" ] && { p=$(cat "$d/mysqld.pid"); kill -TERM "$p" 2>/dev/null && pids+=("$p"); }
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%T)] $*" >&2; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ $ROOT = 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---- servers -------------------------------------------------------------------------
pg_start() { # name port
  local d=$DIR/pg-$1
  mkdir -p "$d"; [ $ROOT = 1 ] && chown postgres:postgres "$d"
  as_pg "$PGBIN/initdb" -D "$d" -A trust -U postgres --no-sync -E UTF8 --locale=C >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$d" -l "$d/server.log" -w -t 60 start -o "-p $2 -k $d \
    -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=50 \
    -c max_wal_senders=50 -c max_connections=200 -c max_worker_processes=16 \
    -c max_logical_replication_workers=8 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=4GB" >/dev/null
}
my_start() { # name port server-id [mariadbd options...]
  local d=$DIR/my-$1 port=$2 id=$3; shift 3
  mkdir -p "$d/data"; [ $ROOT = 1 ] && chown -R mysql:mysql "$d"
  local user=(); [ $ROOT = 1 ] && user=(--user=mysql)
  mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=normal \
    --skip-test-db "${user[@]}" >/dev/null 2>&1
  ( setsid mariadbd --no-defaults --datadir="$d/data" --port="$port" --bind-address=127.0.0.1 \
      --socket="$d/sock" --pid-file="$d/mysqld.pid" --log-error="$d/error.log" --server-id="$id" \
      --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --innodb-buffer-pool-size=256M \
      --innodb-log-file-size=256M --max-connections=300 --max-allowed-packet=256M \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --local-infile=1 \
      "$@" "${user[@]}" </dev/null >/dev/null 2>&1 & )
  for _ in $(seq 900); do [ -S "$d/sock" ] && break; sleep 0.1; done
  [ -S "$d/sock" ] || { cat "$d/error.log"; exit 1; }
  mariadb --socket="$d/sock" -uroot -e "SET sql_log_bin = 0;
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES"
}
pgq() { psql -qAtX -v ON_ERROR_STOP=1 --no-psqlrc -h 127.0.0.1 -p "$1" -U postgres -d "$2" -c "$3"; }
myq() { mariadb -h 127.0.0.1 -P "$1" -uroot -N -B -e "$2" | tr '\t' '|'; }

# ---- measuring -----------------------------------------------------------------------
# Polls `$qfn "$sql"` (answers "marker|whole") every 0.1 s until marker = 1. Sets T1,
# SAMPLES, TORN, RSS (peak, of pid $2 when given). Fails after 30 min.
wait_marker() { # qfn sql [ferry pid] [t0]
  local qfn=$1 sql=$2 fp=${3:-} t0=${4:-$(now)} r m w
  SAMPLES=0; TORN=0; RSS=0; WAIT_FAIL=""
  while :; do
    r=$($qfn "$sql" 2>/dev/null) || r=""
    m=${r%%|*}; w=${r#*|}
    if [ -n "$r" ]; then SAMPLES=$((SAMPLES + 1)); [ "$w" = 1 ] || TORN=$((TORN + 1)); fi
    if [ -n "$fp" ] && [ -r "/proc/$fp/status" ]; then
      RSS=$(awk -v r="$RSS" '/VmHWM/ {print ($2 > r ? $2 : r)}' "/proc/$fp/status" 2>/dev/null || echo "$RSS")
    fi
    [ "$m" = 1 ] && break
    if [ -n "$fp" ] && ! kill -0 "$fp" 2>/dev/null; then
      r=$($qfn "$sql" 2>/dev/null) || r=""
      [ "${r%%|*}" = 1 ] && break
      WAIT_FAIL="ferry exited before the target was equal"; break
    fi
    if [ "$(echo "$(now) - $t0 > 1800" | bc)" = 1 ]; then WAIT_FAIL="not equal after 30 min"; break; fi
    sleep 0.1
  done
  T1=$(now)
}
fmt_s() { printf '%.2f' "$1"; }
rate() { printf '%.0f' "$(echo "$1 / $2" | bc -l)"; }
ratio() { [ -n "$2" ] && [ "$2" != 0 ] && printf '%.2f' "$(echo "$1 / $2" | bc -l)" || echo "–"; }

# results: one line per consumer and workload: "W|pair|consumer|seconds|units|whole|equal"
RES=$DIR/results; : >"$RES"
record() { echo "$1|$2|$3|$4|$5|$6|$7" >>"$RES"; }

ferry_task() { # name source target [objects yaml]
  printf 'name: %s\nkind: migration\nmode: full+incremental\nsource: %s\ntarget: %s\n%s' \
    "$1" "$2" "$3" "${4:-}" >"$DIR/$1.yaml"
}
ferry_setup() { # name: full copy, then caught up
  log "ferry $1: full copy + catch up"
  "$FERRY" run "$DIR/$1.yaml" --quiet --exit-when-caught-up >>"$DIR/$1.log" 2>&1 \
    || { tail -30 "$DIR/$1.log" >&2; exit 1; }
}
ferry_args() { # task jobs
  FARGS=(run "$DIR/$1.yaml" --quiet)
  [ "$2" != default ] && FARGS+=(--apply-jobs "$2")
  return 0
}
# Drains the backlog of task $1 with --apply-jobs $2; polls with qfn/sql. Sets DT etc.
ferry_drain() { # task jobs qfn sql
  ferry_args "$1" "$2"
  local t0; t0=$(now)
  "$FERRY" "${FARGS[@]}" --exit-when-caught-up >>"$DIR/$1.log" 2>&1 &
  local fp=$!
  wait_marker "$3" "$4" "$fp" "$t0"
  DT=$(echo "$T1 - $t0" | bc -l)
  if [ -n "$WAIT_FAIL" ]; then
    log "ferry $1 (jobs $2): $WAIT_FAIL"; tail -20 "$DIR/$1.log" >&2
  fi
  wait "$fp" || true
}
jobs_label() { [ "$1" = default ] && echo "default ($(default_jobs))" || echo "$1"; }
default_jobs() { local c=$CORES; [ "$c" -lt 2 ] && c=2; [ "$c" -gt 8 ] && c=8; echo "$c"; }

# target address for polling: pg:PORT:DB | my:PORT:DB
tq() {
  local e=${1%%:*} rest=${1#*:}
  local port=${rest%%:*} db=${rest#*:}
  if [ "$e" = pg ]; then pgq "$port" "$db" "$2"
  else mariadb -h 127.0.0.1 -P "$port" -uroot -N -B -D "$db" -e "$2" | tr '\t' '|'; fi
}
POLL_TARGET=""
pollq() { tq "$POLL_TARGET" "$1"; }
# Same answer on the source and the consumer's target? Prints "yes" / "NO (src … ≠ …)".
equal() { # src-target consumer-target sql
  local a b; a=$(tq "$1" "$3" 2>&1 | tr '|\n' ', '); b=$(tq "$2" "$3" 2>&1 | tr '|\n' ', ')
  [ "$a" = "$b" ] && echo yes || echo "NO (source $a≠ $b)"
}
# Drains one workload's backlog with every consumer of the engine and records them.
# consumers: "native:<label>:<target>" or "ferry:<task>:<jobs>:<target>"
drain_all() { # W pair src-target poll-sql sum-sql units consumers...
  local w=$1 pair=$2 src=$3 poll=$4 sum=$5 units=$6; shift 6
  local c kind label target t0 whole
  for c in "$@"; do
    kind=${c%%:*}
    if [ "$kind" = native ]; then
      label=$(echo "$c" | cut -d: -f2); target=$(echo "$c" | cut -d: -f3-)
      log "$pair $w: $label draining"
      POLL_TARGET=$target; t0=$(now)
      native_start "$label"
      wait_marker pollq "$poll" "" "$t0"
      DT=$(echo "$T1 - $t0" | bc -l)
      native_stop "$label"
      RSS=0
    else
      local task jobs; task=$(echo "$c" | cut -d: -f2); jobs=$(echo "$c" | cut -d: -f3)
      target=$(echo "$c" | cut -d: -f4-); label="Ferry --apply-jobs $(jobs_label "$jobs")"
      log "$pair $w: $label draining"
      POLL_TARGET=$target
      ferry_drain "$task" "$jobs" pollq "$poll"
    fi
    whole="$((SAMPLES - TORN))/$SAMPLES"
    [ -n "$WAIT_FAIL" ] && whole="FAILED: $WAIT_FAIL"
    record "$w" "$pair" "$label" "$DT" "$units" "$whole" "$(equal "$src" "$target" "$sum")|$((RSS / 1024))"
    log "  $(tail -1 "$RES")"
  done
}
native_start() {
  case $1 in
    "PG subscription") pgq "$TP" native "ALTER SUBSCRIPTION nsub ENABLE" ;;
    "replica, 0 threads") myq "$R0P" "START SLAVE" ;;
    "replica, 4 threads") myq "$R4P" "START SLAVE" ;;
  esac
}
native_stop() {
  case $1 in
    "PG subscription")
      pgq "$TP" native "ALTER SUBSCRIPTION nsub DISABLE"
      until [ "$(pgq "$TP" native "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'nsub' AND pid IS NOT NULL")" = 0 ] &&
            [ "$(pgq "$SP" src "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'nsub' AND active")" = 0 ]; do
        sleep 0.1
      done ;;
    "replica, 0 threads") myq "$R0P" "STOP SLAVE" ;;
    "replica, 4 threads") myq "$R4P" "STOP SLAVE" ;;
  esac
}
src_workload() { # W pair fn...: runs the workload, commits marker W, records the source's time
  local w=$1 pair=$2 t0; shift 2
  log "$pair $w: source workload"
  t0=$(now); "$@"; SRC_DT=$(echo "$(now) - $t0" | bc -l)
}
jtag() { [ "$1" = default ] && echo d || echo "$1"; }

# ---- PostgreSQL ----------------------------------------------------------------------
W1_POLL="SELECT (SELECT count(*) FROM done WHERE id = 1), CASE WHEN (SELECT n FROM w1 WHERE id = 1) = (SELECT n FROM w1 WHERE id = $W1) THEN 1 ELSE 0 END"
W1_SUM="SELECT count(*), sum(n) FROM w1"
W2_POLL="SELECT (SELECT count(*) FROM done WHERE id = 2), CASE WHEN (SELECT count(*) FROM w2) = (SELECT coalesce(max(id), 0) FROM w2) THEN 1 ELSE 0 END"
W2_SUM="SELECT count(*), sum(id) FROM w2"
PG_W3_POLL="SELECT (SELECT count(*) FROM done WHERE id = 3), CASE WHEN (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(bbalance) FROM pgbench_branches) AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history) THEN 1 ELSE 0 END"
PG_W3_SUM="SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_history), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers)"
MY_W3_POLL="SELECT (SELECT count(*) FROM done WHERE id = 3), CASE WHEN (SELECT count(*) FROM sbtest1) = $SBSIZE THEN 1 ELSE 0 END"
MY_W3_SUM="SELECT count(*), sum(k), sum(crc32(c)), sum(crc32(pad)) FROM sbtest1"

pg_setup() {
  SP=$(free_port); pg_start src "$SP"; TP=$(free_port); pg_start tgt "$TP"
  log "PostgreSQL source :$SP, target :$TP"
  pgq "$SP" postgres "CREATE DATABASE src" >/dev/null
  pgq "$SP" src "CREATE TABLE w1 (id bigint PRIMARY KEY, v text, n int);
    CREATE TABLE w2 (id bigint PRIMARY KEY, v text); CREATE TABLE done (id int PRIMARY KEY);
    INSERT INTO w1 SELECT g, 'row ' || g, 0 FROM generate_series(1, $W1) g" >/dev/null
  pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$SP" -U postgres src >/dev/null 2>&1
  pgq "$SP" src "INSERT INTO done VALUES (0)" >/dev/null
  pgq "$TP" postgres "CREATE DATABASE native" >/dev/null
  pg_dump -s -h 127.0.0.1 -p "$SP" -U postgres src | psql -q -h 127.0.0.1 -p "$TP" -U postgres native >/dev/null
  pgq "$SP" src "CREATE PUBLICATION npub FOR TABLE w1, w2, done, pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history" >/dev/null
  pgq "$TP" native "CREATE SUBSCRIPTION nsub CONNECTION 'host=127.0.0.1 port=$SP dbname=src user=postgres' PUBLICATION npub" >/dev/null 2>&1
  log "native subscription: initial sync"
  until [ "$(pgq "$TP" native "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = 0 ] &&
        [ "$(pgq "$TP" native "SELECT count(*) FROM done WHERE id = 0")" = 1 ]; do sleep 0.2; done
  native_stop "PG subscription"
  local j
  for j in $FERRY_JOBS; do
    pgq "$TP" postgres "CREATE DATABASE f_$(jtag "$j")" >/dev/null
    ferry_task "an-pg-$(jtag "$j")" "postgres://postgres@127.0.0.1:$SP/src" "postgres://postgres@127.0.0.1:$TP/f_$(jtag "$j")"
    ferry_setup "an-pg-$(jtag "$j")"
  done
}
pg_consumers() {
  PGC=("native:PG subscription:pg:$TP:native")
  local j; for j in $FERRY_JOBS; do PGC+=("ferry:an-pg-$(jtag "$j"):$j:pg:$TP:f_$(jtag "$j")"); done
}
pg_w1() { pgq "$SP" src "UPDATE w1 SET n = n + 1" >/dev/null; pgq "$SP" src "INSERT INTO done VALUES (1)" >/dev/null; }
pg_w2() { pgq "$SP" src "DO \$\$ BEGIN FOR i IN 1..$W2 LOOP INSERT INTO w2 VALUES (i, 'txn ' || i); COMMIT; END LOOP; END \$\$" >/dev/null
          pgq "$SP" src "INSERT INTO done VALUES (2)" >/dev/null; }
pg_w3() { pgbench -n -c "$CLIENTS" -j "$CLIENTS" -t $((W3 / CLIENTS)) -h 127.0.0.1 -p "$SP" -U postgres src >"$DIR/pg-w3.out" 2>&1
          pgq "$SP" src "INSERT INTO done VALUES (3)" >/dev/null; }

# ---- MariaDB -------------------------------------------------------------------------
my_setup() {
  MP=$(free_port); R0P=$(free_port); R4P=$(free_port); FP=$(free_port)
  my_start src "$MP" 1 --log-bin="$DIR/my-src/binlog" --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL
  my_start r0 "$R0P" 2 --skip-log-bin --relay-log="$DIR/my-r0/relay" --slave-parallel-threads=0
  my_start r4 "$R4P" 3 --skip-log-bin --relay-log="$DIR/my-r4/relay" --slave-parallel-threads=4
  my_start ferry "$FP" 4 --skip-log-bin
  log "MariaDB source :$MP, replicas :$R0P (0 threads) :$R4P (4 threads), Ferry's target :$FP"
  local r
  for r in "$R0P" "$R4P"; do
    myq "$r" "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $MP, MASTER_USER = 'root',
      MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos; START SLAVE"
  done
  myq "$MP" "CREATE DATABASE src; USE src; CREATE TABLE src.w1 (id bigint PRIMARY KEY, v varchar(40), n int);
    CREATE TABLE src.w2 (id bigint PRIMARY KEY, v varchar(40)); CREATE TABLE src.done (id int PRIMARY KEY);
    INSERT INTO src.w1 SELECT seq, concat('row ', seq), 0 FROM seq_1_to_$W1"
  sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MP" --mysql-user=root \
    --mysql-db=src --tables=1 --table-size="$SBSIZE" prepare >/dev/null
  myq "$MP" "INSERT INTO src.done VALUES (0)"
  log "native replicas: catching up with the load"
  for r in "$R0P" "$R4P"; do
    until [ "$(tq "my:$r:mysql" "SELECT count(*) FROM src.done WHERE id = 0" 2>/dev/null)" = 1 ]; do sleep 0.2; done
    myq "$r" "STOP SLAVE"
  done
  local j
  for j in $FERRY_JOBS; do
    ferry_task "an-my-$(jtag "$j")" "mysql://root@127.0.0.1:$MP/src" "mysql://root@127.0.0.1:$FP/f_$(jtag "$j")"
    ferry_setup "an-my-$(jtag "$j")"
  done
}
my_consumers() {
  MYC=("native:replica, 0 threads:my:$R0P:src" "native:replica, 4 threads:my:$R4P:src")
  local j; for j in $FERRY_JOBS; do MYC+=("ferry:an-my-$(jtag "$j"):$j:my:$FP:f_$(jtag "$j")"); done
}
my_w1() { myq "$MP" "UPDATE src.w1 SET n = n + 1; INSERT INTO src.done VALUES (1)"; }
my_w2() { # autocommit: every INSERT of the loop is a transaction (a GTID) of its own
          myq "$MP" "DELIMITER //
BEGIN NOT ATOMIC FOR i IN 1..$W2 DO INSERT INTO src.w2 VALUES (i, concat('txn ', i)); END FOR; END //"
          myq "$MP" "INSERT INTO src.done VALUES (2)"; }
my_w3() { sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MP" --mysql-user=root \
            --mysql-db=src --tables=1 --table-size="$SBSIZE" --threads="$CLIENTS" --events="$W3" --time=0 \
            --report-interval=0 run >"$DIR/my-w3.out" 2>&1
          myq "$MP" "INSERT INTO src.done VALUES (3)"; }

# ---- cross-engine (W2 only) ----------------------------------------------------------
CROSS_JOBS=${CROSS_JOBS:-"1 default"}
cross_setup() {
  local j t
  for j in $CROSS_JOBS; do
    t=x-pg2my-$(jtag "$j")
    ferry_task "$t" "postgres://postgres@127.0.0.1:$SP/src" "mysql://root@127.0.0.1:$FP/xpg_$(jtag "$j")" \
      "$(printf 'objects:\n  include: ["public.w2", "public.done"]\n')"
    ferry_setup "$t"
    pgq "$TP" postgres "CREATE DATABASE xmy_$(jtag "$j")" >/dev/null
    t=x-my2pg-$(jtag "$j")
    ferry_task "$t" "mysql://root@127.0.0.1:$MP/src" "postgres://postgres@127.0.0.1:$TP/xmy_$(jtag "$j")" \
      "$(printf 'objects:\n  include: ["src.w2", "src.done"]\n  rename: { src: public }\n')"
    ferry_setup "$t"
  done
}
# brings the cross tasks of one direction up to date before W2 (not measured)
cross_catch_up() { # prefix
  local j; for j in $CROSS_JOBS; do ferry_setup "$1-$(jtag "$j")"; done
}
cross_consumers() { # prefix target-engine port dbprefix
  XC=(); local j; for j in $CROSS_JOBS; do XC+=("ferry:$1-$(jtag "$j"):$j:$2:$3:$4_$(jtag "$j")"); done
}

# ---- live ----------------------------------------------------------------------------
LIVE_RES=$DIR/live; : >"$LIVE_RES"
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"[{]" {print $2}'; }
live_run() { # pair task jobs src-target consumer-target load-fn marker-id sum-sql
  local pair=$1 task=$2 jobs=$3 src=$4 target=$5 load=$6 mid=$7 sum=$8 port fp a0 a1 t0 tload
  port=$(free_port)
  ferry_args "$task" "$jobs"
  "$FERRY" "${FARGS[@]}" --metrics-addr "127.0.0.1:$port" >>"$DIR/$task.log" 2>&1 &
  fp=$!
  log "$pair live, Ferry --apply-jobs $(jobs_label "$jobs"): catching up first"
  tq "$src" "INSERT INTO done VALUES ($mid)" >/dev/null
  POLL_TARGET=$target
  wait_marker pollq "SELECT (SELECT count(*) FROM done WHERE id = $mid), 1" "$fp"
  [ -n "$WAIT_FAIL" ] && { log "live: $WAIT_FAIL"; tail -20 "$DIR/$task.log" >&2; return 0; }
  sleep 1
  a0=$(metric "$port" ferry_applied_transactions_total)
  log "$pair live: load for ${LIVE}s"
  t0=$(now)
  "$load" &
  local lp=$!
  : >"$DIR/lag"
  while kill -0 "$lp" 2>/dev/null; do metric "$port" ferry_lag_seconds >>"$DIR/lag"; sleep 0.5; done
  wait "$lp" || true
  tload=$(now)
  tq "$src" "INSERT INTO done VALUES ($((mid + 1)))" >/dev/null
  wait_marker pollq "SELECT (SELECT count(*) FROM done WHERE id = $((mid + 1))), 1" "$fp"
  a1=$(metric "$port" ferry_applied_transactions_total)
  kill -TERM "$fp"; wait "$fp" || true
  local p50 p99 tps txns
  read -r p50 p99 < <(sort -g "$DIR/lag" | awk '{a[NR]=$1} END {i=int(NR*0.5); if(i<1)i=1; j=int(NR*0.99+0.5); if(j<1)j=1; if(j>NR)j=NR; print a[i], a[j]}')
  read -r tps txns <"$DIR/load.out"
  local applied_rate; applied_rate=$(rate "$txns" "$(echo "$T1 - $t0" | bc -l)")
  # pair|applier|source tps|source txns|applied rate|ratio|p50|p99|catch-up|rss|applied counter delta|equal
  echo "$pair|Ferry --apply-jobs $(jobs_label "$jobs")|$(printf %.0f "$tps")|$txns|$applied_rate|$(ratio "$applied_rate" "$tps")|$p50|$p99|$(fmt_s "$(echo "$T1 - $tload" | bc -l)")|$((RSS / 1024))|$((${a1%.*} - ${a0%.*}))|$(equal "$src" "$target" "$sum")" >>"$LIVE_RES"
  log "  $(tail -1 "$LIVE_RES")"
}
pg_live_load() {
  pgbench -n -c "$CLIENTS" -j "$CLIENTS" -T "$LIVE" -h 127.0.0.1 -p "$SP" -U postgres src >"$DIR/pgbench.out" 2>&1
  echo "$(awk '/^tps/ {print $3; exit}' "$DIR/pgbench.out") $(awk '/number of transactions actually processed/ {print $NF}' "$DIR/pgbench.out" | cut -d/ -f1)" >"$DIR/load.out"
}
my_live_load() {
  sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MP" --mysql-user=root \
    --mysql-db=src --tables=1 --table-size="$SBSIZE" --threads="$CLIENTS" --time="$LIVE" \
    --report-interval=0 run >"$DIR/sysbench.out" 2>&1
  echo "$(awk '/transactions:/ {gsub(/[(]/, "", $3); print $3; exit}' "$DIR/sysbench.out") $(awk '/transactions:/ {print $2; exit}' "$DIR/sysbench.out")" >"$DIR/load.out"
}

# ---- run -----------------------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg); START=$(date -u +'%F %H:%M')
NEED_PG=0; NEED_MY=0
{ has pg || has cross || has live; } && NEED_PG=1
{ has my || has cross || has live; } && NEED_MY=1
[ $NEED_PG = 1 ] && { pg_setup; pg_consumers; }
[ $NEED_MY = 1 ] && { my_setup; my_consumers; }
has cross && cross_setup

W0_POLL="SELECT (SELECT count(*) FROM done WHERE id = 10), 1"
W0_SUM="SELECT count(*), sum(id) FROM done"
if has pg; then
  src_workload W0 "PG → PG" pgq "$SP" src "INSERT INTO done VALUES (10)"; record W0 "PG → PG" source "$SRC_DT" 1 - -
  drain_all W0 "PG → PG" "pg:$SP:src" "$W0_POLL" "$W0_SUM" 1 "${PGC[@]}"
  src_workload W1 "PG → PG" pg_w1; record W1 "PG → PG" source "$SRC_DT" "$W1" - -
  drain_all W1 "PG → PG" "pg:$SP:src" "$W1_POLL" "$W1_SUM" "$W1" "${PGC[@]}"
fi
if has pg || has cross; then
  has cross && cross_catch_up x-pg2my
  src_workload W2 "PG → PG" pg_w2; record W2 "PG → PG" source "$SRC_DT" "$W2" - -
  has pg && drain_all W2 "PG → PG" "pg:$SP:src" "$W2_POLL" "$W2_SUM" "$W2" "${PGC[@]}"
  if has cross; then
    cross_consumers x-pg2my my "$FP" xpg
    drain_all W2 "PG → MariaDB" "pg:$SP:src" "$W2_POLL" "$W2_SUM" "$W2" "${XC[@]}"
  fi
fi
if has pg; then
  src_workload W3 "PG → PG" pg_w3; record W3 "PG → PG" source "$SRC_DT" "$W3" - -
  drain_all W3 "PG → PG" "pg:$SP:src" "$PG_W3_POLL" "$PG_W3_SUM" "$W3" "${PGC[@]}"
fi
if has my; then
  src_workload W0 "MariaDB → MariaDB" myq "$MP" "INSERT INTO src.done VALUES (10)"; record W0 "MariaDB → MariaDB" source "$SRC_DT" 1 - -
  drain_all W0 "MariaDB → MariaDB" "my:$MP:src" "$W0_POLL" "$W0_SUM" 1 "${MYC[@]}"
  src_workload W1 "MariaDB → MariaDB" my_w1; record W1 "MariaDB → MariaDB" source "$SRC_DT" "$W1" - -
  drain_all W1 "MariaDB → MariaDB" "my:$MP:src" "$W1_POLL" "$W1_SUM" "$W1" "${MYC[@]}"
fi
if has my || has cross; then
  has cross && cross_catch_up x-my2pg
  src_workload W2 "MariaDB → MariaDB" my_w2; record W2 "MariaDB → MariaDB" source "$SRC_DT" "$W2" - -
  has my && drain_all W2 "MariaDB → MariaDB" "my:$MP:src" "$W2_POLL" "$W2_SUM" "$W2" "${MYC[@]}"
  if has cross; then
    cross_consumers x-my2pg pg "$TP" xmy
    drain_all W2 "MariaDB → PG" "my:$MP:src" "$W2_POLL" "$W2_SUM" "$W2" "${XC[@]}"
  fi
fi
if has my; then
  src_workload W3 "MariaDB → MariaDB" my_w3; record W3 "MariaDB → MariaDB" source "$SRC_DT" "$W3" - -
  drain_all W3 "MariaDB → MariaDB" "my:$MP:src" "$MY_W3_POLL" "$MY_W3_SUM" "$W3" "${MYC[@]}"
fi
if has live; then
  mid=100
  for j in $LIVE_JOBS; do
    live_run "PG → PG (pgbench)" "an-pg-$(jtag "$j")" "$j" "pg:$SP:src" "pg:$TP:f_$(jtag "$j")" pg_live_load $mid "$PG_W3_SUM"
    mid=$((mid + 2))
  done
  for j in $LIVE_JOBS; do
    live_run "MariaDB → MariaDB (sysbench)" "an-my-$(jtag "$j")" "$j" "my:$MP:src" "my:$FP:f_$(jtag "$j")" my_live_load $mid "$MY_W3_SUM"
    mid=$((mid + 2))
  done
fi

# ---- report --------------------------------------------------------------------------
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=${FERRY_COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates && echo "" || echo "+uncommitted")}
table() { # W title unit
  echo "### $1: $2"
  echo
  awk -F'|' -v w="$1" '$1 == w && $3 == "source" {printf "Source: %s ran it in %.2f s. ", $2, $4}' "$RES"
  echo
  echo
  echo "| pair | applier | apply start → target equal | $3/s | ÷ native | ÷ native, 4 threads | transactions whole (samples) | target equal | Ferry peak RSS |"
  echo "|---|---|---:|---:|---:|---:|---|---|---:|"
  awk -F'|' -v w="$1" '
    $1 == w && $3 != "source" {
      r = $5 / $4; n++; line[n] = $0; rt[n] = r
      if ($3 == "PG subscription" || $3 == "replica, 0 threads") nat[$2] = r
      if ($3 == "replica, 4 threads") nat4[$2] = r
    }
    END {
      for (i = 1; i <= n; i++) {
        split(line[i], f, "|")
        a = (f[2] in nat) ? sprintf("%.2f", rt[i] / nat[f[2]]) : "–"
        b = (f[2] in nat4) ? sprintf("%.2f", rt[i] / nat4[f[2]]) : "–"
        rss = (f[3] ~ /^Ferry/) ? f[8] " MB" : "–"
        printf "| %s | %s | %.2f s | %.0f | %s | %s | %s | %s | %s |\n", f[2], f[3], f[4], rt[i], a, b, f[6], f[7], rss
      }
    }' "$RES"
  echo
}
mkdir -p "$(dirname "$OUT")"
{
  echo "## Change apply vs native replication, $START UTC$([ $QUICK = 1 ] && echo " (--quick)")"
  echo
  echo "Command: \`$0 $*\` (PARTS=\"$PARTS\" FERRY_JOBS=\"$FERRY_JOBS\"), Ferry \`$COMMIT\` (release build), $CORES cores,"
  echo "load average at start $LOAD0, at the end $LOAD1 (shared machine: other builds ran beside it)."
  echo "Sizes: W1 $W1 rows, W2 $W2 transactions, W3 $W3 transactions ($CLIENTS clients; pgbench scale $SCALE, sysbench $SBSIZE rows), live ${LIVE}s."
  echo "Each applier drains the same backlog in turn (native first); ÷ native = its rate ÷ the native replication's rate in this run."
  echo "Transactions whole: target snapshots sampled every 0.1 s while draining that showed no torn transaction / all samples."
  echo
  table W0 "start-up: a backlog of one one-row transaction (the fixed cost of starting each applier)" txn
  table W1 "one UPDATE transaction of $W1 rows, from a backlog" rows
  table W2 "$W2 one-row INSERT transactions, from a backlog" txn
  table W3 "pgbench (PostgreSQL) / sysbench oltp_write_only (MariaDB), $W3 transactions, from a backlog" txn
  if [ -s "$LIVE_RES" ]; then
    echo "### Live: load as fast as it goes for ${LIVE}s ($CLIENTS clients), Ferry streaming"
    echo
    echo "| pair | applier | source tps | source txns | applied txn/s (load start → caught up) | ÷ source | lag p50 / p99 (0.5 s samples) | caught up after the load | Ferry peak RSS | applied counter | target equal |"
    echo "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|"
    awk -F'|' '{printf "| %s | %s | %s | %s | %s | %s | %s / %s s | %s s | %s MB | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12}' "$LIVE_RES"
    echo
  fi
} | tee "$OUT"
