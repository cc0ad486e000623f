//! Whole frames through a whole worker: one `Worker` on the in-memory driver with an
//! `LbEngine` and a service table that covers every forwarding mode (dr, nat, fullnat,
//! tunnel; TCP and UDP; several schedulers), fed a little program decoded from the fuzz
//! input: arbitrary frames, and structured ones (valid TCP/UDP frames from clients to the
//! VIP, the servers' replies to connections the worker has opened, ICMP errors about them),
//! each optionally mutated, with clock steps in between.
//!
//! Properties, checked after every poll (the contract at the top of
//! `rvs_dataplane::stats`):
//! * no panic (overflow checks and debug assertions are on in the smoke build);
//! * every packet ends exactly once: `rx + originated + redirected_in == tx + consumed +
//!   Σ drops + parked + frag_held + redirected_out`, and one received frame never moves
//!   the drop counters by more than one (plus the ARP requests the poll originated, and
//!   the fragments held before it, which it may drop with its train);
//! * the worker counted every frame it was given;
//! * every IPv4 frame it sends has a correct header checksum and a total length that fits;
//! * once the clock has moved on, nothing is left parked waiting for ARP, and no fragment
//!   is left held.
//!
//! Input program, one op after another (missing bytes read as zero; at most 64 ops):
//! * `op % 8 == 0`: raw frame on port `(op >> 3) & 1`, with that port's MAC as destination
//!   when `op & 0x10`; then a big-endian u16 length (mod 1600) and the bytes.
//! * `1..=4`: a client's segment to the VIP: service, client, client port, TCP flags,
//!   payload length (u16 mod 1500: tunnel mode must answer "fragmentation needed" for big
//!   DF packets), DF/TTL byte, then edits.
//!   A client ACK (no SYN) to the SYN-proxy services (:81 always, :82 auto) carries the
//!   acknowledgement of a valid cookie, so proxied connections are opened and run.
//!   With `op & 0x80` one more byte `cut` follows: the packet is sent as IPv4 fragments
//!   of `8 * (cut & 0x3f) + 8` bytes of payload each, last first when `cut & 0x40`; the
//!   edits apply to the first fragment sent.
//! * `5`: a server's reply to connection `n` of the table (to the client for NAT, to the
//!   local address and port for Full-NAT), flags, payload length, then edits.
//! * `6`: an ICMP error (type/code from the input) about connection `n`: from the router on
//!   the front port about a packet rvs sent to the client, or from the server's side on the
//!   back port about a packet rvs forwarded to the server; then edits.
//! * `7`: the clock moves on by `byte` × 100 ms and the worker polls.
//!
//! Edits: a count byte (mod 4), then (offset, value) pairs applied to the frame, and a
//! length byte: 0 keeps the length, otherwise the frame is cut to `len - 1` bytes when
//! shorter.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::conn::Conn;
use rvs_dataplane::idle::IdlePolicy;
use rvs_dataplane::l2l3::neigh::{NeighConfig, NeighSync};
use rvs_dataplane::l2l3::route::StaticRoute;
use rvs_dataplane::lb::{LbConfig, LbEngine};
use rvs_dataplane::mesh::MeshLinks;
use rvs_dataplane::sched::{SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{share, Service, ServiceTable};
use rvs_dataplane::synproxy::cookie::{minute_count, CookieSecret, CookieTuple};
use rvs_dataplane::synproxy::SynProxyPolicy;
use rvs_dataplane::types::{
    ForwardMode, L4Proto, PortId, SchedulerKind, ServiceKey, Timeouts, UnknownFlow, VipConfig,
};
use rvs_dataplane::wire::MacAddr;
use rvs_dataplane::worker::{PortConfig, StaticNeighbour, Worker, WorkerConfig};
use rvs_drivers::mem::{MemPool, MemQueue};
use rvs_drivers::PacketBuf;

type MemWorker = Worker<MemQueue, MemPool>;

const MS: u64 = 1_000_000;
const FRONT: PortId = PortId(0);
const BACK: PortId = PortId(1);
const FRONT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xf0, 0x01];
const BACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0f, 0xfe];
const RS_MACS: [[u8; 6]; 3] = [[0x02, 0, 0, 0, 0x05, 0x11], [0x02, 0, 0, 0, 0x05, 0x12], [0x02, 0, 0, 0, 0x05, 0x13]];

