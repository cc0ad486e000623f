//! The L4 path end to end through whole workers on the in-memory driver: frames in on a
//! port, frames out of the other, for every forwarding mode, the schedulers' shares, the
//! drop reasons, redirects between workers, persistence, ICMP error translation and
//! admission (allow/deny prefixes, maxconn).
//!
//! Every output frame is compared byte for byte with one built independently
//! (`common::l4::Seg`, checksums computed in full), and also taken apart with the `wire`
//! views with every checksum recomputed from scratch (`seen`), so that neither the
//! incremental checksum code nor the views are trusted on their own. Each scenario ends
//! with the counting invariant of `rvs_dataplane::stats` (redirects included).
//!
//! Topology (DESIGN.md's lab-lb1): port 0 "front" 10.10.0.1/24 with the VIP 10.10.0.100,
//! port 1 "back" 10.20.0.1/24 with local addresses .200 and .201; the client 10.10.0.2,
//! the router 10.10.0.254 and the servers 10.20.0.11-13 are static neighbours.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::l4::*;
use common::*;
use rvs_dataplane::admission::Admission;
use rvs_dataplane::conn::{client_owner, lport_owner};
use rvs_dataplane::l2l3::neigh::NeighInfo;
use rvs_dataplane::sched::PersistTable;
use rvs_dataplane::service::{Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, SchedulerKind, TcpState};
use rvs_dataplane::wire::MacAddr;

use ForwardMode::{Dr, FullNat, Nat, Tunnel};
use L4Proto::{Tcp, Udp};
use SchedulerKind::{Rr, Wrr};

const CPORT: u16 = 40001;

/// A one-service table: TCP `port` on the VIP, round robin over `servers`.
fn one_service(workers: usize, port: u16, servers: &[Rs]) -> SharedServices {
    publish(vec![service(workers, Tcp, port, Rr, servers, None)])
}

/// The connection state of the single connection of worker `w`.
fn only_conn_state(w: &MemWorker) -> ConnState {
    let conns: Vec<_> = w.lb().expect("engine").conns().iter().map(|(_, c)| c.state).collect();
    assert_eq!(conns.len(), 1, "one connection expected");
    conns[0]
}

/// IPv4 total length of an IP packet built by `Seg::ip`, for the byte counters.
fn ip_len(s: &Seg) -> u64 {
    s.ip().len() as u64
}

// ---- 1. NAT ----

#[test]
fn nat_tcp_connection_handshake_data_and_fin_with_port_mapping() {
    let shared = one_service(1, 80, &[rs(RS1, 8080, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let client = (CLIENT_IP, CPORT);
    let (vip, server) = ((VIP, 80), (RS1, 8080));
    let (mut bytes_in, mut bytes_out, mut pk_in, mut pk_out) = (0u64, 0u64, 0u64, 0u64);

    // The client's SYN goes out of the back port to the server, destination rewritten.
    let syn = Seg::tcp(client.0, client.1, VIP, 80, SYN).options(&syn_options(1460));
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert!(front.is_empty());
    let out = only(back, "SYN to server");
    assert_frame(&out, &syn.clone().addrs(client, server).ttl(60).to_server(RS1_MAC), "DNATed SYN");
    let s = seen(&out);
    assert_eq!((s.eth_dst, s.eth_src), (RS1_MAC, BACK_MAC), "back port MAC to the server's MAC");
    assert_eq!((s.src, s.sport, s.dst, s.dport, s.ttl), (CLIENT_IP, CPORT, RS1, 8080, 60));
    assert_eq!(s.mss, Some(1460), "NAT leaves the options alone");
    (pk_in, bytes_in) = (pk_in + 1, bytes_in + ip_len(&syn));
    assert_eq!(snapshot(&ws[0]).conns_created, 1);
    assert_eq!(server_stats(&shared, 0, 0).active_conns, 1, "SYN_RECV counts as active (IPVS >= 4.7)");

    // The server's SYN-ACK comes back to the client from VIP:80.
    let syn_ack = Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, SYN | ACK)
        .seq(0x5000_0000)
        .ack(0x1000_0001)
        .options(&syn_options(1460))
        .ttl(64);
    let (front, back) = send_to(&mut ws, 0, BACK, &syn_ack.by_server(RS1_MAC), 2);
    assert!(back.is_empty());
    let out = only(front, "SYN-ACK to client");
    assert_frame(&out, &syn_ack.clone().addrs(vip, client).ttl(63).to_client(), "SNATed SYN-ACK");
    let s = seen(&out);
    assert_eq!((s.eth_dst, s.eth_src, s.src, s.sport, s.mss), (CLIENT_MAC, FRONT_MAC, VIP, 80, Some(1460)));
    (pk_out, bytes_out) = (pk_out + 1, bytes_out + ip_len(&syn_ack));

    // ACK, then data both ways.
    let exchange: Vec<(bool, Seg)> = vec![
        (true, Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(0x5000_0001)),
        (
            true,
            Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK)
                .seq(0x1000_0001)
                .ack(0x5000_0001)
                .data(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n"),
        ),
        (
            false,
            Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, PSH | ACK)
                .seq(0x5000_0001)
                .ack(0x1000_001f)
                .ttl(64)
                .data(&[b'x'; 300]),
        ),
        (true, Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_001f).ack(0x5000_012d)),
    ];
    for (i, (inbound, seg)) in exchange.iter().enumerate() {
        let now = 10 + i as u64;
        if *inbound {
            let (front, back) = send_to(&mut ws, 0, FRONT, &seg.by_client(), now);
            assert!(front.is_empty());
            assert_frame(
                &only(back, "to server"),
                &seg.clone().addrs(client, server).ttl(60).to_server(RS1_MAC),
                "client segment",
            );
            (pk_in, bytes_in) = (pk_in + 1, bytes_in + ip_len(seg));
        } else {
            let (front, back) = send_to(&mut ws, 0, BACK, &seg.by_server(RS1_MAC), now);
            assert!(back.is_empty());
            assert_frame(
                &only(front, "to client"),
                &seg.clone().addrs(vip, client).ttl(63).to_client(),
                "server segment",
            );
            (pk_out, bytes_out) = (pk_out + 1, bytes_out + ip_len(seg));
        }
    }
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::Established));

    // FIN from the client, FIN from the server, last ACK: the connection becomes inactive.
    let close: Vec<(bool, Seg)> = vec![
        (true, Seg::tcp(CLIENT_IP, CPORT, VIP, 80, FIN | ACK).seq(0x1000_001f).ack(0x5000_012d)),
        (false, Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, FIN | ACK).seq(0x5000_012d).ack(0x1000_0020).ttl(64)),
        (true, Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0020).ack(0x5000_012e)),
    ];
    for (i, (inbound, seg)) in close.iter().enumerate() {
        let now = 20 + i as u64;
        if *inbound {
            let (_, back) = send_to(&mut ws, 0, FRONT, &seg.by_client(), now);
            assert_frame(
                &only(back, "to server"),
                &seg.clone().addrs(client, server).ttl(60).to_server(RS1_MAC),
                "client FIN/ACK",
            );
            (pk_in, bytes_in) = (pk_in + 1, bytes_in + ip_len(seg));
        } else {
            let (front, _) = send_to(&mut ws, 0, BACK, &seg.by_server(RS1_MAC), now);
            assert_frame(&only(front, "to client"), &seg.clone().addrs(vip, client).ttl(63).to_client(), "server FIN");
            (pk_out, bytes_out) = (pk_out + 1, bytes_out + ip_len(seg));
        }
    }
    let state = only_conn_state(&ws[0]);
    assert!(!state.is_active(), "closed connection is inactive, got {}", state.name());

    let want = rvs_dataplane::server::ServerStatsSnapshot {
        active_conns: 0,
        inactive_conns: 1,
        conns: 1,
        packets_in: pk_in,
        packets_out: pk_out,
        bytes_in,
        bytes_out,
        ..Default::default()
    };
    assert_eq!(server_stats(&shared, 0, 0), want, "server counters");
    assert_eq!(service_stats(&shared, 0), want, "service counters");
    let s = snapshot(&ws[0]);
    assert_eq!((s.conns_created, s.rx_packets, s.tx_packets, s.drops_total()), (1, 9, 9, 0));
    assert_accounting_all(&ws);
}

