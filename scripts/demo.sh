#!/usr/bin/env bash
# Ferry's demo on a fresh Debian/Ubuntu machine: installs what is missing, starts
# throwaway PostgreSQL and MariaDB servers, loads a sample shop database into MariaDB
# (about 420,000 rows), then checks, migrates (MariaDB → PostgreSQL, with the progress
# display) and compares it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked -p ferry -p ferry-testkit
eval "$(target/release/ferry-sandbox)"
echo "throwaway servers: PostgreSQL on port $FERRY_PG_PORT, MariaDB on port $FERRY_MYSQL_PORT"

DB=shop_demo
mariadb --default-character-set=utf8mb4 -h127.0.0.1 -P"$FERRY_MYSQL_PORT" -uroot \
  -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB CHARACTER SET utf8mb4;"
mariadb --default-character-set=utf8mb4 -h127.0.0.1 -P"$FERRY_MYSQL_PORT" -uroot "$DB" < examples/shop/mariadb.sql
psql -q -h127.0.0.1 -p"$FERRY_PG_PORT" -U postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" postgres

mkdir -p .ferry-demo
cat > .ferry-demo/shop.yaml <<YAML
name: shop-demo
kind: migration
mode: full
source: mysql://root@127.0.0.1:$FERRY_MYSQL_PORT/$DB
target: postgres://postgres@127.0.0.1:$FERRY_PG_PORT/$DB
objects:
  include: ["$DB.*"]
  exclude: ["$DB.audit_*"]
  rename: { $DB: shop }
chunk_rows: 50000
YAML
echo; echo "== ferry check";   target/release/ferry check .ferry-demo/shop.yaml
echo; echo "== ferry run";     target/release/ferry run .ferry-demo/shop.yaml
echo; echo "== ferry compare"; target/release/ferry compare .ferry-demo/shop.yaml
echo; echo "The copy is in PostgreSQL: psql -h127.0.0.1 -p$FERRY_PG_PORT -U postgres $DB -c '\\dt shop.*'"
