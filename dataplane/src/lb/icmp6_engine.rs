//! The ICMPv6 errors the IPv6 L4 path sends in place of a NAT66 or tunnel packet it may not
//! forward (the building is [`crate::xmit::icmp6_err`]'s):
//! * hop limit 1 or 0 (`ip6_hop_limit`): time exceeded to the packet's sender;
//! * larger than the egress port's MTU (`ip6_too_big`; IPv6 routers never fragment):
//!   packet too big with that MTU to the sender; in tunnel mode, larger once in the outer
//!   header (`tunnel_too_big`): packet too big with the MTU less the outer header.
//!
//! Contract, as IPv4's `ttl_not_forwarded`: the offending packet is counted as dropped
//! under its reason; the error, a packet of our own (`local_originated`), goes when the
//! ICMP rate limits allow (shared with IPv4's errors; `icmp6_errors_limited` otherwise,
//! and nothing more is counted) and RFC 4443 §2.4 (e) does (`icmp6_not_sent`
//! otherwise, the buffer unchanged and dropped), routed back to the sender out of the
//! port of its next hop (`icmp6_errors_sent`; `no_route` when there is none). Its source
//! is the VIP of the flow (the address the client talked to; towards a server, an
//! address rvs answers for on every port). A later fragment never gets one.
//!
//! And the ICMPv6 errors it receives about a packet of an IPv6 flow
//! ([`LbEngine::handle_icmp6_error`]; parsing and rewriting are
//! [`crate::xmit::icmp6_err`]'s), as IPv4's `handle_icmp_error`:
//! * The connection is the one of the quoted packet reversed (a packet rvs sent); the
//!   error goes to the worker that owns it, found as for the flow's own packets: quoted
//!   from one of our IPv6 local addresses, `lport_owner(local port)`; from a VIP (a reply
//!   to a client), `client_owner6` of the quoted destination; else (a NAT66 packet to a
//!   server), `client_owner6` of the quoted source.
//! * NAT66 and Full-NAT: rewritten like the flow in the error's direction — from the
//!   server's side (port unreachable, packet too big about what rvs sent the server) back
//!   to the client as from the VIP about the client's own packet; from the client's side
//!   (about a reply) on to the server as about the server's own packet. The hop limit is
//!   decremented as the flow's is (1 or 0: `ip6_hop_limit`, no error about an error).
//!   A packet too big keeps its MTU: NAT66 and Full-NAT add no header, and the TOA rides
//!   only on the SYN and the handshake's last ACK, small segments (IPv4 adjusts none
//!   either). For a SYN-proxied connection the quoted TCP sequence or acknowledgement
//!   number moves into the receiver's numbering too, as IPv4's does.
//! * DR and tunnel: an error from the client's side about the server's direct reply
//!   (which came from the VIP) goes on to the server as the flow's packets do (tunnel:
//!   inside the outer header, hop limit decremented). Errors from the server's side
//!   about them match no connection, as for IPv4.
//! * Tunnel, packet too big about rvs's IPv6-in-IPv6 packet (sent to one of our port
//!   addresses, quoting the outer header): a packet too big from the VIP to the client
//!   about its own packet, with the MTU less the 40-byte outer header, within the ICMP
//!   rate limits (`icmp6_errors_limited`, dropped as `icmp6_not_sent`). Other errors
//!   about tunnel packets are `icmp6_unhandled`.
//! * NAT64 (`nat64_engine`): an error from the client's side about a reply becomes an
//!   ICMPv4 error from the local address to the server
//!   ([`crate::xmit::nat64_icmp`]); one quoting the connection's IPv4-mapped server side
//!   is `icmp6_unhandled`, as is one RFC 7915 does not translate.
//! * Counters: `icmp_errors_translated` for every error sent on (shared with IPv4); a
//!   malformed error or quote is `icmp6_malformed`, a bad checksum `icmp6_bad_checksum`,
//!   an error about no flow of ours (unknown connection, ICMPv6 or another protocol
//!   quoted: an error about an error) `icmp6_unhandled`; no client route `no_route`.

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use super::LbEngine;
use crate::conn::{client_owner6, lport_owner, Conn6, ConnFlags, Direction, FlowKey6};
use crate::l2l3::nd;
use crate::l2l3::route::RouteTable6;
use crate::l2l3::Verdict;
use crate::stats::{DropReason, WorkerCounters};
use crate::types::{ForwardMode, PortId};
use crate::view::L3_OFFSET;
use crate::xmit::icmp6_err::{self, Icmp6ErrError, Icmp6ErrView};
use crate::xmit::{tunnel6, Endpoint6};

