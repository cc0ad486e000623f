//! From the validated configuration to the data path's service table: the one place
//! that turns `[[service]]` entries into [`ServiceTable`]s the workers read.
//!
//! Contract: [`build_table`] and [`build_next`] either build the whole table or fail
//! naming the service (nothing half-built is ever published). Scheduler tables (Maglev,
//! hash rings) are computed here, off the data path.
//!
//! Stable ids and continuity ([`IdBook`], [`build_next`]): every service and real server
//! gets a `u32` id the first time it appears (keyed by the service's protocol, VIP and
//! port, and the server's address and port); ids are never reused — a deleted and
//! re-added server is a new server with fresh counters. A new table takes over the
//! `ServerStats` of every service and server the current table has (by id), so counters
//! and active/inactive counts continue across changes, and the persistence table of a
//! service whose server list (addresses and ports, in order), timeout and netmask are
//! unchanged (persistence remembers server *indexes*, so adding, removing or reordering
//! servers resets that service's persistence).
//!
//! Health ([`Overlay`]): the table is built from the configured servers and, for each,
//! its effect in force (from the health monitor, [`crate::health::state::effect`]): a
//! server that is not present (down with `on_down = "remove"`) is left out of the table
//! (its connections then follow `expire_nodest_conn`); the others carry their weight in
//! effect. Per service, [`crate::health::state::select`] picks the tier in use: the
//! non-backup servers that are up; if none, the backup servers that are up; servers
//! outside that tier keep their place with weight 0 (no new flows, established flows
//! continue). When no server is up, the `sorry_server` (if any) joins the table with
//! weight 1 and the forwarding mode of the service's first server (NAT when it has
//! none): it serves only new flows while nothing else is up. Without an overlay entry a
//! server is in its check's start state ([`start_effect`]): down with `start = "down"`, up
//! at its configured weight otherwise.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::Context;
use rvs_dataplane::admission::Admission;
use rvs_dataplane::sched::{PersistMask, PersistTable, SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{Service as DpService, ServiceTable, TableIds, TableSettings};
use rvs_dataplane::synproxy::SynProxyPolicy;
use rvs_dataplane::types::{PortId, Timeouts, VipConfig};

use crate::config::{Config, Service, ServiceKey};
use crate::health::state::{select, Effect, Selection};

/// A server's place in the overlay: its service and its address and port.
pub type ServerRef = (ServiceKey, IpAddr, u16);

/// The health effect in force per server (see the module docs); servers absent are in
/// their start state ([`start_effect`]).
pub type Overlay = HashMap<ServerRef, Effect>;

/// The effect of a server the health thread has not reported on yet (just configured,
/// added live, or back from admin `maint`): its check's start state, so with
/// `start = "down"` it takes no new flow before it has passed `rise` probes; up at its
/// configured weight otherwise.
pub fn start_effect(s: &crate::config::Service, r: &crate::config::Server) -> Effect {
    match &s.health {
        Some(h) if !h.start_up => Effect { present: h.on_down == crate::config::OnDown::Quiesce, weight: 0, up: false },
        _ => Effect { present: true, weight: r.weight, up: true },
    }
}

/// Persistence entries per persistent service (client networks remembered at once).
pub const PERSIST_CAPACITY: usize = 1 << 16;

/// Every Full-NAT local address of the configuration (all ports' `local_addresses`), the
/// pool a service uses by default.
pub fn local_addresses(config: &Config) -> Vec<Ipv4Addr> {
    config.ports.iter().flat_map(|p| p.local_addresses.iter().copied()).collect()
}

/// Every IPv6 Full-NAT local address of the configuration (all ports'), the pool of the
/// IPv6 services' Full-NAT servers.
pub fn local_addresses6(config: &Config) -> Vec<std::net::Ipv6Addr> {
    config.ports.iter().flat_map(|p| p.local_addresses6.iter().copied()).collect()
}

/// The connection timeouts of `[dataplane]` (ipvsadm --set's three values and the
/// half-open timeout of DR/IPIP; the other TCP states keep IPVS's defaults).
pub fn timeouts(config: &Config) -> Timeouts {
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let mut t = Timeouts::default();
    t.set_tcp(secs(config.dataplane.tcp_timeout), secs(config.dataplane.tcp_fin_timeout));
    t.set_udp(secs(config.dataplane.udp_timeout));
    t.half_open = secs(config.dataplane.half_open_timeout);
    t
}

/// Builds the service table of `config`, generation `generation`, with counters for
/// `workers` workers and fresh ids (a first table).
pub fn build_table(config: &Config, generation: u64, workers: usize) -> anyhow::Result<ServiceTable> {
    let mut ids = IdBook::default();
    build_next(config, generation, workers, &mut ids, None)
}

/// The key of a configured service.
pub fn service_key(s: &crate::config::Service) -> ServiceKey {
    s.key()
}

/// The stable ids handed out so far: those of the objects in the running table, and the
/// next free ids (ids of deleted objects are retired, never handed out again).
#[derive(Debug, Clone, Default)]
pub struct IdBook {
    next_service: u32,
    next_server: u32,
    services: HashMap<ServiceKey, u32>,
    servers: HashMap<ServerRef, u32>,
    sorry: HashMap<ServerRef, u32>,
}

impl IdBook {
    /// Ids for every service and server of `config`: kept for those already known, new
    /// for the others; ids of objects `config` no longer has are forgotten (retired).
    pub fn assign(&mut self, config: &Config) -> TableIds {
        let mut services = HashMap::with_capacity(config.services.len());
        let mut servers = HashMap::new();
        let mut out = TableIds::default();
        for s in &config.services {
            let key = service_key(s);
            let id = *self.services.get(&key).unwrap_or_else(|| {
                self.next_service = self.next_service.wrapping_add(1);
                &self.next_service
            });
            services.insert(key, id);
            out.services.push(id);
            let mut ids = Vec::with_capacity(s.servers.len());
            for r in &s.servers {
                let k = (key, r.address, r.port);
                let id = *self.servers.get(&k).unwrap_or_else(|| {
                    self.next_server = self.next_server.wrapping_add(1);
                    &self.next_server
                });
                servers.insert(k, id);
                ids.push(id);
            }
            out.servers.push(ids);
        }
        self.services = services;
        self.servers = servers;
        self.sorry.retain(|(k, _, _), _| self.services.contains_key(k));
        out
    }

    /// The id of a configured server, if it has one.
    pub fn server_id(&self, key: ServiceKey, addr: IpAddr, port: u16) -> Option<u32> {
        self.servers.get(&(key, addr, port)).copied()
    }

    /// The id of a service's sorry server (stable while the service has it).
    fn sorry_id(&mut self, key: ServiceKey, addr: IpAddr, port: u16) -> u32 {
        if let Some(&id) = self.sorry.get(&(key, addr, port)) {
            return id;
        }
        self.next_server = self.next_server.wrapping_add(1);
        self.sorry.insert((key, addr, port), self.next_server);
        self.next_server
    }
}

/// The IPv4 VIPs of `config`, each answered on the port whose prefix holds it, or on
/// every port when none does (the workers' address books follow this list; IPv6 VIPs are
/// answered from the service table).
pub fn vips(config: &Config) -> Vec<VipConfig> {
    let mut vips: Vec<VipConfig> = Vec::new();
    for s in &config.services {
        let IpAddr::V4(address) = s.address else { continue };
        if vips.iter().any(|v| v.address == address) {
            continue;
        }
        let port = config.ports.iter().position(|p| p.address.contains(&address)).map(|i| PortId(i as u16));
        vips.push(VipConfig { address, port });
    }
    vips
}

/// A service's SYN-proxy policy for the data path: its mode in effect and the
/// `[dataplane] syn_proxy_threshold`.
fn syn_proxy(config: &Config, s: &Service) -> SynProxyPolicy {
    SynProxyPolicy { mode: s.syn_proxy_mode(), threshold: config.dataplane.syn_proxy_threshold }
}

/// The settings published with the services: timeouts, `expire_nodest_conn`, VIPs.
pub fn settings(config: &Config) -> TableSettings {
    TableSettings {
        timeouts: Some(timeouts(config)),
        expire_nodest_conn: config.dataplane.expire_nodest_conn,
        vips: Some(vips(config)),
    }
}

/// What service `s` admits: its allow/deny prefixes of either family, its `maxconn` and
/// its per-client rate.
pub fn admission(s: &crate::config::Service) -> Admission {
    let v4 = |v: &[ipnet::IpNet]| -> Vec<ipnet::Ipv4Net> {
        v.iter()
            .filter_map(|n| match n {
                ipnet::IpNet::V4(n) => Some(*n),
                ipnet::IpNet::V6(_) => None,
            })
            .collect()
    };
    let v6 = |v: &[ipnet::IpNet]| -> Vec<ipnet::Ipv6Net> {
        v.iter()
            .filter_map(|n| match n {
                ipnet::IpNet::V6(n) => Some(*n),
                ipnet::IpNet::V4(_) => None,
            })
            .collect()
    };
    Admission::new(&v4(&s.allow), &v4(&s.deny), s.maxconn)
        .with_ipv6_lists(&v6(&s.allow), &v6(&s.deny))
        .with_client_rate(s.client_rate, s.client_burst)
}

/// Builds the table that follows `current` (or a first one): ids from `ids` (updated),
/// counters and persistence carried over from `current` as the module docs say. On
/// error, `ids` may have advanced (harmless: ids are only ever skipped, never reused) but
/// nothing is published.
pub fn build_next(
    config: &Config,
    generation: u64,
    workers: usize,
    ids: &mut IdBook,
    current: Option<&ServiceTable>,
) -> anyhow::Result<ServiceTable> {
    build_with_health(config, generation, workers, ids, current, &Overlay::new())
}

/// [`build_next`] with the health effects of `health` (see the module docs).
pub fn build_with_health(
    config: &Config,
    generation: u64,
    workers: usize,
    ids: &mut IdBook,
    current: Option<&ServiceTable>,
    health: &Overlay,
) -> anyhow::Result<ServiceTable> {
    let locals = local_addresses(config);
    let locals6 = local_addresses6(config);
    let params = SchedParams::default();
    let mut table_ids = ids.assign(config);
    let mut services = Vec::with_capacity(config.services.len());
    let stats_of = |id: u32| {
        current
            .and_then(|t| t.by_server_id(id))
            .map(|(_, old)| Arc::clone(&old.stats))
            .unwrap_or_else(|| Arc::new(ServerStats::new(workers)))
    };
    for (i, s) in config.services.iter().enumerate() {
        let key = service_key(s);
        let dpkey = key.into();
        let old = current.and_then(|t| t.by_service_id(table_ids.services[i]));
        let effects: Vec<(Effect, bool)> = s
            .servers
            .iter()
            .map(|r| (health.get(&(key, r.address, r.port)).copied().unwrap_or_else(|| start_effect(s, r)), r.backup))
            .collect();
        let selection = select(&effects);
        let mut servers = Vec::with_capacity(s.servers.len() + 1);
        let mut server_ids = Vec::with_capacity(s.servers.len() + 1);
        for (j, (r, &id)) in s.servers.iter().zip(&table_ids.servers[i]).enumerate() {
            let (effect, _) = effects[j];
            if !effect.present {
                continue;
            }
            let in_tier = matches!(&selection, Selection::Servers(tier) if tier.contains(&j));
            servers.push(RealServer {
                addr: r.address,
                port: r.port,
                weight: if in_tier { u32::from(effect.weight) } else { 0 },
                forward: r.forward,
                upper: r.upper_threshold,
                lower: r.lower_threshold,
                stats: stats_of(id),
            });
            server_ids.push(id);
        }
        if let (Selection::Sorry, Some(sorry)) = (&selection, s.sorry_server) {
            let id = ids.sorry_id(key, sorry.ip(), sorry.port());
            servers.push(RealServer {
                addr: sorry.ip(),
                port: sorry.port(),
                weight: 1,
                forward: s.servers.first().map_or(rvs_dataplane::types::ForwardMode::Nat, |r| r.forward),
                upper: 0,
                lower: 0,
                stats: stats_of(id),
            });
            server_ids.push(id);
        }
        table_ids.servers[i] = server_ids;
        let kind = s.scheduler;
        let sched = SchedShared::build(kind, &servers, &params)
            .with_context(|| format!("service[{i}] ({key}): cannot build the {kind} scheduler"))?;
        let persist = s.persistence.map(|d| {
            let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1);
            let same_servers = |o: &DpService| {
                o.servers.len() == servers.len()
                    && o.servers.iter().zip(&servers).all(|(a, b)| (a.addr, a.port) == (b.addr, b.port))
            };
            match old.and_then(|o| o.persist.as_ref().filter(|_| same_servers(o))) {
                Some(p) if p.timeout_s() == secs && p.mask() == s.persistence_netmask => Arc::clone(p),
                _ => Arc::new(match s.persistence_netmask {
                    PersistMask::V4(m) => PersistTable::new(PERSIST_CAPACITY, secs, m),
                    PersistMask::V6(len) => PersistTable::new_v6(PERSIST_CAPACITY, secs, len),
                }),
            }
        });
        services.push(DpService {
            key: dpkey,
            scheduler: kind,
            sched: Arc::new(sched),
            persist,
            servers,
            local_addrs: locals.clone(),
            local_addrs6: locals6.clone(),
            stats: old.map(|o| Arc::clone(&o.stats)).unwrap_or_else(|| Arc::new(ServerStats::new(workers))),
            admission: admission(s),
            syn_proxy: syn_proxy(config, s),
            unknown_flow: s.unknown_flow,
        });
    }
    ServiceTable::with_ids(generation, services, table_ids, settings(config)).context("the service table")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind};

    const CONFIG: &str = r#"
