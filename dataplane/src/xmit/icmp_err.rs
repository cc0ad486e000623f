//! ICMP errors: generating them (fragmentation needed, time exceeded) and translating the
//! ones that concern a flow rvs rewrites.
//!
//! # Generating (RFC 792, RFC 1191, RFC 1812 §4.3.2)
//!
//! [`frag_needed`] and [`time_exceeded`] turn the offending frame **in place** into the
//! error for its sender, with no allocation:
//!
//! ```text
//! before: | Ethernet 14 | IPv4 header (20..60) | payload ...                         |
//! after:  | Ethernet 14 | new IPv4 20 | ICMP 8 | IPv4 header (20..60) | 8 bytes payload |
//! ```
//!
//! * The quote is the offending IPv4 header *as the buffer holds it at the call* (options
//!   included) and the first 8 bytes of its payload — or the whole payload when shorter —
//!   which is what RFC 792 requires and carries the TCP/UDP ports the sender needs to find
//!   its socket. The rest of the frame is trimmed; a short frame is grown at the tail
//!   (`set_len`), and the quote moved with one `copy_within`.
//! * New IPv4 header: source `our_addr` (for rvs the VIP the client talked to, so that the
//!   client's stack accepts it for that destination), destination the offending packet's
//!   source, TOS 0xc0 (precedence "internetwork control", RFC 1812 §4.3.2.5, as Linux),
//!   identification copied from the offending packet (distinct per offending datagram, and
//!   the error is far too small to be fragmented), DF clear, TTL [`ERROR_TTL`], protocol
//!   ICMP, header checksum computed.
//! * ICMP: type/code, next-hop MTU in the low 16 bits of the second word for
//!   "fragmentation needed" (RFC 1191 §4; the high 16 bits zero), zero otherwise.
//! * **Checksums are computed in full**, not incrementally: the message is fresh, small
//!   (8 + at most 60 + 8 = 76 bytes of ICMP, 36 without IP options) and rare.
//! * Ethernet MACs are left for the neighbour layer; the caller routes the error to the
//!   new destination.
//! * Like a router (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7), no error is generated about an
//!   ICMP error, a non-first fragment, a packet sent to a broadcast or multicast address
//!   (IP or Ethernet), or a packet whose source is not a unicast host address (0/8,
//!   loopback, multicast, 240/4, broadcast): these return an error, buffer unchanged, and
//!   the caller drops and counts. Rate limiting (RFC 1812 §4.3.2.8) is the caller's.
//!
//! # Receiving and translating
//!
//! rvs receives ICMP errors (types 3, 4, 5, 11, 12) about packets it *sent*: a real
//! server's "port unreachable" about a packet rvs forwarded to it (NAT, Full-NAT), a
//! router's "fragmentation needed" on the way to the server, or a client-side error about
//! a reply rvs forwarded to the client.
//!
//! * [`parse`] extracts the flow the error is about from the quoted header. **The
//!   quoted packet travelled from `src` to `dst` — the direction opposite to the error**:
//!   an error from a real server about `L:lp → RS:rp` (Full-NAT) arrives as `RS → L`, and
//!   the connection is found exactly as for a packet `RS:rp → L:lp`, i.e. look up
//!   `(proto, from = embedded.dst, to = embedded.src)`.
//! * [`translate`] then rewrites the error, using what [`parse`] found (the frame is
//!   parsed once), the way the flow itself is rewritten in that
//!   direction, as LVS's `ip_vs_nat_icmp` and DPVS's `icmp_xmit` do: outer addresses,
//!   quoted addresses and ports. E.g. NAT: the server's port unreachable `RS → C` about
//!   `C:cp → RS:rp` becomes `VIP → C` about `C:cp → VIP:vp` — what the client sent.
//! * Checksums in [`translate`] are all **incremental** (RFC 1624), including the ICMP
//!   checksum over the whole message: an error can quote up to 576 bytes (Linux), and a
//!   message corrupted on the way stays detectably corrupt instead of being "repaired".
//!   The quoted TCP/UDP checksum covers a segment of which we hold only a part; it is
//!   adjusted incrementally for the pseudo-header and port changes when the quote reaches
//!   it — always for UDP (bytes 6..8, within the 8 bytes of RFC 792), for TCP only when
//!   at least 18 bytes of its header are quoted (Linux quotes up to 576 bytes; a minimal
//!   quote stops at the sequence number). A quoted UDP checksum of 0 ("none") stays 0.
//!   A quote that ends in the middle of the checksum (17 TCP or 7 UDP bytes) leaves that
//!   lone byte as it was: one byte of a checksum cannot be adjusted on its own.
//! * Only TCP and UDP quotes are handled (rvs's flows); other quoted protocols, quotes of
//!   non-first fragments and quotes too short to hold the ports are refused with a reason.
//!
//! Every function validates before it writes (the translation, by way of its [`parse`]):
//! on `Err` the buffer is unchanged, and no input — truncated, garbage, lying length
//! fields — makes any of them panic.

