//! The L4 load-balancing path of one worker: service lookup, ownership, connection
//! table, scheduling, and the forwarding-mode rewrites.
//!
//! Contract:
//! * An [`LbEngine`] belongs to one worker and is only touched by it (`&mut self`). It
//!   holds the worker's connection table shard, one scheduler per service (per-worker
//!   cursors and state, no locks), the worker's Full-NAT local ports, and the service
//!   snapshot it last loaded ([`LbEngine::refresh`], once per poll).
//! * [`LbEngine::handle_view`] takes a frame the worker has already validated as IPv4
//!   (header, checksum, not a fragment, sane source) carrying TCP or UDP, with the
//!   [`L4View`] it built during those checks and the destination's [`AddrKind`], and
//!   returns a [`Verdict`]: route it (to a server or back to a client), redirect it to
//!   the worker that owns its flow, or drop it with a reason. From there on nothing
//!   parses the packet again — TTL and the rewrites use the view's layout
//!   (`ttl::forward`, `nat::inbound`, ...). [`LbEngine::handle_icmp_error`] does the same
//!   for ICMP errors about a flow, parsed once by `icmp_err::parse`.
//! * Ownership is a pure function of the packet (DESIGN.md): client → VIP packets and NAT
//!   replies belong to `client_owner(client, client port)`; Full-NAT replies to
//!   `lport_owner(local port)`. A packet that arrives at another worker (RSS put it on
//!   another queue, or ARP-less NICs without RSS) comes back as
//!   [`Verdict::Redirect`]; the worker moves it through a single-producer ring.
//! * New flows: a TCP segment creates a connection only when it is a SYN without ACK
//!   (IPVS's rule: anything else for an unknown flow is dropped, `tcp_no_conn`), or, on a
//!   service with `unknown_flow = "schedule"` (`crate::types::UnknownFlow`), any segment
//!   but a RST (counted `conns_unknown_scheduled`); any UDP
//!   datagram creates one, if the service admits it (`crate::admission`: client
//!   allow/deny prefixes, `maxconn`, the per-client rate; refusals are `acl_denied`,
//!   `service_maxconn`, `client_rate_limited`).
//!   Persistence (`ipvsadm -p`) is consulted first and holds across
//!   workers (its table is shared and lock-free); then the service's scheduler picks.
//! * NAT64 (IPv6 services on IPv4 Full-NAT servers, `nat64_engine`): an IPv4 packet to a
//!   local address that misses the IPv4 table is looked up, out of line, in the IPv6
//!   table with its addresses IPv4-mapped, and translated back to IPv6.
//! * IPv4 fragments of TCP/UDP flows come through [`LbEngine::handle_fragment`] with the
//!   ports the worker's fragment table found, and follow their flow in every mode
//!   without reassembly (the `frag_engine` module docs give the rules per mode); IPv6
//!   fragments through [`LbEngine::handle_fragment6`] (`frag6_engine`, every mode too).
//! * Every forwarded packet has its TTL decremented like a router; TTL 1 becomes ICMP time
//!   exceeded back to the sender. IPIP packets over the egress MTU with DF set become ICMP
//!   fragmentation needed back to the client (RFC 1191), without DF they are dropped —
//!   but for inner fragments, whose outer packet the worker cuts (`frag_engine`).
//! * A connection records addresses and ports, not pointers into the snapshot: a new
//!   snapshot never breaks an established flow. It also records the stable ids of its
//!   service and real server; the counters of both are found by id in whatever snapshot
//!   is current (the control plane carries each `ServerStats` over into the new
//!   snapshot), so counts continue across every change. Existing connections are found
//!   before the service is looked up: deleting a service does not cut its flows on a
//!   VIP still answered for.
//! * A connection whose real server is no longer in the snapshot follows
//!   `TableSettings::expire_nodest_conn` (IPVS's sysctl): forwarded until it expires
//!   (nothing credited to the deleted server), or removed at its next packet, which is
//!   dropped as `conn_server_removed`. Service-wide counters keep following the
//!   connection while its service exists, so the service's active/inactive counts never
//!   leak. Weight 0 (drain) only stops new connections.
//! * Timeouts and the other `TableSettings` change with the snapshot:
//!   [`LbEngine::refresh`] applies them when the generation changes.
//! * Packet and byte counts of servers and services are accumulated in the engine and
//!   added to their shared counters by [`LbEngine::flush_stats`], which the worker calls
//!   at the end of every poll (and `refresh` before it changes snapshot): readers see them
//!   by the end of the poll that forwarded the packets, as the worker's own counters
//!   (stats.rs), for a few stores per server per poll instead of per packet.
//!   Connection counts (opened, active/inactive moves, closed) stay immediate: the
//!   schedulers read them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rvs_drivers::PacketBuf;

use crate::admission::{Admission, RateTable};
use crate::conn::owner::{client_owner, lport_owner, LocalPortAllocator, LocalPortAllocator6, RssSpec};
use crate::conn::{
    CachedHop, Conn, ConnFlags, ConnId, ConnTable, ConnTable6, Direction, FlowKey, StateChange, TableFull,
};
use crate::control::{ConnEntry, ConnFilter, ConnListing, MAX_LISTING};
use crate::l2l3::nd::Ipv6Book;
use crate::l2l3::{AddrKind, AddressBook, ResolvedNeighbours, RouteTable, Verdict};
use crate::sched::{new_scheduler, PersistTable, SchedInput, Scheduler};
use crate::server::ServerStats;
use crate::service::{Service, ServiceTable, SharedServices};
use crate::stats::{DropReason, WorkerCounters};
use crate::synproxy::cookie::CookieSecret;
use crate::synproxy::SynProxyMode;
use crate::types::{ConnState, ForwardMode, L4Proto, PortId, ServerId, ServiceId, TcpState, Timeouts};
use crate::view::L4View;
use crate::wire::{EthernetFrame, Ipv4Packet, MacAddr};
use crate::xmit::icmp_err;
use crate::xmit::icmp_rate::IcmpRateLimit;
use crate::xmit::ttl::{self, TtlDecrement, TtlVerdict};
use crate::xmit::tunnel::{self, TunnelError};
use crate::xmit::{fullnat, nat, Endpoint};

mod frag6_engine;
mod frag_engine;
mod icmp6_engine;
mod nat64_engine;
mod prefetch;
mod sync_engine;
mod synproxy64_engine;
mod synproxy6_engine;
mod synproxy_engine;
mod v6_engine;
pub use frag6_engine::{flow_owner6, Dst6};
pub use frag_engine::flow_owner;
pub use nat64_engine::Nat64Routes;
pub use prefetch::PREFETCH_MIN_CONNS;
pub use sync_engine::{Installed, SyncRefused};
use synproxy_engine::proxied_to_server;
pub use v6_engine::{conn6_capacity, LbEnv6, MIN_CONN6_CAPACITY};

