//! ICMPv6 errors rvs generates (RFC 4443): time exceeded when a packet it routes (NAT66)
//! has no hop left, packet too big when one does not fit the egress port's MTU (IPv6
//! routers never fragment, RFC 8200 §5). The IPv6 counterpart of
//! [`super::icmp_err`]'s generating half.
//!
//! [`time_exceeded`] and [`packet_too_big`] turn the offending frame **in place** into
//! the error for its sender, with no allocation:
//!
//! ```text
//! before: | Ethernet 14 | IPv6 40 | payload ...                                   |
//! after:  | Ethernet 14 | new IPv6 40 | ICMPv6 8 | offending packet, cut to fit 1280 |
//! ```
//!
//! * The quote is as much of the offending packet (IPv6 header as the buffer holds it at
//!   the call, and its payload) as fits without the error exceeding the IPv6 minimum MTU
//!   of 1280 bytes (RFC 4443 §2.4 (c)): at most [`MAX_QUOTE`] bytes. The frame is grown
//!   at the tail for a short packet (`set_len`) or trimmed, and the quote moved with one
//!   `copy_within`.
//! * New IPv6 header: traffic class and flow label 0, next header ICMPv6, hop limit
//!   [`ERROR_HOP_LIMIT`], source `our_addr` (for rvs the VIP the client talked to), the
//!   destination the offending packet's source.
//! * ICMPv6: type and code, the MTU for packet too big (zero otherwise), and the checksum
//!   computed in full over the RFC 8200 pseudo-header (the message is fresh and rare).
//! * Ethernet MACs are left for the neighbour layer; the caller routes the error.
//! * No error about (RFC 4443 §2.4 (e)): an ICMPv6 error message (types below 128), a
//!   non-first fragment (its sender cannot match it; rvs also sends none about a first
//!   fragment's later pieces), a packet to a multicast address or sent to a link-layer
//!   multicast or broadcast address, or a packet whose source is not one node's unicast
//!   address (unspecified, loopback, multicast). These return an error with the buffer
//!   unchanged; the caller drops the packet and counts it. Rate limiting is the caller's
//!   ([`super::icmp_rate::IcmpRateLimit`], shared with IPv4's errors).
//!
//! Every function validates before it writes: on `Err` the buffer is unchanged, and no
//! input makes them panic.

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use crate::view::L3_OFFSET;
use crate::wire::icmpv6::{Icmpv6Packet, ICMPV6_PACKET_TOO_BIG, ICMPV6_TIME_EXCEEDED};
use crate::wire::{Ipv6Packet, IPPROTO_ICMPV6};

/// The IPv6 minimum link MTU (RFC 8200 §5): no error rvs sends is longer.
pub const MIN_MTU: usize = 1280;
/// Length of the new IPv6 header and the ICMPv6 header in front of the quote.
const HEAD: usize = 40 + 8;
/// The most bytes of the offending packet an error quotes.
pub const MAX_QUOTE: usize = MIN_MTU - HEAD;
/// Hop limit of the errors rvs sends (Linux's default).
pub const ERROR_HOP_LIMIT: u8 = 64;
/// Code of time exceeded: hop limit exceeded in transit.
const HOP_LIMIT_EXCEEDED: u8 = 0;

/// Why an ICMPv6 error was not generated. The buffer is unchanged in every case; the
/// caller counts the offending packet under its own reason and the error as
/// `icmp6_not_sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Icmp6ErrError {
    /// The frame does not hold a valid IPv6 packet (with a walkable extension-header
    /// chain) after a 14-byte Ethernet header.
    #[error("malformed IPv6 packet")]
    Malformed,
    /// No error is sent about an ICMPv6 error message.
    #[error("no ICMPv6 error about an ICMPv6 error")]
    AboutIcmpError,
    /// No error is sent about a non-first fragment.
    #[error("no ICMPv6 error about a non-first fragment")]
    AboutFragment,
    /// No error to a source that is not one node's unicast address, nor about a packet
    /// to a multicast address (IPv6 or link layer).
    #[error("no ICMPv6 error for a non-unicast source or destination")]
    NotUnicast,
    /// The buffer has too little tailroom to hold the error.
    #[error("no room in the buffer for the ICMPv6 error")]
    NoRoom,
}

