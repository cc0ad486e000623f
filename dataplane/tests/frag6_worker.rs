//! IPv6 fragments of TCP/UDP flows through whole workers on the in-memory driver: a UDP
//! datagram cut in 3 fragments (fragment header, next header UDP), in order and in
//! other orders, through DR, NAT66, Full-NAT (both directions for the NATs) and the
//! IPv6-in-IPv6 tunnel; two workers with trains entering either one (Full-NAT replies
//! owned by the local port); hop-by-hop and destination options before the fragment
//! header in every mode; a fragmented TCP segment on a Full-NAT connection (no TOA);
//! a fragment too big for the tunnel; atomic fragments; and the refusals (tiny first fragment,
//! overlaps, a flood of never-completed trains, other protocols, hop limit), each
//! counted, with forwarding still working after them. Also the ICMPv6 errors NAT66 sends
//! in place of a packet: time exceeded (not about a later fragment), packet too big both
//! ways, and their rate limit.
//!
//! Expected frames are built independently: the translated datagram is built whole
//! (checksum computed in full over the new pseudo-header and the whole datagram, with
//! the tests' RFC 1071 sum) and cut at the same offsets; every output frame is compared
//! byte for byte; the ICMPv6 errors are built here with the tests' own checksum. Each
//! scenario ends with the counting invariant (held fragments included).

mod common;

use std::net::Ipv6Addr;

use common::ip6::*;
use common::l4::{assert_accounting_all, drops_of, send_to, LbOpts, Sent};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::conn::{client_owner6, fragment_owner6, lport_owner};
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, PortId};

const CLIENT6: &str = "2001:db8:10::2";
const RS6: &str = "2001:db8:20::11";
const RS6_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x05, 0x11];
/// The IPv6 Full-NAT local address (on the back port).
const LOCAL6: &str = "2001:db8:20::200";
/// rvsd's address on the back port: the tunnel's outer source.
const BACK6: &str = common::workers6::BACK6;
const IDENT: u32 = 0x5151_0001;
/// Fragmentable bytes of each fragment but the last (a multiple of 8; what a 1280-byte
/// path MTU leaves: 1280 - 40 - 8).
const CUT: usize = 1232;

// ---- packets (independent of the code under test) ----

/// A UDP datagram (header and `data`) from `src` to `dst`, checksum in full.
fn udp(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), data: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&src.1.to_be_bytes());
    s.extend_from_slice(&dst.1.to_be_bytes());
    s.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(data);
    let c = csum6(src.0, dst.0, 17, &s);
    let c = if c == 0 { 0xffff } else { c };
    s[6..8].copy_from_slice(&c.to_be_bytes());
    s
}

