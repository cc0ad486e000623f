//! ICMPv6 errors (RFC 4443): generating them, and translating the ones that concern a
//! flow rvs rewrites.
//!
//! # Generating
//!
//! rvs sends time exceeded when a packet it routes (NAT66) has no hop left, packet too
//! big when one does not fit the egress port's MTU (IPv6 routers never fragment, RFC
//! 8200 §5). The IPv6 counterpart of [`super::icmp_err`]'s generating half.
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
//! # Receiving and translating
//!
//! The IPv6 counterpart of [`super::icmp_err`]'s receiving half. rvs receives ICMPv6
//! errors (types 1 destination unreachable, 2 packet too big, 3 time exceeded, 4
//! parameter problem) about packets it *sent*: a real server's port unreachable about a
//! packet rvs forwarded to it (NAT66, Full-NAT), a router's packet too big on the way to
//! the server or to a client, or a client-side error about a reply rvs forwarded.
//!
//! * [`parse`] verifies the message (outer IPv6 header and its bounded extension-header
//!   walk, not a fragment, the ICMPv6 checksum over the RFC 8200 pseudo-header) and
//!   extracts the flow the error is about from the quoted packet, walking the quote's
//!   extension headers too (a quote cut inside them is `QuoteTruncated`). As for IPv4,
//!   **the quoted packet travelled `src → dst`, opposite to the error**: the connection
//!   is found as for a packet `dst → src`.
//! * A quote of an IPv6-in-IPv6 packet (next header 41: rvs's tunnel towards a server)
//!   is followed once into the inner packet, which is the flow's; [`Icmp6ErrView::tunnelled`]
//!   says so. Only a packet too big about it means anything to the client (the tunnel
//!   path's MTU, less the 40 bytes rvs added): [`tunnel_too_big`] turns it into a packet
//!   too big from the VIP to the client about the client's own packet, as LVS's
//!   `ip_vs_in_icmp_v6` does for its tunnels.
//! * [`translate`] rewrites the error as the flow is rewritten in that direction: outer
//!   addresses, quoted addresses and ports. E.g. NAT66: the server's port unreachable
//!   `RS → C` about `C:cp → RS:rp` becomes `VIP → C` about `C:cp → VIP:vp`.
//! * Checksums in [`translate`] are **incremental** (RFC 1624). Unlike ICMP's, the
//!   ICMPv6 checksum covers the pseudo-header, so the outer address changes enter it as
//!   well as every quoted byte that changes. The quoted TCP/UDP checksum is adjusted for
//!   its pseudo-header's addresses and its ports when the quote holds it (UDP bytes 6..8,
//!   TCP bytes 16..18), as in [`super::icmp_err`]; a quoted UDP checksum of 0 stays 0, a
//!   computed 0 is sent as 0xffff (RFC 8200 §8.1). Every changed word lies at an even
//!   offset from the message's start (ICMPv6 header 8, IPv6 header 40, extension headers
//!   multiples of 4), as the updates require.
//! * Only TCP and UDP quotes are handled (rvs's flows); an error about an ICMPv6 packet
//!   (an error about an error, or about an echo), about another protocol, about a
//!   non-first fragment, or with a quote too short for the ports is refused with its
//!   reason.
//!
//! Every function validates before it writes: on `Err` the buffer is unchanged, and no
//! input makes them panic.

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use crate::stats::DropReason;
use crate::types::L4Proto;
use crate::view::L3_OFFSET;
use crate::wire::checksum;
use crate::wire::icmpv6::{
    Icmpv6Packet, ICMPV6_DEST_UNREACH, ICMPV6_PACKET_TOO_BIG, ICMPV6_PARAM_PROBLEM, ICMPV6_TIME_EXCEEDED,
};
use crate::wire::ipv6::{walk_ext_headers, Ipv6Error, IPPROTO_IPV6};
use crate::wire::{Ipv6Packet, IPPROTO_ICMPV6};
use crate::xmit::Endpoint6;

/// The IPv6 minimum link MTU (RFC 8200 §5): no error rvs sends is longer.
pub const MIN_MTU: usize = 1280;
/// Length of the new IPv6 header and the ICMPv6 header in front of the quote.
pub(crate) const HEAD: usize = 40 + 8;
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
    write_error_head(frame, quote_len, our_addr, src, (icmp_type, icmp_code, rest_of_header));
    Ok(src)
}

/// Writes the IPv6 and ICMPv6 headers of an error from `from` to `to` in front of the
/// `quote_len`-byte quote already at `L3_OFFSET + HEAD` of `frame` (`msg`: type, code,
/// rest of header), checksum included: the head every error rvs sends shares.
pub(crate) fn write_error_head(frame: &mut [u8], quote_len: usize, from: Ipv6Addr, to: Ipv6Addr, msg: (u8, u8, u32)) {
    let (head, icmp) = frame[L3_OFFSET..].split_at_mut(40);
    let mut ip = Ipv6Packet::new_unchecked(head);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    // At most 8 + 1232: fits a u16.
    ip.set_payload_len((8 + quote_len) as u16);
    ip.set_next_header(IPPROTO_ICMPV6);
    ip.set_hop_limit(ERROR_HOP_LIMIT);
    ip.set_src_addr(from);
    ip.set_dst_addr(to);
    let mut icmp = Icmpv6Packet::new_unchecked(icmp);
    icmp.set_msg_type(msg.0);
    icmp.set_code(msg.1);
    icmp.set_rest_of_header(msg.2);
    icmp.fill_checksum(from, to);
}

