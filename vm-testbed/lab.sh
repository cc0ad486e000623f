#!/usr/bin/env bash
# The rvs netns lab: builds, inspects and removes the test topology, and starts and
# stops rvsd inside it.
#
#   vm-testbed/lab.sh up | down | status
#   vm-testbed/lab.sh start-lb lb1|lb2 [CONFIG]
#   vm-testbed/lab.sh stop-lb  lb1|lb2 [--kill]
#   vm-testbed/lab.sh rs-start [dr|nat|fullnat|tunnel]
#   vm-testbed/lab.sh rs-stop
#   vm-testbed/lab.sh router-bgp up|down
#
# Topology (every command is idempotent; run as root):
#
#   namespace    interface  segment    address(es)                         MAC
#   lab-client   eth0       lab-front  10.10.0.2/24 (+ .3 .. .9)           02:00:00:00:10:01
#   lab-lb1      front      lab-front  none: owned by DPDK (rvsd 10.10.0.1) 02:00:00:00:01:01
#                back       lab-back   none: owned by DPDK (rvsd 10.20.0.1) 02:00:00:00:01:02
#                mgmt       lab-mgmt   10.30.0.1/24 (kernel)                02:00:00:00:01:03
#   lab-lb2      front      lab-front  none: owned by DPDK (rvsd 10.10.0.10) 02:00:00:00:02:01
#                back       lab-back   none: owned by DPDK (rvsd 10.20.0.2) 02:00:00:00:02:02
#                mgmt       lab-mgmt   10.30.0.2/24 (kernel)                02:00:00:00:02:03
#   lab-rs1..3   eth0       lab-back   10.20.0.11..13/24, VIPs 10.10.0.100/32 and .101/32 on lo
#                                                                          02:00:00:00:1{1,2,3}:02
#   lab-router   front      lab-front  10.10.0.254/24                      02:00:00:00:fe:01
#                back       lab-back   10.20.0.254/24                      02:00:00:00:fe:02
#
# IPv6 (RFC 3849 documentation prefix, one /64 per segment, the IPv4 last octet written as the
# last group): lab-front 2001:db8:10::/64, lab-back 2001:db8:20::/64, lab-mgmt 2001:db8:30::/64.
#   lab-client 2001:db8:10::2   lab-router 2001:db8:10::254 and 2001:db8:20::254
#   lab-rs1..3 2001:db8:20::11..13, IPv6 VIPs 2001:db8:10::100/128 and ::101/128 on lo
#   lab-lb1 mgmt 2001:db8:30::1, lab-lb2 mgmt 2001:db8:30::2
#   rvsd (config/lab*.toml ipv6_addresses): lb1 2001:db8:10::1 and 2001:db8:20::1, lb2
#   2001:db8:10::10 and 2001:db8:20::2, plus each DPDK port's link-local fe80::<EUI-64 of its MAC>.
# Each kernel address is added `nodad` (no duplicate address detection delay); router
# solicitations and router advertisements are off. IPv6 stays disabled on the DPDK ports'
# kernel interfaces (lab-lb1/2 front and back: the kernel would otherwise answer neighbour
# discovery for the same link-local address as rvsd), on the switch ends, the bridges and
# loopbacks (but the real servers', which hold the IPv6 VIPs). The kernels' MLD reports and
# their neighbour solicitations for one another still reach rvsd: it counts them as drops
# (eth_not_for_us: multicast groups that are not its own; nd_not_for_us: a solicitation for
# another host whose address shares a group with one of rvsd's).
#
# MAC scheme: 02:00:00:00:<host>:<segment> for the host end of each veth, 02:00:00:01:<host>:<segment>
# for its switch end; host 01 lb1, 02 lb2, 10 client, 11-13 rs1-3, fe router; segment 01 front,
# 02 back, 03 mgmt. The DPDK af_xdp (or af_packet) ports take the MAC of their veth, so rvsd's MACs are stable.
#
# The three bridges live in a namespace of their own, lab-sw, so the host's root namespace is not
# touched at all (no bridges, no veths, no sysctls): `down` leaves the host as it was.
#
# lab-lb2's front address is 10.10.0.10, not 10.10.0.2 (DESIGN.md: "as lab-lb1, own addresses .2"),
# because the clients own 10.10.0.2 .. .9; its back address is 10.20.0.2. See config/lab-lb2.toml.
#
# Routes: the client reaches the VIPs through rvsd (10.10.0.100 and .101 via 10.10.0.1;
# 2001:db8:10::100 and ::101 via 2001:db8:10::1), everything else through the router; real
# servers default to the router (10.20.0.254, 2001:db8:20::254: the DR and IPIP return path), which
# forwards IPv4 and IPv6. Tests of NAT mode point the real servers' route for 10.10.0.0/24 (and
# 2001:db8:10::/64) at rvsd (10.20.0.1, 2001:db8:20::1) themselves, or `rs-start nat` does. 10.10.0.101 is the second VIP of the L4 configs (config/lab-{dr,tunnel}*.toml:
# the wrr service, since DR and IPIP cannot map ports to a second service port).
#
# Real-server daemons (rs-start / rs-stop, vm-testbed/tools/): in each lab-rsN, rs_server.py (HTTP
# :80 answering "rsN <peer>", GET /bytes/N, POST /sha256; UDP echo :53 answering "rsN <payload>"),
# twice: rsN-server on IPv4 and rsN-server6 on IPv6 (peers written [address]:port);
# with `fullnat` also toa_reader.py (logs "local:port -> client:port" from the TOA option), with
# `tunnel` also ipip_decap.py (IPIP and IPv6-in-IPv6 decapsulation into a TUN device, as the
# kernel has no ipip or ip6_tunnel
# module); with `nat` the route to 10.10.0.0/24 via rvsd. Each writes run/rsN-<tool>.{pid,log};
# rs-start waits for every tool's `ready` line. Reverse-path filtering is off on the real servers
# (all, default and eth0): decapsulated tunnel packets come in on the TUN device from a client
# that is routed out of eth0, and DR/IPIP replies leave from the VIP.
#
# The bridges do not call netfilter (br_netfilter would drop malformed IPv4 before rvsd sees it).
# IPv6 is on only on the hosts' own interfaces (see the IPv6 plan above).
#
# Transmit checksum offload is off on every veth end: otherwise the kernel hands af_xdp or af_packet (and so
# DPDK) packets with partial checksums, which rvsd would rightly drop.
#
# rvsd runs under vm-testbed/run/ (gitignored): <lb>.pid and <lb>.log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RUN_DIR="$HERE/run"