use std::net::Ipv4Addr;

use rvs_drivers::PacketBuf;

use super::Endpoint;
use crate::stats::DropReason;
use crate::wire::{
    checksum, EthernetFrame, IcmpPacket, Ipv4Packet, WireError, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED,
    ICMP_TIME_EXCEEDED, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};

/// ICMP type: source quench (deprecated by RFC 6633, still an error type).
pub const ICMP_SOURCE_QUENCH: u8 = 4;
/// ICMP type: redirect.
pub const ICMP_REDIRECT: u8 = 5;
/// ICMP type: parameter problem.
pub const ICMP_PARAM_PROBLEM: u8 = 12;
/// Code of [`ICMP_TIME_EXCEEDED`]: time to live exceeded in transit.
pub const ICMP_TTL_EXCEEDED: u8 = 0;

/// TTL of the errors rvs originates (Linux's default `ip_default_ttl`).
pub const ERROR_TTL: u8 = 64;
/// TOS of the errors rvs originates: precedence 6, internetwork control (RFC 1812
/// §4.3.2.5), as Linux's `icmp_send`.
pub const ERROR_TOS: u8 = 0xc0;
/// Bytes of the offending packet's payload quoted after its IP header (RFC 792).
pub const QUOTED_PAYLOAD_LEN: usize = 8;

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
const IP_MIN: usize = Ipv4Packet::<&[u8]>::MIN_HEADER_LEN;
const ICMP_HDR: usize = IcmpPacket::<&[u8]>::HEADER_LEN;

/// Why an ICMP error was not generated, parsed or translated. The buffer is unchanged in
/// every case; each variant is a distinct drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IcmpErrError {
    /// The frame does not hold a valid IPv4 packet (or ICMP header) after a 14-byte
    /// Ethernet header.
    #[error("malformed packet: {0}")]
    Malformed(WireError),
    /// The IPv4 packet does not carry ICMP.
    #[error("not an ICMP packet")]
    NotIcmp,
    /// The ICMP message is not an error (types 3, 4, 5, 11, 12); carries the type.
    #[error("ICMP type {0} is not an error")]
    NotAnError(u8),
    /// The ICMP message arrived fragmented (rvs does not reassemble).
    #[error("ICMP error arrived as an IPv4 fragment")]
    Fragmented,
    /// The ICMP checksum does not verify.
    #[error("bad ICMP checksum")]
    BadChecksum,
    /// The quoted datagram is cut short: less than its IP header plus the 4 bytes of ports.
    #[error("quoted datagram truncated")]
    QuoteTruncated,
    /// The quoted datagram is not IPv4 or its IHL is below 5.
    #[error("quoted datagram is not a valid IPv4 header")]
    QuoteMalformed,
    /// The quoted datagram is a non-first fragment: it has no TCP/UDP header.
    #[error("quoted datagram is a non-first fragment")]
    QuoteFragment,
    /// The quoted protocol is neither TCP nor UDP; carries the protocol.
    #[error("quoted IP protocol {0} is not TCP or UDP")]
    UnsupportedProtocol(u8),
    /// No error is sent about an ICMP error (RFC 1122 §3.2.2).
    #[error("no ICMP error about an ICMP error")]
    AboutIcmpError,
    /// No error is sent about a non-first fragment (RFC 1122 §3.2.2).
    #[error("no ICMP error about a non-first fragment")]
    AboutFragment,
    /// No error is sent to a source that is not a unicast host address, nor about a packet
    /// sent to a broadcast or multicast address (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7).
    #[error("no ICMP error for a non-unicast source or destination")]
    NotUnicast,
    /// The buffer has too little tailroom to hold the error (short offending packets grow).
    #[error("no room in the buffer for the ICMP error")]
    NoRoom,
}

