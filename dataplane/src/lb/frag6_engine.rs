//! The L4 engine's path for IPv6 fragments of TCP/UDP flows, whose ports the worker's
//! fragment table found (the worker's `frag6` module): the IPv6 counterpart of the IPv4
//! fragment path (`frag_engine`), for every IPv6 mode (DR, NAT66, Full-NAT, tunnel).
//!
//! Contract, per mode (no reassembly, as for IPv4: the worker's `frag` module says why):
//! * Every fragment of a datagram is matched to its flow's IPv6 connection by the flow's
//!   key (addresses from the fragment, ports from its train), so all of them go to the
//!   same real server, and each is forwarded as it comes. One path serves both
//!   directions: find the connection, check the hop limit, account, pick the next hop
//!   towards the server or the client, then the mode's step below.
//! * DR: only the MACs change, every fragment as it is (hop limit untouched, as for a
//!   whole packet).
//! * NAT66, both directions: the first fragment (which holds the L4 header) is rewritten
//!   like a whole packet — address, port, the L4 checksum incrementally — by the same
//!   rewrite ([`nat66::inbound`], [`nat66::reply`]); a later fragment gets the address and
//!   the hop limit only ([`nat66::inbound_later`], [`nat66::reply_later`]; why the
//!   checksum needs nothing more: [`crate::xmit::nat66`]).
//! * Full-NAT, both directions: the same argument with both ends. The addresses change in
//!   every fragment (the receiver reassembles by them, and its pseudo-header uses them);
//!   the first fragment gets the ports and the checksum updated for all four changes by
//!   the whole-packet rewrite ([`fullnat66::inbound`], [`fullnat66::outbound`]); a later
//!   fragment the two addresses and the hop limit ([`fullnat66::later_fragment`]). The
//!   datagram's other bytes and its upper-layer length do not change, so the first
//!   fragment's checksum is the translated datagram's. No TOA is inserted into a
//!   fragment: growing the first fragment would move every later byte of the datagram,
//!   whose later fragments' offsets would then be wrong (it would have to be reassembled
//!   and cut again). A TCP first fragment that would carry it goes without it
//!   (`toa_skipped`), and the connection keeps asking, as IPv4's does; what matters here
//!   is UDP (large DNS answers, which carry no TOA anyway). No MSS clamp either: a
//!   SYN-ACK carries no data and is never fragmented.
//! * Tunnel (client → server only: the server answers the client directly): each
//!   fragment is encapsulated whole, as it came (its fragment header inside), after the
//!   inner hop limit is decremented, in an outer header from the egress port's address
//!   on the server's prefix ([`tunnel6::encap`]); the server's decapsulator passes the
//!   inner fragments to its own reassembly. rvs does not fragment the outer packet (an
//!   IPv6 router does not fragment, RFC 8200 §5): a fragment too big for the outer header
//!   is dropped (`tunnel_too_big`) with a packet too big to the client for the first
//!   fragment, carrying the largest inner packet that fits, as whole packets get; the
//!   client's stack then cuts its datagrams smaller.
//! * Hop limit (NAT66, Full-NAT, tunnel): decremented in every fragment; a fragment with
//!   hop limit 1 or 0 is dropped (`ip6_hop_limit`), one over the egress MTU too
//!   (`ip6_too_big`); the first fragment gets the ICMPv6 error a whole packet would
//!   (`icmp6_engine`), from the VIP; a later one none (RFC 4443 §2.4 (e)).
//! * New connections: a UDP datagram's first fragment opens one like any datagram (the
//!   service's admission and scheduler, `new_conn6`, a Full-NAT local port included);
//!   fragments are never scheduled otherwise. No TCP connection is opened by a fragment,
//!   a fragmented SYN is not forwarded (`ip6_fragment`), nor a later fragment whose flow
//!   has no connection (its first fragment was refused, under its own reason), nor any
//!   fragment of a SYN-proxied connection (the proxy's sequence translation wants the
//!   whole segment), nor a reply fragment of a DR or tunnel connection (those index no
//!   reply key; kept total).
//! * NAT64 (`nat64_engine`): the client's fragments are translated to IPv4 fragments
//!   towards the server ([`crate::xmit::nat64::fragment_v6_to_v4`], RFC 7915 §5.1.1),
//!   each as it comes; a first fragment of a new UDP flow opens its connection as above.
//!   The server's IPv4 fragments to a local address come in over IPv4 (`frag_engine`)
//!   and are translated to IPv6 fragments towards the client there (`nat64_engine`).
//! * Ownership is the flow's ([`flow_owner6`]): the worker steers each fragment to it
//!   before calling [`LbEngine::handle_fragment6`]; a fragment that still is not this
//!   worker's comes back as [`Verdict::Redirect`], which the worker counts as a loop.

use std::net::Ipv6Addr;