/// Offset of the (outer) hop limit in the frame.
const HOP_LIMIT_AT: usize = L3_OFFSET + 7;

/// What an ICMPv6 error replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Icmp6Cause {
    /// Hop limit 1 or 0: time exceeded.
    HopLimit,
    /// Over the egress MTU (the value): packet too big.
    TooBig(u16),
    /// Over the egress MTU once in the IPv6 tunnel's outer header: packet too big with
    /// the largest inner packet that fits (the value; `tunnel_too_big`).
    TunnelTooBig(u16),
}

impl LbEngine {
    /// The verdict for a NAT66 packet in `buf` not forwarded for `cause`: its drop, and
    /// the ICMPv6 error from `our_addr` to its sender in its place (module docs). `first`
    /// false (a later fragment): the drop only.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp6_error<B: PacketBuf>(
        &self,
        buf: &mut B,
        cause: Icmp6Cause,
        first: bool,
        our_addr: Ipv6Addr,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let reason = match cause {
            Icmp6Cause::HopLimit => DropReason::Ip6HopLimit,
            Icmp6Cause::TooBig(_) => DropReason::Ip6TooBig,
            Icmp6Cause::TunnelTooBig(_) => DropReason::TunnelTooBig,
        };
        if !first {
            return Verdict::Drop(reason);
        }
        let sender = buf.data().get(L3_OFFSET + 8..L3_OFFSET + 24).and_then(|b| <[u8; 16]>::try_from(b).ok());
        if sender.is_some_and(|s| !self.icmp_limit.allow6(Ipv6Addr::from(s), now)) {
            counters.icmp6_errors_limited.inc();
            return Verdict::Drop(reason);
        }
        counters.drop_packet(reason);
        counters.local_originated.inc();
        let built: Result<Ipv6Addr, Icmp6ErrError> = match cause {
            Icmp6Cause::HopLimit => icmp6_err::time_exceeded(buf, our_addr),
            Icmp6Cause::TooBig(mtu) | Icmp6Cause::TunnelTooBig(mtu) => {
                icmp6_err::packet_too_big(buf, our_addr, u32::from(mtu))
            }
        };
        let Ok(to) = built else { return Verdict::Drop(DropReason::Icmp6NotSent) };
        match nd::next_hop(routes, to, in_port) {
            Some((port, next_hop)) => {
                counters.icmp6_errors_sent.inc();
                Verdict::Route6 { port, next_hop }
            }
            None => Verdict::Drop(DropReason::NoRoute),
        }
    }

    /// The egress MTU a NAT66 packet of `ip_len` bytes (IPv6 header and payload) going
    /// out of `port` exceeds, if it does.
    #[inline]
    pub(super) fn over_mtu6(&self, port: PortId, ip_len: u64) -> Option<u16> {
        let mtu = self.mtu(port.index());
        (ip_len > u64::from(mtu)).then_some(mtu)
    }

    /// Handles an ICMPv6 error (types 1 to 4) that arrived on `in_port` to a VIP, to an
    /// IPv6 local address, to one of our port addresses, or to nobody here (a NAT66
    /// client): translated and sent on when it is about a packet of a known flow, else
    /// dropped with its reason (module docs).
    #[cold]
    #[inline(never)]
    pub fn handle_icmp6_error<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let err = match icmp6_err::parse(buf.data()) {
            Ok(e) => e,
            Err(e) => return Verdict::Drop(e.into()),
        };
        if err.tunnelled() {
            return self.tunnel_icmp6_error(buf, &err, in_port, routes, counters, now);
        }
        let emb = *err.embedded();
        // The quoted packet is one we sent (src → dst); its flow's packets to us travel
        // dst → src.
        let key = FlowKey6 {
            proto: emb.proto,
            src: emb.dst.addr,
            sport: emb.dst.port,
            dst: emb.src.addr,
            dport: emb.src.port,
        };
        let owner = if self.is_local6(key.dst) {
            lport_owner(key.dport, self.workers)
        } else if self.is_vip6(key.dst) {
            client_owner6(key.src, key.sport, self.workers)
        } else {
            client_owner6(key.dst, key.dport, self.workers)
        };
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let Some((id, dir)) = self.conns6.lookup(&key) else { return Verdict::Drop(DropReason::Icmp6Unhandled) };
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Icmp6Unhandled) };
        // A NAT64 connection's server side is IPv4: the error about its reply becomes an
        // ICMPv4 error (`nat64_engine`). Only its client's side is IPv6: an IPv6 error
        // quoting the IPv4-mapped addresses is forged.
        if let Some(ends) = c.nat64_ends() {
            if dir != Direction::Inbound {
                return Verdict::Drop(DropReason::Icmp6Unhandled);
            }
            return self.nat64_icmp6_error(buf, &err, &c, ends, in_port, counters);
        }
        let (client, vip) = (Endpoint6::new(c.client, c.cport), Endpoint6::new(c.vip, c.vport));
        let (server, local) = (Endpoint6::new(c.server, c.sport), Endpoint6::new(c.local, c.lport));
        let (outer_src, outer_dst, inner_src, inner_dst, to) = match (dir, c.forward) {
            // From the server's side about what we sent the server: back to the client as
            // about the client's own packet to the VIP.
            (Direction::Reply, ForwardMode::Nat) => (Some(c.vip), None, None, Some(vip), c.client),
            (Direction::Reply, ForwardMode::FullNat) => {
                (Some(c.vip), Some(c.client), Some(client), Some(vip), c.client)
            }
            (Direction::Reply, ForwardMode::Dr | ForwardMode::Tunnel) => {
                return Verdict::Drop(DropReason::Icmp6Unhandled);
            }
            // From the client's side about a reply we sent: on to the server as about the
            // server's own packet.
            (Direction::Inbound, ForwardMode::Nat) => (None, Some(c.server), Some(server), None, c.server),
            (Direction::Inbound, ForwardMode::FullNat) => {
                (Some(c.local), Some(c.server), Some(server), Some(local), c.server)
            }
            (Direction::Inbound, ForwardMode::Dr | ForwardMode::Tunnel) => {
                return self.icmp6_like_flow(buf, &err, &c, in_port, routes, counters);
            }
        };
        let Some((port, next_hop)) = nd::next_hop(routes, to, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if !decrement_hop_limit(buf) {
            return Verdict::Drop(DropReason::Ip6HopLimit);
        }
        let r = icmp6_err::translate(buf, &err, outer_src, outer_dst, inner_src, inner_dst).and_then(|()| {
            // A SYN-proxied connection numbers the server's bytes differently on each
            // side: the quote moves into the receiver's numbering too (as IPv4's).
            if !c.flags.contains(ConnFlags::SYNPROXY) || c.flags.contains(ConnFlags::SYNPROXY_PENDING) {
                return Ok(());
            }
            let (seq_off, _) = c.synproxy_offsets();
            match dir {
                // About a segment rvs sent the server: its acknowledgement is in the
                // server's numbering; the client's is `seq_off` lower.
                Direction::Reply => icmp6_err::shift_quoted_tcp(buf, &err, 0, seq_off.wrapping_neg()),
                // About a segment rvs sent the client: its sequence number is in the
                // client's numbering; the server's is `seq_off` higher.
                Direction::Inbound => icmp6_err::shift_quoted_tcp(buf, &err, seq_off, 0),
            }
        });
        match r {
            Ok(()) => {
                counters.icmp_errors_translated.inc();
                Verdict::Route6 { port, next_hop }
            }
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// Sends an ICMPv6 error about a DR or tunnel flow `c` (from the client's side, about
    /// the server's direct reply) on to its server as the flow's packets go: DR to the
    /// server's MAC, hop limit untouched; tunnel inside an outer header, the inner hop
    /// limit decremented.
    fn icmp6_like_flow<B: PacketBuf>(
        &self,
        buf: &mut B,
        err: &Icmp6ErrView,
        c: &Conn6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
    ) -> Verdict {
        let Some((port, next_hop)) = nd::next_hop(routes, c.server, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if c.forward == ForwardMode::Tunnel {
            let Some(src) = self.addrs6.source_for(port, c.server) else { return Verdict::Drop(DropReason::NoRoute) };
            if !decrement_hop_limit(buf) {
                return Verdict::Drop(DropReason::Ip6HopLimit);
            }
            let inner_len = err.ip_end() - L3_OFFSET;
            if let Err(e) = tunnel6::encap(buf, inner_len, src, c.server, self.port_mtu(port)) {
                return Verdict::Drop(e.into());
            }
        }
        counters.icmp_errors_translated.inc();
        Verdict::Route6 { port, next_hop }
    }

    /// A packet too big about our IPv6-in-IPv6 packet of a tunnel flow: a packet too big
    /// from the VIP to the client, the MTU less the outer header (module docs).
    fn tunnel_icmp6_error<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        err: &Icmp6ErrView,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let emb = *err.embedded();
        if emb.mtu.is_none() {
            return Verdict::Drop(DropReason::Icmp6Unhandled);
        }
        // The inner packet is the client's, as it came to the VIP.
        let owner = client_owner6(emb.src.addr, emb.src.port, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let key = FlowKey6 {
            proto: emb.proto,
            src: emb.src.addr,
            sport: emb.src.port,
            dst: emb.dst.addr,
            dport: emb.dst.port,
        };
        let c = match self.conns6.lookup(&key) {
            Some((id, Direction::Inbound)) => self.conns6.get(id).copied(),
            _ => None,
        };
        let Some(c) = c.filter(|c| c.forward == ForwardMode::Tunnel) else {
            return Verdict::Drop(DropReason::Icmp6Unhandled);
        };
        if !self.icmp_limit.allow6(c.client, now) {
            counters.icmp6_errors_limited.inc();
            return Verdict::Drop(DropReason::Icmp6NotSent);
        }
        let Ok(to) = icmp6_err::tunnel_too_big(buf, err, c.vip) else {
            return Verdict::Drop(DropReason::Icmp6NotSent);
        };
        match nd::next_hop(routes, to, in_port) {
            Some((port, next_hop)) => {
                counters.icmp_errors_translated.inc();
                Verdict::Route6 { port, next_hop }
            }
            None => Verdict::Drop(DropReason::NoRoute),
        }
    }
}

/// Decrements the outer hop limit of the IPv6 packet in `buf` (not covered by any
/// checksum); false, the buffer unchanged, when it is 1 or 0 and the packet may not be
/// forwarded (RFC 8200 §3).
pub(super) fn decrement_hop_limit<B: PacketBuf>(buf: &mut B) -> bool {
    match buf.data_mut().get_mut(HOP_LIMIT_AT) {
        Some(hl) if *hl > 1 => {
            *hl -= 1;
            true
        }
        _ => false,
    }
}
