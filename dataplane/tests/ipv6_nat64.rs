//! NAT64 through Full-NAT through in-memory workers: an IPv6 service on IPv4 real
//! servers. TCP with the 20-byte IPv6 TOA and the SYN-ACK's MSS lowered by it, UDP, both
//! directions, round robin across the servers, two workers (the IPv4 reply owned by the
//! local port's worker), the drops (a truncated reply, a reply for no connection), and
//! the ICMP errors of both sides translated to the other family (RFC 7915).
//! Expected frames are built here byte by byte with their own RFC 1071 checksums over the
//! RFC 791 and RFC 8200 pseudo-headers, independently of `rvs_dataplane::wire`.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::ip6::*;
use common::l4::{assert_accounting_all, l4_csum, send_to, server_stats, LbOpts, ACK, RS1, RS1_MAC, RS2, RS2_MAC, SYN};
use common::workers6::{neighbour6, service6, VIP6};
use common::*;
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto};

const CLIENT6: &str = "2001:db8:10::2";
const RS: [Ipv4Addr; 2] = [RS1, RS2];
const RS_MACS: [[u8; 6]; 2] = [RS1_MAC, RS2_MAC];

/// The first local port a worker of `n` hands out: the lowest port ≥ 1024 it owns.
fn first_lport(worker: usize, n: usize) -> u16 {
    (1024..).find(|p| usize::from(*p) % n == worker).unwrap()
}

// ---- packets (independent of the code under test) ----

/// A TCP segment (seq 0x01020304, `opts`, `data`) or UDP datagram, checksum field 0.
fn seg(proto: L4Proto, sport: u16, dport: u16, flags: u8, opts: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    match proto {
        L4Proto::Tcp => {
            s.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            s.extend_from_slice(&(if flags & ACK != 0 { 0x0a0b_0c0du32 } else { 0 }).to_be_bytes());
            s.extend_from_slice(&[(((20 + opts.len()) / 4) << 4) as u8, flags, 0xff, 0xff, 0, 0, 0, 0]);
            s.extend_from_slice(opts);
        }
        L4Proto::Udp => {
            s.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            s.extend_from_slice(&[0, 0]);
        }
    }
    s.extend_from_slice(data);
    s
}

fn proto_num(proto: L4Proto) -> (u8, usize) {
    match proto {
        L4Proto::Tcp => (6, 16),
        L4Proto::Udp => (17, 6),
    }
}

/// An IPv4 TCP/UDP packet with its checksums (TTL `ttl`, DF, identification `ident`).
#[allow(clippy::too_many_arguments)]
fn pkt4(
    proto: L4Proto,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    ttl: u8,
    ident: u16,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let (p, at) = proto_num(proto);
    let mut s = seg(proto, src.1, dst.1, flags, opts, data);
    let c = l4_csum(src.0, dst.0, p, &s);
    let c = if c == 0 && p == 17 { 0xffff } else { c };
    s[at..at + 2].copy_from_slice(&c.to_be_bytes());
    ipv4(Ip { src: src.0, dst: dst.0, proto: p, ttl, ident, frag: 0x4000 }, &s)
}

