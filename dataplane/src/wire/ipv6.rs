//! IPv6 packets (RFC 8200) and a bounded walk of their extension headers.
//!
//! [`Ipv6Packet::new_checked`] validates what the getters rely on (version, payload length
//! within the buffer). The fixed header has no checksum; the upper layers' checksums cover
//! an IPv6 pseudo-header ([`checksum::pseudo_header_v6`]).
//!
//! [`walk_ext_headers`] follows the next-header chain from the fixed header to the
//! upper-layer protocol: hop-by-hop options (first only), routing, fragment, destination
//! options and AH, with a hard bound on their count ([`MAX_EXT_HEADERS`]) and total length
//! ([`MAX_EXT_LEN`]), so a crafted chain costs a bounded number of steps. ESP (encrypted:
//! the ports cannot be seen), "no next header", and extension headers rvs does not know
//! (mobility, HIP, shim6, experimental) end the walk with a typed [`Ipv6Error`] whose
//! [`Ipv6Error::drop_reason_name`] is the counter name the worker uses. A fragment
//! header's fields come back in [`FragHeader`]; a non-first fragment ends the walk there,
//! since what follows is fragment data, not headers.
//!
//! Jumbograms (RFC 2675, payload length 0 with a hop-by-hop jumbo option) are not
//! supported: their payload length 0 leaves no room for the chain, so the walk reports
//! [`Ipv6Error::ExtTruncated`].

use std::net::Ipv6Addr;

use super::checksum;

/// Next header: hop-by-hop options (RFC 8200 §4.3); valid only right after the fixed header.
pub const IPPROTO_HOPOPTS: u8 = 0;
/// Next header: IPv6 encapsulated in IPv6 or IPv4 (RFC 2473), for the tunnel mode.
pub const IPPROTO_IPV6: u8 = 41;
/// Next header: routing header (RFC 8200 §4.4).
pub const IPPROTO_ROUTING: u8 = 43;
/// Next header: fragment header (RFC 8200 §4.5).
pub const IPPROTO_FRAGMENT: u8 = 44;
/// Next header: Encapsulating Security Payload (RFC 4303); what follows is encrypted.
pub const IPPROTO_ESP: u8 = 50;
/// Next header: Authentication Header (RFC 4302); its length is in 4-byte units.
pub const IPPROTO_AH: u8 = 51;
/// Next header: ICMPv6 (RFC 4443).
pub const IPPROTO_ICMPV6: u8 = 58;
/// Next header: nothing follows (RFC 8200 §4.7).
pub const IPPROTO_NONE: u8 = 59;
/// Next header: destination options (RFC 8200 §4.6).
pub const IPPROTO_DSTOPTS: u8 = 60;
/// Next header: mobility header (RFC 6275), not walked by rvs.
pub const IPPROTO_MOBILITY: u8 = 135;
/// Next header: Host Identity Protocol (RFC 7401), not walked by rvs.
pub const IPPROTO_HIP: u8 = 139;
/// Next header: shim6 (RFC 5533), not walked by rvs.
pub const IPPROTO_SHIM6: u8 = 140;

/// Most extension headers [`walk_ext_headers`] steps over before it gives up. RFC 8200 §4.1
/// recommends at most one of each kind (destination options twice); 8 leaves room for a
/// legitimate chain (hop-by-hop, destination options, routing, fragment, AH, destination
/// options) and bounds a crafted one.
pub const MAX_EXT_HEADERS: usize = 8;

/// Most bytes of extension headers [`walk_ext_headers`] accepts in total. Linux bounds
/// nothing but the packet; rvs only has to find the upper layer, and real chains are tens
/// of bytes, so 512 keeps the walk (and what a fragment must carry in its first piece,
/// RFC 7112) short.
pub const MAX_EXT_LEN: usize = 512;

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
    /// The payload (extension headers first, if any) starts here.
    pub const PAYLOAD: usize = 40;
}

