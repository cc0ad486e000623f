//! IPv6-in-IPv6 tunnel mode (RFC 2473): the client's IPv6 packet, inside an outer IPv6
//! header to the real server, which decapsulates it and answers the client directly (as
//! IPIP does for IPv4, [`super::tunnel`]). Only IPv6 in IPv6: an IPv6 service's tunnel
//! servers are IPv6 (the service table refuses a mix of families), so neither IPv4 in IPv6
//! nor IPv6 in IPv4 is built.
//!
//! # Contract
//!
//! [`encap`] takes an Ethernet frame holding an IPv6 packet of `inner_len` bytes (the
//! receive-side parse's [`Layout6::ip_len`](crate::view6::Layout6::ip_len): the header is
//! not validated again; the caller has already decremented the inner hop limit, as a
//! router forwarding into a tunnel does, RFC 2473 §3.1). It inserts a 40-byte outer header
//! between the Ethernet header and the inner packet, inside the buffer: `prepend(40)` and
//! a 14-byte `copy_within` of the Ethernet header to the new front. Nothing is allocated;
//! the inner packet is not touched. Ethernet padding after the inner packet is trimmed
//! first. The MACs are left for the neighbour layer.
//!
//! The outer header, as RFC 2473 §3 and §6 and LVS's `ip_vs_tunnel_xmit_v6` build it:
//!
//! | field | value |
//! | --- | --- |
//! | version | 6 |
//! | traffic class | copied from the inner header (RFC 2473 §6.5, RFC 6040's normal mode for ECN) |
//! | flow label | copied from the inner header, so the flow's packets stay one flow on the way |
//! | payload length | the inner packet's length |
//! | next header | 41 (IPv6) |
//! | hop limit | [`OUTER_HOP_LIMIT`] (64, as [`super::tunnel::OUTER_TTL`]) |
//! | source / destination | the caller's `outer_src` (an address of ours on the server's link) / `outer_dst` (the server) |
//!
//! ## MTU: [`encap`] never fragments
//!
//! An IPv6 router does not fragment (RFC 8200 §5), and rvs forwarding into the tunnel is
//! one: when the outer packet (inner + 40) would exceed `mtu`, [`encap`] returns
//! [`Tunnel6Error::TooBig`] with the largest inner packet that fits (never below the IPv6
//! minimum MTU, 1280, as RFC 8201 §4 has a host take no less), the buffer unchanged, and
//! the caller drops the packet and counts it (`tunnel_too_big`).
//!
//! Every error leaves the buffer unchanged. No input panics.

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use crate::stats::DropReason;
use crate::wire::ipv6::{Ipv6Packet, IPPROTO_IPV6};
use crate::wire::EthernetFrame;

/// Length of the outer header rvs prepends (no extension headers).
pub const OUTER_HEADER_LEN: usize = 40;
/// Hop limit of the outer header (as the IPv4 tunnel's outer TTL).
pub const OUTER_HOP_LIMIT: u8 = 64;
/// The IPv6 minimum link MTU (RFC 8200 §5).
pub const MIN_MTU: u16 = 1280;

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// Why [`encap`] did not encapsulate. The buffer is unchanged in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Tunnel6Error {
    /// The encapsulated packet would exceed the MTU.
    #[error("encapsulated packet exceeds the MTU (largest inner packet {mtu})")]
    TooBig {
        /// The largest inner packet that fits: the link MTU minus the outer header, at
        /// least [`MIN_MTU`].
        mtu: u16,
    },
    /// Not enough headroom in the buffer for the outer header.
    #[error("no headroom for the outer IPv6 header")]
    NoHeadroom,
    /// `inner_len` leaves no IPv6 header in the frame (a caller bug).
    #[error("no IPv6 packet of the given length after the Ethernet header")]
    Malformed,
}

/// The drop reason of a packet that could not be encapsulated: over the MTU
/// (`tunnel_too_big`), no headroom (`no_mbuf`), not a packet (`l4_malformed`).
impl From<Tunnel6Error> for DropReason {
    fn from(e: Tunnel6Error) -> Self {
        match e {
            Tunnel6Error::TooBig { .. } => DropReason::TunnelTooBig,
            Tunnel6Error::NoHeadroom => DropReason::NoMbuf,
            Tunnel6Error::Malformed => DropReason::L4Malformed,
        }
    }
}

/// Encapsulates the IPv6 packet of `inner_len` bytes after the Ethernet header of `buf`
/// in an outer IPv6 header from `outer_src` to `outer_dst` (next header 41), keeping the
/// outer packet within `mtu`. See the module docs for every field and the MTU rule.
///
/// # Errors
///
/// [`Tunnel6Error::TooBig`] when the result would exceed `mtu`,
/// [`Tunnel6Error::NoHeadroom`], and [`Tunnel6Error::Malformed`] when the frame holds no
/// `inner_len` bytes of IPv6 packet; the buffer is then unchanged.
pub fn encap<B: PacketBuf>(
    buf: &mut B,
    inner_len: usize,
    outer_src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    mtu: u16,
) -> Result<(), Tunnel6Error> {
    let l3 = buf
        .data()
        .get(ETH_LEN..ETH_LEN + inner_len)
        .filter(|p| p.len() >= OUTER_HEADER_LEN && p.len() <= usize::from(u16::MAX))
        .ok_or(Tunnel6Error::Malformed)?;
    let inner = Ipv6Packet::new_unchecked(l3);
    if inner_len + OUTER_HEADER_LEN > usize::from(mtu) {
        return Err(Tunnel6Error::TooBig { mtu: max_inner_len(mtu) });
    }
    let (tc, flow) = (inner.traffic_class(), inner.flow_label());
    if buf.headroom() < OUTER_HEADER_LEN {
        return Err(Tunnel6Error::NoHeadroom);
    }
    // Drop Ethernet padding so the frame ends where the inner packet does (a shrink, which
    // cannot fail: the packet is within the frame, checked above).
    let _ = buf.set_len(ETH_LEN + inner_len);
    let Some(frame) = buf.prepend(OUTER_HEADER_LEN) else {
        return Err(Tunnel6Error::NoHeadroom); // unreachable: headroom checked above
    };
    frame.copy_within(OUTER_HEADER_LEN..OUTER_HEADER_LEN + ETH_LEN, 0);
    let mut outer = Ipv6Packet::new_unchecked(&mut frame[ETH_LEN..ETH_LEN + OUTER_HEADER_LEN]);
    outer.set_version(6);
    outer.set_traffic_class(tc);
    outer.set_flow_label(flow);
    // inner_len <= u16::MAX, checked above.
    outer.set_payload_len(inner_len as u16);
    outer.set_next_header(IPPROTO_IPV6);
    outer.set_hop_limit(OUTER_HOP_LIMIT);
    outer.set_src_addr(outer_src);
    outer.set_dst_addr(outer_dst);
    Ok(())
}

