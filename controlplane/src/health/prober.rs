//! The prober: tcp, http, udp, icmp and agent probes over smoltcp, polled by the
//! caller with explicit timestamps.
//!
//! A [`Prober`] owns a smoltcp [`Interface`] and [`SocketSet`] on a [`QueueDevice`]. The
//! caller (the control-plane thread) hands it the IP packets the data path punted for it
//! ([`Prober::receive`]), polls it with the current time ([`Prober::poll`], which never
//! blocks and returns the probes that finished), and takes the IP packets it wants sent
//! ([`Prober::transmit`]) to the data path. [`Prober::poll_at`] says when it next needs a
//! poll. Nothing inside reads a clock.
//!
//! Every probe has a deadline (its timeout) and bounded buffers: a peer that accepts and
//! never answers times out, one that answers garbage fails, one that floods has at most
//! [`crate::health::http::MAX_INSPECT`] bytes looked at and the rest dropped (the socket
//! is reset once there is a verdict). Finished TCP probes are reset, not closed, so no
//! TIME-WAIT state piles up on either side.
//!
//! Source ports come from the range given at construction, which must be disjoint from
//! the Full-NAT local ports (and from anything else the data path would steer elsewhere),
//! so the data path can punt replies to the prober by destination port alone. ICMP
//! errors (port or host unreachable) are looked at as the packets arrive, before smoltcp
//! sees them, because smoltcp's UDP and TCP sockets do not report them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    HardwareAddress, Icmpv4DstUnreachable, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv6DstUnreachable,
    Icmpv6Message, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr, IpProtocol, Ipv4Packet, Ipv6Packet,
};

use super::agent::MAX_REPLY;
use super::device::QueueDevice;
use super::http::{self, HttpCheck, StatusRanges};
use super::ProbeResult;
use crate::config::HealthKind;

/// Most source addresses the prober's interface holds (smoltcp's
/// `iface-max-addr-count-8`, set in controlplane/Cargo.toml); [`ProberConfig::addresses`]
/// beyond it are not used.
pub const MAX_ADDRESSES: usize = 8;

/// TCP receive buffer per probe.
const TCP_RX: usize = 8 * 1024;
/// TCP send buffer per probe (an HTTP request).
const TCP_TX: usize = 2 * 1024;
/// UDP and ICMP buffers per probe: a few small datagrams.
const DGRAM_SLOTS: usize = 4;
/// UDP and ICMP payload bytes per probe.
const DGRAM_BYTES: usize = 4 * 1024;
/// The payload of an echo request.
const ECHO_PAYLOAD: &[u8] = b"rvs-health-probe";

/// What a probe does. The `command` kind runs outside the prober
/// ([`crate::health::command`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// TCP connect: success once established.
    Tcp,
    /// HTTP GET over TCP, judged by [`HttpCheck`].
    Http {
        /// Request path.
        path: String,
        /// `Host` header (`None`: the target's address).
        host: Option<String>,
        /// Accepted statuses.
        status: StatusRanges,
        /// A substring the body must contain.
        body: Option<String>,
    },
    /// Send `send` in a UDP datagram; a reply starting with `expect` is success.
    Udp {
        /// The datagram.
        send: Vec<u8>,
        /// The reply's expected start (empty: any reply).
        expect: Vec<u8>,
    },
    /// ICMP echo (IPv4).
    Icmp,
    /// HAProxy agent check: connect, read one line. A success's detail is the line,
    /// for [`crate::health::agent::AgentStatus::record`].
    Agent,
}

impl ProbeKind {
    /// The probe for a configured health check kind; `None` for `command`.
    pub fn from_health(kind: &HealthKind) -> Option<ProbeKind> {
        Some(match kind {
            HealthKind::Tcp => ProbeKind::Tcp,
            HealthKind::Http { path, host, status, body } => {
                ProbeKind::Http { path: path.clone(), host: host.clone(), status: status.clone(), body: body.clone() }
            }
            HealthKind::Udp { send, expect } => {
                ProbeKind::Udp { send: send.clone().into_bytes(), expect: expect.clone().into_bytes() }
            }
            HealthKind::Icmp => ProbeKind::Icmp,
            HealthKind::Command(_) => return None,
        })
    }
}

