//! Rate limits on the ICMP errors a worker generates (time exceeded, fragmentation
//! needed; ICMPv6 time exceeded and packet too big, [`IcmpRateLimit::allow6`]), per destination and in total, as a router's (RFC 1812 §4.3.2.8): a flood of
//! expiring or oversized packets must not turn rvs into a flood of errors, towards its
//! senders (who may be spoofed victims) or out of its ports.
//!
//! Contract:
//! * [`IcmpRateLimit::allow`] says whether one more error may be sent to `dst` at `now`
//!   (nanoseconds of the worker's clock) and, if so, takes it from both limits. A refused
//!   error takes nothing.
//! * Both limits are GCRA (the generic cell rate algorithm, a token bucket kept as one
//!   "theoretical arrival time"): `rate` errors a second on average, bursts of `burst`.
//!   The defaults are Linux's: 1000 a second in total with bursts of 50
//!   (`net.ipv4.icmp_msgs_per_sec`, `icmp_msgs_burst`), one a second per destination with
//!   bursts of 6 (`icmp_ratelimit` = 1000 ms and its burst factor).
//! * Destinations live in a fixed, direct-mapped table of [`DEST_SLOTS`] slots allocated
//!   once ([`IcmpRateLimit::new`]): a destination that takes another's slot starts with a
//!   full burst. An attacker cycling sources therefore escapes the per-destination limit,
//!   never the total one.
//! * Per worker, single-threaded: interior mutability (`Cell`), so the engine's `&self`
//!   paths can use it; nothing is shared, nothing allocates after `new`.

use std::cell::Cell;
use std::net::Ipv4Addr;

/// Destinations tracked at once (a power of two).
pub const DEST_SLOTS: usize = 1024;

/// Errors a second, in total, per worker (Linux's `icmp_msgs_per_sec`).
pub const TOTAL_RATE: u64 = 1000;
/// Burst of the total limit (Linux's `icmp_msgs_burst`).
pub const TOTAL_BURST: u64 = 50;
/// Errors a second per destination (Linux's `icmp_ratelimit` of 1000 ms).
pub const DEST_RATE: u64 = 1;
/// Burst per destination (Linux's `XRLIM_BURST_FACTOR`).
pub const DEST_BURST: u64 = 6;

const NS: u64 = 1_000_000_000;

/// One GCRA limit: `interval` ns between errors on average, `tolerance` ns of burst.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: u64,
    tolerance: u64,
}

impl Gcra {
    fn new(rate: u64, burst: u64) -> Gcra {
        let interval = NS / rate.max(1);
        Gcra { interval, tolerance: interval.saturating_mul(burst.max(1) - 1) }
    }

