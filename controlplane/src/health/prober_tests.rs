//! Prober tests: each probe kind against a scripted peer (a second smoltcp interface,
//! 10.20.0.11) at the other end of the in-memory queues, on a virtual clock.

use super::*;
use smoltcp::wire::{TcpPacket, UdpPacket};

const PROBER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 20, 0, 1));
const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 20, 0, 11));
const STEP: Duration = Duration::from_millis(10);
const TIMEOUT: Duration = Duration::from_secs(1);
const PORTS: RangeInclusive<u16> = 40000..=40099;

/// The scripted far end.
struct Peer {
    iface: Interface,
    sockets: SocketSet<'static>,
    device: QueueDevice,
    /// Drop everything sent to the peer.
    blackhole: bool,
}

impl Peer {
    fn new(t0: Instant) -> Self {
        let mut device = QueueDevice::new(1500);
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = 99;
        let mut iface = Interface::new(cfg, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::from(PEER), 24)).unwrap());
        let _ = t0;
        Peer { iface, sockets: SocketSet::new(Vec::new()), device, blackhole: false }
    }

    fn listen(&mut self, port: u16, tx: usize) -> SocketHandle {
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; tx]));
        s.listen(port).unwrap();
        self.sockets.add(s)
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}

/// Prober and peer, wired together, with a virtual clock.
struct Net {
    t0: Instant,
    now: Instant,
    prober: Prober,
    peer: Peer,
    /// Every packet the prober sent.
    sent: Vec<Vec<u8>>,
}

impl Net {
    fn new() -> Self {
        let t0 = Instant::now();
        let cfg = ProberConfig { addresses: vec![(PROBER, 24)], source_ports: PORTS, mtu: 1500, seed: 7 };
        Net { t0, now: t0, prober: Prober::new(cfg, t0), peer: Peer::new(t0), sent: Vec::new() }
    }

    fn start(&mut self, port: u16, kind: ProbeKind) -> ProbeId {
        self.start_timeout(port, kind, TIMEOUT)
    }

    fn start_timeout(&mut self, port: u16, kind: ProbeKind, timeout: Duration) -> ProbeId {
        let spec = ProbeSpec { target: SocketAddr::new(PEER, port), kind, timeout };
        self.prober.start(self.now, spec).unwrap()
    }

    /// One 10 ms step: poll the prober, carry packets both ways, poll the peer, run the
    /// peer's script.
    fn step(&mut self, script: &mut dyn FnMut(&mut Peer, Instant)) -> Vec<Finished> {
        self.now += STEP;
        let done = self.prober.poll(self.now);
        while let Some(p) = self.prober.transmit() {
            self.sent.push(p.clone());
            if !self.peer.blackhole {
                self.peer.device.push_rx(p);
            }
        }
        let ts = SmolInstant::from_micros((self.now - self.t0).as_micros() as i64);
        self.peer.iface.poll(ts, &mut self.peer.device, &mut self.peer.sockets);
        script(&mut self.peer, self.now);
        self.peer.iface.poll(ts, &mut self.peer.device, &mut self.peer.sockets);
        while let Some(p) = self.peer.device.pop_tx() {
            self.prober.receive(p);
        }
        done
    }

    /// Steps until probe `id` finishes (at most 5 s); its result and when.
    fn run(&mut self, id: ProbeId, script: &mut dyn FnMut(&mut Peer, Instant)) -> (ProbeResult, Duration) {
        let start = self.now;
        for _ in 0..500 {
            for f in self.step(script) {
                if f.id == id {
                    return (f.result, self.now - start);
                }
            }
        }
        panic!("probe never finished");
    }
}

fn idle(_: &mut Peer, _: Instant) {}

fn http(status: &str, body: Option<&str>) -> ProbeKind {
    ProbeKind::Http { path: "/health".into(), host: None, status: status.parse().unwrap(), body: body.map(Into::into) }
}

/// A peer script: an HTTP server on port 80 that answers `reply` (after `delay`) and
/// closes; `then_reset` aborts instead of closing.
fn http_server(
    peer: &mut Peer,
    reply: &'static [u8],
    delay: Duration,
    then_reset: bool,
) -> impl FnMut(&mut Peer, Instant) {
    let h = peer.listen(80, 4096);
    let mut asked: Option<Instant> = None;
    let mut done = false;
    move |p: &mut Peer, now: Instant| {
        let s = p.tcp(h);
        if s.can_recv() {
            let req = s.recv(|b| (b.len(), b.to_vec())).unwrap();
            let req = String::from_utf8(req).unwrap();
            assert!(req.starts_with("GET /health HTTP/1.0\r\n"), "{req}");
            assert!(req.contains("\r\nHost: 10.20.0.11\r\n"), "{req}");
            asked = Some(now);
        }
        if let Some(at) = asked {
            if !done && now >= at + delay && s.can_send() {
                s.send_slice(reply).unwrap();
                if then_reset {
                    done = true;
                } else {
                    s.close();
                    done = true;
                }
            } else if done && then_reset && s.send_queue() == 0 {
                s.abort();
            }
        }
    }
}

