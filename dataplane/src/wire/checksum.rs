//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The checksum of IPv4, ICMP, TCP and UDP is the ones' complement of the ones' complement
//! sum of the data taken as big-endian 16-bit words. Ones' complement addition is addition
//! modulo 0xffff, with two representations of zero: 0x0000 ("+0") and 0xffff ("-0").
//!
//! * [`sum`] accumulates bytes into a partial sum (a `u32` that may carry above 16 bits);
//!   partial sums of *even-length* pieces, and [`pseudo_header`], can be added together.
//! * [`fold`] carries the high bits back in (end-around carry) and gives a 16-bit sum.
//! * [`finish`] is `!fold`: the value to write in a checksum field.
//! * A received header verifies when `fold(sum(header including its checksum)) == 0xffff`.
//!
//! # Incremental update (RFC 1624)
//!
//! When a 16-bit word `m` of the covered data becomes `m'`, the new checksum `HC'` follows
//! from the old `HC` without touching the rest of the data — RFC 1624, equation 3:
//!
//! ```text
//! HC' = ~(~HC + ~m + m')
//! ```
//!
//! (all arithmetic ones' complement). Equation 3 is used rather than RFC 1141's
//! `HC' = HC + m - m'` or RFC 1624's equation 2 `HC' = HC - ~m - m'` because it gives the
//! same result as a full recomputation, including the corner cases:
//!
//! * A full computation yields 0xffff (i.e. a sum of +0) only when every covered word is
//!   zero, which cannot happen for IPv4 (version 4), TCP or UDP (the pseudo-header carries
//!   the protocol number). Equation 3 yields 0xffff only when `~HC + ~m + m'` is literally
//!   zero, i.e. `HC == 0xffff`, `m == 0xffff`, `m' == 0` — so starting from a correct
//!   checksum it never produces 0xffff where recomputation would produce 0x0000. Equation
//!   1 (RFC 1141) can produce -0 (0xffff) in place of 0x0000; that is the bug RFC 1624
//!   fixes.
//! * UDP's 0x0000 means "no checksum"; a computed 0x0000 is sent as 0xffff (RFC 768).
//!   These rules belong to UDP and are applied by [`UdpPacket`](super::UdpPacket)'s
//!   helpers, not here: ~0xffff is 0, so equation 3 works unchanged on a 0xffff field.
//!
//! Each update assumes the changed word sits at an even offset of the covered data (true
//! for addresses, ports, and the IPv4 TTL/protocol word).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ones' complement partial sum of `data` as big-endian 16-bit words.
///
/// An odd final byte is taken as the high byte of a last word padded with zero (RFC 1071).
/// The result is a partial sum: add several together (each from an even-length piece,
/// except possibly the last) and [`fold`] or [`finish`] once.
///
/// The result is at most 0x1fffe (17 bits), so tens of thousands of partial sums can be
/// added in a `u32` without overflow.
pub fn sum(data: &[u8]) -> u32 {
    // The IPv4 header without options, verified on every received packet: the same sum
    // with the length known, so the loop unrolls and the bounds checks go.
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        return fold_acc(w(0) + w(4) + w(8) + w(12) + w(16));
    }
    // Sum big-endian 32-bit words into a u64: since 2^16 ≡ 1 (mod 0xffff), a 32-bit word
    // hi:lo is congruent to hi + lo, so this is the same ones' complement sum with half the
    // additions. A u64 cannot overflow for any buffer smaller than 16 GiB.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    fold_acc(acc)
}

/// [`sum`]'s last step: folds a 64-bit accumulator of 32-bit words to at most 17 bits.
#[inline]
fn fold_acc(mut acc: u64) -> u32 {
    // Fold 64 → 32 → 17 bits; the congruence class (mod 0xffff) is kept.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = acc as u32; // fits after the two folds above
    (acc & 0xffff) + (acc >> 16)
}

/// Folds a partial sum to 16 bits with end-around carry.
///
/// Returns 0 only if `sum` is 0; any other multiple of 0xffff folds to 0xffff.
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16 // at most 0xffff after two folds
}

