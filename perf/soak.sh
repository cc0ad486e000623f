#!/usr/bin/env bash
# The soak: rvsd in the netns lab under everything at once, for a bounded time.
#
#   perf/soak.sh [--minutes N] [--mode nat|fullnat|dr|tunnel] [--work DIR] [--wait-lab SECONDS]
#                [--connections N] [--close-connections N] [--flood-interval-us N]
#                [--malformed-rate N] [--churn-interval S] [--sample-interval S]
#
# For --minutes (default 30; vm-testbed/test.sh runs 2), rvsd (1 worker, adaptive idle, the
# lab's af_xdp ports, forwarding mode --mode, default nat) serves the VIP 10.10.0.100:8000
# (round robin over nginx on lab-rs1..3) while, at the same time:
#   - wrk keeps --connections (8) connections alive, and a second wrk opens a new connection
#     per request (`Connection: close`, --close-connections, 4), both from lab-client's
#     10.10.0.2, 10 s timeout;
#   - every --churn-interval (2 s) one REST change, in a cycle: rs1's weight, rs3 deleted,
#     rs2's weight, the scheduler rr <-> wrr, rs3 added back, and a change that must be
#     refused (an unknown scheduler, a negative weight, a body that is not JSON);
#   - vm-testbed/tools/malformed.py sends malformed and unwanted frames at rvsd's front port
#     at --malformed-rate (200) frames/s, in batches with a new seed each;
#   - hping3 sends SYNs from the spoofed client 10.10.0.9 every --flood-interval-us (400 us,
#     2,500/s: the lab's two cores must keep running the rest). NAT and Full-NAT: at
#     VIP:8080, a second service to the same servers with `client_rate = 200` (the defence
#     for those modes, `client_rate_limited`); DR and IPIP: at VIP:8000, the wrk service
#     itself, where half-open entries are evicted first when the table is full;
#   - a sampler every --sample-interval (5 s) saves GET /v1/status, GET /metrics and rvsd's
#     /proc/PID/status (VmRSS, VmHWM, HugetlbPages, Threads), and asks VIP:8000 once from
#     10.10.0.8 (a liveness probe).
# Then it restores the service (rs3 present, weights 1, rr), checks that rvsd still runs and
# that nine new connections reach all three servers, reads nginx's request counts, and
# perf/soak/check.py judges the run (the criteria are in its header):
#   - rvsd's resident memory after the warm-up (the first 20 % of the run, at least 60 s) is
#     flat: max - min at most 4 MiB, and growth along the least-squares line over the
#     window's second half below 1 MiB;
#   - no counter of /v1/status or /metrics went backwards between two samples (gauges
#     excluded by name; a server's counters may restart only when the churn deleted it);
#   - every request wrk sent was answered, or its failure explained; nginx's request count
#     agrees with wrk's; every liveness probe was answered;
#   - rvsd scheduled at least as many connections on VIP:8000 as wrk made with
#     `Connection: close` (each request its own connection);
#   - every accepted REST change was applied exactly once (the config generation moved by
#     the number of accepted changes) and every bad one refused;
#   - no worker stalled, rvsd survived.
# It prints a summary table, keeps the raw files and summary.json in WORK (default a new
# /tmp/rvs-soak.XXXXXX) and exits 1 on any violation.
#
# The lab is shared: the run holds the lab lock for its whole length (flock on
# /run/lock/rvs-lab.lock, the file rvs-labtests' `Lab` locks, one per host; RVS_LAB_LOCKS
# adds more lock files, space-separated), and refuses to start while lab
# namespaces exist or lab tests / test.sh / the demo run (other than its own callers), or
# waits --wait-lab seconds for them (default 0). It brings the lab up and, on exit (success,
# failure, SIGINT or SIGTERM), stops what it started and takes the lab down. The load tools
# run under `nice -n 5` so that rvsd keeps its share of the two cores. Needs root, wrk,
# hping3, nginx, python3 (vm-testbed/setup-host.sh installs them) and free hugepages.
# Environment: RVSD_BIN (else rvsd is built in release mode into $CARGO_TARGET_DIR or
# target/).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
LAB="$REPO/vm-testbed/lab.sh"
VIP=10.10.0.100
WRK_PORT=8000
API=http://127.0.0.1:8700
SVC="/v1/services/tcp/$VIP/$WRK_PORT"
FLOODER=10.10.0.9
PROBE_IP=10.10.0.8