/// One probe to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Address and port probed (the port is ignored by icmp).
    pub target: SocketAddr,
    /// What to do.
    pub kind: ProbeKind,
    /// How long it may take.
    pub timeout: Duration,
}

/// Names a started probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(u64);

/// A probe that finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Which one.
    pub id: ProbeId,
    /// Its result.
    pub result: ProbeResult,
}

/// Why a probe could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// Every source port of the range is in use by a running probe.
    NoSourcePort,
    /// The prober has no address of the target's family.
    NoSourceAddress,
    /// This kind cannot be run for this target (icmp over IPv6, for now).
    Unsupported(&'static str),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NoSourcePort => f.write_str("every probe source port is in use"),
            StartError::NoSourceAddress => f.write_str("no source address of the target's family"),
            StartError::Unsupported(what) => write!(f, "{what} is not supported"),
        }
    }
}

impl std::error::Error for StartError {}

/// What the prober is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProberConfig {
    /// Its own addresses with their prefix lengths: the DPDK ports' addresses.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Source ports for tcp, http, udp and agent probes (and icmp identifiers);
    /// disjoint from the Full-NAT local ports.
    pub source_ports: RangeInclusive<u16>,
    /// IP MTU of the path (1500 on Ethernet).
    pub mtu: usize,
    /// Seeds smoltcp's initial sequence numbers; differ per start.
    pub seed: u64,
}

/// Per-probe socket state.
#[derive(Debug)]
enum Io {
    Tcp { handle: SocketHandle, connected: bool, job: TcpJob },
    Udp { handle: SocketHandle, expect: Vec<u8> },
    Icmp { handle: SocketHandle, ident: u16 },
}

#[derive(Debug)]
enum TcpJob {
    Connect,
    Http { request: Vec<u8>, sent: usize, check: Box<HttpCheck> },
    Agent { line: Vec<u8> },
}

#[derive(Debug)]
struct Active {
    target: SocketAddr,
    port: u16,
    deadline: Instant,
    io: Io,
    done: Option<ProbeResult>,
}

/// The prober. See the module documentation.
pub struct Prober {
    epoch: Instant,
    iface: Interface,
    sockets: SocketSet<'static>,
    device: QueueDevice,
    ports: RangeInclusive<u16>,
    next_port: u16,
    in_use: HashSet<u16>,
    next_id: u64,
    active: BTreeMap<ProbeId, Active>,
    /// Aborted TCP sockets, removed once their reset is sent.
    reaping: Vec<SocketHandle>,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober").field("active", &self.active.len()).field("ports", &self.ports).finish()
    }
}

