//! Transmit-side handling of IPv4 fragments: the address rewrite of a fragment without an
//! L4 header ([`rewrite_later`]), the outer fragmentation of an IPIP packet over the
//! egress MTU ([`fragment_outer`]); and the cutting of a NAT64 reply, translated to IPv6
//! with a fragment header, into IPv6 fragments for the egress MTU ([`fragment_v6`]).
//!
//! # Contract
//!
//! * Why no reassembly for NAT and Full-NAT: the TCP/UDP header — ports and checksum — is
//!   in the first fragment only (offset 0). The L4 checksum covers the pseudo-header and
//!   the whole datagram, but an RFC 1624 update for changed addresses and ports needs only
//!   the old and new values of those words, never the payload, so the first fragment is
//!   rewritten exactly like a whole packet (by the [`super::nat`] and [`super::fullnat`]
//!   rewrites, with the first fragment's [`Layout`](crate::view::Layout)). A later fragment
//!   carries nothing but payload after its IPv4 header: only its addresses change, and its
//!   IPv4 header checksum ([`rewrite_later`]). The real server reassembles the datagram
//!   from fragments that are each already translated.
//! * [`fragment_outer`] splits an encapsulated packet whose outer header has DF clear into
//!   outer fragments of at most `mtu` bytes (RFC 791 fragmentation of the outer packet:
//!   RFC 2003 §5.1 leaves the inner packet alone when its DF is clear, as Linux's `ipip`
//!   does through `ip_fragment`); the receiving end reassembles the outer packet, then
//!   decapsulates it. The first piece stays in the original buffer; the others come from
//!   the pool, all allocated before anything is written, so a failure leaves the buffer
//!   as it was and gives every new buffer back. [`fragment_v6`] does the same for an IPv6
//!   packet that already has its fragment header (a NAT64 reply, RFC 7915 §4.1).
//! * Nothing here allocates memory: new buffers come from the worker's packet pool.

use std::net::Ipv4Addr;

use arrayvec::ArrayVec;
use rvs_drivers::PacketBuf;

use super::ttl::TtlDecrement;
use crate::view::L3_OFFSET;
use crate::wire::{checksum, Ipv4Packet};

/// Most pieces [`fragment_outer`] cuts one packet into: a 9000-byte jumbo fragment over a
/// 1500-byte link needs 7.
pub const MAX_OUTER_FRAGMENTS: usize = 8;

/// Rewrites the addresses of a later fragment (offset non-zero: no L4 header) in `frame`,
/// whose IPv4 header the worker validated, to `src` and/or `dst`, folding the TTL
/// decrement `ttl` into the one incremental update of the header checksum. Nothing after
/// the IPv4 header is read or written. A frame without an IPv4 header is left alone.
pub fn rewrite_later(frame: &mut [u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>, ttl: TtlDecrement) {
    let Some(l3) = frame.get_mut(L3_OFFSET..).filter(|h| h.len() >= 20) else { return };
    let mut ip = Ipv4Packet::new_unchecked(l3);
    let mut delta = ttl.term();
    if let Some(a) = src {
        delta += checksum::delta_addr(ip.src_addr(), a);
        ip.set_src_addr(a);
    }
    if let Some(a) = dst {
        delta += checksum::delta_addr(ip.dst_addr(), a);
        ip.set_dst_addr(a);
    }
    ip.set_checksum(checksum::update_delta(ip.checksum(), delta));
}

/// Why [`fragment_outer`] did not fragment. The buffer is unchanged in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OuterFragError {
    /// DF is set on the outer header, the MTU leaves no room for 8 bytes of data, or the
    /// packet would need more than [`MAX_OUTER_FRAGMENTS`] pieces.
    #[error("cannot fragment the outer packet for this MTU")]
    TooBig,
    /// The pool had no buffer for a piece.
    #[error("no buffer for an outer fragment")]
    NoBuffer,
    /// The frame holds no IPv4 packet after the Ethernet header.
    #[error("no outer IPv4 header")]
    Malformed,
}