SW=lab-sw
HOSTS=(lab-client lab-lb1 lab-lb2 lab-rs1 lab-rs2 lab-rs3 lab-router)
START_TIMEOUT=60
STOP_TIMEOUT=15

log() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: vm-testbed/lab.sh up | down | status
       vm-testbed/lab.sh start-lb lb1|lb2 [CONFIG]
       vm-testbed/lab.sh stop-lb  lb1|lb2 [--kill]
       vm-testbed/lab.sh rs-start [dr|nat|fullnat|tunnel]   (default dr)
       vm-testbed/lab.sh rs-stop
       vm-testbed/lab.sh router-bgp up|down
EOF
    exit 2
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces); try: sudo bash $0 $*"
}

need_tools() {
    local t
    for t in ip ethtool curl; do
        command -v "$t" >/dev/null || die "'$t' not found; run: sudo bash vm-testbed/setup-host.sh"
    done
}

ns_exists() { [[ -e "/run/netns/$1" ]]; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# Set a sysctl inside a namespace, quietly; `optional` skips keys the kernel does not have (IPv6).
ns_sysctl() {
    local ns=$1 key=$2 val=$3 path
    path="/proc/sys/${key//.//}"
    if in_ns "$ns" test -e "$path"; then
        in_ns "$ns" sysctl -qw "$key=$val" >/dev/null
    fi
}

# --- up -----------------------------------------------------------------------------------

make_ns() {
    local ns=$1
    if ! ns_exists "$ns"; then
        log "create namespace $ns"
        ip netns add "$ns"
    fi
    in_ns "$ns" ip link set lo up
    # IPv6 off by default: interfaces created later (bridges, DPDK's kernel interfaces, TUN
    # devices) stay silent; veth turns it on for the hosts' own interfaces.
    ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
    ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
    ns_sysctl "$ns" net.ipv6.conf.default.accept_ra 0
    ns_sysctl "$ns" net.ipv6.conf.default.router_solicitations 0
}

# addr6 NS IFNAME ADDRESS/LEN: an IPv6 address without duplicate address detection.
addr6() {
    in_ns "$1" ip -6 addr replace "$3" dev "$2" nodad
}

make_bridge() {
    local br=$1 mac=$2
    if ! in_ns "$SW" ip link show "$br" >/dev/null 2>&1; then
        log "create bridge $br (in $SW)"
        in_ns "$SW" ip link add "$br" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    fi
    in_ns "$SW" ip link set "$br" address "$mac"
    # A plain switch: with br_netfilter, bridged IPv4 would be validated (and malformed packets
    # dropped) before reaching rvsd, which must see them.
    in_ns "$SW" ip link set "$br" type bridge nf_call_iptables 0 nf_call_ip6tables 0 \
        nf_call_arptables 0 >/dev/null 2>&1 || true
    in_ns "$SW" ip link set "$br" up
}

# veth HOST_NS HOST_IF BRIDGE HOST_ID SEGMENT_ID: a veth pair from HOST_NS:HOST_IF to BRIDGE in lab-sw.
veth() {
    local ns=$1 ifname=$2 br=$3 host=$4 seg=$5
    local swif="${ns#lab-}-$ifname"
    local mac="02:00:00:00:$host:$seg" swmac="02:00:00:01:$host:$seg"
    if ! in_ns "$ns" ip link show "$ifname" >/dev/null 2>&1; then
        # A pair is created and deleted as one; a stale switch end would only remain if its
        # host namespace were deleted behind our back, so remove it first.
        in_ns "$SW" ip link del "$swif" >/dev/null 2>&1 || true
        log "create veth $ns:$ifname <-> $SW:$swif on $br"
        ip link add name "$ifname" netns "$ns" address "$mac" type veth \
            peer name "$swif" netns "$SW" address "$swmac"
    fi
    in_ns "$ns" ip link set "$ifname" address "$mac"
    in_ns "$SW" ip link set "$swif" address "$swmac"
    in_ns "$SW" ip link set "$swif" master "$br"
    # IPv6 on the host end, except on the DPDK ports (see the IPv6 plan above).
    local v6off=0
    if [[ "$ns" == lab-lb* && "$ifname" != mgmt ]]; then v6off=1; fi
    ns_sysctl "$ns" "net.ipv6.conf.$ifname.accept_ra" 0
    ns_sysctl "$ns" "net.ipv6.conf.$ifname.router_solicitations" 0
    ns_sysctl "$ns" "net.ipv6.conf.$ifname.disable_ipv6" "$v6off"
    ns_sysctl "$SW" "net.ipv6.conf.$swif.disable_ipv6" 1
    in_ns "$ns" ethtool -K "$ifname" tx off >/dev/null 2>&1 ||
        die "ethtool -K $ifname tx off failed in $ns"
    in_ns "$SW" ethtool -K "$swif" tx off >/dev/null 2>&1 ||
        die "ethtool -K $swif tx off failed in $SW"
    # And no segmentation or receive aggregation: every frame on the wire is one frame for DPDK.
    in_ns "$ns" ethtool -K "$ifname" tso off gso off gro off >/dev/null 2>&1 || true
    in_ns "$SW" ethtool -K "$swif" tso off gso off gro off >/dev/null 2>&1 || true
    in_ns "$SW" ip link set "$swif" up
    in_ns "$ns" ip link set "$ifname" up
}

lab_up() {
    need_root "up"; need_tools
    local ns
    make_ns "$SW"
    local key
    for key in arptables iptables ip6tables; do
        ns_sysctl "$SW" "net.bridge.bridge-nf-call-$key" 0
    done
    for ns in "${HOSTS[@]}"; do make_ns "$ns"; done
    make_bridge lab-front 02:00:00:02:00:01
    make_bridge lab-back 02:00:00:02:00:02
    make_bridge lab-mgmt 02:00:00:02:00:03

    # Client: 10.10.0.2 plus more clients .3 .. .9; the VIP through rvsd, the rest via the router.
    veth lab-client eth0 lab-front 10 01
    local i
    for i in 2 3 4 5 6 7 8 9; do
        in_ns lab-client ip addr replace "10.10.0.$i/24" dev eth0
    done
    in_ns lab-client ip route replace 10.10.0.100/32 via 10.10.0.1 dev eth0
    in_ns lab-client ip route replace 10.10.0.101/32 via 10.10.0.1 dev eth0
    in_ns lab-client ip route replace default via 10.10.0.254 dev eth0
    addr6 lab-client eth0 2001:db8:10::2/64
    in_ns lab-client ip -6 route replace 2001:db8:10::100/128 via 2001:db8:10::1 dev eth0
    in_ns lab-client ip -6 route replace 2001:db8:10::101/128 via 2001:db8:10::1 dev eth0
    in_ns lab-client ip -6 route replace default via 2001:db8:10::254 dev eth0
    ns_sysctl lab-client net.ipv4.conf.all.rp_filter 0
    ns_sysctl lab-client net.ipv4.conf.eth0.rp_filter 0

    # Balancers: DPDK owns front and back (up, no kernel address, kernel stays silent on them);
    # mgmt is a kernel interface for HA peers.
    local n lb
    for n in 1 2; do
        lb="lab-lb$n"
        veth "$lb" front lab-front "0$n" 01
        veth "$lb" back lab-back "0$n" 02
        veth "$lb" mgmt lab-mgmt "0$n" 03
        in_ns "$lb" ip addr flush dev front
        in_ns "$lb" ip addr flush dev back
        in_ns "$lb" ip addr replace "10.30.0.$n/24" dev mgmt
        addr6 "$lb" mgmt "2001:db8:30::$n/64"
        ns_sysctl "$lb" net.ipv4.conf.all.arp_ignore 1
        ns_sysctl "$lb" net.ipv4.conf.front.arp_ignore 8   # never answer ARP on DPDK ports
        ns_sysctl "$lb" net.ipv4.conf.back.arp_ignore 8
        ns_sysctl "$lb" net.ipv4.ip_forward 0
    done

    # Real servers: VIP on lo, never announced or answered on eth0 (DR and IPIP); replies go
    # through the router.
    for n in 1 2 3; do
        ns="lab-rs$n"
        veth "$ns" eth0 lab-back "1$n" 02
        in_ns "$ns" ip addr replace "10.20.0.1$n/24" dev eth0
        addr6 "$ns" eth0 "2001:db8:20::1$n/64"
        in_ns "$ns" ip addr replace 10.10.0.100/32 dev lo
        in_ns "$ns" ip addr replace 10.10.0.101/32 dev lo
        ns_sysctl "$ns" net.ipv4.conf.all.arp_ignore 1
        ns_sysctl "$ns" net.ipv4.conf.all.arp_announce 2
        ns_sysctl "$ns" net.ipv4.conf.eth0.arp_ignore 1
        ns_sysctl "$ns" net.ipv4.conf.eth0.arp_announce 2
        ns_sysctl "$ns" net.ipv4.conf.all.rp_filter 0
        ns_sysctl "$ns" net.ipv4.conf.default.rp_filter 0   # inherited by ipip_decap's TUN device
        ns_sysctl "$ns" net.ipv4.conf.eth0.rp_filter 0
        in_ns "$ns" ip route replace default via 10.20.0.254 dev eth0
        # IPv6: the VIPs on lo (the kernel answers neighbour solicitations only for addresses
        # of the interface asked, so eth0 never claims them), replies through the router.
        ns_sysctl "$ns" net.ipv6.conf.lo.disable_ipv6 0
        addr6 "$ns" lo 2001:db8:10::100/128
        addr6 "$ns" lo 2001:db8:10::101/128
        in_ns "$ns" ip -6 route replace default via 2001:db8:20::254 dev eth0
    done

    # Router: the return path for DR and IPIP. Replies from the VIP arrive on its back side,
    # so reverse-path filtering must be off.
    veth lab-router front lab-front fe 01
    veth lab-router back lab-back fe 02
    in_ns lab-router ip addr replace 10.10.0.254/24 dev front
    in_ns lab-router ip addr replace 10.20.0.254/24 dev back
    addr6 lab-router front 2001:db8:10::254/64
    addr6 lab-router back 2001:db8:20::254/64
    ns_sysctl lab-router net.ipv4.ip_forward 1
    ns_sysctl lab-router net.ipv6.conf.all.forwarding 1
    local ifc
    for ifc in all default front back; do
        ns_sysctl lab-router "net.ipv4.conf.$ifc.rp_filter" 0
    done
    log "lab is up"
}

# --- rvsd ---------------------------------------------------------------------------------

check_lb() {
    case "${1:-}" in
        lb1 | lb2) ;;
        *) usage ;;
    esac
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$RUN_DIR/$1.log"; }

