//! The worker's path for IPv6 fragments of TCP/UDP flows: the IPv6 counterpart of the
//! IPv4 one (the `frag` module, whose docs give the steering, order and bounds this path
//! shares: the same [`crate::frag::FragTable`], which takes either family, the same
//! redirect mesh, the same `frag_*` drop reasons and `frag_held` gauge).
//!
//! Contract:
//! * A fragment gets here from `l4_rx6` (to an IPv6 VIP, or not ours when there are IPv6
//!   services: a NAT66 reply) after the IPv6 header checks, the bounded extension-header
//!   walk ([`crate::wire::ipv6`]: a first fragment's chain must end within it, or it is
//!   an `ip6_ext_*` drop) and the source check, as [`Verdict::Fragment`]; the worker's
//!   `take_fragment` hands IPv6 ones to [`Worker::take_fragment6`]. An atomic fragment
//!   (offset 0, M clear, RFC 6946) never comes here: it is the whole packet, and the L4
//!   path takes it as one. Fragments whose fragment header names TCP or UDP as its next
//!   header come (the datagram's L4 header right after the fragment header, as most
//!   stacks send them), and those whose fragmentable part starts with a destination
//!   options header (RFC 8200 §4.1's final destination options): a first fragment if
//!   TCP or UDP follows the options (the walk goes through them, bounded as for any
//!   packet), and every later one, which cannot tell and goes with its train (if the
//!   train's first was refused, it waits in the table and times out, `frag_timeout`).
//!   Others are `ip6_fragment`.
//! * The flow's protocol is the train's, learnt with the ports from its first fragment
//!   ([`L4Ports::proto`]): a later fragment shows it only when no options hide it.
//! * The datagram's identity (RFC 8200 §4.5) is source, destination, the fragment
//!   header's 32-bit identification and its next header — all in every fragment. Its
//!   *fragment owner* is [`fragment_owner6`] of those; there the table learns the ports
//!   from the first fragment, which must hold the whole TCP header or the UDP header's
//!   8 bytes (RFC 8200 §4.5, RFC 7112), or it is refused as `frag_inconsistent` (and
//!   its train with it, as IPv4's tiny first fragment); fragments that come before it
//!   are held. Each fragment with its ports then goes to the flow's owner
//!   ([`flow_owner6`]: `client_owner6` of the client, the source of a packet to a VIP or
//!   the destination of a NAT66 reply; `lport_owner` of the local port for a Full-NAT
//!   reply to an IPv6 local address) and to [`crate::lb::LbEngine::handle_fragment6`],
//!   which forwards it in every mode.
//! * Giving the table a fragment and ordering what it releases is the IPv4 path's
//!   [`Worker::take_owned`]; only reading the fragment, its fragment owner and the steer
//!   step are this family's.
//! * Extension headers before the fragment header (hop-by-hop, destination options,
//!   routing with no segments left, AH: the unfragmentable part, the same in every
//!   fragment) are walked with the whole-packet bounds and drop reasons
//!   ([`crate::wire::ipv6::walk_ext_headers`]); the rewrites touch only the fixed header
//!   and, in a first fragment, the L4 header after them.
//! * The offsets and lengths the table checks are of the fragmentable part, the bytes
//!   after the fragment header (RFC 8200 §4.5); a fragment ending past 65535 bytes is
//!   `frag_oversized`.

use std::net::IpAddr;

use rvs_drivers::{PacketBuf, PacketPool, PortQueue};

use super::{Redirected, Worker};
use crate::conn::owner::fragment_owner6;
use crate::conn::FlowKey6;
use crate::frag::{FragKey, Fragment, L4Ports};
use crate::l2l3::Verdict;
use crate::lb::flow_owner6;
use crate::stats::DropReason;
use crate::types::{L4Proto, PortId};
use crate::view::L3_OFFSET;
use crate::view6::{fragment_protocol, FragView6, L4View6};
use crate::wire::ipv6::IPPROTO_DSTOPTS;
use crate::wire::{FragHeader, Ipv6Packet, IPPROTO_TCP, IPPROTO_UDP};