const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);
const LOCALS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 20, 0, 200), Ipv4Addr::new(10, 20, 0, 201)];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 254);
const RS: [Ipv4Addr; 3] = [Ipv4Addr::new(10, 20, 0, 11), Ipv4Addr::new(10, 20, 0, 12), Ipv4Addr::new(10, 20, 0, 13)];
/// Clients: the on-link one (a static neighbour), one on-link without a neighbour entry
/// (its replies wait for ARP), and two beyond the default gateway.
const CLIENTS: [Ipv4Addr; 4] =
    [CLIENT_IP, Ipv4Addr::new(10, 10, 0, 3), Ipv4Addr::new(192, 0, 2, 7), Ipv4Addr::new(198, 51, 100, 9)];

use ForwardMode::{Dr, FullNat, Nat, Tunnel};
use L4Proto::{Tcp, Udp};

/// The services: (protocol, VIP port, scheduler, [(server index, port, weight, mode)]).
/// Every mode appears alone and mixed; DR and tunnel servers keep the service port.
#[allow(clippy::type_complexity)]
const SERVICES: &[(L4Proto, u16, SchedulerKind, &[(usize, u16, u32, ForwardMode)])] = &[
    (Tcp, 80, SchedulerKind::Rr, &[(0, 80, 1, Dr)]),
    (Tcp, 81, SchedulerKind::Wrr, &[(1, 8081, 2, Nat), (2, 8081, 1, Nat)]),
    (Tcp, 82, SchedulerKind::Wlc, &[(2, 8082, 1, FullNat), (0, 8082, 1, FullNat)]),
    (Tcp, 83, SchedulerKind::Mh, &[(0, 83, 1, Tunnel), (1, 83, 1, Tunnel)]),
    (Tcp, 84, SchedulerKind::Sh, &[(0, 84, 1, Dr), (1, 84, 1, Nat), (2, 84, 1, FullNat), (0, 84, 0, Tunnel)]),
    (Udp, 53, SchedulerKind::Wrr, &[(1, 5353, 2, Nat), (2, 53, 1, FullNat)]),
    (Udp, 54, SchedulerKind::Lc, &[(0, 54, 1, Dr), (1, 54, 1, Tunnel)]),
];

#[allow(clippy::type_complexity)]
fn real_servers(servers: &[(usize, u16, u32, ForwardMode)]) -> Vec<RealServer> {
    servers
        .iter()
        .map(|&(i, port, weight, forward)| RealServer {
            addr: RS[i].into(),
            port,
            weight,
            forward,
            upper: 0,
            lower: 0,
            stats: Arc::new(ServerStats::new(1)),
        })
        .collect()
}

fn worker() -> MemWorker {
    let config = WorkerConfig {
        index: 0,
        count: 1,
        ports: vec![
            PortConfig {
                name: "front".into(),
                mac: MacAddr(FRONT_MAC),
                address: "10.10.0.1/24".parse().unwrap(),
                local_addresses: vec![],
                local_addresses6: Vec::new(),
                ipv6_addresses: vec![],
            },
            PortConfig {
                name: "back".into(),
                mac: MacAddr(BACK_MAC),
                address: "10.20.0.1/24".parse().unwrap(),
                local_addresses: LOCALS.to_vec(),
                local_addresses6: Vec::new(),
                ipv6_addresses: vec![],
            },
        ],
        vips: vec![VipConfig { address: VIP, port: Some(FRONT) }],
        routes: vec![StaticRoute { prefix: "0.0.0.0/0".parse().unwrap(), via: ROUTER_IP }],
        routes6: vec![],
        static_neighbours: [(CLIENT_IP, CLIENT_MAC), (ROUTER_IP, ROUTER_MAC)]
            .into_iter()
            .chain(RS.into_iter().zip(RS_MACS))
            .map(|(ip, mac)| StaticNeighbour { ip, mac: MacAddr(mac) })
            .collect(),
        idle: IdlePolicy::Busy,
        neigh: NeighConfig { capacity: 16, ..NeighConfig::default() },
    };
    // The schedulers' tables are immutable and a Maglev table takes most of a run to build:
    // built once per process. Everything that changes (server counters, connections) is
    // fresh for every input.
    static SCHED: OnceLock<Vec<Arc<SchedShared>>> = OnceLock::new();
    let sched = SCHED.get_or_init(|| {
        SERVICES
            .iter()
            .map(|&(_, _, kind, servers)| {
                let built = SchedShared::build(kind, &real_servers(servers), &SchedParams::default());
                Arc::new(built.expect("scheduler builds"))
            })
            .collect()
    });
    let services = SERVICES
        .iter()
        .zip(sched)
        .map(|(&(proto, port, scheduler, servers), sched)| Service {
            // The SYN proxy on the NAT service (always) and the Full-NAT one (auto, over
            // 4 half-open entries: reachable with this table), so that cookies, cookie
            // ACKs (bad ones, mostly) and the mode switch get fuzzed.
            syn_proxy: match port {
                81 => SynProxyPolicy::ALWAYS,
                82 => SynProxyPolicy::auto(4),
                _ => SynProxyPolicy::OFF,
            },
            key: ServiceKey { proto, vip: VIP.into(), port },
            scheduler,
            sched: Arc::clone(sched),
            persist: None,
            servers: real_servers(servers),
            local_addrs: LOCALS.to_vec(),
            local_addrs6: Vec::new(),
            stats: Arc::new(ServerStats::new(1)),
            admission: Default::default(),
            // The IPIP mh service schedules unknown TCP flows (ECMP scale-out).
            unknown_flow: if port == 83 { UnknownFlow::Schedule } else { UnknownFlow::Drop },
        })
        .collect();
    let shared = share(ServiceTable::new(1, services).expect("no duplicate service"));
    let lb = LbConfig {
        // Small, so that "table full" is reachable.
        conn_capacity: 32,
        conn_pages: Default::default(),
        timeouts: Timeouts::default(),
        port_mtu: vec![1500, 1500],
        rss: None,
        rss6: None,
        local_addrs: LOCALS.to_vec(),
        local_addrs6: Vec::new(),
        cookie_secret: secret(),
    };
    let queues = vec![MemQueue::new(FRONT_MAC), MemQueue::new(BACK_MAC)];
    Worker::new(&config, queues, MemPool::new(), NeighSync::none())
        .expect("valid config")
        .with_lb(LbEngine::new(0, 1, shared, lb), MeshLinks::none())
}

