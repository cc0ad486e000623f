//! The in-memory driver: heap-backed packet buffers, a counting pool and queues that
//! tests and benchmarks fill and drain directly.
//!
//! It behaves like DPDK's mbufs where the data path can tell: the same default
//! headroom (128 bytes, `RTE_PKTMBUF_HEADROOM`) and data room (2048 bytes), the same
//! prepend/adj/append/trim rules, and TX queues that can be told to refuse packets so
//! the caller's "NIC refused" path is exercised.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::traits::{Burst, LinkStatus, PacketBuf, PacketPool, PortInfo, PortQueue, PortStats};

/// Headroom of a fresh buffer, as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Data room after the headroom, as DPDK's `RTE_MBUF_DEFAULT_DATAROOM`.
pub const DEFAULT_DATAROOM: usize = 2048;

/// A packet buffer on the heap.
#[derive(Clone, PartialEq, Eq)]
pub struct MemBuf {
    storage: Box<[u8]>,
    head: usize,
    len: usize,
    rss: Option<u32>,
}

impl std::fmt::Debug for MemBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemBuf").field("len", &self.len).field("head", &self.head).field("data", &self.data()).finish()
    }
}

impl MemBuf {
    /// An empty buffer with the default headroom and data room.
    pub fn new() -> Self {
        Self::with_room(DEFAULT_HEADROOM, DEFAULT_DATAROOM)
    }

    /// An empty buffer with the given headroom and data room.
    pub fn with_room(headroom: usize, dataroom: usize) -> Self {
        MemBuf { storage: vec![0; headroom + dataroom].into_boxed_slice(), head: headroom, len: 0, rss: None }
    }

    /// A buffer holding a copy of `frame` (default headroom). Frames longer than the
    /// data room get a data room of their own length.
    pub fn from_frame(frame: &[u8]) -> Self {
        let mut b = Self::with_room(DEFAULT_HEADROOM, DEFAULT_DATAROOM.max(frame.len()));
        b.storage[b.head..b.head + frame.len()].copy_from_slice(frame);
        b.len = frame.len();
        b
    }

    /// Sets the RSS hash reported by [`PacketBuf::rss_hash`], as a NIC would.
    pub fn set_rss_hash(&mut self, hash: Option<u32>) {
        self.rss = hash;
    }

    /// Resets to an empty buffer with the default headroom, keeping the storage.
    pub fn reset(&mut self) {
        self.head = DEFAULT_HEADROOM.min(self.storage.len());
        self.len = 0;
        self.rss = None;
    }
}

impl Default for MemBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf for MemBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.head..self.head + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.head..self.head + self.len]
    }
    fn len(&self) -> usize {
        self.len
    }
    fn headroom(&self) -> usize {
        self.head
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.head - self.len
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head {
            return None;
        }
        self.head -= n;
        self.len += n;
        Some(self.data_mut())
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        self.len += n;
        Some(self.data_mut())
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }
    fn rss_hash(&self) -> Option<u32> {
        self.rss
    }
}

/// A pool of [`MemBuf`]s with an optional limit on outstanding allocations, so tests
/// can exercise pool exhaustion. Recycled buffers are reused.
///
/// The limit can be changed while a worker owns the pool, through a [`PoolLimit`]
/// ([`MemPool::limit_handle`]): setting it to 0 empties the pool, raising it is buffers
/// coming back (as DPDK's mbufs return when the NIC has sent them).
#[derive(Debug, Default)]
pub struct MemPool {
    free: Vec<MemBuf>,
    limit: PoolLimit,
    allocated: usize,
}

/// A shared handle on a [`MemPool`]'s limit: how many buffers it hands out in total
/// (`None`: no limit).
#[derive(Debug, Clone)]
pub struct PoolLimit(Arc<AtomicUsize>);

impl PoolLimit {
    /// `usize::MAX` stands for "no limit".
    const NONE: usize = usize::MAX;

    /// Sets the limit; `None` removes it.
    pub fn set(&self, limit: Option<usize>) {
        self.0.store(limit.unwrap_or(Self::NONE), Ordering::Relaxed);
    }

    /// The limit now.
    pub fn get(&self) -> Option<usize> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&l| l != Self::NONE)
    }
}

impl Default for PoolLimit {
    fn default() -> Self {
        PoolLimit(Arc::new(AtomicUsize::new(Self::NONE)))
    }
}

impl MemPool {
    /// A pool without a limit.
    pub fn new() -> Self {
        Self::default()
    }
    /// A pool that hands out at most `limit` buffers in total.
    pub fn with_limit(limit: usize) -> Self {
        let pool = Self::default();
        pool.limit.set(Some(limit));
        pool
    }
    /// A handle that changes this pool's limit later, e.g. after a worker took the pool.
    pub fn limit_handle(&self) -> PoolLimit {
        self.limit.clone()
    }
    /// Returns a buffer to the pool for reuse.
    pub fn recycle(&mut self, mut buf: MemBuf) {
        buf.reset();
        self.free.push(buf);
    }
    /// How many buffers this pool has handed out so far.
    pub fn allocated(&self) -> usize {
        self.allocated
    }
}

