//! IPv6 flows under HA, through whole in-memory workers.
//!
//! Connection sync: records out when an IPv6 connection is created or changes state,
//! installs into the peer's IPv6 table on the worker that owns the flow (which then
//! forwards mid-flow packets to the same server without scheduling), the refresh and the
//! dump over both tables, expiry of installed entries, every refusal counted, and the
//! listing of IPv6 connections. An IPv6 tunnel record is installed and its flow tunnelled
//! on to the same server.
//!
//! IPv6 Full-NAT: the record carries the IPv6 local address and port; the peer installs it
//! on the owner, reserves the port (its own new flows never get it), and after a takeover
//! forwards the flow from the same local address and port without a second TOA.
//! NAT64 likewise, with its IPv4 local address and port and IPv4 server in the record.
//!
//! VRRP roles: an IPv6 VIP of a backup instance gets no neighbour advertisement (solicited,
//! at start, or when added live) and its traffic is not forwarded (`ha_backup`); as master
//! it is answered, forwarded and announced. An IPv6 Full-NAT local address in an instance
//! likewise: not answered, announced or taking replies while backup. An IPv6 floating
//! address (a NAT66 gateway on the back prefix) gets neighbour advertisements and echo
//! replies on its port only while master, and so does an instance's virtual link-local
//! address on the instance's port. VRRP over IPv6 (next header 112 to ff02::12 at
//! 33:33:00:00:00:12) is punted to the control plane with its port.
//!
//! Packets are built here byte by byte (`common::ip6`), independently of
//! `rvs_dataplane::wire`.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::ip6::*;
use common::l4::{assert_accounting_all, poll_all, publish, rs, send_to, server_stats, service, LbOpts, ACK, FIN, SYN};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::conn::{lport_owner, ConnFlags, TICK_NS};
use rvs_dataplane::control::ConnFilter;
use rvs_dataplane::ha::{ha_links, HaEnd, HaGroup, HaRoles};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::sync::{owner_of, sync_links, ConnRecord, SynProxyRecord, SyncEnd, SyncOptions, SyncRecord};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, SchedulerKind, ServiceKey, TcpState};

use ForwardMode::{Dr, FullNat, Nat, Tunnel};
use L4Proto::{Tcp, Udp};

const NO_REFRESH: SyncOptions = SyncOptions { refresh: Duration::ZERO };
const CLIENT6: &str = "2001:db8:10::2";
/// A second IPv6 VIP of the VRRP instance, added live by the HA test.
const VIP6_B: &str = "2001:db8:10::101";
const RS6: [&str; 2] = ["2001:db8:20::11", "2001:db8:20::12"];
const RS6_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x05, 0x11], [0x02, 0, 0, 0, 0x05, 0x12]];
/// The IPv6 Full-NAT local address of the workers' back port and of service 4.
const LOCAL6: &str = "2001:db8:20::200";
/// Service 4's port: TCP, Full-NAT to the servers' port 80.
const FNAT_PORT: u16 = 9090;
/// Service 5's port: TCP, IPv6-in-IPv6 tunnel to the servers' port 80.
const TUNNEL_PORT: u16 = 7070;

// ---- packets ----

/// [`common::ip6::pkt`] with hop limit 64 carrying `sync v6`.
fn pkt(proto: L4Proto, src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8) -> Vec<u8> {
    common::ip6::pkt(proto, src, dst, flags, 64, b"sync v6")
}

/// The client's packet of port `cport` to the VIP's `vport`.
fn to_vip(proto: L4Proto, cport: u16, vport: u16, flags: u8) -> Vec<u8> {
    eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt(proto, (a(CLIENT6), cport), (a(VIP6), vport), flags))
}

/// Server `rs`'s reply from `sport` to the client's `cport`.
fn from_server(rs: usize, sport: u16, cport: u16, flags: u8) -> Vec<u8> {
    eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &pkt(Tcp, (a(RS6[rs]), sport), (a(CLIENT6), cport), flags))
}

/// Server `rs`'s Full-NAT reply from port 80 to the local address's `lport`.
fn to_local(rs: usize, lport: u16, flags: u8) -> Vec<u8> {
    eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &pkt(Tcp, (a(RS6[rs]), 80), (a(LOCAL6), lport), flags))
}

// ---- services and workers ----

/// Services 0: TCP 80 DR (rr over both servers); 1: TCP 8080 NAT66 to port 80; 2: UDP 53
/// NAT66 to 5353; 3: an IPv4 TCP 80 NAT service (the IPv4 table beside the IPv6 one);
/// 4: TCP [`FNAT_PORT`] IPv6 Full-NAT to port 80 from [`LOCAL6`]; 5: TCP [`TUNNEL_PORT`]
/// IPv6-in-IPv6 tunnel to port 80.
fn services(workers: usize) -> SharedServices {
    publish(service_list(workers))
}

/// The services of [`services`].
fn service_list(workers: usize) -> Vec<Service> {
    let both = |port, fwd| RS6.iter().map(|s| server6(s, port, fwd, workers)).collect::<Vec<_>>();
    let v4 = service(workers, Tcp, 80, SchedulerKind::Rr, &[rs(common::l4::RS1, 80, 1, Nat)], None);
    let mut fnat = service6(workers, Tcp, FNAT_PORT, both(80, FullNat));
    fnat.local_addrs6 = vec![a(LOCAL6)];
    vec![
        service6(workers, Tcp, 80, both(80, Dr)),
        service6(workers, Tcp, 8080, both(80, Nat)),
        service6(workers, Udp, 53, both(5353, Nat)),
        v4,
        fnat,
        service6(workers, Tcp, TUNNEL_PORT, both(80, Tunnel)),
    ]
}

/// `n` workers with IPv6 addresses on both ports ([`LOCAL6`] as IPv6 Full-NAT local
/// address on the back one) and sync links, the client and both servers learned.
fn workers6(shared: &SharedServices, n: usize, capacity: usize, o: SyncOptions) -> (Vec<MemWorker>, SyncEnd) {
    let (ws, end, _) = workers6_ha(shared, n, capacity, o, None);
    (ws, end)
}

/// [`workers6`] under VRRP `roles`, if given.
fn workers6_ha(
    shared: &SharedServices,
    n: usize,
    capacity: usize,
    o: SyncOptions,
    roles: Option<Arc<HaRoles>>,
) -> (Vec<MemWorker>, SyncEnd, HaEnd) {
    let opts = LbOpts { conn_capacity: capacity, ..LbOpts::default() };
    let (links, end) = sync_links(n, 256);
    let mut links = links.into_iter();
    let (has, ha_end) = ha_links(n, 16);
    let mut has = has.into_iter();
    let mut learn = vec![neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
    learn.extend(RS6.iter().zip(RS6_MAC).map(|(s, mac)| neighbour6(s, mac, BACK)));
    let ws = common::workers6::workers6(shared, n, &opts, &[a(LOCAL6)], &learn, |_, w| {
        let w = match &roles {
            Some(r) => w.with_ha(has.next().expect("one link per worker"), Arc::clone(r)),
            None => w,
        };
        w.with_sync(links.next().expect("one sync link per worker"), o)
    });
    (ws, end, ha_end)
}

fn drain(end: &mut SyncEnd) -> Vec<ConnRecord> {
    let mut out = Vec::new();
    end.pop(usize::MAX, |_, r| match r {
        SyncRecord::Conn(c) => out.push(c),
        SyncRecord::Persist(p) => panic!("workers send no persistence records: {p:?}"),
    });
    out
}

fn sa6(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(a(s)), port)
}

