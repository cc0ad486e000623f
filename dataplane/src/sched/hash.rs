//! Source hashing (sh) and destination hashing (dh) over a table of 256 weighted buckets
//! (IPVS `ip_vs_sh.c`, `ip_vs_dh.c`).
//!
//! Contract: the control plane builds [`Buckets`] once per snapshot; every worker maps
//! the same key to the same bucket, so a client (sh) or a destination (dh) always goes to
//! the same server while the server list is unchanged, on every worker. sh hashes the
//! client address; dh hashes the destination address, which in rvs is the VIP — so dh
//! sends a whole service to one server (IPVS's dh is for cache clusters, where
//! destinations vary; in rvs it is mainly useful with several VIPs sharing servers).
//!
//! Weights: each server with a weight gets a number of buckets proportional to it
//! (largest remainder, at least one each while there are ≤ 256 such servers), and the
//! buckets are interleaved with a smooth weighted round robin. IPVS instead fills the
//! buckets in list order, `weight` consecutive buckets per server, which is proportional
//! only when the weights sum to a divisor of 256; rvs's allocation is proportional for
//! any weights. With more than 256 weighted servers some get no bucket (a 256-bucket
//! table cannot do better; use mh).
//!
//! An unavailable server (overloaded, or its weight dropped to 0 after the build) is
//! skipped by probing other buckets in a per-key order (IPVS's `sh-fallback`), which
//! spreads its flows over the other servers in proportion to their buckets.

use std::sync::Arc;

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{hash_with, usable, SchedInput, SchedShared, Scheduler, Table};

/// Buckets in a table, as IPVS's `CONFIG_IP_VS_SH_TAB_BITS` = 8.
pub const BUCKETS: usize = 256;

const SEED_SH: u64 = 0x7368_5f73_6565_6431; // "sh_seed1"
const SEED_DH: u64 = 0x6468_5f73_6565_6431; // "dh_seed1"

/// The 256 weighted buckets of an sh or dh service: bucket → server index.
#[derive(Clone)]
pub struct Buckets {
    /// Empty when no server has a weight.
    table: Box<[u16]>,
}

impl Buckets {
    /// The buckets over `servers` (at most [`super::MAX_SERVERS`]).
    pub fn build(servers: &[RealServer]) -> Self {
        let weighted: Vec<(u16, u64)> = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.weight > 0)
            .map(|(i, s)| (i as u16, u64::from(s.weight)))
            .collect();
        let total: u64 = weighted.iter().map(|&(_, w)| w).sum();
        if total == 0 {
            return Buckets { table: Box::new([]) };
        }
        // Largest remainder: floor shares, then the leftover buckets to the largest
        // remainders (earlier servers first on ties).
        let mut counts: Vec<u64> = weighted.iter().map(|&(_, w)| w * BUCKETS as u64 / total).collect();
        let mut order: Vec<usize> = (0..weighted.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(weighted[k].1 * BUCKETS as u64 % total));
        let mut left = BUCKETS as u64 - counts.iter().sum::<u64>();
        for &k in order.iter().cycle().take(weighted.len() * 2) {
            if left == 0 {
                break;
            }
            counts[k] += 1;
            left -= 1;
        }
        // Everyone with a weight gets a bucket if there is room: take from the largest.
        for k in 0..counts.len() {
            if counts[k] == 0 {
                if let Some(big) = (0..counts.len()).filter(|&j| counts[j] > 1).max_by_key(|&j| counts[j]) {
                    counts[big] -= 1;
                    counts[k] += 1;
                }
            }
        }
        // Interleave by smooth weighted round robin (nginx's): every step each server gains
        // its count, the richest takes the bucket and pays the total.
        let mut current = vec![0i64; counts.len()];
        let mut table = Vec::with_capacity(BUCKETS);
        for _ in 0..BUCKETS {
            let mut best = 0;
            for k in 0..counts.len() {
                current[k] += counts[k] as i64;
                if current[k] > current[best] {
                    best = k;
                }
            }
            current[best] -= BUCKETS as i64;
            table.push(weighted[best].0);
        }
        Buckets { table: table.into_boxed_slice() }
    }

    /// Number of buckets: [`BUCKETS`], or 0 when no server has a weight.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there are no buckets (no server has a weight).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The server of `hash`'s bucket or, when it is unusable, of the first usable bucket
    /// of `hash`'s probe sequence.
    ///
    /// The probe sequence is double hashing: bucket `(b + k * stride) mod 256` with an odd
    /// `stride` taken from other bits of the hash, so it visits every bucket, and the
    /// clients of a failed server spread over all the others instead of all landing on
    /// the neighbour bucket's server (IPVS's fallback rehashes with an offset for the
    /// same reason).
    fn lookup(&self, servers: &[RealServer], hash: u64) -> Option<usize> {
        if self.table.len() != BUCKETS {
            return None;
        }
        let first = hash as usize % BUCKETS;
        let stride = (hash >> 32) as usize | 1;
        (0..BUCKETS)
            .map(|k| usize::from(self.table[first.wrapping_add(k.wrapping_mul(stride)) % BUCKETS]))
            .find(|&i| usable(servers, i))
    }
}

