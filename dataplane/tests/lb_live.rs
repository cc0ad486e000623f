//! Live changes through whole workers on the in-memory driver: a new service table
//! published while connections are open. Established flows keep forwarding, their
//! counters follow their server's stable id into the new table, a deleted server's flows
//! follow `expire_nodest_conn`, timeouts and VIPs change with the table, and connection
//! listings are answered through the worker's control queue.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::l4::*;
use common::*;
use rvs_dataplane::control::{control_link, ConnFilter};
use rvs_dataplane::sched::{SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{Service, ServiceTable, SharedServices, TableIds, TableSettings};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, SchedulerKind, ServiceKey, TcpState, Timeouts, VipConfig};

use ForwardMode::Nat;
use L4Proto::Tcp;
use SchedulerKind::Wrr;

const CPORT: u16 = 40001;

/// Publishes a new version of service 0 of `shared` with `servers` (each with its stable
/// id), carrying over the counters of every id the current table has — as the control
/// plane does.
fn republish(shared: &SharedServices, generation: u64, servers: &[(u32, Rs)], settings: TableSettings) {
    let old = shared.load_full();
    let svc = &old.services()[0];
    let rs: Vec<RealServer> = servers
        .iter()
        .map(|(id, s)| RealServer {
            addr: s.addr.into(),
            port: s.port,
            weight: s.weight,
            forward: s.forward,
            upper: 0,
            lower: 0,
            stats: old
                .by_server_id(*id)
                .map(|(_, r)| Arc::clone(&r.stats))
                .unwrap_or_else(|| Arc::new(ServerStats::new(1))),
        })
        .collect();
    let sched = SchedShared::build(svc.scheduler, &rs, &SchedParams::default()).expect("scheduler");
    let next = Service {
        key: svc.key,
        scheduler: svc.scheduler,
        sched: Arc::new(sched),
        persist: None,
        servers: rs,
        local_addrs: svc.local_addrs.clone(),
        local_addrs6: svc.local_addrs6.clone(),
        stats: Arc::clone(&svc.stats),
        admission: Default::default(),
        syn_proxy: Default::default(),
        unknown_flow: Default::default(),
    };
    let ids = TableIds {
        services: vec![old.service_id(0).expect("id")],
        servers: vec![servers.iter().map(|(id, _)| *id).collect()],
    };
    shared.store(Arc::new(ServiceTable::with_ids(generation, vec![next], ids, settings).expect("table")));
}

/// The one connection of worker `w`: (server, state).
fn only_conn(w: &MemWorker) -> (Ipv4Addr, ConnState) {
    let v: Vec<_> = w.lb().expect("engine").conns().iter().map(|(_, c)| (c.server, c.state)).collect();
    assert_eq!(v.len(), 1, "one connection expected");
    v[0]
}

/// A worker with one NAT service over RS1 (id 0, weight 1) and RS2 (id 1, weight 1),
/// and one open connection from the client; returns which server it went to.
fn open_one() -> (SharedServices, Vec<MemWorker>, Ipv4Addr) {
    let shared = publish(vec![service(1, Tcp, 80, Wrr, &[rs(RS1, 80, 1, Nat), rs(RS2, 80, 1, Nat)], None)]);
    let mut ws = vec![lb_worker(&shared)];
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), SEC);
    assert_eq!(back.len(), 1, "SYN forwarded");
    let (server, _) = only_conn(&ws[0]);
    (shared, ws, server)
}

fn idx_of(server: Ipv4Addr) -> usize {
    if server == RS1 {
        0
    } else {
        1
    }
}

