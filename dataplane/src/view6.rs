//! The RX-side parse result of one TCP/UDP-over-IPv6 frame: the IPv6 counterpart of
//! [`crate::view`], carried from the worker's checks to the IPv6 L4 path and its
//! rewrites so that a packet is parsed once.
//!
//! Contract:
//! * An [`L4View6`] is built only by [`L4View6::parse`] (the whole frame checked here) or
//!   [`L4View6::from_ipv6`] (the IPv6 header and its extension-header walk done by the
//!   worker; only the TCP/UDP header is checked here). It holds a [`Layout6`] whose
//!   guarantees hold for that frame: Ethernet II carrying IPv6, the 40-byte header and its
//!   payload length within the frame, the extension headers walked (bounded, see
//!   [`crate::wire::ipv6`]) and the whole TCP header (data offset included), or the UDP
//!   header with its length within the segment, after them. Nothing else builds one.
//! * An atomic fragment (offset 0, M clear, RFC 6946) is the whole packet: its view is
//!   the packet's, the fragment header one more extension header. Any other fragment
//!   is refused by [`L4View6::from_ipv6`] (`ip6_fragment`): it goes the fragment path
//!   (the worker's `frag6` module), whose first fragment gets an [`L4View6`] from
//!   [`L4View6::from_first_fragment`] and every fragment a [`FragView6`].
//! * The rewrites that take the view (`crate::xmit::v6`) only change bytes inside the
//!   headers (addresses, ports, hop limit, L4 checksum), which keeps the layout valid.

use std::net::Ipv6Addr;

use crate::conn::FlowKey6;
use crate::stats::DropReason;
use crate::types::L4Proto;
use crate::view::L3_OFFSET;
use crate::wire::ipv6::{FragHeader, UpperLayer, IPPROTO_DSTOPTS};
use crate::wire::{EthernetFrame, Ipv6Packet, TcpFlags, TcpPacket, UdpPacket, IPPROTO_TCP, IPPROTO_UDP};

/// The IPv6 EtherType.
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The fixed IPv6 header's length.
pub const IPV6_HEADER_LEN: usize = 40;

/// Where the headers of a validated Ethernet/IPv6/TCP-or-UDP frame are.
///
/// Only an [`L4View6`] builds one; it guarantees `L3_OFFSET + 40 + ext_len + (TCP header
/// / UDP 8) <= L3_OFFSET + 40 + payload_len <= frame length`. For a first fragment the
/// segment is the part of the datagram's that this fragment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout6 {
    /// Offset of the TCP/UDP header within the IPv6 payload (the extension headers'
    /// length).
    ext_len: usize,
    /// The IPv6 payload length.
    payload_len: usize,
    l4: L4Proto,
}

impl Layout6 {
    /// The transport protocol.
    #[inline]
    pub fn l4(&self) -> L4Proto {
        self.l4
    }

    /// Offset of the TCP/UDP header in the frame.
    #[inline]
    pub fn l4_offset(&self) -> usize {
        L3_OFFSET + IPV6_HEADER_LEN + self.ext_len
    }

    /// Length of the TCP/UDP segment (header and data), as the pseudo-header counts it
    /// (for a first fragment: the bytes of it this fragment carries, not the datagram's).
    #[inline]
    pub fn l4_len(&self) -> usize {
        self.payload_len - self.ext_len
    }

    /// The IPv6 packet's length (fixed header and payload), for the byte counters.
    #[inline]
    pub fn ip_len(&self) -> usize {
        IPV6_HEADER_LEN + self.payload_len
    }

    /// Offset just past the IPv6 packet in the frame (where Ethernet padding starts).
    #[inline]
    pub fn ip_end(&self) -> usize {
        L3_OFFSET + IPV6_HEADER_LEN + self.payload_len
    }
}

/// One validated TCP or UDP over IPv6 frame: where its headers are and what its flow is.
/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4View6 {
    layout: Layout6,
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// IPv6 destination address.
    pub dst: Ipv6Addr,
    /// TCP/UDP source port.
    pub sport: u16,
    /// TCP/UDP destination port.
    pub dport: u16,
    /// TCP flags; `None` for UDP.
    pub flags: Option<TcpFlags>,
    /// The hop limit as received.
    pub hop_limit: u8,
}

