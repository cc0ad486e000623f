//! Golden packets through a whole worker on the in-memory driver: frame in → exact frame
//! out (or exact drop reason), as Katran's test fixtures.

mod common;

use common::*;
use rvs_dataplane::l2l3::neigh::NeighInfo;
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::wire::MacAddr;
use rvs_drivers::mem::{MemPool, MemQueue};

/// The reply we must send for a request from `peer` asking for `ours` on a port with MAC
/// `our_mac`: written out field by field, the 18 padding bytes of the request kept.
fn expected_arp_reply(
    our_mac: [u8; 6],
    ours: std::net::Ipv4Addr,
    peer_mac: [u8; 6],
    peer: std::net::Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&peer_mac); // to the requester
    f.extend_from_slice(&our_mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02]); // Ethernet/IPv4, reply
    f.extend_from_slice(&our_mac);
    f.extend_from_slice(&ours.octets());
    f.extend_from_slice(&peer_mac);
    f.extend_from_slice(&peer.octets());
    f.extend_from_slice(&[0; 18]);
    f
}

#[test]
fn arp_requests_for_port_address_vip_and_local_address_get_exact_replies() {
    let mut w = lab_worker();
    let cases = [
        (FRONT, FRONT_MAC, FRONT_IP, CLIENT_MAC, CLIENT_IP, "port address"),
        (FRONT, FRONT_MAC, VIP, CLIENT_MAC, CLIENT_IP, "VIP"),
        (BACK, BACK_MAC, BACK_IP, RS_MAC, RS_IP, "back port address"),
        (BACK, BACK_MAC, LOCAL_IP, RS_MAC, RS_IP, "Full-NAT local address"),
        (BACK, BACK_MAC, LOCAL_IP2, RS_MAC, RS_IP, "second local address"),
    ];
    for (i, &(port, our_mac, ours, peer_mac, peer, what)) in cases.iter().enumerate() {
        let (front, back) = roundtrip(&mut w, port, &arp_request(peer_mac, peer, ours), i as u64);
        let (sent, silent) = if port == FRONT { (front, back) } else { (back, front) };
        assert_eq!(sent, vec![expected_arp_reply(our_mac, ours, peer_mac, peer)], "{what}");
        assert!(silent.is_empty(), "{what}: nothing on the other port");
    }
    let s = snapshot(&w);
    assert_eq!((s.rx_packets, s.tx_packets, s.arp_replies_sent, s.drops_total()), (5, 5, 5, 0));
    // RFC 826: the requesters were added, since the requests were for us.
    assert!(matches!(
        w.neighbours().info(CLIENT_IP),
        Some((FRONT, NeighInfo::Reachable { mac: MacAddr(CLIENT_MAC), .. }))
    ));
    assert!(matches!(w.neighbours().info(RS_IP), Some((BACK, NeighInfo::Reachable { mac: MacAddr(RS_MAC), .. }))));
    assert_accounting(&w);
}

#[test]
fn arp_for_someone_else_is_dropped_and_counted_but_merged() {
    let mut w = lab_worker();
    // For another host: dropped, and the unknown sender is not added.
    let (f, b) =
        roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, std::net::Ipv4Addr::new(10, 10, 0, 3)), 0);
    assert!(f.is_empty() && b.is_empty());
    assert_single_drop(&w, DropReason::ArpNotForUs);
    assert_eq!(w.neighbours().info(CLIENT_IP), None);
    // A local address asked on the wrong port is not ours there.
    roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, LOCAL_IP), 0);
    assert_eq!(snapshot(&w).drop_count(DropReason::ArpNotForUs), 2);
    // Once known, a neighbour is updated by any ARP it sends (merge), e.g. a new MAC.
    roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP), 0);
    let new_mac = [0x02, 0, 0, 0, 0x0c, 0x99];
    roundtrip(&mut w, FRONT, &arp_request(new_mac, CLIENT_IP, std::net::Ipv4Addr::new(10, 10, 0, 3)), SEC);
    assert_eq!(w.neighbours().lookup(CLIENT_IP), Some(MacAddr(new_mac)));
    assert_accounting(&w);
}

#[test]
fn echo_to_port_address_from_known_neighbour_is_answered_at_once() {
    let mut w = lab_worker();
    roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP), 0);
    let (front, back) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, FRONT_IP, 1), 1);
    assert_eq!(front, vec![expected_pong(CLIENT_MAC, FRONT_IP, CLIENT_IP, 1)]);
    assert!(back.is_empty());
    assert_eq!(snapshot(&w).icmp_echo_replies, 1);
    assert_accounting(&w);
}

