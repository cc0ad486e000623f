//! Weighted random twos choice (twos; IPVS `ip_vs_twos.c`, after Mitzenmacher's "power
//! of two choices").
//!
//! Contract: a pick draws two servers at random, each with probability proportional to
//! its weight among the available servers, and returns the one with the lower load per
//! weight, the first draw on ties. The load is IPVS's connection overhead
//! (`active * 256 + inactive`), so active connections decide and inactive ones only break
//! ties; compared by cross-multiplication. With equal loads the shares are the weights'.
//!
//! Randomness: a per-worker xorshift64* generator seeded from the worker index — no
//! syscall, no shared state; deterministic per worker, which keeps tests reproducible.
//! It is not cryptographic; a client cannot steer it without seeing other clients'
//! flows.

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{conn_overhead, mix64, per_weight_gt, SchedInput, Scheduler};

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators, scrambled", 2016).
#[derive(Debug, Clone)]
pub struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// A generator seeded from `seed` (any value; the state is never 0).
    pub fn new(seed: u64) -> Self {
        XorShift64Star { state: mix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15)) | 1 }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform value in `0..n` (`n` > 0; multiply-shift, bias below 2^-32 for
    /// `n` < 2^32).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A worker's twos scheduler.
#[derive(Debug, Clone)]
pub struct Twos {
    rng: XorShift64Star,
}

impl Twos {
    /// Worker `worker`'s scheduler.
    pub fn new(worker: usize) -> Self {
        Twos { rng: XorShift64Star::new(worker as u64) }
    }
}

impl Scheduler for Twos {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }

    fn pick(&mut self, servers: &[RealServer], _input: &SchedInput) -> Option<usize> {
        let total: u64 = servers.iter().filter(|s| s.available()).map(|s| u64::from(s.weight)).sum();
        if total == 0 {
            return None;
        }
        // Two points in 0..total; each falls in one available server's weight interval.
        let (mut r1, mut r2) = (self.rng.below(total), self.rng.below(total));
        let (mut c1, mut c2) = (None, None);
        for (i, s) in servers.iter().enumerate() {
            if !s.available() {
                continue;
            }
            let w = u64::from(s.weight);
            if c1.is_none() {
                if r1 < w {
                    c1 = Some(i);
                } else {
                    r1 -= w;
                }
            }
            if c2.is_none() {
                if r2 < w {
                    c2 = Some(i);
                } else {
                    r2 -= w;
                }
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        // Both are found unless counters changed under us (an overload flag flipped
        // between the two passes); then take whichever was found.
        match (c1, c2) {
            (Some(a), Some(b)) if a != b => {
                let (sa, sb) = (&servers[a], &servers[b]);
                Some(if per_weight_gt(conn_overhead(sa), sa.weight, conn_overhead(sb), sb.weight) { b } else { a })
            }
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn rng_is_per_worker_and_uniform() {
        let mut a = XorShift64Star::new(0);
        let mut b = XorShift64Star::new(1);
        assert_ne!(a.next_u64(), b.next_u64());
        let mut c = [0u32; 10];
        for _ in 0..100_000 {
            c[a.below(10) as usize] += 1;
        }
        assert!(c.iter().all(|&n| n.abs_diff(10_000) < 500), "{c:?}");
    }

    #[test]
    fn the_lighter_of_two_wins() {
        let servers = servers(&[1, 1]);
        for _ in 0..10 {
            servers[0].stats.conn_opened(0, true);
        }
        let mut t = Twos::new(0);
        let mut counts = [0u32; 2];
        for n in 0..10_000 {
            counts[t.pick(&servers, &input(n)).unwrap()] += 1;
        }
        // Server 0 wins only when both draws hit it: 1/4 of the time.
        assert!(counts[0].abs_diff(2_500) < 200, "{counts:?}");
    }
}
