//! The SYN proxy's server side for NAT64 services (an IPv6 VIP served by IPv4 Full-NAT
//! servers, `nat64_engine`): the client's side of the exchange is IPv6's
//! (`synproxy6_engine`: the cookie SYN-ACK and its check, with the IPv6 cookie tuple and
//! MSS table); from the valid ACK on the server's side is IPv4.
//!
//! * **The SYN to the server** ([`LbEngine::nat64_server_syn`]): the client's ACK is
//!   rewritten into the SYN the client would have sent (IPv6, client → VIP, with the
//!   client's ISN and the options its cookie and echoed timestamp hold), which then takes
//!   the unproxied NAT64 translation (`crate::xmit::nat64::v6_to_v4`): IPv4 from the
//!   connection's IPv4 local address and port to the server, the 20-byte IPv6 TOA of the
//!   client on it, the TTL one below the built segment's hop limit. So the server sees
//!   what an unproxied NAT64 SYN looks like; the TOA rides again on the client's first
//!   segment after the window opens (`TOA_PENDING`, `LbEngine::nat64_inbound`).
//! * **The server's segments** come to an IPv4 local address and reach
//!   `LbEngine::nat64_reply` on the IPv4 path, which hands a proxied connection's to
//!   [`LbEngine::proxied_reply64`] (as `proxied_reply6` on IPv6): the first SYN-ACK
//!   fixes the offsets and becomes the IPv6 window update to the client, a later one is
//!   answered with rvs's IPv4 ACK to the server, a RST while pending becomes an IPv6 RST
//!   to the client, anything else while pending is `syn_proxy_pending`; established
//!   segments are translated into the client's spaces (`translate_to_client`, on the
//!   IPv4 segment) and then to IPv6 as any NAT64 reply.
//! * **Client → server** segments are translated into the server's spaces
//!   (`proxied_to_server6`, on the IPv6 segment) before the NAT64 translation.
//! * **ICMP errors** about a proxied NAT64 flow's packets have their quoted numbers moved
//!   into the receiver's numbering, as IPv4's and IPv6's ([`quote_shift64`]), before the
//!   error changes family (`crate::xmit::nat64_icmp`).
//! * **Sync**: the NAT64 record carries the offsets as any proxied record
//!   (`crate::sync::SynProxyRecord`); the peer installs them and translates.
//! * **Next hops**: NAT64 connections never cache one (the IPv4 routes to the server and
//!   the IPv6 routes to the client are looked up per packet, `Nat64Routes`), so the
//!   offsets a proxied entry keeps in its `hop` field meet no next-hop cache.

use std::net::Ipv4Addr;

use rvs_drivers::PacketBuf;

use super::synproxy_engine::{to_client_established, Opening, ServerSeg};
use super::{LbEngine, LbEnv};
use crate::conn::{Conn6, ConnFlags, ConnId};
use crate::l2l3::Verdict;
use crate::stats::{DropReason, WorkerCounters};
use crate::synproxy::packet::{self, ServerSyn};
use crate::view::L4View;
use crate::xmit::{nat64, Endpoint, Endpoint6};

/// The quoted-number shift (sequence, acknowledgement; both wrapping) for an ICMP error
/// about a packet of connection `c` in direction `towards_server` (rvs's packet to the
/// server: its acknowledgement is in the server's numbering, the client's `seq_off`
/// lower) or towards the client (its sequence number is in the client's numbering, the
/// server's `seq_off` higher). `None`: not an established SYN-proxied connection,
/// nothing to shift.
pub(super) fn quote_shift64(c: &Conn6, towards_server: bool) -> Option<(u32, u32)> {
    if !c.flags.contains(ConnFlags::SYNPROXY) || c.flags.contains(ConnFlags::SYNPROXY_PENDING) {
        return None;
    }
    let (seq_off, _) = c.synproxy_offsets();
    Some(if towards_server { (0, seq_off.wrapping_neg()) } else { (seq_off, 0) })
}

