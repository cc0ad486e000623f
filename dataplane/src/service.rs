//! Virtual services as the data path sees them: the immutable service snapshot that the
//! control plane builds and every worker reads.
//!
//! Contract: everything here is built off the fast path (at configuration time) and
//! never changes once published; a worker loads the current table once per poll (an
//! atomic pointer load) and never sees a half-applied change. The only mutable parts are
//! the servers' counters ([`crate::server::ServerStats`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::admission::Admission;
use crate::l2l3::IpHasherBuilder;
use crate::sched::{PersistMask, PersistTable, SchedShared};
use crate::server::{RealServer, ServerStats};
use crate::sync::PersistRecord;
use crate::synproxy::SynProxyPolicy;
use crate::types::{
    ForwardMode, L4Proto, SchedulerKind, ServerId, ServiceId, ServiceKey, Timeouts, UnknownFlow, VipConfig,
};

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
    /// `local_addresses`): the IPv4 ones, for IPv4 servers (IPv4 Full-NAT).
    pub local_addrs: Vec<Ipv4Addr>,
    /// The IPv6 Full-NAT source addresses, for IPv6 servers of an IPv6 service
    /// (`crate::lb`'s `v6_engine`); the IPv4 ones serve IPv4 servers whatever the VIP.
    pub local_addrs6: Vec<Ipv6Addr>,
    /// Service-wide counters.
    pub stats: Arc<ServerStats>,
    /// Which new flows the service admits: client allow/deny prefixes and `maxconn`
    /// (see [`crate::admission`]).
    pub admission: Admission,
    /// Whether SYNs are answered with SYN cookies (NAT and Full-NAT TCP services; see
    /// [`crate::synproxy`]). Ignored for UDP and for DR/IPIP servers.
    pub syn_proxy: SynProxyPolicy,
    /// What a TCP segment other than a SYN for no known connection does: dropped
    /// (`tcp_no_conn`, the default) or scheduled (see [`UnknownFlow`]).
    pub unknown_flow: UnknownFlow,
}

/// Why a persistence record from the peer was not installed
/// ([`Service::install_persist`], [`ServiceTable::install_persist`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersistRefused {
    /// The client or server is not of the service's address family.
    #[error("address family is not the service's")]
    Family,
    /// No service with the record's protocol, VIP and port.
    #[error("no such service")]
    NoService,
    /// The service has no persistence.
    #[error("the service is not persistent")]
    NotPersistent,
    /// The service has no real server with the record's address and port.
    #[error("no such real server in the service")]
    NoServer,
    /// Nothing stored: the entry has expired, the server index is too large to persist,
    /// or the client's window of the table is full.
    #[error("persistence table did not take the entry")]
    NotStored,
}

