//! The health prober's punt path through a whole worker on the in-memory driver: replies
//! to the probe source-port range on a port's own address are copied to the prober's
//! ring (never counted as service traffic or `tcp_no_conn`), and the prober's packets
//! leave through worker 0 with the right MACs, routed like the worker's own traffic.

mod common;

use common::l4::*;
use common::*;
use rvs_dataplane::punt::{probe_links, ProbeEnd, DEFAULT_PROBE_PORTS};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind};

const PROBE_PORT: u16 = 61000;

/// One NAT service on the VIP, and a worker with its probe link and the prober's end.
fn setup(capacity: usize) -> (MemWorker, ProbeEnd) {
    let shared =
        publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, ForwardMode::Nat)], None)]);
    let (mut links, end) = probe_links(1, capacity, DEFAULT_PROBE_PORTS);
    let w = lb_worker(&shared).with_probe(links.remove(0));
    (w, end)
}

#[test]
fn probe_syn_ack_is_punted_not_counted_as_service_traffic() {
    let (mut w, mut end) = setup(8);
    let syn_ack = Seg::tcp(RS1, 80, BACK_IP, PROBE_PORT, SYN | ACK).ack(0x1000_0001);
    let (front, back) = roundtrip(&mut w, BACK, &syn_ack.by_server(RS1_MAC), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(end.recv(), Some(syn_ack.ip()), "the whole IP packet, Ethernet stripped and padding cut");
    assert_eq!(end.recv(), None);
    let s = snapshot(&w);
    assert_eq!((s.probe_rx, s.rx_consumed, s.conns_created), (1, 1, 0));
    assert!(drops_of(&w).is_empty(), "no drop: {:?}", drops_of(&w));
    assert_eq!(service_stats_total_conns(&w), 0);
    assert_accounting(&w);
}

fn service_stats_total_conns(w: &MemWorker) -> usize {
    w.lb().expect("engine").conns().len()
}

#[test]
fn out_of_range_port_and_non_port_addresses_are_not_punted() {
    let (mut w, mut end) = setup(8);
    let other = Seg::tcp(RS1, 80, BACK_IP, 5000, SYN | ACK);
    roundtrip(&mut w, BACK, &other.by_server(RS1_MAC), SEC);
    assert_single_drop(&w, DropReason::L4NoService);
    // The range on a Full-NAT local address is Full-NAT's, not the prober's.
    let local = Seg::tcp(RS1, 80, LOCAL_IP, PROBE_PORT, SYN | ACK);
    roundtrip(&mut w, BACK, &local.by_server(RS1_MAC), SEC);
    assert_eq!(end.recv(), None);
    assert_eq!(snapshot(&w).probe_rx, 0);
    assert_accounting(&w);
}

#[test]
fn echo_reply_and_port_unreachable_for_probes_are_punted() {
    let (mut w, mut end) = setup(8);
    let reply = ipv4(Ip::new(RS1, BACK_IP, 1), &icmp_echo(0, PROBE_PORT + 1, 1, b"rvs-health-probe"));
    roundtrip(&mut w, BACK, &pad60(eth(BACK_MAC, RS1_MAC, ETH_IPV4, &reply)), SEC);
    assert_eq!(end.recv(), Some(reply));
    let probe = Seg::udp(BACK_IP, PROBE_PORT + 2, RS1, 53, b"q").ip();
    let mut unreach = vec![3, 3, 0, 0, 0, 0, 0, 0];
    unreach.extend_from_slice(&probe);
    let c = csum(&unreach);
    unreach[2..4].copy_from_slice(&c.to_be_bytes());
    let unreach = ipv4(Ip::new(RS1, BACK_IP, 1), &unreach);
    roundtrip(&mut w, BACK, &pad60(eth(BACK_MAC, RS1_MAC, ETH_IPV4, &unreach)), SEC);
    assert_eq!(end.recv(), Some(unreach));
    assert_eq!(snapshot(&w).probe_rx, 2);
    assert!(drops_of(&w).is_empty(), "no drop: {:?}", drops_of(&w));
    assert_accounting(&w);
}

#[test]
fn prober_syn_leaves_the_back_port_with_the_right_macs() {
    let (mut w, mut end) = setup(8);
    let syn = Seg::tcp(BACK_IP, PROBE_PORT, RS1, 80, SYN);
    assert!(end.send(&syn.ip()));
    w.poll_once(SEC);
    assert!(take_tx(&mut w, FRONT).is_empty());
    let back = take_tx(&mut w, BACK);
    assert_eq!(back, vec![pad_free_frame(RS1_MAC, BACK_MAC, &syn.ip())]);
    let s = snapshot(&w);
    assert_eq!((s.probe_tx, s.local_originated, s.tx_packets), (1, 1, 1));
    assert_accounting(&w);
}

/// The frame as sent (the worker does not pad; the NIC does).
fn pad_free_frame(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    eth(dst, src, ETH_IPV4, ip)
}

#[test]
fn prober_packet_not_from_a_port_address_is_refused() {
    let (mut w, mut end) = setup(8);
    assert!(end.send(&Seg::tcp(VIP, PROBE_PORT, RS1, 80, SYN).ip()));
    assert!(end.send(b"not ip"));
    w.poll_once(SEC);
    assert!(take_tx(&mut w, BACK).is_empty());
    assert_eq!(snapshot(&w).drop_count(DropReason::ProbeBadPacket), 2);
    assert_accounting(&w);
}

#[test]
fn a_full_punt_ring_drops_and_counts() {
    let (mut w, mut end) = setup(1);
    for dport in [PROBE_PORT, PROBE_PORT + 1] {
        inject(&mut w, BACK, &Seg::tcp(RS1, 80, BACK_IP, dport, SYN | ACK).by_server(RS1_MAC));
    }
    w.poll_once(SEC);
    assert_eq!(snapshot(&w).drop_count(DropReason::ProbeRingFull), 1);
    assert!(end.recv().is_some());
    assert_eq!(end.recv(), None);
    assert_accounting(&w);
}
