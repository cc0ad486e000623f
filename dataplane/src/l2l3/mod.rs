//! The L2/L3 lite stack: just enough ARP, neighbour resolution, routing and ICMP for a
//! load balancer to be a well-behaved host on its networks, as DPVS's `neigh.c`,
//! `route.c` and `icmp.c` are.
//!
//! Contract:
//! * Everything here is built at worker construction and then only looked up or updated
//!   in place: no allocation, no lock, no syscall per packet.
//! * Time is passed in as `now`, monotonic nanoseconds read once per burst by the worker;
//!   nothing here reads a clock.
//! * Handlers rewrite packets in place and return a [`Verdict`]; the worker owns the buffer
//!   and disposes of it accordingly (transmit, route, drop and count).
//!
//! * [`route`]: connected and static routes, longest-prefix match.
//! * [`neigh`]: the neighbour (ARP) cache with pending queues, and its cross-worker sync.
//! * [`arp`]: answering ARP for our addresses, learning, building requests and gratuitous ARP.
//! * [`icmp`]: echo replies for our addresses and VIPs.
//! * [`nd`]: IPv6 — our IPv6 addresses, neighbour discovery (RFC 4861) and ICMPv6 echo.

pub mod arp;
pub mod icmp;
pub mod nd;
pub mod neigh;
pub mod route;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ha::{HaGroup, HaRoles};
use crate::stats::DropReason;
use crate::types::PortId;
use crate::wire::MacAddr;

pub use neigh::{NeighUpdate, NeighbourTable, ResolvedNeighbours};
pub use route::{NextHop, RouteTable};

/// What the worker does with a packet after a handler looked at it.
///
/// As DPVS's `INET_ACCEPT / INET_DROP / INET_STOLEN`, an explicit value instead of flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame is complete (both MACs set): send it out of this port.
    Tx(PortId),
    /// The IPv4 packet is ready but its Ethernet destination is not known yet: send it to
    /// `next_hop` (a neighbour on `port`), resolving the MAC through the neighbour table.
    Route {
        /// Egress port.
        port: PortId,
        /// The neighbour to deliver to: the gateway, or the destination when on-link.
        next_hop: Ipv4Addr,
    },
    /// The IPv6 packet is ready; send it out of `port` to `next_hop`, resolving the MAC
    /// through the IPv6 neighbour table (neighbour discovery, soliciting it when unknown).
    Route6 {
        /// Egress port.
        port: PortId,
        /// The neighbour to deliver to: the gateway, or the destination when on-link, or
        /// for DR the real server (the destination stays the VIP).
        next_hop: Ipv6Addr,
    },
    /// As [`Verdict::Route6`], for an IPv6 packet whose fixed header is followed by a
    /// fragment header (a NAT64 reply, `xmit::nat64::v4_to_v6_fragment`) and which may be
    /// longer than `port`'s MTU: the worker first cuts it into IPv6 fragments for that
    /// MTU (`xmit::frag::fragment_v6`, with buffers from its pool), then routes each.
    Route6Cut {
        /// Egress port.
        port: PortId,
        /// The neighbour to deliver to, as [`Verdict::Route6`]'s.
        next_hop: Ipv6Addr,
    },
    /// The IPv4 or IPv6 packet is ready and the MAC of its next hop already known (a
    /// connection's cached next hop, see `conn::CachedHop`): set both MACs and send it out
    /// of `port`, without a neighbour lookup.
    Forward {
        /// Egress port.
        port: PortId,
        /// The next hop's MAC (the Ethernet destination).
        mac: MacAddr,
    },
    /// Drop and count.
    Drop(DropReason),
    /// The stack absorbed the packet (e.g. an ARP reply it learned from); free it.
    Consumed,
    /// A frame for the kernel interface of this port (the exception path,
    /// [`crate::exception`]): rate limited and handed over unchanged.
    Kernel(PortId),
    /// An IPv4 or IPv6 fragment of a TCP/UDP flow, checked like any packet: the worker's
    /// fragment path (`worker::frag`, `worker::frag6`) takes it, to match it with its flow
    /// through the fragment table.
    Fragment,
    /// Another worker owns this packet's flow: move it there through the redirect ring.
    Redirect {
        /// The owning worker's index.
        worker: usize,
    },
}

