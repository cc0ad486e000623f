//! SYN cookies: the initial sequence number of rvs's SYN-ACK carries a keyed hash of the
//! flow and a coarse time counter, so the client's ACK proves it received the SYN-ACK
//! without rvs remembering anything between the two.
//!
//! # Contract
//!
//! * [`CookieSecret`] holds two SipHash-2-4 keys drawn from the OS's random source once
//!   per process (the control plane reads them and hands the same secret to every worker,
//!   so a cookie sent by one worker is checked by any other). Tests pass fixed keys.
//! * [`CookieSecret::isn`] and [`CookieSecret::check`] follow the layout of Linux's IPv4
//!   SYN cookies (`net/ipv4/syncookies.c`, facts only): with `h1 = H(k1; tuple)` and
//!   `h2 = H(k2; tuple, count)`,
//!
//!   `isn = h1 + client_isn + (count << 24) + ((h2 + mss_index) & 0xffffff)`
//!
//!   where `count` is the minute counter ([`minute_count`]). The top byte carries the
//!   counter (so the check knows which `h2` to recompute); the low 24 bits only accept
//!   the handful of MSS indexes, so a guessed ACK is accepted with probability about
//!   `4 / 2^24`. A cookie is accepted for [`MAX_AGE_MINUTES`] counter values (the minute
//!   it was made and the next one: 60 to 120 s), as Linux's `MAX_SYNCOOKIE_AGE`.
//! * The MSS travels as an index into the family's table ([`MSS_TABLE`], Linux's
//!   `msstab` for IPv4; [`MSS_TABLE6`], its `msstab` for IPv6): the largest entry not
//!   above the client's MSS.
//! * The flow is the SYN's 4-tuple in either family ([`CookieTupleOf`]): the same two
//!   keys and the same layout hash an IPv4 tuple as two 64-bit words and an IPv6 tuple
//!   as five (both addresses whole, so no two IPv6 tuples share a cookie by
//!   construction).
//! * Window scale, SACK-permitted and ECN do not fit in the sequence number; as Linux
//!   does, they ride in the low [`TS_OPT_BITS`] bits of the SYN-ACK's timestamp value,
//!   which the client echoes in every segment ([`TsOptions`]). Without timestamps the
//!   connection gets neither window scaling nor SACK (nor ECN), as with Linux.
//! * Nothing here allocates or fails on input: every `u32` is a possible cookie.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The MSS values a cookie can carry, indexed by 2 bits (Linux's IPv4 `msstab`): the
/// classic minimum, a value for tunnelled paths, PPPoE's 1492-byte links, and Ethernet.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// The MSS values an IPv6 cookie can carry (Linux's IPv6 `msstab`): the IPv6 minimum
/// MTU, a tunnelled path, Ethernet and jumbo frames, each less 60 bytes of headers.
pub const MSS_TABLE6: [u16; 4] = [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60];

/// How many values of the minute counter a cookie stays valid for (Linux: 2).
pub const MAX_AGE_MINUTES: u32 = 2;

/// Nanoseconds per tick of the cookie counter: one minute.
pub const COUNT_NS: u64 = 60_000_000_000;

/// Low bits of the timestamp value that carry [`TsOptions`] (Linux's `TSBITS`).
pub const TS_OPT_BITS: u32 = 6;
/// Mask of those bits.
pub const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
/// The window-scale field value meaning "no window scaling" (4 bits, all ones).
const WSCALE_NONE: u8 = 0xf;
/// The largest window scale shift TCP allows (RFC 7323 §2.3).
pub const MAX_WSCALE: u8 = 14;

/// The cookie counter at `now_ns` (monotonic nanoseconds): whole minutes.
#[inline]
pub fn minute_count(now_ns: u64) -> u32 {
    (now_ns / COUNT_NS) as u32
}

/// The index of the largest [`MSS_TABLE`] entry not above `mss` (0 for anything below
/// 536, including an absent option, which means 536 by RFC 9293).
#[inline]
pub fn mss_index(mss: u16) -> u8 {
    mss_index_in(&MSS_TABLE, mss)
}

/// The index of the largest entry of `table` not above `mss` (0 when none is).
#[inline]
pub fn mss_index_in(table: &[u16; 4], mss: u16) -> u8 {
    table.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8
}

/// An address family a cookie can be made for: how its tuple is hashed and which MSS
/// values it carries. [`Ipv4Addr`] and [`Ipv6Addr`].
pub trait CookieAddr: Copy {
    /// The MSS values this family's cookies carry, by index.
    const MSS_TABLE: [u16; 4];
    /// SipHash-2-4 with key `k` of the tuple `client`, `vip` and `tail` (the ports and
    /// the counter in one word).
    fn hash(k: [u64; 2], client: Self, vip: Self, tail: u64) -> u64;
}