#[test]
fn nat_rst_closes_and_udp_keeps_the_service_port() {
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS2, 80, 1, Nat)], None),
        service(1, Udp, 53, Rr, &[rs(RS2, 53, 1, Nat)], None),
    ]);
    let mut ws = vec![lb_worker(&shared)];

    // TCP: SYN, then an RST from the server closes the connection.
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert_frame(
        &only(back, "SYN"),
        &syn.clone().addrs((CLIENT_IP, CPORT), (RS2, 80)).ttl(60).to_server(RS2_MAC),
        "SYN, no port mapping",
    );
    let rst = Seg::tcp(RS2, 80, CLIENT_IP, CPORT, RST | ACK).ack(0x1000_0001).ttl(64);
    let (front, _) = send_to(&mut ws, 0, BACK, &rst.by_server(RS2_MAC), 2);
    assert_frame(
        &only(front, "RST"),
        &rst.clone().addrs((VIP, 80), (CLIENT_IP, CPORT)).ttl(63).to_client(),
        "RST to client",
    );
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::Close));
    let st = server_stats(&shared, 0, 0);
    assert_eq!((st.conns, st.active_conns, st.inactive_conns, st.packets_in, st.packets_out), (1, 0, 1, 1, 1));

    // UDP: a query and its answer.
    let q = Seg::udp(CLIENT_IP, 5300, VIP, 53, b"query: vip.example. A");
    let (_, back) = send_to(&mut ws, 0, FRONT, &q.by_client(), 3);
    let out = only(back, "UDP query");
    assert_frame(&out, &q.clone().addrs((CLIENT_IP, 5300), (RS2, 53)).ttl(60).to_server(RS2_MAC), "DNATed query");
    assert_eq!(seen(&out).proto, PROTO_UDP);
    let a = Seg::udp(RS2, 53, CLIENT_IP, 5300, b"answer: 10.10.0.100").ttl(64);
    let (front, _) = send_to(&mut ws, 0, BACK, &a.by_server(RS2_MAC), 4);
    assert_frame(
        &only(front, "UDP answer"),
        &a.clone().addrs((VIP, 53), (CLIENT_IP, 5300)).ttl(63).to_client(),
        "SNATed answer",
    );
    let u = server_stats(&shared, 1, 0);
    assert_eq!(
        (u.conns, u.active_conns, u.inactive_conns, u.packets_in, u.packets_out),
        (1, 0, 1, 1, 1),
        "UDP flows are inactive"
    );
    assert_eq!(snapshot(&ws[0]).conns_created, 2);
    assert_accounting_all(&ws);
}

#[test]
fn a_syn_reusing_a_finished_connections_client_port_is_scheduled_anew() {
    // Round robin over two NAT servers; the client reuses CPORT after each close, as a
    // busy client of short connections does within the TIME_WAIT timeout.
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat), rs(RS2, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let dst = |back: Vec<Vec<u8>>, what: &str| seen(&only(back, what)).dst;

    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert_eq!(dst(back, "first SYN"), RS1);
    // A retransmitted SYN (SYN_RECV) continues the entry: same server, nothing new.
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 2);
    assert_eq!(dst(back, "retransmitted SYN"), RS1);
    assert_eq!((snapshot(&ws[0]).conns_created, snapshot(&ws[0]).conns_reused), (1, 0));

    // The whole connection: handshake, client close, server close: TIME_WAIT.
    let from_server = |f| Seg::tcp(RS1, 80, CLIENT_IP, CPORT, f).ack(0x1000_0001).ttl(64).by_server(RS1_MAC);
    let from_client = |f| Seg::tcp(CLIENT_IP, CPORT, VIP, 80, f).seq(0x1000_0001).ack(1).by_client();
    send_to(&mut ws, 0, BACK, &from_server(SYN | ACK), 3);
    send_to(&mut ws, 0, FRONT, &from_client(ACK), 4);
    send_to(&mut ws, 0, FRONT, &from_client(FIN | ACK), 5);
    send_to(&mut ws, 0, BACK, &from_server(FIN | ACK), 6);
    send_to(&mut ws, 0, FRONT, &from_client(ACK), 7);
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::TimeWait));

    // The next SYN on the same tuple is a new connection: scheduled (to the other
    // server), counted, and the old entry is gone with its counts.
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 8);
    assert_frame(
        &only(back, "SYN after TIME_WAIT"),
        &syn.clone().addrs((CLIENT_IP, CPORT), (RS2, 80)).ttl(60).to_server(RS2_MAC),
        "rescheduled SYN",
    );
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::SynRecv));
    assert_eq!((snapshot(&ws[0]).conns_created, snapshot(&ws[0]).conns_reused), (2, 1));
    let (a, b) = (server_stats(&shared, 0, 0), server_stats(&shared, 0, 1));
    assert_eq!((a.conns, a.active_conns, a.inactive_conns), (1, 0, 0), "RS1's connection is closed");
    assert_eq!((b.conns, b.active_conns, b.inactive_conns), (1, 1, 0));

    // After a reset (CLOSE) too: back to RS1. (A client RST in SYN_RECV is ignored, as
    // in IPVS's state table, so the connection is established first.)
    send_to(&mut ws, 0, FRONT, &from_client(ACK), 9);
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, RST | ACK).by_client(), 9);
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::Close));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 10);
    assert_eq!(dst(back, "SYN after CLOSE"), RS1);
    assert_eq!((snapshot(&ws[0]).conns_created, snapshot(&ws[0]).conns_reused), (3, 2));
    assert_eq!(service_stats(&shared, 0).conns, 3);
    assert_accounting_all(&ws);
}

#[test]
fn a_syn_reusing_a_finished_connections_port_passes_the_acl_again() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let (_, b) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert_eq!(b.len(), 1);
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(1).by_client(), 2);
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, RST | ACK).by_client(), 2);
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::Close));
    republish(&shared, 2, Admission::new(&[], &nets(&["10.10.0.0/24"]), 0));
    let (f, b) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 3);
    assert!(f.is_empty() && b.is_empty(), "the reused port is a new flow: refused");
    assert_eq!(drops_of(&ws[0]), vec![("acl_denied", 1)]);
    assert!(ws[0].lb().expect("engine").conns().is_empty(), "the finished entry is gone");
    assert_accounting_all(&ws);
}

#[test]
fn a_syn_whose_reply_tuple_is_held_by_a_closing_connection_displaces_it() {
    // Two NAT services on one real server ip:port: the server sees client:CPORT <-> RS2:80
    // for both, so a client reusing CPORT for the other service clashes with the first
    // connection's reply tuple.
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS2, 80, 1, Nat)], None),
        service(1, Tcp, 8080, Rr, &[rs(RS2, 80, 1, Nat)], None),
    ]);
    let mut ws = vec![lb_worker(&shared)];
    let syn80 = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let syn8080 = Seg::tcp(CLIENT_IP, CPORT, VIP, 8080, SYN);

    // While the first connection is active (SYN_RECV), the second SYN is refused.
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn80.by_client(), 1);
    assert_eq!(back.len(), 1, "first SYN forwarded");
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn8080.by_client(), 2);
    assert!(back.is_empty(), "a SYN clashing with an active connection is not forwarded");
    assert!(drops_of(&ws[0]).contains(&("conn_key_clash", 1)), "{:?}", drops_of(&ws[0]));

    // The server resets the first connection (CLOSE): the next SYN displaces it.
    let rst = Seg::tcp(RS2, 80, CLIENT_IP, CPORT, RST | ACK).ack(0x1000_0001).ttl(64);
    send_to(&mut ws, 0, BACK, &rst.by_server(RS2_MAC), 3);
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::Close));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn8080.by_client(), 4);
    assert_frame(
        &only(back, "SYN to :8080"),
        &syn8080.clone().addrs((CLIENT_IP, CPORT), (RS2, 80)).ttl(60).to_server(RS2_MAC),
        "the new connection's SYN",
    );
    assert_eq!(only_conn_state(&ws[0]), ConnState::Tcp(TcpState::SynRecv), "the old entry is gone");
    assert_eq!(snapshot(&ws[0]).conns_displaced, 1);
    // The reply now belongs to the new connection: SNATed from VIP:8080.
    let synack = Seg::tcp(RS2, 80, CLIENT_IP, CPORT, SYN | ACK).ack(0x1000_0001).ttl(64);
    let (front, _) = send_to(&mut ws, 0, BACK, &synack.by_server(RS2_MAC), 5);
    assert_frame(
        &only(front, "SYN-ACK"),
        &synack.clone().addrs((VIP, 8080), (CLIENT_IP, CPORT)).ttl(63).to_client(),
        "SYN-ACK from the second service",
    );
    // The first service's and server's counts no longer hold the displaced connection.
    let old = server_stats(&shared, 0, 0);
    assert_eq!((old.conns, old.active_conns, old.inactive_conns), (1, 0, 0));
    let new = server_stats(&shared, 1, 0);
    assert_eq!((new.conns, new.active_conns, new.inactive_conns), (1, 1, 0));
    assert_accounting_all(&ws);
}

