//! Transmit-side rewrites of the forwarding modes: what happens to a packet's IPv4 and
//! TCP/UDP headers between "this flow goes to real server S" and "hand it to the
//! neighbour layer".
//!
//! * [`dr`]: direct routing — nothing at L3/L4; only the MACs change (done by the caller).
//! * [`nat`]: NAT (LVS `-m`) — DNAT towards the real server, SNAT of its replies.
//! * [`fullnat`]: Full-NAT (DPVS `-b`) — both addresses and ports, the client's address
//!   carried to the server in a TCP option (TOA), and the matching MSS adjustment.
//! * [`nat66`], [`fullnat66`]: the IPv6 counterparts of NAT and Full-NAT (IPv6 TOA,
//!   20 bytes, for IPv6 clients).
//! * [`nat64`]: NAT64 through Full-NAT — an IPv6 client's flow translated to IPv4 towards
//!   an IPv4 server and its replies back (RFC 7915 header translation, IPv6 TOA);
//!   [`nat64_icmp`]: the ICMP errors about those flows, translated between the families.
//! * [`l4`]: the helpers these share — endpoint rewrites, TOA insertion and MSS clamping.
//! * [`frag`]: the address rewrite of fragments without an L4 header, and the outer
//!   fragmentation of IPIP packets over the MTU.
//! * [`tunnel`], [`icmp_err`], [`icmp_rate`], [`ttl`]: IPIP encapsulation, the ICMP errors
//!   the data path sends and their rate limits, and TTL handling (their own module docs
//!   give their contracts).
//!
//! # Contract
//!
//! * Every function takes a whole Ethernet II frame in a [`PacketBuf`](rvs_drivers::PacketBuf)
//!   (Ethernet header first, no VLAN tag). The Ethernet MACs are left alone: the neighbour
//!   layer sets them afterwards.
//! * The frame was parsed once, on receive: the rewrites take what that parse found (the
//!   [`L4View`](crate::view::L4View)'s [`Layout`](crate::view::Layout) for NAT and
//!   Full-NAT, TTL and IPIP; the parsed ICMP error for its translation) instead of
//!   validating the frame again. What they cannot do (a TOA that does not fit, a packet
//!   over the tunnel MTU, an ICMP error that cannot be built) comes back as a value the
//!   caller counts; the buffer is then unchanged.
//! * Checksums are updated incrementally (RFC 1624, [`crate::wire::checksum`]); nothing on
//!   these paths sums the payload. A checksum that was wrong on input stays wrong by the
//!   same amount (we neither verify nor repair it, like LVS and DPVS with offload off).
//!   A UDP checksum of 0 ("none", RFC 768) stays 0.
//! * Nothing allocates: the only growth (the TOA option) moves bytes inside the buffer.
//! * Bytes after the IPv4 total length (Ethernet padding of short frames) are ignored and
//!   left as they are, except by TOA insertion, which leaves the frame exactly as long as
//!   the new IPv4 packet (the NIC pads short frames again on transmit).

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub mod dr;
pub mod frag;
pub mod fullnat;
pub mod fullnat66;
pub mod icmp6_err;
pub mod icmp_err;
pub mod icmp_rate;
pub mod l4;
pub mod nat;
pub mod nat64;
pub mod nat64_icmp;
pub mod nat66;
pub mod ttl;
pub mod tunnel;
pub mod tunnel6;

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

/// An IPv6 address and a TCP/UDP port: one end of an IPv6 flow as a rewrite sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint6 {
    /// The IPv6 address.
    pub addr: Ipv6Addr,
    /// The TCP or UDP port, in host order.
    pub port: u16,
}

impl Endpoint6 {
    /// An endpoint from its address and port.
    pub const fn new(addr: Ipv6Addr, port: u16) -> Self {
        Endpoint6 { addr, port }
    }
}

impl fmt::Display for Endpoint6 {
    /// `[addr]:port`, e.g. `[2001:db8::1]:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]:{}", self.addr, self.port)
    }
}