fn conns6(ws: &[MemWorker]) -> usize {
    ws.iter().map(|w| w.lb().unwrap().conns6().len()).sum()
}

/// An established NAT66 record of client port `cport` to service 8080 on server `rs`.
fn record6(cport: u16, rs: usize) -> ConnRecord {
    ConnRecord {
        proto: Tcp,
        forward: Nat,
        client: sa6(CLIENT6, cport),
        vip: sa6(VIP6, 8080),
        local: sa6(CLIENT6, cport),
        server: sa6(RS6[rs], 80),
        state: ConnState::Tcp(TcpState::Established),
        flags: (ConnFlags::SYN_ACK_SEEN | ConnFlags::REPLY_SEEN).bits(),
        expires_in_ms: 60_000,
        synproxy: None,
    }
}

#[test]
fn ipv6_connections_are_sent_when_created_and_when_their_state_changes() {
    let shared = services(1);
    let (mut ws, mut end) = workers6(&shared, 1, 1024, NO_REFRESH);
    send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 40000, 8080, SYN), SEC);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].proto, r[0].forward), (Tcp, Nat));
    assert_eq!((r[0].client, r[0].vip), (sa6(CLIENT6, 40000), sa6(VIP6, 8080)));
    assert_eq!((r[0].local, r[0].server), (sa6(CLIENT6, 40000), sa6(RS6[0], 80)));
    assert_eq!(r[0].state, ConnState::Tcp(TcpState::SynRecv));
    assert_eq!(r[0].expires_in_ms / 1000, 60, "SYN_RECV's timeout");
    // The SYN-ACK changes no state: nothing; the client's ACK does, with the flags.
    send_to(&mut ws, 0, BACK, &from_server(0, 80, 40000, SYN | ACK), SEC);
    assert!(drain(&mut end).is_empty());
    send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 40000, 8080, ACK), SEC);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].state, ConnState::Tcp(TcpState::Established));
    assert_eq!(ConnFlags::from_bits(r[0].flags), ConnFlags::SYN_ACK_SEEN | ConnFlags::REPLY_SEEN);
    // Established segments send nothing; the server's FIN (a reply) changes the state.
    send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 40000, 8080, ACK), SEC);
    assert!(drain(&mut end).is_empty());
    send_to(&mut ws, 0, BACK, &from_server(0, 80, 40000, FIN | ACK), SEC);
    let r = drain(&mut end);
    assert_eq!(r.len(), 1, "the reply's state change is sent");
    assert_ne!(r[0].state, ConnState::Tcp(TcpState::Established));
    // DR and UDP: their creation.
    send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 40001, 80, SYN), SEC);
    send_to(&mut ws, 0, FRONT, &to_vip(Udp, 5000, 53, 0), SEC);
    send_to(&mut ws, 0, FRONT, &to_vip(Udp, 5000, 53, 0), SEC);
    let r = drain(&mut end);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].forward, r[0].server), (Dr, sa6(RS6[0], 80)));
    assert_eq!((r[1].state, r[1].server.port()), (ConnState::Udp, 5353));
    let s = snapshot(&ws[0]);
    assert_eq!((s.sync_tx, s.sync_lost), (5, 0));
    assert_accounting_all(&ws);
}

#[test]
fn a_peer_installs_ipv6_records_on_the_owner_and_carries_the_flows_on() {
    let (master_svcs, backup_svcs) = (services(2), services(2));
    let (mut master, mut mend) = workers6(&master_svcs, 2, 1024, NO_REFRESH);
    let (mut backup, bend) = workers6(&backup_svcs, 2, 1024, NO_REFRESH);
    // 16 NAT66 flows through the master, handshakes completed.
    let mut server_of = Vec::new();
    for cport in 41000u16..41016 {
        let (_, back) = send_to(&mut master, 0, FRONT, &to_vip(Tcp, cport, 8080, SYN), SEC);
        assert_eq!(back.len(), 1);
        let rs = usize::from(back[0][..6] != RS6_MAC[0]);
        server_of.push(rs);
        send_to(&mut master, 1, BACK, &from_server(rs, 80, cport, SYN | ACK), SEC);
        send_to(&mut master, 0, FRONT, &to_vip(Tcp, cport, 8080, ACK), SEC);
    }
    // The control plane carries the records to each one's owner on the backup.
    let records = drain(&mut mend);
    assert_eq!(records.len(), 32, "a record at SYN and at ESTABLISHED per flow");
    for r in &records {
        bend.push(owner_of(r, 2), *r).expect("room");
    }
    poll_all(&mut backup, 2 * SEC);
    let installed: u64 = backup.iter().map(|w| snapshot(w).sync_installed).sum();
    let updated: u64 = backup.iter().map(|w| snapshot(w).sync_updated).sum();
    assert_eq!((installed, updated), (16, 16));
    assert_eq!(conns6(&backup), 16);
    for (i, w) in backup.iter().enumerate() {
        for (_, c) in w.lb().unwrap().conns6().iter() {
            assert_eq!(owner_of(&ConnRecord::from_conn(c, 0), 2), i, "held by the flow's owner");
            assert_eq!(c.state, ConnState::Tcp(TcpState::Established));
            assert!(c.flags.contains(ConnFlags::SYNCED));
        }
        w.lb().unwrap().conns6().check_invariants().unwrap();
    }
    // The server counts follow (service 1, both servers).
    let held: u64 = (0..2).map(|j| server_stats(&backup_svcs, 1, j).active_conns).sum();
    assert_eq!(held, 16);
    // After a takeover, every flow's next segment (no SYN: `unknown_flow` is "drop") goes
    // to the master's server, and replies are translated back; nothing is scheduled.
    for (k, cport) in (41000u16..41016).enumerate() {
        let (_, back) = send_to(&mut backup, 0, FRONT, &to_vip(Tcp, cport, 8080, ACK), 3 * SEC);
        assert_eq!(back.len(), 1, "flow {cport}");
        assert_eq!(&back[0][..6], &RS6_MAC[server_of[k]], "flow {cport} on its server");
        assert_eq!(&back[0][14 + 24..14 + 40], &a(RS6[server_of[k]]).octets());
        let (front, _) = send_to(&mut backup, 1, BACK, &from_server(server_of[k], 80, cport, ACK), 3 * SEC);
        assert_eq!(front.len(), 1, "reply of flow {cport}");
        assert_eq!(&front[0][14 + 8..14 + 24], &a(VIP6).octets());
    }
    let created: u64 = backup.iter().map(|w| snapshot(w).conns_created).sum();
    assert_eq!(created, 0, "nothing rescheduled");
    // Touched by packets here, the entries are this node's again (the refresh sends them).
    assert!(backup.iter().all(|w| w.lb().unwrap().conns6().iter().all(|(_, c)| !c.flags.contains(ConnFlags::SYNCED))));
    assert_accounting_all(&backup);
}

