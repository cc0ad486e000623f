//! Per-service admission of new flows: client prefix lists (`allow` and `deny`, DPVS's
//! white and black lists) and the service's connection limit (`maxconn`, HAProxy's).
//!
//! Contract:
//! * Built by the control plane with the service table and immutable afterwards (a new
//!   list is a new table, published like any other change).
//! * The worker asks [`Admission::admit`] once per *new* flow — a TCP SYN, or a UDP
//!   datagram that would create a connection — never for a packet of an existing
//!   connection: established flows neither pay for it nor are cut when a list or the
//!   limit changes.
//! * A client is refused when a `deny` prefix contains it (deny wins), or when `allow` is
//!   non-empty and no `allow` prefix contains it (`acl_denied`). Then, when `maxconn` is
//!   set and the service's connections (active + inactive, summed over every worker) have
//!   reached it, the flow is refused (`service_maxconn`).
//!
//! Lookup: each list is a sorted table of disjoint address ranges (the prefixes merged at
//! build time) searched by bisection: O(log n) loads from one contiguous slice, no
//! allocation, no hashing. A linear scan would be as fast for the handful of prefixes
//! most services list, but a SYN flood makes this the per-packet path, and lists of
//! thousands of networks (a country block list) are ordinary; bisection keeps both cheap
//! without a trie's pointer chasing. Containment is all that matters (no per-prefix
//! action), so overlapping or nested prefixes can be merged into one range.
//!
//! `maxconn` with several workers: the limit is on the service as a whole, read from the
//! service's per-worker counter slots (the same counts the per-server `upper_threshold`,
//! ipvsadm -x, compares against), not a per-worker share: RSS rarely spreads a few
//! clients evenly, and `maxconn / workers` would refuse flows on a busy worker while the
//! others have room (and round a small limit down to 0). The sum is read without a lock,
//! so workers admitting at the same instant can each see the last free place: the count
//! may exceed `maxconn` by at most `workers - 1`, as IPVS's per-CPU counters allow its
//! thresholds to.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::server::ServerStats;
use crate::stats::DropReason;

/// A set of IPv4 prefixes as sorted, disjoint, non-adjacent inclusive address ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    ranges: Box<[(u32, u32)]>,
}

impl PrefixSet {
    /// The set of addresses in any of `prefixes` (in any order, overlaps allowed).
    pub fn new(prefixes: &[Ipv4Net]) -> Self {
        let mut v: Vec<(u32, u32)> =
            prefixes.iter().map(|p| (u32::from(p.network()), u32::from(p.broadcast()))).collect();
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        PrefixSet { ranges: out.into_boxed_slice() }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of disjoint ranges after merging.
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    /// Whether `addr` is in the set: one bisection, no allocation.
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        let i = self.ranges.partition_point(|r| r.0 <= a);
        i > 0 && self.ranges[i - 1].1 >= a
    }
}

/// What a service admits (see the module docs). The default admits every client, with no
/// limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Clients allowed; empty allows all.
    pub allow: PrefixSet,
    /// Clients refused, whatever `allow` says.
    pub deny: PrefixSet,
    /// Most connections of the service at once, over all workers; 0 = no limit.
    pub maxconn: u32,
}

impl Admission {
    /// Admission by `allow` and `deny` prefixes and `maxconn` (0 = no limit).
    pub fn new(allow: &[Ipv4Net], deny: &[Ipv4Net], maxconn: u32) -> Self {
        Admission { allow: PrefixSet::new(allow), deny: PrefixSet::new(deny), maxconn }
    }

    /// Whether this admits every flow without looking (no list, no limit).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.maxconn == 0
    }

    /// Whether the lists let `client` open a connection (deny wins; an empty allow list
    /// allows all).
    #[inline]
    pub fn client_allowed(&self, client: Ipv4Addr) -> bool {
        !self.deny.contains(client) && (self.allow.is_empty() || self.allow.contains(client))
    }

    /// Whether a new flow from `client` may open a connection on a service whose
    /// service-wide counters are `conns`; the error is the drop reason.
    #[inline]
    pub fn admit(&self, client: Ipv4Addr, conns: &ServerStats) -> Result<(), DropReason> {
        if self.is_open() {
            return Ok(());
        }
        if !self.client_allowed(client) {
            return Err(DropReason::AclDenied);
        }
        if self.maxconn != 0 && conns.conns_now() >= u64::from(self.maxconn) {
            return Err(DropReason::ServiceMaxconn);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<Ipv4Net> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_merge_into_disjoint_ranges_and_bisection_finds_them() {
        let s =
            PrefixSet::new(&nets(&["10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/25", "192.168.1.128/25", "1.2.3.4/32"]));
        assert_eq!(s.ranges(), 3, "nested and adjacent prefixes merged");
        for (a, want) in [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.168.1.0", true),
            ("192.168.1.255", true),
            ("192.168.2.0", false),
            ("1.2.3.4", true),
            ("1.2.3.5", false),
            ("1.2.3.3", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
        ] {
            assert_eq!(s.contains(ip(a)), want, "{a}");
        }
        let all = PrefixSet::new(&nets(&["0.0.0.0/0", "255.255.255.255/32"]));
        assert!(all.contains(ip("0.0.0.0")) && all.contains(ip("255.255.255.255")) && all.ranges() == 1);
        assert!(!PrefixSet::default().contains(ip("1.1.1.1")));
    }

    #[test]
    fn deny_wins_empty_allow_allows_all_and_maxconn_counts_every_worker() {
        let stats = ServerStats::new(2);
        let open = Admission::default();
        assert!(open.is_open() && open.admit(ip("1.1.1.1"), &stats).is_ok());
        let a = Admission::new(&nets(&["10.0.0.0/8"]), &nets(&["10.9.0.0/16"]), 0);
        assert_eq!(a.admit(ip("10.1.2.3"), &stats), Ok(()));
        assert_eq!(a.admit(ip("10.9.2.3"), &stats), Err(DropReason::AclDenied), "deny wins over allow");
        assert_eq!(a.admit(ip("11.1.2.3"), &stats), Err(DropReason::AclDenied), "not in allow");
        let d = Admission::new(&[], &nets(&["10.9.0.0/16"]), 0);
        assert_eq!(d.admit(ip("11.1.2.3"), &stats), Ok(()), "empty allow allows all");
        let m = Admission::new(&[], &nets(&["10.9.0.0/16"]), 2);
        stats.conn_opened(0, true);
        assert_eq!(m.admit(ip("1.1.1.1"), &stats), Ok(()));
        stats.conn_opened(1, false);
        assert_eq!(m.admit(ip("1.1.1.1"), &stats), Err(DropReason::ServiceMaxconn), "1 + 1 over two workers");
        assert_eq!(m.admit(ip("10.9.0.1"), &stats), Err(DropReason::AclDenied), "the list is asked first");
        stats.conn_closed(0, true);
        assert_eq!(m.admit(ip("1.1.1.1"), &stats), Ok(()));
    }
}
