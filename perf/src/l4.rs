//! The L4 pipeline modes: one [`Worker`] with its load-balancing engine ([`LbEngine`]) on
//! the in-memory driver, one TCP service with three real servers in one forwarding mode,
//! timed on established flows and on new connections.
//!
//! Contract (what [`run`] measures; the method is [`crate::pipeline`]'s, whose module
//! docs say how the harness baseline is subtracted and why):
//! * **Set-up, untimed.** The lab's two ports (front 10.10.0.1/24 with the VIP
//!   10.10.0.100, back 10.20.0.1/24), static neighbours for the gateway 10.10.0.254 (the
//!   clients, 172.16.0.0/12, sit behind it) and the three servers 10.20.0.11–13, and one
//!   service `tcp 10.10.0.100:80` with the round-robin scheduler (`rr`; the cheapest pick,
//!   so `new_conn_ns` is the table's and the rewrite's cost more than the scheduler's).
//!   Servers listen on 8080 in NAT and Full-NAT (the port is rewritten too), on 80 in DR
//!   and IPIP. Full-NAT has enough local addresses on the back port for every connection
//!   the run opens (one per 64,512: 18 at the default flows, 173 at 10M; see
//!   [`frames::local_addr`]). The connection table holds [`CONN_SLACK`] × (flows + [`NEW_CONNS_MAX`])
//!   entries, so it is at most half full at the end.
//! * **Established flows.** `flows` (default [`DEFAULT_FLOWS`](crate::harness::DEFAULT_FLOWS)) client ports each open a
//!   connection with a real handshake: SYN, the server's SYN-ACK for NAT and Full-NAT (the
//!   modes whose replies pass through rvs), ACK; every connection must then be
//!   ESTABLISHED. The timed packets are 60-byte frames (64 on the wire with the FCS):
//!   TCP ACK|PSH segments with 6 bytes of data, client → VIP, or for `nat_reply` and
//!   `fullnat_reply` server → client (server → local address for Full-NAT), cycling
//!   through the flows in a fixed shuffled order, 32 per burst. The buffer ring is the
//!   L2/L3 modes' one; a buffer that comes back is refilled with the next flow's frame
//!   (a 60-byte copy, on both sides of the comparison).
//! * **SYN proxy** (`*_synproxy*` modes): the service has `syn_proxy = "always"`; set-up
//!   opens each flow with the proxied handshake (SYN → cookie SYN-ACK, ACK → SYN to the
//!   server, the server's SYN-ACK → window update, then the client's ACK), checking every
//!   step's output. The timed frames carry numbers in each end's own space (the client
//!   acknowledges the cookie, the server sends from its own ISN) and the expected frames
//!   have them translated by the flow's offset (server ISN − cookie). The IPv6 forms
//!   (`nat6_synproxy*`, `fullnat6_synproxy*`) run the same steps on the IPv6 plan (below),
//!   the Full-NAT SYN to the server and the handshake's last ACK carrying the 20-byte
//!   IPv6 TOA.
//! * **Proxied handshakes** (`new_conn_ns` of `nat_synproxy`, `fullnat_synproxy` and their
//!   IPv6 forms):
//!   per run, `--bursts` (default 256) bursts of new clients go through the three steps
//!   in turn, each step's frames built untimed from the previous step's output: their
//!   SYNs (`cookie_syn_ns`), their cookie ACKs, each opening a connection
//!   (`cookie_ack_ns`), and the servers' SYN-ACKs (`server_syn_ack_ns`); each step timed
//!   through the worker and through the driver alone on the same frames (a fresh buffer
//!   per frame on both sides). `new_conn_ns` is their sum: the data path's cost of one
//!   proxied connection's handshake, three packets.
//! * **New connections** (`new_conn_ns`, not for the reply modes): the same loop with
//!   every frame a SYN (MSS option, 60 bytes) from a client address and port never seen
//!   before, from 172.20.0.0 upwards; each one is a table miss, a scheduler pick, an
//!   insert (two index keys for NAT and Full-NAT), a Full-NAT local port and TOA, and the
//!   rewrite. At most [`NEW_CONNS_MAX`] are opened per mode (a run is shortened to stay
//!   within it), so the table's fill and the cache misses of its random index slots are
//!   bounded and reported (`conns_at_end`, `conn_capacity`).
//! * **Checked, not assumed.** After every run: packets out of the expected port ==
//!   packets in, none out of the other port, no drop, `rx_packets`/`tx_packets` moved by
//!   exactly the packets sent, `conns_created` by exactly the SYNs sent; and in every
//!   worker burst the first packet's destination (MAC, and IPv4 destination or IPIP outer
//!   destination) must be a server (the client for replies). Before and after the timed
//!   runs, a burst of 32 flows is compared byte for byte with frames built by
//!   [`crate::frames`] (checksums recomputed in full there), and a burst of new SYNs is
//!   parsed and its addresses and checksums checked. Any mismatch is a
//!   [`BenchError::Verify`].
//! * **IPv6** (`dr6`, `nat6`, `nat6_reply`, `fullnat6`, `fullnat6_reply`, `tunnel6`): the
//!   same plan with every address moved into
//!   IPv6 by [`frames::six`] (the ports get the twins of their /24s as /120s, the clients
//!   sit behind the gateway's twin through `::/0`, the service is `tcp
//!   [2001:db8:4::a0a:64]:80`), learnt by the worker through real neighbour solicitations
//!   from the gateway and the servers. Timed frames are 80 bytes (IPv6, TCP, 6 bytes of
//!   data), SYNs 78. DR changes only the MACs; NAT66 rewrites address and port and
//!   decrements the hop limit; Full-NAT rewrites both ends, its local addresses the
//!   twins of [`frames::local_addr`]'s on the back port (`local_addresses6`, the
//!   service's and the engine's `local_addrs6`), and the 20-byte IPv6 TOA is checked on
//!   every SYN and on the handshake's last ACK (and so absent from the timed frames, as
//!   the byte comparison checks); the tunnel decrements the hop limit and puts the packet
//!   in an outer IPv6 header from the back port's twin to the server (next header 41,
//!   hop limit 64), its timed frames carrying a traffic class and flow label that the
//!   outer header must copy. The engine sizes its IPv6 table at an eighth of the IPv4
//!   one (`lb::conn6_capacity`), so the IPv6 modes ask for eight times the capacity they
//!   need and take at most [`MAX_FLOWS6`] flows and [`NEW_CONNS_MAX6`] new connections.
//! * **NAT64** (`nat64`, `nat64_reply`): the IPv6 plan's clients and VIP, the IPv4
//!   plan's servers and Full-NAT local addresses (the service's `local_addrs`, IPv4);
//!   the client's SYN and handshake ACK leave as IPv4 with the 20-byte IPv6 TOA (checked),
//!   the servers' SYN-ACKs are IPv4. Timed frames: the client's 80-byte IPv6 segments,
//!   sent on as 60-byte IPv4 ones (`nat64`), and the servers' 60-byte IPv4 segments to
//!   the local address, sent on as 80-byte IPv6 ones from the VIP (`nat64_reply`), each
//!   compared byte for byte with [`frames::translated64`] / [`frames::translated46`]
//!   (checksums computed in full there).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_dataplane::conn::{ConnTable, ConnTable6, FlowKey, FlowKey6};
use rvs_dataplane::l2l3::neigh::NeighSync;
use rvs_dataplane::l2l3::route::StaticRoute6;
use rvs_dataplane::lb::{LbConfig, LbEngine, DEFAULT_MTU};
use rvs_dataplane::mesh::MeshLinks;
use rvs_dataplane::sched::{SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{share, Service, ServiceTable};
use rvs_dataplane::sync::{SyncEnd, SyncLink, SyncOptions};
use rvs_dataplane::synproxy::SynProxyPolicy;
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, PortId, SchedulerKind, ServiceKey, TcpState, Timeouts};
use rvs_dataplane::wire::MacAddr;
use rvs_dataplane::worker::{StaticNeighbour, Worker};
use rvs_drivers::hugemem::PagePolicy;
use rvs_drivers::mem::{MemBuf, MemPool, MemQueue, DEFAULT_HEADROOM};
use rvs_drivers::{Burst, PacketBuf, PortQueue, BURST_SIZE};

use crate::frames::{self, six, SynTemplate, TcpSeg, IP_AT, L4_AT6, TCP_ACK, TCP_PSH, TCP_SYN};
use crate::harness::{
    fresh, median, min, refill, worker_config, BenchError, L4Figures, MemWorker, Mode, NewConnFigures, Options, Report,
    BACK, BUF_ROOM, FRONT, POLL_STEP_NS, RING_BUFS, START_NS, WARMUP_SHARE,
};

/// Most established flows `--flows` accepts: 2^24, so that the table can hold 10M
/// established connections (issue 16's second size) and the new ones on top, in every
/// mode (Full-NAT gets one local address per 64,512 connections); the SYN-proxy modes
/// are bounded by [`MAX_PROXIED_FLOWS`].
pub const MAX_FLOWS: usize = 1 << 24;
/// Most established flows of the SYN-proxy modes (set up all at once, every frame of
/// the handshake in memory).
pub const MAX_PROXIED_FLOWS: usize = 1 << 22;
/// Flows [`L4Bench::open_flows`] sets up per chunk: the chunk's frames and the
/// worker's output buffers (2 KiB each) in memory at once.
const OPEN_CHUNK: usize = 1 << 16;
/// Most new connections one mode opens (validation, warm-up and timed runs together).
pub const NEW_CONNS_MAX: u64 = 1 << 20;
/// Most established flows of the IPv6 modes (their table is asked for eight times over).
pub const MAX_FLOWS6: usize = 1 << 20;
/// Most new connections one IPv6 mode opens.
pub const NEW_CONNS_MAX6: u64 = 1 << 17;
/// The IPv4 table's capacity over the IPv6 one's (`lb::conn6_capacity`).
const V6_TABLE_SHARE: usize = 8;
/// Table capacity over the connections a mode opens at most: 2, so the table ends at
/// most half full.
pub const CONN_SLACK: usize = 2;
/// Client ports per client address (10000..60000 for flows, 1024..61024 for new SYNs).
const PORTS_PER_CLIENT: usize = 50_000;
/// Full-NAT ports per local address usable by one worker (1024..=65535).
const LPORTS_PER_ADDR: usize = 64_512;
/// Share of `seconds` given to the new-connection phase (it is also bounded by
/// [`NEW_CONNS_MAX`]).
const NEW_CONN_SHARE: f64 = 0.5;
/// Warm-up bursts of the new-connection phase when not fixed by `--bursts`.
const NEW_CONN_WARM_BURSTS: u64 = 64;
/// Bursts per run of proxied handshakes when not fixed by `--bursts` (8192 connections).
const HANDSHAKE_BURSTS: u64 = 256;
/// The 6 bytes of data every timed segment carries (60-byte frame).
const DATA: &[u8; 6] = b"rvs-l4";