/// The source port of the TCP segment or UDP datagram in IPv6 frame `f` (no extension
/// header), and its destination port.
fn ports_of(f: &[u8]) -> (u16, u16) {
    (u16::from_be_bytes([f[54], f[55]]), u16::from_be_bytes([f[56], f[57]]))
}

#[test]
fn ipv6_fullnat_connections_sync_with_their_local_port() {
    let (master_svcs, backup_svcs) = (services(2), services(2));
    let (mut master, mut mend) = workers6(&master_svcs, 2, 1024, NO_REFRESH);
    let (mut backup, bend) = workers6(&backup_svcs, 2, 1024, NO_REFRESH);
    // 16 Full-NAT flows through the master, handshakes completed: (client port, server,
    // local port).
    let mut flows = Vec::new();
    for cport in 48000u16..48016 {
        let (_, back) = send_to(&mut master, 0, FRONT, &to_vip(Tcp, cport, FNAT_PORT, SYN), SEC);
        assert_eq!(back.len(), 1, "flow {cport}: its SYN to a server");
        assert_eq!(&back[0][14 + 8..14 + 24], &a(LOCAL6).octets(), "from the local address");
        let lport = ports_of(&back[0]).0;
        let rs = usize::from(back[0][..6] != RS6_MAC[0]);
        let (front, _) = send_to(&mut master, 1, BACK, &to_local(rs, lport, SYN | ACK), SEC);
        assert_eq!(front.len(), 1, "flow {cport}: the SYN-ACK to the client");
        send_to(&mut master, 0, FRONT, &to_vip(Tcp, cport, FNAT_PORT, ACK), SEC);
        flows.push((cport, rs, lport));
    }
    // Each record carries the local address and port; TOA_PENDING until the client
    // segment that carried the TOA for the last time (the handshake's ACK).
    let records = drain(&mut mend);
    assert_eq!(records.len(), 32, "a record at SYN and at ESTABLISHED per flow");
    for r in &records {
        let &(_, rs, lport) = flows.iter().find(|f| f.0 == r.client.port()).expect("one of the flows");
        assert_eq!((r.forward, r.local, r.server), (FullNat, sa6(LOCAL6, lport), sa6(RS6[rs], 80)), "{r:?}");
        let syn = r.state == ConnState::Tcp(TcpState::SynRecv);
        assert_eq!(ConnFlags::from_bits(r.flags).contains(ConnFlags::TOA_PENDING), syn, "{r:?}");
        bend.push(owner_of(r, 2), *r).expect("room");
    }
    poll_all(&mut backup, 2 * SEC);
    let installed: u64 = backup.iter().map(|w| snapshot(w).sync_installed).sum();
    let updated: u64 = backup.iter().map(|w| snapshot(w).sync_updated).sum();
    assert_eq!((installed, updated), (16, 16));
    for (i, w) in backup.iter().enumerate() {
        for (_, c) in w.lb().unwrap().conns6().iter() {
            assert_eq!(owner_of(&ConnRecord::from_conn(c, 0), 2), i, "held by the flow's owner");
            assert_eq!((c.local, lport_owner(c.lport, 2)), (a(LOCAL6), i), "its local port is the holder's");
            assert!(c.flags.contains(ConnFlags::SYNCED) && !c.flags.contains(ConnFlags::TOA_PENDING));
        }
        w.lb().unwrap().conns6().check_invariants().unwrap();
    }
    // The backup's own new flows never get a port a synced flow holds.
    let synced: std::collections::BTreeSet<u16> = flows.iter().map(|f| f.2).collect();
    let mut own = std::collections::BTreeSet::new();
    for cport in 49000u16..49016 {
        let (_, back) = send_to(&mut backup, 0, FRONT, &to_vip(Tcp, cport, FNAT_PORT, SYN), 3 * SEC);
        assert_eq!(back.len(), 1, "new flow {cport}");
        let lport = ports_of(&back[0]).0;
        assert!(!synced.contains(&lport), "new flow {cport} got {lport}, held by a synced flow: {synced:?}");
        assert!(own.insert(lport), "{lport} handed out twice");
    }
    let created_before: u64 = backup.iter().map(|w| snapshot(w).conns_created).sum();
    assert_eq!(created_before, 16, "only the new flows were scheduled");
    // After a takeover, every synced flow goes on from the same local address and port to
    // the same server, without a second TOA, and its replies reach the client from the VIP.
    for &(cport, rs, lport) in &flows {
        let (_, back) = send_to(&mut backup, 0, FRONT, &to_vip(Tcp, cport, FNAT_PORT, ACK), 4 * SEC);
        assert_eq!(back.len(), 1, "flow {cport}");
        let f = &back[0];
        assert_eq!(&f[..6], &RS6_MAC[rs], "flow {cport} on its server");
        assert_eq!((&f[14 + 8..14 + 24], &f[14 + 24..14 + 40]), (&a(LOCAL6).octets()[..], &a(RS6[rs]).octets()[..]));
        assert_eq!(ports_of(f), (lport, 80), "flow {cport} from its local port");
        assert_eq!(f[54 + 12] >> 4, 5, "flow {cport}: no TOA after the handshake");
        let (front, _) = send_to(&mut backup, 1, BACK, &to_local(rs, lport, ACK), 4 * SEC);
        assert_eq!(front.len(), 1, "reply of flow {cport}");
        let g = &front[0];
        assert_eq!((&g[14 + 8..14 + 24], &g[14 + 24..14 + 40]), (&a(VIP6).octets()[..], &a(CLIENT6).octets()[..]));
        assert_eq!(ports_of(g), (FNAT_PORT, cport));
    }
    let created: u64 = backup.iter().map(|w| snapshot(w).conns_created).sum();
    assert_eq!(created, created_before, "nothing rescheduled");
    // Refused as `sync_refused_port`: a local port of another worker than the flow's
    // owner, and one another flow holds.
    let refused_before: u64 = backup.iter().map(|w| snapshot(w).sync_refused_port).sum();
    let mut r = records[1];
    r.client.set_port(50000);
    let owner = owner_of(&r, 2);
    let other = (1024u16..).find(|p| lport_owner(*p, 2) != owner).unwrap();
    r.local.set_port(other);
    bend.push(owner, r).unwrap();
    let mut taken = r;
    let held = (1024u16..).find(|p| lport_owner(*p, 2) == owner && synced.contains(p)).unwrap();
    taken.local.set_port(held);
    bend.push(owner, taken).unwrap();
    poll_all(&mut backup, 5 * SEC);
    let refused: u64 = backup.iter().map(|w| snapshot(w).sync_refused_port).sum();
    assert_eq!(refused - refused_before, 2);
    assert_accounting_all(&backup);
    assert_accounting_all(&master);
}

