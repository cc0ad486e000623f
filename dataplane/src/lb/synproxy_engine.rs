//! The SYN proxy's part of the L4 engine (see `crate::synproxy` for the exchange):
//! answering SYNs with cookies, opening a connection on a valid cookie ACK, completing
//! the server's handshake, and translating established proxied flows.

use rvs_drivers::PacketBuf;

use super::{LbEngine, LbEnv};
use crate::conn::{Conn, ConnFlags, ConnId, ConnOf, Direction, Family};
use crate::l2l3::Verdict;
use crate::stats::DropReason;
use crate::synproxy::cookie::{self, CookieTuple, TsOptions, MAX_AGE_MINUTES, MSS_TABLE};
use crate::synproxy::packet::{self, Advertised, SegEndpoint, SegInfo, ServerSyn, WindowRewrite};
use crate::synproxy::ADVERTISED_WSCALE;
use crate::types::ForwardMode;
use crate::view::L4View;
use crate::wire::TcpFlags;
use crate::xmit::{l4, Endpoint};

/// How long after its last cookie a worker still checks ACKs for unknown flows as
/// cookies: the cookie lifetime (up to [`MAX_AGE_MINUTES`] counter values).
const COOKIE_LIFETIME_NS: u64 = MAX_AGE_MINUTES as u64 * cookie::COUNT_NS;

/// The byte a pending proxied connection keeps in `synproxy_ws`: the client's offered
/// window scale + 1, or 0 when it offered none (the server's answer is not known yet).
pub(super) fn pending_ws(client_ws: Option<u8>) -> u8 {
    client_ws.map_or(0, |w| w.min(cookie::MAX_WSCALE) + 1)
}

/// What a server segment of a proxied connection (its state machine has seen it) is to
/// the proxy; the same in every family (`proxied_reply`, `proxied_reply6`,
/// `proxied_reply64`), which differ only in how they build and route what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerSeg {
    /// The handshake is done and this is not a SYN-ACK: an ordinary segment, translated
    /// into the client's spaces ([`to_client_established`]) and forwarded.
    Established,
    /// The SYN is unanswered and this is neither its SYN-ACK nor a RST
    /// (`syn_proxy_pending`).
    Pending,
    /// A RST while the SYN is unanswered: the server refused, and the client, which
    /// believes itself connected, is reset at the sequence number it expects next.
    Refused,
    /// A SYN-ACK after the first: the client's window update went out but no client
    /// segment has completed the server's handshake yet (or it was lost). rvs's own ACK
    /// completes it; the SYN-ACK is never forwarded.
    SynAckAgain,
    /// The first SYN-ACK: the connection's offsets are fixed ([`Opening`]) and the
    /// client's window opens.
    SynAck,
}

impl ServerSeg {
    /// Classifies a server segment with TCP `flags` of proxied connection `c`.
    #[inline]
    pub(super) fn of<F: Family>(c: &ConnOf<F>, flags: Option<TcpFlags>) -> Self {
        let pending = c.flags.contains(ConnFlags::SYNPROXY_PENDING);
        let flags = flags.unwrap_or(TcpFlags::NONE);
        match (pending, flags.syn() && flags.ack()) {
            (false, false) => Self::Established,
            (false, true) => Self::SynAckAgain,
            (true, true) => Self::SynAck,
            (true, false) if flags.rst() => Self::Refused,
            (true, false) => Self::Pending,
        }
    }
}

/// Server → client translation, in place, of the TCP segment `seg` (from the TCP header
/// to the end of the IP packet) of established proxied connection `c`.
#[inline]
pub(super) fn to_client_established<F: Family>(seg: &mut [u8], c: &ConnOf<F>) {
    let (seq_off, ts_off) = c.synproxy_offsets();
    let ws = WindowRewrite::unpack(c.synproxy_ws, ADVERTISED_WSCALE);
    packet::translate_to_client(seg, seq_off, ts_off, &ws);
}