/// Cuts the IPv4 packet of `buf` (Ethernet header, then the outer header [`super::tunnel`]
/// wrote) into fragments of at most `mtu` bytes, all with identification `ident`, when it
/// is longer than `mtu`: `buf` keeps the first piece, the others (taken with `alloc`, each
/// with the same Ethernet header) are pushed onto `out` in offset order. Each header gets
/// its length, MF, offset and a fresh checksum. A packet that fits is left alone (nothing
/// pushed). See the module docs.
pub fn fragment_outer<B: PacketBuf>(
    buf: &mut B,
    mtu: u16,
    ident: u16,
    mut alloc: impl FnMut() -> Option<B>,
    out: &mut ArrayVec<B, MAX_OUTER_FRAGMENTS>,
) -> Result<(), OuterFragError> {
    let frame = buf.data();
    let ip = frame.get(L3_OFFSET..).and_then(|b| Ipv4Packet::new_checked(b).ok()).ok_or(OuterFragError::Malformed)?;
    let (hl, total) = (ip.header_len(), usize::from(ip.total_len()));
    if total <= usize::from(mtu) {
        return Ok(());
    }
    if ip.dont_frag() || ip.is_fragment() {
        return Err(OuterFragError::TooBig);
    }
    // Data per piece: what the MTU leaves after the header, in whole 8-byte units.
    let chunk = (usize::from(mtu).saturating_sub(hl)) & !7;
    let data = total - hl;
    if chunk == 0 || data.div_ceil(chunk) > MAX_OUTER_FRAGMENTS.min(out.remaining_capacity() + 1) {
        return Err(OuterFragError::TooBig);
    }
    let pieces = data.div_ceil(chunk);
    let mut fresh = ArrayVec::<B, MAX_OUTER_FRAGMENTS>::new();
    for _ in 1..pieces {
        match alloc() {
            Some(b) => fresh.push(b),
            // `fresh` is dropped: every buffer taken goes back to the pool.
            None => return Err(OuterFragError::NoBuffer),
        }
    }
    let head_end = L3_OFFSET + hl;
    for (i, mut b) in fresh.into_iter().enumerate() {
        let start = (i + 1) * chunk;
        let len = chunk.min(data - start);
        if !b.set_len(head_end + len) {
            return Err(OuterFragError::NoBuffer);
        }
        let src = buf.data();
        let dst = b.data_mut();
        dst[..head_end].copy_from_slice(&src[..head_end]);
        dst[head_end..].copy_from_slice(&src[head_end + start..head_end + start + len]);
        // hl + len <= mtu, a u16; start < 65535.
        write_header(&mut dst[L3_OFFSET..], (hl + len) as u16, ident, start as u16, start + len < data);
        out.push(b);
    }
    let _ = buf.set_len(head_end + chunk);
    write_header(&mut buf.data_mut()[L3_OFFSET..], (hl + chunk) as u16, ident, 0, true);
    Ok(())
}

/// Why [`fragment_v6`] did not cut. The buffer is unchanged in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Frag6Error {
    /// The MTU leaves no room for 8 bytes of data after the headers, the packet would
    /// need more than [`MAX_OUTER_FRAGMENTS`] pieces, or a piece would end past the
    /// 65,535 bytes a fragment offset reaches.
    #[error("cannot cut the IPv6 packet for this MTU")]
    TooBig,
    /// The pool had no buffer for a piece.
    #[error("no buffer for an IPv6 fragment")]
    NoBuffer,
    /// The frame holds no IPv6 packet whose fixed header is followed by a fragment
    /// header.
    #[error("no IPv6 fragment header after the fixed header")]
    Malformed,
}

/// Length of the IPv6 fixed header and the fragment header right after it.
const V6_FRAG_HEADERS: usize = 40 + 8;

