//! The route tables, one per address family: a connected route for each port's prefix plus
//! static routes (the default gateway is the static route `0.0.0.0/0` or `::/0`),
//! longest-prefix match. [`RouteTable`] is the IPv4 table; [`RouteTable6`] the IPv6 one,
//! the same code over 128-bit prefixes ([`Prefix`]).
//!
//! Contract:
//! * Built and validated once ([`RouteTable::new`]); immutable afterwards. A static route's
//!   gateway must lie on a connected prefix (no recursive routes, as the kernel's
//!   `onlink` check) and must not be one of our port addresses; errors say which route
//!   and why.
//! * [`RouteTable::lookup`] never allocates. An appliance has a handful of routes: up to
//!   [`LINEAR_MAX`] of them are scanned as one small array, longest prefix first (a mask
//!   and a compare each, cheaper than hashing — the data path looks routes up on every
//!   packet). Larger tables use one hash map per prefix length that has routes, probed
//!   from the longest length down (DPDK's LPM would be the next step if tables grew to
//!   thousands of routes).
//! * Identical prefixes are an error; overlapping ones are the point of LPM.

use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::BitAnd;

use ipnet::{Ipv4Net, Ipv6Net};

use super::IpHasherBuilder;
use crate::types::PortId;

/// A prefix type the table routes on: [`Ipv4Net`] or [`Ipv6Net`], seen as an integer of
/// its address width so that masking and hashing are plain integer operations.
pub trait Prefix: Copy + Eq + Debug + Display {
    /// The address type (`Ipv4Addr`, `Ipv6Addr`).
    type Addr: Copy + Eq + Debug + Display;
    /// The address as an integer (`u32`, `u128`).
    type Bits: Copy + Eq + Hash + Debug + BitAnd<Output = Self::Bits>;
    /// The longest prefix length (32, 128).
    const MAX_LEN: u8;
    /// `addr` as an integer.
    fn bits(addr: Self::Addr) -> Self::Bits;
    /// The netmask of prefix length `len` (`len` at most `MAX_LEN`).
    fn mask(len: u8) -> Self::Bits;
    /// The address part of the prefix as written (`10.0.0.1` of `10.0.0.1/24`).
    fn addr(self) -> Self::Addr;
    /// The prefix length.
    fn prefix_len(self) -> u8;
    /// The prefix with host bits cleared.
    fn trunc(self) -> Self;
    /// Whether `addr` lies in the prefix.
    fn contains_addr(self, addr: Self::Addr) -> bool;
}

impl Prefix for Ipv4Net {
    type Addr = Ipv4Addr;
    type Bits = u32;
    const MAX_LEN: u8 = 32;
    #[inline]
    fn bits(addr: Ipv4Addr) -> u32 {
        u32::from(addr)
    }
    #[inline]
    fn mask(len: u8) -> u32 {
        // `checked_shl` gives None for a shift of 32 (length 0): no bit is kept.
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }
    fn addr(self) -> Ipv4Addr {
        Ipv4Net::addr(&self)
    }
    fn prefix_len(self) -> u8 {
        Ipv4Net::prefix_len(&self)
    }
    fn trunc(self) -> Self {
        Ipv4Net::trunc(&self)
    }
    fn contains_addr(self, addr: Ipv4Addr) -> bool {
        self.contains(&addr)
    }
}

impl Prefix for Ipv6Net {
    type Addr = Ipv6Addr;
    type Bits = u128;
    const MAX_LEN: u8 = 128;
    #[inline]
    fn bits(addr: Ipv6Addr) -> u128 {
        u128::from(addr)
    }
    #[inline]
    fn mask(len: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
    }
    fn addr(self) -> Ipv6Addr {
        Ipv6Net::addr(&self)
    }
    fn prefix_len(self) -> u8 {
        Ipv6Net::prefix_len(&self)
    }
    fn trunc(self) -> Self {
        Ipv6Net::trunc(&self)
    }
    fn contains_addr(self, addr: Ipv6Addr) -> bool {
        self.contains(&addr)
    }
}