/// The drop reason of an ICMP error that could not be parsed or translated: not an
/// error (or not ICMP) is `icmp_unhandled`, a bad checksum `icmp_bad_checksum`, anything
/// else about its shape `icmp_malformed`. (Failing to *build* an error of ours is
/// counted by the caller as `icmp_not_sent`.)
impl From<IcmpErrError> for DropReason {
    fn from(e: IcmpErrError) -> Self {
        match e {
            // Well formed, but nothing rvs translates: an error about a packet that is
            // neither TCP nor UDP (an ICMP message, or an IPIP packet of a tunnel flow)
            // is unhandled, not malformed.
            IcmpErrError::NotAnError(_) | IcmpErrError::NotIcmp | IcmpErrError::UnsupportedProtocol(_) => {
                DropReason::IcmpUnhandled
            }
            IcmpErrError::BadChecksum => DropReason::IcmpBadChecksum,
            _ => DropReason::IcmpMalformed,
        }
    }
}

/// The flow an ICMP error is about, from its quoted header.
///
/// `src → dst` is the direction **the quoted packet** travelled — a packet rvs sent — so
/// the opposite of the error's own direction. To find the connection, look up as for a
/// packet from `dst` to `src` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Embedded {
    /// ICMP type of the error (3, 4, 5, 11 or 12).
    pub icmp_type: u8,
    /// ICMP code of the error.
    pub icmp_code: u8,
    /// The next-hop MTU of a "fragmentation needed" (type 3 code 4; RFC 1191), else `None`.
    /// Old routers send 0 (RFC 1191 §5).
    pub next_hop_mtu: Option<u16>,
    /// The quoted packet's protocol: [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub proto: u8,
    /// The quoted packet's source address and port.
    pub src: Endpoint,
    /// The quoted packet's destination address and port.
    pub dst: Endpoint,
}

/// Turns the offending packet in `buf` in place into an ICMP destination unreachable,
/// fragmentation needed and DF set (type 3 code 4) from `our_addr` to the packet's source,
/// carrying `next_hop_mtu` (RFC 1191). See the module docs for the exact construction and
/// when no error is generated.
///
/// # Errors
///
/// [`IcmpErrError::Malformed`] for a frame without a valid IPv4 header; the RFC 1122
/// suppressions [`IcmpErrError::AboutIcmpError`], [`IcmpErrError::AboutFragment`],
/// [`IcmpErrError::NotUnicast`]; [`IcmpErrError::NoRoom`] when a short packet cannot
/// grow. The buffer is then unchanged.
pub fn frag_needed<B: PacketBuf>(buf: &mut B, our_addr: Ipv4Addr, next_hop_mtu: u16) -> Result<(), IcmpErrError> {
    build_error(buf, our_addr, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, u32::from(next_hop_mtu))
}

/// Turns the offending packet in `buf` in place into an ICMP time exceeded in transit
/// (type 11 code 0) from `our_addr` to the packet's source. Same construction and rules
/// as [`frag_needed`].
///
/// # Errors
///
/// As [`frag_needed`].
pub fn time_exceeded<B: PacketBuf>(buf: &mut B, our_addr: Ipv4Addr) -> Result<(), IcmpErrError> {
    build_error(buf, our_addr, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, 0)
}

/// Whether an ICMP type is an error (RFC 1122 §3.2.2), for the "no error about an error"
/// rule. Unknown types count as errors, as Linux's `icmp_send` does, to stay on the safe
/// side of a storm.
#[must_use]
pub const fn is_error_type(t: u8) -> bool {
    !matches!(t, 0 | 8 | 9 | 10 | 13..=18)
}

/// Whether an ICMP type is an error that quotes a datagram rvs handles (3, 4, 5, 11, 12).
const fn quotes_datagram(t: u8) -> bool {
    matches!(t, ICMP_DEST_UNREACH | ICMP_SOURCE_QUENCH | ICMP_REDIRECT | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM)
}

/// Whether an address may be the source of a packet we answer with an error.
fn is_unicast_host(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(o[0] == 0 || a.is_loopback() || a.is_multicast() || o[0] >= 240)
}

