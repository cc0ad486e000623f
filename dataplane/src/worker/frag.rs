//! The worker's path for IPv4 fragments of TCP/UDP flows (IPv6's, which share the table
//! and the steering below, are in the `frag6` module): off the fast path (an
//! unfragmented packet costs the one test of the fragment bits that the IPv4 checks always
//! made), it makes every fragment of a datagram reach its flow's owner with the flow's
//! ports, and the L4 engine forward it like the flow ([`crate::lb::LbEngine::handle_fragment`]).
//!
//! Contract:
//! * A fragment passes the IPv4 checks of any packet (header, checksum, source, the VRRP
//!   group of its destination); then one of TCP/UDP to a VIP, to a local address, or not
//!   ours (a NAT reply), with an L4 engine, is [`Verdict::Fragment`]; any other fragment
//!   is `ip_fragment`.
//! * Steering, in two steps, both through the redirect mesh. A later fragment has no ports
//!   and its flow's owner hashes the ports, so first every fragment goes to its
//!   datagram's *fragment owner* ([`fragment_owner`] of source, destination,
//!   identification, protocol — all in every fragment). There the worker's
//!   [`FragTable`] learns the ports from the first fragment, holds the fragments that come
//!   before it, and releases each with the ports; each then goes to the flow's owner
//!   ([`flow_owner`]) with the ports attached to the mesh item ([`Redirected::ports`]),
//!   where it is handled with them and never redirected again (`redirect_loop` if the
//!   engine disagreed). With one worker both owners are the worker itself.
//! * Order: when a first fragment releases held ones, it is handled first, so that a UDP
//!   datagram's connection exists (it is created by the first fragment) before its later
//!   fragments look it up. Both families take this step, and the redirect to the
//!   fragment owner before it, through [`Worker::take_owned`]; only reading a fragment,
//!   its fragment owner and the steer step after it are per family.
//! * Refusals of the table (overlap, oversized, inconsistent — including RFC 1858's first
//!   fragment too short for its L4 header —, too many fragments, timeout, table full) are
//!   dropped and counted under the `frag_*` reason of the same name; a held fragment is
//!   an mbuf, freed when dropped.
//! * Bounds: the table is allocated once ([`Worker::with_lb`]) with [`FRAG_TRAINS`]
//!   trains and at most [`FRAG_MAX_HELD`] held mbufs; a train lives [`FRAG_TIMEOUT_NS`]
//!   after its first fragment came. The timer path sweeps [`FRAG_SWEEP_SLOTS`] slots per
//!   run (every `TIMER_INTERVAL_NS`), so held fragments of a train whose first never
//!   came are freed within the timeout plus one sweep of the table. The held count is the
//!   `frag_held` gauge (part of the counting invariant, [`crate::stats`]).
//! * IPIP: an encapsulated fragment over the egress MTU (its DF is clear) is cut into
//!   outer fragments here, where the pool is ([`crate::xmit::frag::fragment_outer`]); the
//!   extra pieces count as `local_originated` and `tunnel_fragments`. Their outer
//!   identification comes from a per-worker counter, started at `index * 65536 / count`
//!   so that workers do not reuse each other's values for a long while: every outer
//!   datagram needs its own (the inner identification is shared by all fragments of a
//!   datagram, so the tunnel's usual copy of it would make the server mix them).
//! * NAT64: the server's IPv4 fragments to a local address take this path like any
//!   Full-NAT reply's (fragment owner, table, the local port's owner); the engine
//!   translates each to an IPv6 fragment (`lb::nat64_engine`). One that grows past the
//!   client port's MTU — 28 bytes longer than the IPv4 fragment —, like an unfragmented
//!   reply with DF clear over it, comes back as [`Verdict::Route6Cut`], and
//!   [`Worker::send_cut6`] cuts it into IPv6 fragments here, where the pool is
//!   ([`crate::xmit::frag::fragment_v6`]; the extra pieces count as `local_originated`
//!   and `nat64_fragments`).

use arrayvec::ArrayVec;
use rvs_drivers::{PacketBuf, PacketPool, PortQueue};

use super::{Redirected, Worker};
use crate::conn::owner::fragment_owner;
use crate::conn::FlowKey;
use crate::frag::{FragDrop, FragKey, FragSink, FragTable, Fragment, L4Ports, MAX_HELD_PER_TRAIN};
use crate::l2l3::{AddrKind, Verdict};
use crate::lb::{flow_owner, LbEnv};
use crate::stats::{DropReason, WorkerCounters};
use crate::types::{L4Proto, PortId};
use crate::view::{FragView, L4View, L3_OFFSET};
use crate::wire::{Ipv4Packet, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP};
use crate::xmit::frag::{fragment_outer, fragment_v6, Frag6Error, OuterFragError};

