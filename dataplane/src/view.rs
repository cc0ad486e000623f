//! The RX-side parse result of one TCP/UDP-over-IPv4 frame, carried from the worker's
//! checks to the L4 engine and the rewrites, so that a packet is parsed once on its way
//! through: where its headers are ([`Layout`]) and what its flow is ([`L4View`]).
//!
//! Contract:
//! * An [`L4View`] is built only by [`L4View::parse`] (the whole frame checked here),
//!   [`L4View::from_ipv4`] (the IPv4 header already checked by the worker; only the
//!   TCP/UDP header is checked here) or [`L4View::from_first_fragment`] (the same, for the
//!   first fragment of a fragmented datagram). Either way it holds a [`Layout`] whose
//!   guarantees hold for that frame — Ethernet II carrying IPv4, IPv4 header and total
//!   length within the frame, the whole TCP header (data offset included) within the
//!   packet, and for UDP its 8-byte header and, but in a first fragment, its length within
//!   the segment — plus the L4 facts the engine acts on (addresses, ports, TCP flags,
//!   length). Nothing else builds a `Layout`. The rewrites never read the UDP length, so a
//!   first fragment's view is used like any other (its checksum covers the whole datagram,
//!   and an incremental update of it is exact without the later fragments).
//! * The view describes the frame it was parsed from *as received*. The rewrites that
//!   take it ([`crate::xmit::nat::inbound`] and friends, [`crate::xmit::ttl::forward`])
//!   only change bytes inside the headers (addresses, ports, TTL, checksums), which keeps
//!   the layout valid; the one rewrite that changes lengths (TOA insertion) is the last
//!   to use it.
//! * Using a view with another frame is a caller bug: every access is still
//!   bounds-checked by Rust, so the worst outcome is a panic, never memory unsafety (as
//!   for [`Layout`]).

use std::net::Ipv4Addr;

use crate::conn::FlowKey;
use crate::stats::DropReason;
use crate::types::L4Proto;
use crate::wire::{
    EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket, ETHERTYPE_IPV4, IPPROTO_TCP, IPPROTO_UDP,
};

/// Offset of the IPv4 header in the frame (Ethernet II, no VLAN tag).
pub const L3_OFFSET: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// Where the headers of a validated Ethernet/IPv4/TCP-or-UDP frame are.
///
/// Only an [`L4View`] builds one; it guarantees `L3_OFFSET + ip_header_len + (TCP 20 /
/// UDP 8) <= L3_OFFSET + ip_total_len <= frame length`, a TCP data offset within the
/// segment and a UDP length within the IP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    ip_header_len: usize,
    ip_total_len: usize,
    l4: L4Proto,
}

impl Layout {
    /// The transport protocol.
    #[inline]
    pub fn l4(&self) -> L4Proto {
        self.l4
    }

    /// IPv4 header length in bytes (options included).
    #[inline]
    pub fn ip_header_len(&self) -> usize {
        self.ip_header_len
    }

    /// IPv4 total length (header + payload), in bytes.
    #[inline]
    pub fn ip_total_len(&self) -> usize {
        self.ip_total_len
    }

    /// Offset of the TCP/UDP header in the frame.
    #[inline]
    pub fn l4_offset(&self) -> usize {
        L3_OFFSET + self.ip_header_len
    }

    /// Offset just past the IPv4 packet in the frame (where Ethernet padding starts).
    #[inline]
    pub fn ip_end(&self) -> usize {
        L3_OFFSET + self.ip_total_len
    }
}

/// One validated TCP or UDP over IPv4 frame: where its headers are and what its flow is.
/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4View {
    layout: Layout,
    /// IPv4 source address.
    pub src: Ipv4Addr,
    /// IPv4 destination address.
    pub dst: Ipv4Addr,
    /// TCP/UDP source port.
    pub sport: u16,
    /// TCP/UDP destination port.
    pub dport: u16,
    /// TCP flags; `None` for UDP.
    pub flags: Option<TcpFlags>,
}

