//! The worker's IPv6 lite stack end to end on the in-memory driver: neighbour discovery
//! answered and learned, spoofed claims of our addresses refused, ICMPv6 echo answered
//! (soliciting the neighbour first when unknown), unsolicited advertisements at start, and
//! every other IPv6 frame dropped under its reason. Expected frames are built here byte by
//! byte, with their own RFC 1071 checksum over the RFC 8200 pseudo-header, independently of
//! `rvs_dataplane::wire`.

mod common;

use std::net::Ipv6Addr;

use common::ip6::*;
use common::*;
use rvs_dataplane::l2l3::neigh::NeighInfo;
use rvs_dataplane::l2l3::route::StaticRoute6;
use rvs_dataplane::stats::DropReason;

const FRONT_IP6: &str = "2001:db8:10::1";
const CLIENT_IP6: &str = "2001:db8:10::2";
/// The front port's link-local address: fe80:: and the modified EUI-64 of 02:00:00:00:f0:01.
const FRONT_LL: &str = "fe80::ff:fe00:f001";
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

fn worker6() -> MemWorker {
    let mut c = lab_config();
    c.ports[0].ipv6_addresses = vec!["2001:db8:10::1/64".parse().unwrap()];
    c.ports[1].ipv6_addresses = vec!["2001:db8:20::1/64".parse().unwrap()];
    worker_with(&c)
}

/// The client's NS for `target`, to its solicited-node group.
fn client_ns(target: Ipv6Addr) -> Vec<u8> {
    let (group, mac) = solicited(target);
    eth(mac, CLIENT_MAC, ETH_IPV6, &icmp6(a(CLIENT_IP6), group, 255, nd_msg(135, 0, target, 1, CLIENT_MAC)))
}

fn echo6(ty: u8, seq: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"rvs ping6 payload");
    m
}

fn client_ping6(dst: &str, seq: u16) -> Vec<u8> {
    eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(a(CLIENT_IP6), a(dst), 64, echo6(128, seq)))
}

fn expected_pong6(from: &str, seq: u16) -> Vec<u8> {
    eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(a(from), a(CLIENT_IP6), 64, echo6(129, seq)))
}

#[test]
fn solicitation_is_answered_and_the_sender_learned() {
    for target in [FRONT_IP6, FRONT_LL] {
        let mut w = worker6();
        let (front, back) = roundtrip(&mut w, FRONT, &client_ns(a(target)), 0);
        // S and O set (0x60), target link-layer option (2) with the front MAC.
        let na = icmp6(a(target), a(CLIENT_IP6), 255, nd_msg(136, 0x60, a(target), 2, FRONT_MAC));
        assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &na)], "{target}");
        assert!(back.is_empty());
        assert!(matches!(
            w.neighbours6().info(a(CLIENT_IP6)),
            Some((FRONT, NeighInfo::Reachable { mac, .. })) if mac.0 == CLIENT_MAC
        ));
        assert_eq!(snapshot(&w).nd_advertisements_sent, 1);
        assert_accounting(&w);
    }
}

#[test]
fn echo_is_answered_soliciting_the_unknown_neighbour_first() {
    let mut w = worker6();
    // Unknown client: the reply waits, an NS goes out from our address on its prefix.
    let (front, _) = roundtrip(&mut w, FRONT, &client_ping6(FRONT_IP6, 1), 0);
    let (group, group_mac) = solicited(a(CLIENT_IP6));
    let ns = icmp6(a(FRONT_IP6), group, 255, nd_msg(135, 0, a(CLIENT_IP6), 1, FRONT_MAC));
    assert_eq!(front, vec![eth(group_mac, FRONT_MAC, ETH_IPV6, &ns)]);
    assert_eq!(w.neighbours6().parked(), 1);
    assert_accounting(&w);
    // The client's solicited NA releases it.
    let na = icmp6(a(CLIENT_IP6), a(FRONT_IP6), 255, nd_msg(136, 0x60, a(CLIENT_IP6), 2, CLIENT_MAC));
    let (front, _) = roundtrip(&mut w, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &na), 1000);
    assert_eq!(front, vec![expected_pong6(FRONT_IP6, 1)]);
    // Now known: answered at once, to the global and the link-local address.
    let (front, _) = roundtrip(&mut w, FRONT, &client_ping6(FRONT_IP6, 2), 2000);
    assert_eq!(front, vec![expected_pong6(FRONT_IP6, 2)]);
    let (front, _) = roundtrip(&mut w, FRONT, &client_ping6(FRONT_LL, 3), 3000);
    assert_eq!(front, vec![expected_pong6(FRONT_LL, 3)]);
    let s = snapshot(&w);
    assert_eq!((s.icmp6_echo_replies, s.nd_solicitations_sent, s.drops_total()), (3, 1, 0));
    assert_accounting(&w);
}