fn build_error<B: PacketBuf>(
    buf: &mut B,
    our_addr: Ipv4Addr,
    icmp_type: u8,
    icmp_code: u8,
    rest_of_header: u32,
) -> Result<(), IcmpErrError> {
    // Validate and read everything first; write nothing until all checks pass.
    let frame = buf.data();
    let l3 = frame.get(ETH_LEN..).ok_or(IcmpErrError::Malformed(WireError::Truncated))?;
    let ip = Ipv4Packet::new_checked(l3).map_err(IcmpErrError::Malformed)?;
    if ip.frag_offset() != 0 {
        return Err(IcmpErrError::AboutFragment);
    }
    if ip.protocol() == IPPROTO_ICMP && ip.payload().first().is_some_and(|&t| is_error_type(t)) {
        return Err(IcmpErrError::AboutIcmpError);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let eth_multicast = frame[0] & 0x01 != 0; // group bit of the destination MAC
    if !is_unicast_host(src) || dst.is_multicast() || dst.is_broadcast() || eth_multicast {
        return Err(IcmpErrError::NotUnicast);
    }
    let ident = ip.ident();
    let quote_len = ip.header_len() + ip.payload().len().min(QUOTED_PAYLOAD_LEN);
    let new_len = ETH_LEN + IP_MIN + ICMP_HDR + quote_len;
    if !buf.set_len(new_len) {
        return Err(IcmpErrError::NoRoom);
    }

    // The quote's source (ETH_LEN..ETH_LEN + quote_len) is below new_len, so it survived
    // set_len; copy_within handles the overlap.
    let frame = buf.data_mut();
    frame.copy_within(ETH_LEN..ETH_LEN + quote_len, ETH_LEN + IP_MIN + ICMP_HDR);
    let head = ErrorHead { from: our_addr, to: src, tos: ERROR_TOS, ident, dont_frag: false, ttl: ERROR_TTL };
    write_error_head(frame, quote_len, &head, (icmp_type, icmp_code, rest_of_header));
    Ok(())
}

/// The outer IPv4 header of an ICMP error rvs writes ([`write_error_head`]): its own
/// errors (from `build_error`) and the ones NAT64 translates from ICMPv6
/// ([`super::nat64_icmp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorHead {
    /// The error's source.
    pub from: Ipv4Addr,
    /// The error's destination.
    pub to: Ipv4Addr,
    /// Type of service.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Whether DF is set.
    pub dont_frag: bool,
    /// Time to live.
    pub ttl: u8,
}

/// Writes the 20-byte IPv4 header (`head`) and the ICMP header (`msg`: type, code, rest
/// of header) of an error in front of the `quote_len`-byte quote already at
/// `ETH_LEN + 28` of `frame`, which ends where the quote does; both checksums computed
/// in full. The head every ICMP error rvs writes shares.
pub(crate) fn write_error_head(frame: &mut [u8], quote_len: usize, head: &ErrorHead, msg: (u8, u8, u32)) {
    // At most 20 + 8 + a quote bounded by the frame's data room: fits a u16.
    let ip_len = IP_MIN + ICMP_HDR + quote_len;
    let (hdr, icmp) = frame[ETH_LEN..].split_at_mut(IP_MIN);
    let mut ip = Ipv4Packet::new_unchecked(hdr);
    ip.set_version(4);
    ip.set_header_len(IP_MIN);
    ip.set_tos(head.tos);
    ip.set_total_len(ip_len as u16);
    ip.set_ident(head.ident);
    ip.set_dont_frag(head.dont_frag);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.set_ttl(head.ttl);
    ip.set_protocol(IPPROTO_ICMP);
    ip.set_src_addr(head.from);
    ip.set_dst_addr(head.to);
    ip.fill_checksum();
    let mut icmp = IcmpPacket::new_unchecked(icmp);
    icmp.set_msg_type(msg.0);
    icmp.set_code(msg.1);
    icmp.set_rest_of_header(msg.2);
    icmp.fill_checksum();
}

