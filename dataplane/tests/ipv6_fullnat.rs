//! IPv6 Full-NAT through in-memory workers: TCP with the 20-byte IPv6 TOA and the MSS
//! clamp, UDP, both directions, two workers (replies owned by the local port, client
//! packets by the client), the local address answering neighbour discovery, and the
//! drops. Expected frames are built here byte by byte with their own RFC 1071 checksum
//! over the RFC 8200 pseudo-header (`csum6`), independently of `rvs_dataplane::wire`.

mod common;

use common::ip6::*;
use common::l4::{assert_accounting_all, send_to, server_stats, LbOpts, ACK, SYN};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto};

const CLIENT6: &str = "2001:db8:10::2";
const LOCAL6: &str = "2001:db8:20::200";
const RS6: [&str; 2] = ["2001:db8:20::11", "2001:db8:20::12"];
const RS6_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x05, 0x11], [0x02, 0, 0, 0, 0x05, 0x12]];
/// The first local port a worker of `n` hands out: the lowest port ≥ 1024 it owns.
fn first_lport(worker: usize, n: usize) -> u16 {
    (1024..).find(|p| usize::from(*p) % n == worker).unwrap()
}

// ---- packets (independent of the code under test) ----

// ---- services and workers ----

fn service(workers: usize, proto: L4Proto, port: u16, rport: u16, locals: &[&str]) -> Service {
    let servers = RS6.iter().map(|s| server6(s, rport, ForwardMode::FullNat, workers)).collect();
    Service {
        local_addrs: vec![LOCAL_IP],
        local_addrs6: locals.iter().map(|l| a(l)).collect(),
        ..service6(workers, proto, port, servers)
    }
}

/// Services 0: TCP 8080 Full-NAT to port 80 (rr over both servers); 1: UDP 53 Full-NAT
/// to 5353; 2: TCP 81 Full-NAT with no IPv6 local address.
fn services(workers: usize) -> SharedServices {
    share(
        ServiceTable::new(
            1,
            vec![
                service(workers, L4Proto::Tcp, 8080, 80, &[LOCAL6]),
                service(workers, L4Proto::Udp, 53, 5353, &[LOCAL6]),
                service(workers, L4Proto::Tcp, 81, 80, &[]),
            ],
        )
        .expect("valid table"),
    )
}

/// `n` workers with IPv6 addresses on both ports and the IPv6 local address on the back
/// one, the client and both servers learned.
fn workers6(shared: &SharedServices, n: usize) -> Vec<MemWorker> {
    let mut learn = vec![neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
    learn.extend(RS6.iter().zip(RS6_MAC).map(|(s, mac)| neighbour6(s, mac, BACK)));
    common::workers6::workers6(shared, n, &LbOpts::default(), &[a(LOCAL6)], &learn, |_, w| w)
}

const MSS_1440: [u8; 4] = [2, 4, 0x05, 0xa0];
const MSS_1420: [u8; 4] = [2, 4, 0x05, 0x8c];

#[test]
fn fullnat6_tcp_both_directions_with_the_ipv6_toa() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 40000);
    let (vip, local, rs) = ((a(VIP6), 8080), (a(LOCAL6), first_lport(0, 1)), (a(RS6[0]), 80));
    // The SYN: local address → server, hop limit 63, the TOA first among the options.
    let syn =
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, SYN, 64, &MSS_1440, b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    let opts = [toa6(client), MSS_1440.to_vec()].concat();
    let want = eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, local, rs, SYN, 63, &opts, b""));
    assert_eq!(back, vec![want]);
    assert_l4_checksum(&back[0]);
    // The SYN-ACK to the local address: VIP → client, its MSS lowered by the TOA's 20.
    let syn_ack = pkt_with_options(L4Proto::Tcp, rs, local, SYN | ACK, 64, &MSS_1440, b"");
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &syn_ack), SEC);
    assert!(back.is_empty());
    let want = eth(
        CLIENT_MAC,
        FRONT_MAC,
        ETH_IPV6,
        &pkt_with_options(L4Proto::Tcp, vip, client, SYN | ACK, 63, &MSS_1420, b""),
    );
    assert_eq!(front, vec![want]);
    assert_l4_checksum(&front[0]);
    // The handshake's ACK still carries the TOA; the data after it does not.
    let ack = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, ACK, 64, &[], b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &ack, SEC);
    let want =
        eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, local, rs, ACK, 63, &toa6(client), b""));
    assert_eq!(back, vec![want]);
    let data =
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, ACK, 64, &[], b"GET /"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &data, SEC);
    let want = eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, local, rs, ACK, 63, &[], b"GET /"));
    assert_eq!(back, vec![want]);
    assert_l4_checksum(&back[0]);
    // The server's data back to the client.
    let reply = pkt_with_options(L4Proto::Tcp, rs, local, ACK, 64, &[], b"200 OK");
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &reply), SEC);
    let want =
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, vip, client, ACK, 63, &[], b"200 OK"));
    assert_eq!(front, vec![want]);
    // The next flow goes to the other server from the next local port.
    let syn2 = eth(
        FRONT_MAC,
        CLIENT_MAC,
        ETH_IPV6,
        &pkt_with_options(L4Proto::Tcp, (a(CLIENT6), 40001), vip, SYN, 64, &[], b""),
    );
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn2, SEC);
    assert_eq!(&back[0][14 + 24..14 + 40], &a(RS6[1]).octets());
    assert_eq!(&back[0][14 + 40..14 + 42], &(first_lport(0, 1) + 1).to_be_bytes());
    let s = server_stats(&shared, 0, 0);
    assert_eq!((s.packets_in, s.packets_out, s.conns), (3, 2, 1));
    let snap = snapshot(&ws[0]);
    assert_eq!((snap.drops_total(), snap.toa_skipped), (0, 0));
    assert_accounting_all(&ws);
}

