//! Connection sync through whole workers on the in-memory driver: records out when a
//! connection is created or changes state (never waiting on a full ring), installs of the
//! peer's records with every refusal counted, Full-NAT local ports held by installed
//! entries, dumps that resume across polls, the refresh that leaves the peer's entries
//! alone, persistence entries moving between services, and a master's table rebuilt on a
//! backup from a dump.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::l4::*;
use common::*;
use proptest::prelude::*;
use rvs_dataplane::conn::{ConnFlags, Direction, FlowKey, TICK_NS};
use rvs_dataplane::ha::{ha_links, HaGroup, HaRoles};
use rvs_dataplane::sched::persist::persist_now_s;
use rvs_dataplane::sched::PersistTable;
use rvs_dataplane::service::{PersistRefused, Service, SharedServices};
use rvs_dataplane::sync::{owner_of, sync_links, ConnRecord, SyncEnd, SyncOptions, SyncRecord};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, SchedulerKind, TcpState};

use ForwardMode::{Dr, FullNat, Nat, Tunnel};
use L4Proto::{Tcp, Udp};
use SchedulerKind::Rr;

const NO_REFRESH: SyncOptions = SyncOptions { refresh: Duration::ZERO };

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// A record of `client:cport` to service `vport` on `server:sport` with `forward`.
fn record(proto: L4Proto, cport: u16, vport: u16, server: (Ipv4Addr, u16), forward: ForwardMode) -> ConnRecord {
    ConnRecord {
        proto,
        forward,
        client: sa(CLIENT_IP, cport),
        vip: sa(VIP, vport),
        local: sa(CLIENT_IP, cport),
        server: sa(server.0, server.1),
        state: if proto == Tcp { ConnState::Tcp(TcpState::Established) } else { ConnState::Udp },
        flags: 0,
        expires_in_ms: 60_000,
        synproxy: None,
    }
}

/// `workers` lab workers over `shared`, each with its sync link.
fn synced(
    shared: &SharedServices,
    workers: usize,
    opts: &LbOpts,
    ring: usize,
    o: SyncOptions,
) -> (Vec<MemWorker>, SyncEnd) {
    let (links, end) = sync_links(workers, ring);
    let ws = lb_workers(shared, workers, opts).into_iter().zip(links).map(|(w, l)| w.with_sync(l, o)).collect();
    (ws, end)
}

/// Every record waiting in the workers' outbound rings.
fn drain(end: &mut SyncEnd) -> Vec<ConnRecord> {
    let mut out = Vec::new();
    end.pop(usize::MAX, |_, r| match r {
        SyncRecord::Conn(c) => out.push(c),
        SyncRecord::Persist(p) => panic!("workers send no persistence records: {p:?}"),
    });
    out
}

fn conn_count(w: &MemWorker) -> usize {
    w.lb().expect("engine").conns().len()
}

#[test]
fn created_and_changed_connections_are_sent_and_a_full_ring_only_counts() {
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None),
        service(1, Udp, 53, Rr, &[rs(RS2, 53, 1, Nat)], None),
    ]);
    let (mut ws, mut end) = synced(&shared, 1, &LbOpts::default(), 2, NO_REFRESH);
    let t = SEC;
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, SYN).by_client(), t);
    let recs = drain(&mut end);
    assert_eq!(recs.len(), 1, "one record for the new connection: {recs:?}");
    let r = recs[0];
    assert_eq!((r.proto, r.forward, r.client, r.vip), (Tcp, Nat, sa(CLIENT_IP, 40000), sa(VIP, 80)));
    assert_eq!((r.server, r.local, r.state), (sa(RS1, 80), sa(CLIENT_IP, 40000), ConnState::Tcp(TcpState::SynRecv)));
    assert_eq!(r.expires_in_ms / 1000, 60, "SYN_RECV's timeout, to the wheel's precision");
    // The server's SYN+ACK leaves the state at SYN_RECV (IPVS's table): nothing is sent;
    // its flags travel with the next change.
    send_to(&mut ws, 0, BACK, &Seg::tcp(RS1, 80, CLIENT_IP, 40000, SYN | ACK).by_server(RS1_MAC), t);
    assert!(drain(&mut end).is_empty());
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, ACK).by_client(), t);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].state, ConnState::Tcp(TcpState::Established));
    assert_eq!(ConnFlags::from_bits(r[0].flags), ConnFlags::SYN_ACK_SEEN | ConnFlags::REPLY_SEEN);
    // Established packets that change nothing send nothing.
    for _ in 0..3 {
        send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, ACK | PSH).data(b"x").by_client(), t);
    }
    assert!(drain(&mut end).is_empty());
    // A UDP flow: its creation only (its state never changes).
    send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, 5000, VIP, 53, b"q").by_client(), t);
    send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, 5000, VIP, 53, b"q").by_client(), t);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].state, r[0].server), (ConnState::Udp, sa(RS2, 53)));
    let s = snapshot(&ws[0]);
    assert_eq!((s.sync_tx, s.sync_lost), (3, 0));
    // Nobody reads the ring: two fit, the rest are lost, and every flow is still served.
    for cport in 5001..5005 {
        let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, cport, VIP, 53, b"q").by_client(), t);
        assert_eq!(back.len(), 1, "forwarded whatever the ring");
    }
    let s = snapshot(&ws[0]);
    assert_eq!((s.sync_tx, s.sync_lost), (5, 2));
    assert_eq!(drain(&mut end).len(), 2);
    assert_accounting_all(&ws);
}

