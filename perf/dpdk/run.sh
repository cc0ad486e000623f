#!/usr/bin/env bash
# perf/bench.sh dpdk: rvsd's DPDK forwarding rate per mode against dpdk-testpmd's io
# forwarding (the I/O ceiling), with the same generator, frames and kind of ports, in one run.
#
#   perf/dpdk/run.sh [--quick] [--seconds F] [--flows N] [--modes dr,nat,fullnat,tunnel]
#                    [--sizes 60,508,1496] [--conn-capacity N] [--no-build] [--keep-logs]
#   perf/dpdk/run.sh --flood [--quick] [--seconds F] [--flows N] [--conn-capacity N]
#                    [--rsize N] [--window N] ...
#
# Method (perf/RESULTS.md has the figures and their analysis):
#   * rvs-pktgen (perf/src/bin/rvs-pktgen.rs) owns two net_memif ports in the client role;
#     the device under test owns the two server ends: `front` (clients) and `back` (servers).
#   * First dpdk-testpmd --forward-mode=io between its two memif ports: the generator's
#     established-flow frames (--sizes, default 60, 508 and 1496 bytes: 64, 512 and 1500 on
#     the wire) and its SYN stream. IPIP (tunnel) skips sizes above 1494 (the 20-byte
#     outer header would take the packet past the back port's 1500-byte MTU).
#   * Then, per forwarding mode, a fresh rvsd (perf/dpdk/rvsd.toml.in: 1 worker, idle busy,
#     one TCP service 10.10.0.100:80 → 3 servers, static neighbours): the generator opens
#     --flows connections with real handshakes, sends their data segments at the highest
#     rate rvsd takes for each size, then a SYN per new 5-tuple until the table is full and
#     beyond (churn).
#   * Pinning: on 2 CPUs the generator runs on CPU 0 with the DUT's main lcore (rvsd's
#     control thread, asleep in epoll; testpmd's idle main lcore) and the DUT's forwarding
#     lcore alone on CPU 1. With 3+ CPUs the generator gets CPU 2. Override with
#     RVS_BENCH_GEN_LCORE and RVS_BENCH_DUT_LCORES ("main,worker").
#   * The machine may be shared: each line says how much of a CPU the DUT's polling thread
#     got while the generator ran (rvsd_cpu_share, testpmd_cpu_share; from /proc, ~1 when
#     nothing else ran there) and the load average before the run (load_before; `load` is
#     taken at the end of the phase and includes the benchmark's own two polling threads).
# --flood (the SYN-flood figures, DR only; no testpmd run): rvsd in DR, the generator opens
#   --flows (default 1000) connections (--conn-capacity default 65536 here), measures their 64-byte forwarding rate alone, then
#   the flood phase: per burst of 32, 8 established frames, 1 slot for legitimate handshakes
#   (1000 SYNs a second from 172.24/16, each ACK --flood-rtt-us = 1 ms later) and 23
#   spoofed SYNs from random 100.64/10 addresses, at the generator's full rate. Prints the
#   established line and one {"bench":"dpdk_flood",...} line: established_loss,
#   established_mpps_flood vs established_mpps_alone, spoofed_syn_mpps, legit_completion
#   (ACKs forwarded / ACKs sent), legit_handshakes_per_s, and rvsd's half_open_evicted and
#   conn_table_full over the phase. Then the like-for-like phases (`dpdk_flood_paced`):
#   the established flows offered at a quarter of their rate alone (rvs-pktgen
#   --flood-paced-share), first without, then with the flood filling the rest.
#   So that the generator's own lateness is not counted as rvsd's loss, --flood runs with
#   4096-slot memif rings (--rsize 12; the default is 1024) and at most 2048 frames in
#   flight (--window 2048: a generator that falls behind in draining its receive ring
#   slows down instead of overflowing rvsd's transmit ring), and the generator drains
#   its receive ring before each transmit. Each phase says how many frames did not come
#   back (not_received), how many of them rvsd counted as dropped (rvsd_dropped, by reason
#   under rvsd.drops; rvsd_tx_full among them) and the rest (not_received_unexplained).
# --rsize N: log2 of the memif rings' size on both sides (DPDK's default 10 = 1024).
# --window N: rvs-pktgen's in-flight limit (0 = none, the default without --flood).
# Output: one JSON object per line and per (mode, size, established|new) on stdout:
#   {"bench":"dpdk","mode":"nat","pkt_size":64,"flows":"established","rvsd_mpps":..,
#    "testpmd_mpps":..,"ratio":..,"loss":..,"duration_s":..,"load":.., ...}
#   pkt_size counts the 4-byte FCS (frames are 60 and 508 bytes in memory). For
#   "flows":"new", rvsd_mpps is the rate while the connection table filled (= new
#   connections per second / 10^6), testpmd_mpps testpmd's rate on the same SYN stream,
#   churn_mpps the rate rvsd took SYNs once the table was full (dropped, "table full").
# Takes about 2 minutes (1 testpmd + 4 rvsd runs of 3 phases of --seconds each, plus
# start-up); --quick about 25 s.
# Diagnostics go to stderr; logs to a temporary folder, removed on success (kept, and
# named, on failure or with --keep-logs). Every process started here is stopped and every
# socket removed on exit, also on failure or Ctrl-C.
#
# Binaries: $RVSD_BIN and $RVS_PKTGEN_BIN when set, else built here in release mode into
# $CARGO_TARGET_DIR (or the repository's target/) unless --no-build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/perf/dpdk"