/// Turns the offending packet in `buf` in place into an ICMPv6 time exceeded, hop limit
/// exceeded in transit (type 3 code 0), from `our_addr` to the packet's source, which it
/// returns (where the error goes). See the module docs.
///
/// # Errors
///
/// [`Icmp6ErrError`]: the RFC 4443 §2.4 (e) suppressions, a malformed frame, no room.
pub fn time_exceeded<B: PacketBuf>(buf: &mut B, our_addr: Ipv6Addr) -> Result<Ipv6Addr, Icmp6ErrError> {
    build_error(buf, our_addr, ICMPV6_TIME_EXCEEDED, HOP_LIMIT_EXCEEDED, 0)
}

/// Turns the offending packet in `buf` in place into an ICMPv6 packet too big (type 2
/// code 0) carrying `mtu`, the egress link's MTU (RFC 4443 §3.2), from `our_addr` to the
/// packet's source, which it returns.
///
/// # Errors
///
/// As [`time_exceeded`].
pub fn packet_too_big<B: PacketBuf>(buf: &mut B, our_addr: Ipv6Addr, mtu: u32) -> Result<Ipv6Addr, Icmp6ErrError> {
    build_error(buf, our_addr, ICMPV6_PACKET_TOO_BIG, 0, mtu)
}

/// Whether `a` may be the source of a packet rvs answers with an error.
fn is_unicast_node(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}