/// A received ICMP error about a TCP/UDP flow, parsed once by [`parse`]: what it is
/// about ([`IcmpErrView::embedded`]) and where its parts lie in the frame, which
/// [`translate`], [`ttl::forward`](super::ttl::forward) and
/// [`tunnel::encap`](super::tunnel::encap) use instead of parsing it again.
///
/// Valid for the frame it was parsed from while only header fields change (TTL,
/// addresses, ports, checksums); using it with another frame is a caller bug (every
/// access is still bounds-checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpErrView {
    /// The outer IPv4 source (who sent the error).
    ip_src: Ipv4Addr,
    /// Offset of the ICMP message.
    icmp: usize,
    /// Length of the ICMP message (up to the outer total length; padding excluded).
    icmp_len: usize,
    /// Offset of the quoted IPv4 header.
    quote: usize,
    /// Offset of the quoted TCP/UDP header.
    l4: usize,
    /// Quoted bytes of the TCP/UDP header and payload (at least 4).
    l4_len: usize,
    /// What the error is about.
    embedded: Embedded,
}

/// Validates a received ICMP error about a TCP/UDP datagram and locates its parts. Does
/// not verify the ICMP checksum.
fn locate(frame: &[u8]) -> Result<IcmpErrView, IcmpErrError> {
    let l3 = frame.get(ETH_LEN..).ok_or(IcmpErrError::Malformed(WireError::Truncated))?;
    let ip = Ipv4Packet::new_checked(l3).map_err(IcmpErrError::Malformed)?;
    if ip.protocol() != IPPROTO_ICMP {
        return Err(IcmpErrError::NotIcmp);
    }
    if ip.is_fragment() {
        return Err(IcmpErrError::Fragmented);
    }
    let msg = ip.payload();
    let icmp_pkt = IcmpPacket::new_checked(msg).map_err(IcmpErrError::Malformed)?;
    let (icmp_type, icmp_code) = (icmp_pkt.msg_type(), icmp_pkt.code());
    if !quotes_datagram(icmp_type) {
        return Err(IcmpErrError::NotAnError(icmp_type));
    }
    let next_hop_mtu =
        (icmp_type == ICMP_DEST_UNREACH && icmp_code == ICMP_FRAG_NEEDED).then(|| icmp_pkt.next_hop_mtu());

    // The quoted datagram: its IPv4 header is complete, but its total length describes
    // the original, not the quote, so Ipv4Packet::new_checked does not apply.
    let q = icmp_pkt.data();
    if q.len() < IP_MIN {
        return Err(IcmpErrError::QuoteTruncated);
    }
    let qip = Ipv4Packet::new_unchecked(q);
    let qhl = qip.header_len();
    if qip.version() != 4 || qhl < IP_MIN {
        return Err(IcmpErrError::QuoteMalformed);
    }
    if qhl > q.len() {
        return Err(IcmpErrError::QuoteTruncated);
    }
    if qip.frag_offset() != 0 {
        return Err(IcmpErrError::QuoteFragment);
    }
    let proto = qip.protocol();
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err(IcmpErrError::UnsupportedProtocol(proto));
    }
    let l4 = &q[qhl..];
    if l4.len() < 4 {
        return Err(IcmpErrError::QuoteTruncated);
    }
    let sport = u16::from_be_bytes([l4[0], l4[1]]);
    let dport = u16::from_be_bytes([l4[2], l4[3]]);
    let icmp = ETH_LEN + ip.header_len();
    let quote = icmp + ICMP_HDR;
    Ok(IcmpErrView {
        ip_src: ip.src_addr(),
        icmp,
        icmp_len: msg.len(),
        quote,
        l4: quote + qhl,
        l4_len: l4.len(),
        embedded: Embedded {
            icmp_type,
            icmp_code,
            next_hop_mtu,
            proto,
            src: Endpoint::new(qip.src_addr(), sport),
            dst: Endpoint::new(qip.dst_addr(), dport),
        },
    })
}

/// Parses a received ICMP error (types 3, 4, 5, 11, 12) in `frame` (a whole Ethernet
/// frame): the TCP/UDP flow its quoted datagram belongs to and where its parts are. The
/// ICMP checksum is verified (errors are rare, and acting on a corrupted one could
/// disturb a live connection). Remember that the quoted packet is one *we* sent: see
/// [`Embedded`].
///
/// # Errors
///
/// Any [`IcmpErrError`] naming what is wrong with the outer packet, the ICMP message or
/// the quote (e.g. [`IcmpErrError::NotAnError`], [`IcmpErrError::BadChecksum`],
/// [`IcmpErrError::QuoteTruncated`], [`IcmpErrError::UnsupportedProtocol`]).
pub fn parse(frame: &[u8]) -> Result<IcmpErrView, IcmpErrError> {
    let lay = locate(frame)?;
    let msg = frame.get(lay.icmp..lay.ip_end()).ok_or(IcmpErrError::Malformed(WireError::Truncated))?;
    if checksum::fold(checksum::sum(msg)) != 0xffff {
        return Err(IcmpErrError::BadChecksum);
    }
    Ok(lay)
}

