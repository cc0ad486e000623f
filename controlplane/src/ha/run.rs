//! The HA thread: the thin I/O shell around the VRRP [`Instance`]s.
//!
//! One std thread owns the instances, the control plane's end of the HA rings
//! ([`HaEnd`]) and the roles the workers read ([`HaRoles`]). Each turn it:
//!
//! 1. computes each instance's tracking ([`Environment`]): its own port's link and its
//!    `track_ports`' (link down → fault), the workers' poll counters (`track_workers`: a
//!    counter that has not moved for [`WORKER_STALL`] → fault), the tracked services
//!    (no server up → fault, or the priority lowered by `track_service_weight` each);
//! 2. hands every received VRRP packet to the instance of its port and VRID (others are
//!    counted as `adverts_unknown_vrid`), runs the instances' timers, and carries out
//!    their actions: adverts, gratuitous ARP and unsolicited neighbour advertisement
//!    (IPv6 addresses) frames are queued for worker 0
//!    ([`HaEnd::send_frame`]), roles are applied ([`HaRoles::set_master`]), every
//!    transition is logged with its reason and runs the instance's `notify` command;
//! 3. answers step-down requests from the REST API and publishes [`HaStatus`];
//! 4. sleeps until the next deadline, at most [`MAX_SLEEP`] (received adverts are not
//!    signalled, so they wait at most that long).
//!
//! At shutdown ([`Shell::shutdown`]) every master sends priority 0 and gives its
//! addresses up; the daemon stops the workers only after that, so worker 0 sends them.
//!
//! IPv6 addresses of an instance (IPv6 VIPs, Full-NAT local and floating addresses) move
//! with its role as IPv4 ones do. An instance with an IPv4 address speaks VRRP over IPv4
//! from the port's IPv4 address, and its adverts carry and compare the IPv4 addresses only
//! (keepalived's `virtual_ipaddress_excluded`: a VRRP packet carries addresses of its own
//! family). An instance whose addresses are all IPv6 speaks VRRPv3 over IPv6 (RFC 5798
//! §5.1.2): from the port's link-local address (its primary address, which also breaks
//! priority ties) to ff02::12, carrying its IPv6 addresses in configuration order, after
//! its `virtual_link_local` address when it has one: RFC 5798 §5.2.9 wants the first
//! address of an IPv6 advert to be the virtual router's link-local address, and
//! keepalived in `vrrp_strict` mode requires its own first `virtual_ipaddress` to be
//! link-local ("the first IPv6 VIP address must be link local"), so a strict peer lists
//! it and compares the whole list. Without one the list is the configured addresses
//! (keepalived without `vrrp_strict` only logs "should be link local"); rvsd warns at
//! start. The virtual link-local address moves with the role like a floating address on
//! the instance's port ([`HaRoles::with_link_local`]). IPv4 and IPv6 adverts are told apart
//! by the IP version; an advert is judged by the instance of its port, VRID and family, so
//! one VRID may serve an IPv4 and an IPv6 instance of a port (keepalived allows it), and
//! step-down, the status and the metrics name the family with the VRID. On takeover each
//! IPv6 address gets an unsolicited neighbour advertisement, on the ports whose IPv6
//! prefix holds it (the virtual link-local address on the instance's port), where the
//! IPv4 ones get gratuitous ARP.
//!
//! `notify` runs the instance's program with `RVS_VRRP_VRID`, `RVS_VRRP_FAMILY` (`ipv4` or
//! `ipv6`, the adverts'), `RVS_VRRP_STATE` (the new
//! state), `RVS_VRRP_PREVIOUS`, `RVS_VRRP_PRIORITY` (effective) and `RVS_VRRP_REASON` in
//! its environment; rvsd does not wait for it (exited children are reaped each turn).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use rvs_dataplane::ha::{HaEnd, HaGroup, HaRoles, HaRolesError, IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6};
use rvs_dataplane::l2l3::nd::link_local;
use rvs_dataplane::types::PortId;
use rvs_dataplane::wire::vrrp::Family;
use rvs_dataplane::wire::{Ipv4Packet, Ipv6Packet, MacAddr, VrrpRepr};