    /// The new theoretical arrival time if one more error at `now` conforms.
    fn admit(&self, tat: u64, now: u64) -> Option<u64> {
        (tat <= now.saturating_add(self.tolerance)).then(|| tat.max(now).saturating_add(self.interval))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DestSlot {
    /// The destination, as a number; 0 (0.0.0.0, never a destination) marks a free slot.
    addr: u32,
    tat: u64,
}

/// A worker's ICMP error limits. See the module docs.
#[derive(Debug)]
pub struct IcmpRateLimit {
    total: Gcra,
    dest: Gcra,
    total_tat: Cell<u64>,
    slots: Box<[Cell<DestSlot>]>,
}

impl Default for IcmpRateLimit {
    fn default() -> Self {
        IcmpRateLimit::new(TOTAL_RATE, TOTAL_BURST, DEST_RATE, DEST_BURST)
    }
}

impl IcmpRateLimit {
    /// Limits of `total_rate` errors a second (bursts of `total_burst`) in all, and
    /// `dest_rate` (bursts of `dest_burst`) per destination. Rates and bursts of 0 count
    /// as 1.
    pub fn new(total_rate: u64, total_burst: u64, dest_rate: u64, dest_burst: u64) -> Self {
        IcmpRateLimit {
            total: Gcra::new(total_rate, total_burst),
            dest: Gcra::new(dest_rate, dest_burst),
            total_tat: Cell::new(0),
            slots: (0..DEST_SLOTS).map(|_| Cell::new(DestSlot::default())).collect(),
        }
    }

    /// Whether one more error to `dst` may go at `now` (ns); if so it is counted in both
    /// limits.
    pub fn allow(&self, dst: Ipv4Addr, now: u64) -> bool {
        self.allow_key(u32::from(dst), now)
    }

    /// [`Self::allow`] for an IPv6 destination: the same limits (the total one shared with
    /// IPv4's errors), the address folded to 32 bits for its slot
    /// ([`crate::conn::Family::tag`]), so two destinations of one fold share a
    /// per-destination limit (they are as likely to as two that take one slot).
    pub fn allow6(&self, dst: std::net::Ipv6Addr, now: u64) -> bool {
        self.allow_key(<crate::conn::V6 as crate::conn::Family>::tag(dst), now)
    }

    fn allow_key(&self, addr: u32, now: u64) -> bool {
        // Fibonacci hashing: the top bits of the product spread consecutive addresses.
        let i = (addr.wrapping_mul(0x9e37_79b9) >> (32 - DEST_SLOTS.trailing_zeros())) as usize;
        let slot = &self.slots[i];
        let s = slot.get();
        let dest_tat = if s.addr == addr { s.tat } else { 0 };
        let Some(dest_next) = self.dest.admit(dest_tat, now) else { return false };
        let Some(total_next) = self.total.admit(self.total_tat.get(), now) else { return false };
        slot.set(DestSlot { addr, tat: dest_next });
        self.total_tat.set(total_next);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    #[test]
    fn one_destination_gets_its_burst_then_one_a_second() {
        let l = IcmpRateLimit::default();
        let t0 = 5 * NS;
        let sent = (0..100).filter(|_| l.allow(ip(1), t0)).count();
        assert_eq!(sent, DEST_BURST as usize, "the burst at once");
        assert!(!l.allow(ip(1), t0 + 500 * MS), "nothing more within the second");
        assert!(l.allow(ip(1), t0 + 1000 * MS), "one more a second later");
        assert!(!l.allow(ip(1), t0 + 1100 * MS));
        assert!(l.allow(ip(2), t0 + 1100 * MS), "another destination has its own limit");
    }

    #[test]
    fn the_total_limit_holds_across_destinations() {
        let l = IcmpRateLimit::default();
        let t0 = 5 * NS;
        // Many destinations at once: only the total burst passes.
        let sent = (1..=500).filter(|&n| l.allow(ip(n), t0)).count();
        assert_eq!(sent, TOTAL_BURST as usize);
        // Over ten seconds of a flood from ever new sources: about the total rate.
        let mut sent = 0;
        let mut n = 1000;
        for ms in 1..=10_000u64 {
            for _ in 0..10 {
                n += 1;
                sent += usize::from(l.allow(ip(n), t0 + ms * MS));
            }
        }
        let expected = (TOTAL_RATE * 10) as usize;
        assert!(sent <= expected + TOTAL_BURST as usize && sent + 10 >= expected, "{sent} in 10 s");
    }

    #[test]
    fn a_refused_error_takes_nothing() {
        let l = IcmpRateLimit::new(1000, 1, 1, 1);
        let t0 = 5 * NS;
        assert!(l.allow(ip(1), t0));
        // ip(1) is limited now; its refusals must not use up the total limit.
        for _ in 0..100 {
            assert!(!l.allow(ip(1), t0 + MS));
        }
        assert!(l.allow(ip(2), t0 + MS), "the total limit was not spent by refusals");
    }

    #[test]
    fn ipv6_destinations_have_their_own_limit_and_share_the_total() {
        let l = IcmpRateLimit::new(1000, 8, 1, 2);
        let t0 = 5 * NS;
        let v6 = |n: u16| std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n);
        assert!(l.allow6(v6(1), t0) && l.allow6(v6(1), t0));
        assert!(!l.allow6(v6(1), t0), "per destination");
        assert!(l.allow6(v6(2), t0) && l.allow(ip(1), t0));
        let rest = (3..100).filter(|&n| l.allow6(v6(n), t0)).count();
        assert_eq!(rest, 4, "the total burst of 8 covers both families");
    }
}
