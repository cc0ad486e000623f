//! The health thread: the thin I/O shell around the [`Monitor`].
//!
//! One std thread (never the REST runtime's) owns the monitor and the control plane's
//! end of the punt rings ([`ProbeEnd`]). Each turn it:
//!
//! 1. reconciles the monitored servers with the running configuration when an apply
//!    moved [`crate::runtime::Running::config_version`] (servers added or removed, a server whose
//!    `[service.health]`, `[service.agent]` or weight changed is checked afresh; a server
//!    in admin `maint` is not probed, and is checked afresh, from its start state, when it
//!    leaves it);
//! 2. hands every punted packet to the prober, polls the monitor at the current time,
//!    logs every transition with its reason, and queues the prober's packets for
//!    worker 0;
//! 3. updates the effect ([`Monitor::effect`]) and the API's view of the servers that got a
//!    result this turn ([`Monitor::take_touched`]), and of every server each
//!    [`FULL_REFRESH`] (slowstart ramps and stale agents change with time alone) or after a
//!    reconcile; when an effect changed, has the running state rebuild and publish the
//!    service table ([`crate::runtime::Running::set_health`]), and when a view changed,
//!    updates what the API shows (at once for a state change; probe figures alone,
//!    latency and counts, at most every [`FIGURES_EVERY`]);
//! 4. sleeps until the monitor's next deadline, at most [`MAX_SLEEP`] (punted packets are
//!    not signalled, so they wait at most that long).
//!
//! The running state's mutex is taken briefly once per turn (to read the version) and
//! when something changed; the thread never blocks the REST API for longer than one
//! table build.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rvs_dataplane::punt::ProbeEnd;

use super::monitor::{Monitor, ServerKey, Target};
use super::prober::{Prober, ProberConfig};
use super::state::{Admin, State};
use crate::api::AppState;
use crate::config::{Agent, Config, Health};
use crate::services::{service_key, Overlay, ServerRef};
use crate::status::HealthView;

/// Each checked server's health as the API shows it, shared with `/v1/status` and
/// `/metrics` (written by the health thread when it changes).
pub type HealthBoard = Arc<std::sync::Mutex<HashMap<ServerRef, HealthView>>>;

/// Longest sleep between turns: the latency a punted packet may wait.
pub const MAX_SLEEP: Duration = Duration::from_millis(10);

/// How often every server's effect and view are recomputed, whether or not it got a
/// result (a turn otherwise looks only at the servers that did: with 1,000 servers,
/// recomputing all of them every 10 ms turn cost 30 % of a core, perf/RESULTS.md).
pub const FULL_REFRESH: Duration = Duration::from_millis(100);

/// How often a view whose probe figures alone changed (latency, probe counts: every
/// probe changes them) is published at most; a state change is published at once.
pub const FIGURES_EVERY: Duration = Duration::from_secs(1);

/// What changed in a [`Shell::turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Turn {
    /// Some server's effect ([`Shell::overlay`]).
    pub overlay_changed: bool,
    /// Some server's view ([`Shell::health`]).
    pub status_changed: bool,
}

/// What a server is checked with; a change means checking it afresh.
type Fingerprint = (Option<Health>, Option<Agent>, u16, SocketAddr);

/// Counts the health thread shares with `/v1/status` (`prober`) and `/metrics`.
#[derive(Debug, Default)]
pub struct HealthCounters {
    /// Packets punted to the prober.
    pub rx: AtomicU64,
    /// Packets the prober queued for the data path.
    pub tx: AtomicU64,
    /// Packets the prober could not queue (ring full).
    pub tx_dropped: AtomicU64,
    /// Up/down transitions.
    pub transitions: AtomicU64,
}

/// The monitor with its bookkeeping: which [`ServerKey`] each configured server has.
#[derive(Debug)]
pub struct Shell {
    monitor: Monitor,
    end: ProbeEnd,
    servers: HashMap<ServerRef, (ServerKey, Fingerprint)>,
    /// The other way round.
    refs: HashMap<ServerKey, ServerRef>,
    version: u64,
    counters: Arc<HealthCounters>,
    /// The effects in force and the API's views, as of the last turn.
    overlay: Overlay,
    health: HashMap<ServerRef, HealthView>,
    /// When every server was last recomputed (`None`: at the next turn).
    refreshed: Option<Instant>,
    /// Views whose probe figures changed since the last publication, and when that was.
    figures_dirty: bool,
    figures_published: Option<Instant>,
    /// The wall clock at `epoch`, to show `since` in UTC.
    wall: SystemTime,
    epoch: Instant,
}