/// The checksum field value for a partial sum: `!fold(sum)`.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793, RFC 768): source
/// and destination addresses, zero, protocol, and the upper-layer length (header + data).
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(proto) + u32::from(len)
}

/// Partial sum of the IPv6 pseudo-header used by TCP, UDP and ICMPv6 (RFC 8200 §8.1):
/// source and destination addresses, the 32-bit upper-layer length, three zero bytes and
/// the next header (the upper layer's protocol, not that of any extension header).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut s = u64::from(next_header) + u64::from(len >> 16) + u64::from(len & 0xffff);
    for seg in src.segments().iter().chain(dst.segments().iter()) {
        s += u64::from(*seg);
    }
    fold_acc(s)
}

/// The pseudo-header partial sum for either family: [`pseudo_header`] for two IPv4
/// addresses, [`pseudo_header_v6`] for two IPv6 ones; `None` when the families differ
/// (no packet has such a pair). An IPv4 upper-layer length over 65535 is `None` too.
pub fn pseudo_header_ip(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_header(s, d, proto, u16::try_from(len).ok()?)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, proto, len)),
        _ => None,
    }
}

/// [`delta16`] for a changed IPv6 address (eight words): NAT66 rewrites of an address
/// covered by a TCP/UDP/ICMPv6 pseudo-header, applied with [`update_delta`].
///
/// The same integer as the eight terms added one by one (`Σ(!o + n)` = `8 × 0xffff − Σo +
/// Σn`, and `Σo` ≤ `8 × 0xffff`), computed on the addresses as `u128`s: two word sums of
/// a few shifts and masks instead of sixteen segment extractions (the NAT66 and
/// Full-NAT66 rewrites pay it per packet).
#[inline]
pub fn delta_addr_v6(old: Ipv6Addr, new: Ipv6Addr) -> u32 {
    8 * 0xffff - word_sum_v6(old.to_bits()) + word_sum_v6(new.to_bits())
}

/// The sum of the eight 16-bit words of `a` (at most `8 × 0xffff`, so no carry is lost).
#[inline(always)]
fn word_sum_v6(a: u128) -> u32 {
    const LOW_WORDS: u64 = 0x0000_ffff_0000_ffff;
    // Per 64-bit half, two 32-bit lanes, each the sum of two words (at most 0x1fffe).
    let pairs = |h: u64| (h & LOW_WORDS) + ((h >> 16) & LOW_WORDS);
    // Two 32-bit lanes, each the sum of four words (at most 0x3fffc).
    let quads = pairs((a >> 64) as u64) + pairs(a as u64);
    (quads as u32) + ((quads >> 32) as u32)
}

/// RFC 1624 eqn 3 for a changed IPv6 address in a pseudo-header.
pub fn update_addr_v6(csum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    update_delta(csum, delta_addr_v6(old, new))
}

/// RFC 1624 eqn 3: the checksum after a 16-bit word of the covered data changes from
/// `old` to `new`. `csum` is the current field value. See the module docs for corner cases.
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// RFC 1624 eqn 3 for a 32-bit field (two adjacent 16-bit words at an even offset).
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!csum) + u32::from(!(old >> 16) as u16) + u32::from(!(old as u16)) + (new >> 16) + (new & 0xffff);
    !fold(s)
}

/// RFC 1624 eqn 3 for a changed IPv4 address (in an IPv4 header or a TCP/UDP pseudo-header).
pub fn update_addr(csum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(csum, u32::from(old), u32::from(new))
}

/// The RFC 1624 eqn 3 term of one 16-bit word changing from `old` to `new`: `~m + m'`.
/// Terms of several changed words add up (in a `u32`, at most 0x1fffe each) and are
/// applied to a checksum at once with [`update_delta`].
#[inline]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// [`delta16`] for a changed IPv4 address (two words).
#[inline]
pub fn delta_addr(old: Ipv4Addr, new: Ipv4Addr) -> u32 {
    let (o, n) = (u32::from(old), u32::from(new));
    delta16((o >> 16) as u16, (n >> 16) as u16) + delta16(o as u16, n as u16)
}