/// Where to send a packet: out of `port`, to the gateway `via` or, for a connected
/// destination (`via == None`), to the destination itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop<A = Ipv4Addr> {
    /// Egress port.
    pub port: PortId,
    /// Gateway, or `None` when the destination is on-link.
    pub via: Option<A>,
}

impl<A: Copy> NextHop<A> {
    /// The neighbour whose MAC the packet for `dst` goes to.
    #[inline]
    pub fn neighbour(&self, dst: A) -> A {
        self.via.unwrap_or(dst)
    }
}

/// A configured route (`[[route]] prefix = .., via = ..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute<P: Prefix = Ipv4Net> {
    /// Destination prefix; `0.0.0.0/0` (`::/0`) is the default route.
    pub prefix: P,
    /// Gateway; must be on a connected prefix.
    pub via: P::Addr,
}

/// An IPv6 static route.
pub type StaticRoute6 = StaticRoute<Ipv6Net>;

/// Why a route table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError<P: Prefix = Ipv4Net> {
    /// The gateway is on no port's connected prefix.
    #[error("route {prefix} via {via}: the gateway is not on any port's prefix (routes are not recursive)")]
    GatewayNotConnected {
        /// The route.
        prefix: P,
        /// Its gateway.
        via: P::Addr,
    },
    /// The gateway is one of our own port addresses.
    #[error("route {prefix} via {via}: the gateway is one of our own port addresses")]
    GatewayIsOurs {
        /// The route.
        prefix: P,
        /// Its gateway.
        via: P::Addr,
    },
    /// The prefix has bits set beyond its length (e.g. `10.0.0.1/24`).
    #[error("route {prefix}: address has host bits set (did you mean {trunc}?)")]
    HostBitsSet {
        /// The route as written.
        prefix: P,
        /// The prefix with host bits cleared.
        trunc: P,
    },
    /// The same prefix twice (two static routes, a static route equal to a port's prefix,
    /// or two ports on one prefix).
    #[error("prefix {prefix} is routed twice (static routes and port prefixes must be distinct)")]
    Duplicate {
        /// The prefix.
        prefix: P,
    },
}

/// Most routes [`RouteTable::lookup`] scans linearly; larger tables are hashed.
pub const LINEAR_MAX: usize = 16;

/// Connected and static routes with longest-prefix-match lookup. See the module docs.
#[derive(Debug, Clone)]
pub struct RouteTable<P: Prefix = Ipv4Net> {
    /// `by_len[l]`: routes of prefix length `l`, keyed by the masked network address.
    by_len: Vec<HashMap<P::Bits, NextHop<P::Addr>, IpHasherBuilder>>,
    /// Prefix lengths that have routes, longest first.
    lens: Vec<u8>,
    /// With at most [`LINEAR_MAX`] routes, all of them as (network, mask, next hop),
    /// longest prefix first; empty otherwise. Identical prefixes are refused, so the
    /// first match is the longest-prefix match.
    linear: Vec<LinearRoute<P>>,
    count: usize,
}

/// The IPv6 route table.
pub type RouteTable6 = RouteTable<Ipv6Net>;

/// One route of a small table's linear scan: (network, mask, next hop).
type LinearRoute<P> = (<P as Prefix>::Bits, <P as Prefix>::Bits, NextHop<<P as Prefix>::Addr>);

