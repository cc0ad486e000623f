#!/usr/bin/env bash
# `perf/bench.sh e2e`: rvsd end to end in the netns lab, against two kernel peers in the
# same run.
#
#   perf/e2e/run.sh [--quick] [--seconds N] [--connections N] [--systems LIST] [--work DIR]
#                   [--wait-lab SECONDS] [--idle adaptive|busy]
#
# Through the VIP 10.10.0.100, from lab-client to the three real servers lab-rs1..3, for
# each system:
#   - wrk keep-alive (GET of a small static file from nginx on the servers' :8000):
#     requests/s and the p99 request latency;
#   - wrk with a new connection per request (`-H 'Connection: close'`): connections/s;
#   - iperf3, one TCP stream client → server through the balancer: Gbit/s.
# Systems (--systems, comma-separated, default all, in this order):
#   rvsd-dr rvsd-nat rvsd-fullnat rvsd-tunnel
#       rvsd on lab-lb1's DPDK ports (net_af_xdp vdevs), 1 worker, idle policy --idle
#       (default adaptive: the lab's 2 cores also run the clients and servers), from
#       perf/e2e/rvsd.toml.in; restarted before each of the three loads so that its
#       counters and per-burst latency histogram cover that load alone;
#   nftables
#       rvsd stopped; lab-lb1's kernel gets 10.10.0.1 (front), 10.20.0.1 (back) and the
#       VIP (front), ip_forward=1, and perf/e2e/nftables.nft: DNAT with `numgen inc mod 3`
#       (NAT mode, the servers route back through 10.20.0.1);
#   haproxy
#       the same kernel addresses, no nft rules, HAProxy in mode tcp, balance roundrobin,
#       one thread, listening on the VIP (perf/e2e/haproxy.cfg.in).
#   direct
#       the reference without a balancer: lab-client to rs1's nginx and iperf3 at 10.20.0.11
#       through lab-router's kernel forwarding, both ways: the ceiling of this machine's
#       clients, servers and veths with one kernel hop (one server instead of three).
# iperf3 needs its control and data connections on one server: rvsd's :5201 service has
# persistence, nftables hashes the client address, HAProxy uses `balance source`.
#
# Before measuring, each system must pass a correctness check: six GETs of the VIP's :80
# (vm-testbed/tools/rs_server.py, started by `lab.sh rs-start MODE`) reach all three
# servers, and a GET of :8000 returns the file nginx serves.
#
# Output: one JSON object per system on stdout
#   {"bench":"e2e","system":"rvsd-nat","rps":..,"cps":..,"gbps":..,"p99_ms":..,...}
# (p99_ms: keep-alive request latency; close_p99_ms: with a connection per request;
# worker_burst_ns: rvsd's per-burst latency p50/p99/p99.9 per load when GET /v1/status or
# /metrics exposes it, else null with worker_burst_source saying so), then a Markdown table
# on stderr and in WORK/table.md. Progress and tool logs go to stderr and WORK. A load whose
# tool reported errors (any wrk error counter, iperf3's "error") gets no figure, its reason in
# the line's "failed". Exits 1 if a system produced no figures or a tool reported errors
# (`--quick` is the smoke test: numbers, never timings).
#
# Options: --seconds N per load (default 10); --quick = 1 s per load; --connections N wrk
# connections (default 32, one wrk thread); --work DIR keeps raw files there (default a new
# /tmp/rvs-e2e.XXXXXX, kept); --wait-lab S waits up to S seconds for a busy lab (default 0:
# fail at once). Environment: RVSD_BIN (else rvsd is built in release mode into
# $CARGO_TARGET_DIR or target/, as bench.sh builds rvs-perf).
#
# The lab is shared by the tests and the demo: the run holds the lab lock for its whole
# length (flock on /run/lock/rvs-lab.lock, the file rvs-labtests' `Lab` and perf/soak.sh
# lock; RVS_LAB_LOCK names another), waiting --wait-lab seconds for it, and refuses to start
# while any lab-* namespace exists or rvs-labtests / vm-testbed/test.sh / demo.sh run (other
# than this script's own callers: test.sh may run it after its lab tests). It brings the lab up, and on
# exit (success, failure or signal) stops what it started (wrk, iperf3, nginx, HAProxy by
# pid), deletes its nft table, removes the kernel addresses and ip_forward from lab-lb1 and
# gives its ports back their arp_ignore (lab.sh's 8), and takes the lab down. The sysctls it
# sets in lab-client (a wider ephemeral port range, tcp_tw_reuse) go with the namespace.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LAB="$REPO/vm-testbed/lab.sh"
VIP=10.10.0.100
ALL_SYSTEMS="rvsd-dr rvsd-nat rvsd-fullnat rvsd-tunnel nftables haproxy direct"
SERVERS=(1 2 3)