#[test]
fn tcp_connect_refused_and_timeout() {
    let mut n = Net::new();
    let h = n.peer.listen(22, 1024);
    let id = n.start(22, ProbeKind::Tcp);
    let (r, took) = n.run(id, &mut idle);
    assert_eq!(r, ProbeResult::success("connected"));
    assert!(took < Duration::from_millis(100));
    // The prober reset the connection: the peer's socket is no longer established.
    for _ in 0..5 {
        n.step(&mut idle);
    }
    assert!(!n.peer.tcp(h).is_active(), "{:?}", n.peer.tcp(h).state());

    // No listener: the peer's stack answers RST.
    let id = n.start(23, ProbeKind::Tcp);
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("connection refused"));

    // No answer at all.
    n.peer.blackhole = true;
    let id = n.start(22, ProbeKind::Tcp);
    let (r, took) = n.run(id, &mut idle);
    assert_eq!(r, ProbeResult::failure("connect timeout"));
    assert!(took >= TIMEOUT && took < TIMEOUT + 3 * STEP, "{took:?}");
    assert_eq!(n.prober.active(), 0);
    assert_eq!(n.prober.sockets.iter().count(), 0, "sockets are freed");
}

#[test]
fn source_ports_come_from_the_range() {
    let mut n = Net::new();
    n.peer.blackhole = true;
    let ids: Vec<ProbeId> = (0..100).map(|_| n.start(80, ProbeKind::Tcp)).collect();
    let spec = ProbeSpec { target: SocketAddr::new(PEER, 80), kind: ProbeKind::Tcp, timeout: TIMEOUT };
    assert_eq!(n.prober.start(n.now, spec.clone()), Err(StartError::NoSourcePort));
    n.step(&mut idle);
    for p in &n.sent {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(IpAddr::V4(ip.src_addr()), PROBER);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(PORTS.contains(&tcp.src_port()), "{}", tcp.src_port());
    }
    assert_eq!(n.sent.len(), 100);
    n.prober.cancel(ids[0]);
    assert!(n.prober.start(n.now, spec).is_ok(), "a cancelled probe frees its port");
    // Wrong family.
    let v6 = ProbeSpec { target: "[fd00::1]:80".parse().unwrap(), kind: ProbeKind::Tcp, timeout: TIMEOUT };
    assert_eq!(n.prober.start(n.now, v6), Err(StartError::NoSourceAddress));
}

#[test]
fn http_success_status_and_body() {
    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalive", Duration::ZERO, false);
    let id = n.start(80, http("200-399", None));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::success("HTTP 200"));

    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalive", Duration::ZERO, false);
    let id = n.start(80, http("200", Some("alive")));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::success("HTTP 200, body matches"));

    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 200 OK\r\n\r\ndead", Duration::ZERO, false);
    let id = n.start(80, http("200", Some("alive")));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::failure("HTTP 200, body lacks the expected text"));

    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 500 Internal Server Error\r\n\r\n", Duration::ZERO, false);
    let id = n.start(80, http("200-399", None));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::failure("HTTP 500"));
}

#[test]
fn http_slow_silent_garbage_and_reset() {
    // Slow but within the timeout.
    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 204 No Content\r\n\r\n", Duration::from_millis(600), false);
    let id = n.start(80, http("200-399", None));
    let (r, took) = n.run(id, &mut s);
    assert_eq!(r, ProbeResult::success("HTTP 204"));
    assert!(took >= Duration::from_millis(600));

    // Slower than the timeout.
    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 200 OK\r\n\r\n", Duration::from_secs(2), false);
    let id = n.start(80, http("200-399", None));
    let (r, took) = n.run(id, &mut s);
    assert_eq!(r, ProbeResult::failure("HTTP reply timeout"));
    assert!(took < TIMEOUT + 3 * STEP);

    // Accepts and never answers.
    let mut n = Net::new();
    n.peer.listen(80, 1024);
    let id = n.start(80, http("200-399", None));
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("HTTP reply timeout"));

    // Garbage.
    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"\x16\x03\x01 garbage\r\n", Duration::ZERO, false);
    let id = n.start(80, http("200-399", None));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::failure("not an HTTP reply"));

    // Reset in the middle of the headers.
    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 200 OK\r\nContent-Len", Duration::ZERO, true);
    let id = n.start(80, http("200", Some("alive")));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::failure("connection reset mid-reply"));

    // Closed in the middle of the status line.
    let mut n = Net::new();
    let mut s = http_server(&mut n.peer, b"HTTP/1.1 2", Duration::ZERO, false);
    let id = n.start(80, http("200", None));
    assert_eq!(n.run(id, &mut s).0, ProbeResult::failure("truncated HTTP status line"));
}

