#!/usr/bin/env python3
"""Claim rvsd's IPv6 address with forged neighbour discovery, for the lab's ND spoofing test.

Runs in a lab host other than rvsd and writes raw Ethernet frames to an interface through an
AF_PACKET socket, each to rvsd's MAC (unicast, so that no other host's cache is touched):

  na_own  an unsolicited neighbour advertisement, override flag set, saying that rvsd's
          address (--addr) is at this host's MAC;
  ns_own  a neighbour solicitation *from* rvsd's address (source link-layer option: this
          host's MAC) for another address (--other), the way a spoofer makes its victim
          learn the stolen address.

Both are otherwise valid (hop limit 255, correct ICMPv6 checksum over the RFC 8200
pseudo-header, RFC 4861 option formats), so the only reason to refuse them is whose address
they claim. rvsd must count each as `nd_spoofed_own` and keep answering for its address with
its own MAC.

Prints one JSON object: {"iface", "dst_mac", "src_mac", "total", "sent": {kind: count}}.
Python 3 standard library only. Needs CAP_NET_RAW (root).
"""

import argparse
import json
import socket
import struct
import time

ETH_IPV6 = 0x86DD
ICMPV6 = 58
NS, NA = 135, 136


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def icmpv6(src: bytes, dst: bytes, msg: bytes) -> bytes:
    """`msg` with its checksum filled in, in an IPv6 header of hop limit 255."""
    pseudo = src + dst + struct.pack("!I3xB", len(msg), ICMPV6)
    msg = msg[:2] + struct.pack("!H", checksum(pseudo + msg)) + msg[4:]
    return struct.pack("!IHBB", 6 << 28, len(msg), ICMPV6, 255) + src + dst + msg


def nd_message(kind: int, flags: int, target: bytes, opt_type: int, mac: bytes) -> bytes:
    return struct.pack("!BBHI", kind, 0, 0, flags << 24) + target + bytes((opt_type, 1)) + mac


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--dst-mac", required=True, help="rvsd's MAC on this segment")
    ap.add_argument("--addr", required=True, help="rvsd's IPv6 address to claim")
    ap.add_argument("--other", required=True, help="another address on the segment (NS target)")
    ap.add_argument("--count", type=int, default=100, help="frames of each kind")
    ap.add_argument("--rate", type=float, default=500.0, help="frames per second")
    args = ap.parse_args()

    with open(f"/sys/class/net/{args.iface}/address") as f:
        src_mac = f.read().strip()
    dst, own = mac_bytes(args.dst_mac), mac_bytes(src_mac)
    addr = socket.inet_pton(socket.AF_INET6, args.addr)
    other = socket.inet_pton(socket.AF_INET6, args.other)
    eth = dst + own + struct.pack("!H", ETH_IPV6)
    # NA: R clear, S clear, O set (0x20); target link-layer option (type 2).
    na = eth + icmpv6(addr, addr, nd_message(NA, 0x20, addr, 2, own))
    # NS from rvsd's address to rvsd's address, for `other`; source link-layer option (type 1).
    ns = eth + icmpv6(addr, addr, nd_message(NS, 0, other, 1, own))

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.iface, 0))
    sent = {"na_own": 0, "ns_own": 0}
    t0 = time.monotonic()
    for i in range(args.count):
        for kind, frame in (("na_own", na), ("ns_own", ns)):
            sock.send(frame)
            sent[kind] += 1
        delay = t0 + 2 * (i + 1) / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    sock.close()
    print(json.dumps({"iface": args.iface, "dst_mac": args.dst_mac, "src_mac": src_mac,
                      "total": sum(sent.values()), "sent": sent}, sort_keys=True))


if __name__ == "__main__":
    main()