impl CookieAddr for Ipv4Addr {
    const MSS_TABLE: [u16; 4] = MSS_TABLE;
    #[inline]
    fn hash(k: [u64; 2], client: Self, vip: Self, tail: u64) -> u64 {
        let m0 = u64::from(u32::from(client)) << 32 | u64::from(u32::from(vip));
        siphash24(k, [m0, tail])
    }
}

impl CookieAddr for Ipv6Addr {
    const MSS_TABLE: [u16; 4] = MSS_TABLE6;
    #[inline]
    fn hash(k: [u64; 2], client: Self, vip: Self, tail: u64) -> u64 {
        let (c, v) = (u128::from(client), u128::from(vip));
        siphash24(k, [(c >> 64) as u64, c as u64, (v >> 64) as u64, v as u64, tail])
    }
}

/// The flow a cookie is bound to: the client's SYN's addresses and ports, in either
/// family ([`CookieTuple`], [`CookieTuple6`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CookieTupleOf<A> {
    /// Client address (the SYN's source).
    pub client: A,
    /// Client port.
    pub cport: u16,
    /// The VIP (the SYN's destination).
    pub vip: A,
    /// The virtual port.
    pub vport: u16,
}

/// An IPv4 flow's cookie tuple.
pub type CookieTuple = CookieTupleOf<Ipv4Addr>;
/// An IPv6 flow's cookie tuple.
pub type CookieTuple6 = CookieTupleOf<Ipv6Addr>;

impl<A: CookieAddr> CookieTupleOf<A> {
    #[inline]
    fn hash(&self, k: [u64; 2], count: u32) -> u64 {
        let tail = u64::from(self.cport) << 48 | u64::from(self.vport) << 32 | u64::from(count);
        A::hash(k, self.client, self.vip, tail)
    }
}

/// Why an ACK's cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The counter is older than [`MAX_AGE_MINUTES`] (or from the future).
    #[error("SYN cookie expired")]
    Expired,
    /// The hash does not match: another flow's, another secret's, or a guess.
    #[error("SYN cookie does not match the flow")]
    Mismatch,
}

/// The per-process cookie secret: two SipHash-2-4 keys. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSecret {
    k1: [u64; 2],
    k2: [u64; 2],
}

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.write_str("CookieSecret(..)")
    }
}

impl CookieSecret {
    /// The secret made of 32 random bytes (the control plane reads them from the OS).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        let w = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(a)
        };
        CookieSecret { k1: [w(0), w(1)], k2: [w(2), w(3)] }
    }

    /// The cookie (initial sequence number of rvs's SYN-ACK) for a SYN of `tuple` with
    /// sequence number `client_isn`, made at counter `count`, carrying `mss_index`
    /// (below [`MSS_TABLE`]`.len()`; larger values are reduced modulo its length).
    #[inline]
    pub fn isn<A: CookieAddr>(&self, tuple: &CookieTupleOf<A>, client_isn: u32, count: u32, mss_index: u8) -> u32 {
        let h1 = tuple.hash(self.k1, 0) as u32;
        let h2 = tuple.hash(self.k2, count) as u32;
        let data = u32::from(mss_index) % MSS_TABLE.len() as u32;
        h1.wrapping_add(client_isn).wrapping_add(count << 24).wrapping_add(h2.wrapping_add(data) & 0x00ff_ffff)
    }

    /// Checks the cookie `cookie` (an ACK's acknowledgement number minus one) for an ACK
    /// of `tuple` whose sequence number minus one is `client_isn`, at counter `count`:
    /// the MSS index it carries, or why it is refused.
    #[inline]
    pub fn check<A: CookieAddr>(
        &self,
        tuple: &CookieTupleOf<A>,
        client_isn: u32,
        cookie: u32,
        count: u32,
    ) -> Result<u8, CookieError> {
        let h1 = tuple.hash(self.k1, 0) as u32;
        let c = cookie.wrapping_sub(h1).wrapping_sub(client_isn);
        // Only the counter's low 8 bits travel; the difference is taken modulo 256.
        let age = count.wrapping_sub(c >> 24) & 0xff;
        if age >= MAX_AGE_MINUTES {
            return Err(CookieError::Expired);
        }
        let made = count.wrapping_sub(age);
        let h2 = tuple.hash(self.k2, made) as u32;
        let data = c.wrapping_sub(made << 24).wrapping_sub(h2) & 0x00ff_ffff;
        if data < MSS_TABLE.len() as u32 {
            Ok(data as u8)
        } else {
            Err(CookieError::Mismatch)
        }
    }
}

/// The SYN options a cookie's timestamp carries (Linux's `cookie_init_timestamp`
/// layout): bits 0-3 the client's window scale (15: none), bit 4 SACK permitted, bit 5
/// ECN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TsOptions {
    /// The client's window scale shift, `None` when it sent no window-scale option.
    pub wscale: Option<u8>,
    /// The client sent SACK-permitted.
    pub sack: bool,
    /// The client asked for ECN (SYN with ECE and CWR).
    pub ecn: bool,
}

