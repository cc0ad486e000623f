//! The SYN proxy end to end through a worker on the in-memory driver (see
//! `rvs_dataplane::synproxy`): the cookie SYN-ACK, the ACK that opens the flow and the
//! SYN it becomes, the server's SYN-ACK turned into the client's window update, the ACK
//! rvs sends a server that retransmits its SYN-ACK, sequence/timestamp/SACK/window
//! translation both ways, NAT and Full-NAT (with TOA), bad and expired cookies, client
//! retransmissions and server refusals during the server handshake, and `auto` mode
//! switching on and off with the half-open count, and a proxied connection synced to the
//! HA peer and translated there.
//!
//! Every output frame is compared byte for byte with one built independently
//! (`common::l4::Seg`, checksums computed in full) and its checksums recomputed
//! (`assert_checksums`); the cookie value itself comes from the codec, whose own tests
//! pin it to SipHash's published vector.

mod common;

use common::l4::*;
use common::*;
use rvs_dataplane::service::SharedServices;
use rvs_dataplane::sync::{sync_links, ConnRecord, SynProxyRecord, SyncEnd, SyncOptions, SyncRecord};
use rvs_dataplane::synproxy::cookie::{CookieSecret, CookieTuple};
use rvs_dataplane::synproxy::SynProxyPolicy;
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, SchedulerKind, TcpState};

use ForwardMode::{FullNat, Nat};

const CPORT: u16 = 40001;
const CISN: u32 = 0x1000_0000;
const SISN: u32 = 0x5000_0000;
/// 5 s after the clock's start: cookie minute 0, timestamp clock 5000 ms.
const T0: u64 = 5_000_000_000;
/// The cookie TSval for wscale 7 + SACK at clock 5000: (5000 & !63) | 0b010111 = 5015,
/// ahead of the clock, so one 64-step back.
const COOKIE_TS: u32 = 4951;
const SERVER_TS: u32 = 777_777;

fn secret() -> CookieSecret {
    CookieSecret::from_bytes([7; 32])
}

fn cookie(cport: u16, cisn: u32, minute: u32) -> u32 {
    let t = CookieTuple { client: CLIENT_IP, cport, vip: VIP, vport: 80 };
    secret().isn(&t, cisn, minute, 3)
}

fn proxied(policy: SynProxyPolicy, forward: ForwardMode) -> SharedServices {
    let mut s = service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, forward)], None);
    s.syn_proxy = policy;
    publish(vec![s])
}

fn with_window(mut s: Seg, w: u16) -> Seg {
    s.window = w;
    s
}

/// The frame of a segment rvs builds itself, to the client: not padded to 60 bytes (the
/// NIC pads on transmit).
fn own_to_client(s: &Seg) -> Vec<u8> {
    s.to_client()[..14 + s.ip().len()].to_vec()
}

/// A segment rvs builds itself: TTL 64, IP id 0, DF.
fn own(s: Seg) -> Seg {
    s.ttl(64).ident(0).df(true)
}

/// The client's SYN and the cookie SYN-ACK it must get; returns the cookie.
fn handshake_with_rvs(ws: &mut [MemWorker], cport: u16, now: u64) -> u32 {
    handshake_advertising(ws, cport, now, 1460)
}

/// [`handshake_with_rvs`] where rvs advertises MSS `mss`.
fn handshake_advertising(ws: &mut [MemWorker], cport: u16, now: u64, mss: u16) -> u32 {
    let syn = Seg::tcp(CLIENT_IP, cport, VIP, 80, SYN).seq(CISN).options(&syn_opts(1460, 1000, 0, 7));
    let (front, back) = send_to(ws, 0, FRONT, &syn.by_client(), now);
    assert!(back.is_empty(), "no SYN to a server before the cookie is answered");
    let k = cookie(cport, CISN, 0);
    let want = own(with_window(
        Seg::tcp(VIP, 80, CLIENT_IP, cport, SYN | ACK).seq(k).ack(CISN + 1).options(&syn_opts(mss, COOKIE_TS, 1000, 7)),
        0,
    ));
    let got = only(front, "cookie SYN-ACK");
    assert_frame(&got, &want.to_client(), "cookie SYN-ACK");
    assert_checksums(&got);
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0, "a cookie creates no connection");
    k
}