SECS=10
CONNS=32
THREADS=1
SYSTEMS="$ALL_SYSTEMS"
WORK=""
WAIT_LAB=0
IDLE=adaptive

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { printf 'e2e: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

ARGS=("$@")
while (($#)); do
    case "$1" in
        --quick) SECS=1 ;;
        --seconds) SECS=${2:?--seconds needs a value}; shift ;;
        --connections) CONNS=${2:?--connections needs a value}; shift ;;
        --systems) SYSTEMS=${2:?--systems needs a value}; SYSTEMS=${SYSTEMS//,/ }; shift ;;
        --work) WORK=${2:?--work needs a value}; shift ;;
        --wait-lab) WAIT_LAB=${2:?--wait-lab needs a value}; shift ;;
        --idle) IDLE=${2:?--idle needs a value}; shift ;;
        -h | --help) usage ;;
        *) echo "perf/e2e/run.sh: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a whole number of seconds ≥ 1, not '$SECS'"
[[ "$CONNS" =~ ^[1-9][0-9]*$ ]] || die "--connections must be a positive integer, not '$CONNS'"
[[ "$WAIT_LAB" =~ ^[0-9]+$ ]] || die "--wait-lab must be a number of seconds, not '$WAIT_LAB'"
[[ "$IDLE" == adaptive || "$IDLE" == busy ]] || die "--idle must be adaptive or busy, not '$IDLE'"
for s in $SYSTEMS; do
    [[ " $ALL_SYSTEMS " == *" $s "* ]] || die "unknown system '$s'; use some of: ${ALL_SYSTEMS// /,}"
done

# --- the lab lock -------------------------------------------------------------------------

# The whole run holds the lab lock, so no lab test starts in the lab while this uses it. The
# script runs itself again under `flock -o`: the lock stays with the flock process, and
# rvsd, nginx and the load tools started here never inherit it (a leftover holding the lock
# would block every later lab user).
LAB_LOCK="${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock}"
if [[ -z "${RVS_E2E_HOLDS_LAB_LOCK:-}" ]]; then
    mkdir -p "$(dirname "$LAB_LOCK")"
    flock -n "$LAB_LOCK" true || say "the lab lock $LAB_LOCK is held (lab tests, the soak or another run); waiting up to ${WAIT_LAB}s"
    rc=0
    RVS_E2E_HOLDS_LAB_LOCK=1 flock -o -E 75 -w "$WAIT_LAB" "$LAB_LOCK" bash "${BASH_SOURCE[0]}" "${ARGS[@]}" || rc=$?
    ((rc != 75)) || die "the lab lock $LAB_LOCK is still held after ${WAIT_LAB}s; wait for its holder (--wait-lab SECONDS)"
    exit "$rc"
fi

# --- prerequisites ------------------------------------------------------------------------

