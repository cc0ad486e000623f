#!/usr/bin/env python3
"""IPIP and IPv6-in-IPv6 decapsulation for a lab real server, in userspace (the lab's kernel has
no ipip, sit or ip6_tunnel module).

rvs's tunnel mode sends the client's packet to the real server inside an outer IPv4 header
(protocol 4, IPIP; RFC 2003) or, for an IPv6 service, an outer IPv6 header (next header 41;
RFC 2473). This receives those packets on two raw sockets: IPv4 protocol 4 (the kernel hands
such a socket every locally delivered packet of that protocol, outer header included, and
sends no "protocol unreachable" when a raw socket took it) and IPv6 protocol 41 (an IPv6 raw
socket gets the payload after the outer header, here the inner packet itself, and the kernel
sends no "parameter problem" when a raw socket took it). It strips the outer header and
writes the inner packet into a TUN device (IFF_TUN | IFF_NO_PI, which takes either family by
the version nibble). The kernel then receives it as if it had arrived on that device: the
inner destination, the VIP, is on lo, so it is delivered locally. An inner packet may be a
fragment (rvs encapsulates each fragment of a client's datagram whole, IPv4 and IPv6): it is
written as it is, and the kernel reassembles the datagram from the device as from any link. Replies leave the normal way
(the RS's default route, lab-router).

Reverse-path filtering must be off for the TUN device (the inner source, the client, is routed
out of eth0): this sets conf.<dev>.rp_filter = 0 and refuses to start if conf.all.rp_filter is
not 0 (the kernel uses the larger of the two). IPv6 must be on for it (the lab turns IPv6 off
by default on a namespace's new devices), else the kernel discards the inner IPv6 packets:
this sets net.ipv6.conf.<dev>.disable_ipv6 = 0.

Prints `ready` once the device is up; on SIGTERM or SIGINT removes the device, prints its
counters and exits 0. `--verbose` logs every packet.

  ipip_decap.py [--dev decap0] [--verbose]
"""

import argparse
import fcntl
import os
import select
import signal
import socket
import struct
import sys

IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41
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


def sysctl(path, value=None, family="ipv4"):
    full = "/proc/sys/net/%s/conf/%s" % (family, path)
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


def inner6_of(payload):
    """The inner IPv6 packet of an IPv6-in-IPv6 packet's payload (the raw socket gives no
    outer header), or None."""
    if len(payload) < 40 or payload[0] >> 4 != 6:
        return None
    total = 40 + struct.unpack("!H", payload[4:6])[0]
    return payload[:total] if total <= len(payload) else None


def describe(pkt):
    if pkt[0] >> 4 == 6:
        proto = {58: "icmp6", 6: "tcp", 17: "udp"}.get(pkt[6], str(pkt[6]))
        src, dst = socket.inet_ntop(socket.AF_INET6, pkt[8:24]), socket.inet_ntop(socket.AF_INET6, pkt[24:40])
        return "%s -> %s %s" % (src, dst, proto)
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
    raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
    # A 100 MB upload is ~70k packets in a burst: give the sockets room (root may exceed rmem_max).
    for s in (raw, raw6):
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    unwrap = {raw.fileno(): (raw, inner_of), raw6.fileno(): (raw6, inner6_of)}
    tun = open_tun(a.dev)
    sysctl(a.dev + "/rp_filter", "0")
    sysctl(a.dev + "/disable_ipv6", "0", family="ipv6")
    set_up(a.dev)
    print("ready ipip_decap dev", a.dev, flush=True)
    got = written = bad = 0
    try:
        while True:
            ready, _, _ = select.select(list(unwrap), [], [])
            for fd in ready:
                sock, strip = unwrap[fd]
                pkt = sock.recv(65535)
                got += 1
                inner = strip(pkt)
                if inner is None:
                    bad += 1
                    if a.verbose:
                        print("bad packet of", len(pkt), "bytes on the", "IPv6" if sock is raw6 else "IPv4",
                              "socket", flush=True)
                    continue
                if a.verbose:
                    outer = describe(pkt) if sock is raw else "(IPv6 outer)"
                    print("decap", outer, "| inner", describe(inner), flush=True)
                os.write(tun, inner)
                written += 1
    except KeyboardInterrupt:
        pass
    finally:
        os.close(tun)  # a non-persistent TUN device disappears with its last descriptor
        raw.close()
        raw6.close()
        print("stopped ipip_decap received", got, "written", written, "bad", bad, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