impl L4View {
    /// Parses a whole frame, with the worker's structural checks and its drop reasons:
    /// no Ethernet header (`eth_truncated`), not IPv4 (`eth_unknown_type`), IPv4 header
    /// invalid or cut short (`ip_truncated`, `ip_bad_version`, `ip_bad_ihl`,
    /// `ip_bad_length`), a fragment (`ip_fragment`), TCP/UDP header invalid
    /// (`l4_malformed`), another protocol (`ip_unknown_protocol`). Checksums, addresses
    /// and MACs are not looked at: that is the worker's own business, which then builds
    /// the view with [`L4View::from_ipv4`].
    pub fn parse(frame: &[u8]) -> Result<Self, DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::EthTruncated)?;
        if eth.ethertype() != ETHERTYPE_IPV4 {
            return Err(DropReason::EthUnknownType);
        }
        let ip = Ipv4Packet::new_checked(eth.payload())?;
        if ip.is_fragment() {
            return Err(DropReason::IpFragment);
        }
        Self::from_ipv4(&ip)
    }

    /// The view of a frame whose IPv4 header the caller has validated: `ip` is
    /// `Ipv4Packet::new_checked(&frame[L3_OFFSET..])` of that frame (Ethernet II, IPv4
    /// EtherType) and not a fragment. Checks the TCP/UDP header (`l4_malformed`) and the
    /// protocol (`ip_unknown_protocol`).
    #[inline]
    pub fn from_ipv4(ip: &Ipv4Packet<&[u8]>) -> Result<Self, DropReason> {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let (ip_header_len, ip_total_len) = (ip.header_len(), usize::from(ip.total_len()));
        let (l4, sport, dport, flags) = match ip.protocol() {
            IPPROTO_TCP => {
                let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| DropReason::L4Malformed)?;
                (L4Proto::Tcp, tcp.src_port(), tcp.dst_port(), Some(tcp.flags()))
            }
            IPPROTO_UDP => {
                let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| DropReason::L4Malformed)?;
                (L4Proto::Udp, udp.src_port(), udp.dst_port(), None)
            }
            _ => return Err(DropReason::IpUnknownProtocol),
        };
        // `new_checked` of the IPv4 header (header_len <= total_len <= bytes after
        // Ethernet), not a fragment, and `new_checked` of the segment `[header_len,
        // total_len)` are exactly `Layout`'s guarantees.
        Ok(L4View { layout: Layout { ip_header_len, ip_total_len, l4 }, src, dst, sport, dport, flags })
    }

    /// The view of the first fragment (offset 0, MF set) of a TCP or UDP datagram whose
    /// IPv4 header the caller has validated, as [`L4View::from_ipv4`] but for a packet
    /// that holds only the start of its segment: the whole TCP header (data offset within
    /// the fragment), or the UDP header's 8 bytes (the UDP length is the datagram's, not
    /// checked against the fragment). Anything shorter is `l4_malformed` (the worker
    /// counts it as `frag_inconsistent` first: RFC 1858's tiny first fragment).
    pub fn from_first_fragment(ip: &Ipv4Packet<&[u8]>) -> Result<Self, DropReason> {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let (ip_header_len, ip_total_len) = (ip.header_len(), usize::from(ip.total_len()));
        let seg = ip.payload();
        let (l4, sport, dport, flags) = match ip.protocol() {
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
        Ok(L4View { layout: Layout { ip_header_len, ip_total_len, l4 }, src, dst, sport, dport, flags })
    }

    /// Where the headers are.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// TCP or UDP.
    #[inline]
    pub fn proto(&self) -> L4Proto {
        self.layout.l4
    }

    /// The IPv4 total length (header and payload), for the byte counters.
    #[inline]
    pub fn ip_total_len(&self) -> u64 {
        self.layout.ip_total_len() as u64
    }

    /// The flow's key as the connection table indexes it.
    #[inline]
    pub fn key(&self) -> FlowKey {
        FlowKey { proto: self.proto(), src: self.src, sport: self.sport, dst: self.dst, dport: self.dport }
    }

    /// A TCP SYN without ACK (or RST): the only TCP segment that may open a connection.
    #[inline]
    pub fn is_syn(&self) -> bool {
        // One masked compare: this runs for every client packet of a known connection.
        const MASK: u8 = TcpFlags::SYN.bits() | TcpFlags::ACK.bits() | TcpFlags::RST.bits();
        matches!(self.flags, Some(f) if f.bits() & MASK == TcpFlags::SYN.bits())
    }
}

