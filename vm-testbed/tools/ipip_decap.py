#!/usr/bin/env python3
"""IPIP decapsulation for a lab real server, in userspace (the lab's kernel has no ipip module).

rvs's tunnel mode sends the client's packet to the real server inside an outer IPv4 header
(protocol 4, IPIP). This receives those packets on a raw socket (`SOCK_RAW`, protocol 4: the
kernel hands raw sockets every locally delivered packet of that protocol, outer header
included, and sends no "protocol unreachable" when a raw socket took it), strips the outer
header and writes the inner packet into a TUN device (IFF_TUN | IFF_NO_PI). The kernel then
receives it as if it had arrived on that device: the inner destination, the VIP, is on lo, so
it is delivered locally. Replies leave the normal way (the RS's default route, lab-router).

Reverse-path filtering must be off for the TUN device (the inner source, the client, is routed
out of eth0): this sets conf.<dev>.rp_filter = 0 and refuses to start if conf.all.rp_filter is
not 0 (the kernel uses the larger of the two).

Prints `ready` once the device is up; on SIGTERM or SIGINT removes the device, prints its
counters and exits 0. `--verbose` logs every packet.

  ipip_decap.py [--dev decap0] [--verbose]
"""

import argparse
import fcntl
import os
import signal
import socket
import struct
import sys

IPPROTO_IPIP = 4
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
SO_RCVBUFFORCE = 33


def open_tun(name):
    """Creates TUN device `name` (or attaches to it) and returns its file descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def set_up(name):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", name.encode(), 0))
        flags = struct.unpack("16sH22x", req)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))


def sysctl(path, value=None):
    full = "/proc/sys/net/ipv4/conf/" + path
    if value is not None:
        with open(full, "w") as f:
            f.write(value)
    with open(full) as f:
        return f.read().strip()


def inner_of(packet):
    """The inner IPv4 packet of an IPIP packet (outer header included), or None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    inner = packet[ihl:]
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return None
    total = struct.unpack("!H", inner[2:4])[0]
    return inner[:total] if 20 <= total <= len(inner) else None


def describe(pkt):
    proto = {1: "icmp", 6: "tcp", 17: "udp"}.get(pkt[9], str(pkt[9]))
    return "%s -> %s %s" % (socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20]), proto)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", default="decap0", help="TUN device to create (default decap0)")
    ap.add_argument("--verbose", action="store_true", help="log every packet")
    a = ap.parse_args()

    if sysctl("all/rp_filter") != "0":
        sys.exit("ipip_decap: net.ipv4.conf.all.rp_filter is not 0 here; decapsulated packets from "
                 "the client would be dropped (vm-testbed/lab.sh up sets it to 0 on the real servers)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    # A 100 MB upload is ~70k packets in a burst: give the socket room (root may exceed rmem_max).
    raw.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    tun = open_tun(a.dev)
    sysctl(a.dev + "/rp_filter", "0")
    set_up(a.dev)
    print("ready ipip_decap dev", a.dev, flush=True)
    got = written = bad = 0
    try:
        while True:
            pkt = raw.recv(65535)
            got += 1
            inner = inner_of(pkt)
            if inner is None:
                bad += 1
                if a.verbose:
                    print("bad packet from", socket.inet_ntoa(pkt[12:16]), len(pkt), "bytes", flush=True)
                continue
            if a.verbose:
                print("decap", describe(pkt), "| inner", describe(inner), flush=True)
            os.write(tun, inner)
            written += 1
    except KeyboardInterrupt:
        pass
    finally:
        os.close(tun)  # a non-persistent TUN device disappears with its last descriptor
        raw.close()
        print("stopped ipip_decap received", got, "written", written, "bad", bad, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
