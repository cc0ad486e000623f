//! Transmit-side rewrites of the forwarding modes: what happens to a packet's IPv4 and
//! TCP/UDP headers between "this flow goes to real server S" and "hand it to the
//! neighbour layer".
//!
//! * [`dr`]: direct routing — nothing at L3/L4; only the MACs change (done by the caller).
//! * [`nat`]: NAT (LVS `-m`) — DNAT towards the real server, SNAT of its replies.
//! * [`fullnat`]: Full-NAT (DPVS `-b`) — both addresses and ports, the client's address
//!   carried to the server in a TCP option (TOA), and the matching MSS adjustment.
//! * [`l4`]: the helpers these share — frame layout, endpoint rewrites, TOA insertion and
//!   MSS clamping.
//! * [`tunnel`], [`icmp_err`], [`ttl`]: IPIP encapsulation, the ICMP errors the data path
//!   sends, and TTL handling (their own module docs give their contracts).
//!
//! # Contract
//!
//! * Every function takes a whole Ethernet II frame in a [`PacketBuf`](rvs_drivers::PacketBuf)
//!   (Ethernet header first, no VLAN tag). The Ethernet MACs are left alone: the neighbour
//!   layer sets them afterwards.
//! * The worker has already validated the frame, but these functions check again what they
//!   rely on (a few comparisons) so that **no input makes them panic**; anything they cannot
//!   handle comes back as an [`XmitError`], which the worker maps to a drop counter. On
//!   `Err` the buffer is unchanged.
//! * Checksums are updated incrementally (RFC 1624, [`crate::wire::checksum`]); nothing on
//!   these paths sums the payload. A checksum that was wrong on input stays wrong by the
//!   same amount (we neither verify nor repair it, like LVS and DPVS with offload off).
//!   A UDP checksum of 0 ("none", RFC 768) stays 0.
//! * Nothing allocates: the only growth (the TOA option) moves bytes inside the buffer.
//! * Bytes after the IPv4 total length (Ethernet padding of short frames) are ignored and
//!   left as they are, except by TOA insertion, which leaves the frame exactly as long as
//!   the new IPv4 packet (the NIC pads short frames again on transmit).

use core::fmt;
use std::net::Ipv4Addr;

use crate::stats::DropReason;
use crate::wire::WireError;

pub mod dr;
pub mod fullnat;
pub mod icmp_err;
pub mod l4;
pub mod nat;
pub mod ttl;
pub mod tunnel;

/// An IPv4 address and a TCP/UDP port: one end of a flow as a rewrite sees it (a VIP and
/// virtual port, a real server, a Full-NAT local address, a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The IPv4 address.
    pub addr: Ipv4Addr,
    /// The TCP or UDP port, in host order.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from its address and port.
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

impl fmt::Display for Endpoint {
    /// `addr:port`, e.g. `10.10.0.100:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// Why a rewrite refused a packet; the buffer is unchanged. Each variant is a distinct drop
/// reason and its doc comment is its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum XmitError {
    /// The frame does not carry IPv4 (EtherType not 0x0800, or IP version not 4).
    #[error("frame does not carry IPv4")]
    NotIpv4,
    /// A header is cut short: the frame ends before the Ethernet, IPv4, TCP or UDP header
    /// does.
    #[error("header truncated")]
    Truncated,
    /// A length field is inconsistent: IPv4 IHL or total length, TCP data offset or UDP
    /// length below the minimum or beyond the packet.
    #[error("inconsistent header length field")]
    BadLength,
    /// An IPv4 fragment: a later fragment has no L4 header to rewrite (rvs does not
    /// reassemble; the worker drops fragments before this point).
    #[error("IPv4 fragment (no L4 header to rewrite)")]
    Fragment,
    /// An IP protocol this mode cannot rewrite: NAT and Full-NAT handle TCP and UDP only
    /// (ICMP errors are translated separately).
    #[error("IP protocol not supported by this forwarding mode")]
    Unsupported,
}

/// The drop reason of a packet a rewrite refused: a malformed TCP/UDP frame is
/// `l4_malformed`, a fragment `ip_fragment`, another protocol `ip_unknown_protocol`.
impl From<XmitError> for DropReason {
    fn from(e: XmitError) -> Self {
        match e {
            XmitError::NotIpv4 | XmitError::Truncated | XmitError::BadLength => DropReason::L4Malformed,
            XmitError::Fragment => DropReason::IpFragment,
            XmitError::Unsupported => DropReason::IpUnknownProtocol,
        }
    }
}

impl From<WireError> for XmitError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => XmitError::Truncated,
            WireError::BadVersion => XmitError::NotIpv4,
            WireError::BadIhl | WireError::BadTotalLength | WireError::BadDataOffset | WireError::BadUdpLength => {
                XmitError::BadLength
            }
            // Not produced by the `new_checked` calls made here (checksums and options are
            // not parsed on these paths); map them somewhere sensible rather than panic.
            WireError::BadChecksum | WireError::BadArpFormat | WireError::BadTcpOption => XmitError::Unsupported,
        }
    }
}