// ---- 2. schedulers through the worker ----

/// Opens 30 connections from different client ports; returns how many went to each of
/// RS1, RS2, RS3 (by the destination of the forwarded SYN).
fn spread_30(shared: &SharedServices) -> [usize; 3] {
    let mut ws = vec![lb_worker(shared)];
    let mut counts = [0; 3];
    for i in 0..30u16 {
        let syn = Seg::tcp(CLIENT_IP, 41000 + i, VIP, 80, SYN);
        let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), u64::from(i));
        let s = seen(&only(back, "SYN"));
        let k = [RS1, RS2, RS3].iter().position(|&a| a == s.dst).expect("a lab server");
        assert_eq!(s.eth_dst, server_mac(s.dst), "sent to the chosen server's MAC");
        counts[k] += 1;
    }
    assert_eq!(snapshot(&ws[0]).conns_created, 30);
    assert_accounting_all(&ws);
    counts
}

#[test]
fn rr_spreads_30_connections_10_10_10() {
    let servers = [rs(RS1, 80, 1, Nat), rs(RS2, 80, 1, Nat), rs(RS3, 80, 1, Nat)];
    let shared = one_service(1, 80, &servers);
    assert_eq!(spread_30(&shared), [10, 10, 10]);
    for i in 0..3 {
        assert_eq!(server_stats(&shared, 0, i).conns, 10, "server {i}");
    }
}

#[test]
fn wrr_3_2_1_spreads_30_connections_15_10_5() {
    let servers = [rs(RS1, 80, 3, Nat), rs(RS2, 80, 2, Nat), rs(RS3, 80, 1, Nat)];
    let shared = publish(vec![service(1, Tcp, 80, Wrr, &servers, None)]);
    assert_eq!(spread_30(&shared), [15, 10, 5]);
}

// ---- 3. Full-NAT ----

/// A client port whose flows worker `w` of `n` owns.
fn cport_owned_by(w: usize, n: usize, from: u16) -> u16 {
    (from..).find(|&p| client_owner(CLIENT_IP, p, n) == w).expect("some port")
}

#[test]
fn fullnat_tcp_toa_on_syn_and_handshake_ack_only_and_mss_lowered() {
    let n = 2;
    let shared = one_service(n, 80, &[rs(RS1, 8080, 1, FullNat)]);
    let mut ws = lb_workers(&shared, n, &LbOpts::default());
    let owner = 1;
    let cport = cport_owned_by(owner, n, CPORT);
    let client = (CLIENT_IP, cport);

    let syn = Seg::tcp(CLIENT_IP, cport, VIP, 80, SYN).options(&syn_options(1460));
    inject(&mut ws[owner], FRONT, &syn.by_client());
    poll_all(&mut ws[..], 1);
    let out = only(take_tx(&mut ws[owner], BACK), "SYN leaves through its owner");
    let s = seen(&out);
    let local = (s.src, s.sport);
    assert!(s.src == LOCAL_IP || s.src == LOCAL_IP2, "source is a local address, got {}", s.src);
    assert!(s.sport >= 1024, "local port {} in the dynamic range", s.sport);
    assert_eq!(lport_owner(s.sport, n), owner, "local port {} owned by the creating worker", s.sport);
    assert_eq!(s.tcp_option(254), Some(toa_option(CLIENT_IP, cport)), "TOA first in the SYN");
    let mut opts = toa_option(CLIENT_IP, cport);
    opts.extend(syn_options(1460));
    assert_frame(
        &out,
        &syn.clone().addrs(local, (RS1, 8080)).options(&opts).ttl(60).to_server(RS1_MAC),
        "Full-NAT SYN with TOA",
    );

    // SYN-ACK back to the local address: to the client from VIP:80, MSS 1460 - 8.
    let syn_ack = Seg::tcp(RS1, 8080, local.0, local.1, SYN | ACK)
        .seq(0x7000_0000)
        .ack(0x1000_0001)
        .options(&syn_options(1460))
        .ttl(64);
    inject(&mut ws[lport_owner(local.1, n)], BACK, &syn_ack.by_server(RS1_MAC));
    poll_all(&mut ws[..], 2);
    let out = only(take_tx(&mut ws[owner], FRONT), "SYN-ACK to client");
    assert_eq!(seen(&out).mss, Some(1452), "MSS lowered by the TOA size");
    assert_frame(
        &out,
        &syn_ack.clone().addrs((VIP, 80), client).options(&syn_options(1452)).ttl(63).to_client(),
        "Full-NAT SYN-ACK",
    );

    // The ACK completing the handshake carries the TOA; later data does not.
    let ack = Seg::tcp(CLIENT_IP, cport, VIP, 80, ACK).seq(0x1000_0001).ack(0x7000_0001);
    inject(&mut ws[owner], FRONT, &ack.by_client());
    poll_all(&mut ws[..], 3);
    let out = only(take_tx(&mut ws[owner], BACK), "ACK");
    assert_frame(
        &out,
        &ack.clone().addrs(local, (RS1, 8080)).options(&toa_option(CLIENT_IP, cport)).ttl(60).to_server(RS1_MAC),
        "handshake ACK with TOA",
    );

    let data = Seg::tcp(CLIENT_IP, cport, VIP, 80, PSH | ACK)
        .seq(0x1000_0001)
        .ack(0x7000_0001)
        .data(b"GET / HTTP/1.0\r\n\r\n");
    inject(&mut ws[owner], FRONT, &data.by_client());
    poll_all(&mut ws[..], 4);
    let out = only(take_tx(&mut ws[owner], BACK), "data");
    assert_eq!(seen(&out).tcp_option(254), None, "no TOA after the handshake");
    assert_frame(&out, &data.clone().addrs(local, (RS1, 8080)).ttl(60).to_server(RS1_MAC), "data without TOA");

    let answer =
        Seg::tcp(RS1, 8080, local.0, local.1, PSH | ACK).seq(0x7000_0001).ack(0x1000_0013).ttl(64).data(&[b'y'; 200]);
    inject(&mut ws[lport_owner(local.1, n)], BACK, &answer.by_server(RS1_MAC));
    poll_all(&mut ws[..], 5);
    assert_frame(
        &only(take_tx(&mut ws[owner], FRONT), "answer"),
        &answer.clone().addrs((VIP, 80), client).ttl(63).to_client(),
        "answer",
    );

    let total: u64 = ws.iter().map(|w| snapshot(w).toa_skipped).sum();
    assert_eq!(total, 0);
    assert_accounting_all(&ws);
}

#[test]
fn fullnat_udp_has_no_toa() {
    let shared = publish(vec![service(1, Udp, 53, Rr, &[rs(RS2, 5353, 1, FullNat)], None)]);
    let mut ws = vec![lb_worker(&shared)];
    let q = Seg::udp(CLIENT_IP, 5300, VIP, 53, b"query");
    let (_, back) = send_to(&mut ws, 0, FRONT, &q.by_client(), 1);
    let out = only(back, "query");
    let s = seen(&out);
    assert!(s.src == LOCAL_IP || s.src == LOCAL_IP2);
    let local = (s.src, s.sport);
    assert_frame(
        &out,
        &q.clone().addrs(local, (RS2, 5353)).ttl(60).to_server(RS2_MAC),
        "Full-NAT UDP, same length (no TOA)",
    );
    let a = Seg::udp(RS2, 5353, local.0, local.1, b"answer").ttl(64);
    let (front, _) = send_to(&mut ws, 0, BACK, &a.by_server(RS2_MAC), 2);
    assert_frame(
        &only(front, "answer"),
        &a.clone().addrs((VIP, 53), (CLIENT_IP, 5300)).ttl(63).to_client(),
        "answer from VIP:53",
    );
    assert_eq!(snapshot(&ws[0]).toa_skipped, 0);
    assert_accounting_all(&ws);
}

