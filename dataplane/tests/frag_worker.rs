//! IPv4 fragments of TCP/UDP flows through whole workers on the in-memory driver: a UDP
//! datagram cut in 3 fragments, in order and last-first, through every forwarding mode,
//! both directions for NAT and Full-NAT; IPIP outer fragmentation; overlapping and
//! never-completed trains; two workers with fragments landing on the non-owner.
//!
//! Expected frames are built independently: the translated datagram is built whole with
//! `common::l4::Seg` (checksum computed in full over the new pseudo-header and the whole
//! payload) and cut at the same offsets; every output frame is compared byte for byte,
//! and its IPv4 header checksum recomputed. Each scenario ends with the counting
//! invariant (fragments held included).

mod common;

use common::l4::*;
use common::*;
use rvs_dataplane::conn::{client_owner, fragment_owner};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind};

use ForwardMode::{Dr, FullNat, Nat, Tunnel};

const CPORT: u16 = 40000;
const IDENT: u16 = 0x5151;
/// Data bytes of each fragment but the last (a multiple of 8; a 1500-byte MTU's 1480).
const CUT: usize = 1480;

/// A UDP service on port 53 with one real server (on port 5353, so ports change).
fn udp_service(workers: usize, mode: ForwardMode) -> rvs_dataplane::service::SharedServices {
    publish(vec![service(workers, L4Proto::Udp, 53, SchedulerKind::Rr, &[rs(RS1, 5353, 1, mode)], None)])
}

