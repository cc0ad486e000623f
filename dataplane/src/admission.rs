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
//! IPv6: the lists hold IPv6 prefixes in sets of their own ([`PrefixSet6`], the same
//! [`Prefixes`] over 128-bit ranges), so the IPv4 check is what it was. A list may mix
//! families; a prefix only matches clients of its family, and an `allow` list that is not
//! empty (in either family) refuses every client none of its prefixes holds.
//!
//! Per-client rate (`client_rate`, `client_burst`): a token bucket per (service, client
//! /32 or /128) of depth `client_burst` refilled at `client_rate` new connections per second,
//! asked last (after the lists and `maxconn`, so a refused flow spends no token;
//! refusals are `client_rate_limited`). The buckets are mutable, so they are not in this
//! immutable table but in each worker's [`RateTable`], preallocated with the worker.
//! Each worker limits the flows it owns: a client whose flows spread over `N` workers
//! (RSS hashes ports too) can open up to `N x client_rate` per second.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::server::ServerStats;
use crate::stats::DropReason;

/// An address family as the prefix sets see it: its addresses as integers in address
/// order, and a prefix as the inclusive range of those integers it holds.
pub trait PrefixFamily {
    /// The family's address.
    type Addr: Copy;
    /// The family's prefix.
    type Net;
    /// The address as an integer (`u32` or `u128`), ordered as the addresses are.
    type Int: Ord + Copy + std::fmt::Debug;
    /// `addr` as its integer.
    fn int(addr: Self::Addr) -> Self::Int;
    /// The first and last address of `net`, as integers.
    fn range(net: &Self::Net) -> (Self::Int, Self::Int);
    /// The integer after `i`, or `None` at the family's last address.
    fn next(i: Self::Int) -> Option<Self::Int>;
}

/// IPv4, for [`PrefixSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4 {}

/// IPv6, for [`PrefixSet6`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V6 {}

impl PrefixFamily for V4 {
    type Addr = Ipv4Addr;
    type Net = Ipv4Net;
    type Int = u32;
    fn int(addr: Ipv4Addr) -> u32 {
        u32::from(addr)
    }
    fn range(net: &Ipv4Net) -> (u32, u32) {
        (u32::from(net.network()), u32::from(net.broadcast()))
    }
    fn next(i: u32) -> Option<u32> {
        i.checked_add(1)
    }
}

impl PrefixFamily for V6 {
    type Addr = Ipv6Addr;
    type Net = Ipv6Net;
    type Int = u128;
    fn int(addr: Ipv6Addr) -> u128 {
        u128::from(addr)
    }
    fn range(net: &Ipv6Net) -> (u128, u128) {
        (u128::from(net.network()), u128::from(net.broadcast()))
    }
    fn next(i: u128) -> Option<u128> {
        i.checked_add(1)
    }
}

/// A set of prefixes of one family as sorted, disjoint, non-adjacent inclusive address
/// ranges, searched by bisection ([`PrefixSet`] for IPv4, [`PrefixSet6`] for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefixes<F: PrefixFamily> {
    ranges: Box<[(F::Int, F::Int)]>,
}

/// A set of IPv4 prefixes.
pub type PrefixSet = Prefixes<V4>;

/// A set of IPv6 prefixes.
pub type PrefixSet6 = Prefixes<V6>;

impl<F: PrefixFamily> Default for Prefixes<F> {
    fn default() -> Self {
        Prefixes { ranges: Box::default() }
    }
}