impl<P: Prefix> RouteTable<P> {
    /// Builds the table from each port's address with its prefix (`10.10.0.1/24` gives the
    /// connected route `10.10.0.0/24` on that port) and the static routes.
    pub fn new(connected: &[(PortId, P)], statics: &[StaticRoute<P>]) -> Result<Self, RouteError<P>> {
        let mut t = RouteTable {
            by_len: (0..=P::MAX_LEN).map(|_| HashMap::with_hasher(IpHasherBuilder::new())).collect(),
            lens: Vec::new(),
            linear: Vec::new(),
            count: 0,
        };
        for &(port, net) in connected {
            t.insert(net.trunc(), NextHop { port, via: None })?;
        }
        for r in statics {
            if r.prefix.trunc() != r.prefix {
                return Err(RouteError::HostBitsSet { prefix: r.prefix, trunc: r.prefix.trunc() });
            }
            if connected.iter().any(|(_, net)| net.addr() == r.via) {
                return Err(RouteError::GatewayIsOurs { prefix: r.prefix, via: r.via });
            }
            // The gateway's port: the longest connected prefix containing it.
            let port = connected
                .iter()
                .filter(|(_, net)| net.contains_addr(r.via))
                .max_by_key(|(_, net)| Prefix::prefix_len(*net))
                .map(|&(p, _)| p)
                .ok_or(RouteError::GatewayNotConnected { prefix: r.prefix, via: r.via })?;
            t.insert(r.prefix, NextHop { port, via: Some(r.via) })?;
        }
        if t.count <= LINEAR_MAX {
            for &len in &t.lens {
                let m = P::mask(len);
                t.linear.extend(t.by_len[usize::from(len)].iter().map(|(&net, &nh)| (net, m, nh)));
            }
        }
        Ok(t)
    }

