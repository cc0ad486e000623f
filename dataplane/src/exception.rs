//! The kernel exception path: per DPDK port (optional, `[[port]] exception = true`), a
//! kernel interface that carries the port's own address and MAC, so that what the lite
//! stack does not answer for that address (BGP on 179, BFD on 3784/3785, SSH, anything)
//! reaches the kernel, and what the kernel sends leaves by the port. DPVS did this with
//! KNI; rvsd uses DPDK's `net_tap` (see the control plane's `exception` module for why).
//!
//! Contract:
//! * **Which frames go to the kernel** ([`classify_own`], [`arp_to_kernel`]): on a port
//!   whose exception path is on, every IPv4 packet to the port's own address that is not
//!   an ICMP echo request (answered by the lite stack), not an ICMP error quoting an IPIP
//!   packet (about a tunnel flow, whose outer source is the port's address: the L4 engine
//!   takes it; it does not translate errors about IPIP packets yet and counts them
//!   `icmp_unhandled`) and not a health probe's reply (punted to the prober first); and ARP replies to the port's address, after the lite
//!   stack learned from them (the kernel resolves its own peers — the router for BGP —
//!   with its own ARP requests, which go out of the port; without the replies it could
//!   not). ARP requests for the port's address are answered by the lite stack only (with
//!   the same MAC and address the kernel would answer with), so the peer gets one reply,
//!   not two. VIPs, Full-NAT local and floating addresses never go to the kernel. Traffic
//!   to other addresses pays nothing: the test sits on the port-address branch only.
//! * **IPv6** ([`classify_own6`]), the same for a port's own IPv6 addresses (the kernel
//!   interface gets them, `nodad`, and derives the same link-local address from the same
//!   MAC): everything to them but echo requests, neighbour solicitations and
//!   advertisements and ICMPv6 errors quoting an IPv6-in-IPv6 packet goes to the kernel,
//!   fragments included; a neighbour advertisement unicast to a port's own address (the
//!   answer to a solicitation the kernel sent) goes to the kernel too, after the lite
//!   stack learned from it. Solicitations for the port's addresses are answered by the
//!   lite stack only. Multicast (router advertisements, MLD queries) does not go to the
//!   kernel, nor does anything to an IPv6 VIP or Full-NAT local address.
//! * **Both ways rate limited, never waiting.** Each worker has, per exception port, its
//!   own queue pair on the kernel interface ([`ExceptionPort`]) and two GCRA limits
//!   ([`RateLimit`]): to the kernel and from it. A frame over the limit is dropped and
//!   counted (`exception_rate_limited`, `exception_out_rate_limited`) before it costs
//!   anything more; a frame the kernel interface's queue refuses is
//!   `exception_ring_full`. Frames to the kernel are buffered per port and sent with one
//!   burst per poll (what the PMD does per burst is the PMD's: `net_tap` writes each frame
//!   to the tap's file descriptor, non-blocking). The kernel interface is read at most
//!   every [`KERNEL_POLL_INTERVAL_NS`], one burst per port, so an idle exception path
//!   costs a worker one non-blocking read per port per interval, never one per poll.
//! * **What the kernel sends** leaves unchanged by the port it belongs to: an Ethernet
//!   frame whose source MAC is the port's (the kernel interface has the port's MAC);
//!   anything else (a runt, another source MAC) is `exception_bad_frame`.
//! * **Counters**: per worker (`exception_to_kernel`, `exception_from_kernel` and the drop
//!   reasons above, in the worker's counters) and per port ([`ExceptionCounters`], one
//!   per worker and port, summed by the control plane for `/v1/status`, `/metrics` and
//!   `rvsadm status`).
//! * Nothing here allocates after construction; the limits read the worker's clock (`now`,
//!   ns), never a clock of their own.

use std::net::Ipv4Addr;
use std::sync::Arc;

use rvs_drivers::{Burst, PortQueue};
use serde::{Deserialize, Serialize};

use crate::stats::Counter;
use crate::wire::icmpv6::{ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT};
use crate::wire::ipv6::IPPROTO_IPV6;
use crate::wire::{MacAddr, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP};
use crate::xmit::icmp_err::is_error_type;

