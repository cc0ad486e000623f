//! NAT64 through Full-NAT (DPVS's FNAT with an IPv6 service and IPv4 real servers): the
//! IPv6 client talks to the IPv6 VIP, rvs sends the flow on as IPv4 from one of the
//! service's IPv4 local addresses to the IPv4 server, and translates the server's replies
//! back to IPv6 from the VIP to the client.
//!
//! # Contract
//!
//! * [`v6_to_v4`] (client → VIP): the IPv6 header (and any extension headers the receive
//!   walk accepted) is replaced by a 20-byte IPv4 header from `local` to `server`; the
//!   TCP/UDP ports become `local`'s and `server`'s; for TCP, when asked, the client's IPv6
//!   address and port go to the server in the 20-byte IPv6 TOA (below).
//! * [`v4_to_v6`] (server → IPv4 local address): the IPv4 header (options included) is
//!   replaced by a 40-byte IPv6 header from `vip` to `client`, the ports become the VIP's
//!   and the client's, and a SYN-ACK's MSS is lowered when asked (below).
//! * `buf` holds the whole Ethernet frame the layout was parsed from
//!   ([`crate::view6::L4View6`], [`crate::view::L4View`]); the Ethernet addresses are
//!   carried over for the neighbour layer to overwrite, the EtherType becomes the new
//!   family's. Ethernet padding is dropped: the frame ends where the new packet does.
//! * Nothing is allocated and the payload is not moved: the frame shrinks or grows at
//!   its front (`adj`/`prepend`), and only the headers are rewritten in place. The caller
//!   has refused a hop limit or TTL of 1 or 0 (the new header carries it decremented) and
//!   checked the MTU of the packet as received; [`v6_to_v4`] checks the TOA against `mtu`.
//!
//! # Header translation (RFC 7915 §5.1 and §4.1, as a stateful translator, RFC 6146)
//!
//! | IPv6 → IPv4 | value |
//! | --- | --- |
//! | version / IHL | 4 / 5 (no options) |
//! | TOS | the traffic class (RFC 7915 §5.1: copied) |
//! | total length | TCP/UDP segment + 20 (+ the TOA) |
//! | identification, flags | DF clear and a per-worker identification up to 1260 bytes, else 0 and DF set; no fragment (see below) |
//! | TTL | hop limit − 1 (the translator is a router) |
//! | protocol | the transport's (6 or 17); extension headers are not carried (RFC 7915 §5.1: hop-by-hop, destination and routing headers with no segments left are ignored) |
//! | checksum | computed over the 20 new bytes |
//! | addresses | the IPv4 local address, the IPv4 real server |
//!
//! DF follows RFC 7915 §5.1: clear on a translated packet of at most 1260 bytes
//! ([`DF_CLEAR_MAX`], the IPv6 minimum MTU less the 20 bytes the header shrinks), which
//! an IPv4 router may then fragment — the IPv6 client may not go below 1280 bytes, so a
//! path MTU under 1300 on the IPv4 side would otherwise leave it no size that passes —;
//! set on a larger one, whose fragmentation needed reaches the client as a packet too
//! big ([`super::nat64_icmp`]). A packet with DF clear is not atomic and needs an
//! identification unique for its addresses and protocol while it may live (RFC 6864
//! §4.2): the caller gives one from a per-worker counter. A packet with DF set is atomic
//! and goes with 0 (RFC 6864 §4.1). rvs itself never fragments a client's packet: the
//! caller checks the server link's MTU (packet too big to the client).
//!
//! | IPv4 → IPv6 | value |
//! | --- | --- |
//! | version, traffic class, flow label | 6, the TOS (RFC 7915 §4.1), 0 |
//! | payload length | the TCP/UDP segment |
//! | next header | the transport's |
//! | hop limit | TTL − 1 |
//! | addresses | the VIP, the client |
//!
//! # Checksums
//!
//! The TCP/UDP checksum is updated incrementally (RFC 1624), never summed over the
//! payload but in one case below. The IPv4 pseudo-header (source, destination, zero,
//! protocol, 16-bit length) and the IPv6 one (source, destination, 32-bit length, three
//! zero bytes and the next header) add up to the same sum but for the addresses, so the
//! update is: each old address out, each new one in, and the ports. An IPv4 address is
//! folded in as its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`): the mapped form's extra
//! word is 0xffff, which is zero in ones' complement, so its sum is the IPv4 address's.
//! With the TOA, the data-offset word, the pseudo-header length and the option's ten
//! words are added as in [`super::fullnat66::insert_toa6`].
//!
//! UDP: a checksum of 0 from the IPv6 side (invalid there, RFC 8200 §8.1) stays 0, "no
//! checksum", which IPv4 allows. An IPv4 datagram without a checksum (0) must get one on
//! IPv6: it is computed over the whole datagram (RFC 7915 §4.5 allows a translator to),
//! the only place the payload is summed. A computed 0 is sent as 0xffff.
//!
//! # TOA for the IPv6 client
//!
//! DPVS's `tcp_in_add_toa` (`src/ipvs/ip_vs_proto_tcp.c`) takes the option's length from
//! the client's family (`conn->af`, IPv6 for NAT64: `TCP_OLEN_IP6_ADDR` = 20, kind
//! `TCP_OPT_ADDR` = 254, the client's port and 16-byte address) and the MTU and the
//! length field to raise from the server side's (`tuplehash_out(conn).af`, IPv4 for
//! NAT64: "toa is always for rs"); the option goes right after the fixed TCP header. The
//! real server reads it with DPVS's `toa` kernel module, which for NAT64 keeps the IPv6
//! peer for the `TOA_SO_GET_LOOKUP` socket option (`struct toa_nat64_peer`: the IPv6
//! source address and port). [`v6_to_v4`] writes the same 20 bytes
//! ([`super::fullnat66::toa6_bytes`]) and refuses, as DPVS, when the IPv4 packet would
//! pass `mtu` or the TCP header 60 bytes ([`ToaSkip`]; the packet goes without it).
//!
//! # MSS
//!
//! The IPv6 header is 20 bytes longer than the IPv4 one, the TOA 20 bytes long:
//!
//! * Server → client segments grow by 20 bytes in translation, but their size is bounded
//!   by the MSS the *client* advertised, which it computed for an IPv6 header: a full
//!   segment comes out of rvs exactly at the client's MTU. The client's SYN is left
//!   alone.
//! * Client → server segments shrink by 20 bytes and, when they carry the TOA (the SYN
//!   and the segment that completes the handshake, which may carry data), grow by 20
//!   again. Their size is bounded by the *server's* MSS, computed for an IPv4 header on
//!   the server's link; a full segment with the TOA would pass it by 20 bytes. So the
//!   SYN-ACK's MSS is lowered by the TOA's 20 bytes on its way to the client, which is
//!   what DPVS's `tcp_out_adjust_mss` does for a connection whose client is IPv6 (it
//!   subtracts `TCP_OLEN_IP6_ADDR` by the client side's family).
//!
//! # ICMP errors and fragments
//!
//! ICMP errors about NAT64 flows are translated by [`super::nat64_icmp`] (RFC 7915 §4.2,
//! §4.3, §5.2, §5.3), with the headers written here. The client's IPv6 fragments are
//! translated one by one by [`fragment_v6_to_v4`] (RFC 7915 §5.1.1). The server's IPv4
//! fragments to a local address are translated one by one by [`v4_to_v6_fragment`] (RFC
//! 7915 §4.1): a fragment header after the IPv6 header, identification the IPv4 one in
//! its low 16 bits, offset and M copied; the first fragment's TCP/UDP header as a whole
//! packet's. Each grows by 28 bytes (20 of header, 8 of fragment header); one that then
//! passes the client port's MTU is cut into IPv6 fragments by the worker
//! ([`crate::xmit::frag::fragment_v6`]), as is an unfragmented reply with DF clear that
//! passes it once translated (RFC 7915 §4.1: a translator fragments what the IPv4 sender
//! let be fragmented; rvs cuts to the egress port's MTU, its configured threshold). A
//! reply with DF set over the MTU keeps its fragmentation needed to the server. The
//! first fragment of a UDP datagram without a checksum is dropped
//! (`nat64_udp_no_checksum`, RFC 7915 §4.5): the checksum IPv6 needs covers fragments
//! not at hand.

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_drivers::PacketBuf;