impl Prober {
    /// A prober whose clock starts at `now` (every later timestamp must not be earlier).
    pub fn new(config: ProberConfig, now: Instant) -> Self {
        let mut device = QueueDevice::new(config.mtu);
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = config.seed;
        let mut iface = Interface::new(cfg, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            for &(a, len) in &config.addresses {
                let _ = addrs.push(IpCidr::new(IpAddress::from(a), len));
            }
        });
        // The data path routes; smoltcp only needs *a* route for off-link targets, and on
        // an IP-medium device the gateway is never looked up.
        for &(a, _) in &config.addresses {
            match a {
                IpAddr::V4(v4) => {
                    let _ = iface.routes_mut().add_default_ipv4_route(v4);
                }
                IpAddr::V6(v6) => {
                    let _ = iface.routes_mut().add_default_ipv6_route(v6);
                }
            }
        }
        let next_port = *config.source_ports.start();
        Prober {
            epoch: now,
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            ports: config.source_ports,
            next_port,
            in_use: HashSet::new(),
            next_id: 0,
            active: BTreeMap::new(),
            reaping: Vec::new(),
        }
    }

    fn ts(&self, now: Instant) -> SmolInstant {
        SmolInstant::from_micros(now.saturating_duration_since(self.epoch).as_micros() as i64)
    }

    /// Probes running.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Packets dropped because the receive queue was full.
    pub fn rx_dropped(&self) -> u64 {
        self.device.rx_dropped
    }

    fn take_port(&mut self) -> Option<u16> {
        let (lo, hi) = (*self.ports.start(), *self.ports.end());
        let span = u32::from(hi).checked_sub(u32::from(lo))? + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= hi { lo } else { p + 1 };
            if self.in_use.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// Starts a probe at `now`.
    pub fn start(&mut self, now: Instant, spec: ProbeSpec) -> Result<ProbeId, StartError> {
        let family_ok = self.iface.ip_addrs().iter().any(|c| {
            matches!(
                (c.address(), spec.target.ip()),
                (IpAddress::Ipv4(_), IpAddr::V4(_)) | (IpAddress::Ipv6(_), IpAddr::V6(_))
            )
        });
        if !family_ok {
            return Err(StartError::NoSourceAddress);
        }
        let port = self.take_port().ok_or(StartError::NoSourcePort)?;
        let remote = (IpAddress::from(spec.target.ip()), spec.target.port());
        let io = match spec.kind {
            ProbeKind::Tcp | ProbeKind::Http { .. } | ProbeKind::Agent => {
                let mut s =
                    tcp::Socket::new(tcp::SocketBuffer::new(vec![0; TCP_RX]), tcp::SocketBuffer::new(vec![0; TCP_TX]));
                if s.connect(self.iface.context(), remote, port).is_err() {
                    self.in_use.remove(&port);
                    return Err(StartError::NoSourceAddress);
                }
                let job = match spec.kind {
                    ProbeKind::Http { path, host, status, body } => {
                        let host = host.unwrap_or_else(|| match spec.target.ip() {
                            IpAddr::V4(a) => a.to_string(),
                            IpAddr::V6(a) => format!("[{a}]"),
                        });
                        TcpJob::Http {
                            request: http::request(&path, &host),
                            sent: 0,
                            check: Box::new(HttpCheck::new(status, body.as_deref())),
                        }
                    }
                    ProbeKind::Agent => TcpJob::Agent { line: Vec::new() },
                    _ => TcpJob::Connect,
                };
                Io::Tcp { handle: self.sockets.add(s), connected: false, job }
            }
            ProbeKind::Udp { send, expect } => {
                let mut s = udp::Socket::new(dgram_udp(), dgram_udp());
                let sent = s.bind(port).is_ok() && s.send_slice(&send, remote).is_ok();
                if !sent {
                    self.in_use.remove(&port);
                    return Err(StartError::Unsupported("this UDP payload"));
                }
                Io::Udp { handle: self.sockets.add(s), expect }
            }
            ProbeKind::Icmp => {
                let mut s = icmp::Socket::new(dgram_icmp(), dgram_icmp());
                let ok = s.bind(icmp::Endpoint::Ident(port)).is_ok()
                    && match spec.target.ip() {
                        IpAddr::V4(_) => {
                            let repr = Icmpv4Repr::EchoRequest { ident: port, seq_no: 1, data: ECHO_PAYLOAD };
                            match s.send(repr.buffer_len(), remote.0) {
                                Ok(buf) => {
                                    let caps = ChecksumCapabilities::default();
                                    repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                                    true
                                }
                                Err(_) => false,
                            }
                        }
                        IpAddr::V6(dst) => {
                            // ICMPv6 echo (RFC 4443 §4.1). The socket recomputes the checksum
                            // with the source address it picks, so none is needed here.
                            let repr = Icmpv6Repr::EchoRequest { ident: port, seq_no: 1, data: ECHO_PAYLOAD };
                            match s.send(repr.buffer_len(), remote.0) {
                                Ok(buf) => {
                                    let (src, caps) =
                                        (std::net::Ipv6Addr::UNSPECIFIED, ChecksumCapabilities::ignored());
                                    repr.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(buf), &caps);
                                    true
                                }
                                Err(_) => false,
                            }
                        }
                    };
                if !ok {
                    self.in_use.remove(&port);
                    return Err(StartError::Unsupported("this echo request"));
                }
                Io::Icmp { handle: self.sockets.add(s), ident: port }
            }
        };
        let id = ProbeId(self.next_id);
        self.next_id += 1;
        self.active.insert(id, Active { target: spec.target, port, deadline: now + spec.timeout, io, done: None });
        Ok(id)
    }

    /// Stops a probe without a result (its server was removed).
    pub fn cancel(&mut self, id: ProbeId) {
        if let Some(a) = self.active.remove(&id) {
            self.release(a);
        }
    }

    fn release(&mut self, a: Active) {
        self.in_use.remove(&a.port);
        match a.io {
            Io::Tcp { handle, .. } => {
                self.sockets.get_mut::<tcp::Socket>(handle).abort();
                self.reaping.push(handle);
            }
            Io::Udp { handle, .. } | Io::Icmp { handle, .. } => {
                self.sockets.remove(handle);
            }
        }
    }

    /// An IP packet from the data path, for the prober. False if it was dropped (the
    /// receive queue is full). ICMP errors about running probes fail them here.
    pub fn receive(&mut self, packet: Vec<u8>) -> bool {
        if let Some((proto, local_port, remote, detail)) = icmp_error(&packet) {
            for a in self.active.values_mut() {
                let kind_matches = matches!(
                    (&a.io, proto),
                    (Io::Udp { .. }, IpProtocol::Udp) | (Io::Tcp { connected: false, .. }, IpProtocol::Tcp)
                );
                if a.done.is_none() && kind_matches && a.port == local_port && a.target == remote {
                    a.done = Some(ProbeResult::failure(detail.clone()));
                }
            }
        }
        self.device.push_rx(packet)
    }

    /// The next IP packet for the data path to send, if any.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        self.device.pop_tx()
    }

    /// When the prober next needs a poll if no packet arrives: the earliest of smoltcp's
    /// timers and the probes' deadlines; `None` when idle.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let smol = self
            .iface
            .poll_at(self.ts(now), &self.sockets)
            .map(|t| self.epoch + Duration::from_micros(t.total_micros().max(0) as u64));
        let deadline = self.active.values().map(|a| a.deadline).min();
        match (smol, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes received packets and timers at `now`; returns the probes that finished.
    /// Never blocks; the work is bounded by the queue and buffer sizes.
    pub fn poll(&mut self, now: Instant) -> Vec<Finished> {
        let ts = self.ts(now);
        self.iface.poll(ts, &mut self.device, &mut self.sockets);
        for h in self.reaping.drain(..) {
            self.sockets.remove(h);
        }
        for a in self.active.values_mut() {
            if a.done.is_none() {
                a.done = drive(&mut self.sockets, a, now);
            }
        }
        let finished: Vec<ProbeId> = self.active.iter().filter(|(_, a)| a.done.is_some()).map(|(id, _)| *id).collect();
        let mut out = Vec::with_capacity(finished.len());
        for id in finished {
            if let Some(mut a) = self.active.remove(&id) {
                if let Some(result) = a.done.take() {
                    out.push(Finished { id, result });
                }
                self.release(a);
            }
        }
        if !self.reaping.is_empty() {
            // Send the resets now rather than at the next poll.
            self.iface.poll(ts, &mut self.device, &mut self.sockets);
            for h in self.reaping.drain(..) {
                self.sockets.remove(h);
            }
        }
        out
    }
}

