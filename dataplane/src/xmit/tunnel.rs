//! IPIP tunnel mode (RFC 2003): encapsulate the client's packet in an outer IPv4 header to
//! the real server, honouring the path MTU.
//!
//! # Contract
//!
//! [`encap`] takes an Ethernet frame holding an IPv4 packet and where that packet ends, as
//! the receive-side parse found it (the packet's [`L4View`](crate::view::L4View) layout,
//! or the parsed ICMP error): the inner header is not validated again. (By then
//! [`ttl::forward`](super::ttl::forward) has already decremented the inner TTL.) It
//! inserts a 20-byte outer IPv4 header between the Ethernet header and the inner packet,
//! working inside the buffer: `prepend(20)` and a 14-byte `copy_within` of the Ethernet
//! header to the new front. Nothing is allocated; the inner packet is not touched or read
//! beyond its header. The Ethernet MACs are left for the neighbour layer.
//!
//! The outer header, as RFC 2003 §3.1 and as LVS's `ip_vs_tunnel_xmit` / DPVS's
//! `dp_vs_xmit_tunnel` build it:
//!
//! | field | value |
//! | --- | --- |
//! | version / IHL | 4 / 5 (no options) |
//! | TOS | copied from the inner header (RFC 2003 §3.1; ECN "normal mode" of RFC 6040) |
//! | total length | inner total length + 20 |
//! | identification | see below |
//! | flags | DF copied from the inner header (RFC 2003 §3.1 requires DF when the inner has it), MF 0, offset 0 |
//! | TTL | [`OUTER_TTL`] (64) |
//! | protocol | 4 (IPIP) |
//! | checksum | computed over the 20 fresh bytes |
//! | source / destination | the caller's `outer_src` (an address of ours) / `outer_dst` (the real server) |
//!
//! Ethernet padding after the inner packet (short frames are padded to 60 bytes) is
//! trimmed first, so the outer total length and the frame agree.
//!
//! ## Identification
//!
//! [`encap`] reuses the inner packet's identification. When DF is set (almost every TCP
//! packet, since hosts do PMTU discovery) the outer datagram is atomic and RFC 6864 §4.1
//! lets the originator put any value there. When DF is clear the inner ident is the value
//! the client chose to be unique for (client, VIP, protocol) over the datagram lifetime,
//! which keeps distinct inner datagrams distinct. (A per-worker counter, as DPVS's
//! `ip4_select_id`, would be a parameter here if ever wanted.)
//!
//! ## MTU: [`encap`] never fragments
//!
//! `mtu` is the IP MTU of the egress link (1500 on plain Ethernet). When the outer packet
//! (inner total length + 20) would exceed it:
//!
//! * inner DF set → [`TunnelError::FragNeeded`] with `mtu - 20`, **buffer unchanged**: the
//!   caller turns the same buffer into an ICMP "fragmentation needed" to the client with
//!   [`icmp_err::frag_needed`](super::icmp_err::frag_needed) (RFC 1191, RFC 2003 §5.1), so
//!   the client's PMTU discovery lowers its segment size;
//! * inner DF clear → [`TunnelError::TooBig`]: a router would fragment; for a whole
//!   packet rvs does not (fragmenting on the fast path costs buffers and the real server
//!   would have to reassemble), the caller drops the packet and counts it (DPVS likewise
//!   drops and counts; hosts that clear DF on whole packets are rare). An inner
//!   *fragment* (always DF clear, and cut by its sender to the client side's MTU, so
//!   nearly always 20 bytes too long here) is encapsulated with no MTU limit and the
//!   worker cuts the outer packet, as Linux's IPIP does
//!   ([`crate::xmit::frag::fragment_outer`]): fragmented datagrams are otherwise never
//!   delivered through the tunnel.
//!
//! Every error leaves the buffer unchanged. No input panics.

use std::net::Ipv4Addr;

use rvs_drivers::PacketBuf;