/// The sequence number of every TCP segment the harness builds.
const CLIENT_SEQ: u32 = 0x1000_0000;

/// The workers' SYN-cookie secret (fixed, so the harness can answer cookies).
fn secret() -> CookieSecret {
    CookieSecret::from_bytes([7; 32])
}

/// The fuzz input as a stream of bytes; zeros once exhausted.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// ---- frame builders (checksums in full) ----

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 });
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4 packet without options around `payload`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0x1c, 0x46, if df { 0x40 } else { 0 }, 0, ttl, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A TCP segment (flags `flags`) or UDP datagram with `len` payload bytes, in IPv4.
#[allow(clippy::too_many_arguments)]
fn segment(
    proto: L4Proto,
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    flags: u8,
    ack: u32,
    len: usize,
    ttl: u8,
    df: bool,
) -> Vec<u8> {
    let mut s = Vec::with_capacity(40 + len);
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    let number = match proto {
        Tcp => {
            s.extend_from_slice(&CLIENT_SEQ.to_be_bytes());
            s.extend_from_slice(&ack.to_be_bytes());
            // A SYN carries Linux's options (MSS 1460, SACK, timestamps, window scale).
            let opts: &[u8] = if flags & 0x02 != 0 {
                &[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7]
            } else {
                &[]
            };
            s.push((((20 + opts.len()) / 4) as u8) << 4);
            s.extend_from_slice(&[flags, 0xfa, 0xf0, 0, 0, 0, 0]);
            s.extend_from_slice(opts);
            6
        }
        Udp => {
            s.extend_from_slice(&((8 + len) as u16).to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            17
        }
    };
    s.extend((0..len).map(|i| i as u8));
    let mut pseudo = Vec::with_capacity(12 + s.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, number]);
    pseudo.extend_from_slice(&(s.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&s);
    let c = csum(&pseudo);
    let at = if number == 6 { 16 } else { 6 };
    let c = if number == 17 && c == 0 { 0xffff } else { c };
    s[at..at + 2].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, number, ttl, df, &s)
}

/// The IPv4 fragments of `ip` (a packet without options), `size` payload bytes each (a
/// multiple of 8), DF clear, header checksums in full.
fn fragments(ip: &[u8], size: usize) -> Vec<Vec<u8>> {
    let data = &ip[20..];
    let n = data.len().div_ceil(size).max(1);
    (0..n)
        .map(|i| {
            let part = &data[(i * size).min(data.len())..((i + 1) * size).min(data.len())];
            let mut h = ip[..20].to_vec();
            h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
            let word = (if i + 1 < n { 0x2000 } else { 0 }) | (i * size / 8) as u16;
            h[6..8].copy_from_slice(&word.to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let c = csum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(part);
            h
        })
        .collect()
}

fn eth(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len().max(46));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// An ICMP error of `ty`/`code` quoting the first 28 bytes of `quoted`, from `src` to `dst`.
fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0, 0, 0, 0x05, 0x78]; // next-hop MTU 1400 for type 3/4
    m.extend_from_slice(&quoted[..quoted.len().min(28)]);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 1, 64, false, &m)
}