/// RFC 1624 eqn 3 for several changed words at once: `~(~HC + Σ(~m + m'))`, with `delta`
/// the sum of their [`delta16`] terms (fewer than 30 000 of them). The result is the
/// same as applying [`update16`] word by word: both sums are congruent modulo 0xffff, and
/// either folds to zero only when every term and `~HC` are literally zero, so not even
/// the representation of zero can differ. One fold instead of one per word.
#[inline]
pub fn update_delta(csum: u16, delta: u32) -> u16 {
    !fold(u32::from(!csum) + delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: RFC 1071 as written, 16 bits at a time.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn large_buffers() {
        for len in [65535usize, 65536, 9000, 1_000_001] {
            let data = vec![0xffu8; len];
            assert_eq!(finish(sum(&data)), naive(&data), "{len} x 0xff");
            assert!(sum(&data) <= 0x1fffe);
        }
    }

    #[test]
    fn real_ipv4_header() {
        // An IPv4 header whose checksum 0x0b90 was computed with python3 (see ipv4.rs tests).
        let h = [
            0x45, 0x00, 0x00, 0x44, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x01, 0x0b, 0x90, 0xc0, 0xa8, 0x01, 0x0a, 0xc0, 0xa8,
            0x01, 0x01,
        ];
        assert_eq!(fold(sum(&h)), 0xffff);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(finish(sum(&z)), 0x0b90);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(10, 0, 0, 2);
        let dst = Ipv4Addr::new(192, 168, 255, 254);
        let bytes = [10, 0, 0, 2, 192, 168, 255, 254, 0, 6, 0x05, 0xdc];
        assert_eq!(fold(pseudo_header(src, dst, 6, 1500)), fold(sum(&bytes)));
    }

    #[test]
    fn update_corner_cases() {
        // Changing a word to itself never changes a correct checksum.
        assert_eq!(update16(0x1234, 0xabcd, 0xabcd), 0x1234);
        // The one input that gives 0xffff: HC = 0xffff, m = 0xffff, m' = 0.
        assert_eq!(update16(0xffff, 0xffff, 0), 0xffff);
        // Data summing to -0 (0xffff) gives checksum 0x0000, and eqn 3 keeps it 0x0000
        // (eqn 1 would give 0xffff here).
        let data = [0xff, 0x00, 0x00, 0xff];
        assert_eq!(naive(&data), 0x0000);
        let new = [0xff, 0x01, 0x00, 0xfe];
        assert_eq!(naive(&new), 0x0000);
        let c = update16(0x0000, 0xff00, 0xff01);
        let c = update16(c, 0x00ff, 0x00fe);
        assert_eq!(c, 0x0000);
    }

    #[test]
    fn pseudo_header_v6_matches_bytes() {
        let src: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let dst: Ipv6Addr = "fe80::ffff:1:2".parse().unwrap();
        let mut bytes = src.octets().to_vec();
        bytes.extend(dst.octets());
        bytes.extend(70000u32.to_be_bytes());
        bytes.extend([0, 0, 0, 58]);
        assert_eq!(fold(pseudo_header_v6(src, dst, 58, 70000)), fold(sum(&bytes)));
        let ip = |a: Ipv6Addr| IpAddr::V6(a);
        assert_eq!(pseudo_header_ip(ip(src), ip(dst), 58, 70000), Some(pseudo_header_v6(src, dst, 58, 70000)));
        let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(pseudo_header_ip(s4.into(), d4.into(), 6, 20), Some(pseudo_header(s4, d4, 6, 20)));
        assert_eq!(pseudo_header_ip(s4.into(), d4.into(), 6, 70000), None);
        assert_eq!(pseudo_header_ip(s4.into(), ip(dst), 6, 20), None);
    }

    proptest! {
        #[test]
        fn update_addr_v6_equals_recompute(
            prefix in proptest::collection::vec(any::<u8>(), 1..20),
            old in any::<u128>(),
            new in any::<u128>(),
        ) {
            let mut data = prefix;
            if data.len() % 2 == 1 { data.push(0); }
            data[0] |= 0x40;
            data.extend_from_slice(&old.to_be_bytes());
            let csum = naive(&data);
            let n = data.len();
            data[n - 16..].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update_addr_v6(csum, old.into(), new.into()), naive(&data));
        }

        #[test]
        fn delta_addr_v6_equals_the_sum_of_word_terms(old in any::<u128>(), new in any::<u128>()) {
            let (o, n) = (Ipv6Addr::from(old), Ipv6Addr::from(new));
            let terms: u32 = o.segments().iter().zip(n.segments()).map(|(&a, b)| delta16(a, b)).sum();
            prop_assert_eq!(delta_addr_v6(o, n), terms);
        }
    }

    proptest! {
        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(finish(sum(&data)), naive(&data));
            prop_assert!(sum(&data) <= 0x1fffe);
        }

        #[test]
        fn sum_of_an_ipv4_header_matches_naive(data in proptest::array::uniform20(any::<u8>())) {
            // The 20-byte fast path.
            prop_assert_eq!(finish(sum(&data)), naive(&data));
            prop_assert!(sum(&data) <= 0x1fffe);
        }

        #[test]
        fn sum_is_additive_over_even_pieces(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            b in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut a = a;
            if a.len() % 2 == 1 { a.pop(); }
            let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
            prop_assert_eq!(finish(sum(&a) + sum(&b)), finish(sum(&whole)));
        }

        #[test]
        fn update16_equals_recompute(
            data in proptest::collection::vec(any::<u8>(), 4..64),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let mut data = data;
            if data.len() % 2 == 1 { data.push(0); }
            // Keep the first word nonzero so the sum is never +0 (as in every real header),
            // and change any other word.
            data[0] |= 0x40;
            let i = 1 + idx.index(data.len() / 2 - 1);
            let csum = naive(&data);
            let old = u16::from_be_bytes([data[2 * i], data[2 * i + 1]]);
            data[2 * i..2 * i + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update16(csum, old, new), naive(&data));
        }

        #[test]
        fn update_addr_equals_recompute(
            prefix in proptest::collection::vec(any::<u8>(), 1..20),
            old in any::<u32>(),
            new in any::<u32>(),
        ) {
            let mut data = prefix;
            if data.len() % 2 == 1 { data.push(0); }
            data[0] |= 0x40;
            data.extend_from_slice(&old.to_be_bytes());
            let csum = naive(&data);
            let n = data.len();
            data[n - 4..].copy_from_slice(&new.to_be_bytes());
            let got = update_addr(csum, Ipv4Addr::from(old), Ipv4Addr::from(new));
            prop_assert_eq!(got, naive(&data));
            prop_assert_eq!(update32(csum, old, new), got);
        }

        /// An address and a port changed together (the NAT rewrite's L4 update): one
        /// `update_delta` equals a full recomputation and the word-by-word updates, for
        /// any checksum field value, zero representations included.
        #[test]
        fn update_delta_equals_recompute_and_sequential(
            prefix in proptest::collection::vec(any::<u8>(), 1..20),
            (old_a, old_p) in (any::<u32>(), any::<u16>()),
            (new_a, new_p) in (any::<u32>(), any::<u16>()),
            field in any::<u16>(),
        ) {
            let mut data = prefix;
            if data.len() % 2 == 1 { data.push(0); }
            data[0] |= 0x40;
            data.extend_from_slice(&old_a.to_be_bytes());
            data.extend_from_slice(&old_p.to_be_bytes());
            let csum = naive(&data);
            let n = data.len();
            data[n - 6..n - 2].copy_from_slice(&new_a.to_be_bytes());
            data[n - 2..].copy_from_slice(&new_p.to_be_bytes());
            let (oa, na) = (Ipv4Addr::from(old_a), Ipv4Addr::from(new_a));
            let delta = delta_addr(oa, na) + delta16(old_p, new_p);
            prop_assert_eq!(update_delta(csum, delta), naive(&data));
            // Any field value, also one no real header has: the same as one word at a time.
            prop_assert_eq!(update_delta(field, delta), update16(update_addr(field, oa, na), old_p, new_p));
        }
    }
}