impl L4View6 {
    /// Parses a whole frame: no Ethernet header (`eth_truncated`), not IPv6
    /// (`eth_unknown_type`), the IPv6 header or its extension-header walk refused (the
    /// `ip6_*` reasons), then as [`L4View6::from_ipv6`]. Addresses and MACs are not
    /// looked at.
    pub fn parse(frame: &[u8]) -> Result<Self, DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::EthTruncated)?;
        if eth.ethertype() != ETHERTYPE_IPV6 {
            return Err(DropReason::EthUnknownType);
        }
        let ip = Ipv6Packet::new_checked(eth.payload())?;
        let upper = ip.upper_layer()?;
        Self::from_ipv6(&ip, &upper)
    }

    /// The view of a frame whose IPv6 header the caller has validated: `ip` is
    /// `Ipv6Packet::new_checked(&frame[L3_OFFSET..])` of that frame (Ethernet II, IPv6
    /// EtherType) and `upper` its `upper_layer()`. Refuses a fragment that is not atomic
    /// (`ip6_fragment`: the fragment path's), a protocol other than TCP/UDP
    /// (`ip_unknown_protocol`) and a TCP/UDP header cut short or with a UDP length beyond
    /// the segment (`l4_malformed`).
    #[inline]
    pub fn from_ipv6(ip: &Ipv6Packet<&[u8]>, upper: &UpperLayer) -> Result<Self, DropReason> {
        if upper.frag.is_some_and(|f| !f.is_atomic()) {
            return Err(DropReason::Ip6Fragment);
        }
        let payload = ip.payload();
        // The walk keeps the offset within the payload; `get` keeps that a non-panic.
        let seg = payload.get(upper.offset..).ok_or(DropReason::Ip6ExtTruncated)?;
        let (l4, sport, dport, flags) = match upper.protocol {
            IPPROTO_TCP => {
                let tcp = TcpPacket::new_checked(seg).map_err(|_| DropReason::L4Malformed)?;
                (L4Proto::Tcp, tcp.src_port(), tcp.dst_port(), Some(tcp.flags()))
            }
            IPPROTO_UDP => {
                let udp = UdpPacket::new_checked(seg).map_err(|_| DropReason::L4Malformed)?;
                (L4Proto::Udp, udp.src_port(), udp.dst_port(), None)
            }
            _ => return Err(DropReason::IpUnknownProtocol),
        };
        let layout = Layout6 { ext_len: upper.offset, payload_len: payload.len(), l4 };
        Ok(L4View6 { layout, src: ip.src_addr(), dst: ip.dst_addr(), sport, dport, flags, hop_limit: ip.hop_limit() })
    }

    /// The view of the first fragment (offset 0, M set) of a TCP or UDP datagram whose
    /// IPv6 header the caller has validated (`ip`, `upper` as for [`Self::from_ipv6`]),
    /// for a packet that holds only the start of its segment: the whole TCP header (data
    /// offset within the fragment) or the UDP header's 8 bytes (the UDP length is the
    /// datagram's, not checked against the fragment). RFC 8200 §4.5 requires the first
    /// fragment to hold the whole header chain up to and including the upper-layer
    /// header (RFC 7112); one that does not is `l4_malformed` here (the worker counts it as
    /// `frag_inconsistent` first, as IPv4's tiny first fragment, RFC 1858). Not a first
    /// fragment: `ip6_fragment`.
    pub fn from_first_fragment(ip: &Ipv6Packet<&[u8]>, upper: &UpperLayer) -> Result<Self, DropReason> {
        if !upper.frag.is_some_and(|f| f.is_first()) {
            return Err(DropReason::Ip6Fragment);
        }
        let payload = ip.payload();
        let seg = payload.get(upper.offset..).ok_or(DropReason::Ip6ExtTruncated)?;
        let (l4, sport, dport, flags) = match upper.protocol {
            IPPROTO_TCP => {
                let tcp = TcpPacket::new_checked(seg).map_err(|_| DropReason::L4Malformed)?;
                (L4Proto::Tcp, tcp.src_port(), tcp.dst_port(), Some(tcp.flags()))
            }
            IPPROTO_UDP if seg.len() >= UdpPacket::<&[u8]>::HEADER_LEN => {
                let udp = UdpPacket::new_unchecked(seg);
                (L4Proto::Udp, udp.src_port(), udp.dst_port(), None)
            }
            IPPROTO_UDP => return Err(DropReason::L4Malformed),
            _ => return Err(DropReason::IpUnknownProtocol),
        };
        let layout = Layout6 { ext_len: upper.offset, payload_len: payload.len(), l4 };
        Ok(L4View6 { layout, src: ip.src_addr(), dst: ip.dst_addr(), sport, dport, flags, hop_limit: ip.hop_limit() })
    }

    /// Where the headers are.
    #[inline]
    pub fn layout(&self) -> &Layout6 {
        &self.layout
    }

    /// TCP or UDP.
    #[inline]
    pub fn proto(&self) -> L4Proto {
        self.layout.l4
    }

    /// The IPv6 packet's length, for the byte counters.
    #[inline]
    pub fn ip_len(&self) -> u64 {
        self.layout.ip_len() as u64
    }

    /// The flow's key as the IPv6 connection table indexes it.
    #[inline]
    pub fn key(&self) -> FlowKey6 {
        FlowKey6 { proto: self.proto(), src: self.src, sport: self.sport, dst: self.dst, dport: self.dport }
    }

    /// A TCP SYN without ACK (or RST): the only TCP segment that may open a connection.
    #[inline]
    pub fn is_syn(&self) -> bool {
        const MASK: u8 = TcpFlags::SYN.bits() | TcpFlags::ACK.bits() | TcpFlags::RST.bits();
        matches!(self.flags, Some(f) if f.bits() & MASK == TcpFlags::SYN.bits())
    }
}

