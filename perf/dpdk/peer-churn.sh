#!/usr/bin/env bash
# rvsd survives its memif peer going away, and forwards again when a new peer connects.
#
#   perf/dpdk/peer-churn.sh [--rounds N] [--mode dr|nat|fullnat|tunnel] [--no-build] [--keep-logs]
#
# One rvsd (perf/dpdk/rvsd.toml.in: two net_memif ports in the server role, 1 busy worker)
# runs for the whole test. Each round starts rvs-pktgen as the memif client, which opens 64
# connections through rvsd with real handshakes (so rvsd forwarded again after the
# reconnect) and then sends established-flow traffic as fast as rvsd takes it; while it
# sends, the round ends it: SIGKILL at a varying point (2 rounds in 3) or SIGTERM (1 in 3),
# so the peer disconnects while rvsd's worker is polling both ports, which is what crashed
# rvsd before the unmap guard (drivers/rvs-drivers/src/dpdk/quiesce.rs explains the race in
# DPDK 22.11's memif PMD). After each round rvsd must still be running.
# A last round reverses the roles: rvsd is stopped while the generator polls, and the
# generator must not crash (it uses the same driver layer).
#
# Output: one JSON line on stdout:
#   {"bench":"dpdk_peer_churn","mode":..,"rounds":N,"rvsd_survived":N,"forwarded_rounds":N,
#    "grace_periods":..,"grace_timeouts":..,"generator_survived_dut_stop":true,"segfaults_in_dmesg":0}
# Exit status 1 if rvsd died, a round did not forward, or the generator crashed.
# Needs what perf/dpdk/run.sh needs (root, hugepages, the memif PMD).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/perf/dpdk"
rounds=50
mode=dr
build=1
keep_logs=0

say() { printf 'perf/dpdk/peer-churn: %s\n' "$*" >&2; }
die() { printf 'perf/dpdk/peer-churn: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case "$1" in
        --rounds) rounds="${2:?--rounds needs a value}"; shift ;;
        --mode) mode="${2:?--mode needs a value}"; shift ;;
        --no-build) build=0 ;;
        --keep-logs) keep_logs=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, not '$rounds'"
case "$mode" in dr | nat | fullnat | tunnel) ;; *) die "unknown mode '$mode' (dr, nat, fullnat, tunnel)" ;; esac
[[ $(id -u) -eq 0 ]] || die "needs root (hugepages and memif sockets)"
free_hp=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
((free_hp >= 256)) || die "$free_hp free 2 MiB hugepages, 256 needed; run: sudo bash vm-testbed/setup-host.sh"

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
if [[ -z ${RVSD_BIN:-} || -z ${RVS_PKTGEN_BIN:-} ]] && ((build)); then
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p rvs-controlplane --bin rvsd -p rvs-perf --bin rvs-pktgen >&2) ||
        die "the build failed (see above)"
fi
rvsd="${RVSD_BIN:-$target/release/rvsd}"
pktgen="${RVS_PKTGEN_BIN:-$target/release/rvs-pktgen}"
[[ -x $rvsd && -x $pktgen ]] || die "no rvsd or rvs-pktgen binary ($rvsd, $pktgen): set RVSD_BIN/RVS_PKTGEN_BIN or build them"

