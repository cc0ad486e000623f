//! The least-load family: lc, wlc, sed, nq (IPVS `ip_vs_lc.c`, `ip_vs_wlc.c`,
//! `ip_vs_sed.c`, `ip_vs_nq.c`) and DPVS-style sessions.
//!
//! Contract: each pick reads every available server's counters (summed over workers,
//! relaxed) and returns the least loaded one by the algorithm's measure; on ties the
//! first in list order wins, as in IPVS. Loads per weight are compared by
//! cross-multiplication, never divided. The scheduler itself has no state.
//!
//! | kind | load of a server | compared |
//! |------|------------------|----------|
//! | lc | `active * 256 + inactive` (IPVS's overhead) | absolute |
//! | wlc | `active * 256 + inactive` | per weight |
//! | sed | `active + 1` (the expected delay if it takes the connection) | per weight |
//! | nq | the first idle server (no active connection) if any, else as sed | |
//! | sessions | `active` | absolute; ties: higher weight, then lower index |

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{conn_overhead, per_weight_gt, wlc_pick, SchedInput, Scheduler};

/// Which least-load measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Fewest active sessions.
    Sessions,
}

/// A least-load scheduler (stateless).
#[derive(Debug, Clone)]
pub struct LeastConn {
    mode: Mode,
}

impl LeastConn {
    /// A scheduler with the given measure.
    pub fn new(mode: Mode) -> Self {
        LeastConn { mode }
    }
}

/// The available server minimising `load / weight`, first on ties.
fn least_per_weight(servers: &[RealServer], load: impl Fn(&RealServer) -> u64) -> Option<usize> {
    let mut best: Option<(usize, u64, u32)> = None;
    for (i, s) in servers.iter().enumerate() {
        if !s.available() {
            continue;
        }
        let l = load(s);
        match best {
            Some((_, bl, bw)) if !per_weight_gt(bl, bw, l, s.weight) => {}
            _ => best = Some((i, l, s.weight)),
        }
    }
    best.map(|(i, _, _)| i)
}

/// sed's load: the active connections the server would have with this one.
fn sed_load(s: &RealServer) -> u64 {
    s.stats.active_conns().saturating_add(1)
}

impl Scheduler for LeastConn {
    fn kind(&self) -> SchedulerKind {
        match self.mode {
            Mode::Lc => SchedulerKind::Lc,
            Mode::Wlc => SchedulerKind::Wlc,
            Mode::Sed => SchedulerKind::Sed,
            Mode::Nq => SchedulerKind::Nq,
            Mode::Sessions => SchedulerKind::Sessions,
        }
    }

    fn pick(&mut self, servers: &[RealServer], _input: &SchedInput) -> Option<usize> {
        match self.mode {
            Mode::Lc => servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.available())
                // min_by_key keeps the first of equal keys.
                .min_by_key(|(_, s)| conn_overhead(s))
                .map(|(i, _)| i),
            Mode::Wlc => wlc_pick(servers),
            Mode::Sed => least_per_weight(servers, sed_load),
            Mode::Nq => servers
                .iter()
                .position(|s| s.available() && s.stats.active_conns() == 0)
                .or_else(|| least_per_weight(servers, sed_load)),
            Mode::Sessions => servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.available())
                .min_by_key(|(i, s)| (s.stats.active_conns(), std::cmp::Reverse(s.weight), *i))
                .map(|(i, _)| i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn open(s: &RealServer, active: u64, inactive: u64) {
        for _ in 0..active {
            s.stats.conn_opened(0, true);
        }
        for _ in 0..inactive {
            s.stats.conn_opened(1, false);
        }
    }

    fn pick(mode: Mode, servers: &[RealServer]) -> Option<usize> {
        LeastConn::new(mode).pick(servers, &input(1))
    }

    #[test]
    fn lc_counts_active_as_256_inactive() {
        let servers = servers(&[1, 5, 1]);
        open(&servers[0], 1, 0);
        open(&servers[1], 0, 255);
        open(&servers[2], 0, 300);
        assert_eq!(pick(Mode::Lc, &servers), Some(1));
        open(&servers[1], 0, 2);
        assert_eq!(pick(Mode::Lc, &servers), Some(0), "256 < 257 inactive");
    }

    #[test]
    fn wlc_divides_by_weight() {
        let servers = servers(&[1, 3, 2]);
        open(&servers[0], 2, 0); // 512 / 1
        open(&servers[1], 5, 0); // 1280 / 3 = 426
        open(&servers[2], 4, 0); // 1024 / 2 = 512
        assert_eq!(pick(Mode::Wlc, &servers), Some(1));
        assert_eq!(pick(Mode::Lc, &servers), Some(0));
    }

    #[test]
    fn sed_and_nq() {
        let servers = servers(&[1, 4, 1]);
        open(&servers[0], 1, 0); // (1+1)/1 = 2
        open(&servers[1], 5, 0); // 6/4 = 1.5
        assert_eq!(pick(Mode::Sed, &servers), Some(2), "(0+1)/1 = 1 is least");
        assert_eq!(pick(Mode::Nq, &servers), Some(2), "server 2 is idle");
        open(&servers[2], 1, 0); // 2/1
        assert_eq!(pick(Mode::Sed, &servers), Some(1));
        assert_eq!(pick(Mode::Nq, &servers), Some(1));
        // An idle light server beats a lightly loaded heavy one under nq only.
        let servers = self::servers(&[10, 1]);
        open(&servers[0], 1, 0); // sed: 2/10
        assert_eq!(pick(Mode::Sed, &servers), Some(0));
        assert_eq!(pick(Mode::Nq, &servers), Some(1));
    }

    #[test]
    fn sessions_ties_by_weight_then_index() {
        let servers = servers(&[1, 3, 3, 2]);
        assert_eq!(pick(Mode::Sessions, &servers), Some(1));
        open(&servers[1], 1, 0);
        assert_eq!(pick(Mode::Sessions, &servers), Some(2));
        open(&servers[2], 1, 0);
        assert_eq!(pick(Mode::Sessions, &servers), Some(3));
        open(&servers[3], 1, 50);
        assert_eq!(pick(Mode::Sessions, &servers), Some(0), "inactive sessions don't count");
    }

    #[test]
    fn skips_unavailable_and_quiescent() {
        for mode in [Mode::Lc, Mode::Wlc, Mode::Sed, Mode::Nq, Mode::Sessions] {
            let servers = servers(&[0, 1, 1]);
            open(&servers[2], 3, 0);
            overload(&servers[1]);
            assert_eq!(pick(mode, &servers), Some(2), "{mode:?}");
            overload(&servers[2]);
            assert_eq!(pick(mode, &servers), None, "{mode:?}");
        }
    }
}
