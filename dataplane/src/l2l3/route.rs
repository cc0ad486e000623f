//! The IPv4 route table: a connected route for each port's prefix plus static routes (the
//! default gateway is the static route `0.0.0.0/0`), longest-prefix match.
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
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::IpHasherBuilder;
use crate::types::PortId;

/// Where to send a packet: out of `port`, to the gateway `via` or, for a connected
/// destination (`via == None`), to the destination itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port.
    pub port: PortId,
    /// Gateway, or `None` when the destination is on-link.
    pub via: Option<Ipv4Addr>,
}

impl NextHop {
    /// The neighbour whose MAC the packet for `dst` goes to.
    #[inline]
    pub fn neighbour(&self, dst: Ipv4Addr) -> Ipv4Addr {
        self.via.unwrap_or(dst)
    }
}

/// A configured route (`[[route]] prefix = .., via = ..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    /// Destination prefix; `0.0.0.0/0` is the default route.
    pub prefix: Ipv4Net,
    /// Gateway; must be on a connected prefix.
    pub via: Ipv4Addr,
}

/// Why a route table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The gateway is on no port's connected prefix.
    #[error("route {prefix} via {via}: the gateway is not on any port's prefix (routes are not recursive)")]
    GatewayNotConnected {
        /// The route.
        prefix: Ipv4Net,
        /// Its gateway.
        via: Ipv4Addr,
    },
    /// The gateway is one of our own port addresses.
    #[error("route {prefix} via {via}: the gateway is one of our own port addresses")]
    GatewayIsOurs {
        /// The route.
        prefix: Ipv4Net,
        /// Its gateway.
        via: Ipv4Addr,
    },
    /// The prefix has bits set beyond its length (e.g. `10.0.0.1/24`).
    #[error("route {prefix}: address has host bits set (did you mean {trunc}?)")]
    HostBitsSet {
        /// The route as written.
        prefix: Ipv4Net,
        /// The prefix with host bits cleared.
        trunc: Ipv4Net,
    },
    /// The same prefix twice (two static routes, a static route equal to a port's prefix,
    /// or two ports on one prefix).
    #[error("prefix {prefix} is routed twice (static routes and port prefixes must be distinct)")]
    Duplicate {
        /// The prefix.
        prefix: Ipv4Net,
    },
}

/// Most routes [`RouteTable::lookup`] scans linearly; larger tables are hashed.
pub const LINEAR_MAX: usize = 16;

/// Connected and static routes with longest-prefix-match lookup. See the module docs.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// `by_len[l]`: routes of prefix length `l`, keyed by the masked network address.
    by_len: Vec<HashMap<u32, NextHop, IpHasherBuilder>>,
    /// Prefix lengths that have routes, longest first.
    lens: Vec<u8>,
    /// With at most [`LINEAR_MAX`] routes, all of them as (network, mask, next hop),
    /// longest prefix first; empty otherwise. Identical prefixes are refused, so the
    /// first match is the longest-prefix match.
    linear: Vec<(u32, u32, NextHop)>,
    count: usize,
}

#[inline]
fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl RouteTable {
    /// Builds the table from each port's address with its prefix (`10.10.0.1/24` gives the
    /// connected route `10.10.0.0/24` on that port) and the static routes.
    pub fn new(connected: &[(PortId, Ipv4Net)], statics: &[StaticRoute]) -> Result<Self, RouteError> {
        let mut t = RouteTable {
            by_len: (0..=32).map(|_| HashMap::with_hasher(IpHasherBuilder::new())).collect(),
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
                .filter(|(_, net)| net.contains(&r.via))
                .max_by_key(|(_, net)| net.prefix_len())
                .map(|&(p, _)| p)
                .ok_or(RouteError::GatewayNotConnected { prefix: r.prefix, via: r.via })?;
            t.insert(r.prefix, NextHop { port, via: Some(r.via) })?;
        }
        if t.count <= LINEAR_MAX {
            for &len in &t.lens {
                let m = mask(len);
                t.linear.extend(t.by_len[usize::from(len)].iter().map(|(&net, &nh)| (net, m, nh)));
            }
        }
        Ok(t)
    }

    fn insert(&mut self, prefix: Ipv4Net, nh: NextHop) -> Result<(), RouteError> {
        let len = prefix.prefix_len();
        let key = u32::from(prefix.network());
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
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let ip = u32::from(dst);
        if self.count <= LINEAR_MAX {
            return self.linear.iter().find(|&&(net, m, _)| ip & m == net).map(|&(_, _, nh)| nh);
        }
        self.lens.iter().find_map(|&len| self.by_len[usize::from(len)].get(&(ip & mask(len))).copied())
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
    }
}