#[test]
fn a_fullnat_record_says_whether_the_toa_is_still_to_send() {
    let shared = publish(vec![service(1, Tcp, 80, Rr, &[rs(RS1, 8080, 1, FullNat)], None)]);
    let (mut ws, mut end) = synced(&shared, 1, &LbOpts::default(), 16, NO_REFRESH);
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, SYN).by_client(), SEC);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1);
    assert_eq!(ConnFlags::from_bits(r[0].flags), ConnFlags::TOA_PENDING);
    assert_eq!((r[0].local.ip(), r[0].server), (IpAddr::V4(LOCAL_IP), sa(RS1, 8080)));
    let lport = r[0].local.port();
    send_to(&mut ws, 0, BACK, &Seg::tcp(RS1, 8080, LOCAL_IP, lport, SYN | ACK).by_server(RS1_MAC), SEC);
    // The handshake's ACK carries the TOA for the last time: the record says it is sent.
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, ACK).by_client(), SEC);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].state, ConnState::Tcp(TcpState::Established));
    assert_eq!(ConnFlags::from_bits(r[0].flags), ConnFlags::SYN_ACK_SEEN | ConnFlags::REPLY_SEEN);
    let c = *ws[0].lb().unwrap().conns().iter().next().unwrap().1;
    assert_eq!(c.flags.bits(), r[0].flags, "as the table has it after the packet");
}

