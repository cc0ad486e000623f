//! L4 fixtures for tests that drive whole workers with an [`LbEngine`]: the lab topology
//! with static neighbours (client, router, three real servers, so no ARP round trip is
//! needed), hand-built service tables, TCP/UDP frame builders whose checksums are
//! computed in full (RFC 1071 over pseudo-header and segment, never incrementally), and
//! checkers that take output frames apart with the `wire` views and recompute every
//! checksum from scratch.

use std::sync::Arc;

use rvs_dataplane::conn::RssSpec;
use rvs_dataplane::l2l3::neigh::NeighSync;
use rvs_dataplane::lb::{LbConfig, LbEngine};
use rvs_dataplane::mesh::MeshLinks;
use rvs_dataplane::sched::{PersistTable, SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats, ServerStatsSnapshot};
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind, ServiceKey, Timeouts};
use rvs_dataplane::wire::{EthernetFrame, Ipv4Packet, MacAddr, TcpFlags, TcpPacket, UdpPacket};

use super::*;

pub const RS1: Ipv4Addr = RS_IP;
pub const RS2: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 12);
pub const RS3: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 13);
pub const RS1_MAC: [u8; 6] = RS_MAC;
pub const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x05, 0x12];
pub const RS3_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x05, 0x13];

/// TCP flag bits, as they sit in byte 13 of the header.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// The MAC of a real server of the lab.
pub fn server_mac(ip: Ipv4Addr) -> [u8; 6] {
    match ip {
        RS1 => RS1_MAC,
        RS2 => RS2_MAC,
        RS3 => RS3_MAC,
        other => panic!("{other} is not a lab server"),
    }
}

/// Worker `index` of `count` on the lab topology, with static neighbours for the
/// client, the router and the three servers.
pub fn lb_worker_config(index: usize, count: usize) -> WorkerConfig {
    let mut c = lab_config();
    c.index = index;
    c.count = count;
    c.static_neighbours =
        [(CLIENT_IP, CLIENT_MAC), (ROUTER_IP, ROUTER_MAC), (RS1, RS1_MAC), (RS2, RS2_MAC), (RS3, RS3_MAC)]
            .into_iter()
            .map(|(ip, mac)| StaticNeighbour { ip, mac: MacAddr(mac) })
            .collect();
    c
}

// ---- services ----

/// A real server as a test writes it.
#[derive(Debug, Clone, Copy)]
pub struct Rs {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub forward: ForwardMode,
}

pub fn rs(addr: Ipv4Addr, port: u16, weight: u32, forward: ForwardMode) -> Rs {
    Rs { addr, port, weight, forward }
}

/// A service on the VIP built the way the control plane builds one: a `ServerStats` per
/// server sized for `workers`, the scheduler's shared tables, optional persistence, both
/// local addresses for Full-NAT.
pub fn service(
    workers: usize,
    proto: L4Proto,
    port: u16,
    sched: SchedulerKind,
    servers: &[Rs],
    persist: Option<Arc<PersistTable>>,
) -> Service {
    let servers: Vec<RealServer> = servers
        .iter()
        .map(|s| RealServer {
            addr: s.addr.into(),
            port: s.port,
            weight: s.weight,
            forward: s.forward,
            upper: 0,
            lower: 0,
            stats: Arc::new(ServerStats::new(workers)),
        })
        .collect();
    let shared = SchedShared::build(sched, &servers, &SchedParams::default()).expect("scheduler builds");
    Service {
        key: ServiceKey { proto, vip: VIP.into(), port },
        scheduler: sched,
        sched: Arc::new(shared),
        persist,
        servers,
        local_addrs: vec![LOCAL_IP, LOCAL_IP2],
        local_addrs6: Vec::new(),
        stats: Arc::new(ServerStats::new(workers)),
        admission: Default::default(),
        syn_proxy: Default::default(),
        unknown_flow: Default::default(),
    }
}

/// Publishes `services` as generation 1.
pub fn publish(services: Vec<Service>) -> SharedServices {
    share(ServiceTable::new(1, services).expect("no duplicate service"))
}