# The pid of a running rvsd for LB, or nothing. The process must still live in lab-LB, so a
# recycled pid is never signalled.
lb_pid() {
    local f pid
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 0
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    if [[ "$(ip netns identify "$pid" 2>/dev/null)" == "lab-$1" ]]; then
        echo "$pid"
    fi
}

# The rvsd binary to start: $RVSD_BIN, else the most recently built of
# ${CARGO_TARGET_DIR}/{release,debug}/rvsd and target/{release,debug}/rvsd. Says on stderr which
# one and why. Refuses a binary older than a source it is built from: a lab run must test the
# code in the tree, not whatever was built last week. The sources are the repository files cargo
# recorded for it (BIN.d, cargo's dep-info next to the binary); without that file, every *.rs
# under the src/ of controlplane, dataplane and drivers (and their build.rs). Not "any file of the
# repository": cargo relinks rvsd only when its own inputs change, so after editing a test or
# another crate `cargo build` leaves rvsd as it was, correctly, and it must not be refused for
# that. RVS_ALLOW_STALE=1 starts a stale binary anyway, with a warning.
find_rvsd() {
    local bin="" how dir p
    if [[ -n "${RVSD_BIN:-}" ]]; then
        [[ -x "$RVSD_BIN" ]] || die "RVSD_BIN=$RVSD_BIN is not an executable file"
        bin="$RVSD_BIN" how="RVSD_BIN"
    else
        for dir in "${CARGO_TARGET_DIR:-}" "$REPO/target"; do
            [[ -n "$dir" ]] || continue
            for p in "$dir/release/rvsd" "$dir/debug/rvsd"; do
                if [[ -x "$p" && ( -z "$bin" || "$p" -nt "$bin" ) ]]; then bin="$p"; fi
            done
        done
        [[ -n "$bin" ]] || die "no rvsd binary found (RVSD_BIN unset; looked in \${CARGO_TARGET_DIR}/{release,debug} and $REPO/target/{release,debug}); build it with cargo build --release -p rvs-controlplane"
        how="the newest target/{release,debug}/rvsd; set RVSD_BIN to choose"
    fi
    local newer="" f
    if [[ -f "$bin.d" ]]; then
        # "BIN: dep dep ...", possibly over several lines; the repository's files only.
        for f in $(sed 's/^[^:]*://' "$bin.d" | tr -s ' \\' '\n\n'); do
            if [[ "$f" == "$REPO/"* && "$f" != */target/* && -e "$f" && "$f" -nt "$bin" ]]; then
                newer+="$f"$'\n'
            fi
        done
        newer="$(printf '%s' "$newer" | head -n 3)"
    else
        newer="$(find "$REPO/controlplane" "$REPO/dataplane" "$REPO/drivers" -name target -prune -o \
            \( -path '*/src/*.rs' -o -name build.rs \) -newer "$bin" -print 2>/dev/null | { grep -v /fuzz/ || true; } | head -n 3)"
    fi
    printf 'lab: rvsd binary: %s (built %s; %s)\n' "$bin" "$(date -r "$bin" -Is)" "$how" >&2
    if [[ -n "$newer" ]]; then
        newer="$(echo "$newer" | sed "s|^$REPO/||" | paste -sd, -)"
        if [[ "${RVS_ALLOW_STALE:-0}" == 1 ]]; then
            printf 'lab: warning: %s is older than the sources (%s, ...); starting it anyway (RVS_ALLOW_STALE=1)\n' "$bin" "$newer" >&2
        else
            die "$bin is older than the sources ($newer, ...): rebuild it (cargo build --release -p rvs-controlplane), or set RVS_ALLOW_STALE=1 to start it anyway"
        fi
    fi
    echo "$bin"
}

# The REST address from CONFIG's [api] listen, default 127.0.0.1:8700.
api_addr() {
    local addr
    addr="$(awk '
        /^[[:space:]]*\[/ { in_api = ($0 ~ /^[[:space:]]*\[api\][[:space:]]*(#.*)?$/) }
        in_api && /^[[:space:]]*listen[[:space:]]*=/ {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*/, ""); print; exit
        }' "$1")"
    echo "${addr:-127.0.0.1:8700}"
}