run="$(mktemp -d /tmp/rvs-peer-churn.XXXXXX)"
tag="rvschurn$$"
dut_pid=""
gen_pid=""
ok=0
cleanup() {
    local rc=$?
    for p in $gen_pid $dut_pid; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -f "$run"/*.sock
    if ((ok && !keep_logs)); then rm -rf "$run"; else say "logs kept in $run"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

api_port=""
for p in $(seq 18800 18899); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then api_port=$p; break; fi
done
[[ -n $api_port ]] || die "no free TCP port in 18800-18899 for rvsd's REST API"
case "$mode" in nat | fullnat) sport=8080 ;; *) sport=80 ;; esac
ncpu=$(nproc)
dut_lcores="${RVS_BENCH_DUT_LCORES:-0,1}"
gen_lcore="${RVS_BENCH_GEN_LCORE:-$((ncpu >= 3 ? 2 : 0))}"
sed -e "s|@PREFIX@|$tag-dut|" -e "s|@LCORES@|$dut_lcores|" -e "s|@CONN_CAPACITY@|65536|" \
    -e "s|@SOCKDIR@|$run|g" -e "s|@API@|127.0.0.1:$api_port|" -e "s|@SERVER_PORT@|$sport|" \
    -e "s|@MODE@|$mode|" -e "s|@MEMIF_OPTS@||" "$here/rvsd.toml.in" >"$run/rvsd.toml"

dmesg_mark="$(dmesg 2>/dev/null | wc -l || echo 0)"
start_rvsd() {
    RUST_LOG="${RUST_LOG:-info}" "$rvsd" --config "$run/rvsd.toml" </dev/null >>"$run/rvsd.log" 2>&1 &
    dut_pid=$!
    local i
    for i in $(seq 300); do
        [[ -S $run/front.sock && -S $run/back.sock ]] && grep -q "rvsd is running" "$run/rvsd.log" && return 0
        kill -0 "$dut_pid" 2>/dev/null || { tail -n 20 "$run/rvsd.log" >&2; die "rvsd exited during start-up"; }
        sleep 0.1
    done
    die "rvsd did not come up in 30 s (log: $run/rvsd.log)"
}

# rvs-pktgen as the memif client; --seconds long enough that the round ends it mid-send.
start_gen() { # log
    "$pktgen" --dut rvsd --mode "$mode" --api "127.0.0.1:$api_port" --flows 64 --seconds 30 --sizes 60 -- \
        -l "$gen_lcore" --in-memory --no-telemetry --no-pci --file-prefix="$tag-gen" \
        --vdev "net_memif0,role=client,id=0,socket=$run/front.sock,socket-abstract=no" \
        --vdev "net_memif1,role=client,id=0,socket=$run/back.sock,socket-abstract=no" \
        >/dev/null 2>"$1" &
    gen_pid=$!
}

# Waits until the generator has opened its connections through rvsd (it then sends).
wait_opened() { # log
    local i
    for i in $(seq 200); do
        grep -q "connections opened" "$1" && return 0
        kill -0 "$gen_pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

start_rvsd
say "rvsd up (mode $mode, pid $dut_pid); $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
survived=0
forwarded=0
for r in $(seq "$rounds"); do
    log="$run/gen.$r.log"
    start_gen "$log"
    if wait_opened "$log"; then
        forwarded=$((forwarded + 1))
    else
        say "round $r: the generator did not open its connections through rvsd:"
        tail -n 5 "$log" >&2
    fi
    # Let it send for 0-999 ms, then end it while rvsd polls.
    sleep "$(printf "0.%03d" $((RANDOM % 1000)))"
    if ((r % 3 == 0)); then sig=TERM; else sig=KILL; fi
    kill -"$sig" "$gen_pid" 2>/dev/null || true
    wait "$gen_pid" 2>/dev/null || true
    gen_pid=""
    sleep 0.2
    if ! kill -0 "$dut_pid" 2>/dev/null; then
        wait "$dut_pid" && rc=0 || rc=$?
        tail -n 20 "$run/rvsd.log" >&2
        die "round $r: rvsd died (exit $rc) after its peer was sent SIG$sig"
    fi
    survived=$((survived + 1))
done

# Reverse: the DUT goes away while the generator polls.
log="$run/gen.reverse.log"
start_gen "$log"
gen_ok=false
if wait_opened "$log"; then
    sleep 0.2
    kill -TERM "$dut_pid"
    wait "$dut_pid" 2>/dev/null || true
    dut_pid=""
    sleep 1
    if kill -0 "$gen_pid" 2>/dev/null; then
        gen_ok=true
        kill -TERM "$gen_pid"
    fi
    wait "$gen_pid" 2>/dev/null && grc=0 || grc=$?
    # SIGSEGV is 139 when it died by itself; 143 is our SIGTERM.
    ((grc == 139)) && gen_ok=false
    gen_pid=""
fi
grace="$(grep -c "every worker left its burst first" "$run/rvsd.log" || true)"
grace_to="$(grep -c "did not pass a burst boundary in time" "$run/rvsd.log" || true)"
segv="$(dmesg 2>/dev/null | tail -n +"$((dmesg_mark + 1))" | grep -c "segfault.*librte_net_memif" || true)"
printf '{"bench":"dpdk_peer_churn","mode":"%s","rounds":%d,"rvsd_survived":%d,"forwarded_rounds":%d,"grace_periods":%d,"grace_timeouts":%d,"generator_survived_dut_stop":%s,"segfaults_in_dmesg":%d,"load":%s}\n' \
    "$mode" "$rounds" "$survived" "$forwarded" "$grace" "$grace_to" "$gen_ok" "$segv" "$(cut -d' ' -f1 /proc/loadavg)"
((forwarded == rounds)) || die "$((rounds - forwarded)) of $rounds rounds did not forward after the reconnect"
[[ $gen_ok == true ]] || die "the generator died when rvsd stopped under it (log: $log)"
((segv == 0)) || die "dmesg shows $segv memif segfault(s) during the run"
ok=1