/// A TCP segment (20-byte header, flags `flags`, `data`), checksum in full.
fn tcp(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8, data: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&src.1.to_be_bytes());
    s.extend_from_slice(&dst.1.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(data);
    let c = csum6(src.0, dst.0, 6, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// A fragment header: next header, offset in bytes, M, identification.
fn frag_header(next: u8, offset: usize, more: bool, ident: u32) -> [u8; 8] {
    let w = offset as u16 | u16::from(more);
    let mut h = [next, 0, 0, 0, 0, 0, 0, 0];
    h[2..4].copy_from_slice(&w.to_be_bytes());
    h[4..8].copy_from_slice(&ident.to_be_bytes());
    h
}

/// The IPv6 fragments (hop limit `hl`, next header `nh`) of the upper-layer bytes `l4`
/// from `src` to `dst`, cut every [`CUT`] bytes.
fn cut(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hl: u8, l4: &[u8], ident: u32) -> Vec<Vec<u8>> {
    cut_by(src, dst, nh, hl, l4, ident, CUT, &[])
}

/// A hop-by-hop options header (next: destination options) and a destination options
/// header (next: fragment), 8 bytes each, padded with PadN: an unfragmentable part.
const HBH_DSTOPTS: [u8; 16] = [60, 0, 1, 4, 0, 0, 0, 0, 44, 0, 1, 4, 0, 0, 0, 0];

/// [`cut`] every `chunk` bytes, with the extension headers `ext` ([`HBH_DSTOPTS`] or
/// none) in every fragment before its fragment header.
#[allow(clippy::too_many_arguments)]
fn cut_by(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nh: u8,
    hl: u8,
    l4: &[u8],
    ident: u32,
    chunk: usize,
    ext: &[u8],
) -> Vec<Vec<u8>> {
    let n = l4.len().div_ceil(chunk);
    (0..n)
        .map(|i| {
            let part = &l4[i * chunk..((i + 1) * chunk).min(l4.len())];
            let mut p = ext.to_vec();
            p.extend_from_slice(&frag_header(nh, i * chunk, i + 1 < n, ident));
            p.extend_from_slice(part);
            ipv6(src, dst, if ext.is_empty() { 44 } else { 0 }, hl, &p)
        })
        .collect()
}

/// The frame the tunnel sends for the inner IPv6 packet `inner` (hop limit already
/// decremented): an outer header from [`BACK6`] to the server, next header 41, hop limit
/// 64, traffic class and flow label copied (0 here).
fn tunnelled(inner: &[u8]) -> Vec<u8> {
    eth(RS6_MAC, BACK_MAC, ETH_IPV6, &ipv6(a(BACK6), a(RS6), 41, 64, inner))
}

/// `frame` (Ethernet + IPv6) with hop limit `hl`, without its Ethernet header.
fn ip_with_hop_limit(frame: &[u8], hl: u8) -> Vec<u8> {
    let mut ip = frame[14..].to_vec();
    ip[7] = hl;
    ip
}

/// The frames of `ips` from `src_mac` to `dst_mac`.
fn frames(ips: &[Vec<u8>], dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<Vec<u8>> {
    ips.iter().map(|ip| eth(dst_mac, src_mac, ETH_IPV6, ip)).collect()
}

/// 3000 bytes of data: fragments of 1232, 1232 and 544 bytes of UDP (8 + 3000).
fn payload() -> Vec<u8> {
    (0..3000u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// The client's datagram from `cport` to the VIP's port 53, cut, as sent to rvs.
fn client_fragments(cport: u16, ident: u32) -> Vec<Vec<u8>> {
    let l4 = udp((a(CLIENT6), cport), (a(VIP6), 53), &payload());
    frames(&cut(a(CLIENT6), a(VIP6), 17, 64, &l4, ident), FRONT_MAC, CLIENT_MAC)
}

// ---- services and workers ----

/// UDP and TCP services on port 53 with one server each, on port 5353, in `mode`.
fn services(workers: usize, mode: ForwardMode) -> SharedServices {
    let svc = |proto| {
        let local_addrs6 = if mode == ForwardMode::FullNat { vec![a(LOCAL6)] } else { Vec::new() };
        Service { local_addrs6, ..service6(workers, proto, 53, vec![server6(RS6, 5353, mode, workers)]) }
    };
    share(ServiceTable::new(1, vec![svc(L4Proto::Udp), svc(L4Proto::Tcp)]).expect("valid table"))
}

/// `n` workers with IPv6 addresses on both ports and [`LOCAL6`] as the Full-NAT local
/// address, the client and the server learned.
fn workers6(shared: &SharedServices, n: usize) -> Vec<MemWorker> {
    workers6_with(shared, n, &LbOpts::default())
}

/// [`workers6`] with `opts` (the ports' MTUs).
fn workers6_with(shared: &SharedServices, n: usize, opts: &LbOpts) -> Vec<MemWorker> {
    let learn = [neighbour6(CLIENT6, CLIENT_MAC, FRONT), neighbour6(RS6, RS6_MAC, BACK)];
    common::workers6::workers6(shared, n, opts, &[a(LOCAL6)], &learn, |_, w| w)
}

/// Injects `frames` in the order of `order` into worker `at` on `port`, one poll each.
fn send_in_order(ws: &mut [MemWorker], at: usize, port: PortId, frames: &[Vec<u8>], order: &[usize]) -> Sent {
    let mut all: Sent = (Vec::new(), Vec::new());
    for &i in order {
        let (f, b) = send_to(ws, at, port, &frames[i], SEC);
        all.0.extend(f);
        all.1.extend(b);
    }
    all
}

/// `want` in the order the worker sends it for fragments injected in `order`: the first
/// fragment goes out as it comes, a fragment before it is held and goes right after it.
fn in_sent_order(want: &[Vec<u8>], order: &[usize]) -> Vec<Vec<u8>> {
    let first = order.iter().position(|&i| i == 0).expect("order has the first");
    let mut out = vec![want[0].clone()];
    out.extend(order[..first].iter().map(|&i| want[i].clone()));
    out.extend(order[first + 1..].iter().map(|&i| want[i].clone()));
    out
}

const ORDERS: [[usize; 3]; 3] = [[0, 1, 2], [2, 1, 0], [1, 0, 2]];

#[test]
fn dr_forwards_every_fragment_unchanged_in_any_order() {
    let shared = services(1, ForwardMode::Dr);
    let mut ws = workers6(&shared, 1);
    for (n, order) in ORDERS.iter().enumerate() {
        let input = client_fragments(40000, IDENT + n as u32);
        let (front, back) = send_in_order(&mut ws, 0, FRONT, &input, order);
        assert!(front.is_empty(), "{order:?}: nothing back to the client");
        // Only the MACs change, hop limit included (DR).
        let want: Vec<_> = input.iter().map(|f| eth(RS6_MAC, BACK_MAC, ETH_IPV6, &f[14..])).collect();
        assert_eq!(back, in_sent_order(&want, order), "{order:?}");
        assert_eq!(ws[0].fragments_held(), 0);
    }
    assert!(drops_of(&ws[0]).is_empty(), "{:?}", drops_of(&ws[0]));
    assert_eq!(ws[0].lb().unwrap().conns6().len(), 1, "one connection for every datagram of the flow");
    let s = snapshot(&ws[0]);
    assert_eq!((s.frag_forwarded, s.frag6_forwarded), (9, 9));
    assert_accounting_all(&ws);
}

#[test]
fn nat66_rewrites_the_first_fragment_like_a_packet_and_the_others_address_only() {
    let shared = services(1, ForwardMode::Nat);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 40000);
    for (n, order) in ORDERS.iter().enumerate() {
        let ident = IDENT + n as u32;
        let (_, back) = send_in_order(&mut ws, 0, FRONT, &client_fragments(40000, ident), order);
        // The translated datagram, built whole and cut the same way.
        let out = udp(client, (a(RS6), 5353), &payload());
        let want = frames(&cut(a(CLIENT6), a(RS6), 17, 63, &out, ident), RS6_MAC, BACK_MAC);
        assert_eq!(back, in_sent_order(&want, order), "inbound {order:?}");
    }
    // The server's reply, fragmented too, goes back from the VIP.
    let data = &payload()[..2600];
    for (n, order) in ORDERS.iter().enumerate() {
        let ident = 0x7777_0000 + n as u32;
        let reply = udp((a(RS6), 5353), client, data);
        let input = frames(&cut(a(RS6), a(CLIENT6), 17, 64, &reply, ident), BACK_MAC, RS6_MAC);
        let (front, back) = send_in_order(&mut ws, 0, BACK, &input, order);
        assert!(back.is_empty());
        let back_out = udp((a(VIP6), 53), client, data);
        let want = frames(&cut(a(VIP6), a(CLIENT6), 17, 63, &back_out, ident), CLIENT_MAC, FRONT_MAC);
        assert_eq!(front, in_sent_order(&want, order), "reply {order:?}");
    }
    assert!(drops_of(&ws[0]).is_empty(), "{:?}", drops_of(&ws[0]));
    assert_eq!(ws[0].lb().unwrap().conns6().len(), 1);
    assert_accounting_all(&ws);
}

#[test]
fn an_atomic_fragment_is_the_packet() {
    let shared = services(1, ForwardMode::Nat);
    let mut ws = workers6(&shared, 1);
    let l4 = udp((a(CLIENT6), 41000), (a(VIP6), 53), b"atomic");
    let mut p = frag_header(17, 0, false, 99).to_vec();
    p.extend_from_slice(&l4);
    let f = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(a(CLIENT6), a(VIP6), 44, 64, &p));
    let (_, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
    let mut p = frag_header(17, 0, false, 99).to_vec();
    p.extend_from_slice(&udp((a(CLIENT6), 41000), (a(RS6), 5353), b"atomic"));
    assert_eq!(back, vec![eth(RS6_MAC, BACK_MAC, ETH_IPV6, &ipv6(a(CLIENT6), a(RS6), 44, 63, &p))]);
    let s = snapshot(&ws[0]);
    assert_eq!((s.frag_forwarded, s.drops_total()), (0, 0), "not the fragment path");
    assert_accounting_all(&ws);
}

#[test]
fn two_workers_every_train_reaches_the_flows_owner_whichever_worker_it_enters() {
    let shared = services(2, ForwardMode::Nat);
    let mut ws = workers6(&shared, 2);
    let mut owners = [0usize; 2];
    let mut cross = 0;
    for cport in 42000u16..42012 {
        let owner = client_owner6(a(CLIENT6), cport, 2);
        owners[owner] += 1;
        let ident = u32::from(cport) << 8;
        cross += usize::from(fragment_owner6(a(CLIENT6), a(VIP6), ident, 17, 2) != owner);
        // Fragments of one datagram enter different workers, last first.
        let input = client_fragments(cport, ident);
        let mut back = Vec::new();
        for (i, at) in [(2, 1), (1, 0), (0, 1)] {
            back.extend(send_to(&mut ws, at, FRONT, &input[i], SEC).1);
        }
        let out = udp((a(CLIENT6), cport), (a(RS6), 5353), &payload());
        let want = frames(&cut(a(CLIENT6), a(RS6), 17, 63, &out, ident), RS6_MAC, BACK_MAC);
        assert_eq!(back, in_sent_order(&want, &[2, 1, 0]), "flow {cport}");
    }
    assert!(owners.iter().all(|&n| n > 0) && cross > 0, "both workers own flows: {owners:?}, {cross}");
    // Each connection is on its owner only.
    for cport in 42000u16..42012 {
        let owner = client_owner6(a(CLIENT6), cport, 2);
        let n: Vec<usize> = ws.iter().map(|w| w.lb().unwrap().conns6().len()).collect();
        assert_eq!(n[owner], owners[owner], "{cport}");
    }
    for w in &ws {
        assert!(drops_of(w).is_empty(), "{:?}", drops_of(w));
        assert_eq!(w.fragments_held(), 0);
    }
    assert!(ws.iter().map(|w| snapshot(w).redirected_out).sum::<u64>() > 0);
    assert_accounting_all(&ws);
}

#[test]
fn refusals_are_counted_and_forwarding_goes_on() {
    let shared = services(1, ForwardMode::Nat);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 43000);
    let to_vip = |payload: &[u8]| eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(a(CLIENT6), a(VIP6), 44, 64, payload));
    let with = |h: [u8; 8], data: &[u8]| {
        let mut p = h.to_vec();
        p.extend_from_slice(data);
        p
    };
    let drop_of = |ws: &mut Vec<MemWorker>, f: &[u8], reason: DropReason| {
        let before = snapshot(&ws[0]).drop_count(reason);
        let (front, back) = send_to(ws, 0, FRONT, f, SEC);
        assert!(front.is_empty() && back.is_empty(), "{reason:?}");
        assert_eq!(snapshot(&ws[0]).drop_count(reason), before + 1, "{reason:?}");
    };
    // A tiny first fragment: half a TCP header (RFC 7112 / RFC 8200 §4.5).
    drop_of(&mut ws, &to_vip(&with(frag_header(6, 0, true, 1), &[0u8; 8])), DropReason::FragInconsistent);
    // A fragment of anything but TCP/UDP (here SCTP) to the VIP.
    drop_of(&mut ws, &to_vip(&with(frag_header(132, 8, true, 2), &[0u8; 16])), DropReason::Ip6Fragment);
    // A first fragment of a SYN.
    let syn = tcp(client, (a(VIP6), 53), 0x02, &[0; 4]);
    drop_of(&mut ws, &to_vip(&with(frag_header(6, 0, true, 3), &syn)), DropReason::Ip6Fragment);
    // Hop limit 1 (NAT66 routes it): the first fragment gets a time exceeded back from
    // the VIP, quoting what fits in 1,280 bytes; a later fragment is dropped without one.
    for i in 0..2 {
        let mut f = client_fragments(43001, 4)[i].clone();
        f[14 + 7] = 1;
        let before = snapshot(&ws[0]).drop_count(DropReason::Ip6HopLimit);
        let (front, back) = send_to(&mut ws, 0, FRONT, &f, SEC);
        assert!(back.is_empty());
        assert_eq!(snapshot(&ws[0]).drop_count(DropReason::Ip6HopLimit), before + 1);
        if i == 0 {
            let mut msg = vec![3, 0, 0, 0, 0, 0, 0, 0];
            msg.extend_from_slice(&f[14..14 + 1232]);
            let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(a(VIP6), a(CLIENT6), 64, msg));
            assert_eq!(front, vec![want]);
        } else {
            assert!(front.is_empty(), "no error about a later fragment");
        }
    }
    assert_eq!(snapshot(&ws[0]).icmp6_errors_sent, 1);
    // Tiny overlapping fragments: the second overlaps the first (held); the whole train
    // goes, and its later fragments too (RFC 5722).
    let overlap = [frag_header(17, 64, true, 6), frag_header(17, 72, true, 6), frag_header(17, 0, true, 6)];
    send_to(&mut ws, 0, FRONT, &to_vip(&with(overlap[0], &[1u8; 16])), SEC);
    assert_eq!(ws[0].fragments_held(), 1);
    send_to(&mut ws, 0, FRONT, &to_vip(&with(overlap[1], &[2u8; 16])), SEC);
    assert_eq!(ws[0].fragments_held(), 0);
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::FragOverlap), 2, "the held one went with it");
    let first = udp(client, (a(VIP6), 53), &[0; 8]);
    drop_of(&mut ws, &to_vip(&with(overlap[2], &first)), DropReason::FragOverlap);
    // A flood of never-completed trains: bounded by the held limit, then timed out.
    let max = rvs_dataplane::worker::FRAG_MAX_HELD;
    let flood = max + 8;
    for i in 0..flood as u32 {
        inject(&mut ws[0], FRONT, &to_vip(&with(frag_header(17, 1232, true, 1000 + i), &[0u8; 64])));
        if i % 32 == 31 {
            ws[0].poll_once(SEC);
        }
    }
    ws[0].poll_once(SEC);
    let held = ws[0].fragments_held();
    let full = snapshot(&ws[0]).drop_count(DropReason::FragTableFull) as usize;
    // A train whose hash bucket is full is refused too: the table's trains are random.
    assert!(held <= max && full >= 8 && held + full == flood, "held {held}, refused {full}");
    assert_eq!(snapshot(&ws[0]).frag_held, held as u64);
    for t in 0..64 {
        ws[0].poll_once(3 * SEC + t * 10_000_000);
    }
    assert_eq!(ws[0].fragments_held(), 0);
    assert_eq!(snapshot(&ws[0]).drop_count(DropReason::FragTimeout), held as u64);
    // Forwarding goes on: a whole datagram, fragmented, still goes through.
    let (_, back) = send_in_order(&mut ws, 0, FRONT, &client_fragments(43002, 7), &[0, 1, 2]);
    assert_eq!(back.len(), 3);
    assert_accounting_all(&ws);
}