use super::fullnat::FullNatIn;
use super::fullnat66::{toa6_bytes, TOA6_LEN};
use super::l4::{self, ToaSkip};
use super::{Endpoint, Endpoint6};
use crate::stats::DropReason;
use crate::types::L4Proto;
use crate::view::{Layout, L3_OFFSET};
use crate::view6::{Layout6, IPV6_HEADER_LEN};
use crate::wire::checksum::{delta16, delta_addr_v6, finish, pseudo_header_v6, sum, update_delta};
use crate::wire::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// Length of the IPv4 header [`v6_to_v4`] writes (no options).
pub const IPV4_HEADER_LEN: usize = 20;
/// How much smaller a packet's IP header is after [`v6_to_v4`] (and larger after
/// [`v4_to_v6`] of an IPv4 packet without options).
pub const HEADER_SHRINK: usize = IPV6_HEADER_LEN - IPV4_HEADER_LEN;

/// The largest IPv4 packet [`v6_to_v4`] sends with DF clear (RFC 7915 §5.1: the IPv6
/// minimum MTU, 1280, less the 20 bytes the header shrinks; such a packet may be
/// fragmented by an IPv4 router, which an IPv6 client's 1280 bytes would always need
/// past a smaller IPv4 link).
pub const DF_CLEAR_MAX: usize = 1260;
/// Length of the IPv6 fragment header [`v4_to_v6_fragment`] writes.
pub const FRAG_HEADER_LEN: usize = 8;
/// The IPv6 fragment header's next header value (RFC 8200 §4.5).
pub const IPPROTO_FRAGMENT: u8 = 44;
/// How much longer [`v4_to_v6_fragment`] makes an IPv4 packet without options: the 20
/// bytes the header grows and the 8-byte fragment header (RFC 7915 §4.1).
pub const FRAGMENT_GROWTH: usize = HEADER_SHRINK + FRAG_HEADER_LEN;

/// Length of the Ethernet addresses carried over (the EtherType is rewritten).
const MACS_LEN: usize = 12;
/// Fixed TCP header length.
const TCP_FIXED: usize = 20;
/// UDP header length.
const UDP_FIXED: usize = 8;

/// Why [`v4_to_v6`] or [`v4_to_v6_fragment`] did not translate; the buffer is then
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Nat64Error {
    /// The buffer has too little headroom for the 20 (28 with the fragment header) more
    /// header bytes.
    #[error("no headroom for the IPv6 header")]
    NoHeadroom,
    /// The first fragment of a fragmented UDP datagram without a checksum (0): IPv6
    /// needs one, and it covers bytes in fragments not at hand (RFC 7915 §4.5 lets a
    /// translator drop these).
    #[error("fragmented UDP datagram without a checksum")]
    UdpNoChecksum,
}

/// `no_mbuf`, as the tunnel's missing headroom; `nat64_udp_no_checksum`.
impl From<Nat64Error> for DropReason {
    fn from(e: Nat64Error) -> Self {
        match e {
            Nat64Error::NoHeadroom => DropReason::NoMbuf,
            Nat64Error::UdpNoChecksum => DropReason::Nat64UdpNoChecksum,
        }
    }
}

/// The fixed header length of the transport `l4`.
fn fixed_len(l4: L4Proto) -> usize {
    match l4 {
        L4Proto::Tcp => TCP_FIXED,
        L4Proto::Udp => UDP_FIXED,
    }
}

/// Offset of the checksum in the fixed header of `l4`.
fn checksum_at(l4: L4Proto) -> usize {
    match l4 {
        L4Proto::Tcp => 16,
        L4Proto::Udp => 6,
    }
}

/// The IP protocol number of `l4`.
pub(crate) fn proto_number(l4: L4Proto) -> u8 {
    match l4 {
        L4Proto::Tcp => 6,
        L4Proto::Udp => 17,
    }
}

/// Writes into `ip4` (20 bytes) the IPv4 header every NAT64 translation writes (module
/// docs): no options, TOS `tos`, total length `total`, with `ident` `None` identification
/// 0 and DF set (an atomic datagram), with `Some(id)` identification `id` and DF clear,
/// TTL `ttl`, protocol `proto`, the addresses, and its checksum. The flow's packets and
/// the packet an ICMP error quotes ([`super::nat64_icmp`]) share it.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn write_ipv4_header(
    ip4: &mut [u8],
    tos: u8,
    total: u16,
    ident: Option<u16>,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    ip4[0] = 0x45;
    ip4[1] = tos;
    ip4[2..4].copy_from_slice(&total.to_be_bytes());
    match ident {
        None => {
            ip4[4..6].copy_from_slice(&[0, 0]);
            ip4[6] = 0x40; // DF
        }
        Some(id) => {
            ip4[4..6].copy_from_slice(&id.to_be_bytes());
            ip4[6] = 0;
        }
    }
    ip4[7] = 0;
    ip4[8] = ttl;
    ip4[9] = proto;
    ip4[10..12].copy_from_slice(&[0, 0]);
    ip4[12..16].copy_from_slice(&src.octets());
    ip4[16..20].copy_from_slice(&dst.octets());
    let ip_csum = finish(sum(&ip4[..IPV4_HEADER_LEN]));
    ip4[10..12].copy_from_slice(&ip_csum.to_be_bytes());
}

/// Writes into `ip6` (40 bytes) the IPv6 header every NAT64 translation writes (module
/// docs): traffic class `tc` (the IPv4 TOS), flow label 0, payload length `payload`,
/// next header `next`, hop limit `hop_limit`, the addresses. The flow's packets and the
/// packet an ICMPv6 error quotes ([`super::nat64_icmp`]) share it.
#[inline]
pub(crate) fn write_ipv6_header(
    ip6: &mut [u8],
    tc: u8,
    payload: u16,
    next: u8,
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) {
    ip6[0] = 0x60 | (tc >> 4);
    ip6[1] = tc << 4;
    ip6[2] = 0;
    ip6[3] = 0;
    ip6[4..6].copy_from_slice(&payload.to_be_bytes());
    ip6[6] = next;
    ip6[7] = hop_limit;
    ip6[8..24].copy_from_slice(&src.octets());
    ip6[24..40].copy_from_slice(&dst.octets());
}

