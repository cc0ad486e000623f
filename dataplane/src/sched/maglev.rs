//! Maglev hashing (mh): Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI'16, §3.4; IPVS `ip_vs_mh.c` and DPVS `ip_vs_mh.c` follow it.
//!
//! Contract: the control plane builds a lookup table of `M` entries (`M` prime, default
//! 65537) once per snapshot; a pick hashes the client address (and port with
//! `mh_port`) to an entry — O(1), the same answer on every worker. Each server's share of
//! entries is within a few entries of proportional to its weight, and when a server is
//! added or removed only about its share of flows moves (the paper's "minimal
//! disruption").
//!
//! Building (the paper's Pseudocode 1): server `i` has a preference list of all entries,
//! the permutation `(offset_i + j * skip_i) mod M` with `offset_i = h1(server) mod M` and
//! `skip_i = h2(server) mod (M - 1) + 1` (a full permutation because M is prime). Servers
//! take turns claiming their next preferred free entry until the table is full. Weights
//! are turns (as IPVS does): per round a server claims `weight / gcd` entries instead of
//! one, scaled down if a round would not fit in half the table. A server is identified
//! by its address and port, not its list position, so the preference lists of the other
//! servers do not change when one is removed.
//!
//! Servers with weight 0 get no entry. An unavailable server's entry is skipped by
//! probing the following entries (wrapping), which belong to the other servers in
//! proportion to their shares.

use std::sync::Arc;

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{gcd, hash_with, reduce, server_key, usable, SchedError, SchedInput, SchedShared, Scheduler, Table};

/// The default table size, a prime (as DPVS and the paper use).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// The largest table size accepted: 2^24 entries (32 MiB of `u16`).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

const SEED_OFFSET: u64 = 0x6d68_6f66_6673_6574; // "mhoffset"
const SEED_SKIP: u64 = 0x6d68_736b_6970_2121; // "mhskip!!"
const SEED_KEY: u64 = 0x6d68_636c_6965_6e74; // "mhclient"

/// Whether `n` is prime (trial division; `n` ≤ 2^32, so at most 2^16 steps).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// A Maglev lookup table: entry → server index.
#[derive(Clone)]
pub struct MaglevTable {
    /// Empty when no server has a weight.
    table: Box<[u16]>,
}

impl MaglevTable {
    /// Builds the table of `size` entries over `servers` (at most
    /// [`super::MAX_SERVERS`]).
    pub fn build(servers: &[RealServer], size: u32) -> Result<Self, SchedError> {
        if size > MAX_TABLE_SIZE {
            return Err(SchedError::MhTableTooLarge { size, max: MAX_TABLE_SIZE });
        }
        if !is_prime(size) {
            return Err(SchedError::MhTableNotPrime { size });
        }
        let m = u64::from(size);
        let weighted: Vec<(usize, &RealServer)> = servers.iter().enumerate().filter(|(_, s)| s.weight > 0).collect();
        if weighted.len() > size as usize {
            return Err(SchedError::MhTableTooSmall { size, servers: weighted.len() });
        }
        if weighted.is_empty() {
            return Ok(MaglevTable { table: Box::new([]) });
        }
        // Turns per round: weights over their gcd, halved (keeping at least one) until a
        // round fits in half the table so that every server gets its turns.
        let g = weighted.iter().map(|(_, s)| u64::from(s.weight)).fold(0, gcd).max(1);
        let mut turns: Vec<u64> = weighted.iter().map(|(_, s)| u64::from(s.weight) / g).collect();
        while turns.iter().sum::<u64>() > m / 2 && turns.iter().any(|&t| t > 1) {
            turns.iter_mut().for_each(|t| *t = (*t / 2).max(1));
        }
        // Preference lists, walked incrementally: the next candidate of server k is
        // `pos[k]`, advancing by `skip[k]` mod M.
        let mut pos: Vec<u64> = Vec::with_capacity(weighted.len());
        let mut skip: Vec<u64> = Vec::with_capacity(weighted.len());
        for (_, s) in &weighted {
            let key = server_key(s);
            pos.push(hash_with(SEED_OFFSET, key) % m);
            skip.push(hash_with(SEED_SKIP, key) % (m - 1).max(1) + 1);
        }
        const EMPTY: u16 = u16::MAX;
        // Index u16::MAX is never a server: MAX_SERVERS is u16::MAX, so indices stop
        // one below.
        let mut table = vec![EMPTY; size as usize];
        let mut filled = 0usize;
        'fill: loop {
            for k in 0..weighted.len() {
                for _ in 0..turns[k] {
                    // A free entry exists (filled < M), and a full permutation reaches it.
                    let mut c = pos[k];
                    while table[c as usize] != EMPTY {
                        c += skip[k];
                        if c >= m {
                            c -= m;
                        }
                    }
                    table[c as usize] = weighted[k].0 as u16;
                    c += skip[k];
                    if c >= m {
                        c -= m;
                    }
                    pos[k] = c;
                    filled += 1;
                    if filled == table.len() {
                        break 'fill;
                    }
                }
            }
        }
        Ok(MaglevTable { table: table.into_boxed_slice() })
    }

    /// Number of entries: the table size, or 0 when no server has a weight.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty (no server has a weight).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The server of the entry `hash` maps to, or of the first following entry whose
    /// server is usable.
    pub fn lookup(&self, servers: &[RealServer], hash: u64) -> Option<usize> {
        let first = reduce(hash, self.table.len());
        let i = usize::from(*self.table.get(first)?);
        if usable(servers, i) {
            return Some(i);
        }
        // Rare path. Probe only if someone can take it, so the walk is bounded by the
        // table and short in expectation (1 / the usable share).
        if !servers.iter().any(RealServer::available) {
            return None;
        }
        let (wrapped, from) = self.table.split_at(first);
        from.iter().chain(wrapped).map(|&i| usize::from(i)).find(|&i| usable(servers, i))
    }

    /// The raw entry → server index table (for tests and diagnostics).
    pub fn entries(&self) -> &[u16] {
        &self.table
    }
}