/// The client's ACK of cookie `k`, as the client sends it (window 502, scaled by 7).
fn cookie_ack(cport: u16, k: u32) -> Seg {
    with_window(
        Seg::tcp(CLIENT_IP, cport, VIP, 80, ACK)
            .seq(CISN + 1)
            .ack(k.wrapping_add(1))
            .options(&ts_opts(1010, COOKIE_TS)),
        502,
    )
}

/// The SYN the server must get for the client's ACK, from `from`.
fn server_syn(from: (std::net::Ipv4Addr, u16), extra: &[u8]) -> Seg {
    let mut o = extra.to_vec();
    o.extend_from_slice(&syn_opts(1460, 1010, 0, 7));
    own(with_window(Seg::tcp(from.0, from.1, RS1, 80, SYN).seq(CISN).options(&o), 64256))
}

fn server_syn_ack(to: (std::net::Ipv4Addr, u16)) -> Seg {
    with_window(
        Seg::tcp(RS1, 80, to.0, to.1, SYN | ACK).seq(SISN).ack(CISN + 1).options(&syn_opts(1460, SERVER_TS, 1010, 9)),
        65160,
    )
}

/// The client's first data segment of proxied connection `k` (cookie) through `ws`: its
/// acknowledgement and TSecr must reach the server in the server's spaces.
fn client_data_is_translated(ws: &mut [MemWorker], k: u32, now: u64, what: &str) {
    let data = with_window(
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK)
            .seq(CISN + 1)
            .ack(k.wrapping_add(1))
            .options(&ts_opts(1020, COOKIE_TS))
            .data(b"GET"),
        502,
    );
    let (_, back) = send_to(ws, 0, FRONT, &data.by_client(), now);
    let want =
        data.clone().addrs((CLIENT_IP, CPORT), (RS1, 80)).ack(SISN + 1).options(&ts_opts(1020, SERVER_TS)).ttl(60);
    let got = only(back, what);
    assert_frame(&got, &want.to_server(RS1_MAC), what);
    assert_checksums(&got);
}

/// The server's first data segment of proxied connection `k` through `ws`: sequence and
/// TSval back into the client's view, window from the server's shift 9 into rvs's 7
/// (500 << 2).
fn server_data_is_translated(ws: &mut [MemWorker], k: u32, now: u64, what: &str) {
    let reply = with_window(
        Seg::tcp(RS1, 80, CLIENT_IP, CPORT, PSH | ACK)
            .seq(SISN + 1)
            .ack(CISN + 4)
            .options(&ts_opts(SERVER_TS + 23, 1020))
            .data(b"HTTP/1.0 200"),
        500,
    );
    let (front, _) = send_to(ws, 0, BACK, &reply.by_server(RS1_MAC), now);
    let want = with_window(
        reply
            .clone()
            .addrs((VIP, 80), (CLIENT_IP, CPORT))
            .seq(k.wrapping_add(1))
            .options(&ts_opts(COOKIE_TS + 23, 1020)),
        2000,
    )
    .ttl(60);
    let got = only(front, what);
    assert_frame(&got, &want.to_client(), what);
    assert_checksums(&got);
}

