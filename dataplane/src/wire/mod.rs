//! Typed zero-copy views of the packet headers rvs reads and rewrites — Ethernet, ARP,
//! IPv4, ICMPv4, IPv6 (with its extension-header walk), ICMPv6 and neighbour discovery,
//! TCP, UDP, VRRP — and the ones' complement checksum arithmetic beside them.
//!
//! # Contract
//!
//! * A view is a thin wrapper `X<T: AsRef<[u8]>> { buffer: T }` over the packet's bytes;
//!   it never copies and never allocates. Getters live in an `impl<T: AsRef<[u8]>>` block,
//!   setters in an `impl<T: AsRef<[u8]> + AsMut<[u8]>>` block, so only a writable buffer
//!   can be changed. Byte offsets live in one private `mod field` per header.
//! * `X::new_unchecked(buffer)` wraps without looking; getters may then panic on a short
//!   buffer. `X::new_checked(buffer)` validates the lengths and the fields that later
//!   getters depend on; **after `new_checked` succeeds, no getter, slice accessor or
//!   iterator of that view panics**, whatever the bytes are. Rejections say why, as a
//!   [`WireError`], which the worker maps to a drop-reason counter.
//! * Checksums are *not* verified by `new_checked` (a load balancer mostly forwards and
//!   should not pay for it on every packet); call `verify_checksum` where it matters
//!   (packets addressed to rvs itself). Rewrites update checksums incrementally
//!   (RFC 1624, see [`checksum`]) instead of recomputing them.
//! * A view of an upper layer is built over the lower layer's `payload()`: e.g. a
//!   [`TcpPacket`] over [`Ipv4Packet::payload`], which already excludes Ethernet padding.
//!
//! Multi-byte fields are big-endian (network order) on the wire; getters and setters take
//! and return host values.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vrrp;

use crate::stats::DropReason;

pub use arp::{ArpPacket, ARP_REPLY, ARP_REQUEST};
pub use ethernet::{EthernetFrame, MacAddr, ParseMacAddrError};
pub use icmp::{
    IcmpPacket, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH,
    ICMP_TIME_EXCEEDED,
};
pub use ipv4::{Ipv4Packet, IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP};
pub use ipv6::{walk_ext_headers, FragHeader, Ipv6Error, Ipv6Packet, UpperLayer, IPPROTO_ICMPV6};
pub use tcp::{TcpFlags, TcpOption, TcpOptionIter, TcpPacket};
pub use udp::UdpPacket;
pub use vrrp::{VrrpError, VrrpPacket, VrrpRepr};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of an IEEE 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Why a packet was rejected by a view's `new_checked` (or by a checksum or option check).
///
/// Each variant is a distinct drop reason; the doc comment of each is its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or than a length field says it is).
    #[error("packet truncated")]
    Truncated,
    /// The IP version field is not 4.
    #[error("IP version is not 4")]
    BadVersion,
    /// The IPv4 header length (IHL) is below 5 words.
    #[error("IPv4 header length (IHL) below 5")]
    BadIhl,
    /// The IPv4 total length is below the header length or beyond the buffer.
    #[error("IPv4 total length below the header length or beyond the buffer")]
    BadTotalLength,
    /// A checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// The ARP packet is not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
    #[error("ARP packet is not Ethernet/IPv4")]
    BadArpFormat,
    /// The TCP data offset is below 5 words or beyond the buffer.
    #[error("TCP data offset below 5 or beyond the buffer")]
    BadDataOffset,
    /// The TCP option list is malformed (bad length, or runs past the header).
    #[error("malformed TCP options")]
    BadTcpOption,
    /// The UDP length field is below 8 or beyond the buffer.
    #[error("UDP length below 8 or beyond the buffer")]
    BadUdpLength,
}

/// The drop reason of a packet whose IPv4 header failed its checks (the worker's IPv4
/// checks, and any later re-check of that header): each header fault has its own
/// counter; what is left (a short buffer, and faults of other headers, which the IPv4
/// path does not produce) counts as `ip_truncated`.
impl From<WireError> for DropReason {
    fn from(e: WireError) -> Self {
        match e {
            WireError::BadVersion => DropReason::IpBadVersion,
            WireError::BadIhl => DropReason::IpBadIhl,
            WireError::BadTotalLength => DropReason::IpBadLength,
            WireError::BadChecksum => DropReason::IpBadChecksum,
            _ => DropReason::IpTruncated,
        }
    }
}

/// The result type of the `wire` module.
pub type Result<T> = core::result::Result<T, WireError>;

#[cfg(test)]
mod tests;