impl<F: PrefixFamily> Prefixes<F> {
    /// The set of addresses in any of `prefixes` (in any order, overlaps allowed).
    pub fn new(prefixes: &[F::Net]) -> Self {
        let mut v: Vec<(F::Int, F::Int)> = prefixes.iter().map(F::range).collect();
        v.sort_unstable();
        let mut out: Vec<(F::Int, F::Int)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                // Overlapping or adjacent: one range.
                Some(last) if F::next(last.1).is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Prefixes { ranges: out.into_boxed_slice() }
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
    pub fn contains(&self, addr: F::Addr) -> bool {
        let a = F::int(addr);
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
    /// IPv6 clients allowed (with `allow`: both empty allows all).
    pub allow6: PrefixSet6,
    /// IPv6 clients refused.
    pub deny6: PrefixSet6,
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
        Admission {
            allow: PrefixSet::new(allow),
            deny: PrefixSet::new(deny),
            allow6: PrefixSet6::default(),
            deny6: PrefixSet6::default(),
            maxconn,
            client_rate: 0,
            client_burst: 0,
        }
    }

    /// The same admission with IPv6 `allow` and `deny` prefixes (replacing any).
    pub fn with_ipv6_lists(mut self, allow: &[Ipv6Net], deny: &[Ipv6Net]) -> Self {
        self.allow6 = PrefixSet6::new(allow);
        self.deny6 = PrefixSet6::new(deny);
        self
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
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.maxconn == 0
            && self.client_rate == 0
            && self.allow6.is_empty()
            && self.deny6.is_empty()
    }

    /// Whether the `allow` list, in either family, is empty (allows all).
    #[inline]
    fn allows_all(&self) -> bool {
        self.allow.is_empty() && self.allow6.is_empty()
    }

    /// Whether the lists let `client` open a connection (deny wins; an empty allow list
    /// allows all).
    #[inline]
    pub fn client_allowed(&self, client: Ipv4Addr) -> bool {
        !self.deny.contains(client) && (self.allows_all() || self.allow.contains(client))
    }

    /// Whether the lists let IPv6 `client` open a connection (as
    /// [`Admission::client_allowed`]).
    #[inline]
    pub fn client_allowed6(&self, client: Ipv6Addr) -> bool {
        !self.deny6.contains(client) && (self.allows_all() || self.allow6.contains(client))
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
        self.under_maxconn(conns)
    }

    /// As [`Admission::admit`], for an IPv6 client.
    #[inline]
    pub fn admit6(&self, client: Ipv6Addr, conns: &ServerStats) -> Result<(), DropReason> {
        if self.is_open() {
            return Ok(());
        }
        if !self.client_allowed6(client) {
            return Err(DropReason::AclDenied);
        }
        self.under_maxconn(conns)
    }

    #[inline]
    fn under_maxconn(&self, conns: &ServerStats) -> Result<(), DropReason> {
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
///
/// IPv6 clients have buckets of their own beside the IPv4 ones ([`RATE6_SETS`] sets of
/// 32-byte entries keyed by the whole address and the service id, 128 KiB), with the
/// same algorithm and the same exactness.
#[derive(Debug)]
pub struct RateTable {
    slots: Box<[RateEntry]>,
    slots6: Box<[RateEntry6]>,
    seed: u64,
    replaced: u64,
}

/// Sets of the IPv6 part of each worker's [`RateTable`] (a power of two):
/// `RATE6_SETS * RATE_WAYS` = 4,096 buckets.
pub const RATE6_SETS: usize = 1024;

/// An IPv6 client's bucket: [`RateEntry`] with the whole address in the key.
#[derive(Debug, Clone, Copy, Default)]
struct RateEntry6 {
    client: u128,
    service: u32,
    tat: u64,
}

/// A bucket of either family, for the GCRA step both share.
trait Bucket: Copy {
    /// The instant the bucket is full again (ns).
    fn tat(&self) -> u64;
    fn set_tat(&mut self, tat: u64);
}

impl Bucket for RateEntry {
    #[inline]
    fn tat(&self) -> u64 {
        self.tat
    }
    #[inline]
    fn set_tat(&mut self, tat: u64) {
        self.tat = tat;
    }
}

impl Bucket for RateEntry6 {
    #[inline]
    fn tat(&self) -> u64 {
        self.tat
    }
    #[inline]
    fn set_tat(&mut self, tat: u64) {
        self.tat = tat;
    }
}

/// The GCRA step over one set (see [`RateTable`]): finds the bucket `is_key` names (a
/// live one), or replaces the fullest with `fresh`; then spends a token if one is there.
/// Returns (admitted, whether a still-limiting bucket was replaced).
#[inline]
fn gcra<E: Bucket>(set: &mut [E], is_key: impl Fn(&E) -> bool, fresh: E, t: u64, limit: u64, now: u64) -> (bool, bool) {
    let mut victim = 0;
    let mut found = None;
    for (i, e) in set.iter().enumerate() {
        if is_key(e) && e.tat() > now {
            found = Some(i);
            break;
        }
        if e.tat() < set[victim].tat() {
            victim = i;
        }
    }
    let mut replaced = false;
    let i = match found {
        Some(i) => i,
        None => {
            replaced = set[victim].tat() > now;
            set[victim] = fresh;
            victim
        }
    };
    let e = &mut set[i];
    let next = e.tat().max(now).saturating_add(t);
    if next - now > limit {
        return (false, replaced);
    }
    e.set_tat(next);
    (true, replaced)
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
        RateTable {
            slots: vec![RateEntry::default(); RATE_SETS * RATE_WAYS].into_boxed_slice(),
            slots6: vec![RateEntry6::default(); RATE6_SETS * RATE_WAYS].into_boxed_slice(),
            seed,
            replaced: 0,
        }
    }

    /// How many buckets still limiting a client were replaced by another client's
    /// (see the type docs: each may have let that client open up to `burst` more).
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// splitmix64's finaliser of `x` keyed by the table's seed: cheap, and with a
    /// per-table key the set of an address cannot be chosen from outside.
    #[inline]
    fn mix(&self, x: u64) -> u64 {
        let mut x = x ^ self.seed;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    #[inline]
    fn set_of(&self, key: u64) -> usize {
        (self.mix(key) as usize) & (RATE_SETS - 1)
    }

    /// The emission interval and the bucket's depth in ns.
    #[inline]
    fn interval(rate: u32, burst: u32) -> (u64, u64) {
        let t = (1_000_000_000 / u64::from(rate)).max(1);
        (t, t.saturating_mul(u64::from(burst.max(1))))
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
        let (t, limit) = Self::interval(rate, burst);
        let key = (u64::from(service) << 32) | u64::from(u32::from(client));
        let base = self.set_of(key) * RATE_WAYS;
        let Some(set) = self.slots.get_mut(base..base + RATE_WAYS) else {
            return true;
        };
        let (ok, replaced) = gcra(set, |e| e.key == key, RateEntry { key, tat: now }, t, limit, now);
        self.replaced += u64::from(replaced);
        ok
    }

    /// As [`RateTable::admit`], for an IPv6 client (its own buckets, keyed by the whole
    /// address: two sets' worth of cache lines).
    #[inline]
    pub fn admit6(&mut self, service: u32, client: Ipv6Addr, rate: u32, burst: u32, now: u64) -> bool {
        if rate == 0 {
            return true;
        }
        let (t, limit) = Self::interval(rate, burst);
        let c = u128::from(client);
        // Both halves keyed: the high half is mixed before the low one joins it.
        let h = self.mix(self.mix((c >> 64) as u64 ^ u64::from(service)) ^ c as u64);
        let base = ((h as usize) & (RATE6_SETS - 1)) * RATE_WAYS;
        let Some(set) = self.slots6.get_mut(base..base + RATE_WAYS) else {
            return true;
        };
        let fresh = RateEntry6 { client: c, service, tat: now };
        let (ok, replaced) = gcra(set, |e| e.client == c && e.service == service, fresh, t, limit, now);
        self.replaced += u64::from(replaced);
        ok
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

    fn nets6(v: &[&str]) -> Vec<Ipv6Net> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_prefixes_merge_and_match_only_their_family() {
        let s = PrefixSet6::new(&nets6(&["2001:db8::/32", "2001:db8:5::/48", "fd00::/65", "fd00:0:0:0:8000::/65"]));
        assert_eq!(s.ranges(), 2, "nested and adjacent prefixes merged");
        for (a, want) in [
            ("2001:db8::", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fd00::1", true),
            ("fd00::ffff:ffff:ffff:ffff", true),
            ("fd00:0:0:1::", false),
            ("::", false),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ] {
            assert_eq!(s.contains(ip6(a)), want, "{a}");
        }
        let all = PrefixSet6::new(&nets6(&["::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"]));
        assert!(
            all.ranges() == 1
                && all.contains(ip6("::"))
                && all.contains(ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );

        let stats = ServerStats::new(1);
        // A deny list of one family leaves the other alone.
        let a = Admission::new(&nets(&["10.0.0.0/8"]), &[], 0).with_ipv6_lists(&[], &nets6(&["2001:db8:1::/48"]));
        assert!(!a.is_open());
        assert_eq!(a.admit6(ip6("2001:db8:1::5"), &stats), Err(DropReason::AclDenied));
        assert_eq!(a.admit(ip("10.1.1.1"), &stats), Ok(()));
        // The IPv4 allow list is not empty: an IPv6 client none of the lists holds is refused.
        assert_eq!(a.admit6(ip6("2001:db8:2::5"), &stats), Err(DropReason::AclDenied));
        let b = a.clone().with_ipv6_lists(&nets6(&["2001:db8::/32"]), &nets6(&["2001:db8:1::/48"]));
        assert_eq!(b.admit6(ip6("2001:db8:2::5"), &stats), Ok(()));
        assert_eq!(b.admit6(ip6("2001:db8:1::5"), &stats), Err(DropReason::AclDenied), "deny wins");
        // An IPv6-only allow list refuses IPv4 clients; an IPv6 deny list alone does not.
        let c = Admission::default().with_ipv6_lists(&nets6(&["2001:db8::/32"]), &[]);
        assert_eq!(c.admit(ip("10.1.1.1"), &stats), Err(DropReason::AclDenied));
        let d = Admission::default().with_ipv6_lists(&[], &nets6(&["2001:db8::/32"]));
        assert_eq!(d.admit(ip("10.1.1.1"), &stats), Ok(()));
        // maxconn counts for IPv6 clients too.
        let m = Admission::new(&[], &[], 1);
        assert_eq!(m.admit6(ip6("2001:db8::1"), &stats), Ok(()));
        stats.conn_opened(0, true);
        assert_eq!(m.admit6(ip6("2001:db8::1"), &stats), Err(DropReason::ServiceMaxconn));
        assert!(Admission::default().admit6(ip6("2001:db8::1"), &stats).is_ok());
    }

    #[test]
    fn ipv6_rate_buckets_are_per_address_and_service() {
        let mut t = RateTable::default();
        let (a, b) = (ip6("2001:db8::2"), ip6("2001:db8::3"));
        for k in 0..3 {
            assert!(t.admit6(1, a, 2, 3, S), "burst {k}");
        }
        assert!(!t.admit6(1, a, 2, 3, S), "bucket empty");
        assert!(t.admit6(1, a, 2, 3, S + S / 2), "one token per half second");
        assert!(t.admit6(1, b, 2, 3, S), "another address has its own bucket");
        assert!(t.admit6(2, a, 2, 3, S), "another service has its own bucket");
        assert!(t.admit(1, Ipv4Addr::new(0, 0, 0, 2), 2, 3, S), "IPv4 buckets are apart");
        assert!((0..100).all(|_| t.admit6(3, a, 0, 0, S)), "rate 0: no limit");
        // Bounded; a client never seen always has a full bucket.
        let n = (RATE6_SETS * RATE_WAYS * 4) as u16;
        for k in 0..n {
            assert!(t.admit6(1, Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, k, 1), 1, 1, S));
        }
        assert_eq!(t.slots6.len(), RATE6_SETS * RATE_WAYS);
        assert!(t.replaced() >= u64::from(n) - (RATE6_SETS * RATE_WAYS) as u64);
    }
}
