#!/usr/bin/env bash
# rvs benchmarks. Prints one JSON object per line on stdout; build output and diagnostics
# go to stderr.
#
#   perf/bench.sh pipeline [--seconds F] [--quick] [--mode NAME] [--runs N] [--bursts N] [--flows N]
#                          [--pages hugetlb|thp|4k]
#       the data path on the in-memory driver: ns/packet and Mpps per mode; for the L4
#       modes also ns per new connection and bytes per connection (--flows up to 2^24;
#       the table holds 2 x (flows + 2^20) entries, 88 bytes each)
#   perf/bench.sh conn [--entries N[,N..]] [--runs N] [--lookups N] [--pages hugetlb|thp|4k]
#       the connection table alone (`rvs-perf conn-lookup`): hit, miss and insert ns and
#       memory at 1M and 10M entries by default (~1 GB of RAM for 10M). --pages: the
#       table on reserved 2 MiB pages (default, as rvsd; transparent ones when too few
#       are free: 43 pages per 1M entries), transparent huge pages only, or 4 KiB pages
#   perf/bench.sh sync [--quick] [--seconds F] [--rates N[,N..]] [--runs N] [--bursts N] [--rcvbuf BYTES]
#       connection sync on the in-memory driver: the master worker's ns per new connection
#       with sync on and off, the records/s a backup installs over UDP on 127.0.0.1 (per
#       offered rate, then unpaced) with losses and lag, and bytes on the wire
#   perf/bench.sh rss [--iters N] [--runs N]
#       RSS-aware Full-NAT local ports (`rvs-perf rss-hash`): ns per Toeplitz hash (table
#       and bitwise) and per local port allocation with and without the NIC's RSS spec
#   perf/bench.sh dpdk [--quick] [--seconds F] [--flows N] [--modes LIST] [--sizes LIST] [--no-build] [--keep-logs]
#       (root, hugepages) rvsd's forwarding rate per mode over net_memif against
#       dpdk-testpmd io forwarding on the same ports in the same run, and their ratio
#   perf/bench.sh e2e [--quick] [--seconds N] [--connections N] [--systems LIST] [--idle adaptive|busy]
#       in the netns lab (root): rvsd in each mode against an nftables DNAT balancer and
#       HAProxy on the same host — requests/s, connections/s, Gbit/s, p99 latency
#   perf/bench.sh soak [--minutes N] [--mode nat|fullnat|dr|tunnel] [...]
#       (root) perf/soak.sh: wrk, REST churn, malformed frames and a SYN flood at once in
#       the lab for N minutes (default 30); rvsd's memory flat, no counter backwards, every
#       request answered; exits 1 on a violation
#
# See `rvs-perf --help` and perf/RESULTS.md.
#
# Builds `rvs-perf` in release mode into $CARGO_TARGET_DIR if set, else the repository's
# target/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat >&2 <<'USAGE'
usage: perf/bench.sh <subcommand> [options]

subcommands:
  pipeline [--seconds F] [--quick] [--mode NAME] [--runs N] [--bursts N] [--flows N] [--pages P]
      the data path on the in-memory driver: ns/packet and Mpps per mode
      (arp_reply icmp_echo drop_malformed dr nat nat_reply fullnat fullnat_reply tunnel
      nat_synproxy nat_synproxy_reply fullnat_synproxy fullnat_synproxy_reply,
      and over IPv6 dr6 nat6 nat6_reply fullnat6 fullnat6_reply tunnel6,
      and NAT64 nat64 nat64_reply);
      L4 modes add new_conn_ns (for *_synproxy: the whole proxied handshake, with
      cookie_syn_ns cookie_ack_ns server_syn_ack_ns) and bytes_per_conn
  conn [--entries N[,N..]] [--runs N] [--lookups N] [--pages hugetlb|thp|4k]
      the connection table alone: hit/miss/insert ns and bytes (default 1M and 10M entries)
  sync [--quick] [--seconds F] [--rates N[,N..]] [--runs N] [--bursts N] [--rcvbuf BYTES]
      connection sync: worker ns per new connection with sync on/off, records/s a
      backup installs over UDP loopback with losses and lag, bytes per record
  rss [--iters N] [--runs N]
      ns per Toeplitz hash (table, bitwise) and per Full-NAT local port allocation
      with and without the NIC's RSS key and table
  dpdk [--quick] [--seconds F] [--flows N] [--modes dr,nat,fullnat,tunnel] [--sizes 60,508,1496] [--no-build] [--keep-logs]
      rvsd's forwarding rate per mode over net_memif against dpdk-testpmd io forwarding,
      with the ratio (root, hugepages)
  e2e [--quick] [--seconds N] [--connections N] [--systems LIST] [--idle adaptive|busy]
      rvsd in the lab (4 modes) vs nftables and HAProxy: req/s, conn/s, Gbit/s, p99 (root)
  soak [--minutes N] [--mode nat|fullnat|dr|tunnel] [...]
      perf/soak.sh: everything at once in the lab for N minutes (default 30): memory flat,
      counters monotonic, every request answered (root; --help for the options)
USAGE
}

build_and_run() {
    local sub="$1"
    shift
    local target="${CARGO_TARGET_DIR:-$root/target}"
    # cargo resolves a relative CARGO_TARGET_DIR against its working directory; pin it
    # to the caller's before moving to the repository root.
    case "$target" in
        /*) ;;
        *) target="$PWD/$target" ;;
    esac
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p rvs-perf >&2)
    exec "$target/release/rvs-perf" "$sub" "$@"
}

case "${1:-}" in
    pipeline) shift; build_and_run pipeline "$@" ;;
    conn) shift; build_and_run conn-lookup "$@" ;;
    sync) shift; build_and_run sync "$@" ;;
    rss) shift; build_and_run rss-hash "$@" ;;
    dpdk) shift; exec bash "$root/perf/dpdk/run.sh" "$@" ;;
    e2e) shift; exec bash "$root/perf/e2e/run.sh" "$@" ;;
    soak) shift; exec bash "$root/perf/soak.sh" "$@" ;;
    -h | --help | help) usage; exit 0 ;;
    "") echo "perf/bench.sh: no subcommand" >&2; usage; exit 2 ;;
    *) echo "perf/bench.sh: unknown subcommand '$1'" >&2; usage; exit 2 ;;
esac
