//! The IPv6 L4 path of a worker's engine: IPv6 virtual services in DR, NAT66, Full-NAT
//! (NAT64 with IPv4 servers) and IPv6-in-IPv6 tunnel mode.
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
//!   `client_owner6(client, client port)`; a Full-NAT reply (server → one of our IPv6
//!   local addresses) to `lport_owner(local port)`, as IPv4's: each worker hands out
//!   only the local ports it owns (`conn::LocalPortAllocator6`). Another worker gets
//!   [`Verdict::Redirect`].
//! * A TCP connection opens on a SYN (or, with `unknown_flow = "schedule"`, any segment
//!   but a RST); any UDP datagram opens one. A SYN on a finished connection
//!   (TIME_WAIT/CLOSE) or one whose server has left the snapshot starts over.
//!   Admission (client lists, `maxconn`, the per-client rate) and persistence (by the
//!   client's prefix, `PersistTable::new_v6`) go through the IPv4 path's functions
//!   (`LbEngine::admit_flow`, `pick_server`).
//! * SYN proxy (`synproxy6_engine`): NAT66, Full-NAT66 and NAT64 TCP services follow
//!   their `syn_proxy` policy as IPv4's do (`auto` against the worker's IPv6 half-open
//!   count); a SYN on a proxied entry's tuple always starts over.
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
//! * IPv6 Full-NAT (`crate::xmit::fullnat66`): the source becomes an IPv6 local address
//!   and port and the destination the server; replies come back to the local address and
//!   go out with the VIP as source to the client. Local addresses come per family: the
//!   service's `local_addrs6` serve its IPv6 servers (a service with Full-NAT servers
//!   and no IPv6 local address drops new flows as `no_local_port`; the control plane
//!   refuses such a configuration), allocated by [`LbEngine::alloc_local6`] from this
//!   worker's share of the ports, preferring with the NIC's RSS spec (`LbConfig::rss6`)
//!   a port whose reply the NIC hashes to this worker's queue, as IPv4's (without one,
//!   replies the NIC puts elsewhere are redirected). The client's address and port ride to the server in the 20-byte IPv6
//!   TOA on the SYN and on the first non-SYN client segment (`TOA_PENDING`, as IPv4),
//!   the SYN-ACK's MSS is lowered by those 20 bytes, and a TOA that does not fit is
//!   `toa_skipped` (as is one that would take the packet past the egress MTU). Hop limit
//!   and MTU as NAT66, with their ICMPv6 errors. The local addresses are ours: the worker
//!   answers neighbour discovery and echo for them and passes TCP/UDP to them here.
//! * NAT64 (`nat64_engine`): an IPv4 Full-NAT server of an IPv6 service. Its connections
//!   are here too, with IPv4-mapped server and local addresses; client packets are
//!   translated to IPv4 and routed to the server, its replies come through the IPv4
//!   path, which looks here when its own table misses on a local address.
//! * Next hops: servers must be on the link of a port with an IPv6 prefix that holds
//!   them; NAT66 and Full-NAT clients are reached through the IPv6 routes
//!   (`no_route` otherwise). As for IPv4, a connection caches the next hop towards its
//!   server (port and MAC, `conn::CachedHop`, against the IPv6 neighbour table's
//!   generation), so established client packets skip the route and neighbour lookups;
//!   unlike IPv4 the cache is filled by the connection's second inbound packet, not its
//!   first (`cached_hop6`). Replies cache theirs too (`reply_hop`, the IPv6 entry's
//!   room for a second hop, the same function), filled by the first reply.

use std::net::Ipv6Addr;
use std::sync::Arc;

use rvs_drivers::PacketBuf;

