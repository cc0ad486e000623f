#!/usr/bin/env python3
"""Send malformed and unwanted frames at rvsd's port, for the lab's robustness test.

Runs in a lab host (lab-client) and writes raw Ethernet frames to an interface through an
AF_PACKET socket: random bytes, truncated IPv4 and ICMP headers, bad IHL, bad versions, IPv4
total lengths beyond the frame or below the header, bad IPv4 and ICMP checksums, fragments,
impossible source addresses, packets for addresses that are not rvsd's, ARP with wrong
hardware/protocol sizes, ARP for other hosts, IPv6 (to nobody's address; to rvsd's IPv6
address with an extension-header chain one longer than rvsd walks, UDP it has no service for,
a bad ICMPv6 checksum; neighbour solicitations for rvsd forwarded by a router, i.e. with hop
limit below 255), VLAN-tagged frames, unknown EtherTypes, frames for another MAC, and TCP/UDP
to the VIP on ports with no service. Every frame has a
valid source MAC (bridges drop others) and, unless the kind is about that checksum, valid
checksums, so each kind exercises exactly one check.

Frames shorter than an Ethernet header are not sent: the kernel refuses them on a packet
socket (and a veth could not carry them anyway), so `eth_truncated` cannot be produced here.
UDP fragments to the VIP exercise rvsd's fragment table: a first fragment too short for the UDP
header (frag_tiny, RFC 1858), later fragments whose first never comes (frag_first_less: held,
then dropped at the train's timeout, or refused when the table's bound on held fragments is
reached: a flood of them is bounded), and two fragments of one datagram that overlap
(frag_overlap, the only kind that sends two frames per draw; both are counted).
IPv4 fragments (kind ip_fragment and the frag_* kinds) reach rvsd only through ports that see raw frames, such as
the lab's net_af_xdp vdevs: DPDK 22.11's net_af_packet joins a PACKET_FANOUT group with
PACKET_FANOUT_FLAG_DEFRAG, so behind it the kernel holds fragments for reassembly instead.
Use --exclude ip_fragment,frag_tiny,frag_first_less,frag_overlap against an af_packet port.
IPv6 fragments to the IPv6 VIP (--vip6, which must have a UDP service on port 53 and no
other) exercise the same table: frag6_tiny (a first fragment without the whole UDP header,
RFC 7112), frag6_first_less (held, then timed out or refused by the bound: a flood),
frag6_overlap (tiny overlapping fragments, RFC 5722); ip6_ext_max sends the longest
extension-header chain rvsd walks (8 headers, 512 bytes) before UDP to a port of the VIP
with no service, ip6_ext_too_long one 8 bytes longer. net_af_packet's defragmenting fanout
is IPv4 only, so these reach rvsd through either vdev.

The RNG is seeded (--seed) so a run is reproducible. Frames are paced (--rate) so that an
rvsd with an adaptive idle policy and a default-sized RX ring sees them all.

Prints one JSON object: {"iface", "dst_mac", "seed", "total", "sent": {kind: count}, "errors"}.
Python 3 standard library only. Needs CAP_NET_RAW (root).
"""

import argparse
import json
import random
import socket
import struct
import sys
import time

ETH_IP = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_IPV6 = 0x86DD
ETH_LOCAL_EXP = 0x88B5  # IEEE 802 local experimental EtherType
UNKNOWN_ETHERTYPES = (0x88B5, 0x88B6, 0x8847, 0x88CC, 0x9000, 0x0842, 0x22F0)

TCP_SERVICE_PORTS = {80}  # ports with a TCP service on the VIP in config/lab.toml


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def ip_bytes(ip: str) -> bytes:
    return socket.inet_aton(ip)