/// The NAT64 service of [`nat64_services`]: TCP [VIP6]:6464 on the IPv4 servers' 8080.
const NAT64_PORT: u16 = 6464;
const RS4: [std::net::Ipv4Addr; 2] = [common::l4::RS1, common::l4::RS2];
const RS4_MAC: [[u8; 6]; 2] = [common::l4::RS1_MAC, common::l4::RS2_MAC];

/// [`services`] and a NAT64 service: TCP [VIP6]:[`NAT64_PORT`] through Full-NAT from
/// the IPv4 local address to the IPv4 servers' port 8080.
fn nat64_services(workers: usize) -> SharedServices {
    let servers = RS4
        .iter()
        .map(|&s| RealServer {
            addr: s.into(),
            port: 8080,
            weight: 1,
            forward: FullNat,
            upper: 0,
            lower: 0,
            stats: Arc::new(ServerStats::new(workers)),
        })
        .collect();
    let mut nat64 = service6(workers, Tcp, NAT64_PORT, servers);
    nat64.local_addrs = vec![LOCAL_IP];
    let mut list = service_list(workers);
    list.push(nat64);
    publish(list)
}

/// Server `rs`'s NAT64 reply (IPv4, TCP from 8080) to the IPv4 local address's `lport`.
fn to_local4(rs: usize, lport: u16, flags: u8) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&8080u16.to_be_bytes());
    s.extend_from_slice(&lport.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(b"sync 64");
    let c = common::l4::l4_csum(RS4[rs], LOCAL_IP, 6, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    eth(BACK_MAC, RS4_MAC[rs], ETH_IPV4, &ipv4(Ip::new(RS4[rs], LOCAL_IP, 6), &s))
}

#[test]
fn nat64_connections_sync_with_their_ipv4_local_port() {
    let (master_svcs, backup_svcs) = (nat64_services(2), nat64_services(2));
    let (mut master, mut mend) = workers6(&master_svcs, 2, 1024, NO_REFRESH);
    let (mut backup, bend) = workers6(&backup_svcs, 2, 1024, NO_REFRESH);
    let v4 = |a: std::net::Ipv4Addr, port: u16| SocketAddr::new(IpAddr::V4(a), port);
    // 8 NAT64 flows through the master, handshakes completed: (client port, server,
    // IPv4 local port).
    let mut flows = Vec::new();
    for cport in 46000u16..46008 {
        let (_, back) = send_to(&mut master, 0, FRONT, &to_vip(Tcp, cport, NAT64_PORT, SYN), SEC);
        assert_eq!(back.len(), 1, "flow {cport}: its SYN to a server");
        let f = &back[0];
        assert_eq!(&f[14 + 12..14 + 16], &LOCAL_IP.octets(), "from the IPv4 local address");
        let lport = u16::from_be_bytes([f[34], f[35]]);
        let rs = usize::from(f[..6] != RS4_MAC[0]);
        let (front, _) = send_to(&mut master, 1, BACK, &to_local4(rs, lport, SYN | ACK), SEC);
        assert_eq!(front.len(), 1, "flow {cport}: the SYN-ACK to the client");
        send_to(&mut master, 0, FRONT, &to_vip(Tcp, cport, NAT64_PORT, ACK), SEC);
        flows.push((cport, rs, lport));
    }
    // Each record: the IPv6 client and VIP, the IPv4 local address and port and server.
    let records = drain(&mut mend);
    assert_eq!(records.len(), 16, "a record at SYN and at ESTABLISHED per flow");
    for r in &records {
        let &(_, rs, lport) = flows.iter().find(|f| f.0 == r.client.port()).expect("one of the flows");
        assert_eq!(
            (r.forward, r.vip, r.local, r.server),
            (FullNat, sa6(VIP6, NAT64_PORT), v4(LOCAL_IP, lport), v4(RS4[rs], 8080)),
            "{r:?}"
        );
        let syn = r.state == ConnState::Tcp(TcpState::SynRecv);
        assert_eq!(ConnFlags::from_bits(r.flags).contains(ConnFlags::TOA_PENDING), syn, "{r:?}");
        bend.push(owner_of(r, 2), *r).expect("room");
    }
    poll_all(&mut backup, 2 * SEC);
    let installed: u64 = backup.iter().map(|w| snapshot(w).sync_installed).sum();
    let updated: u64 = backup.iter().map(|w| snapshot(w).sync_updated).sum();
    assert_eq!((installed, updated), (8, 8));
    for (i, w) in backup.iter().enumerate() {
        for (_, c) in w.lb().unwrap().conns6().iter() {
            let (local, server) = c.nat64_ends().expect("installed as a NAT64 connection");
            assert_eq!((local, lport_owner(c.lport, 2)), (LOCAL_IP, i), "its IPv4 local port is the holder's");
            assert!(RS4.contains(&server));
            assert!(c.flags.contains(ConnFlags::SYNCED) && !c.flags.contains(ConnFlags::TOA_PENDING));
        }
        w.lb().unwrap().conns6().check_invariants().unwrap();
    }
    // The backup's own new NAT64 flows never get a port a synced flow holds.
    let synced: std::collections::BTreeSet<u16> = flows.iter().map(|f| f.2).collect();
    for cport in 47000u16..47008 {
        let (_, back) = send_to(&mut backup, 0, FRONT, &to_vip(Tcp, cport, NAT64_PORT, SYN), 3 * SEC);
        assert_eq!(back.len(), 1, "new flow {cport}");
        let lport = u16::from_be_bytes([back[0][34], back[0][35]]);
        assert!(!synced.contains(&lport), "new flow {cport} got {lport}, held by a synced flow: {synced:?}");
    }
    let created_before: u64 = backup.iter().map(|w| snapshot(w).conns_created).sum();
    // After a takeover every synced flow goes on from the same IPv4 local address and
    // port to the same server without a second TOA, and its replies reach the client.
    for &(cport, rs, lport) in &flows {
        let (_, back) = send_to(&mut backup, 0, FRONT, &to_vip(Tcp, cport, NAT64_PORT, ACK), 4 * SEC);
        assert_eq!(back.len(), 1, "flow {cport}");
        let f = &back[0];
        assert_eq!(&f[..6], &RS4_MAC[rs], "flow {cport} on its server");
        assert_eq!((&f[14 + 12..14 + 16], &f[14 + 16..14 + 20]), (&LOCAL_IP.octets()[..], &RS4[rs].octets()[..]));
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), lport, "flow {cport} from its local port");
        assert_eq!(f[34 + 12] >> 4, 5, "flow {cport}: no TOA after the handshake");
        let (front, _) = send_to(&mut backup, 1, BACK, &to_local4(rs, lport, ACK), 4 * SEC);
        assert_eq!(front.len(), 1, "reply of flow {cport}");
        let g = &front[0];
        assert_eq!((&g[14 + 8..14 + 24], &g[14 + 24..14 + 40]), (&a(VIP6).octets()[..], &a(CLIENT6).octets()[..]));
        assert_eq!(ports_of(g), (NAT64_PORT, cport));
    }
    let created: u64 = backup.iter().map(|w| snapshot(w).conns_created).sum();
    assert_eq!(created, created_before, "nothing rescheduled");
    // A NAT64 record whose IPv4 local port another worker owns is refused (`port`); one
    // whose local address is IPv6 beside an IPv4 server mixes the families (`family`).
    let before: (u64, u64) =
        backup.iter().map(snapshot).fold((0, 0), |acc, s| (acc.0 + s.sync_refused_port, acc.1 + s.sync_refused_family));
    let mut r = records[1];
    r.client.set_port(50000);
    let owner = owner_of(&r, 2);
    let other = (1024u16..).find(|p| lport_owner(*p, 2) != owner).unwrap();
    r.local.set_port(other);
    bend.push(owner, r).unwrap();
    let mut mixed = records[1];
    mixed.client.set_port(50001);
    mixed.local = sa6(LOCAL6, 3000);
    bend.push(owner_of(&mixed, 2), mixed).unwrap();
    poll_all(&mut backup, 5 * SEC);
    let after: (u64, u64) =
        backup.iter().map(snapshot).fold((0, 0), |acc, s| (acc.0 + s.sync_refused_port, acc.1 + s.sync_refused_family));
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    assert_accounting_all(&backup);
    assert_accounting_all(&master);
}