MINUTES=30
MODE=nat
WORK=""
WAIT_LAB=0
CONNS=8
CLOSE_CONNS=4
FLOOD_US=400
FLOOD_CLIENT_RATE=200
MALFORMED_RATE=200
CHURN_INTERVAL=2
SAMPLE_INTERVAL=5

say() { printf 'soak: %s\n' "$*" >&2; }
die() { printf 'soak: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while (($#)); do
    case "$1" in
        --minutes) MINUTES=${2:?--minutes needs a value}; shift ;;
        --mode) MODE=${2:?--mode needs a value}; shift ;;
        --work) WORK=${2:?--work needs a value}; shift ;;
        --wait-lab) WAIT_LAB=${2:?--wait-lab needs a value}; shift ;;
        --connections) CONNS=${2:?--connections needs a value}; shift ;;
        --close-connections) CLOSE_CONNS=${2:?--close-connections needs a value}; shift ;;
        --flood-interval-us) FLOOD_US=${2:?--flood-interval-us needs a value}; shift ;;
        --malformed-rate) MALFORMED_RATE=${2:?--malformed-rate needs a value}; shift ;;
        --churn-interval) CHURN_INTERVAL=${2:?--churn-interval needs a value}; shift ;;
        --sample-interval) SAMPLE_INTERVAL=${2:?--sample-interval needs a value}; shift ;;
        -h | --help) usage ;;
        *) echo "perf/soak.sh: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive whole number, not '$2'"; }
posint --minutes "$MINUTES"
posint --connections "$CONNS"
posint --close-connections "$CLOSE_CONNS"
posint --flood-interval-us "$FLOOD_US"
posint --malformed-rate "$MALFORMED_RATE"
posint --churn-interval "$CHURN_INTERVAL"
posint --sample-interval "$SAMPLE_INTERVAL"
[[ "$WAIT_LAB" =~ ^[0-9]+$ ]] || die "--wait-lab must be a number of seconds, not '$WAIT_LAB'"
case "$MODE" in
    nat | fullnat | dr | tunnel) ;;
    *) die "--mode must be one of nat, fullnat, dr, tunnel, not '$MODE'" ;;
esac
SECS=$((MINUTES * 60))

# --- prerequisites ------------------------------------------------------------------------

check_prereqs() {
    local missing=() t
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, DPDK, raw sockets); try: sudo bash perf/soak.sh"
    # command:package (Debian 12)
    for t in wrk:wrk hping3:hping3 nginx:nginx curl:curl python3:python3 ip:iproute2 \
        flock:util-linux ethtool:ethtool; do
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
}

# rvsd: RVSD_BIN, else build it as perf/e2e/run.sh does.
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

# --- the lab lock and who else uses the lab -----------------------------------------------

# The lock files: rvs-labtests' (/run/lock/rvs-lab.lock, one per host; RVS_LAB_LOCK names
# another) and any in
# RVS_LAB_LOCKS. flock(1) and Rust's File::lock are both flock(2), so they exclude each other.
LOCK_FDS=()
take_lab_locks() {
    local f fd
    for f in "${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock}" ${RVS_LAB_LOCKS:-}; do
        mkdir -p "$(dirname "$f")"
        exec {fd}>>"$f"
        LOCK_FDS+=("$fd")
        if ! flock -n "$fd"; then
            say "the lab lock $f is held (lab tests or another soak); waiting up to ${WAIT_LAB}s"
            flock -w "$WAIT_LAB" "$fd" ||
                die "the lab lock $f is still held after ${WAIT_LAB}s; wait for its holder (--wait-lab SECONDS)"
        fi
        say "holding the lab lock $f"
    done
}