/// Adds the connections of `table` (either family's) matching `filter` to `out`: all
/// counted, entries up to `max`.
fn list_table<F: crate::conn::Family>(
    table: &crate::conn::ConnTableOf<F>,
    filter: &ConnFilter,
    max: usize,
    now: u64,
    out: &mut ConnListing,
) where
    F::Addr: Into<IpAddr>,
{
    for (_, c) in table.iter() {
        let (vip, server) = ((c.vip.into(), c.vport), (c.server.into(), c.sport));
        if !filter.matches(c.proto, vip, server) {
            continue;
        }
        out.total += 1;
        if out.entries.len() < max {
            out.entries.push(ConnEntry {
                proto: c.proto,
                client: (c.client.into(), c.cport),
                vip,
                local: (c.local.into(), c.lport),
                server,
                forward: c.forward,
                state: c.state,
                expires_in_ns: c.expires_in_ns(now),
            });
        }
    }
}

/// The key of service `svc_idx`'s buckets: its stable id (buckets stay with the service
/// across table changes), or the index past the ids if the table has none.
#[inline]
fn svc_idx_id(snap: &ServiceTable, svc_idx: u32) -> u32 {
    snap.service_id(svc_idx).unwrap_or(u32::MAX - svc_idx)
}

/// A new flow's client address, of either family: what admission, the per-client rate
/// and persistence ask of it, so that both engines' new connections take one path.
pub(crate) trait FlowClient: Copy {
    /// The service's lists and `maxconn` ([`Admission::admit`]).
    fn admit(self, a: &Admission, conns: &ServerStats) -> Result<(), DropReason>;
    /// One token of the client's bucket ([`RateTable::admit`]).
    fn rate(self, t: &mut RateTable, service: u32, rate: u32, burst: u32, now: u64) -> bool;
    /// The persisted server, or `choose()`'s ([`PersistTable::lookup_or_insert_if`]).
    fn persist(
        self,
        p: &PersistTable,
        now_s: u32,
        usable: impl Fn(usize) -> bool,
        choose: impl FnOnce() -> Option<usize>,
    ) -> Option<usize>;
}

impl FlowClient for Ipv4Addr {
    #[inline]
    fn admit(self, a: &Admission, conns: &ServerStats) -> Result<(), DropReason> {
        a.admit(self, conns)
    }
    #[inline]
    fn rate(self, t: &mut RateTable, service: u32, rate: u32, burst: u32, now: u64) -> bool {
        t.admit(service, self, rate, burst, now)
    }
    #[inline]
    fn persist(
        self,
        p: &PersistTable,
        now_s: u32,
        usable: impl Fn(usize) -> bool,
        choose: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        p.lookup_or_insert_if(self, now_s, usable, choose)
    }
}

impl FlowClient for Ipv6Addr {
    #[inline]
    fn admit(self, a: &Admission, conns: &ServerStats) -> Result<(), DropReason> {
        a.admit6(self, conns)
    }
    #[inline]
    fn rate(self, t: &mut RateTable, service: u32, rate: u32, burst: u32, now: u64) -> bool {
        t.admit6(service, self, rate, burst, now)
    }
    #[inline]
    fn persist(
        self,
        p: &PersistTable,
        now_s: u32,
        usable: impl Fn(usize) -> bool,
        choose: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        p.lookup_or_insert6_if(self, now_s, usable, choose)
    }
}

/// The server of a new flow from `client` on `svc`: with persistence, the client's
/// persisted server while it is available (weight 0 or overloaded: replaced by a fresh
/// pick), else `pick()`'s, remembered; without, `pick()`'s.
#[inline]
pub(crate) fn pick_server<C: FlowClient>(
    svc: &Service,
    client: C,
    now: u64,
    pick: impl FnOnce() -> Option<usize>,
) -> Option<usize> {
    match &svc.persist {
        Some(p) => client.persist(
            p,
            crate::sched::persist::persist_now_s(now),
            |i| svc.servers.get(i).is_some_and(|s| s.available()),
            pick,
        ),
        None => pick(),
    }
}

/// How often the connection table's timers are advanced (the wheel's own granularity
/// bounds the precision; this only keeps the walk off most polls).
pub const CONN_TIMER_INTERVAL_NS: u64 = 10_000_000;

/// Connections expired per timer run at most, so that a wave of simultaneous timeouts
/// (the end of a SYN flood) cannot stall the worker; the rest expire on the next runs,
/// late by a few milliseconds but never early.
pub const EXPIRE_BATCH: usize = 4096;

/// The MTU assumed for a port whose configuration gives none (Ethernet).
pub const DEFAULT_MTU: u16 = 1500;

/// Size and behaviour of one worker's load-balancing state.
#[derive(Debug, Clone)]
pub struct LbConfig {
    /// Connection table capacity of this worker (entries; both directions share one).
    pub conn_capacity: usize,
    /// Where the connection table's memory comes from: reserved huge pages (the
    /// default; ordinary memory with transparent huge pages when too few are free), or
    /// ordinary pages for comparisons ([`ConnTable::memory`] says what it got).
    pub conn_pages: rvs_drivers::hugemem::PagePolicy,
    /// TCP state and UDP timeouts.
    pub timeouts: Timeouts,
    /// IPv4 MTU of each port, by port index (for IPIP's path-MTU rule and TOA).
    pub port_mtu: Vec<u16>,
    /// RSS key and redirection table of the port Full-NAT replies arrive on, for this
    /// worker's queue, when the NIC hashes (rvsd: `reply_rss`): local ports are then
    /// chosen so replies land on this worker's queue. `None`: any owned port.
    pub rss: Option<RssSpec>,
    /// The same for IPv6 Full-NAT replies (rvsd: `reply_rss6`, the ports holding IPv6
    /// local addresses, when they hash the IPv6 TCP/UDP 4-tuple): IPv6 local ports are
    /// then chosen so replies land on this worker's queue. `None`: any owned port.
    pub rss6: Option<RssSpec>,
    /// Every Full-NAT local address any service may use (the ports'
    /// `local_addresses`); this worker owns its share of each one's ports.
    pub local_addrs: Vec<Ipv4Addr>,
    /// The IPv6 ones (IPv6 Full-NAT, `v6_engine`), shared out the same way.
    pub local_addrs6: Vec<std::net::Ipv6Addr>,
    /// The SYN-cookie secret, the same for every worker of the process
    /// (`crate::synproxy::cookie`).
    pub cookie_secret: CookieSecret,
}

/// What the engine needs from its worker for one packet: the tables it only reads and
/// the counters it bumps.
#[derive(Clone, Copy)]
pub struct LbEnv<'a> {
    /// Routes, to reach servers and clients.
    pub routes: &'a RouteTable,
    /// Our addresses: VIPs, local addresses, port addresses.
    pub addrs: &'a AddressBook,
    /// Each port's own address, by port index (the IPIP outer source).
    pub port_addrs: &'a [Ipv4Addr],
    /// The worker's counters.
    pub counters: &'a WorkerCounters,
    /// The worker's resolved neighbours, to fill a connection's cached next hop.
    pub neigh: &'a dyn ResolvedNeighbours,
    /// The neighbour table's generation now (`NeighbourTable::generation`): a
    /// connection's cached next hop taken at another generation is not used.
    pub neigh_generation: u32,
}

