//! Neighbour resolution through the worker: pending queues, retries and give-up, static
//! and learned entries over time, and the cross-worker sync.

mod common;

use common::*;
use rvs_dataplane::l2l3::neigh::{NeighInfo, NeighSync, PENDING_MAX};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::wire::MacAddr;
use rvs_dataplane::worker::{ConfigError, Worker};
use rvs_drivers::mem::MemPool;

#[test]
fn pending_overflow_and_resolution_timeout_are_counted() {
    let mut w = lab_worker();
    for seq in 0..(PENDING_MAX as u16 + 2) {
        inject(&mut w, FRONT, &ping(ROUTER_MAC, FAR_CLIENT, VIP, seq));
    }
    w.poll_once(0);
    let who_has = pad60(eth(BCAST, FRONT_MAC, ETH_ARP, &arp(1, FRONT_MAC, FRONT_IP, [0; 6], ROUTER_IP)));
    assert_eq!(take_tx(&mut w, FRONT), vec![who_has.clone()], "one request for the whole burst");
    assert_eq!(snapshot(&w).drop_count(DropReason::NeighPendingFull), 2);
    assert_eq!(w.neighbours().parked(), PENDING_MAX);
    assert_accounting(&w);

    // Re-sent every second, given up after the third.
    for (t, expect_request) in [(SEC / 2, false), (SEC, true), (3 * SEC / 2, false), (2 * SEC, true)] {
        w.poll_once(t);
        let sent = take_tx(&mut w, FRONT);
        assert_eq!(sent.len(), usize::from(expect_request), "at {t} ns");
        if expect_request {
            assert_eq!(sent[0], who_has);
        }
        assert_eq!(snapshot(&w).drop_count(DropReason::NeighUnresolved), 0);
    }
    w.poll_once(3 * SEC);
    assert!(take_tx(&mut w, FRONT).is_empty());
    let s = snapshot(&w);
    assert_eq!(s.drop_count(DropReason::NeighUnresolved), PENDING_MAX as u64);
    assert_eq!(s.arp_requests_sent, 3);
    assert_eq!(w.neighbours().info(ROUTER_IP), None);
    assert_eq!(w.neighbours().parked(), 0);
    assert_accounting(&w);

    // A late answer is addressed to us, so it creates a fresh entry (RFC 826).
    roundtrip(&mut w, FRONT, &arp_reply(ROUTER_MAC, ROUTER_IP, FRONT_MAC, FRONT_IP), 4 * SEC);
    assert_eq!(w.neighbours().lookup(ROUTER_IP), Some(MacAddr(ROUTER_MAC)));
}

#[test]
fn empty_pool_counts_no_mbuf_and_the_retry_recovers() {
    let mut w = Worker::new(&lab_config(), queues(), MemPool::with_limit(0), NeighSync::none()).unwrap();
    roundtrip(&mut w, FRONT, &ping(ROUTER_MAC, FAR_CLIENT, VIP, 1), 0);
    let s = snapshot(&w);
    assert_eq!((s.drop_count(DropReason::NoMbuf), s.arp_requests_sent), (1, 0));
    assert_eq!(w.neighbours().parked(), 1, "the reply still waits");
    assert_accounting(&w);
}

#[test]
fn static_neighbour_never_expires() {
    let mut w = lab_worker_with_static_router();
    for (i, t) in [0, 301 * SEC, 10_000 * SEC, u64::MAX / 2].into_iter().enumerate() {
        let (front, _) = roundtrip(&mut w, FRONT, &ping(ROUTER_MAC, FAR_CLIENT, FRONT_IP, i as u16), t);
        assert_eq!(front, vec![expected_pong(ROUTER_MAC, FRONT_IP, FAR_CLIENT, i as u16)], "at {t}");
    }
    // ARP cannot overwrite it either.
    roundtrip(&mut w, FRONT, &arp_reply([2, 0, 0, 0, 0, 0x66], ROUTER_IP, FRONT_MAC, FRONT_IP), u64::MAX / 2);
    assert_eq!(w.neighbours().info(ROUTER_IP), Some((FRONT, NeighInfo::Static(MacAddr(ROUTER_MAC)))));
    assert_eq!(snapshot(&w).arp_requests_sent, 0);
    assert_accounting(&w);
}

#[test]
fn learned_neighbour_expires_after_reachable_time_unless_refreshed() {
    let mut w = lab_worker();
    roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP), 0);
    roundtrip(&mut w, BACK, &arp_request(RS_MAC, RS_IP, BACK_IP), 0);
    w.poll_once(299 * SEC);
    assert_eq!(w.neighbours().lookup(CLIENT_IP), Some(MacAddr(CLIENT_MAC)));
    // The real server refreshes itself (a request to someone else still merges).
    roundtrip(&mut w, BACK, &arp_request(RS_MAC, RS_IP, std::net::Ipv4Addr::new(10, 20, 0, 12)), 299 * SEC);
    w.poll_once(300 * SEC + 1);
    assert_eq!(w.neighbours().lookup(CLIENT_IP), None, "expired");
    assert_eq!(w.neighbours().lookup(RS_IP), Some(MacAddr(RS_MAC)), "refreshed at 299 s");
    w.poll_once(600 * SEC);
    assert_eq!(w.neighbours().lookup(RS_IP), None);
    // After expiry a ping needs a new resolution.
    let (front, _) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, FRONT_IP, 1), 601 * SEC);
    assert_eq!(front, vec![pad60(eth(BCAST, FRONT_MAC, ETH_ARP, &arp(1, FRONT_MAC, FRONT_IP, [0; 6], CLIENT_IP)))]);
    assert_accounting(&w);
}

