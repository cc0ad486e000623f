//! The SYN proxy on a NAT64 service (an IPv6 VIP on an IPv4 Full-NAT server) end to end
//! through a worker on the in-memory driver (see the engine's `synproxy64_engine`): the
//! IPv6 cookie SYN-ACK (its MSS the IPv6 one without room for the TOA: the IPv4 side's
//! 20 fewer header bytes pay for it), the client's ACK that opens the flow and becomes
//! an IPv4 SYN from the local address with the client's IPv6 TOA, the server's IPv4
//! SYN-ACK turned into the client's IPv6 window update, rvs's IPv4 ACK to a server that
//! retransmits its SYN-ACK, the server's RST turned into the client's, sequence,
//! timestamp and window translation both ways across the families, ICMP errors of both
//! sides quoting the receiver's numbering, and the connection synced to the HA peer (a
//! NAT64 record with its offsets) and translated there.
//!
//! Every expected frame is built here byte by byte ([`Seg`], its checksums computed in
//! full over the RFC 791 or RFC 8200 pseudo-header by the tests' own `l4_csum` and
//! `csum6`), independently of `rvs_dataplane::wire` and of the builders under test; the
//! cookie value comes from the codec, whose own tests pin it to SipHash's published
//! vector.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::ip6::*;
use common::l4::{assert_accounting_all, assert_frame, drops_of, l4_csum, only, poll_all, send_to, LbOpts};
use common::l4::{syn_opts, ts_opts, ACK, PSH, RST, SYN};
use common::workers6::{neighbour6, server6, service6, VIP6};
use common::*;
use rvs_dataplane::conn::ConnFlags;
use rvs_dataplane::service::{share, Service, ServiceTable, SharedServices};
use rvs_dataplane::sync::{sync_links, SyncEnd, SyncOptions, SyncRecord};
use rvs_dataplane::synproxy::cookie::{mss_index_in, CookieSecret, CookieTuple6, MSS_TABLE6};
use rvs_dataplane::synproxy::SynProxyPolicy;
use rvs_dataplane::types::{ForwardMode, L4Proto};

const CLIENT6: &str = "2001:db8:10::2";
const VPORT: u16 = 8080;
const CPORT: u16 = 40001;
/// The server's port.
const RPORT: u16 = 80;
/// The first local port of the only worker.
const LPORT: u16 = 1024;
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
/// What rvs advertises: the smallest port MTU (1500) less 60 bytes of IPv6 and TCP
/// headers, and nothing for the TOA (a full client segment with the TOA is 1500 bytes of
/// IPv4).
const ADVERTISED_MSS: u16 = 1440;

fn secret() -> CookieSecret {
    CookieSecret::from_bytes([7; 32])
}

fn cookie(cport: u16, cisn: u32, minute: u32) -> u32 {
    let t = CookieTuple6 { client: a(CLIENT6), cport, vip: a(VIP6), vport: VPORT };
    secret().isn(&t, cisn, minute, mss_index_in(&MSS_TABLE6, CLIENT_MSS))
}

/// One TCP service on the IPv6 VIP, port 8080, to the IPv4 server `RS_IP` port 80 in
/// Full-NAT from `LOCAL_IP` (NAT64), under `policy`.
fn services(policy: SynProxyPolicy) -> SharedServices {
    let mut server = server6("2001:db8:20::11", RPORT, ForwardMode::FullNat, 1);
    server.addr = RS_IP.into();
    let s =
        Service { local_addrs: vec![LOCAL_IP], syn_proxy: policy, ..service6(1, L4Proto::Tcp, VPORT, vec![server]) };
    share(ServiceTable::new(1, vec![s]).expect("valid table"))
}

/// One worker with the client learned over IPv6 (the IPv4 server is a static neighbour
/// of the lab configuration).
fn workers(shared: &SharedServices, finish: impl FnMut(usize, MemWorker) -> MemWorker) -> Vec<MemWorker> {
    let learn = [neighbour6(CLIENT6, CLIENT_MAC, FRONT)];
    common::workers6::workers6(shared, 1, &LbOpts::default(), &[], &learn, finish)
}

// ---- segments, built independently ----

/// A TCP segment in an IPv4 packet (TTL `ttl`, identification `ident`, DF unless
/// `df_clear`) or an IPv6 one (hop limit `ttl`), by its addresses' family; its checksums
/// computed in full.
#[derive(Debug, Clone)]
struct Seg {
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    opts: Vec<u8>,
    data: Vec<u8>,
    ttl: u8,
    ident: u16,
    df_clear: bool,
}

