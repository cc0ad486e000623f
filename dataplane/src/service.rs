//! Virtual services and real servers as the data path sees them: the immutable pieces
//! of the service snapshot that the control plane builds and every worker reads.
//!
//! Contract: everything here is built off the fast path (at configuration time). The
//! only mutable parts are the per-server counters, which are lock-free: each worker
//! writes only its own slot (load + store, no read-modify-write race), and readers — the
//! least-connection schedulers of every worker and the control plane — sum the slots
//! with relaxed loads. A sum may be a few packets stale; schedulers tolerate that, as
//! IPVS's do with its per-CPU counters.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::conn::Timeouts;
use crate::l2l3::IpHasherBuilder;
use crate::sched::{PersistTable, SchedShared};
use crate::wire::{IPPROTO_TCP, IPPROTO_UDP};
use crate::worker::VipConfig;

/// The transport protocol of a virtual service or a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4Proto {
    /// The IPv4 protocol number.
    pub const fn ipproto(self) -> u8 {
        match self {
            L4Proto::Tcp => IPPROTO_TCP,
            L4Proto::Udp => IPPROTO_UDP,
        }
    }
    /// The protocol for an IPv4 protocol number, if it is TCP or UDP.
    pub const fn from_ipproto(p: u8) -> Option<Self> {
        match p {
            IPPROTO_TCP => Some(L4Proto::Tcp),
            IPPROTO_UDP => Some(L4Proto::Udp),
            _ => None,
        }
    }
    /// `"tcp"` or `"udp"`.
    pub const fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// How packets reach a real server (ipvsadm's -g, -m, -i and DPVS's -b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    /// Direct routing: only the MAC addresses change; the server has the VIP on a loopback
    /// and answers the client directly.
    Dr,
    /// NAT: the destination becomes the server; replies come back through rvs (the
    /// server's gateway) and get the VIP as their source again.
    Nat,
    /// Full-NAT: source becomes a local address and port, destination the server; the
    /// client address travels in a TCP option (TOA).
    FullNat,
    /// IPIP tunnel: the packet is wrapped in an outer IPv4 header to the server, which
    /// decapsulates it and answers the client directly.
    Tunnel,
}

