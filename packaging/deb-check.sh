#!/usr/bin/env bash
# Checks built Signet Debian packages (O1): for each .deb given, its control
# fields (name, architecture matching the file name, the dependencies the
# binary needs), that the binary, the unit and the default config are where
# the units and docs say, that the config is a conffile, that the packaged
# unit and config are the ones in systemd/ and packaging/, that the agent's
# postinst makes its user; then lintian, when installed, with errors fatal.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
[ "$#" -gt 0 ] || { echo "usage: deb-check.sh PACKAGE.deb..." >&2; exit 1; }

fail() { echo "$deb: $*" >&2; exit 1; }

for deb in "$@"; do
	[ -f "$deb" ] || { echo "$deb: no such package" >&2; exit 1; }
	package=$(dpkg-deb -f "$deb" Package)
	arch=$(dpkg-deb -f "$deb" Architecture)
	depends=$(dpkg-deb -f "$deb" Depends)
	case "$package" in
	signet-hub) role=hub; verb=serve; needs="libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good mosquitto" ;;
	signet-agent) role=agent; verb=run; needs="libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-alsa gstreamer1.0-x adduser" ;;
	*) fail "unexpected package $package" ;;
	esac
	[[ "$(basename "$deb")" == *"_$arch.deb" ]] || fail "Architecture $arch does not match the file name"
	for dep in $needs; do
		grep -qE "(^|, )$dep( |,|$)" <<<"$depends" || fail "Depends lacks $dep: $depends"
	done

	contents=$(dpkg-deb -c "$deb")
	for path in "./usr/bin/$package" "./etc/signet/$role.toml"; do
		grep -qE " $path\$" <<<"$contents" || fail "does not install $path"
	done
	# cargo-deb puts units under /usr/lib (merged /usr, bookworm) or /lib.
	unit=$(grep -oE "\./(usr/)?lib/systemd/system/$package\.service\$" <<<"$contents") ||
		fail "does not install the unit $package.service"
	grep -qE '^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/'"$package"'$' <<<"$contents" || fail "/usr/bin/$package is not root-owned 0755"

	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	dpkg-deb -x "$deb" "$work/fs"
	dpkg-deb -e "$deb" "$work/control"
	grep -qx "/etc/signet/$role.toml" "$work/control/conffiles" || fail "/etc/signet/$role.toml is not a conffile"
	cmp -s "$work/fs/etc/signet/$role.toml" "$root/packaging/$role.toml" || fail "etc/signet/$role.toml differs from packaging/$role.toml"
	cmp -s "$work/fs/$unit" "$root/systemd/$package.service" || fail "the unit differs from systemd/$package.service"
	grep -q "^ExecStart=/usr/bin/$package $verb --config /etc/signet/$role.toml\$" "$work/fs/$unit" || fail "ExecStart is not /usr/bin/$package $verb --config /etc/signet/$role.toml"
	cmp -s -n 4 <(printf '\177ELF') "$work/fs/usr/bin/$package" || fail "usr/bin/$package is not an ELF binary"
	grep -q "deb-systemd-helper" "$work/control/postinst" || fail "postinst does not register the unit"
	if [ "$role" = agent ]; then
		grep -q "adduser --system --group" "$work/control/postinst" || fail "postinst does not make the signet user"
		grep -q 'rm -rf "${DPKG_ROOT:-}/var/lib/signet-agent"' "$work/control/postrm" 2>/dev/null || fail "postrm does not remove the agent's data on purge"
	fi
	rm -rf "$work"
	trap - EXIT
	echo "$deb: $package $arch: binary, unit, conffile /etc/signet/$role.toml, depends: ok"

	if command -v lintian >/dev/null 2>&1; then
		lintian --fail-on error --suppress-tags-from-file "$root/packaging/lintian-overrides" "$deb"
		echo "$deb: lintian: no errors"
	else
		echo "$deb: lintian not installed: skipped (apt-get install lintian)"
	fi
done