/// The counters of server `server` of service `svc` in the table `shared` holds now.
pub fn server_stats(shared: &SharedServices, svc: u32, server: usize) -> ServerStatsSnapshot {
    shared.load().get(svc).expect("service").servers[server].stats.snapshot()
}

/// The service-wide counters of service `svc`.
pub fn service_stats(shared: &SharedServices, svc: u32) -> ServerStatsSnapshot {
    shared.load().get(svc).expect("service").stats.snapshot()
}

/// Size of the workers' L4 state.
#[derive(Debug, Clone)]
pub struct LbOpts {
    pub conn_capacity: usize,
    pub port_mtu: Vec<u16>,
    /// The NIC's RSS setup; worker `i` polls queue `i`.
    pub rss: Option<RssSpec>,
}

impl Default for LbOpts {
    fn default() -> Self {
        LbOpts { conn_capacity: 1024, port_mtu: vec![1500, 1500], rss: None }
    }
}

/// `n` workers on the lab topology sharing `shared`, each with its engine, its ends of the
/// redirect mesh and of the neighbour-sync mesh.
pub fn lb_workers(shared: &SharedServices, n: usize, opts: &LbOpts) -> Vec<MemWorker> {
    let (syncs, links) = if n == 1 {
        (vec![NeighSync::none()], vec![MeshLinks::none()])
    } else {
        (NeighSync::mesh(n, 64), MeshLinks::mesh(n, 64))
    };
    syncs
        .into_iter()
        .zip(links)
        .enumerate()
        .map(|(i, (sync, link))| {
            let config = LbConfig {
                conn_capacity: opts.conn_capacity,
                conn_pages: Default::default(),
                timeouts: Timeouts::default(),
                port_mtu: opts.port_mtu.clone(),
                rss: opts.rss.as_ref().map(|r| r.for_queue(i)),
                rss6: None,
                local_addrs: vec![LOCAL_IP, LOCAL_IP2],
                local_addrs6: Vec::new(),
                cookie_secret: rvs_dataplane::synproxy::cookie::CookieSecret::from_bytes([7; 32]),
            };
            let engine = LbEngine::new(i, n, Arc::clone(shared), config);
            Worker::new(&lb_worker_config(i, n), queues(), MemPool::new(), sync)
                .expect("valid config")
                .with_lb(engine, link)
        })
        .collect()
}

/// One worker with default options.
pub fn lb_worker(shared: &SharedServices) -> MemWorker {
    lb_workers(shared, 1, &LbOpts::default()).pop().expect("one worker")
}

/// What every port of every worker sent, by port: `(front, back)`.
pub type Sent = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Polls every worker twice at `now`, so that packets redirected in the first round are
/// handled by their owner in the second. What they sent stays in their queues.
pub fn poll_all(ws: &mut [MemWorker], now: u64) {
    for _ in 0..2 {
        for w in ws.iter_mut() {
            w.poll_once(now);
        }
    }
}

/// Takes what every worker sent, by port.
pub fn sent_by_all(ws: &mut [MemWorker]) -> Sent {
    let mut out: Sent = (Vec::new(), Vec::new());
    for w in ws.iter_mut() {
        out.0.extend(take_tx(w, FRONT));
        out.1.extend(take_tx(w, BACK));
    }
    out
}

/// Injects `frame` on `port` of worker `at`, polls all, returns what all of them sent.
pub fn send_to(ws: &mut [MemWorker], at: usize, port: PortId, frame: &[u8], now: u64) -> Sent {
    inject(&mut ws[at], port, frame);
    poll_all(ws, now);
    sent_by_all(ws)
}

/// The counting invariant of `rvs_dataplane::stats`, with redirects, for each worker and
/// for their sum; and every redirected packet arrived.
pub fn assert_accounting_all(ws: &[MemWorker]) {
    let (mut out, mut inn) = (0, 0);
    for w in ws {
        let s = snapshot(w);
        let parked = (w.neighbours().parked() + w.fragments_held()) as u64;
        assert_eq!(
            s.rx_packets + s.local_originated + s.redirected_in,
            s.tx_packets + s.rx_consumed + s.drops_total() + parked + s.redirected_out,
            "worker {}: every packet ends exactly once: {s:#?}, parked {parked}",
            w.index()
        );
        out += s.redirected_out;
        inn += s.redirected_in;
    }
    assert_eq!(out, inn, "every redirected packet reached its owner");
}

