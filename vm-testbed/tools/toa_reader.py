#!/usr/bin/env python3
"""Reads the TOA option (Full-NAT's client address) from TCP packets a real server receives.

With Full-NAT the real server sees a connection from a local address of the balancer
(10.20.0.200-203, or 2001:db8:20::200-201 over IPv6); the balancer puts the client's address
into the TCP options (kind 254; length 8 for an IPv4 client: 2-byte port, then 4-byte IPv4
address; length 20 for an IPv6 client: 2-byte port, then 16-byte IPv6 address; network
order; DPVS's TOA, include/ipvs/proto_tcp.h). Applications cannot read TCP options, so this
captures the IPv4 and IPv6 packets on an interface (AF_PACKET) and prints, once per
connection, flushed:

    10.20.0.200:40001 -> 10.10.0.2:34567
    [2001:db8:20::200]:1025 -> [2001:db8:10::2]:34567

i.e. `<source address:port as the server sees it> -> <client address:port from TOA>`. It looks at
SYN and ACK packets (DPVS adds TOA to the SYN; LVS Full-NAT to the first ACK) to TCP port
--port. Prints `ready` once capturing. SIGTERM or SIGINT: exits 0.

  toa_reader.py [--iface eth0] [--port 80]
"""

import argparse
import signal
import socket
import struct
import sys

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
TOA_KIND, TOA_LEN, TOA6_LEN = 254, 8, 20
TCP_SYN, TCP_ACK = 0x02, 0x10


def endpoint(addr, port):
    """`a.b.c.d:port`, or `[v6]:port` for an IPv6 address."""
    return ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, port)


def find_toa(options):
    """The (port, address) of a TOA option (IPv4, 8 bytes, or IPv6, 20 bytes) in raw TCP
    options, or None."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:  # end of options
            return None
        if kind == 1:  # no-op
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None  # malformed: stop rather than loop
        length = options[i + 1]
        if kind == TOA_KIND and length == TOA_LEN and i + TOA_LEN <= len(options):
            port, addr = struct.unpack("!H4s", options[i + 2:i + 8])
            return port, socket.inet_ntoa(addr)
        if kind == TOA_KIND and length == TOA6_LEN and i + TOA6_LEN <= len(options):
            port, addr = struct.unpack("!H16s", options[i + 2:i + 20])
            return port, socket.inet_ntop(socket.AF_INET6, addr)
        i += length
    return None


def parse(frame, want_port):
    """`(src, toa)` strings for an Ethernet frame carrying a TCP SYN/ACK with TOA (IPv4, or
    IPv6 with TCP right after the fixed header), else None."""
    if len(frame) < 14 + 20:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if ethertype == ETH_P_IP:
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP or len(ip) < ihl + 20:
            return None
        src_ip = socket.inet_ntoa(ip[12:16])
    elif ethertype == ETH_P_IPV6:
        ihl = 40
        if len(ip) < ihl + 20 or ip[0] >> 4 != 6 or ip[6] != socket.IPPROTO_TCP:
            return None
        src_ip = socket.inet_ntop(socket.AF_INET6, ip[8:24])
    else:
        return None
    tcp = ip[ihl:]
    sport, dport = struct.unpack("!HH", tcp[0:4])
    doff = (tcp[12] >> 4) * 4
    flags = tcp[13]
    if dport != want_port or not flags & (TCP_SYN | TCP_ACK) or doff <= 20 or len(tcp) < doff:
        return None
    toa = find_toa(tcp[20:doff])
    if toa is None:
        return None
    return endpoint(src_ip, sport), endpoint(toa[1], toa[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iface", default="eth0", help="interface to capture on (default eth0)")
    ap.add_argument("--port", type=int, default=80, help="the server's TCP port (default 80)")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((a.iface, ETH_P_ALL))
    print("ready toa_reader", a.iface, "port", a.port, flush=True)
    last = {}  # source -> client: print a connection once, and again if its port is reused
    try:
        while True:
            frame, addr = sock.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            hit = parse(frame, a.port)
            if hit and last.get(hit[0]) != hit[1]:
                last[hit[0]] = hit[1]
                print("%s -> %s" % hit, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        print("stopped toa_reader", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