/// 3200 bytes of data: fragments of 1480, 1480 and 248 bytes of UDP (8 + 3200 = 3208).
fn payload() -> Vec<u8> {
    (0..3200u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// The IPv4 fragments of `seg`'s datagram (DF clear, identification `ident`), cut every
/// [`CUT`] bytes of its L4 bytes; header checksums in full.
fn cut(seg: &Seg, ident: u16) -> Vec<Vec<u8>> {
    let l4 = seg.l4();
    let n = l4.len().div_ceil(CUT);
    (0..n)
        .map(|i| {
            let part = &l4[i * CUT..((i + 1) * CUT).min(l4.len())];
            let more = if i + 1 < n { 0x2000 } else { 0 };
            ipv4(
                Ip { ttl: seg.ttl, ident, frag: more | (i * CUT / 8) as u16, ..Ip::new(seg.src, seg.dst, seg.proto) },
                part,
            )
        })
        .collect()
}

/// The frames of `ips` from `src_mac` to `dst_mac`.
fn frames(ips: &[Vec<u8>], dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<Vec<u8>> {
    ips.iter().map(|ip| pad60(eth(dst_mac, src_mac, ETH_IPV4, ip))).collect()
}

/// Each frame's IPv4 header checksum, recomputed in full, is right.
fn assert_header_checksums(frames: &[Vec<u8>]) {
    for f in frames {
        let ihl = usize::from(f[14] & 0x0f) * 4;
        assert_eq!(csum(&f[14..14 + ihl]), 0, "IPv4 header checksum");
    }
}

/// The client's datagram to the VIP and its fragments as sent to rvs.
fn client_datagram() -> (Seg, Vec<Vec<u8>>) {
    let seg = Seg::udp(CLIENT_IP, CPORT, VIP, 53, &payload()).df(false);
    let f = frames(&cut(&seg, IDENT), FRONT_MAC, CLIENT_MAC);
    (seg, f)
}

/// Injects `frames` in the order of `order` on `port`, one poll each.
fn send_in_order(
    ws: &mut [MemWorker],
    at: usize,
    port: rvs_dataplane::types::PortId,
    frames: &[Vec<u8>],
    order: &[usize],
) -> Sent {
    let mut all: Sent = (Vec::new(), Vec::new());
    for &i in order {
        let (f, b) = send_to(ws, at, port, &frames[i], SEC);
        all.0.extend(f);
        all.1.extend(b);
    }
    all
}

/// The inbound datagram through `mode` on one worker, in order and last-first: the
/// fragments the server gets, byte for byte; returns the worker (one connection made).
fn inbound_case(mode: ForwardMode, expected: impl Fn(&Sent) -> Vec<Vec<u8>>) -> Vec<MemWorker> {
    let shared = udp_service(1, mode);
    let mut ws = vec![lb_worker(&shared)];
    let (_, input) = client_datagram();
    for order in [[0, 1, 2], [2, 1, 0]] {
        let sent = send_in_order(&mut ws, 0, FRONT, &input, &order);
        assert!(sent.0.is_empty(), "{mode:?}: nothing back to the client");
        let want = expected(&sent);
        // The first fragment goes out first; the ones it released follow in arrival order.
        let want_order: Vec<Vec<u8>> =
            if order == [0, 1, 2] { want.clone() } else { vec![want[0].clone(), want[2].clone(), want[1].clone()] };
        assert_eq!(sent.1.len(), want_order.len(), "{mode:?} {order:?}");
        for (i, (got, want)) in sent.1.iter().zip(&want_order).enumerate() {
            assert_eq!(got, want, "{mode:?} {order:?}: fragment {i}");
        }
        assert_header_checksums(&sent.1);
        assert_eq!(ws[0].fragments_held(), 0);
    }
    assert!(drops_of(&ws[0]).is_empty(), "{mode:?}: {:?}", drops_of(&ws[0]));
    assert_eq!(ws[0].lb().unwrap().conns().len(), 1, "one connection for both datagrams");
    assert_accounting_all(&ws);
    ws
}

#[test]
fn dr_forwards_every_fragment_as_it_is() {
    let (seg, _) = client_datagram();
    inbound_case(Dr, |_| frames(&cut(&seg.clone().ttl(60), IDENT), RS1_MAC, BACK_MAC));
}

#[test]
fn nat_rewrites_the_first_fragment_like_a_packet_and_the_others_addresses_only() {
    let (seg, _) = client_datagram();
    let out = seg.clone().addrs((CLIENT_IP, CPORT), (RS1, 5353)).ttl(60);
    let mut ws = inbound_case(Nat, |_| frames(&cut(&out, IDENT), RS1_MAC, BACK_MAC));
    // The server's reply, fragmented too, goes back from the VIP.
    let reply = Seg::udp(RS1, 5353, CLIENT_IP, CPORT, &payload()[..3000]).df(false);
    let input = frames(&cut(&reply, 0x7777), BACK_MAC, RS1_MAC);
    for order in [[0, 1, 2], [2, 0, 1]] {
        let sent = send_in_order(&mut ws, 0, BACK, &input, &order);
        let back = reply.clone().addrs((VIP, 53), (CLIENT_IP, CPORT)).ttl(60);
        let want = frames(&cut(&back, 0x7777), CLIENT_MAC, FRONT_MAC);
        let want: Vec<_> =
            if order == [0, 1, 2] { want } else { vec![want[0].clone(), want[2].clone(), want[1].clone()] };
        // Last first: held; then the first releases it, and goes first; then the middle.
        assert_eq!(sent.0, want, "NAT reply {order:?}");
    }
    assert!(drops_of(&ws[0]).is_empty());
    assert_accounting_all(&ws);
}

#[test]
fn full_nat_translates_both_directions_of_fragmented_datagrams() {
    let (seg, _) = client_datagram();
    let lport = std::cell::Cell::new(0u16);
    let mut ws = inbound_case(FullNat, |sent| {
        // The local port is the engine's choice: read it from the first fragment out (its
        // bytes, as its UDP checksum covers the whole datagram).
        let first = &sent.1[0];
        assert_eq!(first[26..30], LOCAL_IP.octets());
        let port = u16::from_be_bytes([first[34], first[35]]);
        lport.set(port);
        let out = seg.clone().addrs((LOCAL_IP, port), (RS1, 5353)).ttl(60);
        frames(&cut(&out, IDENT), RS1_MAC, BACK_MAC)
    });
    let reply = Seg::udp(RS1, 5353, LOCAL_IP, lport.get(), &payload()[..3000]).df(false);
    let input = frames(&cut(&reply, 0x7778), BACK_MAC, RS1_MAC);
    let sent = send_in_order(&mut ws, 0, BACK, &input, &[0, 1, 2]);
    let back = reply.clone().addrs((VIP, 53), (CLIENT_IP, CPORT)).ttl(60);
    assert_eq!(sent.0, frames(&cut(&back, 0x7778), CLIENT_MAC, FRONT_MAC));
    assert!(drops_of(&ws[0]).is_empty());
    assert_accounting_all(&ws);
}

/// An outer datagram's identification, first header and pieces (offset, data).
type OuterParts = (u16, Vec<u8>, Vec<(usize, Vec<u8>)>);

/// The outer packets of IPIP output, reassembled by identification: (outer header of the
/// first piece, inner packet), each piece within `mtu` with a valid header checksum.
fn reassemble_outer(out: &[Vec<u8>], mtu: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut by_ident: Vec<OuterParts> = Vec::new();
    for f in out {
        assert_eq!(&f[..12], &[RS1_MAC, BACK_MAC].concat()[..]);
        let ip = &f[14..];
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert!(total <= mtu, "outer piece of {total} bytes over the MTU");
        assert_eq!(csum(&ip[..20]), 0, "outer header checksum");
        assert_eq!((ip[9], ip[8], &ip[12..16], &ip[16..20]), (4, 64, &BACK_IP.octets()[..], &RS1.octets()[..]));
        assert_eq!(ip[6] & 0x40, 0, "outer DF clear");
        let ident = u16::from_be_bytes([ip[4], ip[5]]);
        let off = usize::from(u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff) * 8;
        let data = ip[20..total].to_vec();
        match by_ident.iter_mut().find(|e| e.0 == ident) {
            Some(e) => e.2.push((off, data)),
            None => by_ident.push((ident, ip[..20].to_vec(), vec![(off, data)])),
        }
    }
    by_ident
        .into_iter()
        .map(|(_, head, mut parts)| {
            parts.sort();
            let mut inner = Vec::new();
            for (off, d) in parts {
                assert_eq!(off, inner.len(), "outer pieces are contiguous");
                inner.extend(d);
            }
            (head, inner)
        })
        .collect()
}

#[test]
fn ipip_encapsulates_each_fragment_and_cuts_outer_packets_over_the_mtu() {
    let (seg, input) = client_datagram();
    let shared = udp_service(1, Tunnel);
    let mut ws = vec![lb_worker(&shared)];
    for order in [[0, 1, 2], [2, 1, 0]] {
        let sent = send_in_order(&mut ws, 0, FRONT, &input, &order);
        let inner = cut(&seg.clone().ttl(60), IDENT);
        let outers = reassemble_outer(&sent.1, 1500);
        // The two 1500-byte inner fragments each became two outer pieces (1500 + 40), the
        // 268-byte last one a single outer packet.
        assert_eq!(sent.1.len(), 5, "{order:?}");
        let mut got: Vec<Vec<u8>> = outers.iter().map(|o| o.1.clone()).collect();
        got.sort();
        let mut want = inner.clone();
        want.sort();
        assert_eq!(got, want, "{order:?}: every inner fragment delivered whole, once");
        let idents: std::collections::HashSet<u16> =
            outers.iter().map(|o| u16::from_be_bytes([o.0[4], o.0[5]])).collect();
        assert_eq!(idents.len(), 3, "each outer datagram its own identification");
    }
    let s = snapshot(&ws[0]);
    assert_eq!((s.tunnel_fragments, s.local_originated), (4, 4));
    assert!(drops_of(&ws[0]).is_empty());
    assert_accounting_all(&ws);
}

#[test]
fn ipip_outer_cut_without_buffers_is_no_mbuf() {
    let (_, input) = client_datagram();
    let shared = udp_service(1, Tunnel);
    let mut ws = vec![lb_worker(&shared)];
    // No buffer for the second piece: the first fragment is dropped whole.
    let limit = ws[0].pool_mut().limit_handle();
    limit.set(Some(0));
    let sent = send_in_order(&mut ws, 0, FRONT, &input, &[0, 1, 2]);
    assert_eq!(sent.1.len(), 1, "only the last fragment fits the MTU encapsulated");
    assert_eq!(drops_of(&ws[0]), vec![(DropReason::NoMbuf.name(), 2)]);
    assert_accounting_all(&ws);
}

#[test]
fn overlapping_and_never_completed_trains_are_dropped_and_counted() {
    let shared = udp_service(1, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let (seg, _) = client_datagram();
    let ips = cut(&seg, 0x0101);
    // A later fragment, then one overlapping it (same datagram), then the first.
    let overlap = {
        let mut p = ips[1].clone();
        p[6..8].copy_from_slice(&(0x2000u16 | ((CUT as u16 - 8) / 8)).to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = csum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    };
    for ip in [&ips[1], &overlap, &ips[0], &ips[2]] {
        let sent = send_to(&mut ws, 0, FRONT, &pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, ip)), SEC);
        assert!(sent.0.is_empty() && sent.1.is_empty(), "nothing of an overlapped train goes out");
    }
    assert_eq!(drops_of(&ws[0]), vec![(DropReason::FragOverlap.name(), 4)]);
    assert_eq!(ws[0].fragments_held(), 0);
    // A train whose first fragment never comes: held, then dropped by the timer sweep.
    let lone = cut(&seg, 0x0202);
    for ip in &lone[1..] {
        send_to(&mut ws, 0, FRONT, &pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, ip)), 2 * SEC);
    }
    assert_eq!((ws[0].fragments_held(), snapshot(&ws[0]).frag_held), (2, 2));
    assert_accounting_all(&ws);
    // The sweep looks at FRAG_SWEEP_SLOTS slots per timer run (every 100 ms).
    let runs = rvs_dataplane::worker::FRAG_TRAINS / rvs_dataplane::worker::FRAG_SWEEP_SLOTS;
    for i in 0..=runs as u64 {
        ws[0].poll_once(3 * SEC + (i + 1) * 100_000_000);
    }
    assert_eq!((ws[0].fragments_held(), snapshot(&ws[0]).frag_held), (0, 0));
    assert_eq!(drops_of(&ws[0]), vec![(DropReason::FragOverlap.name(), 4), (DropReason::FragTimeout.name(), 2)]);
    // A first fragment too short for its UDP header (RFC 1858), and a non-TCP/UDP fragment.
    let tiny = ipv4(Ip { ident: 0x0303, frag: 0x2000, ..Ip::new(CLIENT_IP, VIP, PROTO_UDP) }, &[0x9c, 0x40, 0, 53]);
    let icmp =
        ipv4(Ip { ident: 0x0304, frag: 0x2000, ..Ip::new(CLIENT_IP, VIP, PROTO_ICMP) }, &[8, 0, 0, 0, 0, 0, 0, 0]);
    for ip in [tiny, icmp] {
        send_to(&mut ws, 0, FRONT, &pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &ip)), 5 * SEC);
    }
    let drops = drops_of(&ws[0]);
    assert!(drops.contains(&(DropReason::FragInconsistent.name(), 1)), "{drops:?}");
    assert!(drops.contains(&(DropReason::IpFragment.name(), 1)), "{drops:?}");
    // Forwarding goes on: a whole datagram of the flow passes.
    let (_, input) = client_datagram();
    let sent = send_in_order(&mut ws, 0, FRONT, &input, &[0, 1, 2]);
    assert_eq!(sent.1.len(), 3);
    assert_accounting_all(&ws);
}