check_prereqs() {
    local missing=() t
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, DPDK); try: sudo perf/bench.sh e2e"
    # command:package (Debian 12)
    for t in wrk:wrk iperf3:iperf3 haproxy:haproxy nft:nftables nginx:nginx curl:curl \
        python3:python3 ip:iproute2 ss:iproute2 ethtool:ethtool; do
        command -v "${t%%:*}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${t%%:*}" ]] || missing+=("${t#*:}")
    done
    if ((${#missing[@]})); then
        local pkgs
        pkgs="$(printf '%s\n' "${missing[@]}" | sort -u | paste -sd' ')"
        die "missing: $pkgs. Install them with: sudo bash vm-testbed/setup-host.sh (or: apt-get install $pkgs)"
    fi
    local hp=/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages
    [[ -r "$hp" && "$(cat "$hp")" -gt 0 ]] ||
        die "no free 2 MiB hugepages for rvsd's DPDK; run: sudo bash vm-testbed/setup-host.sh"
    [[ -x "$LAB" || -f "$LAB" ]] || die "$LAB not found"
}

# rvsd: RVSD_BIN, else build it like bench.sh builds rvs-perf. Only when an rvsd system runs.
find_rvsd() {
    if [[ -n "${RVSD_BIN:-}" ]]; then
        [[ -x "$RVSD_BIN" ]] || die "RVSD_BIN=$RVSD_BIN is not an executable file"
        return
    fi
    command -v cargo >/dev/null ||
        die "no rvsd: set RVSD_BIN to a built rvsd, or install Rust (see README.md) so that this script can build it"
    local target="${CARGO_TARGET_DIR:-$REPO/target}"
    case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
    say "building rvsd (cargo build --release -p rvs-controlplane, target $target)"
    (cd "$REPO" && CARGO_TARGET_DIR="$target" cargo build --release -p rvs-controlplane >&2) ||
        die "cargo build --release -p rvs-controlplane failed; set RVSD_BIN to a working rvsd"
    RVSD_BIN="$target/release/rvsd"
    [[ -x "$RVSD_BIN" ]] || die "the build produced no $RVSD_BIN"
}

# lab_busy and wait_for_lab: who else uses the lab.
# shellcheck source=../../vm-testbed/lab-users.sh
source "$REPO/vm-testbed/lab-users.sh"

# --- clean-up -----------------------------------------------------------------------------

PIDS=()             # processes this script started (nginx, iperf3 -s, haproxy)
TARGET=$VIP         # where the loads go: the VIP, or rs1 for the `direct` reference
LB_PID=""           # the balancer's process during a load, for its CPU time
LAB_UP=0            # we brought the lab up: take it down
KERNEL_LB=0         # lab-lb1's kernel addresses are ours
declare -A ARP_IGNORE=()   # lab-lb1's arp_ignore per port before kernel_lb_up changed it

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -s TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -s KILL "$pid" 2>/dev/null || true
}

kernel_lb_down() {
    ((KERNEL_LB)) || return 0
    [[ -e /run/netns/lab-lb1 ]] || { KERNEL_LB=0; return 0; }
    in_ns lab-lb1 nft delete table ip rvs_e2e >/dev/null 2>&1 || true
    in_ns lab-lb1 ip addr del "$VIP/32" dev front >/dev/null 2>&1 || true
    in_ns lab-lb1 ip addr del 10.10.0.1/24 dev front >/dev/null 2>&1 || true
    in_ns lab-lb1 ip addr del 10.20.0.1/24 dev back >/dev/null 2>&1 || true
    in_ns lab-lb1 sysctl -qw net.ipv4.ip_forward=0 >/dev/null 2>&1 || true
    local ifc
    for ifc in front back; do
        [[ -z "${ARP_IGNORE[$ifc]:-}" ]] ||
            in_ns lab-lb1 sysctl -qw "net.ipv4.conf.$ifc.arp_ignore=${ARP_IGNORE[$ifc]}" >/dev/null 2>&1 || true
    done
    KERNEL_LB=0
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    kernel_lb_down
    if ((LAB_UP)); then
        bash "$LAB" rs-stop >/dev/null 2>&1
        bash "$LAB" stop-lb lb1 >&2
        bash "$LAB" down >&2
    fi
    [[ -z "$WORK" ]] || say "raw files in $WORK"
    exit "$rc"
}

# --- the lab and its servers --------------------------------------------------------------

# start_bg LOG CMD...: start CMD in the background, remember its pid. CMD is `ip netns exec
# NS ...` itself, never the in_ns function (that would fork a subshell and $! would be its pid):
# ip netns exec execs the server, so $! is the server's own pid.
start_bg() {
    local logf=$1
    shift
    "$@" </dev/null >>"$logf" 2>&1 &
    PIDS+=($!)
}

# wait_listen NS PORT [PID LOG]: until something listens on TCP PORT in NS (10 s); if PID
# (the server that should) exits first, show its LOG.
wait_listen() {
    local ns=$1 port=$2 pid=${3:-} logf=${4:-} i
    for i in $(seq 1 100); do
        if in_ns "$ns" ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            sed 's/^/e2e:   /' "$logf" >&2
            die "the server for :$port in $ns exited (log above, $logf)"
        fi
        sleep 0.1
    done
    die "nothing listens on :$port in $ns after 10 s; see the logs in $WORK"
}

start_servers() {
    local n ns
    mkdir -p "$WORK/www"
    # 100 bytes: wrk measures the balancer and the connection handling, not the payload.
    printf '%-99s\n' 'rvs e2e: a small static file served by nginx on the real servers' >"$WORK/www/index.html"
    for n in "${SERVERS[@]}"; do
        ns="lab-rs$n"
        mkdir -p "$WORK/rs$n-nginx-tmp"
        sed -e "s|@WORK@|$WORK|g" -e "s|@NAME@|rs$n|g" "$HERE/nginx.conf.in" >"$WORK/rs$n-nginx.conf"
        start_bg "$WORK/rs$n-nginx.log" ip netns exec "$ns" nginx -p "$WORK" -e "$WORK/rs$n-nginx.err" -c "$WORK/rs$n-nginx.conf"
        # Wildcard address: the server's own address (NAT, Full-NAT, the kernel peers) and the
        # VIP on lo (DR, IPIP).
        start_bg "$WORK/rs$n-iperf3.log" ip netns exec "$ns" iperf3 -s -p 5201
    done
    for n in "${SERVERS[@]}"; do
        wait_listen "lab-rs$n" 8000
        wait_listen "lab-rs$n" 5201
    done
    # One client address opens every connection: give it the whole ephemeral range, and let
    # it reuse TIME_WAIT ports (the connection-per-request load opens tens of thousands).
    in_ns lab-client sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    in_ns lab-client sysctl -qw net.ipv4.tcp_tw_reuse=1
    say "nginx (:8000) and iperf3 -s (:5201) run on rs1..rs3"
}

# The correctness check: all three servers reached on :80, the benchmark file on :8000.
check_path() {
    local system=$1 i body names=""
    for i in 1 2 3 4 5 6; do
        body="$(in_ns lab-client curl -s -m 5 "http://$VIP:80/" || true)"
        names+="${body%% *} "
    done
    for i in "${SERVERS[@]}"; do
        [[ " $names " == *" rs$i "* ]] ||
            die "$system: GET http://$VIP/ six times reached only: ${names:-nothing} (rs$i missing)"
    done
    body="$(in_ns lab-client curl -s -m 5 "http://$VIP:8000/" || true)"
    [[ "$body" == "$(cat "$WORK/www/index.html")" ]] ||
        die "$system: GET http://$VIP:8000/ did not return the benchmark file (got: ${body:0:80})"
    say "$system: correctness check passed (:80 reached $names; :8000 serves the file)"
}

# --- the loads ----------------------------------------------------------------------------

load1() { cut -d' ' -f1 /proc/loadavg; }

run_wrk() {
    local system=$1 load=$2 extra=()
    [[ "$load" == close ]] && extra=(-H 'Connection: close')
    say "$system: wrk $load, ${SECS}s, $CONNS connections"
    in_ns lab-client wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$HERE/wrk-report.lua" \
        "${extra[@]}" "http://$TARGET:8000/" >"$WORK/$system.$load.json" 2>"$WORK/$system.$load.err" ||
        say "$system: wrk $load failed (see $WORK/$system.$load.err)"
    grep -E 'Requests/sec|Latency  |99%|Socket errors|Non-2xx' "$WORK/$system.$load.json" | sed "s/^/e2e:   /" >&2 || true
}

run_iperf3() {
    local system=$1
    say "$system: iperf3, ${SECS}s, 1 stream"
    in_ns lab-client timeout $((SECS + 30)) iperf3 -c "$TARGET" -p 5201 -t "$SECS" -J \
        >"$WORK/$system.iperf3.json" 2>"$WORK/$system.iperf3.err" ||
        say "$system: iperf3 failed (see $WORK/$system.iperf3.json)"
    python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print("e2e:   %.3f Gbit/s received" % (d["end"]["sum_received"]["bits_per_second"]/1e9)) if "end" in d and "sum_received" in d["end"] else print("e2e:   iperf3: %s" % d.get("error"))' \
        "$WORK/$system.iperf3.json" >&2 2>/dev/null || true
}

# cpu_sample [PID]: "TOTAL IDLE SOFTIRQ PROC" in clock ticks: all CPUs' total, idle (+iowait)
# and softirq time from /proc/stat, and PID's user+system time (all its threads), 0 without PID.
cpu_sample() {
    local pid=${1:-} u n sy i w q sq st p=0
    read -r _ u n sy i w q sq st _ </proc/stat
    if [[ -n "$pid" && -r "/proc/$pid/stat" ]]; then
        # Fields after the command name, which ends with the last ')': utime is the 12th.
        p="$(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')"
    fi
    echo "$((u + n + sy + i + w + q + sq + st)) $((i + w)) $sq $p"
}

# measure SYSTEM LOAD: one load (keepalive, close or iperf3) against TARGET, with the CPU use
# over it in WORK/SYSTEM.LOAD.cpu.json: cores busy (of nproc), cores in softirq (where the
# kernel peers' forwarding and every veth's packet work run) and cores used by the balancer's
# process (LB_PID: rvsd or HAProxy; none for nftables, which is all softirq).
measure() {
    local system=$1 load=$2 before after
    before="$(cpu_sample "$LB_PID")"
    case "$load" in
        iperf3) run_iperf3 "$system" ;;
        *) run_wrk "$system" "$load" ;;
    esac
    after="$(cpu_sample "$LB_PID")"
    awk -v b="$before" -v a="$after" -v ncpu="$(nproc)" -v haslb="${LB_PID:+1}" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        tot = y[1] - x[1]; if (tot <= 0) tot = 1
        printf "{\"busy_cores\":%.2f,\"softirq_cores\":%.2f,\"lb_cores\":%s}\n",
            (tot - (y[2] - x[2])) / tot * ncpu, (y[3] - x[3]) / tot * ncpu,
            haslb ? sprintf("%.2f", (y[4] - x[4]) / tot * ncpu) : "null"
    }' >"$WORK/$system.$load.cpu.json"
    sed 's/^/e2e:   cpu /' "$WORK/$system.$load.cpu.json" >&2
}