impl TsOptions {
    /// The 6 bits, as they go into the timestamp value. A shift above 14 is sent as 14
    /// (RFC 7323: a receiver uses 14 in its place anyway).
    pub fn bits(&self) -> u32 {
        let ws = self.wscale.map_or(WSCALE_NONE, |w| w.min(MAX_WSCALE));
        u32::from(ws) | u32::from(self.sack) << 4 | u32::from(self.ecn) << 5
    }

    /// The options from the low bits of an echoed timestamp (every 6-bit value is a
    /// possible encoding: shifts 0-14, or 15 for none).
    pub fn from_bits(tsecr: u32) -> Self {
        let wscale = match (tsecr & 0xf) as u8 {
            WSCALE_NONE => None,
            w => Some(w),
        };
        TsOptions { wscale, sack: tsecr & 0x10 != 0, ecn: tsecr & 0x20 != 0 }
    }

    /// The timestamp value of a cookie SYN-ACK at clock `ts_now` (milliseconds): the
    /// clock with its low bits replaced by [`Self::bits`], moved back one step when that
    /// would put it ahead of the clock (Linux does the same, so the value never runs
    /// ahead of the timestamps the connection will see later).
    pub fn tsval(&self, ts_now: u32) -> u32 {
        let v = (ts_now & !TS_OPT_MASK) | self.bits();
        if v > ts_now {
            v.wrapping_sub(TS_OPT_MASK + 1)
        } else {
            v
        }
    }
}

/// The timestamp clock at `now_ns`: milliseconds (RFC 7323 allows 1 ms to 1 s per tick).
#[inline]
pub fn ts_clock(now_ns: u64) -> u32 {
    (now_ns / 1_000_000) as u32
}