api_answers() {
    in_ns "lab-$1" curl -sf -m 2 -o /dev/null "http://$2/v1/status"
}

start_lb() {
    need_root "start-lb"; need_tools
    local lb=$1 cfg=${2:-}
    check_lb "$lb"
    # The binary first: a stale one is refused before anything else is looked at.
    local bin
    bin="$(find_rvsd)"
    if [[ -z "$cfg" ]]; then
        if [[ "$lb" == lb1 ]]; then cfg="$REPO/config/lab.toml"; else cfg="$REPO/config/lab-lb2.toml"; fi
    fi
    [[ -f "$cfg" ]] || die "config file $cfg not found"
    cfg="$(cd "$(dirname "$cfg")" && pwd)/$(basename "$cfg")"
    ns_exists "lab-$lb" || die "namespace lab-$lb does not exist; run: vm-testbed/lab.sh up"

    local addr pid
    addr="$(api_addr "$cfg")"
    pid="$(lb_pid "$lb")"
    if [[ -n "$pid" ]]; then
        if api_answers "$lb" "$addr"; then
            log "rvsd for $lb already running (pid $pid), REST answers on $addr"
            return 0
        fi
        die "rvsd for $lb runs (pid $pid) but its REST port $addr does not answer; stop it first: vm-testbed/lab.sh stop-lb $lb --kill"
    fi

    local logf pidf
    mkdir -p "$RUN_DIR"
    logf="$(log_file "$lb")"
    pidf="$(pid_file "$lb")"
    rm -f "$pidf"
    {
        printf '=== %s: %s --config %s (in lab-%s)\n' "$(date -Is)" "$bin" "$cfg" "$lb"
    } >>"$logf"
    log "start rvsd for $lb: $bin --config $cfg (log $logf)"
    # The wrapper writes its own pid and then execs `ip netns exec`, which execs rvsd: the pid
    # in the file is rvsd's. setsid detaches rvsd from our session; its stdio go to the log so a
    # caller capturing our output is not held open by it. NO_COLOR keeps the log plain text.
    # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
    NO_COLOR=1 setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' rvsd-start "$pidf" \
        ip netns exec "lab-$lb" "$bin" --config "$cfg" </dev/null >>"$logf" 2>&1 &

    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        pid="$(cat "$pidf" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            printf 'lab: rvsd for %s exited during start-up; last 30 log lines of %s:\n' "$lb" "$logf" >&2
            tail -n 30 "$logf" >&2 || true
            rm -f "$pidf"
            exit 1
        fi
        if [[ -n "$pid" ]] && api_answers "$lb" "$addr"; then
            log "rvsd for $lb is up (pid $pid), REST answers on $addr"
            return 0
        fi
        sleep 0.5
    done
    printf 'lab: rvsd for %s: REST %s did not answer within %ss; last 30 log lines of %s:\n' \
        "$lb" "$addr" "$START_TIMEOUT" "$logf" >&2
    tail -n 30 "$logf" >&2 || true
    # We started it and it is not usable: do not leave it behind holding the ports.
    pid="$(cat "$pidf" 2>/dev/null || true)"
    if [[ -n "$pid" ]]; then
        printf 'lab: killing the unresponsive rvsd (pid %s)\n' "$pid" >&2
        kill -s KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidf"
    exit 1
}

