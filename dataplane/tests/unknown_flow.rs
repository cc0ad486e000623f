//! `unknown_flow = "schedule"` through whole workers on the in-memory driver: two
//! "nodes" (separate workers with separately built but identical service tables, as two
//! rvsd behind an ECMP router), a flow opened on one and continued on the other.
//!
//! With a consistent scheduler (mh here, the lab's choice) the second node sends a
//! mid-flow segment it has never seen to the server the first node chose, creates the
//! connection entry (ESTABLISHED, counted `conns_unknown_scheduled`) and forwards the
//! rest of the flow through it. With the default `drop` the same segments are
//! `tcp_no_conn`; a RST of an unknown flow is dropped either way.

mod common;

use std::net::Ipv4Addr;

use common::l4::*;
use common::*;
use rvs_dataplane::service::SharedServices;
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, SchedulerKind, TcpState, UnknownFlow};

use ForwardMode::{Dr, Tunnel};

/// One node's table: TCP :80 on the VIP, mh over the three lab servers, `unknown`.
fn node(workers: usize, forward: ForwardMode, unknown: UnknownFlow) -> SharedServices {
    let mut s = service(
        workers,
        L4Proto::Tcp,
        80,
        SchedulerKind::Mh,
        &[rs(RS1, 80, 1, forward), rs(RS2, 80, 1, forward), rs(RS3, 80, 1, forward)],
        None,
    );
    s.unknown_flow = unknown;
    publish(vec![s])
}

/// Client `i` of the flows (mh hashes the client address: one client per flow spreads
/// the flows over the servers).
fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, i)
}

/// The server a DR frame was sent to, by its destination MAC.
fn dr_server(frame: &[u8]) -> Ipv4Addr {
    [RS1, RS2, RS3].into_iter().find(|ip| frame[..6] == server_mac(*ip)).expect("frame to a lab server")
}

/// The server an IPIP frame was sent to, by its outer destination address.
fn tunnel_server(frame: &[u8]) -> Ipv4Addr {
    let s = seen(frame);
    assert_eq!(s.proto, PROTO_IPIP, "IPIP");
    s.dst
}

/// Opens `n` flows on node A with a SYN each; returns the server each went to.
fn open_on(a: &mut [MemWorker], n: u8, server_of: fn(&[u8]) -> Ipv4Addr) -> Vec<Ipv4Addr> {
    (1..=n)
        .map(|i| {
            let syn = Seg::tcp(client(i), 40000 + u16::from(i), VIP, 80, SYN).options(&syn_options(1460));
            let (front, back) = send_to(a, 0, FRONT, &syn.by_client(), u64::from(i));
            assert!(front.is_empty());
            server_of(&only(back, "SYN to a server"))
        })
        .collect()
}

/// The next segment of flow `i` (as if ECMP had moved it after the handshake).
fn mid_flow(i: u8, flags: u8) -> Seg {
    Seg::tcp(client(i), 40000 + u16::from(i), VIP, 80, flags).seq(0x1000_0001).ack(0x5000_0001).data(b"more")
}

#[test]
fn dr_flows_moved_to_another_node_reach_the_same_server_and_get_an_entry() {
    let mut a = vec![lb_worker(&node(1, Dr, UnknownFlow::Schedule))];
    let mut b = vec![lb_worker(&node(1, Dr, UnknownFlow::Schedule))];
    let chosen = open_on(&mut a, 50, dr_server);
    let used: std::collections::HashSet<_> = chosen.iter().collect();
    assert!(used.len() >= 2, "mh spread 50 clients over {} server(s): the test would prove nothing", used.len());

    for (i, want) in (1..=50u8).zip(&chosen) {
        let seg = mid_flow(i, PSH | ACK);
        let (front, back) = send_to(&mut b, 0, FRONT, &seg.by_client(), 100 + u64::from(i));
        assert!(front.is_empty());
        let out = only(back, "moved segment to the server");
        assert_eq!(dr_server(&out), *want, "flow {i}: node B picked another server than node A");
        assert_frame(&out, &seg.clone().ttl(60).to_server(server_mac(*want)), "DR frame");
    }
    let s = snapshot(&b[0]);
    assert_eq!((s.conns_created, s.conns_unknown_scheduled), (50, 50));
    assert!(drops_of(&b[0]).is_empty(), "no drop: {:?}", drops_of(&b[0]));
    let states: Vec<ConnState> = b[0].lb().expect("engine").conns().iter().map(|(_, c)| c.state).collect();
    assert_eq!(states.len(), 50);
    assert!(states.iter().all(|s| *s == ConnState::Tcp(TcpState::Established)), "{states:?}");

    // The next segment of a moved flow uses its entry: nothing new is scheduled.
    let (_, back) = send_to(&mut b, 0, FRONT, &mid_flow(1, ACK).by_client(), 200);
    assert_eq!(dr_server(&only(back, "second segment")), chosen[0]);
    assert_eq!(snapshot(&b[0]).conns_unknown_scheduled, 50);
    // Node A never scheduled an unknown flow.
    assert_eq!(snapshot(&a[0]).conns_unknown_scheduled, 0);
    assert_accounting_all(&a);
    assert_accounting_all(&b);
}