use super::frames::{advert_frame, garp_frame, na_frame};
use super::view::{HaStatus, InstanceStatus};
use super::vrrp::{Action, Instance, InstanceConfig, Invalid, State, Tracking};
use crate::config::{AdvertFamily, Config, HaInstance, TrackEffect};
use crate::watchdog::PollWatchdog;

/// Longest sleep between turns: the latency a received advert may wait.
pub const MAX_SLEEP: Duration = Duration::from_millis(5);

/// A worker whose poll counter has not moved for this long is stalled (`track_workers`);
/// the same threshold as the status's watchdog.
pub use crate::watchdog::WORKER_STALL;

/// Dropped adverts are logged at most this often per instance and reason.
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Default hold time of `POST /v1/ha/{vrid}/step-down`.
pub const DEFAULT_STEP_DOWN_HOLD: Duration = Duration::from_secs(300);

/// How often the HA board is refreshed when nothing changed (counters, `since`).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// How long the daemon lets worker 0 send the shutdown adverts before stopping it.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(50);

/// What `/v1/ha` and `/v1/status` read, written by the HA thread each turn.
pub type HaBoard = Arc<Mutex<HaStatus>>;

/// What tracking reads from the running daemon (ports, workers, health).
pub trait Environment {
    /// Whether port `port` (index in [`Config::ports`]) has link.
    fn link_up(&self, port: usize) -> bool;
    /// Every worker's poll counter, by worker index.
    fn worker_polls(&self) -> Vec<u64>;
    /// Whether the service has health-checked servers and none of them is up.
    fn service_down(&self, service: crate::config::ServiceKey) -> bool;
    /// Why preemption must wait (connection sync not yet in sync), if it must.
    fn sync_hold(&self) -> Option<String> {
        None
    }
}

/// One port as the HA thread needs it: name, MAC (the NIC's or the configured one), and
/// its address with prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPort {
    /// Configured name.
    pub name: String,
    /// The MAC frames are sent from.
    pub mac: MacAddr,
    /// Own address and connected prefix.
    pub net: Ipv4Net,
}

/// Why a step-down was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepDownError {
    /// No instance has this VRID.
    #[error("no [[ha.instance]] has vrid {0}")]
    NoSuchVrid(u8),
    /// No instance has this VRID with adverts of this family.
    #[error("no [[ha.instance]] of vrid {0} speaks VRRP over {1}")]
    NoSuchFamily(u8, AdvertFamily),
    /// Two instances (one per family) have this VRID and the request named no family.
    #[error("vrid {0} has an IPv4 and an IPv6 instance; name one with ?family=ipv4 or ?family=ipv6")]
    Ambiguous(u8),
    /// The instance is not master, so there is nothing to step down from.
    #[error("instance vrid {vrid} is {state}, not master; only a master steps down")]
    NotMaster {
        /// The VRID.
        vrid: u8,
        /// Its state.
        state: String,
    },
    /// The HA thread did not answer.
    #[error("the HA thread did not answer")]
    Unavailable,
}

/// A step-down request from the REST API: VRID, advert family (`None`: the VRID's only
/// instance), hold time, where to answer.
pub type StepDown =
    (u8, Option<AdvertFamily>, Duration, tokio::sync::oneshot::Sender<Result<InstanceStatus, StepDownError>>);

/// The REST API's end: the board and the request queue.
#[derive(Debug)]
pub struct HaHandle {
    /// The published status.
    pub board: HaBoard,
    /// Step-down requests to the HA thread.
    pub requests: Mutex<mpsc::Sender<StepDown>>,
}