#[test]
fn nat_proxied_connection_golden_packets_both_ways() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let k = handshake_with_rvs(&mut ws, CPORT, T0);

    // The cookie ACK opens the connection and becomes the server's SYN (client address
    // kept: NAT), with the client's options recovered from cookie and timestamp.
    let (front, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    assert!(front.is_empty());
    let got = only(back, "SYN to the server");
    assert_frame(&got, &server_syn((CLIENT_IP, CPORT), &[]).to_server(RS1_MAC), "SYN to the server");
    assert_checksums(&got);

    // A retransmission of the client's ACK (or a probe) meanwhile: dropped, no second
    // connection.
    let (front, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 2);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 1);

    // The server's SYN-ACK opens the client's window: 65160 bytes in rvs's shift 7.
    let (front, back) = send_to(&mut ws, 0, BACK, &server_syn_ack((CLIENT_IP, CPORT)).by_server(RS1_MAC), T0 + 3);
    assert!(back.is_empty());
    let want = own(with_window(
        Seg::tcp(VIP, 80, CLIENT_IP, CPORT, ACK)
            .seq(k.wrapping_add(1))
            .ack(CISN + 1)
            .options(&ts_opts(COOKIE_TS, 1010)),
        510,
    ));
    let got = only(front, "window update");
    assert_frame(&got, &want.to_client(), "window update to the client");
    assert_checksums(&got);

    // Client data: its acknowledgement and TSecr move into the server's spaces, which
    // also completes the server's handshake.
    client_data_is_translated(&mut ws, k, T0 + 4, "client data");
    assert_eq!(
        ws[0].lb().expect("engine").conns().iter().map(|(_, c)| c.state).collect::<Vec<_>>(),
        [ConnState::Tcp(TcpState::Established)]
    );

    // Server data: sequence and TSval back into the client's view, window from the
    // server's shift 9 into rvs's 7 (500 << 2).
    server_data_is_translated(&mut ws, k, T0 + 5, "server data");

    // A client SACK block (an odd-aligned option list: one NOP before the timestamp)
    // moves into the server's sequence space.
    let edge = |x: u32| x.to_be_bytes();
    let sack_opts = |base: u32, tsecr: u32| {
        let mut o = vec![1];
        o.extend_from_slice(&ts(1030, tsecr));
        o.extend_from_slice(&[1, 5, 10]);
        o.extend_from_slice(&edge(base.wrapping_add(100)));
        o.extend_from_slice(&edge(base.wrapping_add(200)));
        o.extend_from_slice(&[0, 0]);
        o
    };
    let sack = with_window(
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK)
            .seq(CISN + 4)
            .ack(k.wrapping_add(13))
            .options(&sack_opts(k, COOKIE_TS + 23)),
        502,
    );
    let (_, back) = send_to(&mut ws, 0, FRONT, &sack.by_client(), T0 + 6);
    let want = sack
        .clone()
        .addrs((CLIENT_IP, CPORT), (RS1, 80))
        .ack(SISN + 13)
        .options(&sack_opts(SISN, SERVER_TS + 23))
        .ttl(60);
    let got = only(back, "client SACK");
    assert_frame(&got, &want.to_server(RS1_MAC), "SACK translated");
    assert_checksums(&got);

    // A retransmitted server SYN-ACK is answered with the ACK of its handshake, never
    // forwarded to the client.
    let (front, back) = send_to(&mut ws, 0, BACK, &server_syn_ack((CLIENT_IP, CPORT)).by_server(RS1_MAC), T0 + 7);
    assert!(front.is_empty());
    let want = own(with_window(
        Seg::tcp(CLIENT_IP, CPORT, RS1, 80, ACK).seq(CISN + 1).ack(SISN + 1).options(&ts_opts(1010, SERVER_TS)),
        65160,
    ));
    let got = only(back, "ACK to the server");
    assert_frame(&got, &want.to_server(RS1_MAC), "ACK completing the server's handshake");
    assert_checksums(&got);

    let s = snapshot(&ws[0]);
    assert_eq!(
        (s.syn_proxy_cookies_sent, s.syn_proxy_valid_acks, s.syn_proxy_handshakes, s.syn_proxy_server_refused),
        (1, 1, 1, 0)
    );
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_pending", 1)]);
    assert_accounting_all(&ws);
}

#[test]
fn fullnat_proxied_connection_carries_the_toa_on_syn_and_first_data() {
    let shared = proxied(SynProxyPolicy::ALWAYS, FullNat);
    let mut ws = vec![lb_worker(&shared)];
    // The advertised MSS leaves room for the TOA a full-size first segment may carry.
    let k = handshake_advertising(&mut ws, CPORT, T0, 1452);
    let (_, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    let got = only(back, "SYN to the server");
    let s = seen(&got);
    let local = (s.src, s.sport);
    assert!(s.src == LOCAL_IP || s.src == LOCAL_IP2, "from a local address: {s:?}");
    let toa = toa_option(CLIENT_IP, CPORT);
    assert_frame(&got, &server_syn(local, &toa).to_server(RS1_MAC), "SYN with TOA first");
    assert_checksums(&got);

    let (front, _) = send_to(&mut ws, 0, BACK, &server_syn_ack(local).by_server(RS1_MAC), T0 + 2);
    let got = only(front, "window update");
    assert_eq!(seen(&got).src, VIP);
    assert_checksums(&got);

    // The first client data segment completes the server's handshake: it carries the TOA.
    let data = with_window(
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK)
            .seq(CISN + 1)
            .ack(k.wrapping_add(1))
            .options(&ts_opts(1020, COOKIE_TS))
            .data(b"GET"),
        502,
    );
    let (_, back) = send_to(&mut ws, 0, FRONT, &data.by_client(), T0 + 3);
    let mut o = toa.clone();
    o.extend_from_slice(&ts_opts(1020, SERVER_TS));
    let want = data.clone().addrs(local, (RS1, 80)).ack(SISN + 1).options(&o).ttl(60);
    let got = only(back, "first data");
    assert_frame(&got, &want.to_server(RS1_MAC), "first data with TOA");
    assert_checksums(&got);
    // Later segments go without it.
    let more = data.clone().seq(CISN + 4).data(b"/");
    let (_, back) = send_to(&mut ws, 0, FRONT, &more.by_client(), T0 + 4);
    let want = more.clone().addrs(local, (RS1, 80)).ack(SISN + 1).options(&ts_opts(1020, SERVER_TS)).ttl(60);
    assert_frame(&only(back, "second data"), &want.to_server(RS1_MAC), "no TOA after the handshake");
    assert_accounting_all(&ws);
}