# rvsd's view after a load: its status and metrics, and the burst latency if exposed.
# /v1/status's workers[].burst_latency quantiles cover the last 60 s as of the control
# thread's latest 2-second tick: wait for one more tick so that the load's end is in. rvsd
# was started just before the load, so the window holds this load's bursts (and the few of
# the correctness check) and nothing else; empty polls are not bursts.
scrape_rvsd() {
    local system=$1 load=$2
    sleep 2.5
    in_ns lab-lb1 curl -s -m 5 http://127.0.0.1:8700/v1/status >"$WORK/$system.$load.status.json" || true
    in_ns lab-lb1 curl -s -m 5 http://127.0.0.1:8700/metrics >"$WORK/$system.$load.metrics.txt" || true
    python3 "$HERE/report.py" latency "$WORK/$system.$load.status.json" "$WORK/$system.$load.metrics.txt" \
        >"$WORK/$system.$load.latency.json"
}

write_meta() {
    local system=$1 kind=$2 mode=$3 l
    l="$(load1)"
    printf '{"kind":"%s","mode":"%s","seconds":%s,"connections":%s,"threads":%s,"load1":%s%s}\n' \
        "$kind" "$mode" "$SECS" "$CONNS" "$THREADS" "$l" "$([[ $kind != rvsd ]] || echo ",\"idle\":\"$IDLE\"")" \
        >"$WORK/$system.meta.json"
}