impl Service {
    /// The live entries of this service's persistence table as sync records, at
    /// `now_s` ([`crate::sched::persist::persist_now_s`] of the workers' clock); none
    /// for a service without persistence. An entry whose server index names no server
    /// of this snapshot is left out. O(table capacity): for the control plane.
    pub fn persist_records(&self, now_s: u32) -> impl Iterator<Item = PersistRecord> + '_ {
        let vip = SocketAddr::new(self.key.vip, self.key.port);
        self.persist.iter().flat_map(move |p| {
            let v4 = p.entries(now_s).map(|(c, s, left)| (IpAddr::V4(c), s, left));
            let v6 = p.entries6(now_s).map(|(c, s, left)| (IpAddr::V6(c), s, left));
            v4.chain(v6).filter_map(move |(client, server, left)| {
                let s = self.servers.get(server)?;
                Some(PersistRecord {
                    proto: self.key.proto,
                    vip,
                    client,
                    server: SocketAddr::new(s.addr, s.port),
                    expires_in_s: left,
                })
            })
        })
    }

    /// Installs a persistence record from the peer into this service's table (shared by
    /// every worker, lock-free: the control plane calls this directly) at `now_s`: the
    /// client's network persists to the server with the record's address and port for
    /// the seconds the record has left. The record's service key is not checked here
    /// (see [`ServiceTable::install_persist`]).
    pub fn install_persist(&self, rec: &PersistRecord, now_s: u32) -> Result<(), PersistRefused> {
        // The client, the server and the service are of one family (the table's).
        if rec.client.is_ipv4() != self.key.vip.is_ipv4() || rec.server.is_ipv4() != self.key.vip.is_ipv4() {
            return Err(PersistRefused::Family);
        }
        let table = self.persist.as_ref().ok_or(PersistRefused::NotPersistent)?;
        let idx = self
            .servers
            .iter()
            .position(|s| s.addr == rec.server.ip() && s.port == rec.server.port())
            .ok_or(PersistRefused::NoServer)?;
        let stored = match rec.client {
            IpAddr::V4(c) => table.install(c, idx, rec.expires_in_s, now_s),
            IpAddr::V6(c) => table.install6(c, idx, rec.expires_in_s, now_s),
        };
        if stored {
            Ok(())
        } else {
            Err(PersistRefused::NotStored)
        }
    }
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
    pub services: Vec<ServiceId>,
    /// One list per service, one id per server.
    pub servers: Vec<Vec<ServerId>>,
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
    /// IPv4 services by [`ServiceKey::packed_v4`]: one word hashed per IPv4 lookup.
    index: HashMap<u64, u32, IpHasherBuilder>,
    /// IPv6 services, by protocol, VIP and port.
    index6: HashMap<(L4Proto, Ipv6Addr, u16), u32, IpHasherBuilder>,
    /// Every IPv6 VIP, once each, in service order (neighbour discovery answers for them).
    vips6: Vec<Ipv6Addr>,
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
    /// A real server of another address family than its service's VIP, other than
    /// NAT64's (an IPv4 Full-NAT server of an IPv6 service with an IPv4 local address),
    /// or an IPv4-mapped IPv6 server or local address (`server` names it).
    #[error(
        "service {service}: real server {server} cannot serve this VIP (an IPv4 server of an IPv6 service needs \
         Full-NAT and an IPv4 local address; IPv4-mapped IPv6 addresses are refused)"
    )]
    MixedFamily {
        /// The service.
        service: ServiceKey,
        /// Its first server of the other family.
        server: IpAddr,
    },
    /// A persistence table keyed for the other family's clients (an IPv4 netmask on an
    /// IPv6 service, or a prefix length on an IPv4 one).
    #[error("service {service}: its persistence table is not keyed for its clients' address family")]
    PersistFamily {
        /// The service.
        service: ServiceKey,
    },
}

/// Up to this many IPv6 VIPs, [`ServiceTable::has_vip6`] compares them one by one.
const LINEAR_VIPS6: usize = 8;

