#!/usr/bin/env bash
# Fuzzes the service's REST API with schemathesis against the OpenAPI document it
# serves (/api/v1/openapi.json): starts a real `ferry serve` on 127.0.0.1 with a
# throwaway data directory and a known admin token, runs a bounded number of
# generated requests per operation with the admin token, and stops the server.
# Fails on a 5xx, a status code the document does not list for that operation, a
# wrong content type, or a body that does not match the documented schema.
#
#   scripts/api-fuzz.sh     # API_FUZZ_EXAMPLES (default 30) generated requests per operation
#
# Installs schemathesis (pip) if missing. Where the system allows it (unshare), the
# server and schemathesis run in a network namespace of their own with only a
# loopback interface, so nothing a generated request names (a webhook's host, a task's
# database) is ever looked up or contacted outside this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${API_FUZZ_EXAMPLES:-30}"

if [ -z "${FERRY_API_FUZZ_INNER:-}" ]; then
  if ! command -v schemathesis >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check schemathesis
  fi
  # FERRY_BIN: a ferry binary already built (scripts/test.sh passes the one nextest
  # built; a plain `cargo build` of the same crate would rebuild much of it)
  if [ -z "${FERRY_BIN:-}" ]; then
    cargo build -q --locked -p ferry
    export FERRY_BIN=target/debug/ferry
  fi
  if unshare -rn true 2>/dev/null; then
    exec env FERRY_API_FUZZ_INNER=isolated unshare -rn "$0" "$@"
  fi
  echo "api-fuzz: no network namespace (unshare); leaving out the webhook operation, which resolves host names" >&2
  export FERRY_API_FUZZ_INNER=shared
fi
exclude=()
if [ "$FERRY_API_FUZZ_INNER" = isolated ]; then
  ip link set lo up
else
  exclude=(--exclude-path /api/v1/tenants/{name}/webhook)
fi

dir="$(mktemp -d)"
token="api-fuzz-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
FERRY_ADMIN_TOKEN="$token" FERRY_LOG=info "$FERRY_BIN" serve \
  --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/serve.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.log" >&2; exit 1; }
  sleep 0.2
done

# a tenant and a task for the operations on one (else they only ever see 404); the
# task's endpoints are closed local ports, so its worker reaches nothing
task="$(python3 - "$port" "$token" <<'PY'
import json, sys, urllib.request
port, token = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))
post("/api/v1/tenants", {"name": "acme", "balance": 100})
spec = ("name: fuzzed\nkind: sync\nmode: full+incremental\n"
        "source: postgres://u@127.0.0.1:1/a\ntarget: mysql://u@127.0.0.1:1/b\n")
print(post("/api/v1/tasks", {"tenant": "acme", "spec": spec})["id"])
PY
)"
# (DELETE gets an id of its own: deleting the task early would leave the rest 404s)
printf '[parameters]\n"path.id" = "%s"\n"path.name" = "acme"\n\n[[operations]]\ninclude-method = "DELETE"\nparameters = { "path.id" = "t000000000000" }\n' \
  "$task" >"$dir/schemathesis.toml"

status=0
# from the temp folder: schemathesis leaves a .schemathesis/ cache where it runs
(cd "$dir" && schemathesis --config-file "$dir/schemathesis.toml" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 1 --phases examples,coverage,fuzzing \
  --generation-database none --no-color --workers 2 \
  --report junit --report-dir "$dir/report" \
  "${exclude[@]}") || status=$?
if [ "$status" -ne 0 ]; then
  echo "---- ferry serve log (last 50 lines)" >&2
  tail -n 50 "$dir/serve.log" >&2
fi
exit "$status"