#[test]
fn installs_create_update_and_refuse_with_a_reason_each() {
    // Two services on one server ip:port (a reply tuple can clash); a weight-0 server the
    // scheduler would never pick; a Full-NAT service.
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat), rs(RS2, 80, 0, Nat)], None),
        service(1, Tcp, 81, Rr, &[rs(RS2, 80, 1, Nat)], None),
        service(1, Udp, 53, Rr, &[rs(RS3, 53, 1, FullNat)], None),
    ]);
    let opts = LbOpts { conn_capacity: 4, ..LbOpts::default() };
    let (mut ws, mut end) = synced(&shared, 1, &opts, 64, NO_REFRESH);
    let t = 5 * SEC;
    let install = |ws: &mut Vec<MemWorker>, end: &SyncEnd, r: ConnRecord| {
        end.push(0, r).expect("room");
        ws[0].poll_once(t);
    };
    // Created, on the server the record names (weight 0: never scheduled), active.
    let a = record(Tcp, 40000, 80, (RS2, 80), Nat);
    install(&mut ws, &end, a);
    let s = snapshot(&ws[0]);
    assert_eq!((s.sync_installed, s.conns_created), (1, 0));
    let c = *ws[0].lb().unwrap().conns().iter().next().expect("installed").1;
    assert_eq!((c.server, c.state, c.flags), (RS2, ConnState::Tcp(TcpState::Established), ConnFlags::SYNCED));
    let left = c.expires_in_ns(t);
    assert!((60 * SEC..=60 * SEC + TICK_NS).contains(&left), "{left}");
    let st = server_stats(&shared, 0, 1);
    assert_eq!((st.active_conns, st.inactive_conns, st.conns), (1, 0, 1));
    assert_eq!(service_stats(&shared, 0).active_conns, 1);
    // Updated: no second entry, the counts move as on a state change.
    let mut fin = a;
    fin.state = ConnState::Tcp(TcpState::FinWait);
    fin.flags = ConnFlags::REPLY_SEEN.bits();
    fin.expires_in_ms = 10_000;
    install(&mut ws, &end, fin);
    assert_eq!(snapshot(&ws[0]).sync_updated, 1);
    assert_eq!(conn_count(&ws[0]), 1);
    let c = *ws[0].lb().unwrap().conns().iter().next().unwrap().1;
    assert_eq!((c.state, c.flags), (fin.state, ConnFlags::REPLY_SEEN | ConnFlags::SYNCED));
    assert!(c.expires_in_ns(t) <= 10 * SEC + TICK_NS);
    let st = server_stats(&shared, 0, 1);
    assert_eq!((st.active_conns, st.inactive_conns, st.conns), (0, 1, 1));
    assert_eq!(service_stats(&shared, 0).inactive_conns, 1);

    // Every refusal, each counted once under its own name.
    let mut v6 = record(Tcp, 40001, 80, (RS1, 80), Nat);
    v6.client = "[2001:db8::7]:40001".parse().unwrap();
    install(&mut ws, &end, v6);
    let mut invalid = record(Udp, 40002, 53, (RS3, 53), FullNat);
    invalid.state = ConnState::Tcp(TcpState::Established);
    install(&mut ws, &end, invalid);
    install(&mut ws, &end, record(Tcp, 40003, 99, (RS1, 80), Nat));
    install(&mut ws, &end, record(Tcp, 40004, 80, (RS3, 80), Nat));
    // Full-NAT: a port below the local range, an unknown local address, then one taken twice.
    let mut fnat = record(Udp, 40005, 53, (RS3, 53), FullNat);
    fnat.local = sa(LOCAL_IP, 80);
    install(&mut ws, &end, fnat);
    fnat.local = sa(Ipv4Addr::new(10, 20, 0, 99), 3000);
    install(&mut ws, &end, fnat);
    fnat.local = sa(LOCAL_IP, 3000);
    install(&mut ws, &end, fnat);
    assert_eq!(snapshot(&ws[0]).sync_installed, 2);
    let mut again = fnat;
    again.client = sa(CLIENT_IP, 40006);
    install(&mut ws, &end, again);
    // The same client port towards the same server through another service: its reply
    // tuple is the first entry's.
    install(&mut ws, &end, record(Tcp, 40000, 81, (RS2, 80), Nat));
    // Fill the table (capacity 4), then one more.
    install(&mut ws, &end, record(Tcp, 40007, 80, (RS1, 80), Nat));
    install(&mut ws, &end, record(Tcp, 40008, 80, (RS1, 80), Nat));
    assert_eq!(conn_count(&ws[0]), 4);
    install(&mut ws, &end, record(Tcp, 40009, 80, (RS1, 80), Nat));
    let s = snapshot(&ws[0]);
    assert_eq!(
        (
            s.sync_refused_family,
            s.sync_refused_invalid,
            s.sync_refused_no_service,
            s.sync_refused_no_server,
            s.sync_refused_port,
            s.sync_refused_clash,
            s.sync_refused_table_full,
        ),
        (1, 1, 1, 1, 3, 1, 1)
    );
    assert_eq!((s.sync_installed, s.sync_updated, s.sync_tx), (4, 1, 0), "installs are not echoed");
    // Installing never sends a packet.
    assert_eq!((s.tx_packets, s.local_originated), (0, 0));
    assert!(take_tx(&mut ws[0], FRONT).is_empty() && take_tx(&mut ws[0], BACK).is_empty());
    ws[0].lb().unwrap().conns().check_invariants().unwrap();
    assert!(drain(&mut end).is_empty());
}