#[test]
fn an_ipv6_tunnel_record_is_installed_and_its_flow_goes_on() {
    let shared = services(1);
    let (mut ws, end) = workers6(&shared, 1, 1024, NO_REFRESH);
    let mut r = record6(45100, 1);
    (r.forward, r.vip) = (Tunnel, sa6(VIP6, TUNNEL_PORT));
    end.push(0, r).unwrap();
    ws[0].poll_once(SEC);
    assert_eq!(snapshot(&ws[0]).sync_installed, 1, "{:?}", snapshot(&ws[0]));
    // The flow's next segment goes to the record's server inside an outer IPv6 header,
    // without being scheduled.
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 45100, TUNNEL_PORT, ACK), SEC);
    assert_eq!(back.len(), 1);
    let f = &back[0];
    assert_eq!((&f[..6], f[14 + 6]), (&RS6_MAC[1][..], 41), "IPv6 in IPv6 to the server's MAC");
    assert_eq!(&f[14 + 24..14 + 40], &a(RS6[1]).octets(), "to the record's server");
    assert_eq!(&f[54 + 24..54 + 40], &a(VIP6).octets(), "the client's packet inside, to the VIP");
    assert_eq!(snapshot(&ws[0]).conns_created, 0);
    assert_accounting_all(&ws);
}

#[test]
fn the_dump_and_the_refresh_walk_both_tables() {
    let shared = services(1);
    let (mut ws, mut end) = workers6(&shared, 1, 1024, NO_REFRESH);
    for cport in 42000u16..42010 {
        send_to(&mut ws, 0, FRONT, &to_vip(Tcp, cport, 80, SYN), SEC);
    }
    let v4 = common::l4::Seg::tcp(common::CLIENT_IP, 43000, common::VIP, 80, SYN).by_client();
    send_to(&mut ws, 0, FRONT, &v4, SEC);
    assert_eq!(drain(&mut end).len(), 11);
    let g = end.request_dump();
    for i in 0..40 {
        ws[0].poll_once(SEC + i * 1000);
    }
    assert!(end.dump_finished(g));
    let dumped = drain(&mut end);
    let v6 = dumped.iter().filter(|r| r.client.is_ipv6()).count();
    assert_eq!((dumped.len(), v6), (11, 10), "every connection of both tables once");
    // The refresh: every connection again once per period; entries from the peer stay.
    let shared = services(1);
    let refresh = SyncOptions { refresh: Duration::from_secs(1) };
    let (mut ws, mut end) = workers6(&shared, 1, 1024, refresh);
    for cport in 42000u16..42004 {
        send_to(&mut ws, 0, FRONT, &to_vip(Tcp, cport, 80, SYN), SEC);
    }
    end.push(0, record6(42100, 0)).unwrap();
    ws[0].poll_once(SEC);
    drain(&mut end);
    let mut t = SEC;
    while t < 3 * SEC + SEC / 2 {
        t += SEC / 100;
        ws[0].poll_once(t);
    }
    let again = drain(&mut end);
    assert!(again.iter().all(|r| r.client.is_ipv6() && r.client.port() < 42100), "{again:?}");
    let per_flow = again.iter().filter(|r| r.client.port() == 42000).count();
    assert!((2..=3).contains(&per_flow), "about once a second over 2.5 s: {per_flow}");
}

#[test]
fn installed_ipv6_entries_expire_and_updates_move_the_counts() {
    let shared = services(1);
    let (mut ws, end) = workers6(&shared, 1, 1024, NO_REFRESH);
    let mut r = record6(44000, 1);
    r.expires_in_ms = 2_000;
    end.push(0, r).unwrap();
    ws[0].poll_once(SEC);
    let c = *ws[0].lb().unwrap().conns6().iter().next().expect("installed").1;
    assert_eq!((c.server, c.sport, c.forward), (a(RS6[1]), 80, Nat));
    let left = c.expires_in_ns(SEC);
    assert!((2 * SEC..=2 * SEC + 2 * TICK_NS).contains(&left), "to two ticks of the wheel: {left}");
    assert_eq!(server_stats(&shared, 1, 1).active_conns, 1);
    // An update to FIN_WAIT: active → inactive.
    r.state = ConnState::Tcp(TcpState::FinWait);
    end.push(0, r).unwrap();
    ws[0].poll_once(SEC);
    let s = server_stats(&shared, 1, 1);
    assert_eq!((s.active_conns, s.inactive_conns, s.conns), (0, 1, 1));
    assert_eq!(snapshot(&ws[0]).sync_updated, 1);
    // Gone when its time is up, as a connection of this node's own would be.
    let mut t = SEC;
    while t < 4 * SEC {
        t += SEC / 50;
        ws[0].poll_once(t);
    }
    assert_eq!(conns6(&ws), 0);
    let s = server_stats(&shared, 1, 1);
    assert_eq!((s.active_conns, s.inactive_conns), (0, 0));
}

