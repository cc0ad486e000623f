//! The SYN proxy on IPv6 services end to end through a worker on the in-memory driver
//! (see `rvs_dataplane::synproxy` and the engine's `synproxy6_engine`): the cookie
//! SYN-ACK over IPv6, the client's ACK that opens the flow and the SYN it becomes (with
//! the 20-byte IPv6 TOA for Full-NAT66), the server's SYN-ACK turned into the client's
//! window update, the ACK rvs sends a server that retransmits its SYN-ACK, sequence,
//! timestamp and window translation both ways, bad cookies dropped and counted, a
//! server's refusal turned into the client's RST, `auto` below its threshold, and a
//! proxied IPv6 connection synced to the HA peer and translated there (NAT64 services:
//! `synproxy64.rs`).
//!
//! Every expected frame is built here byte by byte (`seg6`, its TCP checksum computed in
//! full over the RFC 8200 pseudo-header by the tests' own `csum6`), independently of
//! `rvs_dataplane::wire` and of the builders under test; the cookie value comes from the
//! codec, whose own tests pin it to SipHash's published vector.

mod common;

use std::net::Ipv6Addr;

use common::ip6::*;
use common::l4::{assert_frame, drops_of, only, poll_all, send_to, syn_opts, ts_opts, LbOpts, ACK, PSH, RST, SYN};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::conn::ConnFlags;
use rvs_dataplane::server::RealServer;
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::sync::{sync_links, SyncEnd, SyncOptions, SyncRecord};
use rvs_dataplane::synproxy::cookie::{mss_index_in, CookieSecret, CookieTuple6, MSS_TABLE6};
use rvs_dataplane::synproxy::SynProxyPolicy;
use rvs_dataplane::types::{ForwardMode, L4Proto};

use ForwardMode::{FullNat, Nat};

const CLIENT6: &str = "2001:db8:10::2";
const LOCAL6: &str = "2001:db8:20::200";
const RS6: &str = "2001:db8:20::11";
const RS6_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x05, 0x11];
const VPORT: u16 = 8080;
const CPORT: u16 = 40001;
const CISN: u32 = 0x1000_0000;
const SISN: u32 = 0x5000_0000;
/// 5 s after the clock's start: cookie minute 0, timestamp clock 5000 ms.
const T0: u64 = 5_000_000_000;
/// The cookie TSval for wscale 7 + SACK at clock 5000: (5000 & !63) | 0b010111 = 5015,
/// ahead of the clock, so one 64-step back.
const COOKIE_TS: u32 = 4951;
const SERVER_TS: u32 = 777_777;
/// The client's MSS (a 1500-byte IPv6 link), an entry of the IPv6 cookie table.
const CLIENT_MSS: u16 = 1440;

fn secret() -> CookieSecret {
    CookieSecret::from_bytes([7; 32])
}

fn cookie(cport: u16, cisn: u32, minute: u32) -> u32 {
    let t = CookieTuple6 { client: a(CLIENT6), cport, vip: a(VIP6), vport: VPORT };
    secret().isn(&t, cisn, minute, mss_index_in(&MSS_TABLE6, CLIENT_MSS))
}

/// One TCP service on the VIP, port 8080, to `RS6` port 80 in `forward`, under `policy`.
fn services(policy: SynProxyPolicy, forward: ForwardMode) -> SharedServices {
    let server: RealServer = server6(RS6, 80, forward, 1);
    let s = Service {
        local_addrs: vec![LOCAL_IP],
        local_addrs6: vec![a(LOCAL6)],
        syn_proxy: policy,
        ..service6(1, L4Proto::Tcp, VPORT, vec![server])
    };
    share(ServiceTable::new(1, vec![s]).expect("valid table"))
}

fn workers(shared: &SharedServices, finish: impl FnMut(usize, MemWorker) -> MemWorker) -> Vec<MemWorker> {
    let learn = [neighbour6(CLIENT6, CLIENT_MAC, FRONT), neighbour6(RS6, RS6_MAC, BACK)];
    common::workers6::workers6(shared, 1, &LbOpts::default(), &[a(LOCAL6)], &learn, finish)
}

