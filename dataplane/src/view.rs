//! The parsed view of one TCP/UDP-over-IPv4 frame, carried from the worker's checks to the
//! L4 engine and the rewrites, so that a packet is parsed once on its way through.
//!
//! Contract:
//! * An [`L4View`] is built only by [`L4View::parse`] (the whole frame checked here) or
//!   [`L4View::from_ipv4`] (the IPv4 header already checked by the worker; only the
//!   TCP/UDP header is checked here). Either way it holds a [`Layout`] with the guarantees
//!   of [`Layout::parse`] — Ethernet II, IPv4 header and total length within the frame,
//!   not a fragment, TCP data offset or UDP length within the segment — plus the L4 facts
//!   the engine acts on (addresses, ports, TCP flags, length).
//! * The view describes the frame it was parsed from *as received*. The rewrites that
//!   take it ([`crate::xmit::nat::inbound_with`] and friends, [`crate::xmit::ttl::forward_with`])
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
use crate::wire::{Ipv4Packet, TcpFlags, TcpPacket, UdpPacket, IPPROTO_TCP, IPPROTO_UDP};
use crate::xmit::l4::{L4Kind, Layout, L3_OFFSET};

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
    /// Parses a whole frame: IPv4 header invalid or cut short (`ip_truncated`), a fragment
    /// (`ip_fragment`), TCP/UDP header invalid (`l4_malformed`), another protocol
    /// (`ip_unknown_protocol`). The Ethernet header is assumed to be Ethernet II carrying
    /// IPv4 (the worker checked the EtherType); checksums are not looked at.
    pub fn parse(frame: &[u8]) -> Result<Self, DropReason> {
        let ip = frame.get(L3_OFFSET..).and_then(|b| Ipv4Packet::new_checked(b).ok()).ok_or(DropReason::IpTruncated)?;
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
                (L4Kind::Tcp, tcp.src_port(), tcp.dst_port(), Some(tcp.flags()))
            }
            IPPROTO_UDP => {
                let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| DropReason::L4Malformed)?;
                (L4Kind::Udp, udp.src_port(), udp.dst_port(), None)
            }
            _ => return Err(DropReason::IpUnknownProtocol),
        };
        // `new_checked` of the IPv4 header (header_len <= total_len <= bytes after
        // Ethernet), not a fragment, and `new_checked` of the segment `[header_len,
        // total_len)` are exactly `Layout::parse`'s guarantees.
        Ok(L4View { layout: Layout::from_validated(ip_header_len, ip_total_len, l4), src, dst, sport, dport, flags })
    }

    /// Where the headers are.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// TCP or UDP.
    #[inline]
    pub fn proto(&self) -> L4Proto {
        match self.layout.l4() {
            L4Kind::Tcp => L4Proto::Tcp,
            L4Kind::Udp => L4Proto::Udp,
        }
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
        self.flags.is_some_and(|f| f.syn() && !f.ack() && !f.rst())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmit::XmitError;

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
    fn agrees_with_layout_parse() {
        let f = tcp_frame(5, 0x02);
        let v = L4View::parse(&f).unwrap();
        assert_eq!(Ok(*v.layout()), Layout::parse(&f));
        assert_eq!(
            (v.src, v.dst, v.sport, v.dport),
            ("172.16.0.1".parse().unwrap(), "10.10.0.100".parse().unwrap(), 1234, 80)
        );
        assert!(v.is_syn());
        assert_eq!(v.proto(), L4Proto::Tcp);
        assert_eq!(v.ip_total_len(), 46);
    }

    #[test]
    fn refuses_what_layout_refuses() {
        // Data offset beyond the segment.
        let f = tcp_frame(15, 0x10);
        assert_eq!(L4View::parse(&f), Err(DropReason::L4Malformed));
        assert_eq!(Layout::parse(&f), Err(XmitError::BadLength));
        // A fragment.
        let mut f = tcp_frame(5, 0x10);
        f[20] = 0x20;
        assert_eq!(L4View::parse(&f), Err(DropReason::IpFragment));
        assert_eq!(Layout::parse(&f), Err(XmitError::Fragment));
        // Another protocol.
        let mut f = tcp_frame(5, 0x10);
        f[23] = 47;
        assert_eq!(L4View::parse(&f), Err(DropReason::IpUnknownProtocol));
        // Every truncation.
        let f = tcp_frame(5, 0x10);
        for n in 0..f.len() {
            assert_eq!(L4View::parse(&f[..n]).is_ok(), Layout::parse(&f[..n]).is_ok(), "{n}");
        }
    }
}
