//! The traits every driver implements and the data path is generic over.

use arrayvec::ArrayVec;

/// Packets moved per RX or TX call, as in DPDK's l3fwd (`MAX_PKT_BURST`).
pub const BURST_SIZE: usize = 32;

/// A batch of packets on the stack: what one RX call returns and one TX call sends.
/// Fixed capacity, so building one never allocates.
pub type Burst<B> = ArrayVec<B, BURST_SIZE>;

/// What the NIC already checked on receive (DPDK's `RTE_MBUF_F_RX_*_CKSUM_*` flags).
///
/// `None` means "not checked": software must verify if it cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxOffload {
    /// IPv4 header checksum verdict from the NIC: `Some(true)` good, `Some(false)` bad.
    pub ip_csum_ok: Option<bool>,
    /// TCP/UDP checksum verdict from the NIC.
    pub l4_csum_ok: Option<bool>,
}

/// One packet buffer owned by the data path: a contiguous frame with room to grow at
/// both ends. Dropping it returns it to its pool.
///
/// The operations mirror DPDK's `rte_pktmbuf_{prepend,adj,append,trim}`; failures
/// return `None`/`false` and leave the buffer unchanged.
pub trait PacketBuf: Send + Sized {
    /// The frame's bytes, starting at the Ethernet header.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for a zero-length frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Free bytes in front of the frame.
    fn headroom(&self) -> usize;
    /// Free bytes after the frame.
    fn tailroom(&self) -> usize;
    /// Grows the frame by `n` bytes at the front; returns the whole frame, whose first
    /// `n` bytes are the new (uninitialised-content) space. `None` if headroom is short.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front. `false` (and no change) if `n > len`.
    fn adj(&mut self, n: usize) -> bool;
    /// Grows the frame by `n` bytes at the end; returns the whole frame.
    /// `None` if tailroom is short.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the end. `false` (and no change) if `n > len`.
    fn trim(&mut self, n: usize) -> bool;
    /// Sets the frame length to exactly `len` bytes, growing or shrinking at the end.
    /// `false` (and no change) when it does not fit.
    fn set_len(&mut self, len: usize) -> bool {
        let cur = self.len();
        if len >= cur {
            self.append(len - cur).is_some()
        } else {
            self.trim(cur - len)
        }
    }
    /// The RSS hash the NIC computed on receive, if any.
    fn rss_hash(&self) -> Option<u32>;
    /// Receive checksum verdicts from the NIC.
    fn rx_offload(&self) -> RxOffload {
        RxOffload::default()
    }
}

/// A source of fresh packet buffers (for ARP requests, replies built from scratch,
/// gratuitous ARP). One per worker; allocation may fail when the pool is exhausted.
pub trait PacketPool {
    /// The buffer type this pool hands out.
    type Buf: PacketBuf;
    /// A new empty buffer (length 0, full headroom), or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<Self::Buf>;
}

/// One worker's receive and transmit queue on one port. Only that worker touches it,
/// so no locking is needed.
pub trait PortQueue {
    /// The buffer type this queue receives and sends.
    type Buf: PacketBuf;
    /// Receives up to `out.remaining_capacity()` packets, appending them to `out`.
    /// Returns how many were received.
    fn rx_burst(&mut self, out: &mut Burst<Self::Buf>) -> usize;
    /// Sends packets from the front of `pkts`, removing those the driver accepted.
    /// Returns how many were sent; what is left in `pkts` was refused and stays the
    /// caller's to retry or drop (and count).
    fn tx_burst(&mut self, pkts: &mut Burst<Self::Buf>) -> usize;
}

/// Link state as the port reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Port counters as the driver keeps them (DPDK's `rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the NIC dropped because no RX descriptor was free.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// What the control plane can ask of a port: identity, link and counters.
pub trait PortInfo {
    /// The port's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Current link state.
    fn link(&self) -> LinkStatus;
    /// Current counters.
    fn stats(&self) -> PortStats;
}