use super::icmp6_engine::Icmp6Cause;
use super::synproxy6_engine::{cookie_toa6, proxied_to_server6};
use super::{pick_server, LbEngine, EXPIRE_BATCH};
use crate::conn::{
    client_owner6, lport_owner, CachedHop, Conn6, ConnFlags, ConnId, Direction, LocalPortAllocator,
    LocalPortAllocator6, StateChange,
};
use crate::l2l3::nd::{self, Ipv6Book};
use crate::l2l3::route::RouteTable6;
use crate::l2l3::{ResolvedNeighbours, Verdict};
use crate::sched::{addr_key6, SchedInput};
use crate::service::ServiceTable;
use crate::stats::{DropReason, WorkerCounters};
use crate::synproxy::SynProxyMode;
use crate::types::{ConnState, ForwardMode, L4Proto, PortId, TcpState};
use crate::view6::L4View6;
use crate::wire::MacAddr;
use crate::xmit::{fullnat66, nat66, tunnel6, Endpoint6};

/// What the IPv6 L4 path needs from its worker for one packet ([`LbEngine::handle_view6`]):
/// the tables it only reads and the counters it bumps, as [`super::LbEnv`] for IPv4.
#[derive(Clone, Copy)]
pub struct LbEnv6<'a> {
    /// The IPv6 routes (the next hop towards a client or server and its port).
    pub routes: &'a RouteTable6,
    /// The worker's counters.
    pub counters: &'a WorkerCounters,
    /// The worker's resolved IPv6 neighbours, to fill a connection's cached next hop.
    pub neigh: &'a dyn ResolvedNeighbours<Ipv6Addr>,
    /// The IPv6 neighbour table's generation now (`NeighbourTable::generation`): a
    /// connection's cached next hop taken at another generation is not used.
    pub neigh_generation: u32,
}

impl std::fmt::Debug for LbEnv6<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbEnv6")
            .field("routes", &self.routes)
            .field("neigh_generation", &self.neigh_generation)
            .finish_non_exhaustive()
    }
}