/// An mh scheduler: a view of the shared Maglev table.
#[derive(Debug)]
pub struct Maglev {
    shared: Arc<SchedShared>,
}

impl Maglev {
    /// The scheduler over `shared`'s table.
    pub fn new(shared: Arc<SchedShared>) -> Self {
        Maglev { shared }
    }
}

/// The key Maglev hashes for a flow: the client address, and its port with `mh_port`.
pub fn flow_hash(input: &SchedInput, with_port: bool) -> u64 {
    let addr = u64::from(input.client);
    let key = if with_port { (addr << 16) | u64::from(input.client_port) | (1 << 48) } else { addr };
    hash_with(SEED_KEY, key)
}

impl Scheduler for Maglev {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn pick(&mut self, servers: &[RealServer], input: &SchedInput) -> Option<usize> {
        let Table::Maglev(t) = &self.shared.table else { return None };
        t.lookup(servers, flow_hash(input, self.shared.params.mh_port))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::SchedParams;
    use super::*;

    #[test]
    fn primes() {
        let primes: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537));
        assert!(!is_prime(65535));
        assert!(is_prime(4_294_967_291));
        assert!(!is_prime(u32::MAX));
    }

    fn shares(t: &MaglevTable, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in t.entries() {
            c[usize::from(i)] += 1;
        }
        c
    }

    #[test]
    fn table_shares_follow_weights() {
        let t = MaglevTable::build(&servers(&[1, 1, 1, 1, 1]), 65537).unwrap();
        for c in shares(&t, 5) {
            assert!(c.abs_diff(65537 / 5) <= 5, "{c}");
        }
        let t = MaglevTable::build(&servers(&[3, 0, 2, 1]), 65537).unwrap();
        let c = shares(&t, 4);
        assert_eq!(c[1], 0);
        for (i, w) in [(0, 3), (2, 2), (3, 1)] {
            assert!(c[i].abs_diff(65537 * w / 6) <= 10, "{c:?}");
        }
        // Huge weights are scaled but stay proportional.
        let t = MaglevTable::build(&servers(&[4_000_000, 1_000_000]), 65537).unwrap();
        let c = shares(&t, 2);
        assert!(c[0].abs_diff(65537 * 4 / 5) <= 10, "{c:?}");
        let t = MaglevTable::build(&servers(&[u32::MAX, 1]), 65537).unwrap();
        assert!(shares(&t, 2)[1] > 0, "every weighted server keeps an entry");
        assert!(MaglevTable::build(&servers(&[0]), 7).unwrap().is_empty());
        assert!(MaglevTable::build(&servers(&[1]), 1 << 25).is_err());
    }

    #[test]
    fn mh_port_flag_spreads_one_client() {
        let servers = servers(&[1; 8]);
        let p = SchedParams { mh_port: true, ..SchedParams::default() };
        let shared = Arc::new(SchedShared::build(SchedulerKind::Mh, &servers, &p).unwrap());
        let mut with_port = super::super::new_scheduler(SchedulerKind::Mh, shared, &servers, 0, 1);
        let mut without = sched(SchedulerKind::Mh, &servers);
        let mut seen = [false; 8];
        let one = without.pick(&servers, &input(5));
        for port in 1000..1200 {
            let i = SchedInput { client_port: port, ..input(5) };
            seen[with_port.pick(&servers, &i).unwrap()] = true;
            assert_eq!(without.pick(&servers, &i), one);
        }
        assert_eq!(seen, [true; 8]);
    }

    #[test]
    fn unavailable_server_probes_on() {
        let servers = servers(&[1, 1, 1]);
        let mut mh = sched(SchedulerKind::Mh, &servers);
        let before: Vec<_> = (0..3000).map(|n| mh.pick(&servers, &input(n)).unwrap()).collect();
        overload(&servers[1]);
        let mut moved_to = [0; 3];
        for (n, &b) in before.iter().enumerate() {
            let p = mh.pick(&servers, &input(n as u32)).unwrap();
            if b == 1 {
                moved_to[p] += 1;
            } else {
                assert_eq!(p, b);
            }
        }
        assert_eq!(moved_to[1], 0);
        assert!(moved_to[0] > 300 && moved_to[2] > 300, "{moved_to:?}");
    }
}