#[test]
fn a_fullnat_install_holds_its_local_port_until_the_entry_goes() {
    let mut svc = service(1, Udp, 53, Rr, &[rs(RS1, 5353, 1, FullNat)], None);
    svc.local_addrs = vec![LOCAL_IP];
    let shared = publish(vec![svc]);
    let (mut ws, end) = synced(&shared, 1, &LbOpts::default(), 64, NO_REFRESH);
    let t = SEC;
    let mut r = record(Udp, 7000, 53, (RS1, 5353), FullNat);
    r.local = sa(LOCAL_IP, 1027);
    r.expires_in_ms = 2_000;
    end.push(0, r).unwrap();
    ws[0].poll_once(t);
    assert_eq!(snapshot(&ws[0]).sync_installed, 1);
    // The reply key is indexed (a reply would also re-arm the entry's 300 s timeout).
    let reply = FlowKey { proto: Udp, src: RS1, sport: 5353, dst: LOCAL_IP, dport: 1027 };
    assert_eq!(ws[0].lb().unwrap().conns().lookup(&reply).map(|l| l.1), Some(Direction::Reply));
    // New flows take ports in order from 1024 and skip the installed one.
    let mut ports = Vec::new();
    for cport in 8000..8010 {
        let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, cport, VIP, 53, b"q").by_client(), t);
        assert_eq!(back.len(), 1);
        ports.push(seen(&back[0]).sport);
    }
    assert_eq!(ports, vec![1024, 1025, 1026, 1028, 1029, 1030, 1031, 1032, 1033, 1034]);
    // In use: the peer cannot give it to a second connection.
    let mut other = r;
    other.client = sa(CLIENT_IP, 7001);
    end.push(0, other).unwrap();
    ws[0].poll_once(t);
    assert_eq!(snapshot(&ws[0]).sync_refused_port, 1);
    // The entry expires (2 s): its port is free again, the same install now succeeds.
    poll_all(&mut ws, t + 2 * SEC + 2 * TICK_NS);
    assert_eq!(conn_count(&ws[0]), 10);
    end.push(0, other).unwrap();
    ws[0].poll_once(t + 3 * SEC);
    let s = snapshot(&ws[0]);
    assert_eq!((s.sync_installed, s.sync_refused_port), (2, 1));
}

#[test]
fn a_dump_sends_every_entry_once_across_polls_when_the_ring_fills() {
    let shared = publish(vec![
        service(1, Udp, 53, Rr, &[rs(RS1, 53, 1, Nat)], None),
        service(1, Tcp, 80, Rr, &[rs(RS2, 80, 1, Nat)], None),
    ]);
    let (mut ws, mut end) = synced(&shared, 2, &LbOpts::default(), 8, NO_REFRESH);
    let t = SEC;
    let mut want = Vec::new();
    for cport in 6000..6030 {
        send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, cport, VIP, 53, b"q").by_client(), t);
        want.push((Udp, cport));
        drain(&mut end);
    }
    // An installed (synced) entry is dumped too.
    let r = record(Tcp, 9000, 80, (RS2, 80), Nat);
    end.push(owner_of(&r, 2), r).unwrap();
    poll_all(&mut ws, t);
    want.push((Tcp, 9000));
    assert!(drain(&mut end).is_empty());
    let g = end.request_dump();
    let mut got = Vec::new();
    let mut polls = 0;
    while !end.dump_finished(g) {
        polls += 1;
        assert!(polls < 100, "the dump never finished");
        for w in ws.iter_mut() {
            w.poll_once(t);
        }
        // Read less than the workers could send: their rings stay near full.
        end.pop(3, |_, r| match r {
            SyncRecord::Conn(c) => got.push(c),
            SyncRecord::Persist(_) => unreachable!(),
        });
    }
    assert!(polls > 3, "the dump had to wait for room ({polls} polls)");
    got.extend(drain(&mut end));
    let mut keys: Vec<(L4Proto, u16)> = got.iter().map(|r| (r.proto, r.client.port())).collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want, "every live entry exactly once");
    let lost: u64 = ws.iter().map(|w| snapshot(w).sync_lost).sum();
    assert_eq!(lost, 0, "a dump never overfills the ring");
    // A new request runs again from the start.
    let g2 = end.request_dump();
    while !end.dump_finished(g2) {
        for w in ws.iter_mut() {
            w.poll_once(t);
        }
        drain(&mut end);
    }
}