#[test]
fn nat66_over_the_egress_mtu_gets_packet_too_big_both_ways() {
    let shared = services(1, ForwardMode::Nat);
    let opts = LbOpts { port_mtu: vec![1400, 1400], ..LbOpts::default() };
    let mut ws = workers6_with(&shared, 1, &opts);
    let client = (a(CLIENT6), 44000);
    // A small datagram opens the connection; a 1,450-byte one does not fit the back port.
    let small =
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &ipv6(a(CLIENT6), a(VIP6), 17, 64, &udp(client, (a(VIP6), 53), b"hi")));
    assert_eq!(send_to(&mut ws, 0, FRONT, &small, SEC).1.len(), 1);
    let big = ipv6(a(CLIENT6), a(VIP6), 17, 64, &udp(client, (a(VIP6), 53), &[7u8; 1402]));
    assert_eq!(big.len(), 1450);
    let (front, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &big), SEC);
    assert!(back.is_empty());
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0x78]; // MTU 1400
    msg.extend_from_slice(&big[..1232]);
    assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(a(VIP6), a(CLIENT6), 64, msg))]);
    // The server's 1,450-byte reply does not fit the front port: packet too big to the
    // server, from the VIP.
    let reply = ipv6(a(RS6), a(CLIENT6), 17, 64, &udp((a(RS6), 5353), client, &[9u8; 1402]));
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC, ETH_IPV6, &reply), SEC);
    assert!(front.is_empty());
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0x78];
    msg.extend_from_slice(&reply[..1232]);
    assert_eq!(back, vec![eth(RS6_MAC, BACK_MAC, ETH_IPV6, &icmp6(a(VIP6), a(RS6), 64, msg))]);
    let s = snapshot(&ws[0]);
    assert_eq!((s.drop_count(DropReason::Ip6TooBig), s.icmp6_errors_sent), (2, 2));
    assert_accounting_all(&ws);
}