fn edit(r: &mut Reader, mut frame: Vec<u8>) -> Vec<u8> {
    for _ in 0..r.u8() % 4 {
        let (at, v) = (usize::from(r.u8()), r.u8());
        if let Some(b) = frame.get_mut(at) {
            *b = v;
        }
    }
    let len = usize::from(r.u8());
    if len > 0 {
        frame.truncate(len - 1);
    }
    frame
}

/// Connection `n` of the worker's table (in table order), if there is one.
fn conn(w: &MemWorker, n: u8) -> Option<Conn> {
    let conns = w.lb()?.conns();
    let count = conns.iter().count();
    (count > 0).then(|| *conns.iter().nth(usize::from(n) % count).expect("in range").1)
}

fn server_mac(c: &Conn) -> [u8; 6] {
    RS.iter().position(|&a| a == c.server).map_or(RS_MACS[0], |i| RS_MACS[i])
}

/// Where the server sends its replies: the client (NAT), or the local address and port
/// (Full-NAT).
fn reply_to(c: &Conn) -> (Ipv4Addr, u16) {
    if c.forward == FullNat {
        (c.local, c.lport)
    } else {
        (c.client, c.cport)
    }
}

/// Checks every frame the worker sent: Ethernet, and for IPv4 a correct header checksum
/// and a total length within the frame.
fn check_sent(w: &mut MemWorker) {
    for port in [FRONT, BACK] {
        for b in w.queue_mut(port).expect("port").take_tx() {
            let f = b.data();
            assert!(f.len() >= 14, "sent a frame shorter than Ethernet: {f:02x?}");
            if f[12..14] == [0x08, 0x00] {
                let ip = &f[14..];
                assert!(ip.len() >= 20, "sent a truncated IPv4 header: {f:02x?}");
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                assert!(
                    ip[0] >> 4 == 4 && ihl >= 20 && ihl <= total && total <= ip.len(),
                    "sent bad IPv4 lengths: {f:02x?}"
                );
                assert_eq!(csum(&ip[..ihl]), 0, "sent a bad IPv4 header checksum: {f:02x?}");
            }
        }
    }
}

/// The counting invariant of `rvs_dataplane::stats` (one worker: no redirects).
/// Read from the live counters (a snapshot, which builds a map of every drop reason, is
/// taken only for the failure message: it cost more than the rest of a run).
fn check_accounting(w: &MemWorker) -> (u64, u64, u64) {
    let c = w.counters();
    let parked = (w.neighbours().parked() + w.neighbours6().parked() + w.fragments_held()) as u64;
    let (rx, orig, drops) = (c.rx_packets.get(), c.local_originated.get(), c.drops_total());
    let inn = rx + orig + c.redirected_in.get();
    let out = c.tx_packets.get() + c.rx_consumed.get() + drops + parked + c.redirected_out.get();
    assert!(inn == out, "every packet ends exactly once: {:#?}, parked {parked}", c.snapshot());
    (rx, drops, orig)
}

