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
//!
//! Per-client rate (`client_rate`, `client_burst`): a token bucket per (service, client
//! /32) of depth `client_burst` refilled at `client_rate` new connections per second,
//! asked last (after the lists and `maxconn`, so a refused flow spends no token;
//! refusals are `client_rate_limited`). The buckets are mutable, so they are not in this
//! immutable table but in each worker's [`RateTable`], preallocated with the worker.
//! Each worker limits the flows it owns: a client whose flows spread over `N` workers
//! (RSS hashes ports too) can open up to `N x client_rate` per second.

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
    /// New connections per second per client and worker; 0 = no limit.
    pub client_rate: u32,
    /// Depth of each client's bucket (new connections at once); at least 1 when
    /// `client_rate` is set.
    pub client_burst: u32,
}

impl Admission {
    /// Admission by `allow` and `deny` prefixes and `maxconn` (0 = no limit).
    pub fn new(allow: &[Ipv4Net], deny: &[Ipv4Net], maxconn: u32) -> Self {
        Admission { allow: PrefixSet::new(allow), deny: PrefixSet::new(deny), maxconn, client_rate: 0, client_burst: 0 }
    }

    /// The same admission with a per-client rate of `rate` new connections per second
    /// and bucket depth `burst` (0 = `rate`); `rate` 0 removes the limit.
    pub fn with_client_rate(mut self, rate: u32, burst: u32) -> Self {
        self.client_rate = rate;
        self.client_burst = if rate == 0 {
            0
        } else if burst == 0 {
            rate
        } else {
            burst
        };
        self
    }

    /// Whether this admits every flow without looking (no list, no limit).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.maxconn == 0 && self.client_rate == 0
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

/// Ways (entries) per set of a [`RateTable`]: four 16-byte entries fill one cache line.
pub const RATE_WAYS: usize = 4;

/// Sets in each worker's [`RateTable`] (a power of two): `RATE_SETS * RATE_WAYS` =
/// 16,384 buckets, 256 KiB per worker.
pub const RATE_SETS: usize = 4096;

/// One client's bucket, as GCRA keeps it: the key and the *theoretical arrival time*
/// (`tat`, ns), the instant at which the bucket is full again. `tat <= now` means full,
/// which is the same as no entry: such a slot is free.
#[derive(Debug, Clone, Copy, Default)]
struct RateEntry {
    key: u64,
    tat: u64,
}

/// One worker's per-client token buckets, for every service with a `client_rate`
/// (see the module docs): a fixed, preallocated set-associative table.
///
/// Buckets are GCRA (the ATM cell-rate algorithm, equivalent to a token bucket): with an
/// emission interval `T = 1 s / rate`, a new connection at `now` is admitted when
/// `max(tat, now) + T - now <= burst * T`, and then `tat` becomes `max(tat, now) + T`.
/// One `u64` per client, no division per packet beyond `T`'s, and a refusal changes
/// nothing. `T` is rounded down to whole nanoseconds: the rate is exact to within
/// `rate^2 / 10^9` per second (0.1 % at a million per second).
///
/// Keys are exact (service id and client address), so a collision never charges a
/// client for another's connections: an innocent client is never limited by the table.
/// Its error goes the other way: when all [`RATE_WAYS`] entries of a set hold a client
/// still paying back its burst, a new client replaces the one whose bucket is fullest
/// (earliest `tat`, the entry that would free itself soonest), and that client, if it
/// comes back, starts again with a full bucket: at most `burst` extra connections, and
/// only while more than `RATE_WAYS` limited clients of this worker hash to one set
/// (the table holds [`RATE_SETS`]` * `[`RATE_WAYS`] of them). Count-min would instead
/// charge innocent clients for the heavy ones sharing their counters; a refused
/// innocent is worse than a flooder admitted a few extra times. The hash is keyed per
/// table so an attacker cannot aim its sources at one set from outside.
#[derive(Debug)]
pub struct RateTable {
    slots: Box<[RateEntry]>,
    seed: u64,
    replaced: u64,
}

impl Default for RateTable {
    fn default() -> Self {
        Self::new(0x9e37_79b9_7f4a_7c15)
    }
}

impl RateTable {
    /// An empty table (every bucket full), its hash keyed by `seed`; all its memory is
    /// allocated here.
    pub fn new(seed: u64) -> Self {
        RateTable { slots: vec![RateEntry::default(); RATE_SETS * RATE_WAYS].into_boxed_slice(), seed, replaced: 0 }
    }

    /// How many buckets still limiting a client were replaced by another client's
    /// (see the type docs: each may have let that client open up to `burst` more).
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    #[inline]
    fn set_of(&self, key: u64) -> usize {
        // A keyed multiply-xorshift mix (splitmix64's finaliser): cheap, and with a
        // per-table key the set of an address cannot be chosen from outside.
        let mut x = key ^ self.seed;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x as usize) & (RATE_SETS - 1)
    }

