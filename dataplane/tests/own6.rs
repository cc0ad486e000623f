//! IPv6 to and from a port's own addresses through a whole worker on the in-memory driver:
//! the health prober's IPv6 replies punted to its ring and its IPv6 packets routed out of
//! the right port (the IPv6 half of `punt.rs`), and the kernel exception path for IPv6
//! (the IPv6 half of `exception.rs`): what goes to the kernel interface (TCP, UDP, echo
//! replies, fragments, advertisements answering it), what stays with the lite stack (echo
//! requests, solicitations, errors about tunnel flows, multicast), and what a port without
//! the path does.

mod common;

use std::net::Ipv6Addr;
use std::sync::Arc;

use common::ip6::*;
use common::l4::{drops_of, publish, LbOpts, ACK, SYN};
use common::workers6::{neighbour6, workers6, BACK6, FRONT6};
use common::*;
use rvs_dataplane::exception::{ExceptionCounters, ExceptionPort};
use rvs_dataplane::l2l3::nd::link_local;
use rvs_dataplane::punt::{probe_links, ProbeEnd, DEFAULT_PROBE_PORTS};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::L4Proto;
use rvs_dataplane::wire::MacAddr;
use rvs_drivers::mem::MemQueue;
use rvs_drivers::PacketBuf;

const CLIENT6: &str = "2001:db8:10::2";
const ROUTER6: &str = "2001:db8:10::fe";
const RS6: &str = "2001:db8:20::11";
const LOCAL6: &str = "2001:db8:20::200";
const PROBE_PORT: u16 = 61000;
const T0: u64 = 10 * SEC;
const UDP: u8 = 17;

/// A worker with no service, the lab's IPv6 addresses, a probe link, and (when
/// `exception`) a kernel exception path on the front port; the client, the router and
/// the real server learned.
struct Rig {
    w: MemWorker,
    prober: ProbeEnd,
    kernel: Arc<ExceptionCounters>,
}

fn rig(exception: bool) -> Rig {
    let (mut links, prober) = probe_links(1, 8, DEFAULT_PROBE_PORTS);
    let kernel = Arc::new(ExceptionCounters::default());
    let k = Arc::clone(&kernel);
    let learn =
        [neighbour6(CLIENT6, CLIENT_MAC, FRONT), neighbour6(ROUTER6, ROUTER_MAC, FRONT), neighbour6(RS6, RS_MAC, BACK)];
    let mut ws = workers6(&publish(vec![]), 1, &LbOpts::default(), &[a(LOCAL6)], &learn, move |_, w| {
        let w = w.with_probe(links.remove(0));
        if !exception {
            return w;
        }
        let front = ExceptionPort::new(MemQueue::new(FRONT_MAC), MacAddr(FRONT_MAC), 1000, Arc::clone(&k));
        w.with_exception(vec![Some(front), None])
    });
    let mut r = Rig { w: ws.remove(0), prober, kernel };
    assert!(r.kernel_rx().is_empty(), "learning the neighbours (multicast solicitations) is the stack's");
    r
}

impl Rig {
    /// What the front port's kernel interface received.
    fn kernel_rx(&mut self) -> Vec<Vec<u8>> {
        let Some(ep) = self.w.exception_mut(FRONT) else { return vec![] };
        ep.queue_mut().take_tx().into_iter().map(|b| b.data().to_vec()).collect()
    }
}

/// A TCP segment (no options, no payload) as an IPv6 packet, checksum filled in.
fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Vec<u8> {
    pkt(L4Proto::Tcp, (src, sport), (dst, dport), flags, 64, &[])
}

/// A UDP datagram as an IPv6 packet, checksum filled in.
fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, data: &[u8]) -> Vec<u8> {
    pkt(L4Proto::Udp, (src, sport), (dst, dport), 0, 64, data)
}

/// An ICMPv6 message of `ty`/`code` with `rest` (the second word on) from `src` to `dst`.
fn icmp6_msg(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(rest);
    icmp6(src, dst, 64, m)
}

/// `ip` in a frame from `from` to `to`.
fn frame(to: [u8; 6], from: [u8; 6], ip: &[u8]) -> Vec<u8> {
    eth(to, from, ETH_IPV6, ip)
}

