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
//! Contract: `frame` is the frame `layout` was parsed from ([`crate::view6::L4View6`]);
//! every access stays inside the headers the layout vouches for.

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
mod tests {
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
}
