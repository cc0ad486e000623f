//! The monitor: every checked server's state machine, its running probe and its agent,
//! driven from one poll. This is what the control thread will call once the prober's
//! packets are wired to the workers' punt rings.
//!
//! [`Monitor::poll`] starts the probes that are due (through the [`Prober`] or as
//! [`CommandProbe`]s), collects finished ones, feeds them to each server's
//! [`ServerCheck`] and [`AgentStatus`], and returns the up/down transitions.
//! [`Monitor::effect`] then says what each server's weight should be. Packets go in and
//! out through [`Monitor::prober`].
//!
//! On every transition of a server whose `[service.health]` has `notify`, the program
//! runs (not waited for; killed after [`NOTIFY_TIMEOUT`]) with the `command` kind's
//! variables (see [`crate::health::command`]) plus `RVS_STATE` (`up` or `down`) and
//! `RVS_REASON` (the deciding result in words).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::agent::AgentStatus;
use super::command::{CommandProbe, CommandResult};
use super::prober::{ProbeId, ProbeKind, ProbeSpec, Prober};
use super::state::{effect, Effect, ServerCheck, Timing, Transition};
use super::ProbeResult;
use crate::config::{Agent, Health, HealthKind, OnDown};

/// How long a `notify` program may run before it is killed.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most `notify` programs running at once; transitions beyond are not notified (and
/// counted in [`Monitor::notify_skipped`]).
pub const MAX_NOTIFY: usize = 64;

/// Names a server in a [`Monitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey(usize);

/// A server to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The service's virtual address and port.
    pub vip: SocketAddr,
    /// The real server's address and port.
    pub server: SocketAddr,
    /// Its configured weight.
    pub weight: u16,
}

/// An up/down change of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Which server.
    pub key: ServerKey,
    /// Its address and port.
    pub server: SocketAddr,
    /// The change.
    pub transition: Transition,
}

#[derive(Debug)]
enum Running {
    Probe(ProbeId),
    Command(CommandProbe),
}

#[derive(Debug)]
struct Checked {
    health: Health,
    check: ServerCheck,
    running: Option<Running>,
}

#[derive(Debug)]
struct Agented {
    agent: Agent,
    status: AgentStatus,
    next: Instant,
    running: Option<ProbeId>,
}

#[derive(Debug)]
struct Entry {
    target: Target,
    checked: Option<Checked>,
    agented: Option<Agented>,
    /// Weight set by a `command` probe's exit status (2..=255), if any.
    command_weight: Option<u16>,
}

/// All checked servers. See the module documentation.
#[derive(Debug)]
pub struct Monitor {
    prober: Prober,
    entries: Vec<Option<Entry>>,
    notifying: Vec<CommandProbe>,
    notify_skipped: u64,
    /// Servers that got a result since the last [`Monitor::take_touched`].
    touched: Vec<ServerKey>,
}