class Builder:
    """Builds one frame of each kind; all randomness comes from self.rng."""

    def __init__(self, rng, dst_mac, src_mac, port_ip, vip, src_ips, other_ips, port_ip6, src_ip6, vip6):
        self.rng = rng
        self.vip6 = socket.inet_pton(socket.AF_INET6, vip6)
        self.port_ip6 = socket.inet_pton(socket.AF_INET6, port_ip6)
        self.src_ip6 = socket.inet_pton(socket.AF_INET6, src_ip6)
        self.dst_mac = mac_bytes(dst_mac)
        self.src_mac = mac_bytes(src_mac)
        self.port_ip = port_ip
        self.vip = vip
        self.src_ips = src_ips
        self.other_ips = other_ips

    # --- pieces -----------------------------------------------------------------------

    def eth(self, ethertype, dst=None):
        return (dst or self.dst_mac) + self.src_mac + struct.pack("!H", ethertype)

    def rand_bytes(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def src_ip(self):
        return self.rng.choice(self.src_ips)

    def icmp_dst(self):
        return self.rng.choice((self.port_ip, self.vip))

    def echo_request(self, payload_len=None):
        if payload_len is None:
            payload_len = self.rng.randint(0, 56)
        ident, seq = self.rng.getrandbits(16), self.rng.getrandbits(16)
        body = self.rand_bytes(payload_len)
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        c = checksum(hdr + body)
        return struct.pack("!BBHHH", 8, 0, c, ident, seq) + body

    def ipv4(self, payload, proto, src, dst, *, version=4, ihl=5, total_len=None, flags_frag=0,
             bad_checksum=False, ident=None):
        """An IPv4 header (20 bytes, whatever ihl says) + payload, checksum valid unless asked."""
        if total_len is None:
            total_len = 20 + len(payload)
        if ident is None:
            ident = self.rng.getrandbits(16)
        ttl = 64
        hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total_len, ident, flags_frag,
                          ttl, proto, 0, ip_bytes(src), ip_bytes(dst))
        c = checksum(hdr)
        if bad_checksum:
            c ^= self.rng.randint(1, 0xFFFF)
        hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
        return hdr + payload

    def l4_checksum(self, proto, src, dst, segment):
        pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, len(segment))
        return checksum(pseudo + segment)

    def ipv6(self, payload, next_header, *, src=None, dst=None, hop_limit=64):
        return struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit) + \
            (src or self.src_ip6) + (dst or self.port_ip6) + payload

    def icmp6(self, msg, *, dst=None, hop_limit=64, bad_checksum=False):
        """IPv6 + ICMPv6 `msg` (checksum field zero) with its checksum over the pseudo-header."""
        dst = dst or self.port_ip6
        pseudo = self.src_ip6 + dst + struct.pack("!I3xB", len(msg), 58)
        c = checksum(pseudo + msg)
        if bad_checksum:
            c ^= self.rng.randint(1, 0xFFFF)
        msg = msg[:2] + struct.pack("!H", c) + msg[4:]
        return self.ipv6(msg, 58, dst=dst, hop_limit=hop_limit)

    def echo6(self):
        body = self.rand_bytes(self.rng.randint(0, 56))
        return struct.pack("!BBHHH", 128, 0, 0, self.rng.getrandbits(16), self.rng.getrandbits(16)) + body

    def arp(self, *, htype=1, ptype=ETH_IP, hlen=6, plen=4, op=1, target_ip=None):
        sender_ip = self.src_ips[0]
        target_ip = target_ip or self.port_ip
        return struct.pack("!HHBBH", htype, ptype, hlen, plen, op) + self.src_mac + \
            ip_bytes(sender_ip) + b"\0" * 6 + ip_bytes(target_ip)

    # --- kinds: each returns one whole frame (frag_overlap: a list of two) -------------

    def k_random(self):
        # Anything after the MAC addresses, EtherType included. At least 8 bytes: the kernel
        # discards a VLAN-tagged frame (a random EtherType may be 0x8100) shorter than its tag.
        return self.eth(0)[:12] + self.rand_bytes(self.rng.randint(8, 300))

    def k_eth_not_for_us(self):
        # A unicast MAC nobody has: the bridge floods it to every port, rvsd's included.
        other = bytes((0x02, 0x00, 0x00, 0x00, 0xEE, self.rng.randint(0, 255)))
        ip = self.ipv4(self.echo_request(), 1, self.src_ip(), self.port_ip)
        return self.eth(ETH_IP, dst=other) + ip

    def k_eth_unknown_type(self):
        return self.eth(self.rng.choice(UNKNOWN_ETHERTYPES)) + self.rand_bytes(self.rng.randint(0, 100))

    def k_ipv6(self):
        payload = self.rand_bytes(self.rng.randint(8, 64))
        hdr = struct.pack("!IHBB16s16s", 6 << 28, len(payload), 58, 64,
                          socket.inet_pton(socket.AF_INET6, "fe80::2"),
                          socket.inet_pton(socket.AF_INET6, "fe80::1"))
        return self.eth(ETH_IPV6) + hdr + payload

    def k_ip6_ext_too_many(self):
        # Nine destination-options headers (rvsd walks at most eight) before an echo request.
        n = 9
        chain = b"".join(struct.pack("!BBBB4x", 58 if i == n - 1 else 60, 0, 1, 4) for i in range(n))
        return self.eth(ETH_IPV6) + self.ipv6(chain + self.echo6(), 60)

    # --- IPv6 fragments and extension-header chains, to the IPv6 VIP (--vip6) ---------

    def frag6(self, ident, offset, data, more, next_header=17):
        """An IPv6 fragment from this host to the IPv6 VIP: `data` at byte `offset`."""
        fh = struct.pack("!BBHI", next_header, 0, offset | int(more), ident)
        return self.eth(ETH_IPV6) + self.ipv6(fh + data, 44, dst=self.vip6)

    def k_frag6_tiny(self):
        # A first fragment (offset 0, M) with fewer than the UDP header's 8 bytes: it does
        # not hold the whole upper-layer header (RFC 8200 §4.5, RFC 7112).
        return self.frag6(self.rng.getrandbits(32), 0, self.rand_bytes(self.rng.randint(1, 7)), True)

    def k_frag6_first_less(self):
        # A later fragment of a datagram whose first fragment is never sent; many of them
        # make the flood the fragment table's bounds are for.
        offset = 8 * self.rng.randint(1, 1000)
        return self.frag6(self.rng.getrandbits(32), offset, self.rand_bytes(8 * self.rng.randint(1, 20)),
                          self.rng.random() < 0.8)

    def k_frag6_overlap(self):
        # Two tiny later fragments of one datagram whose byte ranges overlap.
        ident = self.rng.getrandbits(32)
        a = 8 * self.rng.randint(1, 100)
        b = a + 8 * self.rng.randint(-1, 1)
        return [self.frag6(ident, a, self.rand_bytes(16), True),
                self.frag6(ident, max(8, b), self.rand_bytes(16), True)]

    def ext_chain(self, total, last_next):
        """Destination-options headers of `total` bytes in all (8 of them, each a multiple
        of 8), the last naming `last_next`."""
        sizes = [8] * 8
        for i in range((total - 64) // 8):
            sizes[i % 8] += 8
        out = b""
        for i, size in enumerate(sizes):
            nh = last_next if i == 7 else 60
            out += struct.pack("!BBBB", nh, size // 8 - 1, 1, size - 4) + bytes(size - 4)
        return out

    def k_ip6_ext_max(self):
        # The longest chain rvsd walks (8 headers, 512 bytes) before UDP to the IPv6 VIP on a
        # port with no service: walked, then refused by the L4 path.
        dport = self.rng.randint(1024, 65535)
        seg = struct.pack("!HHHH", self.rng.randint(1024, 65535), dport, 8, 0)
        return self.eth(ETH_IPV6) + self.ipv6(self.ext_chain(512, 17) + seg, 60, dst=self.vip6)

    def k_ip6_ext_too_long(self):
        # 8 headers of 520 bytes in all: one 8-byte step over what rvsd walks.
        seg = struct.pack("!HHHH", self.rng.randint(1024, 65535), 53, 8, 0)
        return self.eth(ETH_IPV6) + self.ipv6(self.ext_chain(520, 17) + seg, 60, dst=self.vip6)

    def k_ip6_no_service(self):
        seg = bytearray(struct.pack("!HHHH", self.rng.randint(1024, 65535), 53, 8, 0))
        return self.eth(ETH_IPV6) + self.ipv6(bytes(seg), 17)

    def k_icmp6_bad_checksum(self):
        return self.eth(ETH_IPV6) + self.icmp6(self.echo6(), bad_checksum=True)

    def k_nd_bad_hop_limit(self):
        # A solicitation for rvsd's address to its solicited-node group, hop limit 64.
        t = self.port_ip6
        group = bytes((0xFF, 2) + (0,) * 9 + (1, 0xFF)) + t[13:]
        mac = bytes((0x33, 0x33, 0xFF)) + t[13:]
        ns = struct.pack("!BBHI", 135, 0, 0, 0) + t + bytes((1, 1)) + self.src_mac
        return self.eth(ETH_IPV6, dst=mac) + self.icmp6(ns, dst=group, hop_limit=64)

    def k_vlan(self):
        # The inner EtherType is unknown too, so the frame is unwanted whether the tag reaches
        # rvsd (af_packet re-inserts what the kernel stripped) or is stripped by the port.
        tci = self.rng.randint(1, 4094)
        # At least 2 bytes after the inner EtherType, or the kernel's VLAN untagging (which
        # runs before any packet socket sees the frame) discards it.
        return self.eth(ETH_VLAN) + struct.pack("!HH", tci, ETH_LOCAL_EXP) + \
            self.rand_bytes(self.rng.randint(2, 64))

    def k_ip_truncated(self):
        # Less than a minimal IPv4 header after the Ethernet header (0 .. 19 bytes).
        whole = self.ipv4(self.echo_request(), 1, self.src_ip(), self.port_ip)
        return self.eth(ETH_IP) + whole[:self.rng.randint(0, 19)]

    def k_ip_bad_version(self):
        version = self.rng.choice([v for v in range(16) if v != 4])
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, self.src_ip(), self.port_ip,
                                            version=version)

    def k_ip_bad_ihl(self):
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, self.src_ip(), self.port_ip,
                                            ihl=self.rng.randint(0, 4))

    def k_ip_length_beyond_frame(self):
        payload = self.echo_request()
        total = self.rng.randint(20 + len(payload) + 1, 0xFFFF)
        return self.eth(ETH_IP) + self.ipv4(payload, 1, self.src_ip(), self.port_ip, total_len=total)

    def k_ip_length_below_header(self):
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, self.src_ip(), self.port_ip,
                                            total_len=self.rng.randint(0, 19))

    def k_ip_bad_checksum(self):
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, self.src_ip(), self.icmp_dst(),
                                            bad_checksum=True)

    def k_ip_fragment(self):
        if self.rng.random() < 0.5:
            flags_frag = 0x2000  # MF, offset 0: a first fragment
        else:
            flags_frag = self.rng.choice((0, 0x2000)) | self.rng.randint(1, 0x1FFF)
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, self.src_ip(), self.icmp_dst(),
                                            flags_frag=flags_frag)

    def udp_fragment(self, ident, offset, data, more):
        """A UDP fragment from one of our sources to the VIP: `data` at byte `offset`."""
        flags_frag = (0x2000 if more else 0) | (offset // 8)
        return self.eth(ETH_IP) + self.ipv4(data, 17, self.src_ips[0], self.vip, flags_frag=flags_frag, ident=ident)

    def k_frag_tiny(self):
        # A first fragment (offset 0, MF) with fewer than the UDP header's 8 bytes.
        return self.udp_fragment(self.rng.getrandbits(16), 0, self.rand_bytes(self.rng.randint(1, 7)), True)

    def k_frag_first_less(self):
        # A later fragment of a datagram whose first fragment is never sent.
        offset = 8 * self.rng.randint(1, 200)
        return self.udp_fragment(self.rng.getrandbits(16), offset, self.rand_bytes(8 * self.rng.randint(1, 20)),
                                 self.rng.random() < 0.5)

    def k_frag_overlap(self):
        # Two later fragments of one datagram whose byte ranges overlap by 8 bytes or more.
        ident = self.rng.getrandbits(16)
        a = 8 * self.rng.randint(1, 100)
        b = a + 8 * self.rng.randint(0, 3)
        return [self.udp_fragment(ident, a, self.rand_bytes(32), True),
                self.udp_fragment(ident, b, self.rand_bytes(32), True)]

    def k_ip_bad_source(self):
        src = self.rng.choice(("127.0.0.1", f"127.{self.rng.randint(0, 255)}.0.1",
                               f"{self.rng.randint(224, 239)}.0.0.{self.rng.randint(1, 254)}",
                               "255.255.255.255"))
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, src, self.icmp_dst())

    def k_ip_not_for_us(self):
        return self.eth(ETH_IP) + self.ipv4(self.echo_request(), 1, self.src_ip(),
                                            self.rng.choice(self.other_ips))

    def k_icmp_truncated(self):
        # An echo request cut inside its 8-byte header; the checksum covers what is there.
        n = self.rng.randint(0, 7)
        icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, self.rng.getrandbits(16),
                                     self.rng.getrandbits(16))[:n])
        if n >= 4:
            struct.pack_into("!H", icmp, 2, checksum(bytes(icmp)))
        return self.eth(ETH_IP) + self.ipv4(bytes(icmp), 1, self.src_ip(), self.icmp_dst())

    def k_icmp_bad_checksum(self):
        icmp = bytearray(self.echo_request())
        struct.pack_into("!H", icmp, 2, struct.unpack_from("!H", icmp, 2)[0] ^ self.rng.randint(1, 0xFFFF))
        return self.eth(ETH_IP) + self.ipv4(bytes(icmp), 1, self.src_ip(), self.icmp_dst())

    def k_icmp_unhandled(self):
        # Timestamp, information and address-mask requests: valid, and not served.
        icmp_type = self.rng.choice((13, 15, 17))
        body = self.rand_bytes(12 if icmp_type != 15 else 0)
        hdr = struct.pack("!BBHHH", icmp_type, 0, 0, self.rng.getrandbits(16), self.rng.getrandbits(16))
        c = checksum(hdr + body)
        icmp = struct.pack("!BBHHH", icmp_type, 0, c, *struct.unpack_from("!HH", hdr, 4)) + body
        return self.eth(ETH_IP) + self.ipv4(icmp, 1, self.src_ip(), self.icmp_dst())

    def k_arp_malformed(self):
        variant = self.rng.randint(0, 4)
        if variant == 0:
            body = self.arp(hlen=self.rng.choice([h for h in range(256) if h != 6]))
        elif variant == 1:
            body = self.arp(plen=self.rng.choice([p for p in range(256) if p != 4]))
        elif variant == 2:
            body = self.arp(htype=self.rng.choice((0, 6, 0x1234, 0xFFFF)))
        elif variant == 3:
            body = self.arp(ptype=self.rng.choice((0, ETH_IPV6, 0x1234)))
        else:
            body = self.arp()[:self.rng.randint(0, 27)]  # truncated
        return self.eth(ETH_ARP) + body

    def k_arp_not_for_us(self):
        return self.eth(ETH_ARP) + self.arp(target_ip=self.rng.choice(self.other_ips))

    def k_tcp_to_vip(self):
        dport = self.rng.choice([p for p in range(81, 1024) if p not in TCP_SERVICE_PORTS])
        sport = self.rng.randint(1024, 65535)
        src = self.src_ip()
        seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, self.rng.getrandbits(32), 0,
                                    5 << 4, 0x02, 64240, 0, 0))
        struct.pack_into("!H", seg, 16, self.l4_checksum(6, src, self.vip, bytes(seg)))
        return self.eth(ETH_IP) + self.ipv4(bytes(seg), 6, src, self.vip)

    def k_udp_to_vip(self):
        dport = self.rng.choice((53, 80, 123, 443, self.rng.randint(1, 65535)))
        sport = self.rng.randint(1024, 65535)
        src = self.src_ip()
        payload = self.rand_bytes(self.rng.randint(0, 64))
        seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
        c = self.l4_checksum(17, src, self.vip, bytes(seg)) or 0xFFFF
        struct.pack_into("!H", seg, 6, c)
        return self.eth(ETH_IP) + self.ipv4(bytes(seg), 17, src, self.vip)