seconds=5
flows=1024
modes="dr,nat,fullnat,tunnel"
conn_capacity=262144
build=1
keep_logs=0
cap_set=0
flood=0
flows_set=0
rsize=""
window=""
sizes="60,508,1496"

say() { printf 'perf/dpdk: %s\n' "$*" >&2; }
die() { printf 'perf/dpdk: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}

while (($#)); do
    case "$1" in
        --quick) seconds=1; flows=256 ;;
        --seconds) seconds="${2:?--seconds needs a value}"; shift ;;
        --flows) flows="${2:?--flows needs a value}"; flows_set=1; shift ;;
        --flood) flood=1 ;;
        --modes | --mode) modes="${2:?--modes needs a value}"; shift ;;
        --conn-capacity) conn_capacity="${2:?--conn-capacity needs a value}"; cap_set=1; shift ;;
        --rsize) rsize="${2:?--rsize needs a value}"; shift ;;
        --window) window="${2:?--window needs a value}"; shift ;;
        --sizes) sizes="${2:?--sizes needs a value}"; shift ;;
        --no-build) build=0 ;;
        --keep-logs) keep_logs=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown option '$1'" ;;
    esac
    shift
done
if ((flood)); then
    modes=dr
    ((flows_set)) || flows=1000
    # A table the flood fills within a phase even on a shared CPU, so the half-open
    # eviction path is what gets measured.
    ((cap_set)) || conn_capacity=65536
    [[ -n $rsize ]] || rsize=12
    [[ -n $window ]] || window=2048
fi
[[ -z $rsize || $rsize =~ ^[0-9]+$ && $rsize -ge 1 && $rsize -le 14 ]] || die "--rsize must be 1..14 (log2 of the ring size)"
[[ -z $window || $window =~ ^[0-9]+$ ]] || die "--window must be a number of frames (0 = no limit)"
memif_opts=""
[[ -z $rsize ]] || memif_opts=",rsize=$rsize"
for m in ${modes//,/ }; do
    case "$m" in dr | nat | fullnat | tunnel) ;; *) die "unknown mode '$m' (dr, nat, fullnat, tunnel)" ;; esac
