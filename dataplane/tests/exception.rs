//! The kernel exception path through a whole worker on the in-memory driver: what goes to
//! a port's kernel interface (TCP/UDP and ICMP other than echo requests to the port's own
//! address, ARP replies to it), what does not (VIP traffic, echo requests, ARP requests,
//! probe replies, ports without the path), what the kernel sends leaving by the port, and
//! the limits and counters of both directions.

mod common;

use std::sync::Arc;

use common::l4::*;
use common::*;
use rvs_dataplane::exception::{ExceptionCounters, ExceptionPort, KERNEL_POLL_INTERVAL_NS};
use rvs_dataplane::punt::{probe_links, DEFAULT_PROBE_PORTS};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind};
use rvs_dataplane::wire::MacAddr;
use rvs_drivers::mem::MemQueue;
use rvs_drivers::PacketBuf;

const T0: u64 = 10 * SEC;

/// A worker with one NAT service on the VIP and an exception path on the front port
/// (`rate` frames a second each way), and the front port's exception counters.
fn setup(rate: u32) -> (MemWorker, Arc<ExceptionCounters>) {
    let shared =
        publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, ForwardMode::Nat)], None)]);
    let counters = Arc::new(ExceptionCounters::default());
    let front = ExceptionPort::new(MemQueue::new(FRONT_MAC), MacAddr(FRONT_MAC), rate, Arc::clone(&counters));
    let w = lb_worker(&shared).with_exception(vec![Some(front), None]);
    (w, counters)
}

fn kernel_rx(w: &mut MemWorker) -> Vec<Vec<u8>> {
    let ep = w.exception_mut(FRONT).expect("front has an exception path");
    ep.queue_mut().take_tx().into_iter().map(|b| b.data().to_vec()).collect()
}

fn kernel_sends(w: &mut MemWorker, frame: &[u8]) {
    w.exception_mut(FRONT).expect("front has an exception path").queue_mut().inject(frame);
}

#[test]
fn tcp_and_udp_to_the_port_address_reach_the_kernel_unchanged() {
    let (mut w, c) = setup(1000);
    let ssh = Seg::tcp(CLIENT_IP, 40000, FRONT_IP, 22, SYN).by_client();
    let bgp = Seg::tcp(ROUTER_IP, 40001, FRONT_IP, 179, SYN).frame(FRONT_MAC, ROUTER_MAC);
    let bfd = Seg::udp(ROUTER_IP, 49152, FRONT_IP, 3784, b"bfd control").frame(FRONT_MAC, ROUTER_MAC);
    for f in [&ssh, &bgp, &bfd] {
        let (front, back) = roundtrip(&mut w, FRONT, f, T0);
        assert!(front.is_empty() && back.is_empty(), "nothing goes out of the ports");
    }
    assert_eq!(kernel_rx(&mut w), vec![ssh, bgp, bfd]);
    let s = snapshot(&w);
    assert_eq!((s.exception_to_kernel, c.snapshot().to_kernel), (3, 3));
    assert_eq!(s.conns_created, 0, "nothing of it touches a service");
    assert!(drops_of(&w).is_empty(), "{:?}", drops_of(&w));
    assert_accounting(&w);
}

#[test]
fn echo_requests_stay_with_the_stack_other_icmp_goes_to_the_kernel() {
    let (mut w, _) = setup(1000);
    w.poll_once(T0);
    // The client's MAC is learned from ARP first, so the pong can go straight back.
    roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP), T0);
    let (front, _) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, FRONT_IP, 1), T0);
    assert_eq!(front, vec![expected_pong(CLIENT_MAC, FRONT_IP, CLIENT_IP, 1)]);
    let reply = pad60(eth(
        FRONT_MAC,
        CLIENT_MAC,
        ETH_IPV4,
        &ipv4(Ip::new(CLIENT_IP, FRONT_IP, 1), &icmp_echo(0, 7, 1, PING_DATA)),
    ));
    let (front, _) = roundtrip(&mut w, FRONT, &reply, T0);
    assert!(front.is_empty());
    assert_eq!(kernel_rx(&mut w), vec![reply], "an echo reply is the kernel's (its own ping)");
    // Port unreachable about a datagram the kernel sent: the kernel's.
    let quoted = Seg::udp(FRONT_IP, 3784, CLIENT_IP, 49152, b"bfd").ip();
    let unreach = icmp_ip(CLIENT_IP, FRONT_IP, 0, 9, 64, &icmp_msg(3, 3, 0, &quoted[..28]));
    let unreach = pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &unreach));
    roundtrip(&mut w, FRONT, &unreach, T0);
    assert_eq!(kernel_rx(&mut w), vec![unreach]);
    assert_accounting(&w);
}