#[test]
fn tcp_udp_echo_replies_and_fragments_to_the_port_address_reach_the_kernel_unchanged() {
    let mut r = rig(true);
    let (client, front6) = (a(CLIENT6), a(FRONT6));
    let ssh = frame(FRONT_MAC, CLIENT_MAC, &tcp6(client, 40000, front6, 22, SYN));
    let bfd = frame(FRONT_MAC, ROUTER_MAC, &udp6(a(ROUTER6), 49152, front6, 3784, b"bfd control"));
    // The kernel's own ping, answered (identifier outside the probe range).
    let pong = frame(FRONT_MAC, CLIENT_MAC, &icmp6_msg(client, front6, 129, 0, &[0, 7, 0, 1, 0xaa]));
    // The second fragment of a datagram to the port: the kernel reassembles.
    let mut frag = vec![UDP, 0, 0x05, 0xa8, 0, 0, 0, 9];
    frag.extend_from_slice(&[0x55; 64]);
    let frag = frame(FRONT_MAC, CLIENT_MAC, &ipv6(client, front6, 44, 64, &frag));
    // BGP to the port's link-local address (the kernel interface derives the same one
    // from the same MAC).
    let ll = link_local(MacAddr(FRONT_MAC));
    let bgp_ll = frame(FRONT_MAC, ROUTER_MAC, &tcp6(link_local(MacAddr(ROUTER_MAC)), 40001, ll, 179, SYN));
    for f in [&ssh, &bfd, &pong, &frag, &bgp_ll] {
        let (front, back) = roundtrip(&mut r.w, FRONT, f, T0);
        assert!(front.is_empty() && back.is_empty(), "nothing goes out of the ports");
    }
    assert_eq!(r.kernel_rx(), vec![ssh, bfd, pong, frag, bgp_ll]);
    let s = snapshot(&r.w);
    assert_eq!((s.exception_to_kernel, r.kernel.snapshot().to_kernel), (5, 5));
    assert_eq!((s.probe_rx, s.conns_created), (0, 0));
    assert!(drops_of(&r.w).is_empty(), "{:?}", drops_of(&r.w));
    assert_accounting(&r.w);
}

#[test]
fn echo_requests_solicitations_and_tunnel_errors_stay_with_the_stack_advertisements_reach_the_kernel_too() {
    let mut r = rig(true);
    let (client, router, front6) = (a(CLIENT6), a(ROUTER6), a(FRONT6));
    let ping = frame(FRONT_MAC, CLIENT_MAC, &icmp6_msg(client, front6, 128, 0, &[0, 7, 0, 1, 0xaa]));
    let (front, _) = roundtrip(&mut r.w, FRONT, &ping, T0);
    assert_eq!(front.len(), 1, "the lite stack answers the ping");
    // A unicast solicitation (a neighbour checking us): one answer, the stack's.
    let ns = frame(FRONT_MAC, ROUTER_MAC, &icmp6(router, front6, 255, nd_msg(135, 0, front6, 1, ROUTER_MAC)));
    let (front, _) = roundtrip(&mut r.w, FRONT, &ns, T0);
    assert_eq!(front.len(), 1, "the lite stack advertises");
    assert!(r.kernel_rx().is_empty(), "the kernel does not answer a second time");
    // The router's advertisement to the port address answers the kernel's solicitation.
    let na = frame(FRONT_MAC, ROUTER_MAC, &icmp6(router, front6, 255, nd_msg(136, 0x60, router, 2, ROUTER_MAC)));
    let (front, _) = roundtrip(&mut r.w, FRONT, &na, T0);
    assert!(front.is_empty());
    assert_eq!(r.kernel_rx(), vec![na], "the kernel resolves its own peers");
    // An unsolicited advertisement to all-nodes is the stack's alone.
    let all_nodes = a("ff02::1");
    let na_all = eth(
        [0x33, 0x33, 0, 0, 0, 1],
        ROUTER_MAC,
        ETH_IPV6,
        &icmp6(router, all_nodes, 255, nd_msg(136, 0x20, router, 2, ROUTER_MAC)),
    );
    roundtrip(&mut r.w, FRONT, &na_all, T0);
    // An error about a tunnel flow (quoting IPv6 in IPv6 from the port's address) is the
    // L4 engine's, not the kernel's.
    let mut quoted = ipv6(front6, client, 41, 64, &tcp6(front6, 1, client, 2, SYN));
    quoted.truncate(80);
    let mut rest = vec![0, 0, 0x05, 0x00];
    rest.extend_from_slice(&quoted);
    let too_big = frame(FRONT_MAC, ROUTER_MAC, &icmp6_msg(router, front6, 2, 0, &rest));
    roundtrip(&mut r.w, FRONT, &too_big, T0);
    assert!(r.kernel_rx().is_empty());
    assert_eq!(r.kernel.snapshot().to_kernel, 1);
    assert_accounting(&r.w);
}