fn seg(src: (IpAddr, u16), dst: (IpAddr, u16), flags: u8, seq: u32, ack: u32, window: u16) -> Seg {
    Seg { src, dst, flags, seq, ack, window, opts: Vec::new(), data: Vec::new(), ttl: 64, ident: 0, df_clear: false }
}

impl Seg {
    fn opts(mut self, o: &[u8]) -> Self {
        self.opts = o.to_vec();
        self
    }
    fn data(mut self, d: &[u8]) -> Self {
        self.data = d.to_vec();
        self
    }
    fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    fn ident(mut self, ident: u16) -> Self {
        self.ident = ident;
        self
    }
    /// As NAT64 translates a packet of at most 1,260 bytes towards the server (RFC 7915
    /// §5.1): DF clear, identification `ident` from the worker's counter.
    fn translated(mut self, ident: u16) -> Self {
        (self.ident, self.df_clear) = (ident, true);
        self
    }
    fn addrs(mut self, src: (IpAddr, u16), dst: (IpAddr, u16)) -> Self {
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
        match (self.src.0, self.dst.0) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let c = l4_csum(src, dst, 6, &s);
                s[16..18].copy_from_slice(&c.to_be_bytes());
                ipv4(
                    Ip {
                        src,
                        dst,
                        proto: 6,
                        ttl: self.ttl,
                        ident: self.ident,
                        frag: if self.df_clear { 0 } else { 0x4000 },
                    },
                    &s,
                )
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let c = csum6(src, dst, 6, &s);
                s[16..18].copy_from_slice(&c.to_be_bytes());
                ipv6(src, dst, 6, self.ttl, &s)
            }
            _ => panic!("a segment's addresses are of one family"),
        }
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
        eth(BACK_MAC, RS_MAC, ETH_IPV4, &self.packet())
    }
    /// As rvs sends it to the server.
    fn to_server(&self) -> Vec<u8> {
        eth(RS_MAC, BACK_MAC, ETH_IPV4, &self.packet())
    }
}

fn client() -> (IpAddr, u16) {
    (a(CLIENT6).into(), CPORT)
}
fn vip() -> (IpAddr, u16) {
    (a(VIP6).into(), VPORT)
}
fn rs() -> (IpAddr, u16) {
    (RS_IP.into(), RPORT)
}
/// The client as the server sees it: the IPv4 local address and port.
fn local() -> (IpAddr, u16) {
    (LOCAL_IP.into(), LPORT)
}
fn toa() -> Vec<u8> {
    toa6((a(CLIENT6), CPORT))
}

/// The client's SYN and the cookie SYN-ACK it must get (window 0, hop limit 64);
/// returns the cookie.
fn handshake_with_rvs(ws: &mut [MemWorker], now: u64) -> u32 {
    let syn = seg(client(), vip(), SYN, CISN, 0, 64800).opts(&syn_opts(CLIENT_MSS, 1000, 0, 7));
    let (front, back) = send_to(ws, 0, FRONT, &syn.by_client(), now);
    assert!(back.is_empty(), "no SYN to the server before the cookie is answered");
    let k = cookie(CPORT, CISN, 0);
    let want = seg(vip(), client(), SYN | ACK, k, CISN + 1, 0).opts(&syn_opts(ADVERTISED_MSS, COOKIE_TS, 1000, 7));
    let got = only(front, "cookie SYN-ACK");
    assert_frame(&got, &want.to_client(), "cookie SYN-ACK");
    assert_l4_checksum(&got);
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 0, "a cookie creates no connection");
    k
}

/// The client's ACK of cookie `k` (window 502, scaled by 7).
fn cookie_ack(k: u32) -> Seg {
    seg(client(), vip(), ACK, CISN + 1, k.wrapping_add(1), 502).opts(&ts_opts(1010, COOKIE_TS))
}

fn server_syn_ack() -> Seg {
    seg(rs(), local(), SYN | ACK, SISN, CISN + 1, 65160).opts(&syn_opts(1460, SERVER_TS, 1010, 9)).ident(0x1234)
}

