//! The frames the pipeline benchmark sends and the replies it expects back.
//!
//! Contract: every builder here is plain byte pushing with its own RFC 1071 checksum,
//! written independently of `rvs_dataplane::wire`, so that the benchmark's correctness
//! check does not trust the code it measures (the same rule as the dataplane's golden
//! tests). The addressing is the lab's (DESIGN.md): port `front` is 10.10.0.1/24 with the
//! VIP 10.10.0.100, and the client 10.10.0.2 is on-link; port `back` is 10.20.0.1/24 with
//! the real servers [`SERVERS`] on-link and the Full-NAT local addresses
//! [`local_addr`]`(i)`.
//!
//! For the L4 modes, [`TcpSeg`] builds TCP/IPv4 frames, and [`rewritten`] / [`ipip`] the
//! IPv4 packets a forwarding mode must produce from them: every checksum recomputed in
//! full here, where the data path updates them incrementally.
//!
//! The IPv6 L4 modes use the same plan with every address moved into IPv6 by [`six`]
//! (`a.b.c.d` becomes `2001:db8:4::a.b.c.d`, and [`four`] reads it back): [`TcpSeg::frame6`],
//! [`rewritten6`], [`ip6ip6`] and [`to_server6`] are the IPv6 counterparts, [`toa6`] the
//! 20-byte TOA option of IPv6 Full-NAT, [`neighbour_solicitation`] the ND message through
//! which the worker learns the gateway and the servers.

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_dataplane::types::ForwardMode;

/// MAC of the front port.
pub const FRONT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xf0, 0x01];
/// MAC of the back port.
pub const BACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x01];
/// MAC of the on-link client.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];
/// Address of the front port.
pub const FRONT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// The VIP, answered on the front port.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);
/// The on-link client.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);

/// The front side's gateway (the default route's next hop), behind which the L4 modes'
/// clients sit.
pub const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 254);
/// MAC of the gateway.
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0xfe];
/// Address of the back port (the IPIP outer source).
pub const BACK_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
/// The three real servers of the L4 modes' service, on-link behind the back port.
pub const SERVERS: [Ipv4Addr; 3] =
    [Ipv4Addr::new(10, 20, 0, 11), Ipv4Addr::new(10, 20, 0, 12), Ipv4Addr::new(10, 20, 0, 13)];
/// Their MACs, in the order of [`SERVERS`].
pub const SERVER_MACS: [[u8; 6]; 3] =
    [[0x02, 0, 0, 0, 0x5e, 0x11], [0x02, 0, 0, 0, 0x5e, 0x12], [0x02, 0, 0, 0, 0x5e, 0x13]];
/// The virtual service's TCP port.
pub const VPORT: u16 = 80;
/// The servers' port in NAT and Full-NAT (different from [`VPORT`], so the port rewrite
/// is exercised); DR and IPIP servers listen on [`VPORT`] itself.
pub const SERVER_PORT: u16 = 8080;
/// TCP flag bits (RFC 9293).
pub const TCP_SYN: u8 = 0x02;
/// ACK.
pub const TCP_ACK: u8 = 0x10;
/// PSH.
pub const TCP_PSH: u8 = 0x08;
/// TTL of every frame a client or server sends here.
pub const SEND_TTL: u8 = TTL;
/// Offset of the IPv4 header in an Ethernet frame.
pub const IP_AT: usize = 14;

/// Full-NAT local addresses in the back port's /24 (10.20.0.200–249); more come from
/// 10.21.0.0/16 ([`local_addr`]).
const LOCALS_ON_LINK: u16 = 50;

/// Full-NAT local address number `i`, answered on the back port: 10.20.0.200 + i for the
/// first [`LOCALS_ON_LINK`], then 10.21.0.1 upwards (host numbers 1–254 of each /24), as
/// many as a large `--flows` needs (the worker owns a local address whatever its subnet).
pub const fn local_addr(i: u16) -> Ipv4Addr {
    if i < LOCALS_ON_LINK {
        Ipv4Addr::new(10, 20, 0, 200 + i as u8)
    } else {
        let j = i - LOCALS_ON_LINK;
        Ipv4Addr::new(10, 21, (j / 254) as u8, (j % 254) as u8 + 1)
    }
}

/// Whether `ip` is one of the [`local_addr`]s (any number).
pub fn is_local_addr(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    (local_addr(0)..=local_addr(LOCALS_ON_LINK - 1)).contains(&ip)
        || (o[0] == 10 && o[1] == 21 && (1..=254).contains(&o[3]))
}

/// The first 96 bits of every address of the IPv6 plan ([`six`]), in the documentation
/// prefix 2001:db8::/32 (RFC 3849).
const V6_PREFIX: [u8; 12] = [0x20, 0x01, 0x0d, 0xb8, 0, 4, 0, 0, 0, 0, 0, 0];
/// Prefix length of the ports' IPv6 addresses: the image of the IPv4 plan's /24s.
pub const V6_PORT_PREFIX_LEN: u8 = 120;

