//! IPv6 virtual services through in-memory workers: DR, NAT66 and IPv6-in-IPv6 tunnel, TCP and UDP, replies,
//! round robin across servers, two workers (ownership redirects), neighbour discovery for
//! the VIP, and the drops of the IPv6 L4 path. Expected frames are built here byte by
//! byte, with their own RFC 1071 checksum over the RFC 8200 pseudo-header (the tests'
//! `csum`), independently of `rvs_dataplane::wire`.

mod common;

use std::sync::Arc;

use common::ip6::*;
use common::l4::{assert_accounting_all, send_to, server_stats, service_stats, LbOpts, ACK, SYN};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::admission::Admission;
use rvs_dataplane::sched::persist::persist_now_s;
use rvs_dataplane::sched::PersistTable;
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices, TableError, TableIds};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto};

const CLIENT6: &str = "2001:db8:10::2";
const CLIENT6B: &str = "2001:db8:10::3";
const BACK6: &str = "2001:db8:20::1";
const RS6: [&str; 2] = ["2001:db8:20::11", "2001:db8:20::12"];
const RS6_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x05, 0x11], [0x02, 0, 0, 0, 0x05, 0x12]];

// ---- services and workers (packets: common::ip6, independent of the code under test) ----

/// Services 0: TCP 80 DR (rr over both servers); 1: TCP 8080 NAT66 to port 80 (rr); 2:
/// UDP 53 NAT66 to port 5353; 3: TCP 443 IPv6-in-IPv6 tunnel (rr).
fn services(workers: usize) -> SharedServices {
    let both = |port, fwd| RS6.iter().map(|s| server6(s, port, fwd, workers)).collect::<Vec<_>>();
    share(
        ServiceTable::new(
            1,
            vec![
                service6(workers, L4Proto::Tcp, 80, both(80, ForwardMode::Dr)),
                service6(workers, L4Proto::Tcp, 8080, both(80, ForwardMode::Nat)),
                service6(workers, L4Proto::Udp, 53, both(5353, ForwardMode::Nat)),
                service6(workers, L4Proto::Tcp, 443, both(443, ForwardMode::Tunnel)),
            ],
        )
        .expect("valid table"),
    )
}

/// `n` workers with IPv6 addresses on both ports, the clients and both servers learned.
fn workers6(shared: &SharedServices, n: usize) -> Vec<MemWorker> {
    let mut learn = vec![neighbour6(CLIENT6, CLIENT_MAC, FRONT), neighbour6(CLIENT6B, CLIENT_MAC, FRONT)];
    learn.extend(RS6.iter().zip(RS6_MAC).map(|(s, mac)| neighbour6(s, mac, BACK)));
    common::workers6::workers6(shared, n, &LbOpts::default(), &[], &learn, |_, w| w)
}

fn to_vip(proto: L4Proto, client: &str, cport: u16, vport: u16, flags: u8, hl: u8) -> Vec<u8> {
    let p = pkt(proto, (a(client), cport), (a(VIP6), vport), flags, hl, b"hello v6");
    eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &p)
}

#[test]
fn dr_sends_the_packet_unchanged_to_the_servers_mac_round_robin() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    for (i, cport) in [40000u16, 40001, 40002].into_iter().enumerate() {
        let f = to_vip(L4Proto::Tcp, CLIENT6, cport, 80, SYN, 64);
        let (front, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
        assert!(front.is_empty(), "{front:02x?}");
        // Only the MACs change; the hop limit stays (as LVS DR).
        let want = eth(RS6_MAC[i % 2], BACK_MAC, ETH_IPV6, &f[14..]);
        assert_eq!(back, vec![want], "flow {i}");
    }
    // Later packets of the first flow follow it.
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6, 40000, 80, ACK, 64), SEC);
    assert_eq!(&back[0][..6], &RS6_MAC[0]);
    assert_eq!(ws[0].lb().unwrap().conns6().len(), 3);
    let s0 = server_stats(&shared, 0, 0);
    let s1 = server_stats(&shared, 0, 1);
    assert_eq!((s0.conns, s1.conns), (2, 1));
    assert_eq!((s0.packets_in, s1.packets_in), (3, 1));
    assert_eq!(service_stats(&shared, 0).packets_in, 4);
    assert_eq!(snapshot(&ws[0]).drops_total(), 0);
    assert_accounting_all(&ws);
}