/// What the server's first SYN-ACK fixes for a proxied connection: its sequence and
/// timestamp offsets (the server's ISN and TSval less the cookie's) and the window
/// rewrite between the client's and the server's scales; and the client's window update
/// that opens the connection.
pub(super) struct Opening {
    seq_off: u32,
    ts_off: u32,
    ws: WindowRewrite,
    /// The cookie ISN + 1: the client's next expected sequence number from rvs.
    next: u32,
}

impl Opening {
    /// The offsets of pending connection `c` (which keeps the cookie ISN and TSval until
    /// now) from its server's SYN-ACK `seg`.
    pub(super) fn of<F: Family>(c: &ConnOf<F>, seg: &SegInfo) -> Self {
        let (cookie_isn, cookie_ts) = c.synproxy_offsets();
        let ws = WindowRewrite::new(c.synproxy_ws.checked_sub(1), seg.wscale, ADVERTISED_WSCALE);
        Opening {
            seq_off: seg.seq.wrapping_sub(cookie_isn),
            ts_off: seg.ts.map_or(0, |(v, _)| v.wrapping_sub(cookie_ts)),
            ws,
            next: cookie_isn.wrapping_add(1),
        }
    }

    /// Records the offsets in entry `e`, which is pending no more.
    pub(super) fn record<F: Family>(&self, e: &mut ConnOf<F>) {
        e.flags.remove(ConnFlags::SYNPROXY_PENDING);
        e.set_synproxy_offsets(self.seq_off, self.ts_off);
        e.synproxy_ws = self.ws.pack();
    }

    /// Replaces the SYN-ACK `seg` in `buf` with the client's window update from `vip` to
    /// `client` (`None`: no room).
    pub(super) fn write_window_update<B: PacketBuf, E: SegEndpoint>(
        &self,
        buf: &mut B,
        vip: E,
        client: E,
        seg: &SegInfo,
    ) -> Option<E::View> {
        let tsval = seg.ts.map_or(0, |(v, _)| v.wrapping_sub(self.ts_off));
        packet::write_client_window_update(buf, vip, client, self.next, seg, tsval, &self.ws)
    }
}

impl LbEngine {
    /// What the cookie SYN-ACK advertises: an MSS that fits the smallest port MTU (less
    /// the TOA's 8 bytes when `toa`: the client's first data segment may carry it, see
    /// `xmit::fullnat`), rvs's window scale, and a zero window.
    pub(super) fn advertised(&self, toa: bool) -> Advertised {
        let mtu = self.port_mtu.iter().copied().min().unwrap_or(super::DEFAULT_MTU);
        let toa_len = if toa { l4::TOA_LEN as u16 } else { 0 };
        Advertised { mss: mtu.saturating_sub(40 + toa_len).max(536), wscale: ADVERTISED_WSCALE, window: 0 }
    }