#[test]
fn the_refresh_leaves_synced_entries_alone_until_a_local_packet() {
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None),
        service(1, Udp, 53, Rr, &[rs(RS2, 53, 1, Nat)], None),
    ]);
    let opts = LbOpts { conn_capacity: 16, ..LbOpts::default() };
    let (mut ws, mut end) = synced(&shared, 1, &opts, 256, SyncOptions { refresh: Duration::from_secs(1) });
    let mut t = SEC;
    let installed = record(Tcp, 40000, 80, (RS1, 80), Nat);
    end.push(0, installed).unwrap();
    send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, 5000, VIP, 53, b"q").by_client(), t);
    assert_eq!(drain(&mut end).len(), 1, "the local flow's creation");
    let refreshed = |ws: &mut Vec<MemWorker>, end: &mut SyncEnd, t: &mut u64| {
        let mut seen = BTreeMap::new();
        for _ in 0..12 {
            *t += SEC / 10;
            ws[0].poll_once(*t);
            for r in drain(end) {
                *seen.entry(r.client.port()).or_insert(0) += 1;
            }
        }
        seen
    };
    let seen = refreshed(&mut ws, &mut end, &mut t);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![5000], "the peer's entry is not echoed: {seen:?}");
    assert!((1..=2).contains(&seen[&5000]), "once per period: {seen:?}");
    // A packet of the installed flow here makes it ours: refreshed from then on.
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, ACK).by_client(), t);
    assert_eq!(back.len(), 1, "the installed flow is forwarded");
    assert!(drain(&mut end).is_empty(), "no state change, nothing sent at once");
    let seen = refreshed(&mut ws, &mut end, &mut t);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![5000, 40000], "{seen:?}");
    let c = *ws[0].lb().unwrap().conns().iter().find(|(_, c)| c.cport == 40000).unwrap().1;
    assert!(!c.flags.contains(ConnFlags::SYNCED));
}

#[test]
fn a_backup_installs_and_dumps_like_a_master() {
    let shared = publish(vec![service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None)]);
    let roles = Arc::new(HaRoles::new(1, [(IpAddr::V4(VIP), HaGroup(0))]).unwrap());
    let (ha, _ha_end) = ha_links(1, 4);
    let (links, mut end) = sync_links(1, 16);
    let mut ws = vec![lb_worker(&shared)
        .with_ha(ha.into_iter().next().unwrap(), Arc::clone(&roles))
        .with_sync(links.into_iter().next().unwrap(), NO_REFRESH)];
    assert!(!roles.is_master(HaGroup(0)));
    let r = record(Tcp, 40000, 80, (RS1, 80), Nat);
    end.push(0, r).unwrap();
    ws[0].poll_once(SEC);
    assert_eq!(snapshot(&ws[0]).sync_installed, 1);
    // Still backup: the flow's packets are not forwarded here...
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, ACK).by_client(), SEC);
    assert!(back.is_empty());
    // ...until the node takes over, without any new SYN.
    roles.set_master(HaGroup(0), true);
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, 40000, VIP, 80, ACK).by_client(), SEC);
    assert_eq!(back.len(), 1, "the installed connection carries the flow");
    let g = end.request_dump();
    ws[0].poll_once(SEC);
    assert!(end.dump_finished(g));
    assert_eq!(drain(&mut end).iter().map(|r| r.client).collect::<Vec<_>>(), vec![r.client]);
}

#[test]
fn a_worker_without_an_engine_refuses_records_and_finishes_dumps() {
    let (links, end) = sync_links(1, 4);
    let mut w = lab_worker().with_sync(links.into_iter().next().unwrap(), SyncOptions::default());
    end.push(0, record(Tcp, 1, 80, (RS1, 80), Nat)).unwrap();
    let g = end.request_dump();
    w.poll_once(SEC);
    assert!(end.dump_finished(g));
    assert_eq!(snapshot(&w).sync_refused_no_service, 1);
}

/// A persistent service over `servers` (in that order), for one worker.
fn persistent(servers: &[Rs]) -> Service {
    service(1, Tcp, 80, Rr, servers, Some(Arc::new(PersistTable::new(256, 300, Ipv4Addr::new(255, 255, 255, 0)))))
}