    fn insert(&mut self, prefix: P, nh: NextHop<P::Addr>) -> Result<(), RouteError<P>> {
        let len = Prefix::prefix_len(prefix);
        let key = P::bits(prefix.trunc().addr());
        let bucket = &mut self.by_len[usize::from(len)];
        if bucket.contains_key(&key) {
            return Err(RouteError::Duplicate { prefix });
        }
        bucket.insert(key, nh);
        if !self.lens.contains(&len) {
            self.lens.push(len);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.count += 1;
        Ok(())
    }

    /// The next hop for `dst` by longest-prefix match, or `None` when no route covers it.
    #[inline]
    pub fn lookup(&self, dst: P::Addr) -> Option<NextHop<P::Addr>> {
        let ip = P::bits(dst);
        if self.count <= LINEAR_MAX {
            return self.linear.iter().find(|&&(net, m, _)| ip & m == net).map(|&(_, _, nh)| nh);
        }
        self.lens.iter().find_map(|&len| self.by_len[usize::from(len)].get(&(ip & P::mask(len))).copied())
    }

    /// Number of routes (connected and static).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when there is no route at all.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn lab() -> RouteTable {
        RouteTable::new(
            &[(PortId(0), net("10.10.0.1/24")), (PortId(1), net("10.20.0.1/24"))],
            &[
                StaticRoute { prefix: net("0.0.0.0/0"), via: ip("10.10.0.254") },
                StaticRoute { prefix: net("192.168.0.0/16"), via: ip("10.20.0.254") },
                StaticRoute { prefix: net("192.168.7.0/24"), via: ip("10.10.0.253") },
                StaticRoute { prefix: net("192.168.7.7/32"), via: ip("10.20.0.253") },
            ],
        )
        .unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let t = lab();
        assert_eq!(t.len(), 6);
        assert_eq!(t.lookup(ip("10.10.0.9")), Some(NextHop { port: PortId(0), via: None }));
        assert_eq!(t.lookup(ip("10.20.0.11")), Some(NextHop { port: PortId(1), via: None }));
        assert_eq!(t.lookup(ip("8.8.8.8")), Some(NextHop { port: PortId(0), via: Some(ip("10.10.0.254")) }));
        assert_eq!(t.lookup(ip("192.168.1.1")), Some(NextHop { port: PortId(1), via: Some(ip("10.20.0.254")) }));
        assert_eq!(t.lookup(ip("192.168.7.1")), Some(NextHop { port: PortId(0), via: Some(ip("10.10.0.253")) }));
        assert_eq!(t.lookup(ip("192.168.7.7")), Some(NextHop { port: PortId(1), via: Some(ip("10.20.0.253")) }));
        assert_eq!(NextHop { port: PortId(0), via: None }.neighbour(ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn no_default_means_no_route() {
        let t = RouteTable::new(&[(PortId(0), net("10.10.0.1/24"))], &[]).unwrap();
        assert_eq!(t.lookup(ip("10.11.0.1")), None);
        assert_eq!(t.lookup(ip("10.10.0.255")), Some(NextHop { port: PortId(0), via: None }));
    }

    #[test]
    fn validation_errors_are_typed_and_clear() {
        let ports = [(PortId(0), net("10.10.0.1/24"))];
        let e = RouteTable::new(&ports, &[StaticRoute { prefix: net("0.0.0.0/0"), via: ip("10.99.0.1") }]).unwrap_err();
        assert_eq!(e, RouteError::GatewayNotConnected { prefix: net("0.0.0.0/0"), via: ip("10.99.0.1") });
        assert!(e.to_string().contains("10.99.0.1") && e.to_string().contains("not on any port"), "{e}");
        let e = RouteTable::new(&ports, &[StaticRoute { prefix: net("0.0.0.0/0"), via: ip("10.10.0.1") }]).unwrap_err();
        assert!(matches!(e, RouteError::GatewayIsOurs { .. }));
        let e =
            RouteTable::new(&ports, &[StaticRoute { prefix: net("10.1.2.3/16"), via: ip("10.10.0.2") }]).unwrap_err();
        assert!(e.to_string().contains("10.1.0.0/16"), "{e}");
        let r = StaticRoute { prefix: net("10.1.0.0/16"), via: ip("10.10.0.2") };
        let e = RouteTable::new(&ports, &[r, r]).unwrap_err();
        assert_eq!(e, RouteError::Duplicate { prefix: net("10.1.0.0/16") });
        let e =
            RouteTable::new(&[(PortId(0), net("10.10.0.1/24")), (PortId(1), net("10.10.0.2/24"))], &[]).unwrap_err();
        assert!(matches!(e, RouteError::Duplicate { .. }));
    }

    fn net6(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }
    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_longest_prefix_wins_and_validates_like_ipv4() {
        let ports = [(PortId(0), net6("2001:db8:10::1/64")), (PortId(1), net6("2001:db8:20::1/64"))];
        let t = RouteTable6::new(
            &ports,
            &[
                StaticRoute6 { prefix: net6("::/0"), via: ip6("2001:db8:10::254") },
                StaticRoute6 { prefix: net6("2001:db8:99::/48"), via: ip6("2001:db8:20::254") },
                StaticRoute6 { prefix: net6("2001:db8:99:1::7/128"), via: ip6("2001:db8:10::253") },
            ],
        )
        .unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.lookup(ip6("2001:db8:10::9")), Some(NextHop { port: PortId(0), via: None }));
        assert_eq!(t.lookup(ip6("2001:db8:20::11")), Some(NextHop { port: PortId(1), via: None }));
        assert_eq!(
            t.lookup(ip6("2001:4860::8888")),
            Some(NextHop { port: PortId(0), via: Some(ip6("2001:db8:10::254")) })
        );
        assert_eq!(
            t.lookup(ip6("2001:db8:99:5::1")),
            Some(NextHop { port: PortId(1), via: Some(ip6("2001:db8:20::254")) })
        );
        assert_eq!(
            t.lookup(ip6("2001:db8:99:1::7")),
            Some(NextHop { port: PortId(0), via: Some(ip6("2001:db8:10::253")) })
        );

        let e =
            RouteTable6::new(&ports, &[StaticRoute6 { prefix: net6("::/0"), via: ip6("2001:db8:77::1") }]).unwrap_err();
        assert_eq!(e, RouteError::GatewayNotConnected { prefix: net6("::/0"), via: ip6("2001:db8:77::1") });
        assert!(e.to_string().contains("2001:db8:77::1") && e.to_string().contains("not on any port"), "{e}");
        let e =
            RouteTable6::new(&ports, &[StaticRoute6 { prefix: net6("::/0"), via: ip6("2001:db8:10::1") }]).unwrap_err();
        assert!(matches!(e, RouteError::GatewayIsOurs { .. }));
        let e =
            RouteTable6::new(&ports, &[StaticRoute6 { prefix: net6("2001:db8:99::1/48"), via: ip6("2001:db8:10::2") }])
                .unwrap_err();
        assert!(e.to_string().contains("2001:db8:99::/48"), "{e}");
        let no_default = RouteTable6::new(&ports, &[]).unwrap();
        assert_eq!(no_default.lookup(ip6("2001:db8:11::1")), None);
    }

    /// The obvious LPM: scan every route, keep the longest match.
    fn naive(routes: &[(Ipv4Net, NextHop)], dst: Ipv4Addr) -> Option<NextHop> {
        routes.iter().filter(|(n, _)| n.contains(&dst)).max_by_key(|(n, _)| n.prefix_len()).map(|&(_, h)| h)
    }

    proptest! {
        #[test]
        fn matches_naive_lpm(
            raw in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 1..64),
        ) {
            // One port on 10.0.0.0/8 holds every gateway; static routes are arbitrary.
            let ports = [(PortId(0), net("10.0.0.1/8"))];
            let mut statics = Vec::new();
            let mut expected = vec![(net("10.0.0.0/8"), NextHop { port: PortId(0), via: None })];
            for (i, (addr, len)) in raw.into_iter().enumerate() {
                let prefix = Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap().trunc();
                if expected.iter().any(|(n, _)| *n == prefix) {
                    continue;
                }
                let via = Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 2);
                statics.push(StaticRoute { prefix, via });
                expected.push((prefix, NextHop { port: PortId(0), via: Some(via) }));
            }
            let t = RouteTable::new(&ports, &statics).unwrap();
            for p in probes.into_iter().chain(expected.iter().map(|(n, _)| u32::from(n.network()))) {
                let dst = Ipv4Addr::from(p);
                prop_assert_eq!(t.lookup(dst), naive(&expected, dst));
            }
        }

        /// The same over IPv6, with prefixes clustered under 2001:db8::/32 (so they nest
        /// and overlap) and either table layout (below and above `LINEAR_MAX`).
        #[test]
        fn ipv6_matches_naive_lpm(
            raw in proptest::collection::vec((any::<u64>(), 0u8..=96), 0..40),
            probes in proptest::collection::vec(any::<u64>(), 1..64),
        ) {
            let base = u128::from(ip6("2001:db8::"));
            let ports = [(PortId(0), net6("2001:db8:ffff::1/48"))];
            let mut statics = Vec::new();
            let mut expected = vec![(net6("2001:db8:ffff::/48"), NextHop { port: PortId(0), via: None })];
            for (i, (bits, len)) in raw.into_iter().enumerate() {
                let addr = Ipv6Addr::from(base | (u128::from(bits) << 32));
                let prefix = Ipv6Net::new(addr, 32 + len).unwrap().trunc();
                if expected.iter().any(|(n, _)| *n == prefix) {
                    continue;
                }
                let via = Ipv6Addr::from(u128::from(ip6("2001:db8:ffff::2")) + i as u128);
                statics.push(StaticRoute6 { prefix, via });
                expected.push((prefix, NextHop { port: PortId(0), via: Some(via) }));
            }
            let t = RouteTable6::new(&ports, &statics).unwrap();
            let naive6 = |dst: Ipv6Addr| {
                expected.iter().filter(|(n, _)| n.contains(&dst)).max_by_key(|(n, _)| n.prefix_len()).map(|&(_, h)| h)
            };
            let probes = probes.into_iter().map(|p| Ipv6Addr::from(base | (u128::from(p) << 32)));
            for dst in probes.chain(expected.iter().map(|(n, _)| n.network())) {
                prop_assert_eq!(t.lookup(dst), naive6(dst));
            }
        }
    }
}
