//! Mbuf pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is a cheap, cloneable handle: give each worker its own clone. The
//! default ring handler (`ring_mp_mc`) is safe from any thread, and each EAL lcore gets
//! its own object cache, so allocation needs no lock.
//!
//! The pool is freed when the last handle goes — unless mbufs from it are still alive
//! (in the application, in a NIC ring, or in a `net_ring` ring), in which case it is
//! deliberately leaked, together with a hold on the EAL, so that those mbufs never point
//! into freed memory.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use rvs_dpdk_sys as sys;

use super::eal::{Eal, EalToken};
use super::error::{libc_errno, rte_errno, strerror, DpdkError};
use super::mbuf::Mbuf;
use crate::traits::PacketPool;

/// A pool of packet buffers.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    mp: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    data_room: u16,
    eal: Arc<EalToken>,
}

// SAFETY: the rte_mempool pointer is never written through by this type except via
// DPDK's thread-safe get/put (default `ring_mp_mc` ops, per-lcore caches indexed by the
// calling thread's lcore id, no cache for non-EAL threads) and the final free, which
// happens once, when the last Arc goes.
unsafe impl Send for PoolInner {}
// SAFETY: as above: every operation reachable through `&PoolInner` is thread-safe.
unsafe impl Sync for PoolInner {}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("data_room", &self.inner.data_room)
            .finish()
    }
}

impl Mempool {
    /// Data room that holds a 1500-byte-MTU frame plus the default 128-byte headroom
    /// (DPDK's `RTE_MBUF_DEFAULT_BUF_SIZE`, 2176).
    pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    /// Headroom of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`), part of the data room.
    pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;
    /// Largest per-lcore cache DPDK accepts (`RTE_MEMPOOL_CACHE_MAX_SIZE`).
    pub const MAX_CACHE: u32 = sys::RTE_MEMPOOL_CACHE_MAX_SIZE;

    /// Creates a pool of `n_mbufs` packet buffers named `name` (unique in the process,
    /// at most 26 characters), each with `data_room` bytes of buffer including the
    /// headroom ([`Mempool::DEFAULT_DATA_ROOM`] for standard frames), a per-lcore cache
    /// of `cache` mbufs (0 to disable, at most [`Mempool::MAX_CACHE`] and at most
    /// `n_mbufs / 1.5`), on NUMA node `socket` (`None`: any).
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            what: "mempool name",
            value: name.escape_default().to_string(),
            why: "it contains a NUL byte",
        })?;
        let fail = |reason: String| DpdkError::MempoolCreate { name: name.to_string(), n_mbufs, data_room, reason };
        if name.is_empty() || name.len() > 26 {
            return Err(fail("the name must be 1 to 26 characters long".to_string()));
        }
        if n_mbufs == 0 {
            return Err(fail("the pool needs at least one mbuf".to_string()));
        }
        if cache > Self::MAX_CACHE || u64::from(cache) * 3 > u64::from(n_mbufs) * 2 {
            return Err(fail(format!(
                "cache size {cache} is too large: it must be at most {} and at most 2/3 of the pool size",
                Self::MAX_CACHE
            )));
        }
        let socket_id = match socket {
            None => sys::SOCKET_ID_ANY,
            Some(s) => i32::try_from(s).map_err(|_| fail(format!("socket {s} is out of range")))?,
        };
        // SAFETY: EAL is initialised (we hold `&Eal`, and the token taken below keeps it
        // so); the name is a valid C string that DPDK copies; the numeric arguments were
        // range-checked above.
        let mp = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache, 0, data_room, socket_id) };
        let Some(mp) = NonNull::new(mp) else {
            let errno = rte_errno();
            let hint = match errno {
                libc_errno::EEXIST => " (a pool with this name already exists)",
                libc_errno::ENOMEM => " (not enough DPDK memory: reserve more hugepages or make the pool smaller)",
                libc_errno::ENAMETOOLONG => " (the name is too long)",
                libc_errno::EINVAL => " (cache size, data room or socket is invalid)",
                libc_errno::ENOENT => " (the ring mempool driver was not found: is librte_mempool_ring installed?)",
                _ => "",
            };
            return Err(fail(format!("{}{hint}", strerror(errno))));
        };
        tracing::debug!(name, n_mbufs, cache, data_room, "mbuf pool created");
        Ok(Mempool {
            inner: Arc::new(PoolInner { mp, name: name.to_string(), size: n_mbufs, data_room, eal: eal.token() }),
        })
    }

    /// A fresh mbuf (length 0, default headroom), or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive (we hold the Arc) and was created by
        // rte_pktmbuf_pool_create; alloc is thread-safe.
        let m = unsafe { sys::rvs_rte_pktmbuf_alloc(self.inner.mp.as_ptr()) };
        // SAFETY: a non-null result is a fresh single-segment mbuf that we now own.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Total mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Mbufs currently free (in the pool and in the per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive; the count is a racy-but-safe read.
        unsafe { sys::rte_mempool_avail_count(self.inner.mp.as_ptr()) }
    }

    /// Mbufs currently handed out (to the application or to NIC rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as `available`.
        unsafe { sys::rte_mempool_in_use_count(self.inner.mp.as_ptr()) }
    }

    /// The raw pool, for ethdev queue setup.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.mp.as_ptr()
    }
}

impl PacketPool for Mempool {
    type Buf = Mbuf;

    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        Mempool::alloc(self)
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive until the free below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.mp.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no handle (this is the last) and no mbuf from this pool exists, so
            // nothing can touch the pool after it is freed.
            unsafe { sys::rte_mempool_free(self.mp.as_ptr()) };
            return;
        }
        tracing::warn!(
            pool = %self.name,
            in_use,
            "mbuf pool dropped while mbufs are still in use; leaking it (and skipping EAL cleanup) so they stay valid"
        );
        // Keep the EAL "in use" forever: the leaked pool's memory must never be unmapped.
        std::mem::forget(Arc::clone(&self.eal));
    }
}