/// What an address of ours is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrKind {
    /// The port's own address (`[[port]] address`).
    Port,
    /// A Full-NAT local address (`[[port]] local_addresses`).
    Local,
    /// A virtual service address.
    Vip,
    /// A floating address of a VRRP instance that is none of the above (e.g. the NAT
    /// gateway real servers route through): answered for ARP and ICMP echo on the port
    /// whose connected subnet holds it while this node is the instance's master; TCP/UDP
    /// to it is `l4_no_service`, as to a port address. Added by
    /// [`crate::worker::Worker::with_ha`].
    Floating,
}

/// One address of ours: what it is, on which port we answer ARP for it, and which VRRP
/// instance it moves with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedAddr {
    /// What the address is.
    pub kind: AddrKind,
    /// The port ARP is answered on; `None` (VIPs only) answers on every port.
    pub port: Option<PortId>,
    /// The VRRP instance the address moves with ([`HaRoles::group_of`], looked up when
    /// the book is built): while this node is backup for it, the worker neither answers
    /// for it nor forwards its traffic. `None`: always answered.
    pub group: Option<HaGroup>,
}

impl OwnedAddr {
    /// An address that moves with no VRRP instance.
    pub const fn new(kind: AddrKind, port: Option<PortId>) -> Self {
        OwnedAddr { kind, port, group: None }
    }

    /// True when `roles` (if any) let this node answer for the address now: it has no
    /// group, or this node is its group's master. One relaxed load for a grouped address.
    #[inline]
    pub fn active(&self, roles: Option<&HaRoles>) -> bool {
        match self.group {
            None => true,
            Some(g) => roles.is_some_and(|r| r.is_master(g)),
        }
    }
}

/// Most addresses an [`AddressBook`] looks up by a linear scan rather than by hashing.
pub const ADDRESS_SCAN_MAX: usize = 8;

/// Bits of an [`AddressBook`]'s filter (a one-hash Bloom filter of its addresses).
const FILTER_BITS: u32 = 1024;

/// Where `ip` falls in an [`AddressBook`]'s filter: word and bit. A fixed multiplicative
/// hash (the high bits of the 32-bit Fibonacci product), unseeded on purpose: a sender who
/// picks addresses that share a bit with ours only sends its packets down the exact
/// lookup every packet took before the filter existed.
#[inline(always)]
fn filter_slot(ip: Ipv4Addr) -> (usize, u64) {
    let h = u32::from(ip).wrapping_mul(0x9e37_79b1) >> (32 - FILTER_BITS.trailing_zeros());
    ((h / 64) as usize, 1u64 << (h % 64))
}

/// The addresses a worker answers for: port addresses, Full-NAT local addresses, VIPs
/// and (with VRRP) floating addresses, each with its VRRP group if any.
/// Built once at construction; lookups do not allocate. The worker looks up every
/// packet's source and destination here: a book of at most [`ADDRESS_SCAN_MAX`]
/// addresses (the usual appliance) is scanned, a few compares, instead of hashed; before
/// either, a 1024-bit filter answers "not ours" for most other addresses (clients, real
/// servers) in a multiply, a load and a test, whatever the book's size.
#[derive(Debug, Clone)]
pub struct AddressBook {
    /// One bit per [`filter_slot`] of every address in the book: a clear bit means the
    /// address is not ours; a set one, maybe (then the scan or the map decides).
    filter: [u64; (FILTER_BITS / 64) as usize],
    map: HashMap<Ipv4Addr, OwnedAddr, IpHasherBuilder>,
    /// Insertion order, for gratuitous ARP (deterministic output).
    order: Vec<(Ipv4Addr, OwnedAddr)>,
}

/// An address was configured twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address {0} is configured more than once (port addresses, local addresses and VIPs must be distinct)")]
pub struct DuplicateAddress(pub Ipv4Addr);