/// The datagram identity and fragment facts of an IPv6 fragment (not atomic) whose
/// header and extension-header walk are valid; the first fragment's ports when its L4
/// header is whole. `None` for anything else.
pub fn read_fragment6(frame: &[u8]) -> Option<(FragKey, Fragment)> {
    let ip = Ipv6Packet::new_checked(frame.get(L3_OFFSET..)?).ok()?;
    let upper = ip.upper_layer().ok()?;
    let f = upper.frag.filter(|f| !f.is_atomic())?;
    let protocol = fragment_protocol(&ip, &f)?;
    // The fragmentable part this fragment carries: everything after its fragment header.
    let len = ip.payload().len().checked_sub(f.header_offset + FragHeader::LEN)?;
    let ports = if f.is_first() {
        L4View6::from_first_fragment(&ip, &upper).ok().map(|v| L4Ports { src: v.sport, dst: v.dport, proto: v.proto() })
    } else {
        None
    };
    let key = FragKey { src: ip.src_addr().into(), dst: ip.dst_addr().into(), ident: f.ident, protocol };
    // The payload length is 16 bits, so `len` fits.
    Some((key, Fragment { offset: f.offset, len: len as u16, more: f.more, ports }))
}

impl<Q: PortQueue, P: PacketPool<Buf = Q::Buf>> Worker<Q, P> {
    /// An IPv6 fragment with [`Verdict::Fragment`]: to its fragment owner, or into this
    /// worker's table; what the table releases goes on to the flow's owner.
    #[cold]
    #[inline(never)]
    pub(super) fn take_fragment6(&mut self, port: PortId, buf: Q::Buf, now: u64) {
        let Some((key, frag)) = read_fragment6(buf.data()) else {
            return self.tx.counters.drop_packet(DropReason::Ip6Fragment);
        };
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (key.src, key.dst) else {
            return self.tx.counters.drop_packet(DropReason::Ip6Fragment);
        };
        let owner = fragment_owner6(src, dst, key.ident, key.protocol, self.redirect.workers());
        for ((port, buf), ports) in self.take_owned(port, buf, key, frag, owner, now) {
            self.steer_fragment6(port, buf, ports, now);
        }
    }

    /// An IPv6 fragment whose ports are known: to the flow's owner, or handled here.
    fn steer_fragment6(&mut self, port: PortId, buf: Q::Buf, ports: L4Ports, now: u64) {
        self.tx.counters.frag_forwarded.inc();
        self.tx.counters.frag6_forwarded.inc();
        let Some(key) = fragment_flow6(buf.data(), ports) else {
            return self.tx.counters.drop_packet(DropReason::Ip6Fragment);
        };
        let Some(lb) = self.lb.as_ref() else {
            return self.tx.counters.drop_packet(DropReason::Ip6NotForUs);
        };
        let owner = flow_owner6(&key, lb.dst6(key.dst), self.redirect.workers());
        if owner == self.index {
            return self.fragment6_with_ports(port, buf, ports, now);
        }
        match self.redirect.send(owner, Redirected { port, buf, ports: Some(ports) }) {
            Ok(()) => self.tx.counters.redirected_out.inc(),
            Err(_) => self.tx.counters.drop_packet(DropReason::RedirectFull),
        }
    }

    /// Hands an IPv6 fragment of this worker's flow, with its train's ports, to the L4
    /// engine, and carries out the verdict.
    pub(super) fn fragment6_with_ports(&mut self, port: PortId, mut buf: Q::Buf, ports: L4Ports, now: u64) {
        let Some(lb) = self.lb.as_mut() else {
            return self.tx.counters.drop_packet(DropReason::Ip6NotForUs);
        };
        let parsed = {
            let frame = buf.data();
            match frame.get(L3_OFFSET..).and_then(|b| Ipv6Packet::new_checked(b).ok()) {
                None => Err(DropReason::Ip6Truncated),
                Some(ip) => match ip.upper_layer() {
                    Ok(upper) => FragView6::new(&ip, &upper, ports.proto, ports.src, ports.dst),
                    Err(e) => Err(e.into()),
                },
            }
        };
        let view = match parsed {
            Ok(v) => v,
            Err(reason) => return self.tx.counters.drop_packet(reason),
        };
        match lb.handle_fragment6(&mut buf, &view, port, &self.routes6, &self.tx.counters, now) {
            Verdict::Redirect { .. } => self.tx.counters.drop_packet(DropReason::RedirectLoop),
            verdict => self.dispatch(port, verdict, buf, now),
        }
    }
}

