//! The per-server check state machine: probe results in, probe times and transitions
//! out, with an injected clock.
//!
//! A [`ServerCheck`] is up or down. `fall` consecutive failures take an up server down,
//! `rise` consecutive successes bring a down server up; a result that agrees with the
//! state resets the count. Probes are spaced by `interval`, by `fastinter` while the
//! state is changing (a count is running) and by `downinter` while down. Every spacing
//! gets a deterministic jitter (from a per-server seed), and the first probe is offset
//! by up to one interval, so a thousand servers configured at once are not probed at
//! once. [`effect`] turns the check's state, the agent's word and the service's
//! settings into the weight the data path should use.

use std::time::{Duration, Instant};

use super::agent::{AgentState, AgentStatus};
use super::{Outcome, ProbeResult};
use crate::config::{Health, OnDown};

/// Spacing and thresholds of one service's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between probes while the state is steady and up.
    pub interval: Duration,
    /// Time between probes while the state is changing.
    pub fastinter: Duration,
    /// Time between probes while down.
    pub downinter: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Successes that bring a down server up.
    pub rise: u8,
    /// Failures that take an up server down.
    pub fall: u8,
    /// Whether a server is up before its first probe.
    pub start_up: bool,
}

impl From<&Health> for Timing {
    fn from(h: &Health) -> Self {
        Timing {
            interval: h.interval,
            fastinter: h.fastinter,
            downinter: h.downinter,
            timeout: h.timeout,
            rise: h.rise,
            fall: h.fall,
            start_up: h.start_up,
        }
    }
}

/// Whether the checks find a server up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Passing.
    Up,
    /// Failing.
    Down,
}

/// A change of state, for logs, `notify` and the service snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub to: State,
    /// When the deciding result came in.
    pub at: Instant,
    /// The deciding result, in words.
    pub reason: String,
}

/// One server's check state and schedule.
#[derive(Debug, Clone)]
pub struct ServerCheck {
    timing: Timing,
    state: State,
    /// Consecutive results disagreeing with `state`.
    streak: u8,
    since: Instant,
    last: Option<ProbeResult>,
    next: Instant,
    /// When the probe in flight started, if one is.
    started: Option<Instant>,
    /// Whether the server has come up from down (so slowstart applies).
    recovered: bool,
    /// How long the last finished probe took (start to result).
    last_duration: Option<Duration>,
    /// Probes finished, by outcome, since the server was first checked.
    succeeded: u64,
    failed: u64,
    rng: u64,
}

/// splitmix64: a small, good, seedable generator; the jitter needs nothing stronger.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform duration in `[0, span)` (zero for a zero span).
fn below(state: &mut u64, span: Duration) -> Duration {
    let n = span.as_nanos() as u64;
    if n == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(splitmix(state) % n)
    }
}

impl ServerCheck {
    /// A server created at `now`, in its start state; `seed` (for instance a hash of the
    /// service and server addresses, or an index) spreads its probes among its peers'.
    pub fn new(timing: Timing, now: Instant, seed: u64) -> Self {
        let mut rng = seed;
        let state = if timing.start_up { State::Up } else { State::Down };
        let first = now + below(&mut rng, timing.interval);
        ServerCheck {
            timing,
            state,
            streak: 0,
            since: now,
            last: None,
            next: first,
            started: None,
            recovered: false,
            last_duration: None,
            succeeded: 0,
            failed: 0,
            rng,
        }
    }

    /// Up or down.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state began (creation, for the start state).
    pub fn since(&self) -> Instant {
        self.since
    }

    /// The last probe's result, if any.
    pub fn last(&self) -> Option<&ProbeResult> {
        self.last.as_ref()
    }

    /// How long the last finished probe took, from its start to its result.
    pub fn last_duration(&self) -> Option<Duration> {
        self.last_duration
    }

    /// Probes finished since the server was first checked: (succeeded, failed).
    pub fn probe_counts(&self) -> (u64, u64) {
        (self.succeeded, self.failed)
    }