/// `p` (an IPv4 packet of [`pkt4`]) as NAT64 sends a packet of at most 1260 bytes to
/// the server (RFC 7915 §5.1): DF clear, identification `ident` (one worker's counter:
/// 1 for its first NAT64 packet, then one more each), the header checksum again.
fn to_server(mut p: Vec<u8>, ident: u16) -> Vec<u8> {
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&[0, 0]);
    p[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

// ---- services and workers ----

fn service64(workers: usize, proto: L4Proto, port: u16, rport: u16) -> Service {
    let servers = RS
        .iter()
        .map(|&s| RealServer {
            addr: s.into(),
            port: rport,
            weight: 1,
            forward: ForwardMode::FullNat,
            upper: 0,
            lower: 0,
            stats: Arc::new(ServerStats::new(workers)),
        })
        .collect();
    Service { local_addrs: vec![LOCAL_IP], ..service6(workers, proto, port, servers) }
}

/// Services 0: TCP [VIP6]:80 → the IPv4 servers' 8080 (rr); 1: UDP [VIP6]:53 → 5353.
fn services(workers: usize) -> SharedServices {
    share(
        ServiceTable::new(
            1,
            vec![service64(workers, L4Proto::Tcp, 80, 8080), service64(workers, L4Proto::Udp, 53, 5353)],
        )
        .expect("valid table"),
    )
}

/// `n` workers with the client learned over IPv6 (the IPv4 servers are static
/// neighbours of the lab configuration).
fn workers64(shared: &SharedServices, n: usize) -> Vec<MemWorker> {
    let learn = [neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
    common::workers6::workers6(shared, n, &LbOpts::default(), &[], &learn, |_, w| w)
}

const MSS_1440: [u8; 4] = [2, 4, 0x05, 0xa0];
const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

/// Checks both checksums of an IPv4 frame from scratch.
fn assert_ipv4_checksums(frame: &[u8]) {
    let ip = &frame[14..];
    assert_eq!(csum(&ip[..20]), 0, "IPv4 header checksum of {frame:02x?}");
    let (src, dst) = (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    assert_eq!(l4_csum(src, dst, ip[9], &ip[20..]), 0, "L4 checksum of {frame:02x?}");
}

#[test]
fn nat64_tcp_both_directions_with_the_ipv6_toa() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let client = (a(CLIENT6), 40000);
    let vip = (a(VIP6), 80);
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 8080));
    // The SYN: an IPv4 packet from the local address to the server, TTL 63, DF, the
    // IPv6 TOA first among the options.
    let syn =
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, SYN, 64, &MSS_1440, b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    let opts = [toa6(client), MSS_1440.to_vec()].concat();
    let want =
        eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &to_server(pkt4(L4Proto::Tcp, local, rs, SYN, 63, 0, &opts, b""), 1));
    assert_eq!(back, vec![want]);
    assert_ipv4_checksums(&back[0]);
    // The SYN-ACK to the local address: IPv6 from the VIP to the client, hop limit 63,
    // its MSS lowered by the TOA's 20.
    let syn_ack = pkt4(L4Proto::Tcp, rs, local, SYN | ACK, 64, 0x1234, &MSS_1460, b"");
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &syn_ack), SEC);
    assert!(back.is_empty());
    let want = eth(
        CLIENT_MAC,
        FRONT_MAC,
        ETH_IPV6,
        &pkt_with_options(L4Proto::Tcp, vip, client, SYN | ACK, 63, &MSS_1440, b""),
    );
    assert_eq!(front, vec![want]);
    // The handshake's ACK still carries the TOA; the data after it does not.
    let ack = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, ACK, 64, &[], b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &ack, SEC);
    let want = eth(
        RS_MACS[0],
        BACK_MAC,
        ETH_IPV4,
        &to_server(pkt4(L4Proto::Tcp, local, rs, ACK, 63, 0, &toa6(client), b""), 2),
    );
    assert_eq!(back, vec![want]);
    let data =
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, ACK, 64, &[], b"GET /"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &data, SEC);
    let want =
        eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &to_server(pkt4(L4Proto::Tcp, local, rs, ACK, 63, 0, &[], b"GET /"), 3));
    assert_eq!(back, vec![want]);
    assert_ipv4_checksums(&back[0]);
    // The server's data back to the client.
    let reply = pkt4(L4Proto::Tcp, rs, local, ACK, 64, 0x1235, &[], b"200 OK");
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &reply), SEC);
    let want =
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, vip, client, ACK, 63, &[], b"200 OK"));
    assert_eq!(front, vec![want]);
    // The next flow goes to the other server (round robin) from the next local port.
    let syn2 = eth(
        FRONT_MAC,
        CLIENT_MAC,
        ETH_IPV6,
        &pkt_with_options(L4Proto::Tcp, (a(CLIENT6), 40001), vip, SYN, 64, &[], b""),
    );
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn2, SEC);
    assert_eq!(back.len(), 1);
    assert_eq!(&back[0][..6], &RS_MACS[1]);
    assert_eq!(&back[0][14 + 16..14 + 20], &RS[1].octets());
    assert_eq!(&back[0][14 + 20..14 + 22], &(first_lport(0, 1) + 1).to_be_bytes());
    assert_ipv4_checksums(&back[0]);
    let s = server_stats(&shared, 0, 0);
    assert_eq!((s.packets_in, s.packets_out, s.conns), (3, 2, 1));
    let snap = snapshot(&ws[0]);
    assert_eq!((snap.drops_total(), snap.toa_skipped), (0, 0));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_udp_both_directions() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let client = (a(CLIENT6), 5000);
    let vip = (a(VIP6), 53);
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 5353));
    let q = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, client, vip, 0, 64, &[], b"query"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &q, SEC);
    let want =
        eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &to_server(pkt4(L4Proto::Udp, local, rs, 0, 63, 0, &[], b"query"), 1));
    assert_eq!(back, vec![want]);
    assert_ipv4_checksums(&back[0]);
    // A short reply padded to 60 bytes by the server's NIC: the padding does not follow.
    let reply = pad60(eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &pkt4(L4Proto::Udp, rs, local, 0, 64, 7, &[], b"answer!")));
    let (front, _) = send_to(&mut ws, 0, BACK, &reply, SEC);
    let want =
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, vip, client, 0, 63, &[], b"answer!"));
    assert_eq!(front, vec![want]);
    assert_eq!(snapshot(&ws[0]).drops_total(), 0);
    assert_accounting_all(&ws);
}

