//! The IPv6 L4 path of a worker's engine: IPv6 virtual services in DR and NAT66.
//!
//! The IPv4 path is untouched by it: IPv6 flows have their own connection table
//! ([`crate::conn::ConnTable6`], an eighth of the IPv4 capacity, at least
//! [`MIN_CONN6_CAPACITY`]) and their own entry point ([`LbEngine::handle_view6`]), which
//! the worker calls out of line for IPv6 TCP/UDP frames to a VIP or not to us. What they
//! share with IPv4 is the service snapshot (IPv6 services are looked up in its own map,
//! `ServiceTable::lookup_v6`), the per-service schedulers (fed the IPv6 addresses hashed
//! into 32-bit keys, `crate::sched::addr_key6`), the servers' and services' counters and
//! the worker's packet counts (flushed with IPv4's, [`LbEngine::flush_stats`]).
//!
//! Rules, as for IPv4 (see the `lb` module docs) where nothing else is said:
//! * Ownership: a client → VIP packet and a NAT66 reply belong to
//!   `client_owner6(client, client port)`; another worker gets [`Verdict::Redirect`].
//! * A TCP connection opens on a SYN (or, with `unknown_flow = "schedule"`, any segment
//!   but a RST); any UDP datagram opens one. A SYN on a finished connection
//!   (TIME_WAIT/CLOSE) or one whose server has left the snapshot starts over.
//!   Admission (client lists, `maxconn`, the per-client rate) and persistence (by the
//!   client's prefix, `PersistTable::new_v6`) go through the IPv4 path's functions
//!   (`LbEngine::admit_flow`, `pick_server`).
//!   No SYN proxy on IPv6 (the service's policy is not applied to IPv6 flows).
//! * DR: the frame goes to the real server's MAC, resolved through the IPv6 neighbour
//!   table (solicited when unknown); the hop limit is left alone, as LVS's DR does.
//! * NAT66: the destination becomes the server's address and port (inbound); the reply's
//!   source becomes the VIP's (`crate::xmit::nat66`), the hop limit is decremented, and a
//!   packet with hop limit 1 or 0 is dropped (`ip6_hop_limit`), one over the egress
//!   port's MTU too (`ip6_too_big`), each with its ICMPv6 error to the sender
//!   (`icmp6_engine`).
//! * Tunnel (IPv6 in IPv6, `crate::xmit::tunnel6`): the hop limit is decremented as for
//!   NAT66 (as the IPv4 tunnel decrements the TTL), then the packet goes inside an outer
//!   header from the egress port's address on the server's prefix to the server; over the
//!   egress MTU it is dropped (`tunnel_too_big`) with a packet too big to the client
//!   carrying the largest inner packet that fits.
//! * Next hops: rvs has no IPv6 routes yet, so servers and NAT66 clients must be on the
//!   link of a port with an IPv6 prefix that holds them (`no_route` otherwise).

use std::net::Ipv6Addr;
use std::sync::Arc;

use rvs_drivers::PacketBuf;

use super::icmp6_engine::Icmp6Cause;
use super::{pick_server, LbEngine, EXPIRE_BATCH};
use crate::conn::{client_owner6, Conn6, ConnId, Direction, StateChange};
use crate::l2l3::nd::{self, Ipv6Book};
use crate::l2l3::route::RouteTable6;
use crate::l2l3::Verdict;
use crate::sched::{addr_key6, SchedInput};
use crate::service::ServiceTable;
use crate::stats::{DropReason, WorkerCounters};
use crate::types::{ConnState, ForwardMode, L4Proto, PortId, TcpState};
use crate::view6::L4View6;
use crate::xmit::{nat66, tunnel6};

/// Offset of the inner packet's hop limit in a frame after `tunnel6::encap`.
const INNER_HOP_LIMIT_AT: usize = crate::view::L3_OFFSET + tunnel6::OUTER_HEADER_LEN + 7;

/// The IPv6 connection table's smallest capacity.
pub const MIN_CONN6_CAPACITY: usize = 1024;