#[test]
fn a_port_without_the_exception_path_serves_nothing_more_to_its_address() {
    let mut r = rig(false);
    let ssh = frame(FRONT_MAC, CLIENT_MAC, &tcp6(a(CLIENT6), 40000, a(FRONT6), 22, SYN));
    roundtrip(&mut r.w, FRONT, &ssh, T0);
    assert_single_drop(&r.w, DropReason::Ip6NoService);
    assert_eq!(snapshot(&r.w).exception_to_kernel, 0);
    assert_accounting(&r.w);
}

#[test]
fn probe_replies_to_ipv6_port_addresses_are_punted_not_given_to_the_kernel() {
    let mut r = rig(true);
    let (rs, back6, front6) = (a(RS6), a(BACK6), a(FRONT6));
    let syn_ack = tcp6(rs, 80, back6, PROBE_PORT, SYN | ACK);
    let pong = icmp6_msg(
        rs,
        back6,
        129,
        0,
        &(PROBE_PORT + 1).to_be_bytes().iter().chain(&[0, 1, 0xaa]).copied().collect::<Vec<_>>(),
    );
    let mut quoted = udp6(back6, PROBE_PORT + 2, rs, 53, b"q");
    quoted.truncate(48);
    let mut rest = vec![0, 0, 0, 0];
    rest.extend_from_slice(&quoted);
    let unreach = icmp6_msg(rs, back6, 1, 4, &rest);
    for ip in [&syn_ack, &pong, &unreach] {
        let (front, back) = roundtrip(&mut r.w, BACK, &frame(BACK_MAC, RS_MAC, ip), T0);
        assert!(front.is_empty() && back.is_empty());
    }
    // On a port with the exception path too, the prober comes first.
    let to_front = tcp6(a(CLIENT6), 80, front6, PROBE_PORT + 3, SYN | ACK);
    roundtrip(&mut r.w, FRONT, &frame(FRONT_MAC, CLIENT_MAC, &to_front), T0);
    for want in [syn_ack, pong, unreach, to_front] {
        assert_eq!(r.prober.recv(), Some(want), "the whole IPv6 packet, Ethernet stripped");
    }
    assert_eq!(r.prober.recv(), None);
    assert!(r.kernel_rx().is_empty());
    let s = snapshot(&r.w);
    assert_eq!((s.probe_rx, s.rx_consumed, s.conns_created), (4, 4, 0));
    assert!(drops_of(&r.w).is_empty(), "{:?}", drops_of(&r.w));
    // Outside the range, or to a Full-NAT local address: not the prober's.
    roundtrip(&mut r.w, BACK, &frame(BACK_MAC, RS_MAC, &tcp6(rs, 80, back6, 5000, SYN | ACK)), T0);
    roundtrip(&mut r.w, BACK, &frame(BACK_MAC, RS_MAC, &tcp6(rs, 80, a(LOCAL6), PROBE_PORT, SYN | ACK)), T0);
    assert_eq!(r.prober.recv(), None);
    assert_eq!(snapshot(&r.w).probe_rx, 4);
    assert_accounting(&r.w);
}

#[test]
fn prober_ipv6_packets_leave_by_the_route_with_the_right_macs_and_bad_ones_are_refused() {
    let mut r = rig(false);
    let (rs, back6) = (a(RS6), a(BACK6));
    let syn = tcp6(back6, PROBE_PORT, rs, 80, SYN);
    let sent_before = snapshot(&r.w).tx_packets;
    assert!(r.prober.send(&syn));
    r.w.poll_once(T0);
    assert!(take_tx(&mut r.w, FRONT).is_empty());
    assert_eq!(take_tx(&mut r.w, BACK), vec![frame(RS_MAC, BACK_MAC, &syn)]);
    let s = snapshot(&r.w);
    assert_eq!((s.probe_tx, s.local_originated, s.tx_packets - sent_before), (1, 1, 1));
    // From a Full-NAT local address, from an address not ours, a truncated header: refused;
    // to an address no route covers: no_route.
    assert!(r.prober.send(&tcp6(a(LOCAL6), PROBE_PORT, rs, 80, SYN)));
    assert!(r.prober.send(&tcp6(a("2001:db8:20::99"), PROBE_PORT, rs, 80, SYN)));
    assert!(r.prober.send(&syn[..30]));
    assert!(r.prober.send(&tcp6(back6, PROBE_PORT, a("2001:db8:99::1"), 80, SYN)));
    r.w.poll_once(T0);
    assert!(take_tx(&mut r.w, BACK).is_empty() && take_tx(&mut r.w, FRONT).is_empty());
    let s = snapshot(&r.w);
    assert_eq!(s.drop_count(DropReason::ProbeBadPacket), 3);
    assert_eq!(s.drop_count(DropReason::NoRoute), 1);
    assert_accounting(&r.w);
}