/// An ICMP message (`ty`, `code`, rest of header `rest`) quoting `quote`, its checksum
/// filled in.
fn icmp4(ty: u8, code: u8, rest: u32, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMPv6 message head (`ty`, `code`, rest of header `rest`) and `quote`; the
/// checksum is [`icmp6`]'s.
fn icmp6_msg(ty: u8, code: u8, rest: u32, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    m
}

/// One UDP exchange on a fresh worker: the client's query and the server's answer, and
/// what each looked like on the other side (the query as the server got it, the answer
/// as the client got it).
fn udp_exchange() -> (Vec<MemWorker>, Vec<u8>, Vec<u8>) {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 5353));
    let q = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, client, vip, 0, 64, &[], b"query"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &q, SEC);
    assert_eq!(back.len(), 1);
    let reply = eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &pkt4(L4Proto::Udp, rs, local, 0, 64, 7, &[], b"answer!"));
    let (front, _) = send_to(&mut ws, 0, BACK, &reply, SEC);
    assert_eq!(front.len(), 1);
    (ws, back[0][14..].to_vec(), front[0][14..].to_vec())
}

#[test]
fn nat64_server_port_unreachable_reaches_the_client_as_icmpv6() {
    let (mut ws, sent, _) = udp_exchange();
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    // The server's port unreachable (RFC 792: from the server to the local address,
    // quoting the whole datagram as Linux does).
    let err = ipv4(Ip { src: RS[0], dst: LOCAL_IP, proto: 1, ttl: 64, ident: 0x77, frag: 0 }, &icmp4(3, 3, 0, &sent));
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &err), SEC);
    assert!(back.is_empty());
    // RFC 7915 §4.2: destination unreachable, port (1/4), from the VIP to the client
    // about the client's own query as it sent it (the quoted TTL 63 → hop limit 63),
    // hop limit 63 (the error's TTL less one).
    let quote = pkt_with_options(L4Proto::Udp, client, vip, 0, 63, &[], b"query");
    let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(vip.0, client.0, 63, icmp6_msg(1, 4, 0, &quote)));
    assert_eq!(front, vec![want]);
    let snap = snapshot(&ws[0]);
    assert_eq!((snap.icmp_errors_translated, snap.drops_total()), (1, 0));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_fragmentation_needed_reaches_the_client_as_packet_too_big() {
    for (advertised, v6_mtu, want_mtu) in [
        // The IPv4 next hop's 1400 plus the 20 bytes the header shrinks.
        (1400u16, 1500u16, 1420u32),
        // Capped by the client link's MTU.
        (1490, 1460, 1460),
        // A router older than RFC 1191 (0): the plateau below the quoted packet's 1,060
        // bytes, 1006 (RFC 1191 §7), plus 20.
        (0, 1500, 1026),
    ] {
        let shared = services(1);
        let opts = LbOpts { port_mtu: vec![v6_mtu, 1500], ..LbOpts::default() };
        let learn = [neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
        let mut ws = common::workers6::workers6(&shared, 1, &opts, &[], &learn, |_, w| w);
        let (client, vip) = ((a(CLIENT6), 40000), (a(VIP6), 80));
        let data = [b'x'; 1000];
        let syn =
            eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, SYN, 64, &[], &data));
        let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
        assert_eq!(back.len(), 1);
        // A router on the server's side quotes the IPv4 header and 8 bytes.
        let sent = &back[0][14..];
        let quote = &sent[..28];
        let err = ipv4(
            Ip { src: Ipv4Addr::new(10, 20, 0, 254), dst: LOCAL_IP, proto: 1, ttl: 64, ident: 1, frag: 0 },
            &icmp4(3, 4, u32::from(advertised), quote),
        );
        let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &err), SEC);
        // Packet too big with the RFC 7915 MTU, quoting the client's SYN as far as the
        // 8 bytes went (ports and sequence number, the checksum not quoted).
        let mut q6 = pkt_with_options(L4Proto::Tcp, client, vip, SYN, 63, &[], &data);
        q6.truncate(48);
        // The quoted IPv6 payload length is the SYN's as the server got it: its IPv4
        // total length (the TOA included) less 20.
        let total = u16::from_be_bytes([sent[2], sent[3]]);
        q6[4..6].copy_from_slice(&(total - 20).to_be_bytes());
        let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(vip.0, client.0, 63, icmp6_msg(2, 0, want_mtu, &q6)));
        assert_eq!(front, vec![want], "next-hop MTU {advertised}, client link {v6_mtu}");
        assert_eq!(snapshot(&ws[0]).icmp_errors_translated, 1);
    }
}