#[test]
fn tunnel_encapsulates_in_ipv6_to_the_servers_round_robin() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    for (i, cport) in [41000u16, 41001].into_iter().enumerate() {
        let f = to_vip(L4Proto::Tcp, CLIENT6, cport, 443, SYN, 64);
        let (front, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
        assert!(front.is_empty(), "{front:02x?}");
        // RFC 2473: an outer header (traffic class and flow label of the inner, 0 here;
        // payload the inner packet; next header 41; hop limit 64) from the back port's
        // address to the server, around the client's packet with its hop limit one lower.
        let mut inner = f[14..].to_vec();
        inner[7] = 63;
        let want = eth(RS6_MAC[i], BACK_MAC, ETH_IPV6, &ipv6(a(BACK6), a(RS6[i]), 41, 64, &inner));
        assert_eq!(back, vec![want], "flow {i}");
    }
    assert_eq!(snapshot(&ws[0]).drops_total(), 0);
    assert_eq!(server_stats(&shared, 3, 1).conns, 1);
    // Hop limit 1: not forwarded into the tunnel; a time exceeded goes back to the client.
    let (front, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6, 41002, 443, SYN, 1), SEC);
    assert!(back.is_empty());
    assert_eq!(front.len(), 1);
    assert_eq!((front[0][14 + 6], front[0][14 + 40]), (58, 3), "ICMPv6 time exceeded");
    assert_single_drop(&ws[0], DropReason::Ip6HopLimit);
    // A 1461-byte packet would be 1501 outside: dropped and counted, not fragmented, and
    // the client told the largest packet the tunnel takes (packet too big, MTU 1460).
    let big = pkt(L4Proto::Tcp, (a(CLIENT6), 41003), (a(VIP6), 443), SYN, 64, &[7; 1401]);
    let (front, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &big), SEC);
    assert!(back.is_empty());
    assert_eq!(front.len(), 1);
    let icmp = &front[0][14..];
    assert_eq!((icmp[6], icmp[40], &icmp[24..40]), (58, 2, &a(CLIENT6).octets()[..]), "packet too big to the client");
    assert_eq!(u32::from_be_bytes([icmp[44], icmp[45], icmp[46], icmp[47]]), 1460);
    assert_eq!(csum6(a(VIP6), a(CLIENT6), 58, &icmp[40..]), 0, "ICMPv6 checksum");
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::TunnelTooBig), 1);
    // One byte less fits exactly.
    let fits = pkt(L4Proto::Tcp, (a(CLIENT6), 41004), (a(VIP6), 443), SYN, 64, &[7; 1400]);
    let (_, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &fits), SEC);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].len(), 14 + 1500);
    assert_accounting_all(&ws);
}

#[test]
fn nat66_tcp_both_directions() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 40000);
    let f = to_vip(L4Proto::Tcp, CLIENT6, 40000, 8080, SYN, 64);
    let (_, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
    // Destination → server:80, hop limit 63, checksum updated.
    let want = eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, client, (a(RS6[0]), 80), SYN, 63, b"hello v6"));
    assert_eq!(back, vec![want.clone()]);
    assert_l4_checksum(&back[0]);
    // The server's SYN-ACK to the client gets the VIP back as its source.
    let reply = pkt(L4Proto::Tcp, (a(RS6[0]), 80), client, SYN | ACK, 64, b"hello v6");
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &reply), 2 * SEC);
    assert!(back.is_empty());
    let want =
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, (a(VIP6), 8080), client, SYN | ACK, 63, b"hello v6"));
    assert_eq!(front, vec![want]);
    assert_l4_checksum(&front[0]);
    // The next client flow goes to the other server.
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6, 40001, 8080, SYN, 64), 3 * SEC);
    assert_eq!(&back[0][14 + 24..14 + 40], &a(RS6[1]).octets());
    let s = server_stats(&shared, 1, 0);
    assert_eq!((s.packets_in, s.packets_out, s.conns), (1, 1, 1));
    assert_eq!(snapshot(&ws[0]).drops_total(), 0);
    assert_accounting_all(&ws);
}