stop_lb() {
    need_root "stop-lb"
    local lb=$1 mode=${2:-}
    check_lb "$lb"
    local sig=TERM
    case "$mode" in
        "") ;;
        --kill) sig=KILL ;;
        *) usage ;;
    esac
    local pid pidf
    pidf="$(pid_file "$lb")"
    pid="$(lb_pid "$lb")"
    if [[ -z "$pid" ]]; then
        rm -f "$pidf"
        log "rvsd for $lb is not running"
        return 0
    fi
    log "stop rvsd for $lb (pid $pid) with SIG$sig"
    kill -s "$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "rvsd for $lb still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -s KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then die "rvsd for $lb (pid $pid) survived SIGKILL"; fi
    fi
    rm -f "$pidf"
    log "rvsd for $lb stopped"
}

# --- real-server daemons ------------------------------------------------------------------

RS_MODES="dr nat fullnat tunnel"
RS_TOOLS=(server server6 toa decap)
TOOL_READY_TIMEOUT=10

tool_pid_file() { echo "$RUN_DIR/$1.pid"; }
tool_log_file() { echo "$RUN_DIR/$1.log"; }

# The pid of tool NAME (e.g. rs1-server) if it runs in namespace NS, or nothing; like lb_pid, a
# recycled pid outside NS is never signalled.
tool_pid() {
    local name=$1 ns=$2 f pid
    f="$(tool_pid_file "$name")"
    [[ -f "$f" ]] || return 0
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    if [[ "$(ip netns identify "$pid" 2>/dev/null)" == "$ns" ]]; then
        echo "$pid"
    fi
}