impl HaHandle {
    /// Asks the HA thread to step instance `vrid` (of adverts of `family`, needed only
    /// when the VRID has an instance of each) down and waits for its answer.
    pub async fn step_down(
        &self,
        vrid: u8,
        family: Option<AdvertFamily>,
        hold: Duration,
    ) -> Result<InstanceStatus, StepDownError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.requests.lock().unwrap_or_else(|p| p.into_inner()).send((vrid, family, hold, tx)).is_ok();
        if !sent {
            return Err(StepDownError::Unavailable);
        }
        match tokio::time::timeout(Duration::from_secs(2), rx).await {
            Ok(Ok(r)) => r,
            _ => Err(StepDownError::Unavailable),
        }
    }

    /// The status now.
    pub fn status(&self) -> HaStatus {
        self.board.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The roles the workers obey: one group per instance (its index), holding its addresses
/// and its virtual link-local address (on the instance's port). `None` without `[ha]`.
pub fn roles(config: &Config) -> Result<Option<Arc<HaRoles>>, HaRolesError> {
    let Some(ha) = &config.ha else { return Ok(None) };
    let addrs = ha
        .instances
        .iter()
        .enumerate()
        .flat_map(|(i, inst)| inst.addresses.iter().map(move |a| (*a, HaGroup(i as u16))));
    let mut roles = HaRoles::new(ha.instances.len(), addrs)?;
    for (i, inst) in ha.instances.iter().enumerate() {
        if let Some(ll) = inst.virtual_link_local {
            roles = roles.with_link_local(ll, PortId(inst.port as u16), HaGroup(i as u16))?;
        }
    }
    Ok(Some(Arc::new(roles)))
}

struct Slot {
    inst: Instance,
    cfg: HaInstance,
    /// Where each address is announced: (port, address).
    garp: Vec<(usize, Ipv4Addr)>,
    /// Where each IPv6 address is announced: (port, address), on the ports whose
    /// `ipv6_addresses` prefix holds it.
    na: Vec<(usize, Ipv6Addr)>,
}

/// The instances with their I/O (see the module docs).
pub struct Shell {
    slots: Vec<Slot>,
    ports: Vec<HaPort>,
    end: HaEnd,
    roles: Arc<HaRoles>,
    watchdog: PollWatchdog,
    unknown_vrid: u64,
    malformed: u64,
    /// When a drop was last logged, by instance index and reason.
    drop_logged: HashMap<(usize, Invalid), Option<Instant>>,
    ident: u16,
    children: Vec<Child>,
    wall: SystemTime,
    epoch: Instant,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell").field("instances", &self.slots.len()).finish_non_exhaustive()
    }
}

