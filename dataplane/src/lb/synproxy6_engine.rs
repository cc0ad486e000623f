//! The SYN proxy on the IPv6 L4 path (NAT66 and Full-NAT66 TCP services): the exchange
//! of `crate::synproxy` and of the IPv4 engine's `synproxy_engine`, with the same
//! cookies (the secret, the counter, the timestamp bits; the tuple is the IPv6 4-tuple
//! and the MSS table Linux's for IPv6, `cookie::MSS_TABLE6`), the same segments (built by
//! the family-generic `synproxy::packet` builders with a 40-byte IPv6 header), the same
//! translation of established flows and the same counters and drop reasons.
//!
//! What differs from IPv4 is only the family's plumbing: next hops come from the IPv6
//! routes (`nd::next_hop`, as every IPv6 packet's), the advertised MSS leaves room for the
//! 60 bytes of IPv6 and TCP headers and, on a service with Full-NAT servers, for the
//! 20-byte IPv6 TOA, which rides on the proxied SYN as on an unproxied one
//! (`fullnat66::insert_toa6`). The `auto` threshold counts the worker's IPv6 half-open
//! connections (`ConnTable6::syn_recv`).
//!
//! NAT64 services (an IPv6 VIP with IPv4 Full-NAT servers, `nat64_engine`) are proxied
//! too: the client's side of the exchange is this IPv6 one, the server's side IPv4
//! (`synproxy64_engine`: the SYN to the server, the server's SYN-ACK and the segments
//! that follow, which the IPv4 path hands to `nat64_reply`).

use rvs_drivers::PacketBuf;

use super::synproxy_engine::{pending_ws, to_client_established, Opening, ServerSeg};
use super::LbEngine;
use crate::conn::{Conn6, ConnFlags, ConnId, Direction};
use crate::l2l3::nd;
use crate::l2l3::route::RouteTable6;
use crate::l2l3::Verdict;
use crate::service::Service;
use crate::stats::{DropReason, WorkerCounters};
use crate::synproxy::cookie::{self, CookieTuple6, TsOptions, MSS_TABLE6};
use crate::synproxy::packet::{self, Advertised, ServerSyn, WindowRewrite};
use crate::synproxy::ADVERTISED_WSCALE;
use crate::types::{ForwardMode, PortId};
use crate::view6::L4View6;
use crate::wire::TcpFlags;
use crate::xmit::fullnat66::{self, TOA6_LEN};
use crate::xmit::Endpoint6;

/// Whether the cookie SYN-ACK of IPv6 service `s` must leave room for the 20-byte IPv6
/// TOA in the MSS it advertises: some server is an IPv6 Full-NAT one, whose connection
/// carries the TOA on IPv6 (40-byte header) as well. A NAT64 server (IPv4, Full-NAT)
/// needs no room: its side's header is 20 bytes shorter, which the TOA takes back
/// (`crate::xmit::nat64`'s MSS doc: an unproxied NAT64 client is told the server's IPv4
/// MSS less 20, the same size). Asked only for a SYN the policy answers with a cookie.
#[inline]
pub(super) fn cookie_toa6(s: &Service) -> bool {
    s.servers.iter().any(|r| r.forward == ForwardMode::FullNat && r.addr.is_ipv6())
}

/// The verdict for a packet rvs sends to `dst`: through the IPv6 routes (`no_route`
/// when none).
#[inline]
fn route6(routes: &RouteTable6, dst: std::net::Ipv6Addr, in_port: PortId) -> Verdict {
    match nd::next_hop(routes, dst, in_port) {
        Some((port, next_hop)) => Verdict::Route6 { port, next_hop },
        None => Verdict::Drop(DropReason::NoRoute),
    }
}

impl LbEngine {
    /// What the IPv6 cookie SYN-ACK advertises: an MSS that fits the smallest port MTU
    /// less 60 bytes of IPv6 and TCP headers (less the IPv6 TOA's 20 bytes too when
    /// `toa`, [`cookie_toa6`]), rvs's window scale, and a zero window. A NAT64 client's
    /// full segment (MTU − 60 bytes of data and options) leaves rvs as an IPv4 packet of
    /// 20 + 20 + the TOA's 20 + MTU − 60 = MTU bytes: it fits without `toa`.
    fn advertised6(&self, toa: bool) -> Advertised {
        let mtu = self.port_mtu.iter().copied().min().unwrap_or(super::DEFAULT_MTU);
        let toa_len = if toa { TOA6_LEN as u16 } else { 0 };
        let floor = MSS_TABLE6[0] - toa_len;
        Advertised { mss: mtu.saturating_sub(60 + toa_len).max(floor), wscale: ADVERTISED_WSCALE, window: 0 }
    }