fn dgram_udp() -> udp::PacketBuffer<'static> {
    udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; DGRAM_SLOTS], vec![0; DGRAM_BYTES])
}

fn dgram_icmp() -> icmp::PacketBuffer<'static> {
    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; DGRAM_SLOTS], vec![0; DGRAM_BYTES])
}

/// Advances one probe; its result if it has one.
fn drive(sockets: &mut SocketSet<'static>, a: &mut Active, now: Instant) -> Option<ProbeResult> {
    let timed_out = now >= a.deadline;
    match &mut a.io {
        Io::Tcp { handle, connected, job } => {
            let s = sockets.get_mut::<tcp::Socket>(*handle);
            if !*connected && s.may_send() {
                *connected = true;
                if let TcpJob::Connect = job {
                    return Some(ProbeResult::success("connected"));
                }
            }
            if !*connected {
                return if s.state() == tcp::State::Closed {
                    Some(ProbeResult::failure("connection refused"))
                } else if timed_out {
                    Some(ProbeResult::failure("connect timeout"))
                } else {
                    None
                };
            }
            let peer_done = !s.may_recv();
            let reset = s.state() == tcp::State::Closed;
            match job {
                TcpJob::Connect => Some(ProbeResult::success("connected")),
                TcpJob::Http { request, sent, check } => {
                    if *sent < request.len() && s.can_send() {
                        *sent += s.send_slice(&request[*sent..]).unwrap_or(0);
                    }
                    while s.can_recv() {
                        let fed = s.recv(|buf| (buf.len(), check.feed(buf).is_some())).unwrap_or(true);
                        if fed {
                            break;
                        }
                    }
                    if let Some(v) = check.verdict() {
                        return Some(v.clone());
                    }
                    if reset {
                        Some(ProbeResult::failure("connection reset mid-reply"))
                    } else if peer_done && !s.can_recv() {
                        Some(check.finish())
                    } else if timed_out {
                        Some(ProbeResult::failure("HTTP reply timeout"))
                    } else {
                        None
                    }
                }
                TcpJob::Agent { line } => {
                    while s.can_recv() && line.len() < MAX_REPLY {
                        let room = MAX_REPLY - line.len();
                        let _ = s.recv(|buf| {
                            let n = buf.len().min(room);
                            line.extend_from_slice(&buf[..n]);
                            (n, ())
                        });
                    }
                    let end = line.iter().position(|&b| b == b'\n');
                    if end.is_some() || line.len() >= MAX_REPLY || (peer_done && !line.is_empty()) {
                        let end = end.unwrap_or(line.len());
                        return Some(ProbeResult::success(String::from_utf8_lossy(&line[..end]).trim().to_string()));
                    }
                    if reset {
                        Some(ProbeResult::failure("connection reset before a reply"))
                    } else if peer_done {
                        Some(ProbeResult::failure("closed without a reply"))
                    } else if timed_out {
                        Some(ProbeResult::failure("reply timeout"))
                    } else {
                        None
                    }
                }
            }
        }
        Io::Udp { handle, expect } => {
            let s = sockets.get_mut::<udp::Socket>(*handle);
            let want = (IpAddress::from(a.target.ip()), a.target.port());
            let mut verdict = None;
            while let Ok((data, meta)) = s.recv() {
                if (meta.endpoint.addr, meta.endpoint.port) != want {
                    continue;
                }
                verdict = Some(if data.starts_with(expect) {
                    ProbeResult::success("UDP reply")
                } else {
                    ProbeResult::failure("unexpected UDP reply")
                });
                break;
            }
            verdict.or_else(|| timed_out.then(|| ProbeResult::failure("no UDP reply")))
        }
        Io::Icmp { handle, ident } => {
            let s = sockets.get_mut::<icmp::Socket>(*handle);
            let want = IpAddress::from(a.target.ip());
            while let Ok((data, from)) = s.recv() {
                if from != want {
                    continue;
                }
                let replied = match (from, a.target.ip()) {
                    (IpAddress::Ipv4(_), _) => Icmpv4Packet::new_checked(data)
                        .ok()
                        .and_then(|p| Icmpv4Repr::parse(&p, &ChecksumCapabilities::default()).ok())
                        .is_some_and(|r| matches!(r, Icmpv4Repr::EchoReply { ident: i, .. } if i == *ident)),
                    // The interface has verified the checksum on the way in (it needs our
                    // address, which the socket does not report).
                    (IpAddress::Ipv6(src), IpAddr::V6(_)) => Icmpv6Packet::new_checked(data)
                        .ok()
                        .and_then(|p| {
                            let any = std::net::Ipv6Addr::UNSPECIFIED;
                            Icmpv6Repr::parse(&src, &any, &p, &ChecksumCapabilities::ignored()).ok()
                        })
                        .is_some_and(|r| matches!(r, Icmpv6Repr::EchoReply { ident: i, .. } if i == *ident)),
                    (IpAddress::Ipv6(_), IpAddr::V4(_)) => false,
                };
                if replied {
                    return Some(ProbeResult::success("echo reply"));
                }
            }
            timed_out.then(|| ProbeResult::failure("no echo reply"))
        }
    }
}