#[test]
fn bad_and_expired_cookies_are_dropped_and_counted() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let k = handshake_with_rvs(&mut ws, CPORT, T0);
    // Another client port, or a wrong client ISN, or a guessed acknowledgement.
    for (cport, seq, ack) in [(CPORT + 1, CISN + 1, k + 1), (CPORT, CISN + 0x1000, k + 1), (CPORT, CISN + 1, k + 2)] {
        let bad = Seg::tcp(CLIENT_IP, cport, VIP, 80, ACK).seq(seq).ack(ack);
        let (front, back) = send_to(&mut ws, 0, FRONT, &bad.by_client(), T0 + 1);
        assert!(front.is_empty() && back.is_empty(), "{cport} {seq:x} {ack:x}");
    }
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_bad_cookie", 3)]);
    // Three minutes later (another SYN keeps cookies in use) the first cookie expired.
    let later = T0 + 180_000_000_000;
    let syn = Seg::tcp(CLIENT_IP, CPORT + 7, VIP, 80, SYN).seq(CISN);
    send_to(&mut ws, 0, FRONT, &syn.by_client(), later);
    let (_, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), later + 1);
    assert!(back.is_empty());
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_bad_cookie", 4)]);
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0);
    assert_accounting_all(&ws);
}

#[test]
fn server_rst_during_the_handshake_resets_the_client_and_frees_the_entry() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let k = handshake_with_rvs(&mut ws, CPORT, T0);
    send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    let rst = Seg::tcp(RS1, 80, CLIENT_IP, CPORT, RST | ACK).seq(0).ack(CISN + 1);
    let (front, back) = send_to(&mut ws, 0, BACK, &rst.by_server(RS1_MAC), T0 + 2);
    assert!(back.is_empty());
    let want = own(with_window(Seg::tcp(VIP, 80, CLIENT_IP, CPORT, RST).seq(k.wrapping_add(1)), 0));
    let got = only(front, "RST to the client");
    assert_frame(&got, &own_to_client(&want), "RST to the client");
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0);
    assert_eq!(snapshot(&ws[0]).syn_proxy_server_refused, 1);
    assert_accounting_all(&ws);
}

#[test]
fn unanswered_server_syn_expires_with_the_half_open_timeout() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let k = handshake_with_rvs(&mut ws, CPORT, T0);
    send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 1);
    // Half-open timeout (5 s by default) plus a wheel tick: gone, no leak.
    poll_all(&mut ws, T0 + 6_000_000_000);
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0);
    // The client's next probe with the same cookie (still valid) opens a new attempt.
    let (_, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 7_000_000_000);
    assert_frame(&only(back, "new SYN"), &server_syn((CLIENT_IP, CPORT), &[]).to_server(RS1_MAC), "SYN again");
}

#[test]
fn client_without_timestamps_gets_neither_scaling_nor_sack() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).seq(CISN).options(&[2, 4, 0x05, 0x14, 1, 1, 4, 2, 1, 3, 3, 7]);
    let (front, _) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0);
    let t = CookieTuple { client: CLIENT_IP, cport: CPORT, vip: VIP, vport: 80 };
    // MSS 1300 is table entry 1.
    let k = secret().isn(&t, CISN, 0, 1);
    let want = own(with_window(
        Seg::tcp(VIP, 80, CLIENT_IP, CPORT, SYN | ACK).seq(k).ack(CISN + 1).options(&[2, 4, 0x05, 0xb4]),
        0,
    ));
    assert_frame(&only(front, "SYN-ACK"), &own_to_client(&want), "MSS only");
    let ack = with_window(Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(CISN + 1).ack(k.wrapping_add(1)), 29200);
    let (_, back) = send_to(&mut ws, 0, FRONT, &ack.by_client(), T0 + 1);
    let want = own(with_window(Seg::tcp(CLIENT_IP, CPORT, RS1, 80, SYN).seq(CISN).options(&[2, 4, 0x05, 0x14]), 29200));
    let want = want.to_server(RS1_MAC)[..58].to_vec();
    assert_frame(&only(back, "SYN"), &want, "SYN with the cookie's MSS only (unpadded)");
}

