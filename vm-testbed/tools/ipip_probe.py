#!/usr/bin/env python3
"""Proves a real server's IPIP decapsulation (ipip_decap.py) without a balancer.

Run in lab-client. It plays rvs's tunnel mode by hand: wraps a client packet to the VIP in an
outer IPv4 header to the real server (protocol 4) and sends it; lab-router forwards it to the
server, which decapsulates it and answers the client directly from the VIP through lab-router,
like a real tunnel-mode reply. Three packets, three replies awaited:

  ICMP echo request -> echo reply from the VIP (same id and sequence)
  UDP datagram to VIP:--udp-port -> the echo's reply on the client's UDP socket
  TCP SYN to VIP:--tcp-port -> SYN/ACK from the VIP (the client's kernel then resets it)

Prints one JSON object: {"icmp": true, "udp": "rs1 ipip-probe", "tcp_synack": true, ...};
exits 0 if all three replies arrived, 1 otherwise.

  ipip_probe.py --rs 10.20.0.11 [--vip 10.10.0.100] [--src 10.10.0.2] [--timeout 3]
"""

import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def l4(src, dst, proto, segment, csum_at):
    """`segment` with its TCP/UDP checksum (at byte `csum_at`) filled in over the pseudo-header."""
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(segment))
    c = csum(pseudo + segment) or 0xFFFF
    return segment[:csum_at] + struct.pack("!H", c) + segment[csum_at + 2:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rs", required=True, help="the real server's address (outer destination)")
    ap.add_argument("--vip", default="10.10.0.100")
    ap.add_argument("--src", default="10.10.0.2", help="the client address (inner and outer source)")
    ap.add_argument("--udp-port", type=int, default=53)
    ap.add_argument("--tcp-port", type=int, default=80)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()

    ident, seq = os.getpid() & 0xFFFF, 1
    sport = random.randint(20000, 60000)
    tcp_sport = sport + 1
    isn = random.randint(0, 2**32 - 1)

    icmp_rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    tcp_rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((a.src, sport))
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL implied

    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ipip-probe"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    udp_seg = l4(a.src, a.vip, 17, struct.pack("!HHHH", sport, a.udp_port, 8 + 10, 0) + b"ipip-probe", 6)
    syn = struct.pack("!HHIIBBHHH", tcp_sport, a.tcp_port, isn, 0, 5 << 4, 0x02, 64240, 0, 0)
    syn = l4(a.src, a.vip, 6, syn, 16)
    for n, (proto, seg) in enumerate([(1, icmp), (17, udp_seg), (6, syn)]):
        inner = ipv4(a.src, a.vip, proto, seg, ident=ident + n)
        tx.sendto(ipv4(a.src, a.rs, 4, inner), (a.rs, 0))

    got = {"icmp": False, "udp": None, "tcp_synack": False}
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline and not (got["icmp"] and got["udp"] and got["tcp_synack"]):
        ready, _, _ = select.select([icmp_rx, tcp_rx, udp], [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            if s is udp:
                data, peer = udp.recvfrom(65535)
                if peer == (a.vip, a.udp_port):
                    got["udp"] = data.decode(errors="replace")
                continue
            pkt = s.recv(65535)
            ihl = (pkt[0] & 0x0F) * 4
            src, body = socket.inet_ntoa(pkt[12:16]), pkt[ihl:]
            if src != a.vip:
                continue
            if s is icmp_rx and body[0] == 0 and struct.unpack("!HH", body[4:8]) == (ident, seq):
                got["icmp"] = True
            if s is tcp_rx:
                sp, dp, _, ack = struct.unpack("!HHII", body[:12])
                if sp == a.tcp_port and dp == tcp_sport and body[13] & 0x12 == 0x12 and ack == (isn + 1) % 2**32:
                    got["tcp_synack"] = True
    got.update(rs=a.rs, vip=a.vip, src=a.src)
    print(json.dumps(got), flush=True)
    return 0 if got["icmp"] and got["udp"] and got["tcp_synack"] else 1


if __name__ == "__main__":
    sys.exit(main())