/// The flow key of an IPv6 fragment with its train's `ports` and protocol: the fragment
/// header names that protocol, or destination options (module docs).
fn fragment_flow6(frame: &[u8], ports: L4Ports) -> Option<FlowKey6> {
    let ip = Ipv6Packet::new_checked(frame.get(L3_OFFSET..)?).ok()?;
    let f = ip.upper_layer().ok()?.frag?;
    match (fragment_protocol(&ip, &f)?, ports.proto) {
        (IPPROTO_TCP, L4Proto::Tcp) | (IPPROTO_UDP, L4Proto::Udp) | (IPPROTO_DSTOPTS, _) => {}
        _ => return None,
    }
    Some(FlowKey6 { proto: ports.proto, src: ip.src_addr(), sport: ports.src, dst: ip.dst_addr(), dport: ports.dst })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frag::MAX_DATAGRAM;
    use crate::wire::ipv6::tests::{ext, frag};
    use crate::wire::ipv6::IPPROTO_FRAGMENT;
    use proptest::prelude::*;

    /// Ethernet + IPv6 (next header `nh`, `payload`) from 2001:db8::2 to 2001:db8::100.
    fn frame(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[nh, 64]);
        f.extend_from_slice(&"2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"2001:db8::100".parse::<std::net::Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(payload);
        f
    }

    fn udp_head(len: u16) -> [u8; 8] {
        let mut u = [0u8; 8];
        u[0..2].copy_from_slice(&5000u16.to_be_bytes());
        u[2..4].copy_from_slice(&53u16.to_be_bytes());
        u[4..6].copy_from_slice(&len.to_be_bytes());
        u
    }

    #[test]
    fn a_first_fragment_gives_its_identity_and_ports() {
        let mut p = frag(IPPROTO_UDP, 0, true, 0xdead_beef).to_vec();
        p.extend(udp_head(4000));
        p.extend([0xab; 1224]);
        let (key, f) = read_fragment6(&frame(IPPROTO_FRAGMENT, &p)).unwrap();
        assert_eq!((key.ident, key.protocol), (0xdead_beef, IPPROTO_UDP));
        assert_eq!(key.dst, "2001:db8::100".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(
            f,
            Fragment {
                offset: 0,
                len: 1232,
                more: true,
                ports: Some(L4Ports { src: 5000, dst: 53, proto: L4Proto::Udp })
            }
        );
    }

    #[test]
    fn a_later_fragment_after_other_headers_has_no_ports() {
        // Hop-by-hop and destination options before the fragment header (unfragmentable
        // part), then data.
        let mut p = ext(0, IPPROTO_DSTOPTS, 8);
        p.extend(ext(IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, 16));
        p.extend(frag(IPPROTO_TCP, 1232, false, 7));
        p.extend([0x55; 100]);
        let (key, f) = read_fragment6(&frame(0, &p)).unwrap();
        assert_eq!((key.ident, key.protocol), (7, IPPROTO_TCP));
        assert_eq!(f, Fragment { offset: 1232, len: 100, more: false, ports: None });
    }

    #[test]
    fn a_tiny_first_fragment_gives_no_ports_and_others_none_at_all() {
        // First fragment with half a TCP header (RFC 7112): identity but no ports, which
        // the table refuses as inconsistent.
        let mut p = frag(IPPROTO_TCP, 0, true, 9).to_vec();
        p.extend([0u8; 8]);
        let (_, f) = read_fragment6(&frame(IPPROTO_FRAGMENT, &p)).unwrap();
        assert_eq!((f.ports, f.len), (None, 8));
        // UDP with 7 bytes of its header.
        let mut p = frag(IPPROTO_UDP, 0, true, 9).to_vec();
        p.extend([0u8; 7]);
        assert_eq!(read_fragment6(&frame(IPPROTO_FRAGMENT, &p)).unwrap().1.ports, None);
        // An atomic fragment is no fragment; nor is a packet without a fragment header.
        let mut p = frag(IPPROTO_UDP, 0, false, 9).to_vec();
        p.extend(udp_head(8));
        assert_eq!(read_fragment6(&frame(IPPROTO_FRAGMENT, &p)), None);
        assert_eq!(read_fragment6(&frame(IPPROTO_UDP, &udp_head(8))), None);
        // Truncated fragment header, and a chain refused by the walk (two of them).
        assert_eq!(read_fragment6(&frame(IPPROTO_FRAGMENT, &frag(IPPROTO_UDP, 8, true, 1)[..7])), None);
        let mut p = frag(IPPROTO_FRAGMENT, 0, true, 1).to_vec();
        p.extend(frag(IPPROTO_UDP, 0, true, 1));
        assert_eq!(read_fragment6(&frame(IPPROTO_FRAGMENT, &p)), None);
        // Not IPv6 at all, or cut inside the fixed header.
        let f = frame(IPPROTO_FRAGMENT, &frag(IPPROTO_UDP, 8, true, 1));
        assert_eq!(read_fragment6(&f[..50]), None);
        assert!(super::super::frag::is_ipv6(&f) && !super::super::frag::is_ipv6(&f[..13]));
    }

    #[test]
    fn the_flow_key_takes_the_protocol_from_the_train() {
        let tcp = L4Ports { src: 1, dst: 2, proto: L4Proto::Tcp };
        let mut p = frag(IPPROTO_TCP, 64, true, 3).to_vec();
        p.extend([0u8; 64]);
        let k = fragment_flow6(&frame(IPPROTO_FRAGMENT, &p), tcp).unwrap();
        assert_eq!((k.proto, k.sport, k.dport), (L4Proto::Tcp, 1, 2));
        // The fragment header and the train disagree: no flow.
        assert_eq!(fragment_flow6(&frame(IPPROTO_FRAGMENT, &p), L4Ports { proto: L4Proto::Udp, ..tcp }), None);
        // Destination options first in the fragmentable part: the train's protocol.
        let mut p = frag(IPPROTO_DSTOPTS, 64, true, 3).to_vec();
        p.extend([0u8; 64]);
        assert_eq!(fragment_flow6(&frame(IPPROTO_FRAGMENT, &p), tcp).map(|k| k.proto), Some(L4Proto::Tcp));
        let mut p = frag(58, 64, true, 3).to_vec();
        p.extend([0u8; 64]);
        assert_eq!(fragment_flow6(&frame(IPPROTO_FRAGMENT, &p), tcp), None);
    }

    proptest! {
        /// Any bytes after a fragment header: never a panic, and what is read is within
        /// the packet and the 16-bit datagram.
        #[test]
        fn never_panics(
            offset in 0u16..8192,
            more in any::<bool>(),
            next in prop::sample::select(vec![IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DSTOPTS, 58, 44, 59]),
            rest in proptest::collection::vec(any::<u8>(), 0..120),
            cut in 0usize..200,
        ) {
            let mut p = frag(next, offset * 8, more, 1).to_vec();
            p.extend(&rest);
            let f = frame(IPPROTO_FRAGMENT, &p);
            let f = &f[..f.len().min(54 + cut)];
            if let Some((key, got)) = read_fragment6(f) {
                prop_assert_eq!(key.protocol, next);
                // Only a whole packet parses: its fragmentable part is all after the header.
                prop_assert_eq!(usize::from(got.len), rest.len());
                prop_assert!(u32::from(got.offset) <= MAX_DATAGRAM);
                prop_assert!(got.ports.is_none() || got.offset == 0);
            }
        }
    }
}
