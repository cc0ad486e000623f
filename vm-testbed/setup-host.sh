#!/usr/bin/env bash
# Prepares a Debian 12 host (or VM) to build rvs and run its netns lab. Idempotent; run as root.
#
#   - installs the packages below when they are missing (one `apt-get update` first, if needed):
#     DPDK 22.11 (libdpdk-dev, dpdk-dev with dpdk-testpmd), libclang and clang for bindgen, a C
#     toolchain for linking, and the lab's tools (iproute2, ping, arping, ethtool, tcpdump, curl,
#     python3, socat, netcat, jq), and the end-to-end benchmark's (perf/e2e/run.sh: wrk, iperf3,
#     HAProxy, nftables, nginx), whose daemons are installed but not started or enabled, and
#     valgrind (callgrind, for the instruction-count guard perf/guard.sh), dpkg-dev and
#     libpopt-dev (rvsadm_compat builds ipvsadm 1.31 from Debian's source package), and
#     keepalived (the VRRP peer of the HA lab test, run in a lab namespace, never as a host
#     service), bird2 (BIRD 2: the BGP and BFD speaker of the scale-out lab, run in lab
#     namespaces by vm-testbed/lab.sh router-bgp and start-lb, never as a host service),
#     hping3 (floods), and debhelper, fakeroot, lintian, groff, man-db and systemd
#     (vm-testbed/package/check.sh builds and checks the Debian package);
#   - reserves 2 MiB hugepages so that at least HUGEPAGES_FREE (default 512) are free, never
#     lowering an existing reservation, and mounts hugetlbfs on /dev/hugepages if no hugetlbfs is
#     mounted. The budget, in 2 MiB pages: perf/bench.sh dpdk's generator, testpmd and rvsd
#     EALs 256 (perf/dpdk/run.sh checks it) plus that rvsd's connection table (262144 entries:
#     slab 8 + index 2 + ring 1 = 11); a lab rvsd ~20 for its packet pool plus 11 per worker
#     for its table at the default conn_capacity, two instances at most (HA, 2-worker
#     configs: under 70); the tests' largest table (1M entries, conn_table.rs) 43 while it
#     runs. 512 covers them all at once. rvsd and the benchmarks put their connection tables
#     on these pages when enough are free and fall back to transparent huge pages (rvsd logs
#     how many were missing); perf/bench.sh conn at 10M entries wants 422 more and pipeline
#     --flows 10000000 about 930: for those figures run e.g. HUGEPAGES_FREE=1536 (3 GiB);
#   - checks that cargo is there (it does not install Rust; rust-toolchain.toml pins the version).
#
# The hugepage reservation does not survive a reboot; add `vm.nr_hugepages = 512` to
# /etc/sysctl.d/ (or hugepages=512 to the kernel command line) to make it permanent.
set -euo pipefail

PACKAGES=(
    libdpdk-dev dpdk-dev libclang-dev clang pkg-config build-essential
    iproute2 iputils-ping arping ethtool tcpdump curl python3 socat netcat-openbsd jq
    wrk iperf3 haproxy nftables nginx
    valgrind dpkg-dev libpopt-dev
    keepalived
    bird2
    hping3
    debhelper fakeroot lintian groff-base man-db systemd
)
# Daemons the benchmark runs itself inside the lab's namespaces: their packages' services must
# not start on the host (nginx would take the host's :80, and its package fails to configure
# when :80 is taken). PACKAGE or PACKAGE:SERVICE when the unit is named otherwise.
NO_SERVICE=(haproxy nginx keepalived bird2:bird)
HUGEPAGES_FREE=${HUGEPAGES_FREE:-512}
HP_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB

say() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, reserves hugepages); try: sudo bash $0"