/// The IPv6 twin of the plan's IPv4 address `ip`: `2001:db8:4::/96` followed by its 32
/// bits, so that both families share one plan (ports, VIP, servers, gateway, clients)
/// and the last four bytes of an IPv6 address are its IPv4 twin's.
pub fn six(ip: Ipv4Addr) -> Ipv6Addr {
    let mut o = [0; 16];
    o[..12].copy_from_slice(&V6_PREFIX);
    o[12..].copy_from_slice(&ip.octets());
    Ipv6Addr::from(o)
}

/// The IPv4-plan address whose [`six`] twin `ip` is, or `None` for an address outside
/// `2001:db8:4::/96`.
pub fn four(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    (o[..12] == V6_PREFIX).then(|| Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

const BROADCAST: [u8; 6] = [0xff; 6];
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
/// Offset of the IPv6 L4 header in an Ethernet frame (no extension headers).
pub const L4_AT6: usize = IP_AT + 40;
const ETH_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// Ethernet minimum frame length without FCS, as a NIC delivers short frames.
const ETH_MIN: usize = 60;
/// Offset of the IPv4 header checksum in an Ethernet frame.
const IP_CSUM_AT: usize = 14 + 10;
/// Identifier, sequence number and payload length of the echo request (`ping`'s 56 bytes).
const ECHO_ID: u16 = 0x1234;
const ECHO_SEQ: u16 = 1;
const ECHO_DATA_LEN: usize = 56;
/// TTL of the client's request and of rvs's reply (Linux's default, `REPLY_TTL`).
const TTL: u8 = 64;

/// RFC 1071 Internet checksum of `data`.
pub fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_MIN.max(14 + payload.len()));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < ETH_MIN {
        f.resize(ETH_MIN, 0);
    }
    f
}

fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// IPv4 (no options, DF set) + ICMP echo of `icmp_type` from `src` to `dst`, both
/// checksums correct.
fn ipv4_echo(src: Ipv4Addr, dst: Ipv4Addr, icmp_type: u8) -> Vec<u8> {
    let mut icmp = vec![icmp_type, 0, 0, 0];
    icmp.extend_from_slice(&ECHO_ID.to_be_bytes());
    icmp.extend_from_slice(&ECHO_SEQ.to_be_bytes());
    icmp.extend((0..ECHO_DATA_LEN).map(|i| 0x10 + i as u8));
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&0x1c46u16.to_be_bytes()); // identification
    ip.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    ip.extend_from_slice(&[TTL, 1, 0, 0]); // TTL, protocol ICMP, checksum placeholder
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// Broadcast ARP request from the client: "who has 10.10.0.1 (the front port)?".
pub fn arp_request() -> Vec<u8> {
    eth(BROADCAST, CLIENT_MAC, ETH_ARP, &arp(ARP_REQUEST, CLIENT_MAC, CLIENT_IP, [0; 6], FRONT_IP))
}

/// The reply rvs must send to [`arp_request`] on the front port (the request's padding
/// is kept, since the reply is built in place).
pub fn arp_reply() -> Vec<u8> {
    eth(CLIENT_MAC, FRONT_MAC, ETH_ARP, &arp(ARP_REPLY, FRONT_MAC, FRONT_IP, CLIENT_MAC, CLIENT_IP))
}

/// ICMP echo request (98 bytes, like `ping`'s default) from the client to the VIP.
pub fn echo_request() -> Vec<u8> {
    eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &ipv4_echo(CLIENT_IP, VIP, 8))
}

/// The echo reply rvs must route back to the client for [`echo_request`].
pub fn echo_reply() -> Vec<u8> {
    eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &ipv4_echo(VIP, CLIENT_IP, 0))
}

/// [`echo_request`] with its IPv4 header checksum wrong (every other field valid).
pub fn echo_request_bad_ip_checksum() -> Vec<u8> {
    let mut f = echo_request();
    f[IP_CSUM_AT] ^= 0x5a;
    f
}

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded), folded
/// to 16 bits but not inverted.
fn sum16(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 });
    }
    fold(s)
}

fn fold(mut s: u32) -> u32 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

/// The TCP checksum of `segment` (its checksum field taken as zero) between `src` and
/// `dst` (RFC 9293 §3.1 pseudo-header).
pub fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    let mut seg = segment.to_vec();
    if seg.len() >= 18 {
        seg[16] = 0;
        seg[17] = 0;
    }
    !(fold(sum16(&pseudo) + sum16(&seg)) as u16)
}

/// The TCP checksum of `segment` (its checksum field taken as zero) between `src` and
/// `dst` over the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn tcp6_checksum(src: Ipv6Addr, dst: Ipv6Addr, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(segment.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 6]);
    let mut seg = segment.to_vec();
    if seg.len() >= 18 {
        seg[16] = 0;
        seg[17] = 0;
    }
    !(fold(sum16(&pseudo) + sum16(&seg)) as u16)
}