/// An ICMPv4 or ICMPv6 destination-unreachable about a packet we sent: (its protocol,
/// our source port, its destination, the error in words).
fn icmp_error(packet: &[u8]) -> Option<(IpProtocol, u16, SocketAddr, String)> {
    match packet.first()? >> 4 {
        4 => icmp4_error(packet),
        6 => icmp6_error(packet),
        _ => None,
    }
}

/// [`icmp_error`] for ICMPv6 (RFC 4443 §3.1): the quoted packet is an IPv6 header and
/// as much of the invoking packet as fits; a quoted packet whose transport header is not
/// right after the fixed header (extension headers) is not matched.
fn icmp6_error(packet: &[u8]) -> Option<(IpProtocol, u16, SocketAddr, String)> {
    let ip = Ipv6Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Icmpv6 {
        return None;
    }
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    if icmp.msg_type() != Icmpv6Message::DstUnreachable {
        return None;
    }
    let detail = match Icmpv6DstUnreachable::from(icmp.msg_code()) {
        Icmpv6DstUnreachable::PortUnreachable => "port unreachable".to_string(),
        Icmpv6DstUnreachable::AddrUnreachable => "host unreachable".to_string(),
        Icmpv6DstUnreachable::NoRoute => "network unreachable".to_string(),
        Icmpv6DstUnreachable::AdminProhibit => "administratively prohibited".to_string(),
        other => format!("destination unreachable ({other})"),
    };
    // After the 4-byte type/code/checksum and 4 unused bytes.
    let quoted = icmp.payload();
    // The quoted packet may be cut short of its payload length: not new_checked.
    let ports = quoted.get(40..44)?;
    let inner = Ipv6Packet::new_unchecked(quoted);
    let proto = inner.next_header();
    if !matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) {
        return None;
    }
    let src_port = u16::from_be_bytes([ports[0], ports[1]]);
    let dst_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some((proto, src_port, SocketAddr::new(IpAddr::V6(inner.dst_addr()), dst_port), detail))
}