    /// Answers the client's IPv6 SYN `view` with a cookie SYN-ACK; no connection is
    /// created. `toa`: the service has IPv6 Full-NAT servers ([`cookie_toa6`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn send_cookie6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        toa: bool,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let syn = packet::read6(buf.data(), view.layout());
        let tuple = CookieTuple6 { client: view.src, cport: view.sport, vip: view.dst, vport: view.dport };
        // No MSS option: IPv6's default MSS, 1220 (RFC 9293 §3.7.1), the table's first.
        let mss_idx = cookie::mss_index_in(&MSS_TABLE6, syn.mss.unwrap_or(MSS_TABLE6[0]));
        let isn = self.cookie_secret.isn(&tuple, syn.seq, cookie::minute_count(now), mss_idx);
        let opts = TsOptions { wscale: syn.wscale, sack: syn.sack_ok, ecn: packet::syn_asks_ecn(syn.flags) };
        let tsval = opts.tsval(cookie::ts_clock(now));
        let (client, vip) = (Endpoint6::new(view.src, view.sport), Endpoint6::new(view.dst, view.dport));
        let adv = self.advertised6(toa);
        if packet::write_cookie_syn_ack(buf, client, vip, &syn, isn, tsval, &adv).is_none() {
            return Verdict::Drop(DropReason::NoMbuf);
        }
        self.last_cookie_ns = Some(now);
        counters.syn_proxy_cookies_sent.inc();
        route6(routes, view.src, in_port)
    }

    /// An IPv6 ACK (without SYN or RST) for no connection on SYN-proxy service
    /// `svc_idx`: when its acknowledgement is a valid cookie, opens the connection
    /// (admission and scheduling as for a SYN) and rewrites the ACK into the SYN to the
    /// server (with the IPv6 TOA for a Full-NAT server; in IPv4 for a NAT64 one,
    /// `synproxy64_engine`).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn accept_cookie6<B: PacketBuf>(
        &mut self,
        svc_idx: u32,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let seg = packet::read6(buf.data(), view.layout());
        let tuple = CookieTuple6 { client: view.src, cport: view.sport, vip: view.dst, vport: view.dport };
        let (client_isn, cookie_isn) = (seg.seq.wrapping_sub(1), seg.ack.wrapping_sub(1));
        let mss_idx = match self.cookie_secret.check(&tuple, client_isn, cookie_isn, cookie::minute_count(now)) {
            Ok(i) => i,
            Err(_) => return Verdict::Drop(DropReason::SynProxyBadCookie),
        };
        let ts_opts = seg.ts.map(|(_, ecr)| TsOptions::from_bits(ecr));
        let id = match self.new_conn6(svc_idx, view, counters, now) {
            Ok(id) => id,
            Err(reason) => return Verdict::Drop(reason),
        };
        counters.syn_proxy_valid_acks.inc();
        let cookie_ts = seg.ts.map_or(0, |(_, ecr)| ecr);
        if let Some(c) = self.conns6.get_mut(id) {
            c.flags.insert(ConnFlags::SYNPROXY | ConnFlags::SYNPROXY_PENDING);
            c.set_synproxy_offsets(cookie_isn, cookie_ts);
            c.synproxy_ws = pending_ws(ts_opts.and_then(|o| o.wscale));
        }
        // As if from the client's SYN: SYN_RECV, with the short half-open timeout.
        if let Err(reason) = self.account6_packet(id, Direction::Inbound, Some(TcpFlags::SYN), view.ip_len(), now) {
            return Verdict::Drop(reason);
        }
        let half_open_ns = u64::from(self.conns6.timeouts().half_open) * 1_000_000_000;
        self.conns6.set_expires_in(id, now, half_open_ns);
        if self.sync.is_some() {
            self.sync_conn6(id, now, counters, false);
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        let shift = ts_opts.and_then(|o| o.wscale).unwrap_or(0).min(cookie::MAX_WSCALE);
        let window = (u64::from(seg.window) << shift).min(u64::from(u16::MAX)) as u16;
        let syn = ServerSyn {
            client_isn,
            mss: MSS_TABLE6[usize::from(mss_idx) % MSS_TABLE6.len()],
            ts_opts,
            tsval: seg.ts.map(|(v, _)| v),
            window,
        };
        if let Some(ends) = c.nat64_ends() {
            return self.nat64_server_syn(buf, &c, ends, &syn, counters);
        }
        let (local, server) = (Endpoint6::new(c.local, c.lport), Endpoint6::new(c.server, c.sport));
        let Some(built) = packet::write_server_syn(buf, local, server, &syn) else {
            return Verdict::Drop(DropReason::NoMbuf);
        };
        let Some((port, next_hop)) = nd::next_hop(routes, c.server, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if c.forward == ForwardMode::FullNat && c.flags.contains(ConnFlags::TOA_PENDING) {
            // As IPv4's: the TOA rides on the SYN and on the client's first segment after
            // the window opens (the one that completes the server's handshake).
            let client = Endpoint6::new(c.client, c.cport);
            if fullnat66::insert_toa6(buf, built.layout(), client, self.mtu(port.index())).is_err() {
                counters.toa_skipped.inc();
            }
        }
        Verdict::Route6 { port, next_hop }
    }

    /// A client segment of IPv6 proxied connection `id` whose server has not answered:
    /// a RST ends the attempt; anything else waits (`syn_proxy_pending`).
    #[inline(never)]
    pub(super) fn pending_inbound6(&mut self, id: ConnId, view: &L4View6) -> Verdict {
        if view.flags.is_some_and(|f| f.rst()) {
            self.close_conn6(id);
            return Verdict::Consumed;
        }
        Verdict::Drop(DropReason::SynProxyPending)
    }

    /// A server segment of IPv6 proxied connection `id` (`c` its copy; the state machine
    /// has seen it), as IPv4's `proxied_reply`: its first SYN-ACK opens the client's
    /// window, later ones are answered with the ACK that completes the server's
    /// handshake, a RST while pending becomes a RST to the client, anything else while
    /// pending is `syn_proxy_pending`. `None`: an ordinary segment, now translated into
    /// the client's spaces; forward it.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn proxied_reply6<B: PacketBuf>(
        &mut self,
        id: ConnId,
        c: &Conn6,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Option<Verdict> {
        let c = *c;
        let (vip, client) = (Endpoint6::new(c.vip, c.vport), Endpoint6::new(c.client, c.cport));
        match ServerSeg::of(&c, view.flags) {
            ServerSeg::Established => {
                let l = view.layout();
                to_client_established(&mut buf.data_mut()[l.l4_offset()..l.ip_end()], &c);
                None
            }
            ServerSeg::Pending => Some(Verdict::Drop(DropReason::SynProxyPending)),
            ServerSeg::Refused => {
                let (cookie_isn, _) = c.synproxy_offsets();
                self.close_conn6(id);
                counters.syn_proxy_server_refused.inc();
                if packet::write_client_rst(buf, vip, client, cookie_isn.wrapping_add(1)).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(route6(routes, c.client, in_port))
            }
            ServerSeg::SynAckAgain => {
                let (server, to_us) = (Endpoint6::new(c.server, c.sport), Endpoint6::new(c.local, c.lport));
                let seg = packet::read6(buf.data(), view.layout());
                if packet::write_server_ack(buf, server, to_us, &seg).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(route6(routes, c.server, in_port))
            }
            ServerSeg::SynAck => {
                let seg = packet::read6(buf.data(), view.layout());
                let opening = Opening::of(&c, &seg);
                if let Some(e) = self.conns6.get_mut(id) {
                    opening.record(e);
                }
                if self.sync.is_some() {
                    // The offsets are known now: the peer needs them.
                    self.sync_conn6(id, now, counters, false);
                }
                counters.syn_proxy_handshakes.inc();
                if opening.write_window_update(buf, vip, client, &seg).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(route6(routes, c.client, in_port))
            }
        }
    }
}

/// Client → server translation of a segment of established IPv6 proxied connection `c`
/// (`crate::synproxy::packet::translate_to_server`), out of the established path.
#[inline(never)]
pub(super) fn proxied_to_server6<B: PacketBuf>(buf: &mut B, view: &L4View6, c: &Conn6) {
    let (seq_off, ts_off) = c.synproxy_offsets();
    let ws = WindowRewrite::unpack(c.synproxy_ws, ADVERTISED_WSCALE);
    let l = view.layout();
    packet::translate_to_server(&mut buf.data_mut()[l.l4_offset()..l.ip_end()], seq_off, ts_off, &ws);
}