# --- packages -----------------------------------------------------------------------------
installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 (bookworm) and derivatives"
missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists once, unless they look fresh (less than a day old).
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]]; then
        say "apt-get update"
        apt-get update -q || die "apt-get update failed (network or sources.list?)"
    fi
    # Debian's policy-rc.d convention: exit 101 = "do not start services" while installing. Only
    # when the host has no policy of its own, and removed again right after.
    policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# setup-host.sh (rvs): no service starts during its apt-get install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    rc=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [[ -z "$policy" ]] || rm -f "$policy"
    ((rc == 0)) || die "apt-get install failed for: ${missing[*]} (DPDK 22.11 needs Debian 12 bookworm or newer)"
    # And not at boot either, for the ones installed just now (an existing setup is left alone).
    if [[ -d /run/systemd/system ]]; then
        for entry in "${NO_SERVICE[@]}"; do
            p=${entry%%:*}
            unit=${entry#*:}
            if [[ " ${missing[*]} " == *" $p "* ]]; then
                systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
            fi
        done
    fi
else
    say "packages: all present (${#PACKAGES[@]})"
fi
pkg-config --exists libdpdk || die "pkg-config cannot find libdpdk after installing libdpdk-dev"
say "DPDK $(pkg-config --modversion libdpdk) found by pkg-config"

# --- hugepages ----------------------------------------------------------------------------
[[ -d "$HP_DIR" ]] || die "this kernel has no 2 MiB hugepages ($HP_DIR missing); DPDK needs them"
nr=$(cat "$HP_DIR/nr_hugepages")
free=$(cat "$HP_DIR/free_hugepages")
if ((free < HUGEPAGES_FREE)); then
    want=$((nr + HUGEPAGES_FREE - free))
    say "hugepages: $free of $nr free; reserving $want (2 MiB each)"
    echo "$want" >"$HP_DIR/nr_hugepages"
    nr=$(cat "$HP_DIR/nr_hugepages")
    free=$(cat "$HP_DIR/free_hugepages")
    ((free >= HUGEPAGES_FREE)) ||
        die "only $free free hugepages after asking for $want (memory too fragmented or too small?); free memory, or boot with hugepages=$want"
    say "hugepages: $free of $nr free"
else
    say "hugepages: $free of $nr free (need $HUGEPAGES_FREE), nothing to do"
fi
if awk '$3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
    say "hugetlbfs: mounted at $(awk '$3 == "hugetlbfs" { print $2; exit }' /proc/mounts)"
else
    say "hugetlbfs: mounting on /dev/hugepages"
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages || die "cannot mount hugetlbfs on /dev/hugepages"
fi

# --- Rust ---------------------------------------------------------------------------------
if command -v cargo >/dev/null; then
    say "cargo: $(command -v cargo) ($(cargo --version 2>/dev/null || echo 'version unknown'))"
else
    user_cargo=""
    if [[ -n "${SUDO_USER:-}" ]]; then
        user_home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
        [[ -x "$user_home/.cargo/bin/cargo" ]] && user_cargo="$user_home/.cargo/bin"
    fi
    if [[ -n "$user_cargo" ]]; then
        die "cargo is not on root's PATH (sudo resets it); keep your Rust install with: sudo env \"PATH=$user_cargo:\$PATH\" RUSTUP_HOME=$user_home/.rustup CARGO_HOME=$user_home/.cargo bash vm-testbed/test.sh (or demo.sh)"
    fi
    die "cargo not found; install Rust with rustup (https://rustup.rs): curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh, then open a new shell (rust-toolchain.toml selects the version)"
fi

# --- the lab's kernel features ------------------------------------------------------------
if ! ip netns list >/dev/null 2>&1; then
    die "'ip netns' does not work here; the lab needs network namespaces"
fi
# The real servers decapsulate IPIP in userspace into a TUN device (vm-testbed/tools/ipip_decap.py).
if [[ ! -c /dev/net/tun ]]; then
    modprobe tun 2>/dev/null || true
    [[ -c /dev/net/tun ]] ||
        die "/dev/net/tun is missing (no tun module?); the lab's tunnel-mode real servers need TUN devices"
fi
say "host ready"