// ---- segments, built independently ----

/// A TCP segment in an IPv6 packet (hop limit `hl`), its checksum computed in full.
#[derive(Debug, Clone)]
struct Seg6 {
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    opts: Vec<u8>,
    data: Vec<u8>,
    hl: u8,
}

fn seg6(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8, seq: u32, ack: u32, window: u16) -> Seg6 {
    Seg6 { src, dst, flags, seq, ack, window, opts: Vec::new(), data: Vec::new(), hl: 64 }
}

impl Seg6 {
    fn opts(mut self, o: &[u8]) -> Self {
        self.opts = o.to_vec();
        self
    }
    fn data(mut self, d: &[u8]) -> Self {
        self.data = d.to_vec();
        self
    }
    fn hl(mut self, hl: u8) -> Self {
        self.hl = hl;
        self
    }
    fn addrs(mut self, src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16)) -> Self {
        (self.src, self.dst) = (src, dst);
        self
    }
    fn packet(&self) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&self.src.1.to_be_bytes());
        s.extend_from_slice(&self.dst.1.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.push((((20 + self.opts.len()) / 4) << 4) as u8);
        s.push(self.flags);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(&self.opts);
        s.extend_from_slice(&self.data);
        let c = csum6(self.src.0, self.dst.0, 6, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        ipv6(self.src.0, self.dst.0, 6, self.hl, &s)
    }
    /// As the client sends it to rvs's front port.
    fn by_client(&self) -> Vec<u8> {
        eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &self.packet())
    }
    /// As rvs sends it to the client.
    fn to_client(&self) -> Vec<u8> {
        eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &self.packet())
    }
    /// As the server sends it to rvs's back port.
    fn by_server(&self) -> Vec<u8> {
        eth(BACK_MAC, RS6_MAC, ETH_IPV6, &self.packet())
    }
    /// As rvs sends it to the server.
    fn to_server(&self) -> Vec<u8> {
        eth(RS6_MAC, BACK_MAC, ETH_IPV6, &self.packet())
    }
}

fn client() -> (Ipv6Addr, u16) {
    (a(CLIENT6), CPORT)
}
fn vip() -> (Ipv6Addr, u16) {
    (a(VIP6), VPORT)
}
fn rs() -> (Ipv6Addr, u16) {
    (a(RS6), 80)
}

/// The client's SYN and the cookie SYN-ACK it must get (rvs advertising `mss`, window
/// 0, hop limit 64); returns the cookie.
fn handshake_with_rvs(ws: &mut [MemWorker], mss: u16, now: u64) -> u32 {
    let syn = seg6(client(), vip(), SYN, CISN, 0, 64800).opts(&syn_opts(CLIENT_MSS, 1000, 0, 7));
    let (front, back) = send_to(ws, 0, FRONT, &syn.by_client(), now);
    assert!(back.is_empty(), "no SYN to a server before the cookie is answered");
    let k = cookie(CPORT, CISN, 0);
    let want = seg6(vip(), client(), SYN | ACK, k, CISN + 1, 0).opts(&syn_opts(mss, COOKIE_TS, 1000, 7));
    let got = only(front, "cookie SYN-ACK");
    assert_frame(&got, &want.to_client(), "cookie SYN-ACK");
    assert_l4_checksum(&got);
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 0, "a cookie creates no connection");
    k
}

/// The client's ACK of cookie `k` (window 502, scaled by 7).
fn cookie_ack(k: u32) -> Seg6 {
    seg6(client(), vip(), ACK, CISN + 1, k.wrapping_add(1), 502).opts(&ts_opts(1010, COOKIE_TS))
}

