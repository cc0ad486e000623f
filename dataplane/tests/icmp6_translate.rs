//! ICMPv6 errors about IPv6 flows through in-memory workers, translated as the flows
//! are: a real server's port unreachable about a NAT66 datagram reaches the client from
//! the VIP; a client-side router's packet too big about a Full-NAT reply reaches the
//! server from the local address; a DR flow's error goes on to its server; a packet too
//! big about our IPv6-in-IPv6 packet becomes one to the client with 40 bytes less; two
//! workers (the error reaches the owner of its flow); and the errors acted on not at all.
//! Expected frames are built here byte by byte, checksums computed in full (`csum6`)
//! independently of `rvs_dataplane::wire`.

mod common;

use common::ip6::*;
use common::l4::{assert_accounting_all, drops_of, send_to, LbOpts, ACK, SYN};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::conn::client_owner6;
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto};

const CLIENT6: &str = "2001:db8:10::2";
/// A router on the client's link.
const ROUTER6: &str = "2001:db8:10::fe";
/// A router on the servers' link.
const BACK_ROUTER6: &str = "2001:db8:20::fe";
const BACK_ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0xfe];
const BACK6: &str = "2001:db8:20::1";
const LOCAL6: &str = "2001:db8:20::200";
const RS6: [&str; 2] = ["2001:db8:20::11", "2001:db8:20::12"];
const RS6_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x05, 0x11], [0x02, 0, 0, 0, 0x05, 0x12]];

// ---- packets (independent of the code under test) ----

/// An ICMPv6 error (`ty`, `code`, `rest`: the MTU of a packet too big) from `src` to
/// `dst` with hop limit `hl`, quoting `quote`; checksum in full.
fn error6(src: &str, dst: &str, hl: u8, ty: u8, code: u8, rest: u32, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    icmp6(a(src), a(dst), hl, m)
}

// ---- services and workers ----

fn service(workers: usize, proto: L4Proto, port: u16, rport: u16, fwd: ForwardMode) -> Service {
    let servers = RS6.iter().map(|s| server6(s, rport, fwd, workers)).collect();
    let local_addrs6 = if fwd == ForwardMode::FullNat { vec![a(LOCAL6)] } else { vec![] };
    Service { local_addrs6, ..service6(workers, proto, port, servers) }
}

/// Services: UDP 53 NAT66 to 5353; TCP 8080 Full-NAT to 80; TCP 80 DR; TCP 443 tunnel;
/// UDP 54 Full-NAT to 5353; TCP 8081 NAT66 to 80.
fn services(workers: usize) -> SharedServices {
    share(
        ServiceTable::new(
            1,
            vec![
                service(workers, L4Proto::Udp, 53, 5353, ForwardMode::Nat),
                service(workers, L4Proto::Tcp, 8080, 80, ForwardMode::FullNat),
                service(workers, L4Proto::Tcp, 80, 80, ForwardMode::Dr),
                service(workers, L4Proto::Tcp, 443, 443, ForwardMode::Tunnel),
                service(workers, L4Proto::Udp, 54, 5353, ForwardMode::FullNat),
                service(workers, L4Proto::Tcp, 8081, 80, ForwardMode::Nat),
            ],
        )
        .expect("valid table"),
    )
}

fn workers6(shared: &SharedServices, n: usize) -> Vec<MemWorker> {
    let mut learn = vec![
        neighbour6(CLIENT6, CLIENT_MAC, FRONT),
        neighbour6(ROUTER6, ROUTER_MAC, FRONT),
        neighbour6(BACK_ROUTER6, BACK_ROUTER_MAC, BACK),
    ];
    learn.extend(RS6.iter().zip(RS6_MAC).map(|(s, mac)| neighbour6(s, mac, BACK)));
    common::workers6::workers6(shared, n, &LbOpts::default(), &[a(LOCAL6)], &learn, |_, w| w)
}

/// The index of the server a frame sent on the back port goes to (by its MAC).
fn server_of(frame: &[u8]) -> usize {
    RS6_MAC.iter().position(|m| frame[..6] == m[..]).expect("a server's MAC")
}