impl Shell {
    /// The instances of `config`'s `[ha]` (none without it), sending from `ports`
    /// (indexed like [`Config::ports`]).
    pub fn new(config: &Config, ports: Vec<HaPort>, end: HaEnd, roles: Arc<HaRoles>, now: Instant) -> Shell {
        let instances = config.ha.as_ref().map(|h| h.instances.clone()).unwrap_or_default();
        let slots = instances
            .into_iter()
            .map(|cfg| {
                // VRRP over IPv6 for an instance of IPv6 addresses only, from the port's
                // link-local address; else over IPv4 from the port's address.
                let over_ipv6 = !cfg.addresses.iter().any(IpAddr::is_ipv4);
                let primary = match ports.get(cfg.port) {
                    Some(p) if over_ipv6 => IpAddr::V6(link_local(p.mac)),
                    Some(p) => IpAddr::V4(p.net.addr()),
                    None if over_ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                };
                let garp = cfg
                    .addresses
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(v4) => Some(*v4),
                        IpAddr::V6(_) => None,
                    })
                    .flat_map(|a| {
                        // On the port whose prefix holds it; a VIP on no prefix is answered
                        // on every port, so it is announced on every port.
                        let on: Vec<usize> = match ports.iter().position(|p| p.net.contains(&a)) {
                            Some(k) => vec![k],
                            None => (0..ports.len()).collect(),
                        };
                        on.into_iter().map(move |k| (k, a))
                    })
                    .collect();
                // The virtual link-local address first, on the instance's port.
                let na = cfg
                    .virtual_link_local
                    .map(|ll| (cfg.port, ll))
                    .into_iter()
                    .chain(
                        cfg.addresses
                            .iter()
                            .filter_map(|a| match a {
                                IpAddr::V6(v6) => Some(*v6),
                                IpAddr::V4(_) => None,
                            })
                            .flat_map(|a| {
                                config
                                    .ports
                                    .iter()
                                    .enumerate()
                                    .filter(move |(_, p)| p.ipv6_addresses.iter().any(|n| n.contains(&a)))
                                    .map(move |(k, _)| (k, a))
                            }),
                    )
                    .collect();
                if over_ipv6 && cfg.virtual_link_local.is_none() {
                    tracing::warn!(
                        vrid = cfg.vrid,
                        "VRRP over IPv6 without virtual_link_local: the adverts' first address is not link-local \
                         (RFC 5798 §5.2.9), which keepalived peers in vrrp_strict mode refuse; set \
                         ha.instance.virtual_link_local (and list it first in the peer's virtual_ipaddress)"
                    );
                }
                let ic = InstanceConfig {
                    vrid: cfg.vrid,
                    version: cfg.version,
                    priority: cfg.priority,
                    advert_interval: cfg.advert_interval,
                    preempt: cfg.preempt,
                    preempt_delay: cfg.preempt_delay,
                    // The adverts' addresses: the virtual link-local address, then those
                    // of the adverts' family (see the module docs).
                    addresses: cfg
                        .virtual_link_local
                        .map(IpAddr::V6)
                        .into_iter()
                        .chain(cfg.addresses.iter().copied())
                        .filter(|a| Family::of(a) == Family::of(&primary))
                        .collect(),
                    primary,
                    garp_repeat: cfg.garp_master_repeat,
                    garp_delay: cfg.garp_master_delay,
                };
                Slot { inst: Instance::new(ic), cfg, garp, na }
            })
            .collect();
        Shell {
            slots,
            ports,
            end,
            roles,
            watchdog: PollWatchdog::new(WORKER_STALL),
            unknown_vrid: 0,
            malformed: 0,
            drop_logged: HashMap::new(),
            ident: 0,
            children: Vec::new(),
            wall: SystemTime::now(),
            epoch: now,
        }
    }

    /// The instances' states, in configuration order.
    pub fn states(&self) -> Vec<State> {
        self.slots.iter().map(|s| s.inst.state()).collect()
    }

    /// One turn at `now`: tracking, adverts in, timers, actions out.
    pub fn turn(&mut self, now: Instant, env: &dyn Environment) {
        self.track(now, env);
        for s in &mut self.slots {
            s.inst.start(now);
        }
        while let Some((port, packet)) = self.end.recv() {
            self.receive(now, port, &packet);
        }
        for s in &mut self.slots {
            s.inst.poll(now);
        }
        self.act();
        self.children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    fn track(&mut self, now: Instant, env: &dyn Environment) {
        let hold = env.sync_hold();
        let stalled = PollWatchdog::first_stalled(&self.watchdog.observe(now, &env.worker_polls())).map(|(w, _)| w);
        for s in &mut self.slots {
            let mut fault = None;
            let mut decrement: u32 = 0;
            let port_name = |k: usize| self.ports.get(k).map_or_else(|| format!("#{k}"), |p| p.name.clone());
            for k in std::iter::once(s.cfg.port).chain(s.cfg.track_ports.iter().copied()) {
                if fault.is_none() && !env.link_up(k) {
                    fault = Some(format!("port `{}` has no link", port_name(k)));
                }
            }
            if fault.is_none() && s.cfg.track_workers {
                if let Some(w) = stalled {
                    fault = Some(format!(
                        "worker {w} stopped polling (no poll for {})",
                        humantime::format_duration(WORKER_STALL)
                    ));
                }
            }
            for key in &s.cfg.track_services {
                if env.service_down(*key) {
                    match s.cfg.track_effect {
                        TrackEffect::Fault if fault.is_none() => {
                            fault = Some(format!("tracked service {key} has no server up"));
                        }
                        TrackEffect::Fault => {}
                        TrackEffect::Weight(w) => decrement += u32::from(w),
                    }
                }
            }
            let decrement = u8::try_from(decrement).unwrap_or(u8::MAX);
            s.inst.set_tracking(now, Tracking { fault, decrement, hold_preempt: hold.clone() });
        }
    }

    fn receive(&mut self, now: Instant, port: PortId, packet: &[u8]) {
        let Some((src, dst, ttl, payload)) = vrrp_packet(packet) else {
            self.malformed += 1;
            return;
        };
        let vrid = payload.get(1).copied();
        let family = Family::of(&src);
        let slot = self.slots.iter().position(|s| {
            usize::from(port.0) == s.cfg.port
                && Some(s.cfg.vrid) == vrid
                && Family::of(&s.inst.config().primary) == family
        });
        let Some(i) = slot else {
            self.unknown_vrid += 1;
            return;
        };
        let s = &mut self.slots[i];
        if let Err(reason) = s.inst.receive(now, src, dst, ttl, payload) {
            // Every drop is counted; the log says so at most once per DROP_LOG_EVERY per
            // instance and reason (a misconfigured peer sends ten adverts a second).
            let (vrid, family) = (s.cfg.vrid, s.cfg.family().name());
            let last = self.drop_logged.entry((i, reason)).or_insert(None);
            if last.is_none_or(|t| now.saturating_duration_since(t) >= DROP_LOG_EVERY) {
                *last = Some(now);
                tracing::warn!(vrid, family, from = %src, reason = reason.name(), "VRRP: advert dropped (counted in /v1/ha `invalid`)");
            }
        }
    }

    fn act(&mut self) {
        for i in 0..self.slots.len() {
            let actions: Vec<Action> = self.slots[i].inst.take_actions().collect();
            for a in actions {
                match a {
                    Action::Advert { priority } => self.send_advert(i, priority),
                    Action::Garp { rounds } => self.send_garp(i, rounds),
                    Action::Role { master } => self.roles.set_master(HaGroup(i as u16), master),
                    Action::Transition(t) => {
                        let s = &self.slots[i];
                        let (vrid, port) = (s.cfg.vrid, self.ports.get(s.cfg.port).map_or("", |p| p.name.as_str()));
                        let family = s.cfg.family().name();
                        if t.to == State::Master || t.from == State::Master || t.to == State::Fault {
                            tracing::warn!(vrid, family, port, from = %t.from, to = %t.to, reason = %t.reason, "VRRP: now {}", t.to);
                        } else {
                            tracing::info!(vrid, family, port, from = %t.from, to = %t.to, reason = %t.reason, "VRRP: now {}", t.to);
                        }
                        self.notify(i, t.from, t.to, &t.reason);
                    }
                }
            }
        }
    }

    fn send_advert(&mut self, i: usize, priority: u8) {
        let s = &self.slots[i];
        let Some(port) = self.ports.get(s.cfg.port) else { return };
        let c = s.inst.config();
        let repr = VrrpRepr {
            version: c.version,
            vrid: c.vrid,
            priority,
            interval_cs: c.interval_cs(),
            addresses: c.addresses.clone(),
        };
        self.ident = self.ident.wrapping_add(1);
        if let Some(frame) = advert_frame(port.mac, c.primary, &repr, self.ident) {
            self.end.send_frame(PortId(s.cfg.port as u16), &frame);
        }
    }

    fn send_garp(&mut self, i: usize, rounds: u32) {
        for _ in 0..rounds {
            for k in 0..self.slots[i].garp.len() {
                let (port, addr) = self.slots[i].garp[k];
                if let Some(p) = self.ports.get(port) {
                    let frame = garp_frame(p.mac, addr);
                    self.end.send_frame(PortId(port as u16), &frame);
                }
            }
            for k in 0..self.slots[i].na.len() {
                let (port, addr) = self.slots[i].na[k];
                if let Some(p) = self.ports.get(port) {
                    self.end.send_frame(PortId(port as u16), &na_frame(p.mac, addr));
                }
            }
        }
    }

    fn notify(&mut self, i: usize, from: State, to: State, reason: &str) {
        let s = &self.slots[i];
        let Some((program, args)) = s.cfg.notify.split_first() else { return };
        let spawned = Command::new(program)
            .args(args)
            .env("RVS_VRRP_VRID", s.cfg.vrid.to_string())
            .env("RVS_VRRP_FAMILY", s.cfg.family().name())
            .env("RVS_VRRP_STATE", to.name())
            .env("RVS_VRRP_PREVIOUS", from.name())
            .env("RVS_VRRP_PRIORITY", s.inst.effective_priority().to_string())
            .env("RVS_VRRP_REASON", reason)
            .stdin(Stdio::null())
            .spawn();
        match spawned {
            Ok(c) => self.children.push(c),
            Err(e) => tracing::error!(vrid = s.cfg.vrid, program = %program, "VRRP: cannot run notify: {e}"),
        }
    }

    /// A master of `vrid` resigns for `hold` (see [`Instance::step_down`]): the instance
    /// of `family`'s adverts, or with `None` the VRID's only instance (refused as
    /// ambiguous when it has one of each family).
    pub fn step_down(
        &mut self,
        now: Instant,
        vrid: u8,
        family: Option<AdvertFamily>,
        hold: Duration,
    ) -> Result<InstanceStatus, StepDownError> {
        let of_vrid: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].cfg.vrid == vrid).collect();
        let i = match (family, of_vrid.as_slice()) {
            (_, []) => return Err(StepDownError::NoSuchVrid(vrid)),
            (None, [i]) => *i,
            (None, _) => return Err(StepDownError::Ambiguous(vrid)),
            (Some(f), _) => of_vrid
                .iter()
                .copied()
                .find(|&i| self.slots[i].cfg.family() == f)
                .ok_or(StepDownError::NoSuchFamily(vrid, f))?,
        };
        if !self.slots[i].inst.step_down(now, hold) {
            return Err(StepDownError::NotMaster { vrid, state: self.slots[i].inst.state().name().into() });
        }
        self.act();
        Ok(self.instance_status(i))
    }

    /// Every master sends priority 0 and gives its addresses up; every instance ends in
    /// `init`.
    pub fn shutdown(&mut self, now: Instant) {
        for s in &mut self.slots {
            s.inst.shutdown(now);
        }
        self.act();
    }

    /// When the next turn is due, at most [`MAX_SLEEP`] from `now`.
    pub fn next_turn(&self, now: Instant) -> Instant {
        let cap = now + MAX_SLEEP;
        self.slots.iter().filter_map(|s| s.inst.next_deadline()).fold(cap, Instant::min)
    }

    fn rfc3339(&self, at: Instant) -> String {
        let wall = match at.checked_duration_since(self.epoch) {
            Some(d) => self.wall + d,
            None => self.wall - self.epoch.saturating_duration_since(at),
        };
        humantime::format_rfc3339_millis(wall).to_string()
    }

    fn instance_status(&self, i: usize) -> InstanceStatus {
        let s = &self.slots[i];
        let c = s.inst.counters();
        let last = s.inst.last_transition();
        InstanceStatus {
            vrid: s.cfg.vrid,
            family: s.cfg.family().name().into(),
            virtual_link_local: s.cfg.virtual_link_local.map(|a| a.to_string()),
            port: self.ports.get(s.cfg.port).map(|p| p.name.clone()).unwrap_or_default(),
            version: s.cfg.version,
            state: s.inst.state().name().into(),
            priority: s.cfg.priority,
            effective_priority: s.inst.effective_priority(),
            master: s.inst.master().map(|(a, _)| a.to_string()),
            master_priority: s.inst.master().map(|(_, p)| p),
            advert_interval_ms: u64::try_from(s.cfg.advert_interval.as_millis()).unwrap_or(u64::MAX),
            preempt: s.cfg.preempt,
            addresses: s.cfg.addresses.iter().map(|a| a.to_string()).collect(),
            since: last.map(|(t, _)| self.rfc3339(*t)),
            reason: last.map(|(_, r)| r.clone()),
            adverts_sent: c.adverts_sent,
            adverts_received: c.adverts_received,
            invalid: Invalid::ALL.iter().map(|r| (r.name().to_string(), c.invalid(*r))).collect(),
            transitions: c.transitions,
        }
    }

    /// State changes of every instance since start (the status changes with each).
    pub fn transitions(&self) -> u64 {
        self.slots.iter().map(|s| s.inst.counters().transitions).sum()
    }

    /// What `/v1/ha` shows now.
    pub fn status(&self) -> HaStatus {
        HaStatus {
            instances: (0..self.slots.len()).map(|i| self.instance_status(i)).collect(),
            adverts_unknown_vrid: self.unknown_vrid,
            packets_malformed: self.malformed,
            frames_dropped: self.end.tx_dropped(),
            sync: None,
        }
    }
}

