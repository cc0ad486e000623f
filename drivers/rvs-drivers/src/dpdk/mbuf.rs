//! [`Mbuf`]: one owned DPDK packet buffer, implementing [`PacketBuf`].
//!
//! Single segment only. rvs never enables RX scatter, allocates single-segment mbufs,
//! and its RX path frees any chained mbuf a driver hands over (see
//! `EthQueue::multiseg_dropped`), so every `Mbuf` holds its whole frame in one
//! contiguous segment and `data()` is the frame.

use std::ptr::NonNull;

use rvs_dpdk_sys as sys;

use crate::traits::{PacketBuf, RxOffload};

/// An owned, single-segment `rte_mbuf`. Dropping it returns it to its pool.
///
/// The layout is exactly one pointer (`repr(transparent)`), so a slice of `Mbuf` is an
/// array of `struct rte_mbuf *` that can be handed to `rte_eth_tx_burst` as is.
#[repr(transparent)]
pub struct Mbuf {
    m: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the only owner of its rte_mbuf (refcount 1, never shared), and
// freeing it from another thread is supported by DPDK: the put goes to that thread's
// lcore cache, or straight to the multi-producer ring on non-EAL threads.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid direct mbuf with refcount 1, owned by nobody else, from a
    /// pool that outlives it. It must be single-segment before it is used as a frame;
    /// a chained mbuf (checked with [`Mbuf::nb_segs`] on RX) may only be dropped, which
    /// frees the whole chain.
    #[inline]
    pub(crate) unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { m }
    }

    /// Gives up ownership without freeing (the NIC took it).
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let m = self.m;
        std::mem::forget(self);
        m
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as `self` lives.
        unsafe { self.m.as_ref() }
    }

    /// The ethdev port this mbuf was received on (meaningful after RX only).
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Segments in the chain; always 1 for an `Mbuf` handed out by this crate.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The raw offload flags (`ol_flags`, `RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// Size of the buffer behind this mbuf (headroom + data + tailroom).
    #[inline]
    pub fn buf_len(&self) -> usize {
        usize::from(self.raw().buf_len)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it goes back to its pool, which outlives it (pools
        // with live mbufs are never freed).
        unsafe { sys::rvs_rte_pktmbuf_free(self.m.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .field("ol_flags", &format_args!("{:#x}", self.ol_flags()))
            .finish()
    }
}

/// Converts a byte count to DPDK's u16 lengths; `None` when it cannot fit.
#[inline]
fn len16(n: usize) -> Option<u16> {
    u16::try_from(n).ok()
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: for a single-segment mbuf, buf_addr + data_off is the start of
        // data_len initialised bytes inside the buffer, owned by us while `self` lives.
        unsafe {
            std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `data`, and `&mut self` makes the access exclusive.
        unsafe {
            let m = self.m.as_ptr();
            std::slice::from_raw_parts_mut(
                (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)),
                usize::from((*m).data_len),
            )
        }
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off) + usize::from(m.data_len))
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = len16(n)?;
        // SAFETY: we own the mbuf; prepend checks the headroom and changes nothing
        // when it is too small (returns NULL).
        let p = unsafe { sys::rvs_rte_pktmbuf_prepend(self.m.as_ptr(), n) };
        if p.is_null() {
            None
        } else {
            Some(self.data_mut())
        }
    }

    fn adj(&mut self, n: usize) -> bool {
        let Some(n) = len16(n) else { return false };
        // SAFETY: we own the mbuf; adj refuses (NULL, no change) when n > data_len.
        !unsafe { sys::rvs_rte_pktmbuf_adj(self.m.as_ptr(), n) }.is_null()
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = len16(n)?;
        // SAFETY: we own the mbuf; append refuses (NULL, no change) when the tailroom
        // is short.
        let p = unsafe { sys::rvs_rte_pktmbuf_append(self.m.as_ptr(), n) };
        if p.is_null() {
            None
        } else {
            Some(self.data_mut())
        }
    }

    fn trim(&mut self, n: usize) -> bool {
        let Some(n) = len16(n) else { return false };
        // SAFETY: we own the mbuf; trim refuses (-1, no change) when n > data_len.
        unsafe { sys::rvs_rte_pktmbuf_trim(self.m.as_ptr(), n) == 0 }
    }

    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: the RX_RSS_HASH flag says the driver wrote `hash.rss`; every
            // member of the union is plain integers, so the read is defined anyway.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    #[inline]
    fn rx_offload(&self) -> RxOffload {
        rx_offload_from_flags(self.raw().ol_flags)
    }
}

/// Decodes the RX checksum bits of `ol_flags`. `*_CKSUM_NONE` (checksum field wrong but
/// data verified, seen with virtio offloads) reads as "not checked": rvs rewrites
/// checksums incrementally, which needs a correct one to start from.
pub(crate) fn rx_offload_from_flags(ol_flags: u64) -> RxOffload {
    let ip = match ol_flags & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK) {
        f if f == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD) => Some(true),
        f if f == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) => Some(false),
        _ => None,
    };
    let l4 = match ol_flags & u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK) {
        f if f == u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD) => Some(true),
        f if f == u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD) => Some(false),
        _ => None,
    };
    RxOffload { ip_csum_ok: ip, l4_csum_ok: l4 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_flags_decode() {
        assert_eq!(rx_offload_from_flags(0), RxOffload::default());
        let good = u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD | sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD);
        assert_eq!(rx_offload_from_flags(good), RxOffload { ip_csum_ok: Some(true), l4_csum_ok: Some(true) });
        let bad = u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD | sys::RTE_MBUF_F_RX_L4_CKSUM_BAD);
        assert_eq!(rx_offload_from_flags(bad), RxOffload { ip_csum_ok: Some(false), l4_csum_ok: Some(false) });
        let none = u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_NONE | sys::RTE_MBUF_F_RX_L4_CKSUM_NONE);
        assert_eq!(rx_offload_from_flags(none), RxOffload::default());
        let mixed = u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD | sys::RTE_MBUF_F_RX_L4_CKSUM_BAD);
        assert_eq!(rx_offload_from_flags(mixed), RxOffload { ip_csum_ok: Some(true), l4_csum_ok: Some(false) });
    }
}