/// The first reason `s` cannot be forwarded by this data path (see [`TableError`]):
/// servers of another family than the VIP (but for NAT64: IPv4 Full-NAT servers of an
/// IPv6 service that has an IPv4 local address), an IPv4-mapped IPv6 server or local
/// address (NAT64 connections keep theirs in that form, `lb::nat64_engine`), or a
/// persistence table of the other family. (Every forwarding mode takes IPv6 services.)
fn check_family(s: &Service) -> Result<(), TableError> {
    let fits = |r: &crate::server::RealServer| match (s.key.vip, r.addr) {
        (IpAddr::V4(_), IpAddr::V4(_)) => true,
        (IpAddr::V6(_), IpAddr::V6(a)) => a.to_ipv4_mapped().is_none(),
        (IpAddr::V6(_), IpAddr::V4(_)) => r.forward == ForwardMode::FullNat && !s.local_addrs.is_empty(),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    };
    if let Some(r) = s.servers.iter().find(|r| !fits(r)) {
        return Err(TableError::MixedFamily { service: s.key, server: r.addr });
    }
    if let Some(&a) = s.local_addrs6.iter().find(|a| a.to_ipv4_mapped().is_some()) {
        return Err(TableError::MixedFamily { service: s.key, server: a.into() });
    }
    // Persistence keys clients of the VIP's family (PersistTable::new or new_v6).
    if s.persist.as_ref().is_some_and(|p| matches!(p.mask(), PersistMask::V6(_)) != s.key.vip.is_ipv6()) {
        return Err(TableError::PersistFamily { service: s.key });
    }
    Ok(())
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
                DuplicateService(ServiceKey { proto: L4Proto::Tcp, vip: Ipv4Addr::UNSPECIFIED.into(), port: 0 })
            }
            // Tables of services that need a family check are built with `with_ids`.
            TableError::MixedFamily { service, .. } | TableError::PersistFamily { service } => {
                DuplicateService(service)
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
        let mut index6 = HashMap::with_hasher(IpHasherBuilder::new());
        for (i, s) in services.iter().enumerate() {
            check_family(s)?;
            let dup = match s.key.vip {
                IpAddr::V4(v) => index.insert(ServiceKey::packed_v4(s.key.proto, v, s.key.port), i as u32),
                IpAddr::V6(v) => index6.insert((s.key.proto, v, s.key.port), i as u32),
            };
            if dup.is_some() {
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
        let mut vips6: Vec<Ipv6Addr> = Vec::new();
        for k in index6.keys() {
            if !vips6.contains(&k.1) {
                vips6.push(k.1);
            }
        }
        vips6.sort_unstable();
        Ok(ServiceTable { generation, services, index, index6, vips6, ids, service_by_id, server_by_id, settings })
    }

    /// An empty table (generation 0).
    pub fn empty() -> Self {
        ServiceTable {
            generation: 0,
            services: Vec::new(),
            index: HashMap::with_hasher(IpHasherBuilder::new()),
            index6: HashMap::with_hasher(IpHasherBuilder::new()),
            vips6: Vec::new(),
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
        match key.vip {
            IpAddr::V4(v) => self.lookup_v4(key.proto, v, key.port),
            IpAddr::V6(v) => self.lookup_v6(key.proto, v, key.port),
        }
    }
    /// The IPv4 service at `proto`, `vip`, `port`, with its index (the IPv4 data path's
    /// lookup: one packed word, no address-family branch).
    #[inline]
    pub fn lookup_v4(&self, proto: L4Proto, vip: Ipv4Addr, port: u16) -> Option<(u32, &Service)> {
        let i = *self.index.get(&ServiceKey::packed_v4(proto, vip, port))?;
        Some((i, &self.services[i as usize]))
    }
    /// The IPv6 service at `proto`, `vip`, `port`, with its index.
    #[inline]
    pub fn lookup_v6(&self, proto: L4Proto, vip: Ipv6Addr, port: u16) -> Option<(u32, &Service)> {
        let i = *self.index6.get(&(proto, vip, port))?;
        Some((i, &self.services[i as usize]))
    }
    /// Whether some service has the IPv6 address `vip` (the IPv6 path's "to a VIP"), asked
    /// per packet: a few VIPs are compared as 128-bit integers one by one (an `Ipv6Addr`
    /// ordering compares byte by byte, about 38 instructions per binary-search step),
    /// more by binary search.
    #[inline]
    pub fn has_vip6(&self, vip: Ipv6Addr) -> bool {
        if self.vips6.len() <= LINEAR_VIPS6 {
            let v = u128::from(vip);
            return self.vips6.iter().any(|&a| u128::from(a) == v);
        }
        self.vips6.binary_search(&vip).is_ok()
    }
    /// Every IPv6 VIP of the table, once each (sorted).
    pub fn vips6(&self) -> &[Ipv6Addr] {
        &self.vips6
    }
    /// Installs a persistence record from the peer into the service it names (see
    /// [`Service::install_persist`]).
    pub fn install_persist(&self, rec: &PersistRecord, now_s: u32) -> Result<(), PersistRefused> {
        let key = ServiceKey { proto: rec.proto, vip: rec.vip.ip(), port: rec.vip.port() };
        let (_, svc) = self.lookup(key).ok_or(PersistRefused::NoService)?;
        svc.install_persist(rec, now_s)
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
    pub fn service_id(&self, i: u32) -> Option<ServiceId> {
        self.ids.services.get(i as usize).copied()
    }
    /// The stable id of server `j` of service `i`.
    pub fn server_id(&self, i: u32, j: usize) -> Option<ServerId> {
        self.ids.servers.get(i as usize)?.get(j).copied()
    }
    /// Every id, in table order.
    pub fn ids(&self) -> &TableIds {
        &self.ids
    }
    /// The service with stable id `id`, if this table still has it.
    #[inline]
    pub fn by_service_id(&self, id: ServiceId) -> Option<&Service> {
        self.services.get(self.service_by_id.get(id)? as usize)
    }
    /// The service and the real server with stable id `id`, if this table still has it.
    #[inline]
    pub fn by_server_id(&self, id: ServerId) -> Option<(&Service, &RealServer)> {
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
