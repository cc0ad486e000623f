//! NAT64 through Full-NAT in a worker's engine: an IPv6 service's IPv4 real servers.
//!
//! A Full-NAT server of the other family on an IPv6 service (the control plane allows
//! IPv4 servers on an IPv6 service only in Full-NAT mode and only when the service has an
//! IPv4 local address) gets NAT64 connections:
//!
//! * Table: they live in the IPv6 table ([`crate::conn::ConnTable6`]) with the server's
//!   and the local address in their IPv4-mapped form (`::ffff:a.b.c.d`), so the reply
//!   key an IPv4 reply builds (its addresses mapped the same way) finds them. A
//!   connection is NAT64 exactly when it is Full-NAT and its server is IPv4-mapped
//!   ([`Conn6::nat64_ends`]); the control plane refuses IPv4-mapped IPv6 servers and local
//!   addresses, so nothing else looks like one.
//! * Inbound (client → VIP, [`LbEngine::handle_view6`]): scheduled and admitted as any
//!   IPv6 flow; the local port comes from the IPv4 allocator (the service's IPv4
//!   `local_addrs`, this worker's share, with the IPv4 path's RSS preference), so NAT64
//!   and IPv4 Full-NAT never hand out the same port. The packet is translated to IPv4
//!   (`crate::xmit::nat64`), its TOA is the 20-byte IPv6 one, on the SYN and the segment
//!   that completes the handshake (`TOA_PENDING`, as IPv6 Full-NAT), and it goes to the
//!   server through the IPv4 routes, with DF clear and a per-worker identification when
//!   it is at most 1260 bytes long (RFC 7915 §5.1, `xmit::nat64`). Hop limit 1 or 0: `ip6_hop_limit` with its time
//!   exceeded to the client; an IPv4 packet over the server port's MTU: `ip6_too_big`
//!   with a packet too big to the client carrying that MTU plus the 20 bytes the header
//!   shrinks.
//! * Replies (server → one of our IPv4 local addresses): the IPv4 path looks up its own
//!   table first, unchanged; only a miss on a packet to a local address comes here, out
//!   of line ([`LbEngine::nat64_reply`]), with the reply's addresses mapped. Ownership is
//!   already the IPv4 Full-NAT's: the worker that owns the local port
//!   (`lport_owner`), which is the worker that allocated it. No connection:
//!   `reply_no_conn`, as for IPv4. TTL 1 or 0: `ttl_exceeded` with its ICMP time exceeded
//!   to the server, as IPv4 Full-NAT; an IPv6 packet over the client port's MTU: with
//!   DF set, dropped (`ip6_too_big`) and the server gets an ICMP fragmentation needed
//!   from the local address; with DF clear, translated with a fragment header and cut
//!   into IPv6 fragments by the worker ([`Verdict::Route6Cut`], RFC 7915 §4.1). The packet is translated to IPv6 from the VIP to
//!   the client, a SYN-ACK's MSS lowered by the TOA's 20 bytes (`xmit::nat64` says why),
//!   and goes to the client through the IPv6 routes.
//! * ICMP errors (RFC 7915 §4.2, §5.2; [`crate::xmit::nat64_icmp`] translates them): an
//!   ICMPv4 error to a local address about a packet rvs sent the server, which matches
//!   no IPv4 connection, is looked up here out of line ([`LbEngine::nat64_icmp_error`],
//!   on the local port's owner as the IPv4 path already chose) and goes to the client
//!   as an ICMPv6 error from the VIP about the client's own packet, through the IPv6
//!   routes; an ICMPv6 error to the VIP about a reply ([`LbEngine::handle_icmp6_error`]
//!   finds the connection, `client_owner6` as for the flow's packets) goes to the server
//!   as an ICMPv4 error from the local address about the server's own packet. The TTL
//!   or hop limit is decremented as for any forwarded packet and carried over; a packet
//!   too big or fragmentation needed carries the MTU RFC 7915 gives, capped by both
//!   links' MTUs. Counted `icmp_errors_translated`; an error RFC 7915 does not translate
//!   (source quench, redirect, ...) keeps its family's `icmp_unhandled` /
//!   `icmp6_unhandled`.
//! * Sync (`sync_engine`): a NAT64 connection is synced as an IPv6 Full-NAT one, on
//!   creation, state changes (either direction), refresh and dump; its record carries
//!   the IPv6 client and VIP and the IPv4 local address and server (the family of its
//!   server side). The peer installs it into its IPv6 table in the IPv4-mapped form,
//!   the IPv4 local port reserved in its IPv4 allocator.
//! * Fragments (`frag6_engine`): the client's IPv6 fragments are translated one by one
//!   to IPv4 fragments (RFC 7915 §5.1.1: identification the fragment header's low 16
//!   bits, MF and offset copied, DF clear; the first fragment's ports and checksum as a
//!   whole packet's, no TOA), found and steered by the fragment table as every IPv6
//!   flow's; one whose fragment header is not right before the TCP/UDP data is
//!   `ip6_fragment`. The server's IPv4 fragments to a local address take the IPv4
//!   fragment path (fragment table, the local port's owner, `frag_engine`); one that
//!   matches no IPv4 connection comes here ([`LbEngine::nat64_fragment_reply`]) and is
//!   translated to an IPv6 fragment (RFC 7915 §4.1: identification the IPv4 one in the
//!   low 16 bits, offset and M copied; the first fragment's ports and checksum as a
//!   whole reply's); TTL 1 or 0 as a whole reply for a first fragment, `ttl_exceeded`
//!   without an ICMP error for a later one. Translated, a fragment is 28 bytes longer;
//!   over the client port's MTU it is cut by the worker ([`Verdict::Route6Cut`]), or
//!   dropped as `ip6_too_big` if its DF is set. A fragmented UDP datagram without a
//!   checksum is `nat64_udp_no_checksum` (its first fragment; the later ones reach a
//!   client that cannot reassemble them).
//! * SYN proxy (`synproxy64_engine`): the client's handshake is the IPv6 proxy's, the
//!   SYN to the server and everything after it IPv4; a proxied connection's segments
//!   are translated between the two sequence spaces here, before (client → server) or
//!   after (server → client) the family changes, its ICMP errors' quotes likewise.

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_drivers::PacketBuf;