#[test]
fn nat64_client_port_unreachable_reaches_the_server_as_icmpv4() {
    let (mut ws, _, got) = udp_exchange();
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 5353));
    // The client's port unreachable about the answer it got (RFC 4443: the whole packet).
    let err = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(client.0, vip.0, 64, icmp6_msg(1, 4, 0, &got)));
    let (front, back) = send_to(&mut ws, 0, FRONT, &err, SEC);
    assert!(front.is_empty());
    // RFC 7915 §5.2: port unreachable (3/3) from the local address to the server about
    // the server's own answer (the quoted hop limit 63 → TTL 63, identification 0, DF),
    // TTL 63, DF (an atomic datagram).
    let quote = pkt4(L4Proto::Udp, rs, local, 0, 63, 0, &[], b"answer!");
    let want_ip =
        ipv4(Ip { src: LOCAL_IP, dst: RS[0], proto: 1, ttl: 63, ident: 0, frag: 0x4000 }, &icmp4(3, 3, 0, &quote));
    assert_eq!(back, vec![eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &want_ip)]);
    // Its packet too big: fragmentation needed with the MTU less 20, capped by the
    // server link's 1500.
    let err = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(client.0, vip.0, 64, icmp6_msg(2, 0, 1280, &got)));
    let (_, back) = send_to(&mut ws, 0, FRONT, &err, SEC);
    let want_ip =
        ipv4(Ip { src: LOCAL_IP, dst: RS[0], proto: 1, ttl: 63, ident: 0, frag: 0x4000 }, &icmp4(3, 4, 1260, &quote));
    assert_eq!(back, vec![eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &want_ip)]);
    let snap = snapshot(&ws[0]);
    assert_eq!((snap.icmp_errors_translated, snap.drops_total()), (2, 0));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_errors_without_a_translation_keep_their_reasons() {
    let (mut ws, sent, got) = udp_exchange();
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    // Source quench and host precedence violation (3/14): RFC 7915 drops them.
    for (ty, code) in [(4u8, 0u8), (3, 14)] {
        let err =
            ipv4(Ip { src: RS[0], dst: LOCAL_IP, proto: 1, ttl: 64, ident: 1, frag: 0 }, &icmp4(ty, code, 0, &sent));
        let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &err), SEC);
        assert!(front.is_empty() && back.is_empty());
    }
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::IcmpUnhandled), 2);
    // Destination unreachable code 5 (source address failed policy) and a parameter
    // problem pointing into the flow label: none in ICMPv4.
    for (code_ty, code, rest) in [(1u8, 5u8, 0u32), (4, 0, 2)] {
        let err =
            eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(client.0, vip.0, 64, icmp6_msg(code_ty, code, rest, &got)));
        let (front, back) = send_to(&mut ws, 0, FRONT, &err, SEC);
        assert!(front.is_empty() && back.is_empty());
    }
    // An IPv6 error quoting the connection's IPv4-mapped server side is forged.
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 5353));
    let forged_quote = pkt_with_options(
        L4Proto::Udp,
        (local.0.to_ipv6_mapped(), local.1),
        (rs.0.to_ipv6_mapped(), rs.1),
        0,
        63,
        &[],
        b"query",
    );
    let forged = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(client.0, vip.0, 64, icmp6_msg(1, 4, 0, &forged_quote)));
    let (front, back) = send_to(&mut ws, 0, FRONT, &forged, SEC);
    assert!(front.is_empty() && back.is_empty());
    let snap = snapshot(&ws[0]);
    assert_eq!(snap.drop_count(DropReason::Icmp6Unhandled), 3);
    assert_eq!(snap.icmp_errors_translated, 0);
    assert_accounting_all(&ws);
}

#[test]
fn nat64_two_workers_the_reply_goes_to_the_local_ports_owner() {
    let shared = services(2);
    let mut ws = workers64(&shared, 2);
    let vip = (a(VIP6), 80);
    // A client port each worker owns, so that both allocate; the replies are injected
    // at the other worker and must be redirected to the one owning the local port.
    for cport in [40000u16, 40001, 40002, 40003] {
        let client = (a(CLIENT6), cport);
        let syn = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, SYN, 64, &[], b""));
        let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
        assert_eq!(back.len(), 1, "SYN from port {cport}");
        let ip = &back[0][14..];
        let local = (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), u16::from_be_bytes([ip[20], ip[21]]));
        let rs = (Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]), 8080);
        assert_eq!(local.0, LOCAL_IP);
        let rs_mac = RS_MACS[RS.iter().position(|&r| r == rs.0).unwrap()];
        let owner = usize::from(local.1) % 2;
        let reply = pkt4(L4Proto::Tcp, rs, local, SYN | ACK, 64, 1, &[], b"");
        let (front, _) = send_to(&mut ws, 1 - owner, BACK, &eth(BACK_MAC, rs_mac, ETH_IPV4, &reply), SEC);
        let want =
            eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, vip, client, SYN | ACK, 63, &[], b""));
        assert_eq!(front, vec![want], "reply to local port {}", local.1);
    }
    let redirected: u64 = ws.iter().map(|w| snapshot(w).redirected_in).sum();
    assert!(redirected >= 4, "every reply went to the local port's owner ({redirected} redirects)");
    assert_eq!(ws.iter().map(|w| snapshot(w).drops_total()).sum::<u64>(), 0);
    assert_accounting_all(&ws);
}