#[test]
fn fullnat6_udp_both_directions_without_toa() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 5000);
    let (vip, local, rs) = ((a(VIP6), 53), (a(LOCAL6), first_lport(0, 1)), (a(RS6[0]), 5353));
    let q = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, client, vip, 0, 64, &[], b"query"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &q, SEC);
    assert_eq!(
        back,
        vec![eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, local, rs, 0, 63, &[], b"query"))]
    );
    assert_l4_checksum(&back[0]);
    let reply = pkt_with_options(L4Proto::Udp, rs, local, 0, 64, &[], b"answer!");
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &reply), SEC);
    let want =
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, vip, client, 0, 63, &[], b"answer!"));
    assert_eq!(front, vec![want]);
    assert_l4_checksum(&front[0]);
    assert_accounting_all(&ws);
}

#[test]
fn two_workers_own_replies_by_local_port() {
    let shared = services(2);
    let mut ws = workers6(&shared, 2);
    for cport in 42000u16..42016 {
        let client = (a(CLIENT6), cport);
        let syn = eth(
            FRONT_MAC,
            CLIENT_MAC,
            ETH_IPV6,
            &pkt_with_options(L4Proto::Tcp, client, (a(VIP6), 8080), SYN, 64, &[], b""),
        );
        // Every flow enters on worker 0; half of them belong to worker 1.
        let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
        assert_eq!(back.len(), 1, "flow {cport}");
        let rs = usize::from(back[0][..6] != RS6_MAC[0]);
        let lport = u16::from_be_bytes([back[0][14 + 40], back[0][14 + 41]]);
        // The SYN-ACK enters on the worker that does not own the local port.
        let wrong = 1 - usize::from(lport) % 2;
        let syn_ack = pkt_with_options(L4Proto::Tcp, (a(RS6[rs]), 80), (a(LOCAL6), lport), SYN | ACK, 64, &[], b"");
        let (front, _) = send_to(&mut ws, wrong, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &syn_ack), SEC);
        assert_eq!(front.len(), 1, "reply of flow {cport}");
        assert_eq!(&front[0][14 + 8..14 + 24], &a(VIP6).octets());
        assert_eq!(&front[0][14 + 42..14 + 44], &cport.to_be_bytes());
    }
    let conns: Vec<usize> = ws.iter().map(|w| w.lb().unwrap().conns6().len()).collect();
    assert_eq!(conns.iter().sum::<usize>(), 16);
    assert!(conns.iter().all(|&n| n > 0), "both workers own flows: {conns:?}");
    // Each worker's connections use the local ports it owns.
    for (i, w) in ws.iter().enumerate() {
        assert!(w.lb().unwrap().conns6().iter().all(|(_, c)| usize::from(c.lport) % 2 == i && c.local == a(LOCAL6)));
    }
    assert!(ws.iter().map(|w| snapshot(w).redirected_out).sum::<u64>() >= 16);
    assert_accounting_all(&ws);
}