/// The SYN the server must get for the client's ACK, from `from`, with `extra` options
/// first: the client's MSS from the cookie's table, its options from the echoed
/// timestamp, its window unscaled (502 << 7), hop limit 64 (rvs's own segment).
fn server_syn(from: (Ipv6Addr, u16), extra: &[u8]) -> Seg6 {
    let opts = [extra.to_vec(), syn_opts(CLIENT_MSS, 1010, 0, 7)].concat();
    seg6(from, rs(), SYN, CISN, 0, 64256).opts(&opts)
}

fn server_syn_ack(to: (Ipv6Addr, u16)) -> Seg6 {
    seg6(rs(), to, SYN | ACK, SISN, CISN + 1, 65160).opts(&syn_opts(1440, SERVER_TS, 1010, 9))
}

/// Runs the proxied handshake on `ws` for a service in `forward` (the server sees the
/// client's address for NAT66, `(LOCAL6, lport)` for Full-NAT66, which gets the TOA on
/// its SYN); returns the cookie and the server-side address of the client.
fn proxied_handshake(ws: &mut [MemWorker], forward: ForwardMode) -> (u32, (Ipv6Addr, u16)) {
    let (mss, to_us, extra) = match forward {
        // The smallest port MTU (1500) less 60 bytes of headers, less the TOA's 20.
        FullNat => (1420, (a(LOCAL6), 1024), toa6(client())),
        _ => (1440, client(), Vec::new()),
    };
    let k = handshake_with_rvs(ws, mss, T0);
    let (front, back) = send_to(ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 1);
    assert!(front.is_empty());
    let got = only(back, "SYN to the server");
    assert_frame(&got, &server_syn(to_us, &extra).to_server(), "SYN to the server");
    assert_l4_checksum(&got);
    let c = *ws[0].lb().expect("engine").conns6().iter().next().expect("one connection").1;
    assert!(c.flags.contains(ConnFlags::SYNPROXY | ConnFlags::SYNPROXY_PENDING));
    assert_eq!((c.local, c.lport), to_us);

    // A retransmission of the client's ACK (or a probe) meanwhile: dropped, no second
    // connection.
    let (front, back) = send_to(ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 2);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 1);

    // The server's SYN-ACK opens the client's window: an ACK from the VIP at the
    // cookie's next sequence number, the server's window in rvs's shift 7 (65160 / 128,
    // rounded up), its TSval translated into the cookie's clock.
    let (front, back) = send_to(ws, 0, BACK, &server_syn_ack(to_us).by_server(), T0 + 3);
    assert!(back.is_empty(), "the server's SYN-ACK is consumed");
    let want = seg6(vip(), client(), ACK, k.wrapping_add(1), CISN + 1, 510).opts(&ts_opts(COOKIE_TS, 1010));
    let got = only(front, "window update");
    assert_frame(&got, &want.to_client(), "window update");
    assert_l4_checksum(&got);
    (k, to_us)
}

/// The client's first data segment: its acknowledgement and TSecr reach the server in
/// the server's spaces (ack + (SISN - k), TSecr + (SERVER_TS - COOKIE_TS)), hop limit
/// decremented, `extra` (the TOA for Full-NAT66) first among the options.
fn client_data_is_translated(ws: &mut [MemWorker], k: u32, to_us: (Ipv6Addr, u16), extra: &[u8]) {
    let data =
        seg6(client(), vip(), PSH | ACK, CISN + 1, k.wrapping_add(1), 502).opts(&ts_opts(1020, COOKIE_TS)).data(b"GET");
    let (_, back) = send_to(ws, 0, FRONT, &data.by_client(), T0 + 4);
    let opts = [extra.to_vec(), ts_opts(1020, SERVER_TS)].concat();
    let want = data.clone().addrs(to_us, rs()).opts(&opts).hl(63);
    let want = Seg6 { ack: SISN + 1, ..want };
    let got = only(back, "client data");
    assert_frame(&got, &want.to_server(), "client data");
    assert_l4_checksum(&got);
}

