//! Weighted failover (fo) and weighted overflow (ovf) (IPVS `ip_vs_fo.c`, `ip_vs_ovf.c`).
//!
//! Contract: stateless; each pick walks the server list once.
//!
//! * fo: the available server with the highest weight; the first in list order on ties.
//!   Everything goes to one server until it becomes unavailable (weight 0, overloaded).
//! * ovf: the available server with the highest weight whose active connections are
//!   below its weight; the first on ties. When the heaviest server's active connections
//!   reach its weight, new connections overflow to the next heaviest.
//!
//! ovf's threshold is rvs's documented rule (see [`SchedulerKind::Ovf`]): a server of
//! weight `w` holds at most `w` active connections. IPVS's `ip_vs_ovf.c` skips a server
//! only when `activeconns > w`, so it lets one more in; rvs treats the weight as the
//! capacity.

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{SchedInput, Scheduler};

/// fo or ovf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
}

/// A failover/overflow scheduler (stateless).
#[derive(Debug, Clone)]
pub struct Failover {
    mode: Mode,
}

impl Failover {
    /// A scheduler of the given mode.
    pub fn new(mode: Mode) -> Self {
        Failover { mode }
    }
}

impl Scheduler for Failover {
    fn kind(&self) -> SchedulerKind {
        match self.mode {
            Mode::Fo => SchedulerKind::Fo,
            Mode::Ovf => SchedulerKind::Ovf,
        }
    }

    fn pick(&mut self, servers: &[RealServer], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, s) in servers.iter().enumerate() {
            if !s.available() || best.is_some_and(|(_, w)| s.weight <= w) {
                continue;
            }
            if self.mode == Mode::Ovf && s.stats.active_conns() >= u64::from(s.weight) {
                continue;
            }
            best = Some((i, s.weight));
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn fo_takes_the_heaviest_available() {
        let servers = servers(&[2, 5, 5, 0]);
        let mut fo = Failover::new(Mode::Fo);
        assert_eq!(fo.pick(&servers, &input(1)), Some(1), "first of the heaviest");
        for _ in 0..100 {
            servers[1].stats.conn_opened(0, true);
        }
        assert_eq!(fo.pick(&servers, &input(1)), Some(1), "load does not matter");
        overload(&servers[1]);
        assert_eq!(fo.pick(&servers, &input(1)), Some(2));
        overload(&servers[2]);
        assert_eq!(fo.pick(&servers, &input(1)), Some(0));
    }

    #[test]
    fn ovf_overflows_when_active_reaches_weight() {
        let servers = servers(&[2, 3, 1]);
        let mut ovf = Failover::new(Mode::Ovf);
        let mut picks = Vec::new();
        for n in 0..7 {
            let p = ovf.pick(&servers, &input(n));
            if let Some(i) = p {
                servers[i].stats.conn_opened(0, true);
            }
            picks.push(p);
        }
        assert_eq!(picks, [Some(1), Some(1), Some(1), Some(0), Some(0), Some(2), None]);
        servers[1].stats.conn_closed(0, true);
        assert_eq!(ovf.pick(&servers, &input(9)), Some(1));
        servers[1].stats.conn_moved(0, false);
        assert_eq!(ovf.pick(&servers, &input(9)), Some(1), "inactive connections don't count");
    }
}
