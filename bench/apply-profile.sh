#!/usr/bin/env bash
# Where the change stream's apply time goes: a backlog of N one-row source
# transactions (W2-like) applied by `ferry run --exit-when-caught-up`, PostgreSQL →
# PostgreSQL and MariaDB → MariaDB (source and target databases on one server).
# The task is stopped, the transactions run on the source, then the timed run
# drains them. With PERF=1 the run is recorded system-wide (`perf record -a -g`):
# CPU samples per process (ferry, the target's backend, the source's log sender)
# and ferry's top frames go to $OUT.perf.txt.
#
#   bench/apply-profile.sh [txns=100000] [kind=update|delete|insert] [engines="postgres mariadb"]
#   PERF=1 OUT=/tmp/prof FERRY_BIN=path/to/ferry bench/apply-profile.sh 100000 update postgres
#
# Prints one table row per engine: engine, kind, txns, seconds, txn/s, ferry CPU s.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; KIND=${2:-update}; ENGINES=${3:-"postgres mariadb"}
PERF=${PERF:-0}; OUT=${OUT:-/tmp/apply-profile}; FERRY=${FERRY_BIN:-target/release/ferry}
[ -x "$FERRY" ] || cargo build --release -q --bin ferry --bin ferry-sandbox
eval "$(target/release/ferry-sandbox)"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
my() { mariadb -h 127.0.0.1 -P "$FERRY_MYSQL_PORT" -u root -N -B "$@"; }
pg() { psql -qAtX -v ON_ERROR_STOP=1 --no-psqlrc -c "SET client_min_messages = warning" "${FERRY_PG_URL%/*}/$1" -c "$2"; }

case $KIND in
  update) stmt_pg="UPDATE t SET n = n + 1 WHERE id = i"; stmt_my="UPDATE t SET n = n + 1 WHERE id = i"; seed=$N ;;
  delete) stmt_pg="DELETE FROM t WHERE id = i"; stmt_my="DELETE FROM t WHERE id = i"; seed=$N ;;
  insert) stmt_pg="INSERT INTO t VALUES (i, 'row ' || i, 1)"; stmt_my="INSERT INTO t VALUES (i, concat('row ', i), 1)"; seed=0 ;;
  *) echo "kind: update, delete or insert" >&2; exit 2 ;;
esac

timed() { # engine task -> "seconds ferry_cpu"
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$PERF" = 1 ]; then
    perf record -q -a -g -F 499 -o "$OUT.$1.data" -- \
      /usr/bin/time -f '%U %S' -o "$DIR/cpu" "$FERRY" run "$2" --quiet --exit-when-caught-up >"$DIR/run.log" 2>&1
  else
    /usr/bin/time -f '%U %S' -o "$DIR/cpu" "$FERRY" run "$2" --quiet --exit-when-caught-up >"$DIR/run.log" 2>&1
  fi || { cat "$DIR/run.log"; exit 1; }
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(awk '{print $1 + $2}' "$DIR/cpu")"
}

report_perf() { # engine
  [ "$PERF" = 1 ] || return 0
  {
    echo "### $1 $KIND: CPU samples per process"
    perf report -i "$OUT.$1.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 || true
    echo "### $1 $KIND: ferry's top frames (self)"
    perf report -i "$OUT.$1.data" --comm ferry,tokio-runtime-w --no-children --sort sym --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -40 || true
    echo "### $1 $KIND: server top frames (self)"
    perf report -i "$OUT.$1.data" --comm postgres,mariadbd --no-children --sort comm,dso,sym --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -30 || true
  } >>"$OUT.perf.txt"
}

rows=()
for engine in $ENGINES; do
  task=$DIR/$engine.yaml
  if [ "$engine" = mariadb ]; then
    my -e "DROP DATABASE IF EXISTS prof_src; DROP DATABASE IF EXISTS prof_dst; CREATE DATABASE prof_src; CREATE DATABASE prof_dst; USE prof_src;
           CREATE TABLE prof_src.t (id bigint PRIMARY KEY, v varchar(40), n int);
           INSERT INTO prof_src.t SELECT seq, concat('row ', seq), 1 FROM seq_1_to_$((seed > 0 ? seed : 1)) WHERE $seed > 0"
    src="${FERRY_MYSQL_URL%/}/prof_src"; dst="${FERRY_MYSQL_URL%/}/prof_dst"
    printf 'name: prof-%s-%s\nkind: migration\nmode: full+incremental\nsource: %s\ntarget: %s\nobjects:\n  rename:\n    prof_src: prof_dst\n' "$engine" "$$" "$src" "$dst" >"$task"
    # one statement per transaction (autocommit), sent by one client session
    load() { seq 1 "$N" | sed "s/.*/$(echo "$stmt_my" | sed 's/\bi\b/\&/g');/" | my prof_src; }
    count() { my -e "SELECT count(*), coalesce(sum(n), 0) FROM prof_dst.t"; }
    srccount() { my -e "SELECT count(*), coalesce(sum(n), 0) FROM prof_src.t"; }
  else
    pg postgres "DROP DATABASE IF EXISTS prof_src" >/dev/null; pg postgres "DROP DATABASE IF EXISTS prof_dst" >/dev/null
    pg postgres "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'ferry_prof%' AND NOT active" >/dev/null
    pg postgres "CREATE DATABASE prof_src" >/dev/null; pg postgres "CREATE DATABASE prof_dst" >/dev/null
    pg prof_src "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(40), n int);
      INSERT INTO t SELECT g, 'row ' || g, 1 FROM generate_series(1, $seed) g;
      CREATE PROCEDURE w2(k int) LANGUAGE plpgsql AS \$\$ BEGIN FOR i IN 1..k LOOP $stmt_pg; COMMIT; END LOOP; END \$\$" >/dev/null
    src="${FERRY_PG_URL%/*}/prof_src"; dst="${FERRY_PG_URL%/*}/prof_dst"
    printf 'name: prof-%s-%s\nkind: migration\nmode: full+incremental\nsource: %s\ntarget: %s\n' "$engine" "$$" "$src" "$dst" >"$task"
    load() { pg prof_src "CALL w2($N)" >/dev/null; }
    count() { pg prof_dst "SELECT count(*), coalesce(sum(n), 0) FROM t" | tr '|' '\t'; }
    srccount() { pg prof_src "SELECT count(*), coalesce(sum(n), 0) FROM t" | tr '|' '\t'; }
  fi
  # copy, then stop: the backlog builds while the task is not running
  "$FERRY" run "$task" --quiet --exit-when-caught-up >"$DIR/copy.log" 2>&1 || { cat "$DIR/copy.log"; exit 1; }
  load
  read -r secs cpu < <(timed "$engine" "$task")
  [ "$(count)" = "$(srccount)" ] || { echo "$engine: target differs: $(count) vs $(srccount)" >&2; exit 1; }
  "$FERRY" end "$task" >/dev/null 2>&1 || true
  report_perf "$engine"
  rows+=("| $engine → $engine | $KIND | $N | $(printf %.2f "$secs") s | $(printf %.0f "$(echo "$N / $secs" | bc -l)") | $cpu s |")
  if [ "$engine" = mariadb ]; then my -e "DROP DATABASE prof_src; DROP DATABASE prof_dst"; else
    pg postgres "DROP DATABASE prof_src" >/dev/null; pg postgres "DROP DATABASE prof_dst" >/dev/null; fi
done
printf '%s\n' "${rows[@]}"