#[test]
fn icmp6_errors_are_rate_limited_per_destination() {
    let shared = services(1, ForwardMode::Nat);
    let mut ws = workers6(&shared, 1);
    let mut errors = 0;
    for cport in 45000u16..45010 {
        let p = ipv6(a(CLIENT6), a(VIP6), 17, 1, &udp((a(CLIENT6), cport), (a(VIP6), 53), b"ttl"));
        let (front, _) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &p), SEC);
        errors += front.len();
    }
    let s = snapshot(&ws[0]);
    // Linux's burst of 6 per destination, then one a second.
    assert_eq!((errors, s.icmp6_errors_sent, s.icmp6_errors_limited), (6, 6, 4));
    assert_eq!(s.drop_count(DropReason::Ip6HopLimit), 10);
    assert_accounting_all(&ws);
}

/// The local port of the first fragment a Full-NAT worker sent (the UDP source port
/// after the fixed header and the fragment header).
fn lport_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[14 + 48], frame[14 + 49]])
}

#[test]
fn fullnat66_rewrites_both_ends_in_any_order_and_replies_come_back() {
    let shared = services(1, ForwardMode::FullNat);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 40000);
    let mut lport = None;
    for (n, order) in ORDERS.iter().enumerate() {
        let ident = IDENT + n as u32;
        let (front, back) = send_in_order(&mut ws, 0, FRONT, &client_fragments(40000, ident), order);
        assert!(front.is_empty());
        let l = *lport.get_or_insert_with(|| lport_of(&back[0]));
        // The translated datagram, built whole (both ends) and cut the same way.
        let out = udp((a(LOCAL6), l), (a(RS6), 5353), &payload());
        let want = frames(&cut(a(LOCAL6), a(RS6), 17, 63, &out, ident), RS6_MAC, BACK_MAC);
        assert_eq!(back, in_sent_order(&want, order), "inbound {order:?}");
    }
    let lport = lport.unwrap();
    assert_eq!(lport_owner(lport, 1), 0);
    // The server's reply to the local address, fragmented, goes back from the VIP to the
    // client.
    let data = &payload()[..2600];
    for (n, order) in ORDERS.iter().enumerate() {
        let ident = 0x7777_0000 + n as u32;
        let reply = udp((a(RS6), 5353), (a(LOCAL6), lport), data);
        let input = frames(&cut(a(RS6), a(LOCAL6), 17, 64, &reply, ident), BACK_MAC, RS6_MAC);
        let (front, back) = send_in_order(&mut ws, 0, BACK, &input, order);
        assert!(back.is_empty());
        let out = udp((a(VIP6), 53), client, data);
        let want = frames(&cut(a(VIP6), a(CLIENT6), 17, 63, &out, ident), CLIENT_MAC, FRONT_MAC);
        assert_eq!(front, in_sent_order(&want, order), "reply {order:?}");
    }
    assert!(drops_of(&ws[0]).is_empty(), "{:?}", drops_of(&ws[0]));
    assert_eq!(ws[0].lb().unwrap().conns6().len(), 1);
    let s = snapshot(&ws[0]);
    assert_eq!((s.frag6_forwarded, s.toa_skipped), (18, 0), "UDP never asks for a TOA");
    assert_accounting_all(&ws);
}