fn build_error<B: PacketBuf>(
    buf: &mut B,
    our_addr: Ipv6Addr,
    icmp_type: u8,
    icmp_code: u8,
    rest_of_header: u32,
) -> Result<Ipv6Addr, Icmp6ErrError> {
    // Validate and read everything first; write nothing until all checks pass.
    let frame = buf.data();
    let l3 = frame.get(L3_OFFSET..).ok_or(Icmp6ErrError::Malformed)?;
    let ip = Ipv6Packet::new_checked(l3).map_err(|_| Icmp6ErrError::Malformed)?;
    let upper = ip.upper_layer().map_err(|_| Icmp6ErrError::Malformed)?;
    if !upper.has_l4_header() {
        return Err(Icmp6ErrError::AboutFragment);
    }
    // RFC 4443 §2.1: types 0-127 are errors (unknown ones included).
    if upper.protocol == IPPROTO_ICMPV6 && ip.payload().get(upper.offset).is_none_or(|&t| t < 128) {
        return Err(Icmp6ErrError::AboutIcmpError);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let eth_multicast = frame[0] & 0x01 != 0; // group bit of the destination MAC
    if !is_unicast_node(src) || dst.is_multicast() || eth_multicast {
        return Err(Icmp6ErrError::NotUnicast);
    }
    let quote_len = (40 + ip.payload().len()).min(MAX_QUOTE);
    let new_len = L3_OFFSET + HEAD + quote_len;
    if !buf.set_len(new_len) {
        return Err(Icmp6ErrError::NoRoom);
    }
    // The quote's source (L3_OFFSET..L3_OFFSET + quote_len) is below new_len, so it
    // survived set_len; copy_within handles the overlap.
    let frame = buf.data_mut();
    frame.copy_within(L3_OFFSET..L3_OFFSET + quote_len, L3_OFFSET + HEAD);
    let (head, icmp) = frame[L3_OFFSET..].split_at_mut(40);
    let mut ip = Ipv6Packet::new_unchecked(head);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    // At most 8 + 1232: fits a u16.
    ip.set_payload_len((8 + quote_len) as u16);
    ip.set_next_header(IPPROTO_ICMPV6);
    ip.set_hop_limit(ERROR_HOP_LIMIT);
    ip.set_src_addr(our_addr);
    ip.set_dst_addr(src);
    let mut icmp = Icmpv6Packet::new_unchecked(icmp);
    icmp.set_msg_type(icmp_type);
    icmp.set_code(icmp_code);
    icmp.set_rest_of_header(rest_of_header);
    icmp.fill_checksum(our_addr, src);
    Ok(src)
}

#[cfg(test)]
mod tests {
    //! Golden frames: the ICMPv6 checksums below were computed outside rvs (python3,
    //! RFC 1071 over the RFC 8200 pseudo-header), not with this code.
    use super::*;
    use rvs_drivers::mem::MemBuf;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Ethernet (to 02:..:01 from 02:..:02) + IPv6 from 2001:db8:10::2 to
    /// 2001:db8:10::100, next header `nh`, hop limit `hl`, `payload`.
    fn frame(nh: u8, hl: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[nh, hl]);
        f.extend_from_slice(&a("2001:db8:10::2").octets());
        f.extend_from_slice(&a("2001:db8:10::100").octets());
        f.extend_from_slice(payload);
        f
    }

    fn buf(f: &[u8]) -> MemBuf {
        MemBuf::from_frame(f)
    }

    /// The 8-byte UDP datagram 5000 → 53 with "hi!!" (checksum field as sent: 0x1234).
    fn udp() -> Vec<u8> {
        vec![0x13, 0x88, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x34, b'h', b'i', b'!', b'!']
    }

    /// The error rvs must build: from the VIP to the client, quoting `quote`.
    fn error(ty: u8, rest: u32, csum: u16, quote: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd, 0x60, 0, 0, 0];
        f.extend_from_slice(&((8 + quote.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[58, 64]);
        f.extend_from_slice(&a("2001:db8:10::100").octets());
        f.extend_from_slice(&a("2001:db8:10::2").octets());
        f.extend_from_slice(&[ty, 0]);
        f.extend_from_slice(&csum.to_be_bytes());
        f.extend_from_slice(&rest.to_be_bytes());
        f.extend_from_slice(quote);
        f
    }

    #[test]
    fn time_exceeded_golden() {
        let f = frame(17, 1, &udp());
        let mut b = buf(&f);
        assert_eq!(time_exceeded(&mut b, a("2001:db8:10::100")), Ok(a("2001:db8:10::2")));
        assert_eq!(b.data(), &error(3, 0, 0xff85, &f[14..])[..]);
    }

    #[test]
    fn packet_too_big_quotes_at_most_1232_bytes() {
        let mut p = udp();
        p.resize(1452, 0xa5);
        let f = frame(17, 64, &p);
        let mut b = buf(&f);
        assert_eq!(packet_too_big(&mut b, a("2001:db8:10::100"), 1400), Ok(a("2001:db8:10::2")));
        let want = error(2, 1400, 0x2ccf, &f[14..14 + MAX_QUOTE]);
        assert_eq!(b.data().len(), 14 + MIN_MTU);
        assert_eq!(b.data(), &want[..]);
    }

    #[test]
    fn suppressed_and_malformed_leave_the_buffer_unchanged() {
        let vip = a("2001:db8:10::100");
        let cases: Vec<(Vec<u8>, Icmp6ErrError)> = vec![
            // An ICMPv6 error (destination unreachable) and an unknown type below 128.
            (frame(58, 1, &[1, 4, 0, 0, 0, 0, 0, 0]), Icmp6ErrError::AboutIcmpError),
            (frame(58, 1, &[100, 0, 0, 0, 0, 0, 0, 0]), Icmp6ErrError::AboutIcmpError),
            // A non-first fragment.
            (frame(44, 1, &[17, 0, 0, 8, 0, 0, 0, 1, 0xff, 0xff]), Icmp6ErrError::AboutFragment),
            // Cut inside the fixed header; a chain the walk refuses (ESP).
            (frame(17, 1, &udp())[..30].to_vec(), Icmp6ErrError::Malformed),
            (frame(50, 1, &[0; 16]), Icmp6ErrError::Malformed),
        ];
        for (f, want) in cases {
            let mut b = buf(&f);
            assert_eq!(time_exceeded(&mut b, vip), Err(want));
            assert_eq!(b.data(), &f[..]);
        }
        // Multicast destination, link-layer multicast, unspecified / multicast source.
        let mut f = frame(17, 1, &udp());
        f[14 + 24] = 0xff;
        let mut m = frame(17, 1, &udp());
        m[0] = 0x33;
        let mut u = frame(17, 1, &udp());
        u[14 + 8..14 + 24].fill(0);
        let mut s = frame(17, 1, &udp());
        s[14 + 8] = 0xff;
        for f in [f, m, u, s] {
            let mut b = buf(&f);
            assert_eq!(packet_too_big(&mut b, vip, 1280), Err(Icmp6ErrError::NotUnicast));
            assert_eq!(b.data(), &f[..]);
        }
        // An echo request and a first fragment are answered.
        let mut b = buf(&frame(58, 1, &[128, 0, 0, 0, 0, 0, 0, 0]));
        assert!(time_exceeded(&mut b, vip).is_ok());
        let mut first = vec![17, 0, 0, 1, 0, 0, 0, 1];
        first.extend(udp());
        let mut b = buf(&frame(44, 1, &first));
        assert!(time_exceeded(&mut b, vip).is_ok());
        // No tailroom for a short packet.
        let f = frame(17, 1, &udp());
        let mut b = MemBuf::with_room(0, f.len());
        assert!(b.set_len(f.len()));
        b.data_mut().copy_from_slice(&f);
        assert_eq!(time_exceeded(&mut b, vip), Err(Icmp6ErrError::NoRoom));
        assert_eq!(b.data(), &f[..]);
    }
}