fuzz_target!(|data: &[u8]| {
    let mut w = worker();
    let mut r = Reader(data);
    let mut now = MS;
    let mut injected = 0u64;
    // Fragments of a client's packet after the first (op 1..=4 with 0x80).
    let mut more: Vec<Vec<u8>> = Vec::new();
    w.poll_once(now);
    check_sent(&mut w);
    for _ in 0..64 {
        if r.is_empty() {
            break;
        }
        let op = r.u8();
        let frame = match op % 8 {
            0 => {
                let (port, mac) = if op & 0x08 != 0 { (BACK, BACK_MAC) } else { (FRONT, FRONT_MAC) };
                let len = usize::from(r.u16() % 1600);
                let mut f = r.bytes(len);
                if op & 0x10 != 0 && f.len() >= 6 {
                    f[..6].copy_from_slice(&mac);
                }
                Some((port, f))
            }
            1..=4 => {
                let (proto, vport, _, _) = SERVICES[usize::from(r.u8()) % SERVICES.len()];
                let client = CLIENTS[usize::from(r.u8()) % CLIENTS.len()];
                let cport = 40000 + u16::from(r.u8() % 8);
                let flags = r.u8();
                let len = usize::from(r.u16() % 1500);
                let dt = r.u8();
                let mac = if client == CLIENT_IP { CLIENT_MAC } else { ROUTER_MAC };
                // A client ACK to a SYN-proxy service answers the cookie rvs would have sent
                // (the harness knows the secret), so proxied connections get opened.
                let ack = if flags & 0x12 == 0x10 && matches!(vport, 81 | 82) {
                    let t = CookieTuple { client, cport, vip: VIP, vport };
                    secret().isn(&t, CLIENT_SEQ.wrapping_sub(1), minute_count(now), 3).wrapping_add(1)
                } else {
                    0x5000_0000
                };
                let ip = segment(proto, (client, cport), (VIP, vport), flags, ack, len, 1 + (dt & 0x7f), dt & 0x80 == 0);
                if op & 0x80 != 0 {
                    let cut = r.u8();
                    let mut frags = fragments(&ip, 8 * (usize::from(cut & 0x3f) + 1));
                    if cut & 0x40 != 0 {
                        frags.reverse();
                    }
                    let first = eth(FRONT_MAC, mac, &frags[0]);
                    more.extend(frags[1..].iter().map(|f| eth(FRONT_MAC, mac, f)));
                    Some((FRONT, edit(&mut r, first)))
                } else {
                    Some((FRONT, edit(&mut r, eth(FRONT_MAC, mac, &ip))))
                }
            }
            5 => {
                let (n, flags, len) = (r.u8(), r.u8(), usize::from(r.u16() % 1500));
                conn(&w, n).map(|c| {
                    let ip = segment(c.proto, (c.server, c.sport), reply_to(&c), flags, 0x5000_0000, len, 64, true);
                    (BACK, edit(&mut r, eth(BACK_MAC, server_mac(&c), &ip)))
                })
            }
            6 => {
                let (n, ty, code, from_server) = (r.u8(), r.u8(), r.u8(), r.u8() & 1 == 1);
                conn(&w, n).map(|c| {
                    let (port, f) = if from_server {
                        // The server's side says the packet rvs forwarded to it failed.
                        let quoted = segment(c.proto, reply_to(&c), (c.server, c.sport), 0x10, 0x5000_0000, 0, 60, true);
                        let ip = icmp_error(c.server, reply_to(&c).0, ty, code, &quoted);
                        (BACK, eth(BACK_MAC, server_mac(&c), &ip))
                    } else {
                        // A router on the client's path says the VIP's packet did not fit.
                        let quoted = segment(c.proto, (c.vip, c.vport), (c.client, c.cport), 0x10, 0x5000_0000, 0, 63, true);
                        (FRONT, eth(FRONT_MAC, ROUTER_MAC, &icmp_error(ROUTER_IP, c.vip, ty, code, &quoted)))
                    };
                    (port, edit(&mut r, f))
                })
            }
            _ => {
                now += u64::from(r.u8()) * 100 * MS;
                w.poll_once(now);
                check_sent(&mut w);
                check_accounting(&w);
                None
            }
        };
        let Some((port, frame)) = frame else { continue };
        for (port, frame) in std::iter::once((port, frame)).chain(more.drain(..).map(|f| (FRONT, f))) {
            let (rx0, drops0, orig0) = check_accounting(&w);
            let held0 = w.fragments_held() as u64;
            w.queue_mut(port).expect("port").inject(&frame);
            injected += 1;
            w.poll_once(now);
            check_sent(&mut w);
            let (rx1, drops1, orig1) = check_accounting(&w);
            assert_eq!(rx1 - rx0, 1, "the worker received the frame");
            assert!(
                drops1 - drops0 <= 1 + (orig1 - orig0) + held0,
                "one frame moved the drop counters by {}: {frame:02x?}",
                drops1 - drops0
            );
        }
    }
    // Long enough for every pending ARP resolution to succeed or give up.
    for _ in 0..4 {
        now += 2_000 * MS;
        w.poll_once(now);
        check_sent(&mut w);
    }
    check_accounting(&w);
    assert_eq!(w.counters().rx_packets.get(), injected, "every frame given was received");
    assert_eq!(w.neighbours().parked(), 0, "nothing left waiting for ARP after 8 s");
    assert_eq!(w.fragments_held(), 0, "no fragment left held after 8 s");
});
