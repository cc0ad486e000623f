//! Shared fixtures of the dataplane's integration tests: the lab's addressing (DESIGN.md),
//! a worker on the in-memory driver, and packet builders written independently of
//! `rvs_dataplane::wire` (plain byte pushing and an RFC 1071 checksum), so that golden
//! packets do not trust the code under test.

#![allow(dead_code)] // each test binary uses a different part

pub mod ip6;
pub mod l4;
pub mod workers6;

use std::net::Ipv4Addr;

use rvs_dataplane::idle::IdlePolicy;
use rvs_dataplane::l2l3::neigh::{NeighConfig, NeighSync};
use rvs_dataplane::l2l3::route::StaticRoute;
use rvs_dataplane::stats::{CountersSnapshot, DropReason};
use rvs_dataplane::types::{PortId, VipConfig};
use rvs_dataplane::wire::MacAddr;
use rvs_dataplane::worker::{PortConfig, StaticNeighbour, Worker, WorkerConfig};
use rvs_drivers::mem::{MemPool, MemQueue};
use rvs_drivers::PacketBuf;

pub type MemWorker = Worker<MemQueue, MemPool>;

pub const SEC: u64 = 1_000_000_000;
pub const FRONT: PortId = PortId(0);
pub const BACK: PortId = PortId(1);
pub const FRONT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xf0, 0x01];
pub const BACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0f, 0xfe];
pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x05, 0x11];
pub const BCAST: [u8; 6] = [0xff; 6];

pub const FRONT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
pub const BACK_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 200);
pub const LOCAL_IP2: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 201);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 254);
pub const RS_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);
/// A client beyond the default gateway.
pub const FAR_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_ARP: u16 = 0x0806;

/// lab-lb1 of DESIGN.md: front 10.10.0.1/24 with VIP 10.10.0.100, back 10.20.0.1/24
/// with local addresses .200 and .201, default route via 10.10.0.254.
pub fn lab_config() -> WorkerConfig {
    WorkerConfig {
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
                local_addresses: vec![LOCAL_IP, LOCAL_IP2],
                local_addresses6: Vec::new(),
                ipv6_addresses: vec![],
            },
        ],
        vips: vec![VipConfig { address: VIP, port: Some(FRONT) }],
        routes: vec![StaticRoute { prefix: "0.0.0.0/0".parse().unwrap(), via: ROUTER_IP }],
        routes6: vec![],
        static_neighbours: vec![],
        idle: IdlePolicy::Busy,
        neigh: NeighConfig { capacity: 64, ..NeighConfig::default() },
    }
}

pub fn queues() -> Vec<MemQueue> {
    vec![MemQueue::new(FRONT_MAC), MemQueue::new(BACK_MAC)]
}

pub fn worker_with(config: &WorkerConfig) -> MemWorker {
    Worker::new(config, queues(), MemPool::new(), NeighSync::none()).expect("valid config")
}

pub fn lab_worker() -> MemWorker {
    worker_with(&lab_config())
}

pub fn lab_worker_with_static_router() -> MemWorker {
    let mut c = lab_config();
    c.static_neighbours.push(StaticNeighbour { ip: ROUTER_IP, mac: MacAddr(ROUTER_MAC) });
    worker_with(&c)
}

pub fn inject(w: &mut MemWorker, port: PortId, frame: &[u8]) {
    w.queue_mut(port).expect("port exists").inject(frame);
}

pub fn take_tx(w: &mut MemWorker, port: PortId) -> Vec<Vec<u8>> {
    w.queue_mut(port).expect("port exists").take_tx().into_iter().map(|b| b.data().to_vec()).collect()
}

/// Injects `frame` on `port`, polls once at `now`, returns what each port sent.
pub fn roundtrip(w: &mut MemWorker, port: PortId, frame: &[u8], now: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    inject(w, port, frame);
    w.poll_once(now);
    (take_tx(w, FRONT), take_tx(w, BACK))
}

pub fn snapshot(w: &MemWorker) -> CountersSnapshot {
    w.counters().snapshot()
}

/// The counting invariant of `rvs_dataplane::stats`.
pub fn assert_accounting(w: &MemWorker) {
    let s = snapshot(w);
    let parked = (w.neighbours().parked() + w.neighbours6().parked() + w.fragments_held()) as u64;
    assert_eq!(
        s.rx_packets + s.local_originated,
        s.tx_packets + s.rx_consumed + s.drops_total() + parked,
        "every packet ends exactly once: {s:#?}, parked {parked}"
    );
}

/// Only `reason` was counted, once, among drops.
pub fn assert_single_drop(w: &MemWorker, reason: DropReason) {
    let s = snapshot(w);
    let nonzero: Vec<_> = s.drops.iter().filter(|(_, &v)| v != 0).collect();
    assert_eq!(nonzero, vec![(&reason.name(), &1)], "expected exactly one {reason} drop");
}

// ---- packet builders (independent of the wire module) ----

/// RFC 1071 checksum, 16 bits at a time.
pub fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Pads to the 60-byte Ethernet minimum, as a NIC delivers short frames.
pub fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

pub fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// A padded broadcast ARP request from `sha`/`spa` for `tpa`.
pub fn arp_request(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    pad60(eth(BCAST, sha, ETH_ARP, &arp(1, sha, spa, [0; 6], tpa)))
}

/// A padded ARP reply from `sha`/`spa` to `tha`/`tpa`.
pub fn arp_reply(sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    pad60(eth(tha, sha, ETH_ARP, &arp(2, sha, spa, tha, tpa)))
}

/// Options of [`ipv4`] that tests vary.
#[derive(Clone, Copy)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub ident: u16,
    /// Flags and fragment offset word.
    pub frag: u16,
}

impl Ip {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Self {
        Ip { src, dst, proto, ttl: 61, ident: 0x1c46, frag: 0x4000 }
    }
}

/// An IPv4 header without options plus `payload`, with a correct checksum.
pub fn ipv4(ip: Ip, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&ip.ident.to_be_bytes());
    h.extend_from_slice(&ip.frag.to_be_bytes());
    h.extend_from_slice(&[ip.ttl, ip.proto, 0, 0]);
    h.extend_from_slice(&ip.src.octets());
    h.extend_from_slice(&ip.dst.octets());
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An ICMP echo message (request: type 8, reply: type 0) with a correct checksum.
pub fn icmp_echo(ty: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

pub const PING_DATA: &[u8] = b"rvs ping payload 0123456789abcdef";

/// A ping from `src` (Ethernet source `src_mac`) to `dst`, received on the front port.
pub fn ping(src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    pad60(eth(FRONT_MAC, src_mac, ETH_IPV4, &ipv4(Ip::new(src, dst, 1), &icmp_echo(8, 0x77, seq, PING_DATA))))
}

/// The reply rvs must send for [`ping`], built from scratch: addresses swapped, TTL 64,
/// same ident and flags, type 0, checksums computed in full.
pub fn expected_pong(dst_mac: [u8; 6], from: Ipv4Addr, to: Ipv4Addr, seq: u16) -> Vec<u8> {
    let ip = Ip { ttl: 64, ..Ip::new(from, to, 1) };
    pad60(eth(dst_mac, FRONT_MAC, ETH_IPV4, &ipv4(ip, &icmp_echo(0, 0x77, seq, PING_DATA))))
}