/// Runs the proxied handshake; returns the cookie.
fn proxied_handshake(ws: &mut [MemWorker]) -> u32 {
    let k = handshake_with_rvs(ws, T0);
    // The valid ACK becomes the IPv4 SYN the client's own SYN would have become: from
    // the local address to the server, TTL 63 (the IPv6 SYN rvs rebuilt, hop limit 64,
    // translated), DF, the client's IPv6 TOA first, then the client's MSS from the
    // cookie's table, its options from the echoed timestamp, its window unscaled.
    let (front, back) = send_to(ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 1);
    assert!(front.is_empty());
    let opts = [toa(), syn_opts(CLIENT_MSS, 1010, 0, 7)].concat();
    let want = seg(local(), rs(), SYN, CISN, 0, 64256).opts(&opts).ttl(63).translated(1);
    let got = only(back, "SYN to the server");
    assert_frame(&got, &want.to_server(), "SYN to the server");
    let c = *ws[0].lb().expect("engine").conns6().iter().next().expect("one connection").1;
    assert!(c.flags.contains(ConnFlags::SYNPROXY | ConnFlags::SYNPROXY_PENDING));
    assert_eq!(c.nat64_ends(), Some((LOCAL_IP, RS_IP)));
    assert_eq!(c.lport, LPORT);

    // A retransmission of the client's ACK meanwhile: dropped, no second connection.
    let (front, back) = send_to(ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 2);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 1);

    // The server's IPv4 SYN-ACK opens the client's window: an IPv6 ACK from the VIP at
    // the cookie's next sequence number, the server's window in rvs's shift 7 (65160 /
    // 128, rounded up), its TSval translated into the cookie's clock; rvs's own segment.
    let (front, back) = send_to(ws, 0, BACK, &server_syn_ack().by_server(), T0 + 3);
    assert!(back.is_empty(), "the server's SYN-ACK is consumed");
    let want = seg(vip(), client(), ACK, k.wrapping_add(1), CISN + 1, 510).opts(&ts_opts(COOKIE_TS, 1010));
    let got = only(front, "window update");
    assert_frame(&got, &want.to_client(), "window update");
    assert_l4_checksum(&got);
    k
}

/// The client's first data segment: IPv4 to the server, its acknowledgement and TSecr
/// in the server's spaces (ack + (SISN - k), TSecr + (SERVER_TS - COOKIE_TS)), TTL 63,
/// `extra` (the TOA, on the first segment) first among the options.
fn client_data(k: u32) -> Seg {
    seg(client(), vip(), PSH | ACK, CISN + 1, k.wrapping_add(1), 502).opts(&ts_opts(1020, COOKIE_TS)).data(b"GET")
}

/// Sends the client's data and checks its translation: DF clear with identification
/// `ident`, the worker's NAT64 counter (RFC 7915 §5.1).
fn client_data_is_translated(ws: &mut [MemWorker], k: u32, extra: &[u8], ident: u16) -> Vec<u8> {
    let data = client_data(k);
    let (_, back) = send_to(ws, 0, FRONT, &data.by_client(), T0 + 4);
    let opts = [extra.to_vec(), ts_opts(1020, SERVER_TS)].concat();
    let want = Seg { ack: SISN + 1, ..data.addrs(local(), rs()).opts(&opts).ttl(63) }.translated(ident);
    let got = only(back, "client data");
    assert_frame(&got, &want.to_server(), "client data");
    got
}

/// The server's IPv4 data: IPv6 to the client from the VIP, sequence and TSval back in
/// the client's spaces, window from the server's shift 9 into rvs's 7 (500 << 2), hop
/// limit 63.
fn server_data() -> Seg {
    seg(rs(), local(), PSH | ACK, SISN + 1, CISN + 4, 500)
        .opts(&ts_opts(SERVER_TS + 23, 1020))
        .data(b"HTTP/1.0 200")
        .ident(0x1235)
}

fn server_data_is_translated(ws: &mut [MemWorker], k: u32) -> Vec<u8> {
    let (front, _) = send_to(ws, 0, BACK, &server_data().by_server(), T0 + 5);
    let want = seg(vip(), client(), PSH | ACK, k.wrapping_add(1), CISN + 4, 2000)
        .opts(&ts_opts(COOKIE_TS + 23, 1020))
        .data(b"HTTP/1.0 200")
        .ttl(63);
    let got = only(front, "server data");
    assert_frame(&got, &want.to_client(), "server data");
    assert_l4_checksum(&got);
    got
}