#[test]
fn fullnat66_a_fragmented_tcp_segment_goes_without_the_toa() {
    let shared = services(1, ForwardMode::FullNat);
    let mut ws = workers6(&shared, 1);
    let client = (a(CLIENT6), 47000);
    // The SYN, whole, opens the connection (and carries the TOA).
    let syn = ipv6(a(CLIENT6), a(VIP6), 6, 64, &tcp(client, (a(VIP6), 53), 0x02, &[]));
    let (_, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &syn), SEC);
    assert_eq!(back.len(), 1);
    let lport = u16::from_be_bytes([back[0][14 + 40], back[0][14 + 41]]);
    assert_eq!(back[0][14 + 40 + 12] >> 4, 10, "the SYN carries the 20-byte TOA");
    // The handshake's last ACK, with 3,000 bytes of data, fragmented: no TOA (it would
    // move the later fragments' bytes), counted, and the segment translated intact.
    let seg = tcp(client, (a(VIP6), 53), 0x10, &payload());
    let input = frames(&cut(a(CLIENT6), a(VIP6), 6, 64, &seg, 9), FRONT_MAC, CLIENT_MAC);
    let (_, back) = send_in_order(&mut ws, 0, FRONT, &input, &[1, 0, 2]);
    let out = tcp((a(LOCAL6), lport), (a(RS6), 5353), 0x10, &payload());
    let want = frames(&cut(a(LOCAL6), a(RS6), 6, 63, &out, 9), RS6_MAC, BACK_MAC);
    assert_eq!(back, in_sent_order(&want, &[1, 0, 2]));
    let s = snapshot(&ws[0]);
    assert_eq!((s.toa_skipped, s.frag6_forwarded), (1, 3));
    assert!(drops_of(&ws[0]).is_empty(), "{:?}", drops_of(&ws[0]));
    assert_accounting_all(&ws);
}

