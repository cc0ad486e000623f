#!/bin/sh
# Turns the hex seed packets in seeds/ into binary corpus files for each fuzz target.
# The incremental_checksum target takes 13 bytes of rewrite parameters before the IPv4
# packet, so its seeds get a fixed prefix and lose the 14-byte Ethernet header.
# The sync_decode target reads a program too (see fuzz_targets/sync_decode.rs): each valid
# datagram in seeds/sync/ (hex, `#` comments allowed) becomes a raw input and a one-chunk
# program (op 0, length), and all of them in a row one program.
# The lb_worker target reads a program (see fuzz_targets/lb_worker.rs): its own seeds are
# in seeds/lb_worker/ (hex, `#` comments allowed), and every frame seed also becomes a
# one-op program that hands the frame to the worker on the front port (op 0x10).
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/parse_ethernet_stack corpus/incremental_checksum corpus/tcp_options corpus/lb_worker corpus/vrrp corpus/sync_decode corpus/parse_ipv6
prefix="c0a80001 c0a80032 1388 1f90 40"   # 192.168.0.1, 192.168.0.50, 5000, 8080, TTL 64
for f in seeds/*.hex; do
    name=$(basename "$f" .hex)
    xxd -r -p "$f" > "corpus/parse_ethernet_stack/$name"
    { echo "$prefix" | xxd -r -p; tail -c +15 "corpus/parse_ethernet_stack/$name"; } \
        > "corpus/incremental_checksum/$name"
    len=$(wc -c < "corpus/parse_ethernet_stack/$name")
    { printf '10%04x' "$len" | xxd -r -p; cat "corpus/parse_ethernet_stack/$name"; } \
        > "corpus/lb_worker/frame_$name"
done
for f in seeds/lb_worker/*.hex; do
    sed 's/#.*//' "$f" | xxd -r -p > "corpus/lb_worker/$(basename "$f" .hex)"
done
# TCP options of the SYN seed (bytes 54..74 of the frame).
tail -c +55 corpus/parse_ethernet_stack/tcp_syn_options > corpus/tcp_options/syn
# VRRP adverts (seeds/vrrp_*.hex): the IPv4 payload (after 14 + 20 bytes), behind the
# family byte 0 (IPv4) that the vrrp target reads first.
for f in seeds/vrrp_*.hex; do
    name=$(basename "$f" .hex)
    { printf '00' | xxd -r -p; tail -c +35 "corpus/parse_ethernet_stack/$name"; } > "corpus/vrrp/$name"
done
# Sync datagrams (seeds/sync/*.hex, from `cargo run -p rvs-sync --example fuzz_seeds`).
: > corpus/sync_decode/session
for f in seeds/sync/*.hex; do
    name=$(basename "$f" .hex)
    sed 's/#.*//' "$f" | xxd -r -p > "corpus/sync_decode/raw_$name"
    len=$(wc -c < "corpus/sync_decode/raw_$name")
    { printf '00%04x' "$len" | xxd -r -p; cat "corpus/sync_decode/raw_$name"; } > "corpus/sync_decode/$name"
    cat "corpus/sync_decode/$name" >> corpus/sync_decode/session
done
# IPv6 packets (seeds/ipv6/*.hex, no Ethernet header) for the parse_ipv6 target: echo,
# NS (also DAD), NA, packet too big, a port unreachable quoting UDP, extension-header chains, fragments, ESP, and a bare
# chain of the maximum length (its first byte is a next header, not a version).
for f in seeds/ipv6/*.hex; do
    xxd -r -p "$f" > "corpus/parse_ipv6/$(basename "$f" .hex)"
done