impl ForwardMode {
    /// The configuration name: `dr`, `nat`, `fullnat` or `tunnel`.
    pub const fn name(self) -> &'static str {
        match self {
            ForwardMode::Dr => "dr",
            ForwardMode::Nat => "nat",
            ForwardMode::FullNat => "fullnat",
            ForwardMode::Tunnel => "tunnel",
        }
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown name for an enum of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`: expected one of {expected}")]
pub struct UnknownName {
    /// What kind of name it was.
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The accepted names, comma separated.
    pub expected: String,
}

impl FromStr for ForwardMode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        [ForwardMode::Dr, ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Tunnel]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownName {
                what: "forwarding mode",
                name: s.into(),
                expected: "dr, nat, fullnat, tunnel".into(),
            })
    }
}

macro_rules! scheduler_kinds {
    ($($variant:ident => $name:literal : $doc:literal,)*) => {
        /// A scheduling algorithm, by its ipvsadm/DPVS name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SchedulerKind {
            $(#[doc = $doc] $variant,)*
        }
        impl SchedulerKind {
            /// Every scheduler rvs has.
            pub const ALL: &'static [SchedulerKind] = &[$(SchedulerKind::$variant,)*];
            /// The name used in the config file and by rvsadm's `-s`.
            pub const fn name(self) -> &'static str {
                match self { $(SchedulerKind::$variant => $name,)* }
            }
        }
    };
}

scheduler_kinds! {
    Rr => "rr": "Round robin.",
    Wrr => "wrr": "Weighted round robin.",
    Lc => "lc": "Least connections.",
    Wlc => "wlc": "Weighted least connections.",
    Sed => "sed": "Shortest expected delay.",
    Nq => "nq": "Never queue.",
    Sh => "sh": "Source hashing.",
    Dh => "dh": "Destination hashing.",
    Lblc => "lblc": "Locality-based least connections.",
    Lblcr => "lblcr": "Locality-based least connections with replication.",
    Fo => "fo": "Weighted failover: the available server with the highest weight.",
    Ovf => "ovf": "Weighted overflow: the highest-weight server until its active connections reach its weight.",
    Mh => "mh": "Maglev hashing.",
    Twos => "twos": "Weighted random twos choice.",
    Conhash => "conhash": "Consistent hashing of the client address and port.",
    Sessions => "sessions": "Fewest active sessions.",
    UserHash => "user-hash": "Consistent hashing of the client address.",
}

impl FromStr for SchedulerKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        SchedulerKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| UnknownName {
            what: "scheduler",
            name: s.into(),
            expected: SchedulerKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One relaxed counter slot written by a single worker.
#[derive(Debug, Default)]
#[repr(align(64))]
struct WorkerSlot {
    active: AtomicU64,
    inactive: AtomicU64,
    conns: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Lock-free counters of one real server (or one service), one cache-line slot per
/// worker. Only worker `w` writes slot `w`.
#[derive(Debug)]
pub struct ServerStats {
    slots: Box<[WorkerSlot]>,
    overloaded: AtomicBool,
}

/// A point-in-time sum of a [`ServerStats`] over all workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerStatsSnapshot {
    /// Active connections, as IPVS counts them since Linux 4.7: TCP in ESTABLISHED,
    /// SYN_SENT, SYN_RECV or SYNACK (see `conn::TcpState::is_active`).
    pub active_conns: u64,
    /// Connections in any other state still in the table; UDP flows are always here.
    pub inactive_conns: u64,
    /// Connections scheduled since start.
    pub conns: u64,
    /// Packets client → server.
    pub packets_in: u64,
    /// Packets server → client.
    pub packets_out: u64,
    /// Bytes client → server.
    pub bytes_in: u64,
    /// Bytes server → client.
    pub bytes_out: u64,
}

fn bump(c: &AtomicU64, by: u64) {
    // Single writer per slot: a load and a store cannot lose an update.
    c.store(c.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

fn drop_one(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
}

impl ServerStats {
    /// Counters for `workers` workers, all zero.
    pub fn new(workers: usize) -> Self {
        ServerStats {
            slots: (0..workers.max(1)).map(|_| WorkerSlot::default()).collect(),
            overloaded: AtomicBool::new(false),
        }
    }
    #[inline]
    fn slot(&self, worker: usize) -> &WorkerSlot {
        // Worker indexes are below the slot count; the remainder (a division, on every
        // packet) is only for a misconfigured index.
        match self.slots.get(worker) {
            Some(s) => s,
            None => &self.slots[worker % self.slots.len()],
        }
    }
    /// Active connections summed over workers.
    pub fn active_conns(&self) -> u64 {
        self.slots.iter().map(|s| s.active.load(Ordering::Relaxed)).sum()
    }
    /// Inactive connections summed over workers.
    pub fn inactive_conns(&self) -> u64 {
        self.slots.iter().map(|s| s.inactive.load(Ordering::Relaxed)).sum()
    }
    /// Worker `worker` created a connection to this server, in the active or inactive state.
    pub fn conn_opened(&self, worker: usize, active: bool) {
        let s = self.slot(worker);
        bump(&s.conns, 1);
        bump(if active { &s.active } else { &s.inactive }, 1);
    }
    /// A connection of worker `worker` moved between the active and inactive states.
    pub fn conn_moved(&self, worker: usize, now_active: bool) {
        let s = self.slot(worker);
        let (from, to) = if now_active { (&s.inactive, &s.active) } else { (&s.active, &s.inactive) };
        drop_one(from);
        bump(to, 1);
    }
    /// A connection of worker `worker` left the table from the given state.
    pub fn conn_closed(&self, worker: usize, was_active: bool) {
        let s = self.slot(worker);
        drop_one(if was_active { &s.active } else { &s.inactive });
    }
    /// Worker `worker` forwarded a packet of `bytes` bytes client → server (`inbound`) or
    /// server → client.
    #[inline]
    pub fn packet(&self, worker: usize, inbound: bool, bytes: u64) {
        let s = self.slot(worker);
        if inbound {
            bump(&s.packets_in, 1);
            bump(&s.bytes_in, bytes);
        } else {
            bump(&s.packets_out, 1);
            bump(&s.bytes_out, bytes);
        }
    }
    /// Whether the server is over its upper connection threshold (IPVS's
    /// `IP_VS_DEST_F_OVERLOAD`): set when active + inactive reaches `upper`, cleared when
    /// it falls to `lower` (or to 3/4 of `upper` when `lower` is 0, as IPVS does).
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }
    /// Re-evaluates the overload flag against the thresholds (`upper` 0 = no limit).
    pub fn update_overload(&self, upper: u32, lower: u32) -> bool {
        if upper == 0 {
            self.overloaded.store(false, Ordering::Relaxed);
            return false;
        }
        let conns = self.active_conns() + self.inactive_conns();
        let low = if lower == 0 { u64::from(upper) * 3 / 4 } else { u64::from(lower) };
        let cur = self.overloaded();
        let next = if cur { conns > low } else { conns >= u64::from(upper) };
        if next != cur {
            self.overloaded.store(next, Ordering::Relaxed);
        }
        next
    }
    /// The sum over workers.
    pub fn snapshot(&self) -> ServerStatsSnapshot {
        let mut out = ServerStatsSnapshot::default();
        for s in self.slots.iter() {
            out.active_conns += s.active.load(Ordering::Relaxed);
            out.inactive_conns += s.inactive.load(Ordering::Relaxed);
            out.conns += s.conns.load(Ordering::Relaxed);
            out.packets_in += s.packets_in.load(Ordering::Relaxed);
            out.packets_out += s.packets_out.load(Ordering::Relaxed);
            out.bytes_in += s.bytes_in.load(Ordering::Relaxed);
            out.bytes_out += s.bytes_out.load(Ordering::Relaxed);
        }
        out
    }
}

/// A real server of a service.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its port (may differ from the service port in NAT and Full-NAT).
    pub port: u16,
    /// Scheduling weight; 0 takes no new connections (quiescent).
    pub weight: u32,
    /// How packets reach it.
    pub forward: ForwardMode,
    /// Upper connection threshold, 0 for none (ipvsadm -x).
    pub upper: u32,
    /// Lower connection threshold (ipvsadm -y); 0 means 3/4 of `upper`.
    pub lower: u32,
    /// Its counters, shared by every worker and the control plane.
    pub stats: Arc<ServerStats>,
}

impl RealServer {
    /// Whether the server may take a new connection: weight above 0 and not overloaded.
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.stats.overloaded()
    }
}

/// Where a virtual service is reached: protocol, VIP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// The virtual IP.
    pub vip: Ipv4Addr,
    /// The virtual port.
    pub port: u16,
}

impl ServiceKey {
    /// The key packed into one word for the lookup map.
    #[inline]
    fn packed(self) -> u64 {
        (u64::from(self.proto.ipproto()) << 48) | (u64::from(u32::from(self.vip)) << 16) | u64::from(self.port)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.proto.name(), self.vip, self.port)
    }
}

/// One virtual service in a snapshot: its servers, its scheduler's shared tables, its
/// persistence and its Full-NAT local addresses.
#[derive(Debug)]
pub struct Service {
    /// Protocol, VIP and port.
    pub key: ServiceKey,
    /// The scheduling algorithm.
    pub scheduler: SchedulerKind,
    /// The scheduler's immutable lookup tables (Maglev table, hash rings), shared by every
    /// worker.
    pub sched: Arc<SchedShared>,
    /// Persistence (ipvsadm -p / -M), shared by every worker so it holds across them.
    pub persist: Option<Arc<PersistTable>>,
    /// The real servers, in configuration order (a connection records their stable id,
    /// see [`ServiceTable::by_server_id`]).
    pub servers: Vec<RealServer>,
    /// Full-NAT source addresses for this service (by default the egress port's
    /// `local_addresses`).
    pub local_addrs: Vec<Ipv4Addr>,
    /// Service-wide counters.
    pub stats: Arc<ServerStats>,
}

/// What a snapshot carries besides the services: settings every worker applies when it
/// picks the snapshot up (they change live, with the services).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSettings {
    /// Connection timeouts (`ipvsadm --set`); each worker applies them to its table
    /// (`ConnTable::set_timeouts`) when the generation changes. `None` keeps the
    /// worker's.
    pub timeouts: Option<Timeouts>,
    /// IPVS's `expire_nodest_conn`: when the real server of a connection is gone from
    /// the snapshot, `false` keeps forwarding its packets until it expires (nothing is
    /// credited to the deleted server), `true` removes the connection at its next
    /// packet and drops that packet (`conn_server_removed`).
    pub expire_nodest_conn: bool,
    /// The VIPs the workers answer for (ARP, ICMP echo, and "to us" for TCP/UDP), so a
    /// service on a new VIP works without a restart. `None` keeps each worker's
    /// configured VIPs.
    pub vips: Option<Vec<VipConfig>>,
}

/// The stable ids of a table's services and servers, in the table's order:
/// `services[i]` is service `i`'s id, `servers[i][j]` the id of its server `j`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableIds {
    /// One id per service.
    pub services: Vec<u32>,
    /// One list per service, one id per server.
    pub servers: Vec<Vec<u32>>,
}

impl TableIds {
    /// Sequential ids for `services` (services 0, 1, …; servers 0, 1, … across services),
    /// for tables that never change (tests, benchmarks).
    pub fn sequential(services: &[Service]) -> Self {
        let mut next = 0u32;
        let servers = services
            .iter()
            .map(|s| {
                (0..s.servers.len())
                    .map(|_| {
                        next += 1;
                        next - 1
                    })
                    .collect()
            })
            .collect();
        TableIds { services: (0..services.len() as u32).collect(), servers }
    }
}

/// A dense id → value map over the id range the table uses: one vector index per
/// lookup, no hashing on the data path. Ids are never reused, so the range is
/// `[lowest live id, highest live id]`; it grows only while an old object outlives
/// many newer ones (bounded by [`MAX_ID_SPAN`]).
#[derive(Debug, Default)]
struct DenseIds<T: Copy> {
    base: u32,
    slots: Vec<Option<T>>,
}

/// Widest id range a snapshot accepts (ids between its lowest and highest live id).
pub const MAX_ID_SPAN: u32 = 1 << 24;

impl<T: Copy> DenseIds<T> {
    fn build(pairs: &[(u32, T)]) -> Result<Self, TableError> {
        let Some(lo) = pairs.iter().map(|p| p.0).min() else { return Ok(DenseIds { base: 0, slots: Vec::new() }) };
        let hi = pairs.iter().map(|p| p.0).max().unwrap_or(lo);
        if hi - lo >= MAX_ID_SPAN {
            return Err(TableError::Ids(format!("ids {lo}..={hi} span more than {MAX_ID_SPAN}")));
        }
        let mut slots = vec![None; (hi - lo) as usize + 1];
        for &(id, v) in pairs {
            let slot = &mut slots[(id - lo) as usize];
            if slot.is_some() {
                return Err(TableError::Ids(format!("id {id} is used twice")));
            }
            *slot = Some(v);
        }
        Ok(DenseIds { base: lo, slots })
    }

    #[inline]
    fn get(&self, id: u32) -> Option<T> {
        self.slots.get(id.wrapping_sub(self.base) as usize).copied().flatten()
    }
}

/// An immutable table of services, built by the control plane and published to the
/// workers as a whole ([`SharedServices`]): a worker loads it once per poll and never sees
/// a half-applied change.
///
/// Every service and real server has a stable id ([`TableIds`]): connections record ids,
/// not indexes, so that after any change a connection still finds its server (and the
/// server's counters, which the control plane carries over into the new table) or learns
/// that it is gone.
#[derive(Debug)]
pub struct ServiceTable {
    generation: u64,
    services: Vec<Service>,
    index: HashMap<u64, u32, IpHasherBuilder>,
    ids: TableIds,
    service_by_id: DenseIds<u32>,
    server_by_id: DenseIds<(u32, u32)>,
    settings: TableSettings,
}

/// Two services with one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service {0} is defined twice")]
pub struct DuplicateService(pub ServiceKey);

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Two services with one key.
    #[error(transparent)]
    Duplicate(#[from] DuplicateService),
    /// The ids do not match the services (count, reuse, span).
    #[error("bad ids: {0}")]
    Ids(String),
}

impl ServiceTable {
    /// A table of `services` with sequential ids ([`TableIds::sequential`]) and default
    /// settings; `generation` must grow with every table published, so workers can tell
    /// a new table from the one they have.
    pub fn new(generation: u64, services: Vec<Service>) -> Result<Self, DuplicateService> {
        let ids = TableIds::sequential(&services);
        ServiceTable::with_ids(generation, services, ids, TableSettings::default()).map_err(|e| match e {
            TableError::Duplicate(d) => d,
            // Sequential ids are always valid.
            TableError::Ids(_) => {
                DuplicateService(ServiceKey { proto: L4Proto::Tcp, vip: Ipv4Addr::UNSPECIFIED, port: 0 })
            }
        })
    }

    /// A table of `services` with the control plane's stable `ids` and `settings`.
    pub fn with_ids(
        generation: u64,
        services: Vec<Service>,
        ids: TableIds,
        settings: TableSettings,
    ) -> Result<Self, TableError> {
        let mut index = HashMap::with_capacity_and_hasher(services.len(), IpHasherBuilder::new());
        for (i, s) in services.iter().enumerate() {
            if index.insert(s.key.packed(), i as u32).is_some() {
                return Err(DuplicateService(s.key).into());
            }
        }
        if ids.services.len() != services.len()
            || ids.servers.len() != services.len()
            || ids.servers.iter().zip(&services).any(|(v, s)| v.len() != s.servers.len())
        {
            return Err(TableError::Ids("one id per service and per server is needed".into()));
        }
        let svc_pairs: Vec<(u32, u32)> = ids.services.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        let srv_pairs: Vec<(u32, (u32, u32))> = ids
            .servers
            .iter()
            .enumerate()
            .flat_map(|(i, v)| v.iter().enumerate().map(move |(j, &id)| (id, (i as u32, j as u32))))
            .collect();
        let service_by_id = DenseIds::build(&svc_pairs)?;
        let server_by_id = DenseIds::build(&srv_pairs)?;
        Ok(ServiceTable { generation, services, index, ids, service_by_id, server_by_id, settings })
    }

    /// An empty table (generation 0).
    pub fn empty() -> Self {
        ServiceTable {
            generation: 0,
            services: Vec::new(),
            index: HashMap::with_hasher(IpHasherBuilder::new()),
            ids: TableIds::default(),
            service_by_id: DenseIds::default(),
            server_by_id: DenseIds::default(),
            settings: TableSettings::default(),
        }
    }
    /// This table's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The service at `key`, with its index.
    #[inline]
    pub fn lookup(&self, key: ServiceKey) -> Option<(u32, &Service)> {
        let i = *self.index.get(&key.packed())?;
        Some((i, &self.services[i as usize]))
    }
    /// The service at index `i`.
    pub fn get(&self, i: u32) -> Option<&Service> {
        self.services.get(i as usize)
    }
    /// Every service, in index order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }
    /// The stable id of service `i`.
    pub fn service_id(&self, i: u32) -> Option<u32> {
        self.ids.services.get(i as usize).copied()
    }
    /// The stable id of server `j` of service `i`.
    pub fn server_id(&self, i: u32, j: usize) -> Option<u32> {
        self.ids.servers.get(i as usize)?.get(j).copied()
    }
    /// Every id, in table order.
    pub fn ids(&self) -> &TableIds {
        &self.ids
    }
    /// The service with stable id `id`, if this table still has it.
    #[inline]
    pub fn by_service_id(&self, id: u32) -> Option<&Service> {
        self.services.get(self.service_by_id.get(id)? as usize)
    }
    /// The service and the real server with stable id `id`, if this table still has it.
    #[inline]
    pub fn by_server_id(&self, id: u32) -> Option<(&Service, &RealServer)> {
        let (i, j) = self.server_by_id.get(id)?;
        let svc = self.services.get(i as usize)?;
        Some((svc, svc.servers.get(j as usize)?))
    }
    /// The settings the workers apply with this table.
    pub fn settings(&self) -> &TableSettings {
        &self.settings
    }
}

/// The published service table: the control plane stores a new `Arc<ServiceTable>`, the
/// workers load the current one once per poll (an atomic pointer load, no lock) — the
/// RCU-style swap of DESIGN.md.
pub type SharedServices = Arc<ArcSwap<ServiceTable>>;

/// A new [`SharedServices`] holding `table`.
pub fn share(table: ServiceTable) -> SharedServices {
    Arc::new(ArcSwap::from_pointee(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SchedulerKind::ALL {
            assert_eq!(k.name().parse::<SchedulerKind>().unwrap(), *k);
        }
        assert_eq!(SchedulerKind::ALL.len(), 17);
        let e = "foo".parse::<SchedulerKind>().unwrap_err();
        assert!(e.to_string().contains("user-hash"), "{e}");
        assert_eq!("fullnat".parse::<ForwardMode>().unwrap(), ForwardMode::FullNat);
        assert!("masq".parse::<ForwardMode>().is_err());
        assert_eq!(L4Proto::from_ipproto(6), Some(L4Proto::Tcp));
        assert_eq!(L4Proto::from_ipproto(1), None);
    }

    #[test]
    fn counters_sum_over_workers_and_overload_has_hysteresis() {
        let s = ServerStats::new(2);
        s.conn_opened(0, false);
        s.conn_opened(1, true);
        s.conn_moved(0, true);
        assert_eq!((s.active_conns(), s.inactive_conns()), (2, 0));
        assert!(!s.update_overload(3, 1));
        s.conn_opened(1, true);
        assert!(s.update_overload(3, 1), "3 conns reach upper 3");
        s.conn_closed(1, true);
        assert!(s.update_overload(3, 1), "2 > lower 1: still overloaded");
        s.conn_closed(1, true);
        assert!(!s.update_overload(3, 1), "1 <= lower 1: clear");
        s.packet(0, true, 100);
        s.packet(1, false, 40);
        let snap = s.snapshot();
        assert_eq!((snap.packets_in, snap.bytes_in, snap.packets_out, snap.bytes_out, snap.conns), (1, 100, 1, 40, 3));
    }
}