/// Trains one worker's fragment table tracks at once (about 800 bytes each: the byte
/// ranges and held handles of a train are inline).
pub const FRAG_TRAINS: usize = 1024;
/// Fragments (mbufs) one worker holds at most while their first fragment has not come.
pub const FRAG_MAX_HELD: usize = 256;
/// How long a train lives after its first fragment came (Linux's `ipfrag_time` is 30 s
/// for reassembly; fragments of one datagram normally come within microseconds, and a
/// held mbuf should not wait long).
pub const FRAG_TIMEOUT_NS: u64 = 1_000_000_000;
/// Table slots the timer path looks at per run.
pub const FRAG_SWEEP_SLOTS: usize = 256;

/// The table of a worker built without an L4 engine: one bucket (nothing reaches it).
pub(super) fn empty_table<H>() -> FragTable<H> {
    FragTable::new(0, 0, FRAG_TIMEOUT_NS)
}

/// The table of a worker with an L4 engine.
pub(super) fn table<H>() -> FragTable<H> {
    FragTable::new(FRAG_TRAINS, FRAG_MAX_HELD, FRAG_TIMEOUT_NS)
}

/// Whether `frame` is an Ethernet II frame of IPv6 (the fragment path's only question
/// about the family, asked before anything is parsed).
#[inline]
pub(super) fn is_ipv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x86, 0xdd][..])
}

/// What the fragment table releases for one fragment: each fragment (its port and mbuf)
/// with its train's ports, in the order to handle them ([`Worker::take_owned`]).
pub(super) type Released<B> = ArrayVec<((PortId, B), L4Ports), { MAX_HELD_PER_TRAIN + 1 }>;

/// Where the table's decisions go: drops are counted and their mbufs freed at once,
/// forwarded fragments wait (on the stack) until the table is released.
struct Sink<'a, B> {
    counters: &'a WorkerCounters,
    out: Released<B>,
}

impl<B> FragSink<(PortId, B)> for Sink<'_, B> {
    fn forward(&mut self, handle: (PortId, B), ports: L4Ports) {
        // One call releases at most the train's held fragments and the one given.
        if let Err(e) = self.out.try_push((handle, ports)) {
            drop(e);
            self.counters.drop_packet(DropReason::FragTableFull);
        }
    }

    fn drop(&mut self, handle: (PortId, B), reason: FragDrop) {
        drop(handle);
        self.counters.drop_packet(reason.into());
    }
}

/// The datagram identity and fragment facts of a validated IPv4 fragment, the first
/// fragment's ports when its L4 header is whole.
fn read_fragment(frame: &[u8]) -> Option<(FragKey, Fragment)> {
    let ip = Ipv4Packet::new_checked(frame.get(L3_OFFSET..)?).ok()?;
    let offset = ip.frag_offset();
    let ports = if offset == 0 {
        L4View::from_first_fragment(&ip).ok().map(|v| L4Ports { src: v.sport, dst: v.dport, proto: v.proto() })
    } else {
        None
    };
    let len = ip.total_len().saturating_sub(ip.header_len() as u16);
    let key = FragKey {
        src: ip.src_addr().into(),
        dst: ip.dst_addr().into(),
        ident: u32::from(ip.ident()),
        protocol: ip.protocol(),
    };
    Some((key, Fragment { offset, len, more: ip.more_frags(), ports }))
}