#[test]
fn nat64_bad_replies_are_counted() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let client = (a(CLIENT6), 40000);
    let vip = (a(VIP6), 80);
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 8080));
    let syn = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, SYN, 64, &[], b""));
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn, SEC);
    assert_eq!(back.len(), 1);
    // A reply to the local address on a port no connection has.
    let stray = pkt4(L4Proto::Tcp, rs, (LOCAL_IP, local.1 + 1), ACK, 64, 1, &[], b"x");
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &stray), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(snapshot(&ws[0]).drops.get(DropReason::ReplyNoConn.name()).copied().unwrap_or(0), 1);
    // From another server port than the connection's: no connection either.
    let stray = pkt4(L4Proto::Tcp, (RS[0], 8081), local, ACK, 64, 1, &[], b"x");
    send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &stray), SEC);
    assert_eq!(snapshot(&ws[0]).drops.get(DropReason::ReplyNoConn.name()).copied().unwrap_or(0), 2);
    // A reply cut short inside its TCP header.
    let mut cut = eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &pkt4(L4Proto::Tcp, rs, local, ACK, 64, 1, &[], b""));
    cut.truncate(14 + 20 + 10);
    let total = (20 + 10u16).to_be_bytes();
    cut[16..18].copy_from_slice(&total);
    cut[24..26].copy_from_slice(&[0, 0]);
    let c = csum(&cut[14..34]);
    cut[24..26].copy_from_slice(&c.to_be_bytes());
    let (front, _) = send_to(&mut ws, 0, BACK, &cut, SEC);
    assert!(front.is_empty());
    assert_eq!(snapshot(&ws[0]).drops.get(DropReason::L4Malformed.name()).copied().unwrap_or(0), 1);
    // An IPv6 packet forging the connection's IPv4-mapped reply key finds nothing.
    let forged = pkt_with_options(
        L4Proto::Tcp,
        (RS[0].to_ipv6_mapped(), 8080),
        (LOCAL_IP.to_ipv6_mapped(), local.1),
        ACK,
        64,
        &[],
        b"x",
    );
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV6, &forged), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(snapshot(&ws[0]).drops_total(), 4);
    // The connection still works.
    let reply = pkt4(L4Proto::Tcp, rs, local, SYN | ACK, 64, 1, &[], b"");
    let (front, _) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &reply), SEC);
    assert_eq!(front.len(), 1);
    assert_accounting_all(&ws);
}

/// An IPv6 fragment from the client to the VIP: the fragment header (next header UDP,
/// `offset` bytes, M when `more`, identification `ident`) and `data`.
fn fragment6(offset: u16, more: bool, ident: u32, data: &[u8]) -> Vec<u8> {
    let mut p = vec![17, 0];
    p.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(data);
    ipv6(a(CLIENT6), a(VIP6), 44, 64, &p)
}

#[test]
fn nat64_client_fragments_reach_the_server_as_ipv4_fragments() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 5353));
    // A 24-byte UDP datagram (its checksum over the whole of it) in two fragments: the
    // header and 8 bytes, then the last 8 bytes.
    let data = b"fragmented-query";
    let mut udp = seg(L4Proto::Udp, client.1, vip.1, 0, &[], data);
    let c = csum6(client.0, vip.0, 17, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let ident = 0x1234_abcd;
    let (_, back1) =
        send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &fragment6(0, true, ident, &udp[..16])), SEC);
    let (_, back2) = send_to(
        &mut ws,
        0,
        FRONT,
        &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &fragment6(16, false, ident, &udp[16..])),
        SEC,
    );
    // RFC 7915 §5.1.1: IPv4 fragments with the identification's low 16 bits, MF and the
    // offset (in 8-byte units) copied, DF clear, TTL 63; the first one's ports and
    // checksum those of the translated datagram (computed here over all of it).
    let mut udp4 = seg(L4Proto::Udp, local.1, rs.1, 0, &[], data);
    let c = l4_csum(local.0, rs.0, 17, &udp4);
    udp4[6..8].copy_from_slice(&c.to_be_bytes());
    let ip = |frag: u16, part: &[u8]| {
        eth(
            RS_MACS[0],
            BACK_MAC,
            ETH_IPV4,
            &ipv4(Ip { src: local.0, dst: rs.0, proto: 17, ttl: 63, ident: 0xabcd, frag }, part),
        )
    };
    assert_eq!(back1, vec![ip(0x2000, &udp4[..16])], "the first fragment");
    assert_eq!(back2, vec![ip(0x0002, &udp4[16..])], "the last fragment");
    let snap = snapshot(&ws[0]);
    assert_eq!(snap.drops_total(), 0);
    // A fragment whose fragment header is followed by a destination options header is
    // not translated (its offsets would not be the IPv4 datagram's).
    let mut opts = vec![17, 0, 1, 4, 0, 0, 0, 0];
    opts.extend_from_slice(&udp[..8]);
    let mut p = vec![60, 0, 0, 1];
    p.extend_from_slice(&0x55u32.to_be_bytes());
    p.extend_from_slice(&opts);
    let f = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(client.0, vip.0, 44, 64, &p));
    let (front, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
    assert!(front.is_empty() && back.is_empty(), "{back:02x?}");
    let snap = snapshot(&ws[0]);
    assert_eq!((snap.drops_total(), snap.drop_count(DropReason::Ip6Fragment)), (1, 1));
    assert_accounting_all(&ws);
}