use super::icmp6_engine::Icmp6Cause;
use super::LbEngine;
use crate::conn::{client_owner6, lport_owner, Conn6, ConnFlags, ConnId, Direction, FlowKey6};
use crate::l2l3::nd;
use crate::l2l3::route::RouteTable6;
use crate::l2l3::Verdict;
use crate::stats::{DropReason, WorkerCounters};
use crate::types::{ForwardMode, L4Proto, PortId};
use crate::view6::FragView6;
use crate::xmit::{fullnat66, nat66, tunnel6, Endpoint6};

/// Offset of the inner packet's hop limit in a frame after [`tunnel6::encap`].
const INNER_HOP_LIMIT_AT: usize = crate::view::L3_OFFSET + tunnel6::OUTER_HEADER_LEN + 7;

/// What an IPv6 fragment's destination is to the engine ([`LbEngine::dst6`]): it decides
/// the flow's owner and which way the flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst6 {
    /// The VIP of an IPv6 service: client → service.
    Vip,
    /// One of the IPv6 Full-NAT local addresses: a Full-NAT reply.
    Local,
    /// Neither: a NAT66 reply (server → client), if anything.
    Other,
}

/// The worker among `workers` that owns the IPv6 flow `key` whose destination is `dst`,
/// as [`LbEngine::handle_view6`] decides for whole packets: to a VIP by the client's
/// address and port (the source), a Full-NAT reply by the local port (the destination
/// port), a NAT66 reply by the client's as the destination.
pub fn flow_owner6(key: &FlowKey6, dst: Dst6, workers: usize) -> usize {
    match dst {
        Dst6::Vip => client_owner6(key.src, key.sport, workers),
        Dst6::Local => lport_owner(key.dport, workers),
        Dst6::Other => client_owner6(key.dst, key.dport, workers),
    }
}

impl LbEngine {
    /// What the IPv6 address `a` is to this engine, for [`flow_owner6`].
    pub fn dst6(&self, a: Ipv6Addr) -> Dst6 {
        if self.snap.has_vip6(a) {
            Dst6::Vip
        } else if self.is_local6(a) {
            Dst6::Local
        } else {
            Dst6::Other
        }
    }