use crate::stats::DropReason;
use crate::wire::{EthernetFrame, Ipv4Packet, WireError, IPPROTO_IPIP};

/// Length of the outer header rvs prepends (no options).
pub const OUTER_HEADER_LEN: usize = 20;
/// TTL of the outer header (Linux's default `ip_default_ttl`, as LVS's tunnel).
pub const OUTER_TTL: u8 = 64;

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// Why [`encap`] did not encapsulate. The buffer is unchanged in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// The encapsulated packet would exceed the MTU and the inner packet has DF set: answer
    /// the client with ICMP fragmentation needed carrying this next-hop MTU.
    #[error("encapsulated packet exceeds the MTU and DF is set (next-hop MTU {mtu})")]
    FragNeeded {
        /// The largest inner packet that fits: the link MTU minus the outer header.
        mtu: u16,
    },
    /// The encapsulated packet would exceed the MTU and DF is clear: `encap` does not
    /// fragment (the fragment path cuts outer packets itself, see the module docs).
    #[error("encapsulated packet exceeds the MTU and DF is clear (not fragmented)")]
    TooBig,
    /// Not enough headroom in the buffer for the outer header.
    #[error("no headroom for the outer IPv4 header")]
    NoHeadroom,
    /// The frame does not hold a valid IPv4 packet after a 14-byte Ethernet header.
    #[error("malformed inner packet: {0}")]
    Malformed(WireError),
}

/// The drop reason of a packet that could not be encapsulated: over the MTU
/// (`tunnel_too_big`; with DF set the caller first tries ICMP fragmentation needed and
/// counts this only when that fails), no headroom (`no_mbuf`), not a valid inner packet
/// (`l4_malformed`).
impl From<TunnelError> for DropReason {
    fn from(e: TunnelError) -> Self {
        match e {
            TunnelError::FragNeeded { .. } | TunnelError::TooBig => DropReason::TunnelTooBig,
            TunnelError::NoHeadroom => DropReason::NoMbuf,
            TunnelError::Malformed(_) => DropReason::L4Malformed,
        }
    }
}

/// Encapsulates the IPv4 packet in `buf`, which ends at `ip_end` in the frame (from the
/// receive-side parse, see the module docs), in an outer IPv4 header from `outer_src` to
/// `outer_dst` (protocol 4), keeping the outer packet within `mtu`; the outer
/// identification is the inner one. See the module docs for every field and the MTU rule.
///
/// # Errors
///
/// [`TunnelError::FragNeeded`] or [`TunnelError::TooBig`] when the result would exceed
/// `mtu`, [`TunnelError::NoHeadroom`], and [`TunnelError::Malformed`] only when `ip_end`
/// leaves no IPv4 header in the frame (a caller bug); the buffer is then unchanged.
pub fn encap<B: PacketBuf>(
    buf: &mut B,
    ip_end: usize,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    mtu: u16,
) -> Result<(), TunnelError> {
    // Read everything needed from the inner header first; nothing is written until every
    // check has passed.
    let l3 = buf
        .data()
        .get(ETH_LEN..ip_end)
        .filter(|p| p.len() >= OUTER_HEADER_LEN && p.len() <= usize::from(u16::MAX))
        .ok_or(TunnelError::Malformed(WireError::Truncated))?;
    let inner = Ipv4Packet::new_unchecked(l3);
    // At most u16::MAX (checked above).
    let inner_len = l3.len() as u16;
    let outer_len = u32::from(inner_len) + OUTER_HEADER_LEN as u32;
    if outer_len > u32::from(mtu) {
        return Err(if inner.dont_frag() {
            TunnelError::FragNeeded { mtu: mtu.saturating_sub(OUTER_HEADER_LEN as u16) }
        } else {
            TunnelError::TooBig
        });
    }
    // outer_len <= mtu <= u16::MAX, so this cannot truncate.
    let outer_len = outer_len as u16;
    let (tos, df) = (inner.tos(), inner.dont_frag());
    let ident = inner.ident();
    if buf.headroom() < OUTER_HEADER_LEN {
        return Err(TunnelError::NoHeadroom);
    }

    // Drop Ethernet padding so the frame ends where the inner packet does (a shrink,
    // which cannot fail: `ip_end` is within the frame, checked above).
    let _ = buf.set_len(ETH_LEN + usize::from(inner_len));
    let Some(frame) = buf.prepend(OUTER_HEADER_LEN) else {
        return Err(TunnelError::NoHeadroom); // unreachable: headroom checked above
    };
    frame.copy_within(OUTER_HEADER_LEN..OUTER_HEADER_LEN + ETH_LEN, 0);
    let mut outer = Ipv4Packet::new_unchecked(&mut frame[ETH_LEN..ETH_LEN + OUTER_HEADER_LEN]);
    outer.set_version(4);
    outer.set_header_len(OUTER_HEADER_LEN);
    outer.set_tos(tos);
    outer.set_total_len(outer_len);
    outer.set_ident(ident);
    outer.set_frag_offset(0);
    outer.set_more_frags(false);
    outer.set_dont_frag(df);
    outer.set_ttl(OUTER_TTL);
    outer.set_protocol(IPPROTO_IPIP);
    outer.set_src_addr(outer_src);
    outer.set_dst_addr(outer_dst);
    outer.fill_checksum();
    Ok(())
}

