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

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use super::LbEngine;
use crate::l2l3::nd;
use crate::l2l3::route::RouteTable6;
use crate::l2l3::Verdict;
use crate::stats::{DropReason, WorkerCounters};
use crate::types::PortId;
use crate::view::L3_OFFSET;
use crate::xmit::icmp6_err::{self, Icmp6ErrError};

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
}