/// Cuts the IPv6 packet of `buf` — Ethernet header, the 40-byte IPv6 header, a fragment
/// header right after it (as [`super::nat64::v4_to_v6_fragment`] writes), then the data
/// — into IPv6 fragments of at most `mtu` bytes when it is longer than `mtu` (RFC 7915
/// §4.1: the translator fragments what the IPv4 side let it; RFC 8200 §4.5's rules for
/// the pieces): `buf` keeps the first piece, the others (taken with `alloc`, each with the
/// same Ethernet and IPv6 headers) are pushed onto `out` in offset order. Every piece
/// keeps the identification; its offset is the packet's plus where its data starts, M is
/// set on every piece but the last, which keeps the packet's own M; every piece but the
/// last carries a multiple of 8 bytes. A packet that fits is left alone (nothing pushed).
/// As [`fragment_outer`], every buffer is allocated before anything is written: a failure
/// leaves `buf` as it was and gives every new buffer back. Nothing is summed: no checksum
/// covers the IPv6 or fragment header.
pub fn fragment_v6<B: PacketBuf>(
    buf: &mut B,
    mtu: u16,
    mut alloc: impl FnMut() -> Option<B>,
    out: &mut ArrayVec<B, MAX_OUTER_FRAGMENTS>,
) -> Result<(), Frag6Error> {
    let frame = buf.data();
    let head_end = L3_OFFSET + V6_FRAG_HEADERS;
    let ip = frame.get(L3_OFFSET..head_end).ok_or(Frag6Error::Malformed)?;
    if ip[0] >> 4 != 6 || ip[6] != super::nat64::IPPROTO_FRAGMENT {
        return Err(Frag6Error::Malformed);
    }
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if payload < 8 || L3_OFFSET + 40 + payload > frame.len() {
        return Err(Frag6Error::Malformed);
    }
    if 40 + payload <= usize::from(mtu) {
        return Ok(());
    }
    let word = u16::from_be_bytes([ip[42], ip[43]]);
    let (base, more) = (usize::from(word & 0xfff8), word & 1 != 0);
    let data = payload - 8;
    let chunk = usize::from(mtu).saturating_sub(V6_FRAG_HEADERS) & !7;
    if chunk == 0
        || data.div_ceil(chunk) > MAX_OUTER_FRAGMENTS.min(out.remaining_capacity() + 1)
        || base + data > usize::from(u16::MAX)
    {
        return Err(Frag6Error::TooBig);
    }
    let pieces = data.div_ceil(chunk);
    let mut fresh = ArrayVec::<B, MAX_OUTER_FRAGMENTS>::new();
    for _ in 1..pieces {
        match alloc() {
            Some(b) => fresh.push(b),
            // `fresh` is dropped: every buffer taken goes back to the pool.
            None => return Err(Frag6Error::NoBuffer),
        }
    }
    for b in fresh.iter_mut() {
        if !b.set_len(head_end + chunk) {
            return Err(Frag6Error::NoBuffer);
        }
    }
    for (i, mut b) in fresh.into_iter().enumerate() {
        let start = (i + 1) * chunk;
        let len = chunk.min(data - start);
        let _ = b.set_len(head_end + len);
        let src = buf.data();
        let dst = b.data_mut();
        dst[..head_end].copy_from_slice(&src[..head_end]);
        dst[head_end..].copy_from_slice(&src[head_end + start..head_end + start + len]);
        // `base + start` ≤ 65,535 and a multiple of 8 (checked above); `len` + 8 ≤ `mtu`.
        write_header6(&mut dst[L3_OFFSET..], len, base + start, more || start + len < data);
        out.push(b);
    }
    let _ = buf.set_len(head_end + chunk);
    write_header6(&mut buf.data_mut()[L3_OFFSET..], chunk, base, true);
    Ok(())
}

/// Sets the payload length (`len` data bytes after the fragment header) and the
/// fragment header's offset (`offset` bytes) and M of the IPv6 packet at the start of `l3`.
fn write_header6(l3: &mut [u8], len: usize, offset: usize, more: bool) {
    l3[4..6].copy_from_slice(&((len + 8) as u16).to_be_bytes());
    l3[42..44].copy_from_slice(&((offset as u16 & 0xfff8) | u16::from(more)).to_be_bytes());
}

