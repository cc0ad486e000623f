//! Round robin (rr) and weighted round robin (wrr), per worker.
//!
//! Contract: each worker cycles on its own; over the whole balancer the shares are those
//! of the algorithm because every worker's sequence has them. Unavailable servers are
//! skipped (IPVS `ip_vs_rr.c`, `ip_vs_wrr.c`).
//!
//! As in DPVS, each worker starts its cycle at a different server so that the first
//! flows after a (re)build do not all land on server 0.

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{gcd, SchedInput, Scheduler};

/// Where worker `worker` of `workers` starts in a list of `n` servers: spread evenly.
fn start_index(n: usize, worker: usize, workers: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let workers = workers.max(1);
    ((worker % workers) as u128 * n as u128 / workers as u128) as usize % n
}

/// Round robin: the next available server after the last one picked.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    /// The next index to try.
    next: usize,
}

impl RoundRobin {
    /// Worker `worker`'s (of `workers`) round robin over `servers`.
    pub fn new(servers: &[RealServer], worker: usize, workers: usize) -> Self {
        RoundRobin { next: start_index(servers.len(), worker, workers) }
    }
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn pick(&mut self, servers: &[RealServer], _input: &SchedInput) -> Option<usize> {
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let start = if self.next < n { self.next } else { 0 };
        // Try start.. then ..start, in order.
        let (wrapped, first) = servers.split_at(start);
        let found = first
            .iter()
            .enumerate()
            .map(|(i, s)| (start + i, s))
            .chain(wrapped.iter().enumerate())
            .find(|(_, s)| s.available())
            .map(|(i, _)| i)?;
        self.next = found + 1;
        Some(found)
    }
}

/// IPVS's weighted round robin: rounds with a falling "current weight" `cw`, from the
/// largest weight down by the weights' gcd; in each round every server whose weight is at
/// least `cw` gets one connection. Weights 3:2:1 give A A B A B C: whole cycles (sum of
/// weights / gcd picks) are exactly weight-proportional, and servers are interleaved
/// rather than bunched.
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin {
    /// The next index to examine.
    next: usize,
    /// The current weight.
    cw: u64,
    /// The largest weight at build time (0: no server has a weight).
    mw: u64,
    /// The gcd of the non-zero weights.
    di: u64,
    /// The most steps one pick may take: one whole cycle of (index, cw) states.
    max_steps: u64,
}

impl WeightedRoundRobin {
    /// Worker `worker`'s (of `workers`) wrr over `servers`.
    pub fn new(servers: &[RealServer], worker: usize, workers: usize) -> Self {
        let weights = servers.iter().map(|s| u64::from(s.weight)).filter(|&w| w > 0);
        let mw = weights.clone().max().unwrap_or(0);
        let di = weights.fold(0, gcd).max(1);
        let max_steps = (servers.len() as u64).saturating_mul(mw / di + 1);
        WeightedRoundRobin { next: start_index(servers.len(), worker, workers), cw: mw, mw, di, max_steps }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn pick(&mut self, servers: &[RealServer], _input: &SchedInput) -> Option<usize> {
        let n = servers.len();
        if n == 0 || self.mw == 0 {
            return None;
        }
        // Bounded: after a whole cycle without a hit no server can take the connection.
        // A cycle is long only when the heavy servers are unavailable and light ones must
        // wait for cw to fall — the same walk IPVS does.
        for _ in 0..self.max_steps {
            if self.next >= n {
                self.next = 0;
                self.cw = self.cw.saturating_sub(self.di);
                if self.cw == 0 {
                    self.cw = self.mw;
                }
            }
            let i = self.next;
            self.next += 1;
            if let Some(s) = servers.get(i) {
                if u64::from(s.weight) >= self.cw && s.available() {
                    return Some(i);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn rr_cycles_and_skips_unavailable() {
        let servers = servers(&[1, 0, 5, 1]);
        let mut rr = RoundRobin::new(&servers, 0, 1);
        let picks: Vec<_> = (0..6).map(|n| rr.pick(&servers, &input(n)).unwrap()).collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
        overload(&servers[2]);
        let picks: Vec<_> = (0..4).map(|n| rr.pick(&servers, &input(n)).unwrap()).collect();
        assert_eq!(picks, [0, 3, 0, 3]);
    }

    #[test]
    fn rr_workers_start_apart() {
        let servers = servers(&[1; 4]);
        let firsts: Vec<_> =
            (0..4).map(|w| RoundRobin::new(&servers, w, 4).pick(&servers, &input(0)).unwrap()).collect();
        assert_eq!(firsts, [0, 1, 2, 3]);
        let firsts: Vec<_> =
            (0..2).map(|w| RoundRobin::new(&servers, w, 2).pick(&servers, &input(0)).unwrap()).collect();
        assert_eq!(firsts, [0, 2]);
    }

    #[test]
    fn wrr_sequence_is_ipvs_interleaved() {
        let servers = servers(&[3, 2, 1]);
        let mut wrr = WeightedRoundRobin::new(&servers, 0, 1);
        let picks: Vec<_> = (0..12).map(|n| wrr.pick(&servers, &input(n)).unwrap()).collect();
        assert_eq!(picks, [0, 0, 1, 0, 1, 2, 0, 0, 1, 0, 1, 2]);
        let servers = self::servers(&[4, 3, 2]);
        let mut wrr = WeightedRoundRobin::new(&servers, 0, 1);
        let picks: Vec<_> = (0..9).map(|n| wrr.pick(&servers, &input(n)).unwrap()).collect();
        // A A B A B C A B C, the LVS documentation's example.
        assert_eq!(picks, [0, 0, 1, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn wrr_uses_gcd_and_skips_unavailable() {
        let servers = servers(&[40, 20, 0]);
        let mut wrr = WeightedRoundRobin::new(&servers, 1, 2);
        let mut counts = [0; 3];
        for n in 0..300 {
            counts[wrr.pick(&servers, &input(n)).unwrap()] += 1;
        }
        assert_eq!(counts, [200, 100, 0]);
        overload(&servers[0]);
        for n in 0..10 {
            assert_eq!(wrr.pick(&servers, &input(n)), Some(1));
        }
        overload(&servers[1]);
        assert_eq!(wrr.pick(&servers, &input(0)), None);
    }
}