#[test]
fn counters_follow_a_connection_across_a_weight_change() {
    let (shared, mut ws, server) = open_one();
    let i = idx_of(server);
    let other = 1 - i;
    let st = server_stats(&shared, 0, i);
    assert_eq!((st.conns, st.active_conns, st.packets_in), (1, 1, 1));

    // Weights change (the connection's server goes to 5, the other to 0: drained).
    let weights = if i == 0 { [5, 0] } else { [0, 5] };
    republish(
        &shared,
        2,
        &[(0, rs(RS1, 80, weights[0], Nat)), (1, rs(RS2, 80, weights[1], Nat))],
        TableSettings::default(),
    );
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).by_client(), 2 * SEC);
    assert_eq!(back.len(), 1, "the established flow still forwards");
    assert_eq!(seen(&back[0]).dst, server);
    assert_eq!(ws[0].lb().expect("engine").services().generation(), 2);
    let st = server_stats(&shared, 0, i);
    assert_eq!((st.conns, st.active_conns, st.packets_in), (1, 1, 2), "counted in the new table");
    assert_eq!(server_stats(&shared, 0, other).packets_in, 0);
    assert_eq!(service_stats(&shared, 0).packets_in, 2);

    // The client resets: the connection goes inactive, then expires, leaving its
    // server's counters in the new table at zero.
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, RST | ACK).by_client(), 3 * SEC);
    let st = server_stats(&shared, 0, i);
    assert_eq!((st.active_conns, st.inactive_conns), (0, 1));
    poll_all(&mut ws[..], 60 * SEC);
    assert!(ws[0].lb().expect("engine").conns().is_empty());
    let st = server_stats(&shared, 0, i);
    assert_eq!((st.conns, st.active_conns, st.inactive_conns), (1, 0, 0));
    let s = service_stats(&shared, 0);
    assert_eq!((s.conns, s.active_conns, s.inactive_conns), (1, 0, 0));
    // New connections go to the weighted server only.
    for p in 0..4u16 {
        send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 50000 + p, VIP, 80, SYN).by_client(), 61 * SEC);
    }
    assert_eq!(server_stats(&shared, 0, other).conns, 0, "weight 0 takes no new connection");
    assert_eq!(server_stats(&shared, 0, i).conns, 5);
    assert_accounting_all(&ws);
}

#[test]
fn deleted_server_flows_keep_forwarding_by_default() {
    let (shared, mut ws, server) = open_one();
    let i = idx_of(server);
    let keep = if i == 0 { (1, rs(RS2, 80, 1, Nat)) } else { (0, rs(RS1, 80, 1, Nat)) };
    republish(&shared, 2, &[keep], TableSettings { expire_nodest_conn: false, ..TableSettings::default() });
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).by_client(), 2 * SEC);
    assert_eq!(back.len(), 1, "forwarded to the deleted server until it expires");
    assert_eq!(seen(&back[0]).dst, server);
    assert_eq!(server_stats(&shared, 0, 0).packets_in, 0, "nothing credited to the remaining server");
    assert_eq!(service_stats(&shared, 0).packets_in, 2, "the service still counts it");
    assert_eq!(service_stats(&shared, 0).active_conns, 1);
    poll_all(&mut ws[..], 2000 * SEC);
    assert!(ws[0].lb().expect("engine").conns().is_empty());
    assert_eq!(service_stats(&shared, 0).active_conns, 0, "no leaked active count");
    assert_accounting_all(&ws);
}

#[test]
fn a_new_syn_on_a_deleted_servers_connection_is_scheduled_to_a_remaining_server() {
    let (shared, mut ws, server) = open_one();
    let i = idx_of(server);
    let keep = if i == 0 { (1, rs(RS2, 80, 1, Nat)) } else { (0, rs(RS1, 80, 1, Nat)) };
    republish(&shared, 2, &[keep], TableSettings { expire_nodest_conn: false, ..TableSettings::default() });
    // Even without expire_nodest_conn a SYN is a new connection, and a deleted server
    // takes none.
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 2 * SEC);
    assert_eq!(back.len(), 1);
    assert_ne!(seen(&back[0]).dst, server);
    assert_eq!(snapshot(&ws[0]).conns_reused, 1);
    assert_eq!(service_stats(&shared, 0).active_conns, 1, "the old connection's count went with it");
    assert_eq!(server_stats(&shared, 0, 0).conns, 1);
    assert_accounting_all(&ws);
}

#[test]
fn deleted_server_flows_are_dropped_with_expire_nodest_conn() {
    let (shared, mut ws, server) = open_one();
    let i = idx_of(server);
    let keep = if i == 0 { (1, rs(RS2, 80, 1, Nat)) } else { (0, rs(RS1, 80, 1, Nat)) };
    republish(&shared, 2, &[keep], TableSettings { expire_nodest_conn: true, ..TableSettings::default() });
    let (front, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).by_client(), 2 * SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![(DropReason::ConnServerRemoved.name(), 1)]);
    assert!(ws[0].lb().expect("engine").conns().is_empty(), "the connection is removed");
    assert_eq!(service_stats(&shared, 0).active_conns, 0);
    // The client's retry opens a new connection to the remaining server.
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 3 * SEC);
    assert_eq!(back.len(), 1);
    assert_ne!(seen(&back[0]).dst, server);
    assert_accounting_all(&ws);
}