#[test]
fn ipv6_records_are_refused_by_reason() {
    let shared = services(1);
    let (mut ws, end) = workers6(&shared, 1, 1024, NO_REFRESH);
    let before = snapshot(&ws[0]);
    let mut install = |r: ConnRecord| {
        end.push(0, r).unwrap();
        ws[0].poll_once(SEC);
    };
    // Families mixed: an IPv4 server, or an IPv4 local address, behind an IPv6 client.
    let mut mixed = record6(45000, 0);
    mixed.server = "10.20.0.11:80".parse().unwrap();
    install(mixed);
    let mut mixed = record6(45001, 0);
    mixed.local = "10.20.0.200:2000".parse().unwrap();
    install(mixed);
    // Full-NAT whose local address is the client's, none of this node's: its port cannot
    // be taken here.
    let mut fnat = record6(45002, 0);
    fnat.forward = FullNat;
    install(fnat);
    // Invalid: a UDP state for TCP; SYN proxy state on a UDP flow (the proxy is TCP's).
    let mut invalid = record6(45003, 0);
    invalid.state = ConnState::Udp;
    install(invalid);
    let mut proxied = record6(45004, 0);
    (proxied.proto, proxied.state) = (Udp, ConnState::Udp);
    proxied.synproxy = Some(SynProxyRecord { pending: false, seq_offset: 1, ts_offset: 2, window: 0 });
    install(proxied);
    // No such service; no such server in it.
    let mut nosvc = record6(45005, 0);
    nosvc.vip = sa6(VIP6, 9999);
    install(nosvc);
    let mut nosrv = record6(45006, 0);
    nosrv.server = sa6("2001:db8:20::99", 80);
    install(nosrv);
    // A good one among them is installed.
    install(record6(45007, 0));
    let s = snapshot(&ws[0]);
    assert_eq!(
        (
            s.sync_refused_family,
            s.sync_refused_port,
            s.sync_refused_invalid,
            s.sync_refused_no_service,
            s.sync_refused_no_server,
            s.sync_installed
        ),
        (2, 1, 2, 1, 1, 1)
    );
    assert_eq!(conns6(&ws), 1);
    assert_eq!(
        (s.tx_packets, s.local_originated),
        (before.tx_packets, before.local_originated),
        "installing sends nothing"
    );
}

#[test]
fn listings_hold_ipv6_connections() {
    let shared = services(1);
    let (mut ws, _end) = workers6(&shared, 1, 1024, NO_REFRESH);
    send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 46000, 8080, SYN), SEC);
    send_to(&mut ws, 0, FRONT, &to_vip(Udp, 46001, 53, 0), SEC);
    let v4 = common::l4::Seg::tcp(common::CLIENT_IP, 46002, common::VIP, 80, SYN).by_client();
    send_to(&mut ws, 0, FRONT, &v4, SEC);
    let lb = ws[0].lb().unwrap();
    let all = lb.list_conns(&ConnFilter::default(), 10, SEC);
    assert_eq!((all.total, all.entries.len()), (3, 3));
    assert_eq!(all.entries[0].client.0, IpAddr::V4(common::CLIENT_IP), "IPv4's table first");
    let e = all.entries[1];
    assert_eq!(
        (e.client, e.vip, e.server),
        ((a(CLIENT6).into(), 46000), (a(VIP6).into(), 8080), (a(RS6[0]).into(), 80))
    );
    assert_eq!((e.forward, e.state), (Nat, ConnState::Tcp(TcpState::SynRecv)));
    let svc = ConnFilter { service: Some(ServiceKey { proto: Udp, vip: a(VIP6).into(), port: 53 }), server: None };
    let l = lb.list_conns(&svc, 10, SEC);
    assert_eq!((l.total, l.entries[0].server), (1, (a(RS6[0]).into(), 5353)));
    let srv = ConnFilter { service: None, server: Some((a(RS6[0]).into(), 80)) };
    assert_eq!(lb.list_conns(&srv, 10, SEC).total, 1);
    assert_eq!(lb.list_conns(&ConnFilter::default(), 1, SEC).entries.len(), 1, "bounded by max");
    // The gauges: both tables in `conns`, IPv6's alone in `conns6`.
    ws[0].poll_once(2 * SEC);
    let s = snapshot(&ws[0]);
    assert_eq!((s.conns, s.conns6), (3, 2));
}

/// Whether `frames` hold a neighbour advertisement whose target is `target`.
fn advertises(frames: &[Vec<u8>], target: Ipv6Addr) -> bool {
    frames.iter().any(|f| {
        f.len() >= 14 + 40 + 24
            && f[12..14] == [0x86, 0xdd]
            && f[14 + 6] == 58
            && f[14 + 40] == 136
            && f[14 + 48..14 + 64] == target.octets()
    })
}

#[test]
fn an_ipv6_vip_follows_its_vrrp_role() {
    let shared = services(1);
    let roles = Arc::new(HaRoles::new(1, [VIP6, VIP6_B].map(|v| (IpAddr::V6(a(v)), HaGroup(0)))).unwrap());
    let (mut ws, _end, _) = workers6_ha(&shared, 1, 1024, NO_REFRESH, Some(Arc::clone(&roles)));
    assert!(!roles.is_master(HaGroup(0)), "every group starts as backup");
    let backup_before = snapshot(&ws[0]).drop_count(DropReason::HaBackup);
    // Backup: a solicitation of the VIP is not answered, the peer's advertisement of it is
    // not a spoof, the flow's SYN is not forwarded; each is `ha_backup`.
    let (front, back) = send_to(&mut ws, 0, FRONT, &ns_from(a(CLIENT6), CLIENT_MAC, a(VIP6)), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup answered a solicitation of the VIP");
    const PEER: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
    let na = icmp6(a(VIP6), a("ff02::1"), 255, nd_msg(136, 0x20, a(VIP6), 2, PEER));
    send_to(&mut ws, 0, FRONT, &eth([0x33, 0x33, 0, 0, 0, 1], PEER, ETH_IPV6, &na), SEC);
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 47000, 8080, SYN), SEC);
    assert!(back.is_empty(), "backup forwarded the VIP's traffic");
    let s = snapshot(&ws[0]);
    assert_eq!(s.drop_count(DropReason::HaBackup) - backup_before, 3);
    assert_eq!(s.drop_count(DropReason::NdSpoofedOwn), 0, "the master's announcement is no spoof");
    assert_eq!(conns6(&ws), 0);
    // No unsolicited NA for it at start either; the port's own address still gets one.
    ws[0].send_gratuitous_arp(2 * SEC);
    let front = take_tx(&mut ws[0], FRONT);
    assert!(!advertises(&front, a(VIP6)), "backup announced the VIP");
    assert!(advertises(&front, a("2001:db8:10::1")), "the port's address is announced whatever the role");
    // A VIP added live while backup: not announced.
    let add = |shared: &SharedServices, generation: u64, extra: &[&str]| {
        let mut next = service_list(1);
        for v in extra {
            let mut svc = service6(1, Tcp, 81, vec![server6(RS6[0], 80, Dr, 1)]);
            svc.key.vip = a(v).into();
            next.push(svc);
        }
        shared.store(Arc::new(ServiceTable::new(generation, next).expect("table")));
    };
    add(&shared, 2, &[VIP6_B]);
    ws[0].poll_once(3 * SEC);
    let front = take_tx(&mut ws[0], FRONT);
    assert!(!advertises(&front, a(VIP6_B)), "backup announced a VIP added live");

    // Master: answered, forwarded, announced; a VIP added live (here one in no instance,
    // answered whatever the role) is announced at once.
    roles.set_master(HaGroup(0), true);
    let (front, _) = send_to(&mut ws, 0, FRONT, &ns_from(a(CLIENT6), CLIENT_MAC, a(VIP6)), 4 * SEC);
    let answer = icmp6(a(VIP6), a(CLIENT6), 255, nd_msg(136, 0x60, a(VIP6), 2, FRONT_MAC));
    // (The start's announcements are repeated meanwhile, this time with the VIPs.)
    assert!(front.contains(&eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &answer)), "master answers the solicitation");
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 47000, 8080, SYN), 4 * SEC);
    assert_eq!(back.len(), 1, "master forwards the VIP's traffic");
    ws[0].send_gratuitous_arp(5 * SEC);
    assert!(advertises(&take_tx(&mut ws[0], FRONT), a(VIP6)), "master announces the VIP");
    add(&shared, 3, &[VIP6_B, "2001:db8:10::102"]);
    ws[0].poll_once(6 * SEC);
    let front = take_tx(&mut ws[0], FRONT);
    assert!(advertises(&front, a("2001:db8:10::102")), "a VIP added live is announced");
    assert!(!advertises(&front, a(VIP6)), "only the new one");
    assert_accounting_all(&ws);
}