#[test]
fn fragments_of_a_tcp_flow_without_a_connection_are_not_forwarded() {
    let shared = publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, Nat)], None)]);
    let mut ws = vec![lb_worker(&shared)];
    let seg = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).data(&payload()).df(false);
    let input = frames(&cut(&seg, 0x0909), FRONT_MAC, CLIENT_MAC);
    let sent = send_in_order(&mut ws, 0, FRONT, &input, &[0, 1, 2]);
    assert!(sent.1.is_empty());
    assert_eq!(drops_of(&ws[0]), vec![(DropReason::TcpNoConn.name(), 3)]);
    assert_accounting_all(&ws);
}

#[test]
fn tcp_fragments_of_an_established_nat_flow_follow_it() {
    let shared = publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 8080, 1, Nat)], None)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let sent = send_to(&mut ws, 0, FRONT, &syn.by_client(), SEC);
    assert_eq!(sent.1.len(), 1);
    let seg = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK | PSH).seq(0x1000_0001).ack(7).data(&payload()).df(false);
    let input = frames(&cut(&seg, 0x0a0a), FRONT_MAC, CLIENT_MAC);
    let sent = send_in_order(&mut ws, 0, FRONT, &input, &[1, 0, 2]);
    let out = seg.clone().addrs((CLIENT_IP, CPORT), (RS1, 8080)).ttl(60);
    let want = frames(&cut(&out, 0x0a0a), RS1_MAC, BACK_MAC);
    assert_eq!(sent.1, vec![want[0].clone(), want[1].clone(), want[2].clone()]);
    assert!(drops_of(&ws[0]).is_empty());
    assert_accounting_all(&ws);
}