#[test]
fn echo_to_vip_from_off_link_client_resolves_the_gateway_first() {
    let mut w = lab_worker();
    let (front, _) = roundtrip(&mut w, FRONT, &ping(ROUTER_MAC, FAR_CLIENT, VIP, 9), 0);
    // First an ARP request for the gateway, from the front address, padded to 60 bytes.
    let who_has = pad60(eth(BCAST, FRONT_MAC, ETH_ARP, &arp(1, FRONT_MAC, FRONT_IP, [0; 6], ROUTER_IP)));
    assert_eq!(front, vec![who_has]);
    assert!(matches!(w.neighbours().info(ROUTER_IP), Some((FRONT, NeighInfo::Incomplete { pending: 1, requests: 1 }))));
    assert_accounting(&w);
    // The gateway answers; the parked reply leaves, to the gateway's MAC, from the VIP.
    let (front, back) = roundtrip(&mut w, FRONT, &arp_reply(ROUTER_MAC, ROUTER_IP, FRONT_MAC, FRONT_IP), SEC / 10);
    assert_eq!(front, vec![expected_pong(ROUTER_MAC, VIP, FAR_CLIENT, 9)]);
    assert!(back.is_empty());
    let s = snapshot(&w);
    assert_eq!((s.rx_consumed, s.arp_requests_sent, s.icmp_echo_replies, s.drops_total()), (1, 1, 1, 0));
    // And later pings go straight out.
    let (front, _) = roundtrip(&mut w, FRONT, &ping(ROUTER_MAC, FAR_CLIENT, VIP, 10), SEC / 5);
    assert_eq!(front, vec![expected_pong(ROUTER_MAC, VIP, FAR_CLIENT, 10)]);
    assert_accounting(&w);
}

#[test]
fn echo_to_local_address_on_back_port_is_routed_back_out_of_front() {
    // A ping received on the back port for a local address, from a far client: the reply
    // follows the route (default via the front gateway), not the arrival port.
    let mut w = lab_worker_with_static_router();
    let mut f = ping(RS_MAC, FAR_CLIENT, LOCAL_IP, 3);
    f[..6].copy_from_slice(&BACK_MAC);
    let (front, back) = roundtrip(&mut w, BACK, &f, 0);
    assert!(back.is_empty());
    assert_eq!(front, vec![expected_pong(ROUTER_MAC, LOCAL_IP, FAR_CLIENT, 3)]);
}

#[test]
fn gratuitous_arp_announces_every_address_on_its_port() {
    let mut w = lab_worker();
    assert_eq!(w.send_gratuitous_arp(0), 5);
    let garp = |mac: [u8; 6], ip| pad60(eth(BCAST, mac, ETH_ARP, &arp(1, mac, ip, [0; 6], ip)));
    assert_eq!(take_tx(&mut w, FRONT), vec![garp(FRONT_MAC, FRONT_IP), garp(FRONT_MAC, VIP)]);
    assert_eq!(
        take_tx(&mut w, BACK),
        vec![garp(BACK_MAC, BACK_IP), garp(BACK_MAC, LOCAL_IP), garp(BACK_MAC, LOCAL_IP2)]
    );
    let s = snapshot(&w);
    assert_eq!((s.gratuitous_arps_sent, s.local_originated, s.tx_packets), (5, 5, 5));
    // Announced once more two seconds later (RFC 5227), and only once.
    w.poll_once(SEC);
    assert!(take_tx(&mut w, FRONT).is_empty());
    w.poll_once(2 * SEC);
    assert_eq!(take_tx(&mut w, FRONT), vec![garp(FRONT_MAC, FRONT_IP), garp(FRONT_MAC, VIP)]);
    assert_eq!(take_tx(&mut w, BACK).len(), 3);
    w.poll_once(10 * SEC);
    assert!(take_tx(&mut w, FRONT).is_empty());
    assert_eq!(snapshot(&w).gratuitous_arps_sent, 10);
    assert_accounting(&w);
}

#[test]
fn gratuitous_arp_for_a_vip_on_every_port_and_without_buffers() {
    let mut c = lab_config();
    c.vips[0].port = None;
    let mut w = rvs_dataplane::worker::Worker::new(
        &c,
        queues(),
        MemPool::with_limit(3),
        rvs_dataplane::l2l3::neigh::NeighSync::none(),
    )
    .unwrap();
    assert_eq!(w.send_gratuitous_arp(0), 3, "pool of 3 for 6 announcements");
    let s = snapshot(&w);
    assert_eq!((s.local_originated, s.drop_count(DropReason::NoMbuf)), (6, 3));
    assert_accounting(&w);
}