// ---- the server's fragments and large replies (RFC 7915 §4.1) ----

/// `n` workers as [`workers64`] with the client port's MTU `mtu` (the servers' 1500).
fn workers64_mtu(shared: &SharedServices, n: usize, mtu: u16) -> Vec<MemWorker> {
    let learn = [neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
    let opts = LbOpts { port_mtu: vec![mtu, 1500], ..LbOpts::default() };
    common::workers6::workers6(shared, n, &opts, &[], &learn, |_, w| w)
}

/// The ends of a NAT64 UDP flow: the client, the VIP, the local address and port, the
/// server.
type Ends = ((std::net::Ipv6Addr, u16), (std::net::Ipv6Addr, u16), (Ipv4Addr, u16), (Ipv4Addr, u16));

/// A UDP flow from the client's port 5000 to [VIP6]:53 opened by a short query, its
/// local port and server as the query reached the server.
fn open_udp_flow(ws: &mut [MemWorker]) -> Ends {
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    let q = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, client, vip, 0, 64, &[], b"query"));
    let (_, back) = send_to(ws, 0, FRONT, &q, SEC);
    assert_eq!(back.len(), 1);
    let ip = &back[0][14..];
    let local = (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), u16::from_be_bytes([ip[20], ip[21]]));
    let rs = (Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]), 5353);
    (client, vip, local, rs)
}

/// The server's UDP datagram with `data` (its checksum over the IPv4 pseudo-header) and
/// the same datagram as the client must get it (from the VIP, its checksum over the IPv6
/// pseudo-header, computed here over all of it).
fn reply_datagrams(e: Ends, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (client, vip, local, rs) = e;
    let mut udp4 = seg(L4Proto::Udp, rs.1, local.1, 0, &[], data);
    let c = l4_csum(rs.0, local.0, 17, &udp4);
    udp4[6..8].copy_from_slice(&c.to_be_bytes());
    let mut udp6 = seg(L4Proto::Udp, vip.1, client.1, 0, &[], data);
    let c = csum6(vip.0, client.0, 17, &udp6);
    udp6[6..8].copy_from_slice(&c.to_be_bytes());
    (udp4, udp6)
}

/// The server's IPv4 packet to the local address (TTL 64, identification `ident`,
/// flags and offset word `frag`) carrying `part`, as its NIC sends it.
fn from_server(e: Ends, ident: u16, frag: u16, part: &[u8]) -> Vec<u8> {
    let (_, _, local, rs) = e;
    let mac = RS_MACS[RS.iter().position(|&r| r == rs.0).unwrap()];
    eth(BACK_MAC, mac, ETH_IPV4, &ipv4(Ip { src: rs.0, dst: local.0, proto: 17, ttl: 64, ident, frag }, part))
}

/// An IPv6 fragment from the VIP to the client (hop limit 63): the fragment header (next
/// header UDP, `offset` bytes, M when `more`, identification `ident`) and `part`.
fn to_client(e: Ends, offset: u16, more: bool, ident: u32, part: &[u8]) -> Vec<u8> {
    let (client, vip, _, _) = e;
    let mut p = vec![17, 0];
    p.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(part);
    eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &ipv6(vip.0, client.0, 44, 63, &p))
}

