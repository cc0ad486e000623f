//! IPv6 packet builders for the IPv6 tests (ND, echo, services), written independently of
//! `rvs_dataplane::wire`: headers pushed byte by byte and checksums computed in full over
//! the RFC 8200 pseudo-header with the tests' RFC 1071 [`csum`](super::csum).

use std::net::Ipv6Addr;

use rvs_dataplane::types::L4Proto;

use super::csum;

/// The IPv6 ethertype.
pub const ETH_IPV6: u16 = 0x86dd;

/// `s` as an IPv6 address (a test constant).
pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// An IPv6 packet: header (hop limit `hl`, next header `nh`) and `payload`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[nh, hl]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// The checksum of `seg` (protocol `proto`) over the IPv6 pseudo-header.
pub fn csum6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, proto]);
    pseudo.extend_from_slice(seg);
    csum(&pseudo)
}

/// An ICMPv6 packet (hop limit `hl`) carrying `msg`, its checksum filled in.
pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, hl: u8, mut msg: Vec<u8>) -> Vec<u8> {
    msg[2] = 0;
    msg[3] = 0;
    let c = csum6(src, dst, 58, &msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 58, hl, &msg)
}

/// An NS or NA (`ty` 135/136) for `target` with `flags` and one link-layer option.
pub fn nd_msg(ty: u8, flags: u8, target: Ipv6Addr, opt: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[opt, 1]);
    m.extend_from_slice(&mac);
    m
}

/// The solicited-node group of `target` and its multicast MAC.
pub fn solicited(target: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = target.octets();
    let group = Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]]);
    (group, [0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

/// A neighbour solicitation from `who` at `mac` for our address `target`, to its
/// solicited-node group: the worker learns `who` from it.
pub fn ns_from(who: Ipv6Addr, mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let (group, gmac) = solicited(target);
    super::eth(gmac, mac, ETH_IPV6, &icmp6(who, group, 255, nd_msg(135, 0, target, 1, mac)))
}

/// The ACK flag, which [`l4_with_options`] looks at to fill in the acknowledgement.
const ACK: u8 = 0x10;

/// A TCP segment (sequence 0x01020304, acknowledgement 0x0a0b0c0d when `flags` has ACK,
/// window 0xffff, `opts` as its options, then `data`) or a UDP datagram carrying `data`,
/// its checksum computed in full over the IPv6 pseudo-header (UDP's 0 sent as 0xffff).
pub fn l4_with_options(
    proto: L4Proto,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    flags: u8,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&src.1.to_be_bytes());
    s.extend_from_slice(&dst.1.to_be_bytes());
    let (nh, at) = match proto {
        L4Proto::Tcp => {
            s.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            s.extend_from_slice(&(if flags & ACK != 0 { 0x0a0b_0c0du32 } else { 0 }).to_be_bytes());
            s.extend_from_slice(&[(((20 + opts.len()) / 4) << 4) as u8, flags, 0xff, 0xff, 0, 0, 0, 0]);
            s.extend_from_slice(opts);
            (6, 16)
        }
        L4Proto::Udp => {
            s.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            (17, 6)
        }
    };
    s.extend_from_slice(data);
    let c = csum6(src.0, dst.0, nh, &s);
    let c = if c == 0 && nh == 17 { 0xffff } else { c };
    s[at..at + 2].copy_from_slice(&c.to_be_bytes());
    s
}

/// [`l4_with_options`] without TCP options.
pub fn l4(proto: L4Proto, src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8, data: &[u8]) -> Vec<u8> {
    l4_with_options(proto, src, dst, flags, &[], data)
}

/// [`l4_with_options`] in an IPv6 packet with hop limit `hl`.
#[allow(clippy::too_many_arguments)]
pub fn pkt_with_options(
    proto: L4Proto,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    flags: u8,
    hl: u8,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let nh = if proto == L4Proto::Tcp { 6 } else { 17 };
    ipv6(src.0, dst.0, nh, hl, &l4_with_options(proto, src, dst, flags, opts, data))
}

/// [`l4`] in an IPv6 packet with hop limit `hl`.
pub fn pkt(proto: L4Proto, src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8, hl: u8, data: &[u8]) -> Vec<u8> {
    pkt_with_options(proto, src, dst, flags, hl, &[], data)
}

/// Checks the L4 checksum of an IPv6 frame (Ethernet header first, no extension header)
/// from scratch, pseudo-header and all.
pub fn assert_l4_checksum(frame: &[u8]) {
    let ip = &frame[14..];
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
    assert_eq!(csum6(src, dst, ip[6], &ip[40..]), 0, "L4 checksum of {frame:02x?}");
}

/// The IPv6 TOA option as DPVS writes it: kind 254, length 20, port, address.
pub fn toa6(client: (Ipv6Addr, u16)) -> Vec<u8> {
    let mut o = vec![254, 20];
    o.extend_from_slice(&client.1.to_be_bytes());
    o.extend_from_slice(&client.0.octets());
    o
}