/// The largest inner IPv4 packet that [`encap`] accepts on a link of IP MTU `mtu`.
#[must_use]
pub const fn max_inner_len(mtu: u16) -> u16 {
    mtu.saturating_sub(OUTER_HEADER_LEN as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_drivers::mem::MemBuf;

    #[test]
    fn no_headroom_leaves_buffer_unchanged() {
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[17] = 20;
        let mut b = MemBuf::with_room(19, 64);
        b.append(f.len()).unwrap().copy_from_slice(&f);
        let src = Ipv4Addr::new(10, 20, 0, 1);
        assert_eq!(encap(&mut b, f.len(), src, src, 1500), Err(TunnelError::NoHeadroom));
        assert_eq!(b.data(), &f[..]);
        // Exactly 20 bytes of headroom is enough.
        let mut b = MemBuf::with_room(20, 64);
        b.append(f.len()).unwrap().copy_from_slice(&f);
        assert_eq!(encap(&mut b, f.len(), src, src, 1500), Ok(()));
        assert_eq!(b.headroom(), 0);
        assert!(Ipv4Packet::new_checked(&b.data()[14..]).unwrap().verify_checksum());
    }

    #[test]
    fn mtu_edges() {
        let mut f = vec![0u8; 14 + 100];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[17] = 100;
        f[20] = 0x40; // DF
        let a = Ipv4Addr::new(1, 2, 3, 4);
        let mut b = MemBuf::from_frame(&f);
        assert_eq!(encap(&mut b, f.len(), a, a, 119), Err(TunnelError::FragNeeded { mtu: 99 }));
        assert_eq!(b.data(), &f[..]);
        assert_eq!(encap(&mut b, f.len(), a, a, 120), Ok(()));
        // Absurd MTUs saturate instead of wrapping.
        let mut b = MemBuf::from_frame(&f);
        assert_eq!(encap(&mut b, f.len(), a, a, 10), Err(TunnelError::FragNeeded { mtu: 0 }));
        assert_eq!(max_inner_len(1500), 1480);
    }

    #[test]
    fn errors_count_under_their_drop_reason() {
        assert_eq!(DropReason::from(TunnelError::FragNeeded { mtu: 1480 }), DropReason::TunnelTooBig);
        assert_eq!(DropReason::from(TunnelError::TooBig), DropReason::TunnelTooBig);
        assert_eq!(DropReason::from(TunnelError::NoHeadroom), DropReason::NoMbuf);
        assert_eq!(DropReason::from(TunnelError::Malformed(WireError::Truncated)), DropReason::L4Malformed);
    }
}