#[test]
fn vip_traffic_never_goes_to_the_kernel() {
    let (mut w, c) = setup(1000);
    let syn = Seg::tcp(CLIENT_IP, 40000, VIP, 80, SYN).by_client();
    let (_, back) = roundtrip(&mut w, FRONT, &syn, T0);
    // The real server is not resolved yet: the SYN waits for ARP, which goes out the back.
    assert_eq!(back.len(), 1, "an ARP request for the real server");
    assert_eq!(snapshot(&w).conns_created, 1);
    assert!(kernel_rx(&mut w).is_empty());
    assert_eq!(c.snapshot().to_kernel, 0);
    // A port without an exception path drops TCP to its address as before.
    let to_back = Seg::tcp(RS1, 40000, BACK_IP, 22, SYN).by_server(RS1_MAC);
    roundtrip(&mut w, BACK, &to_back, T0);
    assert_eq!(snapshot(&w).drops.get("l4_no_service"), Some(&1));
    assert!(kernel_rx(&mut w).is_empty());
}

#[test]
fn arp_requests_are_answered_once_and_replies_reach_the_kernel_too() {
    let (mut w, c) = setup(1000);
    let (front, _) = roundtrip(&mut w, FRONT, &arp_request(ROUTER_MAC, ROUTER_IP, FRONT_IP), T0);
    assert_eq!(front.len(), 1, "the lite stack answers");
    assert!(kernel_rx(&mut w).is_empty(), "the kernel does not answer a second time");
    let reply = arp_reply(CLIENT_MAC, CLIENT_IP, FRONT_MAC, FRONT_IP);
    let (front, _) = roundtrip(&mut w, FRONT, &reply, T0);
    assert!(front.is_empty());
    assert_eq!(kernel_rx(&mut w), vec![reply], "the kernel resolves its own peers");
    assert_eq!(c.snapshot().to_kernel, 1);
    // A reply to the VIP (not the port address) is the stack's alone.
    roundtrip(&mut w, FRONT, &arp_reply(RS1_MAC, ROUTER_IP, FRONT_MAC, VIP), T0);
    assert!(kernel_rx(&mut w).is_empty());
    assert_accounting(&w);
}

#[test]
fn probe_replies_still_go_to_the_prober() {
    let (w, _) = setup(1000);
    let (mut links, mut end) = probe_links(1, 8, DEFAULT_PROBE_PORTS);
    let mut w = w.with_probe(links.remove(0));
    let synack = Seg::tcp(RS1, 80, BACK_IP, 61000, SYN | ACK).by_server(RS1_MAC);
    roundtrip(&mut w, BACK, &synack, T0);
    let to_front = Seg::tcp(CLIENT_IP, 80, FRONT_IP, 61001, SYN | ACK).by_client();
    roundtrip(&mut w, FRONT, &to_front, T0);
    assert!(end.recv().is_some() && end.recv().is_some());
    assert!(kernel_rx(&mut w).is_empty());
}