/// The Microsoft RSS verification key ("Verifying the RSS Hash Calculation").
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// With the NIC's RSS spec (two queues, entry `i` → queue `i % 2`), each worker picks
/// IPv6 local ports whose reply the NIC hashes to its own queue: the test plays the NIC,
/// putting every frame on the queue its IPv6 4-tuple hashes to, and no reply is
/// redirected (client → VIP packets keep `client_owner6`, so some of those are).
#[test]
fn replies_arrive_on_their_owner_with_the_nic_rss_spec() {
    let shared = services(2);
    let reta: Vec<u16> = (0..128).map(|i| i % 2).collect();
    let nic = rvs_dataplane::conn::RssSpec::new(MS_KEY, &reta, 0);
    let opts = LbOpts { rss: Some(nic.clone()), ..LbOpts::default() };
    let mut learn = vec![neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
    learn.extend(RS6.iter().zip(RS6_MAC).map(|(s, mac)| neighbour6(s, mac, BACK)));
    let mut ws = common::workers6::workers6(&shared, 2, &opts, &[a(LOCAL6)], &learn, |_, w| w);
    let redirected = |ws: &[MemWorker]| ws.iter().map(|w| snapshot(w).redirected_out).sum::<u64>();
    let (mut inbound_redirects, flows) = (0, 200u16);
    for cport in 43000..43000 + flows {
        let client = (a(CLIENT6), cport);
        let vip = (a(VIP6), 53);
        let q = pkt(L4Proto::Udp, client, vip, 0, 64, b"query");
        let at = usize::from(nic.queue6(client.0, client.1, vip.0, vip.1).unwrap());
        let before = redirected(&ws);
        let (_, back) = send_to(&mut ws, at, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &q), SEC);
        inbound_redirects += redirected(&ws) - before;
        assert_eq!(back.len(), 1, "flow {cport}");
        let rs = usize::from(back[0][..6] != RS6_MAC[0]);
        let lport = u16::from_be_bytes([back[0][14 + 40], back[0][14 + 41]]);
        // The NIC's queue for the reply is the local port's owner.
        let reply_at = usize::from(nic.queue6(a(RS6[rs]), 5353, a(LOCAL6), lport).unwrap());
        assert_eq!(reply_at, usize::from(lport) % 2, "flow {cport}: local port {lport}");
        let answer = pkt(L4Proto::Udp, (a(RS6[rs]), 5353), (a(LOCAL6), lport), 0, 64, b"answer");
        let before = redirected(&ws);
        let (front, _) = send_to(&mut ws, reply_at, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &answer), SEC);
        assert_eq!(redirected(&ws), before, "flow {cport}: the reply is not redirected");
        assert_eq!(front.len(), 1, "reply of flow {cport}");
        assert_eq!(&front[0][14 + 42..14 + 44], &cport.to_be_bytes());
    }
    assert!(inbound_redirects > 0 && inbound_redirects < u64::from(flows), "{inbound_redirects}");
    assert_eq!(ws.iter().map(|w| snapshot(w).lport_rss_misses).sum::<u64>(), 0);
    assert_accounting_all(&ws);
}

#[test]
fn the_local_address_answers_neighbour_discovery() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let (_, back) = send_to(&mut ws, 0, BACK, &ns_from(a(RS6[0]), RS6_MAC[0], a(LOCAL6)), SEC);
    let na = icmp6(a(LOCAL6), a(RS6[0]), 255, nd_msg(136, 0x60, a(LOCAL6), 2, BACK_MAC));
    assert_eq!(back, vec![eth(RS6_MAC[0], BACK_MAC, ETH_IPV6, &na)]);
    assert_accounting_all(&ws);
}

#[test]
fn drops_of_ipv6_fullnat() {
    let shared = services(1);
    let client = (a(CLIENT6), 40000);
    let stray = pkt_with_options(L4Proto::Tcp, (a(RS6[0]), 80), (a(LOCAL6), 5000), ACK, 64, &[], b"");
    let cases: Vec<(&str, PortIdAndFrame, DropReason)> = vec![
        (
            "no IPv6 local address",
            (
                FRONT,
                eth(
                    FRONT_MAC,
                    CLIENT_MAC,
                    ETH_IPV6,
                    &pkt_with_options(L4Proto::Tcp, client, (a(VIP6), 81), SYN, 64, &[], b""),
                ),
            ),
            DropReason::NoLocalPort,
        ),
        (
            "hop limit 1",
            (
                FRONT,
                eth(
                    FRONT_MAC,
                    CLIENT_MAC,
                    ETH_IPV6,
                    &pkt_with_options(L4Proto::Tcp, client, (a(VIP6), 8080), SYN, 1, &[], b""),
                ),
            ),
            DropReason::Ip6HopLimit,
        ),
        (
            "reply to the local address of no connection",
            (BACK, eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &stray)),
            DropReason::ReplyNoConn,
        ),
    ];
    for (what, (port, f), reason) in cases {
        let mut ws = workers6(&shared, 1);
        let (front, back) = send_to(&mut ws, 0, port, &f, SEC);
        assert!(back.is_empty(), "{what}");
        // Only the hop-limit drop answers, with an ICMPv6 time exceeded to the client.
        if reason == DropReason::Ip6HopLimit {
            assert_eq!(front.len(), 1, "{what}");
            assert_eq!((front[0][14 + 6], front[0][14 + 40]), (58, 3), "{what}: time exceeded");
        } else {
            assert!(front.is_empty(), "{what}");
        }
        assert_single_drop(&ws[0], reason);
        assert_accounting_all(&ws);
    }
}

type PortIdAndFrame = (rvs_dataplane::types::PortId, Vec<u8>);