/// One IPv4 fragment of a TCP or UDP datagram whose ports the worker's fragment table
/// found (from the train's first fragment, [`crate::frag`]): what the L4 engine's fragment
/// path ([`crate::lb::LbEngine::handle_fragment`]) needs. Built only by
/// [`FragView::new`], from a validated IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragView {
    /// The flow: addresses from this fragment, ports from its train.
    pub key: FlowKey,
    /// The first fragment's view (offset 0: it holds the L4 header); `None` for a later
    /// fragment, which holds payload only.
    pub first: Option<L4View>,
    /// Where the IPv4 packet ends in the frame.
    pub ip_end: usize,
    /// The fragment's IPv4 total length, for the byte counters.
    pub ip_total_len: u16,
    /// DF set (unusual on a fragment, but possible).
    pub dont_frag: bool,
}

impl FragView {
    /// The view of a fragment whose IPv4 header the caller validated (`ip` as for
    /// [`L4View::from_ipv4`]), with its train's `ports`. Refuses another protocol
    /// (`ip_unknown_protocol`) and a first fragment without its whole L4 header
    /// (`l4_malformed`; the fragment table refuses those earlier).
    pub fn new(ip: &Ipv4Packet<&[u8]>, sport: u16, dport: u16) -> Result<Self, DropReason> {
        let proto = match ip.protocol() {
            IPPROTO_TCP => L4Proto::Tcp,
            IPPROTO_UDP => L4Proto::Udp,
            _ => return Err(DropReason::IpUnknownProtocol),
        };
        let first = if ip.frag_offset() == 0 { Some(L4View::from_first_fragment(ip)?) } else { None };
        Ok(FragView {
            key: FlowKey { proto, src: ip.src_addr(), sport, dst: ip.dst_addr(), dport },
            first,
            ip_end: L3_OFFSET + usize::from(ip.total_len()),
            ip_total_len: ip.total_len(),
            dont_frag: ip.dont_frag(),
        })
    }
}

