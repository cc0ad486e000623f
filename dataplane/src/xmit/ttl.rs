//! Router-like TTL handling for every forwarding mode.
//!
//! # Contract
//!
//! rvs forwards like a router (RFC 1812 §5.3.1), whatever the mode — DR, NAT, Full-NAT or
//! IPIP: a packet whose TTL is ≤ 1 is not forwarded, and every forwarded packet leaves
//! with its TTL one lower. LVS (netfilter's `ip_forward`) and DPVS (`ipv4_forward`) both
//! do the same before their transmit functions run. [`forward`] is called once per packet
//! on the client-facing (inner) IPv4 header, *before* any encapsulation — the outer IPIP
//! header is a fresh header of ours with its own TTL.
//!
//! * The header checksum is updated incrementally (RFC 1624) by
//!   [`Ipv4Packet::decrement_ttl`]; the rest of the packet is not read. NAT and Full-NAT
//!   use [`decrement`] instead, which leaves that update to their rewrite: one RFC 1624
//!   update of the header checksum for the TTL and the addresses together (issue 16),
//!   the same bytes.
//! * On [`TtlVerdict::Expired`] the buffer is unchanged: the caller either turns it into
//!   an ICMP time exceeded with [`icmp_err::time_exceeded`](super::icmp_err::time_exceeded)
//!   (which then quotes the header exactly as received) or drops it, and counts it either
//!   way.
//! * No input panics: a frame too short to hold the Ethernet and IPv4 headers gives
//!   [`TtlVerdict::Malformed`] (the worker has normally rejected it already).

use rvs_drivers::PacketBuf;

#[cfg(doc)]
use crate::view::Layout;
use crate::view::L3_OFFSET;
use crate::wire::{checksum, Ipv4Packet, WireError};

/// What [`forward`] decided. Ignoring it would forward expired packets.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlVerdict {
    /// The TTL was decremented (checksum kept valid); forward the packet.
    Forward,
    /// The TTL was 0 or 1: do not forward. The buffer is unchanged.
    Expired,
    /// The frame does not hold a valid IPv4 header; the buffer is unchanged.
    Malformed(WireError),
}

/// A TTL decrement whose IPv4 header checksum update is still to be made: its RFC 1624
/// term (`~m + m'` of the TTL/protocol word). A NAT or Full-NAT rewrite that follows folds
/// it into its own header update ([`crate::xmit::nat::inbound_forwarded`] and friends),
/// so a forwarded packet's header checksum is updated once, not twice; any other path
/// applies it with [`TtlDecrement::apply`]. Until then the header checksum is stale:
/// a packet whose decrement is dropped unapplied must not be sent.
#[must_use = "the IPv4 header checksum is stale until the decrement is applied or folded into a rewrite"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlDecrement(u32);

impl TtlDecrement {
    /// No change: what is left to fold once a decrement has been applied.
    pub const NONE: TtlDecrement = TtlDecrement(0);

    /// The decrement's term for [`checksum::update_delta`], to be added to the other
    /// changes of the same header.
    #[inline]
    pub fn term(self) -> u32 {
        self.0
    }

    /// Updates the IPv4 header checksum of the frame in `buf` (whose IPv4 packet ends at
    /// `ip_end`, as given to [`decrement`]) for this decrement alone.
    #[inline]
    pub fn apply<B: PacketBuf>(self, buf: &mut B, ip_end: usize) {
        if let Some(l3) = buf.data_mut().get_mut(L3_OFFSET..ip_end).filter(|h| h.len() >= IPV4_MIN_HEADER) {
            let mut ip = Ipv4Packet::new_unchecked(l3);
            ip.set_checksum(checksum::update_delta(ip.checksum(), self.0));
        }
    }
}

/// As [`forward`], but leaves the header checksum to the caller: on `Ok` the TTL is one
/// lower and the returned [`TtlDecrement`] must be applied or folded into the rewrite's
/// checksum update before the packet is sent. `Err` is [`TtlVerdict::Expired`] or
/// [`TtlVerdict::Malformed`], with the buffer unchanged.
#[inline]
pub fn decrement<B: PacketBuf>(buf: &mut B, ip_end: usize) -> Result<TtlDecrement, TtlVerdict> {
    let Some(l3) = buf.data_mut().get_mut(L3_OFFSET..ip_end).filter(|h| h.len() >= IPV4_MIN_HEADER) else {
        return Err(TtlVerdict::Malformed(WireError::Truncated));
    };
    let mut ip = Ipv4Packet::new_unchecked(l3);
    let ttl = ip.ttl();
    if ttl <= 1 {
        return Err(TtlVerdict::Expired);
    }
    let proto = u16::from(ip.protocol());
    ip.set_ttl(ttl - 1);
    let word = |t: u8| u16::from(t) << 8 | proto;
    Ok(TtlDecrement(checksum::delta16(word(ttl), word(ttl - 1))))
}

