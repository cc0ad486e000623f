//! Full-NAT (DPVS `-b`, "fullnat"): both ends of the flow are translated, so the real
//! server only ever sees rvs's local address and needs no route back through rvs.
//!
//! # Contract
//!
//! * [`inbound`] (client → VIP): source `client:cport` becomes a local address and port
//!   (`local`, allocated by the caller from the local-address pool), destination
//!   `vip:vport` becomes the real server (`server`). When asked, and for TCP only, the
//!   client's address travels to the real server in a TOA option (below).
//! * [`outbound`] (real server → local): source becomes `vip:vport`, destination becomes
//!   the client again. When asked, a SYN-ACK's MSS is lowered by the TOA size (below).
//! * TCP and UDP only: the frame's [`Layout`] says so (a datagram's first fragment is
//!   rewritten like a whole packet, with no TOA; later fragments are
//!   [`super::frag::rewrite_later`]'s). IPv4 and TCP/UDP
//!   checksums are updated
//!   incrementally (RFC 1624), a UDP checksum of 0 stays 0. Sequence numbers are not
//!   touched (TOA is an option, outside the sequence space; SYN proxy is not done here).
//!
//! # TOA: when it is inserted
//!
//! The real server's `toa` kernel module (DPVS/Alibaba) records the address carried in the
//! option on the socket when the connection is established, i.e. while processing the
//! client's SYN and the handshake's final ACK. So, as DPVS's `tcp_in_add_toa` callers do,
//! the worker asks for the TOA on the client's SYN and on every client → server packet
//! until the handshake's final ACK has carried it (a flag on the connection, cleared once
//! an ACK with the option went out); later packets go without it. This module inserts it
//! whenever `toa` is `Some` and the packet is TCP — the policy is the caller's.
//!
//! Insertion never costs the packet: when the option cannot be added (TCP options already
//! longer than 32 bytes, packet would exceed the egress MTU, buffer without tailroom) the
//! packet goes on without it and [`FullNatIn::toa_skipped`] says why, for a counter.
//! Details of the insertion and its incremental checksums: [`l4::insert_toa`].
//!
//! # MSS: why the SYN-ACK is the one to clamp
//!
//! The TOA makes client → server segments 8 bytes longer between rvs and the real server.
//! How large the client's segments are is decided by the client, from the MSS the *real
//! server* advertised in its SYN-ACK. If the server advertised 1460 on a 1500-byte path,
//! a full-size client segment plus the TOA is 1508 bytes and would not fit (or would be
//! sent without TOA). So the SYN-ACK going back to the client carries an MSS lowered by
//! [`l4::TOA_LEN`]; the client's full-size segments then still fit after insertion. The
//! client's own SYN MSS bounds what the *server* sends, which carries no TOA, so it is
//! left alone. DPVS does the same in `tcp_out_adjust_mss` (FNAT, SYN-ACK only).

use rvs_drivers::PacketBuf;

use super::l4::{self, ToaSkip};
use super::ttl::TtlDecrement;
use super::Endpoint;
use crate::types::L4Proto;
use crate::view::Layout;
use crate::wire::TcpPacket;

/// What [`inbound`] did about the TOA option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FullNatIn {
    /// The TOA option was inserted.
    pub toa_inserted: bool,
    /// A TOA was asked for on a TCP packet but could not be added; the packet was rewritten
    /// and should be forwarded anyway. `None` when inserted, not asked for, or not TCP
    /// (TOA is a TCP option: for UDP it does not apply, and is not counted as skipped).
    pub toa_skipped: Option<ToaSkip>,
}

/// Full-NAT of a client → VIP packet parsed into `layout` (its
/// [`L4View`](crate::view::L4View)): source becomes `local`, destination becomes
/// `server`; then, when `toa` is `Some(client)` and the packet is TCP, the TOA option with
/// the client's address and port is inserted unless the result would exceed `mtu` bytes
/// (the egress link's largest IPv4 packet) or does not fit (see the module docs).
///
/// Cannot fail; a TOA that does not fit is reported in the [`FullNatIn`]. After a TOA
/// insertion `layout` no longer describes the frame.
#[inline]
pub fn inbound<B: PacketBuf>(
    buf: &mut B,
    layout: &Layout,
    local: Endpoint,
    server: Endpoint,
    toa: Option<Endpoint>,
    mtu: u16,
) -> FullNatIn {
    l4::rewrite_both(buf.data_mut(), layout, local, server);
    add_toa(buf, layout, toa, mtu)
}