#[test]
fn persistence_entries_move_between_services_by_server_address() {
    let master = publish(vec![persistent(&[rs(RS1, 80, 1, Nat), rs(RS2, 80, 1, Nat), rs(RS3, 80, 1, Nat)])]);
    let mut ws = vec![lb_worker(&master)];
    let t = 100 * SEC;
    for (i, client) in [CLIENT_IP, FAR_CLIENT, Ipv4Addr::new(192, 0, 2, 200)].into_iter().enumerate() {
        send_to(&mut ws, 0, FRONT, &Seg::tcp(client, 40000, VIP, 80, SYN).by_client(), t + i as u64 * SEC);
    }
    let now_s = persist_now_s(t + 10 * SEC);
    let recs: Vec<_> = master.load().services()[0].persist_records(now_s).collect();
    assert_eq!(recs.len(), 2, "two client networks: {recs:?}");
    // The backup lists its servers in another order: records go by address, not index.
    let backup = publish(vec![persistent(&[rs(RS3, 80, 1, Nat), rs(RS2, 80, 1, Nat), rs(RS1, 80, 1, Nat)])]);
    for r in &recs {
        backup.load().install_persist(r, now_s).unwrap();
    }
    let mut a = recs.clone();
    let mut b: Vec<_> = backup.load().services()[0].persist_records(now_s).collect();
    a.sort_by_key(|r| r.client);
    b.sort_by_key(|r| r.client);
    assert_eq!(a, b);
    // A client of a persisted network goes where the master sent it, without scheduling.
    let mut bw = vec![lb_worker(&backup)];
    let far = recs.iter().find(|r| r.client == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0))).unwrap();
    let (_, back) = send_to(
        &mut bw,
        0,
        FRONT,
        &Seg::tcp(Ipv4Addr::new(192, 0, 2, 9), 41000, VIP, 80, SYN).by_client(),
        t + 11 * SEC,
    );
    assert_eq!(SocketAddr::new(IpAddr::V4(seen(&back[0]).dst), seen(&back[0]).dport), far.server);
    // Refusals.
    let mut r = recs[0];
    r.server = sa(Ipv4Addr::new(10, 20, 0, 99), 80);
    assert_eq!(backup.load().install_persist(&r, now_s), Err(PersistRefused::NoServer));
    r.vip = sa(VIP, 81);
    assert_eq!(backup.load().install_persist(&r, now_s), Err(PersistRefused::NoService));
    r.client = "2001:db8::".parse().unwrap();
    assert_eq!(backup.load().services()[0].install_persist(&r, now_s), Err(PersistRefused::Family));
    let plain = publish(vec![service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None)]);
    assert_eq!(plain.load().install_persist(&recs[0], now_s), Err(PersistRefused::NotPersistent));
    assert_eq!(plain.load().services()[0].persist_records(now_s).count(), 0);
}

// ---- a master's table, dumped and installed on a backup ----

const MODES: [ForwardMode; 4] = [Dr, Nat, FullNat, Tunnel];

/// One service per (protocol, mode): port 80 + mode index, two servers each.
fn all_modes(workers: usize) -> Vec<Service> {
    let mut v = Vec::new();
    for proto in [Tcp, Udp] {
        for (i, &m) in MODES.iter().enumerate() {
            let vport = 80 + i as u16;
            let sport = if matches!(m, Nat | FullNat) { 8000 + vport } else { vport };
            v.push(service(workers, proto, vport, Rr, &[rs(RS1, sport, 1, m), rs(RS2, sport, 1, m)], None));
        }
    }
    v
}

/// What must match between master and backup for one connection.
type ConnView = (ConnState, u16, Ipv4Addr, u16, Ipv4Addr, u16, ForwardMode, u64);

fn table_of(ws: &[MemWorker], now: u64) -> HashMap<(L4Proto, Ipv4Addr, u16, u16), (usize, ConnView)> {
    let mut out = HashMap::new();
    for (i, w) in ws.iter().enumerate() {
        let conns = w.lb().unwrap().conns();
        conns.check_invariants().unwrap();
        for (_, c) in conns.iter() {
            let flags = c.flags.bits() & !ConnFlags::SYNCED.bits();
            let view = (c.state, flags, c.server, c.sport, c.local, c.lport, c.forward, c.expires_in_ns(now));
            assert!(out.insert((c.proto, c.client, c.cport, c.vport), (i, view)).is_none());
        }
    }
    out
}

/// One flow of the random table: protocol, service (mode), client port, and how far
/// the TCP exchange goes (0: SYN only, 1: + server's SYN+ACK, 2: + client ACK, 3: + FIN,
/// 4: + RST), created `at` seconds in.
#[derive(Debug, Clone)]
struct Flow {
    udp: bool,
    mode: usize,
    cport: u16,
    steps: u8,
    at: u8,
}