#[test]
fn nat64_proxied_connection_golden_packets_both_ways() {
    let shared = services(SynProxyPolicy::ALWAYS);
    let mut ws = workers(&shared, |_, w| w);
    let k = proxied_handshake(&mut ws);
    // The TOA rides on the SYN and on the client's first segment, then no more.
    client_data_is_translated(&mut ws, k, &toa(), 2);
    server_data_is_translated(&mut ws, k);
    let more = seg(client(), vip(), ACK, CISN + 4, k.wrapping_add(13), 502).opts(&ts_opts(1030, COOKIE_TS + 23));
    let (_, back) = send_to(&mut ws, 0, FRONT, &more.by_client(), T0 + 6);
    let want =
        Seg { ack: SISN + 13, ..more.addrs(local(), rs()).opts(&ts_opts(1030, SERVER_TS + 23)).ttl(63) }.translated(3);
    let got = only(back, "second client segment");
    assert_frame(&got, &want.to_server(), "second client segment");
    let s = snapshot(&ws[0]);
    assert_eq!(
        (s.syn_proxy_cookies_sent, s.syn_proxy_valid_acks, s.syn_proxy_handshakes, s.syn_proxy_server_refused),
        (1, 1, 1, 0)
    );
    assert_eq!(s.toa_skipped, 0);
    // The retransmitted cookie ACK while the server had not answered.
    assert_eq!(drops_of(&ws[0]), [("syn_proxy_pending", 1)]);
    assert_accounting_all(&ws);
}

#[test]
fn a_nat64_server_retransmitting_its_syn_ack_gets_rvs_ipv4_ack_and_the_client_nothing() {
    let shared = services(SynProxyPolicy::ALWAYS);
    let mut ws = workers(&shared, |_, w| w);
    proxied_handshake(&mut ws);
    let (front, back) = send_to(&mut ws, 0, BACK, &server_syn_ack().by_server(), T0 + 10);
    assert!(front.is_empty(), "never forwarded to the client");
    // From the local address: sequence the server's acknowledgement, its ISN
    // acknowledged, timestamps echoed, the server's own window; rvs's own segment (TTL
    // 64, identification 0, DF).
    let want = seg(local(), rs(), ACK, CISN + 1, SISN + 1, 65160).opts(&ts_opts(1010, SERVER_TS));
    let got = only(back, "ACK to the server");
    assert_frame(&got, &want.to_server(), "ACK to the server");
}

#[test]
fn a_nat64_server_refusing_the_proxied_syn_resets_the_client() {
    let shared = services(SynProxyPolicy::ALWAYS);
    let mut ws = workers(&shared, |_, w| w);
    let k = handshake_with_rvs(&mut ws, T0);
    let (_, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 1);
    assert_eq!(back.len(), 1);
    let rst = seg(rs(), local(), RST | ACK, 0, CISN + 1, 0);
    let (front, back) = send_to(&mut ws, 0, BACK, &rst.by_server(), T0 + 2);
    assert!(back.is_empty());
    let want = seg(vip(), client(), RST, k.wrapping_add(1), 0, 0);
    let got = only(front, "RST to the client");
    assert_frame(&got, &want.to_client(), "RST to the client");
    assert_l4_checksum(&got);
    assert_eq!(snapshot(&ws[0]).syn_proxy_server_refused, 1);
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 0);
    // The client's next attempt is proxied afresh.
    let k = handshake_with_rvs(&mut ws, T0 + 3);
    let (_, back) = send_to(&mut ws, 0, FRONT, &cookie_ack(k).by_client(), T0 + 4);
    assert_eq!(only(back, "second SYN")[14 + 33], SYN, "a SYN to the server again");
    assert_eq!(ws[0].lb().expect("engine").conns6().len(), 1);
}