/// FNV-1a of a server's identity: a stable per-server jitter seed.
fn seed(t: &Target) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}>{}", t.vip, t.server).bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Monitor {
    /// A monitor sending its probes through `prober`.
    pub fn new(prober: Prober) -> Self {
        Monitor { prober, entries: Vec::new(), notifying: Vec::new(), notify_skipped: 0, touched: Vec::new() }
    }

    /// The prober, for the packets: [`Prober::receive`] and [`Prober::transmit`].
    pub fn prober(&mut self) -> &mut Prober {
        &mut self.prober
    }

    /// Adds a server at `now`, checked by `health` and/or asked by `agent` (either may be
    /// absent; with neither it is simply always up).
    pub fn add(&mut self, now: Instant, target: Target, health: Option<&Health>, agent: Option<&Agent>) -> ServerKey {
        let s = seed(&target);
        let checked = health.map(|h| Checked {
            health: h.clone(),
            check: ServerCheck::new(Timing::from(h), now, s),
            running: None,
        });
        let agented = agent.map(|a| Agented {
            agent: a.clone(),
            status: AgentStatus::new(a.stale_after),
            next: now + Duration::from_nanos(s.rotate_left(17) % (a.interval.as_nanos() as u64).max(1)),
            running: None,
        });
        self.entries.push(Some(Entry { target, checked, agented, command_weight: None }));
        ServerKey(self.entries.len() - 1)
    }

    /// Removes a server; its running probes are cancelled (a command is killed).
    pub fn remove(&mut self, key: ServerKey) {
        if let Some(e) = self.entries.get_mut(key.0).and_then(Option::take) {
            if let Some(Checked { running: Some(Running::Probe(id)), .. }) = e.checked {
                self.prober.cancel(id);
            }
            if let Some(Agented { running: Some(id), .. }) = e.agented {
                self.prober.cancel(id);
            }
        }
    }

    /// Starts due probes, collects results at `now`; returns the transitions.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        // Start what is due.
        for (i, slot) in self.entries.iter_mut().enumerate() {
            let Some(e) = slot else { continue };
            if let Some(c) = &mut e.checked {
                if c.check.due(now) {
                    let deadline = c.check.start_probe(now);
                    let port = c.health.port.unwrap_or(e.target.server.port());
                    let target = SocketAddr::new(e.target.server.ip(), port);
                    let timeout = deadline - now;
                    let started = match &c.health.kind {
                        HealthKind::Command(argv) => CommandProbe::spawn(argv, target, e.target.vip, now, timeout)
                            .map(Running::Command)
                            .map_err(|r| r.result),
                        kind => {
                            let kind = ProbeKind::from_health(kind).unwrap_or(ProbeKind::Tcp);
                            self.prober
                                .start(now, ProbeSpec { target, kind, timeout })
                                .map(Running::Probe)
                                .map_err(|err| ProbeResult::failure(format!("not started: {err}")))
                        }
                    };
                    match started {
                        Ok(r) => c.running = Some(r),
                        Err(result) => {
                            self.touched.push(ServerKey(i));
                            if let Some(transition) = c.check.record(now, result) {
                                events.push(Event { key: ServerKey(i), server: e.target.server, transition });
                            }
                        }
                    }
                }
            }
            if let Some(a) = &mut e.agented {
                if a.running.is_none() && now >= a.next {
                    a.next = now + a.agent.interval;
                    let spec = ProbeSpec {
                        target: SocketAddr::new(e.target.server.ip(), a.agent.port),
                        kind: ProbeKind::Agent,
                        timeout: a.agent.timeout,
                    };
                    match self.prober.start(now, spec) {
                        Ok(id) => a.running = Some(id),
                        Err(err) => {
                            self.touched.push(ServerKey(i));
                            a.status.record_failure(&format!("not started: {err}"));
                        }
                    }
                }
            }
        }
        // Packets and timers.
        let mut finished: HashMap<ProbeId, ProbeResult> =
            self.prober.poll(now).into_iter().map(|f| (f.id, f.result)).collect();
        for (i, slot) in self.entries.iter_mut().enumerate() {
            let Some(e) = slot else { continue };
            if let Some(c) = &mut e.checked {
                let result = match &mut c.running {
                    Some(Running::Probe(id)) => finished.remove(id).map(|r| (r, None)),
                    Some(Running::Command(p)) => p.poll(now).map(|CommandResult { result, weight }| (result, weight)),
                    None => None,
                };
                if let Some((result, weight)) = result {
                    self.touched.push(ServerKey(i));
                    c.running = None;
                    if matches!(c.health.kind, HealthKind::Command(_)) {
                        e.command_weight = weight.map(u16::from);
                    }
                    if let Some(transition) = c.check.record(now, result) {
                        events.push(Event { key: ServerKey(i), server: e.target.server, transition });
                    }
                }
            }
            if let Some(a) = &mut e.agented {
                if let Some(r) = a.running.and_then(|id| finished.remove(&id)) {
                    self.touched.push(ServerKey(i));
                    a.running = None;
                    if r.is_success() {
                        a.status.record(now, &r.detail);
                    } else {
                        a.status.record_failure(&r.detail);
                    }
                }
            }
        }
        self.notifying.retain_mut(|p| p.poll(now).is_none());
        for ev in &events {
            let Some(Some(e)) = self.entries.get(ev.key.0) else { continue };
            let Some(c) = e.checked.as_ref().filter(|c| !c.health.notify.is_empty()) else { continue };
            if self.notifying.len() >= MAX_NOTIFY {
                self.notify_skipped += 1;
                continue;
            }
            let state = if ev.transition.to == super::state::State::Up { "up" } else { "down" };
            let extra = [("RVS_STATE", state), ("RVS_REASON", ev.transition.reason.as_str())];
            let spawned =
                CommandProbe::spawn_with(&c.health.notify, e.target.server, e.target.vip, &extra, now, NOTIFY_TIMEOUT);
            match spawned {
                Ok(p) => self.notifying.push(p),
                Err(_) => self.notify_skipped += 1,
            }
        }
        events
    }

    /// The servers that got a probe or agent result since the last call (each at least
    /// once; possibly twice): their effect and status may have changed.
    pub fn take_touched(&mut self) -> Vec<ServerKey> {
        std::mem::take(&mut self.touched)
    }

    /// Transitions whose `notify` program could not be started (or too many were running).
    pub fn notify_skipped(&self) -> u64 {
        self.notify_skipped
    }

    /// When to poll next if no packet arrives.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let mut at = self.prober.poll_at(now);
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        for e in self.entries.iter().flatten() {
            if let Some(c) = &e.checked {
                match c.running {
                    None => earliest(c.check.next_probe()),
                    // A command is polled, not signalled: look again soon.
                    Some(Running::Command(_)) => earliest(now + Duration::from_millis(50)),
                    Some(Running::Probe(_)) => {}
                }
            }
            if !self.notifying.is_empty() {
                earliest(now + Duration::from_millis(50));
            }
            if let Some(a) = &e.agented {
                if a.running.is_none() {
                    earliest(a.next);
                }
            }
        }
        at
    }

    /// What the data path should do with a server at `now`.
    pub fn effect(&self, key: ServerKey, now: Instant) -> Option<Effect> {
        let e = self.entries.get(key.0)?.as_ref()?;
        let weight = e.command_weight.unwrap_or(e.target.weight);
        let (on_down, slowstart) =
            e.checked.as_ref().map_or((OnDown::Quiesce, None), |c| (c.health.on_down, c.health.slowstart));
        Some(effect(
            now,
            weight,
            e.checked.as_ref().map(|c| &c.check),
            e.agented.as_ref().map(|a| &a.status),
            on_down,
            slowstart,
        ))
    }

    /// A server's check state (`None` without `[service.health]`).
    pub fn check(&self, key: ServerKey) -> Option<&ServerCheck> {
        self.entries.get(key.0)?.as_ref()?.checked.as_ref().map(|c| &c.check)
    }

    /// A server's agent status (`None` without `[service.agent]`).
    pub fn agent(&self, key: ServerKey) -> Option<&AgentStatus> {
        self.entries.get(key.0)?.as_ref()?.agented.as_ref().map(|a| &a.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::prober::ProberConfig;
    use crate::health::state::State;

    fn health(kind: HealthKind) -> Health {
        Health {
            kind,
            port: None,
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(100),
            rise: 1,
            fall: 2,
            fastinter: Duration::from_millis(100),
            downinter: Duration::from_millis(200),
            start_up: true,
            on_down: OnDown::Quiesce,
            slowstart: None,
            notify: Vec::new(),
        }
    }

    fn monitor(t0: Instant) -> Monitor {
        let cfg = ProberConfig {
            addresses: vec![("10.20.0.1".parse().unwrap(), 24)],
            source_ports: 40000..=40999,
            mtu: 1500,
            seed: 1,
        };
        Monitor::new(Prober::new(cfg, t0))
    }

    fn target(server: &str, weight: u16) -> Target {
        Target { vip: "10.10.0.100:80".parse().unwrap(), server: server.parse().unwrap(), weight }
    }

    /// Unanswered probes (nothing carries the packets) take a server down; the
    /// transition comes out once, with its reason; the weight goes to 0.
    #[test]
    fn unanswered_tcp_probes_take_a_server_down() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        let k = m.add(t0, target("10.20.0.11:80", 5), Some(&health(HealthKind::Tcp)), None);
        let plain = m.add(t0, target("10.20.0.12:80", 3), None, None);
        let mut events = Vec::new();
        let mut now = t0;
        for _ in 0..100 {
            now += Duration::from_millis(10);
            events.extend(m.poll(now));
            while m.prober().transmit().is_some() {}
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].key, events[0].transition.to), (k, State::Down));
        assert_eq!(events[0].transition.reason, "connect timeout");
        assert_eq!(m.effect(k, now).map(|e| (e.weight, e.up)), Some((0, false)));
        assert_eq!(m.effect(plain, now).map(|e| (e.weight, e.up)), Some((3, true)));
        assert!(m.poll_at(now).is_some());
        m.remove(k);
        assert!(m.effect(k, now).is_none());
    }

    /// `notify` runs on the transition with the state and reason.
    #[test]
    fn notify_runs_on_transition() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        let out = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let mut h = health(HealthKind::Tcp);
        let script =
            format!("echo \"$RVS_STATE $RVS_REASON $RVS_SERVER_ADDR:$RVS_SERVER_PORT $RVS_VIP\" > {}", out.display());
        h.notify = vec!["/bin/sh".into(), "-c".into(), script];
        m.add(t0, target("10.20.0.11:80", 5), Some(&h), None);
        let mut now = t0;
        for _ in 0..100 {
            now += Duration::from_millis(10);
            m.poll(now);
            while m.prober().transmit().is_some() {}
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !m.notifying.is_empty() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
            m.poll(now);
        }
        let said = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        assert_eq!(said.trim(), "down connect timeout 10.20.0.11:80 10.10.0.100");
        assert_eq!(m.notify_skipped(), 0);
    }

    /// End to end against a smoltcp peer: HTTP checks pass, the agent halves the weight,
    /// then the HTTP server starts answering 500 and the server goes down.
    #[test]
    fn http_and_agent_against_a_peer() {
        use crate::health::device::QueueDevice;
        use smoltcp::iface::{Config, Interface, SocketSet};
        use smoltcp::socket::tcp;
        use smoltcp::time::Instant as SmolInstant;
        use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

        let t0 = Instant::now();
        let mut m = monitor(t0);
        let status = "200".parse().unwrap();
        let mut h = health(HealthKind::Http { path: "/".into(), host: None, status, body: None });
        h.fall = 1;
        let agent = Agent {
            port: 9999,
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(100),
            stale_after: Duration::from_secs(1),
        };
        let k = m.add(t0, target("10.20.0.11:80", 10), Some(&h), Some(&agent));

        let mut dev = QueueDevice::new(1500);
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = 2;
        let mut iface = Interface::new(cfg, &mut dev, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 20, 0, 11), 24)).unwrap());
        let mut sockets = SocketSet::new(Vec::new());
        let mut listeners = Vec::new();
        for port in [80u16, 9999] {
            for _ in 0..40 {
                let mut s =
                    tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 2048]), tcp::SocketBuffer::new(vec![0; 2048]));
                s.listen(port).unwrap();
                listeners.push((port, sockets.add(s), false));
            }
        }
        let mut now = t0;
        let mut events = Vec::new();
        let mut saw_half = false;
        for step in 0..400 {
            now += Duration::from_millis(10);
            let failing = step >= 200;
            events.extend(m.poll(now));
            while let Some(p) = m.prober().transmit() {
                dev.push_rx(p);
            }
            let ts = SmolInstant::from_micros((now - t0).as_micros() as i64);
            iface.poll(ts, &mut dev, &mut sockets);
            for (port, handle, answered) in &mut listeners {
                let s = sockets.get_mut::<tcp::Socket>(*handle);
                if *answered || !s.may_send() {
                    continue;
                }
                if *port == 9999 {
                    s.send_slice(b"up 50%\n").unwrap();
                } else if s.can_recv() {
                    let _ = s.recv(|b| (b.len(), ()));
                    let reply: &[u8] = if failing { b"HTTP/1.1 500 Oops\r\n\r\n" } else { b"HTTP/1.1 200 OK\r\n\r\n" };
                    s.send_slice(reply).unwrap();
                } else {
                    continue;
                }
                s.close();
                *answered = true;
            }
            iface.poll(ts, &mut dev, &mut sockets);
            while let Some(p) = dev.pop_tx() {
                m.prober().receive(p);
            }
            if !failing && m.agent(k).and_then(|a| a.last()).is_some() {
                let e = m.effect(k, now).unwrap();
                assert!(e.up, "{:?}", m.check(k).unwrap().last());
                saw_half |= e.weight == 5;
            }
        }
        assert!(saw_half, "the agent's 50% never applied");
        assert_eq!(m.agent(k).unwrap().last(), Some("agent: up, 50%"));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].transition.to, events[0].transition.reason.as_str()), (State::Down, "HTTP 500"));
        assert_eq!(m.effect(k, now).unwrap().weight, 0);
    }

    /// The command kind: exit 5 is up with weight 3.
    #[test]
    fn command_weight_applies() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        let argv = vec!["/bin/sh".into(), "-c".into(), "exit 5".into()];
        let mut h = health(HealthKind::Command(argv));
        h.timeout = Duration::from_secs(5);
        h.interval = Duration::from_secs(5);
        let k = m.add(t0, target("10.20.0.11:80", 10), Some(&h), None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.check(k).unwrap().last().is_none() {
            assert!(Instant::now() < deadline);
            // Real time: the program runs in real time.
            m.poll(Instant::now().max(t0 + Duration::from_secs(5)));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(m.check(k).unwrap().last().unwrap().detail, "exit 5, weight 3");
        assert_eq!(m.effect(k, Instant::now()).unwrap().weight, 3);
    }
}
