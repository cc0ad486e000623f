#!/usr/bin/env bash
# THE demo of rvs: builds rvsd and rvsadm, starts rvsd in the netns lab (vm-testbed/lab.sh) and
# shows it at work from a client: ping to its port address and to the VIP, the client's ARP
# table, HTTP through the VIP balanced round robin over three real servers (NAT), the service
# as `rvsadm -Ln` lists it, a live drain of one server (weight 0) with established flows
# untouched, the counters (`rvsadm -Ln --stats`) and rvsd's status from its REST API. Tears the
# lab down at the end, unless --keep is given (then `sudo bash vm-testbed/lab.sh down` removes
# it). Needs root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
KEEP=0
case "${1:-}" in
    "") ;;
    --keep) KEEP=1 ;;
    *) echo "usage: sudo bash vm-testbed/demo.sh [--keep]" >&2; exit 2 ;;
esac

section() { printf '\n==== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: must run as root (network namespaces, hugepages): sudo bash vm-testbed/demo.sh" >&2
    exit 1
fi
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

teardown() {
    local rc=$?
    if ((KEEP)) && ((rc == 0)); then
        section "the lab stays up (--keep); remove it with: sudo bash vm-testbed/lab.sh down"
        return
    fi
    section "tear down"
    bash "$REPO/vm-testbed/lab.sh" down || true
    ((rc == 0)) || printf '\n==== demo FAILED (exit %s)\n' "$rc" >&2
}
trap teardown EXIT

section "host setup"
bash vm-testbed/setup-host.sh

section "build rvsd and rvsadm (cargo build --release -p rvs-controlplane -p rvsadm)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
cargo build --release -p rvs-controlplane -p rvsadm
export RVSD_BIN="$CARGO_TARGET_DIR/release/rvsd"
RVSADM="$CARGO_TARGET_DIR/release/rvsadm"
# rvsadm talks to rvsd's REST port, which listens on loopback inside lab-lb1.
rvsadm() { printf '$ rvsadm %s\n' "$*"; ip netns exec lab-lb1 "$RVSADM" "$@"; }
through_vip() {
    local i
    printf '$ for i in $(seq %s); do ip netns exec lab-client curl -s http://10.10.0.100/; done\n' "$1"
    for i in $(seq "$1"); do ip netns exec lab-client curl -s --max-time 5 http://10.10.0.100/; done
}

section "the lab: client 10.10.0.2 -- [front 10.10.0.1] rvsd [back 10.20.0.1] -- real servers 10.20.0.11-13"
bash vm-testbed/lab.sh up

section "start rvsd in lab-lb1 (config/lab.toml, log vm-testbed/run/lb1.log)"
bash vm-testbed/lab.sh start-lb lb1

section "from the client: ping rvsd's front address"
show ip netns exec lab-client ping -n -c 3 -i 0.2 10.10.0.1

section "from the client: ping the VIP (rvsd answers for it)"
show ip netns exec lab-client ping -n -c 3 -i 0.2 10.10.0.100

section "from a real server: ping rvsd's back address"
show ip netns exec lab-rs1 ping -n -c 3 -i 0.2 10.20.0.1

section "the client's ARP table: 10.10.0.1 is rvsd's front port (MAC 02:00:00:00:01:01)"
show ip netns exec lab-client ip neigh show dev eth0

section "real servers: rs1..rs3 answer HTTP with their name and the peer they saw (NAT: gateway rvsd)"
bash vm-testbed/lab.sh rs-start nat

section "load balancing: HTTP through the VIP, round robin over the three servers"
through_vip 6

section "the service, as ipvsadm would list it"
rvsadm -Ln

section "a live change: drain rs1 (weight 0); new connections go to rs2 and rs3 only"
rvsadm -e -t 10.10.0.100:80 -r 10.20.0.11:80 -m -w 0
through_vip 4
rvsadm -Ln --stats

section "rvsd's status (GET /v1/status on 127.0.0.1:8700 inside lab-lb1; non-zero drops only)"
printf '$ ip netns exec lab-lb1 curl -s http://127.0.0.1:8700/v1/status | jq ...\n'
ip netns exec lab-lb1 curl -sf http://127.0.0.1:8700/v1/status | jq '{
    ports: [.ports[] | {name, mac, link_up: .link.up, rx: .stats.rx_packets, tx: .stats.tx_packets}],
    workers: [.workers[] | {index, rx_packets, tx_packets, conns, conns_created, burst_latency}],
    drops: (.drops | with_entries(select(.value > 0))),
    services: [.services[] | {protocol, address, port, scheduler, conns: .stats.conns,
               servers: [.servers[] | {address, weight, conns: .stats.conns}]}]
}'

section "demo done"
