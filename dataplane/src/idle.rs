//! What a worker does when its queues are empty.
//!
//! Contract: the poll loop calls [`Idler::on_poll`] once per pass with the number of
//! packets that pass received, and sleeps for the duration it returns, if any. The idler
//! never sleeps itself and never reads the clock, so it is a pure state machine that unit
//! tests drive directly.
//!
//! * [`IdlePolicy::Busy`] (production): never sleep; the core spins at 100% like every
//!   DPDK poll-mode application.
//! * [`IdlePolicy::Adaptive`] (the lab, a shared 2-core machine): after
//!   [`IdleParams::empty_polls`] consecutive empty polls, sleep — first
//!   [`IdleParams::min_sleep`], doubling on each further empty poll up to
//!   [`IdleParams::max_sleep`] — and snap back to spinning on the first packet. Like
//!   DPDK's `l3fwd-power` heuristics, but without frequency scaling or interrupts.
//!
//! Sleeping is a syscall, so it happens only when a poll got nothing: a busy worker never
//! pays for it. Linux rounds short sleeps up (timer slack, ~50 µs by default), so the
//! effective minimum is coarser than `min_sleep`; the latency cost of adaptive mode is at
//! most one `max_sleep` for the first packet after a silence.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a worker behaves when it receives nothing. In the config: `idle = "busy"` or
/// `idle = "adaptive"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdlePolicy {
    /// Poll continuously (production).
    #[default]
    Busy,
    /// Sleep with a growing interval after a run of empty polls (shared machines).
    Adaptive,
}

/// Tuning of [`IdlePolicy::Adaptive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleParams {
    /// Consecutive empty polls before the first sleep.
    pub empty_polls: u32,
    /// First sleep.
    pub min_sleep: Duration,
    /// Longest sleep; the interval doubles up to this.
    pub max_sleep: Duration,
}

impl Default for IdleParams {
    fn default() -> Self {
        IdleParams { empty_polls: 64, min_sleep: Duration::from_micros(1), max_sleep: Duration::from_millis(1) }
    }
}

/// The idle state machine of one worker. See the module docs.
#[derive(Debug, Clone)]
pub struct Idler {
    policy: IdlePolicy,
    params: IdleParams,
    empty_run: u32,
    next_sleep: Duration,
}

impl Idler {
    /// An idler with the default [`IdleParams`].
    pub fn new(policy: IdlePolicy) -> Self {
        Self::with_params(policy, IdleParams::default())
    }

    /// An idler with explicit tuning. A `max_sleep` below `min_sleep` is raised to it.
    pub fn with_params(policy: IdlePolicy, params: IdleParams) -> Self {
        let params = IdleParams { max_sleep: params.max_sleep.max(params.min_sleep), ..params };
        Idler { policy, params, empty_run: 0, next_sleep: params.min_sleep }
    }

    /// The policy in force.
    pub fn policy(&self) -> IdlePolicy {
        self.policy
    }

    /// Records one poll that received `packets` packets; returns how long to sleep now,
    /// or `None` to poll again at once.
    #[inline]
    pub fn on_poll(&mut self, packets: usize) -> Option<Duration> {
        if packets != 0 {
            self.empty_run = 0;
            self.next_sleep = self.params.min_sleep;
            return None;
        }
        match self.policy {
            IdlePolicy::Busy => None,
            IdlePolicy::Adaptive => {
                if self.empty_run < self.params.empty_polls {
                    self.empty_run += 1;
                    return None;
                }
                let d = self.next_sleep;
                self.next_sleep = (d * 2).min(self.params.max_sleep);
                Some(d)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_never_sleeps() {
        let mut i = Idler::new(IdlePolicy::Busy);
        assert!((0..10_000).all(|_| i.on_poll(0).is_none()));
    }

    #[test]
    fn adaptive_sleeps_after_empty_run_doubles_caps_and_resets() {
        let p = IdleParams { empty_polls: 3, min_sleep: Duration::from_micros(1), max_sleep: Duration::from_micros(5) };
        let mut i = Idler::with_params(IdlePolicy::Adaptive, p);
        assert_eq!((0..3).filter_map(|_| i.on_poll(0)).count(), 0);
        let sleeps: Vec<_> = (0..5).map(|_| i.on_poll(0).unwrap().as_micros()).collect();
        assert_eq!(sleeps, [1, 2, 4, 5, 5]);
        assert_eq!(i.on_poll(7), None, "traffic never sleeps");
        assert_eq!((0..3).filter_map(|_| i.on_poll(0)).count(), 0, "run restarts after traffic");
        assert_eq!(i.on_poll(0), Some(Duration::from_micros(1)), "interval reset after traffic");
    }

    #[test]
    fn serde_names() {
        #[derive(Deserialize)]
        struct C {
            idle: IdlePolicy,
        }
        let c: C = serde_json::from_str(r#"{"idle":"adaptive"}"#).unwrap();
        assert_eq!(c.idle, IdlePolicy::Adaptive);
        assert_eq!(serde_json::to_string(&IdlePolicy::Busy).unwrap(), "\"busy\"");
    }
}