# Closes the lock files in a subshell that is about to run something long-lived: a lock is
# held as long as any process has the file open, and rvsd, nginx or a load tool must not keep
# the lab locked after this script is gone.
close_locks() {
    local fd
    for fd in "${LOCK_FDS[@]}"; do eval "exec $fd>&-"; done
}

# vm-testbed/lab.sh without the lock files (it starts rvsd and the servers' tools).
lab() { ( close_locks; exec bash "$LAB" "$@" ); }

# lab_busy and wait_for_lab: who else uses the lab.
# shellcheck source=../vm-testbed/lab-users.sh
source "$REPO/vm-testbed/lab-users.sh"

# --- clean-up -----------------------------------------------------------------------------

PIDS=()       # background processes this script started, stopped in reverse order
SERVER_PIDS=() # nginx on the real servers, stopped last (their request counts are read first)
LAB_UP=0      # we brought the lab up: take it down

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

stop_all() {
    local i pid
    touch "$WORK/stop"
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    # The malformed-frame batch running when its loop stopped.
    pid="$(cat "$WORK/malformed.pid" 2>/dev/null || true)"
    [[ -z "$pid" ]] || stop_pid "$pid"
    PIDS=()
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    stop_all
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
    if ((LAB_UP)); then
        lab rs-stop >/dev/null 2>&1
        lab stop-lb lb1 >&2
        lab down >&2
    fi
    say "raw files and summary.json in $WORK"
    exit "$rc"
}

on_signal() {
    say "interrupted by SIG$1; cleaning up"
    exit 130
}

# --- the lab, rvsd and the servers --------------------------------------------------------

write_config() {
    local f=$1 n
    {
        printf '# perf/soak.sh: rvsd in lab-lb1, %s mode, 1 worker (written for this run).\n' "$MODE"
        cat <<'EOF'
[dataplane]
workers = 1
idle = "adaptive"
eal_args = ["--in-memory", "--no-pci", "--no-telemetry", "--file-prefix=rvs-lab-lb1"]

[[port]]
name = "front"
device = "net_af_xdp0,iface=front"
address = "10.10.0.1/24"

[[port]]
name = "back"
device = "net_af_xdp1,iface=back"
address = "10.20.0.1/24"
local_addresses = ["10.20.0.200", "10.20.0.201", "10.20.0.202", "10.20.0.203"]

[[route]]
prefix = "0.0.0.0/0"
via = "10.10.0.254"

[api]
listen = "127.0.0.1:8700"
EOF
        printf '\n# wrk, the liveness probes and the churn.\n[[service]]\nprotocol = "tcp"\naddress = "%s"\nport = %s\nscheduler = "rr"\n' "$VIP" "$WRK_PORT"
        for n in 1 2 3; do
            printf '\n[[service.server]]\naddress = "10.20.0.1%s"\nport = %s\nweight = 1\nforward = "%s"\n' "$n" "$WRK_PORT" "$MODE"
        done
        if [[ "$MODE" == nat || "$MODE" == fullnat ]]; then
            printf '\n# The SYN flood'"'"'s target, held to client_rate per client.\n[[service]]\nprotocol = "tcp"\naddress = "%s"\nport = 8080\nscheduler = "rr"\nclient_rate = %s\nclient_burst = %s\n' \
                "$VIP" "$FLOOD_CLIENT_RATE" "$FLOOD_CLIENT_RATE"
            for n in 1 2 3; do
                printf '\n[[service.server]]\naddress = "10.20.0.1%s"\nport = %s\nweight = 1\nforward = "%s"\n' "$n" "$WRK_PORT" "$MODE"
            done
        fi
    } >"$f"
}

start_bg() {
    local logf=$1
    shift
    (close_locks; exec "$@") </dev/null >>"$logf" 2>&1 &
    PIDS+=($!)
}