// ---- 4. DR and IPIP ----

#[test]
fn dr_changes_only_macs_and_ttl() {
    let shared = one_service(1, 80, &[rs(RS3, 80, 1, Dr)]);
    let mut ws = vec![lb_worker(&shared)];
    for (i, seg) in [
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).options(&syn_options(1460)),
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(1),
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK).seq(0x1000_0001).ack(1).data(b"hello"),
    ]
    .iter()
    .enumerate()
    {
        let input = seg.by_client();
        let (front, back) = send_to(&mut ws, 0, FRONT, &input, i as u64);
        assert!(front.is_empty());
        let out = only(back, "DR");
        assert_frame(&out, &seg.clone().ttl(60).to_server(RS3_MAC), "DR frame");
        assert_eq!(&out[..12], &[RS3_MAC, BACK_MAC].concat()[..], "MACs: back port to server");
        // L3/L4 identical except the TTL (byte 8) and header checksum (10..12).
        for (k, (a, b)) in input[14..].iter().zip(&out[14..]).enumerate() {
            if ![8, 10, 11].contains(&k) {
                assert_eq!(a, b, "byte {k} of the IP packet changed");
            }
        }
        assert_eq!(out[14 + 8], input[14 + 8] - 1);
    }
    assert_accounting_all(&ws);
}

#[test]
fn tunnel_encapsulates_and_answers_over_mtu_with_frag_needed() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Tunnel)]);
    let opts = LbOpts { port_mtu: vec![1500, 600], ..LbOpts::default() };
    let mut ws = lb_workers(&shared, 1, &opts);

    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).options(&syn_options(1460)).ident(0x0a0b);
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert!(front.is_empty());
    let out = only(back, "IPIP");
    let outer = ipv4(Ip { ttl: 64, ident: 0x0a0b, ..Ip::new(BACK_IP, RS1, PROTO_IPIP) }, &hop(&syn.ip()));
    assert_frame(&out, &eth(RS1_MAC, BACK_MAC, ETH_IPV4, &outer), "IPIP frame");
    let s = seen(&out);
    assert_eq!((s.src, s.dst, s.proto, s.ttl, s.df), (BACK_IP, RS1, PROTO_IPIP, 64, true));
    assert_eq!(&s.payload[..], &hop(&syn.ip())[..], "inner packet intact but for TTL - 1");

    // A 590-byte DF packet needs 610 bytes with the outer header: frag needed, MTU 580.
    let big = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(1).data(&[0x5a; 550]).ident(0x0c0d);
    assert_eq!(big.ip().len(), 590);
    let (front, back) = send_to(&mut ws, 0, FRONT, &big.by_client(), 2);
    assert!(back.is_empty(), "nothing to the server");
    let out = only(front, "frag needed");
    let quote = &hop(&big.ip())[..28];
    let err = icmp_ip(VIP, CLIENT_IP, 0xc0, 0x0c0d, 64, &icmp_msg(3, 4, 580, quote));
    assert_frame(&out, &eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &err), "ICMP fragmentation needed");
    let s = seen(&out);
    assert_eq!((s.src, s.dst, s.eth_dst), (VIP, CLIENT_IP, CLIENT_MAC));
    assert_eq!(u16::from_be_bytes([s.payload[6], s.payload[7]]), 580, "next-hop MTU");
    assert_eq!(snapshot(&ws[0]).icmp_errors_sent, 1);

    // Without DF: dropped, rvs does not fragment.
    let (front, back) = send_to(&mut ws, 0, FRONT, &big.clone().df(false).by_client(), 3);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![(DropReason::TunnelTooBig.name(), 1)]);
    assert_accounting_all(&ws);
}

// ---- 5. drops ----

#[test]
fn ack_for_unknown_flow_is_tcp_no_conn() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let (f, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).ack(1).by_client(), 1);
    assert!(f.is_empty() && b.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![("tcp_no_conn", 1)]);
    assert_eq!(snapshot(&ws[0]).conns_created, 0);
    assert_accounting_all(&ws);
}

#[test]
fn tcp_to_vip_port_without_service_is_l4_no_service() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 443, SYN).by_client(), 1);
    send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, CPORT, VIP, 80, b"x").by_client(), 2);
    assert_eq!(drops_of(&ws[0]), vec![("l4_no_service", 2)], "TCP :443 and UDP :80 have no service");
    assert_accounting_all(&ws);
}

#[test]
fn all_servers_weight_zero_is_no_server() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 0, Nat), rs(RS2, 80, 0, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let (f, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 1);
    assert!(f.is_empty() && b.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![("no_server", 1)]);
    assert_accounting_all(&ws);
}

#[test]
fn full_conn_table_drops_new_flows_and_keeps_existing_ones() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = lb_workers(&shared, 1, &LbOpts { conn_capacity: 2, ..LbOpts::default() });
    for p in [CPORT, CPORT + 1] {
        let (_, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, p, VIP, 80, SYN).by_client(), 1);
        assert_eq!(b.len(), 1);
    }
    let (f, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 2, VIP, 80, SYN).by_client(), 2);
    assert!(f.is_empty() && b.is_empty(), "third flow dropped");
    assert_eq!(drops_of(&ws[0]), vec![("conn_table_full", 1)]);
    for p in [CPORT, CPORT + 1] {
        let ack = Seg::tcp(CLIENT_IP, p, VIP, 80, ACK).seq(0x1000_0001).ack(1);
        let (_, b) = send_to(&mut ws, 0, FRONT, &ack.by_client(), 3);
        assert_frame(
            &only(b, "existing flow"),
            &ack.clone().addrs((CLIENT_IP, p), (RS1, 80)).ttl(60).to_server(RS1_MAC),
            "existing flow forwarded",
        );
        let reply = Seg::tcp(RS1, 80, CLIENT_IP, p, ACK).ttl(64);
        let (f, _) = send_to(&mut ws, 0, BACK, &reply.by_server(RS1_MAC), 4);
        assert_eq!(f.len(), 1, "replies of existing flows too");
    }
    assert_eq!(snapshot(&ws[0]).conns_created, 2);
    assert_accounting_all(&ws);
}

#[test]
fn ttl_one_gets_time_exceeded_from_the_vip() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).ttl(1).ident(0x4242);
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert!(back.is_empty());
    let out = only(front, "time exceeded");
    let err = icmp_ip(VIP, CLIENT_IP, 0xc0, 0x4242, 64, &icmp_msg(11, 0, 0, &syn.ip()[..28]));
    assert_frame(
        &out,
        &eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &err),
        "ICMP time exceeded quoting the packet as received",
    );
    assert_eq!(seen(&out).src, VIP);
    let s = snapshot(&ws[0]);
    assert_eq!((s.drop_count(DropReason::TtlExceeded), s.icmp_errors_sent, s.local_originated), (1, 1, 1));
    assert_accounting_all(&ws);
}

/// A flood of expiring packets from one client: the first 6 get a time exceeded (the
/// per-destination burst), the rest are dropped without one and counted; a second later
/// one more goes. Every packet is still counted `ttl_exceeded`.
#[test]
fn time_exceeded_is_rate_limited_per_destination() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let second = 1_000_000_000;
    let mut errors = 0;
    for i in 0..20u16 {
        let syn = Seg::tcp(CLIENT_IP, CPORT + i, VIP, 80, SYN).ttl(1);
        let (front, _) = send_to(&mut ws, 0, FRONT, &syn.by_client(), second + u64::from(i));
        errors += front.len();
    }
    assert_eq!(errors, 6, "the per-destination burst");
    let s = snapshot(&ws[0]);
    assert_eq!((s.drop_count(DropReason::TtlExceeded), s.icmp_errors_sent, s.icmp_errors_limited), (20, 6, 14));
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).ttl(1);
    let (front, _) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 2 * second + 100);
    assert_eq!(front.len(), 1, "one more a second later");
    assert_accounting_all(&ws);
}