#[test]
fn http_10mb_reply_is_bounded() {
    const TEN_MB: usize = 10 << 20;
    let mut n = Net::new();
    let h = n.peer.listen(80, 64 * 1024);
    let mut pushed = 0usize;
    let mut script = |p: &mut Peer, _: Instant| {
        let s = p.tcp(h);
        if s.can_recv() {
            let _ = s.recv(|b| (b.len(), ()));
            s.send_slice(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
            pushed = 1;
        }
        while pushed > 0 && pushed < TEN_MB && s.can_send() {
            pushed += s.send_slice(&[b'x'; 8192]).unwrap();
        }
    };
    let id = n.start(80, http("200", Some("needle")));
    let (r, _) = n.run(id, &mut script);
    assert_eq!(r, ProbeResult::failure("HTTP 200, body lacks the expected text in its first 64 KiB"));
    assert!(pushed < TEN_MB / 4, "the prober stopped reading early ({pushed} bytes pushed)");
    assert_eq!(n.prober.active(), 0);
}

#[test]
fn udp_reply_mismatch_unreachable_and_timeout() {
    let udp_kind = || ProbeKind::Udp { send: b"ping".to_vec(), expect: b"pong".to_vec() };
    let mut n = Net::new();
    let mut s = udp::Socket::new(dgram_udp(), dgram_udp());
    s.bind(5353).unwrap();
    let h = n.peer.sockets.add(s);
    let answer = |reply: &'static [u8]| {
        move |p: &mut Peer, _: Instant| {
            let s = p.sockets.get_mut::<udp::Socket>(h);
            if let Ok((data, meta)) = s.recv() {
                assert_eq!(data, b"ping");
                let to = meta.endpoint;
                s.send_slice(reply, to).unwrap();
            }
        }
    };
    let id = n.start(5353, udp_kind());
    assert_eq!(n.run(id, &mut answer(b"pong 1")).0, ProbeResult::success("UDP reply"));
    let id = n.start(5353, udp_kind());
    assert_eq!(n.run(id, &mut answer(b"nope")).0, ProbeResult::failure("unexpected UDP reply"));
    // Nothing bound on 5354: the peer's stack sends ICMP port unreachable.
    let id = n.start(5354, udp_kind());
    let (r, took) = n.run(id, &mut idle);
    assert_eq!(r, ProbeResult::failure("port unreachable"));
    assert!(took < Duration::from_millis(100));
    // Bound but silent.
    let id = n.start(5353, udp_kind());
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("no UDP reply"));
    for p in &n.sent {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert!(PORTS.contains(&UdpPacket::new_checked(ip.payload()).unwrap().src_port()));
    }
}

#[test]
fn icmp_echo() {
    let mut n = Net::new();
    let id = n.start(0, ProbeKind::Icmp);
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::success("echo reply"));
    n.peer.blackhole = true;
    let id = n.start(0, ProbeKind::Icmp);
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("no echo reply"));
}

#[test]
fn agent_line() {
    let mut n = Net::new();
    let h = n.peer.listen(9999, 1024);
    let mut said = false;
    let mut script = |p: &mut Peer, _: Instant| {
        let s = p.tcp(h);
        if !said && s.may_send() {
            s.send_slice(b"up 50%\n").unwrap();
            said = true;
        }
    };
    let id = n.start(9999, ProbeKind::Agent);
    let (r, _) = n.run(id, &mut script);
    assert_eq!(r, ProbeResult::success("up 50%"));
    let mut a = crate::health::agent::AgentStatus::new(TIMEOUT * 3);
    a.record(n.now, &r.detail);
    assert_eq!(a.weight(n.now, 10), 5);
    // Accepts and says nothing.
    n.peer.listen(9999, 1024);
    let id = n.start(9999, ProbeKind::Agent);
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("reply timeout"));
}

