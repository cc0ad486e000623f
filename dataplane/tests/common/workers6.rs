//! Workers for the IPv6 tests: the lab's IPv6 port addresses on both ports, an engine on
//! the given services, and the neighbours learned the way a worker learns them on the
//! wire, from their solicitations of our addresses.

use std::net::Ipv6Addr;
use std::sync::Arc;

use rvs_dataplane::l2l3::neigh::NeighSync;
use rvs_dataplane::lb::{LbConfig, LbEngine};
use rvs_dataplane::mesh::MeshLinks;
use rvs_dataplane::sched::{SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{Service, SharedServices};
use rvs_dataplane::types::{ForwardMode, L4Proto, PortId, SchedulerKind, ServiceKey, Timeouts};
use rvs_dataplane::worker::Worker;
use rvs_drivers::mem::MemPool;

use super::ip6::{a, ns_from};
use super::l4::{lb_worker_config, LbOpts};
use super::{queues, roundtrip, MemWorker, BACK, FRONT, LOCAL_IP, LOCAL_IP2};

/// rvsd's IPv6 address on the front port (the lab's), a /64.
pub const FRONT6: &str = "2001:db8:10::1";
/// rvsd's IPv6 address on the back port (the lab's), a /64.
pub const BACK6: &str = "2001:db8:20::1";
/// The IPv6 VIP of the services [`service6`] builds (the lab's).
pub const VIP6: &str = "2001:db8:10::100";

/// A neighbour every worker learns at start: its address and MAC, and the port it is on.
#[derive(Debug, Clone, Copy)]
pub struct Neighbour6 {
    /// Its IPv6 address.
    pub ip: Ipv6Addr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The port it is on ([`FRONT`] or [`BACK`]).
    pub port: PortId,
}

/// The neighbour `ip` (an address constant) at `mac` on `port`.
pub fn neighbour6(ip: &str, mac: [u8; 6], port: PortId) -> Neighbour6 {
    Neighbour6 { ip: a(ip), mac, port }
}

/// A real server at `addr` (an address constant) and `port`, weight 1, no thresholds.
pub fn server6(addr: &str, port: u16, forward: ForwardMode, workers: usize) -> RealServer {
    RealServer {
        addr: a(addr).into(),
        port,
        weight: 1,
        forward,
        upper: 0,
        lower: 0,
        stats: Arc::new(ServerStats::new(workers)),
    }
}

/// An IPv6 service on [`VIP6`] and `port` over `servers`, built the way the control plane
/// builds one: round robin with its shared tables, no persistence, no Full-NAT local
/// address, the default admission, SYN proxy and unknown-flow policies. A test sets what
/// it needs with struct update syntax (`Service { local_addrs6, ..service6(..) }`).
pub fn service6(workers: usize, proto: L4Proto, port: u16, servers: Vec<RealServer>) -> Service {
    let shared = SchedShared::build(SchedulerKind::Rr, &servers, &SchedParams::default()).expect("scheduler builds");
    Service {
        key: ServiceKey { proto, vip: a(VIP6).into(), port },
        scheduler: SchedulerKind::Rr,
        sched: Arc::new(shared),
        persist: None,
        servers,
        local_addrs: Vec::new(),
        local_addrs6: Vec::new(),
        stats: Arc::new(ServerStats::new(workers)),
        admission: Default::default(),
        syn_proxy: Default::default(),
        unknown_flow: Default::default(),
    }
}

/// `n` workers (neighbour and redirect meshes when more than one) with [`FRONT6`] and
/// [`BACK6`] on their ports and `local6` as IPv6 Full-NAT local addresses on the back one,
/// their engines reading `shared` with `opts`; each worker is then finished by
/// `finish(index, worker)` (sync links, VRRP roles) and learns every neighbour of `learn`.
pub fn workers6(
    shared: &SharedServices,
    n: usize,
    opts: &LbOpts,
    local6: &[Ipv6Addr],
    learn: &[Neighbour6],
    mut finish: impl FnMut(usize, MemWorker) -> MemWorker,
) -> Vec<MemWorker> {
    let (syncs, links) = if n == 1 {
        (vec![NeighSync::none()], vec![MeshLinks::none()])
    } else {
        (NeighSync::mesh(n, 64), MeshLinks::mesh(n, 64))
    };
    let mut ws: Vec<MemWorker> = syncs
        .into_iter()
        .zip(links)
        .enumerate()
        .map(|(i, (sync, link))| {
            let mut c = lb_worker_config(i, n);
            c.ports[FRONT.index()].ipv6_addresses = vec![format!("{FRONT6}/64").parse().unwrap()];
            c.ports[BACK.index()].ipv6_addresses = vec![format!("{BACK6}/64").parse().unwrap()];
            c.ports[BACK.index()].local_addresses6 = local6.to_vec();
            let config = LbConfig {
                conn_capacity: opts.conn_capacity,
                conn_pages: Default::default(),
                timeouts: Timeouts::default(),
                port_mtu: opts.port_mtu.clone(),
                // One spec for both families' local ports (the NIC's, as in `rss_redirect`).
                rss: opts.rss.as_ref().map(|r| r.for_queue(i)),
                rss6: opts.rss.as_ref().map(|r| r.for_queue(i)),
                // The ports' IPv4 local addresses (`lb_worker_config`), for NAT64.
                local_addrs: vec![LOCAL_IP, LOCAL_IP2],
                local_addrs6: local6.to_vec(),
                cookie_secret: rvs_dataplane::synproxy::cookie::CookieSecret::from_bytes([7; 32]),
            };
            let engine = LbEngine::new(i, n, Arc::clone(shared), config);
            let w = Worker::new(&c, queues(), MemPool::new(), sync).expect("valid config").with_lb(engine, link);
            finish(i, w)
        })
        .collect();
    for w in ws.iter_mut() {
        for nb in learn {
            let ours = if nb.port == FRONT { FRONT6 } else { BACK6 };
            roundtrip(w, nb.port, &ns_from(nb.ip, nb.mac, a(ours)), 0);
        }
    }
    ws
}