/// The prober's configuration for `config`: the ports' addresses (IPv4 and IPv6, so
/// servers of either family are probed from their port's own address), the probe range.
pub fn prober_config(config: &Config, source_ports: std::ops::RangeInclusive<u16>) -> ProberConfig {
    let mtu = config.ports.iter().map(|p| usize::from(p.mtu.unwrap_or(1500))).min().unwrap_or(1500);
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    ProberConfig {
        // Every port's IPv4 address first, then the IPv6 ones: the prober's interface
        // holds at most `prober::MAX_ADDRESSES`, and IPv4 probing must never lose its
        // source to an IPv6 address.
        addresses: config
            .ports
            .iter()
            .map(|p| (IpAddr::V4(p.address.addr()), p.address.prefix_len()))
            .chain(
                config
                    .ports
                    .iter()
                    .flat_map(|p| p.ipv6_addresses.iter().map(|n| (IpAddr::V6(n.addr()), n.prefix_len()))),
            )
            .take(super::prober::MAX_ADDRESSES)
            .collect(),
        source_ports,
        mtu,
        seed,
    }
}

impl HealthCounters {
    /// The counts now, as `/v1/status` shows them.
    pub fn snapshot(&self) -> crate::status::ProberStatus {
        crate::status::ProberStatus {
            packets_in: self.rx.load(Ordering::Relaxed),
            packets_out: self.tx.load(Ordering::Relaxed),
            packets_out_dropped: self.tx_dropped.load(Ordering::Relaxed),
            transitions: self.transitions.load(Ordering::Relaxed),
        }
    }
}

impl Shell {
    /// A shell probing with `prober_config` through `end`.
    pub fn new(prober_config: ProberConfig, end: ProbeEnd, counters: Arc<HealthCounters>, now: Instant) -> Self {
        Shell {
            monitor: Monitor::new(Prober::new(prober_config, now)),
            end,
            servers: HashMap::new(),
            refs: HashMap::new(),
            version: 0,
            counters,
            overlay: Overlay::new(),
            health: HashMap::new(),
            refreshed: None,
            figures_dirty: false,
            figures_published: None,
            wall: SystemTime::now(),
            epoch: now,
        }
    }

    /// Makes the monitored set match `config` and the admin states `admin` (see the
    /// module docs).
    pub fn reconcile(&mut self, config: &Config, admin: &HashMap<ServerRef, Admin>, now: Instant) {
        let mut wanted: HashMap<ServerRef, (Fingerprint, SocketAddr, SocketAddr)> = HashMap::new();
        for s in &config.services {
            if s.health.is_none() && s.agent.is_none() {
                continue;
            }
            let key = service_key(s);
            let vip = SocketAddr::new(s.address, s.port);
            for r in &s.servers {
                if admin.get(&(key, r.address, r.port)) == Some(&Admin::Maint) {
                    continue;
                }
                let server = SocketAddr::new(r.address, r.port);
                // system-load: the agent's N% gives weight × N (a percentage of weight × 100),
                // so weight-1 servers still get 100 steps of resolution.
                let weight = if s.system_load { r.weight.saturating_mul(100) } else { r.weight };
                wanted
                    .insert((key, r.address, r.port), ((s.health.clone(), s.agent.clone(), weight, vip), vip, server));
            }
        }
        let monitor = &mut self.monitor;
        self.refreshed = None;
        self.servers.retain(|k, (sk, fp)| {
            let keep = wanted.get(k).is_some_and(|(w, _, _)| w == fp);
            if !keep {
                monitor.remove(*sk);
            }
            keep
        });
        for (k, (fp, vip, server)) in wanted {
            if self.servers.contains_key(&k) {
                continue;
            }
            let target = Target { vip, server, weight: fp.2 };
            let sk = self.monitor.add(now, target, fp.0.as_ref(), fp.1.as_ref());
            tracing::info!(vip = %vip, server = %server, "health: checking server");
            self.servers.insert(k, (sk, fp));
        }
        self.refs = self.servers.iter().map(|(k, (sk, _))| (*sk, *k)).collect();
    }