#[test]
fn server_packets_without_connection_are_dropped_by_destination_kind() {
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None),
        service(1, Tcp, 81, Rr, &[rs(RS2, 81, 1, FullNat)], None),
    ]);
    let mut ws = vec![lb_worker(&shared)];
    // NAT: a server "reply" to a client no connection knows is transit traffic.
    send_to(&mut ws, 0, BACK, &Seg::tcp(RS1, 80, CLIENT_IP, CPORT, SYN | ACK).ttl(64).by_server(RS1_MAC), 1);
    assert_eq!(drops_of(&ws[0]), vec![("ip_not_for_us", 1)]);
    // Full-NAT: a packet to a local address and port no connection holds.
    send_to(&mut ws, 0, BACK, &Seg::tcp(RS2, 81, LOCAL_IP, 2000, SYN | ACK).ttl(64).by_server(RS2_MAC), 2);
    assert_eq!(drops_of(&ws[0]), vec![("ip_not_for_us", 1), ("reply_no_conn", 1)]);
    assert_accounting_all(&ws);
}

#[test]
fn nat_reply_with_ttl_one_gets_time_exceeded_from_our_back_address() {
    let shared = one_service(1, 80, &[rs(RS1, 8080, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 1);
    let reply = Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, SYN | ACK).ack(0x1000_0001).ttl(1).ident(0x2121);
    let (front, back) = send_to(&mut ws, 0, BACK, &reply.by_server(RS1_MAC), 2);
    assert!(front.is_empty(), "not forwarded");
    let out = only(back, "time exceeded to the server");
    let s = seen(&out);
    assert_eq!((s.dst, s.eth_dst, s.proto, s.payload[0]), (RS1, RS1_MAC, PROTO_ICMP, 11));
    // The server sent to the client through us as its gateway: the error comes from our
    // address on its side, as a router's would (RFC 1812 §4.3.2.4), never from the client.
    assert_eq!(s.src, BACK_IP, "source of the time exceeded");
    let err = icmp_ip(BACK_IP, RS1, 0xc0, 0x2121, 64, &icmp_msg(11, 0, 0, &reply.ip()[..28]));
    assert_frame(&out, &eth(RS1_MAC, BACK_MAC, ETH_IPV4, &err), "time exceeded");
    assert_accounting_all(&ws);
}

#[test]
fn expired_connections_leave_the_table_and_the_server_counters() {
    let shared = publish(vec![
        service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None),
        service(1, Tcp, 81, Rr, &[rs(RS2, 81, 1, FullNat)], None),
    ]);
    let mut ws = vec![lb_worker(&shared)];
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 1);
    let (_, back) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 81, SYN).by_client(), 1);
    let local = seen(&only(back, "Full-NAT SYN"));
    assert_eq!(snapshot(&ws[0]).conns, 2, "conns gauge");
    assert_eq!((server_stats(&shared, 0, 0).active_conns, server_stats(&shared, 1, 0).active_conns), (1, 1));
    // SYN_RECV times out after 60 s (IPVS's default).
    poll_all(&mut ws[..], 61 * SEC);
    assert_eq!(snapshot(&ws[0]).conns, 0);
    assert!(ws[0].lb().expect("engine").conns().is_empty());
    for svc in 0..2 {
        let st = server_stats(&shared, svc, 0);
        assert_eq!((st.active_conns, st.inactive_conns, st.conns), (0, 0, 1), "service {svc}");
        assert_eq!(service_stats(&shared, svc).active_conns, 0);
    }
    // Late packets of the expired flows find nothing.
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).by_client(), 62 * SEC);
    send_to(&mut ws, 0, BACK, &Seg::tcp(RS2, 81, local.src, local.sport, ACK).ttl(64).by_server(RS2_MAC), 62 * SEC);
    assert_eq!(drops_of(&ws[0]), vec![("reply_no_conn", 1), ("tcp_no_conn", 1)]);
    assert_accounting_all(&ws);
}

// ---- 6. two workers ----

#[test]
fn two_workers_redirect_client_packets_and_nat_replies_to_the_owner() {
    let n = 2;
    let shared = one_service(n, 80, &[rs(RS1, 8080, 1, Nat)]);
    let mut ws = lb_workers(&shared, n, &LbOpts::default());
    let cport = cport_owned_by(1, n, CPORT);
    let (owner, other) = (1, 0);

    let syn = Seg::tcp(CLIENT_IP, cport, VIP, 80, SYN);
    inject(&mut ws[other], FRONT, &syn.by_client());
    poll_all(&mut ws[..], 1);
    assert!(take_tx(&mut ws[other], BACK).is_empty() && take_tx(&mut ws[other], FRONT).is_empty());
    assert_frame(
        &only(take_tx(&mut ws[owner], BACK), "via owner"),
        &syn.clone().addrs((CLIENT_IP, cport), (RS1, 8080)).ttl(60).to_server(RS1_MAC),
        "redirected SYN",
    );
    assert_eq!((snapshot(&ws[other]).redirected_out, snapshot(&ws[owner]).redirected_in), (1, 1));
    assert_eq!((snapshot(&ws[other]).conns_created, snapshot(&ws[owner]).conns_created), (0, 1));

    // The NAT reply arrives at the other worker too: redirected by the client's owner.
    let syn_ack = Seg::tcp(RS1, 8080, CLIENT_IP, cport, SYN | ACK).ack(0x1000_0001).ttl(64);
    inject(&mut ws[other], BACK, &syn_ack.by_server(RS1_MAC));
    poll_all(&mut ws[..], 2);
    assert!(take_tx(&mut ws[other], FRONT).is_empty());
    assert_frame(
        &only(take_tx(&mut ws[owner], FRONT), "reply via owner"),
        &syn_ack.clone().addrs((VIP, 80), (CLIENT_IP, cport)).ttl(63).to_client(),
        "redirected reply",
    );
    assert_eq!((snapshot(&ws[other]).redirected_out, snapshot(&ws[owner]).redirected_in), (2, 2));
    assert_accounting_all(&ws);
}

#[test]
fn two_workers_redirect_fullnat_replies_to_the_local_port_owner() {
    let n = 2;
    let shared = one_service(n, 80, &[rs(RS1, 8080, 1, FullNat)]);
    let mut ws = lb_workers(&shared, n, &LbOpts::default());
    let owner = 0;
    let cport = cport_owned_by(owner, n, CPORT);
    let syn = Seg::tcp(CLIENT_IP, cport, VIP, 80, SYN);
    inject(&mut ws[owner], FRONT, &syn.by_client());
    poll_all(&mut ws[..], 1);
    let s = seen(&only(take_tx(&mut ws[owner], BACK), "SYN"));
    assert_eq!(lport_owner(s.sport, n), owner);
    assert_eq!(snapshot(&ws[owner]).redirected_out, 0, "the owner handled it itself");

    // The server's reply lands on the other worker (as RSS might put it).
    let wrong = 1 - owner;
    let syn_ack = Seg::tcp(RS1, 8080, s.src, s.sport, SYN | ACK).ack(0x1000_0001).ttl(64);
    inject(&mut ws[wrong], BACK, &syn_ack.by_server(RS1_MAC));
    poll_all(&mut ws[..], 2);
    assert!(take_tx(&mut ws[wrong], FRONT).is_empty());
    assert_frame(
        &only(take_tx(&mut ws[owner], FRONT), "via lport owner"),
        &syn_ack.clone().addrs((VIP, 80), (CLIENT_IP, cport)).ttl(63).to_client(),
        "Full-NAT reply",
    );
    assert_eq!((snapshot(&ws[wrong]).redirected_out, snapshot(&ws[owner]).redirected_in), (1, 1));
    assert_accounting_all(&ws);
}

// ---- 7. persistence ----

#[test]
fn persistence_holds_across_workers() {
    let n = 2;
    let servers = [rs(RS1, 80, 1, Nat), rs(RS2, 80, 1, Nat), rs(RS3, 80, 1, Nat)];
    // Without persistence, worker 0 and worker 1 start their round robin at different
    // servers, so their first connections differ: the check below is not vacuous.
    let first_server = |shared: &SharedServices| -> Vec<Ipv4Addr> {
        let mut ws = lb_workers(shared, n, &LbOpts::default());
        let picks = (0..n)
            .map(|w| {
                let p = cport_owned_by(w, n, CPORT);
                inject(&mut ws[w], FRONT, &Seg::tcp(CLIENT_IP, p, VIP, 80, SYN).by_client());
                poll_all(&mut ws[..], 1);
                seen(&only(take_tx(&mut ws[w], BACK), "SYN")).dst
            })
            .collect();
        assert_accounting_all(&ws);
        picks
    };
    let plain = first_server(&one_service(n, 80, &servers));
    assert_ne!(plain[0], plain[1], "round robin alone spreads the two connections");

    let persist = Arc::new(PersistTable::new(1024, 300, Ipv4Addr::new(255, 255, 255, 255)));
    let sticky = publish(vec![service(n, Tcp, 80, Rr, &servers, Some(persist))]);
    let picks = first_server(&sticky);
    assert_eq!(picks[0], picks[1], "one client, two ports, two workers: one server");
}