    /// When the next probe should start (while one is in flight: when it started).
    pub fn next_probe(&self) -> Instant {
        self.started.unwrap_or(self.next)
    }

    /// Whether a probe should start at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.started.is_none() && now >= self.next
    }

    /// A probe starts at `now`; returns its deadline (`now + timeout`).
    pub fn start_probe(&mut self, now: Instant) -> Instant {
        self.started = Some(now);
        now + self.timing.timeout
    }

    /// Whether the current up state came from down (rather than from the start state).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Consecutive results disagreeing with the state so far (0 when steady).
    pub fn streak(&self) -> u8 {
        self.streak
    }

    /// A probe's result, at `now`; returns the transition it caused, if any, and
    /// schedules the next probe.
    pub fn record(&mut self, now: Instant, result: ProbeResult) -> Option<Transition> {
        let agrees =
            matches!((self.state, result.outcome), (State::Up, Outcome::Success) | (State::Down, Outcome::Failure));
        let mut transition = None;
        if agrees {
            self.streak = 0;
        } else {
            self.streak = self.streak.saturating_add(1);
            let needed = if self.state == State::Up { self.timing.fall } else { self.timing.rise };
            if self.streak >= needed {
                self.state = if self.state == State::Up { State::Down } else { State::Up };
                self.streak = 0;
                self.since = now;
                self.recovered = self.state == State::Up;
                transition = Some(Transition { to: self.state, at: now, reason: result.detail.clone() });
            }
        }
        match result.outcome {
            Outcome::Success => self.succeeded += 1,
            Outcome::Failure => self.failed += 1,
        }
        self.last_duration = self.started.map(|t| now.saturating_duration_since(t));
        self.last = Some(result);
        let spacing = if self.streak > 0 {
            self.timing.fastinter
        } else if self.state == State::Down {
            self.timing.downinter
        } else {
            self.timing.interval
        };
        // ±5% jitter, from the start of this probe so the cadence does not drift by
        // the probes' own durations.
        let base = self.started.take().unwrap_or(now);
        let jittered = spacing - spacing / 20 + below(&mut self.rng, spacing / 10);
        self.next = (base + jittered).max(now);
        transition
    }
}

/// What the data path should do with one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// Whether the server stays in the service (false: removed, with `on_down = "remove"`).
    pub present: bool,
    /// The weight in effect (0: quiesced or draining; flows continue).
    pub weight: u16,
    /// Whether the server counts as up (for backup and sorry-server selection).
    pub up: bool,
}

/// The effect at `now` of the check state (`None` without `[service.health]`), the
/// agent's word (`None` without `[service.agent]`), `on_down` and `slowstart`, for a
/// server configured with weight `configured`.
///
/// Down (by the checks, or the agent's `down`/`maint`): weight 0, or removed with
/// `on_down = Remove`. `drain`: weight 0, present. Otherwise the configured weight, scaled
/// by the agent's weight, ramped linearly from 1 during `slowstart` after coming up.
pub fn effect(
    now: Instant,
    configured: u16,
    check: Option<&ServerCheck>,
    agent: Option<&AgentStatus>,
    on_down: OnDown,
    slowstart: Option<Duration>,
) -> Effect {
    let checks_down = check.is_some_and(|c| c.state() == State::Down);
    let agent_state = agent.and_then(|a| a.state(now));
    let agent_down = matches!(agent_state, Some(AgentState::Down(_) | AgentState::Maint));
    if checks_down || agent_down {
        return Effect { present: on_down == OnDown::Quiesce, weight: 0, up: false };
    }
    if matches!(agent_state, Some(AgentState::Drain)) {
        return Effect { present: true, weight: 0, up: true };
    }
    let mut weight = agent.map_or(configured, |a| a.weight(now, configured));
    if let (Some(ramp), Some(c)) = (slowstart, check) {
        let up_for = now.saturating_duration_since(c.since());
        // A server up from the start was not recovered: no ramp.
        if c.recovered() && up_for < ramp && weight > 0 {
            let scaled = u128::from(weight) * up_for.as_nanos() / ramp.as_nanos().max(1);
            weight = u16::try_from(scaled).unwrap_or(weight).max(1);
        }
    }
    Effect { present: true, weight, up: true }
}