/// A punted VRRP packet's source, destination, TTL (hop limit) and VRRP message: an IPv4
/// packet (header checksum verified) of protocol 112 to 224.0.0.18, or an IPv6 one of next
/// header 112 to ff02::12; `None` for anything else (counted `packets_malformed`).
fn vrrp_packet(packet: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            let ok = ip.protocol() == IPPROTO_VRRP && ip.dst_addr() == VRRP_GROUP_V4 && ip.verify_checksum();
            let payload = packet.get(ip.header_len()..usize::from(ip.total_len()))?;
            ok.then_some((IpAddr::V4(ip.src_addr()), IpAddr::V4(VRRP_GROUP_V4), ip.ttl(), payload))
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let ok = ip.next_header() == IPPROTO_VRRP && ip.dst_addr() == VRRP_GROUP_V6;
            let (src, hop_limit) = (ip.src_addr(), ip.hop_limit());
            let payload = packet.get(Ipv6Packet::<&[u8]>::HEADER_LEN..)?.get(..usize::from(ip.payload_len()))?;
            ok.then_some((IpAddr::V6(src), IpAddr::V6(VRRP_GROUP_V6), hop_limit, payload))
        }
        _ => None,
    }
}

/// Runs the HA thread until `stop` is set, then shuts the instances down (priority 0
/// from every master) and returns.
pub fn spawn(
    mut shell: Shell,
    env: Box<dyn Environment + Send>,
    requests: mpsc::Receiver<StepDown>,
    board: HaBoard,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("rvs-ha".into()).spawn(move || {
        let mut published: Option<(Instant, u64)> = None;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            shell.turn(now, env.as_ref());
            let mut asked = false;
            while let Ok((vrid, family, hold, answer)) = requests.try_recv() {
                asked = true;
                let r = shell.step_down(now, vrid, family, hold);
                if let Ok(st) = &r {
                    tracing::warn!(vrid, family = %st.family, hold = %humantime::format_duration(hold), "VRRP: stepped down on request");
                }
                let _ = answer.send(r);
            }
            // The status is rebuilt at once after a transition or a request, else every
            // PUBLISH_EVERY: not on each of the 200 turns a second.
            let transitions = shell.transitions();
            let due = published.is_none_or(|(at, t)| t != transitions || now.duration_since(at) >= PUBLISH_EVERY);
            if asked || due {
                publish(&board, shell.status());
                published = Some((now, transitions));
            }
            let next = shell.next_turn(Instant::now());
            std::thread::sleep(next.saturating_duration_since(Instant::now()).max(Duration::from_micros(200)));
        }
        shell.shutdown(Instant::now());
        publish(&board, shell.status());
        tracing::info!("VRRP: instances shut down");
    })
}

/// Puts the VRRP thread's `status` on the board, keeping what the sync thread wrote there.
fn publish(board: &HaBoard, status: HaStatus) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    let sync = b.sync.take();
    *b = status;
    b.sync = sync;
}

/// For [`Environment`] implementations: whether `service` has health-checked servers on
/// the health board and none of them is up. Reads the board once, allocates nothing (the
/// HA thread asks for every tracked service each turn).
pub fn service_down(
    board: &HashMap<crate::services::ServerRef, crate::status::HealthView>,
    service: crate::config::ServiceKey,
) -> bool {
    let mut checked = false;
    for ((svc, _, _), view) in board {
        if *svc == service {
            if view.state != "down" {
                return false;
            }
            checked = true;
        }
    }
    checked
}

#[cfg(test)]
mod tests;