// ---- 8. ICMP errors ----

#[test]
fn nat_server_port_unreachable_reaches_the_client_about_its_own_packet() {
    let shared = one_service(1, 80, &[rs(RS1, 8080, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).options(&syn_options(1460));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    let forwarded = only(back, "SYN");
    let sent_ip = &forwarded[14..];

    // The server quotes the whole packet (Linux quotes up to 576 bytes) or only the
    // header and 8 bytes (RFC 792's minimum).
    for (i, quote_len) in [sent_ip.len(), 28].into_iter().enumerate() {
        let unreach = icmp_ip(RS1, CLIENT_IP, 0, 0x5555, 64, &icmp_msg(3, 3, 0, &sent_ip[..quote_len]));
        let (front, back) = send_to(&mut ws, 0, BACK, &pad60(eth(BACK_MAC, RS1_MAC, ETH_IPV4, &unreach)), 2 + i as u64);
        assert!(back.is_empty());
        let out = only(front, "translated error");
        // What the client sent (as it left rvs: TTL - 1), quoted to the same length.
        let client_view = &hop(&syn.ip())[..quote_len];
        let want = icmp_ip(VIP, CLIENT_IP, 0, 0x5555, 63, &icmp_msg(3, 3, 0, client_view));
        assert_frame(
            &out,
            &eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &want),
            "port unreachable from VIP about client -> VIP:80",
        );
        let s = seen(&out);
        assert_eq!((s.src, s.dst, s.proto), (VIP, CLIENT_IP, PROTO_ICMP));
    }
    assert_eq!(snapshot(&ws[0]).icmp_errors_translated, 2);
    assert_accounting_all(&ws);
}

#[test]
fn fullnat_server_port_unreachable_reaches_the_client_about_its_own_packet() {
    let shared = one_service(1, 80, &[rs(RS1, 8080, 1, FullNat)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).options(&syn_options(1460));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    let forwarded = only(back, "SYN");
    let s = seen(&forwarded);
    let unreach = icmp_ip(RS1, s.src, 0, 0x6666, 64, &icmp_msg(3, 3, 0, &forwarded[14..]));
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS1_MAC, ETH_IPV4, &unreach), 2);
    assert!(back.is_empty());
    // The quote becomes client -> VIP:80 again; the TOA the server saw stays in it.
    let mut opts = toa_option(CLIENT_IP, CPORT);
    opts.extend(syn_options(1460));
    let client_view = syn.clone().options(&opts).ttl(60).ip();
    let want = icmp_ip(VIP, CLIENT_IP, 0, 0x6666, 63, &icmp_msg(3, 3, 0, &client_view));
    assert_frame(&only(front, "translated"), &eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &want), "Full-NAT port unreachable");
    assert_eq!(snapshot(&ws[0]).icmp_errors_translated, 1);
    assert_accounting_all(&ws);
}

#[test]
fn nat_client_side_error_about_a_reply_reaches_the_server() {
    let shared = one_service(1, 80, &[rs(RS1, 8080, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 1);
    let reply = Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, SYN | ACK).ack(0x1000_0001).ttl(64).data(&[7; 40]);
    let (front, _) = send_to(&mut ws, 0, BACK, &reply.by_server(RS1_MAC), 2);
    let to_client = only(front, "reply");
    // The client answers the reply with a frag needed about VIP:80 -> client.
    let err = icmp_ip(CLIENT_IP, VIP, 0, 0x7777, 64, &icmp_msg(3, 4, 576, &to_client[14..]));
    let (front, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &err), 3);
    assert!(front.is_empty());
    // The server must see it about its own packet RS1:8080 -> client, to itself.
    let server_view = hop(&reply.ip());
    let want = icmp_ip(CLIENT_IP, RS1, 0, 0x7777, 63, &icmp_msg(3, 4, 576, &server_view));
    assert_frame(&only(back, "to server"), &eth(RS1_MAC, BACK_MAC, ETH_IPV4, &want), "client-side error to the server");
    assert_accounting_all(&ws);
}

/// The checkers must catch what they are there to catch.
#[test]
fn checkers_reject_wrong_checksums() {
    let good = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK).data(b"abc").by_client();
    seen(&good);
    for (at, what) in [(14 + 8, "IP header"), (14 + 20 + 20, "TCP payload")] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        assert!(std::panic::catch_unwind(|| seen(&bad)).is_err(), "{what} corruption caught");
    }
    let udp = Seg::udp(CLIENT_IP, CPORT, VIP, 53, b"abcd").by_client();
    seen(&udp);
    let mut bad = udp.clone();
    bad[14 + 20 + 8] ^= 0x80;
    assert!(std::panic::catch_unwind(|| seen(&bad)).is_err(), "UDP corruption caught");
}

// ---- ARP resolution of a server ----

#[test]
fn first_packet_to_an_unresolved_server_waits_for_arp() {
    let rs4 = Ipv4Addr::new(10, 20, 0, 14);
    let rs4_mac = [0x02, 0, 0, 0, 0x05, 0x14];
    let shared = one_service(1, 80, &[rs(rs4, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert!(front.is_empty());
    assert_eq!(
        back,
        vec![pad60(eth(BCAST, BACK_MAC, ETH_ARP, &arp(1, BACK_MAC, BACK_IP, [0; 6], rs4)))],
        "who-has the server"
    );
    assert_eq!(ws[0].neighbours().parked(), 1);
    assert_accounting_all(&ws);

    let (_, back) = send_to(&mut ws, 0, BACK, &arp_reply(rs4_mac, rs4, BACK_MAC, BACK_IP), 2);
    assert_frame(
        &only(back, "released SYN"),
        &syn.clone().addrs((CLIENT_IP, CPORT), (rs4, 80)).ttl(60).to_server(rs4_mac),
        "SYN after ARP",
    );
    assert!(
        matches!(ws[0].neighbours().info(rs4), Some((BACK, NeighInfo::Reachable { mac: MacAddr(m), .. })) if m == rs4_mac)
    );
    assert_eq!(ws[0].neighbours().parked(), 0);
    assert_accounting_all(&ws);
}

/// A connection caches its next hop towards the server (`conn::CachedHop`); the cache
/// must follow the neighbour table: a packet sent after the server's MAC changed (ARP)
/// goes to the new MAC, and a server learned only after the first packet (parked while
/// ARP resolves) is reached once it answers.
#[test]
fn cached_next_hop_follows_the_neighbour_table() {
    use rvs_dataplane::l2l3::neigh::NeighSync;
    use rvs_dataplane::lb::{LbConfig, LbEngine};
    use rvs_dataplane::mesh::MeshLinks;
    use rvs_dataplane::types::Timeouts;
    use rvs_dataplane::worker::Worker;
    use rvs_drivers::mem::MemPool;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x13];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x13];
    let shared = one_service(1, 80, &[rs(RS3, 80, 1, Dr)]);
    // RS3 is not a static neighbour here: learned from ARP, so its MAC can change.
    let mut config = lb_worker_config(0, 1);
    config.static_neighbours.retain(|n| n.ip != RS3);
    let engine = LbEngine::new(
        0,
        1,
        Arc::clone(&shared),
        LbConfig {
            conn_capacity: 1024,
            conn_pages: Default::default(),
            timeouts: Timeouts::default(),
            port_mtu: vec![1500, 1500],
            rss: None,
            rss6: None,
            local_addrs: vec![LOCAL_IP, LOCAL_IP2],
            local_addrs6: Vec::new(),
            cookie_secret: rvs_dataplane::synproxy::cookie::CookieSecret::from_bytes([7; 32]),
        },
    );
    let w = Worker::new(&config, queues(), MemPool::new(), NeighSync::none()).expect("valid config");
    let mut ws = vec![w.with_lb(engine, MeshLinks::none())];

    // The SYN waits for ARP; RS3's reply (MAC_A) releases it.
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).options(&syn_options(1460));
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    assert!(front.is_empty());
    assert_eq!(only(back, "ARP request")[12..14], ETH_ARP.to_be_bytes());
    let (_, back) = send_to(&mut ws, 0, BACK, &arp_reply(MAC_A, RS3, BACK_MAC, BACK_IP), 2);
    assert_frame(&only(back, "released SYN"), &syn.clone().ttl(60).to_server(MAC_A), "SYN to MAC_A");

    let mut seq = 0x1000_0001;
    let mut data = |ws: &mut Vec<MemWorker>, now: u64, mac: [u8; 6], what: &str| {
        let seg = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK).seq(seq).ack(1).data(b"hi");
        seq += 2;
        let (_, back) = send_to(ws, 0, FRONT, &seg.by_client(), now);
        assert_frame(&only(back, what), &seg.clone().ttl(60).to_server(mac), what);
    };
    data(&mut ws, 3, MAC_A, "first data packet (caches MAC_A)");
    data(&mut ws, 4, MAC_A, "cached MAC_A");
    // RS3 moves to MAC_B (a gratuitous-style ARP request to us updates the entry).
    let (_, back) = send_to(&mut ws, 0, BACK, &arp_request(MAC_B, RS3, BACK_IP), 5);
    assert_eq!(back.len(), 1, "our ARP reply");
    data(&mut ws, 6, MAC_B, "after the MAC change");
    data(&mut ws, 7, MAC_B, "cached MAC_B");
    assert_accounting_all(&ws);
}

