#!/usr/bin/env bash
# Verifies the systemd units with `systemd-analyze verify` (O1).
#
# verify checks that ExecStart's binary exists and is executable, so the
# units are verified as shipped except that /usr/bin/signet-* is rewritten
# to the freshly built binaries in BIN_DIR (the first argument). Any line
# about a signet unit (verify only warns on an unknown key or a bad value
# and still exits 0) fails the check.
set -euo pipefail

bin_dir=$(cd "${1:?usage: units-check.sh BIN_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
units=(signet-hub.service signet-agent.service)

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-analyze missing: install the Debian package systemd (make deps does)" >&2
	exit 1
fi
for unit in "${units[@]}"; do
	binary="$bin_dir/${unit%.service}"
	[ -x "$binary" ] || { echo "$binary is not built" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "${units[@]}"; do
	sed "s|/usr/bin/signet-|$bin_dir/signet-|g" "$root/systemd/$unit" >"$work/$unit"
done

status=0
output=$(cd "$work" && systemd-analyze verify --man=no "${units[@]}" 2>&1) || status=$?
if [ -n "$output" ]; then
	printf '%s\n' "$output"
fi
if [ "$status" -ne 0 ] || grep -q 'signet-' <<<"$output"; then
	echo "systemd-analyze verify: the units have problems (above)" >&2
	exit 1
fi
echo "systemd-analyze verify: ${units[*]} pass"
