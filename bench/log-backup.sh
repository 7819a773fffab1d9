#!/usr/bin/env bash
# Log backup and point-in-time restore benchmark (issue 14). On throwaway servers of
# its own (PostgreSQL 15 with wal_level=logical, MariaDB with the row binlog):
#
#  1. Archive rate and latency: `ferry backup log run` archives the source's change
#     stream into a file:// repository while pgbench (TPC-B-like) / sysbench
#     oltp_write_only write as fast as they can for $SECS seconds. Once a second the
#     latest backup point is read from the archive head (clusters/<c>/log/head.json)
#     → latency (now − latest point) p50/p99/max, the archive's sustained txn/s
#     against the source's, the archiver's peak RSS.
#  2. Point-in-time restore replay rate against the native tools on the same data in
#     the same run:
#     - MariaDB: `ferry restore create --from CLUSTER --until <latest point>` vs
#       `mariadb-binlog <the same binlog range> | mariadb` into a copy of the same
#       base (Ferry's full set restored alone, which also times the base part);
#     - PostgreSQL, physical method: `ferry backup now --method physical` +
#       `ferry backup log run --method physical` + `ferry restore create --data-dir`
#       and a server recovering on it, vs pg_basebackup + a plain WAL archive made by
#       pg_receivewal + a server recovering with `restore_command = cp`, both to the
#       same LSN;
#     - PostgreSQL, logical method: Ferry's replay rate (no native tool replays a
#       logical archive; the WAL recovery of part "phys" is the reference).
#
#   bench/log-backup.sh            # 60 s pgbench -s 10, 20 s sysbench on 100k rows (~10 min)
#   bench/log-backup.sh --quick    # 10 s loads, tiny tables (< 2 min, for CI)
#   SECS=30 CLIENTS=8 PARTS="pg my phys" PIECE_SECONDS=1 bench/log-backup.sh
#
# Prints a markdown report, also written to bench/results/log-backup-latest.md. A
# Ferry command that fails is reported as such (with its last output lines) and the
# run goes on, so the native baselines survive an unfinished Ferry. Every server,
# process and file it starts or writes is stopped / deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
if [ $QUICK = 1 ]; then
  SECS=${SECS:-10}; SCALE=${SCALE:-1}; SIZE=${SIZE:-10000}
else
  SECS=${SECS:-60}; SCALE=${SCALE:-10}; SIZE=${SIZE:-100000}