/// Why an IPv6 packet or its extension-header chain was refused. Each variant is a
/// distinct drop reason; its doc comment is its message and
/// [`Ipv6Error::drop_reason_name`] its counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Ipv6Error {
    /// The buffer is shorter than the 40-byte fixed header.
    #[error("IPv6 packet shorter than its 40-byte header")]
    Truncated,
    /// The version field is not 6.
    #[error("IP version is not 6")]
    BadVersion,
    /// The payload length runs past the buffer.
    #[error("IPv6 payload length beyond the buffer")]
    BadPayloadLength,
    /// An extension header runs past the payload (or its fixed part does not fit).
    #[error("IPv6 extension header runs past the payload")]
    ExtTruncated,
    /// More than [`MAX_EXT_HEADERS`] extension headers.
    #[error("more IPv6 extension headers than rvs walks")]
    ExtTooMany,
    /// The extension headers add up to more than [`MAX_EXT_LEN`] bytes.
    #[error("IPv6 extension headers longer than rvs walks")]
    ExtTooLong,
    /// A hop-by-hop options header anywhere but right after the fixed header (RFC 8200 §4.1).
    #[error("IPv6 hop-by-hop options header not first")]
    HopByHopNotFirst,
    /// A routing header with segments left: rvs is the destination and routes nothing on.
    #[error("IPv6 routing header with segments left")]
    RoutingSegmentsLeft,
    /// A second fragment header in one chain.
    #[error("IPv6 chain with two fragment headers")]
    DuplicateFragment,
    /// ESP: the rest is encrypted, so no ports can be read.
    #[error("IPv6 ESP payload (encrypted, no ports to read)")]
    Esp,
    /// "No next header": nothing to forward to a service.
    #[error("IPv6 chain ends with no next header")]
    NoNextHeader,
    /// An extension header rvs does not walk (mobility, HIP, shim6, experimental 253/254).
    #[error("IPv6 extension header rvs does not walk")]
    UnknownExtension,
}

impl Ipv6Error {
    /// The stable snake_case counter name of this refusal, in the style of
    /// [`DropReason::name`](crate::stats::DropReason::name) (`ip6_…`): the worker's drop
    /// reasons of the same name (`From<Ipv6Error> for DropReason`) count them.
    pub const fn drop_reason_name(self) -> &'static str {
        match self {
            Ipv6Error::Truncated => "ip6_truncated",
            Ipv6Error::BadVersion => "ip6_bad_version",
            Ipv6Error::BadPayloadLength => "ip6_bad_length",
            Ipv6Error::ExtTruncated => "ip6_ext_truncated",
            Ipv6Error::ExtTooMany => "ip6_ext_too_many",
            Ipv6Error::ExtTooLong => "ip6_ext_too_long",
            Ipv6Error::HopByHopNotFirst => "ip6_hop_by_hop_not_first",
            Ipv6Error::RoutingSegmentsLeft => "ip6_routing_segments_left",
            Ipv6Error::DuplicateFragment => "ip6_duplicate_fragment",
            Ipv6Error::Esp => "ip6_esp",
            Ipv6Error::NoNextHeader => "ip6_no_next_header",
            Ipv6Error::UnknownExtension => "ip6_unknown_extension",
        }
    }

    /// Every refusal, for listing the counters.
    pub const ALL: &'static [Ipv6Error] = &[
        Ipv6Error::Truncated,
        Ipv6Error::BadVersion,
        Ipv6Error::BadPayloadLength,
        Ipv6Error::ExtTruncated,
        Ipv6Error::ExtTooMany,
        Ipv6Error::ExtTooLong,
        Ipv6Error::HopByHopNotFirst,
        Ipv6Error::RoutingSegmentsLeft,
        Ipv6Error::DuplicateFragment,
        Ipv6Error::Esp,
        Ipv6Error::NoNextHeader,
        Ipv6Error::UnknownExtension,
    ];
}

