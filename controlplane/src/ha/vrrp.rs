//! One VRRP instance (RFC 5798, and RFC 3768 for `version = 2`): a sans-IO state machine.
//!
//! No clock, socket or thread inside: the caller passes `now` to every method, hands
//! received adverts to [`Instance::receive`], wakes the instance at
//! [`Instance::next_deadline`] with [`Instance::poll`], and carries out the [`Action`]s it
//! drains with [`Instance::take_actions`] (send an advert, send gratuitous ARP, take or
//! give up the addresses, log a transition). The thread that does this is
//! [`super::run`]; tests drive the instance with a virtual clock.
//!
//! States: `init` (not started, or shut down), `backup`, `master`, and `fault` (tracking
//! says this node must not be master: a tracked port lost link, a worker stopped
//! polling, a tracked service has no healthy server). Behaviour follows RFC 5798 §6.4 with
//! keepalived's choices where the RFC leaves room:
//!
//! * **Timers.** Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time, with
//!   Skew_Time = ((256 − priority) × Master_Adver_Interval) / 256 in version 3; in
//!   version 2 the interval is the configured one (whole seconds) and Skew_Time =
//!   (256 − priority) / 256 s. A version 3 backup learns the master's interval from its
//!   adverts.
//! * **Preemption.** A backup accepts adverts of a master whose priority is at least its
//!   own (or any master when `preempt = false`), and otherwise lets its master-down timer
//!   run out and takes over. With `preempt_delay`, adverts of a lower-priority master are
//!   still accepted until that delay has passed since the first of them (keepalived's
//!   `preempt_delay`).
//! * **Priority 0.** A master that resigns (shutdown, step-down, fault) sends priority 0;
//!   a backup that receives it takes over after Skew_Time only; a master that receives it
//!   answers with an advert at once.
//! * **Split brain.** A master that hears a master of higher priority, or equal priority
//!   and a higher primary address (over IPv6 the link-local source, RFC 5798 §6.4.3),
//!   becomes backup at once. One that hears a lower one
//!   keeps the role, answers with an advert at once and sends gratuitous ARP again (at
//!   most once per [`SPLIT_BRAIN_GARP_GAP`]) so the network relearns the addresses
//!   without waiting for an ARP cache timeout.
//! * **Bad adverts.** An advert with a TTL (IPv6: hop limit) other than 255, another version or VRID, a
//!   bad checksum or type, a truncated address list, an authentication type other than
//!   0 (v2), another interval (v2, where the RFC requires equal intervals), another
//!   address set, or our own source address is dropped, counted by [`Invalid`] reason
//!   and never changes the state.
//! * **Step-down** ([`Instance::step_down`]): a master sends priority 0 and becomes
//!   backup; for the hold time it behaves as `preempt = false` (it does not take the
//!   role back from a lower-priority master) but it still takes over when no master is
//!   heard at all, so the addresses are never left without an owner.
//! * **Preemption held by sync.** While tracking's `hold_preempt` names a reason (a node
//!   with connection sync whose bulk resync from the current master has not completed),
//!   a backup behaves as `preempt = false` in the same way: it takes the role back only
//!   once the reason is gone, so no synced connection is lost in a failback.
//! * **Gratuitous ARP.** On becoming master: one burst of `garp_master_repeat` rounds for
//!   every address at once, another after `garp_master_delay` (keepalived's defaults:
//!   5 and 5 s).

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rvs_dataplane::wire::vrrp::{Family, VrrpError, VrrpPacket, VrrpRepr};
use serde::Serialize;

/// Shortest time between two gratuitous ARP rounds caused by hearing a lower-priority
/// master (split brain).
pub const SPLIT_BRAIN_GARP_GAP: Duration = Duration::from_secs(1);

/// What an instance is configured with (from `[[ha.instance]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Virtual router identifier, 1..=255.
    pub vrid: u8,
    /// VRRP version: 3 or 2.
    pub version: u8,
    /// Configured priority, 1..=254.
    pub priority: u8,
    /// Advert interval (centisecond resolution; whole seconds in version 2).
    pub advert_interval: Duration,
    /// Whether a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// How long a lower-priority master is tolerated before preempting it.
    pub preempt_delay: Duration,
    /// The addresses that move with the instance, in configuration order.
    pub addresses: Vec<IpAddr>,
    /// This node's primary address on the instance's port: the adverts' source, and the
    /// tie-breaker between equal priorities.
    pub primary: IpAddr,
    /// Rounds of gratuitous ARP in each burst.
    pub garp_repeat: u32,
    /// Time between the first and the second burst (zero: no second burst).
    pub garp_delay: Duration,
}