    /// Answers the client's SYN `flow` with a cookie SYN-ACK; no connection is created.
    /// `toa`: the service has Full-NAT servers (the advertised MSS leaves room for the TOA).
    #[inline(never)]
    pub(super) fn send_cookie<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        flow: &L4View,
        toa: bool,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        let syn = packet::read(buf.data(), flow.layout());
        let tuple = CookieTuple { client: flow.src, cport: flow.sport, vip: flow.dst, vport: flow.dport };
        let mss_idx = cookie::mss_index(syn.mss.unwrap_or(MSS_TABLE[0]));
        let isn = self.cookie_secret.isn(&tuple, syn.seq, cookie::minute_count(now), mss_idx);
        let opts = TsOptions { wscale: syn.wscale, sack: syn.sack_ok, ecn: packet::syn_asks_ecn(syn.flags) };
        let tsval = opts.tsval(cookie::ts_clock(now));
        let (client, vip) = (Endpoint::new(flow.src, flow.sport), Endpoint::new(flow.dst, flow.dport));
        if packet::write_cookie_syn_ack(buf, client, vip, &syn, isn, tsval, &self.advertised(toa)).is_none() {
            return Verdict::Drop(DropReason::NoMbuf);
        }
        self.last_cookie_ns = Some(now);
        env.counters.syn_proxy_cookies_sent.inc();
        self.route_to(env, flow.src)
    }

    /// Whether an ACK for no connection may answer a cookie of this worker (one was sent
    /// within the cookie lifetime); otherwise it is an ordinary `tcp_no_conn`.
    #[inline]
    pub(super) fn cookies_recent(&self, now: u64) -> bool {
        self.last_cookie_ns.is_some_and(|t| now.saturating_sub(t) <= COOKIE_LIFETIME_NS)
    }

    /// An ACK (without SYN or RST) for no connection on SYN-proxy service `svc_idx`: when
    /// its acknowledgement is a valid cookie, opens the connection (admission and
    /// scheduling as for a SYN) and rewrites the ACK into the SYN to the server.
    #[inline(never)]
    pub(super) fn accept_cookie<B: PacketBuf>(
        &mut self,
        svc_idx: u32,
        buf: &mut B,
        flow: &L4View,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        let seg = packet::read(buf.data(), flow.layout());
        let tuple = CookieTuple { client: flow.src, cport: flow.sport, vip: flow.dst, vport: flow.dport };
        let (client_isn, cookie_isn) = (seg.seq.wrapping_sub(1), seg.ack.wrapping_sub(1));
        let mss_idx = match self.cookie_secret.check(&tuple, client_isn, cookie_isn, cookie::minute_count(now)) {
            Ok(i) => i,
            Err(_) => return Verdict::Drop(DropReason::SynProxyBadCookie),
        };
        // The echoed timestamp carries the client's SYN options (module docs).
        let ts_opts = seg.ts.map(|(_, ecr)| TsOptions::from_bits(ecr));
        let id = match self.new_conn(svc_idx, flow, env, now) {
            Ok(id) => id,
            Err(reason) => return Verdict::Drop(reason),
        };
        env.counters.syn_proxy_valid_acks.inc();
        let cookie_ts = seg.ts.map_or(0, |(_, ecr)| ecr);
        if let Some(c) = self.conns.get_mut(id) {
            c.flags.insert(ConnFlags::SYNPROXY | ConnFlags::SYNPROXY_PENDING);
            c.set_synproxy_offsets(cookie_isn, cookie_ts);
            c.synproxy_ws = pending_ws(ts_opts.and_then(|o| o.wscale));
        }
        // The connection starts as if from the client's SYN: SYN_RECV, with the short
        // half-open timeout while the server has not answered.
        let mut syn_view = *flow;
        syn_view.flags = Some(TcpFlags::SYN);
        if let Err(reason) = self.account(id, Direction::Inbound, &syn_view, now, DropReason::TcpNoConn) {
            return Verdict::Drop(reason);
        }
        let half_open_ns = u64::from(self.conns.timeouts().half_open) * 1_000_000_000;
        self.conns.set_expires_in(id, now, half_open_ns);
        if self.sync.is_some() {
            self.sync_conn(id, now, env.counters, false);
        }
        let Some(&c) = self.conns.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        // The client's window field is scaled by its own shift; a SYN's is not.
        let shift = ts_opts.and_then(|o| o.wscale).unwrap_or(0).min(cookie::MAX_WSCALE);
        let window = (u64::from(seg.window) << shift).min(u64::from(u16::MAX)) as u16;
        let syn = ServerSyn {
            client_isn,
            mss: MSS_TABLE[usize::from(mss_idx) % MSS_TABLE.len()],
            ts_opts,
            tsval: seg.ts.map(|(v, _)| v),
            window,
        };
        let (local, server) = (Endpoint::new(c.local, c.lport), Endpoint::new(c.server, c.sport));
        let Some(view) = packet::write_server_syn(buf, local, server, &syn) else {
            return Verdict::Drop(DropReason::NoMbuf);
        };
        let Some((port, verdict)) = self.hop_to_server(id, &c, env) else { return Verdict::Drop(DropReason::NoRoute) };
        if c.forward == ForwardMode::FullNat && c.flags.contains(ConnFlags::TOA_PENDING) {
            // The TOA rides on the SYN (and on the segment that completes the handshake,
            // the client's first after the window opens), as for unproxied flows.
            let client = Endpoint::new(c.client, c.cport);
            if l4::insert_toa(buf, view.layout(), client, self.mtu(port.index())).is_err() {
                env.counters.toa_skipped.inc();
            }
        }
        verdict
    }

    /// A client segment of proxied connection `id` whose server has not answered: a RST
    /// ends the attempt; anything else waits (dropped: the client's window is closed,
    /// so it is a probe or a retransmission).
    #[inline(never)]
    pub(super) fn pending_inbound(&mut self, id: ConnId, flow: &L4View) -> Verdict {
        if flow.flags.is_some_and(|f| f.rst()) {
            self.close_conn(id);
            return Verdict::Consumed;
        }
        Verdict::Drop(DropReason::SynProxyPending)
    }

    /// A server segment of proxied connection `id` (`c` its copy; the state machine has
    /// seen the segment): its SYN-ACK (the first opens the client's window, later ones
    /// are answered with the ACK that completes the server's handshake), or anything
    /// while the SYN is unanswered (a RST becomes a RST to the client). `None`: an
    /// ordinary segment, now translated into the client's spaces; forward it.
    #[inline(never)]
    pub(super) fn proxied_reply<B: PacketBuf>(
        &mut self,
        id: ConnId,
        c: &Conn,
        buf: &mut B,
        flow: &L4View,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Option<Verdict> {
        let c = *c;
        let (vip, client) = (Endpoint::new(c.vip, c.vport), Endpoint::new(c.client, c.cport));
        match ServerSeg::of(&c, flow.flags) {
            ServerSeg::Established => {
                let l = flow.layout();
                to_client_established(&mut buf.data_mut()[l.l4_offset()..l.ip_end()], &c);
                None
            }
            ServerSeg::Pending => Some(Verdict::Drop(DropReason::SynProxyPending)),
            ServerSeg::Refused => {
                let (cookie_isn, _) = c.synproxy_offsets();
                self.close_conn(id);
                env.counters.syn_proxy_server_refused.inc();
                if packet::write_client_rst(buf, vip, client, cookie_isn.wrapping_add(1)).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(self.route_to(env, c.client))
            }
            ServerSeg::SynAckAgain => {
                let (server, to_us) = (Endpoint::new(c.server, c.sport), Endpoint::new(c.local, c.lport));
                let seg = packet::read(buf.data(), flow.layout());
                if packet::write_server_ack(buf, server, to_us, &seg).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                let (_, verdict) = self.hop_to_server(id, &c, env)?;
                Some(verdict)
            }
            ServerSeg::SynAck => {
                let seg = packet::read(buf.data(), flow.layout());
                let opening = Opening::of(&c, &seg);
                if let Some(e) = self.conns.get_mut(id) {
                    opening.record(e);
                }
                if self.sync.is_some() {
                    // The peer needs the offsets now known (the state machine's record of
                    // this SYN-ACK went out before they were).
                    self.sync_conn(id, now, env.counters, false);
                }
                env.counters.syn_proxy_handshakes.inc();
                if opening.write_window_update(buf, vip, client, &seg).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(self.route_to(env, c.client))
            }
        }
    }
}

/// Client → server translation of a segment of established proxied connection `c`
/// (`crate::synproxy::packet::translate_to_server`), out of the established path.
#[inline(never)]
pub(super) fn proxied_to_server<B: PacketBuf>(buf: &mut B, flow: &L4View, c: &Conn) {
    let (seq_off, ts_off) = c.synproxy_offsets();
    let ws = WindowRewrite::unpack(c.synproxy_ws, ADVERTISED_WSCALE);
    let l = flow.layout();
    packet::translate_to_server(&mut buf.data_mut()[l.l4_offset()..l.ip_end()], seq_off, ts_off, &ws);
}