/// The 5-tuple of a frame that looks like TCP or UDP over IPv4, read with the fewest
/// checks (EtherType, protocol, header lengths within the frame): a guess for prefetching
/// the connection table ahead of a burst ([`crate::lb::LbEngine::prefetch_burst`]),
/// never for deciding anything. Checksums, total length, fragments and the L4 header's own
/// fields are not looked at; a frame that [`L4View::parse`] would refuse may give a key
/// here (a wasted hint, no harm).
#[inline]
pub fn peek_flow_key(frame: &[u8]) -> Option<FlowKey> {
    let ip = frame.get(L3_OFFSET..)?;
    if frame.get(12..14)? != ETHERTYPE_IPV4.to_be_bytes() {
        return None;
    }
    let proto = match *ip.get(9)? {
        IPPROTO_TCP => L4Proto::Tcp,
        IPPROTO_UDP => L4Proto::Udp,
        _ => return None,
    };
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let ports = ip.get(ihl..ihl + 4)?;
    let addrs = ip.get(12..20)?;
    Some(FlowKey {
        proto,
        src: Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]),
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dst: Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (IHL 5) + a TCP header with `tcp_off` words, padded to 60 bytes.
    fn tcp_frame(tcp_off: u8, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + 6];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(46u16).to_be_bytes());
        f[22] = 64;
        f[23] = IPPROTO_TCP;
        f[26..30].copy_from_slice(&[172, 16, 0, 1]);
        f[30..34].copy_from_slice(&[10, 10, 0, 100]);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[46] = tcp_off << 4;
        f[47] = flags;
        f
    }

    #[test]
    fn parses_a_tcp_frame() {
        let f = tcp_frame(5, 0x02);
        let v = L4View::parse(&f).unwrap();
        let l = v.layout();
        assert_eq!(
            (l.l4(), l.ip_header_len(), l.ip_total_len(), l.l4_offset(), l.ip_end()),
            (L4Proto::Tcp, 20, 46, 34, 60)
        );
        assert_eq!(
            (v.src, v.dst, v.sport, v.dport),
            ("172.16.0.1".parse().unwrap(), "10.10.0.100".parse().unwrap(), 1234, 80)
        );
        assert!(v.is_syn());
        assert_eq!(v.proto(), L4Proto::Tcp);
        assert_eq!(v.ip_total_len(), 46);
    }

    #[test]
    fn first_fragments_need_the_whole_l4_header() {
        // A UDP first fragment: 8 header bytes and 16 of data, the UDP length saying 1000.
        let mut f = vec![0u8; 14 + 20 + 24];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&44u16.to_be_bytes());
        f[20] = 0x20; // MF
        f[22] = 64;
        f[23] = IPPROTO_UDP;
        f[34..36].copy_from_slice(&5353u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(L4View::parse(&f), Err(DropReason::IpFragment));
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let v = L4View::from_first_fragment(&ip).unwrap();
        assert_eq!((v.sport, v.dport, v.proto(), v.layout().ip_end()), (5353, 53, L4Proto::Udp, 58));
        // Cut to 7 bytes of UDP: refused.
        f[16..18].copy_from_slice(&27u16.to_be_bytes());
        let ip = Ipv4Packet::new_checked(&f[14..14 + 27]).unwrap();
        assert_eq!(L4View::from_first_fragment(&ip), Err(DropReason::L4Malformed));
        // TCP: the data offset must fit the fragment.
        let mut t = tcp_frame(5, 0x10);
        t[20] = 0x20;
        let ip = Ipv4Packet::new_checked(&t[14..]).unwrap();
        assert!(L4View::from_first_fragment(&ip).is_ok());
        t[46] = 7 << 4;
        let ip = Ipv4Packet::new_checked(&t[14..]).unwrap();
        assert_eq!(L4View::from_first_fragment(&ip), Err(DropReason::L4Malformed));
    }

    #[test]
    fn refuses_with_the_workers_reasons() {
        // Data offset beyond the segment.
        let f = tcp_frame(15, 0x10);
        assert_eq!(L4View::parse(&f), Err(DropReason::L4Malformed));
        // A fragment.
        let mut f = tcp_frame(5, 0x10);
        f[20] = 0x20;
        assert_eq!(L4View::parse(&f), Err(DropReason::IpFragment));
        // Another protocol.
        let mut f = tcp_frame(5, 0x10);
        f[23] = 47;
        assert_eq!(L4View::parse(&f), Err(DropReason::IpUnknownProtocol));
        // Not IPv4.
        let mut f = tcp_frame(5, 0x10);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(L4View::parse(&f), Err(DropReason::EthUnknownType));
        let mut f = tcp_frame(5, 0x10);
        f[14] = 0x65;
        assert_eq!(L4View::parse(&f), Err(DropReason::IpBadVersion));
        // Every truncation: the Ethernet header, then the IPv4 header, then the IPv4
        // total length (46) beyond the frame; the 6 padding bytes are not needed.
        let f = tcp_frame(5, 0x10);
        for n in 0..f.len() {
            let want = match n {
                0..=13 => Err(DropReason::EthTruncated),
                14..=33 => Err(DropReason::IpTruncated),
                34..=59 if n < 14 + 46 => Err(DropReason::IpBadLength),
                _ => Ok(()),
            };
            assert_eq!(L4View::parse(&f[..n]).map(|_| ()), want, "{n}");
        }
    }
}
