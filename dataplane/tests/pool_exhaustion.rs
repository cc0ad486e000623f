//! Mempool exhaustion through a whole worker on the in-memory driver: while the packet
//! pool is empty, what the worker forwards or answers in the received buffer (NAT
//! forwarding of established and new flows, ARP replies, echo replies) goes on, and what
//! needs a fresh buffer (an ARP request for an unresolved next hop, a gratuitous ARP)
//! is dropped and counted as `no_mbuf`, never a panic; the packet waiting for that
//! ARP stays parked. When buffers come back, the neighbour's ARP retry goes out and the
//! parked packet is forwarded: forwarding resumes with no intervention.
//!
//! On DPDK an empty pool also starves the NIC's RX refill: the NIC counts those frames
//! itself (`rx_nombuf` of `ports[].stats` in `/v1/status`), the worker never sees them.

mod common;

use common::l4::*;
use common::*;
use rvs_dataplane::l2l3::neigh::{NeighInfo, NeighSync};
use rvs_dataplane::lb::{LbConfig, LbEngine};
use rvs_dataplane::mesh::MeshLinks;
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind, Timeouts};
use rvs_dataplane::worker::Worker;
use rvs_drivers::mem::MemPool;

#[test]
fn an_empty_pool_drops_and_counts_only_what_needs_a_buffer_and_forwarding_resumes() {
    // Round robin over RS1 (a static neighbour) and RS2 (to be resolved by ARP).
    let shared = publish(vec![service(
        1,
        L4Proto::Tcp,
        80,
        SchedulerKind::Rr,
        &[rs(RS1, 80, 1, ForwardMode::Nat), rs(RS2, 80, 1, ForwardMode::Nat)],
        None,
    )]);
    let mut config = lb_worker_config(0, 1);
    config.static_neighbours.retain(|n| n.ip != RS2);
    let pool = MemPool::with_limit(0);
    let buffers = pool.limit_handle();
    let lb = LbConfig {
        conn_capacity: 64,
        conn_pages: Default::default(),
        timeouts: Timeouts::default(),
        port_mtu: vec![1500, 1500],
        rss: None,
        rss6: None,
        local_addrs: vec![LOCAL_IP, LOCAL_IP2],
        local_addrs6: Vec::new(),
        cookie_secret: rvs_dataplane::synproxy::cookie::CookieSecret::from_bytes([7; 32]),
    };
    let mut w = Worker::new(&config, queues(), pool, NeighSync::none())
        .expect("valid config")
        .with_lb(LbEngine::new(0, 1, std::sync::Arc::clone(&shared), lb), MeshLinks::none());

    // Start-up announcements find the pool empty.
    assert_eq!(w.send_gratuitous_arp(0), 0);
    let garps = snapshot(&w).drop_count(DropReason::NoMbuf);
    assert!(garps > 0, "every gratuitous ARP is a no_mbuf drop");

    // Flow 1 goes to RS1: forwarded in its own buffer.
    let c1 = Seg::tcp(CLIENT_IP, 40001, VIP, 80, SYN);
    let (_, back) = roundtrip(&mut w, FRONT, &c1.by_client(), SEC);
    assert_eq!(back.len(), 1, "SYN of flow 1 forwarded with the pool empty");
    assert_eq!(seen(&back[0]).dst, RS1);
    // Flow 2 goes to RS2, whose MAC is unknown: the ARP request needs a buffer.
    let c2 = Seg::tcp(CLIENT_IP, 40002, VIP, 80, SYN);
    let (_, back) = roundtrip(&mut w, FRONT, &c2.by_client(), SEC);
    assert!(back.is_empty(), "no ARP request without a buffer: {back:?}");
    assert_eq!(snapshot(&w).drop_count(DropReason::NoMbuf), garps + 1);
    assert_eq!(w.neighbours().parked(), 1, "flow 2's SYN waits for RS2's MAC");
    // Established traffic on flow 1, ARP and ping answers: all in the received buffer.
    for i in 0..50u32 {
        let data = Seg::tcp(CLIENT_IP, 40001, VIP, 80, ACK | PSH).seq(1 + i * 10).data(b"0123456789");
        let (_, back) = roundtrip(&mut w, FRONT, &data.by_client(), SEC + u64::from(i));
        assert_eq!(back.len(), 1, "segment {i} of flow 1 forwarded");
    }
    let half = SEC / 2;
    let (front, _) = roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, VIP), SEC + half);
    assert_eq!(front.len(), 1, "ARP reply built in the request's buffer");
    let (front, _) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, VIP, 1), SEC + half);
    assert_eq!(front, vec![expected_pong(CLIENT_MAC, VIP, CLIENT_IP, 1)]);
    let s = snapshot(&w);
    assert_eq!(s.drop_count(DropReason::NoMbuf), garps + 1, "nothing else was dropped");
    assert_eq!(s.drops_total(), garps + 1, "{:?}", drops_of(&w));
    assert_accounting(&w);
    // At 2 s the second gratuitous ARP round and RS2's first ARP retry find it empty too.
    w.poll_once(2 * SEC);
    assert!(take_tx(&mut w, BACK).is_empty() && take_tx(&mut w, FRONT).is_empty());
    assert_eq!(snapshot(&w).drop_count(DropReason::NoMbuf), 2 * garps + 2);
    assert_eq!(w.neighbours().parked(), 1, "flow 2's SYN still waits");
    assert_accounting(&w);

    // Buffers come back: RS2's last ARP retry goes out, its reply releases flow 2's SYN.
    buffers.set(None);
    w.poll_once(3 * SEC);
    let back = take_tx(&mut w, BACK);
    assert_eq!(back, vec![pad60(eth(BCAST, BACK_MAC, ETH_ARP, &arp(1, BACK_MAC, BACK_IP, [0; 6], RS2)))]);
    assert!(matches!(w.neighbours().info(RS2), Some((BACK, NeighInfo::Incomplete { .. }))));
    let (_, back) = roundtrip(&mut w, BACK, &arp_reply(RS2_MAC, RS2, BACK_MAC, BACK_IP), 3 * SEC);
    assert_eq!(back.len(), 1, "flow 2's parked SYN forwarded once RS2 answered");
    let s = seen(&back[0]);
    assert_eq!((s.dst, s.eth_dst, s.sport), (RS2, RS2_MAC, 40002));
    assert_eq!(w.neighbours().parked(), 0);
    assert_eq!(snapshot(&w).drop_count(DropReason::NoMbuf), 2 * garps + 2, "no new no_mbuf");
    assert_accounting(&w);
}
