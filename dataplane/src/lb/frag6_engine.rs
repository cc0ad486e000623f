//! The L4 engine's path for IPv6 fragments of TCP/UDP flows, whose ports the worker's
//! fragment table found (the worker's `frag6` module): the IPv6 counterpart of the IPv4
//! fragment path (`frag_engine`), for the IPv6 modes there are (DR and NAT66).
//!
//! Contract, per mode (no reassembly, as for IPv4: the worker's `frag` module says why):
//! * Every fragment of a datagram is matched to its flow's IPv6 connection by the flow's
//!   key (addresses from the fragment, ports from its train), so all of them go to the
//!   same real server, and each is forwarded as it comes.
//! * DR: only the MACs change, every fragment as it is (hop limit untouched, as for a
//!   whole packet).
//! * NAT66, both directions: the first fragment (which holds the L4 header) is rewritten
//!   like a whole packet — address, port, the L4 checksum incrementally — by the same
//!   rewrite ([`nat66::inbound`], [`nat66::reply`]); a later fragment gets the address and
//!   the hop limit only ([`nat66::inbound_later`], [`nat66::reply_later`]; why the
//!   checksum needs nothing more: [`crate::xmit::nat66`]). The hop limit is decremented in
//!   every fragment; a fragment with hop limit 1 or 0 is dropped (`ip6_hop_limit`), one
//!   over the egress MTU too (`ip6_too_big`); the first fragment gets the ICMPv6 error a
//!   whole packet would (`icmp6_engine`), a later one none (RFC 4443 §2.4 (e)).
//! * New connections: a UDP datagram's first fragment opens one like any datagram (the
//!   service's admission and scheduler, `new_conn6`); fragments are never scheduled
//!   otherwise. No TCP connection is opened by a fragment, a fragmented SYN is not
//!   forwarded (`ip6_fragment`), nor a later fragment whose flow has no connection (its
//!   first fragment was refused, under its own reason), nor a fragment of a connection in
//!   a mode without a fragment rule here (`ip6_fragment`; the table refuses those modes on
//!   IPv6 services today).
//! * Ownership is the flow's ([`flow_owner6`]): the worker steers each fragment to it
//!   before calling [`LbEngine::handle_fragment6`]; a fragment that still is not this
//!   worker's comes back as [`Verdict::Redirect`], which the worker counts as a loop.

use super::icmp6_engine::Icmp6Cause;
use super::LbEngine;
use crate::conn::{client_owner6, Direction, FlowKey6};
use crate::l2l3::nd;
use crate::l2l3::route::RouteTable6;
use crate::l2l3::Verdict;
use crate::stats::{DropReason, WorkerCounters};
use crate::types::{ForwardMode, L4Proto, PortId};
use crate::view6::FragView6;
use crate::xmit::nat66;

/// The worker among `workers` that owns the IPv6 flow `key`, as
/// [`LbEngine::handle_view6`] decides for whole packets: to a VIP (`to_vip`) by the
/// client's address and port (the source), otherwise (a NAT66 reply) by the client's as
/// the destination.
pub fn flow_owner6(key: &FlowKey6, to_vip: bool, workers: usize) -> usize {
    if to_vip {
        client_owner6(key.src, key.sport, workers)
    } else {
        client_owner6(key.dst, key.dport, workers)
    }
}

