#!/usr/bin/env bash
# THE demo of rvs: builds rvsd, starts it in the netns lab (vm-testbed/lab.sh), and shows its
# L2/L3 stack at work from a client: ping to its port address and to the VIP, the client's ARP
# table, and rvsd's status from its REST API. Tears the lab down at the end, unless --keep is
# given (then `sudo bash vm-testbed/lab.sh down` removes it). Needs root.
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

section "build rvsd (cargo build --release -p rvs-controlplane)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
cargo build --release -p rvs-controlplane
export RVSD_BIN="$CARGO_TARGET_DIR/release/rvsd"

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

section "rvsd's status (GET /v1/status on 127.0.0.1:8700 inside lab-lb1)"
printf '$ ip netns exec lab-lb1 curl -s http://127.0.0.1:8700/v1/status | jq .\n'
ip netns exec lab-lb1 curl -sf http://127.0.0.1:8700/v1/status | jq .

section "demo done"