/// `auto` below its threshold on a NAT64 service: the SYN goes straight to the server as
/// without the proxy (IPv4, the TOA, the client's own options).
#[test]
fn auto_below_its_threshold_forwards_a_nat64_syn() {
    let shared = services(SynProxyPolicy::auto(1000));
    let mut ws = workers(&shared, |_, w| w);
    let syn = seg(client(), vip(), SYN, CISN, 0, 64800).opts(&syn_opts(CLIENT_MSS, 1000, 0, 7));
    let (front, back) = send_to(&mut ws, 0, FRONT, &syn.by_client(), T0);
    assert!(front.is_empty(), "no cookie");
    let opts = [toa(), syn_opts(CLIENT_MSS, 1000, 0, 7)].concat();
    let want = Seg { ..syn.addrs(local(), rs()).opts(&opts).ttl(63).translated(1) };
    assert_frame(&only(back, "the SYN"), &want.to_server(), "the SYN");
    assert_eq!(snapshot(&ws[0]).syn_proxy_cookies_sent, 0);
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

/// An ICMPv6 message head and `quote`; the checksum is `icmp6`'s.
fn icmp6_msg(ty: u8, code: u8, rest: u32, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    m
}

/// An ICMPv4 fragmentation needed from a router on the server's side about the
/// client's translated data reaches the client as an ICMPv6 packet too big from the VIP
/// quoting the client's own segment: its acknowledgement back in the cookie's numbering
/// (the rest as the server's side saw it), the quoted TCP checksum and the ICMPv6
/// checksum right. And the client's port unreachable about the server's translated data
/// reaches the server as an ICMPv4 error quoting the server's own numbering.
#[test]
fn icmp_errors_about_a_proxied_nat64_flow_quote_the_receivers_numbering() {
    let shared = services(SynProxyPolicy::ALWAYS);
    let mut ws = workers(&shared, |_, w| w);
    let k = proxied_handshake(&mut ws);
    let sent = client_data_is_translated(&mut ws, k, &toa(), 2);
    let router = Ipv4Addr::new(10, 20, 0, 254);
    let err =
        ipv4(Ip { src: router, dst: LOCAL_IP, proto: 1, ttl: 64, ident: 9, frag: 0 }, &icmp4(3, 4, 1400, &sent[14..]));
    let (front, back) = send_to(&mut ws, 0, BACK, &eth(BACK_MAC, RS_MAC, ETH_IPV4, &err), T0 + 5);
    assert!(back.is_empty());
    // RFC 7915: packet too big, the IPv4 MTU plus 20, from the VIP (hop limit 63) about
    // the client's segment as the server's side got it (quoted hop limit 63, the TOA
    // and the server's TSecr) but acknowledging in the client's numbering.
    let quote =
        Seg { ack: k.wrapping_add(1), ..client_data(k).opts(&[toa(), ts_opts(1020, SERVER_TS)].concat()).ttl(63) };
    let (c6, v6) = (a(CLIENT6), a(VIP6));
    let want = eth(CLIENT_MAC, FRONT_MAC, ETH_IPV6, &icmp6(v6, c6, 63, icmp6_msg(2, 0, 1420, &quote.packet())));
    assert_frame(&only(front, "packet too big to the client"), &want, "packet too big to the client");

    let got = server_data_is_translated(&mut ws, k);
    let err = eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &icmp6(c6, v6, 64, icmp6_msg(1, 4, 0, &got[14..])));
    let (front, back) = send_to(&mut ws, 0, FRONT, &err, T0 + 6);
    assert!(front.is_empty());
    // Port unreachable from the local address (TTL 63) about the server's segment as
    // the client got it (quoted TTL 63, identification 0, DF; its window and TSval the
    // client's) with its sequence number back in the server's numbering.
    let quote = seg(rs(), local(), PSH | ACK, SISN + 1, CISN + 4, 2000)
        .opts(&ts_opts(COOKIE_TS + 23, 1020))
        .data(b"HTTP/1.0 200")
        .ttl(63);
    let want_ip = ipv4(
        Ip { src: LOCAL_IP, dst: RS_IP, proto: 1, ttl: 63, ident: 0, frag: 0x4000 },
        &icmp4(3, 3, 0, &quote.packet()),
    );
    assert_frame(&only(back, "port unreachable to the server"), &eth(RS_MAC, BACK_MAC, ETH_IPV4, &want_ip), "ICMPv4");
    assert_eq!(snapshot(&ws[0]).icmp_errors_translated, 2);
}