#[test]
fn tunnel_encapsulates_every_fragment_whole_in_any_order() {
    let shared = services(1, ForwardMode::Tunnel);
    let mut ws = workers6(&shared, 1);
    for (n, order) in ORDERS.iter().enumerate() {
        let input = client_fragments(40000, IDENT + n as u32);
        let (front, back) = send_in_order(&mut ws, 0, FRONT, &input, order);
        assert!(front.is_empty());
        // Each fragment as it came, hop limit − 1, inside an outer header to the server.
        let want: Vec<_> = input.iter().map(|f| tunnelled(&ip_with_hop_limit(f, 63))).collect();
        assert_eq!(back, in_sent_order(&want, order), "{order:?}");
    }
    assert!(drops_of(&ws[0]).is_empty(), "{:?}", drops_of(&ws[0]));
    assert_eq!(ws[0].lb().unwrap().conns6().len(), 1);
    assert_eq!(snapshot(&ws[0]).frag6_forwarded, 9);
    assert_accounting_all(&ws);
}

#[test]
fn a_fragment_too_big_for_the_tunnel_gets_packet_too_big_if_first() {
    let shared = services(1, ForwardMode::Tunnel);
    let mut ws = workers6(&shared, 1);
    // A client on a 1,500-byte path: fragments of 1,488 bytes (1,440 of data), the last
    // of 176. With the outer header the first two pass the back port's 1,500.
    let l4 = udp((a(CLIENT6), 48000), (a(VIP6), 53), &payload());
    let ips = cut_by(a(CLIENT6), a(VIP6), 17, 64, &l4, 11, 1440, &[]);
    let input = frames(&ips, FRONT_MAC, CLIENT_MAC);
    assert_eq!(ips.iter().map(Vec::len).collect::<Vec<_>>(), vec![1488, 1488, 176]);
    let (front, back) = send_to(&mut ws, 0, FRONT, &input[0], SEC);
    assert!(back.is_empty());
    // Packet too big from the VIP, the largest inner packet that fits (1,460), quoting
    // what fits in 1,280 bytes of the fragment as it came.
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0xb4];
    msg.extend_from_slice(&ips[0][..1232]);
    assert_eq!(front, vec![eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(a(VIP6), a(CLIENT6), 64, msg))]);
    // A later fragment too big: dropped without an error; the small last one goes.
    let (front, back) = send_to(&mut ws, 0, FRONT, &input[1], SEC);
    assert!(front.is_empty() && back.is_empty(), "no error about a later fragment");
    let (front, back) = send_to(&mut ws, 0, FRONT, &input[2], SEC);
    assert!(front.is_empty());
    assert_eq!(back, vec![tunnelled(&ip_with_hop_limit(&input[2], 63))]);
    let s = snapshot(&ws[0]);
    assert_eq!((s.drop_count(DropReason::TunnelTooBig), s.icmp6_errors_sent), (2, 1));
    assert_accounting_all(&ws);
}