/// How often a worker reads its kernel interfaces (ns): 200 µs adds at most that much to
/// the latency of what the kernel sends (BGP, BFD at 100 ms intervals, SSH do not notice)
/// and costs one read per port 5000 times a second.
pub const KERNEL_POLL_INTERVAL_NS: u64 = 200_000;

/// Default limit of each direction, frames a second per port (`[[port]] exception_rate`):
/// far above what BGP, BFD and SSH need, far below what would hurt forwarding.
pub const DEFAULT_EXCEPTION_RATE: u32 = 10_000;

/// ICMP echo request, the only ICMP message the lite stack answers for a port address.
const ICMP_ECHO_REQUEST: u8 = 8;

/// What becomes of an IPv4 packet to a port's own address on a port whose exception path
/// is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnAddress {
    /// The lite stack answers it (ICMP echo request).
    Stack,
    /// The kernel interface gets it.
    Kernel,
}

/// The decision of the module docs for an IPv4 packet of `protocol` with `payload` (what
/// follows the IPv4 header) to a port's own address; health probe replies are punted
/// before this is asked. Never panics on short input.
#[inline]
pub fn classify_own(protocol: u8, payload: &[u8]) -> OwnAddress {
    if protocol != IPPROTO_ICMP {
        return OwnAddress::Kernel;
    }
    match payload.first().copied() {
        Some(ICMP_ECHO_REQUEST) => OwnAddress::Stack,
        // An ICMP error quoting an IPIP packet is about a tunnel flow, whose outer
        // source is the port's address: the L4 engine's, not the kernel's (which knows
        // nothing of the flow), even though it does not translate it yet.
        Some(t) if is_error_type(t) && payload.get(QUOTED_PROTOCOL) == Some(&IPPROTO_IPIP) => OwnAddress::Stack,
        _ => OwnAddress::Kernel,
    }
}

/// The decision of the module docs for an IPv6 packet to a port's own IPv6 address
/// (link-local included): `next_header` is the upper layer after the extension-header
/// walk, `payload` what follows the last header, `fragment` whether it is a fragment
/// (the kernel reassembles). The lite stack keeps neighbour discovery, echo requests and
/// ICMPv6 errors quoting an IPv6-in-IPv6 packet (about a tunnel flow, whose outer source
/// is the port's address); health probe replies are punted before this is asked. Never
/// panics on short input.
#[inline]
pub fn classify_own6(next_header: u8, payload: &[u8], fragment: bool) -> OwnAddress {
    if fragment || next_header != IPPROTO_ICMPV6 {
        return OwnAddress::Kernel;
    }
    match payload.first().copied() {
        Some(ICMPV6_ECHO_REQUEST | ICMPV6_NEIGHBOR_SOLICIT | ICMPV6_NEIGHBOR_ADVERT) => OwnAddress::Stack,
        // Error messages are types 0-127 (RFC 4443 §2.1); the quoted IPv6 header's next
        // header is byte 6 of it, after the 8-byte ICMPv6 header.
        Some(t) if t < 128 && payload.get(8 + 6) == Some(&IPPROTO_IPV6) => OwnAddress::Stack,
        _ => OwnAddress::Kernel,
    }
}

/// Where an ICMP error's quoted IPv4 header has its protocol: 8 bytes of ICMP header, then
/// byte 9 of the quoted header.
const QUOTED_PROTOCOL: usize = 8 + 9;

/// Whether an ARP frame (Ethernet header included) that the lite stack consumed also goes
/// to the kernel: an ARP reply whose target is `port_addr`. Short or odd frames: false.
#[inline]
pub fn arp_to_kernel(frame: &[u8], port_addr: Ipv4Addr) -> bool {
    // Ethernet (14) + ARP: htype 2, ptype 2, hlen 1, plen 1, oper 2, sha 6, spa 4, tha 6, tpa 4.
    let (Some(oper), Some(tpa)) = (frame.get(20..22), frame.get(38..42)) else { return false };
    oper == [0, 2] && tpa == port_addr.octets()
}

/// A GCRA limit (a token bucket kept as one theoretical arrival time): `rate` frames a
/// second on average, bursts of `burst`. Single-threaded: one per worker, port and
/// direction.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    interval: u64,
    tolerance: u64,
    tat: u64,
}

