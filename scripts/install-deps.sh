#!/usr/bin/env bash
# Installs what Ferry's tests and demo need on a fresh Debian/Ubuntu machine:
# PostgreSQL and MariaDB server binaries (the tests start throwaway servers of their
# own; the machine's services are not used), moto's S3 server (in a venv under
# ~/.cache/ferry) and cargo-nextest. Idempotent.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql postgresql-client)
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v mariadb-backup >/dev/null 2>&1 || need+=(mariadb-backup)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # no service starts during the install: the tests start their own servers
  echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
# An S3-protocol server for the backup repository tests (crates/ferry-testkit/src/s3.rs
# starts it): moto's server from PyPI, in a venv of its own.
s3_venv="${HOME}/.cache/ferry/s3-venv"
if ! "$s3_venv/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
  echo "installing moto[server] into $s3_venv (S3 server for the backup tests)"
  mkdir -p "$(dirname "$s3_venv")"
  rm -rf "$s3_venv"
  if ! python3 -m venv "$s3_venv" >/dev/null 2>&1; then
    rm -rf "$s3_venv"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
    python3 -m venv "$s3_venv"
  fi
  "$s3_venv/bin/python" -m pip install -q --disable-pip-version-check 'moto[server,s3]>=5,<6'
  "$s3_venv/bin/python" -c 'import moto.server'
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