/// The client of established flow `i`, and its port.
fn flow_client(i: usize) -> (Ipv4Addr, u16) {
    let ip = u32::from(Ipv4Addr::new(172, 16, 0, 1)) + (i / PORTS_PER_CLIENT) as u32;
    (Ipv4Addr::from(ip), 10_000 + (i % PORTS_PER_CLIENT) as u16)
}

/// The client of new connection `k`, and its port.
fn syn_client(k: u64) -> (Ipv4Addr, u16) {
    let ip = u32::from(Ipv4Addr::new(172, 20, 0, 1)) + (k / PORTS_PER_CLIENT as u64) as u32;
    (Ipv4Addr::from(ip), 1024 + (k % PORTS_PER_CLIENT as u64) as u16)
}

/// What set-up learnt about one established flow.
#[derive(Debug, Clone, Copy)]
struct Flow {
    client: Ipv4Addr,
    cport: u16,
    server: usize,
    local: Ipv4Addr,
    lport: u16,
    /// SYN-proxied flows: the cookie (rvs's ISN towards the client) and the server's ISN;
    /// 0 and 0 otherwise.
    cookie: u32,
    server_isn: u32,
}

/// The client's ISN in every set-up SYN.
const CLIENT_ISN: u32 = 0x0100_0000;

/// The ISN the benchmark's server answers proxied flow `i` with (any value works; these
/// differ per flow so each flow has its own sequence offset).
fn server_isn(i: usize) -> u32 {
    0x5000_0000u32.wrapping_add((i as u32).wrapping_mul(0x9e37_79b9))
}

/// The counters a run must move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    rx: u64,
    tx: u64,
    drops: u64,
    created: u64,
}

impl Counts {
    fn delta(self, b: Counts) -> Counts {
        Counts {
            rx: self.rx - b.rx,
            tx: self.tx - b.tx,
            drops: self.drops - b.drops,
            created: self.created - b.created,
        }
    }
}

/// Net figures of one timed phase.
struct Phase {
    net: f64,
    min_net: f64,
    gross: f64,
    harness: f64,
    bursts: u64,
}

/// One L4 mode's worker, flows, buffer ring and bookkeeping.
pub(crate) struct L4Bench {
    mode: Mode,
    forward: ForwardMode,
    reply: bool,
    /// The service runs the SYN proxy ([`Mode::syn_proxy`]).
    proxy: bool,
    /// The service and flows are IPv6 ([`Mode::ipv6`]).
    v6: bool,
    /// NAT64: IPv6 service and clients, IPv4 servers and local addresses ([`Mode::nat64`]).
    nat64: bool,
    /// Most new connections this mode opens ([`NEW_CONNS_MAX`] or [`NEW_CONNS_MAX6`]).
    new_conns_max: u64,
    pub(crate) worker: MemWorker,
    in_port: PortId,
    out_port: PortId,
    ring: VecDeque<MemBuf>,
    flows: Vec<Flow>,
    /// The timed frame of each flow, in the measured direction.
    frames: Vec<Vec<u8>>,
    /// The order the flows are sent in (a fixed shuffle of `0..flows`).
    order: Vec<u32>,
    next: usize,
    syn: SynTemplate,
    /// New connections opened so far (the next SYN's number).
    pub(crate) syns: u64,
    scratch: Burst<MemBuf>,
    pub(crate) now: u64,
    taken: u64,
    /// Worker bursts whose sampled packet had a wrong destination.
    sample_bad: u64,
    /// Allowed destination MACs and IPv4 destinations (the four bytes at `dst_at`: the
    /// IPv4 destination, or the last four of the IPv6 one, its plan twin) of output.
    ok_macs: Vec<[u8; 6]>,
    ok_dsts: Vec<[u8; 4]>,
    dst_at: usize,
    /// The control plane's end of the worker's sync rings when the bench itself drains
    /// them after every worker burst ([`crate::sync`]'s emission cost); `None` otherwise.
    pub(crate) sync_drain: Option<SyncEnd>,
    /// Records taken out of `sync_drain`.
    pub(crate) sync_drained: u64,
}