fn translated(ws: &[MemWorker]) -> u64 {
    ws.iter().map(|w| snapshot(w).icmp_errors_translated).sum()
}

#[test]
fn a_servers_port_unreachable_for_a_nat66_udp_flow_reaches_the_client_rewritten() {
    let shared = services(2);
    let mut ws = workers6(&shared, 2);
    for cport in [5000u16, 5001] {
        let client = (a(CLIENT6), cport);
        let owner = client_owner6(client.0, cport, 2);
        let q = pkt(L4Proto::Udp, client, (a(VIP6), 53), 0, 64, b"query");
        let (_, back) = send_to(&mut ws, owner, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &q), SEC);
        assert_eq!(back.len(), 1);
        let rs = server_of(&back[0]);
        // The server's stack answers with port unreachable, quoting what it received,
        // and the error enters on the worker that does not own the flow.
        let err = error6(RS6[rs], CLIENT6, 64, 1, 4, 0, &back[0][14..]);
        let redirected: u64 = ws.iter().map(|w| snapshot(w).redirected_out).sum();
        let (front, back) = send_to(&mut ws, 1 - owner, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &err), SEC);
        assert!(back.is_empty(), "{back:02x?}");
        // From the VIP, hop limit one lower, about the client's own datagram to the VIP
        // (as the server got it: hop limit 63).
        let quote = pkt(L4Proto::Udp, client, (a(VIP6), 53), 0, 63, b"query");
        let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &error6(VIP6, CLIENT6, 63, 1, 4, 0, &quote));
        assert_eq!(front, vec![want], "flow {cport}");
        assert_eq!(ws.iter().map(|w| snapshot(w).redirected_out).sum::<u64>(), redirected + 1);
    }
    assert_eq!(translated(&ws), 2);
    assert!(ws.iter().all(|w| snapshot(w).drops_total() == 0), "{:?}", ws.iter().map(drops_of).collect::<Vec<_>>());
    assert_accounting_all(&ws);
}

#[test]
fn a_client_side_packet_too_big_for_a_fullnat66_flow_reaches_the_server() {
    let shared = services(2);
    let mut ws = workers6(&shared, 2);
    let (client, vip) = ((a(CLIENT6), 40000), (a(VIP6), 8080));
    let syn = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, client, vip, SYN, 64, b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    assert_eq!(back.len(), 1);
    let rs = server_of(&back[0]);
    let lport = u16::from_be_bytes([back[0][14 + 40], back[0][14 + 41]]);
    let (server, local) = ((a(RS6[rs]), 80), (a(LOCAL6), lport));
    // The server's data (no options: nothing but addresses and ports changes on the way).
    let data = [0x5a; 1300];
    let reply = pkt(L4Proto::Tcp, server, local, ACK, 64, &data);
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &reply), SEC);
    assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, vip, client, ACK, 63, &data))]);
    // A router on the client's side cannot pass 1360 bytes: packet too big, MTU 1280,
    // quoting as much as fits in 1280 bytes. It enters on each worker in turn.
    let quoted = &front[0][14..14 + 1232];
    for at in 0..2 {
        let ptb = error6(ROUTER6, VIP6, 64, 2, 0, 1280, quoted);
        let (front, back) = send_to(&mut ws, at, FRONT, &eth(FRONT_MAC, ROUTER_MAC, ETH_IPV6, &ptb), SEC);
        assert!(front.is_empty(), "{front:02x?}");
        // To the server from the local address, about its own segment to the local
        // address; the quoted TCP checksum still covers the whole segment as quoted.
        let mut quote = pkt(L4Proto::Tcp, server, local, ACK, 63, &data);
        quote.truncate(1232);
        let want = eth(RS6_MAC[rs], BACK_MAC, ETH_IPV6, &error6(LOCAL6, RS6[rs], 63, 2, 0, 1280, &quote));
        assert_eq!(back, vec![want], "entering on worker {at}");
    }
    assert_eq!(translated(&ws), 2);
    assert!(ws.iter().all(|w| snapshot(w).drops_total() == 0), "{:?}", ws.iter().map(drops_of).collect::<Vec<_>>());
    assert_accounting_all(&ws);
}