impl InstanceConfig {
    /// The advert interval in centiseconds, as adverts carry it.
    pub fn interval_cs(&self) -> u16 {
        u16::try_from(self.advert_interval.as_millis() / 10).unwrap_or(u16::MAX)
    }
}

/// A VRRP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not started, or shut down.
    Init,
    /// Listening to a master; takes over when it goes silent.
    Backup,
    /// Owns the addresses and sends adverts.
    Master,
    /// Tracking forbids mastership (port link, worker watchdog, tracked service).
    Fault,
}

impl State {
    /// The name used in logs, JSON and `notify`'s `RVS_VRRP_STATE`.
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }

    /// The value of the `rvs_vrrp_state` gauge: 0 init, 1 backup, 2 master, 3 fault.
    pub fn gauge(self) -> u8 {
        match self {
            State::Init => 0,
            State::Backup => 1,
            State::Master => 2,
            State::Fault => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a received advert was dropped. The name is the `reason` label of
/// `rvs_vrrp_adverts_invalid_total` and the key in `/v1/ha`'s `invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invalid {
    /// IP TTL other than 255 (the advert crossed a router).
    Ttl,
    /// VRRP version other than the instance's (or neither 2 nor 3).
    Version,
    /// Another VRID than the instance's.
    Vrid,
    /// VRRP type other than advertisement.
    Type,
    /// The checksum does not verify.
    Checksum,
    /// Shorter than the header, or than the address list its count announces.
    Truncated,
    /// Version 2 authentication type other than 0 (none).
    Auth,
    /// Version 2 advert interval other than ours (RFC 3768 requires them equal).
    Interval,
    /// The address list differs from the instance's addresses.
    Addresses,
    /// Sent from this node's own primary address.
    OwnAddress,
}

impl Invalid {
    /// Every reason, in label order.
    pub const ALL: [Invalid; 10] = [
        Invalid::Ttl,
        Invalid::Version,
        Invalid::Vrid,
        Invalid::Type,
        Invalid::Checksum,
        Invalid::Truncated,
        Invalid::Auth,
        Invalid::Interval,
        Invalid::Addresses,
        Invalid::OwnAddress,
    ];

    /// The label.
    pub fn name(self) -> &'static str {
        match self {
            Invalid::Ttl => "ttl",
            Invalid::Version => "version",
            Invalid::Vrid => "vrid",
            Invalid::Type => "type",
            Invalid::Checksum => "checksum",
            Invalid::Truncated => "truncated",
            Invalid::Auth => "auth",
            Invalid::Interval => "interval",
            Invalid::Addresses => "addresses",
            Invalid::OwnAddress => "own_address",
        }
    }

    fn index(self) -> usize {
        Invalid::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl From<VrrpError> for Invalid {
    fn from(e: VrrpError) -> Self {
        match e {
            VrrpError::Truncated | VrrpError::TruncatedAddresses => Invalid::Truncated,
            VrrpError::BadVersion | VrrpError::V2OverIpv6 => Invalid::Version,
            VrrpError::BadType => Invalid::Type,
        }
    }
}

/// What the instance asks its shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (0: resigning).
    Advert {
        /// The priority to advertise.
        priority: u8,
    },
    /// Send gratuitous ARP for every address, this many rounds back to back.
    Garp {
        /// Rounds.
        rounds: u32,
    },
    /// Answer for the addresses (true) or stop answering (false).
    Role {
        /// Whether this node is master.
        master: bool,
    },
    /// The state changed: log it, run `notify`.
    Transition(Transition),
}

/// A state change and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why, in words.
    pub reason: String,
}

/// What tracking says about an instance (computed by the shell each turn).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracking {
    /// Why the instance must be in fault, if it must.
    pub fault: Option<String>,
    /// How much to take off the configured priority (tracked services with a weight).
    pub decrement: u8,
    /// Why this node must not preempt now, if it must not (connection sync not yet in
    /// sync with the current master).
    pub hold_preempt: Option<String>,
}