#[test]
fn unanswered_solicitation_gives_up_and_counts() {
    let mut w = worker6();
    roundtrip(&mut w, FRONT, &client_ping6(FRONT_IP6, 1), 0);
    for t in 1..=4 {
        w.poll_once(t * SEC);
    }
    let s = snapshot(&w);
    assert_eq!(s.nd_solicitations_sent, 3, "one NS and two retries");
    assert_eq!(s.drop_count(DropReason::NeighUnresolved), 1);
    assert_eq!(w.neighbours6().parked(), 0);
    assert_accounting(&w);
}

#[test]
fn spoofed_claims_of_our_addresses_are_refused() {
    let mut w = worker6();
    const THIEF: [u8; 6] = [0x02, 0, 0, 0, 0x0e, 0x66];
    // An unsolicited NA (O set) saying our address is at the thief's MAC, to all-nodes and
    // unicast; an NS from our address; the same for the link-local address.
    let na_all = icmp6(a(FRONT_IP6), a("ff02::1"), 255, nd_msg(136, 0x20, a(FRONT_IP6), 2, THIEF));
    let na_uni = icmp6(a(FRONT_IP6), a(FRONT_IP6), 255, nd_msg(136, 0x20, a(FRONT_IP6), 2, THIEF));
    let (group, group_mac) = solicited(a(CLIENT_IP6));
    let ns_from_us = icmp6(a(FRONT_IP6), group, 255, nd_msg(135, 0, a(CLIENT_IP6), 1, THIEF));
    let na_ll = icmp6(a(FRONT_LL), a("ff02::1"), 255, nd_msg(136, 0x20, a(FRONT_LL), 2, THIEF));
    let frames = [
        eth(ALL_NODES_MAC, THIEF, ETH_IPV6, &na_all),
        eth(FRONT_MAC, THIEF, ETH_IPV6, &na_uni),
        eth(group_mac, THIEF, ETH_IPV6, &ns_from_us),
        eth(ALL_NODES_MAC, THIEF, ETH_IPV6, &na_ll),
    ];
    for f in &frames {
        let (front, back) = roundtrip(&mut w, FRONT, f, 0);
        assert!(front.is_empty() && back.is_empty());
    }
    // The NS was to a group that is not ours (the client's): not even looked at.
    let s = snapshot(&w);
    assert_eq!(s.drop_count(DropReason::NdSpoofedOwn), 3, "{:?}", s.drops);
    assert_eq!(s.drop_count(DropReason::EthNotForUs), 1);
    // The same NS to the front address's own group is looked at, and refused.
    let (group, group_mac) = solicited(a(FRONT_IP6));
    let ns = icmp6(a(FRONT_IP6), group, 255, nd_msg(135, 0, a(FRONT_IP6), 1, THIEF));
    roundtrip(&mut w, FRONT, &eth(group_mac, THIEF, ETH_IPV6, &ns), 0);
    assert_eq!(snapshot(&w).drop_count(DropReason::NdSpoofedOwn), 4);
    assert!(w.neighbours6().is_empty(), "nothing learned from a spoofer");
    // We still answer for our address with our own MAC.
    let (front, _) = roundtrip(&mut w, FRONT, &client_ns(a(FRONT_IP6)), 0);
    assert_eq!(front.len(), 1);
    assert_eq!(&front[0][6..12], &FRONT_MAC);
    assert_eq!(&front[0][14 + 40 + 26..14 + 40 + 32], &FRONT_MAC, "target link-layer option");
    assert_accounting(&w);
}

#[test]
fn unsolicited_advertisements_at_start() {
    let mut w = worker6();
    w.send_gratuitous_arp(0);
    let front: Vec<Vec<u8>> = take_tx(&mut w, FRONT).into_iter().filter(|f| f[12..14] == [0x86, 0xdd]).collect();
    let want: Vec<Vec<u8>> = [FRONT_IP6, FRONT_LL]
        .iter()
        .map(|t| {
            let na = icmp6(a(t), a("ff02::1"), 255, nd_msg(136, 0x20, a(t), 2, FRONT_MAC));
            eth(ALL_NODES_MAC, FRONT_MAC, ETH_IPV6, &na)
        })
        .collect();
    assert_eq!(front, want);
    assert_eq!(snapshot(&w).nd_advertisements_sent, 4, "two addresses on each port");
    assert_accounting(&w);
}