#[test]
fn auto_mode_switches_on_above_the_half_open_threshold_and_off_below() {
    let shared = proxied(SynProxyPolicy::auto(2), Nat);
    let mut ws = vec![lb_worker(&shared)];
    // Two SYNs below the threshold open connections directly (SYN_RECV: half-open).
    for p in [1, 2] {
        let syn = Seg::tcp(CLIENT_IP, 50000 + p, VIP, 80, SYN).seq(CISN);
        let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0);
        assert!(front.is_empty());
        assert_frame(
            &only(back, "direct SYN"),
            &syn.clone().addrs((CLIENT_IP, 50000 + p), (RS1, 80)).ttl(60).to_server(RS1_MAC),
            "direct",
        );
    }
    assert_eq!(ws[0].lb().expect("engine").conns().syn_recv(), 2);
    // At the threshold: the third SYN gets a cookie.
    let syn = Seg::tcp(CLIENT_IP, 50003, VIP, 80, SYN).seq(CISN);
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0);
    assert!(back.is_empty());
    assert!(seen(&only(front, "cookie")).flags.is_some_and(|f| f.syn() && f.ack()));
    // One handshake completes (server SYN-ACK, client ACK): below the threshold again.
    let sa = Seg::tcp(RS1, 80, CLIENT_IP, 50001, SYN | ACK).seq(SISN).ack(CISN + 1);
    send_to(&mut ws, 0, BACK, &sa.by_server(RS1_MAC), T0 + 1);
    let ack = Seg::tcp(CLIENT_IP, 50001, VIP, 80, ACK).seq(CISN + 1).ack(SISN + 1);
    send_to(&mut ws, 0, FRONT, &ack.by_client(), T0 + 2);
    assert_eq!(ws[0].lb().expect("engine").conns().syn_recv(), 1);
    let syn = Seg::tcp(CLIENT_IP, 50004, VIP, 80, SYN).seq(CISN);
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0 + 3);
    assert!(front.is_empty());
    assert_eq!(seen(&only(back, "direct again")).dst, RS1);
    assert_eq!(snapshot(&ws[0]).syn_proxy_cookies_sent, 1);
    assert_accounting_all(&ws);
}

#[test]
fn off_mode_keeps_ipvs_rules() {
    let shared = proxied(SynProxyPolicy::OFF, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let ack = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).seq(CISN + 1).ack(5);
    send_to(&mut ws, 0, FRONT, &ack.by_client(), T0);
    assert_eq!(drops_of(&ws[0]), [("tcp_no_conn", 1)]);
    let syn = Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN).seq(CISN);
    let (_, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0);
    assert_eq!(seen(&only(back, "direct")).dst, RS1);
}

#[test]
fn a_new_client_syn_on_a_proxied_tuple_starts_over() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let k = handshake_with_rvs(&mut ws, CPORT, T0);
    send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    send_to(&mut ws, 0, BACK, &server_syn_ack((CLIENT_IP, CPORT)).by_server(RS1_MAC), T0 + 2);
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 1);
    // The client reuses its port: the old entry goes, the SYN gets a fresh cookie.
    let k2 = handshake_with_rvs(&mut ws, CPORT, T0 + 3);
    assert_eq!(k2, k, "same tuple, ISN and minute: same cookie");
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0);
    assert_accounting_all(&ws);
}

