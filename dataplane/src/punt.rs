//! Punt rings: IP packets between the workers and the control plane's health prober.
//!
//! Contract:
//! * Two directions. **In** (worker → control plane): each worker has its own ring, so
//!   each ring has one producer; a worker copies a probe reply's IP packet (Ethernet
//!   header stripped) into a preallocated [`PuntBuf`] and queues it. **Out** (control
//!   plane → worker): one ring to worker 0 carries the prober's IP packets; the worker
//!   routes each one, resolves its next hop through its neighbour table and sends it
//!   from the port the route names.
//! * No allocation on the data path: every [`PuntBuf`] is allocated when the rings are
//!   built ([`probe_links`]) and circulates between a ring's `free` and `full` queues.
//!   A worker that finds no free buffer drops the packet (`probe_ring_full`); the
//!   control plane that finds none drops its packet and counts it
//!   ([`ProbeEnd::tx_dropped`]).
//! * What is punted ([`ProbeMatch::matches`]): packets to a port's own address that are
//!   TCP or UDP to a port in the probe source-port range, ICMP echo replies whose
//!   identifier is in the range, and ICMP destination-unreachable messages quoting a
//!   TCP/UDP packet sent from a port in the range. The range sits on the ports' own
//!   addresses, where nothing else listens (Full-NAT's local ports are on the local
//!   addresses), so these packets would otherwise be dropped (`l4_no_service`,
//!   `icmp_unhandled`); punting them never touches a service, its counters or the
//!   connection table. IPv6 likewise ([`ProbeMatch::matches6`]): TCP/UDP to the range,
//!   ICMPv6 echo replies and destination unreachables, to a port's own IPv6 address
//!   (link-local included).

use std::ops::RangeInclusive;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::wire::icmpv6::{ICMPV6_DEST_UNREACH, ICMPV6_ECHO_REPLY};
use crate::wire::{Ipv6Packet, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

/// Largest IP packet a punt buffer holds (an Ethernet MTU and then some); longer
/// packets are dropped (`probe_too_long`).
pub const PUNT_BUF_LEN: usize = 2048;

/// The default probe source-port range on the ports' own addresses (rvsd's `[dataplane]
/// probe_ports`).
pub const DEFAULT_PROBE_PORTS: RangeInclusive<u16> = 61000..=61999;

/// Buffers per ring (each [`PUNT_BUF_LEN`] bytes): enough for a burst of replies to a
/// thousand probes.
pub const DEFAULT_RING_CAPACITY: usize = 1024;

/// Outbound probe packets a worker sends per poll at most.
pub const TX_PER_POLL: usize = 32;

/// One preallocated packet buffer.
#[derive(Debug)]
pub struct PuntBuf {
    len: usize,
    /// What the ring's user attaches to the packet: the port it arrived on or leaves by
    /// (HA rings, [`crate::ha`]); 0 on the probe rings.
    tag: u16,
    data: Box<[u8; PUNT_BUF_LEN]>,
}

impl PuntBuf {
    /// An empty buffer (allocates; only when rings are built).
    fn new() -> Self {
        PuntBuf { len: 0, tag: 0, data: Box::new([0; PUNT_BUF_LEN]) }
    }

    /// The packet held.
    pub fn packet(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Replaces the content with `packet`; false (content emptied) if it is longer than
    /// [`PUNT_BUF_LEN`].
    pub fn fill(&mut self, packet: &[u8]) -> bool {
        match self.data.get_mut(..packet.len()) {
            Some(d) => {
                d.copy_from_slice(packet);
                self.len = packet.len();
                true
            }
            None => {
                self.len = 0;
                false
            }
        }
    }
}

/// One direction: filled buffers travel in `full`, empty ones come back in `free`.
#[derive(Debug)]
pub(crate) struct Ring {
    full: ArrayQueue<PuntBuf>,
    free: ArrayQueue<PuntBuf>,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        let ring = Ring { full: ArrayQueue::new(capacity), free: ArrayQueue::new(capacity) };
        for _ in 0..capacity {
            // Cannot fail: `free` holds exactly `capacity`.
            let _ = ring.free.push(PuntBuf::new());
        }
        Arc::new(ring)
    }

    /// Copies `packet` into a free buffer and queues it. Err: no free buffer (the
    /// consumer is behind) or the packet is too long.
    fn send(&self, packet: &[u8]) -> Result<(), SendError> {
        self.send_tagged(0, packet)
    }

    /// [`Ring::send`] with a tag the receiver gets back ([`Ring::recv_tagged`]).
    pub(crate) fn send_tagged(&self, tag: u16, packet: &[u8]) -> Result<(), SendError> {
        let mut b = self.free.pop().ok_or(SendError::Full)?;
        if !b.fill(packet) {
            let _ = self.free.push(b);
            return Err(SendError::TooLong);
        }
        b.tag = tag;
        // Cannot fail: at most `capacity` buffers exist.
        let _ = self.full.push(b);
        Ok(())
    }

    /// Hands the oldest queued packet to `f`, then recycles its buffer.
    fn recv<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.recv_tagged(|_, p| f(p))
    }

    /// Hands the oldest queued packet and its tag to `f`, then recycles its buffer.
    pub(crate) fn recv_tagged<R>(&self, f: impl FnOnce(u16, &[u8]) -> R) -> Option<R> {
        let b = self.full.pop()?;
        let r = f(b.tag, b.packet());
        let _ = self.free.push(b);
        Some(r)
    }
}

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No free buffer: the other side has not caught up.
    Full,
    /// Longer than [`PUNT_BUF_LEN`].
    TooLong,
}