fn flows() -> impl Strategy<Value = Vec<Flow>> {
    prop::collection::vec(
        (any::<bool>(), 0..4usize, 1024..65535u16, 0..5u8, 0..60u8).prop_map(|(udp, mode, cport, steps, at)| Flow {
            udp,
            mode,
            cport,
            steps,
            at,
        }),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random connections of every mode, TCP states and UDP, on a two-worker master;
    /// dumped, each record pushed to its owner on a two-worker backup with the same
    /// services: the backup's table is the master's (keys, state, flags but SYNCED,
    /// server, local address and port, mode, expiry within a wheel tick), and so are
    /// the servers' connection counts.
    #[test]
    fn a_dumped_table_installs_identically_on_a_backup(flows in flows()) {
        let n = 2;
        let master = publish(all_modes(n));
        let (mut ms, mut mend) = synced(&master, n, &LbOpts::default(), 64, NO_REFRESH);
        let mut flows = flows;
        flows.sort_by_key(|f| f.at);
        let mut used = std::collections::HashSet::new();
        for f in &flows {
            if !used.insert((f.udp, f.cport)) {
                continue;
            }
            let t = SEC + u64::from(f.at) * SEC;
            let vport = 80 + f.mode as u16;
            if f.udp {
                send_to(&mut ms, 0, FRONT, &Seg::udp(CLIENT_IP, f.cport, VIP, vport, b"q").by_client(), t);
                drain(&mut mend);
                continue;
            }
            send_to(&mut ms, 0, FRONT, &Seg::tcp(CLIENT_IP, f.cport, VIP, vport, SYN).by_client(), t);
            let c = ms.iter().find_map(|w| {
                w.lb().unwrap().conns().iter().map(|(_, c)| *c).find(|c| c.proto == Tcp && c.cport == f.cport)
            });
            let Some(c) = c else { continue };
            if f.steps >= 1 && matches!(MODES[f.mode], Nat | FullNat) {
                let reply = Seg::tcp(c.server, c.sport, c.local, c.lport, SYN | ACK).by_server(server_mac(c.server));
                send_to(&mut ms, 1, BACK, &reply, t);
            }
            for (step, flags) in [(2, ACK), (3, FIN | ACK), (4, RST)] {
                if f.steps >= step {
                    send_to(&mut ms, 0, FRONT, &Seg::tcp(CLIENT_IP, f.cport, VIP, vport, flags).by_client(), t);
                }
            }
            drain(&mut mend);
        }
        let now = 62 * SEC;
        poll_all(&mut ms, now);
        drain(&mut mend);
        let g = mend.request_dump();
        let mut recs = Vec::new();
        while !mend.dump_finished(g) {
            for w in ms.iter_mut() {
                w.poll_once(now);
            }
            recs.extend(drain(&mut mend));
        }
        recs.extend(drain(&mut mend));

        let backup = publish(all_modes(n));
        let (mut bs, bend) = synced(&backup, n, &LbOpts::default(), 64, NO_REFRESH);
        for r in &recs {
            let owner = owner_of(r, n);
            while bend.push(owner, *r).is_err() {
                poll_all(&mut bs, now);
            }
        }
        poll_all(&mut bs, now);
        poll_all(&mut bs, now);
        let installed: u64 = bs.iter().map(|w| snapshot(w).sync_installed).sum();
        prop_assert_eq!(installed as usize, recs.len());

        let want = table_of(&ms, now);
        let got = table_of(&bs, now);
        prop_assert_eq!(want.len(), got.len());
        for (k, (wi, w)) in &want {
            let Some((gi, g)) = got.get(k) else { return Err(TestCaseError::fail(format!("{k:?} missing"))) };
            prop_assert_eq!(wi, gi, "same owner worker");
            prop_assert_eq!((w.0, w.1, w.2, w.3, w.4, w.5, w.6), (g.0, g.1, g.2, g.3, g.4, g.5, g.6), "{:?}", k);
            prop_assert!(g.7 >= w.7 && g.7 <= w.7 + TICK_NS, "{:?}: expiry {} vs {}", k, g.7, w.7);
        }
        for svc in 0..8u32 {
            for srv in 0..2 {
                let (a, b) = (server_stats(&master, svc, srv), server_stats(&backup, svc, srv));
                prop_assert_eq!((a.active_conns, a.inactive_conns), (b.active_conns, b.inactive_conns));
            }
        }
    }
}