#[test]
fn a_packet_flood_is_dropped_not_queued() {
    let mut n = Net::new();
    n.peer.blackhole = true;
    let id = n.start(80, ProbeKind::Tcp);
    n.step(&mut idle);
    // 5000 junk packets and 5000 stray TCP segments to a probe port.
    let mut accepted = 0;
    for i in 0..10_000u32 {
        let junk = if i % 2 == 0 { vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0] } else { n.sent[0].clone() };
        accepted += usize::from(n.prober.receive(junk));
    }
    assert_eq!(accepted, crate::health::device::QUEUE_LIMIT);
    assert_eq!(n.prober.rx_dropped(), 10_000 - crate::health::device::QUEUE_LIMIT as u64);
    let (r, _) = n.run(id, &mut idle);
    assert_eq!(r, ProbeResult::failure("connect timeout"));
    assert_eq!(n.prober.device.rx_len(), 0);
}

#[test]
fn poll_at_reports_deadlines() {
    let mut n = Net::new();
    assert_eq!(n.prober.poll_at(n.now), None);
    n.peer.blackhole = true;
    n.start(80, ProbeKind::Tcp);
    let at = n.prober.poll_at(n.now).unwrap();
    assert!(at <= n.now + TIMEOUT);
}

#[test]
fn kinds_from_config() {
    assert_eq!(ProbeKind::from_health(&HealthKind::Tcp), Some(ProbeKind::Tcp));
    assert_eq!(ProbeKind::from_health(&HealthKind::Command(vec!["/bin/true".into()])), None);
    assert_eq!(
        ProbeKind::from_health(&HealthKind::Udp { send: "a".into(), expect: "b".into() }),
        Some(ProbeKind::Udp { send: b"a".to_vec(), expect: b"b".to_vec() })
    );
}

#[test]
fn a_trickling_peer_times_out() {
    // Headers one byte per 10 ms, never finished: the deadline ends it.
    let mut n = Net::new();
    let h = n.peer.listen(80, 1024);
    let reply = b"HTTP/1.1 200 OK\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut at = 0;
    let mut script = |p: &mut Peer, _: Instant| {
        let s = p.tcp(h);
        if s.may_send() && at < reply.len() {
            at += s.send_slice(&reply[at..at + 1]).unwrap();
        }
    };
    let id = n.start(80, http("200", Some("alive")));
    let (r, took) = n.run(id, &mut script);
    assert_eq!(r, ProbeResult::failure("HTTP reply timeout"));
    assert!(took < TIMEOUT + 3 * STEP);
}

#[test]
fn a_thousand_probes_at_once() {
    let t0 = Instant::now();
    let cfg = ProberConfig { addresses: vec![(PROBER, 24)], source_ports: 41000..=41999, mtu: 1500, seed: 3 };
    let mut prober = Prober::new(cfg, t0);
    let mut ids = Vec::new();
    for i in 0..1000u16 {
        let kind = if i % 2 == 0 { ProbeKind::Tcp } else { http("200", None) };
        let target =
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 20, 1 + (i / 250) as u8, (i % 250) as u8 + 1)), 80);
        ids.push(prober.start(t0, ProbeSpec { target, kind, timeout: TIMEOUT }).unwrap());
    }
    let mut now = t0;
    let mut finished = Vec::new();
    let mut sent = 0;
    while now < t0 + 2 * TIMEOUT {
        now += STEP;
        finished.extend(prober.poll(now));
        while prober.transmit().is_some() {
            sent += 1;
        }
    }
    assert!(sent >= 1000, "{sent}");
    assert_eq!(finished.len(), 1000);
    assert!(finished.iter().all(|f| f.result == ProbeResult::failure("connect timeout")));
    assert_eq!((prober.active(), prober.sockets.iter().count()), (0, 0));
}

#[test]
fn ipv6_tcp_probe() {
    let t0 = Instant::now();
    let me: IpAddr = "fd00:20::1".parse().unwrap();
    let them: IpAddr = "fd00:20::11".parse().unwrap();
    let cfg = ProberConfig { addresses: vec![(PROBER, 24), (me, 64)], source_ports: PORTS, mtu: 1500, seed: 5 };
    let mut peer = Peer::new(t0);
    peer.iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::from(them), 64)).unwrap());
    peer.listen(80, 1024);
    let mut n = Net { t0, now: t0, prober: Prober::new(cfg, t0), peer, sent: Vec::new() };
    let spec = ProbeSpec { target: SocketAddr::new(them, 80), kind: ProbeKind::Tcp, timeout: TIMEOUT };
    let id = n.prober.start(n.now, spec).unwrap();
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::success("connected"));
    let spec = ProbeSpec { target: SocketAddr::new(them, 81), kind: ProbeKind::Tcp, timeout: TIMEOUT };
    let id = n.prober.start(n.now, spec).unwrap();
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("connection refused"));
}