#[test]
fn nat66_udp_both_directions() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6B), 5000);
    let f = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt(L4Proto::Udp, client, (a(VIP6), 53), 0, 64, b"query"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
    let want = eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &pkt(L4Proto::Udp, client, (a(RS6[0]), 5353), 0, 63, b"query"));
    assert_eq!(back, vec![want]);
    assert_l4_checksum(&back[0]);
    let reply = pkt(L4Proto::Udp, (a(RS6[0]), 5353), client, 0, 64, b"answer!");
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &reply), SEC);
    let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt(L4Proto::Udp, (a(VIP6), 53), client, 0, 63, b"answer!"));
    assert_eq!(front, vec![want]);
    assert_l4_checksum(&front[0]);
    assert_accounting_all(&ws);
}

#[test]
fn two_workers_redirect_to_the_owner_and_both_directions_work() {
    let shared = services(2);
    let mut ws = workers6(&shared, 2);
    let mut forwarded = 0;
    for cport in 41000u16..41016 {
        // Every flow enters on worker 0; half of them belong to worker 1.
        let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6, cport, 8080, SYN, 64), SEC);
        assert_eq!(back.len(), 1, "flow {cport}");
        let rs = usize::from(back[0][..6] != RS6_MAC[0]);
        // The reply enters on worker 1 whatever the owner.
        let reply = pkt(L4Proto::Tcp, (a(RS6[rs]), 80), (a(CLIENT6), cport), SYN | ACK, 64, b"hello v6");
        let (front, _) = send_to(&mut ws, 1, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &reply), SEC);
        assert_eq!(front.len(), 1, "reply of flow {cport}");
        assert_eq!(&front[0][14 + 8..14 + 24], &a(VIP6).octets());
        forwarded += 1;
    }
    assert_eq!(forwarded, 16);
    let conns: Vec<usize> = ws.iter().map(|w| w.lb().unwrap().conns6().len()).collect();
    assert_eq!(conns.iter().sum::<usize>(), 16);
    assert!(conns.iter().all(|&n| n > 0), "both workers own flows: {conns:?}");
    let redirected: u64 = ws.iter().map(|w| snapshot(w).redirected_out).sum();
    assert!(redirected > 0);
    assert_accounting_all(&ws);
}

#[test]
fn the_vip_answers_neighbour_solicitations_and_is_announced() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let (front, _) = send_to(&mut ws, 0, FRONT, &ns_from(a(CLIENT6), CLIENT_MAC, a(VIP6)), SEC);
    let na = icmp6(a(VIP6), a(CLIENT6), 255, nd_msg(136, 0x60, a(VIP6), 2, FRONT_MAC));
    assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &na)]);
    // An advertisement claiming the VIP is a spoof.
    const THIEF: [u8; 6] = [0x02, 0, 0, 0, 0x0e, 0x66];
    let spoof = icmp6(a(VIP6), a("ff02::1"), 255, nd_msg(136, 0x20, a(VIP6), 2, THIEF));
    send_to(&mut ws, 0, FRONT, &eth([0x33, 0x33, 0, 0, 0, 1], THIEF, ETH_IPV6, &spoof), SEC);
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::NdSpoofedOwn), 1);
    // Unsolicited advertisements at start include the VIP's, on the front port only.
    ws[0].send_gratuitous_arp(2 * SEC);
    let front = take_tx(&mut ws[0], FRONT);
    let want = eth(
        [0x33, 0x33, 0, 0, 0, 1],
        FRONT_MAC,
        ETH_IPV6,
        &icmp6(a(VIP6), a("ff02::1"), 255, nd_msg(136, 0x20, a(VIP6), 2, FRONT_MAC)),
    );
    assert!(front.contains(&want), "no unsolicited NA for the VIP");
    let back = take_tx(&mut ws[0], BACK);
    assert!(!back.iter().any(|f| f.windows(16).any(|w| w == a(VIP6).octets())));
    assert_accounting_all(&ws);
}

