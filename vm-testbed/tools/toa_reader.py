#!/usr/bin/env python3
"""Reads the TOA option (Full-NAT's client address) from TCP packets a real server receives.

With Full-NAT the real server sees a connection from a local address of the balancer
(10.20.0.200-203); the balancer puts the client's address into the TCP options (kind 254,
length 8: 2-byte port, then 4-byte IPv4 address, network order; DPVS's TOA). Applications
cannot read TCP options, so this captures the packets on an interface (AF_PACKET) and prints,
once per connection, flushed:

    10.20.0.200:40001 -> 10.10.0.2:34567

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

ETH_P_IP = 0x0800
TOA_KIND, TOA_LEN = 254, 8
TCP_SYN, TCP_ACK = 0x02, 0x10


def find_toa(options):
    """The (port, address) of a TOA option in raw TCP options, or None."""
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
        i += length
    return None


def parse(frame, want_port):
    """`(src, toa)` strings for an Ethernet frame carrying a TCP SYN/ACK with TOA, else None."""
    if len(frame) < 14 + 20 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP or len(ip) < ihl + 20:
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
    src = "%s:%d" % (socket.inet_ntoa(ip[12:16]), sport)
    return src, "%s:%d" % (toa[1], toa[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iface", default="eth0", help="interface to capture on (default eth0)")
    ap.add_argument("--port", type=int, default=80, help="the server's TCP port (default 80)")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((a.iface, ETH_P_IP))
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
