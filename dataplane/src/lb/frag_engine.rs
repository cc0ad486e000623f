//! The L4 engine's path for IPv4 fragments of TCP/UDP flows, whose ports the worker's
//! fragment table found ([`crate::frag`], the worker's `frag` module).
//!
//! Contract, per mode (why no reassembly: [`crate::xmit::frag`]):
//! * Every fragment of a datagram is matched to its flow's connection by the flow's key
//!   (addresses from the fragment, ports from the train), so all of them go to the same
//!   real server, in every mode, and each is forwarded as it comes (no reassembly, no
//!   added latency but for fragments that come before their first).
//! * DR: only the MACs change, every fragment as it is.
//! * NAT and Full-NAT, both directions: the first fragment (which holds the L4 header) is
//!   rewritten like a whole packet — addresses, ports, the L4 checksum with its
//!   pseudo-header, the IPv4 header checksum — by the same rewrites; a later fragment gets
//!   the address rewrite and its header checksum only ([`crate::xmit::frag::rewrite_later`]).
//! * Full-NAT TOA: never inserted into a fragment. Growing the first fragment by 8 bytes
//!   would move every later byte of the datagram, so the later fragments' offsets would
//!   be wrong: the datagram would have to be reassembled and cut again. A TCP first
//!   fragment that would carry the TOA goes without it (`toa_skipped`) and the
//!   connection keeps asking for it, so its next unfragmented segment carries it (the
//!   handshake's segments are never fragmented in practice: they carry no data).
//! * IPIP: each fragment is encapsulated as it is. An inner fragment has DF clear, so an
//!   outer packet over the egress MTU is cut into outer fragments by the worker
//!   ([`crate::xmit::frag::fragment_outer`]); a fragment with DF set keeps the tunnel's
//!   MTU rule (`tunnel_too_big`, without the ICMP error: no ICMP error is sent about a
//!   fragment other than the first, RFC 1812 §4.3.2.7, and a DF fragment is too rare to
//!   special-case the first).
//! * New connections: a UDP datagram's first fragment opens one like any datagram (the
//!   service's admission and scheduler); fragments are never scheduled otherwise. No TCP
//!   connection is opened by a fragment, and a fragmented SYN is not forwarded
//!   (`ip_fragment`), nor is any fragment of a SYN-proxied connection (the proxy's
//!   sequence translation wants the whole segment), nor a later fragment whose flow has
//!   no connection (its first fragment was refused, under its own reason).
//! * TTL: decremented like any packet; an expired first fragment gets the ICMP time
//!   exceeded of a whole packet, an expired later fragment is dropped (`ttl_exceeded`)
//!   without one (RFC 1812 §4.3.2.7).
//! * NAT64: a fragment to a local address that matches no IPv4 connection may be a NAT64
//!   reply's; it is translated to an IPv6 fragment towards the client
//!   (`nat64_engine`, RFC 7915 §4.1), with the same ownership (the local port's).
//! * Ownership is the flow's ([`flow_owner`]): the worker steers each fragment to it
//!   before calling [`LbEngine::handle_fragment`]; a fragment that still is not this
//!   worker's comes back as [`Verdict::Redirect`], which the worker counts as a loop.

use std::net::Ipv4Addr;

use rvs_drivers::PacketBuf;

use super::{LbEngine, LbEnv};
use crate::conn::owner::{client_owner, lport_owner};
use crate::conn::{ConnFlags, Direction, FlowKey};
use crate::l2l3::{AddrKind, Verdict};
use crate::stats::DropReason;
use crate::types::{ForwardMode, L4Proto};
use crate::view::FragView;
use crate::xmit::frag::rewrite_later;
use crate::xmit::ttl::{self, TtlDecrement, TtlVerdict};
use crate::xmit::{fullnat, nat, tunnel, Endpoint};

/// The worker among `workers` that owns the flow `key` whose destination is `dst` to us
/// (`None`: not ours, a NAT reply), as [`LbEngine::handle_view`] decides for whole
/// packets: client → VIP and NAT replies by the client's address and port, Full-NAT
/// replies by the local port. `None` for destinations whose fragments are not forwarded
/// (our port and floating addresses).
pub fn flow_owner(key: &FlowKey, dst: Option<AddrKind>, workers: usize) -> Option<usize> {
    match dst {
        Some(AddrKind::Vip) => Some(client_owner(key.src, key.sport, workers)),
        Some(AddrKind::Local) => Some(lport_owner(key.dport, workers)),
        None => Some(client_owner(key.dst, key.dport, workers)),
        Some(AddrKind::Port | AddrKind::Floating) => None,
    }
}