impl Default for AddressBook {
    fn default() -> Self {
        Self::new()
    }
}

impl AddressBook {
    /// An empty book.
    pub fn new() -> Self {
        AddressBook {
            filter: [0; (FILTER_BITS / 64) as usize],
            map: HashMap::with_hasher(IpHasherBuilder::new()),
            order: Vec::new(),
        }
    }

    /// Adds an address; each address may be added once.
    pub fn insert(&mut self, ip: Ipv4Addr, owned: OwnedAddr) -> Result<(), DuplicateAddress> {
        if self.map.contains_key(&ip) {
            return Err(DuplicateAddress(ip));
        }
        self.map.insert(ip, owned);
        self.order.push((ip, owned));
        let (word, bit) = filter_slot(ip);
        self.filter[word] |= bit;
        Ok(())
    }

    /// False when `ip` is certainly not in the book (its filter bit is clear).
    #[inline(always)]
    fn may_hold(&self, ip: Ipv4Addr) -> bool {
        let (word, bit) = filter_slot(ip);
        self.filter[word] & bit != 0
    }

    /// What `ip` is to us, if it is ours.
    #[inline]
    pub fn get(&self, ip: Ipv4Addr) -> Option<OwnedAddr> {
        if !self.may_hold(ip) {
            return None;
        }
        if self.order.len() <= ADDRESS_SCAN_MAX {
            return self.order.iter().find(|(a, _)| *a == ip).map(|&(_, o)| o);
        }
        self.map.get(&ip).copied()
    }

    /// True when `ip` is one of our addresses or VIPs.
    #[inline]
    pub fn is_ours(&self, ip: Ipv4Addr) -> bool {
        if !self.may_hold(ip) {
            return false;
        }
        if self.order.len() <= ADDRESS_SCAN_MAX {
            return self.order.iter().any(|(a, _)| *a == ip);
        }
        self.map.contains_key(&ip)
    }

    /// True when an ARP request for `ip` received on `port` is for one of our addresses
    /// on that port (whatever its VRRP role; see [`OwnedAddr::active`]).
    #[inline]
    pub fn answers_arp(&self, ip: Ipv4Addr, port: PortId) -> bool {
        self.get(ip).is_some_and(|o| o.port.is_none_or(|p| p == port))
    }

    /// Every address, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, OwnedAddr)> + '_ {
        self.order.iter().copied()
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when there are no addresses.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A fast keyed hash for IPv4 keys (one multiply), seeded per table from the standard
/// library's random state so that hosts on the wire cannot pick colliding addresses in
/// advance. SipHash (std's default) costs ~20 ns per lookup, too much for per-packet
/// neighbour and route lookups.
#[derive(Debug, Clone, Copy)]
pub struct IpHasherBuilder {
    seed: u64,
}

impl IpHasherBuilder {
    /// A builder with a random seed.
    pub fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x7276_735f_6970); // any constant; the randomness is in RandomState
        IpHasherBuilder { seed: h.finish() | 1 }
    }
}

impl Default for IpHasherBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for IpHasherBuilder {
    type Hasher = IpHasher;
    fn build_hasher(&self) -> IpHasher {
        IpHasher { state: self.seed }
    }
}

/// The hasher of [`IpHasherBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct IpHasher {
    state: u64,
}

impl Hasher for IpHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u8(b);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        // IPv6 addresses hash as one u128: two steps instead of sixteen bytewise ones.
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        // Multiply-xorshift (a 64-bit Fibonacci hash step with the key mixed into the seed).
        let x = (self.state ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.state = x ^ (x >> 29);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let x = self.state.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 32)
    }
}