    /// Whether `client` of service `service` may open a new connection at `now` (ns)
    /// under `rate` per second and depth `burst`; spends one token when it may. `rate`
    /// 0 always admits. No allocation: one set (one cache line) is read and at most one
    /// entry written.
    #[inline]
    pub fn admit(&mut self, service: u32, client: Ipv4Addr, rate: u32, burst: u32, now: u64) -> bool {
        if rate == 0 {
            return true;
        }
        let t = (1_000_000_000 / u64::from(rate)).max(1);
        let limit = t.saturating_mul(u64::from(burst.max(1)));
        let key = (u64::from(service) << 32) | u64::from(u32::from(client));
        let base = self.set_of(key) * RATE_WAYS;
        let Some(set) = self.slots.get_mut(base..base + RATE_WAYS) else {
            return true;
        };
        let mut victim = 0;
        let mut found = None;
        for (i, e) in set.iter().enumerate() {
            if e.key == key && e.tat > now {
                found = Some(i);
                break;
            }
            if e.tat < set[victim].tat {
                victim = i;
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                if set[victim].tat > now {
                    self.replaced += 1;
                }
                set[victim] = RateEntry { key, tat: now };
                victim
            }
        };
        let e = &mut set[i];
        let next = e.tat.max(now).saturating_add(t);
        if next - now > limit {
            return false;
        }
        e.tat = next;
        true
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

    const S: u64 = 1_000_000_000;

    #[test]
    fn rate_a_burst_then_refusals_then_refill() {
        let mut t = RateTable::default();
        let c = ip("10.10.0.2");
        let now = 5 * S;
        for k in 0..4 {
            assert!(t.admit(1, c, 2, 4, now), "burst {k}");
        }
        assert!(!t.admit(1, c, 2, 4, now), "bucket empty");
        assert!(!t.admit(1, c, 2, 4, now + S / 2 - 1), "half a second less 1 ns: no token yet");
        assert!(t.admit(1, c, 2, 4, now + S / 2), "one token per half second");
        assert!(!t.admit(1, c, 2, 4, now + S / 2));
        // Idle long enough: the full burst again, not more.
        let later = now + 10 * S;
        let n = (0..10).filter(|_| t.admit(1, c, 2, 4, later)).count();
        assert_eq!(n, 4);
        // Steady rate: 2 per second over 10 s after the bucket is empty.
        let mut ok = 0;
        for ms in (10..=10_000u64).step_by(10) {
            ok += usize::from(t.admit(1, c, 2, 4, later + ms * 1_000_000));
        }
        assert_eq!(ok, 20);
        assert_eq!(t.replaced(), 0);
    }

    #[test]
    fn rate_clients_and_services_are_independent_and_zero_is_off() {
        let mut t = RateTable::default();
        let (a, b) = (ip("10.10.0.2"), ip("10.10.0.3"));
        assert!(t.admit(1, a, 1, 1, S));
        assert!(!t.admit(1, a, 1, 1, S));
        assert!(t.admit(1, b, 1, 1, S), "another client has its own bucket");
        assert!(t.admit(2, a, 1, 1, S), "another service has its own bucket");
        assert!((0..100).all(|_| t.admit(3, a, 0, 0, S)), "rate 0: no limit");
    }

    #[test]
    fn rate_table_is_bounded_and_never_limits_an_innocent_client() {
        let mut t = RateTable::default();
        let now = S;
        // Far more limited clients than buckets: each drains its bucket of 1.
        let n = (RATE_SETS * RATE_WAYS * 4) as u32;
        for k in 0..n {
            let c = Ipv4Addr::from(0x0a00_0000 + k);
            assert!(t.admit(1, c, 1, 1, now), "a new client always has a full bucket ({k})");
        }
        assert_eq!(t.slots.len(), RATE_SETS * RATE_WAYS, "the table never grows");
        assert!(t.replaced() >= u64::from(n) - (RATE_SETS * RATE_WAYS) as u64, "overflow replaces buckets");
        // The replaced clients start afresh (the documented error); the most recent keep
        // being limited in sets with room.
        let last = Ipv4Addr::from(0x0a00_0000 + n - 1);
        assert!(!t.admit(1, last, 1, 1, now), "the newest bucket is still there");
        // A client never seen is never refused, however full the table.
        for k in 0..1000u32 {
            assert!(t.admit(1, Ipv4Addr::from(0xc000_0200 + k), 1, 1, now));
        }
    }

    #[test]
    fn with_client_rate_defaults_burst_to_rate() {
        let a = Admission::default().with_client_rate(10, 0);
        assert_eq!((a.client_rate, a.client_burst), (10, 10));
        assert!(!a.is_open());
        let a = a.with_client_rate(0, 5);
        assert_eq!((a.client_rate, a.client_burst), (0, 0));
        assert!(a.is_open());
        assert_eq!(Admission::default().with_client_rate(10, 3).client_burst, 3);
    }
}