#[test]
fn an_ipv6_local_address_follows_its_vrrp_role() {
    let shared = services(1);
    let roles = Arc::new(HaRoles::new(1, [VIP6, LOCAL6].map(|v| (IpAddr::V6(a(v)), HaGroup(0)))).unwrap());
    let (mut ws, _end, _) = workers6_ha(&shared, 1, 1024, NO_REFRESH, Some(Arc::clone(&roles)));
    let backup_before = snapshot(&ws[0]).drop_count(DropReason::HaBackup);
    // Backup: a server's solicitation of the local address is not answered, a reply to it
    // is not taken; each is `ha_backup`.
    let (front, back) = send_to(&mut ws, 0, BACK, &ns_from(a(RS6[0]), RS6_MAC[0], a(LOCAL6)), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup answered a solicitation of the local address");
    let (front, back) = send_to(&mut ws, 0, BACK, &to_local(0, 1024, ACK), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup took a reply to the local address");
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::HaBackup) - backup_before, 2);
    // No unsolicited NA for it at start; the back port's own address gets one.
    ws[0].send_gratuitous_arp(2 * SEC);
    let back = take_tx(&mut ws[0], BACK);
    assert!(!advertises(&back, a(LOCAL6)), "backup announced the local address");
    assert!(advertises(&back, a("2001:db8:20::1")), "the port's address is announced whatever the role");

    // Master: answered, announced, and a Full-NAT flow's replies to it are taken.
    roles.set_master(HaGroup(0), true);
    let (_, back) = send_to(&mut ws, 0, BACK, &ns_from(a(RS6[0]), RS6_MAC[0], a(LOCAL6)), 3 * SEC);
    assert!(advertises(&back, a(LOCAL6)), "master answers the solicitation");
    ws[0].send_gratuitous_arp(4 * SEC);
    assert!(advertises(&take_tx(&mut ws[0], BACK), a(LOCAL6)), "master announces the local address");
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(Tcp, 47500, FNAT_PORT, SYN), 5 * SEC);
    assert_eq!(back.len(), 1, "master forwards the Full-NAT flow");
    let rs = usize::from(back[0][..6] != RS6_MAC[0]);
    let (front, _) = send_to(&mut ws, 0, BACK, &to_local(rs, ports_of(&back[0]).0, SYN | ACK), 5 * SEC);
    assert_eq!(front.len(), 1, "master translates the reply to the client");
    assert_accounting_all(&ws);
}

/// A NAT66 gateway on the back prefix, in the VRRP instance with the VIP.
const FLOAT6: &str = "2001:db8:20::254";

/// An ICMPv6 echo request (`ty` 128) or reply (129) with identifier 0x1234 and `seq`.
fn echo6(ty: u8, seq: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"ping6");
    m
}

#[test]
fn an_ipv6_floating_address_is_answered_on_its_port_only_while_master() {
    let shared = services(1);
    let roles = Arc::new(HaRoles::new(1, [VIP6, FLOAT6].map(|v| (IpAddr::V6(a(v)), HaGroup(0)))).unwrap());
    let (mut ws, _end, _) = workers6_ha(&shared, 1, 1024, NO_REFRESH, Some(Arc::clone(&roles)));
    let ping = |seq| eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &icmp6(a(RS6[0]), a(FLOAT6), 64, echo6(128, seq)));
    let before = snapshot(&ws[0]);
    // Backup: a server's solicitation of the gateway (to its solicited-node group) and its
    // echo request get nothing; both are `ha_backup`.
    let (front, back) = send_to(&mut ws, 0, BACK, &ns_from(a(RS6[0]), RS6_MAC[0], a(FLOAT6)), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup answered a solicitation of the gateway");
    let (front, back) = send_to(&mut ws, 0, BACK, &ping(1), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup answered an echo to the gateway");
    let s = snapshot(&ws[0]);
    assert_eq!(s.drop_count(DropReason::HaBackup) - before.drop_count(DropReason::HaBackup), 2);
    // Nor is it announced at start (the control plane announces it on takeover).
    ws[0].send_gratuitous_arp(2 * SEC);
    assert!(!advertises(&take_tx(&mut ws[0], BACK), a(FLOAT6)), "backup announced the gateway");

    // Master: the solicitation is answered from the back port's MAC, the echo too.
    roles.set_master(HaGroup(0), true);
    let (_, back) = send_to(&mut ws, 0, BACK, &ns_from(a(RS6[0]), RS6_MAC[0], a(FLOAT6)), 3 * SEC);
    let answer = icmp6(a(FLOAT6), a(RS6[0]), 255, nd_msg(136, 0x60, a(FLOAT6), 2, BACK_MAC));
    assert!(back.contains(&eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &answer)), "master answers the solicitation: {back:?}");
    let (_, back) = send_to(&mut ws, 0, BACK, &ping(2), 3 * SEC);
    let reply = eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &icmp6(a(FLOAT6), a(RS6[0]), 64, echo6(129, 2)));
    assert!(back.contains(&reply), "master answers the echo: {back:?}");
    // Only on its own port: a solicitation of it on the front port is not ours to answer.
    let (front, _) = send_to(&mut ws, 0, FRONT, &ns_from(a(CLIENT6), CLIENT_MAC, a(FLOAT6)), 3 * SEC);
    assert!(!advertises(&front, a(FLOAT6)), "the gateway answered on the front port");
    // TCP to it is no service.
    let syn = eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &pkt(Tcp, (a(RS6[0]), 40000), (a(FLOAT6), 80), SYN));
    let before = snapshot(&ws[0]).drop_count(DropReason::Ip6NoService);
    let (front, back) = send_to(&mut ws, 0, BACK, &syn, 3 * SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::Ip6NoService) - before, 1);
    // Back to backup: silent again.
    roles.set_master(HaGroup(0), false);
    let before = snapshot(&ws[0]).drop_count(DropReason::HaBackup);
    let (_, back) = send_to(&mut ws, 0, BACK, &ping(3), 4 * SEC);
    let reply = eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &icmp6(a(FLOAT6), a(RS6[0]), 64, echo6(129, 3)));
    assert!(!back.contains(&reply), "a backup again answered the echo");
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::HaBackup) - before, 1);
    assert_accounting_all(&ws);
}