/// The IPv6 connection table's capacity for an IPv4 table of `conn_capacity`: an eighth
/// of it (IPv6 entries take twice the memory), at least [`MIN_CONN6_CAPACITY`].
pub fn conn6_capacity(conn_capacity: usize) -> usize {
    (conn_capacity / 8).max(MIN_CONN6_CAPACITY)
}

impl LbEngine {
    /// Whether the current snapshot has any IPv6 service (the worker passes IPv6 frames
    /// not to its own addresses to [`Self::handle_view6`] only then).
    #[inline]
    pub fn has_ipv6_services(&self) -> bool {
        !self.snap.vips6().is_empty()
    }

    /// Whether `a` is the VIP of an IPv6 service of the current snapshot.
    #[inline]
    pub fn is_vip6(&self, a: Ipv6Addr) -> bool {
        self.snap.has_vip6(a)
    }

    /// Gives the engine its worker's IPv6 addresses ([`crate::worker::Worker::with_lb`]
    /// does): the IPv6 tunnel's outer source is the egress port's address on the server's
    /// prefix.
    pub fn set_ipv6_addresses(&mut self, addrs: Ipv6Book) {
        self.addrs6 = addrs;
    }

    /// The IPv6 connection table (for listings and tests).
    pub fn conns6(&self) -> &crate::conn::ConnTable6 {
        &self.conns6
    }