fi
# the MariaDB load is shorter by default: Ferry's replay of its archive into MariaDB
# runs at ~0.5k rows/s on this machine (2026-12-02), 60 s of sysbench would take 10 min
MY_SECS=${MY_SECS:-$([ $QUICK = 1 ] && echo 5 || echo 20)}
CLIENTS=${CLIENTS:-4}          # pgbench clients / sysbench threads
PIECE_SECONDS=${PIECE_SECONDS:-1}
JOBS=${JOBS:-2}
PARTS=${PARTS:-"pg my phys"}
need=()
command -v sysbench >/dev/null || need+=(sysbench)
command -v pgbench >/dev/null || need+=(postgresql-contrib)
command -v /usr/bin/time >/dev/null || need+=(time)
command -v pg_receivewal >/dev/null || need+=(postgresql-client)
command -v mariadb-binlog >/dev/null || need+=(mariadb-client)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
BIN=${BIN:-target/release}
[ "$BIN" = target/release ] && cargo build --release --locked -q -p ferry -p ferry-testkit
FERRY=$(realpath "$BIN")/ferry
HEAD="python3 $PWD/bench/log-head.py"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/ferry-bench-log-XXXXXX)
chmod 755 "$WORK"
export FERRY_TESTKIT_DIR=$WORK/servers
R=$WORK/res; mkdir -p "$R"
BG=()          # background processes of this run
PGDIRS=()      # extra PostgreSQL servers (recovery) of this run
AS_PG=(); [ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${PGDIRS[@]}"; do
    [ -f "$d/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
  "$BIN"/ferry-sandbox stop --clean >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
eval "$("$BIN"/ferry-sandbox)"
PGH=(-h 127.0.0.1 -p "$FERRY_PG_PORT" -U postgres)
psql_() { psql -X -q -v ON_ERROR_STOP=1 "${PGH[@]}" "$@"; }
my_() { mariadb --default-character-set=utf8mb4 -h127.0.0.1 -P"$FERRY_MYSQL_PORT" -uroot -N -B "$@"; }
PG_URL="postgres://postgres@127.0.0.1:$FERRY_PG_PORT"
MY_URL="mysql://root@127.0.0.1:$FERRY_MYSQL_PORT"
# the sandbox's PostgreSQL options (crates/ferry-testkit/src/server.rs): a recovering
# server needs the same (hot standby refuses lower max_connections / max_wal_senders)
PGOPTS="-c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=200 \
-c max_wal_senders=200 -c max_connections=300 -c fsync=off -c synchronous_commit=off \
-c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=2GB"

now() { date +%s.%N; }
now_us() { date +%s%6N; }
f() { awk "BEGIN {printf \"$1\", $2}"; }   # f FORMAT EXPR: awk arithmetic
rec() { echo "$2" > "$R/$1"; }             # rec KEY VALUE: one result
get() { cat "$R/$1" 2>/dev/null || echo "${2:-}"; }
# fail KEY WHAT OUTFILE: a Ferry step failed; the report shows it
fail() { { echo "$2 failed:"; tail -n 4 "$3" | cut -c1-300; } > "$R/$1.err"; echo "  $2 failed (see report)" >&2; }
# timed KEY CMD…: wall seconds and peak RSS MB of CMD into KEY.secs / KEY.rss; the
# output in $WORK/KEY.out; returns CMD's status
timed() {
  local key=$1; shift
  if /usr/bin/time -f "%e %M" -o "$WORK/$key.time" "$@" > "$WORK/$key.out" 2>&1; then
    read -r s kb < <(tail -n 1 "$WORK/$key.time")
    rec "$key.secs" "$s"; rec "$key.rss" "$((kb / 1024))"
    return 0
  fi
  return 1
}
# replayed KEY: the row changes a point-in-time restore says it replayed → KEY.rows
replayed() {
  sed -n 's/.*replayed [0-9]* transaction(s) (\([0-9]*\) row change(s)).*/\1/p' "$WORK/$1.out" | tail -n 1 > "$R/$1.rows"
}
# pcts FILE COLUMN: "p50 p99 max" of a column of numbers
pcts() {
  awk -v c="$2" '$c != "NA" {print $c}' "$1" | sort -g |
    awk '{a[NR]=$1} END {if (!NR) {print "- - -"; exit}
      i=int(NR*0.5+0.999); j=int(NR*0.99+0.999); printf "%.2f %.2f %.2f\n", a[i], a[j], a[NR]}'
}

# ---- archiving under load ---------------------------------------------------------
# archive_start KEY CLUSTER SOURCE METHOD: starts `ferry backup log run` and waits for
# its first head (the archive is running); returns 1 (recorded) when it cannot start
archive_start() {
  local key=$1 c=$2 src=$3 method=$4 repo=$WORK/repo-$2
  mkdir -p "$repo"; chmod 755 "$repo"
  "$FERRY" backup log run "$c" --source "$src" --method "$method" --storage "file://$repo" \
    --piece-seconds "$PIECE_SECONDS" -q > "$WORK/$key.archiver.out" 2>&1 &
  ARCH=$!; BG+=("$ARCH")
  for _ in $(seq 600); do
    [ -n "$($HEAD point "$repo" "$c")" ] && return 0
    kill -0 "$ARCH" 2>/dev/null || break
    sleep 0.1
  done
  fail "$key" "\`ferry backup log run $c --method $method\`" "$WORK/$key.archiver.out"
  kill "$ARCH" 2>/dev/null || true; ARCH=""
  return 1
}
# archive_measure KEY CLUSTER MARK_POS_CMD LOAD_CMD…: samples the archiver while the
# load runs, writes one more transaction (the marker) and waits until the archive
# holds it; records latency, rates, RSS. $LOAD_TXNS is set by the caller's parser.
archive_measure() {
  local key=$1 c=$2 markcmd=$3 repo=$WORK/repo-$2; shift 3
  python3 bench/log-sample.py "$repo" "$c" "$ARCH" "$R/$key.samples" &
  local sampler=$!; BG+=("$sampler")
  local t0; t0=$(now)
  "$@" > "$WORK/$key.load.out" 2>&1 || { cat "$WORK/$key.load.out" >&2; exit 1; }
  local tload; tload=$(now)
  local before_us; before_us=$(now_us)
  local pos; pos=$($markcmd)          # the marker transaction; prints the position after it
  local caught=""
  for _ in $(seq 1200); do
    if $HEAD caught "$repo" "$c" "$before_us" "$pos"; then caught=$(now); break; fi
    kill -0 "$ARCH" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1.2   # one more sample after catching up
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  rec "$key.rss_peak" "$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$ARCH/status" 2>/dev/null || echo -)"
  if [ -z "$caught" ]; then
    fail "$key" "the archive catching up with the marker (120 s)" "$WORK/$key.archiver.out"
  else
    rec "$key.catchup" "$(f %.1f "$caught - $tload")"
  fi
  # latency while the load ran
  awk -v a="$t0" -v b="$tload" '$1 >= a && $1 <= b' "$R/$key.samples" > "$R/$key.inload"
  rec "$key.lat" "$(pcts "$R/$key.inload" 2)"
  # sustained archive rate: txns archived between the first sample 5 s into the load
  # (1 s for loads under 20 s) and the last one of the load (the first seconds only
  # fill the pipeline)
  local skip=5; awk "BEGIN {exit !($tload - $t0 < 20)}" && skip=1
  rec "$key.arate" "$(awk -v a="$t0" -v k="$skip" '$1 >= a + k {if (!t1) {t1=$1; n1=$5}; t2=$1; n2=$5}
      END {if (t2 > t1 + 1) printf "%.0f", (n2 - n1) / (t2 - t1); else print "-"}' "$R/$key.inload")"
  rec "$key.window" "$(f %.1f "$tload - $t0")"
}
# archive_stop KEY CLUSTER: stops the archiver (SIGINT, as ^C), records the archive's totals
archive_stop() {
  local key=$1 c=$2 repo=$WORK/repo-$2
  if [ -n "${ARCH:-}" ]; then
    kill -INT "$ARCH" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$ARCH" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$ARCH" 2>/dev/null; then
      echo "the archiver did not stop on SIGINT within 30 s" >> "$R/$key.notes"
      kill -9 "$ARCH" 2>/dev/null || true
    fi
    wait "$ARCH" 2>/dev/null || true
    ARCH=""
  fi
  rec "$key.sum" "$($HEAD sum "$repo" "$c")"
}