/// The instance's virtual link-local address (RFC 5798 §5.2.9), on the front port.
const VLL6: &str = "fe80::51";

#[test]
fn a_virtual_link_local_address_is_answered_on_the_instances_port_only_while_master() {
    let shared = services(1);
    let roles = HaRoles::new(1, [(IpAddr::V6(a(VIP6)), HaGroup(0))]).unwrap();
    let roles = Arc::new(roles.with_link_local(a(VLL6), FRONT, HaGroup(0)).unwrap());
    assert_eq!(roles.group_of(IpAddr::V6(a(VLL6))), Some(HaGroup(0)));
    let (mut ws, _end, _) = workers6_ha(&shared, 1, 1024, NO_REFRESH, Some(Arc::clone(&roles)));
    let ns = || ns_from(a(CLIENT6), CLIENT_MAC, a(VLL6));
    let ping = |seq| eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(a(CLIENT6), a(VLL6), 64, echo6(128, seq)));
    // Backup: neither the solicitation nor the echo is answered; both are `ha_backup`.
    let before = snapshot(&ws[0]);
    let (front, back) = send_to(&mut ws, 0, FRONT, &ns(), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup answered a solicitation of the virtual link-local");
    let (front, back) = send_to(&mut ws, 0, FRONT, &ping(1), SEC);
    assert!(front.is_empty() && back.is_empty(), "backup answered an echo to the virtual link-local");
    let s = snapshot(&ws[0]);
    assert_eq!(s.drop_count(DropReason::HaBackup) - before.drop_count(DropReason::HaBackup), 2);
    ws[0].send_gratuitous_arp(2 * SEC);
    assert!(!advertises(&take_tx(&mut ws[0], FRONT), a(VLL6)), "backup announced the virtual link-local");
    // Master: answered from the front port's MAC, echo too.
    roles.set_master(HaGroup(0), true);
    let (front, _) = send_to(&mut ws, 0, FRONT, &ns(), 3 * SEC);
    let answer = icmp6(a(VLL6), a(CLIENT6), 255, nd_msg(136, 0x60, a(VLL6), 2, FRONT_MAC));
    assert!(front.contains(&eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &answer)), "master answers: {front:?}");
    let (front, _) = send_to(&mut ws, 0, FRONT, &ping(2), 3 * SEC);
    let reply = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(a(VLL6), a(CLIENT6), 64, echo6(129, 2)));
    assert!(front.contains(&reply), "master answers the echo: {front:?}");
    // A link-local address is on every link: on the back port it is not ours.
    let (_, back) = send_to(&mut ws, 0, BACK, &ns_from(a(RS6[0]), RS6_MAC[0], a(VLL6)), 3 * SEC);
    assert!(!advertises(&back, a(VLL6)), "the virtual link-local answered on another port");
    let ping_back = eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &icmp6(a(RS6[0]), a(VLL6), 64, echo6(128, 3)));
    let (front, back) = send_to(&mut ws, 0, BACK, &ping_back, 3 * SEC);
    assert!(front.is_empty() && back.is_empty(), "an echo to the virtual link-local on another port was answered");
    assert_accounting_all(&ws);
}

#[test]
fn vrrp_over_ipv6_is_punted_with_its_port() {
    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
    let peer_ll = a("fe80::ff:fe00:b02");
    let shared = services(1);
    let roles = Arc::new(HaRoles::new(1, [(IpAddr::V6(a(VIP6)), HaGroup(0))]).unwrap());
    let (mut ws, _end, mut ha) = workers6_ha(&shared, 1, 1024, NO_REFRESH, Some(roles));
    // A VRRPv3 advert (its contents are the control plane's to judge) over IPv6.
    let vrrp = |src: Ipv6Addr, nh: u8| {
        let mut msg = vec![0x31, 51, 100, 1, 0, 10, 0, 0];
        msg.extend_from_slice(&a(VIP6).octets());
        let c = csum6(src, a("ff02::12"), 112, &msg);
        msg[6..8].copy_from_slice(&c.to_be_bytes());
        ipv6(src, a("ff02::12"), nh, 255, &msg)
    };
    let frame = |src_mac: [u8; 6], ip: &[u8]| {
        let mut f = eth([0x33, 0x33, 0, 0, 0, 0x12], src_mac, ETH_IPV6, ip);
        f.resize(f.len().max(60), 0);
        f
    };
    let ip = vrrp(peer_ll, 112);
    let before = snapshot(&ws[0]);
    let (front, back) = send_to(&mut ws, 0, FRONT, &frame(PEER_MAC, &ip), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(ha.recv(), Some((FRONT, ip.clone())), "the IPv6 packet, Ethernet header cut");
    let s = snapshot(&ws[0]);
    assert_eq!((s.ha_rx - before.ha_rx, s.rx_consumed - before.rx_consumed), (1, 1));
    // On the back port too, tagged so.
    send_to(&mut ws, 0, BACK, &frame(PEER_MAC, &ip), SEC);
    assert_eq!(ha.recv(), Some((BACK, ip)));
    // Not VRRP at the VRRP MAC: not for us. Our own advert looped back (our link-local
    // source, or our MAC): dropped as any packet.
    let ours = rvs_dataplane::l2l3::nd::link_local(rvs_dataplane::wire::MacAddr(FRONT_MAC));
    let before = snapshot(&ws[0]);
    send_to(&mut ws, 0, FRONT, &frame(PEER_MAC, &vrrp(peer_ll, 17)), SEC);
    send_to(&mut ws, 0, FRONT, &frame(PEER_MAC, &vrrp(ours, 112)), SEC);
    send_to(&mut ws, 0, FRONT, &frame(FRONT_MAC, &vrrp(peer_ll, 112)), SEC);
    let mut short = vrrp(peer_ll, 112);
    short[5] += 40;
    send_to(&mut ws, 0, FRONT, &frame(PEER_MAC, &short), SEC);
    let s = snapshot(&ws[0]);
    let reasons =
        [DropReason::EthNotForUs, DropReason::Ip6BadSource, DropReason::EthBadSource, DropReason::Ip6BadLength];
    assert_eq!(reasons.map(|r| s.drop_count(r) - before.drop_count(r)), [1, 1, 1, 1]);
    assert_eq!(ha.recv(), None);
    assert_eq!(s.ha_rx, 2);
    assert_accounting_all(&ws);
}