/// A fixed shuffle of `0..n` (xorshift-driven Fisher–Yates), so consecutive packets hit
/// unrelated entries as traffic from many clients does.
fn shuffled(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn setup_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// The worker with its engine: the lab's ports, static neighbours, one service.
/// With `sync`, the engine emits connection sync records into that link (and installs
/// what arrives on it).
pub(crate) fn build_worker(
    forward: ForwardMode,
    flows: usize,
    sync: Option<SyncLink>,
) -> Result<MemWorker, BenchError> {
    build_worker_with(forward, flows, sync, false, false, false, PagePolicy::HugeTlb)
}

/// [`build_worker`], the service with `syn_proxy = "always"` when `proxy`, IPv6 (the
/// plan's twins, the ports' IPv6 prefixes and default route) when `v6`, its servers and
/// local addresses IPv4 when `nat64` too, the connection table on `pages`.
#[allow(clippy::too_many_arguments)]
fn build_worker_with(
    forward: ForwardMode,
    flows: usize,
    sync: Option<SyncLink>,
    proxy: bool,
    v6: bool,
    nat64: bool,
    pages: PagePolicy,
) -> Result<MemWorker, BenchError> {
    let opened = flows + (if v6 { NEW_CONNS_MAX6 } else { NEW_CONNS_MAX }) as usize;
    // As many local addresses as the connections need (18 at the default 1024 flows, 173
    // at 10M): --flows is bounded by MAX_FLOWS, so the count fits the address plan.
    let n_locals = if forward == ForwardMode::FullNat { opened.div_ceil(LPORTS_PER_ADDR) + 1 } else { 0 };
    let locals: Vec<Ipv4Addr> = (0..n_locals as u16).map(frames::local_addr).collect();
    // IPv6 Full-NAT takes the locals' twins (at most 20 for MAX_FLOWS6, all in the back
    // port's /120); an IPv6 service uses only those.
    // NAT64 takes the IPv4 ones.
    let locals6: Vec<std::net::Ipv6Addr> =
        if v6 && !nat64 { locals.iter().map(|&a| six(a)).collect() } else { Vec::new() };
    let mut config = worker_config()?;
    config.ports[BACK.index()].local_addresses = locals.clone();
    config.static_neighbours = std::iter::once((frames::GW_IP, frames::GW_MAC))
        .chain(frames::SERVERS.iter().copied().zip(frames::SERVER_MACS))
        .map(|(ip, mac)| StaticNeighbour { ip, mac: MacAddr(mac) })
        .collect();
    if v6 {
        let net = |ip| format!("{}/{}", six(ip), frames::V6_PORT_PREFIX_LEN).parse().map_err(setup_err);
        config.ports[FRONT.index()].ipv6_addresses = vec![net(frames::FRONT_IP)?];
        config.ports[BACK.index()].ipv6_addresses = vec![net(frames::BACK_IP)?];
        config.ports[BACK.index()].local_addresses6 = locals6.clone();
        config.routes6 = vec![StaticRoute6 { prefix: "::/0".parse().map_err(setup_err)?, via: six(frames::GW_IP) }];
    }
    let family = |ip: Ipv4Addr| -> std::net::IpAddr {
        if v6 {
            six(ip).into()
        } else {
            ip.into()
        }
    };
    let port = match forward {
        ForwardMode::Nat | ForwardMode::FullNat => frames::SERVER_PORT,
        ForwardMode::Dr | ForwardMode::Tunnel => frames::VPORT,
    };
    let servers: Vec<RealServer> = frames::SERVERS
        .iter()
        .map(|&addr| RealServer {
            addr: if nat64 { addr.into() } else { family(addr) },
            port,
            weight: 1,
            forward,
            upper: 0,
            lower: 0,
            stats: Arc::new(ServerStats::new(1)),
        })
        .collect();
    let sched = SchedShared::build(SchedulerKind::Rr, &servers, &SchedParams::default()).map_err(setup_err)?;
    let service = Service {
        key: ServiceKey { proto: L4Proto::Tcp, vip: family(frames::VIP), port: frames::VPORT },
        scheduler: SchedulerKind::Rr,
        sched: Arc::new(sched),
        persist: None,
        servers,
        local_addrs: locals.clone(),
        local_addrs6: locals6.clone(),
        stats: Arc::new(ServerStats::new(1)),
        admission: Default::default(),
        syn_proxy: if proxy { SynProxyPolicy::ALWAYS } else { SynProxyPolicy::OFF },
        unknown_flow: Default::default(),
    };
    let table = ServiceTable::new(1, vec![service]).map_err(setup_err)?;
    let lb = LbEngine::new(
        0,
        1,
        share(table),
        LbConfig {
            conn_capacity: CONN_SLACK * opened * if v6 { V6_TABLE_SHARE } else { 1 },
            conn_pages: pages,
            timeouts: Timeouts::default(),
            port_mtu: vec![DEFAULT_MTU; config.ports.len()],
            rss: None,
            rss6: None,
            local_addrs: locals,
            local_addrs6: locals6,
            cookie_secret: rvs_dataplane::synproxy::cookie::CookieSecret::from_bytes([7; 32]),
        },
    );
    let queues = vec![MemQueue::new(frames::FRONT_MAC), MemQueue::new(frames::BACK_MAC)];
    let worker = Worker::new(&config, queues, MemPool::new(), NeighSync::none()).map_err(setup_err)?;
    let worker = worker.with_lb(lb, MeshLinks::none());
    Ok(match sync {
        Some(link) => worker.with_sync(link, SyncOptions::default()),
        None => worker,
    })
}

impl L4Bench {
    fn new(
        mode: Mode,
        forward: ForwardMode,
        reply: bool,
        n_flows: usize,
        pages: PagePolicy,
    ) -> Result<Self, BenchError> {
        Self::build(mode, forward, reply, n_flows, None, pages)
    }

    /// [`L4Bench::new`] with the worker's engine emitting sync records into `sync`.
    pub(crate) fn with_sync(
        mode: Mode,
        forward: ForwardMode,
        reply: bool,
        n_flows: usize,
        sync: Option<SyncLink>,
    ) -> Result<Self, BenchError> {
        Self::build(mode, forward, reply, n_flows, sync, PagePolicy::HugeTlb)
    }

    /// The worker's answers to the gateway's and the servers' neighbour solicitations (it
    /// learns them from these), after whatever it announces on its first poll.
    fn learn_neighbours6(&mut self) -> Result<(), BenchError> {
        self.now += POLL_STEP_NS;
        self.worker.poll_once(self.now);
        self.queue(FRONT).take_tx();
        self.queue(BACK).take_tx();
        let gw = [frames::neighbour_solicitation(frames::GW_IP, frames::GW_MAC, frames::FRONT_IP)];
        self.exchange(FRONT, FRONT, &gw, "set-up ND (gateway)")?;
        let servers: Vec<Vec<u8>> = frames::SERVERS
            .iter()
            .zip(frames::SERVER_MACS)
            .map(|(&s, mac)| frames::neighbour_solicitation(s, mac, frames::BACK_IP))
            .collect();
        self.exchange(BACK, BACK, &servers, "set-up ND (servers)")?;
        Ok(())
    }

    fn build(
        mode: Mode,
        forward: ForwardMode,
        reply: bool,
        n_flows: usize,
        sync: Option<SyncLink>,
        pages: PagePolicy,
    ) -> Result<Self, BenchError> {
        let (v6, proxy) = (mode.ipv6(), mode.syn_proxy());
        let most = if v6 { MAX_FLOWS6 } else { MAX_FLOWS };
        if n_flows == 0 || n_flows > most {
            return Err(BenchError::BadOptions(format!("--flows {n_flows}: must be 1..={most} in mode {mode}")));
        }
        let nat64 = mode.nat64();
        let worker = build_worker_with(forward, n_flows, sync, proxy, v6, nat64, pages)?;
        let (in_port, out_port) = if reply { (BACK, FRONT) } else { (FRONT, BACK) };
        let (ok_macs, ok_dsts) = if reply {
            (vec![frames::GW_MAC], Vec::new())
        } else {
            let dsts = match forward {
                ForwardMode::Dr => vec![frames::VIP.octets()],
                _ => frames::SERVERS.iter().map(|s| s.octets()).collect(),
            };
            (frames::SERVER_MACS.to_vec(), dsts)
        };
        let mut b = L4Bench {
            mode,
            forward,
            reply,
            proxy,
            v6,
            nat64,
            new_conns_max: if v6 { NEW_CONNS_MAX6 } else { NEW_CONNS_MAX },
            worker,
            in_port,
            out_port,
            ring: VecDeque::new(),
            flows: Vec::with_capacity(n_flows),
            frames: Vec::with_capacity(n_flows),
            order: shuffled(n_flows),
            next: 0,
            syn: if v6 {
                SynTemplate::new6(frames::GW_MAC, frames::VIP)
            } else {
                SynTemplate::new(frames::GW_MAC, frames::VIP)
            },
            syns: 0,
            scratch: Burst::new(),
            now: START_NS,
            taken: 0,
            sample_bad: 0,
            ok_macs,
            ok_dsts,
            // The output's family: IPv4 towards NAT64's servers.
            dst_at: if v6 && (reply || !nat64) { IP_AT + 36 } else { IP_AT + 16 },
            sync_drain: None,
            sync_drained: 0,
        };
        if v6 {
            b.learn_neighbours6()?;
        }
        b.open_flows(n_flows)?;
        // Reply modes: the client's address is the destination to check.
        if reply {
            b.ok_dsts = b.flows.iter().map(|f| f.client.octets()).collect();
            b.ok_dsts.sort_unstable();
            b.ok_dsts.dedup();
        }
        b.frames = (0..n_flows).map(|i| b.data_frame(i)).collect();
        let first: Vec<MemBuf> = (0..RING_BUFS).map(|_| b.next_buf()).collect();
        b.ring.extend(first);
        Ok(b)
    }

    fn fail(&self, what: String) -> BenchError {
        BenchError::Verify { mode: self.mode, what }
    }

    fn has_reply_path(&self) -> bool {
        matches!(self.forward, ForwardMode::Nat | ForwardMode::FullNat)
    }

    fn queue(&mut self, port: PortId) -> &mut MemQueue {
        self.worker.queue_mut(port).expect("the worker has front and back ports")
    }

    /// Injects `frames` on `port`, polls once per 32, and returns what left `out`
    /// (failing when anything left the other port or the count differs).
    fn exchange(
        &mut self,
        port: PortId,
        out: PortId,
        frames: &[Vec<u8>],
        what: &str,
    ) -> Result<Vec<MemBuf>, BenchError> {
        let mut sent = Vec::with_capacity(frames.len());
        for chunk in frames.chunks(BURST_SIZE) {
            for f in chunk {
                self.queue(port).inject_buf(fresh(f));
            }
            self.now += POLL_STEP_NS;
            self.worker.poll_once(self.now);
            sent.extend(self.queue(out).take_tx());
            let other = if out == FRONT { BACK } else { FRONT };
            let stray = self.queue(other).take_tx();
            if !stray.is_empty() {
                return Err(self.fail(format!("{what}: {} frames left the wrong port", stray.len())));
            }
        }
        if sent.len() != frames.len() {
            let c = self.worker.counters().snapshot();
            return Err(self.fail(format!("{what}: {} frames in, {} out; counters {c:?}", frames.len(), sent.len())));
        }
        Ok(sent)
    }

    /// Opens `n` connections with a handshake and records their server and local port,
    /// [`OPEN_CHUNK`] at a time (the frames of one chunk in memory at once).
    fn open_flows(&mut self, n: usize) -> Result<(), BenchError> {
        if self.proxy {
            if n > MAX_PROXIED_FLOWS {
                return Err(BenchError::BadOptions(format!(
                    "--flows {n}: SYN-proxy modes open at most {MAX_PROXIED_FLOWS} flows"
                )));
            }
            return self.open_proxied_flows(n);
        }
        for start in (0..n).step_by(OPEN_CHUNK) {
            self.open_chunk(start, (start + OPEN_CHUNK).min(n))?;
        }
        self.check_established(n)
    }

    /// Opens flows `from..to` with a handshake (see [`L4Bench::open_flows`]).
    fn open_chunk(&mut self, from: usize, to: usize) -> Result<(), BenchError> {
        let seg = |src, dst, flags| TcpSeg { src, dst, flags, seq: CLIENT_ISN, options: vec![], payload: vec![] };
        let clients: Vec<(Ipv4Addr, u16)> = (from..to).map(flow_client).collect();
        let vip = (frames::VIP, frames::VPORT);
        let syns: Vec<Vec<u8>> =
            clients.iter().map(|&c| self.seg_frame(&seg(c, vip, TCP_SYN), frames::FRONT_MAC, frames::GW_MAC)).collect();
        let out = self.exchange(FRONT, BACK, &syns, "set-up SYNs")?;
        for (i, (o, &(client, cport))) in (from..).zip(out.iter().zip(&clients)) {
            self.check_syn(o.data(), (client, cport)).map_err(|e| self.fail(format!("set-up SYN {i}: {e}")))?;
            let (server, local, lport) =
                self.opened(client, cport).map_err(|e| self.fail(format!("set-up SYN {i}: {e}")))?;
            self.flows.push(Flow { client, cport, server, local, lport, cookie: 0, server_isn: 0 });
        }
        if self.has_reply_path() {
            let port = frames::SERVER_PORT;
            let synacks: Vec<Vec<u8>> = self.flows[from..to]
                .iter()
                .map(|f| {
                    let s = seg((frames::SERVERS[f.server], port), (f.local, f.lport), TCP_SYN | TCP_ACK);
                    if self.nat64 {
                        return s.frame(frames::BACK_MAC, frames::SERVER_MACS[f.server]);
                    }
                    self.seg_frame(&s, frames::BACK_MAC, frames::SERVER_MACS[f.server])
                })
                .collect();
            self.exchange(BACK, FRONT, &synacks, "set-up SYN-ACKs")?;
        }
        let acks: Vec<Vec<u8>> =
            clients.iter().map(|&c| self.seg_frame(&seg(c, vip, TCP_ACK), frames::FRONT_MAC, frames::GW_MAC)).collect();
        let out = self.exchange(FRONT, BACK, &acks, "set-up ACKs")?;
        // IPv6 Full-NAT and NAT64: the segment completing the handshake carries the TOA too.
        if self.v6 && self.forward == ForwardMode::FullNat {
            let l4_at = if self.nat64 { IP_AT + 20 } else { L4_AT6 };
            for (i, (o, &c)) in (from..).zip(out.iter().zip(&clients)) {
                let toa = o.data().get(l4_at + 20..l4_at + 40);
                if toa != Some(&frames::toa6(c)[..]) {
                    return Err(self.fail(format!("set-up ACK {i}: no IPv6 TOA for [{}]:{}", six(c.0), c.1)));
                }
            }
        }
        Ok(())
    }

    /// `seg` as an Ethernet frame of the mode's family.
    fn seg_frame(&self, seg: &TcpSeg, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
        if self.v6 {
            seg.frame6(dst_mac, src_mac)
        } else {
            seg.frame(dst_mac, src_mac)
        }
    }

    /// Checks a forwarded SYN of `client` of the mode's family ([`check_syn_out`],
    /// [`check_syn_out6`]).
    fn check_syn(&self, f: &[u8], client: (Ipv4Addr, u16)) -> Result<(), String> {
        if self.nat64 {
            check_syn_out64(f, client)
        } else if self.v6 {
            check_syn_out6(self.forward, f, client)
        } else {
            check_syn_out(self.forward, f)
        }
    }

    /// The connection the engine opened for `client:cport` → VIP: its server (an index in
    /// [`frames::SERVERS`]) and its local address and port (the client's own but in
    /// Full-NAT), in the IPv4 plan.
    fn opened(&self, client: Ipv4Addr, cport: u16) -> Result<(usize, Ipv4Addr, u16), String> {
        let lb = self.worker.lb().expect("the worker has an engine");
        let (proto, dport) = (L4Proto::Tcp, frames::VPORT);
        if self.v6 {
            let key = FlowKey6 { proto, src: six(client), sport: cport, dst: six(frames::VIP), dport };
            let c = lb.conns6().lookup(&key).and_then(|(id, _)| lb.conns6().get(id));
            let c = c.ok_or_else(|| format!("no connection for {key}"))?;
            if self.nat64 {
                // IPv4-mapped in the IPv6 table.
                let (Some(local), Some(server)) = (c.local.to_ipv4_mapped(), c.server.to_ipv4_mapped()) else {
                    return Err(format!("{key}: not a NAT64 connection"));
                };
                let server = frames::SERVERS.iter().position(|&s| s == server);
                let server = server.ok_or_else(|| format!("server {} is not one of ours", c.server))?;
                return Ok((server, local, c.lport));
            }
            let server = frames::SERVERS.iter().position(|&s| six(s) == c.server);
            let server = server.ok_or_else(|| format!("server {} is not one of ours", c.server))?;
            let local = frames::four(c.local).ok_or_else(|| format!("local address {} is not in the plan", c.local))?;
            return Ok((server, local, c.lport));
        }
        let key = FlowKey { proto, src: client, sport: cport, dst: frames::VIP, dport };
        let c = lb.conns().lookup(&key).and_then(|(id, _)| lb.conns().get(id));
        let c = c.ok_or_else(|| format!("no connection for {key}"))?;
        let server = frames::SERVERS.iter().position(|&s| s == c.server);
        let server = server.ok_or_else(|| format!("server {} is not one of ours", c.server))?;
        Ok((server, c.local, c.lport))
    }

    /// Connections in the mode's table, and how many of them are ESTABLISHED.
    fn conn_counts(&self) -> (usize, usize) {
        let lb = self.worker.lb().expect("the worker has an engine");
        let est = ConnState::Tcp(TcpState::Established);
        if self.v6 {
            (lb.conns6().len(), lb.conns6().iter().filter(|(_, c)| c.state == est).count())
        } else {
            (lb.conns().len(), lb.conns().iter().filter(|(_, c)| c.state == est).count())
        }
    }

    /// Opens `n` SYN-proxied connections with the proxied handshake (`crate::synproxy`
    /// in the data path): the client's SYN is answered with a cookie SYN-ACK, the client's
    /// ACK becomes the SYN to the server, the server's SYN-ACK becomes the window update
    /// to the client, and the client's next ACK (carrying the TOA in Full-NAT) completes
    /// the server's handshake. Each step's output is checked.
    fn open_proxied_flows(&mut self, n: usize) -> Result<(), BenchError> {
        let vip = (frames::VIP, frames::VPORT);
        let seg = |src, dst, flags, seq| TcpSeg { src, dst, flags, seq, options: vec![], payload: vec![] };
        let t = self.tcp_at();
        let clients: Vec<(Ipv4Addr, u16)> = (0..n).map(flow_client).collect();
        let syns: Vec<Vec<u8>> = clients
            .iter()
            .map(|&c| self.seg_frame(&seg(c, vip, TCP_SYN, CLIENT_ISN), frames::FRONT_MAC, frames::GW_MAC))
            .collect();
        let out = self.exchange(FRONT, FRONT, &syns, "set-up SYNs (cookies)")?;
        let mut cookies = Vec::with_capacity(n);
        for (i, (o, &c)) in out.iter().zip(&clients).enumerate() {
            let ip = &o.data()[IP_AT..];
            let ok = self.tcp_ends(ip).is_some_and(|(_, to)| to == c)
                && ip[t + 13] == TCP_SYN | TCP_ACK
                && frames::u32_at(ip, t + 8) == CLIENT_ISN.wrapping_add(1);
            if !ok {
                return Err(self.fail(format!("set-up SYN {i}: no cookie SYN-ACK to {}:{}", c.0, c.1)));
            }
            cookies.push(frames::u32_at(ip, t + 4));
        }
        let client_ack = |c, cookie: u32| {
            let ip = self.seg_ip(&seg(c, vip, TCP_ACK, CLIENT_ISN.wrapping_add(1)));
            self.ip_frame(frames::FRONT_MAC, frames::GW_MAC, &self.seq_ack(&ip, None, Some(cookie.wrapping_add(1))))
        };
        let acks: Vec<Vec<u8>> = clients.iter().zip(&cookies).map(|(&c, &k)| client_ack(c, k)).collect();
        let out = self.exchange(FRONT, BACK, &acks, "set-up cookie ACKs")?;
        for (i, (o, &(client, cport))) in out.iter().zip(&clients).enumerate() {
            let ip = &o.data()[IP_AT..];
            if ip.len() < t + 20 || ip[t + 13] != TCP_SYN {
                return Err(self.fail(format!("set-up ACK {i}: not turned into a SYN to a server")));
            }
            let (server, local, lport) =
                self.opened(client, cport).map_err(|e| self.fail(format!("set-up ACK {i}: {e}")))?;
            let want = ((local, lport), (frames::SERVERS[server], frames::SERVER_PORT));
            let got = self.tcp_ends(ip);
            if got != Some(want) || o.data().get(..6) != Some(&frames::SERVER_MACS[server][..]) {
                return Err(self.fail(format!("set-up ACK {i}: SYN sent as {got:?}, connection says {want:?}")));
            }
            self.flows.push(Flow {
                client,
                cport,
                server,
                local,
                lport,
                cookie: cookies[i],
                server_isn: server_isn(i),
            });
        }
        let synacks: Vec<Vec<u8>> = self
            .flows
            .iter()
            .map(|f| {
                let from = (frames::SERVERS[f.server], frames::SERVER_PORT);
                let ip = self.seg_ip(&seg(from, (f.local, f.lport), TCP_SYN | TCP_ACK, f.server_isn));
                let ip = self.seq_ack(&ip, None, Some(CLIENT_ISN.wrapping_add(1)));
                self.ip_frame(frames::BACK_MAC, frames::SERVER_MACS[f.server], &ip)
            })
            .collect();
        let out = self.exchange(BACK, FRONT, &synacks, "set-up server SYN-ACKs")?;
        for (i, (o, f)) in out.iter().zip(&self.flows).enumerate() {
            let ip = &o.data()[IP_AT..];
            let to_client = self.tcp_ends(ip).is_some_and(|(_, to)| to.0 == f.client);
            if !to_client || ip[t + 13] & (TCP_SYN | TCP_ACK) != TCP_ACK {
                return Err(self.fail(format!("set-up SYN-ACK {i}: no window update to the client")));
            }
        }
        // The same ACKs again: the segment that completes the server's handshake.
        self.exchange(FRONT, BACK, &acks, "set-up ACKs")?;
        self.check_established(n)
    }

    /// The offset of the TCP header in a packet of the mode's family (no IPv4 options,
    /// no IPv6 extension header).
    fn tcp_at(&self) -> usize {
        if self.v6 {
            40
        } else {
            20
        }
    }

    /// `seg` as a packet of the mode's family ([`TcpSeg::ipv4`], [`TcpSeg::ipv6`]).
    fn seg_ip(&self, seg: &TcpSeg) -> Vec<u8> {
        if self.v6 {
            seg.ipv6()
        } else {
            seg.ipv4()
        }
    }

    /// The TCP packet `ip` of the mode's family with its sequence and/or acknowledgement
    /// number replaced ([`frames::with_seq_ack`], [`frames::with_seq_ack6`]).
    fn seq_ack(&self, ip: &[u8], seq: Option<u32>, ack: Option<u32>) -> Vec<u8> {
        if self.v6 {
            frames::with_seq_ack6(ip, seq, ack)
        } else {
            frames::with_seq_ack(ip, seq, ack)
        }
    }

    /// `ip` of the mode's family in an Ethernet frame as the harness sends it.
    fn ip_frame(&self, dst_mac: [u8; 6], src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
        if self.v6 {
            frames::eth_ipv6(dst_mac, src_mac, ip)
        } else {
            frames::eth_frame(dst_mac, src_mac, ip)
        }
    }

    /// The source and destination (IPv4-plan address, port) of the TCP packet `ip` of the
    /// mode's family; `None` when it is too short or an IPv6 address is no plan twin.
    fn tcp_ends(&self, ip: &[u8]) -> Option<((Ipv4Addr, u16), (Ipv4Addr, u16))> {
        let t = self.tcp_at();
        if ip.len() < t + 20 {
            return None;
        }
        let (src, dst) = if self.v6 {
            (frames::four(frames::ipv6_at(ip, 8))?, frames::four(frames::ipv6_at(ip, 24))?)
        } else {
            (frames::ipv4_at(ip, 12), frames::ipv4_at(ip, 16))
        };
        Some(((src, frames::u16_at(ip, t)), (dst, frames::u16_at(ip, t + 2))))
    }

    /// Fails unless the table holds exactly `n` connections, all ESTABLISHED.
    fn check_established(&self, n: usize) -> Result<(), BenchError> {
        let (len, established) = self.conn_counts();
        if established != n || len != n {
            return Err(self.fail(format!("set-up: {established} of {len} connections established, {n} expected")));
        }
        Ok(())
    }

    /// The timed frame of flow `i`.
    fn data_frame(&self, i: usize) -> Vec<u8> {
        let f = self.flows[i];
        let server = frames::SERVERS[f.server];
        let (src, dst, dmac, smac) = if !self.reply {
            ((f.client, f.cport), (frames::VIP, frames::VPORT), frames::FRONT_MAC, frames::GW_MAC)
        } else {
            ((server, frames::SERVER_PORT), (f.local, f.lport), frames::BACK_MAC, frames::SERVER_MACS[f.server])
        };
        let seq = 0x0100_0001 + i as u32;
        let seg = TcpSeg { src, dst, flags: TCP_ACK | TCP_PSH, seq, options: vec![], payload: DATA.to_vec() };
        if self.v6 && self.forward == ForwardMode::Tunnel {
            // A traffic class (EF) and a flow label per flow, which the outer header copies.
            let mut ip = seg.ipv6();
            frames::set_class_and_label(&mut ip, 0xb8, (i as u32).wrapping_mul(0x9e37_79b9) >> 12);
            return frames::eth_ipv6(dmac, smac, &ip);
        }
        if self.nat64 && self.reply {
            // NAT64's servers send IPv4.
            return seg.frame(dmac, smac);
        }
        if !self.proxy {
            return self.seg_frame(&seg, dmac, smac);
        }
        // A proxied flow: each end numbers in its own space; the client acknowledges
        // the cookie, the server sends from its own ISN.
        let ip = if !self.reply {
            self.seq_ack(&self.seg_ip(&seg), Some(CLIENT_ISN.wrapping_add(1)), Some(f.cookie.wrapping_add(1)))
        } else {
            self.seq_ack(&self.seg_ip(&seg), Some(f.server_isn.wrapping_add(1)), Some(CLIENT_ISN.wrapping_add(1)))
        };
        self.ip_frame(dmac, smac, &ip)
    }

    /// The frame rvs must send for flow `i`'s timed frame (without Ethernet padding);
    /// `ident` is the IPv4 identification a NAT64 packet to the server with DF clear
    /// carries (the data path's counter; [`Self::validate_flows`] checks it apart).
    fn expected(&self, i: usize, ident: u16) -> Result<Vec<u8>, BenchError> {
        let f = self.flows[i];
        let ip = &self.frames[i][IP_AT..];
        if self.nat64 {
            return Ok(if self.reply {
                let p = frames::translated46(ip, (frames::VIP, frames::VPORT), (f.client, f.cport));
                frames::eth_ipv6(frames::GW_MAC, frames::FRONT_MAC, &p)
            } else {
                let server = (frames::SERVERS[f.server], frames::SERVER_PORT);
                let p = frames::translated64(ip, (f.local, f.lport), server, ident);
                frames::eth_ipv4(frames::SERVER_MACS[f.server], frames::BACK_MAC, &p)
            });
        }
        // A proxied flow's numbers move by the offset between the server's ISN and the
        // cookie: acknowledgements towards the server, sequence numbers towards the client.
        let translated;
        let ip = if self.proxy {
            let t = self.tcp_at();
            let (seq, ack) = (frames::u32_at(ip, t + 4), frames::u32_at(ip, t + 8));
            let off = f.server_isn.wrapping_sub(f.cookie);
            translated = if self.reply {
                self.seq_ack(ip, Some(seq.wrapping_sub(off)), None)
            } else {
                self.seq_ack(ip, None, Some(ack.wrapping_add(off)))
            };
            &translated[..]
        } else {
            ip
        };
        if self.v6 {
            let vip = (frames::VIP, frames::VPORT);
            return Ok(match (self.forward, self.reply) {
                (ForwardMode::Nat, true) => {
                    frames::eth_ipv6(frames::GW_MAC, frames::FRONT_MAC, &frames::rewritten6(ip, Some(vip), None, true))
                }
                (ForwardMode::FullNat, true) => {
                    let p = frames::rewritten6(ip, Some(vip), Some((f.client, f.cport)), true);
                    frames::eth_ipv6(frames::GW_MAC, frames::FRONT_MAC, &p)
                }
                (mode, _) => frames::to_server6(mode, ip, f.server, Some((f.local, f.lport))),
            });
        }
        let vip = (frames::VIP, frames::VPORT);
        let to_client =
            |src, dst| frames::eth_ipv4(frames::GW_MAC, frames::FRONT_MAC, &frames::rewritten(ip, src, dst));
        Ok(match (self.forward, self.reply) {
            (ForwardMode::Nat, true) => to_client(Some(vip), None),
            (ForwardMode::FullNat, true) => to_client(Some(vip), Some((f.client, f.cport))),
            (mode, _) => frames::to_server(mode, ip, f.server, Some((f.local, f.lport))),
        })
    }

    /// A buffer holding the next frame the harness sends.
    fn next_buf(&mut self) -> MemBuf {
        let i = self.order[self.next] as usize;
        self.next = if self.next + 1 == self.order.len() { 0 } else { self.next + 1 };
        fresh(&self.frames[i])
    }

    /// Refills a returned buffer with the next flow's frame (`SYN` false) or a new SYN.
    #[inline(always)]
    fn refill_next<const SYN: bool>(&mut self, b: MemBuf) -> MemBuf {
        if SYN {
            let mut b = b;
            b.reset();
            if b.append(self.syn.len()).is_none() {
                b = MemBuf::with_room(DEFAULT_HEADROOM, BUF_ROOM);
                b.append(self.syn.len());
            }
            let (client, cport) = syn_client(self.syns);
            self.syns += 1;
            self.syn.write(b.data_mut(), client, cport);
            b
        } else {
            let i = self.order[self.next] as usize;
            self.next = if self.next + 1 == self.order.len() { 0 } else { self.next + 1 };
            refill(b, &self.frames[i])
        }
    }

    /// Whether a sent frame's destination MAC and IPv4 (outer) destination are allowed.
    #[inline(always)]
    fn sample_ok(&self, f: &[u8]) -> bool {
        let (Some(mac), Some(dst)) = (f.get(..6), f.get(self.dst_at..self.dst_at + 4)) else { return false };
        self.ok_macs.iter().any(|m| m == mac) && self.ok_dsts.iter().any(|d| d == dst)
    }

    /// Takes every record out of the worker's sync rings (out of line: the benchmarks
    /// without sync pay one test per burst, not the loop's code in theirs).
    #[inline(never)]
    fn drain_sync(&mut self) {
        if let Some(end) = self.sync_drain.as_mut() {
            self.sync_drained += end.pop(usize::MAX, |_, _| ()) as u64;
        }
    }

    /// One burst through the worker (`WORKER`) or through the driver alone (baseline);
    /// `SYN` selects new connections instead of established flows.
    #[inline(always)]
    pub(crate) fn step<const WORKER: bool, const SYN: bool>(&mut self) {
        let (in_port, out_port) = (self.in_port, self.out_port);
        let q = self.worker.queue_mut(in_port).expect("the worker has front and back ports");
        for _ in 0..BURST_SIZE {
            q.inject_buf(self.ring.pop_front().expect("the ring holds more than a burst"));
        }
        if WORKER {
            self.now += POLL_STEP_NS;
            self.worker.poll_once(self.now);
            if self.sync_drain.is_some() {
                self.drain_sync();
            }
        } else {
            q.rx_burst(&mut self.scratch);
            let out = self.worker.queue_mut(out_port).expect("the worker has front and back ports");
            out.tx_burst(&mut self.scratch);
            self.scratch.clear();
        }
        let sent = self.queue(out_port).take_tx();
        self.taken += sent.len() as u64;
        if WORKER && !sent.first().is_some_and(|b| self.sample_ok(b.data())) {
            self.sample_bad += 1;
        }
        for b in sent {
            let b = self.refill_next::<SYN>(b);
            self.ring.push_back(b);
        }
        while self.ring.len() < RING_BUFS {
            let b = self.refill_next::<SYN>(MemBuf::with_room(DEFAULT_HEADROOM, BUF_ROOM));
            self.ring.push_back(b);
        }
    }

    /// A timed run of established-flow bursts through the worker (a symbol for callgrind).
    #[inline(never)]
    fn timed_worker_run(&mut self, bursts: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..bursts {
            self.step::<true, false>();
        }
        t.elapsed()
    }

    /// A timed run of the established-flow baseline (a symbol for callgrind).
    #[inline(never)]
    fn timed_harness_run(&mut self, bursts: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..bursts {
            self.step::<false, false>();
        }
        t.elapsed()
    }

    /// A timed run of new-connection bursts through the worker (a symbol for callgrind).
    #[inline(never)]
    fn timed_new_conn_run(&mut self, bursts: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..bursts {
            self.step::<true, true>();
        }
        t.elapsed()
    }

    /// A timed run of the new-connection baseline (a symbol for callgrind).
    #[inline(never)]
    fn timed_new_conn_harness_run(&mut self, bursts: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..bursts {
            self.step::<false, true>();
        }
        t.elapsed()
    }

    /// The frames of one proxied-handshake phase through the worker (`WORKER`) or the
    /// driver alone, a burst at a time, each in a fresh buffer (both sides pay it); returns
    /// the time and what left `out`.
    #[inline(always)]
    fn phase_run<const WORKER: bool>(
        &mut self,
        frames: &[Vec<u8>],
        inp: PortId,
        out: PortId,
    ) -> (Duration, Vec<MemBuf>) {
        let mut sent = Vec::with_capacity(frames.len());
        let t = Instant::now();
        for chunk in frames.chunks(BURST_SIZE) {
            let q = self.worker.queue_mut(inp).expect("the worker has front and back ports");
            for f in chunk {
                q.inject_buf(fresh(f));
            }
            if WORKER {
                self.now += POLL_STEP_NS;
                self.worker.poll_once(self.now);
            } else {
                q.rx_burst(&mut self.scratch);
                let o = self.worker.queue_mut(out).expect("the worker has front and back ports");
                o.tx_burst(&mut self.scratch);
                self.scratch.clear();
            }
            sent.extend(self.queue(out).take_tx());
        }
        (t.elapsed(), sent)
    }

    /// A timed proxied-handshake phase through the worker (a symbol for callgrind).
    #[inline(never)]
    fn timed_handshake_run(&mut self, frames: &[Vec<u8>], inp: PortId, out: PortId) -> (Duration, Vec<MemBuf>) {
        self.phase_run::<true>(frames, inp, out)
    }

    /// The same phase through the driver alone (a symbol for callgrind).
    #[inline(never)]
    fn timed_handshake_harness_run(&mut self, frames: &[Vec<u8>], inp: PortId, out: PortId) -> Duration {
        self.phase_run::<false>(frames, inp, out).0
    }

    /// One phase, worker then baseline: checks that every frame left `out` (none the
    /// other port, no drop, `created` new connections) and returns the worker's output
    /// and the two times.
    fn handshake_phase(
        &mut self,
        frames: &[Vec<u8>],
        inp: PortId,
        out: PortId,
        created: u64,
        what: &str,
    ) -> Result<(Vec<MemBuf>, Duration, Duration), BenchError> {
        let before = self.counts();
        let (w, sent) = self.timed_handshake_run(frames, inp, out);
        let other = if out == FRONT { BACK } else { FRONT };
        let stray = self.queue(other).take_tx().len();
        let d = self.counts().delta(before);
        let n = frames.len() as u64;
        let want = Counts { rx: n, tx: n, drops: 0, created };
        if sent.len() != frames.len() || stray != 0 || d != want {
            return Err(self.fail(format!(
                "{what}: {n} frames in, {} out of the expected port, {stray} of the other; counters moved {d:?}, \
                 expected {want:?}",
                sent.len()
            )));
        }
        let before = self.counts();
        let h = self.timed_handshake_harness_run(frames, inp, out);
        if self.counts() != before {
            return Err(self.fail(format!("{what} baseline: the worker moved")));
        }
        Ok((sent, w, h))
    }

    /// Times `bursts` bursts of proxied handshakes of new clients, phase by phase: their
    /// SYNs (answered with cookies), their ACKs (each opens a connection and becomes the
    /// SYN to the server) and the servers' SYN-ACKs (each becomes the window update to
    /// the client). The frames of each phase are built from the previous phase's output,
    /// untimed, and every output frame is checked on the way. Returns the net ns per
    /// connection of each phase and the gross and harness ns of the three together.
    fn handshake_run(&mut self, bursts: u64) -> Result<([f64; 3], f64, f64), BenchError> {
        let m = bursts as usize * BURST_SIZE;
        let vip = (frames::VIP, frames::VPORT);
        let seg = |src, dst, flags, seq| TcpSeg { src, dst, flags, seq, options: vec![], payload: vec![] };
        let t = self.tcp_at();
        let clients: Vec<(Ipv4Addr, u16)> = (0..m)
            .map(|_| {
                self.syns += 1;
                syn_client(self.syns - 1)
            })
            .collect();
        let syns: Vec<Vec<u8>> = clients
            .iter()
            .map(|&c| self.seg_frame(&seg(c, vip, TCP_SYN, CLIENT_ISN), frames::FRONT_MAC, frames::GW_MAC))
            .collect();
        let (out, w0, h0) = self.handshake_phase(&syns, FRONT, FRONT, 0, "handshake SYNs")?;
        let mut acks = Vec::with_capacity(m);
        for (o, &c) in out.iter().zip(&clients) {
            let ip = &o.data()[IP_AT..];
            if self.tcp_ends(ip).is_none_or(|(_, to)| to != c) || ip[t + 13] != TCP_SYN | TCP_ACK {
                return Err(self.fail(format!("handshake SYN of {}:{}: no cookie SYN-ACK back", c.0, c.1)));
            }
            let cookie = frames::u32_at(ip, t + 4);
            let ack = self.seg_ip(&seg(c, vip, TCP_ACK, CLIENT_ISN.wrapping_add(1)));
            let ack = self.seq_ack(&ack, None, Some(cookie.wrapping_add(1)));
            acks.push(self.ip_frame(frames::FRONT_MAC, frames::GW_MAC, &ack));
        }
        let (out, w1, h1) = self.handshake_phase(&acks, FRONT, BACK, m as u64, "handshake ACKs")?;
        let mut synacks = Vec::with_capacity(m);
        for (k, o) in out.iter().enumerate() {
            let f = o.data();
            let ip = &f[IP_AT..];
            let server = frames::SERVER_MACS.iter().position(|mac| f.get(..6) == Some(mac));
            let ends = self.tcp_ends(ip).filter(|_| ip[t + 13] == TCP_SYN);
            let (Some(server), Some((to, from))) = (server, ends) else {
                return Err(self.fail(format!("handshake ACK {k}: not turned into a SYN to a server")));
            };
            let sa = self.seg_ip(&seg(from, to, TCP_SYN | TCP_ACK, server_isn(k)));
            let sa = self.seq_ack(&sa, None, Some(CLIENT_ISN.wrapping_add(1)));
            synacks.push(self.ip_frame(frames::BACK_MAC, frames::SERVER_MACS[server], &sa));
        }
        let (out, w2, h2) = self.handshake_phase(&synacks, BACK, FRONT, 0, "handshake SYN-ACKs")?;
        for (o, &c) in out.iter().zip(&clients) {
            let ip = &o.data()[IP_AT..];
            if self.tcp_ends(ip).is_none_or(|(_, to)| to != c) || ip[t + 13] & (TCP_SYN | TCP_ACK) != TCP_ACK {
                return Err(self.fail(format!("handshake SYN-ACK for {}:{}: no window update to the client", c.0, c.1)));
            }
        }
        let per = |d: Duration| d.as_nanos() as f64 / m as f64;
        let net = [per(w0) - per(h0), per(w1) - per(h1), per(w2) - per(h2)];
        Ok((net, per(w0 + w1 + w2), per(h0 + h1 + h2)))
    }

    /// The proxied handshake's figures: a warm-up run, then `opts.runs` runs of
    /// `opts.bursts` (default [`HANDSHAKE_BURSTS`]) bursts; medians per phase.
    fn measure_handshakes(&mut self, opts: &Options) -> Result<(NewConnFigures, [f64; 3]), BenchError> {
        let bursts = opts.bursts.unwrap_or(HANDSHAKE_BURSTS);
        if (opts.runs as u64 + 1) * bursts * BURST_SIZE as u64 > self.new_conn_room() {
            return Err(BenchError::BadOptions(format!(
                "{} runs of {bursts} bursts would open more than {} connections: use fewer --bursts or --runs",
                opts.runs, self.new_conns_max
            )));
        }
        self.handshake_run(bursts)?;
        let (mut phases, mut gross, mut harness, mut totals) = ([vec![], vec![], vec![]], vec![], vec![], vec![]);
        for _ in 0..opts.runs {
            let (net, g, h) = self.handshake_run(bursts)?;
            for (v, x) in phases.iter_mut().zip(net) {
                v.push(x);
            }
            totals.push(net.iter().sum::<f64>());
            gross.push(g);
            harness.push(h);
        }
        let min_ns = min(&totals);
        let ns = median(&mut totals);
        let (g, h) = (median(&mut gross), median(&mut harness));
        if ns <= 0.0 || min_ns <= 0.0 {
            return Err(BenchError::Noise {
                mode: self.mode,
                gross: g,
                harness: h,
                worker_min: min_ns,
                harness_min: 0.0,
            });
        }
        let [a, b, c] = &mut phases;
        let conns_at_end = self.conn_counts().0;
        let conns = bursts * BURST_SIZE as u64 * opts.runs as u64;
        Ok((
            NewConnFigures { ns, min_ns, harness_ns: h, gross_ns: g, conns, conns_at_end },
            [median(a), median(b), median(c)],
        ))
    }

    /// One worker run and one baseline run of `bursts`, each checked.
    pub(crate) fn run_pair(&mut self, syn: bool, bursts: u64) -> Result<(Duration, Duration), BenchError> {
        let packets = bursts * BURST_SIZE as u64;
        let (before, taken, bad) = (self.counts(), self.taken, self.sample_bad);
        let w = if syn { self.timed_new_conn_run(bursts) } else { self.timed_worker_run(bursts) };
        self.check_worker_run(before, taken, bad, packets, syn)?;
        let (before, taken) = (self.counts(), self.taken);
        let h = if syn { self.timed_new_conn_harness_run(bursts) } else { self.timed_harness_run(bursts) };
        if self.counts() != before || self.taken - taken != packets {
            return Err(self.fail(format!(
                "baseline: {packets} packets sent, {} came back, or the worker moved",
                self.taken - taken
            )));
        }
        Ok((w, h))
    }

    fn counts(&self) -> Counts {
        let c = self.worker.counters();
        Counts {
            rx: c.rx_packets.get(),
            tx: c.tx_packets.get(),
            drops: c.drops_total(),
            created: c.conns_created.get(),
        }
    }

    fn check_worker_run(
        &mut self,
        before: Counts,
        taken: u64,
        bad: u64,
        packets: u64,
        syn: bool,
    ) -> Result<(), BenchError> {
        let d = self.counts().delta(before);
        let taken = self.taken - taken;
        let want = Counts { rx: packets, tx: packets, drops: 0, created: if syn { packets } else { 0 } };
        let stray = self.queue(self.in_port).take_tx().len();
        let bad = self.sample_bad - bad;
        if d != want || taken != packets || stray != 0 || bad != 0 {
            return Err(self.fail(format!(
                "{packets} packets sent, {taken} came back from the expected port and {stray} from the other; \
                 {bad} sampled bursts had a wrong destination; counters moved {d:?}, expected {want:?}"
            )));
        }
        Ok(())
    }

    /// 32 flows through the worker, each output compared byte for byte with its
    /// expected frame.
    fn validate_flows(&mut self) -> Result<(), BenchError> {
        let start = (self.next * 7) % self.flows.len();
        let idx: Vec<usize> = (0..BURST_SIZE).map(|k| (start + k) % self.flows.len()).collect();
        let inputs: Vec<Vec<u8>> = idx.iter().map(|&i| self.frames[i].clone()).collect();
        let (before, created) = (self.counts(), self.counts().created);
        let out = self.exchange(self.in_port, self.out_port, &inputs, "validation burst")?;
        let mut idents = std::collections::BTreeSet::new();
        for (o, &i) in out.iter().zip(&idx) {
            let got = o.data();
            // A NAT64 packet to the server with DF clear: its identification is the data
            // path's; each must differ from the others' (RFC 6864 §4.2).
            let ident = got.get(IP_AT + 4..IP_AT + 6).map_or(0, |w| u16::from_be_bytes([w[0], w[1]]));
            let df_clear = self.nat64 && !self.reply && got.get(IP_AT + 6) == Some(&0);
            if df_clear && !idents.insert(ident) {
                return Err(self.fail(format!("flow {i}: identification {ident:#06x} used twice in one burst")));
            }
            let want = self.expected(i, ident)?;
            if got.get(..want.len()) != Some(want.as_slice()) || got.len() > want.len().max(60) {
                return Err(self.fail(format!("flow {i}: wrong output\n got  {got:02x?}\n want {want:02x?}")));
            }
        }
        let d = self.counts().delta(before);
        if d.drops != 0 || self.counts().created != created {
            return Err(self.fail(format!("validation burst: counters moved {d:?}")));
        }
        Ok(())
    }

    /// 32 new SYNs through the worker: each opens a connection to one of the servers.
    pub(crate) fn validate_syns(&mut self) -> Result<(), BenchError> {
        let clients: Vec<(Ipv4Addr, u16)> = (0..BURST_SIZE)
            .map(|_| {
                self.syns += 1;
                syn_client(self.syns - 1)
            })
            .collect();
        let inputs: Vec<Vec<u8>> = clients
            .iter()
            .map(|&(c, p)| {
                let mut f = vec![0; self.syn.len()];
                self.syn.write(&mut f, c, p);
                f
            })
            .collect();
        let before = self.counts();
        let out = self.exchange(FRONT, BACK, &inputs, "SYN validation burst")?;
        for (k, (o, &c)) in out.iter().zip(&clients).enumerate() {
            self.check_syn(o.data(), c).map_err(|e| self.fail(format!("new SYN {k}: {e}")))?;
        }
        let d = self.counts().delta(before);
        if d.created != BURST_SIZE as u64 || d.drops != 0 {
            return Err(self.fail(format!("SYN validation burst: counters moved {d:?}")));
        }
        Ok(())
    }

    /// Rewrites every buffer waiting in the ring with a new SYN (`SYN`) or the next
    /// flows' frames, so a phase starts with only its own kind of packet in flight.
    pub(crate) fn reload_ring<const SYN: bool>(&mut self) {
        let bufs: Vec<MemBuf> = self.ring.drain(..).collect();
        for b in bufs {
            let b = self.refill_next::<SYN>(b);
            self.ring.push_back(b);
        }
    }

    /// New connections the timed runs may still open within the mode's most
    /// ([`NEW_CONNS_MAX`], [`NEW_CONNS_MAX6`]), keeping
    /// room for the ring's SYNs in flight and the final validation burst.
    pub(crate) fn new_conn_room(&self) -> u64 {
        self.new_conns_max.saturating_sub(self.syns + (RING_BUFS + BURST_SIZE) as u64)
    }

    /// Calibrates, then times `opts.runs` pairs of runs of established flows (`syn`
    /// false) or new connections (bounded by [`L4Bench::new_conn_room`]).
    fn measure(&mut self, opts: &Options, syn: bool, seconds: f64) -> Result<Phase, BenchError> {
        if syn {
            self.reload_ring::<true>();
        } else {
            self.reload_ring::<false>();
        }
        let bursts = match opts.bursts {
            Some(n) => {
                self.run_pair(syn, n)?;
                n
            }
            None => {
                let (w, h) = if syn {
                    let (w, h) = self.run_pair(syn, NEW_CONN_WARM_BURSTS)?;
                    (w.as_secs_f64() / NEW_CONN_WARM_BURSTS as f64, h.as_secs_f64() / NEW_CONN_WARM_BURSTS as f64)
                } else {
                    let start = Instant::now();
                    let mut chunk = 64;
                    loop {
                        let (w, h) = self.run_pair(syn, chunk)?;
                        if start.elapsed().as_secs_f64() >= seconds * WARMUP_SHARE {
                            break (w.as_secs_f64() / chunk as f64, h.as_secs_f64() / chunk as f64);
                        }
                        chunk = (chunk * 2).min(1 << 14);
                    }
                };
                let per_run = seconds * (1.0 - WARMUP_SHARE) / opts.runs as f64;
                let cap = if syn { self.new_conn_room() / (opts.runs as u64 * BURST_SIZE as u64) } else { u64::MAX };
                ((per_run / (w + h)) as u64).clamp(16, cap.max(16))
            }
        };
        if syn && opts.runs as u64 * bursts * BURST_SIZE as u64 > self.new_conn_room() {
            return Err(BenchError::BadOptions(format!(
                "{} runs of {bursts} bursts would open more than {} connections: use fewer --bursts or --runs",
                opts.runs, self.new_conns_max
            )));
        }
        let packets = bursts * BURST_SIZE as u64;
        let (mut ws, mut hs) = (Vec::with_capacity(opts.runs), Vec::with_capacity(opts.runs));
        for _ in 0..opts.runs {
            let (w, h) = self.run_pair(syn, bursts)?;
            ws.push(w.as_nanos() as f64 / packets as f64);
            hs.push(h.as_nanos() as f64 / packets as f64);
        }
        let (wmin, hmin) = (min(&ws), min(&hs));
        let (gross, harness) = (median(&mut ws), median(&mut hs));
        let (net, min_net) = (gross - harness, wmin - hmin);
        if net <= 0.0 || min_net <= 0.0 {
            return Err(BenchError::Noise { mode: self.mode, gross, harness, worker_min: wmin, harness_min: hmin });
        }
        Ok(Phase { net, min_net, gross, harness, bursts })
    }
}

/// Checks a forwarded SYN independently of the data path: Ethernet addresses, IPv4
/// header checksum, IPIP outer header (tunnel), TCP checksum and SYN flag, destination
/// (VIP:80 for DR/IPIP, a server:8080 matching the MAC for NAT/Full-NAT), and for
/// Full-NAT a local address as source.
fn check_syn_out(forward: ForwardMode, f: &[u8]) -> Result<(), String> {
    let short = || format!("frame of {} bytes is too short", f.len());
    let server =
        frames::SERVER_MACS.iter().position(|m| f.get(..6) == Some(m)).ok_or("destination MAC is not a server's")?;
    if f.get(6..14) != Some(&[frames::BACK_MAC.as_slice(), &[0x08, 0]].concat()[..]) {
        return Err("wrong source MAC or ethertype".into());
    }
    let mut ip = f.get(IP_AT..).ok_or_else(short)?;
    if ip.len() < 20 || frames::csum(&ip[..20]) != 0 {
        return Err("bad IPv4 header checksum".into());
    }
    if forward == ForwardMode::Tunnel {
        if ip[9] != 4
            || frames::ipv4_at(ip, 12) != frames::BACK_IP
            || frames::ipv4_at(ip, 16) != frames::SERVERS[server]
        {
            return Err("wrong IPIP outer header".into());
        }
        ip = &ip[20..];
        if ip.len() < 20 || frames::csum(&ip[..20]) != 0 {
            return Err("bad inner IPv4 header checksum".into());
        }
    }
    let total = usize::from(frames::u16_at(ip, 2));
    let seg = ip.get(20..total).ok_or_else(short)?;
    if ip[9] != 6 || ip[8] != frames::SEND_TTL - 1 || seg.len() < 20 || seg[13] != TCP_SYN {
        return Err(format!("not the SYN with TTL {} expected", frames::SEND_TTL - 1));
    }
    let (src, dst) = (frames::ipv4_at(ip, 12), frames::ipv4_at(ip, 16));
    if frames::tcp_checksum(src, dst, seg) != frames::u16_at(seg, 16) {
        return Err("bad TCP checksum".into());
    }
    let want_dst = match forward {
        ForwardMode::Dr | ForwardMode::Tunnel => (frames::VIP, frames::VPORT),
        ForwardMode::Nat | ForwardMode::FullNat => (frames::SERVERS[server], frames::SERVER_PORT),
    };
    if (dst, frames::u16_at(seg, 2)) != want_dst {
        return Err(format!("destination {dst}:{} is not {}:{}", frames::u16_at(seg, 2), want_dst.0, want_dst.1));
    }
    if forward == ForwardMode::FullNat && !frames::is_local_addr(src) {
        return Err(format!("Full-NAT source {src} is not a local address"));
    }
    Ok(())
}

/// Checks a forwarded IPv6 SYN of `client` independently of the data path, as
/// [`check_syn_out`]: Ethernet addresses, for the tunnel the outer header (next header 41,
/// hop limit 64, from the back port's twin to the server matching the MAC, payload length
/// the rest of the frame), TCP checksum over the IPv6 pseudo-header and SYN flag, hop
/// limit (one lower but in DR), destination (VIP:80 for DR and the tunnel, a server:8080
/// matching the MAC for NAT66 and Full-NAT), source (the client's, or for Full-NAT a local
/// address, the SYN then carrying the 20-byte TOA for the client right after the fixed
/// TCP header).
fn check_syn_out6(forward: ForwardMode, f: &[u8], client: (Ipv4Addr, u16)) -> Result<(), String> {
    let short = || format!("frame of {} bytes is too short", f.len());
    let server =
        frames::SERVER_MACS.iter().position(|m| f.get(..6) == Some(m)).ok_or("destination MAC is not a server's")?;
    if f.get(6..14) != Some(&[frames::BACK_MAC.as_slice(), &[0x86, 0xdd]].concat()[..]) {
        return Err("wrong source MAC or ethertype".into());
    }
    let mut ip = f.get(IP_AT..).filter(|ip| ip.len() >= 60).ok_or_else(short)?;
    if forward == ForwardMode::Tunnel {
        let outer_ok = ip[6] == 41
            && ip[7] == 64
            && usize::from(frames::u16_at(ip, 4)) == ip.len() - 40
            && frames::ipv6_at(ip, 8) == six(frames::BACK_IP)
            && frames::ipv6_at(ip, 24) == six(frames::SERVERS[server]);
        if !outer_ok {
            return Err("wrong IPv6-in-IPv6 outer header".into());
        }
        ip = ip.get(40..).filter(|ip| ip.len() >= 60).ok_or_else(short)?;
    }
    let seg = ip.get(40..40 + usize::from(frames::u16_at(ip, 4))).ok_or("payload length beyond the frame")?;
    let hop_limit = if forward == ForwardMode::Dr { frames::SEND_TTL } else { frames::SEND_TTL - 1 };
    if ip[6] != 6 || ip[7] != hop_limit || seg.len() < 20 || seg[13] != TCP_SYN {
        return Err(format!("not the SYN with hop limit {hop_limit} expected"));
    }
    let (src, dst) = (frames::ipv6_at(ip, 8), frames::ipv6_at(ip, 24));
    if frames::tcp6_checksum(src, dst, seg) != frames::u16_at(seg, 16) {
        return Err("bad TCP checksum".into());
    }
    let want_dst = match forward {
        ForwardMode::Dr | ForwardMode::Tunnel => (six(frames::VIP), frames::VPORT),
        ForwardMode::Nat | ForwardMode::FullNat => (six(frames::SERVERS[server]), frames::SERVER_PORT),
    };
    if (dst, frames::u16_at(seg, 2)) != want_dst {
        return Err(format!("destination [{dst}]:{} is not [{}]:{}", frames::u16_at(seg, 2), want_dst.0, want_dst.1));
    }
    if forward != ForwardMode::FullNat {
        if (src, frames::u16_at(seg, 0)) != (six(client.0), client.1) {
            return Err(format!("source [{src}]:{} is not the client's", frames::u16_at(seg, 0)));
        }
        return Ok(());
    }
    if !frames::four(src).is_some_and(frames::is_local_addr) {
        return Err(format!("Full-NAT source {src} is not a local address"));
    }
    if usize::from(seg[12] >> 4) * 4 < 40 || seg.get(20..40) != Some(&frames::toa6(client)[..]) {
        return Err(format!("no IPv6 TOA for [{}]:{} after the TCP header", six(client.0), client.1));
    }
    Ok(())
}

/// Checks a NAT64 SYN of `client` (IPv6) as forwarded to an IPv4 server, independently
/// of the data path: Ethernet addresses, IPv4 header checksum, DF clear (RFC 7915 §5.1:
/// a SYN is far below 1260 bytes),
/// TTL one lower, TCP checksum over the IPv4 pseudo-header and SYN flag, destination a
/// server:8080 matching the MAC, source a local address, the 20-byte IPv6 TOA for the
/// client right after the fixed TCP header.
fn check_syn_out64(f: &[u8], client: (Ipv4Addr, u16)) -> Result<(), String> {
    let short = || format!("frame of {} bytes is too short", f.len());
    let server =
        frames::SERVER_MACS.iter().position(|m| f.get(..6) == Some(m)).ok_or("destination MAC is not a server's")?;
    if f.get(6..14) != Some(&[frames::BACK_MAC.as_slice(), &[0x08, 0]].concat()[..]) {
        return Err("wrong source MAC or ethertype".into());
    }
    let ip = f.get(IP_AT..).filter(|ip| ip.len() >= 40).ok_or_else(short)?;
    if ip[0] != 0x45 || frames::csum(&ip[..20]) != 0 || frames::u16_at(ip, 6) != 0 {
        return Err("not a 20-byte IPv4 header, DF clear, not a fragment, with a good checksum".into());
    }
    let seg = ip.get(20..usize::from(frames::u16_at(ip, 2))).ok_or_else(short)?;
    if ip[9] != 6 || ip[8] != frames::SEND_TTL - 1 || seg.len() < 20 || seg[13] != TCP_SYN {
        return Err(format!("not the SYN with TTL {} expected", frames::SEND_TTL - 1));
    }
    let (src, dst) = (frames::ipv4_at(ip, 12), frames::ipv4_at(ip, 16));
    if frames::tcp_checksum(src, dst, seg) != frames::u16_at(seg, 16) {
        return Err("bad TCP checksum".into());
    }
    if (dst, frames::u16_at(seg, 2)) != (frames::SERVERS[server], frames::SERVER_PORT) {
        return Err(format!("destination {dst}:{} is not the server's", frames::u16_at(seg, 2)));
    }
    if !frames::is_local_addr(src) {
        return Err(format!("NAT64 source {src} is not a local address"));
    }
    if usize::from(seg[12] >> 4) * 4 < 40 || seg.get(20..40) != Some(&frames::toa6(client)[..]) {
        return Err(format!("no IPv6 TOA for [{}]:{} after the TCP header", six(client.0), client.1));
    }
    Ok(())
}

/// Measures one L4 mode (see the module docs).
pub fn run(mode: Mode, forward: ForwardMode, reply: bool, opts: &Options) -> Result<Report, BenchError> {
    let mut b = L4Bench::new(mode, forward, reply, opts.flows, opts.pages)?;
    b.validate_flows()?;
    let p = b.measure(opts, false, opts.seconds)?;
    b.validate_flows()?;
    let mut handshake = None;
    let new_conn = if reply {
        None
    } else if mode.syn_proxy() {
        let (n, phases) = b.measure_handshakes(opts)?;
        b.validate_flows()?;
        handshake = Some(phases);
        Some(n)
    } else {
        b.validate_syns()?;
        let n = b.measure(opts, true, opts.seconds * NEW_CONN_SHARE)?;
        b.validate_syns()?;
        b.validate_flows()?;
        let conns_at_end = b.conn_counts().0;
        Some(NewConnFigures {
            ns: n.net,
            min_ns: n.min_net,
            harness_ns: n.harness,
            gross_ns: n.gross,
            conns: n.bursts * BURST_SIZE as u64 * opts.runs as u64,
            conns_at_end,
        })
    };
    let lb = b.worker.lb().expect("the worker has an engine");
    // The table the mode's flows live in.
    let (bytes_per_conn, conn_capacity, table_bytes, memory) = if b.v6 {
        let t: &ConnTable6 = lb.conns6();
        (ConnTable6::bytes_per_conn(), t.capacity(), t.memory_bytes(), t.memory())
    } else {
        let t: &ConnTable = lb.conns();
        (ConnTable::bytes_per_conn(), t.capacity(), t.memory_bytes(), t.memory())
    };
    let figures = L4Figures {
        new_conn,
        handshake,
        bytes_per_conn,
        flows: b.flows.len(),
        conn_capacity,
        table_bytes,
        table_huge_pages: memory.huge_pages,
        table_fallback_pages: memory.fallback_pages,
    };
    Ok(Report {
        mode,
        ns_per_pkt: p.net,
        min_ns_per_pkt: p.min_net,
        mpps: 1e3 / p.net,
        packets: p.bursts * BURST_SIZE as u64 * opts.runs as u64,
        batches: p.bursts * opts.runs as u64,
        harness_ns_per_pkt: p.harness,
        gross_ns_per_pkt: p.gross,
        runs: opts.runs,
        l4: Some(figures),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_l4_mode_sets_up_and_validates() {
        for m in Mode::ALL {
            let Some((forward, reply)) = m.forward() else { continue };
            let mut b = L4Bench::new(m, forward, reply, 64, PagePolicy::Base).unwrap_or_else(|e| panic!("{m}: {e}"));
            b.validate_flows().unwrap_or_else(|e| panic!("{m}: {e}"));
            b.run_pair(false, 4).unwrap_or_else(|e| panic!("{m}: {e}"));
            b.validate_flows().unwrap_or_else(|e| panic!("{m}: {e}"));
            if !reply && !m.syn_proxy() {
                b.validate_syns().unwrap_or_else(|e| panic!("{m}: {e}"));
                b.reload_ring::<true>();
                b.run_pair(true, 4).unwrap_or_else(|e| panic!("{m}: {e}"));
                assert_eq!(b.conn_counts().0, 64 + 32 + 4 * 32, "{m}");
            }
        }
    }

    #[test]
    fn a_wrong_rewrite_is_an_error_not_a_figure() {
        // Expect the NAT rewrite from a DR worker: the byte comparison must refuse it.
        let mut b = L4Bench::new(Mode::Nat, ForwardMode::Dr, false, 8, PagePolicy::Base).unwrap();
        b.forward = ForwardMode::Nat;
        assert!(matches!(b.validate_flows(), Err(BenchError::Verify { mode: Mode::Nat, .. })));
        // And a sample check that allows no destination fails every worker run.
        b.ok_dsts.clear();
        assert!(b.run_pair(false, 2).is_err());
    }

    #[test]
    fn an_ipv6_mode_checks_ipv6_output() {
        // NAT66 output checked as DR (the destination and hop limit differ): refused.
        let mut b = L4Bench::new(Mode::Nat6, ForwardMode::Nat, false, 8, PagePolicy::Base).unwrap();
        assert_eq!(b.conn_counts(), (8, 8));
        b.forward = ForwardMode::Dr;
        assert!(matches!(b.validate_flows(), Err(BenchError::Verify { mode: Mode::Nat6, .. })));
        assert!(b.validate_syns().is_err());
        // The IPv4 check of an IPv6 frame fails too (wrong ethertype).
        let syn = TcpSeg {
            src: (frames::CLIENT_IP, 1),
            dst: (frames::VIP, 80),
            flags: TCP_SYN,
            seq: 1,
            options: vec![],
            payload: vec![],
        };
        let f = frames::eth_ipv6(frames::SERVER_MACS[0], frames::BACK_MAC, &syn.ipv6());
        let client = (frames::CLIENT_IP, 1);
        assert!(check_syn_out6(ForwardMode::Dr, &f, client).is_ok());
        assert!(check_syn_out(ForwardMode::Dr, &f).is_err());
        assert!(check_syn_out6(ForwardMode::Nat, &f, client).is_err());
        assert!(check_syn_out6(ForwardMode::Dr, &f, (frames::CLIENT_IP, 2)).is_err(), "another client's SYN");
        assert!(L4Bench::new(Mode::Dr6, ForwardMode::Dr, false, MAX_FLOWS6 + 1, PagePolicy::Base).is_err());
    }

    #[test]
    fn ipv6_tunnel_and_fullnat_checks_refuse_wrong_output() {
        // Tunnel output checked as NAT66, and Full-NAT output checked as the tunnel: refused.
        let mut b = L4Bench::new(Mode::Tunnel6, ForwardMode::Tunnel, false, 8, PagePolicy::Base).unwrap();
        b.forward = ForwardMode::Nat;
        assert!(matches!(b.validate_flows(), Err(BenchError::Verify { mode: Mode::Tunnel6, .. })));
        let mut b = L4Bench::new(Mode::FullNat6, ForwardMode::FullNat, false, 8, PagePolicy::Base).unwrap();
        assert_eq!(b.conn_counts(), (8, 8));
        assert!(b.flows.iter().all(|f| frames::is_local_addr(f.local)));
        b.forward = ForwardMode::Tunnel;
        assert!(b.validate_flows().is_err());
        assert!(b.validate_syns().is_err());

        // A Full-NAT SYN must come from a local address and carry the client's TOA.
        let client = (Ipv4Addr::new(172, 20, 0, 1), 1024);
        let local = (frames::local_addr(0), 2000);
        let server = (frames::SERVERS[1], frames::SERVER_PORT);
        let syn = |src, options: &[u8]| {
            let s = TcpSeg { src, dst: server, flags: TCP_SYN, seq: 1, options: options.to_vec(), payload: vec![] };
            frames::eth_ipv6(frames::SERVER_MACS[1], frames::BACK_MAC, &frames::rewritten6(&s.ipv6(), None, None, true))
        };
        let good = syn(local, &frames::toa6(client));
        assert_eq!(check_syn_out6(ForwardMode::FullNat, &good, client), Ok(()));
        assert!(check_syn_out6(ForwardMode::FullNat, &good, (client.0, 1025)).is_err(), "another client's TOA");
        assert!(check_syn_out6(ForwardMode::FullNat, &syn(local, &[]), client).is_err(), "no TOA");
        assert!(check_syn_out6(ForwardMode::FullNat, &syn(client, &frames::toa6(client)), client).is_err());
    }

    #[test]
    fn an_ipv6_proxied_flow_is_checked_with_its_translation() {
        for (mode, forward, reply) in
            [(Mode::Nat6SynProxy, ForwardMode::Nat, false), (Mode::FullNat6SynProxyReply, ForwardMode::FullNat, true)]
        {
            let mut b = L4Bench::new(mode, forward, reply, 8, PagePolicy::Base).unwrap();
            assert_eq!(b.conn_counts(), (8, 8), "{mode}");
            assert!(b.flows.iter().all(|f| f.server_isn.wrapping_sub(f.cookie) != 0), "{mode}");
            b.validate_flows().unwrap_or_else(|e| panic!("{mode}: {e}"));
            // Expected without the proxy's sequence translation: refused.
            b.proxy = false;
            assert!(matches!(b.validate_flows(), Err(BenchError::Verify { .. })), "{mode}");
        }
    }

    #[test]
    fn flow_and_syn_clients_never_overlap() {
        assert_eq!(flow_client(0), (Ipv4Addr::new(172, 16, 0, 1), 10_000));
        assert_eq!(flow_client(PORTS_PER_CLIENT), (Ipv4Addr::new(172, 16, 0, 2), 10_000));
        let (last, _) = flow_client(MAX_FLOWS - 1);
        assert!(last < Ipv4Addr::new(172, 20, 0, 1));
        assert_eq!(syn_client(1), (Ipv4Addr::new(172, 20, 0, 1), 1025));
        let mut s = shuffled(100);
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<u32>>());
    }
}