    /// Handles an IPv6 TCP or UDP frame parsed into `view` (from this very `buf`) that
    /// arrived on `in_port` and is not to one of the ports' own addresses: to a VIP
    /// (client → service) or else, if anything, a NAT66 reply (server → client). `routes`
    /// is the worker's IPv6 route table (the next hop and its port). May rewrite `buf`.
    #[inline(never)]
    pub fn handle_view6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        if self.snap.has_vip6(view.dst) {
            self.inbound6(buf, view, in_port, routes, counters, now)
        } else {
            self.reply6(buf, view, in_port, routes, counters, now)
        }
    }

    fn inbound6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let owner = client_owner6(view.src, view.sport, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let mut found = self.conns6.lookup(&view.key());
        if let Some((id, Direction::Inbound)) = found {
            if view.is_syn() && self.retire6_for_reuse(id, counters) {
                found = None;
            }
        }
        let (id, fresh) = match found {
            Some((id, Direction::Inbound)) => (id, false),
            Some((_, Direction::Reply)) => return Verdict::Drop(DropReason::ReplyNoConn),
            None => {
                let Some((svc_idx, s)) = self.snap.lookup_v6(view.proto(), view.dst, view.dport) else {
                    return Verdict::Drop(DropReason::L4NoService);
                };
                let mut unknown = false;
                if view.proto() == L4Proto::Tcp && !view.is_syn() {
                    if !s.unknown_flow.opens(view.flags.is_some_and(|f| f.rst())) {
                        return Verdict::Drop(DropReason::TcpNoConn);
                    }
                    unknown = true;
                }
                match self.new_conn6(svc_idx, view, counters, now) {
                    Ok(id) => {
                        if unknown {
                            counters.conns_unknown_scheduled.inc();
                        }
                        (id, true)
                    }
                    Err(reason) => return Verdict::Drop(reason),
                }
            }
        };
        let change = match self.account6(id, Direction::Inbound, view, now) {
            Ok(change) => change,
            Err(reason) => return Verdict::Drop(reason),
        };
        if self.sync.is_some() && (fresh || change.changed()) {
            self.sync_conn6(id, now, counters);
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        // The control plane keeps IPv6 servers on a port's prefix: the next hop is the server.
        let Some((port, next_hop)) = nd::next_hop(routes, c.server, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        match c.forward {
            // Only the MACs change: the neighbour layer writes them, for the server.
            ForwardMode::Dr => Verdict::Route6 { port, next_hop },
            ForwardMode::Nat => {
                if view.hop_limit <= 1 {
                    return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, view.dst, in_port, routes, counters, now);
                }
                if let Some(mtu) = self.over_mtu6(port, view.ip_len()) {
                    return self.icmp6_error(
                        buf,
                        Icmp6Cause::TooBig(mtu),
                        true,
                        view.dst,
                        in_port,
                        routes,
                        counters,
                        now,
                    );
                }
                nat66::inbound(buf.data_mut(), view.layout(), c.server, c.sport);
                Verdict::Route6 { port, next_hop }
            }
            ForwardMode::Tunnel => {
                if view.hop_limit <= 1 {
                    return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, view.dst, in_port, routes, counters, now);
                }
                // The server is on one of the port's prefixes (the control plane checks it).
                let Some(src) = self.addrs6.source_for(port, c.server) else {
                    return Verdict::Drop(DropReason::NoRoute);
                };
                match self.tunnel6(buf, view, &c, src, port) {
                    Ok(()) => Verdict::Route6 { port, next_hop },
                    Err(tunnel6::Tunnel6Error::TooBig { mtu }) => {
                        let cause = Icmp6Cause::TunnelTooBig(mtu);
                        self.icmp6_error(buf, cause, true, view.dst, in_port, routes, counters, now)
                    }
                    Err(e) => Verdict::Drop(e.into()),
                }
            }
            // `ServiceTable` refuses IPv6 services with these servers.
            ForwardMode::FullNat => Verdict::Drop(DropReason::NoServer),
        }
    }

    /// Puts `view`'s packet (of connection `c`, hop limit above 1) inside an outer IPv6
    /// header from `src` to its server (`crate::xmit::tunnel6`) for `port`'s MTU, and
    /// decrements the inner hop limit; on an error the buffer is unchanged.
    fn tunnel6<B: PacketBuf>(
        &self,
        buf: &mut B,
        view: &L4View6,
        c: &Conn6,
        src: std::net::Ipv6Addr,
        port: PortId,
    ) -> Result<(), tunnel6::Tunnel6Error> {
        tunnel6::encap(buf, view.layout().ip_len(), src, c.server, self.port_mtu(port))?;
        if let Some(hl) = buf.data_mut().get_mut(INNER_HOP_LIMIT_AT) {
            *hl = view.hop_limit - 1;
        }
        Ok(())
    }

    /// A NAT66 reply (server → client), or an IPv6 packet for nobody here
    /// (`ip6_not_for_us`).
    fn reply6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        routes: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let owner = client_owner6(view.dst, view.dport, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let Some((id, Direction::Reply)) = self.conns6.lookup(&view.key()) else {
            return Verdict::Drop(DropReason::Ip6NotForUs);
        };
        if view.hop_limit <= 1 {
            let Some(vip) = self.conns6.get(id).map(|c| c.vip) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
            return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, vip, in_port, routes, counters, now);
        }
        match self.account6(id, Direction::Reply, view, now) {
            Ok(change) if self.sync.is_some() && change.changed() => self.sync_conn6(id, now, counters),
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
        let Some((port, next_hop)) = nd::next_hop(routes, c.client, in_port) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if let Some(mtu) = self.over_mtu6(port, view.ip_len()) {
            return self.icmp6_error(buf, Icmp6Cause::TooBig(mtu), true, c.vip, in_port, routes, counters, now);
        }
        nat66::reply(buf.data_mut(), view.layout(), c.vip, c.vport);
        Verdict::Route6 { port, next_hop }
    }

    /// Schedules and records a new IPv6 connection for `view` on service `svc_idx`.
    pub(super) fn new_conn6(
        &mut self,
        svc_idx: u32,
        view: &L4View6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Result<ConnId, DropReason> {
        let snap = Arc::clone(&self.snap);
        let svc = snap.get(svc_idx).ok_or(DropReason::L4NoService)?;
        // Only new flows are admitted or refused, as for IPv4 (one path: `admit_flow`).
        self.admit_flow(&snap, svc_idx, svc, view.src, counters, now)?;
        let sched = self.scheds.get_mut(svc_idx as usize).ok_or(DropReason::L4NoService)?;
        let input = SchedInput {
            client: addr_key6(view.src),
            client_port: view.sport,
            vip: addr_key6(view.dst),
            vport: view.dport,
            now_ns: now,
        };
        let idx = pick_server(svc, view.src, now, || sched.pick(&svc.servers, &input)).ok_or(DropReason::NoServer)?;
        let server = svc.servers.get(idx).ok_or(DropReason::NoServer)?;
        let std::net::IpAddr::V6(server_addr) = server.addr else { return Err(DropReason::NoServer) };
        let (Some(service_id), Some(server_id)) = (snap.service_id(svc_idx), snap.server_id(svc_idx, idx)) else {
            return Err(DropReason::NoServer);
        };
        let conn = Conn6::new(view.key(), server.forward, server_addr, server.port).with_service(service_id, server_id);
        let active = conn.state.is_active();
        let id = self.conns6.insert(conn, now)?;
        counters.conns_created.inc();
        server.stats.conn_opened(self.worker, active);
        svc.stats.conn_opened(self.worker, active);
        server.stats.update_overload(server.upper, server.lower);
        Ok(id)
    }

    /// A client SYN on IPv6 connection `id`'s tuple: when the connection is finished
    /// (TIME_WAIT or CLOSE) or its server has left the snapshot, it is removed
    /// (`conns_reused`) and true returned, so that the SYN is scheduled anew.
    #[cold]
    fn retire6_for_reuse(&mut self, id: ConnId, counters: &WorkerCounters) -> bool {
        let Some(c) = self.conns6.get(id) else { return false };
        let finished = matches!(c.state, ConnState::Tcp(TcpState::TimeWait | TcpState::Close));
        if !finished && self.snap.by_server_id(c.server_id).is_some() {
            return false;
        }
        let Some(old) = self.conns6.remove(id) else { return false };
        conn6_closed(self.worker, &self.snap, &old);
        counters.conns_reused.inc();
        true
    }

    /// The IPv6 counterpart of `account_packet`: the connection's state and timeout, the
    /// server's and service's activity counts, and the packet in the pending counts.
    /// Returns what the packet did to the state (connection sync sends a change).
    fn account6(&mut self, id: ConnId, dir: Direction, view: &L4View6, now: u64) -> Result<StateChange, DropReason> {
        self.account6_packet(id, dir, view.flags, view.ip_len(), now)
    }

    /// [`Self::account6`] of a packet with TCP `flags` (`None`: UDP, or a fragment
    /// without the L4 header) and `ip_len` bytes.
    pub(super) fn account6_packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        flags: Option<crate::wire::TcpFlags>,
        ip_len: u64,
        now: u64,
    ) -> Result<StateChange, DropReason> {
        let Some(c) = self.conns6.get(id) else { return Err(DropReason::TcpNoConn) };
        let (service_id, server_id) = (c.service_id, c.server_id);
        let snap = Arc::clone(&self.snap);
        if snap.settings().expire_nodest_conn && snap.by_server_id(server_id).is_none() {
            if let Some(old) = self.conns6.remove(id) {
                conn6_closed(self.worker, &snap, &old);
            }
            return Err(DropReason::ConnServerRemoved);
        }
        let change = self.conns6.on_packet(id, dir, flags, now);
        if let Some(active) = change.active_move() {
            if let Some((_, server)) = snap.by_server_id(server_id) {
                server.stats.conn_moved(self.worker, active);
            }
            if let Some(svc) = snap.by_service_id(service_id) {
                svc.stats.conn_moved(self.worker, active);
            }
        }
        self.pend(&snap, server_id, service_id, dir, ip_len);
        Ok(change)
    }

    /// Expires due IPv6 connections (part of `run_timers`). Returns how many.
    pub(super) fn expire6(&mut self, now: u64) -> usize {
        if self.conns6.is_empty() {
            return 0;
        }
        let (worker, snap) = (self.worker, &self.snap);
        self.conns6.expire_at_most(now, EXPIRE_BATCH, |c| conn6_closed(worker, snap, c))
    }
}

/// What an IPv6 connection leaving the table gives back: its place in its service's and
/// server's connection counts.
fn conn6_closed(worker: usize, snap: &ServiceTable, c: &Conn6) {
    let active = c.state.is_active();
    if let Some(svc) = snap.by_service_id(c.service_id) {
        svc.stats.conn_closed(worker, active);
    }
    if let Some((_, server)) = snap.by_server_id(c.server_id) {
        server.stats.conn_closed(worker, active);
        server.stats.update_overload(server.upper, server.lower);
    }
}