#[test]
fn two_workers_gather_fragments_landing_on_the_non_owner() {
    // Find a client port whose flow the worker 1 owns, and send every fragment to worker 0
    // (as RSS would: a later fragment has no ports to hash), then spread them.
    let cport = (40000u16..).find(|&p| client_owner(CLIENT_IP, p, 2) == 1).unwrap();
    let seg = Seg::udp(CLIENT_IP, cport, VIP, 53, &payload()).df(false);
    let shared = udp_service(2, Nat);
    let mut ws = lb_workers(&shared, 2, &LbOpts::default());
    let out = seg.clone().addrs((CLIENT_IP, cport), (RS1, 5353)).ttl(60);
    // Trains gathered by each worker, landing on either.
    let gathered_by = |w: usize| (1u16..).find(|&id| fragment_owner(CLIENT_IP, VIP, id, PROTO_UDP, 2) == w).unwrap();
    let (on0, on1) = (gathered_by(0), gathered_by(1));
    for (n, (ident, at)) in
        [(on0, [0, 0, 0]), (on1, [0, 0, 0]), (on0, [1, 0, 1]), (on1, [0, 1, 1])].into_iter().enumerate()
    {
        let input = frames(&cut(&seg, ident), FRONT_MAC, CLIENT_MAC);
        let mut got = Vec::new();
        for i in [2, 0, 1] {
            let (f, b) = send_to(&mut ws, at[i], FRONT, &input[i], SEC);
            assert!(f.is_empty());
            got.extend(b);
        }
        let mut want = frames(&cut(&out, ident), RS1_MAC, BACK_MAC);
        want.sort();
        got.sort();
        assert_eq!(got, want, "train {n} (ident {ident:#x}) landing on {at:?}");
    }
    for w in &ws {
        assert!(drops_of(w).is_empty(), "worker {}: {:?}", w.index(), drops_of(w));
        assert_eq!(w.fragments_held(), 0);
    }
    assert!(snapshot(&ws[0]).redirected_out > 0 && snapshot(&ws[1]).redirected_out > 0, "both steps crossed the mesh");
    assert_eq!(ws[0].lb().unwrap().conns().len(), 0, "the flow is worker 1's");
    assert_eq!(ws[1].lb().unwrap().conns().len(), 1);
    assert_accounting_all(&ws);
}