/// One malformed or unwanted frame → exactly one drop with this reason, nothing sent.
#[test]
fn malformed_table() {
    use std::net::Ipv4Addr;
    let icmp = icmp_echo(8, 1, 1, b"abcd");
    let good_ip = ipv4(Ip::new(CLIENT_IP, FRONT_IP, 1), &icmp);
    let on_front = |l3: &[u8]| pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, l3));
    let patched = |at: usize, v: u8, fix_csum: bool| {
        let mut p = good_ip.clone();
        p[at] = v;
        if fix_csum {
            p[10] = 0;
            p[11] = 0;
            let c = csum(&p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        on_front(&p)
    };
    let arp_patched = |at: usize, v: u8| {
        let mut f = arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP);
        f[14 + at] = v;
        f
    };
    let with_l4 =
        |src, dst, proto: u8, frag: u16, l4: &[u8]| on_front(&ipv4(Ip { frag, ..Ip::new(src, dst, proto) }, l4));
    let tcp_syn = {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x02;
        t
    };
    let udp = [0x30, 0x39, 0, 53, 0, 8, 0, 0];
    let mut vlan = on_front(&good_ip);
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    let mut ipv6 = on_front(&good_ip);
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut mcast = on_front(&good_ip);
    mcast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
    let mut other_host = on_front(&good_ip);
    other_host[5] ^= 0x40;
    let mut bcast_ip = on_front(&good_ip);
    bcast_ip[..6].copy_from_slice(&BCAST);
    let mut bad_src_mac = on_front(&good_ip);
    bad_src_mac[6] |= 1;
    let mut looped = on_front(&good_ip);
    looped[6..12].copy_from_slice(&FRONT_MAC);
    let mut icmp_bad = good_ip.clone();
    icmp_bad[20 + 8] ^= 0xff;
    let mut total_len_big = good_ip.clone();
    total_len_big[2..4].copy_from_slice(&200u16.to_be_bytes());
    let total_len_big = {
        let c = {
            let mut h = total_len_big[..20].to_vec();
            h[10] = 0;
            h[11] = 0;
            csum(&h)
        };
        total_len_big[10..12].copy_from_slice(&c.to_be_bytes());
        on_front(&total_len_big)
    };

    let table: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("truncated Ethernet", vec![0xff; 10], DropReason::EthTruncated),
        ("truncated IP", eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &good_ip[..12]), DropReason::IpTruncated),
        ("IP version 6 in an IPv4 frame", patched(0, 0x65, true), DropReason::IpBadVersion),
        ("IHL 4", patched(0, 0x44, false), DropReason::IpBadIhl),
        ("total length beyond the frame", total_len_big, DropReason::IpBadLength),
        ("bad IP checksum", patched(10, good_ip[10] ^ 1, false), DropReason::IpBadChecksum),
        ("fragment (MF)", with_l4(CLIENT_IP, FRONT_IP, 1, 0x2000, &icmp), DropReason::IpFragment),
        ("fragment (offset)", with_l4(CLIENT_IP, FRONT_IP, 1, 0x0010, &icmp), DropReason::IpFragment),
        ("bad ICMP checksum", on_front(&icmp_bad), DropReason::IcmpBadChecksum),
        ("ICMP shorter than 8", with_l4(CLIENT_IP, FRONT_IP, 1, 0, &icmp[..4]), DropReason::IcmpMalformed),
        (
            "ICMP timestamp",
            with_l4(CLIENT_IP, FRONT_IP, 1, 0, &icmp_echo(13, 1, 1, &[0; 12])),
            DropReason::IcmpUnhandled,
        ),
        ("ICMP echo reply", with_l4(CLIENT_IP, FRONT_IP, 1, 0, &icmp_echo(0, 1, 1, b"")), DropReason::IcmpUnhandled),
        ("ARP hlen 8", arp_patched(4, 8), DropReason::ArpMalformed),
        ("ARP plen 16", arp_patched(5, 16), DropReason::ArpMalformed),
        ("ARP htype 6", arp_patched(1, 6), DropReason::ArpMalformed),
        ("ARP opcode 3", arp_patched(7, 3), DropReason::ArpMalformed),
        (
            "ARP truncated",
            eth(BCAST, CLIENT_MAC, ETH_ARP, &arp(1, CLIENT_MAC, CLIENT_IP, [0; 6], FRONT_IP)[..20]),
            DropReason::ArpMalformed,
        ),
        ("IPv6 ethertype carrying IPv4", ipv6, DropReason::Ip6BadVersion),
        ("VLAN tag", vlan, DropReason::EthUnknownType),
        ("multicast destination MAC", mcast, DropReason::EthNotForUs),
        ("another host's MAC", other_host, DropReason::EthNotForUs),
        ("IPv4 to broadcast MAC", bcast_ip, DropReason::EthNotForUs),
        ("multicast source MAC", bad_src_mac, DropReason::EthBadSource),
        ("our own frame looped back", looped, DropReason::EthBadSource),
        ("TCP to VIP", with_l4(CLIENT_IP, VIP, 6, 0x4000, &tcp_syn), DropReason::L4NoService),
        ("UDP to port address", with_l4(CLIENT_IP, FRONT_IP, 17, 0, &udp), DropReason::L4NoService),
        ("GRE to port address", with_l4(CLIENT_IP, FRONT_IP, 47, 0, &[0; 8]), DropReason::IpUnknownProtocol),
        ("not our address", with_l4(CLIENT_IP, Ipv4Addr::new(10, 10, 0, 77), 1, 0, &icmp), DropReason::IpNotForUs),
        ("loopback source", with_l4(Ipv4Addr::LOCALHOST, FRONT_IP, 1, 0, &icmp), DropReason::IpBadSource),
        ("source is our VIP", with_l4(VIP, FRONT_IP, 1, 0, &icmp), DropReason::IpBadSource),
        ("source 0.0.0.0", with_l4(Ipv4Addr::UNSPECIFIED, FRONT_IP, 1, 0, &icmp), DropReason::IpBadSource),
        ("multicast source", with_l4(Ipv4Addr::new(224, 0, 0, 5), FRONT_IP, 1, 0, &icmp), DropReason::IpBadSource),
    ];
    // The control: the good packet is answered (its sender is a known neighbour).
    let mut w = lab_worker();
    roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP), 0);
    let (front, _) = roundtrip(&mut w, FRONT, &on_front(&good_ip), 0);
    assert_eq!(front.len(), 1, "control packet answered");

    for (what, frame, reason) in table {
        let mut w = lab_worker();
        let (front, back) = roundtrip(&mut w, FRONT, &frame, 0);
        assert!(front.is_empty() && back.is_empty(), "{what}: nothing sent");
        let s = snapshot(&w);
        assert_eq!(
            s.drop_count(reason),
            1,
            "{what}: expected {reason}, got {:?}",
            s.drops.iter().filter(|(_, &v)| v > 0).collect::<Vec<_>>()
        );
        assert_eq!(s.drops_total(), 1, "{what}: counted once");
        assert_accounting(&w);
    }
}