/// True for a source address no host may send from (RFC 1122 §3.2.1.3, RFC 1812 §5.3.7):
/// multicast, limited broadcast, `0.0.0.0/8`, loopback. (Whether it is one of *our*
/// addresses is the caller's check.)
#[inline]
pub fn is_martian_source(ip: Ipv4Addr) -> bool {
    ip.is_multicast() || ip.is_broadcast() || ip.octets()[0] == 0 || ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_book_arp_rules() {
        let mut b = AddressBook::new();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let v = Ipv4Addr::new(10, 0, 0, 100);
        b.insert(a, OwnedAddr::new(AddrKind::Port, Some(PortId(0)))).unwrap();
        b.insert(v, OwnedAddr::new(AddrKind::Vip, None)).unwrap();
        assert_eq!(b.insert(a, OwnedAddr::new(AddrKind::Vip, None)), Err(DuplicateAddress(a)));
        assert!(b.answers_arp(a, PortId(0)));
        assert!(!b.answers_arp(a, PortId(1)));
        assert!(b.answers_arp(v, PortId(1)));
        assert!(!b.answers_arp(Ipv4Addr::new(10, 0, 0, 2), PortId(0)));
        assert_eq!(b.len(), 2);
        // Past the linear-scan size the hash map answers the same.
        for i in 0..2 * ADDRESS_SCAN_MAX as u8 {
            b.insert(Ipv4Addr::new(10, 1, 0, i), OwnedAddr::new(AddrKind::Vip, Some(PortId(1)))).unwrap();
            assert!(b.answers_arp(a, PortId(0)) && b.answers_arp(v, PortId(1)), "{i}");
            assert!(b.is_ours(Ipv4Addr::new(10, 1, 0, i)) && !b.is_ours(Ipv4Addr::new(10, 1, 1, i)), "{i}");
            assert_eq!(b.get(Ipv4Addr::new(10, 1, 0, 0)).map(|o| o.kind), Some(AddrKind::Vip));
        }
        // VRRP: an address in a group is active only while this node is its master.
        let roles = HaRoles::new(1, [(std::net::IpAddr::V4(v), HaGroup(0))]).unwrap();
        let grouped = OwnedAddr { group: Some(HaGroup(0)), ..OwnedAddr::new(AddrKind::Vip, None) };
        assert!(!grouped.active(Some(&roles)) && !grouped.active(None));
        assert!(OwnedAddr::new(AddrKind::Port, None).active(Some(&roles)));
        roles.set_master(HaGroup(0), true);
        assert!(grouped.active(Some(&roles)));
        assert!(is_martian_source(Ipv4Addr::new(0, 1, 2, 3)));
        assert!(is_martian_source(Ipv4Addr::new(224, 0, 0, 1)));
        assert!(is_martian_source(Ipv4Addr::new(127, 0, 0, 1)));
        assert!(!is_martian_source(a));
    }

    proptest::proptest! {
        /// The filter in front of the scan and the map never hides an address of the book
        /// (a clear bit means "not ours"), at any size, scanned or hashed: `get` and
        /// `is_ours` answer as a plain list would, for members, their neighbours (which
        /// share most bits) and random addresses.
        #[test]
        fn address_book_filter_never_hides_an_address(
            raw in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..80),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..64),
        ) {
            let mut b = AddressBook::new();
            let mut model: Vec<(Ipv4Addr, OwnedAddr)> = Vec::new();
            for (i, &r) in raw.iter().enumerate() {
                let ip = Ipv4Addr::from(r);
                let kind = [AddrKind::Port, AddrKind::Local, AddrKind::Vip][i % 3];
                let owned = OwnedAddr::new(kind, Some(PortId((i % 4) as u16)));
                let dup = model.iter().any(|&(a, _)| a == ip);
                proptest::prop_assert_eq!(b.insert(ip, owned).is_err(), dup);
                if !dup {
                    model.push((ip, owned));
                }
            }
            let queries = raw.iter().flat_map(|&r| [r, r.wrapping_add(1), r ^ 0x100]).chain(probes);
            for q in queries {
                let ip = Ipv4Addr::from(q);
                let want = model.iter().find(|&&(a, _)| a == ip).map(|&(_, o)| o);
                proptest::prop_assert_eq!(b.get(ip), want, "{}", ip);
                proptest::prop_assert_eq!(b.is_ours(ip), want.is_some(), "{}", ip);
            }
        }
    }
}