#[test]
fn two_workers_share_what_worker_zero_learns() {
    let mut sync = NeighSync::mesh(2, 64).into_iter();
    let mut c0 = lab_config();
    c0.count = 2;
    let mut c1 = c0.clone();
    c1.index = 1;
    let mut w0 = Worker::new(&c0, queues(), MemPool::new(), sync.next().unwrap()).unwrap();
    let mut w1 = Worker::new(&c1, queues(), MemPool::new(), sync.next().unwrap()).unwrap();

    // RSS puts the ping on worker 1: it parks the reply and asks for the gateway.
    let (front, _) = roundtrip(&mut w1, FRONT, &ping(ROUTER_MAC, FAR_CLIENT, VIP, 5), 0);
    assert_eq!(front.len(), 1, "ARP request from worker 1");
    // The answer has no L4 hash: it lands on queue 0, worker 0, which learns it ...
    let (front, _) = roundtrip(&mut w0, FRONT, &arp_reply(ROUTER_MAC, ROUTER_IP, FRONT_MAC, FRONT_IP), SEC / 10);
    assert!(front.is_empty());
    assert_eq!(w0.neighbours().lookup(ROUTER_IP), Some(MacAddr(ROUTER_MAC)));
    assert_eq!(snapshot(&w0).rx_consumed, 1);
    // ... and tells worker 1, which sends its parked reply on its next poll.
    w1.poll_once(SEC / 10);
    assert_eq!(take_tx(&mut w1, FRONT), vec![expected_pong(ROUTER_MAC, VIP, FAR_CLIENT, 5)]);
    assert_eq!(snapshot(&w1).neigh_updates_received, 1);
    assert_eq!(w1.neighbours().lookup(ROUTER_IP), Some(MacAddr(ROUTER_MAC)));
    assert_accounting(&w0);
    assert_accounting(&w1);
    // Updates from peers are not echoed back.
    w0.poll_once(SEC / 5);
    assert_eq!(snapshot(&w0).neigh_updates_received, 0);

    // A neighbour that worker 1 never saw is created there too.
    roundtrip(&mut w0, BACK, &arp_request(RS_MAC, RS_IP, LOCAL_IP), SEC);
    w1.poll_once(SEC);
    assert_eq!(w1.neighbours().lookup(RS_IP), Some(MacAddr(RS_MAC)));
}

#[test]
fn config_errors_are_typed() {
    let mut c = lab_config();
    c.count = 2;
    let e = Worker::new(&c, queues(), MemPool::new(), NeighSync::none()).unwrap_err();
    assert_eq!(e, ConfigError::SyncPeers { got: 0, expected: 1 });
    let e = MemWorker::new(&lab_config(), vec![], MemPool::new(), NeighSync::none()).unwrap_err();
    assert_eq!(e, ConfigError::QueueCount { queues: 0, ports: 2 });

    let mut c = lab_config();
    c.index = 1;
    assert_eq!(c.validate(), Err(ConfigError::BadIndex { index: 1, count: 1 }));
    let mut c = lab_config();
    c.vips[0].address = FRONT_IP;
    assert!(c.validate().unwrap_err().to_string().contains("10.10.0.1"));
    let mut c = lab_config();
    c.routes[0].via = std::net::Ipv4Addr::new(172, 16, 0, 1);
    let e = c.validate().unwrap_err();
    assert!(matches!(e, ConfigError::Route(_)), "{e}");
    assert!(e.to_string().contains("172.16.0.1"), "{e}");
    let mut c = lab_config();
    c.ports[1].name = "front".into();
    assert_eq!(c.validate(), Err(ConfigError::DuplicatePortName("front".into())));
    let mut c = lab_config();
    c.ports[0].address = "10.10.0.0/24".parse().unwrap();
    assert!(matches!(c.validate(), Err(ConfigError::BadAddress { what: "address", .. })));
    let mut c = lab_config();
    c.ports[0].mac = MacAddr([1, 0, 0x5e, 0, 0, 1]);
    assert!(matches!(c.validate(), Err(ConfigError::BadMac { .. })));
    let mut c = lab_config();
    c.static_neighbours.push(rvs_dataplane::worker::StaticNeighbour { ip: FAR_CLIENT, mac: MacAddr(ROUTER_MAC) });
    assert_eq!(c.validate(), Err(ConfigError::NeighbourNotConnected(FAR_CLIENT)));
    let mut c = lab_config();
    c.vips[0].port = Some(rvs_dataplane::types::PortId(7));
    assert!(matches!(c.validate(), Err(ConfigError::VipPort { port: 7, .. })));
    let mut c = lab_config();
    c.ports.clear();
    assert_eq!(c.validate(), Err(ConfigError::NoPorts));
    assert!(lab_config().validate().is_ok());
}