#[test]
fn drops_of_the_ipv6_l4_path() {
    let shared = services(1);
    let frag = {
        // A first fragment (fragment header, next TCP) of a SYN to the VIP: not
        // forwarded (24 bytes, so that the fragment table finds it consistent).
        let seg = l4(L4Proto::Tcp, (a(CLIENT6), 1), (a(VIP6), 80), SYN, b"syn!");
        let mut p = vec![6, 0, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&seg);
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(a(CLIENT6), a(VIP6), 44, 64, &p))
    };
    let stray_reply = pkt(L4Proto::Tcp, (a(RS6[0]), 80), (a(CLIENT6), 999), ACK, 64, b"");
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("no service on the port", to_vip(L4Proto::Tcp, CLIENT6, 40000, 81, SYN, 64), DropReason::L4NoService),
        ("non-SYN of no connection", to_vip(L4Proto::Tcp, CLIENT6, 40000, 80, ACK, 64), DropReason::TcpNoConn),
        ("hop limit 1 to NAT66", to_vip(L4Proto::Tcp, CLIENT6, 40010, 8080, SYN, 1), DropReason::Ip6HopLimit),
        ("fragmented SYN", frag, DropReason::Ip6Fragment),
        ("reply of no connection", eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &stray_reply), DropReason::Ip6NotForUs),
        (
            "truncated TCP",
            {
                let mut f = to_vip(L4Proto::Tcp, CLIENT6, 40000, 80, SYN, 64);
                f.truncate(14 + 40 + 10);
                f[14 + 4..14 + 6].copy_from_slice(&10u16.to_be_bytes());
                f
            },
            DropReason::L4Malformed,
        ),
    ];
    for (what, f, reason) in cases {
        let mut ws = workers6(&shared, 1);
        let port = if f[6..12] == CLIENT_MAC { FRONT } else { BACK };
        let (front, back) = send_to(&mut ws, 0, port, &f, SEC);
        // A hop limit drop sends an ICMPv6 time exceeded back to the client.
        let errors = usize::from(reason == DropReason::Ip6HopLimit);
        assert!(front.len() == errors && back.is_empty(), "{what}");
        assert_single_drop(&ws[0], reason);
        assert_accounting_all(&ws);
    }
}

#[test]
fn the_table_refuses_what_the_ipv6_path_cannot_forward() {
    let ids = |s: &[Service]| TableIds::sequential(s);
    let mixed = service6(
        1,
        L4Proto::Tcp,
        80,
        vec![{
            let mut s = server6(RS6[1], 80, ForwardMode::Dr, 1);
            s.addr = std::net::Ipv4Addr::new(10, 20, 0, 11).into();
            s
        }],
    );
    let i = ids(std::slice::from_ref(&mixed));
    let err = ServiceTable::with_ids(1, vec![mixed], i, Default::default()).unwrap_err();
    assert!(matches!(err, TableError::MixedFamily { .. }), "{err}");
    assert!(err.to_string().contains("tcp [2001:db8:10::100]:80"), "{err}");
    // Every forwarding mode is taken on an IPv6 service.
    for forward in [ForwardMode::Dr, ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Tunnel] {
        let s = service6(1, L4Proto::Tcp, 80, vec![server6(RS6[0], 80, forward, 1)]);
        let i = ids(std::slice::from_ref(&s));
        assert!(ServiceTable::with_ids(1, vec![s], i, Default::default()).is_ok(), "{forward:?}");
    }
}

// ---- admission and persistence on IPv6 services ----

/// One IPv6 service, TCP 80 DR round robin over both servers, changed by `f`.
fn one_service6(workers: usize, f: impl FnOnce(&mut Service)) -> SharedServices {
    let servers = RS6.iter().map(|s| server6(s, 80, ForwardMode::Dr, workers)).collect();
    let mut s = service6(workers, L4Proto::Tcp, 80, servers);
    f(&mut s);
    let ids = TableIds::sequential(std::slice::from_ref(&s));
    share(ServiceTable::with_ids(1, vec![s], ids, Default::default()).expect("valid table"))
}

/// The server (index into `RS6`) a DR frame went to.
fn server_of(frame: &[u8]) -> usize {
    RS6_MAC.iter().position(|m| frame[..6] == *m).expect("a server's MAC")
}