KINDS = [name[2:] for name in dir(Builder) if name.startswith("k_")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--dst-mac", required=True, help="rvsd's MAC on this segment")
    ap.add_argument("--src-mac", help="default: the interface's own MAC")
    ap.add_argument("--port-ip", default="10.10.0.1", help="rvsd's address on this segment")
    ap.add_argument("--vip", default="10.10.0.100")
    ap.add_argument("--src-ips", default="10.10.0.2,10.10.0.3,10.10.0.4,10.10.0.5",
                    help="this host's addresses (the first is used as ARP sender)")
    ap.add_argument("--other-ips", default="10.10.0.50,10.10.0.51,10.10.0.77,10.10.0.99",
                    help="addresses nobody on the segment owns")
    ap.add_argument("--port-ip6", default="2001:db8:10::1", help="rvsd's IPv6 address on this segment")
    ap.add_argument("--src-ip6", default="2001:db8:10::2", help="this host's IPv6 address")
    ap.add_argument("--vip6", default="2001:db8:10::100",
                    help="an IPv6 VIP with a UDP service on port 53 only (the frag6_* and ip6_ext_* kinds)")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=2000.0, help="frames per second")
    ap.add_argument("--kinds", help="comma-separated subset of: " + ",".join(KINDS))
    ap.add_argument("--exclude", default="", help="comma-separated kinds not to send")
    args = ap.parse_args()

    kinds = KINDS if not args.kinds else args.kinds.split(",")
    excluded = [k for k in args.exclude.split(",") if k]
    unknown = [k for k in kinds + excluded if k not in KINDS]
    kinds = [k for k in kinds if k not in excluded]
    if not kinds:
        ap.error("no kinds left to send")
    if unknown:
        ap.error(f"unknown kinds {unknown}; known: {KINDS}")
    src_mac = args.src_mac
    if not src_mac:
        with open(f"/sys/class/net/{args.iface}/address") as f:
            src_mac = f.read().strip()

    rng = random.Random(args.seed)
    b = Builder(rng, args.dst_mac, src_mac, args.port_ip, args.vip,
                args.src_ips.split(","), args.other_ips.split(","), args.port_ip6, args.src_ip6, args.vip6)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.iface, 0))

    sent = {k: 0 for k in kinds}
    errors = 0
    burst = max(1, int(args.rate / 100))  # 100 bursts per second
    t0 = time.monotonic()
    for i in range(args.count):
        kind = rng.choice(kinds)
        made = getattr(b, "k_" + kind)()
        for frame in made if isinstance(made, list) else [made]:
            try:
                sock.send(frame)
                sent[kind] += 1
            except OSError as e:
                errors += 1
                if errors <= 5:
                    print(f"malformed.py: send of a {kind} frame ({len(frame)} bytes) failed: {e}",
                          file=sys.stderr)
        if (i + 1) % burst == 0:
            delay = t0 + (i + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    sock.close()
    print(json.dumps({"iface": args.iface, "dst_mac": args.dst_mac, "seed": args.seed,
                      "total": sum(sent.values()), "sent": sent, "errors": errors},
                     sort_keys=True))


if __name__ == "__main__":
    main()