/// Why a received ICMPv6 error was not parsed or translated. The buffer is unchanged in
/// every case; [`DropReason::from`] names the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Icmp6RxError {
    /// The frame does not hold a valid IPv6 packet with a walkable extension-header chain
    /// and an ICMPv6 header.
    #[error("malformed IPv6 or ICMPv6 packet")]
    Malformed,
    /// The IPv6 packet does not carry ICMPv6.
    #[error("not an ICMPv6 packet")]
    NotIcmp,
    /// The ICMPv6 message is not one of the errors quoting a packet (types 1 to 4);
    /// carries the type.
    #[error("ICMPv6 type {0} is not an error rvs translates")]
    NotAnError(u8),
    /// The message arrived fragmented (rvs does not reassemble it).
    #[error("ICMPv6 error arrived as an IPv6 fragment")]
    Fragmented,
    /// The ICMPv6 checksum (over the pseudo-header) does not verify.
    #[error("bad ICMPv6 checksum")]
    BadChecksum,
    /// The quoted packet is cut short: inside its IPv6 header, its extension headers or
    /// the 4 bytes of ports.
    #[error("quoted packet truncated")]
    QuoteTruncated,
    /// The quoted packet is not IPv6, or its extension-header chain is refused.
    #[error("quoted packet is not a valid IPv6 packet")]
    QuoteMalformed,
    /// The quoted packet is a non-first fragment: it has no TCP/UDP header.
    #[error("quoted packet is a non-first fragment")]
    QuoteFragment,
    /// The quoted packet is neither TCP nor UDP (ICMPv6 included: no error about an
    /// error is acted on); carries the protocol.
    #[error("quoted next header {0} is not TCP or UDP")]
    UnsupportedProtocol(u8),
    /// The error's frame does not fit the view it is used with (a caller bug), or a
    /// translation was asked of a tunnelled quote (which [`tunnel_too_big`] handles).
    #[error("the view does not fit the frame")]
    Mismatch,
}

/// The drop reason of a received ICMPv6 error rvs does not act on: a bad checksum is
/// `icmp6_bad_checksum`; not an error, or about something that is no flow of rvs's (not
/// TCP/UDP), `icmp6_unhandled`; anything wrong with its shape `icmp6_malformed`.
impl From<Icmp6RxError> for DropReason {
    fn from(e: Icmp6RxError) -> Self {
        match e {
            Icmp6RxError::BadChecksum => DropReason::Icmp6BadChecksum,
            Icmp6RxError::NotIcmp | Icmp6RxError::NotAnError(_) | Icmp6RxError::UnsupportedProtocol(_) => {
                DropReason::Icmp6Unhandled
            }
            _ => DropReason::Icmp6Malformed,
        }
    }
}

/// The flow an ICMPv6 error is about, from its quoted packet (the inner one of a
/// tunnelled quote).
///
/// `src → dst` is the direction **the quoted packet** travelled — a packet rvs sent — so
/// the opposite of the error's own: look the connection up as for a packet from `dst`
/// to `src` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Embedded6 {
    /// ICMPv6 type of the error (1 to 4).
    pub icmp_type: u8,
    /// ICMPv6 code of the error.
    pub icmp_code: u8,
    /// The MTU of a packet too big, else `None`.
    pub mtu: Option<u32>,
    /// The quoted packet's protocol.
    pub proto: L4Proto,
    /// The quoted packet's source address and port.
    pub src: Endpoint6,
    /// The quoted packet's destination address and port.
    pub dst: Endpoint6,
}

/// A received ICMPv6 error about a TCP/UDP flow, parsed once by [`parse`]: what it is
/// about ([`Icmp6ErrView::embedded`]) and where its parts lie in the frame, which
/// [`translate`] and [`tunnel_too_big`] use instead of parsing it again.
///
/// Valid for the frame it was parsed from while only header fields change (hop limit,
/// addresses, ports, checksums); every access is still bounds-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp6ErrView {
    /// The outer source (who sent the error).
    ip_src: Ipv6Addr,
    /// Offset of the ICMPv6 message in the frame.
    icmp: usize,
    /// Length of the ICMPv6 message (to the end of the outer payload).
    icmp_len: usize,
    /// Offset of the flow's quoted IPv6 header (the inner one of a tunnelled quote).
    quote: usize,
    /// Offset of the quoted TCP/UDP header.
    l4: usize,
    /// Quoted bytes of the TCP/UDP header and payload (at least 4).
    l4_len: usize,
    /// Whether the quote is of an IPv6-in-IPv6 packet (the flow's packet inside it).
    tunnelled: bool,
    /// What the error is about.
    embedded: Embedded6,
}

