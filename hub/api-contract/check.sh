#!/usr/bin/env bash
# The API contract checks of `make test` (issue 15, deliver 7), against a
# real hub: `init` on a temporary data dir, `serve` on free loopback ports,
# an admin login, then
#   check.sh HUB_BINARY VENV validate   openapi-spec-validator on the served
#                                       GET /api/v1/openapi.json
#   check.sh HUB_BINARY VENV fuzz       schemathesis on every operation, as
#                                       the logged-in admin, bounded: a few
#                                       examples per operation and a time cap
# VENV is a Python venv holding requirements.txt (the Makefile makes it).
# The hub is killed by its own pid on exit; its log is printed on failure.
set -euo pipefail

bin=$(realpath "$1")
venv=$(realpath "$2")
mode=$3

# schemathesis bounds: examples per operation, and the whole run's budget.
MAX_EXAMPLES=${API_FUZZ_EXAMPLES:-3}
MAX_TIME=${API_FUZZ_SECONDS:-120}
SEED=${API_FUZZ_SEED:-15}

dir=$(mktemp -d)
hub_pid=
cleanup() {
	status=$?
	if [ -n "$hub_pid" ]; then kill -KILL "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
	if [ "$status" != 0 ] && [ -f "$dir/hub.log" ]; then
		echo "--- hub log (last 40 lines) ---"; tail -n 40 "$dir/hub.log"
	fi
	rm -rf "$dir"
	exit "$status"
}
trap cleanup EXIT

"$bin" init --data "$dir/data" >"$dir/init.txt"
password=$(sed -n 's/^admin password: //p' "$dir/init.txt")
[ -n "$password" ] || { echo "signet-hub init printed no admin password"; exit 1; }

SIGNET_HUB_DATA="$dir/data" SIGNET_HUB_HTTP_LISTEN=127.0.0.1:0 SIGNET_HUB_BROKER_LISTEN=127.0.0.1:0 \
	SIGNET_LOG=warn "$bin" serve >"$dir/hub.log" 2>&1 &
hub_pid=$!
base=
for _ in $(seq 1 120); do
	base=$(grep -o 'listening on http://[0-9.:]*' "$dir/hub.log" | head -n 1 | sed 's/^listening on //' || true)
	[ -n "$base" ] && break
	kill -0 "$hub_pid" 2>/dev/null || { echo "signet-hub serve exited"; exit 1; }
	sleep 0.25
done
[ -n "$base" ] || { echo "signet-hub did not listen within 30 s"; exit 1; }

py="$venv/bin/python"
"$py" - "$base" "$dir/openapi.json" <<'PY'
import sys, urllib.request
base, out = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=10) as r:
    open(out, "wb").write(r.read())
PY

case "$mode" in
validate)
	"$venv/bin/openapi-spec-validator" "$dir/openapi.json"
	;;
fuzz)
	token=$("$py" - "$base" "$password" <<'PY'
import json, sys, urllib.request
base, password = sys.argv[1], sys.argv[2]
body = json.dumps({"name": "admin", "password": password}).encode()
req = urllib.request.Request(f"{base}/api/v1/session", data=body,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.load(r)["token"])
PY
)
	# The checks that make the contract: no 5xx, only documented statuses,
	# bodies and content types as documented.
	#
	# Excluded, with the reason:
	# - POST/DELETE /api/v1/session (login, logout): a generated login
	#   counts against the admin's lockout, and a logout revokes the token
	#   every other operation runs with; both are covered by hub/tests.
	# - POST /api/v1/users/{id}/revoke-sessions: the same, for the admin's
	#   own id, which the fuzzer reads from GET /api/v1/users.
	# - GET /api/v1/fleet/stream: server-sent events that never end (the
	#   request would only time out); covered by hub/tests/fleet_stream.rs.
	# - negative_data_rejection / positive_data_acceptance /
	#   unsupported_method / missing_required_header / ignored_auth: these
	#   depend on axum's default 404/405 and rejection answers, which are not
	#   yet the JSON error contract (issue 15, deliver 6, branch
	#   `hardening`); turn them on once that has merged.
	cd "$dir"
	"$venv/bin/schemathesis" run "$dir/openapi.json" --url "$base" \
		-H "Authorization: Bearer $token" \
		--checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
		--phases examples,coverage,fuzzing \
		--mode positive \
		--max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --seed "$SEED" --no-shrink \
		--workers 2 --request-timeout 20 \
		--exclude-path /api/v1/session --exclude-path '/api/v1/users/{id}/revoke-sessions' \
		--exclude-path /api/v1/fleet/stream \
		--suppress-health-check all \
		--report junit --report-dir "$dir/report"
	;;
*)
	echo "usage: $0 HUB_BINARY VENV validate|fuzz"; exit 2
	;;
esac
