//! Transmit-side handling of IPv4 fragments: the address rewrite of a fragment without an
//! L4 header ([`rewrite_later`]), and the outer fragmentation of an IPIP packet over the
//! egress MTU ([`fragment_outer`]).
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
//!   as it was and gives every new buffer back.
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
}