impl LbEngine {
    /// The SYN to the IPv4 server of proxied NAT64 connection `c` (`ends` its IPv4 local
    /// address and server), from the client's ACK in `buf` (module docs). The TOA that
    /// does not fit counts in `toa_skipped`; the SYN goes without it.
    #[inline(never)]
    pub(super) fn nat64_server_syn<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        c: &Conn6,
        (local, server): (Ipv4Addr, Ipv4Addr),
        syn: &ServerSyn,
        counters: &WorkerCounters,
    ) -> Verdict {
        let (client, vip) = (Endpoint6::new(c.client, c.cport), Endpoint6::new(c.vip, c.vport));
        let Some(built) = packet::write_server_syn(buf, client, vip, syn) else {
            return Verdict::Drop(DropReason::NoMbuf);
        };
        let Some(hop) = self.nat64_routes.as_ref().and_then(|r| r.v4.lookup(server)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let (port, next_hop) = (hop.port, hop.neighbour(server));
        let toa = c.flags.contains(ConnFlags::TOA_PENDING).then_some(client);
        let (local, server) = (Endpoint::new(local, c.lport), Endpoint::new(server, c.sport));
        let ident = self.next_nat64_ident();
        let r = nat64::v6_to_v4(buf, built.layout(), local, server, toa, self.mtu(port.index()), ident);
        if r.toa_skipped.is_some() {
            counters.toa_skipped.inc();
        }
        Verdict::Route { port, next_hop }
    }

    /// An IPv4 segment `flow` from the server of proxied NAT64 connection `id` (`c` its
    /// copy, `server` its IPv4 server; the state machine has seen it), as
    /// `proxied_reply6`: the first SYN-ACK opens the client's window (IPv6), later ones
    /// are answered with the ACK that completes the server's handshake (IPv4), a RST
    /// while pending becomes a RST to the client (IPv6), anything else while pending is
    /// `syn_proxy_pending`. `None`: an ordinary segment, now translated into the client's
    /// spaces; the NAT64 reply path goes on with it.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn proxied_reply64<B: PacketBuf>(
        &mut self,
        id: ConnId,
        c: &Conn6,
        server: Ipv4Addr,
        buf: &mut B,
        flow: &L4View,
        env: &LbEnv<'_>,
        now: u64,
    ) -> Option<Verdict> {
        let c = *c;
        let (vip, client) = (Endpoint6::new(c.vip, c.vport), Endpoint6::new(c.client, c.cport));
        match ServerSeg::of(&c, flow.flags) {
            ServerSeg::Established => {
                let l = flow.layout();
                to_client_established(&mut buf.data_mut()[l.l4_offset()..l.ip_end()], &c);
                None
            }
            ServerSeg::Pending => Some(Verdict::Drop(DropReason::SynProxyPending)),
            ServerSeg::Refused => {
                let (cookie_isn, _) = c.synproxy_offsets();
                self.close_conn6(id);
                env.counters.syn_proxy_server_refused.inc();
                if packet::write_client_rst(buf, vip, client, cookie_isn.wrapping_add(1)).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(self.route64_to_client(c.client))
            }
            ServerSeg::SynAckAgain => {
                // rvs's ACK goes back in IPv4, from the local address.
                let (from, to_us) = (Endpoint::new(server, c.sport), Endpoint::new(flow.dst, c.lport));
                let seg = packet::read(buf.data(), flow.layout());
                if packet::write_server_ack(buf, from, to_us, &seg).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(self.route_to(env, server))
            }
            ServerSeg::SynAck => {
                let seg = packet::read(buf.data(), flow.layout());
                let opening = Opening::of(&c, &seg);
                if let Some(e) = self.conns6.get_mut(id) {
                    opening.record(e);
                }
                if self.sync.is_some() {
                    // The offsets are known now: the peer needs them.
                    self.sync_conn6(id, now, env.counters, false);
                }
                env.counters.syn_proxy_handshakes.inc();
                if opening.write_window_update(buf, vip, client, &seg).is_none() {
                    return Some(Verdict::Drop(DropReason::NoMbuf));
                }
                Some(self.route64_to_client(c.client))
            }
        }
    }

    /// The verdict for rvs's own IPv6 segment to `client` from the IPv4 path: through the
    /// IPv6 routes NAT64 keeps (`no_route` when none).
    fn route64_to_client(&self, client: std::net::Ipv6Addr) -> Verdict {
        match self.nat64_routes.as_ref().and_then(|r| r.v6.lookup(client)) {
            Some(hop) => Verdict::Route6 { port: hop.port, next_hop: hop.neighbour(client) },
            None => Verdict::Drop(DropReason::NoRoute),
        }
    }
}