/// A view of an IPv6 packet.
///
/// After [`Ipv6Packet::new_checked`] succeeds, no getter panics: `40 + payload_len() <=
/// buffer length` holds, so `payload()` is in bounds. Bytes past the payload (Ethernet
/// padding) are allowed and ignored by `payload()`.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without any check; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after validating, in this order: at least 40 bytes
    /// ([`Ipv6Error::Truncated`]), version 6 ([`Ipv6Error::BadVersion`]), `40 +
    /// payload_len <= buffer length` ([`Ipv6Error::BadPayloadLength`]). No getter of the
    /// result panics.
    pub fn new_checked(buffer: T) -> Result<Self, Ipv6Error> {
        let len = buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Ipv6Error::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        if p.version() != 6 {
            return Err(Ipv6Error::BadVersion);
        }
        if Self::HEADER_LEN + usize::from(p.payload_len()) > len {
            return Err(Ipv6Error::BadPayloadLength);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer, including any trailing padding.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (6 after `new_checked`).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        ((self.first_word() >> 20) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Payload length: extension headers and upper layer, in bytes.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        self.read_u16(field::PAYLOAD_LEN.start)
    }

    /// Next header of the fixed header: the first extension header or the upper layer.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.read_addr(field::SRC_ADDR.start)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.read_addr(field::DST_ADDR.start)
    }

    /// The fixed header.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::PAYLOAD]
    }

    /// The payload (extension headers, then the upper layer) up to `payload_len()`, so
    /// Ethernet padding is excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..field::PAYLOAD + usize::from(self.payload_len())]
    }

    /// Walks the extension headers of the payload ([`walk_ext_headers`]).
    pub fn upper_layer(&self) -> Result<UpperLayer, Ipv6Error> {
        walk_ext_headers(self.next_header(), self.payload())
    }

    fn first_word(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn read_addr(&self, at: usize) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[at..at + 16]);
        Ipv6Addr::from(a)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the version field (the high nibble of byte 0).
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.first_word() & !0x0ff0_0000) | (u32::from(tc) << 20);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the flow label (the low 20 bits of `label`).
    pub fn set_flow_label(&mut self, label: u32) {
        let w = (self.first_word() & !0x000f_ffff) | (label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = nh;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hl: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hl;
    }

    /// Decrements the hop limit and returns the new value; 0 stays 0. As for IPv4's TTL,
    /// a router drops a packet whose hop limit is ≤ 1 before forwarding (and answers
    /// ICMPv6 time exceeded). There is no header checksum to update.
    pub fn decrement_hop_limit(&mut self) -> u8 {
        let hl = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(hl);
        hl
    }

    /// Sets the source address (an upper-layer checksum needs its own update).
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (an upper-layer checksum needs its own update).
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload (up to `payload_len()`), writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = field::PAYLOAD + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

/// The fields of an IPv6 fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragHeader {
    /// Offset of this fragment's data in the original packet's fragmentable part, in bytes
    /// (a multiple of 8).
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more: bool,
    /// Identification of the original packet (with source and destination).
    pub ident: u32,
    /// Offset of the fragment header itself within the IPv6 payload.
    pub header_offset: usize,
}

impl FragHeader {
    /// Length of a fragment header.
    pub const LEN: usize = 8;

    /// Whether this is an atomic fragment (offset 0, M clear: a whole packet in one
    /// fragment, RFC 6946), to be processed as an unfragmented packet.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }

    /// Whether this fragment carries the start of the packet (and so the upper-layer header).
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// Where the extension-header chain ends: the upper-layer protocol and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The upper-layer protocol ([`IPPROTO_ICMPV6`], TCP, UDP, ...), or for a non-first
    /// fragment the next header named by its fragment header.
    pub protocol: u8,
    /// Offset of the upper-layer header (or, for a non-first fragment, of the fragment's
    /// data) within the IPv6 payload; at most the payload's length.
    pub offset: usize,
    /// The fragment header's fields, if the chain has one.
    pub frag: Option<FragHeader>,
}