/// Which packets to our port addresses belong to the prober: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeMatch {
    ports: RangeInclusive<u16>,
}

impl ProbeMatch {
    /// Matches replies to the source ports (and ICMP identifiers) in `ports`.
    pub fn new(ports: RangeInclusive<u16>) -> Self {
        ProbeMatch { ports }
    }

    /// The range.
    pub fn ports(&self) -> &RangeInclusive<u16> {
        &self.ports
    }

    fn port_at(&self, b: &[u8], at: usize) -> bool {
        match b.get(at..at + 2) {
            Some(p) => self.ports.contains(&u16::from_be_bytes([p[0], p[1]])),
            None => false,
        }
    }

    /// Whether an IPv4 packet with `protocol` and `payload` (what follows its header),
    /// already known to be addressed to a port's own address, is for the prober. Never
    /// panics on short input: anything truncated does not match.
    pub fn matches(&self, protocol: u8, payload: &[u8]) -> bool {
        match protocol {
            // Destination port.
            IPPROTO_TCP | IPPROTO_UDP => self.port_at(payload, 2),
            IPPROTO_ICMP => match payload.first() {
                // Echo reply: identifier.
                Some(0) => self.port_at(payload, 4),
                // Destination unreachable: the quoted header's source port.
                Some(3) => {
                    let Some(quoted) = payload.get(8..) else { return false };
                    let Some(&vihl) = quoted.first() else { return false };
                    let ihl = usize::from(vihl & 0x0f) * 4;
                    let proto = quoted.get(9).copied();
                    vihl >> 4 == 4
                        && ihl >= 20
                        && matches!(proto, Some(IPPROTO_TCP | IPPROTO_UDP))
                        && self.port_at(quoted, ihl)
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// [`ProbeMatch::matches`] for an IPv6 packet to a port's own address: `next_header`
    /// is the upper layer's protocol after the extension-header walk and `payload` what
    /// follows the last header. TCP or UDP to a port in the range, an ICMPv6 echo reply
    /// (type 129) whose identifier is in it, and an ICMPv6 destination unreachable
    /// (type 1) quoting a TCP/UDP packet sent from a port in it (the quoted IPv6 header
    /// without extension headers, which the prober never sends). Never panics on short
    /// input.
    pub fn matches6(&self, next_header: u8, payload: &[u8]) -> bool {
        match next_header {
            IPPROTO_TCP | IPPROTO_UDP => self.port_at(payload, 2),
            IPPROTO_ICMPV6 => match payload.first() {
                Some(&ICMPV6_ECHO_REPLY) => self.port_at(payload, 4),
                Some(&ICMPV6_DEST_UNREACH) => {
                    let Some(quoted) = payload.get(8..) else { return false };
                    quoted.first().is_some_and(|v| v >> 4 == 6)
                        && matches!(quoted.get(6), Some(&(IPPROTO_TCP | IPPROTO_UDP)))
                        && self.port_at(quoted, Ipv6Packet::<&[u8]>::HEADER_LEN)
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// A worker's end of the probe rings: where it punts replies, and (worker 0) where it
/// takes the prober's packets to send.
#[derive(Debug)]
pub struct ProbeLink {
    matcher: ProbeMatch,
    rx: Arc<Ring>,
    tx: Option<Arc<Ring>>,
}

impl ProbeLink {
    /// Which packets to punt.
    #[inline]
    pub fn matcher(&self) -> &ProbeMatch {
        &self.matcher
    }

    /// Queues a reply (an IP packet) for the prober.
    #[inline]
    pub fn punt(&self, packet: &[u8]) -> Result<(), SendError> {
        self.rx.send(packet)
    }

    /// Hands the next packet the prober wants sent to `f`, if this worker sends them
    /// and one is waiting.
    #[inline]
    pub fn take_outbound<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.tx.as_ref()?.recv(f)
    }
}

/// The control plane's end: replies from every worker, and the outbound ring.
#[derive(Debug)]
pub struct ProbeEnd {
    rx: Vec<Arc<Ring>>,
    tx: Arc<Ring>,
    next: usize,
    tx_dropped: u64,
}

impl ProbeEnd {
    /// The next punted packet, copied out (round robin over the workers' rings).
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        for _ in 0..self.rx.len() {
            let i = self.next % self.rx.len().max(1);
            self.next = self.next.wrapping_add(1);
            if let Some(p) = self.rx.get(i).and_then(|r| r.recv(<[u8]>::to_vec)) {
                return Some(p);
            }
        }
        None
    }

    /// Queues an IP packet for the data path to send; false (counted) if the ring is
    /// full or the packet too long.
    pub fn send(&mut self, packet: &[u8]) -> bool {
        let ok = self.tx.send(packet).is_ok();
        if !ok {
            self.tx_dropped += 1;
        }
        ok
    }

    /// Packets [`ProbeEnd::send`] could not queue.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_dropped
    }
}

/// Builds the rings for `workers` workers, `capacity` buffers per ring, punting replies
/// to `ports`: element `i` of the links belongs to worker `i`; worker 0 sends the
/// prober's packets.
pub fn probe_links(workers: usize, capacity: usize, ports: RangeInclusive<u16>) -> (Vec<ProbeLink>, ProbeEnd) {
    let tx = Ring::new(capacity);
    let rings: Vec<Arc<Ring>> = (0..workers.max(1)).map(|_| Ring::new(capacity)).collect();
    let links = rings
        .iter()
        .enumerate()
        .map(|(i, r)| ProbeLink {
            matcher: ProbeMatch::new(ports.clone()),
            rx: Arc::clone(r),
            tx: (i == 0).then(|| Arc::clone(&tx)),
        })
        .collect();
    (links, ProbeEnd { rx: rings, tx, next: 0, tx_dropped: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_tcp_udp_echo_reply_and_unreachable_in_range_only() {
        let m = ProbeMatch::new(61000..=61999);
        let tcp = [0, 80, 0xee, 0x48, 0, 0, 0, 0]; // dport 61000
        assert!(m.matches(IPPROTO_TCP, &tcp));
        assert!(m.matches(IPPROTO_UDP, &tcp));
        assert!(!m.matches(IPPROTO_TCP, &[0, 80, 0, 80]));
        assert!(!m.matches(IPPROTO_TCP, &[0, 80, 0xee]));
        let echo = [0, 0, 0, 0, 0xee, 0x49, 0, 1];
        assert!(m.matches(IPPROTO_ICMP, &echo));
        let request = [8, 0, 0, 0, 0xee, 0x49, 0, 1];
        assert!(!m.matches(IPPROTO_ICMP, &request));
        let mut unreach = vec![3, 3, 0, 0, 0, 0, 0, 0];
        let mut quoted = [0u8; 28];
        quoted[0] = 0x45;
        quoted[9] = IPPROTO_UDP;
        quoted[20..22].copy_from_slice(&61500u16.to_be_bytes());
        unreach.extend_from_slice(&quoted);
        assert!(m.matches(IPPROTO_ICMP, &unreach));
        unreach[8 + 20] = 0;
        assert!(!m.matches(IPPROTO_ICMP, &unreach));
        assert!(!m.matches(IPPROTO_ICMP, &unreach[..20]));
        assert!(!m.matches(IPPROTO_ICMP, &[]));
    }

    #[test]
    fn matches6_tcp_udp_echo_reply_and_unreachable_in_range_only() {
        let m = ProbeMatch::new(61000..=61999);
        let tcp = [0, 80, 0xee, 0x48, 0, 0, 0, 0]; // dport 61000
        assert!(m.matches6(IPPROTO_TCP, &tcp));
        assert!(m.matches6(IPPROTO_UDP, &tcp));
        assert!(!m.matches6(IPPROTO_TCP, &[0, 80, 0, 80]));
        assert!(!m.matches6(IPPROTO_TCP, &[0, 80, 0xee]));
        // An IPv4 protocol number is not ICMPv6.
        let echo = [129, 0, 0, 0, 0xee, 0x49, 0, 1];
        assert!(m.matches6(IPPROTO_ICMPV6, &echo));
        assert!(!m.matches6(IPPROTO_ICMP, &echo));
        let request = [128, 0, 0, 0, 0xee, 0x49, 0, 1];
        assert!(!m.matches6(IPPROTO_ICMPV6, &request));
        let mut unreach = vec![1, 4, 0, 0, 0, 0, 0, 0];
        let mut quoted = [0u8; 48];
        quoted[0] = 0x60;
        quoted[6] = IPPROTO_UDP;
        quoted[40..42].copy_from_slice(&61500u16.to_be_bytes());
        unreach.extend_from_slice(&quoted);
        assert!(m.matches6(IPPROTO_ICMPV6, &unreach));
        // Not an IPv6 header quoted, another protocol quoted, a port out of range, short.
        unreach[8] = 0x45;
        assert!(!m.matches6(IPPROTO_ICMPV6, &unreach));
        unreach[8] = 0x60;
        unreach[8 + 6] = IPPROTO_ICMPV6;
        assert!(!m.matches6(IPPROTO_ICMPV6, &unreach));
        unreach[8 + 6] = IPPROTO_TCP;
        assert!(m.matches6(IPPROTO_ICMPV6, &unreach));
        unreach[8 + 40] = 0;
        assert!(!m.matches6(IPPROTO_ICMPV6, &unreach));
        assert!(!m.matches6(IPPROTO_ICMPV6, &unreach[..48]));
        assert!(!m.matches6(IPPROTO_ICMPV6, &[]));
    }

    #[test]
    fn rings_recycle_buffers_and_refuse_when_full() {
        let (links, mut end) = probe_links(2, 2, DEFAULT_PROBE_PORTS);
        assert!(links[0].punt(b"one").is_ok());
        assert!(links[0].punt(b"two").is_ok());
        assert_eq!(links[0].punt(b"three"), Err(SendError::Full));
        assert!(links[1].punt(b"four").is_ok());
        let mut got = Vec::new();
        while let Some(p) = end.recv() {
            got.push(p);
        }
        got.sort();
        assert_eq!(got, [b"four".to_vec(), b"one".to_vec(), b"two".to_vec()]);
        assert!(links[0].punt(&[0; PUNT_BUF_LEN + 1]) == Err(SendError::TooLong));
        assert!(end.send(b"syn"));
        assert_eq!(links[1].take_outbound(<[u8]>::to_vec), None);
        assert_eq!(links[0].take_outbound(<[u8]>::to_vec), Some(b"syn".to_vec()));
        assert_eq!(links[0].take_outbound(<[u8]>::to_vec), None);
    }
}