# start_tool NS NAME SCRIPT ARGS...: runs vm-testbed/tools/SCRIPT in NS, detached (pid in
# run/NAME.pid, output in run/NAME.log, truncated first so tests read only this run), and waits
# for its `ready` line.
start_tool() {
    local ns=$1 name=$2 script=$3
    shift 3
    local pidf logf pid
    pidf="$(tool_pid_file "$name")"
    logf="$(tool_log_file "$name")"
    [[ -f "$HERE/tools/$script" ]] || die "$HERE/tools/$script not found"
    mkdir -p "$RUN_DIR"
    rm -f "$pidf"
    : >"$logf"
    # As for rvsd: the wrapper writes its pid and execs ip netns exec, which execs python, so the
    # pid file names the tool. -u: unbuffered, every log line is in the file when printed.
    # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' tool-start "$pidf" \
        ip netns exec "$ns" python3 -u "$HERE/tools/$script" "$@" </dev/null >>"$logf" 2>&1 &
    local deadline=$((SECONDS + TOOL_READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        pid="$(cat "$pidf" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            printf 'lab: %s (%s in %s) exited during start-up; its log %s:\n' "$name" "$script" "$ns" "$logf" >&2
            cat "$logf" >&2 || true
            rm -f "$pidf"
            exit 1
        fi
        if grep -q '^ready' "$logf" 2>/dev/null; then
            log "$name is up in $ns (pid $pid, log $logf)"
            return 0
        fi
        sleep 0.1
    done
    printf 'lab: %s (%s in %s) printed no ready line within %ss; its log %s:\n' \
        "$name" "$script" "$ns" "$TOOL_READY_TIMEOUT" "$logf" >&2
    cat "$logf" >&2 || true
    pid="$(cat "$pidf" 2>/dev/null || true)"
    [[ -z "$pid" ]] || kill -s KILL "$pid" 2>/dev/null || true
    rm -f "$pidf"
    exit 1
}

# stop_tool NS NAME: SIGTERM (the tools exit 0 on it), SIGKILL after 5 s.
stop_tool() {
    local ns=$1 name=$2 pid
    pid="$(tool_pid "$name" "$ns")"
    if [[ -n "$pid" ]]; then
        kill -s TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -s KILL "$pid" 2>/dev/null || true
        fi
        log "$name stopped"
    fi
    rm -f "$(tool_pid_file "$name")"
}

rs_stop() {
    need_root "rs-stop"
    local n ns t
    for n in 1 2 3; do
        ns="lab-rs$n"
        for t in "${RS_TOOLS[@]}"; do stop_tool "$ns" "rs$n-$t"; done
        # Back to the lab's routing: replies to clients through the router (rs-start nat changed it).
        if ns_exists "$ns"; then
            in_ns "$ns" ip route del 10.10.0.0/24 >/dev/null 2>&1 || true
            in_ns "$ns" ip -6 route del 2001:db8:10::/64 via 2001:db8:20::1 >/dev/null 2>&1 || true
        fi
    done
    rm -f "$RUN_DIR/rs.mode"
}

# rs-start MODE: the real servers' daemons and routing for forwarding mode MODE (see the header).
# Restarts whatever ran before, so switching modes needs no rs-stop.
rs_start() {
    need_root "rs-start"
    local mode=${1:-dr}
    [[ " $RS_MODES " == *" $mode "* ]] || die "unknown mode '$mode'; use one of: $RS_MODES"
    command -v python3 >/dev/null || die "'python3' not found; run: sudo bash vm-testbed/setup-host.sh"
    local n ns
    for n in 1 2 3; do
        ns_exists "lab-rs$n" || die "namespace lab-rs$n does not exist; run: vm-testbed/lab.sh up"
    done
    rs_stop
    for n in 1 2 3; do
        ns="lab-rs$n"
        start_tool "$ns" "rs$n-server" rs_server.py --name "rs$n" --http-port 80 --udp-port 53
        start_tool "$ns" "rs$n-server6" rs_server.py --name "rs$n" --bind :: --http-port 80 --udp-port 53
        case "$mode" in
            nat)
                in_ns "$ns" ip route replace 10.10.0.0/24 via 10.20.0.1 dev eth0
                in_ns "$ns" ip -6 route replace 2001:db8:10::/64 via 2001:db8:20::1 dev eth0
                ;;
            fullnat) start_tool "$ns" "rs$n-toa" toa_reader.py --iface eth0 --port 80 ;;
            tunnel) start_tool "$ns" "rs$n-decap" ipip_decap.py --dev decap0 ;;
            dr) ;;
        esac
    done
    echo "$mode" >"$RUN_DIR/rs.mode"
    log "real servers up for $mode"
}