impl LbEngine {
    /// Handles one IPv4 fragment of a TCP/UDP flow (see the module docs), whose
    /// destination is `dst` in `env.addrs` (`None`: not ours); may rewrite `buf` in place.
    /// The verdict is the flow's: route to the server or the client, or drop with a reason.
    /// An IPIP verdict may leave an outer packet over the egress MTU ([`Self::port_mtu`]),
    /// for the worker to fragment.
    #[inline(never)]
    pub fn handle_fragment<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        frag: &FragView,
        dst: Option<AddrKind>,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        let Some(owner) = flow_owner(&frag.key, dst, self.workers) else {
            return Verdict::Drop(DropReason::IpFragment);
        };
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        if frag.first.is_some_and(|v| v.flags.is_some_and(|f| f.syn())) {
            return Verdict::Drop(DropReason::IpFragment);
        }
        match dst {
            Some(AddrKind::Vip) => self.fragment_inbound(buf, frag, env, now),
            Some(AddrKind::Local) => self.fragment_reply(buf, frag, true, env, now),
            _ => self.fragment_reply(buf, frag, false, env, now),
        }
    }

    /// The IPv4 MTU of port `port` (the configured one, or [`super::DEFAULT_MTU`]).
    pub fn port_mtu(&self, port: crate::types::PortId) -> u16 {
        self.mtu(port.index())
    }

    /// A client → VIP fragment.
    fn fragment_inbound<B: PacketBuf>(&mut self, buf: &mut B, frag: &FragView, env: &LbEnv<'_>, now: u64) -> Verdict {
        let key = frag.key;
        let (id, fresh) = match self.conns.lookup(&key) {
            Some((id, Direction::Inbound)) => (id, false),
            Some((_, Direction::Reply)) => return Verdict::Drop(DropReason::ReplyNoConn),
            None => {
                let Some((svc, _)) = self.snap.lookup_v4(key.proto, key.dst, key.dport) else {
                    return Verdict::Drop(DropReason::L4NoService);
                };
                match (&frag.first, key.proto) {
                    (Some(view), L4Proto::Udp) => match self.new_conn(svc, view, env, now) {
                        Ok(id) => (id, true),
                        Err(reason) => return Verdict::Drop(reason),
                    },
                    (_, L4Proto::Tcp) => return Verdict::Drop(DropReason::TcpNoConn),
                    (None, L4Proto::Udp) => return Verdict::Drop(DropReason::IpFragment),
                }
            }
        };
        if self.conns.get(id).is_some_and(|c| c.flags.contains(ConnFlags::SYNPROXY)) {
            return Verdict::Drop(DropReason::IpFragment);
        }
        let flags = frag.first.and_then(|v| v.flags);
        let change = match self.account_packet(
            id,
            Direction::Inbound,
            flags,
            u64::from(frag.ip_total_len),
            now,
            DropReason::TcpNoConn,
        ) {
            Ok(change) => change,
            Err(reason) => return Verdict::Drop(reason),
        };
        if self.sync.is_some() && (fresh || change.changed()) {
            // No TOA rides on a fragment: the connection still wants it.
            self.sync_conn(id, now, env.counters, false);
        }
        let Some(&c) = self.conns.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        let fold = matches!(c.forward, ForwardMode::Nat | ForwardMode::FullNat);
        let ttl = match self.fragment_ttl(buf, frag, fold, env, now, || c.vip) {
            Ok(ttl) => ttl,
            Err(v) => return v,
        };
        let Some((port, to_server)) = self.hop_to_server(id, &c, env) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let server = Endpoint::new(c.server, c.sport);
        match c.forward {
            ForwardMode::Dr => to_server,
            ForwardMode::Nat => {
                match &frag.first {
                    Some(v) => nat::inbound_forwarded(buf, v.layout(), server, ttl),
                    None => rewrite_later(buf.data_mut(), None, Some(c.server), ttl),
                }
                to_server
            }
            ForwardMode::FullNat => {
                let local = Endpoint::new(c.local, c.lport);
                match &frag.first {
                    Some(v) => {
                        let mtu = self.mtu(port.index());
                        // `toa: None`: see the module docs.
                        let _ = fullnat::inbound_forwarded(buf, v.layout(), local, server, None, mtu, ttl);
                        if c.flags.contains(ConnFlags::TOA_PENDING) && key.proto == L4Proto::Tcp {
                            env.counters.toa_skipped.inc();
                        }
                    }
                    None => rewrite_later(buf.data_mut(), Some(c.local), Some(c.server), ttl),
                }
                to_server
            }
            ForwardMode::Tunnel => {
                let outer_src = env.port_addrs.get(port.index()).copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
                // DF clear (the rule for fragments): any size, the worker cuts the outer
                // packet to the MTU. DF set: the tunnel's MTU rule.
                let mtu = if frag.dont_frag { self.mtu(port.index()) } else { u16::MAX };
                match tunnel::encap(buf, frag.ip_end, outer_src, c.server, mtu) {
                    Ok(()) => to_server,
                    Err(e) => Verdict::Drop(e.into()),
                }
            }
        }
    }

    /// A server → client (NAT) or server → local address (Full-NAT, `to_us`) fragment.
    fn fragment_reply<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        frag: &FragView,
        to_us: bool,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        let miss = if to_us { DropReason::ReplyNoConn } else { DropReason::IpNotForUs };
        let id = match self.conns.lookup(&frag.key) {
            Some((id, Direction::Reply)) => id,
            // A miss to a local address may be a NAT64 reply's fragment (`nat64_engine`).
            None if to_us => return self.nat64_fragment_reply(buf, frag, env, now),
            _ => return Verdict::Drop(miss),
        };
        if self.conns.get(id).is_some_and(|c| c.flags.contains(ConnFlags::SYNPROXY)) {
            return Verdict::Drop(DropReason::IpFragment);
        }
        let flags = frag.first.and_then(|v| v.flags);
        match self.account_packet(id, Direction::Reply, flags, u64::from(frag.ip_total_len), now, miss) {
            Ok(change) if self.sync.is_some() && change.changed() => self.sync_conn(id, now, env.counters, false),
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(&c) = self.conns.get(id) else { return Verdict::Drop(miss) };
        let (src, dst) = (frag.key.src, frag.key.dst);
        let our_addr = || {
            if to_us {
                dst
            } else {
                env.routes.lookup(src).and_then(|h| env.port_addrs.get(h.port.index()).copied()).unwrap_or(c.vip)
            }
        };
        let ttl = match self.fragment_ttl(buf, frag, true, env, now, our_addr) {
            Ok(ttl) => ttl,
            Err(v) => return v,
        };
        let vip = Endpoint::new(c.vip, c.vport);
        match (c.forward, &frag.first) {
            (ForwardMode::Nat, Some(v)) => nat::outbound_forwarded(buf, v.layout(), vip, ttl),
            (ForwardMode::Nat, None) => rewrite_later(buf.data_mut(), Some(c.vip), None, ttl),
            // A fragmented SYN-ACK has no MSS worth clamping (a SYN-ACK carries no data).
            (ForwardMode::FullNat, Some(v)) => {
                fullnat::outbound_forwarded(buf, v.layout(), vip, Endpoint::new(c.client, c.cport), None, ttl)
            }
            (ForwardMode::FullNat, None) => rewrite_later(buf.data_mut(), Some(c.vip), Some(c.client), ttl),
            // DR and IPIP connections index no reply key; kept total.
            (ForwardMode::Dr | ForwardMode::Tunnel, _) => ttl.apply(buf, frag.ip_end),
        }
        self.route_to(env, c.client)
    }

    /// The TTL of a fragment: a first fragment as any packet ([`Self::ttl_decrement`],
    /// ICMP time exceeded included); a later one decremented the same way, but dropped
    /// without an ICMP error when expired (module docs).
    fn fragment_ttl<B: PacketBuf>(
        &self,
        buf: &mut B,
        frag: &FragView,
        fold: bool,
        env: &LbEnv<'_>,
        now: u64,
        our_addr: impl FnOnce() -> Ipv4Addr,
    ) -> Result<TtlDecrement, Verdict> {
        if frag.first.is_some() {
            return self.ttl_decrement(buf, frag.ip_end, fold, env, now, our_addr);
        }
        match ttl::decrement(buf, frag.ip_end) {
            Ok(d) if fold => Ok(d),
            Ok(d) => {
                d.apply(buf, frag.ip_end);
                Ok(TtlDecrement::NONE)
            }
            Err(TtlVerdict::Malformed(e)) => Err(Verdict::Drop(e.into())),
            Err(_) => Err(Verdict::Drop(DropReason::TtlExceeded)),
        }
    }
}