use super::icmp6_engine::decrement_hop_limit;
use super::icmp6_engine::Icmp6Cause;
use super::synproxy64_engine::quote_shift64;
use super::synproxy6_engine::proxied_to_server6;
use super::{LbEngine, LbEnv};
use crate::conn::{Conn6, ConnFlags, ConnId, Direction, FlowKey, FlowKey6};
use crate::l2l3::route::{RouteTable, RouteTable6};
use crate::l2l3::Verdict;
use crate::stats::{DropReason, WorkerCounters};
use crate::types::{L4Proto, PortId};
use crate::view::{FragView, L4View, L3_OFFSET};
use crate::view6::{FragView6, L4View6};
use crate::wire::Ipv4Packet;
use crate::xmit::icmp6_err::{self, Icmp6ErrView};
use crate::xmit::icmp_err::IcmpErrView;
use crate::xmit::nat64_icmp::{self, Nat64Mtus};
use crate::xmit::{icmp_err, nat64, Endpoint, Endpoint6};

/// Whether the IPv4 packet in `buf` (its header validated by the worker) has DF set.
fn dont_frag<B: PacketBuf>(buf: &B) -> bool {
    buf.data().get(L3_OFFSET..).filter(|h| h.len() >= 20).is_some_and(|h| Ipv4Packet::new_unchecked(h).dont_frag())
}

/// The worker's routes of both families, which NAT64 needs on the other family's path
/// (the IPv6 path sends to IPv4 servers, the IPv4 path to IPv6 clients). A copy made once
/// when the worker takes its engine ([`LbEngine::set_nat64_routes`]); a worker's routes do
/// not change during its life.
#[derive(Debug, Clone)]
pub struct Nat64Routes {
    /// The IPv4 routes (to the servers).
    pub v4: RouteTable,
    /// The IPv6 routes (to the clients).
    pub v6: RouteTable6,
}

impl LbEngine {
    /// Gives the engine its worker's routes of both families for NAT64
    /// ([`crate::worker::Worker::with_lb`] does). Without them NAT64 packets are dropped
    /// as `no_route`.
    pub fn set_nat64_routes(&mut self, routes: Nat64Routes) {
        self.nat64_routes = Some(Box::new(routes));
    }