/// Sets the fragment fields of the IPv4 header at the start of `l3` and its checksum.
fn write_header(l3: &mut [u8], total: u16, ident: u16, offset: u16, more: bool) {
    let mut ip = Ipv4Packet::new_unchecked(l3);
    ip.set_total_len(total);
    ip.set_ident(ident);
    ip.set_frag_offset(offset);
    ip.set_more_frags(more);
    ip.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_drivers::mem::MemBuf;

    /// Ethernet + a 20-byte IPv4 header (protocol 4, DF as given) + `data` bytes 0, 1, ...
    fn outer(data: usize, df: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + data];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len((20 + data) as u16);
        ip.set_dont_frag(df);
        ip.set_ttl(64);
        ip.set_protocol(4);
        ip.set_src_addr(Ipv4Addr::new(10, 20, 0, 1));
        ip.set_dst_addr(Ipv4Addr::new(10, 20, 0, 11));
        ip.fill_checksum();
        for (i, b) in f[34..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn pieces_cover_the_payload_once_in_order() {
        for (data, mtu, want) in [(1500, 1500, 2), (1480, 1500, 1), (4000, 1500, 3), (100, 68, 3)] {
            let f = outer(data, false);
            let mut b = MemBuf::from_frame(&f);
            let mut out = ArrayVec::new();
            fragment_outer(&mut b, mtu, 0x4242, || Some(MemBuf::with_room(64, 2048)), &mut out).unwrap();
            let mut got = Vec::new();
            let mut next = 0;
            for (i, piece) in std::iter::once(&b).chain(out.iter()).enumerate() {
                let ip = Ipv4Packet::new_checked(&piece.data()[14..]).unwrap();
                assert!(ip.verify_checksum());
                assert!(usize::from(ip.total_len()) <= usize::from(mtu));
                assert_eq!(piece.data()[..14], f[..14]);
                if want > 1 {
                    assert_eq!(
                        (ip.ident(), usize::from(ip.frag_offset()), ip.more_frags()),
                        (0x4242, next, i + 1 < want)
                    );
                }
                next += ip.payload().len();
                got.extend_from_slice(ip.payload());
            }
            assert_eq!(1 + out.len(), want, "{data} over {mtu}");
            assert_eq!(got, f[34..]);
        }
    }

    #[test]
    fn refusals_leave_the_buffer_and_the_pool_alone() {
        let f = outer(1500, true);
        let mut b = MemBuf::from_frame(&f);
        let mut out = ArrayVec::new();
        assert_eq!(
            fragment_outer(&mut b, 1500, 1, || Some(MemBuf::with_room(0, 2048)), &mut out),
            Err(OuterFragError::TooBig)
        );
        let f = outer(1500 * 9, false);
        let mut b = MemBuf::from_frame(&f);
        assert_eq!(
            fragment_outer(&mut b, 1500, 1, || Some(MemBuf::with_room(0, 2048)), &mut out),
            Err(OuterFragError::TooBig)
        );
        let f = outer(4000, false);
        let mut b = MemBuf::from_frame(&f);
        let mut n = 0;
        let r = fragment_outer(
            &mut b,
            1500,
            1,
            || {
                n += 1;
                (n < 2).then(|| MemBuf::with_room(0, 2048))
            },
            &mut out,
        );
        assert_eq!(r, Err(OuterFragError::NoBuffer));
        assert_eq!((b.data(), out.len()), (&f[..], 0));
        let mut short = MemBuf::from_frame(&f[..20]);
        assert_eq!(fragment_outer(&mut short, 1500, 1, || None, &mut out), Err(OuterFragError::Malformed));
    }

    #[test]
    fn a_later_fragment_keeps_a_valid_header() {
        let mut f = outer(64, false);
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10; // offset 128
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.fill_checksum();
        let before = f.clone();
        let a = Ipv4Addr::new(192, 168, 1, 1);
        rewrite_later(&mut f, Some(a), Some(a), TtlDecrement::NONE);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (a, a));
        assert_eq!(f[34..], before[34..]);
        rewrite_later(&mut f[..10], Some(a), None, TtlDecrement::NONE);
    }

    /// Ethernet + IPv6 + a fragment header (offset `offset` bytes, M `more`,
    /// identification 7) + `data` bytes 0, 1, ...
    fn v6_fragment(data: usize, offset: u16, more: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 48 + data];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&((8 + data) as u16).to_be_bytes());
        f[20] = 44;
        f[21] = 63;
        f[54] = 17;
        f[56..58].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
        f[58..62].copy_from_slice(&7u32.to_be_bytes());
        for (i, b) in f[62..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn an_ipv6_fragment_is_cut_with_its_offset_and_m() {
        // 1480 bytes at offset 1480, more to come, over 1280: 1232 bytes at 1480 and 248
        // at 2712, both with M (the packet's own M follows its last piece).
        let f = v6_fragment(1480, 1480, true);
        let mut b = MemBuf::from_frame(&f);
        let mut out = ArrayVec::new();
        fragment_v6(&mut b, 1280, || Some(MemBuf::with_room(64, 2048)), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let fields =
            |p: &[u8]| (u16::from_be_bytes([p[18], p[19]]), u16::from_be_bytes([p[56], p[57]]), p[58..62].to_vec());
        assert_eq!(fields(b.data()), (8 + 1232, 1480 | 1, vec![0, 0, 0, 7]));
        assert_eq!(fields(out[0].data()), (8 + 248, 2712 | 1, vec![0, 0, 0, 7]));
        assert_eq!((b.len(), out[0].len()), (62 + 1232, 62 + 248));
        for piece in [b.data(), out[0].data()] {
            // Everything but the payload length and the offset word is the packet's.
            assert_eq!((&piece[..18], &piece[20..56]), (&f[..18], &f[20..56]));
        }
        assert_eq!(b.data()[62..], f[62..62 + 1232]);
        assert_eq!(out[0].data()[62..], f[62 + 1232..]);
        // The last fragment of its datagram: the last piece has M clear.
        let f = v6_fragment(1400, 0, false);
        let mut b = MemBuf::from_frame(&f);
        let mut out = ArrayVec::new();
        fragment_v6(&mut b, 1280, || Some(MemBuf::with_room(64, 2048)), &mut out).unwrap();
        assert_eq!((fields(b.data()).1, fields(out[0].data()).1), (1, 1232));
        // One that fits is left alone.
        let f = v6_fragment(1232, 0, true);
        let mut b = MemBuf::from_frame(&f);
        fragment_v6(&mut b, 1280, || None, &mut out).unwrap();
        assert_eq!(b.data(), &f[..]);
    }

    #[test]
    fn ipv6_cut_refusals_leave_the_buffer_and_the_pool_alone() {
        let mut out = ArrayVec::new();
        let f = v6_fragment(4000, 0, false);
        for mtu in [48 + 7, 100] {
            let mut b = MemBuf::from_frame(&f);
            let r = fragment_v6(&mut b, mtu, || Some(MemBuf::with_room(0, 2048)), &mut out);
            assert_eq!(r, Err(Frag6Error::TooBig), "{mtu}");
            assert_eq!(b.data(), &f[..]);
        }
        let mut b = MemBuf::from_frame(&f);
        let mut n = 0;
        let r = fragment_v6(
            &mut b,
            1280,
            || {
                n += 1;
                (n < 3).then(|| MemBuf::with_room(0, 2048))
            },
            &mut out,
        );
        assert_eq!(r, Err(Frag6Error::NoBuffer));
        assert_eq!((b.data(), out.len()), (&f[..], 0));
        let mut not_fragment = f.clone();
        not_fragment[20] = 17;
        let mut b = MemBuf::from_frame(&not_fragment);
        assert_eq!(fragment_v6(&mut b, 1280, || None, &mut out), Err(Frag6Error::Malformed));
        let mut short = MemBuf::from_frame(&f[..40]);
        assert_eq!(fragment_v6(&mut short, 1280, || None, &mut out), Err(Frag6Error::Malformed));
    }
}