/// The server's data: sequence and TSval back into the client's spaces, window from
/// the server's shift 9 into rvs's 7 (500 << 2), from the VIP.
fn server_data_is_translated(ws: &mut [MemWorker], k: u32, to_us: (Ipv6Addr, u16)) {
    let reply = seg6(rs(), to_us, PSH | ACK, SISN + 1, CISN + 4, 500)
        .opts(&ts_opts(SERVER_TS + 23, 1020))
        .data(b"HTTP/1.0 200");
    let (front, _) = send_to(ws, 0, BACK, &reply.by_server(), T0 + 5);
    let want = seg6(vip(), client(), PSH | ACK, k.wrapping_add(1), CISN + 4, 2000)
        .opts(&ts_opts(COOKIE_TS + 23, 1020))
        .data(b"HTTP/1.0 200")
        .hl(63);
    let got = only(front, "server data");
    assert_frame(&got, &want.to_client(), "server data");
    assert_l4_checksum(&got);
}

#[test]
fn nat66_proxied_connection_golden_packets_both_ways() {
    let shared = services(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = workers(&shared, |_, w| w);
    let (k, to_us) = proxied_handshake(&mut ws, Nat);
    client_data_is_translated(&mut ws, k, to_us, &[]);
    server_data_is_translated(&mut ws, k, to_us);
    let s = snapshot(&ws[0]);
    assert_eq!(
        (s.syn_proxy_cookies_sent, s.syn_proxy_valid_acks, s.syn_proxy_handshakes, s.syn_proxy_server_refused),
        (1, 1, 1, 0)
    );
    // The retransmitted cookie ACK while the server had not answered.
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_pending", 1)]);
}

#[test]
fn fullnat66_proxied_connection_carries_the_ipv6_toa_and_translates_both_ways() {
    let shared = services(SynProxyPolicy::ALWAYS, FullNat);
    let mut ws = workers(&shared, |_, w| w);
    let (k, to_us) = proxied_handshake(&mut ws, FullNat);
    // The TOA rides on the SYN and on the client's first segment, then no more.
    client_data_is_translated(&mut ws, k, to_us, &toa6(client()));
    server_data_is_translated(&mut ws, k, to_us);
    let more = seg6(client(), vip(), ACK, CISN + 4, k.wrapping_add(13), 502).opts(&ts_opts(1030, COOKIE_TS + 23));
    let (_, back) = send_to(&mut ws, 0, FRONT, &more.by_client(), T0 + 6);
    let want = Seg6 { ack: SISN + 13, ..more.addrs(to_us, rs()).opts(&ts_opts(1030, SERVER_TS + 23)).hl(63) };
    let got = only(back, "second client segment");
    assert_frame(&got, &want.to_server(), "second client segment");
    assert_eq!(snapshot(&ws[0]).syn_proxy_handshakes, 1);
    assert_eq!(snapshot(&ws[0]).toa_skipped, 0);
}

#[test]
fn a_server_retransmitting_its_syn_ack_gets_rvs_ack_and_the_client_nothing() {
    let shared = services(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = workers(&shared, |_, w| w);
    let (k, to_us) = proxied_handshake(&mut ws, Nat);
    let (front, back) = send_to(&mut ws, 0, BACK, &server_syn_ack(to_us).by_server(), T0 + 10);
    assert!(front.is_empty(), "never forwarded to the client");
    // The ACK from the client's side: sequence the server's acknowledgement, its ISN
    // acknowledged, timestamps echoed, the server's own window; rvs's own segment.
    let want = seg6(to_us, rs(), ACK, CISN + 1, SISN + 1, 65160).opts(&ts_opts(1010, SERVER_TS));
    let got = only(back, "ACK to the server");
    assert_frame(&got, &want.to_server(), "ACK to the server");
    assert_l4_checksum(&got);
    let _ = k;
}

#[test]
fn bad_and_stale_cookie_acks_are_dropped_and_counted() {
    let shared = services(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = workers(&shared, |_, w| w);
    let k = handshake_with_rvs(&mut ws, 1440, T0);
    // Another cookie (off in its hash bits), and another port's cookie.
    let wrong = Seg6 { ack: k.wrapping_add(0x1001), ..cookie_ack(k) };
    let (f, b) = send_to(&mut ws, 0, FRONT, &wrong.by_client(), T0 + 1);
    assert!(f.is_empty() && b.is_empty());
    let other = Seg6 { src: (a(CLIENT6), CPORT + 1), ..cookie_ack(k) };
    let (f, b) = send_to(&mut ws, 0, FRONT, &other.by_client(), T0 + 1);
    assert!(f.is_empty() && b.is_empty());
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_bad_cookie", 2)]);
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 0, "no connection for a bad cookie");
    assert_eq!(snapshot(&ws[0]).syn_proxy_valid_acks, 0);
    // The right one in time opens the connection.
    let (_, b) = send_to(&mut ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 2);
    assert_eq!(b.len(), 1);
    assert_eq!(snapshot(&ws[0]).syn_proxy_valid_acks, 1);
    // A valid cookie of another port, two minutes on: expired.
    let k2 = cookie(CPORT + 2, CISN, 0);
    let stale = Seg6 { src: (a(CLIENT6), CPORT + 2), ..cookie_ack(k2) };
    let (f, b) = send_to(&mut ws, 0, FRONT, &stale.by_client(), T0 + 120 * SEC);
    assert!(f.is_empty() && b.is_empty());
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_bad_cookie", 3)]);
    assert_eq!(snapshot(&ws[0]).syn_proxy_valid_acks, 1);
}

#[test]
fn a_server_refusing_the_proxied_syn_resets_the_client() {
    let shared = services(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = workers(&shared, |_, w| w);
    let k = handshake_with_rvs(&mut ws, 1440, T0);
    let (_, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 1);
    assert_eq!(back.len(), 1);
    let rst = seg6(rs(), client(), RST | ACK, 0, CISN + 1, 0);
    let (front, back) = send_to(&mut ws, 0, BACK, &rst.by_server(), T0 + 2);
    assert!(back.is_empty());
    let want = seg6(vip(), client(), RST, k.wrapping_add(1), 0, 0);
    let got = only(front, "RST to the client");
    assert_frame(&got, &want.to_client(), "RST to the client");
    assert_l4_checksum(&got);
    assert_eq!(snapshot(&ws[0]).syn_proxy_server_refused, 1);
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 0);
}

/// `auto` below its threshold: the SYN goes straight to the server (no cookie), as
/// without the proxy.
#[test]
fn auto_below_its_threshold_forwards_the_syn() {
    let shared = services(SynProxyPolicy::auto(1000), FullNat);
    let mut ws = workers(&shared, |_, w| w);
    let syn = seg6(client(), vip(), SYN, CISN, 0, 64800).opts(&syn_opts(CLIENT_MSS, 1000, 0, 7));
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0);
    assert!(front.is_empty(), "no cookie");
    assert_eq!(back.len(), 1, "the SYN goes on");
    assert_eq!(snapshot(&ws[0]).syn_proxy_cookies_sent, 0);
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 1);
    // `auto` at threshold 0: every SYN gets a cookie.
    let shared = services(SynProxyPolicy::auto(0), Nat);
    let mut ws = workers(&shared, |_, w| w);
    handshake_with_rvs(&mut ws, 1440, T0);
    assert_eq!(snapshot(&ws[0]).syn_proxy_cookies_sent, 1);
}