done
for z in ${sizes//,/ }; do
    [[ $z =~ ^[0-9]+$ ]] && ((z >= 60 && z <= 1514)) || die "--sizes: '$z' is not a frame size of 60..1514 bytes (without the FCS)"
done

# --- prerequisites ----------------------------------------------------------------------
missing=()
[[ $(id -u) -eq 0 ]] || missing+=("root: DPDK needs hugepages and memif sockets; run as root (sudo -E perf/bench.sh dpdk)")
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
need_hp=256
if [[ -r $hp/free_hugepages ]]; then
    free_hp=$(cat "$hp/free_hugepages")
    ((free_hp >= need_hp)) || missing+=("hugepages: $free_hp free 2 MiB pages, $need_hp needed (generator and DUT together); run: sudo bash vm-testbed/setup-host.sh")
else
    missing+=("hugepages: this kernel has no 2 MiB hugepages ($hp); run: sudo bash vm-testbed/setup-host.sh")
fi
awk '$3 == "hugetlbfs" { f = 1 } END { exit !f }' /proc/mounts ||
    missing+=("hugetlbfs is not mounted; run: sudo bash vm-testbed/setup-host.sh")
command -v dpdk-testpmd >/dev/null ||
    missing+=("dpdk-testpmd not found (Debian package dpdk); run: sudo bash vm-testbed/setup-host.sh (or apt-get install dpdk)")
compgen -G "/usr/lib/*/dpdk/pmds-*/librte_net_memif.so*" >/dev/null || compgen -G "/usr/lib*/dpdk/pmds-*/librte_net_memif.so*" >/dev/null ||
    missing+=("the net_memif PMD (librte_net_memif.so, Debian package librte-net-memif23) is not installed; run: sudo bash vm-testbed/setup-host.sh")
ncpu=$(nproc)
((ncpu >= 2)) || missing+=("at least 2 CPUs: the generator and the DUT's worker are pinned to different CPUs (this machine has $ncpu)")
if ((${#missing[@]})); then
    for m in "${missing[@]}"; do printf 'perf/dpdk: missing: %s\n' "$m" >&2; done
    exit 1
fi

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
if [[ -z ${RVSD_BIN:-} || -z ${RVS_PKTGEN_BIN:-} ]] && ((build)); then
    say "building rvsd and rvs-pktgen (release) into $target"
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p rvs-controlplane --bin rvsd -p rvs-perf --bin rvs-pktgen >&2) ||
        die "the build failed (see above)"
fi
rvsd="${RVSD_BIN:-$target/release/rvsd}"
pktgen="${RVS_PKTGEN_BIN:-$target/release/rvs-pktgen}"
[[ -x $rvsd ]] || die "no rvsd binary at $rvsd: set RVSD_BIN or build it (cargo build --release -p rvs-controlplane)"
[[ -x $pktgen ]] || die "no rvs-pktgen binary at $pktgen: set RVS_PKTGEN_BIN or build it (cargo build --release -p rvs-perf --bin rvs-pktgen)"

# --- pinning ----------------------------------------------------------------------------
if ((ncpu >= 3)); then gen_default=2; else gen_default=0; fi
gen_lcore="${RVS_BENCH_GEN_LCORE:-$gen_default}"
dut_lcores="${RVS_BENCH_DUT_LCORES:-0,1}"
dut_main="${dut_lcores%%,*}"
dut_worker="${dut_lcores##*,}"
[[ $dut_main != "$dut_worker" ]] || die "RVS_BENCH_DUT_LCORES must name two CPUs: main,worker"
[[ $gen_lcore != "$dut_worker" ]] || die "the generator (CPU $gen_lcore) must not share the DUT worker's CPU"
note="generator cpu$gen_lcore; DUT main lcore cpu$dut_main, forwarding lcore cpu$dut_worker; nproc $ncpu"

# --- run folder and clean-up -------------------------------------------------------------
run="$(mktemp -d /tmp/rvs-dpdk-bench.XXXXXX)"
tag="rvsbench$$"
dut_pid=""
gen_pid=""
ok=0

stop_pid() { # pid name
    local pid="$1" i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$2 (pid $pid) ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_pid "$gen_pid" rvs-pktgen
    stop_pid "$dut_pid" DUT
    rm -f "$run"/*.sock
    if ((ok && !keep_logs)); then
        rm -rf "$run"
    else
        say "logs kept in $run"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gen_vdevs=(--vdev "net_memif0,role=client,id=0,socket=$run/front.sock,socket-abstract=no$memif_opts"
    --vdev "net_memif1,role=client,id=0,socket=$run/back.sock,socket-abstract=no$memif_opts")

wait_sockets() { # log name
    local i
    for i in $(seq 300); do
        [[ -S $run/front.sock && -S $run/back.sock ]] && return 0
        kill -0 "$dut_pid" 2>/dev/null || { tail -n 30 "$1" >&2; die "$2 exited during start-up (log: $1)"; }
        sleep 0.1
    done
    tail -n 30 "$1" >&2
    die "$2 created no memif sockets in 30 s (log: $1)"
}

# rvsd's counters (GET /v1/status) into the logs, when rvsd is the DUT and curl exists.
api_port=""
share=null
save_status() { # name
    [[ -n $api_port ]] && command -v curl >/dev/null || return 0
    curl -s -m 5 "http://127.0.0.1:$api_port/v1/status" >"$run/$1.status.json" 2>/dev/null || true
}

# CPU time of each thread of process $1, in clock ticks: "tid ticks" lines.
thread_ticks() {
    local f
    for f in /proc/"$1"/task/*/stat; do
        # Fields after the ")" that ends the thread name: utime is the 12th, stime the 13th.
        awk -v f="$f" '{ sub(/^.*\) /, ""); split(f, p, "/"); print p[5], $12 + $13 }' "$f" 2>/dev/null || true
    done
}
# The share of one CPU the DUT's busiest thread (its polling lcore) got between two
# thread_ticks snapshots over $3 seconds: below ~0.95, something else ran on its CPU and
# the rate is lower than the DUT alone would reach.
cpu_share() { # before-file after-file seconds
    awk -v secs="$3" -v hz="$(getconf CLK_TCK)" '
        NR == FNR { before[$1] = $2; next }
        { d = $2 - before[$1]; if (d > max) max = d }
        END { printf "%.3f", (secs > 0 ? max / hz / secs : 0) }' "$1" "$2"
}

# The generator against the running DUT ($dut_pid); its JSON lines go to $run/NAME.json.
# The DUT is stopped here, after the measurement and BEFORE the generator exits: the
# generator creates NAME.done when it has printed everything, then waits for the links to
# go down. (DPDK 22.11's memif PMD can crash an lcore polling a port whose peer has just
# disconnected: rvs-pktgen's `linger` says more.) Sets $share: the CPU share of the DUT's
# polling thread while the generator ran.
pktgen_run() { # name args...
    local name="$1" t0 rc=0
    shift
    rm -f "$run/$name.done"
    "$pktgen" --flows "$flows" --seconds "$seconds" "${phase_args[@]}" --lcore-note "$note" \
        --done-file "$run/$name.done" "$@" -- \
        -l "$gen_lcore" --in-memory --no-telemetry --no-pci --file-prefix="$tag-gen" "${gen_vdevs[@]}" \
        >"$run/$name.json" 2>"$run/$name.pktgen.log" &
    gen_pid=$!
    thread_ticks "$dut_pid" >"$run/$name.ticks0"
    t0=$(date +%s.%N)
    while [[ ! -e $run/$name.done ]] && kill -0 "$gen_pid" 2>/dev/null; do
        sleep 0.05
    done
    if [[ -e $run/$name.done ]]; then
        thread_ticks "$dut_pid" >"$run/$name.ticks1"
        share="$(cpu_share "$run/$name.ticks0" "$run/$name.ticks1" \
            "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')")"
    fi
    [[ $name == testpmd ]] || save_status "$name"
    stop_pid "$dut_pid" "the DUT ($name)"
    dut_pid=""
    wait "$gen_pid" || rc=$?
    gen_pid=""
    rm -f "$run"/*.sock
    if ((rc != 0)) || [[ ! -e $run/$name.done ]]; then
        tail -n 30 "$run/$name.pktgen.log" >&2
        die "rvs-pktgen failed against $name (exit $rc; log: $run/$name.pktgen.log)"
    fi
    say "$name: its polling thread had $share of a CPU while the generator ran"
}

load_before="$(cut -d' ' -f1 /proc/loadavg)"
say "load before: $(cut -d' ' -f1-3 /proc/loadavg); $note; ${seconds}s per phase, $flows flows"

# --- the I/O ceiling: testpmd io forwarding ----------------------------------------------
phase_args=(--new-flows --sizes "$sizes")
ceiling_args=()
tshare=null
if ((flood)); then
    # The flood figures compare rvsd with itself (with and without the flood): no testpmd.
    phase_args=(--sizes 60 --flood --window "$window")
else
tlog="$run/testpmd.log"
dpdk-testpmd -l "$dut_lcores" --in-memory --no-telemetry --no-pci --file-prefix="$tag-tpmd" \
    --vdev "net_memif0,role=server,id=0,socket=$run/front.sock,socket-abstract=no" \
    --vdev "net_memif1,role=server,id=0,socket=$run/back.sock,socket-abstract=no" \
    -- --forward-mode=io --nb-cores=1 --stats-period=1 --total-num-mbufs=16384 </dev/null >"$tlog" 2>&1 &
dut_pid=$!
wait_sockets "$tlog" dpdk-testpmd
pktgen_run testpmd --dut testpmd --mode nat

ceiling_of() { # key
    sed -n "s/.*\"key\":\"$1\".*\"testpmd_mpps\":\([0-9.]*\).*/\1/p" "$run/testpmd.json" | head -n 1
}
ceilings=""
for z in ${sizes//,/ }; do
    c="$(ceiling_of "$z")"
    [[ -n $c ]] || { cat "$run/testpmd.json" >&2; die "no testpmd figure for $z-byte frames (log: $tlog)"; }
    ceilings+="$z=$c,"
    say "testpmd io: ${c} Mpps ($((z + 4)) B)"
done
csyn="$(ceiling_of syn)"
[[ -n $csyn ]] || { cat "$run/testpmd.json" >&2; die "no testpmd figures (log: $tlog)"; }
tshare="$share"
say "testpmd io: ${csyn} Mpps (SYN stream)"
ceiling_args=(--ceiling "${ceilings}syn=$csyn")
fi

# --- rvsd, one fresh process per mode ------------------------------------------------------
for p in $(seq 18700 18799); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then api_port=$p; break; fi
done
[[ -n $api_port ]] || die "no free TCP port in 18700-18799 for rvsd's REST API"

for mode in ${modes//,/ }; do
    case "$mode" in nat | fullnat) sport=8080 ;; *) sport=80 ;; esac
    cfg="$run/rvsd-$mode.toml"
    sed -e "s|@PREFIX@|$tag-dut|" -e "s|@LCORES@|$dut_lcores|" -e "s|@CONN_CAPACITY@|$conn_capacity|" \
        -e "s|@SOCKDIR@|$run|g" -e "s|@API@|127.0.0.1:$api_port|" -e "s|@SERVER_PORT@|$sport|" \
        -e "s|@MODE@|$mode|" -e "s|@MEMIF_OPTS@|$memif_opts|" "$here/rvsd.toml.in" >"$cfg"
    log="$run/rvsd-$mode.log"
    RUST_LOG="${RUST_LOG:-info}" "$rvsd" --config "$cfg" </dev/null >"$log" 2>&1 &
    dut_pid=$!
    wait_sockets "$log" rvsd
    for i in $(seq 300); do
        grep -q "rvsd is running" "$log" && break
        kill -0 "$dut_pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "rvsd exited during start-up (log: $log)"; }
        sleep 0.1
    done
    grep -q "rvsd is running" "$log" || { tail -n 30 "$log" >&2; die "rvsd did not come up in 30 s (log: $log)"; }
    # conn_capacity in the output is read from rvsd itself (--api: GET /v1/config).
    if ((!flood)); then
        mode_sizes="$sizes"
        if [[ $mode == tunnel ]]; then
            mode_sizes="$(tr ',' '\n' <<<"$sizes" | awk '$1 <= 1494' | paste -sd, -)"
            [[ -n $mode_sizes ]] || die "--sizes: no size of 1494 bytes or less for tunnel mode"
        fi
        phase_args=(--new-flows --sizes "$mode_sizes")
    fi
    pktgen_run "rvsd-$mode" --dut rvsd --mode "$mode" --api "127.0.0.1:$api_port" "${ceiling_args[@]}"
    # Each line gains the CPU shares of rvsd's and testpmd's polling threads and the load
    # before the run (the run itself adds its two polling threads to the load average).
    sed -e "s/}\$/,\"rvsd_cpu_share\":$share,\"testpmd_cpu_share\":$tshare,\"load_before\":$load_before}/" "$run/rvsd-$mode.json"
done
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ok=1