/// ICMP errors about an established proxied connection: their quoted TCP header moves
/// into the receiver's numbering of the server's bytes as well (a stack ignores an error
/// whose quoted sequence number it never sent). A client-side "fragmentation needed"
/// about server data reaches the server quoting the server's own sequence number (whole
/// quote and RFC 792's minimum); a server's "port unreachable" about client data reaches
/// the client quoting the acknowledgement the client sent.
#[test]
fn icmp_errors_about_a_proxied_flow_quote_the_receivers_sequence_numbers() {
    let shared = proxied(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = vec![lb_worker(&shared)];
    let k = handshake_with_rvs(&mut ws, CPORT, T0);
    send_to(&mut ws, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    send_to(&mut ws, 0, BACK, &server_syn_ack((CLIENT_IP, CPORT)).by_server(RS1_MAC), T0 + 2);
    let data = with_window(
        Seg::tcp(CLIENT_IP, CPORT, VIP, 80, PSH | ACK)
            .seq(CISN + 1)
            .ack(k.wrapping_add(1))
            .options(&ts_opts(1020, COOKIE_TS))
            .data(b"GET"),
        502,
    );
    let (_, back) = send_to(&mut ws, 0, FRONT, &data.by_client(), T0 + 3);
    let to_server = only(back, "client data");
    let reply = with_window(
        Seg::tcp(RS1, 80, CLIENT_IP, CPORT, PSH | ACK)
            .seq(SISN + 1)
            .ack(CISN + 4)
            .options(&ts_opts(SERVER_TS + 23, 1020))
            .data(b"HTTP/1.0 200"),
        500,
    );
    let (front, _) = send_to(&mut ws, 0, BACK, &reply.by_server(RS1_MAC), T0 + 4);
    let to_client = only(front, "server data");
    let seq_at = 14 + 20 + 4;
    assert_eq!(
        to_client[seq_at..seq_at + 4],
        k.wrapping_add(1).to_be_bytes(),
        "the client sees the cookie's numbering"
    );

    // Client side → server: the quote is the segment rvs sent the client, with the
    // server's sequence number back (window and timestamp stay as the client saw them:
    // no stack checks those in an error).
    let as_sent =
        with_window(reply.clone().addrs((RS1, 80), (CLIENT_IP, CPORT)).options(&ts_opts(COOKIE_TS + 23, 1020)), 2000)
            .ttl(60)
            .ip();
    for (i, quote_len) in [to_client.len() - 14, 28].into_iter().enumerate() {
        let err = icmp_ip(CLIENT_IP, VIP, 0, 0x7777, 64, &icmp_msg(3, 4, 576, &to_client[14..14 + quote_len]));
        let at = T0 + 5 + i as u64;
        let (front, back) = send_to(&mut ws, 0, FRONT, &pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &err)), at);
        assert!(front.is_empty());
        let want = icmp_ip(CLIENT_IP, RS1, 0, 0x7777, 63, &icmp_msg(3, 4, 576, &as_sent[..quote_len]));
        let got = only(back, "error to the server");
        assert_frame(&got, &eth(RS1_MAC, BACK_MAC, ETH_IPV4, &want), "frag needed quoting the server's seq");
        assert_checksums(&got);
    }

    // Server → client: the quote is the client's segment, with the client's
    // acknowledgement back (the timestamp echo stays in the server's clock).
    let err = icmp_ip(RS1, CLIENT_IP, 0, 0x6666, 64, &icmp_msg(3, 3, 0, &to_server[14..]));
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS1_MAC, ETH_IPV4, &err), T0 + 7);
    assert!(back.is_empty());
    let client_view = data.clone().options(&ts_opts(1020, SERVER_TS)).ttl(60).ip();
    let want = icmp_ip(VIP, CLIENT_IP, 0, 0x6666, 63, &icmp_msg(3, 3, 0, &client_view));
    let got = only(front, "error to the client");
    assert_frame(&got, &eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &want), "port unreachable quoting the client's ack");
    assert_checksums(&got);
    assert_eq!(snapshot(&ws[0]).icmp_errors_translated, 3);
    assert_accounting_all(&ws);
}

