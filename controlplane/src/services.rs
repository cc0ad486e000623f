//! From the validated configuration to the data path's service table: the one place
//! that turns `[[service]]` entries into [`ServiceTable`]s the workers read.
//!
//! Contract: [`build_table`] either builds the whole table or fails naming the service
//! (nothing half-built is ever published). Counters (`ServerStats`) are created here, one
//! slot per worker; scheduler tables (Maglev, hash rings) are computed here, off the data
//! path.

use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::Context;
use rvs_dataplane::conn::Timeouts;
use rvs_dataplane::sched::{PersistTable, SchedParams, SchedShared};
use rvs_dataplane::service::{
    ForwardMode, L4Proto, RealServer, SchedulerKind, ServerStats, Service as DpService, ServiceKey, ServiceTable,
};

use crate::config::{Config, Forward, Protocol};

/// Persistence entries per persistent service (client networks remembered at once).
pub const PERSIST_CAPACITY: usize = 1 << 16;

/// Every Full-NAT local address of the configuration (all ports' `local_addresses`), the
/// pool a service uses by default.
pub fn local_addresses(config: &Config) -> Vec<Ipv4Addr> {
    config.ports.iter().flat_map(|p| p.local_addresses.iter().copied()).collect()
}

/// The data path's view of a forwarding method.
pub fn forward_mode(f: Forward) -> ForwardMode {
    match f {
        Forward::Dr => ForwardMode::Dr,
        Forward::Nat => ForwardMode::Nat,
        Forward::FullNat => ForwardMode::FullNat,
        Forward::Tunnel => ForwardMode::Tunnel,
    }
}

/// The data path's view of a protocol.
pub fn l4_proto(p: Protocol) -> L4Proto {
    match p {
        Protocol::Tcp => L4Proto::Tcp,
        Protocol::Udp => L4Proto::Udp,
    }
}

/// The connection timeouts of `[dataplane]` (ipvsadm --set's three values; the other TCP
/// states keep IPVS's defaults).
pub fn timeouts(config: &Config) -> Timeouts {
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let mut t = Timeouts::default();
    t.set_tcp(secs(config.dataplane.tcp_timeout), secs(config.dataplane.tcp_fin_timeout));
    t.set_udp(secs(config.dataplane.udp_timeout));
    t
}

/// Builds the service table of `config`, generation `generation`, with counters for
/// `workers` workers.
pub fn build_table(config: &Config, generation: u64, workers: usize) -> anyhow::Result<ServiceTable> {
    let locals = local_addresses(config);
    let params = SchedParams::default();
    let mut services = Vec::with_capacity(config.services.len());
    for (i, s) in config.services.iter().enumerate() {
        let key = ServiceKey { proto: l4_proto(s.protocol), vip: s.address, port: s.port };
        let servers: Vec<RealServer> = s
            .servers
            .iter()
            .map(|r| RealServer {
                addr: r.address,
                port: r.port,
                weight: u32::from(r.weight),
                forward: forward_mode(r.forward),
                upper: r.upper_threshold,
                lower: r.lower_threshold,
                stats: Arc::new(ServerStats::new(workers)),
            })
            .collect();
        let kind: SchedulerKind = s
            .scheduler
            .name()
            .parse()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("service[{i}] ({key}): scheduler"))?;
        let sched = SchedShared::build(kind, &servers, &params)
            .with_context(|| format!("service[{i}] ({key}): cannot build the {kind} scheduler"))?;
        let persist = s.persistence.map(|d| {
            let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1);
            Arc::new(PersistTable::new(PERSIST_CAPACITY, secs, s.persistence_netmask))
        });
        services.push(DpService {
            key,
            scheduler: kind,
            sched: Arc::new(sched),
            persist,
            servers,
            local_addrs: locals.clone(),
            stats: Arc::new(ServerStats::new(workers)),
        });
    }
    ServiceTable::new(generation, services).context("the service table")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (i, s) = t.lookup(ServiceKey { proto: L4Proto::Tcp, vip: "10.10.0.100".parse().unwrap(), port: 80 }).unwrap();
        assert_eq!(i, 0);
        assert_eq!(s.scheduler, SchedulerKind::Mh);
        assert_eq!(s.servers.len(), 2);
        assert_eq!((s.servers[0].port, s.servers[0].weight, s.servers[0].forward), (8080, 3, ForwardMode::FullNat));
        assert_eq!(s.local_addrs, vec!["10.20.0.200".parse::<Ipv4Addr>().unwrap(), "10.20.0.201".parse().unwrap()]);
        let p = s.persist.as_ref().expect("persistent");
        assert_eq!(p.netmask(), "255.255.255.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(p.timeout_s(), 300);
        let (_, u) = t.lookup(ServiceKey { proto: L4Proto::Udp, vip: "10.10.0.100".parse().unwrap(), port: 53 }).unwrap();
        assert_eq!(u.scheduler, SchedulerKind::UserHash);
        assert!(u.persist.is_none());
        assert!(t.lookup(ServiceKey { proto: L4Proto::Udp, vip: "10.10.0.100".parse().unwrap(), port: 80 }).is_none());
        let to = timeouts(&c);
        assert_eq!((to.established, to.fin_wait, to.udp), (60, 120, 10));
    }

    #[test]
    fn every_config_scheduler_maps_to_a_data_path_scheduler() {
        for s in crate::config::Scheduler::ALL {
            assert!(s.name().parse::<SchedulerKind>().is_ok(), "{}", s.name());
        }
    }
}