start_nginx() {
    local n ns i
    mkdir -p "$WORK/www"
    printf '%-99s\n' 'rvs soak: a small static file served by nginx on the real servers' >"$WORK/www/index.html"
    for n in 1 2 3; do
        ns="lab-rs$n"
        mkdir -p "$WORK/rs$n-nginx-tmp"
        cat >"$WORK/rs$n-nginx.conf" <<EOF
# nginx on lab-rs$n for perf/soak.sh: the small file on :$WRK_PORT (wildcard: the server's
# own address for NAT and Full-NAT, the VIP on lo for DR and IPIP), stub_status on
# 127.0.0.1:8001 for the request count.
user root;
worker_processes 1;
daemon off;
pid $WORK/rs$n-nginx.pid;
error_log $WORK/rs$n-nginx.err warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path $WORK/rs$n-nginx-tmp/body;
    proxy_temp_path $WORK/rs$n-nginx-tmp/proxy;
    fastcgi_temp_path $WORK/rs$n-nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/rs$n-nginx-tmp/uwsgi;
    scgi_temp_path $WORK/rs$n-nginx-tmp/scgi;
    default_type text/plain;
    server {
        listen $WRK_PORT backlog=4096;
        root $WORK/www;
        add_header X-Server rs$n;
    }
    server {
        listen 127.0.0.1:8001;
        location / { stub_status; }
    }
}
EOF
        (close_locks; exec ip netns exec "$ns" nginx -p "$WORK" -e "$WORK/rs$n-nginx.err" -c "$WORK/rs$n-nginx.conf") \
            </dev/null >>"$WORK/rs$n-nginx.log" 2>&1 &
        SERVER_PIDS+=($!)
    done
    for n in 1 2 3; do
        for i in $(seq 1 100); do
            if in_ns "lab-rs$n" ss -Hltn "sport = :$WRK_PORT" | grep -q .; then break; fi
            ((i < 100)) || die "nginx does not listen on :$WRK_PORT in lab-rs$n after 10 s; see $WORK/rs$n-nginx.err"
            sleep 0.1
        done
    done
}

# The server that answered a new connection to the VIP from PROBE_IP ("rs1".."rs3"), or
# "fail:<curl's reason>".
ask_vip() {
    local out
    if out="$(in_ns lab-client curl -sS -m 5 --interface "$PROBE_IP" -o /dev/null -D - "http://$VIP:$WRK_PORT/" 2>&1)"; then
        out="$(printf '%s\n' "$out" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-server" { print $2 }')"
        echo "${out:-fail:no X-Server header}"
    else
        echo "fail:$(printf '%s' "$out" | tr '\n' ' ')"
    fi
}

# Nine new connections through the VIP must reach all three servers (round robin).
check_path() {
    local what=$1 i got names=""
    for i in 1 2 3 4 5 6 7 8 9; do
        got="$(ask_vip)"
        names+="$got "
    done
    echo "$names" >"$WORK/path-$what.txt"
    for i in 1 2 3; do
        [[ " $names " == *" rs$i "* ]] || { say "$what: nine GETs of $VIP:$WRK_PORT reached: $names (rs$i missing)"; return 1; }
    done
    say "$what: nine GETs of $VIP:$WRK_PORT reached $names"
}

# --- the loads ----------------------------------------------------------------------------