/// The non-zero drop counters of `w`, by name.
pub fn drops_of(w: &MemWorker) -> Vec<(&'static str, u64)> {
    snapshot(w).drops.into_iter().filter(|&(_, v)| v != 0).collect()
}

// ---- frame builders (checksums in full) ----

/// A TCP segment or UDP datagram in an IPv4 packet; builder-style setters.
#[derive(Debug, Clone)]
pub struct Seg {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: Vec<u8>,
    pub data: Vec<u8>,
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
}

impl Seg {
    pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Seg {
        Seg {
            proto: PROTO_TCP,
            src,
            sport,
            dst,
            dport,
            flags,
            seq: 0x1000_0000,
            ack: 0,
            window: 64240,
            options: Vec::new(),
            data: Vec::new(),
            ttl: 61,
            ident: 0x1c46,
            df: true,
        }
    }
    pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, data: &[u8]) -> Seg {
        Seg { proto: PROTO_UDP, flags: 0, data: data.to_vec(), ..Seg::tcp(src, sport, dst, dport, 0) }
    }
    pub fn seq(mut self, seq: u32) -> Seg {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Seg {
        self.ack = ack;
        self
    }
    pub fn options(mut self, options: &[u8]) -> Seg {
        assert!(options.len().is_multiple_of(4) && options.len() <= 40, "TCP options pad to words, 40 bytes at most");
        self.options = options.to_vec();
        self
    }
    pub fn data(mut self, data: &[u8]) -> Seg {
        self.data = data.to_vec();
        self
    }
    pub fn ttl(mut self, ttl: u8) -> Seg {
        self.ttl = ttl;
        self
    }
    pub fn ident(mut self, ident: u16) -> Seg {
        self.ident = ident;
        self
    }
    pub fn df(mut self, df: bool) -> Seg {
        self.df = df;
        self
    }
    /// The same flow with other addresses and ports (what a rewrite should produce).
    pub fn addrs(mut self, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Seg {
        (self.src, self.sport, self.dst, self.dport) = (src.0, src.1, dst.0, dst.1);
        self
    }

    /// The TCP header and payload or the UDP datagram, checksum computed in full.
    pub fn l4(&self) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        if self.proto == PROTO_TCP {
            s.extend_from_slice(&self.seq.to_be_bytes());
            s.extend_from_slice(&self.ack.to_be_bytes());
            s.push((((20 + self.options.len()) / 4) as u8) << 4);
            s.push(self.flags);
            s.extend_from_slice(&self.window.to_be_bytes());
            s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            s.extend_from_slice(&self.options);
            s.extend_from_slice(&self.data);
            let c = l4_csum(self.src, self.dst, PROTO_TCP, &s);
            s[16..18].copy_from_slice(&c.to_be_bytes());
        } else {
            s.extend_from_slice(&((8 + self.data.len()) as u16).to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            s.extend_from_slice(&self.data);
            let c = match l4_csum(self.src, self.dst, PROTO_UDP, &s) {
                0 => 0xffff,
                c => c,
            };
            s[6..8].copy_from_slice(&c.to_be_bytes());
        }
        s
    }

    /// The IPv4 packet.
    pub fn ip(&self) -> Vec<u8> {
        let ip = Ip {
            ttl: self.ttl,
            ident: self.ident,
            frag: if self.df { 0x4000 } else { 0 },
            ..Ip::new(self.src, self.dst, self.proto)
        };
        ipv4(ip, &self.l4())
    }

    /// The Ethernet frame, padded to 60 bytes.
    pub fn frame(&self, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
        pad60(eth(dst_mac, src_mac, ETH_IPV4, &self.ip()))
    }
    /// As the client sends it to rvs's front port.
    pub fn by_client(&self) -> Vec<u8> {
        self.frame(FRONT_MAC, CLIENT_MAC)
    }
    /// As real server `mac` sends it to rvs's back port.
    pub fn by_server(&self, mac: [u8; 6]) -> Vec<u8> {
        self.frame(BACK_MAC, mac)
    }
    /// As rvs must send it to the client.
    pub fn to_client(&self) -> Vec<u8> {
        self.frame(CLIENT_MAC, FRONT_MAC)
    }
    /// As rvs must send it to real server `mac`.
    pub fn to_server(&self, mac: [u8; 6]) -> Vec<u8> {
        self.frame(mac, BACK_MAC)
    }
}

/// The RFC 793/768 checksum of `seg` (its checksum field must be zero) under the
/// pseudo-header.
pub fn l4_csum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let mut p = Vec::with_capacity(12 + seg.len());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    p.extend_from_slice(seg);
    csum(&p)
}