#[test]
fn two_workers_fullnat66_and_tunnel_trains_reach_the_owner_and_replies_the_local_ports() {
    for mode in [ForwardMode::FullNat, ForwardMode::Tunnel] {
        let shared = services(2, mode);
        let mut ws = workers6(&shared, 2);
        let mut cross = 0;
        for cport in 46000u16..46012 {
            let owner = client_owner6(a(CLIENT6), cport, 2);
            let ident = u32::from(cport) << 8;
            cross += usize::from(fragment_owner6(a(CLIENT6), a(VIP6), ident, 17, 2) != owner);
            // Fragments of one datagram enter different workers, last first.
            let input = client_fragments(cport, ident);
            let mut back = Vec::new();
            for (i, at) in [(2, 1), (1, 0), (0, 1)] {
                back.extend(send_to(&mut ws, at, FRONT, &input[i], SEC).1);
            }
            let want = if mode == ForwardMode::Tunnel {
                input.iter().map(|f| tunnelled(&ip_with_hop_limit(f, 63))).collect::<Vec<_>>()
            } else {
                let lport = lport_of(&back[0]);
                assert_eq!(lport_owner(lport, 2), owner, "the client's owner hands out its own local ports");
                let out = udp((a(LOCAL6), lport), (a(RS6), 5353), &payload());
                let want = frames(&cut(a(LOCAL6), a(RS6), 17, 63, &out, ident), RS6_MAC, BACK_MAC);
                // The reply enters the other worker than the local port's, in pieces.
                let data = &payload()[..2600];
                let reply = udp((a(RS6), 5353), (a(LOCAL6), lport), data);
                let rin = frames(&cut(a(RS6), a(LOCAL6), 17, 64, &reply, ident + 1), BACK_MAC, RS6_MAC);
                let mut front = Vec::new();
                for (i, at) in [(1, 0), (0, 1), (2, 0)] {
                    front.extend(send_to(&mut ws, at, BACK, &rin[i], SEC).0);
                }
                let out = udp((a(VIP6), 53), (a(CLIENT6), cport), data);
                let rwant = frames(&cut(a(VIP6), a(CLIENT6), 17, 63, &out, ident + 1), CLIENT_MAC, FRONT_MAC);
                assert_eq!(front, in_sent_order(&rwant, &[1, 0, 2]), "reply of {cport}");
                want
            };
            assert_eq!(back, in_sent_order(&want, &[2, 1, 0]), "{mode:?} flow {cport}");
        }
        assert!(cross > 0, "{mode:?}: some trains' fragment owner is not the flow's");
        for w in &ws {
            assert!(drops_of(w).is_empty(), "{mode:?} {:?}", drops_of(w));
            assert_eq!(w.fragments_held(), 0);
        }
        assert_eq!(ws.iter().map(|w| w.lb().unwrap().conns6().len()).sum::<usize>(), 12);
        assert!(ws.iter().map(|w| snapshot(w).redirected_out).sum::<u64>() > 0);
        assert_accounting_all(&ws);
    }
}

#[test]
fn hop_by_hop_and_destination_options_before_the_fragment_header_in_every_mode() {
    for mode in [ForwardMode::Dr, ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Tunnel] {
        let shared = services(1, mode);
        let mut ws = workers6(&shared, 1);
        let l4 = udp((a(CLIENT6), 49000), (a(VIP6), 53), &payload());
        let ips = cut_by(a(CLIENT6), a(VIP6), 17, 64, &l4, 12, CUT, &HBH_DSTOPTS);
        let input = frames(&ips, FRONT_MAC, CLIENT_MAC);
        let order = [2, 0, 1];
        let (front, back) = send_in_order(&mut ws, 0, FRONT, &input, &order);
        assert!(front.is_empty(), "{mode:?}");
        let want: Vec<_> = match mode {
            ForwardMode::Dr => input.iter().map(|f| eth(RS6_MAC, BACK_MAC, ETH_IPV6, &f[14..])).collect(),
            ForwardMode::Tunnel => input.iter().map(|f| tunnelled(&ip_with_hop_limit(f, 63))).collect(),
            ForwardMode::Nat => {
                let out = udp((a(CLIENT6), 49000), (a(RS6), 5353), &payload());
                frames(&cut_by(a(CLIENT6), a(RS6), 17, 63, &out, 12, CUT, &HBH_DSTOPTS), RS6_MAC, BACK_MAC)
            }
            ForwardMode::FullNat => {
                let lport = u16::from_be_bytes([back[0][14 + 64], back[0][14 + 65]]);
                let out = udp((a(LOCAL6), lport), (a(RS6), 5353), &payload());
                frames(&cut_by(a(LOCAL6), a(RS6), 17, 63, &out, 12, CUT, &HBH_DSTOPTS), RS6_MAC, BACK_MAC)
            }
        };
        assert_eq!(back, in_sent_order(&want, &order), "{mode:?}");
        assert!(drops_of(&ws[0]).is_empty(), "{mode:?} {:?}", drops_of(&ws[0]));
        assert_eq!(snapshot(&ws[0]).frag6_forwarded, 3, "{mode:?}");
        assert_accounting_all(&ws);
    }
}