/// The largest inner IPv6 packet that [`encap`] accepts on a link of IP MTU `mtu` (at
/// least [`MIN_MTU`], which [`Tunnel6Error::TooBig`] reports on links too small for the
/// tunnel).
#[must_use]
pub const fn max_inner_len(mtu: u16) -> u16 {
    let m = mtu.saturating_sub(OUTER_HEADER_LEN as u16);
    if m < MIN_MTU {
        MIN_MTU
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_drivers::mem::MemBuf;

    /// An Ethernet frame with an IPv6 packet of `payload` bytes (TC 0xb8, flow label
    /// 0x12345, next header 17, hop limit 63), then 2 bytes of padding.
    fn frame(payload: usize) -> Vec<u8> {
        let mut f = vec![0xaa; 6];
        f.extend_from_slice(&[0xbb; 6]);
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x6b, 0x81, 0x23, 0x45]);
        f.extend_from_slice(&(payload as u16).to_be_bytes());
        f.extend_from_slice(&[17, 63]);
        f.extend_from_slice(&"2001:db8:10::2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"2001:db8:10::100".parse::<Ipv6Addr>().unwrap().octets());
        f.extend((0..payload).map(|i| i as u8));
        f.extend_from_slice(&[0, 0]);
        f
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn golden_outer_header() {
        let f = frame(8);
        let mut b = MemBuf::from_frame(&f);
        assert_eq!(encap(&mut b, 48, a("2001:db8:20::1"), a("2001:db8:20::11"), 1500), Ok(()));
        // Written out by hand from RFC 2473 §3 and the module docs' table.
        let mut want = f[..14].to_vec();
        want.extend_from_slice(&[0x6b, 0x81, 0x23, 0x45, 0, 48, 41, 64]);
        want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]);
        want.extend_from_slice(&f[14..14 + 48]);
        assert_eq!(b.data(), &want[..], "padding trimmed, inner untouched");
    }

    #[test]
    fn mtu_edges_and_no_headroom_leave_the_buffer_unchanged() {
        let f = frame(1420); // a 1460-byte inner packet: 1500 outer
        let (s, d) = (a("2001:db8:20::1"), a("2001:db8:20::11"));
        let mut b = MemBuf::from_frame(&f);
        assert_eq!(encap(&mut b, 1460, s, d, 1499), Err(Tunnel6Error::TooBig { mtu: 1459 }));
        assert_eq!(b.data(), &f[..]);
        assert_eq!(encap(&mut b, 1460, s, d, 1500), Ok(()));
        assert_eq!(b.data().len(), 14 + 1500);
        // A link too small for the tunnel reports the IPv6 minimum, never less.
        let mut b = MemBuf::from_frame(&f);
        assert_eq!(encap(&mut b, 1460, s, d, 1300), Err(Tunnel6Error::TooBig { mtu: MIN_MTU }));
        assert_eq!(max_inner_len(9000), 8960);
        assert_eq!(max_inner_len(0), MIN_MTU);
        // Exactly 40 bytes of headroom are enough; 39 are not.
        let g = frame(8);
        let mut b = MemBuf::with_room(39, 128);
        b.append(g.len()).unwrap().copy_from_slice(&g);
        assert_eq!(encap(&mut b, 48, s, d, 1500), Err(Tunnel6Error::NoHeadroom));
        assert_eq!(b.data(), &g[..]);
        let mut b = MemBuf::with_room(40, 128);
        b.append(g.len()).unwrap().copy_from_slice(&g);
        assert_eq!(encap(&mut b, 48, s, d, 1500), Ok(()));
        assert_eq!(b.headroom(), 0);
    }

    #[test]
    fn a_length_beyond_the_frame_is_refused_not_read() {
        let f = frame(8);
        let mut b = MemBuf::from_frame(&f);
        let (s, d) = (a("2001:db8:20::1"), a("2001:db8:20::11"));
        assert_eq!(encap(&mut b, 51, s, d, 1500), Err(Tunnel6Error::Malformed));
        assert_eq!(encap(&mut b, 39, s, d, 1500), Err(Tunnel6Error::Malformed));
        assert_eq!(b.data(), &f[..]);
    }

    #[test]
    fn errors_count_under_their_drop_reason() {
        assert_eq!(DropReason::from(Tunnel6Error::TooBig { mtu: 1460 }), DropReason::TunnelTooBig);
        assert_eq!(DropReason::from(Tunnel6Error::NoHeadroom), DropReason::NoMbuf);
        assert_eq!(DropReason::from(Tunnel6Error::Malformed), DropReason::L4Malformed);
    }
}
