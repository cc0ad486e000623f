#!/bin/bash
# Builds ipvsadm 1.31, from Debian's source package, against tests/compat/fake_libipvs.c
# (a libipvs that keeps the table in a text file), for tests/rvsadm_compat.rs.
# Usage: build-ipvsadm.sh OUTDIR   -> OUTDIR/ipvsadm (cached: a second run only checks it).
# Needs a deb-src entry for the distribution's archive (added if missing), dpkg-dev
# (apt-get source), gcc and libpopt-dev. ipvsadm's source is fetched at run time into
# OUTDIR and never enters the repository.
set -euo pipefail
out=${1:?usage: build-ipvsadm.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp="$out/ipvsadm.stamp"
# One build at a time (dev and release test runs share target/tmp).
exec 9>"$out/.lock"
flock 9
want=$(cat "$here/fake_libipvs.c" "$here/build-ipvsadm.sh" | sha256sum | cut -d" " -f1)
if [ -x "$out/ipvsadm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
src="$out/ipvsadm-1.31"
if [ ! -f "$src/ipvsadm.c" ]; then
    if ! ls "$out"/ipvsadm_1.31.orig.tar.gz >/dev/null 2>&1; then
        if ! apt-get source --help >/dev/null 2>&1 || ! grep -rqs '^Types: deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            if [ "$(id -u)" != 0 ]; then
                echo "build-ipvsadm.sh: needs a deb-src entry and dpkg-dev; run as root once" >&2
                exit 1
            fi
            command -v dpkg-source >/dev/null || apt-get install -y -q dpkg-dev >&2
            # The distribution's own archive, as a deb-src entry beside its deb entry.
            if [ -f /etc/apt/sources.list.d/debian.sources ]; then
                sed -n 's/^Types: deb$/Types: deb-src/p; /^URIs:\|^Suites:\|^Components:\|^Signed-By:/p; /^$/p' \
                    /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/rvs-deb-src.sources
            else
                sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/rvs-deb-src.list
            fi
            apt-get update -q >&2
        fi
        # Only the upstream tarball is needed; the Debian diff is not.
        (cd "$out" && apt-get source --download-only ipvsadm >&2) || true
    fi
    # The upstream tarball of ipvsadm 1.31 as Debian ships it (bookworm's 1:1.31-1).
    echo "7276bcf214f31051188b2e44f11029e57303f37e54126e517000c1b2123a6d4e  $out/ipvsadm_1.31.orig.tar.gz" |
        sha256sum -c --quiet - >&2
    tar -C "$out" -xzf "$out"/ipvsadm_1.31.orig.tar.gz
fi
if [ ! -f /usr/include/popt.h ]; then
    [ "$(id -u)" = 0 ] && apt-get install -y -q libpopt-dev >&2
fi
cc -O0 -g -w -o "$out/ipvsadm.new" \
    -I "$src/libipvs" -I "$src" \
    -DVERSION='"1.31"' -DSCHEDULERS='"rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"' \
    -DPE_LIST='"sip"' -DHAVE_NET_IP_VS_H -Dfopen=fake_ipvs_fopen \
    "$src/ipvsadm.c" "$src/config_stream.c" "$src/dynamic_array.c" \
    -x c "$here/fake_libipvs.c" -lpopt
mv "$out/ipvsadm.new" "$out/ipvsadm"
echo "$want" > "$stamp"