#[test]
fn nat64_server_fragments_reach_the_client_as_ipv6_fragments() {
    // Two workers: the server's fragments reach the local port's owner through the
    // fragment table's steering, the later one before the first (held, then released).
    let shared = services(2);
    let mut ws = workers64(&shared, 2);
    let e = open_udp_flow(&mut ws);
    let data: Vec<u8> = (0..40u8).collect();
    let (udp4, udp6) = reply_datagrams(e, &data);
    // RFC 7915 §4.1: identification 0x4321 in the low 16 bits, offset and M copied; the
    // first fragment's ports and checksum those of the translated datagram.
    let (front, _) = send_to(&mut ws, 1, BACK, &from_server(e, 0x4321, 0x0004, &udp4[32..]), SEC);
    assert!(front.is_empty(), "held until its first fragment comes: {front:02x?}");
    let (front, back) = send_to(&mut ws, 1, BACK, &from_server(e, 0x4321, 0x2000, &udp4[..32]), SEC);
    assert!(back.is_empty());
    assert_eq!(
        front,
        vec![to_client(e, 0, true, 0x4321, &udp6[..32]), to_client(e, 32, false, 0x4321, &udp6[32..])],
        "the first fragment, then the later one it released"
    );
    // Another datagram of the flow, in order this time.
    let (udp4, udp6) = reply_datagrams(e, b"0123456789abcdef0123456789abcdef");
    let (f1, _) = send_to(&mut ws, 0, BACK, &from_server(e, 0x4322, 0x2000, &udp4[..24]), SEC);
    let (f2, _) = send_to(&mut ws, 0, BACK, &from_server(e, 0x4322, 0x0003, &udp4[24..]), SEC);
    assert_eq!(f1, vec![to_client(e, 0, true, 0x4322, &udp6[..24])]);
    assert_eq!(f2, vec![to_client(e, 24, false, 0x4322, &udp6[24..])]);
    let total: u64 = ws.iter().map(|w| snapshot(w).drops_total()).sum();
    assert_eq!(total, 0);
    assert_accounting_all(&ws);
}

#[test]
fn nat64_a_server_fragment_over_the_client_mtu_is_cut_in_two() {
    let shared = services(1);
    let mut ws = workers64_mtu(&shared, 1, 1280);
    let e = open_udp_flow(&mut ws);
    // 1,680 bytes of datagram: 1,480 in the first IPv4 fragment (1,500 bytes long), 200
    // in the last at offset 1,480 (185 units).
    let data: Vec<u8> = (0..1672u32).map(|i| (i * 13 + 5) as u8).collect();
    let (udp4, udp6) = reply_datagrams(e, &data);
    let (f1, _) = send_to(&mut ws, 0, BACK, &from_server(e, 0x0abc, 0x2000, &udp4[..1480]), SEC);
    let (f2, _) = send_to(&mut ws, 0, BACK, &from_server(e, 0x0abc, 185, &udp4[1480..]), SEC);
    // Translated, the first is 40 + 8 + 1,480 = 1,528 bytes, over 1,280: cut into 1,232
    // bytes at 0 and 248 at 1,232, both with M; the last fits (248 bytes) and keeps its
    // offset and M clear. Every piece has the identification.
    assert_eq!(
        f1,
        vec![to_client(e, 0, true, 0x0abc, &udp6[..1232]), to_client(e, 1232, true, 0x0abc, &udp6[1232..1480])]
    );
    assert_eq!(f2, vec![to_client(e, 1480, false, 0x0abc, &udp6[1480..])]);
    for f in f1.iter().chain(&f2) {
        assert!(f.len() - 14 <= 1280);
    }
    let s = snapshot(&ws[0]);
    assert_eq!((s.drops_total(), s.nat64_fragments, s.local_originated), (0, 1, 1));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_an_unfragmented_reply_with_df_clear_over_the_mtu_is_cut() {
    let shared = services(1);
    let mut ws = workers64_mtu(&shared, 1, 1280);
    let e = open_udp_flow(&mut ws);
    // 1,408 bytes of datagram, DF clear: 1,448 bytes of IPv6, over 1,280. RFC 7915 §4.1:
    // the translator fragments it (identification the IPv4 one): 1,232 bytes with M,
    // then 176 at 1,232 with M clear.
    let data: Vec<u8> = (0..1400u32).map(|i| (i * 7) as u8).collect();
    let (udp4, udp6) = reply_datagrams(e, &data);
    let (front, back) = send_to(&mut ws, 0, BACK, &from_server(e, 0x0777, 0, &udp4), SEC);
    assert!(back.is_empty());
    assert_eq!(
        front,
        vec![to_client(e, 0, true, 0x0777, &udp6[..1232]), to_client(e, 1232, false, 0x0777, &udp6[1232..])]
    );
    // One that fits goes whole, without a fragment header.
    let (udp4, _) = reply_datagrams(e, &data[..1232]);
    let (front, _) = send_to(&mut ws, 0, BACK, &from_server(e, 0x0778, 0, &udp4), SEC);
    assert_eq!(front.len(), 1);
    assert_eq!((front[0].len() - 14, front[0][14 + 6]), (1280, 17));
    let s = snapshot(&ws[0]);
    assert_eq!((s.drops_total(), s.nat64_fragments), (0, 1));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_a_reply_with_df_set_over_the_mtu_gets_fragmentation_needed() {
    let shared = services(1);
    let mut ws = workers64_mtu(&shared, 1, 1280);
    let e = open_udp_flow(&mut ws);
    let (_, _, local, rs) = e;
    let data = vec![0x5au8; 1400];
    let (udp4, _) = reply_datagrams(e, &data);
    let (front, back) = send_to(&mut ws, 0, BACK, &from_server(e, 9, 0x4000, &udp4)[..], SEC);
    assert!(front.is_empty());
    // The server gets fragmentation needed from the local address, with the IPv4 size
    // that fits the client link (1,280 − 20).
    assert_eq!(back.len(), 1);
    let ip = &back[0][14..];
    assert_eq!((&ip[12..16], &ip[16..20], ip[9]), (&local.0.octets()[..], &rs.0.octets()[..], 1));
    assert_eq!((ip[20], ip[21], u16::from_be_bytes([ip[26], ip[27]])), (3, 4, 1260));
    let s = snapshot(&ws[0]);
    assert_eq!((s.drop_count(DropReason::Ip6TooBig), s.nat64_fragments), (1, 0));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_to_the_server_df_is_clear_up_to_1260_bytes_and_set_above() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let (client, vip) = ((a(CLIENT6), 5000), (a(VIP6), 53));
    let (local, rs) = ((LOCAL_IP, first_lport(0, 1)), (RS[0], 5353));
    // RFC 7915 §5.1: 1,260 bytes of IPv4 (1,232 of data) DF clear with the worker's
    // identification; 1,261 DF set, identification 0.
    for (i, n) in [1232usize, 1233].into_iter().enumerate() {
        let data = vec![b'q'; n];
        let q = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, client, vip, 0, 64, &[], &data));
        let (_, back) = send_to(&mut ws, 0, FRONT, &q, SEC);
        let whole = pkt4(L4Proto::Udp, local, rs, 0, 63, 0, &[], &data);
        let want = if n <= 1232 { to_server(whole, i as u16 + 1) } else { whole };
        assert_eq!(back, vec![eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &want)], "{n} bytes of data");
        assert_ipv4_checksums(&back[0]);
    }
    assert_accounting_all(&ws);
}