/// A server's administrative state, set by an operator (REST, `rvsadm admin`) and kept
/// apart from its health: HAProxy's ready, drain and maint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Admin {
    /// Normal: the health checks and the agent decide.
    #[default]
    Ready,
    /// Weight 0 in effect: no new flows, established flows continue. The server keeps
    /// being checked and counts as up for the backup tier, as the agent's `drain`.
    Drain,
    /// Out of scheduling (as `on_down = "remove"`: its flows follow
    /// `expire_nodest_conn`) and its health probes paused.
    Maint,
}

/// The words [`Admin::parse`] accepts, for error messages.
pub const ADMIN_WORDS: &str = "ready, drain or maint";

impl Admin {
    /// `ready`, `drain` or `maint`.
    pub fn parse(word: &str) -> Option<Admin> {
        match word {
            "ready" => Some(Admin::Ready),
            "drain" => Some(Admin::Drain),
            "maint" => Some(Admin::Maint),
            _ => None,
        }
    }

    /// Its word.
    pub fn name(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }

    /// The effect of this admin state on top of the health effect `health`.
    pub fn apply(self, health: Effect) -> Effect {
        match self {
            Admin::Ready => health,
            Admin::Drain => Effect { weight: 0, ..health },
            Admin::Maint => Effect { present: false, weight: 0, up: false },
        }
    }
}

/// Which servers a service should use, given each server's effect and backup flag:
/// the non-backup servers that are up; if none, the backups that are up; if none,
/// the sorry server (`Sorry`). Indices are into the slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These servers (indices), all of the chosen tier that are up.
    Servers(Vec<usize>),
    /// No server is up: the sorry server, if the service has one, else nothing.
    Sorry,
}