impl std::fmt::Debug for LbEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbEnv")
            .field("routes", &self.routes)
            .field("addrs", &self.addrs)
            .field("port_addrs", &self.port_addrs)
            .field("neigh_generation", &self.neigh_generation)
            .finish_non_exhaustive()
    }
}

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// Packets and bytes of one real server (and its service) forwarded since the last
/// [`LbEngine::flush_stats`]; empty when both packet counts are 0.
#[derive(Debug, Clone, Copy, Default)]
struct PendingStats {
    server_id: ServerId,
    service_id: ServiceId,
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
}

impl PendingStats {
    fn is_empty(&self) -> bool {
        self.packets_in == 0 && self.packets_out == 0
    }
}

/// Servers whose counts accumulate at once, direct-mapped by server id (stable ids are
/// consecutive, so the servers of a service rarely share a slot; a collision only flushes
/// the slot early).
const PENDING_SLOTS: usize = 16;

/// One worker's load-balancing state. See the module docs.
pub struct LbEngine {
    worker: usize,
    workers: usize,
    shared: SharedServices,
    snap: Arc<ServiceTable>,
    scheds: Vec<Box<dyn Scheduler>>,
    conns: ConnTable,
    /// The IPv6 connections (`v6_engine`).
    conns6: ConnTable6,
    /// The worker's IPv6 addresses, for the IPv6 tunnel's outer source
    /// ([`LbEngine::set_ipv6_addresses`]).
    addrs6: Ipv6Book,
    lports: LocalPortAllocator,
    /// The IPv6 Full-NAT local ports (`v6_engine`).
    lports6: LocalPortAllocator6,
    /// Both families' routes, for NAT64 (`nat64_engine`); `None` until the worker gives them.
    nat64_routes: Option<Box<Nat64Routes>>,
    /// The last IPv4 identification a NAT64 packet sent with DF clear took
    /// (`nat64_engine`); each worker starts its own stretch of the 16-bit space.
    nat64_ident: u16,
    rss: Option<RssSpec>,
    /// The IPv6 local ports' RSS spec ([`LbConfig::rss6`]).
    rss6: Option<RssSpec>,
    port_mtu: Vec<u16>,
    next_expire: u64,
    pending: [PendingStats; PENDING_SLOTS],
    /// Connection sync ([`LbEngine::set_sync`]); `None`: none, and no cost.
    sync: Option<sync_engine::SyncState>,
    /// Limits on the ICMP errors this worker generates.
    icmp_limit: IcmpRateLimit,
    /// This worker's per-client token buckets (`client_rate`; crate::admission).
    rate: RateTable,
    /// The SYN-cookie secret (crate::synproxy).
    cookie_secret: CookieSecret,
    /// When this worker last sent a SYN cookie; ACKs for unknown flows are checked as
    /// cookies only within a cookie's lifetime of it.
    last_cookie_ns: Option<u64>,
}