finish_system() {
    local system=$1
    python3 "$HERE/report.py" system "$WORK" "$system" >"$WORK/$system.result.json"
    cat "$WORK/$system.result.json"
}

# --- the systems --------------------------------------------------------------------------

start_rvsd() {
    bash "$LAB" start-lb lb1 "$1" >&2
}

run_rvsd() {
    local system=$1 mode=${1#rvsd-} cfg load
    cfg="$WORK/rvsd-$mode.toml"
    sed -e "s/@MODE@/$mode/g" -e "s/@IDLE@/$IDLE/g" "$HERE/rvsd.toml.in" >"$cfg"
    kernel_lb_down
    bash "$LAB" stop-lb lb1 >&2
    bash "$LAB" rs-start "$mode" >&2
    write_meta "$system" rvsd "$mode"
    for load in keepalive close iperf3; do
        # A fresh rvsd per load: its counters, connection table and latency histogram are
        # that load's alone.
        bash "$LAB" stop-lb lb1 >&2
        start_rvsd "$cfg"
        # Also the warm-up: a fresh rvsd has no neighbour entries yet, and a load's first
        # SYNs would wait for ARP (and a SYN retransmission) without it.
        check_path "$system"
        # lab.sh start-lb writes rvsd's own pid there (vm-testbed/run/<lb>.pid).
        LB_PID="$(cat "$REPO/vm-testbed/run/lb1.pid" 2>/dev/null || true)"
        measure "$system" "$load"
        scrape_rvsd "$system" "$load"
        LB_PID=""
    done
    bash "$LAB" stop-lb lb1 >&2
    finish_system "$system"
}

# lab-lb1's kernel takes the balancer's addresses (rvsd stopped, its XDP programs gone).
kernel_lb_up() {
    ((KERNEL_LB)) && return 0
    bash "$LAB" stop-lb lb1 >&2
    local ifc
    for ifc in front back; do
        in_ns lab-lb1 ip link set dev "$ifc" xdp off >/dev/null 2>&1 || true
        in_ns lab-lb1 ip link set dev "$ifc" up
    done
    KERNEL_LB=1
    # lab.sh sets arp_ignore = 8 (never answer) on the DPDK ports so that the kernel does not
    # answer ARP beside rvsd; the kernel peers must answer it. Restored by kernel_lb_down.
    for ifc in front back; do
        ARP_IGNORE[$ifc]="$(in_ns lab-lb1 sysctl -n "net.ipv4.conf.$ifc.arp_ignore")"
        in_ns lab-lb1 sysctl -qw "net.ipv4.conf.$ifc.arp_ignore=0"
    done
    in_ns lab-lb1 ip addr replace 10.10.0.1/24 dev front
    in_ns lab-lb1 ip addr replace 10.20.0.1/24 dev back
    in_ns lab-lb1 ip addr replace "$VIP/32" dev front
    in_ns lab-lb1 sysctl -qw net.ipv4.ip_forward=1
    # NAT mode: the servers' replies to the clients go through 10.20.0.1.
    bash "$LAB" rs-start nat >&2
}

run_nftables() {
    local system=nftables
    kernel_lb_up
    in_ns lab-lb1 nft delete table ip rvs_e2e >/dev/null 2>&1 || true
    in_ns lab-lb1 nft -f "$HERE/nftables.nft"
    write_meta "$system" kernel nat
    check_path "$system"
    measure "$system" keepalive
    measure "$system" close
    measure "$system" iperf3
    in_ns lab-lb1 nft delete table ip rvs_e2e
    finish_system "$system"
}

run_haproxy() {
    local system=haproxy pid
    kernel_lb_up
    in_ns lab-lb1 nft delete table ip rvs_e2e >/dev/null 2>&1 || true
    sed "s|@WORK@|$WORK|g" "$HERE/haproxy.cfg.in" >"$WORK/haproxy.cfg"
    # -db: foreground (our pid is HAProxy's); -W not needed for one process.
    start_bg "$WORK/haproxy.log" ip netns exec lab-lb1 haproxy -db -f "$WORK/haproxy.cfg"
    pid=${PIDS[-1]}
    wait_listen lab-lb1 8000 "$pid" "$WORK/haproxy.log"
    write_meta "$system" kernel tcp-proxy
    check_path "$system"
    LB_PID=$pid
    measure "$system" keepalive
    measure "$system" close
    measure "$system" iperf3
    LB_PID=""
    stop_pid "$pid"
    finish_system "$system"
}

# The reference without a balancer: the same loads from lab-client straight to rs1's nginx
# and iperf3 (10.20.0.11), both ways through lab-router's kernel forwarding (the servers'
# default route, `rs-start dr`). What the clients, servers and veths reach on these 2 cores
# with one plain kernel hop and no load balancing.
run_direct() {
    local system=direct
    kernel_lb_down
    bash "$LAB" stop-lb lb1 >&2
    bash "$LAB" rs-start dr >&2
    write_meta "$system" reference router
    TARGET=10.20.0.11
    local body
    body="$(in_ns lab-client curl -s -m 5 "http://$TARGET:8000/" || true)"
    [[ "$body" == "$(cat "$WORK/www/index.html")" ]] ||
        die "$system: GET http://$TARGET:8000/ did not return the benchmark file (got: ${body:0:80})"
    measure "$system" keepalive
    measure "$system" close
    measure "$system" iperf3
    TARGET=$VIP
    finish_system "$system"
}

# --- main ---------------------------------------------------------------------------------

main() {
    check_prereqs
    if [[ " $SYSTEMS " == *" rvsd-"* ]]; then
        find_rvsd
        export RVSD_BIN
        say "rvsd: $RVSD_BIN"
    fi
    if [[ -z "$WORK" ]]; then
        WORK="$(mktemp -d /tmp/rvs-e2e.XXXXXX)"
    else
        mkdir -p "$WORK"
        WORK="$(cd "$WORK" && pwd)"
    fi
    wait_for_lab 'rvs-labtests|vm-testbed/test\.sh|vm-testbed/demo\.sh' 'lab tests or the demo are' 30
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    say "start $(date -Is), load average $(cut -d' ' -f1-3 /proc/loadavg), ${SECS}s per load, commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
    LAB_UP=1
    bash "$LAB" up >&2
    start_servers

    local s
    for s in $SYSTEMS; do
        case "$s" in
            rvsd-*) run_rvsd "$s" ;;
            nftables) run_nftables ;;
            haproxy) run_haproxy ;;
            direct) run_direct ;;
        esac
    done

    # shellcheck disable=SC2086 # a list of names
    python3 "$HERE/report.py" table "$WORK" $SYSTEMS >"$WORK/table.md"
    {
        echo
        echo "e2e: $(date -Is), load average at the end $(cut -d' ' -f1-3 /proc/loadavg), ${SECS}s per load, $CONNS wrk connections"
        cat "$WORK/table.md"
        echo
    } >&2
    # shellcheck disable=SC2086
    python3 "$HERE/report.py" check "$WORK" $SYSTEMS
}

main
