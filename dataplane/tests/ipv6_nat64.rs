//! NAT64 through Full-NAT through in-memory workers: an IPv6 service on IPv4 real
//! servers. TCP with the 20-byte IPv6 TOA and the SYN-ACK's MSS lowered by it, UDP, both
//! directions, round robin across the servers, two workers (the IPv4 reply owned by the
//! local port's worker), and the drops (a truncated reply, a reply for no connection).
//! Expected frames are built here byte by byte with their own RFC 1071 checksums over the
//! RFC 791 and RFC 8200 pseudo-headers, independently of `rvs_dataplane::wire`.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::ip6::*;
use common::l4::{assert_accounting_all, l4_csum, send_to, server_stats, LbOpts, ACK, RS1, RS1_MAC, RS2, RS2_MAC, SYN};
use common::workers6::neighbour6;
use common::*;
use rvs_dataplane::sched::{SchedParams, SchedShared};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind, ServiceKey};

const VIP6: &str = "2001:db8:10::100";
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

// ---- services and workers ----

fn service64(workers: usize, proto: L4Proto, port: u16, rport: u16) -> Service {
    let servers: Vec<RealServer> = RS
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
    let shared = SchedShared::build(SchedulerKind::Rr, &servers, &SchedParams::default()).expect("scheduler builds");
    Service {
        key: ServiceKey { proto, vip: a(VIP6).into(), port },
        scheduler: SchedulerKind::Rr,
        sched: Arc::new(shared),
        persist: None,
        servers,
        local_addrs: vec![LOCAL_IP],
        local_addrs6: Vec::new(),
        stats: Arc::new(ServerStats::new(workers)),
        admission: Default::default(),
        syn_proxy: Default::default(),
        unknown_flow: Default::default(),
    }
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
    let want = eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &pkt4(L4Proto::Tcp, local, rs, SYN, 63, 0, &opts, b""));
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
    let want = eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &pkt4(L4Proto::Tcp, local, rs, ACK, 63, 0, &toa6(client), b""));
    assert_eq!(back, vec![want]);
    let data =
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Tcp, client, vip, ACK, 64, &[], b"GET /"));
    let (_, back) = send_to(&mut ws, 0, FRONT, &data, SEC);
    let want = eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &pkt4(L4Proto::Tcp, local, rs, ACK, 63, 0, &[], b"GET /"));
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
    let want = eth(RS_MACS[0], BACK_MAC, ETH_IPV4, &pkt4(L4Proto::Udp, local, rs, 0, 63, 0, &[], b"query"));
    assert_eq!(back, vec![want]);
    assert_ipv4_checksums(&back[0]);
    // A short reply padded to 60 bytes by the server's NIC: the padding does not follow.
    let reply = pad60(eth(BACK_MAC, RS_MACS[0], ETH_IPV4, &pkt4(L4Proto::Udp, rs, local, 0, 64, 7, &[], b"answer!")));
    let (front, _) = send_to(&mut ws, 0, BACK, &reply, SEC);
    let want =
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &pkt_with_options(L4Proto::Udp, vip, client, 0, 63, &[], b"answer!"));
    assert_eq!(front, vec![want]);
    // The client's port unreachable about that answer: NAT64 does not translate errors,
    // and nothing goes towards the server (as IPv6 to its IPv4-mapped address).
    let mut unreach = vec![1, 4, 0, 0, 0, 0, 0, 0];
    unreach.extend_from_slice(&pkt_with_options(L4Proto::Udp, vip, client, 0, 63, &[], b"answer!"));
    let unreach = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(client.0, vip.0, 64, unreach));
    let (front, back) = send_to(&mut ws, 0, FRONT, &unreach, SEC);
    assert!(front.is_empty() && back.is_empty(), "nothing forwarded: {front:02x?} {back:02x?}");
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::Icmp6Unhandled), 1);
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