impl UpperLayer {
    /// Whether the upper-layer header is in this packet: not a non-first fragment.
    pub fn has_l4_header(&self) -> bool {
        self.frag.is_none_or(|f| f.is_first())
    }
}

/// Walks the extension headers of an IPv6 payload, starting from the fixed header's
/// `next_header`, to the upper layer.
///
/// Steps over hop-by-hop options (only as the first header), routing (only with no
/// segments left), fragment (at most one), destination options and AH. Refuses ESP,
/// "no next header" and the extension headers it does not know, and any chain over
/// [`MAX_EXT_HEADERS`] headers or [`MAX_EXT_LEN`] bytes, or running past `payload`. A
/// non-first fragment ends the walk at its fragment header. At most
/// [`MAX_EXT_HEADERS`] + 1 steps; never panics.
pub fn walk_ext_headers(next_header: u8, payload: &[u8]) -> Result<UpperLayer, Ipv6Error> {
    let mut nh = next_header;
    let mut off = 0usize;
    let mut frag: Option<FragHeader> = None;
    for count in 0..=MAX_EXT_HEADERS {
        let len = match nh {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT => {
                if count == MAX_EXT_HEADERS {
                    return Err(Ipv6Error::ExtTooMany);
                }
                if nh == IPPROTO_HOPOPTS && count != 0 {
                    return Err(Ipv6Error::HopByHopNotFirst);
                }
                // Every one of these starts with next header and a length byte; the
                // smallest is 8 bytes.
                let h = payload.get(off..off + 8).ok_or(Ipv6Error::ExtTruncated)?;
                match nh {
                    IPPROTO_FRAGMENT => FragHeader::LEN,
                    IPPROTO_AH => (usize::from(h[1]) + 2) * 4,
                    _ => (usize::from(h[1]) + 1) * 8,
                }
            }
            IPPROTO_ESP => return Err(Ipv6Error::Esp),
            IPPROTO_NONE => return Err(Ipv6Error::NoNextHeader),
            IPPROTO_MOBILITY | IPPROTO_HIP | IPPROTO_SHIM6 | 253 | 254 => return Err(Ipv6Error::UnknownExtension),
            protocol => return Ok(UpperLayer { protocol, offset: off, frag }),
        };
        if off + len > MAX_EXT_LEN {
            return Err(Ipv6Error::ExtTooLong);
        }
        let h = payload.get(off..off + len).ok_or(Ipv6Error::ExtTruncated)?;
        match nh {
            IPPROTO_ROUTING if h[3] != 0 => return Err(Ipv6Error::RoutingSegmentsLeft),
            IPPROTO_FRAGMENT => {
                if frag.is_some() {
                    return Err(Ipv6Error::DuplicateFragment);
                }
                let w = u16::from_be_bytes([h[2], h[3]]);
                let f = FragHeader {
                    offset: w & 0xfff8,
                    more: w & 1 != 0,
                    ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    header_offset: off,
                };
                frag = Some(f);
                if !f.is_first() {
                    // Fragment data follows, not headers.
                    return Ok(UpperLayer { protocol: h[0], offset: off + len, frag });
                }
            }
            _ => {}
        }
        nh = h[0];
        off += len;
    }
    // The loop returns at the latest when `count == MAX_EXT_HEADERS`.
    Err(Ipv6Error::ExtTooMany)
}