#[test]
fn full_nat_sends_a_tcp_first_fragment_without_toa_and_keeps_it_pending() {
    let shared = publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, FullNat)], None)]);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN);
    let sent = send_to(&mut ws, 0, FRONT, &syn.by_client(), SEC);
    let out = seen(&sent.1[0]);
    assert!(out.tcp_option(254).is_some(), "the SYN carries the TOA");
    let lport = out.sport;
    // The first segment after the SYN, fragmented: no room for the TOA in a fragment.
    let seg = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK | PSH).seq(0x1000_0001).ack(7).data(&payload()).df(false);
    let input = frames(&cut(&seg, 0x0b0b), FRONT_MAC, CLIENT_MAC);
    let sent = send_in_order(&mut ws, 0, FRONT, &input, &[0, 1, 2]);
    let want = seg.clone().addrs((LOCAL_IP, lport), (RS1, 80)).ttl(60);
    assert_eq!(sent.1, frames(&cut(&want, 0x0b0b), RS1_MAC, BACK_MAC));
    assert_eq!(snapshot(&ws[0]).toa_skipped, 1);
    // The next whole segment carries it.
    let ack = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(0x1000_0001 + 3200).ack(7);
    let sent = send_to(&mut ws, 0, FRONT, &ack.by_client(), SEC);
    assert_eq!(seen(&sent.1[0]).tcp_option(254), Some(toa_option(CLIENT_IP, CPORT)));
    assert!(drops_of(&ws[0]).is_empty());
    assert_accounting_all(&ws);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever the order of a datagram's fragments and whichever of two workers each lands
    /// on, the server gets each fragment once, translated.
    #[test]
    fn any_order_on_any_worker_is_delivered_once(
        order in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just(vec![0usize, 1, 2])),
        at in proptest::collection::vec(0usize..2, 3),
        ident in proptest::prelude::any::<u16>(),
        cport in 40000u16..41000,
    ) {
        let seg = Seg::udp(CLIENT_IP, cport, VIP, 53, &payload()).df(false);
        let shared = udp_service(2, Nat);
        let mut ws = lb_workers(&shared, 2, &LbOpts::default());
        let input = frames(&cut(&seg, ident), FRONT_MAC, CLIENT_MAC);
        let mut got = Vec::new();
        for &i in &order {
            let (f, b) = send_to(&mut ws, at[i], FRONT, &input[i], SEC);
            proptest::prop_assert!(f.is_empty());
            got.extend(b);
        }
        let out = seg.clone().addrs((CLIENT_IP, cport), (RS1, 5353)).ttl(60);
        let mut want = frames(&cut(&out, ident), RS1_MAC, BACK_MAC);
        want.sort();
        got.sort();
        proptest::prop_assert_eq!(got, want);
        assert_accounting_all(&ws);
    }
}