[dataplane]
tcp_timeout = "60s"
udp_timeout = "10s"
[[port]]
name = "front"
device = "net_ring0"
address = "10.10.0.1/24"
mac = "02:00:00:00:00:01"
[[port]]
name = "back"
device = "net_ring1"
address = "10.20.0.1/24"
mac = "02:00:00:00:00:02"
local_addresses = ["10.20.0.200", "10.20.0.201"]
[[service]]
protocol = "tcp"
address = "10.10.0.100"
port = 80
scheduler = "mh"
persistence = "300s"
persistence_netmask = "255.255.255.0"
[[service.server]]
address = "10.20.0.11"
port = 8080
weight = 3
forward = "fullnat"
[[service.server]]
address = "10.20.0.12"
port = 8080
forward = "fullnat"
[[service]]
protocol = "udp"
address = "10.10.0.100"
port = 53
scheduler = "user-hash"
[[service.server]]
address = "10.20.0.11"
port = 53
forward = "nat"
"#;

    #[test]
    fn table_mirrors_the_config() {
        let c = Config::from_toml(CONFIG).unwrap_or_else(|e| panic!("{e}"));
        let t = build_table(&c, 7, 2).unwrap();
        assert_eq!(t.generation(), 7);
        let (i, s) = t
            .lookup(rvs_dataplane::types::ServiceKey {
                proto: L4Proto::Tcp,
                vip: "10.10.0.100".parse().unwrap(),
                port: 80,
            })
            .unwrap();
        assert_eq!(i, 0);
        assert_eq!(s.scheduler, SchedulerKind::Mh);
        assert_eq!(s.servers.len(), 2);
        assert_eq!((s.servers[0].port, s.servers[0].weight, s.servers[0].forward), (8080, 3, ForwardMode::FullNat));
        assert_eq!(s.local_addrs, vec!["10.20.0.200".parse::<Ipv4Addr>().unwrap(), "10.20.0.201".parse().unwrap()]);
        let p = s.persist.as_ref().expect("persistent");
        assert_eq!(p.netmask(), "255.255.255.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(p.timeout_s(), 300);
        let (_, u) = t
            .lookup(rvs_dataplane::types::ServiceKey {
                proto: L4Proto::Udp,
                vip: "10.10.0.100".parse().unwrap(),
                port: 53,
            })
            .unwrap();
        assert_eq!(u.scheduler, SchedulerKind::UserHash);
        assert!(u.persist.is_none());
        assert!(t
            .lookup(rvs_dataplane::types::ServiceKey {
                proto: L4Proto::Udp,
                vip: "10.10.0.100".parse().unwrap(),
                port: 80
            })
            .is_none());
        let to = timeouts(&c);
        assert_eq!((to.established, to.fin_wait, to.udp), (60, 120, 10));
        assert_eq!(to.half_open, 5, "default half-open timeout");
        let c = Config::from_toml(&CONFIG.replacen("[dataplane]", "[dataplane]\nhalf_open_timeout = \"2s\"", 1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(timeouts(&c).half_open, 2);
    }

    #[test]
    fn client_lists_and_maxconn_reach_the_table() {
        let c = Config::from_toml(&CONFIG.replacen(
            "scheduler = \"user-hash\"",
            "scheduler = \"user-hash\"\nallow = [\"10.10.0.0/24\"]\ndeny = [\"10.10.0.7\"]\nmaxconn = 9",
            1,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let t = build_table(&c, 1, 2).unwrap();
        assert!(t.get(0).unwrap().admission.is_open(), "nothing set: admits all");
        let a = &t.get(1).unwrap().admission;
        assert_eq!(a.maxconn, 9);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(a.client_allowed(ip("10.10.0.2")));
        assert!(!a.client_allowed(ip("10.10.0.7")), "denied");
        assert!(!a.client_allowed(ip("10.10.1.2")), "not allowed");
        let c = Config::from_toml(&CONFIG.replacen(
            "scheduler = \"user-hash\"",
            "scheduler = \"user-hash\"\nclient_rate = 5",
            1,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let a = &build_table(&c, 1, 2).unwrap().get(1).unwrap().admission.clone();
        assert_eq!((a.client_rate, a.client_burst), (5, 5));
    }

    #[test]
    fn next_tables_keep_ids_counters_and_persistence() {
        let c = Config::from_toml(CONFIG).unwrap_or_else(|e| panic!("{e}"));
        let mut ids = IdBook::default();
        let t1 = build_next(&c, 1, 2, &mut ids, None).unwrap();
        t1.services()[0].servers[1].stats.conn_opened(0, true);
        // A weight change: same ids, same counters, same persistence table.
        let c2 = Config::from_toml(&CONFIG.replacen("weight = 3", "weight = 4", 1)).unwrap();
        let t2 = build_next(&c2, 2, 2, &mut ids, Some(&t1)).unwrap();
        assert_eq!(t2.ids(), t1.ids());
        assert!(Arc::ptr_eq(&t1.services()[0].servers[1].stats, &t2.services()[0].servers[1].stats));
        assert_eq!(t2.services()[0].servers[1].stats.active_conns(), 1);
        assert!(Arc::ptr_eq(&t1.services()[0].stats, &t2.services()[0].stats));
        let (p1, p2) = (t1.services()[0].persist.as_ref().unwrap(), t2.services()[0].persist.as_ref().unwrap());
        assert!(Arc::ptr_eq(p1, p2), "same servers: persistence kept");
        assert_eq!(t2.settings().vips.as_ref().map(Vec::len), Some(1));
        // Removing a server resets persistence; re-adding it gives a new id and fresh counters.
        let without = CONFIG.replacen(
            "[[service.server]]\naddress = \"10.20.0.12\"\nport = 8080\nforward = \"fullnat\"\n",
            "",
            1,
        );
        let c3 = Config::from_toml(&without).unwrap();
        let t3 = build_next(&c3, 3, 2, &mut ids, Some(&t2)).unwrap();
        assert!(!Arc::ptr_eq(p2, t3.services()[0].persist.as_ref().unwrap()));
        let t4 = build_next(&c2, 4, 2, &mut ids, Some(&t3)).unwrap();
        let (old_id, new_id) = (t2.server_id(0, 1).unwrap(), t4.server_id(0, 1).unwrap());
        assert_ne!(old_id, new_id, "ids are never reused");
        assert_eq!(t4.services()[0].servers[1].stats.active_conns(), 0);
        assert_eq!(t4.service_id(0), t1.service_id(0));
    }

    #[test]
    fn health_effects_quiesce_remove_and_fall_back_to_backup_then_sorry() {
        let c = Config::from_toml(
            r#"
[[port]]
name = "p0"
device = "net_ring0"
address = "10.20.0.1/24"
mac = "02:00:00:00:00:01"
[[service]]
protocol = "tcp"
address = "10.20.0.100"
port = 80
scheduler = "wrr"
sorry_server = "10.20.0.30:80"
[[service.server]]
address = "10.20.0.11"
weight = 3
forward = "nat"
[[service.server]]
address = "10.20.0.12"
weight = 2
forward = "nat"
[[service.server]]
address = "10.20.0.13"
weight = 5
forward = "nat"
backup = true
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let key = service_key(&c.services[0]);
        let ip = |n: u8| IpAddr::from(Ipv4Addr::new(10, 20, 0, n));
        let weights = |t: &ServiceTable| -> Vec<(u8, u32)> {
            t.get(0)
                .unwrap()
                .servers
                .iter()
                .map(|r| {
                    (
                        match r.addr {
                            std::net::IpAddr::V4(a) => a.octets()[3],
                            std::net::IpAddr::V6(_) => 0,
                        },
                        r.weight,
                    )
                })
                .collect()
        };
        let mut ids = IdBook::default();
        let t1 = build_with_health(&c, 1, 1, &mut ids, None, &Overlay::new()).unwrap();
        assert_eq!(weights(&t1), [(11, 3), (12, 2), (13, 0)], "the backup waits while others are up");

        let down = Effect { present: true, weight: 0, up: false };
        let removed = Effect { present: false, weight: 0, up: false };
        let mut o = Overlay::new();
        o.insert((key, ip(11), 80), down);
        let t2 = build_with_health(&c, 2, 1, &mut ids, Some(&t1), &o).unwrap();
        assert_eq!(weights(&t2), [(11, 0), (12, 2), (13, 0)], "quiesced, still in the table");
        assert_eq!(t2.server_id(0, 0), t1.server_id(0, 0), "same id");

        o.insert((key, ip(12), 80), removed);
        let t3 = build_with_health(&c, 3, 1, &mut ids, Some(&t2), &o).unwrap();
        assert_eq!(weights(&t3), [(11, 0), (13, 5)], "removed; the backup takes over");
        assert_eq!(t3.server_id(0, 1), ids.server_id(key, ip(13), 80));

        o.insert((key, ip(13), 80), down);
        let t4 = build_with_health(&c, 4, 1, &mut ids, Some(&t3), &o).unwrap();
        assert_eq!(weights(&t4), [(11, 0), (13, 0), (30, 1)], "nothing up: the sorry server");
        let sorry = &t4.get(0).unwrap().servers[2];
        assert_eq!((sorry.port, sorry.forward), (80, rvs_dataplane::types::ForwardMode::Nat));

        let t5 = build_with_health(&c, 5, 1, &mut ids, Some(&t4), &Overlay::new()).unwrap();
        assert_eq!(weights(&t5), [(11, 3), (12, 2), (13, 0)], "all back");
    }

    #[test]
    fn servers_not_yet_reported_are_in_their_start_state() {
        let text = |start: &str| {
            format!(
                "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\naddress = \"10.20.0.1/24\"\nmac = \"02:00:00:00:00:01\"\n\
                 [[service]]\nprotocol = \"tcp\"\naddress = \"10.20.0.100\"\nport = 80\nscheduler = \"wrr\"\n\
                 [service.health]\nkind = \"tcp\"\n{start}\n\
                 [[service.server]]\naddress = \"10.20.0.11\"\nweight = 3\nforward = \"nat\"\n"
            )
        };
        let weights = |c: &Config| -> Vec<u32> {
            let t = build_with_health(c, 1, 1, &mut IdBook::default(), None, &Overlay::new()).unwrap();
            t.get(0).unwrap().servers.iter().map(|r| r.weight).collect()
        };
        let up = Config::from_toml(&text("")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(weights(&up), [3], "start up: the configured weight");
        let down = Config::from_toml(&text("start = \"down\"")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(weights(&down), [0], "start down: no new flow before the checks pass");
        let removed = Config::from_toml(&text("start = \"down\"\non_down = \"remove\"")).unwrap();
        assert_eq!(weights(&removed), Vec::<u32>::new(), "and out of the table with on_down = remove");
    }
}