    /// Handles one IPv6 fragment (not atomic) of a TCP/UDP flow (see the module docs)
    /// that arrived on `in_port`: to a VIP, a Full-NAT reply to a local address, or else
    /// a NAT66 reply. May rewrite `buf` in place; the verdict is the flow's (route to the
    /// server or the client) or a drop.
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
        let dst = self.dst6(frag.key.dst);
        let owner = flow_owner6(&frag.key, dst, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        if frag.first.is_some_and(|v| v.flags.is_some_and(|f| f.syn())) {
            return Verdict::Drop(DropReason::Ip6Fragment);
        }
        let found = match dst {
            Dst6::Vip => {
                self.fragment6_inbound_conn(frag, counters, now).map(|(id, fresh)| (id, Direction::Inbound, fresh))
            }
            Dst6::Local | Dst6::Other => {
                let miss = if dst == Dst6::Local { DropReason::ReplyNoConn } else { DropReason::Ip6NotForUs };
                match self.conns6.lookup(&frag.key) {
                    Some((id, Direction::Reply)) => Ok((id, Direction::Reply, false)),
                    _ => Err(miss),
                }
            }
        };
        let (id, dir, fresh) = match found {
            Ok(f) => f,
            Err(reason) => return Verdict::Drop(reason),
        };
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
        let kept = match (c.forward, dir) {
            (ForwardMode::Dr | ForwardMode::Tunnel, Direction::Reply) => false,
            // NAT64 translates the client's fragments (`nat64_engine`); a reply's come
            // in over IPv4. A SYN-proxied one's are not translated into the server's
            // numbering (as every proxied flow's, below).
            _ if c.nat64_ends().is_some() => dir == Direction::Inbound && !c.flags.contains(ConnFlags::SYNPROXY),
            _ => !c.flags.contains(ConnFlags::SYNPROXY),
        };
        if !kept {
            return Verdict::Drop(DropReason::Ip6Fragment);
        }
        let first = frag.is_first();
        if c.forward != ForwardMode::Dr && frag.hop_limit <= 1 {
            return self.icmp6_error(buf, Icmp6Cause::HopLimit, first, c.vip, in_port, routes, counters, now);
        }
        let flags = frag.first.and_then(|v| v.flags);
        match self.account6_packet(id, dir, flags, frag.ip_len, now) {
            Ok(change) if self.sync.is_some() && (fresh || change.changed()) => {
                self.sync_conn6(id, now, counters, false)
            }
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
        if let Some(ends) = c.nat64_ends() {
            return self.nat64_fragment(buf, frag, &c, ends, in_port, routes, counters, now);
        }
        let peer = if dir == Direction::Inbound { c.server } else { c.client };
        let Some((port, next_hop)) = nd::next_hop(routes, peer, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let to_peer = Verdict::Route6 { port, next_hop };
        match c.forward {
            ForwardMode::Dr => to_peer,
            ForwardMode::Tunnel => {
                // The server is on one of the port's prefixes (the control plane checks it).
                let Some(src) = self.addrs6.source_for(port, c.server) else {
                    return Verdict::Drop(DropReason::NoRoute);
                };
                // `ip_len` is the IPv6 header's 40 bytes and its 16-bit payload length.
                match tunnel6::encap(buf, frag.ip_len as usize, src, c.server, self.port_mtu(port)) {
                    Ok(()) => {
                        if let Some(hl) = buf.data_mut().get_mut(INNER_HOP_LIMIT_AT) {
                            *hl = frag.hop_limit - 1;
                        }
                        to_peer
                    }
                    Err(tunnel6::Tunnel6Error::TooBig { mtu }) => {
                        let cause = Icmp6Cause::TunnelTooBig(mtu);
                        self.icmp6_error(buf, cause, first, c.vip, in_port, routes, counters, now)
                    }
                    Err(e) => Verdict::Drop(e.into()),
                }
            }
            ForwardMode::Nat | ForwardMode::FullNat => {
                if let Some(mtu) = self.over_mtu6(port, frag.ip_len) {
                    let cause = Icmp6Cause::TooBig(mtu);
                    return self.icmp6_error(buf, cause, first, c.vip, in_port, routes, counters, now);
                }
                rewrite_fragment6(buf, frag, &c, dir, self.mtu(port.index()), counters);
                to_peer
            }
        }
    }

    /// The connection of a client → VIP fragment: found, or opened by a UDP datagram's
    /// first fragment (`true`: just opened).
    fn fragment6_inbound_conn(
        &mut self,
        frag: &FragView6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Result<(ConnId, bool), DropReason> {
        let key = frag.key;
        match self.conns6.lookup(&key) {
            Some((id, Direction::Inbound)) => Ok((id, false)),
            Some((_, Direction::Reply)) => Err(DropReason::ReplyNoConn),
            None => {
                let (svc_idx, _) = self.snap.lookup_v6(key.proto, key.dst, key.dport).ok_or(DropReason::L4NoService)?;
                match (&frag.first, key.proto) {
                    (Some(view), L4Proto::Udp) => self.new_conn6(svc_idx, view, counters, now).map(|id| (id, true)),
                    (_, L4Proto::Tcp) => Err(DropReason::TcpNoConn),
                    (None, L4Proto::Udp) => Err(DropReason::Ip6Fragment),
                }
            }
        }
    }
}

/// The NAT66 or Full-NAT rewrite of a fragment of connection `c` going `dir` (module
/// docs): the first fragment as a whole packet without TOA or MSS clamp, a later one its
/// addresses and hop limit. `mtu` is the egress port's (the Full-NAT rewrite checks it
/// for the TOA it does not add here).
fn rewrite_fragment6<B: rvs_drivers::PacketBuf>(
    buf: &mut B,
    frag: &FragView6,
    c: &Conn6,
    dir: Direction,
    mtu: u16,
    counters: &WorkerCounters,
) {
    let (vip, client) = (Endpoint6::new(c.vip, c.vport), Endpoint6::new(c.client, c.cport));
    let (local, server) = (Endpoint6::new(c.local, c.lport), Endpoint6::new(c.server, c.sport));
    match (c.forward, dir, &frag.first) {
        (ForwardMode::Nat, Direction::Inbound, Some(v)) => {
            nat66::inbound(buf.data_mut(), v.layout(), c.server, c.sport)
        }
        (ForwardMode::Nat, Direction::Inbound, None) => nat66::inbound_later(buf.data_mut(), c.server),
        (ForwardMode::Nat, Direction::Reply, Some(v)) => nat66::reply(buf.data_mut(), v.layout(), c.vip, c.vport),
        (ForwardMode::Nat, Direction::Reply, None) => nat66::reply_later(buf.data_mut(), c.vip),
        (ForwardMode::FullNat, Direction::Inbound, Some(v)) => {
            // `toa: None`: see the module docs.
            let _ = fullnat66::inbound(buf, v.layout(), local, server, None, mtu);
            if c.flags.contains(ConnFlags::TOA_PENDING) && c.proto == L4Proto::Tcp {
                counters.toa_skipped.inc();
            }
        }
        (ForwardMode::FullNat, Direction::Inbound, None) => {
            fullnat66::later_fragment(buf.data_mut(), local.addr, server.addr)
        }
        (ForwardMode::FullNat, Direction::Reply, Some(v)) => {
            fullnat66::outbound(buf.data_mut(), v.layout(), vip, client, false)
        }
        (ForwardMode::FullNat, Direction::Reply, None) => {
            fullnat66::later_fragment(buf.data_mut(), vip.addr, client.addr)
        }
        // DR and tunnel have their own steps (no rewrite of the packet's headers).
        (ForwardMode::Dr | ForwardMode::Tunnel, _, _) => {}
    }
}