/// Which of an IPv6 entry's two cached next hops a lookup fills
/// ([`LbEngine::resolve_hop6`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HopEnd {
    /// `hop`, towards the server (inbound packets).
    Server,
    /// `reply_hop`, towards the client (replies).
    Client,
}

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

    /// Whether `a` is one of the IPv6 Full-NAT local addresses (the worker passes TCP
    /// and UDP to them to [`Self::handle_view6`]).
    #[inline]
    pub fn is_local6(&self, a: Ipv6Addr) -> bool {
        self.lports6.has_addr(a)
    }

    /// Handles an IPv6 TCP or UDP frame parsed into `view` (from this very `buf`) that
    /// arrived on `in_port` and is not to one of the ports' own addresses: to a VIP
    /// (client → service), to an IPv6 local address (a Full-NAT reply), or else, if
    /// anything, a NAT66 reply (server → client). `env` holds the worker's IPv6 routes
    /// and neighbours (the next hop, its port and MAC). May rewrite `buf`.
    #[inline(never)]
    pub fn handle_view6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        env: &LbEnv6<'_>,
        now: u64,
    ) -> Verdict {
        if self.snap.has_vip6(view.dst) {
            self.inbound6(buf, view, in_port, env, now)
        } else {
            self.reply6(buf, view, in_port, env, now)
        }
    }

    fn inbound6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        env: &LbEnv6<'_>,
        now: u64,
    ) -> Verdict {
        let (routes, counters) = (env.routes, env.counters);
        let owner = client_owner6(view.src, view.sport, self.workers);
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let mut found = self.conns6.lookup(&view.key());
        if let Some((id, Direction::Inbound)) = found {
            if view.is_syn() {
                if self.retire6_for_reuse(id, counters) {
                    found = None;
                }
            } else if self.conns6.get(id).is_some_and(|c| c.flags.contains(ConnFlags::SYNPROXY_PENDING)) {
                return self.pending_inbound6(id, view);
            }
        }
        let (id, fresh) = match found {
            Some((id, Direction::Inbound)) => (id, false),
            Some((_, Direction::Reply)) => return Verdict::Drop(DropReason::ReplyNoConn),
            None => {
                let Some((svc_idx, s)) = self.snap.lookup_v6(view.proto(), view.dst, view.dport) else {
                    return Verdict::Drop(DropReason::L4NoService);
                };
                let policy = s.syn_proxy;
                let mut unknown = false;
                if view.proto() == L4Proto::Tcp {
                    if view.is_syn() {
                        // `auto` below its threshold: one comparison more per SYN.
                        if policy.active(self.conns6.syn_recv()) {
                            let toa = cookie_toa6(s);
                            return self.send_cookie6(buf, view, toa, in_port, routes, counters, now);
                        }
                    } else {
                        let ack_only = view.flags.is_some_and(|f| f.ack() && !f.syn() && !f.rst());
                        if ack_only && policy.mode != SynProxyMode::Off && self.cookies_recent(now) {
                            return self.accept_cookie6(svc_idx, buf, view, in_port, routes, counters, now);
                        }
                        if !s.unknown_flow.opens(view.flags.is_some_and(|f| f.rst())) {
                            return Verdict::Drop(DropReason::TcpNoConn);
                        }
                        unknown = true;
                    }
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
        let Some(e) = self.conns6.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
        // What the established path reads of the 128-byte entry, not a copy of all of it
        // (18 instructions a packet); the Full-NAT and SYN-proxy branches read theirs from
        // the entry below (nothing in between changes those fields). NAT64 takes a copy.
        let nat64 = e.nat64_ends().map(|ends| (ends, *e));
        let (forward, flags, server, sport, hop) = (e.forward, e.flags, e.server, e.sport, e.hop);
        if self.sync.is_some() && (fresh || change.changed()) {
            // A client segment other than a SYN carries the Full-NAT TOA for the last time.
            self.sync_conn6(id, now, counters, !view.flags.is_some_and(|f| f.syn()));
        }
        if let Some((ends, c)) = nat64 {
            return self.nat64_inbound(buf, view, id, &c, ends, in_port, routes, counters, now);
        }
        // The control plane keeps IPv6 servers on a port's prefix: the next hop is the server.
        // A connection's first packet takes the worker's neighbour path (`Route6`); its
        // next ones fill and use the cached hop, so that a SYN flood (on DR and tunnel
        // services, which have no SYN proxy, or below `auto`'s threshold) does not pay for
        // filling hops of connections that never get a second packet.
        let hop = if fresh {
            nd::next_hop(routes, server, in_port).map(|(port, next_hop)| (port, Verdict::Route6 { port, next_hop }))
        } else {
            self.cached_hop6(id, HopEnd::Server, hop, server, in_port, env)
        };
        let Some((port, to_server)) = hop else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        match forward {
            // Only the MACs change: the neighbour layer writes them, for the server.
            ForwardMode::Dr => to_server,
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
                if flags.contains(ConnFlags::SYNPROXY) {
                    // Out of line: one flag test on other connections' path.
                    if let Some(c) = self.conns6.get(id) {
                        proxied_to_server6(buf, view, c);
                    }
                }
                nat66::inbound(buf.data_mut(), view.layout(), server, sport);
                to_server
            }
            ForwardMode::Tunnel => {
                if view.hop_limit <= 1 {
                    return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, view.dst, in_port, routes, counters, now);
                }
                // The server is on one of the port's prefixes (the control plane checks it).
                let Some(src) = self.addrs6.source_for(port, server) else {
                    return Verdict::Drop(DropReason::NoRoute);
                };
                match self.tunnel6(buf, view, server, src, port) {
                    Ok(()) => to_server,
                    Err(tunnel6::Tunnel6Error::TooBig { mtu }) => {
                        let cause = Icmp6Cause::TunnelTooBig(mtu);
                        self.icmp6_error(buf, cause, true, view.dst, in_port, routes, counters, now)
                    }
                    Err(e) => Verdict::Drop(e.into()),
                }
            }
            ForwardMode::FullNat => {
                if view.hop_limit <= 1 {
                    return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, view.dst, in_port, routes, counters, now);
                }
                if let Some(mtu) = self.over_mtu6(port, view.ip_len()) {
                    let cause = Icmp6Cause::TooBig(mtu);
                    return self.icmp6_error(buf, cause, true, view.dst, in_port, routes, counters, now);
                }
                let Some(c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::TcpNoConn) };
                if flags.contains(ConnFlags::SYNPROXY) {
                    proxied_to_server6(buf, view, c);
                }
                let toa = (flags.contains(ConnFlags::TOA_PENDING) && view.proto() == L4Proto::Tcp)
                    .then_some(Endpoint6::new(c.client, c.cport));
                let (local, server) = (Endpoint6::new(c.local, c.lport), Endpoint6::new(server, sport));
                let r = fullnat66::inbound(buf, view.layout(), local, server, toa, self.mtu(port.index()));
                if r.toa_skipped.is_some() {
                    counters.toa_skipped.inc();
                }
                // As IPv4's: the TOA rides on the SYN and the segment that completes the
                // handshake, then no more.
                if toa.is_some() && !view.flags.is_some_and(|f| f.syn()) {
                    if let Some(c) = self.conns6.get_mut(id) {
                        c.flags.remove(ConnFlags::TOA_PENDING);
                    }
                }
                to_server
            }
        }
    }

    /// The egress port and verdict for a packet of IPv6 connection `id` towards `dst`,
    /// its server (`end` [`HopEnd::Server`], `hop` the entry's `hop`, as IPv4's
    /// `hop_to_server`) or its client (a reply: [`HopEnd::Client`], `hop` the entry's
    /// `reply_hop`): the cached next hop while the IPv6 neighbour table is at the
    /// generation it was taken at (no route or neighbour lookup: [`Verdict::Forward`]),
    /// else the route and neighbour lookups, caching a resolved MAC
    /// ([`Self::resolve_hop6`]). `None`: no route to `dst`.
    ///
    /// The same rules make the copy safe: the IPv6 routes are fixed for a worker's life
    /// and any neighbour change moves the generation. A link-local `dst` is never cached
    /// (its port is the packet's arrival port, `nd::next_hop`), and NAT64 connections
    /// (IPv4 servers) never come here. The server's hop is filled by a connection's
    /// second inbound packet, the client's by its first reply (a SYN flood brings none).
    #[inline]
    fn cached_hop6(
        &mut self,
        id: ConnId,
        end: HopEnd,
        hop: CachedHop,
        dst: Ipv6Addr,
        in_port: PortId,
        env: &LbEnv6<'_>,
    ) -> Option<(PortId, Verdict)> {
        if hop.generation == env.neigh_generation {
            let port = hop.port;
            return Some((port, Verdict::Forward { port, mac: MacAddr(hop.mac) }));
        }
        self.resolve_hop6(id, end, dst, in_port, env)
    }

    /// [`Self::cached_hop6`] without a valid cached hop: the lookups, and the hop cached
    /// in the entry when the neighbour is resolved.
    #[inline(never)]
    fn resolve_hop6(
        &mut self,
        id: ConnId,
        end: HopEnd,
        dst: Ipv6Addr,
        in_port: PortId,
        env: &LbEnv6<'_>,
    ) -> Option<(PortId, Verdict)> {
        let (port, verdict, hop) = resolve6(dst, in_port, env)?;
        if let (Some(hop), Some(e)) = (hop, self.conns6.get_mut(id)) {
            match end {
                // A SYN-proxied entry's `hop` holds its offsets (`Conn::synproxy_offsets`,
                // generation 0: never a valid cached hop), as on IPv4's `resolve_hop`:
                // never written over.
                HopEnd::Server if e.flags.contains(ConnFlags::SYNPROXY) => {}
                HopEnd::Server => e.hop = hop,
                HopEnd::Client => e.reply_hop = hop,
            }
        }
        Some((port, verdict))
    }

    /// Puts `view`'s packet (hop limit above 1) inside an outer IPv6 header from `src` to
    /// its connection's `server` (`crate::xmit::tunnel6`) for `port`'s MTU, and
    /// decrements the inner hop limit; on an error the buffer is unchanged.
    fn tunnel6<B: PacketBuf>(
        &self,
        buf: &mut B,
        view: &L4View6,
        server: Ipv6Addr,
        src: Ipv6Addr,
        port: PortId,
    ) -> Result<(), tunnel6::Tunnel6Error> {
        tunnel6::encap(buf, view.layout().ip_len(), src, server, self.port_mtu(port))?;
        if let Some(hl) = buf.data_mut().get_mut(INNER_HOP_LIMIT_AT) {
            *hl = view.hop_limit - 1;
        }
        Ok(())
    }

    /// A reply: to an IPv6 local address (Full-NAT, owned by the local port;
    /// no connection is `reply_no_conn`), or a NAT66 reply (server → client), or else an
    /// IPv6 packet for nobody here (`ip6_not_for_us`).
    fn reply6<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        in_port: PortId,
        env: &LbEnv6<'_>,
        now: u64,
    ) -> Verdict {
        let (routes, counters) = (env.routes, env.counters);
        let to_local = self.is_local6(view.dst);
        let (owner, miss) = if to_local {
            (lport_owner(view.dport, self.workers), DropReason::ReplyNoConn)
        } else {
            (client_owner6(view.dst, view.dport, self.workers), DropReason::Ip6NotForUs)
        };
        if owner != self.worker {
            return Verdict::Redirect { worker: owner };
        }
        let Some((id, Direction::Reply)) = self.conns6.lookup(&view.key()) else {
            return Verdict::Drop(miss);
        };
        // A NAT64 connection's reply key holds IPv4-mapped addresses: only its IPv4
        // replies may use it (`nat64_engine`), never an IPv6 packet forging them.
        if self.conns6.get(id).and_then(Conn6::nat64_ends).is_some() {
            return Verdict::Drop(miss);
        }
        if view.hop_limit <= 1 {
            let Some(vip) = self.conns6.get(id).map(|c| c.vip) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
            return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, vip, in_port, routes, counters, now);
        }
        match self.account6(id, Direction::Reply, view, now) {
            Ok(change) if self.sync.is_some() && change.changed() => self.sync_conn6(id, now, counters, false),
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(e) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
        // The fields a reply reads, not a copy of the whole entry (see `inbound6`).
        let (forward, flags, reply_hop) = (e.forward, e.flags, e.reply_hop);
        let (vip, client) = (Endpoint6::new(e.vip, e.vport), Endpoint6::new(e.client, e.cport));
        let Some((port, to_client)) = self.cached_hop6(id, HopEnd::Client, reply_hop, client.addr, in_port, env) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if let Some(mtu) = self.over_mtu6(port, view.ip_len()) {
            return self.icmp6_error(buf, Icmp6Cause::TooBig(mtu), true, vip.addr, in_port, routes, counters, now);
        }
        if flags.contains(ConnFlags::SYNPROXY) {
            // Out of line: one flag test on other connections' path.
            let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::Ip6NotForUs) };
            if let Some(v) = self.proxied_reply6(id, &c, buf, view, in_port, routes, counters, now) {
                return v;
            }
        }
        match forward {
            ForwardMode::FullNat => {
                // Only a SYN-ACK's MSS is clamped (module docs); other segments skip the walk.
                let syn_ack = view.flags.is_some_and(|f| f.syn() && f.ack());
                fullnat66::outbound(buf.data_mut(), view.layout(), vip, client, syn_ack);
            }
            _ => nat66::reply(buf.data_mut(), view.layout(), vip.addr, vip.port),
        }
        to_client
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
        let (Some(service_id), Some(server_id)) = (snap.service_id(svc_idx), snap.server_id(svc_idx, idx)) else {
            return Err(DropReason::NoServer);
        };
        // An IPv4 server on an IPv6 service is NAT64 through Full-NAT (`nat64_engine`):
        // its addresses are kept IPv4-mapped, its local port comes from the IPv4 ports.
        let (server_addr, (local, lport)) = match (server.addr, server.forward) {
            (std::net::IpAddr::V6(a), ForwardMode::FullNat) => {
                (a, self.alloc_local6(&svc.local_addrs6, a, server.port, counters)?)
            }
            // Other modes keep the client's address and port towards the server.
            (std::net::IpAddr::V6(a), _) => (a, (view.src, view.sport)),
            (std::net::IpAddr::V4(a), ForwardMode::FullNat) => {
                (a.to_ipv6_mapped(), self.alloc_local64(&svc.local_addrs, a, server.port)?)
            }
            (std::net::IpAddr::V4(_), _) => return Err(DropReason::NoServer),
        };
        let mut conn = Conn6::new(view.key(), server.forward, server_addr, server.port)
            .with_local(local, lport)
            .with_service(service_id, server_id);
        if server.forward == ForwardMode::FullNat && view.proto() == L4Proto::Tcp {
            conn.flags.insert(ConnFlags::TOA_PENDING);
        }
        let active = conn.state.is_active();
        let id = match self.conns6.insert(conn, now) {
            Ok(id) => id,
            Err(e) => {
                if server.forward == ForwardMode::FullNat {
                    match local.to_ipv4_mapped() {
                        Some(local4) if server.addr.is_ipv4() => self.lports.release(local4, lport),
                        _ => self.lports6.release(local, lport),
                    };
                }
                return Err(e.into());
            }
        };
        counters.conns_created.inc();
        server.stats.conn_opened(self.worker, active);
        svc.stats.conn_opened(self.worker, active);
        server.stats.update_overload(server.upper, server.lower);
        Ok(id)
    }

    /// The source of a new IPv6 Full-NAT connection towards `server:sport`: a free local
    /// address and port of this worker's from `locals` (the service's IPv6 local
    /// addresses; `no_local_port` when none is left), with the NIC's RSS spec one whose
    /// reply hashes to this worker's queue (a miss counts in `lport_rss_misses`).
    /// Out of line: DR, NAT66 and tunnel connections never call it.
    #[inline(never)]
    fn alloc_local6(
        &mut self,
        locals: &[Ipv6Addr],
        server: Ipv6Addr,
        sport: u16,
        counters: &WorkerCounters,
    ) -> Result<(Ipv6Addr, u16), DropReason> {
        let misses = self.lports6.rss_misses();
        let got = self.lports6.alloc(locals, server, sport, self.rss6.as_ref()).ok_or(DropReason::NoLocalPort)?;
        if self.lports6.rss_misses() != misses {
            counters.lport_rss_misses.inc();
        }
        Ok(got)
    }

    /// A client SYN on IPv6 connection `id`'s tuple: on a SYN-proxied entry the client
    /// has moved on (its offsets would corrupt the new handshake): removed, true. When
    /// the connection is finished (TIME_WAIT or CLOSE) or its server has left the
    /// snapshot, it is removed (`conns_reused`) and true returned, so that the SYN is
    /// scheduled anew.
    #[cold]
    fn retire6_for_reuse(&mut self, id: ConnId, counters: &WorkerCounters) -> bool {
        let Some(c) = self.conns6.get(id) else { return false };
        if c.flags.contains(ConnFlags::SYNPROXY) {
            return self.close_conn6(id);
        }
        let finished = matches!(c.state, ConnState::Tcp(TcpState::TimeWait | TcpState::Close));
        if !finished && self.snap.by_server_id(c.server_id).is_some() {
            return false;
        }
        let Some(old) = self.conns6.remove(id) else { return false };
        conn6_closed(self.worker, &self.snap, &mut self.lports6, &mut self.lports, &old);
        counters.conns_reused.inc();
        true
    }

    /// Removes IPv6 connection `id` as if it had expired (its Full-NAT local port and its
    /// service's and server's counts released); false when `id` is not live.
    pub(super) fn close_conn6(&mut self, id: ConnId) -> bool {
        let Some(old) = self.conns6.remove(id) else { return false };
        conn6_closed(self.worker, &self.snap, &mut self.lports6, &mut self.lports, &old);
        true
    }

    /// The IPv6 counterpart of `account_packet`: the connection's state and timeout, the
    /// server's and service's activity counts, and the packet in the pending counts.
    /// Returns what the packet did to the state (connection sync sends a change).
    #[inline(always)]
    fn account6(&mut self, id: ConnId, dir: Direction, view: &L4View6, now: u64) -> Result<StateChange, DropReason> {
        self.account6_packet(id, dir, view.flags, view.ip_len(), now)
    }

    /// [`Self::account6`] of a packet with TCP `flags` (`None`: UDP, or a fragment
    /// without the L4 header) and `ip_len` bytes.
    ///
    /// Inlined into the packet paths as IPv4's `account_packet` is, and on a borrow of the
    /// snapshot rather than an `Arc` clone (no atomic increment and decrement a packet).
    #[inline(always)]
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
        let snap = &*self.snap;
        if snap.settings().expire_nodest_conn && snap.by_server_id(server_id).is_none() {
            if let Some(old) = self.conns6.remove(id) {
                conn6_closed(self.worker, snap, &mut self.lports6, &mut self.lports, &old);
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
        Self::pend_into(&mut self.pending, snap, self.worker, server_id, service_id, dir, ip_len);
        Ok(change)
    }

    /// Expires due IPv6 connections (part of `run_timers`). Returns how many.
    pub(super) fn expire6(&mut self, now: u64) -> usize {
        if self.conns6.is_empty() {
            return 0;
        }
        let (worker, snap, lports6, lports) = (self.worker, &self.snap, &mut self.lports6, &mut self.lports);
        self.conns6.expire_at_most(now, EXPIRE_BATCH, |c| conn6_closed(worker, snap, lports6, lports, c))
    }
}

