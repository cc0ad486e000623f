//! Health checking of real servers: the data-path-independent core.
//!
//! Everything here is sans-IO: no thread, socket or clock of its own. Time comes in as
//! `std::time::Instant`s from the caller, packets come and go through in-memory queues
//! ([`device`]), and external programs are spawned and polled without blocking
//! ([`command`]). The pieces:
//!
//! * [`state`]: the per-server rise/fall state machine and its probe schedule;
//! * [`agent`]: the HAProxy agent-check reply parser and its weight effect;
//! * [`http`]: a bounded HTTP response checker and the status ranges it judges by;
//! * [`device`] and [`prober`]: smoltcp over an IP-medium device whose packets are queued
//!   for (and from) the data path, running tcp, http, udp and icmp probes;
//! * [`command`]: the `command` kind, an external program with a timeout;
//! * [`monitor`]: all of the above per server, driven from one poll;
//! * [`run`]: the health thread, the I/O shell that feeds the monitor the packets the
//!   workers punt ([`rvs_dataplane::punt`]), hands its packets to worker 0, and publishes
//!   each server's effect into the service table.

pub mod agent;
pub mod command;
pub mod device;
pub mod http;
pub mod monitor;
pub mod prober;
pub mod run;
pub mod state;

/// Whether a probe found the server healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered as expected.
    Success,
    /// The server did not, or not in time.
    Failure,
}

/// The result of one probe: its outcome and what happened, in words ("HTTP 500",
/// "connect timeout", "connection refused").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Success or failure.
    pub outcome: Outcome,
    /// What happened, for status output and logs.
    pub detail: String,
}

impl ProbeResult {
    /// A successful probe.
    pub fn success(detail: impl Into<String>) -> Self {
        ProbeResult { outcome: Outcome::Success, detail: detail.into() }
    }

    /// A failed probe.
    pub fn failure(detail: impl Into<String>) -> Self {
        ProbeResult { outcome: Outcome::Failure, detail: detail.into() }
    }

    /// Whether the probe succeeded.
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Success
    }
}