/// Partial sum of the IPv6 pseudo-header of `packet` for an upper layer of `len` bytes
/// (RFC 8200 §8.1): a shorthand for [`checksum::pseudo_header_v6`] with the packet's
/// addresses.
pub fn pseudo_header<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>, next_header: u8, len: u32) -> u32 {
    checksum::pseudo_header_v6(packet.src_addr(), packet.dst_addr(), next_header, len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ICMPv6 echo request 2001:db8::10 → 2001:db8::1, hop limit 64, traffic class
    /// 0x12, flow label 0x3_4567, ident 0x1234, seq 1, 8 data bytes 0x10..0x17. The ICMPv6
    /// checksum 0xc5ac was computed independently with python3 (struct + RFC 1071 sum over
    /// the RFC 8200 pseudo-header), not with this code.
    #[rustfmt::skip]
    pub(crate) const ECHO6: [u8; 56] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x10, 0x3a, 0x40,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x80, 0x00, 0xc5, 0xac, 0x12, 0x34, 0x00, 0x01,
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
    ];

    pub(crate) fn a(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
    }

    #[test]
    fn parse() {
        let p = Ipv6Packet::new_checked(&ECHO6[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x12);
        assert_eq!(p.flow_label(), 0x3_4567);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), IPPROTO_ICMPV6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), a(0x10));
        assert_eq!(p.dst_addr(), a(1));
        assert_eq!(p.header(), &ECHO6[..40]);
        assert_eq!(p.payload(), &ECHO6[40..]);
        assert_eq!(p.upper_layer().unwrap(), UpperLayer { protocol: IPPROTO_ICMPV6, offset: 0, frag: None });
        let sum = pseudo_header(&p, IPPROTO_ICMPV6, 16) + checksum::sum(p.payload());
        assert_eq!(checksum::fold(sum), 0xffff);
    }

    #[test]
    fn build() {
        let mut b = [0u8; 56];
        b[40..].copy_from_slice(&ECHO6[40..]);
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_traffic_class(0x12);
        p.set_flow_label(0x3_4567);
        p.set_payload_len(16);
        p.set_next_header(IPPROTO_ICMPV6);
        p.set_hop_limit(64);
        p.set_src_addr(a(0x10));
        p.set_dst_addr(a(1));
        assert_eq!(b, ECHO6);
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0xff);
        p.set_flow_label(0xfff_ffff);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0xff, 0xf_ffff));
        assert_eq!(p.decrement_hop_limit(), 63);
        p.set_hop_limit(0);
        assert_eq!(p.decrement_hop_limit(), 0);
        p.payload_mut()[0] = 0x81;
        assert_eq!(b[40], 0x81);
    }

    #[test]
    fn truncated_and_bad_fields() {
        for n in 0..ECHO6.len() {
            let want = if n < 40 { Ipv6Error::Truncated } else { Ipv6Error::BadPayloadLength };
            assert_eq!(Ipv6Packet::new_checked(&ECHO6[..n]).unwrap_err(), want, "length {n}");
        }
        let mut b = ECHO6;
        b[0] = 0x41;
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap_err(), Ipv6Error::BadVersion);
        let mut b = ECHO6.to_vec();
        b.extend_from_slice(&[0; 6]); // Ethernet padding
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().payload().len(), 16);
        b[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap_err(), Ipv6Error::BadPayloadLength);
    }

    /// An extension header of kind `nh` whose own next header is `next`, `len` bytes long
    /// (a multiple of 8, or of 4 for AH), options padded with PadN.
    pub(crate) fn ext(nh: u8, next: u8, len: usize) -> Vec<u8> {
        let mut h = vec![0u8; len];
        h[0] = next;
        h[1] = if nh == IPPROTO_AH { (len / 4 - 2) as u8 } else { (len / 8 - 1) as u8 };
        if nh != IPPROTO_AH && nh != IPPROTO_ROUTING && len > 2 {
            h[2] = 1; // PadN covering the rest
            h[3] = (len - 4) as u8;
        }
        h
    }

    /// A fragment header: next header, offset in bytes, M flag, ident.
    pub(crate) fn frag(next: u8, offset: u16, more: bool, ident: u32) -> [u8; 8] {
        let w = offset | u16::from(more);
        let mut h = [next, 0, 0, 0, 0, 0, 0, 0];
        h[2..4].copy_from_slice(&w.to_be_bytes());
        h[4..8].copy_from_slice(&ident.to_be_bytes());
        h
    }

    #[test]
    fn walk_a_legitimate_chain() {
        // hop-by-hop → destination options → routing (no segments left) → AH → fragment
        // (first) → UDP.
        let mut p = ext(IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, 8);
        p.extend(ext(IPPROTO_DSTOPTS, IPPROTO_ROUTING, 16));
        p.extend(ext(IPPROTO_ROUTING, IPPROTO_AH, 8));
        p.extend(ext(IPPROTO_AH, IPPROTO_FRAGMENT, 12));
        p.extend(frag(17, 0, true, 0xdead_beef));
        p.extend([0u8; 8]); // UDP header
        let u = walk_ext_headers(IPPROTO_HOPOPTS, &p).unwrap();
        assert_eq!(u.protocol, 17);
        assert_eq!(u.offset, 52);
        let f = u.frag.unwrap();
        assert_eq!(f, FragHeader { offset: 0, more: true, ident: 0xdead_beef, header_offset: 44 });
        assert!(f.is_first() && !f.is_atomic() && u.has_l4_header());
    }

    #[test]
    fn walk_fragments() {
        // A later fragment: the walk stops at the fragment header.
        let mut p = frag(6, 1448, true, 7).to_vec();
        p.extend([0xffu8; 16]);
        let u = walk_ext_headers(IPPROTO_FRAGMENT, &p).unwrap();
        assert_eq!((u.protocol, u.offset), (6, 8));
        assert_eq!(u.frag.unwrap().offset, 1448);
        assert!(!u.has_l4_header());
        // The last fragment of a train, data only.
        let p = frag(17, 65528, false, 9);
        let u = walk_ext_headers(IPPROTO_FRAGMENT, &p).unwrap();
        assert_eq!((u.protocol, u.offset, u.frag.unwrap().more), (17, 8, false));
        // An atomic fragment (RFC 6946).
        let mut p = frag(58, 0, false, 1).to_vec();
        p.extend(&ECHO6[40..]);
        let u = walk_ext_headers(IPPROTO_FRAGMENT, &p).unwrap();
        assert!(u.frag.unwrap().is_atomic() && u.has_l4_header());
        // Two fragment headers.
        let mut p = frag(IPPROTO_FRAGMENT, 0, true, 1).to_vec();
        p.extend(frag(17, 0, true, 1));
        assert_eq!(walk_ext_headers(IPPROTO_FRAGMENT, &p).unwrap_err(), Ipv6Error::DuplicateFragment);
    }

    #[test]
    fn walk_refusals() {
        let w = walk_ext_headers;
        assert_eq!(w(IPPROTO_ESP, &[0; 16]).unwrap_err(), Ipv6Error::Esp);
        assert_eq!(w(IPPROTO_NONE, &[]).unwrap_err(), Ipv6Error::NoNextHeader);
        for nh in [IPPROTO_MOBILITY, IPPROTO_HIP, IPPROTO_SHIM6, 253, 254] {
            assert_eq!(w(nh, &[0; 64]).unwrap_err(), Ipv6Error::UnknownExtension);
        }
        // ESP and "no next header" after a destination options header.
        assert_eq!(w(IPPROTO_DSTOPTS, &ext(IPPROTO_DSTOPTS, IPPROTO_ESP, 8)).unwrap_err(), Ipv6Error::Esp);
        // Hop-by-hop after another header.
        let mut p = ext(IPPROTO_DSTOPTS, IPPROTO_HOPOPTS, 8);
        p.extend(ext(IPPROTO_HOPOPTS, 6, 8));
        assert_eq!(w(IPPROTO_DSTOPTS, &p).unwrap_err(), Ipv6Error::HopByHopNotFirst);
        // Routing with segments left.
        let mut r = ext(IPPROTO_ROUTING, 6, 24);
        r[3] = 1;
        assert_eq!(w(IPPROTO_ROUTING, &r).unwrap_err(), Ipv6Error::RoutingSegmentsLeft);
        // Truncated: the fixed part, and a length byte running past the payload.
        for n in 0..8 {
            assert_eq!(w(IPPROTO_DSTOPTS, &[6u8; 8][..n]).unwrap_err(), Ipv6Error::ExtTruncated, "{n}");
        }
        let mut d = ext(IPPROTO_DSTOPTS, 6, 8);
        d[1] = 3; // says 32 bytes, has 8
        assert_eq!(w(IPPROTO_DSTOPTS, &d).unwrap_err(), Ipv6Error::ExtTruncated);
        // A single header over the length bound: 255 → 2048 bytes.
        let mut d = vec![0u8; 2048];
        d[0] = 6;
        d[1] = 255;
        assert_eq!(w(IPPROTO_DSTOPTS, &d).unwrap_err(), Ipv6Error::ExtTooLong);
    }

    #[test]
    fn walk_chains_of_maximum_length() {
        // MAX_EXT_HEADERS destination options headers: accepted; one more: refused.
        let chain = |n: usize, each: usize| {
            let mut p = Vec::new();
            for i in 0..n {
                p.extend(ext(IPPROTO_DSTOPTS, if i + 1 == n { 6 } else { IPPROTO_DSTOPTS }, each));
            }
            p.extend([0u8; 20]);
            p
        };
        let p = chain(MAX_EXT_HEADERS, 8);
        assert_eq!(walk_ext_headers(IPPROTO_DSTOPTS, &p).unwrap().offset, 8 * MAX_EXT_HEADERS);
        let p = chain(MAX_EXT_HEADERS + 1, 8);
        assert_eq!(walk_ext_headers(IPPROTO_DSTOPTS, &p).unwrap_err(), Ipv6Error::ExtTooMany);
        // Exactly MAX_EXT_LEN bytes: accepted; 8 more: refused.
        let p = chain(4, MAX_EXT_LEN / 4);
        assert_eq!(walk_ext_headers(IPPROTO_DSTOPTS, &p).unwrap().offset, MAX_EXT_LEN);
        let mut p = chain(4, MAX_EXT_LEN / 4);
        p[MAX_EXT_LEN - MAX_EXT_LEN / 4] = IPPROTO_DSTOPTS; // the last one now leads to another
        p.splice(MAX_EXT_LEN..MAX_EXT_LEN, ext(IPPROTO_DSTOPTS, 6, 8));
        assert_eq!(walk_ext_headers(IPPROTO_DSTOPTS, &p).unwrap_err(), Ipv6Error::ExtTooLong);
    }

    #[test]
    fn drop_reason_names_are_unique_snake_case_and_the_workers() {
        let mut seen = std::collections::HashSet::new();
        for e in Ipv6Error::ALL {
            let n = e.drop_reason_name();
            assert!(
                n.starts_with("ip6_") && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            assert!(seen.insert(n), "duplicate {n}");
            // The worker counts each refusal under the drop reason of the same name.
            assert_eq!(crate::stats::DropReason::from(*e).name(), n);
            assert!(!e.to_string().is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), nh in any::<u8>()) {
            if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
                let _ = (p.version(), p.traffic_class(), p.flow_label(), p.next_header());
                let _ = (p.hop_limit(), p.src_addr(), p.dst_addr(), p.header());
                prop_assert_eq!(40 + p.payload().len(), 40 + usize::from(p.payload_len()));
                if let Ok(u) = p.upper_layer() {
                    prop_assert!(u.offset <= p.payload().len());
                }
            }
            if let Ok(u) = walk_ext_headers(nh, &bytes) {
                prop_assert!(u.offset <= bytes.len() && u.offset <= MAX_EXT_LEN);
            }
        }
    }
}