#[test]
fn timeouts_and_vips_change_with_the_table() {
    let shared = publish(vec![service(1, Tcp, 80, Wrr, &[rs(RS1, 80, 1, Nat)], None)]);
    let mut ws = vec![lb_worker(&shared)];
    let vip2 = Ipv4Addr::new(10, 10, 0, 101);
    // Before: 10.10.0.101 is not ours.
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, vip2, 80, SYN).by_client(), SEC);
    assert_eq!(drops_of(&ws[0]), vec![("ip_not_for_us", 1)]);

    let mut t = Timeouts::default();
    t.set_udp(5);
    let old = shared.load_full();
    let mk = |vip: Ipv4Addr| {
        let s = &old.services()[0];
        Service {
            key: ServiceKey { proto: Tcp, vip: vip.into(), port: 80 },
            scheduler: s.scheduler,
            sched: Arc::clone(&s.sched),
            persist: None,
            servers: s.servers.clone(),
            local_addrs: s.local_addrs.clone(),
            local_addrs6: s.local_addrs6.clone(),
            stats: Arc::new(ServerStats::new(1)),
            admission: Default::default(),
            syn_proxy: Default::default(),
            unknown_flow: Default::default(),
        }
    };
    let settings = TableSettings {
        timeouts: Some(t),
        expire_nodest_conn: false,
        vips: Some(vec![VipConfig { address: VIP, port: Some(FRONT) }, VipConfig { address: vip2, port: Some(FRONT) }]),
    };
    let ids = TableIds { services: vec![0, 1], servers: vec![vec![0], vec![1]] };
    shared.store(Arc::new(ServiceTable::with_ids(2, vec![mk(VIP), mk(vip2)], ids, settings).expect("table")));
    let (front, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, vip2, 80, SYN).by_client(), 2 * SEC);
    assert_eq!(back.len(), 1, "the new VIP is served");
    assert!(front.iter().any(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06]), "worker 0 announced the new VIP");
    assert_eq!(ws[0].lb().expect("engine").conns().timeouts().udp, 5);
    assert_accounting_all(&ws);
}

#[test]
fn connection_listing_through_the_control_queue() {
    let (handle, link) = control_link(4);
    let shared = publish(vec![service(1, Tcp, 80, Wrr, &[rs(RS1, 80, 1, Nat)], None)]);
    let mut ws = vec![lb_worker(&shared).with_control(link)];
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), SEC);
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 1, VIP, 80, SYN).by_client(), SEC);

    let mut rx = handle.list_conns(ConnFilter::default(), 1).expect("queued");
    assert!(rx.try_recv().is_err(), "answered only when the worker polls");
    ws[0].poll_once(2 * SEC);
    let l = rx.try_recv().expect("answered");
    assert_eq!((l.worker, l.total, l.entries.len()), (0, 2, 1));
    let e = l.entries[0];
    assert_eq!((e.proto, e.vip, e.server, e.forward), (Tcp, (VIP.into(), 80), (RS1.into(), 80), Nat));
    assert_eq!(e.client.0, CLIENT_IP);
    assert_eq!(e.state, ConnState::Tcp(TcpState::SynRecv));
    let secs = e.expires_in_ns / SEC;
    assert!((58..=60).contains(&secs), "SYN_RECV expires in about 59 s, got {secs}");

    let other = ServiceKey { proto: Tcp, vip: VIP.into(), port: 81 };
    let mut rx = handle.list_conns(ConnFilter { service: Some(other), server: None }, 10).expect("queued");
    let mut rx2 = handle.list_conns(ConnFilter { service: None, server: Some((RS1.into(), 80)) }, 10).expect("queued");
    ws[0].poll_once(2 * SEC);
    assert_eq!(rx.try_recv().expect("answered").total, 0);
    assert_eq!(rx2.try_recv().expect("answered").entries.len(), 2);
    // A requester that gave up does not disturb the worker.
    drop(handle.list_conns(ConnFilter::default(), 10).expect("queued"));
    ws[0].poll_once(3 * SEC);
    assert_accounting_all(&ws);
}