impl<Q: PortQueue, P: PacketPool<Buf = Q::Buf>> Worker<Q, P> {
    /// A fragment with [`Verdict::Fragment`]: to its fragment owner, or into this worker's
    /// table; what the table releases goes on to the flow's owner.
    #[cold]
    #[inline(never)]
    pub(super) fn take_fragment(&mut self, port: PortId, buf: Q::Buf, now: u64) {
        if is_ipv6(buf.data()) {
            return self.take_fragment6(port, buf, now);
        }
        let Some((key, frag)) = read_fragment(buf.data()) else {
            self.tx.counters.drop_packet(DropReason::IpFragment);
            return;
        };
        let (src, dst) = match (key.src, key.dst) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => (s, d),
            _ => return self.tx.counters.drop_packet(DropReason::IpFragment),
        };
        // The identification is IPv4's 16 bits here.
        let owner = fragment_owner(src, dst, key.ident as u16, key.protocol, self.redirect.workers());
        for ((port, buf), ports) in self.take_owned(port, buf, key, frag, owner, now) {
            self.steer_fragment(port, buf, ports, now);
        }
    }

    /// The family-agnostic step of both fragment paths: a fragment (of `key`, `frag`)
    /// whose fragment owner is `owner` goes there through the redirect mesh (nothing is
    /// returned), or into this worker's table. Returns what the table releases, in the
    /// order to steer it: the table hands out the fragments a first one releases before
    /// it, so the first goes first (module docs). Drops are counted and the `frag_held`
    /// gauge set.
    pub(super) fn take_owned(
        &mut self,
        port: PortId,
        buf: Q::Buf,
        key: FragKey,
        frag: Fragment,
        owner: usize,
        now: u64,
    ) -> Released<Q::Buf> {
        if owner != self.index {
            self.dispatch(port, Verdict::Redirect { worker: owner }, buf, now);
            return ArrayVec::new();
        }
        let mut sink = Sink { counters: &self.tx.counters, out: ArrayVec::new() };
        self.frags.accept(now, key, frag, (port, buf), &mut sink);
        let mut out = sink.out;
        self.tx.counters.frag_held.set(self.frags.held() as u64);
        if frag.offset == 0 && out.len() > 1 {
            out.rotate_right(1);
        }
        out
    }

    /// A fragment whose ports are known: to the flow's owner, or handled here.
    fn steer_fragment(&mut self, port: PortId, buf: Q::Buf, ports: L4Ports, now: u64) {
        self.tx.counters.frag_forwarded.inc();
        let Some((key, kind)) = self.fragment_flow(buf.data(), ports) else {
            return self.tx.counters.drop_packet(DropReason::IpFragment);
        };
        let Some(owner) = flow_owner(&key, kind, self.redirect.workers()) else {
            return self.tx.counters.drop_packet(DropReason::IpFragment);
        };
        if owner == self.index {
            return self.fragment_with_ports(port, buf, ports, now);
        }
        match self.redirect.send(owner, Redirected { port, buf, ports: Some(ports) }) {
            Ok(()) => self.tx.counters.redirected_out.inc(),
            Err(_) => self.tx.counters.drop_packet(DropReason::RedirectFull),
        }
    }

    /// The flow key of a fragment with `ports`, and what its destination is to us.
    fn fragment_flow(&self, frame: &[u8], ports: L4Ports) -> Option<(FlowKey, Option<AddrKind>)> {
        let ip = Ipv4Packet::new_checked(frame.get(L3_OFFSET..)?).ok()?;
        let proto = match ip.protocol() {
            IPPROTO_TCP => L4Proto::Tcp,
            IPPROTO_UDP => L4Proto::Udp,
            _ => return None,
        };
        let key = FlowKey { proto, src: ip.src_addr(), sport: ports.src, dst: ip.dst_addr(), dport: ports.dst };
        Some((key, self.addrs.get(key.dst).map(|o| o.kind)))
    }

    /// Hands a fragment of this worker's flow, with its train's ports, to the L4 engine,
    /// and carries out the verdict (cutting an IPIP packet over the MTU).
    pub(super) fn fragment_with_ports(&mut self, port: PortId, mut buf: Q::Buf, ports: L4Ports, now: u64) {
        let Some(lb) = self.lb.as_mut() else {
            return self.tx.counters.drop_packet(DropReason::L4NoService);
        };
        let parsed = buf
            .data()
            .get(L3_OFFSET..)
            .and_then(|b| Ipv4Packet::new_checked(b).ok())
            .ok_or(DropReason::IpTruncated)
            .and_then(|ip| {
                Ok((FragView::new(&ip, ports.src, ports.dst)?, self.addrs.get(ip.dst_addr()).map(|o| o.kind)))
            });
        let (view, kind) = match parsed {
            Ok(p) => p,
            Err(reason) => return self.tx.counters.drop_packet(reason),
        };
        let env = LbEnv {
            routes: &self.routes,
            addrs: &self.addrs,
            port_addrs: &self.port_addrs,
            counters: &self.tx.counters,
            neigh: &self.neigh,
            neigh_generation: self.neigh.generation(),
        };
        let verdict = lb.handle_fragment(&mut buf, &view, kind, &env, now);
        let egress = match verdict {
            Verdict::Redirect { .. } => return self.tx.counters.drop_packet(DropReason::RedirectLoop),
            Verdict::Forward { port, .. } | Verdict::Route { port, .. } => Some(port),
            _ => None,
        };
        let mtu = egress.map(|p| lb.port_mtu(p));
        let ipip = buf.data().get(L3_OFFSET + 9) == Some(&IPPROTO_IPIP);
        let total = buf.data().get(L3_OFFSET + 2..L3_OFFSET + 4).map_or(0, |w| u16::from_be_bytes([w[0], w[1]]));
        match mtu {
            Some(mtu) if ipip && total > mtu => self.send_cut(port, verdict, buf, mtu, now),
            _ => self.dispatch(port, verdict, buf, now),
        }
    }

    /// Cuts an encapsulated fragment over `mtu` into outer fragments and sends each with
    /// `verdict`.
    fn send_cut(&mut self, port: PortId, verdict: Verdict, mut buf: Q::Buf, mtu: u16, now: u64) {
        let mut pieces = ArrayVec::new();
        self.tunnel_ident = self.tunnel_ident.wrapping_add(1);
        let pool = &mut self.tx.pool;
        match fragment_outer(&mut buf, mtu, self.tunnel_ident, || pool.alloc(), &mut pieces) {
            Ok(()) => {
                let n = pieces.len() as u64;
                self.tx.counters.local_originated.add(n);
                self.tx.counters.tunnel_fragments.add(n);
                self.dispatch(port, verdict, buf, now);
                for piece in pieces {
                    self.dispatch(port, verdict, piece, now);
                }
            }
            Err(OuterFragError::NoBuffer) => self.tx.counters.drop_packet(DropReason::NoMbuf),
            Err(OuterFragError::TooBig | OuterFragError::Malformed) => {
                self.tx.counters.drop_packet(DropReason::TunnelTooBig)
            }
        }
    }

    /// Cuts a NAT64 reply with [`Verdict::Route6Cut`] into IPv6 fragments for the MTU of
    /// `port` ([`fragment_v6`]) and routes each to `next_hop`; the extra pieces count as
    /// `local_originated` and `nat64_fragments`. No buffer for a piece: `no_mbuf`; an MTU
    /// or a packet it cannot cut for: `ip6_too_big`. The buffer is freed either way.
    #[cold]
    #[inline(never)]
    pub(super) fn send_cut6(
        &mut self,
        port_in: PortId,
        port: PortId,
        next_hop: std::net::Ipv6Addr,
        mut buf: Q::Buf,
        now: u64,
    ) {
        let Some(mtu) = self.lb.as_ref().map(|lb| lb.port_mtu(port)) else {
            return self.tx.counters.drop_packet(DropReason::L4NoService);
        };
        let mut pieces = ArrayVec::new();
        let pool = &mut self.tx.pool;
        match fragment_v6(&mut buf, mtu, || pool.alloc(), &mut pieces) {
            Ok(()) => {
                let n = pieces.len() as u64;
                self.tx.counters.local_originated.add(n);
                self.tx.counters.nat64_fragments.add(n);
                let verdict = Verdict::Route6 { port, next_hop };
                self.dispatch(port_in, verdict, buf, now);
                for piece in pieces {
                    self.dispatch(port_in, verdict, piece, now);
                }
            }
            Err(Frag6Error::NoBuffer) => self.tx.counters.drop_packet(DropReason::NoMbuf),
            Err(Frag6Error::TooBig | Frag6Error::Malformed) => self.tx.counters.drop_packet(DropReason::Ip6TooBig),
        }
    }

    /// The fragment table's share of the timer path: at most [`FRAG_SWEEP_SLOTS`] slots,
    /// freeing the held fragments of expired trains (`frag_timeout`).
    pub(super) fn expire_fragments(&mut self, now: u64) {
        if self.frags.held() == 0 && self.frags.live_trains() == 0 {
            return;
        }
        let mut sink = Sink::<Q::Buf> { counters: &self.tx.counters, out: ArrayVec::new() };
        self.frags.expire_some(now, FRAG_SWEEP_SLOTS, &mut sink);
        self.tx.counters.frag_held.set(self.frags.held() as u64);
    }

    /// Fragments held in the table now (the `frag_held` gauge).
    pub fn fragments_held(&self) -> usize {
        self.frags.held()
    }
}