#[test]
fn ipip_flows_moved_to_another_node_reach_the_same_server() {
    let mut a = vec![lb_worker(&node(1, Tunnel, UnknownFlow::Schedule))];
    let mut b = vec![lb_worker(&node(1, Tunnel, UnknownFlow::Schedule))];
    let chosen = open_on(&mut a, 12, tunnel_server);
    for (i, want) in (1..=12u8).zip(&chosen) {
        let (front, back) = send_to(&mut b, 0, FRONT, &mid_flow(i, PSH | ACK).by_client(), 100 + u64::from(i));
        assert!(front.is_empty());
        assert_eq!(tunnel_server(&only(back, "moved segment")), *want, "flow {i}");
    }
    assert_eq!(snapshot(&b[0]).conns_unknown_scheduled, 12);
    assert_accounting_all(&b);
}

#[test]
fn with_two_workers_the_owner_schedules_the_moved_flow() {
    let mut a = vec![lb_worker(&node(1, Dr, UnknownFlow::Schedule))];
    let shared = node(2, Dr, UnknownFlow::Schedule);
    let mut b = lb_workers(&shared, 2, &LbOpts::default());
    let chosen = open_on(&mut a, 20, dr_server);
    for (i, want) in (1..=20u8).zip(&chosen) {
        // Every segment arrives at worker 0; the owner's copy goes out after the redirect.
        let (front, back) = send_to(&mut b, 0, FRONT, &mid_flow(i, PSH | ACK).by_client(), 100 + u64::from(i));
        assert!(front.is_empty());
        assert_eq!(dr_server(&only(back, "moved segment")), *want, "flow {i}");
    }
    let total: u64 = b.iter().map(|w| snapshot(w).conns_unknown_scheduled).sum();
    assert_eq!(total, 20);
    assert!(snapshot(&b[0]).redirected_out > 0, "some flows belong to worker 1");
    assert_accounting_all(&b);
}

#[test]
fn by_default_a_moved_flow_is_tcp_no_conn() {
    let mut b = vec![lb_worker(&node(1, Dr, UnknownFlow::Drop))];
    for i in 1..=5u8 {
        let (front, back) = send_to(&mut b, 0, FRONT, &mid_flow(i, PSH | ACK).by_client(), u64::from(i));
        assert!(front.is_empty() && back.is_empty());
    }
    assert_eq!(drops_of(&b[0]), vec![("tcp_no_conn", 5)]);
    assert_eq!((snapshot(&b[0]).conns_created, snapshot(&b[0]).conns_unknown_scheduled), (0, 0));
    assert_accounting_all(&b);
}

#[test]
fn a_rst_of_an_unknown_flow_is_dropped_even_when_scheduling() {
    let mut b = vec![lb_worker(&node(1, Dr, UnknownFlow::Schedule))];
    for flags in [RST, RST | ACK] {
        let (front, back) = send_to(&mut b, 0, FRONT, &mid_flow(1, flags).by_client(), 1);
        assert!(front.is_empty() && back.is_empty());
    }
    assert_eq!(drops_of(&b[0]), vec![("tcp_no_conn", 2)]);
    assert_eq!(snapshot(&b[0]).conns_created, 0);
    assert_accounting_all(&b);
}

#[test]
fn a_moved_flow_with_no_server_left_is_no_server() {
    let mut s = service(1, L4Proto::Tcp, 80, SchedulerKind::Mh, &[rs(RS1, 80, 0, Dr)], None);
    s.unknown_flow = UnknownFlow::Schedule;
    let mut b = vec![lb_worker(&publish(vec![s]))];
    let (front, back) = send_to(&mut b, 0, FRONT, &mid_flow(1, ACK).by_client(), 1);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(drops_of(&b[0]), vec![("no_server", 1)]);
    assert_eq!(snapshot(&b[0]).conns_unknown_scheduled, 0);
    assert_accounting_all(&b);
}