/// A proxied connection synced to the HA peer (`rvs_dataplane::sync`): the record sent
/// once the server's SYN-ACK fixed the offsets carries them, and the peer that installs
/// it translates the flow's next segments exactly as the node that opened it would.
#[test]
fn a_synced_proxied_connection_goes_on_translating_on_the_peer() {
    let mut records = Vec::new();
    let mut drain = |end: &mut SyncEnd| {
        end.pop(usize::MAX, |_, r| match r {
            SyncRecord::Conn(c) => records.push(c),
            SyncRecord::Persist(p) => panic!("no persistence here: {p:?}"),
        });
        records.clone()
    };
    let opts = SyncOptions { refresh: std::time::Duration::ZERO };
    let shared_a = proxied(SynProxyPolicy::ALWAYS, Nat);
    let (links, mut end_a) = sync_links(1, 64);
    let mut a: Vec<MemWorker> = lb_workers(&shared_a, 1, &LbOpts::default())
        .into_iter()
        .zip(links)
        .map(|(w, l)| w.with_sync(l, opts))
        .collect();
    let k = handshake_with_rvs(&mut a, CPORT, T0);
    send_to(&mut a, 0, FRONT, &cookie_ack(CPORT, k).by_client(), T0 + 1);
    let opened = drain(&mut end_a);
    let first = opened.last().copied().expect("a record for the opened connection");
    assert_eq!(
        first.synproxy,
        Some(SynProxyRecord { pending: true, seq_offset: k, ts_offset: COOKIE_TS, window: 8 }),
        "pending: the cookie's ISN and timestamp, the client's shift 7 plus one"
    );
    send_to(&mut a, 0, BACK, &server_syn_ack((CLIENT_IP, CPORT)).by_server(RS1_MAC), T0 + 3);
    let rec = drain(&mut end_a).last().copied().expect("a record");
    let p = rec.synproxy.expect("the SYN proxy's state");
    assert!(!p.pending);
    assert_eq!((p.seq_offset, p.ts_offset), (SISN.wrapping_sub(k), SERVER_TS.wrapping_sub(COOKIE_TS)));

    // The peer: same services, its own table, the record installed.
    let shared_b = proxied(SynProxyPolicy::ALWAYS, Nat);
    let (links, end_b) = sync_links(1, 64);
    let mut b: Vec<MemWorker> = lb_workers(&shared_b, 1, &LbOpts::default())
        .into_iter()
        .zip(links)
        .map(|(w, l)| w.with_sync(l, opts))
        .collect();
    end_b.push(0, rec).expect("room");
    poll_all(&mut b, T0 + 4);
    assert_eq!(snapshot(&b[0]).sync_installed, 1);

    // Client data through the peer: acknowledgement and TSecr in the server's spaces.
    client_data_is_translated(&mut b, k, T0 + 5, "client data via the peer");
    // Server data through the peer: sequence, TSval and window in the client's view.
    server_data_is_translated(&mut b, k, T0 + 6, "server data via the peer");
    assert!(drops_of(&b[0]).is_empty(), "{:?}", drops_of(&b[0]));
    assert_accounting_all(&b);
}

/// A record with SYN proxy state for a flow the proxy never serves (UDP, DR) is refused
/// as invalid, not installed as a half-translated entry.
#[test]
fn proxy_state_on_a_flow_the_proxy_does_not_serve_is_refused() {
    let opts = SyncOptions { refresh: std::time::Duration::ZERO };
    let shared = publish(vec![
        service(1, L4Proto::Udp, 53, SchedulerKind::Rr, &[rs(RS1, 53, 1, Nat)], None),
        service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, ForwardMode::Dr)], None),
    ]);
    let (links, end) = sync_links(1, 64);
    let mut ws: Vec<MemWorker> =
        lb_workers(&shared, 1, &LbOpts::default()).into_iter().zip(links).map(|(w, l)| w.with_sync(l, opts)).collect();
    let sa = |ip, port| std::net::SocketAddr::new(std::net::IpAddr::V4(ip), port);
    let proxy = Some(SynProxyRecord { pending: false, seq_offset: 1, ts_offset: 2, window: 0 });
    let udp = ConnRecord {
        proto: L4Proto::Udp,
        forward: Nat,
        client: sa(CLIENT_IP, 5000),
        vip: sa(VIP, 53),
        local: sa(CLIENT_IP, 5000),
        server: sa(RS1, 53),
        state: ConnState::Udp,
        flags: 0,
        expires_in_ms: 60_000,
        synproxy: proxy,
    };
    let dr = ConnRecord {
        proto: L4Proto::Tcp,
        forward: ForwardMode::Dr,
        vip: sa(VIP, 80),
        server: sa(RS1, 80),
        state: ConnState::Tcp(TcpState::Established),
        ..udp
    };
    end.push(0, udp).expect("room");
    end.push(0, dr).expect("room");
    poll_all(&mut ws, T0);
    let s = snapshot(&ws[0]);
    assert_eq!((s.sync_installed, s.sync_refused_invalid), (0, 2));
    assert_eq!(ws[0].lb().expect("engine").conns().len(), 0);
}