#[test]
fn fullnat66_reply_fragments_with_hop_limit_1_get_time_exceeded_if_first() {
    let shared = services(1, ForwardMode::FullNat);
    let mut ws = workers6(&shared, 1);
    let (_, back) = send_in_order(&mut ws, 0, FRONT, &client_fragments(40000, IDENT), &[0, 1, 2]);
    let lport = lport_of(&back[0]);
    let reply = udp((a(RS6), 5353), (a(LOCAL6), lport), &payload()[..2600]);
    let input = frames(&cut(a(RS6), a(LOCAL6), 17, 1, &reply, 0x7777), BACK_MAC, RS6_MAC);
    // The first: time exceeded to the server, from the VIP, quoting what fits in 1,280
    // bytes; a later one: dropped without an error.
    let (front, back) = send_to(&mut ws, 0, BACK, &input[0], SEC);
    assert!(front.is_empty());
    let mut msg = vec![3, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&input[0][14..14 + 1232]);
    assert_eq!(back, vec![eth(RS6_MAC, BACK_MAC, ETH_IPV6, &icmp6(a(VIP6), a(RS6), 64, msg))]);
    let (front, back) = send_to(&mut ws, 0, BACK, &input[1], SEC);
    assert!(front.is_empty() && back.is_empty(), "no error about a later fragment");
    let s = snapshot(&ws[0]);
    assert_eq!((s.drop_count(DropReason::Ip6HopLimit), s.icmp6_errors_sent), (2, 1));
    assert_accounting_all(&ws);
}

/// Destination options (next header UDP, PadN) and the UDP datagram `l4` after them: the
/// fragmentable part of a datagram with final destination options.
fn with_dstopts(l4: &[u8]) -> Vec<u8> {
    let mut p = vec![17, 0, 1, 4, 0, 0, 0, 0];
    p.extend_from_slice(l4);
    p
}

#[test]
fn destination_options_after_the_fragment_header_follow_the_train() {
    for mode in [ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Tunnel] {
        let shared = services(1, mode);
        let mut ws = workers6(&shared, 1);
        let client = (a(CLIENT6), 49500);
        let part = with_dstopts(&udp(client, (a(VIP6), 53), &payload()));
        let input = frames(&cut(a(CLIENT6), a(VIP6), 60, 64, &part, 21), FRONT_MAC, CLIENT_MAC);
        let order = [1, 2, 0];
        let (_, back) = send_in_order(&mut ws, 0, FRONT, &input, &order);
        let want: Vec<_> = match mode {
            ForwardMode::Nat => {
                let out = with_dstopts(&udp(client, (a(RS6), 5353), &payload()));
                frames(&cut(a(CLIENT6), a(RS6), 60, 63, &out, 21), RS6_MAC, BACK_MAC)
            }
            ForwardMode::FullNat => {
                let lport = u16::from_be_bytes([back[0][14 + 56], back[0][14 + 57]]);
                let out = with_dstopts(&udp((a(LOCAL6), lport), (a(RS6), 5353), &payload()));
                frames(&cut(a(LOCAL6), a(RS6), 60, 63, &out, 21), RS6_MAC, BACK_MAC)
            }
            _ => input.iter().map(|f| tunnelled(&ip_with_hop_limit(f, 63))).collect(),
        };
        assert_eq!(back, in_sent_order(&want, &order), "{mode:?}");
        assert!(drops_of(&ws[0]).is_empty(), "{mode:?} {:?}", drops_of(&ws[0]));
        assert_eq!(snapshot(&ws[0]).frag6_forwarded, 3, "{mode:?}");
        // A first fragment with ICMPv6 after the options (here from the server to the
        // client, which the L4 path sees as a possible reply) is not followed.
        let mut p = frag_header(60, 0, true, 22).to_vec();
        p.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0, 0, 1, 0, 1]);
        let f = eth(BACK_MAC, RS6_MAC, ETH_IPV6, &ipv6(a(RS6), a(CLIENT6), 44, 64, &p));
        let (front, back) = send_to(&mut ws, 0, BACK, &f, SEC);
        assert!(front.is_empty() && back.is_empty());
        assert_eq!(snapshot(&ws[0]).drop_count(DropReason::Ip6Fragment), 1, "{mode:?} {:?}", drops_of(&ws[0]));
        assert_accounting_all(&ws);
    }
}