impl std::fmt::Debug for LbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbEngine")
            .field("worker", &self.worker)
            .field("workers", &self.workers)
            .field("generation", &self.snap.generation())
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl LbEngine {
    /// The engine of worker `worker` of `workers`, reading services from `shared`. All its
    /// memory (the connection table above all) is allocated here.
    pub fn new(worker: usize, workers: usize, shared: SharedServices, config: LbConfig) -> Self {
        let snap = shared.load_full();
        let mut lb = LbEngine {
            worker,
            workers: workers.max(1),
            shared,
            snap,
            scheds: Vec::new(),
            conns: ConnTable::with_pages(config.conn_capacity, config.timeouts, config.conn_pages),
            conns6: ConnTable6::with_pages(conn6_capacity(config.conn_capacity), config.timeouts, config.conn_pages),
            addrs6: Ipv6Book::default(),
            lports: LocalPortAllocator::new(worker, workers.max(1), &config.local_addrs),
            lports6: LocalPortAllocator6::new(worker, workers.max(1), &config.local_addrs6),
            nat64_routes: None,
            nat64_ident: ((worker as u64 * 65536) / workers.max(1) as u64) as u16,
            rss: config.rss,
            rss6: config.rss6,
            port_mtu: config.port_mtu,
            next_expire: 0,
            pending: [PendingStats::default(); PENDING_SLOTS],
            sync: None,
            icmp_limit: IcmpRateLimit::default(),
            // Keyed per worker so that one set of addresses does not collide everywhere.
            rate: RateTable::new(0x9e37_79b9_7f4a_7c15 ^ (worker as u64).wrapping_mul(0xd6e8_feb8_6659_fd93)),
            cookie_secret: config.cookie_secret,
            last_cookie_ns: None,
        };
        lb.rebuild_schedulers();
        lb
    }

    /// Picks up a newly published service table, if any (once per poll: one atomic load
    /// when nothing changed; schedulers are rebuilt and the table's timeouts applied
    /// only on a change). Returns whether the table changed.
    #[inline]
    pub fn refresh(&mut self) -> bool {
        if self.shared.load().generation() == self.snap.generation() {
            return false;
        }
        // Counts are credited by id in the snapshot they were forwarded under.
        self.flush_stats();
        self.snap = self.shared.load_full();
        self.rebuild_schedulers();
        if let Some(t) = self.snap.settings().timeouts {
            if *self.conns.timeouts() != t {
                self.conns.set_timeouts(t);
            }
            if *self.conns6.timeouts() != t {
                self.conns6.set_timeouts(t);
            }
        }
        true
    }

    fn rebuild_schedulers(&mut self) {
        let (worker, workers) = (self.worker, self.workers);
        self.scheds = self
            .snap
            .services()
            .iter()
            .map(|s| new_scheduler(s.scheduler, Arc::clone(&s.sched), &s.servers, worker, workers))
            .collect();
    }

    /// The connection table (for listings and tests).
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// The service table this worker currently uses.
    pub fn services(&self) -> &Arc<ServiceTable> {
        &self.snap
    }

    /// The connections matching `filter` at time `now`: how many, and the first `max`
    /// (at most [`MAX_LISTING`]) in table order, the IPv4 table's then the IPv6 table's.
    /// Walks both tables and allocates the listing: for control requests between polls,
    /// never per packet.
    pub fn list_conns(&self, filter: &ConnFilter, max: usize, now: u64) -> ConnListing {
        let max = max.min(MAX_LISTING);
        let mut out = ConnListing { worker: self.worker, total: 0, entries: Vec::new() };
        list_table(&self.conns, filter, max, now, &mut out);
        list_table(&self.conns6, filter, max, now, &mut out);
        out
    }

    fn mtu(&self, port: usize) -> u16 {
        self.port_mtu.get(port).copied().unwrap_or(DEFAULT_MTU)
    }

    /// Handles a TCP or UDP packet (see the module docs) parsed into `view` (from this
    /// very `buf`), whose destination is `dst` in `env.addrs` (`None`: not ours); may
    /// rewrite `buf` in place.
    #[inline]
    pub fn handle_view<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View,
        dst: Option<AddrKind>,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        match dst {
            Some(AddrKind::Vip) => self.inbound(view, buf, env, now),
            Some(AddrKind::Local) => {
                let owner = lport_owner(view.dport, self.workers);
                if owner != self.worker {
                    return Verdict::Redirect { worker: owner };
                }
                self.reply(view, true, buf, env, now, DropReason::ReplyNoConn)
            }
            Some(AddrKind::Port | AddrKind::Floating) => Verdict::Drop(DropReason::L4NoService),
            None => {
                // Not ours: the only such packets rvs forwards are NAT replies, from a real
                // server to a client, owned like the client's own packets.
                let owner = client_owner(view.dst, view.dport, self.workers);
                if owner != self.worker {
                    return Verdict::Redirect { worker: owner };
                }
                self.reply(view, false, buf, env, now, DropReason::IpNotForUs)
            }
        }
    }

    /// A client → VIP packet: its connection's, or a new connection's for the service
    /// at the destination.
    fn inbound<B: PacketBuf>(&mut self, flow: &L4View, buf: &mut B, env: &LbEnv<'_>, now: u64) -> Verdict {
        let owner = client_owner(flow.src, flow.sport, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let mut found = self.conns.lookup(&flow.key());
        if let Some((id, Direction::Inbound)) = found {
            if flow.is_syn() {
                // Out of line: a SYN on a known tuple is rare (a retransmission, or the
                // client reusing its port).
                if self.retire_for_reuse(id, env) {
                    found = None;
                }
            } else if self.conns.get(id).is_some_and(|c| c.flags.contains(ConnFlags::SYNPROXY_PENDING)) {
                return self.pending_inbound(id, flow);
            }
        }
        let (id, fresh) = match found {
            Some((id, Direction::Inbound)) => (id, false),
            // The client → VIP tuple of one flow is the reply tuple of another: only a
            // client using a VIP as its source could cause it; treat it as unknown.
            Some((_, Direction::Reply)) => return Verdict::Drop(DropReason::ReplyNoConn),
            None => {
                let Some((svc, s)) = self.snap.lookup_v4(flow.proto(), flow.dst, flow.dport) else {
                    return Verdict::Drop(DropReason::L4NoService);
                };
                let policy = s.syn_proxy;
                // A non-SYN TCP segment scheduled by `unknown_flow = "schedule"`.
                let mut unknown = false;
                if flow.proto() == L4Proto::Tcp {
                    if flow.is_syn() {
                        // `auto` below its threshold: one comparison more per SYN.
                        if policy.active(self.conns.syn_recv()) {
                            let toa = s.servers.iter().any(|r| r.forward == ForwardMode::FullNat);
                            return self.send_cookie(buf, flow, toa, env, now);
                        }
                    } else {
                        let ack_only = flow.flags.is_some_and(|f| f.ack() && !f.syn() && !f.rst());
                        if ack_only && policy.mode != SynProxyMode::Off && self.cookies_recent(now) {
                            return self.accept_cookie(svc, buf, flow, env, now);
                        }
                        // IPVS's rule: only a SYN opens a TCP connection; with
                        // `unknown_flow = "schedule"` any segment but a RST does (a flow
                        // ECMP moved here from another node; IPVS's `sloppy_tcp`).
                        if !s.unknown_flow.opens(flow.flags.is_some_and(|f| f.rst())) {
                            return Verdict::Drop(DropReason::TcpNoConn);
                        }
                        unknown = true;
                    }
                }
                match self.new_conn(svc, flow, env, now) {
                    Ok(id) => {
                        if unknown {
                            env.counters.conns_unknown_scheduled.inc();
                        }
                        (id, true)
                    }
                    Err(reason) => return Verdict::Drop(reason),
                }
            }
        };
        let change = match self.account(id, Direction::Inbound, flow, now, DropReason::TcpNoConn) {
            Ok(change) => change,
            Err(reason) => return Verdict::Drop(reason),
        };
        // Without sync, one test of the link per packet and nothing else.
        if self.sync.is_some() && (fresh || change.changed()) {
            // A client segment other than a SYN carries the TOA for the last time (below).
            let toa_done = !flow.flags.is_some_and(|f| f.syn());
            self.sync_conn(id, now, env.counters, toa_done);
        }
        let Some(&c) = self.conns.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        let ip_end = flow.layout().ip_end();
        // For NAT and Full-NAT the TTL's header checksum term waits for the rewrite below,
        // which folds it into its own update; a dropped packet never needs it.
        let fold = matches!(c.forward, ForwardMode::Nat | ForwardMode::FullNat);
        let ttl = match self.ttl_decrement(buf, ip_end, fold, env, now, || c.vip) {
            Ok(ttl) => ttl,
            Err(v) => return v,
        };
        if c.flags.contains(ConnFlags::SYNPROXY) {
            // Out of line: one flag test on the established path of other connections.
            // Only TCP bytes change there, not the IPv4 header.
            proxied_to_server(buf, flow, &c);
        }
        let server = Endpoint::new(c.server, c.sport);
        let Some((port, to_server)) = self.hop_to_server(id, &c, env) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        match c.forward {
            // Only the MACs change (see `xmit::dr`), which the neighbour layer writes.
            ForwardMode::Dr => to_server,
            ForwardMode::Nat => {
                nat::inbound_forwarded(buf, flow.layout(), server, ttl);
                to_server
            }
            ForwardMode::FullNat => {
                let toa = (c.flags.contains(ConnFlags::TOA_PENDING) && flow.proto() == L4Proto::Tcp)
                    .then_some(Endpoint::new(c.client, c.cport));
                let local = Endpoint::new(c.local, c.lport);
                let mtu = self.mtu(port.index());
                let r = fullnat::inbound_forwarded(buf, flow.layout(), local, server, toa, mtu, ttl);
                if r.toa_skipped.is_some() {
                    env.counters.toa_skipped.inc();
                }
                // The TOA rides on the SYN and on the packet that completes the
                // handshake (the server's TOA module reads it there, as with DPVS);
                // after the first non-SYN segment it is no longer needed.
                if toa.is_some() && !flow.flags.is_some_and(|f| f.syn()) {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.flags.remove(ConnFlags::TOA_PENDING);
                    }
                }
                to_server
            }
            ForwardMode::Tunnel => {
                let outer_src = env.port_addrs.get(port.index()).copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
                let mtu = self.mtu(port.index());
                match tunnel::encap(buf, flow.layout().ip_end(), outer_src, c.server, mtu) {
                    Ok(()) => to_server,
                    Err(TunnelError::FragNeeded { .. }) if !self.icmp_limit.allow(c.client, now) => {
                        env.counters.icmp_errors_limited.inc();
                        Verdict::Drop(DropReason::TunnelTooBig)
                    }
                    Err(TunnelError::FragNeeded { mtu }) => match icmp_err::frag_needed(buf, c.vip, mtu) {
                        Ok(()) => {
                            env.counters.icmp_errors_sent.inc();
                            self.route_to(env, c.client)
                        }
                        Err(_) => Verdict::Drop(DropReason::TunnelTooBig),
                    },
                    Err(e) => Verdict::Drop(e.into()),
                }
            }
        }
    }

    /// The egress port and verdict for an inbound packet of connection `id` (`c` is its
    /// copy): the connection's cached next hop while the neighbour table is at the
    /// generation it was taken at (no route or neighbour lookup), else the route and
    /// neighbour lookups, caching a resolved MAC. `None`: no route to the server.
    #[inline]
    fn hop_to_server(&mut self, id: ConnId, c: &Conn, env: &LbEnv<'_>) -> Option<(PortId, Verdict)> {
        if c.hop.generation == env.neigh_generation {
            let port = c.hop.port;
            return Some((port, Verdict::Forward { port, mac: MacAddr(c.hop.mac) }));
        }
        self.resolve_hop(id, c.server, env)
    }

    /// [`Self::hop_to_server`] without a valid cached hop.
    #[inline(never)]
    fn resolve_hop(&mut self, id: ConnId, server: Ipv4Addr, env: &LbEnv<'_>) -> Option<(PortId, Verdict)> {
        let hop = env.routes.lookup(server)?;
        let next_hop = hop.neighbour(server);
        let Some(mac) = env.neigh.resolved(next_hop) else {
            // Not resolved yet: the worker parks the packet and asks (ARP); a later
            // packet caches the answer.
            return Some((hop.port, Verdict::Route { port: hop.port, next_hop }));
        };
        if let Some(e) = self.conns.get_mut(id).filter(|e| !e.flags.contains(ConnFlags::SYNPROXY)) {
            // A SYN-proxied entry's `hop` holds its offsets (Conn::synproxy_offsets).
            e.hop = CachedHop { mac: mac.0, port: hop.port, generation: env.neigh_generation };
        }
        Some((hop.port, Verdict::Forward { port: hop.port, mac }))
    }

    /// Schedules and records a new connection for `flow` on service `svc`.
    /// TCP callers pass a SYN, or the ACK of a valid SYN cookie.
    fn new_conn(&mut self, svc_idx: u32, flow: &L4View, env: &LbEnv<'_>, now: u64) -> Result<ConnId, DropReason> {
        let snap = Arc::clone(&self.snap);
        let svc = snap.get(svc_idx).ok_or(DropReason::L4NoService)?;
        // Only new flows are admitted or refused (crate::admission): established flows
        // never reach this.
        self.admit_flow(&snap, svc_idx, svc, flow.src, env.counters, now)?;
        let sched = self.scheds.get_mut(svc_idx as usize).ok_or(DropReason::L4NoService)?;
        let input = SchedInput {
            client: u32::from(flow.src),
            client_port: flow.sport,
            vip: u32::from(flow.dst),
            vport: flow.dport,
            now_ns: now,
        };
        let idx = pick_server(svc, flow.src, now, || sched.pick(&svc.servers, &input)).ok_or(DropReason::NoServer)?;
        let server = svc.servers.get(idx).ok_or(DropReason::NoServer)?;
        // An IPv4 service has IPv4 servers only (`ServiceTable` refuses a mix).
        let IpAddr::V4(server_addr) = server.addr else { return Err(DropReason::NoServer) };
        let (local, lport) = if server.forward == ForwardMode::FullNat {
            let misses = self.lports.rss_misses();
            let got = self
                .lports
                .alloc(&svc.local_addrs, server_addr, server.port, self.rss.as_ref())
                .ok_or(DropReason::NoLocalPort)?;
            if self.lports.rss_misses() != misses {
                env.counters.lport_rss_misses.inc();
            }
            got
        } else {
            (flow.src, flow.sport)
        };
        let (Some(service_id), Some(server_id)) = (snap.service_id(svc_idx), snap.server_id(svc_idx, idx)) else {
            return Err(DropReason::NoServer);
        };
        let make = || {
            let mut conn = Conn::new(flow.key(), server.forward, server_addr, server.port)
                .with_local(local, lport)
                .with_service(service_id, server_id);
            if server.forward == ForwardMode::FullNat && flow.proto() == L4Proto::Tcp {
                conn.flags.insert(ConnFlags::TOA_PENDING);
            }
            conn
        };
        let conn = make();
        let active = conn.state.is_active();
        let inserted = match self.conns.insert(conn, now) {
            // Rare: the entry is rebuilt rather than kept, so the common path moves it once.
            Err(TableFull::ReplyKeyExists) => self.insert_displacing(make(), env, now),
            // Only new flows get here, TCP ones as SYNs.
            Err(TableFull::Full) if flow.proto() == L4Proto::Tcp => self.insert_evicting(make(), env, now),
            done => done,
        };
        match inserted {
            Ok(id) => {
                env.counters.conns_created.inc();
                server.stats.conn_opened(self.worker, active);
                svc.stats.conn_opened(self.worker, active);
                server.stats.update_overload(server.upper, server.lower);
                Ok(id)
            }
            Err(e) => {
                if server.forward == ForwardMode::FullNat {
                    self.lports.release(local, lport);
                }
                Err(e.into())
            }
        }
    }

    /// Inserts `conn` after making room for it: its reply tuple belongs to an older
    /// connection that is closing (not `is_active`: FIN_WAIT, TIME_WAIT, CLOSE, ...): that
    /// one is removed, as if it had expired. This happens in NAT when two services share a
    /// real server ip:port and a client reuses its source port for the other service while
    /// the first connection lingers; the server itself sees one 4-tuple and accepts the
    /// new SYN over its TIME_WAIT, so refusing it (`conn_key_clash`) would only stall the
    /// client until the old entry's timeout (IPVS's conn_reuse_mode has the same aim).
    /// Returns the insert's result, or `ReplyKeyExists` again (nothing changed) when the
    /// holder is active or is UDP.
    #[cold]
    #[inline(never)]
    fn insert_displacing(&mut self, conn: Conn, env: &LbEnv<'_>, now: u64) -> Result<ConnId, TableFull> {
        let refused = Err(TableFull::ReplyKeyExists);
        let Some((id, _)) = self.conns.lookup(&conn.reply_key()) else { return refused };
        let closing = self.conns.get(id).is_some_and(|c| matches!(c.state, ConnState::Tcp(s) if !s.is_active()));
        if !closing {
            return refused;
        }
        if !self.close_conn(id) {
            return refused;
        }
        env.counters.conns_displaced.inc();
        self.conns.insert(conn, now)
    }

    /// A client SYN on `id`'s tuple. On a SYN-proxied entry the client has moved on (port
    /// reuse after a close, or it lost the connection): the old entry's offsets would
    /// corrupt the new handshake, so it goes and the SYN starts over (true). Otherwise,
    /// when `id` is a finished connection (TIME_WAIT or CLOSE)
    /// or its real server is no longer in the service table, the SYN opens a new
    /// connection: the old entry is removed, as if it had expired (`conns_reused`), and
    /// the caller schedules the SYN like any other new flow, through the ACL, the limits
    /// and the scheduler. Otherwise (a retransmitted SYN, or a SYN inside a live
    /// connection) the entry stays and false is returned. Without this a client that
    /// reuses its source port within the TIME_WAIT timeout (any busy client of short
    /// connections) would continue the old entry: not scheduled, not counted, and still
    /// sent to a server that was deleted. IPVS does the same (`conn_reuse_mode`, for
    /// TIME_WAIT; and `expire_nodest_conn` for a removed server).
    #[cold]
    #[inline(never)]
    fn retire_for_reuse(&mut self, id: ConnId, env: &LbEnv<'_>) -> bool {
        let Some(c) = self.conns.get(id) else { return false };
        if c.flags.contains(ConnFlags::SYNPROXY) {
            return self.close_conn(id);
        }
        let finished = matches!(c.state, ConnState::Tcp(TcpState::TimeWait | TcpState::Close));
        if !finished && self.snap.by_server_id(c.server_id).is_some() {
            return false;
        }
        if !self.close_conn(id) {
            return false;
        }
        env.counters.conns_reused.inc();
        true
    }

    /// Removes connection `id` as if it had expired (its Full-NAT local port and its
    /// service's and server's counts released, `conn_closed`); false when `id` is not live.
    fn close_conn(&mut self, id: ConnId) -> bool {
        let Some(old) = self.conns.remove(id) else { return false };
        conn_closed(self.worker, &self.snap, &mut self.lports, &old);
        true
    }

    /// Admission of a new flow from `client` on service `svc` (index `svc_idx` of `snap`;
    /// crate::admission), for
    /// either family's engine: the lists and `maxconn`, then the per-client rate;
    /// a refusal is counted per service and returned as the drop reason.
    #[inline]
    pub(crate) fn admit_flow<C: FlowClient>(
        &mut self,
        snap: &ServiceTable,
        svc_idx: u32,
        svc: &Service,
        client: C,
        counters: &WorkerCounters,
        now: u64,
    ) -> Result<(), DropReason> {
        if let Err(reason) = client.admit(&svc.admission, &svc.stats) {
            svc.stats.refused(self.worker, reason);
            return Err(reason);
        }
        if svc.admission.client_rate != 0 {
            self.rate_admit(snap, svc_idx, client, counters, now)?;
        }
        Ok(())
    }

    /// The per-client rate of service `svc_idx` (crate::admission) for a new flow from
    /// `client`: spends a token, or refuses (`client_rate_limited`, also counted per
    /// service). Out of line: services without a rate never get here.
    #[inline(never)]
    fn rate_admit<C: FlowClient>(
        &mut self,
        snap: &ServiceTable,
        svc_idx: u32,
        client: C,
        counters: &WorkerCounters,
        now: u64,
    ) -> Result<(), DropReason> {
        let Some(svc) = snap.get(svc_idx) else { return Ok(()) };
        let a = &svc.admission;
        let replaced = self.rate.replaced();
        let ok = client.rate(&mut self.rate, svc_idx_id(snap, svc_idx), a.client_rate, a.client_burst, now);
        if self.rate.replaced() != replaced {
            counters.client_rate_replaced.inc();
        }
        if ok {
            return Ok(());
        }
        svc.stats.refused(self.worker, DropReason::ClientRateLimited);
        Err(DropReason::ClientRateLimited)
    }

    /// Inserts `conn` (a new SYN's) into the full table after evicting its oldest
    /// half-open entry (`ConnTable::evict_half_open`: DR or IPIP, SYN seen, handshake not
    /// completed), as if it had expired (`half_open_evicted`); established entries are
    /// never evicted. `Full` (nothing changed) when no half-open entry is left.
    #[cold]
    #[inline(never)]
    fn insert_evicting(&mut self, conn: Conn, env: &LbEnv<'_>, now: u64) -> Result<ConnId, TableFull> {
        let Some(old) = self.conns.evict_half_open() else { return Err(TableFull::Full) };
        conn_closed(self.worker, &self.snap, &mut self.lports, &old);
        env.counters.half_open_evicted.inc();
        self.conns.insert(conn, now)
    }

    /// A server → client (NAT) or server → local address (Full-NAT, `to_us`) packet;
    /// `miss` is the drop reason when no connection matches.
    fn reply<B: PacketBuf>(
        &mut self,
        flow: &L4View,
        to_us: bool,
        buf: &mut B,
        env: &LbEnv<'_>,
        now: u64,
        miss: DropReason,
    ) -> Verdict {
        let id = match self.conns.lookup(&flow.key()) {
            Some((id, Direction::Reply)) => id,
            // A miss to a local address may be a NAT64 reply (`nat64_engine`), looked up
            // out of line.
            None if to_us => return self.nat64_reply(flow, buf, env, now),
            _ => return Verdict::Drop(miss),
        };
        match self.account(id, Direction::Reply, flow, now, miss) {
            Ok(change) if self.sync.is_some() && change.changed() => self.sync_conn(id, now, env.counters, false),
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(&c) = self.conns.get(id) else { return Verdict::Drop(miss) };
        // A time exceeded goes back to the server from an address of ours: the local
        // address it sent to (Full-NAT), or, for a NAT reply addressed to the client, our
        // port address on the server's side, as a router's would (RFC 1812 §4.3.2.4) —
        // never the client's address.
        let our_addr = || {
            if to_us {
                flow.dst
            } else {
                env.routes.lookup(flow.src).and_then(|h| env.port_addrs.get(h.port.index()).copied()).unwrap_or(c.vip)
            }
        };
        let ip_end = flow.layout().ip_end();
        // The TTL's header checksum term is folded into the rewrite below, except for a
        // SYN-proxied flow, whose proxy may send the packet as it is or build another.
        let proxied = c.flags.contains(ConnFlags::SYNPROXY);
        let ttl = match self.ttl_decrement(buf, ip_end, !proxied, env, now, our_addr) {
            Ok(ttl) => ttl,
            Err(v) => return v,
        };
        if proxied {
            // Out of line: one flag test on the established path of other connections.
            if let Some(v) = self.proxied_reply(id, &c, buf, flow, env, now) {
                return v;
            }
        }
        let vip = Endpoint::new(c.vip, c.vport);
        match c.forward {
            ForwardMode::Nat => nat::outbound_forwarded(buf, flow.layout(), vip, ttl),
            ForwardMode::FullNat => {
                // Only a SYN-ACK's MSS is clamped (see `fullnat`); other segments skip the
                // option walk.
                let syn_ack = flow.flags.is_some_and(|f| f.syn() && f.ack());
                let clamp = syn_ack.then_some(u16::MAX);
                fullnat::outbound_forwarded(buf, flow.layout(), vip, Endpoint::new(c.client, c.cport), clamp, ttl)
            }
            // DR and IPIP connections index no reply key (their servers answer clients
            // directly), so no lookup lands here; kept total rather than panicking.
            ForwardMode::Dr | ForwardMode::Tunnel => {}
        }
        self.route_to(env, c.client)
    }

    /// Handles an ICMP error about a flow (from a server about a packet we sent it, or
    /// from the client side about a reply we sent): translated like the flow and sent on.
    pub fn handle_icmp_error<B: PacketBuf>(&mut self, buf: &mut B, env: &LbEnv<'_>, now: u64) -> Verdict {
        let err = match icmp_err::parse(buf.data()) {
            Ok(e) => e,
            Err(e) => return Verdict::Drop(e.into()),
        };
        let emb = err.embedded();
        let Some(proto) = L4Proto::from_ipproto(emb.proto) else { return Verdict::Drop(DropReason::IcmpUnhandled) };
        // The quoted packet is one we sent (src → dst); its flow's packets to us travel
        // dst → src, so that is the key to look up.
        let key = FlowKey { proto, src: emb.dst.addr, sport: emb.dst.port, dst: emb.src.addr, dport: emb.src.port };
        let kind = env.addrs.get(key.dst).map(|o| o.kind);
        let owner = match kind {
            Some(AddrKind::Local) => lport_owner(key.dport, self.workers),
            Some(AddrKind::Vip) => client_owner(key.src, key.sport, self.workers),
            _ => client_owner(key.dst, key.dport, self.workers),
        };
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let Some((id, dir)) = self.conns.lookup(&key) else {
            // About a packet from a local address: maybe a NAT64 flow's (`nat64_engine`).
            if kind == Some(AddrKind::Local) {
                return self.nat64_icmp_error(buf, &err, &key, env, now);
            }
            return Verdict::Drop(DropReason::IcmpUnhandled);
        };
        let Some(&c) = self.conns.get(id) else { return Verdict::Drop(DropReason::IcmpUnhandled) };
        if let Some(v) = self.ttl(buf, err.ip_end(), env, now, || err.ip_src()) {
            return v;
        }
        let (client, vip) = (Endpoint::new(c.client, c.cport), Endpoint::new(c.vip, c.vport));
        let (server, local) = (Endpoint::new(c.server, c.sport), Endpoint::new(c.local, c.lport));
        let r = match (dir, c.forward) {
            // From the server about what we sent it: back to the client as if about the
            // client's own packet to the VIP.
            (Direction::Reply, ForwardMode::Nat) => icmp_err::translate(buf, &err, Some(c.vip), None, None, Some(vip)),
            (Direction::Reply, ForwardMode::FullNat) => {
                icmp_err::translate(buf, &err, Some(c.vip), Some(c.client), Some(client), Some(vip))
            }
            (Direction::Reply, _) => return Verdict::Drop(DropReason::IcmpUnhandled),
            // From the client side about a reply we sent: on to the server, as if about
            // the server's own packet.
            (Direction::Inbound, ForwardMode::Nat) => {
                icmp_err::translate(buf, &err, None, Some(c.server), Some(server), None)
            }
            (Direction::Inbound, ForwardMode::FullNat) => {
                icmp_err::translate(buf, &err, Some(c.local), Some(c.server), Some(server), Some(local))
            }
            (Direction::Inbound, ForwardMode::Dr | ForwardMode::Tunnel) => {
                // The server answered the client directly; an error about that answer
                // reaches us because the VIP routes here. Forward it like the flow.
                return self.forward_like_flow(buf, err.ip_end(), env, &c);
            }
        };
        // A SYN-proxied connection numbers the server's bytes differently on each side:
        // the quote moves into the receiver's numbering too.
        let r = r.and_then(|()| {
            if !c.flags.contains(ConnFlags::SYNPROXY) || c.flags.contains(ConnFlags::SYNPROXY_PENDING) {
                return Ok(());
            }
            let (seq_off, _) = c.synproxy_offsets();
            match dir {
                // About a segment rvs sent the server: its acknowledgement is in the
                // server's numbering; the client's is `seq_off` lower.
                Direction::Reply => icmp_err::shift_quoted_tcp(buf, &err, 0, seq_off.wrapping_neg()),
                // About a segment rvs sent the client: its sequence number is in the
                // client's numbering; the server's is `seq_off` higher.
                Direction::Inbound => icmp_err::shift_quoted_tcp(buf, &err, seq_off, 0),
            }
        });
        match r {
            Ok(()) => {
                env.counters.icmp_errors_translated.inc();
                match dir {
                    Direction::Reply => self.route_to(env, c.client),
                    Direction::Inbound => self.route_to(env, c.server),
                }
            }
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// Sends an ICMP error about a DR/IPIP flow (its IPv4 packet ending at `ip_end`) on
    /// to its server, as the flow's own packets go.
    fn forward_like_flow<B: PacketBuf>(&mut self, buf: &mut B, ip_end: usize, env: &LbEnv<'_>, c: &Conn) -> Verdict {
        let Some(hop) = env.routes.lookup(c.server) else { return Verdict::Drop(DropReason::NoRoute) };
        if c.forward == ForwardMode::Tunnel {
            let outer_src = env.port_addrs.get(hop.port.index()).copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
            if let Err(e) = tunnel::encap(buf, ip_end, outer_src, c.server, self.mtu(hop.port.index())) {
                return Verdict::Drop(e.into());
            }
        }
        env.counters.icmp_errors_translated.inc();
        Verdict::Route { port: hop.port, next_hop: hop.neighbour(c.server) }
    }

    /// Decrements the TTL of a frame whose IPv4 packet ends at `ip_end` (from its parse);
    /// `Some(verdict)` when the packet must not be forwarded (TTL expired → ICMP time
    /// exceeded from `our_addr()` back to the sender, within the ICMP rate limits at
    /// `now`; `our_addr` is only called then).
    #[inline]
    fn ttl<B: PacketBuf>(
        &self,
        buf: &mut B,
        ip_end: usize,
        env: &LbEnv<'_>,
        now: u64,
        our_addr: impl FnOnce() -> Ipv4Addr,
    ) -> Option<Verdict> {
        match ttl::forward(buf, ip_end) {
            TtlVerdict::Forward => None,
            v => self.ttl_not_forwarded(v, buf, env, now, our_addr()),
        }
    }

    /// As [`Self::ttl`], but with `fold` the header checksum update is left to the
    /// caller ([`ttl::decrement`]): `Ok` to forward, with the decrement to fold into the
    /// NAT or Full-NAT rewrite; without `fold` the checksum is updated here and the
    /// decrement returned is [`TtlDecrement::NONE`]. `Err` with the verdict of a packet
    /// not to forward.
    #[inline(always)]
    fn ttl_decrement<B: PacketBuf>(
        &self,
        buf: &mut B,
        ip_end: usize,
        fold: bool,
        env: &LbEnv<'_>,
        now: u64,
        our_addr: impl FnOnce() -> Ipv4Addr,
    ) -> Result<TtlDecrement, Verdict> {
        let r = if fold {
            ttl::decrement(buf, ip_end)
        } else {
            match ttl::forward(buf, ip_end) {
                TtlVerdict::Forward => Ok(TtlDecrement::NONE),
                v => Err(v),
            }
        };
        match r {
            Ok(ttl) => Ok(ttl),
            // `decrement` refuses only with `Expired` or `Malformed`, which always have a verdict.
            Err(v) => Err(self
                .ttl_not_forwarded(v, buf, env, now, our_addr())
                .unwrap_or(Verdict::Drop(DropReason::IcmpNotSent))),
        }
    }

    /// The verdict for a packet `ttl::forward` refused.
    #[cold]
    fn ttl_not_forwarded<B: PacketBuf>(
        &self,
        v: TtlVerdict,
        buf: &mut B,
        env: &LbEnv<'_>,
        now: u64,
        our_addr: Ipv4Addr,
    ) -> Option<Verdict> {
        match v {
            TtlVerdict::Forward => None,
            TtlVerdict::Malformed(e) => Some(Verdict::Drop(e.into())),
            TtlVerdict::Expired => {
                let sender =
                    buf.data().get(ETH_LEN..).and_then(|b| Ipv4Packet::new_checked(b).ok()).map(|ip| ip.src_addr());
                if sender.is_some_and(|to| !self.icmp_limit.allow(to, now)) {
                    // Over the ICMP limits: the packet is dropped, no error goes.
                    env.counters.icmp_errors_limited.inc();
                    return Some(Verdict::Drop(DropReason::TtlExceeded));
                }
                env.counters.drop_packet(DropReason::TtlExceeded);
                // The expired packet is counted as dropped; the error we send in its place
                // is a packet of our own.
                env.counters.local_originated.inc();
                match (icmp_err::time_exceeded(buf, our_addr), sender) {
                    (Ok(()), Some(to)) => {
                        env.counters.icmp_errors_sent.inc();
                        Some(self.route_to(env, to))
                    }
                    _ => Some(Verdict::Drop(DropReason::IcmpNotSent)),
                }
            }
        }
    }

    fn route_to(&self, env: &LbEnv<'_>, dst: Ipv4Addr) -> Verdict {
        match env.routes.lookup(dst) {
            Some(hop) => Verdict::Route { port: hop.port, next_hop: hop.neighbour(dst) },
            None => Verdict::Drop(DropReason::NoRoute),
        }
    }

    /// Runs the state machine for a packet of connection `id` and credits the counters
    /// of its server and service, found by id in the current snapshot (packets and bytes
    /// through `pending`, published by [`Self::flush_stats`]). A connection whose
    /// server is gone is removed here when `expire_nodest_conn` is set (the error is the
    /// packet's drop reason). `id` comes from a lookup or insert of this packet; were it
    /// stale anyway, the packet is dropped as `miss`, like a lookup miss. Returns what the
    /// packet did to the connection's state (connection sync sends a change). Inlined
    /// into its two callers, as it was before it returned the change: it is the
    /// established path.
    #[inline(always)]
    fn account(
        &mut self,
        id: ConnId,
        dir: Direction,
        flow: &L4View,
        now: u64,
        miss: DropReason,
    ) -> Result<StateChange, DropReason> {
        self.account_packet(id, dir, flow.flags, flow.ip_total_len(), now, miss)
    }

    /// [`Self::account`] from the packet's TCP flags (`None`: UDP, or a TCP fragment
    /// without its header, which keeps the state) and IPv4 length in bytes.
    #[inline(always)]
    fn account_packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp_flags: Option<crate::wire::TcpFlags>,
        bytes: u64,
        now: u64,
        miss: DropReason,
    ) -> Result<StateChange, DropReason> {
        let Some(c) = self.conns.get(id) else { return Err(miss) };
        let (service_id, server_id) = (c.service_id, c.server_id);
        // A borrow of the field, not an `Arc` clone: no atomic increment per packet.
        let snap = &*self.snap;
        if snap.settings().expire_nodest_conn && snap.by_server_id(server_id).is_none() {
            // `id` was just found live, so this removes it.
            if let Some(c) = self.conns.remove(id) {
                if c.forward == ForwardMode::FullNat {
                    self.lports.release(c.local, c.lport);
                }
                if let Some(svc) = snap.by_service_id(service_id) {
                    svc.stats.conn_closed(self.worker, c.state.is_active());
                }
            }
            return Err(DropReason::ConnServerRemoved);
        }
        let change = self.conns.on_packet(id, dir, tcp_flags, now);
        if let Some(active) = change.active_move() {
            if let Some((_, server)) = snap.by_server_id(server_id) {
                server.stats.conn_moved(self.worker, active);
            }
            if let Some(svc) = snap.by_service_id(service_id) {
                svc.stats.conn_moved(self.worker, active);
            }
        }
        Self::pend_into(&mut self.pending, snap, self.worker, server_id, service_id, dir, bytes);
        Ok(change)
    }

    /// Adds one packet of `bytes` travelling `dir` to the pending counts of its server
    /// and service (flushed at the end of the poll, see the module docs); `pending` is
    /// the engine's, taken apart from a borrowed snapshot.
    #[inline(always)]
    fn pend_into(
        pending: &mut [PendingStats; PENDING_SLOTS],
        snap: &ServiceTable,
        worker: usize,
        server_id: ServerId,
        service_id: ServiceId,
        dir: Direction,
        bytes: u64,
    ) {
        // Packets and bytes wait in `pending` until the end of the poll (module docs).
        // Updated in place: a copy of the slot out and back cost ~20 instructions a packet.
        let p = &mut pending[server_id as usize % PENDING_SLOTS];
        if (p.server_id, p.service_id) != (server_id, service_id) {
            if !p.is_empty() {
                publish(snap, worker, p);
            }
            *p = PendingStats { server_id, service_id, ..PendingStats::default() };
        }
        if dir == Direction::Inbound {
            p.packets_in += 1;
            p.bytes_in += bytes;
        } else {
            p.packets_out += 1;
            p.bytes_out += bytes;
        }
    }

    /// Adds the packets and bytes forwarded since the last call to the shared counters of
    /// their servers and services (those still in the snapshot). The worker calls it at
    /// the end of every poll; see the module docs.
    pub fn flush_stats(&mut self) {
        let snap = &*self.snap;
        for p in &mut self.pending {
            if !p.is_empty() {
                publish(snap, self.worker, p);
                *p = PendingStats::default();
            }
        }
    }

    /// Advances the connection timers (at most every [`CONN_TIMER_INTERVAL_NS`]): expired
    /// connections leave the table, give back their local port, and leave their server's
    /// counters. Returns how many expired.
    pub fn run_timers(&mut self, now: u64) -> usize {
        if now < self.next_expire {
            return 0;
        }
        self.next_expire = now.saturating_add(CONN_TIMER_INTERVAL_NS);
        let (worker, snap, lports) = (self.worker, &self.snap, &mut self.lports);
        self.conns.expire_at_most(now, EXPIRE_BATCH, |c| conn_closed(worker, snap, lports, c)) + self.expire6(now)
    }
}

/// What a connection leaving the table (expired or displaced) gives back: its Full-NAT
/// local port, and its place in its service's and server's connection counts.
fn conn_closed(worker: usize, snap: &ServiceTable, lports: &mut LocalPortAllocator, c: &Conn) {
    if c.forward == ForwardMode::FullNat {
        lports.release(c.local, c.lport);
    }
    let active = c.state.is_active();
    if let Some(svc) = snap.by_service_id(c.service_id) {
        svc.stats.conn_closed(worker, active);
    }
    if let Some((_, server)) = snap.by_server_id(c.server_id) {
        server.stats.conn_closed(worker, active);
        server.stats.update_overload(server.upper, server.lower);
    }
}

/// Adds `p`'s counts to its server's and service's shared counters (worker `worker`'s
/// slots), for those `snap` still has.
fn publish(snap: &ServiceTable, worker: usize, p: &PendingStats) {
    if let Some((_, server)) = snap.by_server_id(p.server_id) {
        server.stats.packets(worker, p.packets_in, p.bytes_in, p.packets_out, p.bytes_out);
    }
    if let Some(svc) = snap.by_service_id(p.service_id) {
        svc.stats.packets(worker, p.packets_in, p.bytes_in, p.packets_out, p.bytes_out);
    }
}