#[test]
fn nat64_a_fragmented_reply_without_udp_checksum_is_dropped() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let e = open_udp_flow(&mut ws);
    let (mut udp4, _) = reply_datagrams(e, &[7u8; 40]);
    udp4[6..8].copy_from_slice(&[0, 0]);
    let (front, _) = send_to(&mut ws, 0, BACK, &from_server(e, 0x99, 0x2000, &udp4[..32]), SEC);
    assert!(front.is_empty());
    let s = snapshot(&ws[0]);
    assert_eq!((s.drops_total(), s.drop_count(DropReason::Nat64UdpNoChecksum)), (1, 1));
    assert_accounting_all(&ws);
}

#[test]
fn nat64_server_fragments_with_ttl_1_are_dropped_the_first_with_time_exceeded() {
    let shared = services(1);
    let mut ws = workers64(&shared, 1);
    let e = open_udp_flow(&mut ws);
    let (_, _, local, rs) = e;
    let (udp4, _) = reply_datagrams(e, &[3u8; 40]);
    let ttl1 = |frag: u16, part: &[u8]| {
        let mac = RS_MACS[RS.iter().position(|&r| r == rs.0).unwrap()];
        eth(BACK_MAC, mac, ETH_IPV4, &ipv4(Ip { src: rs.0, dst: local.0, proto: 17, ttl: 1, ident: 0x55, frag }, part))
    };
    // The first fragment: an ICMP time exceeded from the local address to the server, as
    // for a whole reply; the later one: none (RFC 1812 §4.3.2.7).
    let (front, back) = send_to(&mut ws, 0, BACK, &ttl1(0x2000, &udp4[..32]), SEC);
    assert!(front.is_empty());
    assert_eq!(back.len(), 1);
    let ip = &back[0][14..];
    assert_eq!((&ip[12..16], &ip[16..20], ip[9], ip[20]), (&local.0.octets()[..], &rs.0.octets()[..], 1, 11));
    let (front, back) = send_to(&mut ws, 0, BACK, &ttl1(0x0004, &udp4[32..]), SEC);
    assert!(front.is_empty() && back.is_empty());
    let s = snapshot(&ws[0]);
    assert_eq!((s.drops_total(), s.drop_count(DropReason::TtlExceeded)), (2, 2));
    assert_accounting_all(&ws);
}