/// One IPv6 fragment (not atomic) of a TCP/UDP datagram, with the ports its train's
/// first fragment carried: what the L4 engine's fragment path needs
/// (`LbEngine::handle_fragment6`). Built only by [`FragView6::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragView6 {
    /// The flow: addresses from this fragment, ports from its train.
    pub key: FlowKey6,
    /// The first fragment's view (offset 0: it holds the L4 header); `None` for a later
    /// fragment, which holds data only.
    pub first: Option<L4View6>,
    /// The IPv6 packet's length (fixed header and payload), for the byte counters.
    pub ip_len: u64,
    /// The hop limit as received.
    pub hop_limit: u8,
}

impl FragView6 {
    /// The view of a fragment whose IPv6 header the caller validated (`ip`, `upper` as
    /// for [`L4View6::from_ipv6`]) with its train's L4 protocol and ports (what the
    /// train's first fragment carried). Refuses a packet that is not a fragment or is an
    /// atomic one (`ip6_fragment`: those have an [`L4View6`]); a fragment header naming
    /// neither TCP/UDP (which must then be `proto`) nor destination options
    /// (`ip6_fragment`: see the worker's `frag6` module); a first fragment without its
    /// whole L4 header (`l4_malformed`; the fragment table refuses those earlier) or of
    /// another protocol than `proto` (`ip6_fragment`).
    pub fn new(
        ip: &Ipv6Packet<&[u8]>,
        upper: &UpperLayer,
        proto: L4Proto,
        sport: u16,
        dport: u16,
    ) -> Result<Self, DropReason> {
        let f = upper.frag.filter(|f| !f.is_atomic()).ok_or(DropReason::Ip6Fragment)?;
        let named = match fragment_protocol(ip, &f) {
            Some(IPPROTO_TCP) => Some(L4Proto::Tcp),
            Some(IPPROTO_UDP) => Some(L4Proto::Udp),
            Some(IPPROTO_DSTOPTS) => None,
            _ => return Err(DropReason::Ip6Fragment),
        };
        if named.is_some_and(|n| n != proto) {
            return Err(DropReason::Ip6Fragment);
        }
        let first = if f.is_first() { Some(L4View6::from_first_fragment(ip, upper)?) } else { None };
        if first.is_some_and(|v| v.proto() != proto) {
            return Err(DropReason::Ip6Fragment);
        }
        Ok(FragView6 {
            key: FlowKey6 { proto, src: ip.src_addr(), sport, dst: ip.dst_addr(), dport },
            first,
            ip_len: (IPV6_HEADER_LEN + ip.payload().len()) as u64,
            hop_limit: ip.hop_limit(),
        })
    }