/// [`inbound`] for a packet whose TTL [`ttl::decrement`](super::ttl::decrement) just
/// lowered: the decrement's header checksum update is folded into the rewrite's (one
/// update of the IPv4 header checksum instead of two); bytes as `ttl::forward` then
/// [`inbound`].
#[inline]
pub fn inbound_forwarded<B: PacketBuf>(
    buf: &mut B,
    layout: &Layout,
    local: Endpoint,
    server: Endpoint,
    toa: Option<Endpoint>,
    mtu: u16,
    ttl: TtlDecrement,
) -> FullNatIn {
    l4::rewrite_after_ttl(buf.data_mut(), layout, Some(local), Some(server), ttl);
    add_toa(buf, layout, toa, mtu)
}

/// The TOA part of [`inbound`], after the rewrite.
#[inline]
fn add_toa<B: PacketBuf>(buf: &mut B, layout: &Layout, toa: Option<Endpoint>, mtu: u16) -> FullNatIn {
    let mut out = FullNatIn::default();
    if let (Some(client), L4Proto::Tcp) = (toa, layout.l4()) {
        match l4::insert_toa(buf, layout, client, mtu) {
            Ok(()) => out.toa_inserted = true,
            Err(why) => out.toa_skipped = Some(why),
        }
    }
    out
}

/// Full-NAT of a real server → local reply: source becomes `vip`, destination becomes
/// `client`. When `mss_clamp` is `Some(max)` and the packet is a SYN-ACK with an MSS
/// option, the MSS becomes `min(mss - 8, max)` (8 = [`l4::TOA_LEN`]; see the module docs
/// for why); pass `Some(u16::MAX)` for DPVS's plain "minus the TOA size", or a lower
/// value to also cap it to the front link (e.g. `mtu - 40`). A malformed option list is
/// forwarded untouched.
///
/// `layout` is the frame's [`L4View`](crate::view::L4View) layout; cannot fail. (A caller that
/// knows the segment is no SYN-ACK may pass `mss_clamp: None`: the clamp would not touch
/// it anyway.)
#[inline]
pub fn outbound<B: PacketBuf>(buf: &mut B, layout: &Layout, vip: Endpoint, client: Endpoint, mss_clamp: Option<u16>) {
    let frame = buf.data_mut();
    l4::rewrite_both(frame, layout, vip, client);
    clamp(frame, layout, mss_clamp);
}

/// [`outbound`] for a packet whose TTL was just decremented, as [`inbound_forwarded`].
#[inline]
pub fn outbound_forwarded<B: PacketBuf>(
    buf: &mut B,
    layout: &Layout,
    vip: Endpoint,
    client: Endpoint,
    mss_clamp: Option<u16>,
    ttl: TtlDecrement,
) {
    let frame = buf.data_mut();
    l4::rewrite_after_ttl(frame, layout, Some(vip), Some(client), ttl);
    clamp(frame, layout, mss_clamp);
}

/// The MSS part of [`outbound`], after the rewrite.
#[inline]
fn clamp(frame: &mut [u8], layout: &Layout, mss_clamp: Option<u16>) {
    if let (Some(max), L4Proto::Tcp) = (mss_clamp, layout.l4()) {
        adjust_syn_ack_mss(&mut frame[layout.l4_offset()..layout.ip_end()], max);
    }
}

/// Lowers the MSS of a SYN-ACK segment (`seg`: TCP header and payload) to
/// `min(mss - 8, max)`, checksum updated incrementally; returns `(old, new)` when it
/// changed it. Anything but a SYN-ACK, or one without an MSS option, is left alone.
pub fn adjust_syn_ack_mss(seg: &mut [u8], max: u16) -> Option<(u16, u16)> {
    let flags = TcpPacket::new_checked(&*seg).ok()?.flags();
    if !(flags.syn() && flags.ack()) {
        return None;
    }
    l4::clamp_mss(seg, max)
}