    /// A free IPv4 local address and port of this worker's, from `locals` (the service's
    /// IPv4 local addresses), for a NAT64 connection to `server:sport`, in IPv4-mapped
    /// form; `no_local_port` when none is left.
    pub(super) fn alloc_local64(
        &mut self,
        locals: &[Ipv4Addr],
        server: Ipv4Addr,
        sport: u16,
    ) -> Result<(Ipv6Addr, u16), DropReason> {
        let (local, lport) =
            self.lports.alloc(locals, server, sport, self.rss.as_ref()).ok_or(DropReason::NoLocalPort)?;
        Ok((local.to_ipv6_mapped(), lport))
    }

    /// The client → VIP packet `view` of NAT64 connection `id` (`c` its copy, `ends` its
    /// IPv4 local address and server): checked, translated to IPv4 and routed to the
    /// server (module docs).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn nat64_inbound<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        view: &L4View6,
        id: ConnId,
        c: &Conn6,
        (local, server): (Ipv4Addr, Ipv4Addr),
        in_port: PortId,
        routes6: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        if view.hop_limit <= 1 {
            return self.icmp6_error(buf, Icmp6Cause::HopLimit, true, view.dst, in_port, routes6, counters, now);
        }
        let Some(hop) = self.nat64_routes.as_ref().and_then(|r| r.v4.lookup(server)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let (port, next_hop) = (hop.port, hop.neighbour(server));
        let mtu = self.mtu(port.index());
        let v4_len = view.layout().l4_len() + nat64::IPV4_HEADER_LEN;
        if v4_len > usize::from(mtu) {
            // The client's IPv6 packets may be this MTU plus the 20 bytes the header loses.
            let cause = Icmp6Cause::TooBig(mtu.saturating_add(nat64::HEADER_SHRINK as u16));
            return self.icmp6_error(buf, cause, true, view.dst, in_port, routes6, counters, now);
        }
        if c.flags.contains(ConnFlags::SYNPROXY) {
            // Out of line: one flag test on other connections' path.
            proxied_to_server6(buf, view, c);
        }
        let toa = (c.flags.contains(ConnFlags::TOA_PENDING) && view.proto() == L4Proto::Tcp)
            .then_some(Endpoint6::new(c.client, c.cport));
        let ident = self.next_nat64_ident();
        let r = nat64::v6_to_v4(
            buf,
            view.layout(),
            Endpoint::new(local, c.lport),
            Endpoint::new(server, c.sport),
            toa,
            mtu,
            ident,
        );
        if r.toa_skipped.is_some() {
            counters.toa_skipped.inc();
        }
        // As IPv6 Full-NAT: the TOA rides on the SYN and the segment that completes the
        // handshake, then no more.
        if toa.is_some() && !view.flags.is_some_and(|f| f.syn()) {
            if let Some(c) = self.conns6.get_mut(id) {
                c.flags.remove(ConnFlags::TOA_PENDING);
            }
        }
        Verdict::Route { port, next_hop }
    }