# --- down and status ----------------------------------------------------------------------

lab_down() {
    need_root "down"
    local lb ns pids
    for lb in lb1 lb2; do stop_lb "$lb"; done
    # Anything else the tests left running inside the lab (servers, captures) would keep a
    # deleted namespace alive; stop those processes, and only those.
    for ns in "${HOSTS[@]}" "$SW"; do
        ns_exists "$ns" || continue
        pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
        if [[ -n "${pids// /}" ]]; then
            log "stop processes left in $ns: $pids"
            # shellcheck disable=SC2086
            kill -s TERM $pids 2>/dev/null || true
            sleep 0.5
            pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
            # shellcheck disable=SC2086
            [[ -z "${pids// /}" ]] || kill -s KILL $pids 2>/dev/null || true
        fi
    done
    rm -f "$RUN_DIR"/rs[123]-*.pid "$RUN_DIR/rs.mode" "$RUN_DIR"/bird-*.pid
    # Deleting a namespace deletes its veth ends and with them their peers.
    for ns in "${HOSTS[@]}" "$SW"; do
        if ns_exists "$ns"; then
            log "delete namespace $ns"
            ip netns del "$ns"
        fi
    done
    log "lab is down"
}

lab_status() {
    local ns any=0 lb pid
    for ns in "$SW" "${HOSTS[@]}"; do
        if ns_exists "$ns"; then
            any=1
            printf '== %s\n' "$ns"
            in_ns "$ns" ip -br link show | grep -v '^lo ' | sed 's/^/   link  /' || true
            in_ns "$ns" ip -br -4 addr show | grep -v '^lo .*127.0.0.1/8 *$' | sed 's/^/   addr  /' || true
            in_ns "$ns" ip -4 route show | sed 's/^/   route /' || true
        else
            printf '== %s: absent\n' "$ns"
        fi
    done
    ((any)) || printf 'lab is down\n'
    for lb in lb1 lb2; do
        pid="$(lb_pid "$lb")"
        if [[ -n "$pid" ]]; then
            printf 'rvsd %s: running (pid %s, log %s)\n' "$lb" "$pid" "$(log_file "$lb")"
        else
            printf 'rvsd %s: not running\n' "$lb"
        fi
    done
    local n t name pid
    for n in 1 2 3; do
        for t in "${RS_TOOLS[@]}"; do
            name="rs$n-$t"
            pid="$(tool_pid "$name" "lab-rs$n")"
            [[ -z "$pid" ]] || printf '%s: running (pid %s, log %s)\n' "$name" "$pid" "$(tool_log_file "$name")"
        done
    done
    [[ ! -f "$RUN_DIR/rs.mode" ]] || printf 'real servers: mode %s\n' "$(cat "$RUN_DIR/rs.mode")"
}

# --- scale-out: BIRD on the router and on each node -----------------------------------------
#
# router-bgp up: BIRD 2 in lab-router (vm-testbed/bird/router.conf: BGP with BFD to both nodes,
# ECMP into the kernel with `merge paths`, IPv4 and IPv6), the kernel's multipath hash on L4
# (fib_multipath_hash_policy 1, both families) and ICMP redirects off (the router forwards back
# out of the port it received on; for IPv6 the client ignores them); BIRD in lab-lb1 and lab-lb2
# (vm-testbed/bird/node-lbN.conf), each with its own control socket /run/rvs-lab-bird-lbN.ctl and
# include file /run/rvs-lab-lbN-vips.conf (created with nothing announced here, then rvsd's:
# config/lab-bgp-lbN.toml); and the client's routes to the VIPs 10.10.0.100 and
# 2001:db8:10::100 through the router instead of lb1. router-bgp down stops the three and puts
# the routes back. BIRD logs to run/bird-<who>.log.
BGP_SPEAKERS=(router lb1 lb2)
bird_ns() { if [[ $1 == router ]]; then echo lab-router; else echo "lab-$1"; fi; }
bird_conf() { if [[ $1 == router ]]; then echo "$HERE/bird/router.conf"; else echo "$HERE/bird/node-$1.conf"; fi; }
bird_socket() { echo "/run/rvs-lab-bird-$1.ctl"; }
bird_pid_file() { echo "$RUN_DIR/bird-$1.pid"; }
bird_log_file() { echo "$RUN_DIR/bird-$1.log"; }