impl IcmpErrView {
    /// What the error is about.
    #[inline]
    pub fn embedded(&self) -> &Embedded {
        &self.embedded
    }

    /// The outer IPv4 source: who sent the error.
    #[inline]
    pub fn ip_src(&self) -> Ipv4Addr {
        self.ip_src
    }

    /// Offset just past the outer IPv4 packet in the frame (where padding starts).
    #[inline]
    pub fn ip_end(&self) -> usize {
        self.icmp + self.icmp_len
    }

    /// Offsets in the frame of the ICMP message and of the quoted IPv4 header.
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

fn rd16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn rd_addr(d: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3])
}

/// Writes the 16-bit word `new` at `at` and folds the change into `icmp_csum` (the
/// checksum of a message containing `at` at an even offset from its start).
fn put16(d: &mut [u8], at: usize, new: u16, icmp_csum: &mut u16) {
    let old = rd16(d, at);
    *icmp_csum = checksum::update16(*icmp_csum, old, new);
    d[at..at + 2].copy_from_slice(&new.to_be_bytes());
}

/// Writes the address `new` at `at` and folds the change into `icmp_csum`.
fn put_addr(d: &mut [u8], at: usize, new: Ipv4Addr, icmp_csum: &mut u16) {
    let old = rd_addr(d, at);
    *icmp_csum = checksum::update_addr(*icmp_csum, old, new);
    d[at..at + 4].copy_from_slice(&new.octets());
}

/// Rewrites the ICMP error in `buf` about a TCP/UDP flow, the way the flow itself is
/// rewritten: the outer source and destination addresses, then the quoted datagram's
/// source and destination endpoints (addresses and ports). `None` leaves a field as it
/// is. All checksums — outer IPv4 header, ICMP, quoted IPv4 header, quoted TCP/UDP when
/// quoted — are updated incrementally (RFC 1624; see the module docs for the quoted L4
/// checksum). The outer TTL is not touched (the caller's [`ttl::forward`](super::ttl::forward)
/// applies as for any forwarded packet).
///
/// Example, NAT (LVS `-m`): the real server's port unreachable `RS → C` about
/// `C:cp → RS:rp` is translated with `outer_src = Some(VIP)`, `inner_dst =
/// Some(VIP:vp)`; Full-NAT: `RS → L` about `L:lp → RS:rp` with `outer_src = Some(VIP)`,
/// `outer_dst = Some(C)`, `inner_src = Some(C:cp)`, `inner_dst = Some(VIP:vp)`.
///
/// `err` is the error's [`parse`] of this very frame; nothing is validated again.
///
/// # Errors
///
/// [`IcmpErrError::Malformed`] only when `err` does not fit the frame (a caller bug); the
/// buffer is then unchanged.
pub fn translate<B: PacketBuf>(
    buf: &mut B,
    err: &IcmpErrView,
    outer_src: Option<Ipv4Addr>,
    outer_dst: Option<Ipv4Addr>,
    inner_src: Option<Endpoint>,
    inner_dst: Option<Endpoint>,
) -> Result<(), IcmpErrError> {
    let lay = err;
    if buf.data().len() < lay.ip_end() {
        return Err(IcmpErrError::Malformed(WireError::Truncated));
    }
    let d = buf.data_mut();

    // Outer header: addresses with its own checksum. The ICMP checksum has no
    // pseudo-header, so it does not see these.
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH_LEN..lay.icmp]);
        if let Some(a) = outer_src {
            ip.set_src_addr_incremental(a);
        }
        if let Some(a) = outer_dst {
            ip.set_dst_addr_incremental(a);
        }
    }

    // Every offset below is within the ICMP message (locate checked the quoted header
    // and 4 bytes of L4) and at an even distance from its start (ICMP header 8, IHL a
    // multiple of 4), as RFC 1624 updates of the ICMP checksum require.
    let mut icmp_csum = rd16(d, lay.icmp + 2);
    let q = lay.quote;
    let l4 = lay.l4;
    // The quoted L4 checksum, if quoted: UDP bytes 6..8, TCP bytes 16..18.
    let l4_csum_at = match lay.embedded.proto {
        IPPROTO_UDP if lay.l4_len >= 8 => Some(l4 + 6),
        IPPROTO_TCP if lay.l4_len >= 18 => Some(l4 + 16),
        _ => None,
    };
    let udp = lay.embedded.proto == IPPROTO_UDP;
    let mut l4_csum = l4_csum_at.map(|at| rd16(d, at));
    // A UDP checksum of 0 means "none" (RFC 768) and stays 0.
    if udp && l4_csum == Some(0) {
        l4_csum = None;
    }
    let mut ip_csum = rd16(d, q + 10);

    for (ep, addr_at, port_at) in [(inner_src, q + 12, l4), (inner_dst, q + 16, l4 + 2)] {
        let Some(ep) = ep else { continue };
        let old_addr = rd_addr(d, addr_at);
        let old_port = rd16(d, port_at);
        ip_csum = checksum::update_addr(ip_csum, old_addr, ep.addr);
        if let Some(c) = l4_csum.as_mut() {
            *c = checksum::update_addr(*c, old_addr, ep.addr);
            *c = checksum::update16(*c, old_port, ep.port);
        }
        put_addr(d, addr_at, ep.addr, &mut icmp_csum);
        put16(d, port_at, ep.port, &mut icmp_csum);
    }
    put16(d, q + 10, ip_csum, &mut icmp_csum);
    if let (Some(at), Some(c)) = (l4_csum_at, l4_csum) {
        // A computed UDP 0 is sent as 0xffff (RFC 768).
        let c = if udp && c == 0 { 0xffff } else { c };
        put16(d, at, c, &mut icmp_csum);
    }
    d[lay.icmp + 2..lay.icmp + 4].copy_from_slice(&icmp_csum.to_be_bytes());
    Ok(())
}