/// SipHash-2-4 (Aumasson and Bernstein) of an `8 * N`-byte message given as `N`
/// little-endian words, with key `k`: the keyed hash Linux uses for SYN cookies. Written
/// from the published algorithm.
#[inline]
fn siphash24<const N: usize>(k: [u64; 2], m: [u64; N]) -> u64 {
    let mut v = [
        k[0] ^ 0x736f_6d65_7073_6575,
        k[1] ^ 0x646f_7261_6e64_6f6d,
        k[0] ^ 0x6c79_6765_6e65_7261,
        k[1] ^ 0x7465_6462_7974_6573,
    ];
    #[inline(always)]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    // The message words, then the final block: the length in bytes in the top byte.
    #[inline(always)]
    fn compress(v: &mut [u64; 4], w: u64) {
        v[3] ^= w;
        round(v);
        round(v);
        v[0] ^= w;
    }
    for w in m {
        compress(&mut v, w);
    }
    compress(&mut v, ((8 * N) as u64) << 56);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SipHash-2-4 over any byte string, straight from the paper's description (test
    /// only): the two-word version above must agree with it.
    fn siphash_bytes(k: [u64; 2], msg: &[u8]) -> u64 {
        let mut v = [
            k[0] ^ 0x736f_6d65_7073_6575,
            k[1] ^ 0x646f_7261_6e64_6f6d,
            k[0] ^ 0x6c79_6765_6e65_7261,
            k[1] ^ 0x7465_6462_7974_6573,
        ];
        let sipround = |v: &mut [u64; 4]| {
            v[0] = v[0].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(13) ^ v[0];
            v[0] = v[0].rotate_left(32);
            v[2] = v[2].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(16) ^ v[2];
            v[0] = v[0].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(21) ^ v[0];
            v[2] = v[2].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(17) ^ v[2];
            v[2] = v[2].rotate_left(32);
        };
        let mut blocks: Vec<u64> =
            msg.chunks(8).filter(|c| c.len() == 8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let mut last = [0u8; 8];
        let tail = &msg[msg.len() / 8 * 8..];
        last[..tail.len()].copy_from_slice(tail);
        last[7] = msg.len() as u8;
        blocks.push(u64::from_le_bytes(last));
        for m in blocks {
            v[3] ^= m;
            sipround(&mut v);
            sipround(&mut v);
            v[0] ^= m;
        }
        v[2] ^= 0xff;
        for _ in 0..4 {
            sipround(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// The SipHash paper's worked example (appendix A): key 00..0f, the 15-byte message
    /// 00..0e, output 0xa129ca6149be45e5; and the two-word version agrees with the
    /// byte version on 16-byte messages.
    #[test]
    fn siphash_matches_the_paper() {
        let key_bytes: Vec<u8> = (0..16).collect();
        let k = [
            u64::from_le_bytes(key_bytes[..8].try_into().unwrap()),
            u64::from_le_bytes(key_bytes[8..].try_into().unwrap()),
        ];
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash_bytes(k, &msg), 0xa129_ca61_49be_45e5);
        for seed in 0..64u64 {
            let m = [seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), !seed << 7];
            let mut bytes = m[0].to_le_bytes().to_vec();
            bytes.extend_from_slice(&m[1].to_le_bytes());
            assert_eq!(siphash24(k, m), siphash_bytes(k, &bytes));
            // The IPv6 tuple's five words (40 bytes).
            let m5 = [m[0], m[1], !m[0], m[1] ^ seed, seed << 9];
            let bytes5: Vec<u8> = m5.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert_eq!(siphash24(k, m5), siphash_bytes(k, &bytes5));
        }
    }

    fn secret() -> CookieSecret {
        CookieSecret::from_bytes(std::array::from_fn(|i| i as u8 * 7 + 3))
    }

    /// An IPv6 cookie checks for its own tuple and counter and carries its MSS index;
    /// any other tuple (one bit of either address, a port), a later counter beyond the
    /// age, or another client ISN refuses it.
    #[test]
    fn ipv6_cookies_check_for_their_tuple_only() {
        let s = secret();
        let t = CookieTuple6 {
            client: "2001:db8:1::10".parse().unwrap(),
            cport: 40000,
            vip: "2001:db8:10::100".parse().unwrap(),
            vport: 80,
        };
        for idx in 0..4u8 {
            let c = s.isn(&t, 1000, 7, idx);
            assert_eq!(s.check(&t, 1000, c, 7), Ok(idx));
            assert_eq!(s.check(&t, 1000, c, 8), Ok(idx));
            assert_eq!(s.check(&t, 1000, c, 9), Err(CookieError::Expired));
            assert!(s.check(&t, 1000 + 0x1_0000, c, 7).is_err());
            let low = CookieTuple6 { client: "2001:db8:1::11".parse().unwrap(), ..t };
            let high = CookieTuple6 { client: "2001:db9:1::10".parse().unwrap(), ..t };
            let vip = CookieTuple6 { vip: "2001:db8:10::101".parse().unwrap(), ..t };
            let port = CookieTuple6 { cport: 40001, ..t };
            for other in [low, high, vip, port] {
                assert!(s.check(&other, 1000, c, 7).is_err(), "{other:?}");
            }
        }
        assert_eq!(mss_index_in(&MSS_TABLE6, 1440), 2);
        assert_eq!(mss_index_in(&MSS_TABLE6, 536), 0);
        assert_eq!(mss_index_in(&MSS_TABLE6, 9000), 3);
    }

    /// The IPv4 cookie keeps its two-word layout: a value computed by the formula from
    /// the two-word SipHash directly.
    #[test]
    fn ipv4_cookies_keep_their_layout() {
        let s = secret();
        let t = CookieTuple {
            client: Ipv4Addr::new(10, 0, 0, 1),
            cport: 1234,
            vip: Ipv4Addr::new(10, 10, 0, 100),
            vport: 80,
        };
        let m0 = u64::from(u32::from(t.client)) << 32 | u64::from(u32::from(t.vip));
        let tail = |c: u32| u64::from(t.cport) << 48 | u64::from(t.vport) << 32 | u64::from(c);
        let h1 = siphash24(s.k1, [m0, tail(0)]) as u32;
        let h2 = siphash24(s.k2, [m0, tail(5)]) as u32;
        let want = h1.wrapping_add(99).wrapping_add(5 << 24).wrapping_add(h2.wrapping_add(2) & 0xff_ffff);
        assert_eq!(s.isn(&t, 99, 5, 2), want);
    }

    #[test]
    fn mss_index_picks_the_largest_entry_not_above() {
        assert_eq!(mss_index(0), 0);
        assert_eq!(mss_index(535), 0);
        assert_eq!(mss_index(536), 0);
        assert_eq!(mss_index(1299), 0);
        assert_eq!(mss_index(1300), 1);
        assert_eq!(mss_index(1452), 2);
        assert_eq!(mss_index(1460), 3);
        assert_eq!(mss_index(9000), 3);
    }

    #[test]
    fn ts_options_round_trip() {
        for ws in [None, Some(0), Some(7), Some(14)] {
            for sack in [false, true] {
                for ecn in [false, true] {
                    let o = TsOptions { wscale: ws, sack, ecn };
                    assert_eq!(TsOptions::from_bits(o.tsval(1_000_000)), o);
                    assert!(o.tsval(1_000_000) <= 1_000_000);
                }
            }
        }
        // Shifts above 14 travel as 14 (RFC 7323 caps them there); 15 is "none".
        assert_eq!(TsOptions { wscale: Some(20), ..Default::default() }.bits() & 0xf, 14);
        assert_eq!(TsOptions::from_bits(0xf).wscale, None);
    }
}