#[test]
fn other_ipv6_is_dropped_by_reason() {
    let udp = [0x30, 0x39, 0, 53, 0, 8, 0, 0];
    let client = a(CLIENT_IP6);
    let us = a(FRONT_IP6);
    // Nine destination-options headers (8 bytes each, padding only) in front of ICMPv6.
    let mut chain = Vec::new();
    for i in 0..9 {
        chain.extend_from_slice(&[if i == 8 { 58 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    chain.extend_from_slice(&echo6(128, 1));
    let mld = icmp6(a("fe80::2"), a("ff02::16"), 1, vec![143, 0, 0, 0, 0, 0, 0, 0]);
    let mut bad_hl_ns = client_ns(us);
    bad_hl_ns[14 + 7] = 64;
    let mut bad_csum_ping = client_ping6(FRONT_IP6, 1);
    *bad_csum_ping.last_mut().unwrap() ^= 1;
    let table: Vec<(&str, Vec<u8>, DropReason)> = vec![
        (
            "UDP to our address",
            eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(client, us, 17, 64, &udp)),
            DropReason::Ip6NoService,
        ),
        ("to another address", client_ping6("2001:db8:10::77", 1), DropReason::Ip6NotForUs),
        ("truncated", eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &[0x60; 20]), DropReason::Ip6Truncated),
        (
            "too many extension headers",
            eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(client, us, 60, 64, &chain)),
            DropReason::Ip6ExtTooMany,
        ),
        ("MLD report", eth([0x33, 0x33, 0, 0, 0, 0x16], CLIENT_MAC, ETH_IPV6, &mld), DropReason::EthNotForUs),
        ("NS with hop limit 64", bad_hl_ns, DropReason::NdBadHopLimit),
        ("bad echo checksum", bad_csum_ping, DropReason::Icmp6BadChecksum),
        (
            "echo reply",
            eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(client, us, 64, echo6(129, 1))),
            DropReason::Icmp6Unhandled,
        ),
        (
            "multicast source",
            eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(a("ff02::1"), us, 64, echo6(128, 1))),
            DropReason::Ip6BadSource,
        ),
        ("NS for another host (not our group)", client_ns(a("2001:db8:10::1:1")), DropReason::EthNotForUs),
        ("NS for another host in our group", client_ns(a("2001:db8:10:0:1::1")), DropReason::NdNotForUs),
        (
            "IPv6 to broadcast",
            eth(BCAST, CLIENT_MAC, ETH_IPV6, &icmp6(client, us, 64, echo6(128, 1))),
            DropReason::EthNotForUs,
        ),
    ];
    for (name, frame, reason) in table {
        let mut w = worker6();
        let (front, back) = roundtrip(&mut w, FRONT, &frame, 0);
        assert!(front.is_empty() && back.is_empty(), "{name}: sent something");
        assert_single_drop(&w, reason);
        assert_accounting(&w);
    }
    // A port without IPv6 addresses takes no part: no multicast, nothing is ours.
    let mut w = lab_worker();
    roundtrip(&mut w, FRONT, &client_ns(a(FRONT_IP6)), 0);
    assert_single_drop(&w, DropReason::EthNotForUs);
    let mut w = lab_worker();
    roundtrip(&mut w, FRONT, &client_ping6(FRONT_IP6, 1), 0);
    assert_single_drop(&w, DropReason::Ip6NotForUs);
}

#[test]
fn two_workers_share_what_one_learns_by_neighbour_discovery() {
    use rvs_dataplane::l2l3::neigh::NeighSync;
    use rvs_dataplane::worker::Worker;
    use rvs_drivers::mem::MemPool;
    let mut sync = NeighSync::mesh(2, 64).into_iter();
    let mut c0 = lab_config();
    c0.count = 2;
    c0.ports[0].ipv6_addresses = vec!["2001:db8:10::1/64".parse().unwrap()];
    let mut c1 = c0.clone();
    c1.index = 1;
    let mut w0 = Worker::new(&c0, queues(), MemPool::new(), sync.next().unwrap()).unwrap();
    let mut w1 = Worker::new(&c1, queues(), MemPool::new(), sync.next().unwrap()).unwrap();
    // Worker 1 gets the ping and solicits the client; the NA lands on worker 0.
    let (front, _) = roundtrip(&mut w1, FRONT, &client_ping6(FRONT_IP6, 7), 0);
    assert_eq!(front.len(), 1, "NS from worker 1");
    let na = icmp6(a(CLIENT_IP6), a(FRONT_IP6), 255, nd_msg(136, 0x60, a(CLIENT_IP6), 2, CLIENT_MAC));
    let (front, _) = roundtrip(&mut w0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &na), SEC / 10);
    assert!(front.is_empty());
    // A solicited NA is addressed to us: worker 0 creates the entry and tells worker 1,
    // which sends its parked reply on its next poll.
    assert_eq!(w0.neighbours6().lookup(a(CLIENT_IP6)).map(|m| m.0), Some(CLIENT_MAC));
    w1.poll_once(SEC / 10);
    assert_eq!(take_tx(&mut w1, FRONT), vec![expected_pong6(FRONT_IP6, 7)]);
    assert_eq!(snapshot(&w1).neigh_updates_received, 1);
    assert_accounting(&w0);
    assert_accounting(&w1);
}

