#!/usr/bin/env bash
# Checks the Debian package without installing it (fast enough for CI; systemd behaviour
# itself is tested in the VM, vm-testbed/test.sh --vm):
#
#   vm-testbed/package/check.sh [--build] [DEB]
#
# Without DEB, runs vm-testbed/package.sh --no-build (reusing the release binaries in the
# target directory; --build builds them first), which also fails on any lintian warning.
# Then checks: the file list (binaries in /usr/sbin, units, man pages, completions,
# examples), the conffiles, Depends (DPDK 22.11 runtime libraries from the binary's NEEDED
# entries, never a -dev package), the man pages (groff without warnings, whatis entries),
# the completion scripts' syntax, the units (systemd-analyze verify), and that the shipped
# /etc/rvs/rvs.toml passes `rvsd --check`. Prints one line per check; exits 1 on the
# first failure, naming it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=--no-build
deb=
for a in "$@"; do
	case $a in
	--build) build= ;;
	*.deb) deb=$a ;;
	*)
		echo "check.sh: unknown argument \`$a'" >&2
		exit 2
		;;
	esac
done
if [ -z "$deb" ]; then
	deb=$("$ROOT/vm-testbed/package.sh" $build | tail -n 1)
fi
[ -f "$deb" ] || {
	echo "check.sh: no package at $deb" >&2
	exit 1
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() { echo "ok: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rvs-pkgcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -e "$deb" "$work/control"

case $(basename "$deb") in
rvs_*_amd64.deb) ok "name $(basename "$deb")" ;;
*) fail "package file name $(basename "$deb") is not rvs_<version>_amd64.deb" ;;
esac

for f in usr/sbin/rvsd usr/sbin/rvsadm usr/libexec/rvs/rvs-hugepages usr/libexec/rvs/rvs-bind-nics; do
	[ -x "$work/root/$f" ] || fail "/$f missing or not executable"
done
for f in lib/systemd/system/rvsd.service lib/systemd/system/rvs-hugepages.service lib/systemd/system/rvs-bind-nics.service \
	etc/rvs/rvs.toml etc/default/rvs usr/share/man/man8/rvsd.8.gz usr/share/man/man8/rvsadm.8.gz \
	usr/share/bash-completion/completions/rvsadm usr/share/zsh/vendor-completions/_rvsadm \
	usr/share/fish/vendor_completions.d/rvsadm.fish usr/share/doc/rvs/copyright \
	usr/share/doc/rvs/examples/lab.toml; do
	[ -f "$work/root/$f" ] || fail "/$f missing"
done
ok "file list"
for f in usr/libexec/rvs/rvs-hugepages usr/libexec/rvs/rvs-bind-nics; do
	sh -n "$work/root/$f" || fail "/$f: shell syntax error"
done

conffiles=$(sort "$work/control/conffiles" | tr '\n' ' ')
[ "$conffiles" = "/etc/default/rvs /etc/rvs/rvs.toml " ] || fail "conffiles are [$conffiles]"
ok "conffiles: $conffiles"

depends=$(sed -n 's/^Depends: //p' "$work/control/control")
for lib in librte-eal23 librte-ethdev23 librte-mbuf23 librte-mempool23 librte-mempool-ring23 librte-net-virtio23; do
	grep -qw -- "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
if grep -q -- '-dev' <<<"$depends"; then fail "Depends names a -dev package: $depends"; fi
ok "Depends: $depends"

for page in rvsd rvsadm; do
	gz="$work/root/usr/share/man/man8/$page.8.gz"
	warnings=$(zcat "$gz" | groff -man -ww -z 2>&1 || true)
	[ -z "$warnings" ] || fail "$page.8: groff warnings: $warnings"
	lexgrog "$gz" >/dev/null || fail "$page.8: no whatis entry (lexgrog)"
done
zcat "$work/root/usr/share/man/man8/rvsadm.8.gz" | grep -q -- '\\-\\-weight' || fail "rvsadm.8 lacks --weight"
zcat "$work/root/usr/share/man/man8/rvsd.8.gz" | grep -q -- '\\-\\-check' || fail "rvsd.8 lacks --check"
ok "man pages render without warnings"

bash -n "$work/root/usr/share/bash-completion/completions/rvsadm" || fail "bash completion: syntax error"
(
	# shellcheck disable=SC1091
	source "$work/root/usr/share/bash-completion/completions/rvsadm"
	COMP_WORDS=(rvsadm -A -t 10.0.0.1:80 -s "")
	COMP_CWORD=5
	COMP_LINE="rvsadm -A -t 10.0.0.1:80 -s "
	COMP_POINT=${#COMP_LINE}
	_rvsadm rvsadm "" -s
	printf '%s\n' "${COMPREPLY[@]}" | grep -qx wrr
) || fail "bash completion does not offer the schedulers after -s"
if command -v zsh >/dev/null; then zsh -n "$work/root/usr/share/zsh/vendor-completions/_rvsadm" || fail "zsh completion: syntax error"; fi
if command -v fish >/dev/null; then fish -n "$work/root/usr/share/fish/vendor_completions.d/rvsadm.fish" || fail "fish completion: syntax error"; fi
ok "completions"

# systemd-analyze verify resolves the binaries by their installed paths: check against the
# extracted tree with the paths rewritten.
units="$work/units"
mkdir -p "$units"
for u in rvsd rvs-hugepages rvs-bind-nics; do
	sed -e "s#/usr/sbin/#$work/root/usr/sbin/#g" -e "s#/usr/libexec/#$work/root/usr/libexec/#g" \
		"$work/root/lib/systemd/system/$u.service" >"$units/$u.service"
done
out=$(cd "$units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$units/rvsd.service" "$units/rvs-hugepages.service" "$units/rvs-bind-nics.service" 2>&1 |
	grep -v -e 'Failed to open /etc/systemd' -e 'dev-hugepages.mount' -e 'is not a valid' -e '^$' || true)
[ -z "$out" ] || fail "systemd-analyze verify: $out"
grep -q '^Type=notify' "$work/root/lib/systemd/system/rvsd.service" || fail "rvsd.service is not Type=notify"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$work/root/lib/systemd/system/rvsd.service" || fail "rvsd.service reload is not SIGHUP"
grep -q '^StartLimitBurst=' "$work/root/lib/systemd/system/rvsd.service" || fail "rvsd.service has no start limit"
ok "units verify"

"$work/root/usr/sbin/rvsd" --check --config "$work/root/etc/rvs/rvs.toml" >/dev/null || fail "the shipped /etc/rvs/rvs.toml does not pass rvsd --check"
ok "/etc/rvs/rvs.toml passes rvsd --check"
echo "package checks passed: $deb"