#[test]
fn a_servers_port_unreachable_for_a_fullnat66_udp_flow_reaches_the_client() {
    let shared = services(2);
    let mut ws = workers6(&shared, 2);
    let (client, vip) = ((a(CLIENT6), 5100), (a(VIP6), 54));
    let q = pkt(L4Proto::Udp, client, vip, 0, 64, b"query");
    let (_, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &q), SEC);
    assert_eq!(back.len(), 1);
    let rs = server_of(&back[0]);
    let lport = u16::from_be_bytes([back[0][14 + 40], back[0][14 + 41]]);
    // The server's port unreachable goes to the local address, entering on the worker
    // that does not own the local port.
    let err = error6(RS6[rs], LOCAL6, 64, 1, 4, 0, &back[0][14..]);
    let wrong = 1 - usize::from(lport) % 2;
    let (front, back) = send_to(&mut ws, wrong, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &err), SEC);
    assert!(back.is_empty());
    let quote = pkt(L4Proto::Udp, client, vip, 0, 63, b"query");
    assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &error6(VIP6, CLIENT6, 63, 1, 4, 0, &quote))]);
    assert_eq!(translated(&ws), 1);
    assert!(ws.iter().map(|w| snapshot(w).redirected_out).sum::<u64>() >= 1);
    assert_accounting_all(&ws);
}

#[test]
fn a_client_side_time_exceeded_for_a_nat66_reply_reaches_the_server() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let (client, vip) = ((a(CLIENT6), 40200), (a(VIP6), 8081));
    let syn = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, client, vip, SYN, 64, b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    let rs = server_of(&back[0]);
    let server = (a(RS6[rs]), 80);
    let syn_ack = pkt(L4Proto::Tcp, server, client, SYN | ACK, 64, b"");
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[rs], ETH_IPV6, &syn_ack), SEC);
    assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, vip, client, SYN | ACK, 63, b""))]);
    // A router on the client's side: hop limit exceeded about the SYN-ACK, quoting its
    // first 48 bytes (IPv6 header and 8 of TCP: the quoted checksum is not held).
    let err = error6(ROUTER6, VIP6, 64, 3, 0, 0, &front[0][14..14 + 48]);
    let (front, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, ROUTER_MAC, ETH_IPV6, &err), SEC);
    assert!(front.is_empty());
    // To the server (outer destination), about its own SYN-ACK (quoted source).
    let quote = &pkt(L4Proto::Tcp, server, client, SYN | ACK, 63, b"")[..48];
    let want = eth(RS6_MAC[rs], BACK_MAC, ETH_IPV6, &error6(ROUTER6, RS6[rs], 63, 3, 0, 0, quote));
    assert_eq!(back, vec![want]);
    assert_eq!(translated(&ws), 1);
    assert_accounting_all(&ws);
}

#[test]
fn a_client_side_error_about_a_dr_servers_reply_goes_on_to_the_server() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let (client, vip) = ((a(CLIENT6), 40100), (a(VIP6), 80));
    let syn = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, client, vip, SYN, 64, b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    let rs = server_of(&back[0]);
    // The server answered the client directly from the VIP; the router's error about
    // that answer comes to the VIP and goes on unchanged to the server's MAC.
    let answer = pkt(L4Proto::Tcp, vip, client, SYN | ACK, 64, b"");
    let err = error6(ROUTER6, VIP6, 64, 1, 3, 0, &answer);
    let (front, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, ROUTER_MAC, ETH_IPV6, &err), SEC);
    assert!(front.is_empty());
    assert_eq!(back, vec![eth(RS6_MAC[rs], BACK_MAC, ETH_IPV6, &err)]);
    assert_eq!(translated(&ws), 1);
    assert_accounting_all(&ws);
}