impl LbEngine {
    /// Handles one IPv6 fragment (not atomic) of a TCP/UDP flow (see the module docs)
    /// that arrived on `in_port`: to a VIP, or else a NAT66 reply. May rewrite `buf` in
    /// place; the verdict is the flow's (route to the server or the client) or a drop.
    #[inline(never)]
    pub fn handle_fragment6<B: rvs_drivers::PacketBuf>(
        &mut self,
        buf: &mut B,
        frag: &FragView6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let to_vip = self.snap.has_vip6(frag.key.dst);
        let owner = flow_owner6(&frag.key, to_vip, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        if frag.first.is_some_and(|v| v.flags.is_some_and(|f| f.syn())) {
            return Verdict::Drop(DropReason::Ip6Fragment);
        }
        if to_vip {
            self.fragment6_inbound(buf, frag, in_port, routes, counters, now)
        } else {
            self.fragment6_reply(buf, frag, in_port, routes, counters, now)
        }
    }

    /// A client → VIP fragment.
    fn fragment6_inbound<B: rvs_drivers::PacketBuf>(
        &mut self,
        buf: &mut B,
        frag: &FragView6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let key = frag.key;
        let id = match self.conns6.lookup(&key) {
            Some((id, Direction::Inbound)) => id,
            Some((_, Direction::Reply)) => return Verdict::Drop(DropReason::ReplyNoConn),
            None => {
                let Some((svc_idx, _)) = self.snap.lookup_v6(key.proto, key.dst, key.dport) else {
                    return Verdict::Drop(DropReason::L4NoService);
                };
                match (&frag.first, key.proto) {
                    (Some(view), L4Proto::Udp) => match self.new_conn6(svc_idx, view, counters, now) {
                        Ok(id) => id,
                        Err(reason) => return Verdict::Drop(reason),
                    },
                    (_, L4Proto::Tcp) => return Verdict::Drop(DropReason::TcpNoConn),
                    (None, L4Proto::Udp) => return Verdict::Drop(DropReason::Ip6Fragment),
                }
            }
        };
        let flags = frag.first.and_then(|v| v.flags);
        if let Err(reason) = self.account6_packet(id, Direction::Inbound, flags, frag.ip_len, now) {
            return Verdict::Drop(reason);
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        let Some((port, next_hop)) = nd::next_hop(routes, c.server, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        match c.forward {
            ForwardMode::Dr => Verdict::Route6 { port, next_hop },
            ForwardMode::Nat => {
                let first = frag.is_first();
                if frag.hop_limit <= 1 {
                    return self.icmp6_error(buf, Icmp6Cause::HopLimit, first, key.dst, in_port, routes, counters, now);
                }
                if let Some(mtu) = self.over_mtu6(port, frag.ip_len) {
                    return self.icmp6_error(
                        buf,
                        Icmp6Cause::TooBig(mtu),
                        first,
                        key.dst,
                        in_port,
                        routes,
                        counters,
                        now,
                    );
                }
                match &frag.first {
                    Some(v) => nat66::inbound(buf.data_mut(), v.layout(), c.server, c.sport),
                    None => nat66::inbound_later(buf.data_mut(), c.server),
                }
                Verdict::Route6 { port, next_hop }
            }
            ForwardMode::FullNat | ForwardMode::Tunnel => Verdict::Drop(DropReason::Ip6Fragment),
        }
    }

    /// A server → client fragment of a NAT66 connection, or an IPv6 fragment for nobody
    /// here (`ip6_not_for_us`).
    fn fragment6_reply<B: rvs_drivers::PacketBuf>(
        &mut self,
        buf: &mut B,
        frag: &FragView6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let Some((id, Direction::Reply)) = self.conns6.lookup(&frag.key) else {
            return Verdict::Drop(DropReason::Ip6NotForUs);
        };
        if self.conns6.get(id).is_some_and(|c| c.forward != ForwardMode::Nat) {
            return Verdict::Drop(DropReason::Ip6Fragment);
        }
        if frag.hop_limit <= 1 {
            let Some(vip) = self.conns6.get(id).map(|c| c.vip) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
            return self.icmp6_error(buf, Icmp6Cause::HopLimit, frag.is_first(), vip, in_port, routes, counters, now);
        }
        let flags = frag.first.and_then(|v| v.flags);
        if let Err(reason) = self.account6_packet(id, Direction::Reply, flags, frag.ip_len, now) {
            return Verdict::Drop(reason);
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
        let Some((port, next_hop)) = nd::next_hop(routes, c.client, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if let Some(mtu) = self.over_mtu6(port, frag.ip_len) {
            return self.icmp6_error(
                buf,
                Icmp6Cause::TooBig(mtu),
                frag.is_first(),
                c.vip,
                in_port,
                routes,
                counters,
                now,
            );
        }
        match &frag.first {
            Some(v) => nat66::reply(buf.data_mut(), v.layout(), c.vip, c.vport),
            None => nat66::reply_later(buf.data_mut(), c.vip),
        }
        Verdict::Route6 { port, next_hop }
    }
}