/// What sh/dh hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The client address (sh).
    Source,
    /// The destination address, i.e. the VIP (dh).
    Destination,
}

/// An sh or dh scheduler: a view of the shared buckets.
#[derive(Debug)]
pub struct BucketHash {
    shared: Arc<SchedShared>,
    key: Key,
}

impl BucketHash {
    /// The scheduler over `shared`'s buckets.
    pub fn new(shared: Arc<SchedShared>, key: Key) -> Self {
        BucketHash { shared, key }
    }
}

impl Scheduler for BucketHash {
    fn kind(&self) -> SchedulerKind {
        match self.key {
            Key::Source => SchedulerKind::Sh,
            Key::Destination => SchedulerKind::Dh,
        }
    }

    fn pick(&mut self, servers: &[RealServer], input: &SchedInput) -> Option<usize> {
        let Table::Buckets(b) = &self.shared.table else { return None };
        let h = match self.key {
            Key::Source => hash_with(SEED_SH, u64::from(input.client)),
            Key::Destination => hash_with(SEED_DH, u64::from(input.vip)),
        };
        b.lookup(servers, h)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn counts(b: &Buckets, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in b.table.iter() {
            c[usize::from(i)] += 1;
        }
        c
    }

    #[test]
    fn buckets_are_weight_proportional_and_interleaved() {
        let b = Buckets::build(&servers(&[3, 2, 1, 0]));
        assert_eq!(b.len(), BUCKETS);
        assert_eq!(counts(&b, 4), [128, 85, 43, 0]);
        assert_ne!(b.table[0], b.table[1], "interleaved");
        let b = Buckets::build(&servers(&[1000, 1]));
        assert_eq!(counts(&b, 2), [255, 1], "every weighted server gets a bucket");
        assert!(Buckets::build(&servers(&[0, 0])).is_empty());
        let many = servers(&[1; 300]);
        let b = Buckets::build(&many);
        assert_eq!(counts(&b, 300).iter().filter(|&&c| c == 1).count(), 256);
    }

    #[test]
    fn sh_is_sticky_and_falls_back() {
        let servers = servers(&[1, 1, 1]);
        let mut sh = sched(SchedulerKind::Sh, &servers);
        let first: Vec<_> = (0..1000).map(|n| sh.pick(&servers, &input(n)).unwrap()).collect();
        let again: Vec<_> = (0..1000).map(|n| sh.pick(&servers, &input(n)).unwrap()).collect();
        assert_eq!(first, again);
        overload(&servers[0]);
        for n in 0..1000 {
            let p = sh.pick(&servers, &input(n)).unwrap();
            assert_ne!(p, 0);
            if first[n as usize] != 0 {
                assert_eq!(p, first[n as usize], "only the unavailable server's clients move");
            }
        }
    }

    #[test]
    fn dh_keys_on_the_vip() {
        let servers = servers(&[1, 1, 1, 1]);
        let mut dh = sched(SchedulerKind::Dh, &servers);
        let one = dh.pick(&servers, &input(1));
        assert!((0..1000).all(|n| dh.pick(&servers, &input(n)) == one));
        let mut seen = [false; 4];
        for v in 0..100u8 {
            let i = SchedInput { vip: u32::from(std::net::Ipv4Addr::new(10, 10, 1, v)), ..input(0) };
            seen[dh.pick(&servers, &i).unwrap()] = true;
        }
        assert_eq!(seen, [true; 4]);
    }
}