/// Translates the IPv6 client → VIP packet in `buf` (parsed into `layout`, hop limit
/// above 1) into an IPv4 packet from `local` to `server` (module docs); with `toa` =
/// `Some(client)` and TCP, the 20-byte TOA is inserted unless the IPv4 packet would pass
/// `mtu` bytes or the TCP header 60 ([`FullNatIn::toa_skipped`] says why; not asked for
/// or UDP: nothing reported). A packet of at most [`DF_CLEAR_MAX`] bytes goes with DF
/// clear and identification `ident` (RFC 7915 §5.1), a larger one with DF set and
/// identification 0. Cannot fail: the frame only loses bytes at its front.
pub fn v6_to_v4<B: PacketBuf>(
    buf: &mut B,
    layout: &Layout6,
    local: Endpoint,
    server: Endpoint,
    toa: Option<Endpoint6>,
    mtu: u16,
    ident: u16,
) -> FullNatIn {
    let l4 = layout.l4();
    let (l4_at, l4_len, ip_end) = (layout.l4_offset(), layout.l4_len(), layout.ip_end());
    let fixed = fixed_len(l4);
    let mut out = FullNatIn::default();
    // Everything the new headers need is read before any byte is written.
    let frame = buf.data();
    let mut macs = [0u8; MACS_LEN];
    macs.copy_from_slice(&frame[..MACS_LEN]);
    let ip6 = &frame[L3_OFFSET..L3_OFFSET + IPV6_HEADER_LEN];
    let traffic_class = (ip6[0] << 4) | (ip6[1] >> 4);
    let hop_limit = ip6[7];
    let mut old_src = [0u8; 16];
    old_src.copy_from_slice(&ip6[8..24]);
    let mut old_dst = [0u8; 16];
    old_dst.copy_from_slice(&ip6[24..40]);
    let mut hdr = [0u8; TCP_FIXED];
    hdr[..fixed].copy_from_slice(&frame[l4_at..l4_at + fixed]);

    let mut toa_bytes = None;
    if let (Some(client), L4Proto::Tcp) = (toa, l4) {
        let tcp_hl = usize::from(hdr[12] >> 4) * 4;
        if tcp_hl + TOA6_LEN > 60 {
            out.toa_skipped = Some(ToaSkip::NoRoomForOption);
        } else if IPV4_HEADER_LEN + l4_len + TOA6_LEN > usize::from(mtu) {
            out.toa_skipped = Some(ToaSkip::ExceedsMtu);
        } else {
            toa_bytes = Some(toa6_bytes(client));
        }
    }
    let toa_len = if toa_bytes.is_some() { TOA6_LEN } else { 0 };

    // The L4 checksum: addresses, ports, and with the TOA its words, the data offset and
    // the pseudo-header's length (module docs).
    let word = |h: &[u8], at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let c_at = checksum_at(l4);
    let old_csum = word(&hdr, c_at);
    let mut delta = delta_addr_v6(old_src.into(), local.addr.to_ipv6_mapped())
        + delta_addr_v6(old_dst.into(), server.addr.to_ipv6_mapped())
        + delta16(word(&hdr, 0), local.port)
        + delta16(word(&hdr, 2), server.port);
    hdr[0..2].copy_from_slice(&local.port.to_be_bytes());
    hdr[2..4].copy_from_slice(&server.port.to_be_bytes());
    if let Some(t) = &toa_bytes {
        let old_word = word(&hdr, 12);
        hdr[12] += (TOA6_LEN as u8 / 4) << 4;
        delta += delta16(old_word, word(&hdr, 12));
        // `l4_len` + 20 fits 16 bits: checked against `mtu` above.
        delta += delta16(l4_len as u16, (l4_len + TOA6_LEN) as u16);
        delta += t.chunks_exact(2).map(|w| delta16(0, u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    }
    let mut csum = update_delta(old_csum, delta);
    if l4 == L4Proto::Udp {
        if old_csum == 0 {
            csum = 0;
        } else if csum == 0 {
            csum = 0xffff;
        }
    }
    hdr[c_at..c_at + 2].copy_from_slice(&csum.to_be_bytes());

    let total = IPV4_HEADER_LEN + l4_len + toa_len;
    let ident = (total <= DF_CLEAR_MAX).then_some(ident);
    let mut ip4 = [0u8; IPV4_HEADER_LEN];
    let ttl = hop_limit.saturating_sub(1);
    // `total` fits 16 bits: the IPv6 payload length bounds `l4_len`, and with the TOA
    // the packet was checked against `mtu`.
    write_ipv4_header(&mut ip4, traffic_class, total as u16, ident, ttl, proto_number(l4), local.addr, server.addr);

    // The new headers end where the old fixed L4 header did (the rest stays in place);
    // they start `front` bytes into the old frame (at least the 20 the header shrinks).
    let front = l4_at - (L3_OFFSET + IPV4_HEADER_LEN) - toa_len;
    let frame = buf.data_mut();
    let mut at = front;
    frame[at..at + MACS_LEN].copy_from_slice(&macs);
    at += MACS_LEN;
    frame[at..at + 2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    at += 2;
    frame[at..at + IPV4_HEADER_LEN].copy_from_slice(&ip4);
    at += IPV4_HEADER_LEN;
    frame[at..at + fixed].copy_from_slice(&hdr[..fixed]);
    at += fixed;
    if let Some(t) = &toa_bytes {
        frame[at..at + TOA6_LEN].copy_from_slice(t);
    }
    let len = buf.len();
    if len > ip_end {
        buf.trim(len - ip_end);
    }
    // `front` is below `ip_end`, the frame's length now.
    buf.adj(front);
    out.toa_inserted = toa_bytes.is_some();
    out
}

/// Why [`fragment_v6_to_v4`] did not translate; the buffer is then unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Nat64FragError {
    /// Not a fragment whose fragment header is directly followed by the flow's TCP or UDP
    /// (a first fragment) or names it (a later one): extension headers in the
    /// fragmentable part would shift the IPv4 datagram's offsets.
    #[error("fragment not translatable")]
    NotTranslatable,
}

/// Counted as `ip6_fragment`, as the fragments NAT64 did not translate before.
impl From<Nat64FragError> for DropReason {
    fn from(e: Nat64FragError) -> Self {
        match e {
            Nat64FragError::NotTranslatable => DropReason::Ip6Fragment,
        }
    }
}

/// The IPv4 fragment fields of the IPv6 fragment in `frame` (RFC 7915 §5.1.1): the
/// fragment header's identification's low 16 bits, and MF with the offset in 8-byte
/// units, DF clear; and where the fragment's data starts in the frame. `proto` is the
/// flow's: the fragment header must name it (a later fragment) or be followed by its
/// header (a first one).
pub fn fragment_fields(frame: &[u8], proto: L4Proto) -> Result<(u16, u16, usize), Nat64FragError> {
    let ip = frame
        .get(L3_OFFSET..)
        .and_then(|b| crate::wire::Ipv6Packet::new_checked(b).ok())
        .ok_or(Nat64FragError::NotTranslatable)?;
    let upper = ip.upper_layer().map_err(|_| Nat64FragError::NotTranslatable)?;
    let f = upper.frag.filter(|f| !f.is_atomic()).ok_or(Nat64FragError::NotTranslatable)?;
    let right_after = upper.offset == f.header_offset + crate::wire::ipv6::FragHeader::LEN;
    if upper.protocol != proto_number(proto) || !right_after {
        return Err(Nat64FragError::NotTranslatable);
    }
    let flags = (u16::from(f.more) << 13) | (f.offset / 8);
    Ok((f.ident as u16, flags, L3_OFFSET + IPV6_HEADER_LEN + upper.offset))
}

/// Translates the IPv6 fragment in `buf` of a NAT64 flow (client → VIP, a hop limit
/// above one) into an IPv4 fragment from `local` to `server` (RFC 7915 §5.1.1): the first
/// fragment (`first`, its layout) as [`v6_to_v4`] translates a whole packet (ports, and
/// the TCP/UDP checksum for the new addresses and ports: it covers the whole datagram,
/// whose other bytes do not change), without TOA; a later fragment gets the header only.
/// The IPv4 header has the fragment fields [`fragment_fields`] gives.
///
/// # Errors
///
/// [`Nat64FragError`]; the buffer is then unchanged.
pub fn fragment_v6_to_v4<B: PacketBuf>(
    buf: &mut B,
    first: Option<&Layout6>,
    proto: L4Proto,
    local: Endpoint,
    server: Endpoint,
) -> Result<(), Nat64FragError> {
    let (ident, flags, data_at) = fragment_fields(buf.data(), proto)?;
    let ip4_at = match first {
        Some(layout) => {
            // The fragment fields are written below.
            v6_to_v4(buf, layout, local, server, None, u16::MAX, 0);
            L3_OFFSET
        }
        None => {
            let frame = buf.data();
            let ip6 = &frame[L3_OFFSET..L3_OFFSET + IPV6_HEADER_LEN];
            let (tc, hop_limit) = ((ip6[0] << 4) | (ip6[1] >> 4), ip6[7]);
            let end = L3_OFFSET + IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([ip6[4], ip6[5]]));
            let mut macs = [0u8; MACS_LEN];
            macs.copy_from_slice(&frame[..MACS_LEN]);
            let len = buf.len();
            if len > end {
                buf.trim(len - end);
            }
            // The data starts past the 40-byte header and the 8-byte fragment header.
            let front = data_at - (L3_OFFSET + IPV4_HEADER_LEN);
            buf.adj(front);
            let total = (buf.len() - L3_OFFSET) as u16;
            let frame = buf.data_mut();
            frame[..MACS_LEN].copy_from_slice(&macs);
            frame[MACS_LEN..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let ip4 = &mut frame[L3_OFFSET..L3_OFFSET + IPV4_HEADER_LEN];
            write_ipv4_header(
                ip4,
                tc,
                total,
                None,
                hop_limit.saturating_sub(1),
                proto_number(proto),
                local.addr,
                server.addr,
            );
            L3_OFFSET
        }
    };
    // The fragment fields, and the header checksum again.
    let frame = buf.data_mut();
    let ip4 = &mut frame[ip4_at..ip4_at + IPV4_HEADER_LEN];
    ip4[4..6].copy_from_slice(&ident.to_be_bytes());
    ip4[6..8].copy_from_slice(&flags.to_be_bytes());
    ip4[10..12].copy_from_slice(&[0, 0]);
    let c = finish(sum(ip4));
    ip4[10..12].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Translates the IPv4 server → local address packet in `buf` (parsed into `layout`,
/// TTL above 1) into an IPv6 packet from `vip` to `client` (module docs); with
/// `clamp_mss` and a TCP SYN-ACK carrying an MSS option, the MSS is lowered by the
/// TOA's 20 bytes. The frame grows at its front by 40 bytes less the IPv4 header's
/// length (shrinks when the IPv4 options pass 20 bytes).
///
/// # Errors
///
/// [`Nat64Error::NoHeadroom`]; the buffer is then unchanged.
pub fn v4_to_v6<B: PacketBuf>(
    buf: &mut B,
    layout: &Layout,
    vip: Endpoint6,
    client: Endpoint6,
    clamp_mss: bool,
) -> Result<(), Nat64Error> {
    let l4 = layout.l4();
    let (l4_at, ip_end) = (layout.l4_offset(), layout.ip_end());
    let l4_len = layout.ip_total_len() - layout.ip_header_len();
    let new_l4_at = L3_OFFSET + IPV6_HEADER_LEN;
    let grow = new_l4_at.saturating_sub(l4_at);
    if grow > buf.headroom() {
        return Err(Nat64Error::NoHeadroom);
    }
    let frame = buf.data();
    let mut macs = [0u8; MACS_LEN];
    macs.copy_from_slice(&frame[..MACS_LEN]);
    let ip = &frame[L3_OFFSET..L3_OFFSET + IPV4_HEADER_LEN];
    let (tos, ttl) = (ip[1], ip[8]);
    let old_src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let old_dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);

    let len = buf.len();
    if len > ip_end {
        buf.trim(len - ip_end);
    }
    if grow > 0 {
        buf.prepend(grow);
    } else {
        buf.adj(l4_at - new_l4_at);
    }
    // The segment now starts at `new_l4_at`.
    let frame = buf.data_mut();
    frame[..MACS_LEN].copy_from_slice(&macs);
    frame[MACS_LEN..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    // The IPv4 total length bounds the payload length below 65,536.
    let (hop_limit, payload) = (ttl.saturating_sub(1), l4_len as u16);
    write_ipv6_header(
        &mut frame[L3_OFFSET..new_l4_at],
        tos,
        payload,
        proto_number(l4),
        hop_limit,
        vip.addr,
        client.addr,
    );

    let seg = &mut frame[new_l4_at..new_l4_at + l4_len];
    let word = |s: &[u8], at: usize| u16::from_be_bytes([s[at], s[at + 1]]);
    let c_at = checksum_at(l4);
    let old_csum = word(seg, c_at);
    let delta = delta_addr_v6(old_src.to_ipv6_mapped(), vip.addr)
        + delta_addr_v6(old_dst.to_ipv6_mapped(), client.addr)
        + delta16(word(seg, 0), vip.port)
        + delta16(word(seg, 2), client.port);
    seg[0..2].copy_from_slice(&vip.port.to_be_bytes());
    seg[2..4].copy_from_slice(&client.port.to_be_bytes());
    let csum = if l4 == L4Proto::Udp && old_csum == 0 {
        // No checksum on IPv4; IPv6 needs one (module docs).
        let proto = proto_number(l4);
        let full = finish(pseudo_header_v6(vip.addr, client.addr, proto, l4_len as u32) + sum(seg));
        if full == 0 {
            0xffff
        } else {
            full
        }
    } else {
        let c = update_delta(old_csum, delta);
        if l4 == L4Proto::Udp && c == 0 {
            0xffff
        } else {
            c
        }
    };
    seg[c_at..c_at + 2].copy_from_slice(&csum.to_be_bytes());
    if clamp_mss && l4 == L4Proto::Tcp {
        let flags = seg[13];
        if flags & 0x12 == 0x12 {
            l4::clamp_mss_by(seg, TOA6_LEN as u16, u16::MAX);
        }
    }
    Ok(())
}

/// Translates the server's IPv4 packet in `buf` (its header validated, TTL above 1) into
/// an IPv6 packet from `vip` to `client` with a fragment header (RFC 7915 §4.1): next
/// header the transport's, offset and M copied from the IPv4 offset and MF, the IPv4
/// identification in the low 16 bits of the 32-bit one. `first` is the layout of a first
/// fragment (offset 0), whose TCP/UDP header is translated as [`v4_to_v6`] translates a
/// whole packet's (the ports, the checksum updated incrementally: it covers the whole
/// datagram, whose other bytes do not change), without MSS clamp; a later fragment
/// (`first` `None`, `proto` its train's) gets the headers only. An unfragmented packet
/// with DF clear (MF clear, offset 0, `first` its layout) comes out as a fragment
/// header with offset 0 and M clear before the whole translated datagram, for the
/// worker to cut to the egress MTU ([`crate::xmit::frag::fragment_v6`]). The frame grows
/// at its front by 48 bytes less the IPv4 header's length.
///
/// # Errors
///
/// [`Nat64Error::NoHeadroom`], and [`Nat64Error::UdpNoChecksum`] for the first fragment
/// of a fragmented UDP datagram whose checksum is 0 (an unfragmented one gets its
/// checksum computed, as [`v4_to_v6`] does); the buffer is then unchanged.
pub fn v4_to_v6_fragment<B: PacketBuf>(
    buf: &mut B,
    first: Option<&Layout>,
    proto: L4Proto,
    vip: Endpoint6,
    client: Endpoint6,
) -> Result<(), Nat64Error> {
    let frame = buf.data();
    let ip = &frame[L3_OFFSET..L3_OFFSET + IPV4_HEADER_LEN];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let ip_end = L3_OFFSET + usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let ident = u16::from_be_bytes([ip[4], ip[5]]);
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    let (more, offset_units) = (flags & 0x2000 != 0, flags & 0x1fff);
    let (l4_at, data_at) = (L3_OFFSET + ihl, L3_OFFSET + IPV6_HEADER_LEN + FRAG_HEADER_LEN);
    if data_at.saturating_sub(l4_at) > buf.headroom() {
        return Err(Nat64Error::NoHeadroom);
    }
    let c_at = l4_at + checksum_at(proto);
    let fragmented = more || offset_units != 0;
    if first.is_some() && fragmented && proto == L4Proto::Udp && frame.get(c_at..c_at + 2) == Some(&[0, 0][..]) {
        return Err(Nat64Error::UdpNoChecksum);
    }
    match first {
        Some(layout) => {
            // The whole-packet translation (headroom checked above, with the 8 bytes
            // more), then the fragment header between the IPv6 header and the segment.
            v4_to_v6(buf, layout, vip, client, false)?;
            if buf.prepend(FRAG_HEADER_LEN).is_none() {
                // Not reached: the headroom was checked for both steps.
                return Err(Nat64Error::NoHeadroom);
            }
            let frame = buf.data_mut();
            frame.copy_within(FRAG_HEADER_LEN..FRAG_HEADER_LEN + L3_OFFSET + IPV6_HEADER_LEN, 0);
            let ip6 = &mut frame[L3_OFFSET..L3_OFFSET + IPV6_HEADER_LEN];
            let payload = u16::from_be_bytes([ip6[4], ip6[5]]);
            // The IPv4 total length bounds the payload below 65,516: 8 more fit.
            ip6[4..6].copy_from_slice(&(payload + FRAG_HEADER_LEN as u16).to_be_bytes());
            ip6[6] = IPPROTO_FRAGMENT;
        }
        None => {
            let (tos, ttl) = (ip[1], ip[8]);
            let mut macs = [0u8; MACS_LEN];
            macs.copy_from_slice(&frame[..MACS_LEN]);
            let data_len = ip_end - l4_at;
            let len = buf.len();
            if len > ip_end {
                buf.trim(len - ip_end);
            }
            if data_at > l4_at {
                buf.prepend(data_at - l4_at);
            } else {
                buf.adj(l4_at - data_at);
            }
            let frame = buf.data_mut();
            frame[..MACS_LEN].copy_from_slice(&macs);
            frame[MACS_LEN..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            // The IPv4 total length bounds the data below 65,516 bytes.
            write_ipv6_header(
                &mut frame[L3_OFFSET..L3_OFFSET + IPV6_HEADER_LEN],
                tos,
                (data_len + FRAG_HEADER_LEN) as u16,
                IPPROTO_FRAGMENT,
                ttl.saturating_sub(1),
                vip.addr,
                client.addr,
            );
        }
    }
    let fh = &mut buf.data_mut()[L3_OFFSET + IPV6_HEADER_LEN..data_at];
    fh[0] = proto_number(proto);
    fh[1] = 0;
    fh[2..4].copy_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
    fh[4..8].copy_from_slice(&u32::from(ident).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Golden packets: every checksum constant below was computed outside rvs (python3,
    //! RFC 1071 over the RFC 791 / RFC 8200 pseudo-headers) for the packets as they
    //! arrive and as they must leave; the tests also check them with the wire module's
    //! full sums as a second opinion.
    use super::*;
    use crate::view::L4View;
    use crate::view6::L4View6;
    use crate::wire::checksum::pseudo_header;
    use rvs_drivers::mem::MemBuf;

    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    const CLIENT: (&str, u16) = ("2001:db8:10::2", 40000);
    const VIP: (&str, u16) = ("2001:db8:10::100", 80);
    const LOCAL: (&str, u16) = ("10.20.0.200", 1025);
    const SERVER: (&str, u16) = ("10.20.0.11", 8080);
    const MSS_1440: [u8; 4] = [2, 4, 0x05, 0xa0];
    /// The identification the tests hand [`v6_to_v4`].
    const ID: u16 = 0x5a5a;

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn a4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn client() -> Endpoint6 {
        Endpoint6::new(a6(CLIENT.0), CLIENT.1)
    }
    fn vip() -> Endpoint6 {
        Endpoint6::new(a6(VIP.0), VIP.1)
    }
    fn local() -> Endpoint {
        Endpoint::new(a4(LOCAL.0), LOCAL.1)
    }
    fn server(port: u16) -> Endpoint {
        Endpoint::new(a4(SERVER.0), port)
    }

    /// A TCP segment (seq 0x01020304, window 0xffff) or, with `flags` `None`, a UDP
    /// datagram, with `csum` in its checksum field.
    fn seg(sport: u16, dport: u16, flags: Option<u8>, opts: &[u8], csum: u16, data: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        match flags {
            None => s.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes()),
            Some(f) => {
                s.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]);
                s.push((((20 + opts.len()) / 4) << 4) as u8);
                s.push(f);
                s.extend_from_slice(&[0xff, 0xff]);
            }
        }
        s.extend_from_slice(&csum.to_be_bytes());
        if flags.is_some() {
            s.extend_from_slice(&[0, 0]);
            s.extend_from_slice(opts);
        }
        s.extend_from_slice(data);
        s
    }

    /// Ethernet + IPv6 (traffic class `tc`, hop limit `hl`, next header `nh`) + `ext`
    /// (extension headers) + `seg`.
    fn frame6(tc: u8, hl: u8, nh: u8, src: &str, dst: &str, ext: &[u8], seg: &[u8]) -> Vec<u8> {
        let mut f = MACS.to_vec();
        f.extend_from_slice(&[0x86, 0xdd, 0x60 | (tc >> 4), tc << 4, 0, 0]);
        f.extend_from_slice(&((ext.len() + seg.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[nh, hl]);
        f.extend_from_slice(&a6(src).octets());
        f.extend_from_slice(&a6(dst).octets());
        f.extend_from_slice(ext);
        f.extend_from_slice(seg);
        f
    }

    /// Ethernet + IPv4 (TOS `tos`, DF, TTL `ttl`, header checksum `ip_csum`) + `seg`.
    fn frame4(tos: u8, ttl: u8, proto: u8, ip_csum: u16, src: &str, dst: &str, seg: &[u8]) -> Vec<u8> {
        frame4f(tos, ttl, proto, ip_csum, (0, 0x4000), src, dst, seg)
    }

    /// As [`frame4`] with identification and flags word (flags, offset) `frag`.
    #[allow(clippy::too_many_arguments)]
    fn frame4f(
        tos: u8,
        ttl: u8,
        proto: u8,
        ip_csum: u16,
        frag: (u16, u16),
        src: &str,
        dst: &str,
        seg: &[u8],
    ) -> Vec<u8> {
        let mut f = MACS.to_vec();
        f.extend_from_slice(&[0x08, 0x00, 0x45, tos]);
        f.extend_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
        f.extend_from_slice(&frag.0.to_be_bytes());
        f.extend_from_slice(&frag.1.to_be_bytes());
        f.extend_from_slice(&[ttl, proto]);
        f.extend_from_slice(&ip_csum.to_be_bytes());
        f.extend_from_slice(&a4(src).octets());
        f.extend_from_slice(&a4(dst).octets());
        f.extend_from_slice(seg);
        f
    }

    /// Whether the IPv6 frame's L4 checksum sums to 0.
    fn sum6_ok(f: &[u8]) -> bool {
        let v = L4View6::parse(f).unwrap();
        let l = v.layout();
        let s = &f[l.l4_offset()..l.ip_end()];
        finish(pseudo_header_v6(v.src, v.dst, proto_number(l.l4()), s.len() as u32) + sum(s)) == 0
    }

    /// Whether the IPv4 frame's header and L4 checksums sum to 0.
    fn sum4_ok(f: &[u8]) -> bool {
        let v = L4View::parse(f).unwrap();
        let l = v.layout();
        let s = &f[l.l4_offset()..l.ip_end()];
        let l4 = finish(pseudo_header(v.src, v.dst, proto_number(l.l4()), s.len() as u16) + sum(s));
        l4 == 0 && finish(sum(&f[L3_OFFSET..l.l4_offset()])) == 0
    }

    #[test]
    fn syn_to_ipv4_with_toa_golden() {
        let f = frame6(0xb8, 64, 6, CLIENT.0, VIP.0, &[], &seg(CLIENT.1, VIP.1, Some(0x02), &MSS_1440, 0x9b10, b""));
        assert!(sum6_ok(&f));
        let v = L4View6::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        let r = v6_to_v4(&mut b, v.layout(), local(), server(SERVER.1), Some(client()), 1500, ID);
        assert_eq!(r, FullNatIn { toa_inserted: true, toa_skipped: None });
        let mut opts = vec![254, 20, 0x9c, 0x40];
        opts.extend_from_slice(&a6(CLIENT.0).octets());
        opts.extend_from_slice(&MSS_1440);
        // 64 bytes: DF clear, the identification given (RFC 7915 §5.1).
        let s4 = seg(LOCAL.1, SERVER.1, Some(0x02), &opts, 0x4374, b"");
        let want = frame4f(0xb8, 63, 6, 0x0bac, (ID, 0), LOCAL.0, SERVER.0, &s4);
        assert_eq!(b.data(), &want[..]);
        assert!(sum4_ok(b.data()));
        // No extension header: the IPv4 header and the TOA take exactly the IPv6
        // header's room, nothing moved.
        assert_eq!(b.len(), f.len());
    }

    #[test]
    fn udp_to_ipv4_golden_and_toa_not_for_udp() {
        let f = frame6(0, 64, 17, CLIENT.0, VIP.0, &[], &seg(CLIENT.1, 53, None, &[], 0xb6e2, b"query"));
        assert!(sum6_ok(&f));
        let v = L4View6::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        let r = v6_to_v4(&mut b, v.layout(), local(), server(53), Some(client()), 1500, ID);
        assert_eq!(r, FullNatIn::default());
        let want =
            frame4f(0, 63, 17, 0x0c78, (ID, 0), LOCAL.0, SERVER.0, &seg(LOCAL.1, 53, None, &[], 0x96bb, b"query"));
        assert_eq!(b.data(), &want[..]);
        assert!(sum4_ok(b.data()));
    }

    #[test]
    fn extension_headers_are_not_carried_golden() {
        // A hop-by-hop header (8 bytes: next header TCP, length 0, PadN of 4) before
        // an ACK carrying data; no TOA asked for.
        let hbh = [6, 0, 1, 4, 0, 0, 0, 0];
        let s = seg(CLIENT.1, VIP.1, Some(0x10), &[], 0xe83f, b"GET /");
        let f = frame6(0, 64, 0, CLIENT.0, VIP.0, &hbh, &s);
        let v = L4View6::parse(&f).unwrap();
        assert_eq!(v.layout().l4_offset(), L3_OFFSET + 48);
        let mut b = MemBuf::from_frame(&f);
        let r = v6_to_v4(&mut b, v.layout(), local(), server(SERVER.1), None, 1500, ID);
        assert_eq!(r, FullNatIn::default());
        let s4 = seg(LOCAL.1, SERVER.1, Some(0x10), &[], 0xa8d8, b"GET /");
        let want = frame4f(0, 63, 6, 0x0c77, (ID, 0), LOCAL.0, SERVER.0, &s4);
        assert_eq!(b.data(), &want[..]);
        assert!(sum4_ok(b.data()));
    }

    #[test]
    fn toa_refused_when_over_the_mtu_or_out_of_room() {
        let s = seg(CLIENT.1, VIP.1, Some(0x02), &MSS_1440, 0x9b10, b"");
        let f = frame6(0xb8, 64, 6, CLIENT.0, VIP.0, &[], &s);
        let v = L4View6::parse(&f).unwrap();
        // 20 + 24 + 20 = 64 bytes of IPv4 packet: an MTU of 63 refuses the option.
        let mut b = MemBuf::from_frame(&f);
        let r = v6_to_v4(&mut b, v.layout(), local(), server(SERVER.1), Some(client()), 63, ID);
        assert_eq!(r.toa_skipped, Some(ToaSkip::ExceedsMtu));
        assert!(!r.toa_inserted);
        assert!(sum4_ok(b.data()));
        assert_eq!(b.len(), f.len() - 20);
        // 24 bytes of options already: 20 more would pass 60.
        let opts = [1u8; 24];
        let mut s = seg(CLIENT.1, VIP.1, Some(0x02), &opts, 0, b"");
        let c = finish(pseudo_header_v6(a6(CLIENT.0), a6(VIP.0), 6, s.len() as u32) + sum(&s));
        s[16..18].copy_from_slice(&c.to_be_bytes());
        let f = frame6(0, 64, 6, CLIENT.0, VIP.0, &[], &s);
        let v = L4View6::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        let r = v6_to_v4(&mut b, v.layout(), local(), server(SERVER.1), Some(client()), 1500, ID);
        assert_eq!(r.toa_skipped, Some(ToaSkip::NoRoomForOption));
        assert!(sum4_ok(b.data()));
    }

    #[test]
    fn syn_ack_to_ipv6_mss_lowered_by_the_toa_golden() {
        let s = seg(SERVER.1, LOCAL.1, Some(0x12), &[2, 4, 0x05, 0xb4], 0x5b85, b"");
        let ip_csum = finish(sum(&frame4(0xb8, 64, 6, 0, SERVER.0, LOCAL.0, &s)[L3_OFFSET..L3_OFFSET + 20]));
        let f = frame4(0xb8, 64, 6, ip_csum, SERVER.0, LOCAL.0, &s);
        assert!(sum4_ok(&f));
        let v = L4View::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        v4_to_v6(&mut b, v.layout(), vip(), client(), true).unwrap();
        let want = frame6(0xb8, 63, 6, VIP.0, CLIENT.0, &[], &seg(VIP.1, CLIENT.1, Some(0x12), &MSS_1440, 0x9b00, b""));
        assert_eq!(b.data(), &want[..]);
        assert!(sum6_ok(b.data()));
    }

    #[test]
    fn padded_udp_to_ipv6_golden_with_and_without_checksum() {
        let s = seg(53, LOCAL.1, None, &[], 0xac49, b"answer");
        let ip_csum = finish(sum(&frame4(0, 64, 17, 0, SERVER.0, LOCAL.0, &s)[L3_OFFSET..L3_OFFSET + 20]));
        let mut f = frame4(0, 64, 17, ip_csum, SERVER.0, LOCAL.0, &s);
        assert!(sum4_ok(&f));
        f.resize(60, 0); // Ethernet padding, dropped by the translation
        let want = frame6(0, 63, 17, VIP.0, CLIENT.0, &[], &seg(53, CLIENT.1, None, &[], 0xcc70, b"answer"));
        let v = L4View::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        v4_to_v6(&mut b, v.layout(), Endpoint6::new(a6(VIP.0), 53), client(), false).unwrap();
        assert_eq!(b.data(), &want[..]);
        // Without a checksum on IPv4 it is computed: the same bytes come out.
        let s0 = seg(53, LOCAL.1, None, &[], 0, b"answer");
        let f0 = frame4(0, 64, 17, ip_csum, SERVER.0, LOCAL.0, &s0);
        let v = L4View::parse(&f0).unwrap();
        let mut b = MemBuf::from_frame(&f0);
        v4_to_v6(&mut b, v.layout(), Endpoint6::new(a6(VIP.0), 53), client(), false).unwrap();
        assert_eq!(b.data(), &want[..]);
        assert!(sum6_ok(b.data()));
    }

    #[test]
    fn no_headroom_leaves_the_buffer_unchanged() {
        let s = seg(53, LOCAL.1, None, &[], 0xac49, b"answer");
        let ip_csum = finish(sum(&frame4(0, 64, 17, 0, SERVER.0, LOCAL.0, &s)[L3_OFFSET..L3_OFFSET + 20]));
        let f = frame4(0, 64, 17, ip_csum, SERVER.0, LOCAL.0, &s);
        let v = L4View::parse(&f).unwrap();
        let mut b = MemBuf::with_room(10, 256);
        b.append(f.len()).unwrap().copy_from_slice(&f);
        assert_eq!(v4_to_v6(&mut b, v.layout(), vip(), client(), false), Err(Nat64Error::NoHeadroom));
        assert_eq!(b.data(), &f[..]);
    }

    #[test]
    fn round_trip_through_both_translations_keeps_the_payload() {
        // A client data segment to IPv4 and the same bytes as a server segment back:
        // the checksums stay right whatever the payload's length (odd included).
        for n in [0usize, 1, 7, 100, 1001] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut s = seg(CLIENT.1, VIP.1, Some(0x18), &[], 0, &data);
            let c = finish(pseudo_header_v6(a6(CLIENT.0), a6(VIP.0), 6, s.len() as u32) + sum(&s));
            s[16..18].copy_from_slice(&c.to_be_bytes());
            let f = frame6(0, 64, 6, CLIENT.0, VIP.0, &[], &s);
            let v = L4View6::parse(&f).unwrap();
            let mut b = MemBuf::from_frame(&f);
            v6_to_v4(&mut b, v.layout(), local(), server(SERVER.1), None, 1500, ID);
            assert!(sum4_ok(b.data()), "{n}");
            assert_eq!(&b.data()[b.len() - n..], &data[..]);
            let v4 = L4View::parse(b.data()).unwrap();
            v4_to_v6(&mut b, v4.layout(), vip(), client(), false).unwrap();
            assert!(sum6_ok(b.data()), "{n}");
            assert_eq!(&b.data()[b.len() - n..], &data[..]);
        }
    }

    #[test]
    fn df_is_clear_up_to_1260_bytes_and_set_above() {
        // RFC 7915 §5.1: a translated IPv4 packet of at most 1260 bytes has DF clear (and
        // the identification given), a larger one DF set (identification 0).
        for (n, want) in [(1232usize, (ID, 0x0000)), (1233, (0, 0x4000))] {
            let data = vec![0x61u8; n];
            let mut s = seg(CLIENT.1, 53, None, &[], 0, &data);
            let c = finish(pseudo_header_v6(a6(CLIENT.0), a6(VIP.0), 17, s.len() as u32) + sum(&s));
            s[6..8].copy_from_slice(&c.to_be_bytes());
            let f = frame6(0, 64, 17, CLIENT.0, VIP.0, &[], &s);
            let v = L4View6::parse(&f).unwrap();
            let mut b = MemBuf::from_frame(&f);
            v6_to_v4(&mut b, v.layout(), local(), server(53), None, 1500, ID);
            let ip = &b.data()[L3_OFFSET..];
            assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), 20 + 8 + n);
            let got = (u16::from_be_bytes([ip[4], ip[5]]), u16::from_be_bytes([ip[6], ip[7]]));
            assert_eq!(got, want, "{n} bytes of data");
            assert!(sum4_ok(b.data()));
        }
    }

    /// The server's UDP datagram (from 53 to the local port) with `data` and its
    /// checksum over the IPv4 pseudo-header, and the same datagram as the client must
    /// get it (from the VIP's 53 to the client), its checksum over the IPv6 one.
    fn datagrams(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut s4 = seg(53, LOCAL.1, None, &[], 0, data);
        let c = finish(pseudo_header(a4(SERVER.0), a4(LOCAL.0), 17, s4.len() as u16) + sum(&s4));
        s4[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        let mut s6 = seg(53, CLIENT.1, None, &[], 0, data);
        let c = finish(pseudo_header_v6(a6(VIP.0), a6(CLIENT.0), 17, s6.len() as u32) + sum(&s6));
        s6[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        (s4, s6)
    }

    /// The server's IPv4 packet (TTL 64, identification `ident`, flags word `flags`)
    /// carrying `part`, its header checksum filled in.
    fn server4(ident: u16, flags: u16, part: &[u8]) -> Vec<u8> {
        let mut f = frame4f(0, 64, 17, 0, (ident, flags), SERVER.0, LOCAL.0, part);
        let c = finish(sum(&f[L3_OFFSET..L3_OFFSET + 20]));
        f[L3_OFFSET + 10..L3_OFFSET + 12].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// Translates the server's IPv4 packet `f` as the NAT64 reply path does (a first
    /// fragment or whole packet with its layout, a later fragment without).
    fn translate_fragment(f: &[u8]) -> MemBuf {
        let ip = crate::wire::Ipv4Packet::new_checked(&f[L3_OFFSET..]).unwrap();
        let first = (ip.frag_offset() == 0).then(|| L4View::from_first_fragment(&ip).unwrap());
        let mut b = MemBuf::from_frame(f);
        let vip53 = Endpoint6::new(a6(VIP.0), 53);
        v4_to_v6_fragment(&mut b, first.as_ref().map(|v| v.layout()), L4Proto::Udp, vip53, client()).unwrap();
        b
    }

    /// Ethernet + IPv6 from the VIP to the client (hop limit 63) + a fragment header
    /// (UDP, `offset` bytes, `more`, identification `ident`) + `part`.
    fn fragment6(offset: u16, more: bool, ident: u32, part: &[u8]) -> Vec<u8> {
        let mut fh = vec![17, 0];
        fh.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        fh.extend_from_slice(&ident.to_be_bytes());
        fh.extend_from_slice(part);
        frame6(0, 63, 44, VIP.0, CLIENT.0, &[], &fh)
    }

    #[test]
    fn server_fragments_to_ipv6_fragments_golden() {
        // A 48-byte datagram in two IPv4 fragments: the UDP header and 24 bytes (MF),
        // then 16 bytes at offset 32 (4 units). RFC 7915 §4.1: a fragment header with
        // the identification in its low 16 bits, offset and M copied; the first
        // fragment's ports and checksum as the whole datagram's.
        let data: Vec<u8> = (0..40u8).collect();
        let (s4, s6) = datagrams(&data);
        let f1 = server4(0x4321, 0x2000, &s4[..32]);
        let f2 = server4(0x4321, 0x0004, &s4[32..]);
        let b1 = translate_fragment(&f1);
        assert_eq!(b1.data(), &fragment6(0, true, 0x4321, &s6[..32])[..]);
        assert_eq!(b1.len(), f1.len() + FRAGMENT_GROWTH);
        let b2 = translate_fragment(&f2);
        assert_eq!(b2.data(), &fragment6(32, false, 0x4321, &s6[32..])[..]);
        // A fragmented datagram without a checksum cannot get one: refused, unchanged.
        let mut z = s4.clone();
        z[6..8].copy_from_slice(&[0, 0]);
        let f0 = server4(0x4321, 0x2000, &z[..32]);
        let ip = crate::wire::Ipv4Packet::new_checked(&f0[L3_OFFSET..]).unwrap();
        let v = L4View::from_first_fragment(&ip).unwrap();
        let mut b = MemBuf::from_frame(&f0);
        let r = v4_to_v6_fragment(&mut b, Some(v.layout()), L4Proto::Udp, vip(), client());
        assert_eq!(r, Err(Nat64Error::UdpNoChecksum));
        assert_eq!(b.data(), &f0[..]);
        // Too little headroom for the 28 more bytes: unchanged.
        let mut b = MemBuf::with_room(20, 256);
        b.append(f2.len()).unwrap().copy_from_slice(&f2);
        assert_eq!(v4_to_v6_fragment(&mut b, None, L4Proto::Udp, vip(), client()), Err(Nat64Error::NoHeadroom));
        assert_eq!(b.data(), &f2[..]);
    }

    proptest::proptest! {
        /// Whatever the datagram's size, the server link's MTU (how the server cut it)
        /// and the client link's MTU, the IPv6 fragments rvs sends reassemble (RFC 8200
        /// §4.5) to the translated datagram, each within the MTU, all with the IPv4
        /// identification, every piece but the last a multiple of 8 bytes.
        #[test]
        fn server_fragments_reassemble_to_the_translated_datagram(
            n in 0usize..6000,
            v4_mtu in 576u16..1500,
            v6_mtu in 1280u16..1600,
            ident: u16,
            seed: u8,
        ) {
            let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let (s4, s6) = datagrams(&data);
            let chunk = usize::from(v4_mtu - 20) & !7;
            let mut got = vec![None::<u8>; s6.len()];
            let mut last_end = None;
            for start in (0..s4.len()).step_by(chunk) {
                let end = (start + chunk).min(s4.len());
                let more = end < s4.len();
                let flags = (u16::from(more) << 13) | (start / 8) as u16;
                let f = server4(ident, flags, &s4[start..end]);
                let mut b = translate_fragment(&f);
                let mut out = arrayvec::ArrayVec::new();
                crate::xmit::frag::fragment_v6(&mut b, v6_mtu, || Some(MemBuf::with_room(64, 2048)), &mut out)
                    .unwrap();
                for piece in std::iter::once(&b).chain(out.iter()) {
                    let p = &piece.data()[L3_OFFSET..];
                    proptest::prop_assert!(p.len() <= usize::from(v6_mtu));
                    proptest::prop_assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])) + 40, p.len());
                    proptest::prop_assert_eq!((p[6], p[40]), (44, 17));
                    proptest::prop_assert_eq!(&p[44..48], &u32::from(ident).to_be_bytes());
                    let word = u16::from_be_bytes([p[42], p[43]]);
                    let (off, m) = (usize::from(word & 0xfff8), word & 1 == 1);
                    let part = &p[48..];
                    proptest::prop_assert!(!m || part.len() % 8 == 0);
                    for (i, &byte) in part.iter().enumerate() {
                        proptest::prop_assert!(got[off + i].is_none(), "overlap at {}", off + i);
                        got[off + i] = Some(byte);
                    }
                    if !m {
                        proptest::prop_assert!(last_end.is_none());
                        last_end = Some(off + part.len());
                    }
                }
            }
            proptest::prop_assert_eq!(last_end, Some(s6.len()));
            let whole: Vec<u8> = got.into_iter().map(|b| b.expect("every byte arrives")).collect();
            proptest::prop_assert_eq!(whole, s6);
        }
    }
}