    /// One turn at `now` without the reconcile step: packets in, poll, packets out, then
    /// the effects and views brought up to date (see the module docs); says what changed.
    pub fn turn(&mut self, now: Instant) -> Turn {
        while let Some(p) = self.end.recv() {
            self.counters.rx.fetch_add(1, Ordering::Relaxed);
            self.monitor.prober().receive(p);
        }
        let events = self.monitor.poll(now);
        for ev in &events {
            self.counters.transitions.fetch_add(1, Ordering::Relaxed);
            let vip = self.refs.get(&ev.key).map(|k| crate::config::endpoint(k.0.vip, k.0.port)).unwrap_or_default();
            let state = if ev.transition.to == State::Up { "up" } else { "down" };
            tracing::warn!(server = %ev.server, vip = %vip, state, reason = %ev.transition.reason, "health: server is {state}");
        }
        while let Some(p) = self.monitor.prober().transmit() {
            if self.end.send(&p) {
                self.counters.tx.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.tx_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let touched = self.monitor.take_touched();
        if self.refreshed.is_none_or(|t| now.saturating_duration_since(t) >= FULL_REFRESH) {
            self.refreshed = Some(now);
            let mut overlay = Overlay::with_capacity(self.servers.len());
            for (k, (sk, _)) in &self.servers {
                if let Some(e) = self.monitor.effect(*sk, now) {
                    overlay.insert(*k, e);
                }
            }
            let health = self.status(now);
            let state_changed = health.len() != self.health.len()
                || health.iter().any(|(k, v)| self.health.get(k).is_none_or(|old| old.differs_in_state(v)));
            self.figures_dirty |= health != self.health;
            let turn =
                Turn { overlay_changed: overlay != self.overlay, status_changed: self.publish(now, state_changed) };
            self.overlay = overlay;
            self.health = health;
            return turn;
        }
        let mut turn = Turn::default();
        for sk in touched {
            let Some(&k) = self.refs.get(&sk) else { continue };
            if let Some(e) = self.monitor.effect(sk, now) {
                if self.overlay.insert(k, e) != Some(e) {
                    turn.overlay_changed = true;
                }
            }
            let view = self.view(sk, now);
            match self.health.get(&k) {
                Some(old) if *old == view => {}
                Some(old) if !old.differs_in_state(&view) => {
                    self.figures_dirty = true;
                    self.health.insert(k, view);
                }
                _ => {
                    turn.status_changed = true;
                    self.health.insert(k, view);
                }
            }
        }
        turn.status_changed = self.publish(now, turn.status_changed);
        turn
    }

    /// Whether the views are to be published now: at once when a state changed, else
    /// when only probe figures changed and [`FIGURES_EVERY`] has passed.
    fn publish(&mut self, now: Instant, state_changed: bool) -> bool {
        let figures_due = self.figures_dirty
            && self.figures_published.is_none_or(|t| now.saturating_duration_since(t) >= FIGURES_EVERY);
        if state_changed || figures_due {
            self.figures_dirty = false;
            self.figures_published = Some(now);
            return true;
        }
        false
    }

    /// The effects in force as of the last turn.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// What the API shows of each checked server's health, as of the last turn.
    pub fn health(&self) -> &HashMap<ServerRef, HealthView> {
        &self.health
    }

    fn rfc3339(&self, at: Instant) -> String {
        let wall = match at.checked_duration_since(self.epoch) {
            Some(d) => self.wall + d,
            None => self.wall - self.epoch.saturating_duration_since(at),
        };
        humantime::format_rfc3339_seconds(wall).to_string()
    }

    /// What the API shows of each checked server's health at `now`.
    pub fn status(&self, now: Instant) -> HashMap<ServerRef, HealthView> {
        self.servers.iter().map(|(k, (sk, _))| (*k, self.view(*sk, now))).collect()
    }

    /// One server's view at `now`.
    fn view(&self, sk: ServerKey, now: Instant) -> HealthView {
        match self.monitor.check(sk) {
            Some(c) => HealthView {
                state: if c.state() == State::Up { "up" } else { "down" }.into(),
                since: Some(self.rfc3339(c.since())),
                last: c.last().map_or_else(|| "no probe finished yet".into(), |r| r.detail.clone()),
                latency_us: c.last_duration().map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                probes_ok: c.probe_counts().0,
                probes_failed: c.probe_counts().1,
            },
            // Agent only: up unless the agent says otherwise.
            None => {
                let up = self.monitor.effect(sk, now).is_none_or(|e| e.up);
                HealthView {
                    state: if up { "up" } else { "down" }.into(),
                    ..HealthView::unchecked("agent only (no [service.health])")
                }
            }
        }
    }

    /// The servers being checked.
    pub fn checked(&self) -> usize {
        self.servers.len()
    }

    /// When the monitor next needs a turn, capped at [`MAX_SLEEP`] from `now`.
    pub fn next_turn(&mut self, now: Instant) -> Instant {
        let cap = now + MAX_SLEEP;
        self.monitor.poll_at(now).map_or(cap, |t| t.min(cap))
    }
}

/// Runs the health thread until `stop` is set. `state` holds the running configuration
/// the monitored set follows and the table it publishes into.
pub fn spawn(
    state: Arc<AppState>,
    prober_config: ProberConfig,
    end: ProbeEnd,
    counters: Arc<HealthCounters>,
    board: HealthBoard,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("rvs-health".into()).spawn(move || {
        let mut shell = Shell::new(prober_config, end, counters, Instant::now());
        // A table build that failed is retried at the next turn.
        let mut unpublished = false;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            {
                let running = state.running();
                if running.config_version() != shell.version {
                    shell.version = running.config_version();
                    let config = running.config().clone();
                    let admin = running.admin_states().clone();
                    drop(running);
                    shell.reconcile(&config, &admin, now);
                }
            }
            let turn = shell.turn(now);
            if turn.overlay_changed || unpublished || turn.status_changed {
                let mut running = state.running();
                if turn.overlay_changed || unpublished {
                    unpublished = false;
                    match running.set_health(shell.overlay().clone()) {
                        Ok(true) => {
                            tracing::info!(generation = running.generation(), "health: service table republished")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            // As before: retried at every turn until it builds.
                            tracing::error!("health: cannot rebuild the service table: {e:#}");
                            unpublished = true;
                        }
                    }
                }
                if turn.status_changed {
                    running.set_health_status(shell.health().clone());
                }
                drop(running);
                if turn.status_changed {
                    *board.lock().unwrap_or_else(|p| p.into_inner()) = shell.health().clone();
                }
            }
            let next = shell.next_turn(Instant::now());
            std::thread::sleep(next.saturating_duration_since(Instant::now()).max(Duration::from_micros(200)));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::punt::{probe_links, DEFAULT_PROBE_PORTS};

    const BASE: &str = r#"
[[port]]
name = "back"
device = "net_ring0"
address = "10.20.0.1/24"
mac = "02:00:00:00:00:01"
[[service]]
protocol = "tcp"
address = "10.20.0.100"
port = 80
scheduler = "rr"
HEALTH
[[service.server]]
address = "10.20.0.11"
weight = 1
[[service.server]]
address = "10.20.0.12"
weight = 1
"#;

    fn config(health: &str) -> Config {
        Config::from_toml(&BASE.replace("HEALTH", health)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The prober sources probes from every port's IPv4 address and then its IPv6 ones,
    /// IPv4 first so that IPv6 addresses never crowd an IPv4 source out.
    #[test]
    fn prober_sources_ipv4_first_then_ipv6() {
        let text = BASE.replace("HEALTH", "").replacen(
            "mac = \"02:00:00:00:00:01\"",
            "mac = \"02:00:00:00:00:01\"\nipv6_addresses = [\"2001:db8:20::1/64\"]\n\
             [[port]]\nname = \"front\"\ndevice = \"net_ring1\"\naddress = \"10.10.0.1/24\"\n\
             ipv6_addresses = [\"2001:db8:10::1/64\"]",
            1,
        );
        let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let a: Vec<String> =
            prober_config(&c, 40000..=40099).addresses.iter().map(|(ip, len)| format!("{ip}/{len}")).collect();
        assert_eq!(a, ["10.20.0.1/24", "10.10.0.1/24", "2001:db8:20::1/64", "2001:db8:10::1/64"]);
    }

    #[test]
    fn probe_figures_alone_are_published_at_most_every_second_a_state_change_at_once() {
        let (_links, end) = probe_links(1, 16, DEFAULT_PROBE_PORTS);
        let c = config("");
        let t = Instant::now();
        let mut shell = Shell::new(prober_config(&c, DEFAULT_PROBE_PORTS), end, Arc::default(), t);
        assert!(!shell.publish(t, false), "nothing changed");
        shell.figures_dirty = true;
        assert!(shell.publish(t, false), "first figures: published");
        shell.figures_dirty = true;
        assert!(!shell.publish(t + FIGURES_EVERY / 2, false), "figures again within FIGURES_EVERY: held");
        assert!(shell.publish(t + FIGURES_EVERY / 2, true), "a state change: at once");
        shell.figures_dirty = true;
        assert!(!shell.publish(t + FIGURES_EVERY, false));
        assert!(shell.publish(t + FIGURES_EVERY * 3 / 2, false), "held figures go out a second later");
        assert!(!shell.publish(t + FIGURES_EVERY * 5, false), "and only once");
    }

    #[test]
    fn a_result_between_full_refreshes_updates_its_server_alone() {
        let (_links, end) = probe_links(1, 16, DEFAULT_PROBE_PORTS);
        let c = config(
            "[service.health]\nkind = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"sleep 0.2; exit 1\"]\n\
             interval = \"1s\"\ntimeout = \"900ms\"\nfall = 1\nrise = 1\n",
        );
        let t = Instant::now();
        let mut shell = Shell::new(prober_config(&c, DEFAULT_PROBE_PORTS), end, Arc::default(), t);
        shell.reconcile(&c, &HashMap::new(), t);
        let first = t + Duration::from_secs(2);
        assert!(shell.turn(first).overlay_changed, "full refresh: both up");
        assert!(shell.overlay().values().all(|e| e.up && e.weight == 1));
        // The two commands (started by that turn) exit 1 200 ms later; the next turns, within
        // FULL_REFRESH, looks at the servers that got a result.
        let mut down = false;
        for i in 1..=80 {
            std::thread::sleep(Duration::from_millis(25));
            let at = first + Duration::from_millis(i);
            let turn = shell.turn(at);
            assert!(shell.refreshed == Some(first), "no full refresh within FULL_REFRESH");
            if shell.overlay().values().all(|e| !e.up && e.weight == 0) {
                assert!(turn.overlay_changed && turn.status_changed);
                assert!(
                    shell.health().values().all(|v| v.state == "down" && v.last == "exit 1"),
                    "{:?}",
                    shell.health()
                );
                down = true;
                break;
            }
        }
        assert!(down, "{:?}", shell.overlay());
        let quiet = shell.turn(first + Duration::from_millis(90));
        assert_eq!(quiet, Turn::default(), "nothing new, nothing changed");
    }

    #[test]
    fn reconcile_follows_the_config_and_a_probe_leaves_for_the_data_path() {
        let (links, end) = probe_links(1, 16, DEFAULT_PROBE_PORTS);
        let c = config("[service.health]\nkind = \"tcp\"\ninterval = \"1s\"\n");
        let now = Instant::now();
        let mut shell = Shell::new(prober_config(&c, DEFAULT_PROBE_PORTS), end, Arc::default(), now);
        shell.reconcile(&c, &HashMap::new(), now);
        assert_eq!(shell.checked(), 2);
        // Start up: both present at their weight.
        let turn = shell.turn(now + Duration::from_secs(2));
        assert!(turn.overlay_changed && turn.status_changed, "a first turn shows everything");
        let overlay = shell.overlay();
        assert_eq!(overlay.len(), 2);
        assert!(overlay.values().all(|e| e.present && e.weight == 1 && e.up), "{overlay:?}");
        // The probes' SYNs wait in worker 0's ring, from the port address.
        let mut syns = 0;
        while let Some(src) = links[0].take_outbound(|p| [p[12], p[13], p[14], p[15]]) {
            assert_eq!(src, [10, 20, 0, 1]);
            syns += 1;
        }
        assert_eq!(syns, 2);
        // A server in admin maint is not probed; back to ready, it is checked again.
        let maint = HashMap::from([((service_key(&c.services[0]), "10.20.0.11".parse().unwrap(), 80), Admin::Maint)]);
        shell.reconcile(&c, &maint, now);
        assert_eq!(shell.checked(), 1);
        assert!(shell.status(now).keys().all(|k| k.1 != IpAddr::from(std::net::Ipv4Addr::new(10, 20, 0, 11))));
        shell.reconcile(&c, &HashMap::new(), now);
        assert_eq!(shell.checked(), 2);
        // Other health settings: checked afresh; no [service.health]: not checked.
        shell.reconcile(&config("[service.health]\nkind = \"tcp\"\ninterval = \"2s\"\n"), &HashMap::new(), now);
        assert_eq!(shell.checked(), 2);
        shell.reconcile(&config(""), &HashMap::new(), now);
        assert_eq!(shell.checked(), 0);
        shell.turn(now + Duration::from_secs(3));
        assert!(shell.overlay().is_empty() && shell.health().is_empty());
        // system-load: the agent's N% applies to weight × 100, so weight 1 gives N.
        let load = Config::from_toml(
            &BASE
                .replace("scheduler = \"rr\"", "scheduler = \"system-load\"")
                .replace("HEALTH", "[service.agent]\nport = 9999\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        shell.reconcile(&load, &HashMap::new(), now);
        assert_eq!(shell.checked(), 2);
        assert!(shell.servers.values().all(|(_, fp)| fp.2 == 100), "{:?}", shell.servers);
    }
}