#[test]
fn what_the_kernel_sends_leaves_by_its_port_at_most_every_interval() {
    let (mut w, c) = setup(1000);
    w.poll_once(T0);
    let synack = Seg::tcp(FRONT_IP, 22, CLIENT_IP, 40000, SYN | ACK).frame(CLIENT_MAC, FRONT_MAC);
    kernel_sends(&mut w, &synack);
    w.poll_once(T0 + KERNEL_POLL_INTERVAL_NS / 2);
    assert!(take_tx(&mut w, FRONT).is_empty(), "the kernel interface is not read on every poll");
    w.poll_once(T0 + KERNEL_POLL_INTERVAL_NS);
    assert_eq!(take_tx(&mut w, FRONT), vec![synack]);
    // A frame from another MAC, and a runt, are refused.
    kernel_sends(&mut w, &Seg::tcp(FRONT_IP, 22, CLIENT_IP, 40000, ACK).frame(CLIENT_MAC, ROUTER_MAC));
    kernel_sends(&mut w, &[0u8; 10]);
    w.poll_once(T0 + 2 * KERNEL_POLL_INTERVAL_NS);
    assert!(take_tx(&mut w, FRONT).is_empty());
    let s = c.snapshot();
    assert_eq!((s.from_kernel, s.bad_frame), (1, 2));
    assert_eq!(snapshot(&w).drops.get("exception_bad_frame"), Some(&2));
    assert_eq!(snapshot(&w).exception_from_kernel, 1);
    assert_accounting(&w);
}

#[test]
fn a_flood_at_the_port_address_is_limited_before_the_kernel_and_vip_traffic_goes_on() {
    // 100 frames a second, bursts of 32; 31 flood frames and a SYN per poll (a burst).
    let (mut w, c) = setup(100);
    let mut sent_to_kernel = 0;
    for i in 0..20u16 {
        for j in 0..31u16 {
            let f = Seg::udp(CLIENT_IP, 1000 + j, FRONT_IP, 9 + i, b"flood").by_client();
            inject(&mut w, FRONT, &f);
        }
        // The VIP's traffic in the middle of the flood.
        inject(&mut w, FRONT, &Seg::tcp(CLIENT_IP, 30000 + i, VIP, 80, SYN).by_client());
        w.poll_once(T0 + u64::from(i) * 1000);
        sent_to_kernel += kernel_rx(&mut w).len();
    }
    let s = c.snapshot();
    assert_eq!(sent_to_kernel, 32, "the burst, then nothing within 20 µs");
    assert_eq!(s.to_kernel, 32);
    assert_eq!(s.rate_limited, 20 * 31 - 32);
    assert_eq!(snapshot(&w).drops.get(DropReason::ExceptionRateLimited.name()), Some(&(20 * 31 - 32)));
    assert_eq!(snapshot(&w).conns_created, 20, "every SYN to the VIP made its connection");
    assert_accounting(&w);
    // A second later the limit lets traffic through again.
    roundtrip(&mut w, FRONT, &Seg::udp(CLIENT_IP, 999, FRONT_IP, 9, b"x").by_client(), T0 + 2 * SEC);
    assert_eq!(kernel_rx(&mut w).len(), 1);
}

#[test]
fn from_the_kernel_is_limited_too_and_a_full_kernel_queue_is_counted() {
    let (mut w, c) = setup(1);
    w.poll_once(T0);
    for i in 0..40u16 {
        kernel_sends(&mut w, &Seg::udp(FRONT_IP, 3784, ROUTER_IP, 49152 + i, b"bfd").frame(ROUTER_MAC, FRONT_MAC));
    }
    w.poll_once(T0 + KERNEL_POLL_INTERVAL_NS);
    assert_eq!(take_tx(&mut w, FRONT).len(), 32, "a burst of 32 at 1 frame a second");
    assert_eq!(c.snapshot().out_rate_limited, 0, "the rest wait in the kernel interface's queue");
    w.poll_once(T0 + 2 * KERNEL_POLL_INTERVAL_NS);
    assert!(take_tx(&mut w, FRONT).is_empty());
    assert_eq!(c.snapshot().out_rate_limited, 8);
    // The kernel interface refuses frames: counted, never retried.
    w.exception_mut(FRONT).unwrap().queue_mut().set_tx_room(Some(0));
    roundtrip(&mut w, FRONT, &Seg::tcp(CLIENT_IP, 40000, FRONT_IP, 22, SYN).by_client(), T0 + 60 * SEC);
    assert_eq!(c.snapshot().ring_full, 1);
    assert_eq!(snapshot(&w).drops.get("exception_ring_full"), Some(&1));
    assert_accounting(&w);
}