/// The route and neighbour lookups for a packet to `dst` that came in on `in_port`: its
/// egress port, its verdict ([`Verdict::Forward`] when the neighbour is resolved, else
/// [`Verdict::Route6`]: the worker parks the packet and solicits, a later packet caches
/// the answer) and the hop to cache, if any (none for a link-local `dst`, whose port is
/// the arrival port, or an unresolved neighbour). `None`: no route.
#[inline]
fn resolve6(dst: Ipv6Addr, in_port: PortId, env: &LbEnv6<'_>) -> Option<(PortId, Verdict, Option<CachedHop>)> {
    let (port, next_hop) = nd::next_hop(env.routes, dst, in_port)?;
    let Some(mac) = env.neigh.resolved(next_hop) else {
        return Some((port, Verdict::Route6 { port, next_hop }, None));
    };
    let hop = (!nd::is_link_local(dst)).then_some(CachedHop { mac: mac.0, port, generation: env.neigh_generation });
    Some((port, Verdict::Forward { port, mac }, hop))
}

/// What an IPv6 connection leaving the table gives back: its Full-NAT local port (to the
/// IPv4 allocator `lports` for a NAT64 connection), and its place in its service's and
/// server's connection counts.
fn conn6_closed(
    worker: usize,
    snap: &ServiceTable,
    lports6: &mut LocalPortAllocator6,
    lports: &mut LocalPortAllocator,
    c: &Conn6,
) {
    if let Some((local, _)) = c.nat64_ends() {
        lports.release(local, c.lport);
    } else if c.forward == ForwardMode::FullNat {
        lports6.release(c.local, c.lport);
    }
    let active = c.state.is_active();
    if let Some(svc) = snap.by_service_id(c.service_id) {
        svc.stats.conn_closed(worker, active);
    }
    if let Some((_, server)) = snap.by_server_id(c.server_id) {
        server.stats.conn_closed(worker, active);
        server.stats.update_overload(server.upper, server.lower);
    }
}