/// A proxied IPv6 connection's records carry its offsets (when it opens, and again when
/// the server's SYN-ACK fixes them); the peer installs them and translates the flow
/// after a takeover.
#[test]
fn a_proxied_ipv6_connection_is_synced_with_its_offsets_and_translated_on_the_peer() {
    let mut records = Vec::new();
    let mut drain = |end: &mut SyncEnd| {
        end.pop(usize::MAX, |_, r| match r {
            SyncRecord::Conn(c) => records.push(c),
            SyncRecord::Persist(p) => panic!("no persistence here: {p:?}"),
        });
        records.clone()
    };
    let opts = SyncOptions { refresh: std::time::Duration::ZERO };
    let shared = services(SynProxyPolicy::ALWAYS, Nat);
    let (links, mut end_a) = sync_links(1, 64);
    let mut links = links.into_iter();
    let mut ws = workers(&shared, |_, w| w.with_sync(links.next().expect("a link"), opts));
    let (k, to_us) = proxied_handshake(&mut ws, Nat);
    let recs = drain(&mut end_a);
    assert!(
        recs.iter().any(|r| r.synproxy.is_some_and(|p| p.pending && p.seq_offset == k && p.ts_offset == COOKIE_TS)),
        "sent when it opened, with the cookie's ISN and timestamp: {recs:?}"
    );
    let last = recs.last().copied().expect("records sent");
    let p = last.synproxy.expect("the record carries the proxy state");
    assert!(!p.pending);
    assert_eq!((p.seq_offset, p.ts_offset), (SISN.wrapping_sub(k), SERVER_TS.wrapping_sub(COOKIE_TS)));

    // The peer installs it and translates the flow as the master would.
    let shared_b = services(SynProxyPolicy::ALWAYS, Nat);
    let (links, end_b) = sync_links(1, 64);
    let mut links = links.into_iter();
    let mut peer = workers(&shared_b, |_, w| w.with_sync(links.next().expect("a link"), opts));
    end_b.push(0, last).expect("room");
    poll_all(&mut peer, T0 + 4);
    assert_eq!(snapshot(&peer[0]).sync_installed, 1);
    let c = *peer[0].lb().expect("engine").conns6().iter().next().expect("installed").1;
    assert!(c.flags.contains(ConnFlags::SYNPROXY) && !c.flags.contains(ConnFlags::SYNPROXY_PENDING));
    client_data_is_translated(&mut peer, k, to_us, &[]);
    server_data_is_translated(&mut peer, k, to_us);
    assert!(drops_of(&peer[0]).is_empty(), "{:?}", drops_of(&peer[0]));
}

