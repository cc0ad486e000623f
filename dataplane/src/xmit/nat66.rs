//! NAT66 rewrites (stateful one-to-one address and port translation of IPv6, as IPVS's
//! masquerading does for IPv4): inbound, the destination becomes the real server;
//! replies, the source becomes the VIP again.
//!
//! IPv6 has no header checksum: only the TCP/UDP checksum changes, incrementally (RFC
//! 1624), for the address in its pseudo-header and the port in its header. The hop limit
//! is decremented like a router's (RFC 8200 §3); the caller has refused a packet whose
//! hop limit is 1 or 0 (`ip6_hop_limit`) before calling. A UDP checksum that comes out
//! as 0 is sent as 0xffff (RFC 8200 §8.1: zero is not a valid IPv6 UDP checksum).
//!
//! Fragments (the fragment path, `LbEngine::handle_fragment6`): a first fragment is
//! rewritten by [`inbound`] / [`reply`] like a whole packet, from its
//! [`crate::view6::L4View6::from_first_fragment`] layout; a later fragment by
//! [`inbound_later`] / [`reply_later`], address and hop limit only. That is enough, with no
//! reassembly: the TCP/UDP checksum sits in the first fragment and covers the
//! pseudo-header (both addresses, the *datagram's* upper-layer length, next header) and
//! every byte of the datagram, in all its fragments. NAT66 changes only the address (in
//! every fragment, so that the receiver's reassembly and pseudo-header see the new one)
//! and the port (in the first fragment's L4 header); the later fragments' data and the
//! upper-layer length are unchanged. So the sum over the translated datagram differs from
//! the original's by exactly the address and port deltas, which the first fragment's
//! incremental update (RFC 1624) puts into the checksum field. The last fragment need
//! not have come yet, nor ever be seen by the same code.
//!
//! Contract: `frame` is the frame `layout` was parsed from ([`crate::view6::L4View6`]);
//! every access stays inside the headers the layout vouches for. The `_later` functions
//! touch only the fixed header, and do nothing to a frame too short to hold one.

use std::net::Ipv6Addr;

use crate::types::L4Proto;
use crate::view::L3_OFFSET;
use crate::view6::Layout6;
use crate::wire::checksum::{delta16, delta_addr_v6, update_delta};

/// Offset of the hop limit in the frame.
const HOP_LIMIT: usize = L3_OFFSET + 7;
/// Offset of the source address in the frame.
const SRC: usize = L3_OFFSET + 8;
/// Offset of the destination address in the frame.
const DST: usize = L3_OFFSET + 24;

/// Which end of the packet a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Source,
    Destination,
}

/// Inbound NAT66: destination address and port → the real server's, hop limit − 1.
pub fn inbound(frame: &mut [u8], layout: &Layout6, server: Ipv6Addr, sport: u16) {
    rewrite(frame, layout, End::Destination, server, sport);
}

/// A NAT66 reply: source address and port → the VIP's, hop limit − 1.
pub fn reply(frame: &mut [u8], layout: &Layout6, vip: Ipv6Addr, vport: u16) {
    rewrite(frame, layout, End::Source, vip, vport);
}

/// Inbound NAT66 of a later fragment (no L4 header): destination address → the real
/// server's, hop limit − 1 (module docs).
pub fn inbound_later(frame: &mut [u8], server: Ipv6Addr) {
    rewrite_later(frame, End::Destination, server);
}

/// NAT66 of a later fragment of a reply: source address → the VIP, hop limit − 1.
pub fn reply_later(frame: &mut [u8], vip: Ipv6Addr) {
    rewrite_later(frame, End::Source, vip);
}

fn rewrite_later(frame: &mut [u8], end: End, addr: Ipv6Addr) {
    if frame.len() < DST + 16 {
        return;
    }
    let at = match end {
        End::Source => SRC,
        End::Destination => DST,
    };
    frame[at..at + 16].copy_from_slice(&addr.octets());
    frame[HOP_LIMIT] = frame[HOP_LIMIT].saturating_sub(1);
}