/// An ICMP message `msg` in an IPv4 header with TOS `tos`, DF clear (as the ICMP errors
/// rvs builds or forwards in these tests), checksum in full.
pub fn icmp_ip(src: Ipv4Addr, dst: Ipv4Addr, tos: u8, ident: u16, ttl: u8, msg: &[u8]) -> Vec<u8> {
    let mut p = ipv4(Ip { ttl, ident, frag: 0, ..Ip::new(src, dst, PROTO_ICMP) }, msg);
    p[1] = tos;
    p[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// An ICMP message of `ty`/`code` with the 4-byte "rest of header" and `body`, checksum
/// in full.
pub fn icmp_msg(ty: u8, code: u8, rest: u32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(body);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The IPv4 packet `ip` with its TTL lowered by one and the header checksum recomputed in
/// full (what a forwarding hop leaves).
pub fn hop(ip: &[u8]) -> Vec<u8> {
    let mut p = ip.to_vec();
    let ihl = usize::from(p[0] & 0x0f) * 4;
    p[8] -= 1;
    p[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// MSS 1460, SACK permitted, timestamps, NOP, window scale 7: a Linux SYN's options.
pub fn syn_options(mss: u16) -> Vec<u8> {
    let m = mss.to_be_bytes();
    vec![2, 4, m[0], m[1], 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7]
}

/// The TOA option rvs must insert for `client:port`: kind 254, length 8, port, address.
pub fn toa_option(client: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut o = vec![254, 8];
    o.extend_from_slice(&port.to_be_bytes());
    o.extend_from_slice(&client.octets());
    o
}

// ---- checkers (wire views + full recomputation) ----

/// An output frame taken apart with the `wire` views.
#[derive(Debug, Clone)]
pub struct Seen {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
    pub total_len: u16,
    pub sport: u16,
    pub dport: u16,
    /// TCP only.
    pub flags: Option<TcpFlags>,
    pub tcp_options: Vec<u8>,
    pub mss: Option<u16>,
    pub payload: Vec<u8>,
}

impl Seen {
    /// The first TCP option of `kind`, with its kind and length bytes.
    pub fn tcp_option(&self, kind: u8) -> Option<Vec<u8>> {
        let o = &self.tcp_options;
        let mut i = 0;
        while i < o.len() {
            match o[i] {
                0 => return None,
                1 => i += 1,
                k => {
                    let len = usize::from(*o.get(i + 1)?);
                    if len < 2 || i + len > o.len() {
                        return None;
                    }
                    if k == kind {
                        return Some(o[i..i + len].to_vec());
                    }
                    i += len;
                }
            }
        }
        None
    }
}

/// Takes `frame` apart (panics with the reason when a header does not parse) and checks
/// every checksum by full recomputation.
pub fn seen(frame: &[u8]) -> Seen {
    assert_checksums(frame);
    let eth = EthernetFrame::new_checked(frame).expect("Ethernet header");
    assert_eq!(eth.ethertype(), ETH_IPV4, "IPv4 frame");
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("IPv4 header");
    let mut s = Seen {
        eth_dst: eth.dst().0,
        eth_src: eth.src().0,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto: ip.protocol(),
        ttl: ip.ttl(),
        ident: ip.ident(),
        df: ip.dont_frag(),
        total_len: ip.total_len(),
        sport: 0,
        dport: 0,
        flags: None,
        tcp_options: Vec::new(),
        mss: None,
        payload: ip.payload().to_vec(),
    };
    match ip.protocol() {
        PROTO_TCP => {
            let t = TcpPacket::new_checked(ip.payload()).expect("TCP header");
            (s.sport, s.dport, s.flags) = (t.src_port(), t.dst_port(), Some(t.flags()));
            s.tcp_options = t.options().to_vec();
            s.mss = t.mss();
            s.payload = t.payload().to_vec();
        }
        PROTO_UDP => {
            let u = UdpPacket::new_checked(ip.payload()).expect("UDP header");
            (s.sport, s.dport) = (u.src_port(), u.dst_port());
            s.payload = u.payload().to_vec();
        }
        _ => {}
    }
    s
}

/// Recomputes, in full and independently of the code under test, the IPv4 header
/// checksum and the TCP, UDP or ICMP checksum of the packet in `frame` (and of the inner
/// packet of IPIP), and compares them with the stored ones.
pub fn assert_checksums(frame: &[u8]) {
    assert!(frame.len() >= 14 + 20, "frame too short for IPv4: {}", frame.len());
    assert_ip_checksums(&frame[14..]);
}

fn assert_ip_checksums(ip: &[u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert!(ihl >= 20 && total >= ihl && total <= ip.len(), "IPv4 lengths: ihl {ihl} total {total} have {}", ip.len());
    let mut h = ip[..ihl].to_vec();
    let stored = u16::from_be_bytes([h[10], h[11]]);
    h[10..12].copy_from_slice(&[0, 0]);
    assert_eq!(stored, csum(&h), "IPv4 header checksum");
    let (src, dst) = (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let mut body = ip[ihl..total].to_vec();
    match ip[9] {
        PROTO_TCP => {
            let stored = u16::from_be_bytes([body[16], body[17]]);
            body[16..18].copy_from_slice(&[0, 0]);
            assert_eq!(stored, l4_csum(src, dst, PROTO_TCP, &body), "TCP checksum");
        }
        PROTO_UDP => {
            let stored = u16::from_be_bytes([body[6], body[7]]);
            if stored != 0 {
                body[6..8].copy_from_slice(&[0, 0]);
                let want = match l4_csum(src, dst, PROTO_UDP, &body) {
                    0 => 0xffff,
                    c => c,
                };
                assert_eq!(stored, want, "UDP checksum");
            }
        }
        PROTO_ICMP => {
            let stored = u16::from_be_bytes([body[2], body[3]]);
            body[2..4].copy_from_slice(&[0, 0]);
            assert_eq!(stored, csum(&body), "ICMP checksum");
        }
        PROTO_IPIP => assert_ip_checksums(&body),
        p => panic!("unexpected IP protocol {p}"),
    }
}

/// Hex dump for assertion messages.
pub fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `got` is exactly `want`, printing both in hex when not.
pub fn assert_frame(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: frame differs\n got ({} bytes):\n{}\nwant ({} bytes):\n{}",
        got.len(),
        hex(got),
        want.len(),
        hex(want)
    );
}

/// The single frame in `frames`.
pub fn only(frames: Vec<Vec<u8>>, what: &str) -> Vec<u8> {
    assert_eq!(frames.len(), 1, "{what}: exactly one frame expected, got {}", frames.len());
    frames.into_iter().next().expect("one frame")
}

/// The TCP timestamps option (kind 8): TSval, TSecr.
pub fn ts(tsval: u32, tsecr: u32) -> [u8; 10] {
    let (v, e) = (tsval.to_be_bytes(), tsecr.to_be_bytes());
    [8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]]
}

/// Linux's SYN options: MSS, SACK_PERM, TS, NOP, WSCALE.
pub fn syn_opts(mss: u16, tsval: u32, tsecr: u32, ws: u8) -> Vec<u8> {
    let m = mss.to_be_bytes();
    let mut o = vec![2, 4, m[0], m[1], 4, 2];
    o.extend_from_slice(&ts(tsval, tsecr));
    o.extend_from_slice(&[1, 3, 3, ws]);
    o
}

/// Linux's options on an established segment: NOP, NOP, TS.
pub fn ts_opts(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1];
    o.extend_from_slice(&ts(tsval, tsecr));
    o
}
