//! When the include file is written and when BIRD is told to read it: a sans-IO state
//! machine, fed the rendered file and an `Instant`, answering what to do next.
//!
//! * A text that differs from the one on disk is written at once (the file is always
//!   the node's current decision, so a BIRD that starts later reads the right one).
//! * A text on disk that BIRD has not accepted yet is applied with `birdc configure`:
//!   at once after a success, else at the retry time. Failures back off from
//!   [`RETRY_MIN`], doubling up to [`RETRY_MAX`]; a success resets it. BIRD missing,
//!   its socket refusing or birdc hanging are [`BirdError::Unreachable`]; a file BIRD
//!   refuses (it keeps its old configuration then) is [`BirdError::Refused`].
//! * Nothing here ever stops forwarding: the data path does not know BIRD exists.

use std::time::{Duration, Instant};

/// First retry delay after a failure.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(10);

/// Why BIRD does not have the current file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BirdError {
    /// birdc could not be run, could not reach BIRD's socket, or did not answer in time.
    #[error("bgp: birdc unreachable: {0}")]
    Unreachable(String),
    /// BIRD read the file and refused its configuration.
    #[error("bgp: BIRD refused the configuration: {0}")]
    Refused(String),
    /// The include file could not be written.
    #[error("bgp: cannot write the include file: {0}")]
    Write(String),
}

/// What the shell should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    Idle,
    /// Write this text to the include file, then report with [`Announcer::written`].
    Write(String),
    /// Run `birdc configure`, then report with [`Announcer::configured`].
    Configure,
}

/// The state (see the module docs).
#[derive(Debug, Clone)]
pub struct Announcer {
    on_disk: Option<String>,
    in_bird: Option<String>,
    retry_at: Option<Instant>,
    backoff: Duration,
    error: Option<BirdError>,
    configures: u64,
    failures: u64,
}

impl Default for Announcer {
    fn default() -> Self {
        Announcer::new()
    }
}

impl Announcer {
    /// Nothing written or applied yet.
    pub fn new() -> Announcer {
        Announcer {
            on_disk: None,
            in_bird: None,
            retry_at: None,
            backoff: RETRY_MIN,
            error: None,
            configures: 0,
            failures: 0,
        }
    }

    /// What to do at `now` for the rendered file `text`.
    pub fn next(&self, now: Instant, text: &str) -> Action {
        let waiting = self.retry_at.is_some_and(|t| now < t);
        if self.on_disk.as_deref() != Some(text) {
            // A write that failed is retried on the same schedule as birdc.
            if waiting && matches!(self.error, Some(BirdError::Write(_))) {
                return Action::Idle;
            }
            return Action::Write(text.to_string());
        }
        if self.in_bird.as_deref() != Some(text) && !waiting {
            return Action::Configure;
        }
        Action::Idle
    }

    /// The write of `text` at `now` succeeded (`Ok`) or failed.
    pub fn written(&mut self, now: Instant, text: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.on_disk = Some(text.to_string());
                if matches!(self.error, Some(BirdError::Write(_))) {
                    self.error = None;
                    self.retry_at = None;
                }
            }
            Err(e) => self.failed(now, BirdError::Write(e)),
        }
    }

    /// `birdc configure` at `now` succeeded or failed; on success BIRD has the file on disk.
    pub fn configured(&mut self, now: Instant, result: Result<(), BirdError>) {
        self.configures += 1;
        match result {
            Ok(()) => {
                self.in_bird = self.on_disk.clone();
                self.error = None;
                self.retry_at = None;
                self.backoff = RETRY_MIN;
            }
            Err(e) => self.failed(now, e),
        }
    }

    fn failed(&mut self, now: Instant, e: BirdError) {
        self.failures += 1;
        self.error = Some(e);
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }

    /// Whether BIRD has read the file on disk.
    pub fn in_sync(&self) -> bool {
        self.on_disk.is_some() && self.in_bird == self.on_disk
    }

    /// The last failure, until a success clears it.
    pub fn error(&self) -> Option<&BirdError> {
        self.error.as_ref()
    }

    /// When the next attempt after a failure is due.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// `birdc configure` runs so far, and failures (writes included).
    pub fn counts(&self) -> (u64, u64) {
        (self.configures, self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> BirdError {
        BirdError::Unreachable("Unable to connect to server control socket (/run/bird/bird.ctl)".into())
    }

    #[test]
    fn a_change_is_written_then_applied_once() {
        let t0 = Instant::now();
        let mut a = Announcer::new();
        assert_eq!(a.next(t0, "A"), Action::Write("A".into()));
        a.written(t0, "A", Ok(()));
        assert_eq!(a.next(t0, "A"), Action::Configure);
        a.configured(t0, Ok(()));
        assert!(a.in_sync());
        assert_eq!(a.next(t0, "A"), Action::Idle);
        assert_eq!(a.next(t0, "B"), Action::Write("B".into()));
        a.written(t0, "B", Ok(()));
        assert!(!a.in_sync());
        assert_eq!(a.next(t0, "B"), Action::Configure);
        a.configured(t0, Ok(()));
        assert_eq!(a.counts(), (2, 0));
    }

    #[test]
    fn an_unreachable_bird_is_retried_with_backoff_and_reported_until_it_answers() {
        let t0 = Instant::now();
        let mut a = Announcer::new();
        a.written(t0, "A", Ok(()));
        let mut t = t0;
        let mut delays = Vec::new();
        for _ in 0..6 {
            assert_eq!(a.next(t, "A"), Action::Configure);
            a.configured(t, Err(unreachable()));
            let at = a.retry_at().unwrap();
            delays.push((at - t).as_secs());
            assert_eq!(a.next(at - Duration::from_millis(1), "A"), Action::Idle, "waits for the retry time");
            t = at;
        }
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(
            a.error().unwrap().to_string().split(':').take(2).collect::<Vec<_>>(),
            ["bgp", " birdc unreachable"]
        );
        // A new decision meanwhile is written at once, applied at the retry time.
        assert_eq!(a.next(t - Duration::from_millis(1), "B"), Action::Write("B".into()));
        a.written(t, "B", Ok(()));
        assert_eq!(a.next(t, "B"), Action::Configure);
        a.configured(t, Ok(()));
        assert!(a.in_sync() && a.error().is_none());
        // The backoff starts over after a success.
        a.written(t, "C", Ok(()));
        a.configured(t, Err(BirdError::Refused("syntax error".into())));
        assert_eq!(a.retry_at().unwrap() - t, RETRY_MIN);
        assert_eq!(a.counts(), (8, 7));
    }

    #[test]
    fn a_failed_write_is_reported_and_retried() {
        let t0 = Instant::now();
        let mut a = Announcer::new();
        a.written(t0, "A", Err("permission denied".into()));
        assert_eq!(a.error().unwrap().to_string(), "bgp: cannot write the include file: permission denied");
        assert_eq!(a.next(t0, "A"), Action::Idle);
        assert_eq!(a.next(t0 + RETRY_MIN, "A"), Action::Write("A".into()));
        a.written(t0 + RETRY_MIN, "A", Ok(()));
        assert!(a.error().is_none());
        assert_eq!(a.next(t0 + RETRY_MIN, "A"), Action::Configure);
    }
}