/// A TCP segment over IPv4 as a client or server sends it (TTL [`SEND_TTL`], DF set), or
/// over IPv6 between the addresses' [`six`] twins (hop limit [`SEND_TTL`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSeg {
    /// Source address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// Flag bits ([`TCP_SYN`], [`TCP_ACK`], [`TCP_PSH`]).
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// TCP options, a multiple of 4 bytes.
    pub options: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl TcpSeg {
    /// The TCP header and payload, the checksum field zero.
    fn segment(&self) -> Vec<u8> {
        let mut tcp = Vec::with_capacity(20 + self.options.len() + self.payload.len());
        tcp.extend_from_slice(&self.src.1.to_be_bytes());
        tcp.extend_from_slice(&self.dst.1.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        let ack = if self.flags & TCP_ACK != 0 { 0x1000_0001u32 } else { 0 };
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push((((20 + self.options.len()) / 4) << 4) as u8);
        tcp.push(self.flags);
        tcp.extend_from_slice(&0xfaf0u16.to_be_bytes()); // window
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        tcp.extend_from_slice(&self.options);
        tcp.extend_from_slice(&self.payload);
        tcp
    }

    /// The IPv4 packet (no options, identification 0x2a2a) with both checksums correct.
    pub fn ipv4(&self) -> Vec<u8> {
        let mut tcp = self.segment();
        let c = tcp_checksum(self.src.0, self.dst.0, &tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let total = (20 + tcp.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&0x2a2au16.to_be_bytes());
        ip.extend_from_slice(&0x4000u16.to_be_bytes());
        ip.extend_from_slice(&[TTL, 6, 0, 0]);
        ip.extend_from_slice(&self.src.0.octets());
        ip.extend_from_slice(&self.dst.0.octets());
        let c = csum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&tcp);
        ip
    }

    /// The Ethernet frame from `src_mac` to `dst_mac` (padded to the 60-byte minimum).
    pub fn frame(&self, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
        eth(dst_mac, src_mac, ETH_IPV4, &self.ipv4())
    }

    /// The IPv6 packet between the [`six`] twins of the addresses (traffic class and
    /// flow label 0, no extension header) with its TCP checksum correct.
    pub fn ipv6(&self) -> Vec<u8> {
        let (src, dst) = (six(self.src.0), six(self.dst.0));
        let mut tcp = self.segment();
        let c = tcp6_checksum(src, dst, &tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[6, TTL]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&tcp);
        ip
    }

    /// The IPv6 Ethernet frame from `src_mac` to `dst_mac` ([`TcpSeg::ipv6`]).
    pub fn frame6(&self, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
        eth(dst_mac, src_mac, ETH_IPV6, &self.ipv6())
    }
}

/// The IPv6 address at byte `at` of `b`.
pub fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The IPv6 packet rvs must send for the TCP/IPv6 packet `ip` ([`TcpSeg::ipv6`]) after
/// moving its source to `src` and/or destination to `dst` (IPv4-plan address, whose
/// [`six`] twin is written, and port; `None` keeps the field): the hop limit one lower
/// when `routed` (NAT66; DR leaves it, as LVS's DR does), the TCP checksum recomputed in
/// full.
pub fn rewritten6(ip: &[u8], src: Option<(Ipv4Addr, u16)>, dst: Option<(Ipv4Addr, u16)>, routed: bool) -> Vec<u8> {
    let len = (40 + usize::from(u16_at(ip, 4))).min(ip.len());
    let mut p = ip[..len].to_vec();
    if routed {
        p[7] -= 1;
    }
    if let Some((a, port)) = src {
        p[8..24].copy_from_slice(&six(a).octets());
        p[40..42].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((a, port)) = dst {
        p[24..40].copy_from_slice(&six(a).octets());
        p[42..44].copy_from_slice(&port.to_be_bytes());
    }
    let c = tcp6_checksum(ipv6_at(&p, 8), ipv6_at(&p, 24), &p[40..]);
    p[56..58].copy_from_slice(&c.to_be_bytes());
    p
}

/// The largest IPv4 packet NAT64 sends to a server with DF clear (RFC 7915 §5.1).
pub const NAT64_DF_CLEAR_MAX: usize = 1260;

/// The IPv4 packet NAT64 must send for the client's TCP/IPv6 packet `ip`
/// ([`TcpSeg::ipv6`]) from `src` to `dst` (RFC 7915 §5.1 as `rvs_dataplane::xmit::nat64`
/// specifies: TOS the traffic class, up to 1260 bytes DF clear and identification
/// `ident` (the data path's own counter), above DF set and identification 0, TTL the hop
/// limit − 1, no options), the ports rewritten and both checksums computed in full.
pub fn translated64(ip: &[u8], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), ident: u16) -> Vec<u8> {
    let len = (40 + usize::from(u16_at(ip, 4))).min(ip.len());
    let mut tcp = ip[40..len].to_vec();
    tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let c = tcp_checksum(src.0, dst.0, &tcp);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let class = (ip[0] << 4) | (ip[1] >> 4);
    let mut p = vec![0x45, class];
    p.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    if 20 + tcp.len() <= NAT64_DF_CLEAR_MAX {
        p.extend_from_slice(&ident.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
    } else {
        p.extend_from_slice(&[0, 0, 0x40, 0]);
    }
    p.extend_from_slice(&[ip[7] - 1, 6, 0, 0]);
    p.extend_from_slice(&src.0.octets());
    p.extend_from_slice(&dst.0.octets());
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&tcp);
    p
}

/// The IPv6 packet NAT64 must send for the server's TCP/IPv4 packet `ip`
/// ([`TcpSeg::ipv4`], no options) from `src`'s [`six`] twin to `dst`'s (RFC 7915 §4.1:
/// traffic class the TOS, flow label 0, hop limit the TTL − 1), the ports rewritten and
/// the TCP checksum computed in full.
pub fn translated46(ip: &[u8], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let len = usize::from(u16_at(ip, 2)).min(ip.len());
    let mut tcp = ip[20..len].to_vec();
    tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let c = tcp6_checksum(six(src.0), six(dst.0), &tcp);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x60 | (ip[1] >> 4), ip[1] << 4, 0, 0];
    p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[6, ip[8] - 1]);
    p.extend_from_slice(&six(src.0).octets());
    p.extend_from_slice(&six(dst.0).octets());
    p.extend_from_slice(&tcp);
    p
}