/// Prober and peer on IPv6 only (`fd00:20::1` probing `fd00:20::11`).
fn net6() -> (Net, IpAddr) {
    let t0 = Instant::now();
    let me: IpAddr = "fd00:20::1".parse().unwrap();
    let them: IpAddr = "fd00:20::11".parse().unwrap();
    let cfg = ProberConfig { addresses: vec![(me, 64)], source_ports: PORTS, mtu: 1500, seed: 5 };
    let mut peer = Peer::new(t0);
    peer.iface.update_ip_addrs(|a| {
        a.clear();
        a.push(IpCidr::new(IpAddress::from(them), 64)).unwrap()
    });
    (Net { t0, now: t0, prober: Prober::new(cfg, t0), peer, sent: Vec::new() }, them)
}

impl Net {
    fn start6(&mut self, them: IpAddr, port: u16, kind: ProbeKind) -> ProbeId {
        let spec = ProbeSpec { target: SocketAddr::new(them, port), kind, timeout: TIMEOUT };
        self.prober.start(self.now, spec).unwrap()
    }
}

#[test]
fn ipv6_http_probe_sends_a_bracketed_host() {
    let (mut n, them) = net6();
    let h = n.peer.listen(80, 4096);
    let mut script = move |p: &mut Peer, _: Instant| {
        let s = p.tcp(h);
        if s.can_recv() {
            let req = String::from_utf8(s.recv(|b| (b.len(), b.to_vec())).unwrap()).unwrap();
            assert!(req.contains("\r\nHost: [fd00:20::11]\r\n"), "{req}");
            s.send_slice(b"HTTP/1.0 200 OK\r\n\r\nok").unwrap();
            s.close();
        }
    };
    let id = n.start6(them, 80, http("200", Some("ok")));
    assert_eq!(n.run(id, &mut script).0, ProbeResult::success("HTTP 200, body matches"));
}

#[test]
fn ipv6_udp_reply_and_port_unreachable() {
    let (mut n, them) = net6();
    let mut s = udp::Socket::new(dgram_udp(), dgram_udp());
    s.bind(5353).unwrap();
    let h = n.peer.sockets.add(s);
    let mut answer = move |p: &mut Peer, _: Instant| {
        let s = p.sockets.get_mut::<udp::Socket>(h);
        if let Ok((_, meta)) = s.recv() {
            s.send_slice(b"pong", meta.endpoint).unwrap();
        }
    };
    let kind = || ProbeKind::Udp { send: b"ping".to_vec(), expect: b"pong".to_vec() };
    let id = n.start6(them, 5353, kind());
    assert_eq!(n.run(id, &mut answer).0, ProbeResult::success("UDP reply"));
    // Nothing bound: the peer answers ICMPv6 port unreachable, which fails the probe at once.
    let id = n.start6(them, 5354, kind());
    let (r, took) = n.run(id, &mut idle);
    assert_eq!(r, ProbeResult::failure("port unreachable"));
    assert!(took < Duration::from_millis(100));
}

#[test]
fn ipv6_icmp_echo_and_agent() {
    let (mut n, them) = net6();
    let id = n.start6(them, 0, ProbeKind::Icmp);
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::success("echo reply"));
    n.peer.blackhole = true;
    let id = n.start6(them, 0, ProbeKind::Icmp);
    assert_eq!(n.run(id, &mut idle).0, ProbeResult::failure("no echo reply"));
    n.peer.blackhole = false;
    let h = n.peer.listen(9999, 1024);
    let mut said = false;
    let mut script = |p: &mut Peer, _: Instant| {
        let s = p.tcp(h);
        if !said && s.may_send() {
            s.send_slice(b"drain\n").unwrap();
            said = true;
        }
    };
    let id = n.start6(them, 9999, ProbeKind::Agent);
    assert_eq!(n.run(id, &mut script).0, ProbeResult::success("drain"));
}

#[test]
fn icmp_errors_of_either_family_never_panic() {
    // Truncated and odd packets: no panic, no match.
    for len in 0..120 {
        let mut p = vec![0x60u8; len];
        let _ = icmp_error(&p);
        p.iter_mut().for_each(|b| *b = 0x45);
        let _ = icmp_error(&p);
    }
}