/// Moves the quoted TCP header's sequence number by `seq_delta` and its acknowledgement
/// number by `ack_delta` (both wrapping), for a SYN-proxied connection, whose two sides
/// number the server's bytes differently (see `crate::synproxy`): a stack checks the
/// quoted sequence number of an error against what it has in flight (Linux's
/// `tcp_v4_err` ignores one outside `snd_una..snd_nxt`), so an untranslated quote would
/// make, e.g., a "fragmentation needed" about the server's data useless. Each number is
/// changed only when the quote holds it (the sequence number is in RFC 792's 8 bytes,
/// the acknowledgement needs 12); the quoted TCP checksum, when quoted, and the ICMP
/// checksum are updated incrementally. A UDP quote is left as it is. Call after
/// [`translate`], on the same `err`.
///
/// # Errors
///
/// [`IcmpErrError::Malformed`] only when `err` does not fit the frame (a caller bug); the
/// buffer is then unchanged.
pub fn shift_quoted_tcp<B: PacketBuf>(
    buf: &mut B,
    err: &IcmpErrView,
    seq_delta: u32,
    ack_delta: u32,
) -> Result<(), IcmpErrError> {
    let lay = err;
    if buf.data().len() < lay.ip_end() {
        return Err(IcmpErrError::Malformed(WireError::Truncated));
    }
    if lay.embedded.proto != IPPROTO_TCP {
        return Ok(());
    }
    let d = buf.data_mut();
    let l4 = lay.l4;
    // Even offsets from the ICMP message's start, as for `translate`.
    let mut icmp_csum = rd16(d, lay.icmp + 2);
    let l4_csum_at = (lay.l4_len >= 18).then_some(l4 + 16);
    let mut l4_csum = l4_csum_at.map(|at| rd16(d, at));
    for (at, delta, quoted) in [(l4 + 4, seq_delta, lay.l4_len >= 8), (l4 + 8, ack_delta, lay.l4_len >= 12)] {
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
    d[lay.icmp + 2..lay.icmp + 4].copy_from_slice(&icmp_csum.to_be_bytes());
    Ok(())
}
