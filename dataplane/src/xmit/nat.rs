//! NAT (LVS `-m`, "masquerading"): destination NAT towards the real server, source NAT of
//! its replies.
//!
//! # Contract
//!
//! * [`inbound`] (client → VIP): the destination `vip:vport` becomes the real server's
//!   `addr:port`; the port may differ (port mapping). The client's address is kept, so the
//!   real server sees the real client and must route its replies back through rvs (rvs is
//!   its default gateway, as with LVS-NAT).
//! * [`outbound`] (real server → client): the source becomes `vip:vport` again, so the
//!   client sees the address it talked to.
//! * TCP and UDP only: the frame's [`Layout`] says so (ICMP errors about a flow are
//!   translated by their own module). A datagram's first fragment is rewritten like a whole
//!   packet (its checksum update needs no payload); later fragments are
//!   [`super::frag::rewrite_later`]'s.
//! * The IPv4 header checksum and the TCP/UDP checksum are updated incrementally
//!   (RFC 1624) for the changed address (pseudo-header) and port, like LVS's
//!   `tcp_dnat_handler`/`udp_snat_handler` with their `csum_partial` deltas. A UDP checksum
//!   of 0 (none) stays 0. The TTL is not touched here (TTL handling is `xmit::ttl`'s).

use rvs_drivers::PacketBuf;

use super::l4;
use super::ttl::TtlDecrement;
use super::Endpoint;
use crate::view::Layout;

/// DNAT of a client → VIP packet parsed into `layout` (its
/// [`L4View`](crate::view::L4View)): destination address and port become `server`'s.
/// Checksums are updated incrementally; cannot fail. See the module docs.
#[inline]
pub fn inbound<B: PacketBuf>(buf: &mut B, layout: &Layout, server: Endpoint) {
    l4::rewrite_dst(buf.data_mut(), layout, server);
}

/// SNAT of a real server → client reply parsed into `layout`: source address and port
/// become `vip`'s. Checksums are updated incrementally; cannot fail.
#[inline]
pub fn outbound<B: PacketBuf>(buf: &mut B, layout: &Layout, vip: Endpoint) {
    l4::rewrite_src(buf.data_mut(), layout, vip);
}

/// [`inbound`] for a packet whose TTL [`ttl::decrement`](super::ttl::decrement) just
/// lowered: the decrement's header checksum update is folded into the rewrite's (one
/// update of the IPv4 header checksum instead of two); bytes as `ttl::forward` then
/// [`inbound`].
#[inline]
pub fn inbound_forwarded<B: PacketBuf>(buf: &mut B, layout: &Layout, server: Endpoint, ttl: TtlDecrement) {
    l4::rewrite_after_ttl(buf.data_mut(), layout, None, Some(server), ttl);
}

/// [`outbound`] for a packet whose TTL was just decremented, as [`inbound_forwarded`].
#[inline]
pub fn outbound_forwarded<B: PacketBuf>(buf: &mut B, layout: &Layout, vip: Endpoint, ttl: TtlDecrement) {
    l4::rewrite_after_ttl(buf.data_mut(), layout, Some(vip), None, ttl);
}