impl Icmp6ErrView {
    /// What the error is about.
    #[inline]
    pub fn embedded(&self) -> &Embedded6 {
        &self.embedded
    }

    /// The outer source: who sent the error.
    #[inline]
    pub fn ip_src(&self) -> Ipv6Addr {
        self.ip_src
    }

    /// Whether the quote is of an IPv6-in-IPv6 packet (rvs's tunnel towards a server);
    /// [`Self::embedded`] is then the inner packet's flow.
    #[inline]
    pub fn tunnelled(&self) -> bool {
        self.tunnelled
    }

    /// Offset just past the outer IPv6 packet in the frame (where padding starts).
    #[inline]
    pub fn ip_end(&self) -> usize {
        self.icmp + self.icmp_len
    }

    /// Offsets in the frame of the ICMPv6 message and of the flow's quoted IPv6 header.
    #[inline]
    pub fn icmp_and_quote(&self) -> (usize, usize) {
        (self.icmp, self.quote)
    }

    /// Offset in the frame of the quoted TCP/UDP header, and how many of its (and its
    /// payload's) bytes are quoted (at least 4).
    #[inline]
    pub fn quoted_l4(&self) -> (usize, usize) {
        (self.l4, self.l4_len)
    }
}

/// Whether an ICMPv6 type is an error that quotes a packet rvs may have sent (1 to 4).
const fn quotes_packet(t: u8) -> bool {
    matches!(t, ICMPV6_DEST_UNREACH | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED | ICMPV6_PARAM_PROBLEM)
}

/// The quoted packet starting at `q` (relative offsets): its IPv6 header and extension
/// headers, and where its upper layer starts with what protocol.
fn walk_quote(q: &[u8]) -> Result<(u8, usize), Icmp6RxError> {
    if q.len() < 40 {
        return Err(Icmp6RxError::QuoteTruncated);
    }
    // The quote's payload length describes the original packet, not the quote, so
    // Ipv6Packet::new_checked does not apply.
    let ip = Ipv6Packet::new_unchecked(q);
    if ip.version() != 6 {
        return Err(Icmp6RxError::QuoteMalformed);
    }
    let upper = walk_ext_headers(ip.next_header(), &q[40..]).map_err(|e| match e {
        Ipv6Error::ExtTruncated => Icmp6RxError::QuoteTruncated,
        _ => Icmp6RxError::QuoteMalformed,
    })?;
    if !upper.has_l4_header() {
        return Err(Icmp6RxError::QuoteFragment);
    }
    Ok((upper.protocol, 40 + upper.offset))
}

/// Parses a received ICMPv6 error (types 1 to 4) in `frame` (a whole Ethernet frame):
/// the TCP/UDP flow its quoted packet belongs to and where its parts are. The ICMPv6
/// checksum is verified (acting on a corrupted error could disturb a live connection).
/// The quoted packet is one *we* sent: see [`Embedded6`].
///
/// # Errors
///
/// Any [`Icmp6RxError`] naming what is wrong with the outer packet, the message or the
/// quote.
pub fn parse(frame: &[u8]) -> Result<Icmp6ErrView, Icmp6RxError> {
    let l3 = frame.get(L3_OFFSET..).ok_or(Icmp6RxError::Malformed)?;
    let ip = Ipv6Packet::new_checked(l3).map_err(|_| Icmp6RxError::Malformed)?;
    let upper = ip.upper_layer().map_err(|_| Icmp6RxError::Malformed)?;
    if upper.protocol != IPPROTO_ICMPV6 {
        return Err(Icmp6RxError::NotIcmp);
    }
    if upper.frag.is_some_and(|f| !f.is_atomic()) {
        return Err(Icmp6RxError::Fragmented);
    }
    let msg = ip.payload().get(upper.offset..).ok_or(Icmp6RxError::Malformed)?;
    let icmp = Icmpv6Packet::new_checked(msg).map_err(|_| Icmp6RxError::Malformed)?;
    let (icmp_type, icmp_code) = (icmp.msg_type(), icmp.code());
    if !quotes_packet(icmp_type) {
        return Err(Icmp6RxError::NotAnError(icmp_type));
    }
    let ip_src = ip.src_addr();
    if !icmp.verify_checksum(ip_src, ip.dst_addr()) {
        return Err(Icmp6RxError::BadChecksum);
    }
    let q = icmp.data();
    let (mut proto, mut l4) = walk_quote(q)?;
    let mut quote = 0;
    let tunnelled = proto == IPPROTO_IPV6;
    if tunnelled {
        // Once: rvs's tunnel puts no tunnel inside a tunnel.
        quote = l4;
        let (p, off) = walk_quote(&q[quote..])?;
        (proto, l4) = (p, quote + off);
    }
    let Some(l4_proto) = L4Proto::from_ipproto(proto) else {
        return Err(Icmp6RxError::UnsupportedProtocol(proto));
    };
    let ports = q.get(l4..l4 + 4).ok_or(Icmp6RxError::QuoteTruncated)?;
    let qip = Ipv6Packet::new_unchecked(&q[quote..]);
    let embedded = Embedded6 {
        icmp_type,
        icmp_code,
        mtu: (icmp_type == ICMPV6_PACKET_TOO_BIG).then(|| icmp.mtu()),
        proto: l4_proto,
        src: Endpoint6::new(qip.src_addr(), u16::from_be_bytes([ports[0], ports[1]])),
        dst: Endpoint6::new(qip.dst_addr(), u16::from_be_bytes([ports[2], ports[3]])),
    };
    let icmp_at = L3_OFFSET + 40 + upper.offset;
    let data_at = icmp_at + Icmpv6Packet::<&[u8]>::HEADER_LEN;
    Ok(Icmp6ErrView {
        ip_src,
        icmp: icmp_at,
        icmp_len: msg.len(),
        quote: data_at + quote,
        l4: data_at + l4,
        l4_len: q.len() - l4,
        tunnelled,
        embedded,
    })
}