impl PacketPool for MemPool {
    type Buf = MemBuf;
    fn alloc(&mut self) -> Option<MemBuf> {
        if self.limit.get().is_some_and(|l| self.allocated >= l) {
            return None;
        }
        self.allocated += 1;
        Some(self.free.pop().unwrap_or_default())
    }
}

/// One RX/TX queue pair of an in-memory port. Tests push frames with [`MemQueue::inject`]
/// and read what the data path sent with [`MemQueue::take_tx`].
#[derive(Debug)]
pub struct MemQueue {
    rx: VecDeque<MemBuf>,
    tx: Vec<MemBuf>,
    tx_room: Option<usize>,
    mac: [u8; 6],
    stats: PortStats,
}

impl MemQueue {
    /// A queue pair for a port with MAC address `mac`.
    pub fn new(mac: [u8; 6]) -> Self {
        MemQueue { rx: VecDeque::new(), tx: Vec::new(), tx_room: None, mac, stats: PortStats::default() }
    }
    /// Queues a frame for the next [`PortQueue::rx_burst`].
    pub fn inject(&mut self, frame: &[u8]) {
        self.rx.push_back(MemBuf::from_frame(frame));
    }
    /// Queues a ready buffer for the next [`PortQueue::rx_burst`].
    pub fn inject_buf(&mut self, buf: MemBuf) {
        self.rx.push_back(buf);
    }
    /// Frames waiting to be received.
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }
    /// Takes every frame sent so far.
    pub fn take_tx(&mut self) -> Vec<MemBuf> {
        std::mem::take(&mut self.tx)
    }
    /// Limits how many more packets TX accepts (`None`: unlimited), to simulate a full
    /// NIC ring.
    pub fn set_tx_room(&mut self, room: Option<usize>) {
        self.tx_room = room;
    }
}

impl PortQueue for MemQueue {
    type Buf = MemBuf;
    fn rx_burst(&mut self, out: &mut Burst<MemBuf>) -> usize {
        let n = out.remaining_capacity().min(self.rx.len());
        for b in self.rx.drain(..n) {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += b.len() as u64;
            out.push(b);
        }
        n
    }
    fn tx_burst(&mut self, pkts: &mut Burst<MemBuf>) -> usize {
        let n = self.tx_room.map_or(pkts.len(), |r| r.min(pkts.len()));
        for b in pkts.drain(..n) {
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += b.len() as u64;
            self.tx.push(b);
        }
        if let Some(r) = self.tx_room.as_mut() {
            *r -= n;
        }
        n
    }
}

impl PortInfo for MemQueue {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn link(&self) -> LinkStatus {
        LinkStatus { up: true, speed_mbps: 10_000, full_duplex: true }
    }
    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::BURST_SIZE;

    #[test]
    fn prepend_adj_append_trim_follow_mbuf_rules() {
        let mut b = MemBuf::from_frame(&[1, 2, 3, 4]);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM);
        let f = b.prepend(2).unwrap();
        f[0] = 9;
        f[1] = 8;
        assert_eq!(b.data(), &[9, 8, 1, 2, 3, 4]);
        assert!(b.adj(3));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(!b.adj(4), "adj past the end must fail");
        assert_eq!(b.data(), &[2, 3, 4]);
        b.append(1).unwrap()[3] = 5;
        assert_eq!(b.data(), &[2, 3, 4, 5]);
        assert!(b.trim(2));
        assert_eq!(b.data(), &[2, 3]);
        assert!(!b.trim(3));
        assert!(b.prepend(DEFAULT_HEADROOM + 10).is_none());
        assert!(b.set_len(10));
        assert_eq!(b.len(), 10);
        assert!(!b.set_len(100_000));
    }

    #[test]
    fn pool_limit_and_tx_refusal() {
        let mut pool = MemPool::with_limit(1);
        assert!(pool.alloc().is_some());
        assert!(pool.alloc().is_none());
        // Buffers come back: the limit is raised through a handle, then lifted.
        let limit = pool.limit_handle();
        limit.set(Some(2));
        assert_eq!(limit.get(), Some(2));
        assert!(pool.alloc().is_some());
        assert!(pool.alloc().is_none());
        limit.set(None);
        assert!(pool.alloc().is_some());
        limit.set(Some(0));
        assert!(pool.alloc().is_none());

        let mut q = MemQueue::new([2, 0, 0, 0, 0, 1]);
        for i in 0..40u8 {
            q.inject(&[i; 60]);
        }
        let mut burst = Burst::new();
        assert_eq!(q.rx_burst(&mut burst), BURST_SIZE);
        q.set_tx_room(Some(5));
        assert_eq!(q.tx_burst(&mut burst), 5);
        assert_eq!(burst.len(), BURST_SIZE - 5);
        assert_eq!(q.take_tx().len(), 5);
        assert_eq!(q.stats().tx_packets, 5);
    }
}