router_bgp_up() {
    need_root "router-bgp up"
    command -v bird >/dev/null || die "'bird' not found; run: sudo bash vm-testbed/setup-host.sh (bird2)"
    ns_exists lab-router || die "the lab is down; run: vm-testbed/lab.sh up"
    mkdir -p "$RUN_DIR"
    ns_sysctl lab-router net.ipv4.fib_multipath_hash_policy 1
    ns_sysctl lab-router net.ipv6.fib_multipath_hash_policy 1
    local ifc who ns vips deadline
    for ifc in all default front back; do
        ns_sysctl lab-router "net.ipv4.conf.$ifc.send_redirects" 0
    done
    # IPv6 has no send_redirects: the client ignores the router's redirects instead, or it
    # would learn to send the IPv6 VIP's traffic to one node directly.
    for ifc in all default eth0; do
        ns_sysctl lab-client "net.ipv6.conf.$ifc.accept_redirects" 0
    done
    for who in "${BGP_SPEAKERS[@]}"; do
        ns="$(bird_ns "$who")"
        vips="/run/rvs-lab-$who-vips.conf"
        if [[ $who != router && ! -f "$vips" ]]; then
            # What rvsd writes with nothing announced, until it runs.
            printf 'protocol static rvs_vips4 {\n\tipv4;\n}\n\nprotocol static rvs_vips6 {\n\tipv6;\n}\n' >"$vips"
        fi
        if [[ -f "$(bird_pid_file "$who")" ]] && kill -0 "$(cat "$(bird_pid_file "$who")")" 2>/dev/null; then
            log "BIRD in $ns already runs"
            continue
        fi
        bird -p -c "$(bird_conf "$who")" || die "$(bird_conf "$who") does not parse"
        # In the foreground (-f) and detached by setsid: a daemonised BIRD closes its stderr,
        # and the configs log to stderr, so this keeps the log in run/bird-<who>.log.
        rm -f "$(bird_socket "$who")"
        setsid ip netns exec "$ns" bird -f -c "$(bird_conf "$who")" -s "$(bird_socket "$who")" \
            -P "$(bird_pid_file "$who")" </dev/null >>"$(bird_log_file "$who")" 2>&1 &
        deadline=$((SECONDS + 5))
        until [[ -S "$(bird_socket "$who")" ]]; do
            ((SECONDS < deadline)) || die "BIRD did not start in $ns; see $(bird_log_file "$who")"
            sleep 0.1
        done
        log "BIRD in $ns (socket $(bird_socket "$who"), log $(bird_log_file "$who"))"
    done
    in_ns lab-client ip route replace 10.10.0.100/32 via 10.10.0.254 dev eth0
    in_ns lab-client ip -6 route replace 2001:db8:10::100/128 via 2001:db8:10::254 dev eth0
    in_ns lab-client ip -6 route flush cache >/dev/null 2>&1 || true
    log "client routes to 10.10.0.100 and 2001:db8:10::100 via lab-router"
}

router_bgp_down() {
    need_root "router-bgp down"
    local who pid
    for who in "${BGP_SPEAKERS[@]}"; do
        [[ -f "$(bird_pid_file "$who")" ]] || continue
        pid="$(cat "$(bird_pid_file "$who")")"
        if kill -0 "$pid" 2>/dev/null; then
            log "stop BIRD $who (pid $pid)"
            kill -s TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$(bird_pid_file "$who")"
    done
    if ns_exists lab-client; then
        in_ns lab-client ip route replace 10.10.0.100/32 via 10.10.0.1 dev eth0
        in_ns lab-client ip -6 route replace 2001:db8:10::100/128 via 2001:db8:10::1 dev eth0
        log "client routes to 10.10.0.100 and 2001:db8:10::100 via lab-lb1 again"
    fi
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        up) [[ $# -eq 0 ]] || usage; lab_up ;;
        down) [[ $# -eq 0 ]] || usage; lab_down ;;
        status) [[ $# -eq 0 ]] || usage; need_root "status"; lab_status ;;
        start-lb) [[ $# -ge 1 && $# -le 2 ]] || usage; start_lb "$@" ;;
        stop-lb) [[ $# -ge 1 && $# -le 2 ]] || usage; stop_lb "$@" ;;
        rs-start) [[ $# -le 1 ]] || usage; rs_start "$@" ;;
        rs-stop) [[ $# -eq 0 ]] || usage; rs_stop ;;
        router-bgp)
            [[ $# -eq 1 ]] || usage
            case "$1" in
                up) router_bgp_up ;;
                down) router_bgp_down ;;
                *) usage ;;
            esac
            ;;
        *) usage ;;
    esac
}

main "$@"