#[test]
fn persistence_by_prefix_keeps_a_network_on_one_server_across_workers() {
    let shared = one_service6(2, |s| s.persist = Some(Arc::new(PersistTable::new_v6(1024, 300, 96))));
    let mut ws = workers6(&shared, 2);
    // Two clients of one /96, flows owned by both workers: round robin alone would
    // alternate the servers.
    let mut picked = Vec::new();
    for (i, cport) in (42000u16..42012).enumerate() {
        let client = if i % 2 == 0 { CLIENT6 } else { CLIENT6B };
        let (_, back) = send_to(&mut ws, i % 2, FRONT, &to_vip(L4Proto::Tcp, client, cport, 80, SYN, 64), SEC);
        assert_eq!(back.len(), 1, "flow {i}");
        picked.push(server_of(&back[0]));
    }
    assert!(picked.iter().all(|&p| p == picked[0]), "{picked:?}");
    let owners: Vec<usize> = ws.iter().map(|w| w.lb().unwrap().conns6().len()).collect();
    assert!(owners.iter().all(|&n| n > 0), "both workers scheduled: {owners:?}");
    // One entry, for the /96, exported with the full prefix for sync and installed back.
    let snap = shared.load();
    let recs: Vec<_> = snap.services()[0].persist_records(persist_now_s(SEC)).collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].client, std::net::IpAddr::from(a("2001:db8:10::")));
    assert_eq!(recs[0].server, std::net::SocketAddr::new(a(RS6[picked[0]]).into(), 80));
    let peer = one_service6(1, |s| s.persist = Some(Arc::new(PersistTable::new_v6(1024, 300, 96))));
    assert_eq!(peer.load().install_persist(&recs[0], 1), Ok(()));
    assert_eq!(peer.load().services()[0].persist_records(1).collect::<Vec<_>>(), recs);
    // Another /96 is scheduled on its own.
    let other = "2001:db8:10:0:1::2";
    let mut ws1 = workers6(&shared, 2);
    for w in ws1.iter_mut() {
        roundtrip(w, FRONT, &ns_from(a(other), CLIENT_MAC, a("2001:db8:10::1")), 0);
    }
    let (_, back) = send_to(&mut ws1, 0, FRONT, &to_vip(L4Proto::Tcp, other, 42100, 80, SYN, 64), 2 * SEC);
    assert_eq!(back.len(), 1);
    assert_eq!(shared.load().services()[0].persist_records(2).count(), 2);
    assert_accounting_all(&ws);
}

#[test]
fn ipv6_deny_list_and_client_rate_refuse_new_flows_and_count_them() {
    let deny: Vec<ipnet::Ipv6Net> = vec!["2001:db8:10::2/128".parse().unwrap()];
    let shared = one_service6(1, |s| {
        s.admission = Admission::new(&[], &[], 0).with_ipv6_lists(&[], &deny).with_client_rate(1, 2);
    });
    let mut ws = workers6(&shared, 1);
    let (front, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6, 43000, 80, SYN, 64), SEC);
    assert!(front.is_empty() && back.is_empty(), "denied");
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::AclDenied), 1);
    assert_eq!(service_stats(&shared, 0).acl_denied, 1, "counted per service too");
    // The other client is allowed, up to its burst of 2 at 1 per second.
    for cport in 43001u16..43003 {
        let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6B, cport, 80, SYN, 64), SEC);
        assert_eq!(back.len(), 1, "flow {cport}");
    }
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6B, 43003, 80, SYN, 64), SEC);
    assert!(back.is_empty(), "over the rate");
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::ClientRateLimited), 1);
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6B, 43004, 80, SYN, 64), 2 * SEC);
    assert_eq!(back.len(), 1, "a token a second later");
    // Existing flows are not asked again.
    let (_, back) = send_to(&mut ws, 0, FRONT, &to_vip(L4Proto::Tcp, CLIENT6B, 43001, 80, ACK, 64), 2 * SEC);
    assert_eq!(back.len(), 1);
    assert_eq!(snapshot(&ws[0]).conns_created, 3);
    assert_accounting_all(&ws);
}

#[test]
fn the_table_refuses_persistence_keyed_for_the_other_family() {
    let s = one_service6(1, |_| {});
    assert!(s.load().services()[0].persist.is_none());
    let mut bad = service6(1, L4Proto::Tcp, 80, vec![server6(RS6[0], 80, ForwardMode::Dr, 1)]);
    bad.persist = Some(Arc::new(PersistTable::new(64, 60, std::net::Ipv4Addr::BROADCAST)));
    let ids = TableIds::sequential(std::slice::from_ref(&bad));
    let err = ServiceTable::with_ids(1, vec![bad], ids, Default::default()).unwrap_err();
    assert!(matches!(err, TableError::PersistFamily { .. }), "{err}");
}