/// `ip` in an IPv6 Ethernet header from `src` to `dst`, without padding.
pub fn eth_ipv6(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    eth(dst, src, ETH_IPV6, ip)
}

/// The frame the balancer must send to real server `server` for the client's IPv6
/// packet `ip`, in `mode`; `local` is the Full-NAT local address and port (IPv4 plan,
/// unused by the other modes). DR: only the MACs change; NAT66: destination rewritten to
/// the server's twin and [`SERVER_PORT`], hop limit decremented; Full-NAT: the source to
/// `local`'s twin too (a data segment, so no TOA); tunnel: the packet with its hop limit
/// decremented inside [`ip6ip6`] from the back port's twin to the server's. Unpadded, as
/// [`eth_ipv6`].
pub fn to_server6(mode: ForwardMode, ip: &[u8], server: usize, local: Option<(Ipv4Addr, u16)>) -> Vec<u8> {
    let rs = (SERVERS[server], SERVER_PORT);
    let packet = match mode {
        ForwardMode::Dr => rewritten6(ip, None, None, false),
        ForwardMode::Nat => rewritten6(ip, None, Some(rs), true),
        ForwardMode::FullNat => {
            let local = local.expect("a Full-NAT flow knows its local address and port");
            rewritten6(ip, Some(local), Some(rs), true)
        }
        ForwardMode::Tunnel => ip6ip6(six(BACK_IP), six(rs.0), &rewritten6(ip, None, None, true)),
    };
    eth_ipv6(SERVER_MACS[server], BACK_MAC, &packet)
}

/// `inner` (an IPv6 packet) inside the outer IPv6 header RFC 2473 §3 and
/// `rvs_dataplane::xmit::tunnel6` specify: traffic class and flow label copied from the
/// inner header, payload length the inner packet's, next header 41, hop limit 64.
pub fn ip6ip6(outer_src: Ipv6Addr, outer_dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60 | (inner[0] & 0x0f), inner[1], inner[2], inner[3]];
    ip.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[41, 64]);
    ip.extend_from_slice(&outer_src.octets());
    ip.extend_from_slice(&outer_dst.octets());
    ip.extend_from_slice(inner);
    ip
}

/// Sets the traffic class and the 20-bit flow label of the IPv6 packet `ip` (no checksum
/// covers them).
pub fn set_class_and_label(ip: &mut [u8], class: u8, label: u32) {
    let w = (6u32 << 28) | (u32::from(class) << 20) | (label & 0xf_ffff);
    ip[..4].copy_from_slice(&w.to_be_bytes());
}

/// The 20-byte TOA option IPv6 Full-NAT puts right after the fixed TCP header of a
/// client's SYN and of the handshake's last ACK (DPVS's `tcpopt_ip6_addr`): kind 254,
/// length 20, the client's port, its 16-byte address (the [`six`] twin of `client`).
pub fn toa6(client: (Ipv4Addr, u16)) -> [u8; 20] {
    let mut o = [0; 20];
    o[0] = 254;
    o[1] = 20;
    o[2..4].copy_from_slice(&client.1.to_be_bytes());
    o[4..].copy_from_slice(&six(client.0).octets());
    o
}