# rest METHOD PATH [BODY]: one REST call in lab-lb1; prints "CODE BODY".
rest() {
    local out args=(-s -m 10 -w '\n%{http_code}' -X "$1" "$API$2")
    [[ $# -lt 3 ]] || args+=(-H 'Content-Type: application/json' --data-binary "$3")
    out="$(in_ns lab-lb1 curl "${args[@]}" 2>&1 || true)"
    printf '%s %s' "${out##*$'\n'}" "$(printf '%s' "${out%$'\n'*}" | tr '\n' ' ' | cut -c1-300)"
}

# churn_op KIND EXPECTED_CODES METHOD PATH [BODY]: one change, logged to churn.jsonl.
churn_op() {
    local kind=$1 expect=$2 res code body ok t
    shift 2
    t="$(date +%s.%N)"
    res="$(rest "$@")"
    code="${res%% *}"
    body="${res#* }"
    ok=false
    [[ " $expect " == *" $code "* ]] && ok=true
    python3 -c 'import json,sys; print(json.dumps({"t": float(sys.argv[1]), "op": sys.argv[2], "expect": sys.argv[3].split(), "code": int(sys.argv[4]) if sys.argv[4].isdigit() else 0, "ok": sys.argv[5] == "true", "method": sys.argv[6], "path": sys.argv[7], "response": sys.argv[8][:300]}))' \
        "$t" "$kind" "$expect" "$code" "$ok" "$1" "$2" "$body" >>"$WORK/churn.jsonl"
}

churn_loop() {
    local i=0 sched=rr bad=0 w1=1 w2=1 end=$1
    while [[ ! -e "$WORK/stop" ]] && (($(date +%s) < end)); do
        case $((i % 6)) in
            # Weights 1..5 in turn: every change is a real one (a no-op would not move the
            # config generation, which the check counts).
            0) w1=$((w1 % 5 + 1)); churn_op weight "200" PUT "$SVC/servers/10.20.0.11/$WRK_PORT" "{\"weight\":$w1}" ;;
            1) churn_op delete "204" DELETE "$SVC/servers/10.20.0.13/$WRK_PORT" ;;
            2) w2=$((w2 % 5 + 1)); churn_op weight "200" PUT "$SVC/servers/10.20.0.12/$WRK_PORT" "{\"weight\":$w2}" ;;
            3)
                if [[ "$sched" == rr ]]; then sched=wrr; else sched=rr; fi
                churn_op scheduler "200" PUT "$SVC" "{\"scheduler\":\"$sched\"}"
                ;;
            4) churn_op add "201" POST "$SVC/servers" "{\"address\":\"10.20.0.13\",\"port\":$WRK_PORT,\"weight\":1,\"forward\":\"$MODE\"}" ;;
            5)
                case $((bad % 3)) in
                    0) churn_op refused "400 422" PUT "$SVC" '{"scheduler":"no-such-scheduler"}' ;;
                    1) churn_op refused "400 422" PUT "$SVC/servers/10.20.0.11/$WRK_PORT" '{"weight":-1}' ;;
                    2) churn_op refused "400 415 422" PUT "$SVC" 'this is not JSON' ;;
                esac
                bad=$((bad + 1))
                ;;
        esac
        i=$((i + 1))
        sleep "$CHURN_INTERVAL"
    done
}

malformed_loop() {
    local end=$1 seed=1 left batch mac
    mac="$(in_ns lab-lb1 curl -sf -m 5 "$API/v1/status" | python3 -c 'import json,sys; print([p["mac"] for p in json.load(sys.stdin)["ports"] if p["name"] == "front"][0])')"
    while [[ ! -e "$WORK/stop" ]]; do
        left=$((end - $(date +%s)))
        ((left > 0)) || break
        batch=$((left < 60 ? left : 60))
        nice -n 5 ip netns exec lab-client python3 "$REPO/vm-testbed/tools/malformed.py" --iface eth0 \
            --dst-mac "$mac" --count $((batch * MALFORMED_RATE)) --rate "$MALFORMED_RATE" --seed "$seed" \
            >>"$WORK/malformed.jsonl" 2>>"$WORK/malformed.err" &
        echo $! >"$WORK/malformed.pid"
        wait $! || echo "{\"seed\": $seed, \"failed\": true}" >>"$WORK/malformed.jsonl"
        seed=$((seed + 1))
    done
}

