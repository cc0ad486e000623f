#!/usr/bin/env bash
# Builds the Debian package rvs_<version>_amd64.deb with Debian's own tools.
#
#   vm-testbed/package.sh [--no-build] [--no-lintian] [--out DIR] [--version V]
#
# --version V packages as version V instead of the workspace version (the VM test builds
# a second, higher version to check that an upgrade keeps an edited conffile).
# 1. cargo builds (release) rvsd, rvsadm and rvs-docgen, unless --no-build (then the
#    binaries already in the target directory are packaged, e.g. CI's release build);
# 2. a binary-only source tree is staged: the binaries, rvsd(8) and rvsadm(8) and
#    rvsadm's bash/zsh/fish completions rendered by rvs-docgen from the CLI definitions,
#    the conffiles and units of vm-testbed/package/, a changelog for the workspace version;
# 3. dpkg-buildpackage -b (debhelper 13: dh_installsystemd, dh_installman, dh_shlibdeps
#    computes the DPDK runtime libraries from the binary's NEEDED entries);
# 4. lintian, failing on any warning or error (the overrides in
#    vm-testbed/package/debian/ say why each one is there), unless --no-lintian.
#
# The .deb lands in DIR (default: $CARGO_TARGET_DIR/debian, or target/debian). The last
# line of output is its path. Needs: cargo, dpkg-dev, debhelper, fakeroot, lintian.
# Dates come from the last commit (SOURCE_DATE_EPOCH), so rebuilding a commit gives the
# same package contents.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG="$ROOT/vm-testbed/package"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT="$TARGET/debian"
VERSION=
build=1
lint=1
while [ $# -gt 0 ]; do
	case $1 in
	--no-build) build=0 ;;
	--no-lintian) lint=0 ;;
	--out)
		OUT=$2
		shift
		;;
	--version)
		VERSION=$2
		shift
		;;
	-h | --help)
		sed -n '2,20s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "package.sh: unknown argument \`$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

need() {
	command -v "$1" >/dev/null || {
		echo "package.sh: $1 is missing: apt-get install $2" >&2
		exit 1
	}
}
need dpkg-buildpackage dpkg-dev
need dh debhelper
need fakeroot fakeroot
[ $lint = 0 ] || need lintian lintian

version=${VERSION:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")}
[ -n "$version" ] || {
	echo "package.sh: no version in [workspace.package] of $ROOT/Cargo.toml" >&2
	exit 1
}
SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

if [ $build = 1 ]; then
	(cd "$ROOT" && cargo build --release --locked -p rvs-controlplane --bin rvsd -p rvsadm -p rvs-docgen)
fi
BIN="$TARGET/release"
for b in rvsd rvsadm rvs-docgen; do
	[ -x "$BIN/$b" ] || {
		echo "package.sh: $BIN/$b is missing (build it, or drop --no-build)" >&2
		exit 1
	}
done

work=$(mktemp -d "${TMPDIR:-/tmp}/rvs-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/rvs-$version"
mkdir -p "$src"/{bin,man,conf/default,libexec,examples,completion/{bash,zsh,fish}}
cp -a "$PKG/debian" "$src/debian"
install -m 0755 "$BIN/rvsd" "$BIN/rvsadm" "$src/bin/"
install -m 0644 "$PKG/files/rvs.toml" "$src/conf/rvs.toml"
install -m 0644 "$PKG/files/default/rvs" "$src/conf/default/rvs"
install -m 0755 "$PKG/files/libexec/rvs-hugepages" "$PKG/files/libexec/rvs-bind-nics" "$src/libexec/"
install -m 0644 "$ROOT"/config/*.toml "$src/examples/"
"$BIN/rvs-docgen" man rvsd >"$src/man/rvsd.8"
"$BIN/rvs-docgen" man rvsadm >"$src/man/rvsadm.8"
"$BIN/rvs-docgen" completion bash >"$src/completion/bash/rvsadm"
"$BIN/rvs-docgen" completion zsh >"$src/completion/zsh/_rvsadm"
"$BIN/rvs-docgen" completion fish >"$src/completion/fish/rvsadm.fish"
# The shipped example must be one rvsd accepts.
"$BIN/rvsd" --check --config "$src/conf/rvs.toml" >/dev/null

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
	echo "rvs ($version) unstable; urgency=medium"
	echo
	echo "  * Built from commit $commit."
	echo
	echo " -- rvs maintainers <maintainers@rvs.example>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$src/debian/changelog"

(cd "$src" && dpkg-buildpackage -b -us -uc --no-pre-clean >"$work/build.log" 2>&1) || {
	cat "$work/build.log" >&2
	echo "package.sh: dpkg-buildpackage failed (log above)" >&2
	exit 1
}
deb="$work/rvs_${version}_amd64.deb"
[ -f "$deb" ] || {
	echo "package.sh: dpkg-buildpackage made no $deb" >&2
	exit 1
}
if [ $lint = 1 ]; then
	# --fail-on warning: a new warning fails the build; accepted ones are overridden
	# (with the reason) in vm-testbed/package/debian/rvs.lintian-overrides.
	lintian --fail-on error,warning --info "$deb" >&2
fi
mkdir -p "$OUT"
cp "$deb" "$OUT/"
echo "$OUT/rvs_${version}_amd64.deb"