/// A neighbour solicitation (RFC 4861 §4.3) from `who`'s [`six`] twin at `mac` for our
/// address `target`'s twin, to its solicited-node group, with the source link-layer
/// address option: the worker learns `who` from it (and answers with an advertisement).
pub fn neighbour_solicitation(who: Ipv4Addr, mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let (src, t) = (six(who), six(target));
    let o = t.octets();
    let group = Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]]);
    let mut msg = vec![135, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&o);
    msg.extend_from_slice(&[1, 1]);
    msg.extend_from_slice(&mac);
    let mut pseudo = Vec::with_capacity(40 + msg.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&group.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&msg);
    let c = csum(&pseudo);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[58, 255]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&group.octets());
    ip.extend_from_slice(&msg);
    eth([0x33, 0x33, 0xff, o[13], o[14], o[15]], mac, ETH_IPV6, &ip)
}

/// The IPv4 packet a router must forward for the TCP/IPv4 packet `ip` after moving its
/// source to `src` and/or destination to `dst` (address and port; `None` keeps the
/// field): TTL one lower, both checksums recomputed in full.
pub fn rewritten(ip: &[u8], src: Option<(Ipv4Addr, u16)>, dst: Option<(Ipv4Addr, u16)>) -> Vec<u8> {
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let mut p = ip[..total].to_vec();
    p[8] -= 1;
    let hl = usize::from(p[0] & 0x0f) * 4;
    if let Some((a, port)) = src {
        p[12..16].copy_from_slice(&a.octets());
        p[hl..hl + 2].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((a, port)) = dst {
        p[16..20].copy_from_slice(&a.octets());
        p[hl + 2..hl + 4].copy_from_slice(&port.to_be_bytes());
    }
    p[10] = 0;
    p[11] = 0;
    let c = csum(&p[..hl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let (s, d) = (ipv4_at(&p, 12), ipv4_at(&p, 16));
    let c = tcp_checksum(s, d, &p[hl..]);
    p[hl + 16..hl + 18].copy_from_slice(&c.to_be_bytes());
    p
}

/// `inner` inside the outer IPv4 header RFC 2003 §3.1 and `rvs_dataplane::xmit::tunnel`
/// specify: TOS, identification and DF copied from the inner header, TTL 64, protocol 4.
pub fn ipip(outer_src: Ipv4Addr, outer_dst: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    let total = (20 + inner.len()) as u16;
    let mut ip = vec![0x45, inner[1]];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&inner[4..6]);
    ip.extend_from_slice(&[inner[6] & 0x40, 0, 64, 4, 0, 0]);
    ip.extend_from_slice(&outer_src.octets());
    ip.extend_from_slice(&outer_dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(inner);
    ip
}

/// `ip` in an IPv4 Ethernet header from `src` to `dst`, without padding: a forwarded
/// frame as the data path sends it.
pub fn eth_ipv4(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETH_IPV4.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// The frame the balancer must send to real server `server` (an index in [`SERVERS`])
/// for the client's IPv4 packet `ip`, forwarded in `mode`; `local` is the Full-NAT local
/// address and port (unused by the other modes). Unpadded, as [`eth_ipv4`].
pub fn to_server(mode: ForwardMode, ip: &[u8], server: usize, local: Option<(Ipv4Addr, u16)>) -> Vec<u8> {
    let smac = SERVER_MACS[server];
    let rs = (SERVERS[server], SERVER_PORT);
    let packet = match mode {
        ForwardMode::Dr => rewritten(ip, None, None),
        ForwardMode::Tunnel => ipip(BACK_IP, rs.0, &rewritten(ip, None, None)),
        ForwardMode::Nat => rewritten(ip, None, Some(rs)),
        ForwardMode::FullNat => {
            let local = local.expect("a Full-NAT flow knows its local address and port");
            rewritten(ip, Some(local), Some(rs))
        }
    };
    eth_ipv4(smac, BACK_MAC, &packet)
}

/// The TCP/IPv4 packet `ip` (no IP options) with its sequence and/or acknowledgement
/// number replaced (`None` keeps the field) and its TCP checksum recomputed in full: the
/// SYN proxy's handshake segments and translated flows.
pub fn with_seq_ack(ip: &[u8], seq: Option<u32>, ack: Option<u32>) -> Vec<u8> {
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let mut p = ip[..total].to_vec();
    if let Some(v) = seq {
        p[24..28].copy_from_slice(&v.to_be_bytes());
    }
    if let Some(v) = ack {
        p[28..32].copy_from_slice(&v.to_be_bytes());
    }
    p[36] = 0;
    p[37] = 0;
    let c = tcp_checksum(ipv4_at(&p, 12), ipv4_at(&p, 16), &p[20..]);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// The TCP/IPv6 packet `ip` (no extension header) with its sequence and/or
/// acknowledgement number replaced (`None` keeps the field) and its TCP checksum
/// recomputed in full over the IPv6 pseudo-header: [`with_seq_ack`] for the IPv6 SYN
/// proxy's handshake segments and translated flows.
pub fn with_seq_ack6(ip: &[u8], seq: Option<u32>, ack: Option<u32>) -> Vec<u8> {
    let len = (40 + usize::from(u16_at(ip, 4))).min(ip.len());
    let mut p = ip[..len].to_vec();
    if let Some(v) = seq {
        p[44..48].copy_from_slice(&v.to_be_bytes());
    }
    if let Some(v) = ack {
        p[48..52].copy_from_slice(&v.to_be_bytes());
    }
    let c = tcp6_checksum(ipv6_at(&p, 8), ipv6_at(&p, 24), &p[40..]);
    p[56..58].copy_from_slice(&c.to_be_bytes());
    p
}

/// `ip` in an IPv4 Ethernet frame from `src` to `dst`, padded to the 60-byte minimum as
/// [`TcpSeg::frame`]: a frame as the harness sends it.
pub fn eth_frame(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    eth(dst, src, ETH_IPV4, ip)
}

/// The big-endian 32-bit value at byte `at` of `b`.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The IPv4 address at byte `at` of `b`.
pub fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The big-endian 16-bit value at byte `at` of `b`.
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A template for many SYNs that differ only in client address and port: writing one
/// into a buffer patches the varying fields and derives the checksums from partial sums
/// computed once, so the harness (which pays it on both sides of the comparison) stays
/// cheap. An IPv6 template varies the last four bytes of the source address (the client's
/// IPv4 twin, [`six`]) and has no IP header checksum.
#[derive(Debug, Clone)]
pub struct SynTemplate {
    frame: Vec<u8>,
    /// The IPv4 header's partial sum; `None` for IPv6 (no header checksum).
    ip_sum: Option<u32>,
    tcp_sum: u32,
    /// Offsets of the four varying address bytes, the source port and the TCP checksum.
    src_at: usize,
    sport_at: usize,
    tcp_csum_at: usize,
}

/// Offset of the IPv4 header checksum in a frame.
const IP_CSUM: usize = IP_AT + 10;

impl SynTemplate {
    /// SYNs (MSS 1460 option, 60-byte frames) from `client_mac` to `vip:VPORT` on the
    /// front port.
    pub fn new(client_mac: [u8; 6], vip: Ipv4Addr) -> Self {
        Self::build(client_mac, vip, false)
    }

    /// The IPv6 SYNs ([`TcpSeg::frame6`], MSS 1440, 78-byte frames) from the clients'
    /// [`six`] twins to `vip`'s twin, port `VPORT`.
    pub fn new6(client_mac: [u8; 6], vip: Ipv4Addr) -> Self {
        Self::build(client_mac, vip, true)
    }

    fn build(client_mac: [u8; 6], vip: Ipv4Addr, v6: bool) -> Self {
        let mss: u16 = if v6 { 1440 } else { 1460 };
        let [m0, m1] = mss.to_be_bytes();
        let seg = TcpSeg {
            src: (Ipv4Addr::UNSPECIFIED, 0),
            dst: (vip, VPORT),
            flags: TCP_SYN,
            seq: 0x0100_0000,
            options: vec![2, 4, m0, m1],
            payload: vec![],
        };
        let (mut frame, l4_at, src_at) = if v6 {
            (seg.frame6(FRONT_MAC, client_mac), L4_AT6, IP_AT + 8 + 12)
        } else {
            (seg.frame(FRONT_MAC, client_mac), IP_AT + 20, IP_AT + 12)
        };
        let tcp_csum_at = l4_at + 16;
        // Partial sums with the varying fields and the checksums zeroed.
        frame[tcp_csum_at..tcp_csum_at + 2].fill(0);
        let tcp_len = frame.len().min(l4_at + 24) - l4_at;
        let mut pseudo = Vec::new();
        let ip_sum = if v6 {
            pseudo.extend_from_slice(&frame[IP_AT + 8..IP_AT + 40]);
            pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
            None
        } else {
            frame[IP_CSUM..IP_CSUM + 2].fill(0);
            pseudo.extend_from_slice(&vip.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            Some(sum16(&frame[IP_AT..IP_AT + 20]))
        };
        let tcp_sum = fold(sum16(&pseudo) + sum16(&frame[l4_at..l4_at + tcp_len]));
        SynTemplate { frame, ip_sum, tcp_sum, src_at, sport_at: l4_at, tcp_csum_at }
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Always false (a frame is never empty); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Writes the SYN from `client:cport` into `out` (exactly [`SynTemplate::len`] bytes).
    #[inline(always)]
    pub fn write(&self, out: &mut [u8], client: Ipv4Addr, cport: u16) {
        out.copy_from_slice(&self.frame);
        let a = client.octets();
        out[self.src_at..self.src_at + 4].copy_from_slice(&a);
        out[self.sport_at..self.sport_at + 2].copy_from_slice(&cport.to_be_bytes());
        let hi = u32::from(u16::from_be_bytes([a[0], a[1]]));
        let lo = u32::from(u16::from_be_bytes([a[2], a[3]]));
        if let Some(ip_sum) = self.ip_sum {
            let ip = !(fold(ip_sum + hi + lo) as u16);
            out[IP_CSUM..IP_CSUM + 2].copy_from_slice(&ip.to_be_bytes());
        }
        let tcp = !(fold(self.tcp_sum + hi + lo + u32::from(cport)) as u16);
        out[self.tcp_csum_at..self.tcp_csum_at + 2].copy_from_slice(&tcp.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_distinct_and_recognised_as_many_as_the_largest_run_needs() {
        // 2^24 flows + 2^20 new connections, 64,512 local ports per address, plus one.
        let most = ((1usize << 24) + (1 << 20)).div_ceil(64_512) + 1;
        let all: Vec<Ipv4Addr> = (0..most as u16).map(local_addr).collect();
        let set: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len(), "local addresses repeat");
        assert_eq!(all[0], Ipv4Addr::new(10, 20, 0, 200), "the first 50 are unchanged");
        assert_eq!(all[49], Ipv4Addr::new(10, 20, 0, 249));
        assert!(all.iter().all(|&a| is_local_addr(a)));
        for a in [CLIENT_IP, VIP, BACK_IP, SERVERS[0], Ipv4Addr::new(10, 20, 0, 250), Ipv4Addr::new(10, 21, 0, 0)] {
            assert!(!is_local_addr(a), "{a}");
        }
    }

    #[test]
    fn tcp_frames_and_rewrites_verify() {
        let seg = TcpSeg {
            src: (CLIENT_IP, 40000),
            dst: (VIP, VPORT),
            flags: TCP_ACK | TCP_PSH,
            seq: 7,
            options: vec![],
            payload: b"abcdef".to_vec(),
        };
        let f = seg.frame(FRONT_MAC, CLIENT_MAC);
        assert_eq!(f.len(), 60);
        let ip = &f[IP_AT..];
        assert_eq!(csum(&ip[..20]), 0);
        assert_eq!(tcp_checksum(CLIENT_IP, VIP, &ip[20..46]), u16_at(ip, 36));
        let r = rewritten(ip, None, Some((SERVERS[0], SERVER_PORT)));
        assert_eq!((r.len(), r[8], ipv4_at(&r, 16), u16_at(&r, 22)), (46, 63, SERVERS[0], SERVER_PORT));
        assert_eq!(csum(&r[..20]), 0);
        assert_eq!(tcp_checksum(CLIENT_IP, SERVERS[0], &r[20..]), u16_at(&r, 36));
        let t = ipip(BACK_IP, SERVERS[1], &r);
        assert_eq!((t.len(), t[9], csum(&t[..20])), (66, 4, 0));
    }

    #[test]
    fn syn_template_matches_a_built_syn() {
        let t = SynTemplate::new(CLIENT_MAC, VIP);
        let mut out = vec![0; t.len()];
        let client = Ipv4Addr::new(172, 16, 3, 9);
        t.write(&mut out, client, 51234);
        let want = TcpSeg {
            src: (client, 51234),
            dst: (VIP, VPORT),
            flags: TCP_SYN,
            seq: 0x0100_0000,
            options: vec![2, 4, 0x05, 0xb4],
            payload: vec![],
        };
        assert_eq!(out, want.frame(FRONT_MAC, CLIENT_MAC));
    }

    #[test]
    fn ipv6_syn_template_matches_a_built_syn() {
        let t = SynTemplate::new6(CLIENT_MAC, VIP);
        let mut out = vec![0; t.len()];
        let client = Ipv4Addr::new(172, 20, 200, 9);
        t.write(&mut out, client, 4242);
        let want = TcpSeg {
            src: (client, 4242),
            dst: (VIP, VPORT),
            flags: TCP_SYN,
            seq: 0x0100_0000,
            options: vec![2, 4, 0x05, 0xa0],
            payload: vec![],
        };
        assert_eq!(out, want.frame6(FRONT_MAC, CLIENT_MAC));
        assert_eq!(out.len(), 78);
    }

    #[test]
    fn ipv6_frames_and_rewrites_verify() {
        assert_eq!(six(VIP), "2001:db8:4::a0a:64".parse::<Ipv6Addr>().unwrap());
        let seg = TcpSeg {
            src: (CLIENT_IP, 40000),
            dst: (VIP, VPORT),
            flags: TCP_ACK | TCP_PSH,
            seq: 7,
            options: vec![],
            payload: b"abcdef".to_vec(),
        };
        let f = seg.frame6(FRONT_MAC, CLIENT_MAC);
        assert_eq!((f.len(), u16_at(&f, 12), f[IP_AT + 6], f[IP_AT + 7]), (80, 0x86dd, 6, SEND_TTL));
        let ip = &f[IP_AT..];
        // A correct checksum sums to zero with the pseudo-header (checked from scratch).
        let mut pseudo = six(CLIENT_IP).octets().to_vec();
        pseudo.extend_from_slice(&six(VIP).octets());
        pseudo.extend_from_slice(&[0, 0, 0, 26, 0, 0, 0, 6]);
        pseudo.extend_from_slice(&ip[40..]);
        assert_eq!(csum(&pseudo), 0);
        let r = rewritten6(ip, None, Some((SERVERS[0], SERVER_PORT)), true);
        assert_eq!((r.len(), r[7], ipv6_at(&r, 24), u16_at(&r, 42)), (66, SEND_TTL - 1, six(SERVERS[0]), SERVER_PORT));
        assert_eq!(tcp6_checksum(six(CLIENT_IP), six(SERVERS[0]), &r[40..]), u16_at(&r, 56));
        let dr = to_server6(ForwardMode::Dr, ip, 1, None);
        assert_eq!((&dr[..6], &dr[IP_AT..]), (&SERVER_MACS[1][..], ip));
        let ns = neighbour_solicitation(GW_IP, GW_MAC, FRONT_IP);
        assert_eq!((ns.len(), ns[IP_AT + 40], ns[IP_AT + 7]), (86, 135, 255));
    }

    #[test]
    fn ipv6_tunnel_and_fullnat_frames_verify() {
        assert_eq!(four(six(SERVERS[2])), Some(SERVERS[2]));
        assert_eq!(four("2001:db8:5::a14:b".parse().unwrap()), None);
        let seg = TcpSeg {
            src: (CLIENT_IP, 40000),
            dst: (VIP, VPORT),
            flags: TCP_ACK | TCP_PSH,
            seq: 7,
            options: vec![],
            payload: b"abcdef".to_vec(),
        };
        let mut ip = seg.ipv6();
        set_class_and_label(&mut ip, 0xb8, 0x1_2345);
        assert_eq!(&ip[..4], &[0x6b, 0x81, 0x23, 0x45]);

        // Tunnel: 40 bytes of outer header, then the packet with only its hop limit lower.
        let t = to_server6(ForwardMode::Tunnel, &ip, 2, None);
        assert_eq!((&t[..6], &t[6..12], u16_at(&t, 12)), (&SERVER_MACS[2][..], &BACK_MAC[..], 0x86dd));
        let (outer, inner) = t[IP_AT..].split_at(40);
        assert_eq!(&outer[..4], &ip[..4], "traffic class and flow label copied");
        assert_eq!((usize::from(u16_at(outer, 4)), outer[6], outer[7]), (ip.len(), 41, 64));
        assert_eq!((ipv6_at(outer, 8), ipv6_at(outer, 24)), (six(BACK_IP), six(SERVERS[2])));
        assert_eq!(inner[7], SEND_TTL - 1);
        assert_eq!((&inner[..7], &inner[8..]), (&ip[..7], &ip[8..]), "nothing else of the inner packet changes");

        // Full-NAT: both ends rewritten, hop limit lower, checksum right from scratch.
        let local = (local_addr(3), 1025);
        let f = to_server6(ForwardMode::FullNat, &ip, 0, Some(local));
        let p = &f[IP_AT..];
        assert_eq!((p.len(), p[7]), (ip.len(), SEND_TTL - 1));
        assert_eq!((ipv6_at(p, 8), u16_at(p, 40)), (six(local.0), local.1));
        assert_eq!((ipv6_at(p, 24), u16_at(p, 42)), (six(SERVERS[0]), SERVER_PORT));
        let mut pseudo = six(local.0).octets().to_vec();
        pseudo.extend_from_slice(&six(SERVERS[0]).octets());
        pseudo.extend_from_slice(&[0, 0, 0, 26, 0, 0, 0, 6]);
        pseudo.extend_from_slice(&p[40..]);
        assert_eq!(csum(&pseudo), 0);

        let o = toa6((CLIENT_IP, 40000));
        assert_eq!((o[0], o[1], u16_at(&o, 2)), (254, 20, 40000));
        assert_eq!(ipv6_at(&o, 4), six(CLIENT_IP));
    }

    #[test]
    fn checksums_verify_and_the_bad_one_does_not() {
        let f = echo_request();
        assert_eq!(f.len(), 98);
        assert_eq!(csum(&f[14..34]), 0, "IPv4 header checksum");
        assert_eq!(csum(&f[34..]), 0, "ICMP checksum");
        assert_eq!(csum(&echo_reply()[14..34]), 0);
        assert_ne!(csum(&echo_request_bad_ip_checksum()[14..34]), 0);
        assert_eq!(arp_request().len(), 60);
        assert_eq!(arp_reply().len(), 60);
    }
}