/// An instance's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Adverts sent (including priority 0).
    pub adverts_sent: u64,
    /// Valid adverts received.
    pub adverts_received: u64,
    /// Adverts dropped, by [`Invalid`] reason (indexed like [`Invalid::ALL`]).
    pub invalid: [u64; Invalid::ALL.len()],
    /// State changes.
    pub transitions: u64,
    /// Priority 0 adverts received.
    pub priority_zero_received: u64,
}

impl Counters {
    /// Dropped adverts of `reason`.
    pub fn invalid(&self, reason: Invalid) -> u64 {
        self.invalid[reason.index()]
    }
}

/// One VRRP instance.
#[derive(Debug)]
pub struct Instance {
    config: InstanceConfig,
    state: State,
    tracking: Tracking,
    /// The master's interval as last learnt (v3), else ours.
    master_interval: Duration,
    /// Backup: when the master is declared down.
    master_down_at: Option<Instant>,
    /// Master: when the next advert is due.
    advert_at: Option<Instant>,
    /// Master: when the second gratuitous ARP burst is due.
    garp_at: Option<Instant>,
    /// Last split-brain gratuitous ARP.
    split_garp_at: Option<Instant>,
    /// Backup: when adverts of a lower-priority master stop being tolerated.
    preempt_at: Option<Instant>,
    /// After a step-down: no preemption until then.
    hold_until: Option<Instant>,
    /// The current master's address and priority, as last heard (ourselves when master).
    master: Option<(IpAddr, u8)>,
    last_transition: Option<(Instant, String)>,
    counters: Counters,
    out: VecDeque<Action>,
}

impl Instance {
    /// A new instance in `init`, not yet started.
    pub fn new(config: InstanceConfig) -> Self {
        Instance {
            master_interval: config.advert_interval,
            config,
            state: State::Init,
            tracking: Tracking::default(),
            master_down_at: None,
            advert_at: None,
            garp_at: None,
            split_garp_at: None,
            preempt_at: None,
            hold_until: None,
            master: None,
            last_transition: None,
            counters: Counters::default(),
            out: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The master's address and priority as last heard (this node's own when master).
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        self.master
    }

    /// When the state last changed and why.
    pub fn last_transition(&self) -> Option<&(Instant, String)> {
        self.last_transition.as_ref()
    }

    /// The priority in effect: the configured one less tracking's decrement, at least 1.
    pub fn effective_priority(&self) -> u8 {
        self.config.priority.saturating_sub(self.tracking.decrement).max(1)
    }

    /// Master_Down_Interval for the current master interval and our priority.
    pub fn master_down_interval(&self) -> Duration {
        self.master_interval * 3 + self.skew()
    }

    /// Skew_Time: v3 scales with the master's interval, v2 is a fraction of a second.
    pub fn skew(&self) -> Duration {
        let weight = 256 - u32::from(self.effective_priority());
        if self.config.version == 2 {
            Duration::from_secs(1) * weight / 256
        } else {
            self.master_interval * weight / 256
        }
    }