# ---- PostgreSQL ---------------------------------------------------------------------
pg_sig() { # a digest of the pgbench tables of database $1 (on port $2)
  psql -X -At -h 127.0.0.1 -p "${2:-$FERRY_PG_PORT}" -U postgres -d "$1" -c "
    SELECT (SELECT count(*) || ':' || sum(abalance) || ':' || sum(hashtext(aid || ':' || abalance)::bigint) FROM pgbench_accounts)
      || '|' || (SELECT sum(bbalance) FROM pgbench_branches) || '|' || (SELECT sum(tbalance) FROM pgbench_tellers)
      || '|' || (SELECT count(*) || ':' || coalesce(sum(delta), 0) FROM pgbench_history)
      || '|' || (SELECT count(*) FROM load_done)" 2>&1 | tail -n 1
}
pg_prepare() {
  [ -f "$R/pg.prepared" ] && return 0
  echo "preparing pgbench -s $SCALE…" >&2
  psql_ -d postgres -c "DROP DATABASE IF EXISTS bench_log_src" -c "CREATE DATABASE bench_log_src" 2>/dev/null
  pgbench -i -q -s "$SCALE" "${PGH[@]}" bench_log_src >/dev/null 2>&1
  psql_ -d bench_log_src -c "CREATE TABLE load_done (id int PRIMARY KEY)" -c "VACUUM ANALYZE"
  touch "$R/pg.prepared"
}
pg_load() { pgbench -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" "${PGH[@]}" bench_log_src; }
pg_marker() { # one transaction after the load; prints the WAL position after it
  local n; n=$(psql_ -d bench_log_src -At -c "SELECT count(*) FROM load_done")
  psql_ -d bench_log_src -At -c "INSERT INTO load_done VALUES ($((n + 1)))" \
    -c "SELECT 'lsn:' || pg_current_wal_insert_lsn()"
}
# transactions the load committed: one pgbench_history row each (pgbench's own count
# leaves out the ones in flight when -T ends, which the server still commits)
pg_hist() { psql_ -d bench_log_src -At -c "SELECT count(*) FROM pgbench_history"; }
pg_tps() { awk '/^tps/ {printf "%.0f", $3; exit}' "$WORK/$1.load.out"; }
pg_fresh() { psql_ -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; }

part_pg() {
  echo "PostgreSQL, logical: archive under pgbench ${SECS}s…" >&2
  pg_prepare
  local c=bench-pg repo=$WORK/repo-bench-pg
  archive_start pg $c "$PG_URL/bench_log_src" logical || return 0
  if ! timed pg_full_backup "$FERRY" backup now $c --source "$PG_URL/bench_log_src" --storage "file://$repo" --jobs "$JOBS" -q; then
    fail pg "\`ferry backup now $c\`" "$WORK/pg_full_backup.out"; archive_stop pg $c; return 0
  fi
  local set; set=$(awk '$1 == "set" {print $2; exit}' "$WORK/pg_full_backup.out")
  local h0; h0=$(pg_hist)
  archive_measure pg $c pg_marker pg_load
  rec pg.src_txns "$(( $(pg_hist) - h0 ))"; rec pg.src_tps "$(pg_tps pg)"
  local point; point=$($HEAD point "$repo" $c)
  archive_stop pg $c
  rec pg.src_sig "$(pg_sig bench_log_src)"
  psql_ -d postgres -At -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active" >/dev/null
  [ -f "$R/pg.err" ] && return 0
  # the full set alone (the base part of the point-in-time restore), then to the latest point
  echo "PostgreSQL, logical: restore the full set, then to the latest point…" >&2
  pg_fresh bench_log_full
  if ! timed pg_full "$FERRY" restore create --from "$set" --target "$PG_URL/bench_log_full" \
      --storage "file://$repo" --jobs "$JOBS" -q; then
    fail pg_pitr "\`ferry restore create --from $set\`" "$WORK/pg_full.out"; return 0
  fi
  psql_ -d postgres -c "DROP DATABASE bench_log_full"
  local until; until=$($HEAD time "$point"); rec pg.until "$until"
  pg_fresh bench_log_pitr
  if ! timed pg_pitr "$FERRY" restore create --from $c --until "$until" --target "$PG_URL/bench_log_pitr" \
      --storage "file://$repo" --jobs "$JOBS" -q; then
    fail pg_pitr "\`ferry restore create --from $c --until $until\`" "$WORK/pg_pitr.out"; return 0
  fi
  rec pg.pitr_sig "$(pg_sig bench_log_pitr)"
  replayed pg_pitr
  psql_ -d postgres -c "DROP DATABASE bench_log_pitr"
}

# ---- PostgreSQL, physical -------------------------------------------------------------
pg_walfile() { psql_ -d postgres -At -c "SELECT pg_walfile_name('$1')"; }
# recover KEY DATADIR PORT: starts a server on DATADIR and waits until it has finished
# recovery (promoted, or paused at its target); records KEY.recover seconds
recover() {
  local key=$1 dir=$2 port=$3 t0 st=""
  chown -R postgres:postgres "$dir" 2>/dev/null || true
  chmod 700 "$dir"
  PGDIRS+=("$dir")
  t0=$(now)
  if ! "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -o "-p $port -k $dir $PGOPTS" start > "$WORK/$key.pgctl.out" 2>&1; then
    cp "$dir/server.log" "$WORK/$key.server.log" 2>/dev/null; fail "$key" "starting a server on the restored directory" "$WORK/$key.server.log"; return 1
  fi
  for _ in $(seq 6000); do
    st=$(psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      -c "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 'done' WHEN pg_get_wal_replay_pause_state() = 'paused' THEN 'done' ELSE 'recovering' END" 2>/dev/null || true)
    [ "$st" = done ] && break
    [ -f "$dir/postmaster.pid" ] || break
    sleep 0.1
  done
  if [ "$st" != done ]; then
    cp "$dir/server.log" "$WORK/$key.server.log" 2>/dev/null; fail "$key" "recovery on the restored directory" "$WORK/$key.server.log"; return 1
  fi
  rec "$key.recover" "$(f %.2f "$(now) - $t0")"
}
pg_stop_dir() { "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

part_phys() {
  echo "PostgreSQL, physical: WAL archive under pgbench ${SECS}s…" >&2
  pg_prepare
  local c=bench-pgphys repo=$WORK/repo-bench-pgphys wal=$WORK/walarch
  mkdir -p "$wal"
  # native: a plain WAL archive (pg_receivewal from a slot of its own), started first
  pg_receivewal "${PGH[@]}" -S bench_receivewal --create-slot >/dev/null 2>&1
  pg_receivewal "${PGH[@]}" -S bench_receivewal -D "$wal" --no-sync > "$WORK/receivewal.out" 2>&1 &
  local rw=$!; BG+=("$rw")
  local ferry_ok=1
  archive_start phys $c "$PG_URL/postgres" physical || ferry_ok=0
  # the bases: pg_basebackup (native) and Ferry's physical full set
  timed nat_base pg_basebackup "${PGH[@]}" -D "$WORK/nat_base" -c fast --no-sync \
    || { cat "$WORK/nat_base.out" >&2; exit 1; }
  if [ $ferry_ok = 1 ] && ! timed phys_base "$FERRY" backup now $c --method physical --source "$PG_URL/postgres" \
      --storage "file://$repo" -q; then
    fail phys "\`ferry backup now $c --method physical\`" "$WORK/phys_base.out"; ferry_ok=0
    archive_stop phys $c
  fi
  local h0; h0=$(pg_hist)
  if [ $ferry_ok = 1 ]; then
    archive_measure phys $c pg_marker pg_load
  else          # no Ferry archive: the load alone, for the native baseline
    pg_load > "$WORK/phys.load.out" 2>&1; pg_marker >/dev/null
  fi
  rec phys.src_txns "$(( $(pg_hist) - h0 ))"; rec phys.src_tps "$(pg_tps phys)"
  local end; end=$(psql_ -d postgres -At -c "SELECT pg_current_wal_insert_lsn()")
  rec phys.end "$end"
  local seg; seg=$(pg_walfile "$end")
  psql_ -d postgres -At -c "SELECT pg_switch_wal()" >/dev/null
  for _ in $(seq 600); do [ -f "$wal/$seg" ] && break; sleep 0.1; done
  [ -f "$wal/$seg" ] || { echo "pg_receivewal did not archive $seg" >&2; exit 1; }
  kill -INT "$rw"; wait "$rw" 2>/dev/null || true
  chown -R postgres:postgres "$wal" "$WORK/nat_base" 2>/dev/null || true   # the recovering server runs as postgres
  [ $ferry_ok = 1 ] && { sleep 2; archive_stop phys $c; }
  rec phys.src_sig "$(pg_sig bench_log_src)"
  rec phys.wal_bytes "$(du -sb "$wal" | cut -f1)"
  psql_ -d postgres -At -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active" >/dev/null

  # native: copy the base, recover from the archive with restore_command cp
  echo "PostgreSQL, physical: native recovery to $end…" >&2
  local t0 port; t0=$(now); port=$(free_port)
  cp -a "$WORK/nat_base" "$WORK/nat_data"
  touch "$WORK/nat_data/recovery.signal"
  cat >> "$WORK/nat_data/postgresql.auto.conf" <<CONF
restore_command = 'cp $wal/%f "%p"'
recovery_target_lsn = '$end'
recovery_target_action = 'promote'
CONF
  rec nat.copy "$(f %.2f "$(now) - $t0")"
  recover nat "$WORK/nat_data" "$port" || { cat "$WORK/nat.server.log" >&2; exit 1; }
  rec nat.total "$(f %.2f "$(now) - $t0")"
  rec nat.sig "$(pg_sig bench_log_src "$port")"
  pg_stop_dir "$WORK/nat_data"; rm -rf "$WORK/nat_base" "$wal"

  [ $ferry_ok = 1 ] && [ ! -f "$R/phys.err" ] || return 0
  echo "PostgreSQL, physical: Ferry's restore to $end…" >&2
  port=$(free_port); t0=$(now)
  if ! timed phys_restore "$FERRY" restore create --from $c --until "lsn:$end" --data-dir "$WORK/phys_data" \
      --storage "file://$repo" -q; then
    fail phys_pitr "\`ferry restore create --from $c --until lsn:$end --data-dir …\`" "$WORK/phys_restore.out"; return 0
  fi
  recover phys_pitr "$WORK/phys_data" "$port" || return 0
  rec phys_pitr.total "$(f %.2f "$(now) - $t0")"
  rec phys_pitr.sig "$(pg_sig bench_log_src "$port")"
  pg_stop_dir "$WORK/phys_data"
}

# ---- MariaDB --------------------------------------------------------------------------
my_sig() { # a digest of sbtest1 and load_done in database $1
  my_ -e "SELECT CONCAT((SELECT CONCAT(COUNT(*), ':', SUM(k), ':', BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad)))) FROM $1.sbtest1),
    '|', (SELECT COUNT(*) FROM $1.load_done))" 2>&1 | tail -n 1
}
SB=(sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=root
    --mysql-db=bench_log_src --tables=1)
my_load() { "${SB[@]}" --mysql-port="$FERRY_MYSQL_PORT" --table-size="$SIZE" --threads="$CLIENTS" \
  --time="$MY_SECS" --report-interval=0 run; }
my_marker() { # one transaction after the load; prints the binlog position after it
  my_ -e "INSERT INTO bench_log_src.load_done SELECT COALESCE(MAX(id), 0) + 1 FROM bench_log_src.load_done"
  my_ -e "SHOW MASTER STATUS" | awk '{print "binlog:" $1 ":" $2}'
}

part_my() {
  echo "MariaDB: archive under sysbench oltp_write_only ${MY_SECS}s…" >&2
  my_ -e "DROP DATABASE IF EXISTS bench_log_src; CREATE DATABASE bench_log_src;
          CREATE TABLE bench_log_src.load_done (id int PRIMARY KEY)"
  "${SB[@]}" --mysql-port="$FERRY_MYSQL_PORT" --table-size="$SIZE" prepare >/dev/null
  my_ -e "ANALYZE TABLE bench_log_src.sbtest1" >/dev/null
  local c=bench-my repo=$WORK/repo-bench-my
  archive_start my $c "$MY_URL/bench_log_src" logical || return 0
  if ! timed my_full_backup "$FERRY" backup now $c --source "$MY_URL/bench_log_src" --storage "file://$repo" --jobs "$JOBS" -q; then
    fail my "\`ferry backup now $c\`" "$WORK/my_full_backup.out"; archive_stop my $c; return 0
  fi
  local set; set=$(awk '$1 == "set" {print $2; exit}' "$WORK/my_full_backup.out")
  archive_measure my $c my_marker my_load
  rec my.src_txns "$(awk '/transactions:/ {print $2; exit}' "$WORK/my.load.out")"
  rec my.src_tps "$(awk '/transactions:/ {gsub(/[(]/, "", $3); printf "%.0f", $3; exit}' "$WORK/my.load.out")"
  local endpos; endpos=$(my_ -e "SHOW MASTER STATUS" | awk '{print $1 ":" $2}')
  archive_stop my $c
  rec my.src_sig "$(my_sig bench_log_src)"
  [ -f "$R/my.err" ] && return 0

  # the base: Ferry's full set restored alone (also the base part of the PITR's time)
  echo "MariaDB: restore the full set; replay the binlog with mariadb-binlog | mariadb…" >&2
  my_ -e "DROP DATABASE IF EXISTS bench_log_nat; CREATE DATABASE bench_log_nat"
  if ! timed my_full "$FERRY" restore create --from "$set" --target "$MY_URL/bench_log_nat" \
      --storage "file://$repo" --jobs "$JOBS" -q; then
    fail my_pitr "\`ferry restore create --from $set\` (the base of both replays)" "$WORK/my_full.out"; return 0
  fi
  # native: the same binlog range (the set's position → the end of the load) replayed
  local start; start=$($HEAD setpos "$repo" $c "$set")
  local sfile=${start#binlog:}; sfile=${sfile%%;*}; local spos=${sfile##*:}; sfile=${sfile%:*}
  local efile=${endpos%:*} epos=${endpos##*:}
  local dir; dir=$(dirname "$(my_ -e "SELECT @@log_bin_basename")")
  local files; files=$(my_ -e "SHOW BINARY LOGS" | awk -v s="$sfile" -v e="$efile" -v d="$dir" \
    '$1 == s {on=1} on {printf "%s/%s ", d, $1} $1 == e {on=0}')
  rec my.range "$sfile:$spos → $efile:$epos"
  # shellcheck disable=SC2086
  timed my_native bash -c "mariadb-binlog --start-position=$spos --stop-position=$epos \
      --rewrite-db='bench_log_src->bench_log_nat' $files | mariadb -h127.0.0.1 -P$FERRY_MYSQL_PORT -uroot" \
    || { cat "$WORK/my_native.out" >&2; exit 1; }
  rec my_native.sig "$(my_sig bench_log_nat)"
  my_ -e "DROP DATABASE bench_log_nat"

  # the latest point as a position: the binlog stamps commits with whole seconds, so a
  # time point includes the last second's transactions only from its end on (docs/pitr.md)
  local until="binlog:$endpos"; rec my.until "$until"
  echo "MariaDB: Ferry's restore to $until…" >&2
  my_ -e "DROP DATABASE IF EXISTS bench_log_pitr; CREATE DATABASE bench_log_pitr"
  if ! timed my_pitr "$FERRY" restore create --from $c --until "$until" --target "$MY_URL/bench_log_pitr" \
      --storage "file://$repo" --jobs "$JOBS" -q; then
    fail my_pitr "\`ferry restore create --from $c --until $until\`" "$WORK/my_pitr.out"
  else
    rec my_pitr.sig "$(my_sig bench_log_pitr)"
    replayed my_pitr
  fi
  my_ -e "DROP DATABASE bench_log_pitr"
  [ $QUICK = 1 ] && return 0
  # the same archive into PostgreSQL (no native tool does this): total time only
  echo "MariaDB → PostgreSQL: Ferry's restore to $until…" >&2
  pg_fresh bench_log_my2pg
  if ! timed my2pg "$FERRY" restore create --from $c --until "$until" --target "$PG_URL/bench_log_my2pg" \
      --storage "file://$repo" --jobs "$JOBS" -q; then
    fail my2pg "\`ferry restore create --from $c --until $until --target postgres://…\`" "$WORK/my2pg.out"
  else
    local sch; sch=$(psql -X -At "${PGH[@]}" -d bench_log_my2pg -c \
      "SELECT table_schema FROM information_schema.tables WHERE table_name = 'sbtest1'" | head -n 1)
    rec my2pg.sig "$(psql -X -At "${PGH[@]}" -d bench_log_my2pg -c \
      "SELECT count(*) || ':' || sum(k) FROM \"$sch\".sbtest1" 2>&1 | tail -n 1)"
  fi
  psql_ -d postgres -c "DROP DATABASE IF EXISTS bench_log_my2pg"
}

for p in $PARTS; do "part_$p"; done

# ---- report ---------------------------------------------------------------------------
err() { [ -f "$R/$1.err" ] && tr '\n|' ' /' < "$R/$1.err" | cut -c1-300; }
arch_row() { # label key
  if [ ! -f "$R/$2.lat" ]; then
    printf "| %s | %s |||||||||\n" "$1" "$(err "$2" || echo "not run")"; return
  fi
  local tps txns arate lat sum
  tps=$(get "$2.src_tps" -); txns=$(get "$2.src_txns" 0); arate=$(get "$2.arate" -)
  read -r p50 p99 mx <<< "$(get "$2.lat")"
  read -r pieces atx arows abytes araw <<< "$(get "$2.sum" "0 0 0 0 0")"
  local ratio=- cover=- unit=pieces
  [ "$arate" != - ] && [ "$tps" != - ] && ratio=$(f %.2f "$arate / $tps")
  [ "$txns" -gt 0 ] 2>/dev/null && cover="$atx / $((txns + 1))"
  if [ "$2" = phys ]; then  # WAL segments: no transaction counts
    arate="n/a (WAL)"; ratio=-; cover=-; unit="WAL segments"
  fi
  printf "| %s | %s | %s | %s | %s | %s / %s / %s | %s | %s | %s |%s\n" "$1" "$tps" "$arate" "$ratio" "$cover" \
    "$p50" "$p99" "$mx" "$(get "$2.catchup" -)" "$(get "$2.rss_peak" -)" "$(f %.1f "$abytes / 1048576") ($pieces $unit)" \
    "$(err "$2" | sed 's/^/ **/; s/$/**/')"
}
same() { [ -n "$1" ] && [ "$1" = "$2" ] && echo "equal" || echo "**differs** ($1 vs $2)"; }
{
  echo "### Log backup and point-in-time restore, ${SECS} s loads ($(date -u +%Y-%m-%d), $(nproc) cores, Ferry $(git rev-parse --short HEAD))"
  echo
  echo "Command: \`bench/log-backup.sh$([ $QUICK = 1 ] && echo " --quick")\` (SECS=$SECS MY_SECS=$MY_SECS CLIENTS=$CLIENTS SCALE=$SCALE SIZE=$SIZE PIECE_SECONDS=$PIECE_SECONDS PARTS=\"$PARTS\"); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "**Archive under load** (latency = now − latest backup point, sampled every second while the load ran; archived txn/s = txns in pieces stored from 5 s into the load to its end ÷ that time)"
  echo
  echo "| source, load | source txn/s | archived txn/s | ratio | txns archived / committed (load + marker) | latency p50 / p99 / max (s) | caught up after the load (s) | archiver peak RSS MB | archive MB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  [[ " $PARTS " = *" pg "* ]] && arch_row "PostgreSQL logical, pgbench -c $CLIENTS -s $SCALE" pg
  [[ " $PARTS " = *" my "* ]] && arch_row "MariaDB logical (row binlog), sysbench oltp_write_only --threads=$CLIENTS, $SIZE rows, ${MY_SECS} s" my
  [[ " $PARTS " = *" phys "* ]] && arch_row "PostgreSQL physical (WAL), pgbench -c $CLIENTS -s $SCALE" phys
  echo
  echo "**Point-in-time restore: replay** (rows = row changes the load made: 4 per pgbench / sysbench transaction, + 1 marker)"
  echo
  echo "| path | rows replayed | seconds | rows/s | ratio to native (rate) | result |"
  echo "|---|---:|---:|---:|---:|---|"
  if [[ " $PARTS " = *" my "* ]] && [ -f "$R/my.src_txns" ]; then
    rows=$(( $(get my.src_txns) * 4 + 1 ))
    nat=$(get my_native.secs)
    if [ -n "$nat" ]; then
      printf "| MariaDB: \`mariadb-binlog\` (%s) \\| \`mariadb\` into a copy of the base (native) | %s | %s | %.0f | 1.00 | %s |\n" \
        "$(get my.range)" "$rows" "$nat" "$(f %f "$rows / $nat")" "$(same "$(get my_native.sig)" "$(get my.src_sig)")"
    fi
    if [ -f "$R/my_pitr.secs" ]; then
      full=$(get my_full.secs); tot=$(get my_pitr.secs); rep=$(f %.2f "$tot - $full")
      frows=$(get my_pitr.rows); frows=${frows:-$rows}
      printf "| MariaDB: Ferry \`restore create --until %s\`, replay part (total %s s − full set alone %s s) | %s | %s | %.0f | %s | %s |\n" \
        "$(get my.until)" "$tot" "$full" "$frows" "$rep" "$(f %f "$frows / $rep")" "$([ -n "$nat" ] && f %.2f "($frows / $rep) / ($rows / $nat)")" "$(same "$(get my_pitr.sig)" "$(get my.src_sig)")"
    else
      echo "| MariaDB: Ferry \`restore create --until\` | $(err my_pitr || err my || echo "not run") | | | | |"
    fi
    if [ -f "$R/my2pg.secs" ]; then
      echo "| MariaDB archive → PostgreSQL: Ferry \`restore create --until\`, full set + replay | $rows | $(get my2pg.secs) (total) | | | count:sum(k) $(get my2pg.sig) (source $(get my.src_sig | cut -d: -f1-2)) |"
    elif [ -f "$R/my2pg.err" ]; then
      echo "| MariaDB archive → PostgreSQL | $(err my2pg) | | | | |"
    fi
  fi
  if [[ " $PARTS " = *" phys "* ]] && [ -f "$R/phys.src_txns" ]; then
    rows=$(( $(get phys.src_txns) * 4 + 1 ))
    rc=$(get nat.recover); nt=$(get nat.total)
    printf "| PostgreSQL physical: pg_basebackup copy (%s s) + WAL recovery, \`restore_command = cp\` from pg_receivewal's archive (%.0f MB), to %s (native) | %s | %s recovery, %s total | %.0f | 1.00 | %s |\n" \
      "$(get nat.copy)" "$(f %f "$(get phys.wal_bytes 0) / 1048576")" "$(get phys.end)" "$rows" "$rc" "$nt" "$(f %f "$rows / $rc")" \
      "$(same "$(get nat.sig)" "$(get phys.src_sig)")"
    if [ -f "$R/phys_pitr.total" ]; then
      prc=$(get phys_pitr.recover)
      printf "| PostgreSQL physical: Ferry \`restore create --until lsn:… --data-dir\` (%s s) + recovery | %s | %s recovery, %s total | %.0f | %s (total time: %s) | %s |\n" \
        "$(get phys_restore.secs)" "$rows" "$prc" "$(get phys_pitr.total)" "$(f %f "$rows / $prc")" "$(f %.2f "$rc / $prc")" \
        "$(f %.2f "$nt / $(get phys_pitr.total)")" "$(same "$(get phys_pitr.sig)" "$(get phys.src_sig)")"
    else
      echo "| PostgreSQL physical: Ferry | $(err phys_pitr || err phys || echo "not run") | | | | |"
    fi
  fi
  if [[ " $PARTS " = *" pg "* ]] && [ -f "$R/pg.src_txns" ]; then
    rows=$(( $(get pg.src_txns) * 4 + 1 ))
    if [ -f "$R/pg_pitr.secs" ]; then
      full=$(get pg_full.secs); tot=$(get pg_pitr.secs); rep=$(f %.2f "$tot - $full")
      frows=$(get pg_pitr.rows); frows=${frows:-$rows}
      ref="-"; [ -f "$R/nat.recover" ] && ref="$(f %.2f "($frows / $rep) / ($(( $(get phys.src_txns) * 4 + 1 )) / $(get nat.recover))") (vs the WAL recovery above, other load run)"
      printf "| PostgreSQL logical: Ferry \`restore create --until %s\` (the latest point), replay part (total %s s − full set alone %s s) | %s | %s | %.0f | %s | %s |\n" \
        "$(get pg.until)" "$tot" "$full" "$frows" "$rep" "$(f %f "$frows / $rep")" "$ref" "$(same "$(get pg.pitr_sig)" "$(get pg.src_sig)")"
    else
      echo "| PostgreSQL logical: Ferry \`restore create --until\` | $(err pg_pitr || err pg || echo "not run") | | | | |"
    fi
  fi
  for k in pg my phys; do [ -f "$R/$k.notes" ] && sed "s/^/- $k: /" "$R/$k.notes"; done
  true
} | tee "$R/report.md"
mkdir -p bench/results
cp "$R/report.md" bench/results/log-backup-latest.md