    /// Whether this is the first fragment (it holds the L4 header).
    #[inline]
    pub fn is_first(&self) -> bool {
        self.first.is_some()
    }
}

/// The next header a fragment header names (the first header of the datagram's
/// fragmentable part, the same in every fragment of it, RFC 8200 §4.5): the protocol of
/// the datagram's fragment identity. `None` if `frag` is not within `ip`'s payload (it
/// is when it came from `ip.upper_layer()`).
#[inline]
pub fn fragment_protocol(ip: &Ipv6Packet<&[u8]>, frag: &FragHeader) -> Option<u8> {
    ip.payload().get(frag.header_offset).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv6 (`next` as next header, payload `payload`) frame.
    fn frame(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        ip[6] = next;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&"2001:db8:10::2".parse::<Ipv6Addr>().unwrap().octets());
        ip[24..40].copy_from_slice(&"2001:db8:10::100".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(payload);
        f
    }

    fn tcp_syn() -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x02;
        t
    }

    fn udp(len_field: u16, data: usize) -> Vec<u8> {
        let mut u = vec![0u8; 8 + data];
        u[0..2].copy_from_slice(&5353u16.to_be_bytes());
        u[2..4].copy_from_slice(&53u16.to_be_bytes());
        u[4..6].copy_from_slice(&len_field.to_be_bytes());
        u
    }

    #[test]
    fn tcp_directly_after_the_header() {
        let f = frame(IPPROTO_TCP, &tcp_syn());
        let v = L4View6::parse(&f).unwrap();
        assert_eq!((v.proto(), v.sport, v.dport, v.hop_limit), (L4Proto::Tcp, 40000, 80, 64));
        assert!(v.is_syn());
        assert_eq!(v.layout().l4_offset(), 54);
        assert_eq!((v.layout().l4_len(), v.layout().ip_end(), v.ip_len()), (20, 74, 60));
        assert_eq!(v.key().dst, "2001:db8:10::100".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn udp_after_destination_options() {
        // Destination options (60): next header UDP, length 0 (8 bytes), PadN.
        let mut p = vec![IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&udp(12, 4));
        let f = frame(60, &p);
        let v = L4View6::parse(&f).unwrap();
        assert_eq!((v.proto(), v.sport, v.dport, v.flags), (L4Proto::Udp, 5353, 53, None));
        assert_eq!((v.layout().l4_offset(), v.layout().l4_len()), (62, 12));
        assert!(!v.is_syn());
    }

    #[test]
    fn malformed_inputs_are_refused_with_their_reason() {
        let tcp = tcp_syn();
        // Not IPv6, no Ethernet header.
        let mut f = frame(IPPROTO_TCP, &tcp);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(L4View6::parse(&f), Err(DropReason::EthUnknownType));
        assert_eq!(L4View6::parse(&f[..10]), Err(DropReason::EthTruncated));
        // IPv6 header cut short, wrong version, payload length beyond the frame.
        let f = frame(IPPROTO_TCP, &tcp);
        assert_eq!(L4View6::parse(&f[..14 + 39]), Err(DropReason::Ip6Truncated));
        let mut g = f.clone();
        g[14] = 0x40;
        assert_eq!(L4View6::parse(&g), Err(DropReason::Ip6BadVersion));
        assert_eq!(L4View6::parse(&f[..f.len() - 1]), Err(DropReason::Ip6BadLength));
        // TCP header cut short, TCP data offset beyond the segment.
        assert_eq!(L4View6::parse(&frame(IPPROTO_TCP, &tcp[..19])), Err(DropReason::L4Malformed));
        let mut t = tcp.clone();
        t[12] = 15 << 4;
        assert_eq!(L4View6::parse(&frame(IPPROTO_TCP, &t)), Err(DropReason::L4Malformed));
        // UDP header cut short, UDP length beyond the segment.
        assert_eq!(L4View6::parse(&frame(IPPROTO_UDP, &udp(8, 0)[..7])), Err(DropReason::L4Malformed));
        assert_eq!(L4View6::parse(&frame(IPPROTO_UDP, &udp(20, 4))), Err(DropReason::L4Malformed));
        // Another protocol (ICMPv6 to a VIP).
        assert_eq!(L4View6::parse(&frame(58, &[128, 0, 0, 0, 0, 0, 0, 0])), Err(DropReason::IpUnknownProtocol));
        // A first fragment (fragment header 44: next TCP, offset 0, M set).
        let mut p = vec![IPPROTO_TCP, 0, 0, 1, 0, 0, 0, 7];
        p.extend_from_slice(&tcp);
        assert_eq!(L4View6::parse(&frame(44, &p)), Err(DropReason::Ip6Fragment));
        // An extension header running past the payload; ESP; no next header.
        assert_eq!(L4View6::parse(&frame(60, &[IPPROTO_TCP, 4, 0, 0])), Err(DropReason::Ip6ExtTruncated));
        assert_eq!(L4View6::parse(&frame(50, &[0; 16])), Err(DropReason::Ip6Esp));
        assert_eq!(L4View6::parse(&frame(59, &[])), Err(DropReason::Ip6NoNextHeader));
    }

    /// A fragment header (44): next header, offset in bytes, M, ident 7.
    fn fh(next: u8, offset: u16, more: bool) -> Vec<u8> {
        let mut h = vec![next, 0];
        h.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        h.extend_from_slice(&7u32.to_be_bytes());
        h
    }

    fn ip_of(f: &[u8]) -> Ipv6Packet<&[u8]> {
        Ipv6Packet::new_checked(&f[L3_OFFSET..]).unwrap()
    }

    #[test]
    fn an_atomic_fragment_is_viewed_as_the_packet() {
        let mut p = fh(IPPROTO_UDP, 0, false);
        p.extend_from_slice(&udp(12, 4));
        let v = L4View6::parse(&frame(44, &p)).unwrap();
        assert_eq!((v.proto(), v.sport, v.dport), (L4Proto::Udp, 5353, 53));
        assert_eq!((v.layout().l4_offset(), v.layout().l4_len()), (62, 12));
        // Not a fragment: no fragment view of it.
        let f = frame(44, &p);
        let ip = ip_of(&f);
        assert_eq!(FragView6::new(&ip, &ip.upper_layer().unwrap(), L4Proto::Udp, 1, 2), Err(DropReason::Ip6Fragment));
    }

    #[test]
    fn first_fragments() {
        // TCP: the whole header in the fragment, SYN flag read.
        let mut p = fh(IPPROTO_TCP, 0, true);
        p.extend_from_slice(&tcp_syn());
        p.extend_from_slice(&[0xaa; 4]);
        let f = frame(44, &p);
        let ip = ip_of(&f);
        let u = ip.upper_layer().unwrap();
        let v = L4View6::from_first_fragment(&ip, &u).unwrap();
        assert_eq!((v.sport, v.dport, v.is_syn(), v.layout().l4_offset()), (40000, 80, true, 62));
        let fv = FragView6::new(&ip, &u, L4Proto::Tcp, 40000, 80).unwrap();
        // The train's protocol must be the fragment's.
        assert_eq!(FragView6::new(&ip, &u, L4Proto::Udp, 40000, 80), Err(DropReason::Ip6Fragment));
        assert_eq!((fv.key.proto, fv.first, fv.ip_len, fv.hop_limit), (L4Proto::Tcp, Some(v), 40 + 32, 64));
        assert!(fv.is_first());
        // UDP: the length field is the datagram's (here far beyond the fragment).
        let mut p = fh(IPPROTO_UDP, 0, true);
        p.extend_from_slice(&udp(4000, 8));
        let f = frame(44, &p);
        let ip = ip_of(&f);
        let v = L4View6::from_first_fragment(&ip, &ip.upper_layer().unwrap()).unwrap();
        assert_eq!((v.proto(), v.sport, v.dport), (L4Proto::Udp, 5353, 53));
        // The whole packet's parse refuses it.
        assert_eq!(L4View6::parse(&f), Err(DropReason::Ip6Fragment));
        // Cut short: 19 bytes of TCP, 7 of UDP (RFC 7112).
        for (proto, seg) in [(IPPROTO_TCP, tcp_syn()[..19].to_vec()), (IPPROTO_UDP, udp(8, 0)[..7].to_vec())] {
            let mut p = fh(proto, 0, true);
            p.extend_from_slice(&seg);
            let f = frame(44, &p);
            let ip = ip_of(&f);
            let u = ip.upper_layer().unwrap();
            assert_eq!(L4View6::from_first_fragment(&ip, &u), Err(DropReason::L4Malformed));
            let l4 = if proto == IPPROTO_TCP { L4Proto::Tcp } else { L4Proto::Udp };
            assert_eq!(FragView6::new(&ip, &u, l4, 1, 2), Err(DropReason::L4Malformed));
        }
        // Another protocol, and a packet that is no fragment.
        let mut p = fh(58, 0, true);
        p.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
        let f = frame(44, &p);
        let ip = ip_of(&f);
        let u = ip.upper_layer().unwrap();
        assert_eq!(L4View6::from_first_fragment(&ip, &u), Err(DropReason::IpUnknownProtocol));
        assert_eq!(FragView6::new(&ip, &u, L4Proto::Udp, 1, 2), Err(DropReason::Ip6Fragment));
        let f = frame(IPPROTO_TCP, &tcp_syn());
        let ip = ip_of(&f);
        assert_eq!(L4View6::from_first_fragment(&ip, &ip.upper_layer().unwrap()), Err(DropReason::Ip6Fragment));
    }

    #[test]
    fn later_fragments() {
        let mut p = fh(IPPROTO_UDP, 1232, true);
        p.extend_from_slice(&[0x55; 24]);
        let f = frame(44, &p);
        let ip = ip_of(&f);
        let u = ip.upper_layer().unwrap();
        assert_eq!(fragment_protocol(&ip, &u.frag.unwrap()), Some(IPPROTO_UDP));
        let fv = FragView6::new(&ip, &u, L4Proto::Udp, 5000, 53).unwrap();
        assert_eq!((fv.key.sport, fv.key.dport, fv.first, fv.ip_len), (5000, 53, None, 40 + 32));
        assert!(!fv.is_first());
        // Data after a later fragment's header is never read as headers: a TCP-looking
        // later fragment after destination options.
        let mut p = vec![44, 0, 1, 4, 0, 0, 0, 0];
        p.extend(fh(IPPROTO_TCP, 8, false));
        p.extend_from_slice(&[0xff; 3]);
        let f = frame(60, &p);
        let ip = ip_of(&f);
        let fv = FragView6::new(&ip, &ip.upper_layer().unwrap(), L4Proto::Tcp, 1, 2).unwrap();
        assert_eq!((fv.key.proto, fv.first, fv.ip_len), (L4Proto::Tcp, None, 40 + 19));
    }

    #[test]
    fn destination_options_after_the_fragment_header() {
        // The first fragment: fragment header (next: destination options), destination
        // options (next: UDP, PadN), the UDP header; its view is past the options.
        let mut p = fh(60, 0, true);
        p.extend_from_slice(&[IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&udp(4000, 8));
        let f = frame(44, &p);
        let ip = ip_of(&f);
        let u = ip.upper_layer().unwrap();
        assert_eq!(fragment_protocol(&ip, &u.frag.unwrap()), Some(60));
        let fv = FragView6::new(&ip, &u, L4Proto::Udp, 5353, 53).unwrap();
        let v = fv.first.unwrap();
        assert_eq!((v.proto(), v.sport, v.dport, v.layout().l4_offset()), (L4Proto::Udp, 5353, 53, 14 + 40 + 16));
        assert_eq!(FragView6::new(&ip, &u, L4Proto::Tcp, 5353, 53), Err(DropReason::Ip6Fragment));
        // A later one: only the train tells its protocol.
        let mut p = fh(60, 1232, false);
        p.extend_from_slice(&[0x55; 24]);
        let f = frame(44, &p);
        let ip = ip_of(&f);
        let fv = FragView6::new(&ip, &ip.upper_layer().unwrap(), L4Proto::Tcp, 1, 2).unwrap();
        assert_eq!((fv.key.proto, fv.first), (L4Proto::Tcp, None));
    }

    #[test]
    fn never_panics_on_truncations_of_a_valid_frame() {
        let mut p = vec![IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&tcp_syn());
        let f = frame(60, &p);
        for n in 0..f.len() {
            assert!(L4View6::parse(&f[..n]).is_err(), "{n} bytes");
        }
        assert!(L4View6::parse(&f).is_ok());
    }
}