    /// Starts the instance: `backup` with the master-down timer running (RFC 5798 §6.4.1;
    /// rvs never owns its addresses, so never starts as master), or `fault` if tracking
    /// already says so.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Init {
            return;
        }
        match self.tracking.fault.clone() {
            Some(why) => self.enter(now, State::Fault, why),
            None => self.enter_backup(now, "started".into()),
        }
    }

    /// Applies tracking: enters or leaves `fault`, and adopts the new effective priority
    /// (a master's next advert carries it).
    pub fn set_tracking(&mut self, now: Instant, tracking: Tracking) {
        let was = std::mem::replace(&mut self.tracking, tracking);
        match (self.tracking.fault.clone(), self.state) {
            (Some(why), State::Master | State::Backup) => {
                if self.state == State::Master {
                    self.resign();
                }
                self.enter(now, State::Fault, why);
            }
            (None, State::Fault) => self.enter_backup(now, "tracking recovered".into()),
            _ => {}
        }
        if was.decrement != self.tracking.decrement && self.state == State::Master {
            self.master = Some((self.config.primary, self.effective_priority()));
        }
    }

    /// The earliest time [`Instance::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.master_down_at, self.advert_at, self.garp_at].into_iter().flatten().min()
    }

    /// Runs the timers that are due at `now`.
    pub fn poll(&mut self, now: Instant) {
        match self.state {
            State::Backup => {
                if self.master_down_at.is_some_and(|t| t <= now) {
                    let why = match self.master {
                        Some((addr, _)) => format!(
                            "no advert from master {addr} for {} (master down interval)",
                            humantime::format_duration(self.master_down_interval())
                        ),
                        None => format!(
                            "no master heard for {} (master down interval)",
                            humantime::format_duration(self.master_down_interval())
                        ),
                    };
                    self.enter_master(now, why);
                }
            }
            State::Master => {
                if self.advert_at.is_some_and(|t| t <= now) {
                    self.advertise(now);
                }
                if self.garp_at.is_some_and(|t| t <= now) {
                    self.garp_at = None;
                    self.out.push_back(Action::Garp { rounds: self.config.garp_repeat });
                }
            }
            State::Init | State::Fault => {}
        }
    }

    /// Judges a received advert: `src`, `dst` and `ttl` (the hop limit over IPv6) from its
    /// IP header, `payload` the VRRP message. A valid one drives the state machine; an invalid one is counted and
    /// changes nothing.
    pub fn receive(&mut self, now: Instant, src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) -> Result<(), Invalid> {
        let r = self.check(src, dst, ttl, payload);
        match r {
            Ok(repr) => {
                self.counters.adverts_received += 1;
                self.on_advert(now, src, &repr);
                Ok(())
            }
            Err(reason) => {
                self.counters.invalid[reason.index()] += 1;
                Err(reason)
            }
        }
    }

    fn check(&self, src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) -> Result<VrrpRepr, Invalid> {
        if ttl != 255 {
            return Err(Invalid::Ttl);
        }
        let p = VrrpPacket::new_checked(payload, Family::of(&src))?;
        if p.version() != self.config.version {
            return Err(Invalid::Version);
        }
        if p.vrid() != self.config.vrid {
            return Err(Invalid::Vrid);
        }
        if !p.verify_checksum(src, dst) {
            return Err(Invalid::Checksum);
        }
        if p.auth_type() != 0 {
            return Err(Invalid::Auth);
        }
        if self.config.version == 2 && p.interval_cs() != self.config.interval_cs() / 100 * 100 {
            return Err(Invalid::Interval);
        }
        if src == self.config.primary {
            return Err(Invalid::OwnAddress);
        }
        let repr = VrrpRepr::parse(&p);
        let mut theirs = repr.addresses.clone();
        let mut ours = self.config.addresses.clone();
        theirs.sort();
        theirs.dedup();
        ours.sort();
        if theirs != ours {
            return Err(Invalid::Addresses);
        }
        Ok(repr)
    }

    fn on_advert(&mut self, now: Instant, src: IpAddr, adv: &VrrpRepr) {
        let ours = self.effective_priority();
        if adv.priority == 0 {
            self.counters.priority_zero_received += 1;
        }
        match self.state {
            State::Backup => {
                if adv.priority == 0 {
                    // The master resigns: take over after Skew_Time only.
                    self.master_down_at = Some(now + self.skew());
                    return;
                }
                let held = self.hold_until.is_some_and(|t| now < t) || self.tracking.hold_preempt.is_some();
                let lower = adv.priority < ours;
                let tolerated = if lower && self.config.preempt && !held {
                    let at = *self.preempt_at.get_or_insert(now + self.config.preempt_delay);
                    now < at
                } else {
                    true
                };
                if !lower {
                    self.preempt_at = None;
                }
                if tolerated {
                    if self.config.version == 3 && adv.interval_cs > 0 {
                        self.master_interval = Duration::from_millis(u64::from(adv.interval_cs) * 10);
                    }
                    self.master = Some((src, adv.priority));
                    self.master_down_at = Some(now + self.master_down_interval());
                }
                // Otherwise: a lower-priority master and preemption allowed; the
                // master-down timer runs out and this node takes over.
            }
            State::Master => {
                if adv.priority == 0 {
                    self.advertise(now);
                    return;
                }
                let wins = adv.priority > ours || (adv.priority == ours && addr_gt(src, self.config.primary));
                if wins {
                    if self.config.version == 3 && adv.interval_cs > 0 {
                        self.master_interval = Duration::from_millis(u64::from(adv.interval_cs) * 10);
                    }
                    self.master = Some((src, adv.priority));
                    let why = if adv.priority > ours {
                        format!("master {src} has higher priority {} than our {ours}", adv.priority)
                    } else {
                        format!(
                            "master {src} has equal priority {ours} and a higher address than our {}",
                            self.config.primary
                        )
                    };
                    self.leave_master();
                    self.master_down_at = Some(now + self.master_down_interval());
                    self.enter(now, State::Backup, why);
                } else {
                    // Split brain, and we win: assert ourselves at once.
                    self.advertise(now);
                    if self.split_garp_at.is_none_or(|t| now >= t + SPLIT_BRAIN_GARP_GAP) {
                        self.split_garp_at = Some(now);
                        self.out.push_back(Action::Garp { rounds: 1 });
                    }
                }
            }
            State::Init | State::Fault => {}
        }
    }

    /// A master resigns for maintenance: sends priority 0, becomes backup, and does not
    /// preempt for `hold` (see the module docs). False (nothing done) unless master.
    pub fn step_down(&mut self, now: Instant, hold: Duration) -> bool {
        if self.state != State::Master {
            return false;
        }
        self.resign();
        self.hold_until = Some(now + hold);
        self.enter_backup(now, format!("step-down requested (no preemption for {})", humantime::format_duration(hold)));
        true
    }

    /// Shutdown: a master sends priority 0 so the backup takes over after its skew time;
    /// every state ends in `init` with the addresses given up.
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            State::Init => return,
            State::Master => self.resign(),
            State::Backup | State::Fault => {}
        }
        self.enter(now, State::Init, "shutting down".into());
    }

    /// Drains the actions queued so far, in order.
    pub fn take_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.out.drain(..)
    }

    /// Sends priority 0 and gives up the addresses.
    fn resign(&mut self) {
        self.counters.adverts_sent += 1;
        self.out.push_back(Action::Advert { priority: 0 });
        self.leave_master();
    }

    fn leave_master(&mut self) {
        self.out.push_back(Action::Role { master: false });
        self.advert_at = None;
        self.garp_at = None;
    }

    fn advertise(&mut self, now: Instant) {
        self.counters.adverts_sent += 1;
        self.out.push_back(Action::Advert { priority: self.effective_priority() });
        self.advert_at = Some(now + self.config.advert_interval);
    }

    fn enter_master(&mut self, now: Instant, why: String) {
        self.master_down_at = None;
        self.preempt_at = None;
        self.master_interval = self.config.advert_interval;
        self.master = Some((self.config.primary, self.effective_priority()));
        self.enter(now, State::Master, why);
        self.advertise(now);
        self.out.push_back(Action::Role { master: true });
        self.out.push_back(Action::Garp { rounds: self.config.garp_repeat });
        // garp_master_delay = 0: one burst only.
        self.garp_at = (!self.config.garp_delay.is_zero()).then(|| now + self.config.garp_delay);
    }

    fn enter_backup(&mut self, now: Instant, why: String) {
        self.master_interval = self.config.advert_interval;
        self.preempt_at = None;
        self.master = None;
        self.enter(now, State::Backup, why);
        self.master_down_at = Some(now + self.master_down_interval());
    }

    fn enter(&mut self, now: Instant, to: State, reason: String) {
        let from = self.state;
        if to != State::Backup {
            self.master_down_at = None;
        }
        if to != State::Master {
            self.advert_at = None;
            self.garp_at = None;
        }
        if matches!(to, State::Fault | State::Init) {
            self.master = None;
        }
        self.state = to;
        self.counters.transitions += 1;
        self.last_transition = Some((now, reason.clone()));
        self.out.push_back(Action::Transition(Transition { from, to, reason }));
    }
}

/// RFC 5798's comparison of primary addresses, as unsigned integers in network order.
fn addr_gt(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        (a, b) => a > b,
    }
}

#[cfg(test)]
mod tests;