sample_once() {
    local i=$1 t f pid rss probe
    f="$(printf '%s/samples/%05d' "$WORK" "$i")"
    t="$(date +%s.%N)"
    in_ns lab-lb1 curl -sf -m 5 "$API/v1/status" >"$f.status.json" 2>/dev/null || rm -f "$f.status.json"
    in_ns lab-lb1 curl -sf -m 5 "$API/metrics" >"$f.metrics" 2>/dev/null || rm -f "$f.metrics"
    pid="$(cat "$REPO/vm-testbed/run/lb1.pid" 2>/dev/null || true)"
    rss="$(grep -E '^(VmRSS|VmHWM|HugetlbPages|Threads):' "/proc/$pid/status" 2>/dev/null | tr -s ' \t' ' ' | paste -sd';' || true)"
    probe="$(ask_vip)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$t" "$pid" "$rss" "$probe" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/samples.tsv"
}

sampler_loop() {
    local i=0 next
    next=$(date +%s)
    while [[ ! -e "$WORK/stop" ]]; do
        sample_once "$i"
        i=$((i + 1))
        next=$((next + SAMPLE_INTERVAL))
        while [[ ! -e "$WORK/stop" ]] && (($(date +%s) < next)); do sleep 0.2; done
    done
}

nginx_requests() {
    local n total=0 r
    for n in 1 2 3; do
        # "Active connections: A \n server accepts handled requests \n X Y R \n ..."
        r="$(in_ns "lab-rs$n" curl -sf -m 5 http://127.0.0.1:8001/ | awk 'NR == 3 { print $3 }')"
        [[ "$r" =~ ^[0-9]+$ ]] || { echo "unreadable"; return; }
        # The stub_status request itself is counted.
        total=$((total + r - 1))
    done
    echo "$total"
}

# --- main ---------------------------------------------------------------------------------

check_prereqs
find_rvsd
export RVSD_BIN
if [[ -z "$WORK" ]]; then WORK="$(mktemp -d /tmp/rvs-soak.XXXXXX)"; fi
mkdir -p "$WORK/samples"
WORK="$(cd "$WORK" && pwd)"
rm -f "$WORK/stop"
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

take_lab_locks
wait_for_lab 'rvs-labtests|vm-testbed/test\.sh|vm-testbed/demo\.sh|perf/e2e/run\.sh' 'lab tests, the demo or the e2e benchmark are' 10

say "run: $SECS s, mode $MODE, work $WORK, rvsd $RVSD_BIN"
say "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
LAB_UP=1
lab up >&2
rs_mode=$MODE
# Full-NAT needs nothing on the servers; the TOA reader `rs-start fullnat` adds would log
# every one of the run's connections.
[[ "$MODE" == fullnat ]] && rs_mode=dr
lab rs-start "$rs_mode" >&2
start_nginx
in_ns lab-client sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
in_ns lab-client sysctl -qw net.ipv4.tcp_tw_reuse=1
write_config "$WORK/rvsd.toml"
lab start-lb lb1 "$WORK/rvsd.toml" >&2
check_path before || die "rvsd does not forward to all three servers before the load"

hugepages_free_before="$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)"
uptime_before="$(uptime)"
(close_locks; sampler_loop) &
PIDS+=($!)
# The first samples are taken before the loads start (the generation and counters' base).
sleep "$SAMPLE_INTERVAL"

flood_port=$WRK_PORT
[[ "$MODE" == nat || "$MODE" == fullnat ]] && flood_port=8080
start_epoch=$(date +%s)
end_epoch=$((start_epoch + SECS))
echo "$start_epoch" >"$WORK/load-start"
say "loads start: wrk keep-alive x$CONNS, wrk close x$CLOSE_CONNS, churn every ${CHURN_INTERVAL}s, malformed ${MALFORMED_RATE}/s, SYN flood every ${FLOOD_US}us at $VIP:$flood_port from $FLOODER, for ${SECS}s"
start_bg "$WORK/wrk-keepalive.err" nice -n 5 ip netns exec lab-client wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s \
    -s "$HERE/e2e/wrk-report.lua" "http://$VIP:$WRK_PORT/"