/// [`icmp_error`] for ICMPv4.
fn icmp4_error(packet: &[u8]) -> Option<(IpProtocol, u16, SocketAddr, String)> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Icmp {
        return None;
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
    if icmp.msg_type() != Icmpv4Message::DstUnreachable {
        return None;
    }
    let detail = match Icmpv4DstUnreachable::from(icmp.msg_code()) {
        Icmpv4DstUnreachable::PortUnreachable => "port unreachable".to_string(),
        Icmpv4DstUnreachable::HostUnreachable => "host unreachable".to_string(),
        Icmpv4DstUnreachable::NetUnreachable => "network unreachable".to_string(),
        Icmpv4DstUnreachable::ProtoUnreachable => "protocol unreachable".to_string(),
        other => format!("destination unreachable ({other})"),
    };
    // The quoted packet: its IPv4 header and at least the first 8 bytes of transport.
    let inner_bytes = icmp.data();
    let inner = Ipv4Packet::new_unchecked(inner_bytes);
    let hl = usize::from(inner.header_len());
    if inner_bytes.len() < hl + 4 || hl < 20 {
        return None;
    }
    let ports = &inner_bytes[hl..hl + 4];
    let src_port = u16::from_be_bytes([ports[0], ports[1]]);
    let dst_port = u16::from_be_bytes([ports[2], ports[3]]);
    let dst = SocketAddr::new(IpAddr::V4(inner.dst_addr()), dst_port);
    Some((inner.next_header(), src_port, dst, detail))
}

#[cfg(test)]
#[path = "prober_tests.rs"]
mod tests;