/// Chooses the tier in use from `(effect, backup)` per server.
pub fn select(servers: &[(Effect, bool)]) -> Selection {
    for want_backup in [false, true] {
        let tier: Vec<usize> =
            servers.iter().enumerate().filter(|(_, (e, b))| *b == want_backup && e.up).map(|(i, _)| i).collect();
        if !tier.is_empty() {
            return Selection::Servers(tier);
        }
    }
    Selection::Sorry
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timing() -> Timing {
        Timing { interval: 2 * S, fastinter: S / 2, downinter: 10 * S, timeout: S, rise: 2, fall: 3, start_up: true }
    }

    fn ok() -> ProbeResult {
        ProbeResult::success("HTTP 200")
    }

    fn bad() -> ProbeResult {
        ProbeResult::failure("HTTP 500")
    }

    /// Runs one probe at the scheduled time that finishes 10 ms later.
    fn step(c: &mut ServerCheck, r: ProbeResult) -> (Instant, Option<Transition>) {
        let at = c.next_probe();
        assert!(c.due(at));
        c.start_probe(at);
        assert!(!c.due(at + S * 100), "no second probe while one is in flight");
        let done = at + Duration::from_millis(10);
        (done, c.record(done, r))
    }

    fn near(d: Duration, want: Duration) -> bool {
        d >= want - want / 20 && d <= want + want / 20
    }

    #[test]
    fn fall_then_rise() {
        let t0 = Instant::now();
        let mut c = ServerCheck::new(timing(), t0, 7);
        assert_eq!((c.state(), c.since(), c.last()), (State::Up, t0, None));
        assert!(c.next_probe() < t0 + 2 * S);
        assert!(step(&mut c, bad()).1.is_none());
        assert!(step(&mut c, ok()).1.is_none(), "a success resets the count");
        assert!(step(&mut c, bad()).1.is_none());
        assert!(step(&mut c, bad()).1.is_none());
        let (at, t) = step(&mut c, bad());
        assert_eq!(t, Some(Transition { to: State::Down, at, reason: "HTTP 500".into() }));
        assert_eq!((c.state(), c.since(), c.last().unwrap().detail.as_str()), (State::Down, at, "HTTP 500"));
        assert!(step(&mut c, ok()).1.is_none());
        let (at2, t) = step(&mut c, ok());
        assert_eq!(t.map(|t| (t.to, t.at)), Some((State::Up, at2)));
        assert_eq!(c.since(), at2);
    }

    #[test]
    fn each_result_records_its_duration_and_counts() {
        let t0 = Instant::now();
        let mut c = ServerCheck::new(timing(), t0, 7);
        assert_eq!((c.last_duration(), c.probe_counts()), (None, (0, 0)));
        c.start_probe(t0);
        c.record(t0 + Duration::from_millis(30), ProbeResult::success("HTTP 200"));
        assert_eq!(c.last_duration(), Some(Duration::from_millis(30)));
        c.start_probe(t0 + S);
        c.record(t0 + S + Duration::from_millis(7), ProbeResult::failure("HTTP 500"));
        assert_eq!((c.last_duration(), c.probe_counts()), (Some(Duration::from_millis(7)), (1, 1)));
    }

    #[test]
    fn spacing_follows_state() {
        let t0 = Instant::now();
        let mut c = ServerCheck::new(timing(), t0, 1);
        let start = c.next_probe();
        step(&mut c, ok());
        assert!(near(c.next_probe() - start, 2 * S), "steady up: interval");
        let start = c.next_probe();
        step(&mut c, bad());
        assert!(near(c.next_probe() - start, S / 2), "changing: fastinter");
        step(&mut c, bad());
        let start = c.next_probe();
        step(&mut c, bad());
        assert_eq!(c.state(), State::Down);
        assert!(near(c.next_probe() - start, 10 * S), "down: downinter");
        let start = c.next_probe();
        step(&mut c, ok());
        assert!(near(c.next_probe() - start, S / 2), "rising: fastinter");
    }

    #[test]
    fn start_down_needs_rise() {
        let t0 = Instant::now();
        let mut c = ServerCheck::new(Timing { start_up: false, ..timing() }, t0, 3);
        assert_eq!(c.state(), State::Down);
        assert!(step(&mut c, ok()).1.is_none());
        assert_eq!(step(&mut c, ok()).1.unwrap().to, State::Up);
    }

    #[test]
    fn late_result_is_not_scheduled_in_the_past() {
        let t0 = Instant::now();
        let mut c = ServerCheck::new(timing(), t0, 0);
        let at = c.next_probe();
        c.start_probe(at);
        let late = at + 60 * S;
        c.record(late, ok());
        assert!(c.next_probe() >= late);
    }

    #[test]
    fn jitter_is_deterministic_and_spreads_1000_servers() {
        let t0 = Instant::now();
        let firsts: Vec<Duration> = (0..1000).map(|i| ServerCheck::new(timing(), t0, i).next_probe() - t0).collect();
        let again: Vec<Duration> = (0..1000).map(|i| ServerCheck::new(timing(), t0, i).next_probe() - t0).collect();
        assert_eq!(firsts, again);
        // 20 buckets of 100 ms over the 2 s interval: about 50 each, none empty or crowded.
        let mut buckets = [0u32; 20];
        for d in &firsts {
            assert!(*d < 2 * S);
            buckets[(d.as_millis() / 100) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (20..=90).contains(&n)), "{buckets:?}");
    }

    #[test]
    fn effect_of_state_agent_and_slowstart() {
        let t0 = Instant::now();
        let mut c = ServerCheck::new(timing(), t0, 0);
        let up = Effect { present: true, weight: 10, up: true };
        assert_eq!(effect(t0, 10, Some(&c), None, OnDown::Quiesce, None), up);
        assert_eq!(effect(t0, 10, None, None, OnDown::Quiesce, None), up, "no checks: configured weight");
        for _ in 0..3 {
            step(&mut c, bad());
        }
        let now = c.since();
        assert_eq!(
            effect(now, 10, Some(&c), None, OnDown::Quiesce, None),
            Effect { present: true, weight: 0, up: false }
        );
        assert!(!effect(now, 10, Some(&c), None, OnDown::Remove, None).present);
        // Recovery with a 10 s slowstart: a ramp from 1 to 10.
        step(&mut c, ok());
        step(&mut c, ok());
        let back = c.since();
        let ramp = Some(10 * S);
        assert_eq!(effect(back, 10, Some(&c), None, OnDown::Quiesce, ramp).weight, 1);
        assert_eq!(effect(back + 5 * S, 10, Some(&c), None, OnDown::Quiesce, ramp).weight, 5);
        assert_eq!(effect(back + 10 * S, 10, Some(&c), None, OnDown::Quiesce, ramp).weight, 10);
        // No ramp for a server that was up from the start.
        let mut fresh = ServerCheck::new(timing(), t0, 0);
        assert_eq!(effect(t0, 10, Some(&fresh), None, OnDown::Quiesce, ramp).weight, 10);
        let (at, _) = step(&mut fresh, ok());
        assert_eq!(effect(at, 10, Some(&fresh), None, OnDown::Quiesce, ramp).weight, 10);
        // But one that started down ramps when it first comes up.
        let mut cold = ServerCheck::new(Timing { start_up: false, ..timing() }, t0, 0);
        step(&mut cold, ok());
        let (at, _) = step(&mut cold, ok());
        assert_eq!(effect(at + 5 * S, 10, Some(&cold), None, OnDown::Quiesce, ramp).weight, 5);

        let mut a = AgentStatus::new(6 * S);
        a.record(t0, "50%");
        assert_eq!(effect(t0, 10, None, Some(&a), OnDown::Quiesce, None).weight, 5);
        a.record(t0, "drain");
        assert_eq!(
            effect(t0, 10, None, Some(&a), OnDown::Quiesce, None),
            Effect { present: true, weight: 0, up: true }
        );
        a.record(t0, "maint");
        assert_eq!(
            effect(t0, 10, None, Some(&a), OnDown::Remove, None),
            Effect { present: false, weight: 0, up: false }
        );
        a.record(t0, "down#disk full");
        assert!(!effect(t0, 10, None, Some(&a), OnDown::Quiesce, None).up);
        // Stale: the agent's word no longer counts.
        assert_eq!(effect(t0 + 7 * S, 10, None, Some(&a), OnDown::Quiesce, None), up);
    }

    #[test]
    fn admin_states_override_health() {
        let up = Effect { present: true, weight: 7, up: true };
        let down = Effect { present: true, weight: 0, up: false };
        assert_eq!(Admin::Ready.apply(up), up);
        assert_eq!(Admin::Drain.apply(up), Effect { present: true, weight: 0, up: true });
        assert_eq!(Admin::Drain.apply(down), down);
        let removed = Effect { present: false, weight: 0, up: false };
        assert_eq!(Admin::Drain.apply(removed), removed, "drain does not bring back a removed server");
        assert_eq!(Admin::Maint.apply(up), removed);
        for a in [Admin::Ready, Admin::Drain, Admin::Maint] {
            assert_eq!(Admin::parse(a.name()), Some(a));
        }
        assert_eq!(Admin::parse("Drain"), None);
        assert_eq!(Admin::parse(""), None);
        assert_eq!(Admin::default(), Admin::Ready);
    }

    #[test]
    fn backups_and_sorry_server_take_over() {
        let up = Effect { present: true, weight: 1, up: true };
        let down = Effect { present: true, weight: 0, up: false };
        assert_eq!(select(&[(up, false), (down, false), (up, true)]), Selection::Servers(vec![0]));
        assert_eq!(select(&[(down, false), (up, true), (up, true)]), Selection::Servers(vec![1, 2]));
        assert_eq!(select(&[(down, false), (down, true)]), Selection::Sorry);
        assert_eq!(select(&[]), Selection::Sorry);
    }
}