WRK_KA=$!
start_bg "$WORK/wrk-close.err" nice -n 5 ip netns exec lab-client wrk -t1 -c"$CLOSE_CONNS" -d"${SECS}s" --timeout 10s \
    -s "$HERE/e2e/wrk-report.lua" -H 'Connection: close' "http://$VIP:$WRK_PORT/"
WRK_CLOSE=$!
start_bg "$WORK/hping3.log" timeout -s INT "$SECS" nice -n 5 ip netns exec lab-client \
    hping3 -q -S -p "$flood_port" -i "u$FLOOD_US" -a "$FLOODER" "$VIP"
FLOOD=$!
(close_locks; malformed_loop "$end_epoch") &
PIDS+=($!)
(close_locks; churn_loop "$end_epoch") &
CHURN=$!
PIDS+=($CHURN)

# wrk writes its JSON line (wrk-report.lua) to stdout, which start_bg sends to the .err
# file together with its messages; wait for both to finish.
wrk_rc=0
wait "$WRK_KA" || wrk_rc=$?
wait "$WRK_CLOSE" || wrk_rc=$?
wait "$FLOOD" || true
wait "$CHURN" || true
echo "$(date +%s)" >"$WORK/load-end"
say "loads done (wrk exit status $wrk_rc)"

# The generation after the churn, before the restore (whose changes may be no-ops).
in_ns lab-lb1 curl -sf -m 5 "$API/v1/status" >"$WORK/status-after-churn.json" || true
# Back to the starting service: rs3 present (it may have been deleted last), weights 1, rr.
churn_op restore "201 409" POST "$SVC/servers" "{\"address\":\"10.20.0.13\",\"port\":$WRK_PORT,\"weight\":1,\"forward\":\"$MODE\"}"
for n in 1 2 3; do
    churn_op restore "200" PUT "$SVC/servers/10.20.0.1$n/$WRK_PORT" '{"weight":1}'
done
churn_op restore "200" PUT "$SVC" '{"scheduler":"rr"}'
sleep 1
path_ok=true
check_path after || path_ok=false
# One more sample after the changes, then stop the sampler and the rest.
sleep "$SAMPLE_INTERVAL"
stop_all
nginx_total="$(nginx_requests)"
rvsd_pid="$(cat "$REPO/vm-testbed/run/lb1.pid" 2>/dev/null || true)"
rvsd_alive=false
[[ -n "$rvsd_pid" ]] && kill -0 "$rvsd_pid" 2>/dev/null && rvsd_alive=true
hugepages_free_after="$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)"
uptime_after="$(uptime)"
grep -E '^\{' "$WORK/wrk-keepalive.err" | tail -n 1 >"$WORK/wrk-keepalive.json" || true
grep -E '^\{' "$WORK/wrk-close.err" | tail -n 1 >"$WORK/wrk-close.json" || true

cat >"$WORK/run.json" <<EOF
{"mode": "$MODE", "minutes": $MINUTES, "seconds": $SECS, "start": $start_epoch, "end": $end_epoch,
 "commit": "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo +dirty)",
 "rvsd_bin": "$RVSD_BIN", "rvsd_alive": $rvsd_alive, "path_after_ok": $path_ok,
 "wrk_exit": $wrk_rc, "nginx_requests": "$nginx_total",
 "connections": $CONNS, "close_connections": $CLOSE_CONNS, "flood_interval_us": $FLOOD_US,
 "flood_port": $flood_port, "flood_client_rate": $FLOOD_CLIENT_RATE, "malformed_rate": $MALFORMED_RATE,
 "churn_interval": $CHURN_INTERVAL, "sample_interval": $SAMPLE_INTERVAL,
 "hugepages_free_before": $hugepages_free_before, "hugepages_free_after": $hugepages_free_after,
 "uptime_before": "$uptime_before", "uptime_after": "$uptime_after", "nproc": $(nproc)}
EOF
python3 "$HERE/soak/check.py" "$WORK"