fn rd16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn rd_addr(d: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Writes the 16-bit word `new` at `at` and folds the change into `icmp_csum`.
fn put16(d: &mut [u8], at: usize, new: u16, icmp_csum: &mut u16) {
    let old = rd16(d, at);
    *icmp_csum = checksum::update16(*icmp_csum, old, new);
    d[at..at + 2].copy_from_slice(&new.to_be_bytes());
}

/// Writes the address `new` at `at` and folds the change into `icmp_csum`.
fn put_addr(d: &mut [u8], at: usize, new: Ipv6Addr, icmp_csum: &mut u16) {
    let old = rd_addr(d, at);
    *icmp_csum = checksum::update_addr_v6(*icmp_csum, old, new);
    d[at..at + 16].copy_from_slice(&new.octets());
}

/// Rewrites the ICMPv6 error in `buf` about a TCP/UDP flow, the way the flow itself is
/// rewritten: the outer source and destination addresses, then the quoted packet's
/// source and destination endpoints (addresses and ports). `None` leaves a field as it
/// is. The ICMPv6 checksum (pseudo-header included) and the quoted TCP/UDP checksum,
/// when quoted, are updated incrementally (module docs). The hop limit is the caller's.
///
/// Example, NAT66: the server's port unreachable `RS → C` about `C:cp → RS:rp` is
/// translated with `outer_src = Some(VIP)`, `inner_dst = Some(VIP:vp)`; Full-NAT:
/// `RS → L` about `L:lp → RS:rp` with `outer_src = Some(VIP)`, `outer_dst = Some(C)`,
/// `inner_src = Some(C:cp)`, `inner_dst = Some(VIP:vp)`.
///
/// `err` is the [`parse`] of this very frame; nothing is validated again.
///
/// # Errors
///
/// [`Icmp6RxError::Mismatch`] when `err` does not fit the frame or is of a tunnelled
/// quote; the buffer is then unchanged.
pub fn translate<B: PacketBuf>(
    buf: &mut B,
    err: &Icmp6ErrView,
    outer_src: Option<Ipv6Addr>,
    outer_dst: Option<Ipv6Addr>,
    inner_src: Option<Endpoint6>,
    inner_dst: Option<Endpoint6>,
) -> Result<(), Icmp6RxError> {
    if buf.data().len() < err.ip_end() || err.tunnelled || err.l4_len < 4 {
        return Err(Icmp6RxError::Mismatch);
    }
    let d = buf.data_mut();
    let mut icmp_csum = rd16(d, err.icmp + 2);
    // The outer addresses: no header checksum in IPv6, but the ICMPv6 pseudo-header.
    for (a, at) in [(outer_src, L3_OFFSET + 8), (outer_dst, L3_OFFSET + 24)] {
        let Some(a) = a else { continue };
        let old = rd_addr(d, at);
        icmp_csum = checksum::update_addr_v6(icmp_csum, old, a);
        d[at..at + 16].copy_from_slice(&a.octets());
    }
    let (q, l4) = (err.quote, err.l4);
    let udp = err.embedded.proto == L4Proto::Udp;
    let l4_csum_at = match err.embedded.proto {
        L4Proto::Udp if err.l4_len >= 8 => Some(l4 + 6),
        L4Proto::Tcp if err.l4_len >= 18 => Some(l4 + 16),
        _ => None,
    };
    let mut l4_csum = l4_csum_at.map(|at| rd16(d, at));
    if udp && l4_csum == Some(0) {
        l4_csum = None;
    }
    for (ep, addr_at, port_at) in [(inner_src, q + 8, l4), (inner_dst, q + 24, l4 + 2)] {
        let Some(ep) = ep else { continue };
        let (old_addr, old_port) = (rd_addr(d, addr_at), rd16(d, port_at));
        if let Some(c) = l4_csum.as_mut() {
            *c = checksum::update_addr_v6(*c, old_addr, ep.addr);
            *c = checksum::update16(*c, old_port, ep.port);
        }
        put_addr(d, addr_at, ep.addr, &mut icmp_csum);
        put16(d, port_at, ep.port, &mut icmp_csum);
    }
    if let (Some(at), Some(c)) = (l4_csum_at, l4_csum) {
        let c = if udp && c == 0 { 0xffff } else { c };
        put16(d, at, c, &mut icmp_csum);
    }
    d[err.icmp + 2..err.icmp + 4].copy_from_slice(&icmp_csum.to_be_bytes());
    Ok(())
}

/// Moves the quoted TCP header's sequence number by `seq_delta` and its acknowledgement
/// number by `ack_delta` (both wrapping), for a SYN-proxied IPv6 connection, whose two
/// sides number the server's bytes differently (see `crate::synproxy`; the IPv6 form of
/// `super::icmp_err::shift_quoted_tcp`: a stack checks the quoted sequence number of an
/// error against what it has in flight, Linux's `tcp_v6_err` too). Each number is changed
/// only when the quote holds it; the quoted TCP checksum, when quoted, and the ICMPv6
/// checksum are updated incrementally. A UDP quote is left as it is. Call after
/// [`translate`], on the same `err`.
///
/// # Errors
///
/// [`Icmp6RxError::Mismatch`] when `err` does not fit the frame or is of a tunnelled
/// quote; the buffer is then unchanged.
pub fn shift_quoted_tcp<B: PacketBuf>(
    buf: &mut B,
    err: &Icmp6ErrView,
    seq_delta: u32,
    ack_delta: u32,
) -> Result<(), Icmp6RxError> {
    if buf.data().len() < err.ip_end() || err.tunnelled {
        return Err(Icmp6RxError::Mismatch);
    }
    if err.embedded.proto != L4Proto::Tcp {
        return Ok(());
    }
    let d = buf.data_mut();
    let l4 = err.l4;
    let mut icmp_csum = rd16(d, err.icmp + 2);
    let l4_csum_at = (err.l4_len >= 18).then_some(l4 + 16);
    let mut l4_csum = l4_csum_at.map(|at| rd16(d, at));
    for (at, delta, quoted) in [(l4 + 4, seq_delta, err.l4_len >= 8), (l4 + 8, ack_delta, err.l4_len >= 12)] {
        if delta == 0 || !quoted {
            continue;
        }
        let old = u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
        let new = old.wrapping_add(delta);
        if let Some(c) = l4_csum.as_mut() {
            *c = checksum::update32(*c, old, new);
        }
        put16(d, at, (new >> 16) as u16, &mut icmp_csum);
        put16(d, at + 2, new as u16, &mut icmp_csum);
    }
    if let (Some(at), Some(c)) = (l4_csum_at, l4_csum) {
        put16(d, at, c, &mut icmp_csum);
    }
    d[err.icmp + 2..err.icmp + 4].copy_from_slice(&icmp_csum.to_be_bytes());
    Ok(())
}

/// Turns a packet too big about rvs's IPv6-in-IPv6 packet (`err`, [`parse`]d from `buf`,
/// [`Icmp6ErrView::tunnelled`]) into a packet too big from `our_addr` (the VIP) to the
/// client, about the client's own packet: the quote becomes the inner quoted packet (at
/// most [`MAX_QUOTE`] bytes), the MTU the reported one less the 40-byte outer header,
/// never below [`MIN_MTU`] (RFC 8201 §4; as `tunnel6::encap` reports its own), the rest
/// as [`packet_too_big`] builds it. Returns the client (where the error goes).
///
/// # Errors
///
/// [`Icmp6ErrError::Malformed`] when `err` is no tunnelled packet too big of this frame;
/// [`Icmp6ErrError::NotUnicast`] when the quoted source is no unicast node. The buffer
/// is then unchanged.
pub fn tunnel_too_big<B: PacketBuf>(
    buf: &mut B,
    err: &Icmp6ErrView,
    our_addr: Ipv6Addr,
) -> Result<Ipv6Addr, Icmp6ErrError> {
    let Some(mtu) = err.embedded.mtu.filter(|_| err.tunnelled) else { return Err(Icmp6ErrError::Malformed) };
    if buf.data().len() < err.ip_end() || err.quote >= err.ip_end() {
        return Err(Icmp6ErrError::Malformed);
    }
    let client = err.embedded.src.addr;
    if !is_unicast_node(client) {
        return Err(Icmp6ErrError::NotUnicast);
    }
    let mtu = mtu.saturating_sub(40).max(MIN_MTU as u32);
    let quote_len = (err.ip_end() - err.quote).min(MAX_QUOTE);
    // The quote moves towards the front: the frame only shrinks.
    let frame = buf.data_mut();
    frame.copy_within(err.quote..err.quote + quote_len, L3_OFFSET + HEAD);
    let _ = buf.set_len(L3_OFFSET + HEAD + quote_len);
    write_error_head(buf.data_mut(), quote_len, our_addr, client, (ICMPV6_PACKET_TOO_BIG, 0, mtu));
    Ok(client)
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

    /// The receiving half. Every checksum constant below was computed outside rvs
    /// (python3: struct and an RFC 1071 sum over the RFC 8200 pseudo-header, the whole
    /// message or segment summed afresh), not with this code or by incremental updates.
    mod rx {
        use super::super::*;
        use super::a;
        use crate::wire::icmpv6::ICMPV6_PORT_UNREACH;
        use rvs_drivers::mem::MemBuf;

        const C: &str = "2001:db8:10::2";
        const VIP: &str = "2001:db8:10::100";
        const RS: &str = "2001:db8:20::11";
        const L: &str = "2001:db8:20::200";
        const R: &str = "2001:db8:10::1";
        const P: &str = "2001:db8:20::1";

        fn ip6(src: &str, dst: &str, nh: u8, hl: u8, payload: &[u8]) -> Vec<u8> {
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            p.extend_from_slice(&[nh, hl]);
            p.extend_from_slice(&a(src).octets());
            p.extend_from_slice(&a(dst).octets());
            p.extend_from_slice(payload);
            p
        }

        fn eth(l3: &[u8]) -> Vec<u8> {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
            f.extend_from_slice(l3);
            f
        }

        fn udp(sp: u16, dp: u16, csum: u16, data: &[u8]) -> Vec<u8> {
            let mut s = Vec::new();
            for w in [sp, dp, 8 + data.len() as u16, csum] {
                s.extend_from_slice(&w.to_be_bytes());
            }
            s.extend_from_slice(data);
            s
        }

        /// A 20-byte TCP header (PSH|ACK, window 65535) and `data`.
        fn tcp(sp: u16, dp: u16, seq: u32, ack: u32, csum: u16, data: &[u8]) -> Vec<u8> {
            let mut s = Vec::new();
            s.extend_from_slice(&sp.to_be_bytes());
            s.extend_from_slice(&dp.to_be_bytes());
            s.extend_from_slice(&seq.to_be_bytes());
            s.extend_from_slice(&ack.to_be_bytes());
            s.extend_from_slice(&[0x50, 0x18, 0xff, 0xff]);
            s.extend_from_slice(&csum.to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            s.extend_from_slice(data);
            s
        }

        fn icmp6(ty: u8, code: u8, csum: u16, rest: u32, quote: &[u8]) -> Vec<u8> {
            let mut m = vec![ty, code];
            m.extend_from_slice(&csum.to_be_bytes());
            m.extend_from_slice(&rest.to_be_bytes());
            m.extend_from_slice(quote);
            m
        }

        fn data32() -> Vec<u8> {
            (0..32).collect()
        }

        /// The server's port unreachable about a NAT66 UDP datagram `C:5000 → RS:5353`,
        /// and what the client must get: from the VIP, about `C:5000 → VIP:53`.
        fn nat66_port_unreachable() -> (Vec<u8>, Vec<u8>) {
            let q = ip6(C, RS, 17, 63, &udp(5000, 5353, 0xf225, b"hi!!"));
            let before = eth(&ip6(RS, C, 58, 64, &icmp6(1, ICMPV6_PORT_UNREACH, 0x31a2, 0, &q)));
            let q = ip6(C, VIP, 17, 63, &udp(5000, 53, 0x05fb, b"hi!!"));
            let after = eth(&ip6(VIP, C, 58, 64, &icmp6(1, ICMPV6_PORT_UNREACH, 0x30c3, 0, &q)));
            (before, after)
        }

        #[test]
        fn nat66_port_unreachable_golden() {
            let (before, after) = nat66_port_unreachable();
            let err = parse(&before).unwrap();
            assert_eq!(err.ip_src(), a(RS));
            assert!(!err.tunnelled());
            let e = err.embedded();
            assert_eq!((e.icmp_type, e.icmp_code, e.mtu, e.proto), (1, 4, None, L4Proto::Udp));
            assert_eq!((e.src, e.dst), (Endpoint6::new(a(C), 5000), Endpoint6::new(a(RS), 5353)));
            let mut b = MemBuf::from_frame(&before);
            translate(&mut b, &err, Some(a(VIP)), None, None, Some(Endpoint6::new(a(VIP), 53))).unwrap();
            assert_eq!(b.data(), &after[..]);
            assert!(parse(b.data()).is_ok());
        }

        #[test]
        fn fullnat66_packet_too_big_from_the_client_side_golden() {
            // A router on the client's side about the reply VIP:80 → C:40000; the server
            // must get it from the local address about RS:8080 → L:1025.
            let q = ip6(VIP, C, 6, 64, &tcp(80, 40000, 0x1122_3344, 0x5566_7788, 0xb432, &data32()));
            let before = eth(&ip6(R, VIP, 58, 60, &icmp6(2, 0, 0x351c, 1400, &q)));
            let q = ip6(RS, L, 6, 64, &tcp(8080, 1025, 0x1122_3344, 0x5566_7788, 0x2c03, &data32()));
            let after = eth(&ip6(L, RS, 58, 60, &icmp6(2, 0, 0x33ec, 1400, &q)));
            let err = parse(&before).unwrap();
            assert_eq!(err.embedded().mtu, Some(1400));
            assert_eq!(err.embedded().proto, L4Proto::Tcp);
            let mut b = MemBuf::from_frame(&before);
            let (server, local) = (Endpoint6::new(a(RS), 8080), Endpoint6::new(a(L), 1025));
            translate(&mut b, &err, Some(a(L)), Some(a(RS)), Some(server), Some(local)).unwrap();
            assert_eq!(b.data(), &after[..]);
        }

        #[test]
        fn tunnel_packet_too_big_golden() {
            // A router on the way to the server about our IPv6-in-IPv6 packet: the
            // client gets a packet too big from the VIP about its own packet, MTU − 40.
            let inner = ip6(C, VIP, 6, 63, &tcp(40000, 80, 1, 2, 0xc584, &data32()));
            let outer = ip6(P, RS, 41, 64, &inner);
            let before = eth(&ip6(R, P, 58, 64, &icmp6(2, 0, 0x5083, 1400, &outer)));
            let after = eth(&ip6(VIP, C, 58, 64, &icmp6(2, 0, 0x3544, 1360, &inner)));
            let err = parse(&before).unwrap();
            assert!(err.tunnelled());
            let e = err.embedded();
            assert_eq!((e.src, e.dst), (Endpoint6::new(a(C), 40000), Endpoint6::new(a(VIP), 80)));
            // No plain translation of a tunnelled quote.
            let mut b = MemBuf::from_frame(&before);
            assert_eq!(translate(&mut b, &err, Some(a(VIP)), None, None, None), Err(Icmp6RxError::Mismatch));
            assert_eq!(b.data(), &before[..]);
            assert_eq!(tunnel_too_big(&mut b, &err, a(VIP)), Ok(a(C)));
            assert_eq!(b.data(), &after[..]);
            // A tiny reported MTU gives the IPv6 minimum, never less.
            let mut small = before.clone();
            small[14 + 40 + 4..14 + 40 + 8].copy_from_slice(&1300u32.to_be_bytes());
            let csum = u16::from_be_bytes([small[14 + 42], small[14 + 43]]);
            let csum = checksum::update32(csum, 1400, 1300);
            small[14 + 42..14 + 44].copy_from_slice(&csum.to_be_bytes());
            let err = parse(&small).unwrap();
            let mut b = MemBuf::from_frame(&small);
            tunnel_too_big(&mut b, &err, a(VIP)).unwrap();
            assert_eq!(&b.data()[14 + 44..14 + 48], &1280u32.to_be_bytes());
            // Not a packet too big: nothing to tell the client.
            let (nat, _) = nat66_port_unreachable();
            let err = parse(&nat).unwrap();
            let mut b = MemBuf::from_frame(&nat);
            assert_eq!(tunnel_too_big(&mut b, &err, a(VIP)), Err(Icmp6ErrError::Malformed));
            assert_eq!(b.data(), &nat[..]);
        }

        /// Rebuilds `f`'s ICMPv6 message with its quote replaced by `quote` (type and
        /// rest kept) and a correct checksum (filled by the wire code: these frames test
        /// the refusals, not the sums).
        fn with_quote(f: &[u8], quote: &[u8]) -> Vec<u8> {
            let mut m = f[14 + 40..14 + 48].to_vec();
            m.extend_from_slice(quote);
            let src = Ipv6Packet::new_unchecked(&f[14..]).src_addr();
            let dst = Ipv6Packet::new_unchecked(&f[14..]).dst_addr();
            let mut out = eth(&ip6(&src.to_string(), &dst.to_string(), 58, 64, &m));
            Icmpv6Packet::new_unchecked(&mut out[14 + 40..]).fill_checksum(src, dst);
            out
        }

        #[test]
        fn bad_input_is_refused_with_its_reason() {
            let (good, _) = nat66_port_unreachable();
            let q = good[14 + 48..].to_vec();
            let mut cases: Vec<(Vec<u8>, Icmp6RxError)> = vec![
                // Cut inside the quoted IPv6 header, inside the ports.
                (with_quote(&good, &q[..39]), Icmp6RxError::QuoteTruncated),
                (with_quote(&good, &q[..43]), Icmp6RxError::QuoteTruncated),
                // An error about an ICMPv6 error (and about an echo): no flow of ours.
                (
                    with_quote(&good, &ip6(C, RS, 58, 64, &[1, 4, 0, 0, 0, 0, 0, 0])),
                    Icmp6RxError::UnsupportedProtocol(58),
                ),
                (
                    with_quote(&good, &ip6(C, RS, 58, 64, &[128, 0, 0, 0, 0, 0, 0, 0])),
                    Icmp6RxError::UnsupportedProtocol(58),
                ),
                // A quoted non-first fragment; a quote cut inside its fragment header.
                (
                    with_quote(&good, &ip6(C, RS, 44, 64, &[17, 0, 0, 8, 0, 0, 0, 1, 0xff, 0xff])),
                    Icmp6RxError::QuoteFragment,
                ),
                (with_quote(&good, &ip6(C, RS, 44, 64, &[17, 0, 0, 0])), Icmp6RxError::QuoteTruncated),
                // A quoted chain rvs refuses (ESP); a quote that is not IPv6.
                (with_quote(&good, &ip6(C, RS, 50, 64, &[0; 16])), Icmp6RxError::QuoteMalformed),
                (
                    with_quote(&good, &{
                        let mut v = q.clone();
                        v[0] = 0x45;
                        v
                    }),
                    Icmp6RxError::QuoteMalformed,
                ),
                // Not an error: an echo request, a neighbour solicitation.
                (eth(&ip6(C, VIP, 58, 64, &[128, 0, 0, 0, 0, 0, 0, 0])), Icmp6RxError::NotAnError(128)),
                (eth(&ip6(C, VIP, 58, 255, &[135, 0, 0, 0, 0, 0, 0, 0])), Icmp6RxError::NotAnError(135)),
                // Not ICMPv6; cut inside the ICMPv6 header; cut inside the fixed header.
                (eth(&ip6(C, VIP, 17, 64, &udp(1, 2, 0, &[]))), Icmp6RxError::NotIcmp),
                (eth(&ip6(C, VIP, 58, 64, &[1, 4, 0])), Icmp6RxError::Malformed),
                (good[..40].to_vec(), Icmp6RxError::Malformed),
                // Fragmented: a first fragment of an ICMPv6 error.
                (
                    eth(&ip6(RS, C, 44, 64, &[58, 0, 0, 1, 0, 0, 0, 7, 1, 4, 0, 0, 0, 0, 0, 0])),
                    Icmp6RxError::Fragmented,
                ),
            ];
            // A bad checksum.
            let mut bad = good.clone();
            bad[14 + 42] ^= 0x01;
            cases.push((bad, Icmp6RxError::BadChecksum));
            for (f, want) in cases {
                assert_eq!(parse(&f).map(|_| ()), Err(want), "{f:02x?}");
            }
            assert_eq!(DropReason::from(Icmp6RxError::BadChecksum), DropReason::Icmp6BadChecksum);
            assert_eq!(DropReason::from(Icmp6RxError::UnsupportedProtocol(58)), DropReason::Icmp6Unhandled);
            assert_eq!(DropReason::from(Icmp6RxError::QuoteTruncated), DropReason::Icmp6Malformed);
        }

        #[test]
        fn a_quote_behind_extension_headers_is_found_and_translated() {
            // The quote carries an 8-byte destination options header before UDP; the
            // rewrite leaves it alone and the checksum still verifies.
            let (good, _) = nat66_port_unreachable();
            let q = &good[14 + 48..];
            let mut payload = vec![17, 0, 1, 4, 0, 0, 0, 0];
            payload.extend_from_slice(&q[40..]);
            let f = with_quote(&good, &ip6(C, RS, 60, 63, &payload));
            let err = parse(&f).unwrap();
            assert_eq!(err.embedded().dst, Endpoint6::new(a(RS), 5353));
            let mut b = MemBuf::from_frame(&f);
            translate(&mut b, &err, Some(a(VIP)), None, None, Some(Endpoint6::new(a(VIP), 53))).unwrap();
            assert!(parse(b.data()).is_ok());
            assert_eq!(&b.data()[14 + 48 + 40..14 + 48 + 48], &[17, 0, 1, 4, 0, 0, 0, 0]);
        }

        proptest::proptest! {
            /// Any bytes after the Ethernet header, and any single-byte corruption of a
            /// valid error: no panic, and a refused frame is left as it was.
            #[test]
            fn no_input_panics(
                tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                at in 0usize..120,
                xor in 1u8..=255,
            ) {
                let _ = parse(&eth(&tail));
                let (good, _) = nat66_port_unreachable();
                let mut f = good.clone();
                let i = 14 + at % (f.len() - 14);
                f[i] ^= xor;
                let mut b = MemBuf::from_frame(&f);
                match parse(&f) {
                    Ok(err) => {
                        let ep = Endpoint6::new(a(VIP), 53);
                        let _ = translate(&mut b, &err, Some(a(VIP)), None, None, Some(ep));
                        let _ = tunnel_too_big(&mut b, &err, a(VIP));
                    }
                    Err(_) => proptest::prop_assert_eq!(b.data(), &f[..]),
                }
            }
        }

        #[test]
        fn every_cut_of_the_quote_parses_or_is_refused_and_translations_keep_the_checksum() {
            for (quoted, proto) in [
                (ip6(C, RS, 17, 63, &udp(5000, 5353, 0xf225, b"hi!!")), L4Proto::Udp),
                // The quoted TCP checksum's value does not matter here (no golden).
                (ip6(VIP, C, 6, 64, &tcp(80, 40000, 7, 9, 0, &data32())), L4Proto::Tcp),
            ] {
                let (good, _) = nat66_port_unreachable();
                for cut in 0..=quoted.len() {
                    let f = with_quote(&good, &quoted[..cut]);
                    let Ok(err) = parse(&f) else {
                        assert!(cut < 44, "cut {cut} refused");
                        continue;
                    };
                    assert!(cut >= 44);
                    assert_eq!(err.embedded().proto, proto);
                    let mut b = MemBuf::from_frame(&f);
                    let ep = Endpoint6::new(a(L), 1025);
                    translate(&mut b, &err, Some(a(VIP)), Some(a(C)), Some(ep), Some(ep)).unwrap();
                    // The incremental ICMPv6 checksum equals a full one.
                    let ip = Ipv6Packet::new_checked(&b.data()[14..]).unwrap();
                    let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
                    assert!(msg.verify_checksum(ip.src_addr(), ip.dst_addr()), "cut {cut}");
                }
            }
        }
    }
}
