//! The prober's network device: IP packets in two bounded in-memory queues.
//!
//! smoltcp sees an IP-medium device ([`Medium::Ip`]): no Ethernet header, no ARP. What
//! it transmits goes into the `tx` queue, for the data path to route and send out a
//! DPDK port; what the data path punts to the control plane for the prober goes into
//! the `rx` queue. Both queues are bounded: a peer that floods the prober fills `rx` and
//! the rest is dropped (and counted), so a poll never has unbounded work.

use std::collections::VecDeque;

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Most packets waiting in either queue.
pub const QUEUE_LIMIT: usize = 1024;

/// An IP-medium device backed by two bounded queues of IP packets.
#[derive(Debug)]
pub struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
    /// Packets dropped because `rx` was full.
    pub rx_dropped: u64,
}

impl QueueDevice {
    /// An empty device with IP MTU `mtu`.
    pub fn new(mtu: usize) -> Self {
        QueueDevice { rx: VecDeque::new(), tx: VecDeque::new(), mtu, rx_dropped: 0 }
    }

    /// Queues a received IP packet for smoltcp; false (and counted) if the queue is full.
    pub fn push_rx(&mut self, packet: Vec<u8>) -> bool {
        if self.rx.len() >= QUEUE_LIMIT {
            self.rx_dropped += 1;
            return false;
        }
        self.rx.push_back(packet);
        true
    }

    /// The oldest IP packet smoltcp transmitted, if any.
    pub fn pop_tx(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// Packets waiting to be received by smoltcp.
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.tx.len() >= QUEUE_LIMIT {
            return None;
        }
        let packet = self.rx.pop_front()?;
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        (self.tx.len() < QUEUE_LIMIT).then_some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = Some(64);
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// A received packet, handed to smoltcp.
#[derive(Debug)]
pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for one transmitted packet.
#[derive(Debug)]
pub struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        self.0.push_back(packet);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_bounded() {
        let mut d = QueueDevice::new(1500);
        for _ in 0..QUEUE_LIMIT {
            assert!(d.push_rx(vec![0x45]));
        }
        assert!(!d.push_rx(vec![0x45]));
        assert_eq!((d.rx_len(), d.rx_dropped), (QUEUE_LIMIT, 1));
        assert!(d.pop_tx().is_none());
        assert_eq!(d.capabilities().medium, Medium::Ip);
    }
}
