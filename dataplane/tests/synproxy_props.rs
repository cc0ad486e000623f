//! Properties of the SYN proxy's building blocks: the cookie codec round-trips MSS and
//! the timestamp-carried options and refuses another secret, another 4-tuple, another
//! client ISN and an old counter; translation keeps every TCP checksum right (recomputed
//! in full here) and is undone by the opposite offsets.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use rvs_dataplane::synproxy::cookie::{mss_index, CookieError, CookieSecret, CookieTuple, TsOptions, MSS_TABLE};
use rvs_dataplane::synproxy::packet::{translate_to_client, translate_to_server, WindowRewrite};
use rvs_dataplane::wire::{checksum, TcpPacket};

fn tuple() -> impl Strategy<Value = CookieTuple> {
    (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(c, cp, v, vp)| CookieTuple {
        client: Ipv4Addr::from(c),
        cport: cp,
        vip: Ipv4Addr::from(v),
        vport: vp,
    })
}

/// The TCP checksum of `seg` between `src` and `dst`, computed in full.
fn full_csum(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
    let mut s = seg.to_vec();
    s[16] = 0;
    s[17] = 0;
    checksum::finish(checksum::pseudo_header(src, dst, 6, s.len() as u16) + checksum::sum(&s))
}

/// A TCP segment with `lead` NOPs, a timestamp option, optionally a SACK block, padding,
/// and `data`; checksum filled in.
fn segment(lead: usize, tsval: u32, tsecr: u32, sack: Option<(u32, u32)>, window: u16, data: &[u8]) -> Vec<u8> {
    let mut opts = vec![1u8; lead];
    opts.extend_from_slice(&[8, 10]);
    opts.extend_from_slice(&tsval.to_be_bytes());
    opts.extend_from_slice(&tsecr.to_be_bytes());
    if let Some((l, r)) = sack {
        opts.extend_from_slice(&[5, 10]);
        opts.extend_from_slice(&l.to_be_bytes());
        opts.extend_from_slice(&r.to_be_bytes());
    }
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let mut s = vec![0u8; 20];
    s[0..2].copy_from_slice(&40000u16.to_be_bytes());
    s[2..4].copy_from_slice(&80u16.to_be_bytes());
    s[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    s[8..12].copy_from_slice(&0x9abc_def0u32.to_be_bytes());
    s[12] = (((20 + opts.len()) / 4) as u8) << 4;
    s[13] = 0x18;
    s[14..16].copy_from_slice(&window.to_be_bytes());
    s.extend_from_slice(&opts);
    s.extend_from_slice(data);
    let c = full_csum(A, B, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

const A: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);

proptest! {
    #[test]
    fn cookie_round_trips_the_mss_index(key in any::<[u8; 32]>(), t in tuple(), isn in any::<u32>(), count in any::<u32>(), mss in any::<u16>(), later in 0u32..2) {
        let s = CookieSecret::from_bytes(key);
        let idx = mss_index(mss);
        prop_assert!(MSS_TABLE[usize::from(idx)] <= mss.max(MSS_TABLE[0]));
        let c = s.isn(&t, isn, count, idx);
        prop_assert_eq!(s.check(&t, isn, c, count.wrapping_add(later)), Ok(idx));
    }

    #[test]
    fn cookie_refuses_other_secret_tuple_isn_and_age(key in any::<[u8; 32]>(), other in any::<[u8; 32]>(), t in tuple(), t2 in tuple(), isn in any::<u32>(), isn_delta in 0x100u32..0xffff_ff00, count in any::<u32>(), age in 2u32..250) {
        let s = CookieSecret::from_bytes(key);
        let c = s.isn(&t, isn, count, 3);
        // 4 valid indexes out of 2^24: a random mismatch passes with odds 2^-22; the
        // cases below would fail spuriously about once in a million runs of 256 cases.
        if other != key {
            prop_assert!(CookieSecret::from_bytes(other).check(&t, isn, c, count).is_err());
        }
        if t2 != t {
            prop_assert!(s.check(&t2, isn, c, count).is_err());
        }
        prop_assert!(s.check(&t, isn.wrapping_add(isn_delta), c, count).is_err());
        prop_assert_eq!(s.check(&t, isn, c, count.wrapping_add(age)), Err(CookieError::Expired));
    }

    #[test]
    fn ts_options_round_trip(ws in proptest::option::of(0u8..15), sack in any::<bool>(), ecn in any::<bool>(), now in any::<u32>()) {
        let o = TsOptions { wscale: ws, sack, ecn };
        let v = o.tsval(now);
        prop_assert_eq!(TsOptions::from_bits(v), o);
        prop_assert!(now.wrapping_sub(v) < 64, "within one 64-step of the clock");
    }

    #[test]
    fn translation_keeps_checksums_and_inverts(lead in 0usize..4, tsval in any::<u32>(), tsecr in any::<u32>(), sack in proptest::option::of((any::<u32>(), any::<u32>())), window in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..40), seq_off in any::<u32>(), ts_off in any::<u32>()) {
        let ws = WindowRewrite::default();
        let orig = segment(lead, tsval, tsecr, sack, window, &data);
        let mut s = orig.clone();
        translate_to_server(&mut s, seq_off, ts_off, &ws);
        prop_assert_eq!(TcpPacket::new_unchecked(&s[..]).checksum(), full_csum(A, B, &s));
        prop_assert_eq!(TcpPacket::new_unchecked(&s[..]).ack(), 0x9abc_def0u32.wrapping_add(seq_off));
        translate_to_server(&mut s, seq_off.wrapping_neg(), ts_off.wrapping_neg(), &ws);
        prop_assert_eq!(&s, &orig);
        translate_to_client(&mut s, seq_off, ts_off, &ws);
        prop_assert_eq!(TcpPacket::new_unchecked(&s[..]).checksum(), full_csum(A, B, &s));
        prop_assert_eq!(TcpPacket::new_unchecked(&s[..]).seq(), 0x1234_5678u32.wrapping_sub(seq_off));
        translate_to_client(&mut s, seq_off.wrapping_neg(), ts_off.wrapping_neg(), &ws);
        prop_assert_eq!(&s, &orig);
    }

    #[test]
    fn window_rewrite_never_closes_an_open_window(server_ws in proptest::option::of(0u8..15), client_ws in 0u8..15, w in 1u16..) {
        let r = WindowRewrite::new(Some(client_ws), server_ws, 7);
        prop_assert_eq!(WindowRewrite::unpack(r.pack(), 7), r);
        let to_c = r.to_client(w);
        prop_assert!(to_c > 0);
        // What the client may send (to_c << 7) is at least what the server offered, and
        // at most one unit more (or capped at the field's maximum).
        let offered = u64::from(w) << r.server;
        let granted = u64::from(to_c) << 7;
        if to_c < u16::MAX {
            prop_assert!(granted >= offered && granted - offered < 128, "{offered} -> {granted}");
        }
    }
}