/// Routed packets (here NAT replies to an on-link client) skip the neighbour lookup when
/// they go to the same next hop as the packet before (`worker::LastHop`); that memo must
/// follow the neighbour table like the connections' cached hop: after the client's MAC
/// changes (ARP), the next reply goes to the new MAC, and the one after it too.
#[test]
fn routed_replies_follow_the_next_hops_mac() {
    use rvs_dataplane::l2l3::neigh::NeighSync;
    use rvs_dataplane::worker::Worker;
    use rvs_drivers::mem::MemPool;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
    let shared = one_service(1, 80, &[rs(RS1, 8080, 1, Nat)]);
    // The client is not a static neighbour here: learned from ARP, so its MAC can change.
    let mut config = lb_worker_config(0, 1);
    config.static_neighbours.retain(|n| n.ip != CLIENT_IP);
    let engine = rvs_dataplane::lb::LbEngine::new(
        0,
        1,
        Arc::clone(&shared),
        rvs_dataplane::lb::LbConfig {
            conn_capacity: 1024,
            conn_pages: Default::default(),
            timeouts: rvs_dataplane::types::Timeouts::default(),
            port_mtu: vec![1500, 1500],
            rss: None,
            rss6: None,
            local_addrs: vec![LOCAL_IP, LOCAL_IP2],
            local_addrs6: Vec::new(),
            cookie_secret: rvs_dataplane::synproxy::cookie::CookieSecret::from_bytes([7; 32]),
        },
    );
    let w = Worker::new(&config, queues(), MemPool::new(), NeighSync::none()).expect("valid config");
    let mut ws = vec![w.with_lb(engine, rvs_dataplane::mesh::MeshLinks::none())];

    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).options(&syn_options(1460));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), 1);
    only(back, "SYN to server");
    // The SYN-ACK waits for ARP; the client's answer (MAC_A) releases it.
    let syn_ack = Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, SYN | ACK).seq(0x5000_0000).ack(0x1000_0001).ttl(64);
    let (front, _) = send_to(&mut ws, 0, BACK, &syn_ack.by_server(RS1_MAC), 2);
    assert_eq!(only(front, "ARP request")[12..14], ETH_ARP.to_be_bytes());
    let (front, _) = send_to(&mut ws, 0, FRONT, &arp_reply(MAC_A, CLIENT_IP, FRONT_MAC, FRONT_IP), 3);
    let released = only(front, "released SYN-ACK");
    assert_frame(
        &released,
        &syn_ack.clone().addrs((VIP, 80), (CLIENT_IP, CPORT)).ttl(63).frame(MAC_A, FRONT_MAC),
        "SYN-ACK to MAC_A",
    );

    let mut seq = 0x5000_0001;
    let mut reply = |ws: &mut Vec<MemWorker>, now: u64, mac: [u8; 6], what: &str| {
        let seg = Seg::tcp(RS1, 8080, CLIENT_IP, CPORT, PSH | ACK).seq(seq).ack(0x1000_0001).ttl(64).data(b"hi");
        seq += 2;
        let (front, _) = send_to(ws, 0, BACK, &seg.by_server(RS1_MAC), now);
        let want = seg.clone().addrs((VIP, 80), (CLIENT_IP, CPORT)).ttl(63).frame(mac, FRONT_MAC);
        assert_frame(&only(front, what), &want, what);
    };
    reply(&mut ws, 4, MAC_A, "first reply after the release");
    reply(&mut ws, 5, MAC_A, "second reply (the memo)");
    // The client moves to MAC_B (an ARP request to us updates its entry).
    let (front, _) = send_to(&mut ws, 0, FRONT, &arp_request(MAC_B, CLIENT_IP, FRONT_IP), 6);
    assert_eq!(front.len(), 1, "our ARP reply");
    reply(&mut ws, 7, MAC_B, "after the MAC change");
    reply(&mut ws, 8, MAC_B, "memo of MAC_B");
    assert_accounting_all(&ws);
}

// ---- 9. admission: allow/deny prefixes and maxconn ----

/// Publishes `svc`'s table again as generation `generation` with `admission`, keeping
/// its servers and counters (as the control plane does for a live change).
fn republish(shared: &SharedServices, generation: u64, admission: Admission) {
    let old = shared.load_full();
    let s = &old.services()[0];
    let next = Service {
        key: s.key,
        scheduler: s.scheduler,
        sched: Arc::clone(&s.sched),
        persist: None,
        servers: s.servers.clone(),
        local_addrs: s.local_addrs.clone(),
        local_addrs6: s.local_addrs6.clone(),
        stats: Arc::clone(&s.stats),
        admission,
        syn_proxy: Default::default(),
        unknown_flow: Default::default(),
    };
    shared.store(Arc::new(ServiceTable::new(generation, vec![next]).expect("table")));
}

fn nets(v: &[&str]) -> Vec<ipnet::Ipv4Net> {
    v.iter().map(|s| s.parse().expect("prefix")).collect()
}

#[test]
fn denied_clients_new_flows_are_dropped_and_counted_existing_flows_continue() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Nat)]);
    let mut ws = vec![lb_worker(&shared)];
    let (_, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 1);
    assert_eq!(b.len(), 1, "served before the list");

    // Live: deny the client's network.
    republish(&shared, 2, Admission::new(&[], &nets(&["10.10.0.0/24"]), 0));
    let ack = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(1);
    let (_, b) = send_to(&mut ws, 0, FRONT, &ack.by_client(), 2);
    assert_eq!(b.len(), 1, "the existing connection is not checked");
    let (f, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 1, VIP, 80, SYN).by_client(), 3);
    assert!(f.is_empty() && b.is_empty(), "a new flow is refused");
    assert_eq!(drops_of(&ws[0]), vec![("acl_denied", 1)]);
    assert_eq!(service_stats(&shared, 0).acl_denied, 1, "counted per service too");

    // An allow list the client is not on refuses it; deny wins over allow.
    republish(&shared, 3, Admission::new(&nets(&["192.0.2.0/24"]), &[], 0));
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 2, VIP, 80, SYN).by_client(), 4);
    republish(&shared, 4, Admission::new(&nets(&["10.0.0.0/8"]), &nets(&["10.10.0.2/32"]), 0));
    send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 3, VIP, 80, SYN).by_client(), 5);
    assert_eq!(drops_of(&ws[0]), vec![("acl_denied", 3)]);

    // On the allow list and off the deny list: served.
    republish(&shared, 5, Admission::new(&nets(&["10.10.0.0/24"]), &nets(&["10.10.0.3/32"]), 0));
    let (_, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 4, VIP, 80, SYN).by_client(), 6);
    assert_eq!(b.len(), 1, "allowed again");
    assert_eq!(snapshot(&ws[0]).conns_created, 2);
    assert_eq!(service_stats(&shared, 0).acl_denied, 3);
    assert_accounting_all(&ws);
}