#[test]
fn a_packet_too_big_about_the_tunnel_reaches_the_client_with_40_bytes_less() {
    let shared = services(1);
    let mut ws = workers6(&shared, 1);
    let (client, vip) = ((a(CLIENT6), 41000), (a(VIP6), 443));
    let syn = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt(L4Proto::Tcp, client, vip, SYN, 64, b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    assert_eq!(back.len(), 1);
    // The client's SYN as the tunnel carries it (hop limit 63).
    let inner = pkt(L4Proto::Tcp, client, vip, SYN, 63, b"");
    assert_eq!(&back[0][14 + 40..], &inner[..]);
    // A router towards the server: packet too big (MTU 1400) about our outer packet.
    let ptb = error6(BACK_ROUTER6, BACK6, 64, 2, 0, 1400, &back[0][14..]);
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, BACK_ROUTER_MAC, ETH_IPV6, &ptb), SEC);
    assert!(back.is_empty());
    // From the VIP to the client about its own SYN, MTU 1360; a fresh error, hop
    // limit 64.
    let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &error6(VIP6, CLIENT6, 64, 2, 0, 1360, &inner));
    assert_eq!(front, vec![want]);
    assert_eq!(translated(&ws), 1);
    // Another error about the tunnel packet (unreachable) means nothing to the client.
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    let unreach = error6(BACK_ROUTER6, BACK6, 64, 1, 0, 0, &back[0][14..]);
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, BACK_ROUTER_MAC, ETH_IPV6, &unreach), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::Icmp6Unhandled), 1);
    assert_accounting_all(&ws);
}

#[test]
fn errors_about_no_flow_of_ours_are_counted_and_dropped() {
    let shared = services(1);
    let client = (a(CLIENT6), 5000);
    let sent = pkt(L4Proto::Udp, client, (a(RS6[0]), 5353), 0, 63, b"query");
    let unknown = pkt(L4Proto::Udp, (a(CLIENT6), 6000), (a(RS6[0]), 5353), 0, 63, b"query");
    let echo = icmp6(a(VIP6), a(CLIENT6), 64, vec![129, 0, 0, 0, 0, 1, 0, 1]);
    let about_error = error6(VIP6, CLIENT6, 64, 1, 4, 0, &sent);
    let mut bad_sum = error6(RS6[0], CLIENT6, 64, 1, 4, 0, &sent);
    bad_sum[40 + 8 + 20] ^= 0x40;
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("unknown flow", error6(RS6[0], CLIENT6, 64, 1, 4, 0, &unknown), DropReason::Icmp6Unhandled),
        ("quote cut inside the ports", error6(RS6[0], CLIENT6, 64, 1, 4, 0, &sent[..42]), DropReason::Icmp6Malformed),
        (
            "quote cut inside its IPv6 header",
            error6(RS6[0], CLIENT6, 64, 1, 4, 0, &sent[..30]),
            DropReason::Icmp6Malformed,
        ),
        ("error about an error", error6(RS6[0], CLIENT6, 64, 1, 4, 0, &about_error), DropReason::Icmp6Unhandled),
        ("error about an echo reply", error6(RS6[0], CLIENT6, 64, 1, 4, 0, &echo), DropReason::Icmp6Unhandled),
        ("bad checksum", bad_sum, DropReason::Icmp6BadChecksum),
        ("hop limit 1", error6(RS6[0], CLIENT6, 1, 1, 4, 0, &sent), DropReason::Ip6HopLimit),
    ];
    for (what, err, reason) in cases {
        let mut ws = workers6(&shared, 1);
        // The flow exists (C:5000 → VIP:53 went to the first server).
        let q = pkt(L4Proto::Udp, client, (a(VIP6), 53), 0, 64, b"query");
        let (_, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &q), SEC);
        assert_eq!(back.len(), 1, "{what}");
        assert_eq!(server_of(&back[0]), 0, "{what}");
        let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC[0], ETH_IPV6, &err), SEC);
        assert!(front.is_empty() && back.is_empty(), "{what}: {front:02x?} {back:02x?}");
        assert_single_drop(&ws[0], reason);
        assert_eq!(translated(&ws), 0, "{what}");
        assert_accounting_all(&ws);
    }
}