    /// An IPv4 packet to one of our local addresses that matched no IPv4 connection, on
    /// the worker that owns its local port: a NAT64 reply, translated to IPv6 and routed
    /// to the client, or `reply_no_conn` (module docs). Out of line: the IPv4 path pays
    /// only for its own misses (one call), and only while the IPv6 table holds a
    /// connection is it looked up.
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_reply<B: PacketBuf>(
        &mut self,
        flow: &L4View,
        buf: &mut B,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        if self.conns6.is_empty() {
            return Verdict::Drop(DropReason::ReplyNoConn);
        }
        let key = FlowKey6 {
            proto: flow.proto(),
            src: flow.src.to_ipv6_mapped(),
            sport: flow.sport,
            dst: flow.dst.to_ipv6_mapped(),
            dport: flow.dport,
        };
        let Some((id, Direction::Reply)) = self.conns6.lookup(&key) else {
            return Verdict::Drop(DropReason::ReplyNoConn);
        };
        if self.conns6.get(id).and_then(Conn6::nat64_ends).is_none() {
            return Verdict::Drop(DropReason::ReplyNoConn);
        }
        let ip_end = flow.layout().ip_end();
        let ttl = buf.data().get(L3_OFFSET + 8).copied().unwrap_or(0);
        if ttl <= 1 {
            // The IPv4 path's time exceeded, from the local address to the server.
            return self.ttl(buf, ip_end, env, now, || flow.dst).unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
        }
        match self.account6_packet(id, Direction::Reply, flow.flags, flow.ip_total_len(), now) {
            Ok(change) if self.sync.is_some() && change.changed() => self.sync_conn6(id, now, env.counters, false),
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::ReplyNoConn) };
        if c.flags.contains(ConnFlags::SYNPROXY) {
            let server = flow.src;
            if let Some(v) = self.proxied_reply64(id, &c, server, buf, flow, env, now) {
                return v;
            }
        }
        let Some(hop) = self.nat64_routes.as_ref().and_then(|r| r.v6.lookup(c.client)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let (port, next_hop) = (hop.port, hop.neighbour(c.client));
        let mtu = self.mtu(port.index());
        let v6_len = flow.layout().ip_total_len() - flow.layout().ip_header_len() + crate::view6::IPV6_HEADER_LEN;
        let (vip, client) = (Endpoint6::new(c.vip, c.vport), Endpoint6::new(c.client, c.cport));
        if v6_len > usize::from(mtu) {
            if dont_frag(&*buf) {
                return self.nat64_too_big(buf, flow, mtu, env, now);
            }
            // DF clear: the translator fragments (RFC 7915 §4.1), the worker cuts.
            return match nat64::v4_to_v6_fragment(buf, Some(flow.layout()), flow.proto(), vip, client) {
                Ok(()) => Verdict::Route6Cut { port, next_hop },
                Err(e) => Verdict::Drop(e.into()),
            };
        }
        let syn_ack = flow.flags.is_some_and(|f| f.syn() && f.ack());
        match nat64::v4_to_v6(buf, flow.layout(), vip, client, syn_ack) {
            Ok(()) => Verdict::Route6 { port, next_hop },
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// An ICMP error to a local address about the packet `key` reversed, which no IPv4
    /// connection has: about a NAT64 flow's packet to its server, translated to ICMPv6
    /// and routed to the client, else `icmp_unhandled` (module docs). Out of line, as
    /// [`Self::nat64_reply`].
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_icmp_error<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        err: &IcmpErrView,
        key: &FlowKey,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        if self.conns6.is_empty() {
            return Verdict::Drop(DropReason::IcmpUnhandled);
        }
        let key6 = FlowKey6 {
            proto: key.proto,
            src: key.src.to_ipv6_mapped(),
            sport: key.sport,
            dst: key.dst.to_ipv6_mapped(),
            dport: key.dport,
        };
        let c = match self.conns6.lookup(&key6) {
            Some((id, Direction::Reply)) => self.conns6.get(id).copied(),
            _ => None,
        };
        let Some((c, (_, server))) = c.and_then(|c| Some((c, c.nat64_ends()?))) else {
            return Verdict::Drop(DropReason::IcmpUnhandled);
        };
        let Some(routes) = self.nat64_routes.as_ref() else { return Verdict::Drop(DropReason::NoRoute) };
        let Some(hop) = routes.v6.lookup(c.client) else { return Verdict::Drop(DropReason::NoRoute) };
        let (port, next_hop) = (hop.port, hop.neighbour(c.client));
        let v4 = routes.v4.lookup(server).map_or(u16::MAX, |h| self.mtu(h.port.index()));
        let mtus = Nat64Mtus { v4, v6: self.mtu(port.index()) };
        if let Some(v) = self.ttl(buf, err.ip_end(), env, now, || err.ip_src()) {
            return v;
        }
        // About rvs's packet to the server: a SYN-proxied flow's quote moves into the
        // client's numbering (`synproxy64_engine`), while it is still IPv4.
        if let Some((seq, ack)) = quote_shift64(&c, true) {
            if let Err(e) = icmp_err::shift_quoted_tcp(buf, err, seq, ack) {
                return Verdict::Drop(e.into());
            }
        }
        let (vip, client) = (Endpoint6::new(c.vip, c.vport), Endpoint6::new(c.client, c.cport));
        match nat64_icmp::v4_err_to_v6(buf, err, vip, client, mtus) {
            Ok(()) => {
                env.counters.icmp_errors_translated.inc();
                Verdict::Route6 { port, next_hop }
            }
            Err(e) => Verdict::Drop(e.icmp_reason()),
        }
    }

    /// An ICMPv6 error from the client's side about a reply of NAT64 connection `c`
    /// (`ends` its IPv4 local address and server), parsed into `err`: translated to
    /// ICMPv4 and routed to the server (module docs).
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_icmp6_error<B: PacketBuf>(
        &self,
        buf: &mut B,
        err: &Icmp6ErrView,
        c: &Conn6,
        (local, server): (Ipv4Addr, Ipv4Addr),
        in_port: PortId,
        counters: &WorkerCounters,
    ) -> Verdict {
        let Some(hop) = self.nat64_routes.as_ref().and_then(|r| r.v4.lookup(server)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let (port, next_hop) = (hop.port, hop.neighbour(server));
        let mtus = Nat64Mtus { v4: self.mtu(port.index()), v6: self.mtu(in_port.index()) };
        if !decrement_hop_limit(buf) {
            return Verdict::Drop(DropReason::Ip6HopLimit);
        }
        // About rvs's packet to the client: a SYN-proxied flow's quote moves into the
        // server's numbering (`synproxy64_engine`), while it is still IPv6.
        if let Some((seq, ack)) = quote_shift64(c, false) {
            if let Err(e) = icmp6_err::shift_quoted_tcp(buf, err, seq, ack) {
                return Verdict::Drop(e.into());
            }
        }
        let (server, local) = (Endpoint::new(server, c.sport), Endpoint::new(local, c.lport));
        match nat64_icmp::v6_err_to_v4(buf, err, server, local, mtus) {
            Ok(()) => {
                counters.icmp_errors_translated.inc();
                Verdict::Route { port, next_hop }
            }
            Err(e) => Verdict::Drop(e.icmp6_reason()),
        }
    }

    /// A client → VIP IPv6 fragment `frag` of NAT64 connection `c` (`ends` its IPv4
    /// local address and server), its hop limit checked and the packet accounted:
    /// translated to an IPv4 fragment and routed to the server (module docs). One over
    /// the server port's MTU once in IPv4: `ip6_too_big`, the first fragment with its
    /// packet too big (the MTU plus the 28 bytes the headers shrink).
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_fragment<B: PacketBuf>(
        &self,
        buf: &mut B,
        frag: &FragView6,
        c: &Conn6,
        (local, server): (Ipv4Addr, Ipv4Addr),
        in_port: PortId,
        routes6: &RouteTable6,
        counters: &WorkerCounters,
        now: u64,
    ) -> Verdict {
        let Some(hop) = self.nat64_routes.as_ref().and_then(|r| r.v4.lookup(server)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let (port, next_hop) = (hop.port, hop.neighbour(server));
        let mtu = self.mtu(port.index());
        // The fixed and fragment headers (48 bytes) become a 20-byte IPv4 header.
        let shrink = crate::view6::IPV6_HEADER_LEN + crate::wire::ipv6::FragHeader::LEN - nat64::IPV4_HEADER_LEN;
        let v4_len = usize::try_from(frag.ip_len).unwrap_or(usize::MAX).saturating_sub(shrink);
        if v4_len > usize::from(mtu) {
            let cause = Icmp6Cause::TooBig(mtu.saturating_add(shrink as u16));
            return self.icmp6_error(buf, cause, frag.is_first(), c.vip, in_port, routes6, counters, now);
        }
        // No TOA in a fragment (`frag6_engine`).
        if frag.is_first() && c.flags.contains(ConnFlags::TOA_PENDING) && c.proto == L4Proto::Tcp {
            counters.toa_skipped.inc();
        }
        let first = frag.first.as_ref().map(|v| v.layout());
        let (local, server) = (Endpoint::new(local, c.lport), Endpoint::new(server, c.sport));
        match nat64::fragment_v6_to_v4(buf, first, c.proto, local, server) {
            Ok(()) => Verdict::Route { port, next_hop },
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// The IPv4 identification for the next NAT64 packet to a server (`xmit::nat64`
    /// uses it when the packet goes with DF clear): a per-worker counter.
    #[inline]
    pub(super) fn next_nat64_ident(&mut self) -> u16 {
        self.nat64_ident = self.nat64_ident.wrapping_add(1);
        self.nat64_ident
    }

    /// A server → local address IPv4 fragment `frag` (its ports from the fragment table)
    /// that matched no IPv4 connection, on the local port's owner: a fragment of a NAT64
    /// reply, translated to an IPv6 fragment from the VIP to the client (RFC 7915 §4.1,
    /// [`nat64::v4_to_v6_fragment`]) and routed there, or `reply_no_conn` (module docs).
    /// One longer than the client port's MTU once translated is [`Verdict::Route6Cut`],
    /// for the worker to cut, unless its DF is set (`ip6_too_big`).
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_fragment_reply<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        frag: &FragView,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        if self.conns6.is_empty() {
            return Verdict::Drop(DropReason::ReplyNoConn);
        }
        let k = frag.key;
        let key = FlowKey6 {
            proto: k.proto,
            src: k.src.to_ipv6_mapped(),
            sport: k.sport,
            dst: k.dst.to_ipv6_mapped(),
            dport: k.dport,
        };
        let Some((id, Direction::Reply)) = self.conns6.lookup(&key) else {
            return Verdict::Drop(DropReason::ReplyNoConn);
        };
        match self.conns6.get(id) {
            Some(c) if c.nat64_ends().is_none() => return Verdict::Drop(DropReason::ReplyNoConn),
            // The proxy's sequence translation wants the whole segment, as on every
            // proxied flow (`frag_engine`, `frag6_engine`).
            Some(c) if c.flags.contains(ConnFlags::SYNPROXY) => return Verdict::Drop(DropReason::IpFragment),
            Some(_) => {}
            None => return Verdict::Drop(DropReason::ReplyNoConn),
        }
        let ttl = buf.data().get(L3_OFFSET + 8).copied().unwrap_or(0);
        if ttl <= 1 {
            // A first fragment's time exceeded as a whole packet's; none about a later
            // one (RFC 1812 §4.3.2.7).
            if frag.first.is_some() {
                let v = self.ttl(buf, frag.ip_end, env, now, || k.dst);
                return v.unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
            }
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let flags = frag.first.and_then(|v| v.flags);
        match self.account6_packet(id, Direction::Reply, flags, u64::from(frag.ip_total_len), now) {
            Ok(change) if self.sync.is_some() && change.changed() => self.sync_conn6(id, now, env.counters, false),
            Ok(_) => {}
            Err(reason) => return Verdict::Drop(reason),
        }
        let Some(&c) = self.conns6.get(id) else { return Verdict::Drop(DropReason::ReplyNoConn) };
        let Some(hop) = self.nat64_routes.as_ref().and_then(|r| r.v6.lookup(c.client)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let (port, next_hop) = (hop.port, hop.neighbour(c.client));
        let ip_header_len = usize::from(buf.data().get(L3_OFFSET).map_or(5, |b| b & 0x0f)) * 4;
        let v6_len = usize::from(frag.ip_total_len).saturating_sub(ip_header_len)
            + crate::view6::IPV6_HEADER_LEN
            + nat64::FRAG_HEADER_LEN;
        let fits = v6_len <= usize::from(self.mtu(port.index()));
        if !fits && frag.dont_frag {
            return Verdict::Drop(DropReason::Ip6TooBig);
        }
        let (vip, client) = (Endpoint6::new(c.vip, c.vport), Endpoint6::new(c.client, c.cport));
        let first = frag.first.as_ref().map(|v| v.layout());
        match nat64::v4_to_v6_fragment(buf, first, c.proto, vip, client) {
            Ok(()) if fits => Verdict::Route6 { port, next_hop },
            Ok(()) => Verdict::Route6Cut { port, next_hop },
            Err(e) => Verdict::Drop(e.into()),
        }
    }

    /// A NAT64 reply with DF set whose IPv6 translation would pass the client port's
    /// `mtu`: dropped as `ip6_too_big`, with an ICMP fragmentation needed from the local
    /// address to the server with the IPv4 size that fits (within the ICMP limits).
    #[cold]
    fn nat64_too_big<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        flow: &L4View,
        mtu: u16,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Verdict {
        if !self.icmp_limit.allow(flow.src, now) {
            env.counters.icmp_errors_limited.inc();
            return Verdict::Drop(DropReason::Ip6TooBig);
        }
        let fits = mtu.saturating_sub(nat64::HEADER_SHRINK as u16);
        match icmp_err::frag_needed(buf, flow.dst, fits) {
            Ok(()) => {
                env.counters.drop_packet(DropReason::Ip6TooBig);
                env.counters.local_originated.inc();
                env.counters.icmp_errors_sent.inc();
                self.route_to(env, flow.src)
            }
            Err(_) => Verdict::Drop(DropReason::Ip6TooBig),
        }
    }
}