#[test]
fn bad_ipv6_port_addresses_are_refused() {
    use rvs_dataplane::worker::ConfigError;
    for bad in ["ff02::1/64", "fe80::1/64", "::1/128", "::/64", "::ffff:10.0.0.1/96", "2001:db8::1/0"] {
        let mut c = lab_config();
        c.ports[0].ipv6_addresses = vec![bad.parse().unwrap()];
        assert!(matches!(c.validate(), Err(ConfigError::BadAddress6 { .. })), "{bad}");
    }
    let mut c = lab_config();
    c.ports[0].ipv6_addresses = vec!["2001:db8:10::1/64".parse().unwrap()];
    c.ports[1].ipv6_addresses = vec!["2001:db8:10::1/64".parse().unwrap()];
    assert!(matches!(c.validate(), Err(ConfigError::DuplicateAddress6(_))));
    // Two ports with one MAC have one link-local address each, on their own link: allowed.
    let mut c = lab_config();
    c.ports[1].mac = c.ports[0].mac;
    c.ports[0].ipv6_addresses = vec!["2001:db8:10::1/64".parse().unwrap()];
    c.ports[1].ipv6_addresses = vec!["2001:db8:20::1/64".parse().unwrap()];
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn echo_to_an_off_link_source_goes_through_the_static_route() {
    let router = a("2001:db8:10::254");
    let far = a("2001:db8:99::5");
    let ping = eth(FRONT_MAC, ROUTER_MAC, ETH_IPV6, &icmp6(far, a(FRONT_IP6), 60, echo6(128, 7)));

    // No IPv6 route covers the source: the reply has nowhere to go.
    let mut w = worker6();
    let (front, back) = roundtrip(&mut w, FRONT, &ping, 0);
    assert!(front.is_empty() && back.is_empty());
    assert_single_drop(&w, DropReason::NoRoute);
    assert_accounting(&w);

    // With `::/0 via` the router: the router is solicited, and its answer releases the
    // reply, to the router's MAC with the far source as destination.
    let mut c = lab_config();
    c.ports[0].ipv6_addresses = vec!["2001:db8:10::1/64".parse().unwrap()];
    c.ports[1].ipv6_addresses = vec!["2001:db8:20::1/64".parse().unwrap()];
    c.routes6 = vec![StaticRoute6 { prefix: "::/0".parse().unwrap(), via: router }];
    let mut w = worker_with(&c);
    let (front, back) = roundtrip(&mut w, FRONT, &ping, 0);
    let (group, group_mac) = solicited(router);
    let ns = icmp6(a(FRONT_IP6), group, 255, nd_msg(135, 0, router, 1, FRONT_MAC));
    assert_eq!(front, vec![eth(group_mac, FRONT_MAC, ETH_IPV6, &ns)]);
    assert!(back.is_empty());
    let na = icmp6(router, a(FRONT_IP6), 255, nd_msg(136, 0x60, router, 2, ROUTER_MAC));
    let (front, _) = roundtrip(&mut w, FRONT, &eth(FRONT_MAC, ROUTER_MAC, ETH_IPV6, &na), 1000);
    let pong = eth(ROUTER_MAC, FRONT_MAC, ETH_IPV6, &icmp6(a(FRONT_IP6), far, 64, echo6(129, 7)));
    assert_eq!(front, vec![pong]);
    let s = snapshot(&w);
    assert_eq!((s.icmp6_echo_replies, s.drops_total()), (1, 0));
    assert_accounting(&w);

    // Two addresses of one prefix on a port make one connected route, not a duplicate.
    let mut two = c.clone();
    two.ports[0].ipv6_addresses.push("2001:db8:10::5/64".parse().unwrap());
    assert_eq!(two.validate(), Ok(()));

    // A gateway off every IPv6 prefix is refused when the worker is built.
    c.routes6 = vec![StaticRoute6 { prefix: "::/0".parse().unwrap(), via: a("2001:db8:77::1") }];
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("2001:db8:77::1") && e.contains("not on any port"), "{e}");
}