/// Decrements the TTL of the IPv4 packet after the Ethernet header in `buf`, updating the
/// header checksum incrementally, or reports [`TtlVerdict::Expired`] if it was ≤ 1
/// (RFC 1812 §5.3.1: a router never forwards a packet with TTL 0 or 1).
///
/// `ip_end` is where the IPv4 packet ends in the frame, as the receive-side parse found
/// it ([`Layout::ip_end`] of the packet's [`L4View`](crate::view::L4View), or the parsed
/// ICMP error's): the header is not validated again. [`TtlVerdict::Malformed`] only when
/// `ip_end` leaves no IPv4 header in the frame (a caller bug).
#[inline]
pub fn forward<B: PacketBuf>(buf: &mut B, ip_end: usize) -> TtlVerdict {
    let Some(l3) = buf.data_mut().get_mut(L3_OFFSET..ip_end).filter(|h| h.len() >= IPV4_MIN_HEADER) else {
        return TtlVerdict::Malformed(WireError::Truncated);
    };
    let mut ip = Ipv4Packet::new_unchecked(l3);
    if ip.ttl() <= 1 {
        return TtlVerdict::Expired;
    }
    ip.decrement_ttl();
    TtlVerdict::Forward
}

/// The smallest IPv4 header.
const IPV4_MIN_HEADER: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_drivers::mem::MemBuf;

    fn frame(ttl: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 28];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..34].copy_from_slice(&[0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, ttl, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 100]);
        let c = checksum::finish(checksum::sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn a_decrement_applied_is_forward() {
        for ttl in 0..=255u8 {
            let mut a = MemBuf::from_frame(&frame(ttl));
            let mut b = MemBuf::from_frame(&frame(ttl));
            let v = forward(&mut a, 14 + 28);
            match decrement(&mut b, 14 + 28) {
                Ok(d) => {
                    assert_eq!(v, TtlVerdict::Forward);
                    d.apply(&mut b, 14 + 28);
                }
                Err(e) => assert_eq!(e, v),
            }
            assert_eq!(a.data(), b.data(), "ttl {ttl}");
        }
    }

    #[test]
    fn every_ttl() {
        for ttl in 0..=255u8 {
            let mut b = MemBuf::from_frame(&frame(ttl));
            let v = forward(&mut b, 14 + 28);
            if ttl <= 1 {
                assert_eq!(v, TtlVerdict::Expired);
                assert_eq!(b.data(), &frame(ttl)[..]);
            } else {
                assert_eq!(v, TtlVerdict::Forward);
                assert_eq!(b.data(), &frame(ttl - 1)[..], "ttl {ttl}");
            }
        }
    }

    #[test]
    fn takes_the_end_from_the_view() {
        for ttl in 0..=255u8 {
            let mut f = frame(ttl);
            // A UDP header so that the frame parses as an L4 view.
            f[42 - 8 + 4..42 - 8 + 6].copy_from_slice(&8u16.to_be_bytes());
            let view = crate::view::L4View::parse(&f).unwrap();
            let mut b = MemBuf::from_frame(&f);
            let v = forward(&mut b, view.layout().ip_end());
            assert_eq!(v == TtlVerdict::Forward, ttl > 1, "ttl {ttl}");
        }
    }

    #[test]
    fn ends_that_leave_no_header_are_malformed() {
        let f = frame(64);
        for n in 0..f.len() {
            let mut b = MemBuf::from_frame(&f[..n]);
            let v = forward(&mut b, 14 + 28);
            assert!(matches!(v, TtlVerdict::Malformed(_)), "{n}");
            assert_eq!(b.data(), &f[..n]);
        }
        let mut b = MemBuf::from_frame(&f);
        assert!(matches!(forward(&mut b, 14 + 19), TtlVerdict::Malformed(_)));
        assert_eq!(b.data(), &f[..]);
    }
}