/// An ICMPv6 error from the server about a segment rvs sent it (a packet too big about
/// the client's translated data) reaches the client from the VIP quoting the client's
/// own segment: the quoted acknowledgement back in the cookie's numbering, the quoted
/// TCP checksum and the ICMPv6 checksum right.
#[test]
fn an_icmp6_error_about_a_proxied_flow_quotes_the_receivers_numbering() {
    let shared = services(SynProxyPolicy::ALWAYS, Nat);
    let mut ws = workers(&shared, |_, w| w);
    let (k, to_us) = proxied_handshake(&mut ws, Nat);
    let data =
        seg6(client(), vip(), PSH | ACK, CISN + 1, k.wrapping_add(1), 502).opts(&ts_opts(1020, COOKIE_TS)).data(b"GET");
    let (_, back) = send_to(&mut ws, 0, FRONT, &data.by_client(), T0 + 4);
    let sent = only(back, "client data");
    let error = |src: &str, hl: u8, quote: &[u8]| {
        let mut m = vec![2, 0, 0, 0];
        m.extend_from_slice(&1400u32.to_be_bytes());
        m.extend_from_slice(quote);
        icmp6(a(src), a(CLIENT6), hl, m)
    };
    let err = error(RS6, 64, &sent[14..]);
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS6_MAC, ETH_IPV6, &err), T0 + 5);
    assert!(back.is_empty());
    // The quote: the segment as the server got it (hop limit 63, the server's TSecr),
    // addressed to the VIP again and acknowledging in the client's numbering.
    let quote = data.clone().opts(&ts_opts(1020, SERVER_TS)).hl(63).packet();
    let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &error(VIP6, 63, &quote));
    let got = only(front, "packet too big to the client");
    assert_frame(&got, &want, "packet too big to the client");
    assert_eq!(snapshot(&ws[0]).icmp_errors_translated, 1);
    let _ = to_us;
}