fn rewrite(frame: &mut [u8], layout: &Layout6, end: End, addr: Ipv6Addr, port: u16) {
    let (a_at, p_at) = match end {
        End::Source => (SRC, layout.l4_offset()),
        End::Destination => (DST, layout.l4_offset() + 2),
    };
    let mut old = [0u8; 16];
    old.copy_from_slice(&frame[a_at..a_at + 16]);
    let old_addr = Ipv6Addr::from(old);
    let old_port = u16::from_be_bytes([frame[p_at], frame[p_at + 1]]);
    frame[a_at..a_at + 16].copy_from_slice(&addr.octets());
    frame[p_at..p_at + 2].copy_from_slice(&port.to_be_bytes());
    frame[HOP_LIMIT] = frame[HOP_LIMIT].saturating_sub(1);
    let c_at = layout.l4_offset()
        + match layout.l4() {
            L4Proto::Tcp => 16,
            L4Proto::Udp => 6,
        };
    let csum = u16::from_be_bytes([frame[c_at], frame[c_at + 1]]);
    let mut new = update_delta(csum, delta_addr_v6(old_addr, addr) + delta16(old_port, port));
    if layout.l4() == L4Proto::Udp && new == 0 {
        new = 0xffff;
    }
    frame[c_at..c_at + 2].copy_from_slice(&new.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    //! Golden packets: the checksums below were computed outside rvs (python3, RFC 1071
    //! over the RFC 8200 pseudo-header) for the packets as they must leave.
    use super::*;
    use crate::view6::L4View6;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Ethernet + IPv6 (hop limit 64) + a TCP SYN (seq 0x01020304, window 0xffff) or a
    /// UDP datagram, with `csum` in the checksum field.
    fn frame(udp: bool, src: (&str, u16), dst: (&str, u16), csum: u16, data: &[u8]) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&src.1.to_be_bytes());
        l4.extend_from_slice(&dst.1.to_be_bytes());
        if udp {
            l4.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&csum.to_be_bytes());
        } else {
            l4.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff]);
            l4.extend_from_slice(&csum.to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        }
        l4.extend_from_slice(data);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        f.extend_from_slice(&[if udp { 17 } else { 6 }, 64]);
        f.extend_from_slice(&a(src.0).octets());
        f.extend_from_slice(&a(dst.0).octets());
        f.extend_from_slice(&l4);
        f
    }

    #[test]
    fn inbound_tcp_golden() {
        let mut f = frame(false, ("2001:db8:10::2", 40000), ("2001:db8:10::100", 8080), 0xd947, b"hello v6");
        let v = L4View6::parse(&f).unwrap();
        inbound(&mut f, v.layout(), a("2001:db8:20::11"), 80);
        let mut want = frame(false, ("2001:db8:10::2", 40000), ("2001:db8:20::11", 80), 0xf966, b"hello v6");
        want[L3_OFFSET + 7] = 63;
        assert_eq!(f, want);
    }

    #[test]
    fn reply_udp_golden() {
        let mut f = frame(true, ("2001:db8:20::11", 5353), ("2001:db8:10::2", 5000), 0x2052, b"answer!");
        let v = L4View6::parse(&f).unwrap();
        reply(&mut f, v.layout(), a("2001:db8:10::100"), 53);
        let mut want = frame(true, ("2001:db8:10::100", 53), ("2001:db8:10::2", 5000), 0x3427, b"answer!");
        want[L3_OFFSET + 7] = 63;
        assert_eq!(f, want);
    }

    /// An Ethernet + IPv6 fragment (hop limit `hl`, fragment header: next UDP, ident 7,
    /// `offset`, `more`) carrying `body` (Full-NAT66's fragment tests use it too).
    pub(crate) fn fragment(src: &str, dst: &str, hl: u8, offset: u16, more: bool, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[44, hl]);
        f.extend_from_slice(&a(src).octets());
        f.extend_from_slice(&a(dst).octets());
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    /// A UDP datagram 2001:db8:10::2:5000 → VIP:53 of 32 data bytes, cut in two
    /// fragments (UDP header and 16 bytes; 16 bytes at offset 24), through inbound NAT66
    /// to 2001:db8:20::11:5353. The checksums are the whole datagram's, before (0xec9a)
    /// and after (0xd8c5), computed with python3 over the RFC 8200 pseudo-header; the
    /// first fragment's incremental update must land on the whole datagram's sum.
    #[test]
    fn inbound_fragments_golden() {
        let data = b"0123456789abcdefghijklmnopqrstuv";
        let head = |dport: u16, csum: u16| {
            let mut h = Vec::new();
            for w in [5000u16, dport, 40, csum] {
                h.extend_from_slice(&w.to_be_bytes());
            }
            h.extend_from_slice(&data[..16]);
            h
        };
        let mut first = fragment("2001:db8:10::2", "2001:db8:10::100", 64, 0, true, &head(53, 0xec9a));
        let mut later = fragment("2001:db8:10::2", "2001:db8:10::100", 64, 24, false, &data[16..]);
        let ip = crate::wire::Ipv6Packet::new_checked(&first[L3_OFFSET..]).unwrap();
        let v = L4View6::from_first_fragment(&ip, &ip.upper_layer().unwrap()).unwrap();
        inbound(&mut first, v.layout(), a("2001:db8:20::11"), 5353);
        inbound_later(&mut later, a("2001:db8:20::11"));
        assert_eq!(first, fragment("2001:db8:10::2", "2001:db8:20::11", 63, 0, true, &head(5353, 0xd8c5)));
        assert_eq!(later, fragment("2001:db8:10::2", "2001:db8:20::11", 63, 24, false, &data[16..]));
        // The reply way: the source becomes the VIP, hop limit − 1, nothing else.
        reply_later(&mut later, a("2001:db8:10::100"));
        assert_eq!(later, fragment("2001:db8:10::100", "2001:db8:20::11", 62, 24, false, &data[16..]));
        // Too short to hold a fixed header: left alone.
        let mut short = [0u8; 20];
        inbound_later(&mut short, a("2001:db8:20::11"));
        assert_eq!(short, [0u8; 20]);
    }
}