#[test]
fn denied_udp_client_creates_no_connection() {
    let mut svc = service(1, Udp, 53, Rr, &[rs(RS1, 53, 1, Nat)], None);
    svc.admission = Admission::new(&[], &nets(&["10.10.0.2/32"]), 0);
    let shared = publish(vec![svc]);
    let mut ws = vec![lb_worker(&shared)];
    let (f, b) = send_to(&mut ws, 0, FRONT, &Seg::udp(CLIENT_IP, CPORT, VIP, 53, b"q").by_client(), 1);
    assert!(f.is_empty() && b.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![("acl_denied", 1)]);
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0);
    assert_accounting_all(&ws);
}

#[test]
fn maxconn_counts_the_service_over_every_worker_and_frees_places_as_connections_expire() {
    let n = 2;
    let mut svc = service(n, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat), rs(RS2, 80, 1, Nat)], None);
    svc.admission = Admission::new(&[], &[], 2);
    let shared = publish(vec![svc]);
    let mut ws = lb_workers(&shared, n, &LbOpts::default());
    let p0 = cport_owned_by(0, n, CPORT);
    let p1 = cport_owned_by(1, n, CPORT);
    for (w, p) in [(0, p0), (1, p1)] {
        let (_, b) = send_to(&mut ws, w, FRONT, &Seg::tcp(CLIENT_IP, p, VIP, 80, SYN).by_client(), 1);
        assert_eq!(b.len(), 1, "connection {} of 2 (worker {w})", w + 1);
    }
    // Both workers are now refused: the limit is the service's, not a per-worker share.
    for w in 0..n {
        let p = cport_owned_by(w, n, p0.max(p1) + 1);
        let (f, b) = send_to(&mut ws, w, FRONT, &Seg::tcp(CLIENT_IP, p, VIP, 80, SYN).by_client(), 2);
        assert!(f.is_empty() && b.is_empty(), "worker {w} at maxconn");
        assert_eq!(drops_of(&ws[w]), vec![("service_maxconn", 1)], "worker {w}");
    }
    let st = service_stats(&shared, 0);
    assert_eq!((st.active_conns + st.inactive_conns, st.service_maxconn, st.acl_denied), (2, 2, 0));
    // Existing connections go on.
    let ack = Seg::tcp(CLIENT_IP, p0, VIP, 80, ACK).seq(0x1000_0001).ack(1);
    let (_, b) = send_to(&mut ws, 0, FRONT, &ack.by_client(), 3);
    assert_eq!(b.len(), 1, "an admitted connection is never cut");
    // A reset connection leaves the table after its CLOSE timeout; its place frees up.
    let rst = Seg::tcp(CLIENT_IP, p1, VIP, 80, RST | ACK).seq(0x1000_0001).ack(1);
    send_to(&mut ws, 1, FRONT, &rst.by_client(), 4);
    poll_all(&mut ws, 200_000_000_000);
    let p = cport_owned_by(1, n, p0.max(p1) + 100);
    let (_, b) = send_to(&mut ws, 1, FRONT, &Seg::tcp(CLIENT_IP, p, VIP, 80, SYN).by_client(), 200_000_000_001);
    assert_eq!(b.len(), 1, "a place freed");
    assert_accounting_all(&ws);
}

#[test]
fn client_rate_refuses_a_clients_burst_overflow_refills_and_leaves_other_clients_alone() {
    const S: u64 = 1_000_000_000;
    let mut svc = service(1, Tcp, 80, Rr, &[rs(RS1, 80, 1, Nat)], None);
    svc.admission = Admission::default().with_client_rate(1, 3);
    let shared = publish(vec![svc]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = |c: Ipv4Addr, p: u16| Seg::tcp(c, p, VIP, 80, SYN).by_client();
    let served =
        |ws: &mut Vec<MemWorker>, c: Ipv4Addr, p: u16, now: u64| send_to(ws, 0, FRONT, &syn(c, p), now).1.len();
    // A burst of 3, then refusals.
    for k in 0..3 {
        assert_eq!(served(&mut ws, CLIENT_IP, CPORT + k, S), 1, "burst {k}");
    }
    for k in 3..10 {
        assert_eq!(served(&mut ws, CLIENT_IP, CPORT + k, S), 0, "over the rate {k}");
    }
    assert_eq!(drops_of(&ws[0]), vec![("client_rate_limited", 7)]);
    assert_eq!(service_stats(&shared, 0).client_rate_limited, 7, "counted per service too");
    // Another client is untouched.
    let other: Ipv4Addr = "10.10.0.3".parse().expect("ip");
    assert_eq!(served(&mut ws, other, CPORT, S), 1, "another client has its own bucket");
    // Existing connections go on: only new flows are asked.
    let ack = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(1);
    assert_eq!(send_to(&mut ws, 0, FRONT, &ack.by_client(), S + 1).1.len(), 1);
    // One token per second comes back.
    assert_eq!(served(&mut ws, CLIENT_IP, CPORT + 20, 2 * S), 1, "refilled");
    assert_eq!(served(&mut ws, CLIENT_IP, CPORT + 21, 2 * S), 0);
    // Live: the limit removed.
    republish(&shared, 2, Admission::default());
    assert_eq!(served(&mut ws, CLIENT_IP, CPORT + 22, 2 * S), 1, "no limit any more");
    assert_eq!(snapshot(&ws[0]).conns_created, 6);
    assert_eq!(drops_of(&ws[0]), vec![("client_rate_limited", 8)]);
    assert_accounting_all(&ws);
}

// ---- 10. half-open DR entries evicted from a full table ----

#[test]
fn a_full_table_of_half_open_dr_entries_makes_room_for_a_new_syn_never_evicting_established() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Dr)]);
    let opts = LbOpts { conn_capacity: 4, ..LbOpts::default() };
    let mut ws = lb_workers(&shared, 1, &opts);
    let flooder: Ipv4Addr = "10.10.0.9".parse().expect("ip");
    // One established connection from the client, then three half-open from the flooder.
    assert_eq!(send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).by_client(), 1).1.len(), 1);
    let ack = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001).ack(1);
    assert_eq!(send_to(&mut ws, 0, FRONT, &ack.by_client(), 2).1.len(), 1);
    for k in 0..3 {
        send_to(&mut ws, 0, FRONT, &Seg::tcp(flooder, 5000 + k, VIP, 80, SYN).by_client(), 3 + u64::from(k));
    }
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 4);
    // The flood goes on: each new SYN evicts the oldest half-open entry.
    for k in 3..10 {
        let (_, b) =
            send_to(&mut ws, 0, FRONT, &Seg::tcp(flooder, 5000 + k, VIP, 80, SYN).by_client(), 10 + u64::from(k));
        assert_eq!(b.len(), 1, "SYN {k} forwarded");
    }
    // A legitimate SYN gets in too, and the established connection is still there.
    let (_, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 1, VIP, 80, SYN).by_client(), 30);
    assert_eq!(b.len(), 1, "legitimate SYN forwarded");
    let (_, b) = send_to(&mut ws, 0, FRONT, &ack.by_client(), 31);
    assert_eq!(b.len(), 1, "established connection untouched");
    let snap = snapshot(&ws[0]);
    assert_eq!(snap.half_open_evicted, 8);
    assert!(drops_of(&ws[0]).is_empty(), "{:?}", drops_of(&ws[0]));
    let st = service_stats(&shared, 0);
    assert_eq!(st.active_conns + st.inactive_conns, 4, "evicted entries left the counts");
    assert_accounting_all(&ws);
}

#[test]
fn a_full_table_with_nothing_half_open_still_drops_as_conn_table_full() {
    let shared = one_service(1, 80, &[rs(RS1, 80, 1, Dr)]);
    let opts = LbOpts { conn_capacity: 2, ..LbOpts::default() };
    let mut ws = lb_workers(&shared, 1, &opts);
    for k in 0..2u16 {
        send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + k, VIP, 80, SYN).by_client(), 1);
        let ack = Seg::tcp(CLIENT_IP, CPORT + k, VIP, 80, ACK).seq(0x1000_0001).ack(1);
        send_to(&mut ws, 0, FRONT, &ack.by_client(), 2);
    }
    let (_, b) = send_to(&mut ws, 0, FRONT, &Seg::tcp(CLIENT_IP, CPORT + 5, VIP, 80, SYN).by_client(), 3);
    assert!(b.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![("conn_table_full", 1)]);
    assert_eq!(snapshot(&ws[0]).half_open_evicted, 0);
    assert_accounting_all(&ws);
}