impl RateLimit {
    /// `rate` frames a second, bursts of `burst` (0 counts as 1 for both).
    pub fn new(rate: u32, burst: u32) -> Self {
        let interval = 1_000_000_000 / u64::from(rate.max(1));
        RateLimit { interval, tolerance: interval.saturating_mul(u64::from(burst.max(1)) - 1), tat: 0 }
    }

    /// Whether one more frame conforms at `now` (ns); if so it is taken.
    #[inline]
    pub fn take(&mut self, now: u64) -> bool {
        if self.tat > now.saturating_add(self.tolerance) {
            return false;
        }
        self.tat = self.tat.max(now).saturating_add(self.interval);
        true
    }
}

/// Declares [`ExceptionCounters`] and its snapshot from one table, as the worker counters.
macro_rules! exception_counters {
    ($( $field:ident $metric:literal, $help:literal; )*) => {
        /// One worker's counters of one port's exception path, written by that worker only
        /// (see [`Counter`]) and read by the control plane.
        #[derive(Debug, Default)]
        #[repr(align(64))]
        pub struct ExceptionCounters {
            $( #[doc = $help] pub $field: Counter, )*
        }

        /// A copy of [`ExceptionCounters`] (or their sum over the workers), as `/v1/status`
        /// shows it per port.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct ExceptionSnapshot {
            $( #[doc = $help] pub $field: u64, )*
        }

        impl ExceptionSnapshot {
            /// Every counter: its JSON key, its Prometheus family (label `port`), its help.
            pub const COUNTERS: &'static [(&'static str, &'static str, &'static str, fn(&ExceptionSnapshot) -> u64)] =
                &[$( (stringify!($field), $metric, $help, |s| s.$field), )*];

            /// Adds `other` into `self`.
            pub fn accumulate(&mut self, other: &ExceptionSnapshot) {
                $( self.$field += other.$field; )*
            }
        }

        impl ExceptionCounters {
            /// A plain copy.
            pub fn snapshot(&self) -> ExceptionSnapshot {
                ExceptionSnapshot { $( $field: self.$field.get(), )* }
            }
        }
    };
}

exception_counters! {
    to_kernel "rvs_exception_to_kernel_total", "Frames for the port's own address handed to its kernel interface.";
    from_kernel "rvs_exception_from_kernel_total", "Frames the kernel interface sent, queued out of the port.";
    rate_limited "rvs_exception_rate_limited_total", "Frames for the kernel dropped: over the port's exception_rate.";
    out_rate_limited "rvs_exception_out_rate_limited_total", "Frames from the kernel dropped: over the port's exception_rate.";
    ring_full "rvs_exception_ring_full_total", "Frames for the kernel the kernel interface's queue refused.";
    bad_frame "rvs_exception_bad_frame_total", "Frames from the kernel dropped: no Ethernet header or a source MAC not the port's.";
}

/// One worker's side of one port's exception path: its queue pair on the kernel interface,
/// the frames buffered for it, both limits and the counters.
pub struct ExceptionPort<Q: PortQueue> {
    pub(crate) queue: Q,
    pub(crate) tx: Burst<Q::Buf>,
    pub(crate) to_kernel: RateLimit,
    pub(crate) from_kernel: RateLimit,
    pub(crate) counters: Arc<ExceptionCounters>,
    pub(crate) mac: MacAddr,
}

impl<Q: PortQueue> std::fmt::Debug for ExceptionPort<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExceptionPort").field("mac", &self.mac).field("buffered", &self.tx.len()).finish()
    }
}

impl<Q: PortQueue> ExceptionPort<Q> {
    /// A worker's side of a port's exception path: `queue` on the kernel interface, `rate`
    /// frames a second each way for this worker (the control plane divides the port's
    /// `exception_rate` among the workers), bursts of a tenth of a second's worth (at
    /// least 32), counting into `counters`. `mac` is the port's (and the kernel
    /// interface's) MAC: the only source MAC accepted from the kernel.
    pub fn new(queue: Q, mac: MacAddr, rate: u32, counters: Arc<ExceptionCounters>) -> Self {
        let burst = (rate / 10).max(32);
        ExceptionPort {
            queue,
            tx: Burst::new(),
            to_kernel: RateLimit::new(rate, burst),
            from_kernel: RateLimit::new(rate, burst),
            counters,
            mac,
        }
    }

