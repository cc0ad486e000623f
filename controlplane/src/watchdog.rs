//! The worker watchdog: a worker whose poll counter has not moved for [`WORKER_STALL`] has
//! stopped polling (stuck in a driver call, a livelock, a lost lcore).
//!
//! [`PollWatchdog`] is sans-IO: it is fed the poll counters and an `Instant` and keeps,
//! per worker, the last value seen and when it last changed. Two users share it:
//!
//! * the HA thread (`track_workers`: a stalled worker puts the VRRP instances in fault),
//!   fed every turn;
//! * the status (`/v1/status` `workers[].stalled`, `stalled_for_ms`, `rvsadm status`,
//!   `rvs_worker_stalled`) through [`WorkerWatch`], fed by every status request and by a
//!   periodic sample on the control thread, so that a single request after a long quiet
//!   time still compares two samples at most [`SAMPLE_EVERY`] apart.
//!
//! [`LinkWatch`] counts the ports' link changes seen by the same periodic sample
//! (`ports[].link_changes`, `rvs_port_link_changes_total`) and tells the daemon which to
//! log; a flap shorter than [`SAMPLE_EVERY`] can pass unseen (the NIC's link state is
//! read, not its events). The workers never look at the link: they poll through a flap.
//!
//! A counter is only known to have stood still *between samples*: the stall reported is
//! measured from the sample that first saw the counter's last value, a lower bound of the
//! real one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_dataplane::stats::WorkerCounters;

/// A worker whose poll counter has not moved for this long is stalled. Even an adaptive
/// worker asleep on an idle port polls every few hundred microseconds.
pub const WORKER_STALL: Duration = Duration::from_secs(1);

/// How often the daemon samples the poll counters for the status, between requests.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Per-worker poll counter history: the last value and when it last changed.
#[derive(Debug, Clone)]
pub struct PollWatchdog {
    threshold: Duration,
    last: Vec<(u64, Instant)>,
}

impl PollWatchdog {
    /// A watchdog calling a worker stalled after `threshold` without a poll.
    pub fn new(threshold: Duration) -> PollWatchdog {
        PollWatchdog { threshold, last: Vec::new() }
    }

    /// Feeds the poll counters (one per worker, in worker order) seen at `now`; returns per
    /// worker `Some(how long it has not polled)` when that is at least the threshold, else
    /// `None`. The first sample (or a change in the number of workers) starts every
    /// worker's history at `now`.
    pub fn observe(&mut self, now: Instant, polls: &[u64]) -> Vec<Option<Duration>> {
        if self.last.len() != polls.len() {
            self.last = polls.iter().map(|p| (*p, now)).collect();
        }
        polls
            .iter()
            .zip(self.last.iter_mut())
            .map(|(p, (last, since))| {
                if p != last {
                    *last = *p;
                    *since = now;
                }
                let still = now.saturating_duration_since(*since);
                (still >= self.threshold).then_some(still)
            })
            .collect()
    }

    /// The first stalled worker of [`PollWatchdog::observe`]'s answer, with its stall.
    pub fn first_stalled(stalls: &[Option<Duration>]) -> Option<(usize, Duration)> {
        stalls.iter().enumerate().find_map(|(w, s)| s.map(|d| (w, d)))
    }
}

/// The status's watchdog: the workers' counters and a [`PollWatchdog`] over them, shared
/// by the status source and the periodic sampler.
#[derive(Debug)]
pub struct WorkerWatch {
    counters: Vec<Arc<WorkerCounters>>,
    watchdog: Mutex<PollWatchdog>,
}

impl WorkerWatch {
    /// Watches `counters` (in worker order) with the [`WORKER_STALL`] threshold.
    pub fn new(counters: Vec<Arc<WorkerCounters>>) -> WorkerWatch {
        WorkerWatch::with_threshold(counters, WORKER_STALL)
    }

    /// Watches `counters` with another threshold (tests).
    pub fn with_threshold(counters: Vec<Arc<WorkerCounters>>, threshold: Duration) -> WorkerWatch {
        WorkerWatch { counters, watchdog: Mutex::new(PollWatchdog::new(threshold)) }
    }