/// Neither side's fragments of a proxied NAT64 flow are translated, for they would miss
/// the proxy's sequence shift: the client's IPv6 ones are `ip6_fragment`, the server's
/// IPv4 ones `ip_fragment`, as every proxied flow's.
#[test]
fn fragments_of_a_proxied_nat64_flow_are_dropped() {
    let shared = services(SynProxyPolicy::ALWAYS);
    let mut ws = workers(&shared, |_, w| w);
    let k = proxied_handshake(&mut ws);
    // 40 bytes of segment (header, timestamps, 8 bytes of data) in a first fragment
    // with MF set (a multiple of 8 bytes, as a fragment that is not the last must be).
    let whole = client_data(k).data(b"GET /abc").packet();
    let mut frag = vec![6, 0, 0, 1, 0, 0, 0, 42];
    frag.extend_from_slice(&whole[40..]);
    let pkt = ipv6(a(CLIENT6), a(VIP6), 44, 64, &frag);
    let (front, back) = send_to(&mut ws, 0, FRONT, &eth(FRONT_MAC, CLIENT_MAC, ETH_IPV6, &pkt), T0 + 4);
    assert!(front.is_empty() && back.is_empty());
    assert!(drops_of(&ws[0]).contains(&("ip6_fragment", 1)), "{:?}", drops_of(&ws[0]));
    // The server's side: an IPv4 first fragment (MF, 40 bytes of segment) to the local
    // address is not translated without the proxy's sequence shift.
    let whole = seg(rs(), local(), PSH | ACK, SISN + 1, CISN + 1, 500).opts(&ts_opts(SERVER_TS + 20, 1020));
    let whole = whole.data(b"HTTP/1.1").packet();
    let ip = Ip { src: RS_IP, dst: LOCAL_IP, proto: 6, ttl: 64, ident: 7, frag: 0x2000 };
    let pkt = eth(BACK_MAC, RS_MAC, ETH_IPV4, &ipv4(ip, &whole[20..60]));
    let (front, back) = send_to(&mut ws, 0, BACK, &pkt, T0 + 5);
    assert!(front.is_empty() && back.is_empty());
    let ip_fragment: u64 = ws.iter().flat_map(drops_of).filter(|(r, _)| *r == "ip_fragment").map(|(_, n)| n).sum();
    assert_eq!(ip_fragment, 1, "{:?}", ws.iter().map(drops_of).collect::<Vec<_>>());
}

/// A proxied NAT64 connection's records carry its offsets (when it opens, and again
/// when the server's SYN-ACK fixes them) in a NAT64 record (IPv6 client and VIP, IPv4
/// local address and server); the peer installs it and translates the flow after a
/// takeover.
#[test]
fn a_proxied_nat64_connection_is_synced_with_its_offsets_and_translated_on_the_peer() {
    let mut records = Vec::new();
    let mut drain = |end: &mut SyncEnd| {
        end.pop(usize::MAX, |_, r| match r {
            SyncRecord::Conn(c) => records.push(c),
            SyncRecord::Persist(p) => panic!("no persistence here: {p:?}"),
        });
        records.clone()
    };
    let opts = SyncOptions { refresh: std::time::Duration::ZERO };
    let shared = services(SynProxyPolicy::ALWAYS);
    let (links, mut end_a) = sync_links(1, 64);
    let mut links = links.into_iter();
    let mut ws = workers(&shared, |_, w| w.with_sync(links.next().expect("a link"), opts));
    let k = proxied_handshake(&mut ws);
    let recs = drain(&mut end_a);
    assert!(
        recs.iter().any(|r| r.synproxy.is_some_and(|p| p.pending && p.seq_offset == k && p.ts_offset == COOKIE_TS)),
        "sent when it opened, with the cookie's ISN and timestamp: {recs:?}"
    );
    let last = recs.last().copied().expect("records sent");
    assert_eq!((last.client.ip(), last.vip.ip()), (client().0, vip().0));
    assert_eq!((last.local, last.server), ((LOCAL_IP, LPORT).into(), (RS_IP, RPORT).into()));
    let p = last.synproxy.expect("the record carries the proxy state");
    assert!(!p.pending);
    assert_eq!((p.seq_offset, p.ts_offset), (SISN.wrapping_sub(k), SERVER_TS.wrapping_sub(COOKIE_TS)));

    // The peer installs it and translates the flow as the master would (the TOA still
    // due on the client's first segment).
    let shared_b = services(SynProxyPolicy::ALWAYS);
    let (links, end_b) = sync_links(1, 64);
    let mut links = links.into_iter();
    let mut peer = workers(&shared_b, |_, w| w.with_sync(links.next().expect("a link"), opts));
    end_b.push(0, last).expect("room");
    poll_all(&mut peer, T0 + 4);
    assert_eq!(snapshot(&peer[0]).sync_installed, 1);
    let c = *peer[0].lb().expect("engine").conns6().iter().next().expect("installed").1;
    assert!(c.flags.contains(ConnFlags::SYNPROXY) && !c.flags.contains(ConnFlags::SYNPROXY_PENDING));
    assert_eq!(c.nat64_ends(), Some((LOCAL_IP, RS_IP)));
    client_data_is_translated(&mut peer, k, &toa(), 1);
    server_data_is_translated(&mut peer, k);
    assert!(drops_of(&peer[0]).is_empty(), "{:?}", drops_of(&peer[0]));
}