    /// The queue pair on the kernel interface (tests inject and collect frames here).
    pub fn queue_mut(&mut self) -> &mut Q {
        &mut self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{IPPROTO_TCP, IPPROTO_UDP};

    #[test]
    fn only_echo_requests_and_tunnel_errors_stay_with_the_stack() {
        assert_eq!(classify_own(IPPROTO_ICMP, &[8, 0, 0, 0]), OwnAddress::Stack);
        assert_eq!(classify_own(IPPROTO_ICMP, &[0, 0, 0, 0]), OwnAddress::Kernel);
        assert_eq!(classify_own(IPPROTO_ICMP, &[]), OwnAddress::Kernel);
        // Fragmentation needed, quoting a TCP packet (the kernel's) or an IPIP one (a tunnel's).
        let mut err = [0u8; 36];
        err[..2].copy_from_slice(&[3, 4]);
        err[8] = 0x45;
        err[QUOTED_PROTOCOL] = IPPROTO_TCP;
        assert_eq!(classify_own(IPPROTO_ICMP, &err), OwnAddress::Kernel);
        err[QUOTED_PROTOCOL] = IPPROTO_IPIP;
        assert_eq!(classify_own(IPPROTO_ICMP, &err), OwnAddress::Stack);
        assert_eq!(classify_own(IPPROTO_ICMP, &err[..QUOTED_PROTOCOL]), OwnAddress::Kernel);
        // An echo reply whose byte 17 happens to be 4 is still the kernel's.
        err[0] = 0;
        assert_eq!(classify_own(IPPROTO_ICMP, &err), OwnAddress::Kernel);
        assert_eq!(classify_own(IPPROTO_TCP, &[]), OwnAddress::Kernel);
        assert_eq!(classify_own(IPPROTO_UDP, &[0; 8]), OwnAddress::Kernel);
        assert_eq!(classify_own(89, &[]), OwnAddress::Kernel);
    }

    #[test]
    fn ipv6_nd_echo_requests_and_tunnel_errors_stay_with_the_stack() {
        use OwnAddress::{Kernel, Stack};
        assert_eq!(classify_own6(6, &[0; 20], false), Kernel);
        assert_eq!(classify_own6(17, &[], false), Kernel);
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[128, 0, 0, 0], false), Stack);
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[135], false), Stack);
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[136], false), Stack);
        // A fragment goes whole to the kernel, which reassembles, whatever it carries.
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[128, 0, 0, 0], true), Kernel);
        // Echo replies (the kernel's own pings), other ICMPv6, and errors about anything
        // but a tunnel flow.
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[129, 0, 0, 0], false), Kernel);
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[134], false), Kernel);
        let mut err = [0u8; 48];
        err[0] = 1;
        err[8] = 0x60;
        err[8 + 6] = 17;
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &err, false), Kernel);
        err[8 + 6] = IPPROTO_IPV6;
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &err, false), Stack);
        err[0] = 2;
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &err, false), Stack);
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &err[..10], false), Kernel);
        assert_eq!(classify_own6(IPPROTO_ICMPV6, &[], false), Kernel);
    }

    #[test]
    fn arp_replies_to_the_port_address_only() {
        let me = Ipv4Addr::new(10, 10, 0, 1);
        let mut f = [0u8; 42];
        f[20..22].copy_from_slice(&[0, 2]);
        f[38..42].copy_from_slice(&me.octets());
        assert!(arp_to_kernel(&f, me));
        assert!(!arp_to_kernel(&f, Ipv4Addr::new(10, 10, 0, 2)));
        f[21] = 1;
        assert!(!arp_to_kernel(&f, me));
        assert!(!arp_to_kernel(&f[..41], me));
        assert!(!arp_to_kernel(&[], me));
    }

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let mut r = RateLimit::new(1000, 10);
        let now = 5_000_000_000;
        assert_eq!((0..100).filter(|_| r.take(now)).count(), 10);
        // 1 ms later: one more.
        assert!(r.take(now + 1_000_000));
        assert!(!r.take(now + 1_000_000));
        // A second later: a full burst again, not a second's worth.
        assert_eq!((0..100).filter(|_| r.take(now + 2_000_000_000)).count(), 10);
        let mut zero = RateLimit::new(0, 0);
        assert!(zero.take(now) && !zero.take(now));
    }
}