    /// Samples the poll counters at `now`; answers per worker its stall, as
    /// [`PollWatchdog::observe`].
    pub fn sample(&self, now: Instant) -> Vec<Option<Duration>> {
        let polls: Vec<u64> = self.counters.iter().map(|c| c.polls.get()).collect();
        self.watchdog.lock().unwrap_or_else(|p| p.into_inner()).observe(now, &polls)
    }
}

/// The ports' link states between samples, and how often each changed.
#[derive(Debug, Clone, Default)]
pub struct LinkWatch {
    last: Vec<bool>,
    changes: Vec<u64>,
}

impl LinkWatch {
    /// Feeds the ports' link states (`true`: up), in port order; returns the ports whose
    /// link changed since the last sample, with their new state. The first sample (or a
    /// change in the number of ports) changes nothing.
    pub fn observe(&mut self, links: &[bool]) -> Vec<(usize, bool)> {
        if self.last.len() != links.len() {
            self.last = links.to_vec();
            self.changes = vec![0; links.len()];
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, (&now, last)) in links.iter().zip(self.last.iter_mut()).enumerate() {
            if now != *last {
                *last = now;
                self.changes[i] += 1;
                out.push((i, now));
            }
        }
        out
    }

    /// How many times each port's link changed (0 for a port not sampled yet).
    pub fn changes(&self, port: usize) -> u64 {
        self.changes.get(port).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_counter_that_stands_still_for_the_threshold_is_stalled() {
        let t0 = Instant::now();
        let mut w = PollWatchdog::new(1000 * MS);
        assert_eq!(w.observe(t0, &[5, 9]), [None, None]);
        // Worker 0 polls, worker 1 does not: not yet the threshold.
        assert_eq!(w.observe(t0 + 999 * MS, &[6, 9]), [None, None]);
        assert_eq!(w.observe(t0 + 1000 * MS, &[7, 9]), [None, Some(1000 * MS)]);
        assert_eq!(w.observe(t0 + 2500 * MS, &[8, 9]), [None, Some(2500 * MS)]);
        assert_eq!(PollWatchdog::first_stalled(&w.observe(t0 + 2500 * MS, &[8, 9])), Some((1, 2500 * MS)));
        // Worker 1 polls again: no longer stalled; worker 0 stops, measured from the
        // sample that first saw its last value.
        assert_eq!(w.observe(t0 + 2600 * MS, &[8, 10]), [None, None]);
        assert_eq!(w.observe(t0 + 3500 * MS, &[8, 10]), [Some(1000 * MS), None]);
        // A clock that goes backwards (it cannot with Instant, but a fake one might)
        // counts as no time.
        assert_eq!(w.observe(t0, &[8, 11]), [None, None]);
    }

    #[test]
    fn a_new_worker_count_restarts_the_history() {
        let t0 = Instant::now();
        let mut w = PollWatchdog::new(1000 * MS);
        w.observe(t0, &[1]);
        assert_eq!(w.observe(t0 + 5000 * MS, &[1, 1]), [None, None]);
        assert_eq!(w.observe(t0 + 6000 * MS, &[1, 2]), [Some(1000 * MS), None]);
    }

    #[test]
    fn link_changes_are_counted_and_reported_once() {
        let mut l = LinkWatch::default();
        assert_eq!(l.changes(0), 0);
        assert!(l.observe(&[true, false]).is_empty(), "the first sample is the baseline");
        assert!(l.observe(&[true, false]).is_empty());
        assert_eq!(l.observe(&[false, false]), [(0, false)]);
        assert!(l.observe(&[false, false]).is_empty(), "a link that stays down is reported once");
        assert_eq!(l.observe(&[true, true]), [(0, true), (1, true)]);
        assert_eq!((l.changes(0), l.changes(1), l.changes(7)), (2, 1, 0));
    }

    #[test]
    fn worker_watch_reads_the_live_counters() {
        let c = [Arc::new(WorkerCounters::new()), Arc::new(WorkerCounters::new())];
        let watch = WorkerWatch::new(c.to_vec());
        let t0 = Instant::now();
        watch.sample(t0);
        c[0].polls.add(3);
        assert_eq!(watch.sample(t0 + WORKER_STALL), [None, Some(WORKER_STALL)]);
        c[1].polls.add(1);
        assert_eq!(watch.sample(t0 + WORKER_STALL * 2), [Some(WORKER_STALL), None]);
    }
}