#[test]
fn nic_refusal_is_counted_tx_full() {
    let mut w = lab_worker();
    w.queue_mut(FRONT).unwrap().set_tx_room(Some(1));
    for _ in 0..3 {
        inject(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP));
    }
    w.poll_once(0);
    assert_eq!(take_tx(&mut w, FRONT).len(), 1);
    let s = snapshot(&w);
    assert_eq!((s.tx_packets, s.drop_count(DropReason::TxFull)), (1, 2));
    assert_accounting(&w);
}

#[test]
fn a_full_burst_buffer_is_flushed_before_the_next_packet() {
    let mut w = lab_worker();
    for _ in 0..100 {
        inject(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP));
    }
    let mut received = 0;
    while received < 100 {
        received += w.poll_once(0);
    }
    assert_eq!(take_tx(&mut w, FRONT).len(), 100);
    assert_eq!(snapshot(&w).tx_packets, 100);
    assert_eq!(w.poll_once(0), 0);
    let _: &mut MemQueue = w.queues_mut().next().unwrap();
}

#[test]
fn run_polls_until_stopped_and_sleeps_only_when_idle() {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut c = lab_config();
    c.idle = rvs_dataplane::idle::IdlePolicy::Adaptive;
    let mut w = worker_with(&c);
    inject(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP));
    let stop = AtomicBool::new(false);
    let calls = Cell::new(0u64);
    w.run(&stop, || {
        calls.set(calls.get() + 1);
        if calls.get() == 200 {
            stop.store(true, Ordering::Relaxed);
        }
        calls.get() * 1_000
    });
    let s = snapshot(&w);
    // 200 clock reads: one per poll, plus one after the only non-empty poll to time it.
    assert_eq!(s.polls, 199);
    assert_eq!(s.arp_replies_sent, 1);
    let lat = w.counters().burst_latency.snapshot().summary();
    assert_eq!((lat.count, lat.sum_ns), (1, 1_000), "one burst, timed between two reads 1 µs apart");
    // 198 empty polls: the first 64 spin, every later one sleeps.
    assert_eq!(s.idle_sleeps, 198 - 64);
    assert_eq!(take_tx(&mut w, FRONT).len(), 1);
}
