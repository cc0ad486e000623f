//! The neighbour cache of one worker, with pending queues for next hops being resolved,
//! and the cross-worker sync that keeps every worker's cache warm.
//!
//! One code path serves both families: [`NeighbourTable`] is generic over its key, an
//! [`Ipv4Addr`] (ARP, the default) or an [`std::net::Ipv6Addr`] (neighbour discovery,
//! [`super::nd`]); "ARP request" below reads "neighbour solicitation" for the IPv6 table,
//! and [`NeighUpdate`] carries either family.
//!
//! Contract:
//! * Fixed capacity, allocated at construction; no operation allocates afterwards (the
//!   index is a hash map reserved for the capacity, entries live in a preallocated slab,
//!   pending queues are inline `ArrayVec`s).
//! * Entries are [`NeighState::Static`] (configured; never expire, never overwritten by
//!   ARP, as `ip neigh ... nud permanent`), [`NeighState::Reachable`] (learned; expire
//!   `reachable_time` after the last confirmation) or [`NeighState::Incomplete`] (an ARP
//!   request is out; up to [`PENDING_MAX`] packets wait, the newest is dropped beyond that
//!   as `neigh_pending_full`; the request is re-sent every `retry_interval` and after
//!   `max_requests` unanswered requests the entry is removed and its packets are dropped
//!   as `neigh_unresolved`). This is DPVS's `neigh.c` state set, minus its STALE/PROBE.
//! * Learning follows RFC 826's "merge" rule: an ARP packet updates an existing entry for
//!   its sender whatever it targets, but creates a new entry only when it was addressed to
//!   us ([`NeighbourTable::learn`]'s `create`).
//! * Time is a monotonic `now` in nanoseconds passed by the caller, read once per burst.
//! * [`NeighbourTable::generation`] changes whenever an entry is created, removed, or
//!   changes its MAC, port or state (not when a confirmation only pushes its expiry back).
//!   A copy of a resolved MAC taken at generation `g` (the L4 engine's per-connection
//!   next hop) is therefore still what [`NeighbourTable::resolve`] would answer while the
//!   generation is `g`. It is a wrapping `u32` that skips 0, so 0 can mean "no copy": a
//!   stale copy could only match again after 2^32 − 1 changes with no packet of its
//!   connection in between (each packet re-validates it), far beyond any idle timeout.
//!
//! # Multi-worker sync
//!
//! ARP carries no L4 ports, so NIC RSS hashes every ARP packet to the same queue — queue
//! 0, i.e. worker 0 — while every worker needs the neighbours to transmit. A worker that
//! learns or refreshes a neighbour from the wire therefore publishes a [`NeighUpdate`] to
//! each peer through a bounded lock-free queue (crossbeam's `ArrayQueue`), one queue per
//! (from, to) pair so each has a single producer and a single consumer and never
//! contends; each worker drains its inboxes once per loop pass and applies the updates as
//! if it had seen the ARP itself (creating the entry, flushing its pending packets).
//! Updates received from peers are not re-published, so there are no loops. A full inbox
//! loses the update (counted `neigh_updates_lost`); the peer then resolves by itself,
//! sending its own ARP request, whose reply reaches worker 0 and is published again.
//! DPVS solves the same problem by broadcasting ARP replies to every lcore's ring
//! (`neigh_process_ring`); publishing only the learned (ip, mac) is smaller and needs no
//! packet copy.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use arrayvec::ArrayVec;

use super::IpHasherBuilder;
use crate::mesh::MeshLinks;
use crate::stats::DropReason;
use crate::types::PortId;
use crate::wire::MacAddr;

/// Packets that may wait on one unresolved neighbour (Linux's `unres_qlen` is per
/// neighbour too; DPVS uses a small list as well).
pub const PENDING_MAX: usize = 4;

/// Packets waiting for one neighbour.
pub type Pending<B> = ArrayVec<B, PENDING_MAX>;

/// Tuning of the neighbour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// Maximum number of entries (static ones included).
    pub capacity: usize,
    /// How long a learned entry stays valid after its last confirmation.
    pub reachable_time: Duration,
    /// Interval between ARP requests for an unresolved neighbour.
    pub retry_interval: Duration,
    /// ARP requests sent before giving up on a neighbour (at least 1).
    pub max_requests: u8,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            capacity: 1024,
            reachable_time: Duration::from_secs(300),
            retry_interval: Duration::from_secs(1),
            max_requests: 3,
        }
    }
}

/// The state of one neighbour.
#[derive(Debug)]
pub enum NeighState<B> {
    /// Configured; never expires and is never changed by ARP.
    Static(MacAddr),
    /// Learned from ARP; valid until `expires_at` (ns).
    Reachable {
        /// Its MAC address.
        mac: MacAddr,
        /// When it expires (monotonic ns).
        expires_at: u64,
    },
    /// ARP request sent, no answer yet.
    Incomplete {
        /// Packets waiting for the answer, oldest first.
        pending: Pending<B>,
        /// ARP requests sent so far.
        requests: u8,
        /// When to send the next request or give up (monotonic ns).
        next_retry: u64,
    },
}

/// One neighbour: where it is and what we know.
#[derive(Debug)]
pub struct NeighEntry<B, A = Ipv4Addr> {
    /// Its address (IPv4, or IPv6 for the neighbour discovery table).
    pub ip: A,
    /// The port it is reached on.
    pub port: PortId,
    /// What we know.
    pub state: NeighState<B>,
}

/// The outcome of [`NeighbourTable::resolve`].
#[derive(Debug)]
pub enum Resolve<B> {
    /// The MAC is known: set it and send the packet (given back).
    Ready(MacAddr, B),
    /// The packet waits behind an ARP request already out.
    Queued,
    /// A new entry was created with the packet waiting: send an ARP request now.
    QueuedSendRequest,
    /// The packet could not wait (given back, to be dropped with this reason).
    Dropped(B, DropReason),
}

/// What [`NeighbourTable::learn`] changed.
#[derive(Debug)]
pub struct Learned<B> {
    /// The neighbour's port.
    pub port: PortId,
    /// True when the entry was created, resolved or its MAC changed (not a mere refresh).
    pub changed: bool,
    /// Packets that were waiting for this neighbour, to send now, oldest first.
    pub pending: Pending<B>,
}

/// What the neighbour timers ask of the worker ([`NeighbourTable::expire`]).
#[derive(Debug)]
pub enum TimerEvent<B, A = Ipv4Addr> {
    /// Send another ARP request for `ip` on `port`.
    Resend {
        /// The neighbour.
        ip: A,
        /// Its port.
        port: PortId,
    },
    /// `ip` did not answer: drop these packets as `neigh_unresolved`.
    Unresolved {
        /// The neighbour.
        ip: A,
        /// Its abandoned packets.
        pending: Pending<B>,
    },
}

/// A neighbour learned by one worker, for its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighUpdate {
    /// The neighbour's address (either family: one sync path serves ARP and neighbour
    /// discovery).
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its port.
    pub port: PortId,
}

/// The table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("neighbour table full ({capacity} entries)")]
pub struct NeighTableFull {
    /// The table's capacity.
    pub capacity: usize,
}

/// A plain description of an entry, for tests and the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighInfo {
    /// See [`NeighState::Static`].
    Static(MacAddr),
    /// See [`NeighState::Reachable`].
    Reachable {
        /// Its MAC.
        mac: MacAddr,
        /// Expiry (ns).
        expires_at: u64,
    },
    /// See [`NeighState::Incomplete`].
    Incomplete {
        /// Packets waiting.
        pending: usize,
        /// Requests sent.
        requests: u8,
    },
}

/// Read access to resolved neighbours for code that is not generic over the packet
/// buffer (the L4 engine fills its per-connection next hops through it). `A` is the
/// address family's address: `Ipv4Addr` (ARP's table), or `Ipv6Addr` (neighbour
/// discovery's).
pub trait ResolvedNeighbours<A = Ipv4Addr> {
    /// The MAC of `ip` when resolved (static or reachable), as
    /// [`NeighbourTable::resolve`] would answer.
    fn resolved(&self, ip: A) -> Option<MacAddr>;
}

impl<B, A: Copy + Eq + Hash> ResolvedNeighbours<A> for NeighbourTable<B, A> {
    fn resolved(&self, ip: A) -> Option<MacAddr> {
        self.lookup(ip)
    }
}

/// The neighbour cache of one worker. See the module docs.
#[derive(Debug)]
pub struct NeighbourTable<B, A = Ipv4Addr> {
    slots: Vec<Option<NeighEntry<B, A>>>,
    free: Vec<u32>,
    index: HashMap<A, u32, IpHasherBuilder>,
    reachable_ns: u64,
    retry_ns: u64,
    max_requests: u8,
    parked: usize,
    generation: u32,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<B, A: Copy + Eq + Hash> NeighbourTable<B, A> {
    /// An empty table with room for `cfg.capacity` entries, all allocated now.
    pub fn new(cfg: NeighConfig) -> Self {
        let cap = cfg.capacity;
        let mut index = HashMap::with_hasher(IpHasherBuilder::new());
        // Twice the capacity: std's map (hashbrown) then never holds more than half its
        // buckets, and when removals leave tombstones it rehashes in place instead of
        // growing — so inserts never allocate.
        index.reserve(2 * cap + 2);
        NeighbourTable {
            slots: (0..cap).map(|_| None).collect(),
            free: (0..cap as u32).rev().collect(),
            index,
            reachable_ns: nanos(cfg.reachable_time),
            retry_ns: nanos(cfg.retry_interval),
            max_requests: cfg.max_requests.max(1),
            parked: 0,
            generation: 1,
        }
    }

    /// The generation of the table's contents (see the module docs): unchanged as long as
    /// every resolved neighbour keeps its MAC; never 0.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Marks a change of the contents (skipping 0, see the module docs).
    fn changed(&mut self) {
        self.generation = self.generation.wrapping_add(1).max(1);
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Packets waiting in pending queues, all neighbours together.
    pub fn parked(&self) -> usize {
        self.parked
    }

    fn entry_mut(&mut self, ip: A) -> Option<&mut NeighEntry<B, A>> {
        let i = *self.index.get(&ip)?;
        self.slots[i as usize].as_mut()
    }

    fn insert(&mut self, entry: NeighEntry<B, A>) -> Result<(), NeighTableFull> {
        let i = self.free.pop().ok_or(NeighTableFull { capacity: self.slots.len() })?;
        self.index.insert(entry.ip, i);
        self.slots[i as usize] = Some(entry);
        self.changed();
        Ok(())
    }

    /// Adds or replaces a static entry.
    pub fn add_static(&mut self, ip: A, mac: MacAddr, port: PortId) -> Result<(), NeighTableFull> {
        if let Some(e) = self.entry_mut(ip) {
            // Pending packets of a replaced incomplete entry are freed here; a static entry
            // is only added at start-up, before any traffic.
            let freed = match &e.state {
                NeighState::Incomplete { pending, .. } => pending.len(),
                _ => 0,
            };
            e.port = port;
            e.state = NeighState::Static(mac);
            self.parked -= freed;
            self.changed();
            return Ok(());
        }
        self.insert(NeighEntry { ip, port, state: NeighState::Static(mac) })
    }

    /// The MAC of `ip` when resolved (static or reachable).
    #[inline]
    pub fn lookup(&self, ip: A) -> Option<MacAddr> {
        let i = *self.index.get(&ip)?;
        match self.slots[i as usize].as_ref()?.state {
            NeighState::Static(mac) | NeighState::Reachable { mac, .. } => Some(mac),
            NeighState::Incomplete { .. } => None,
        }
    }

    /// A plain description of the entry for `ip`, with its port.
    pub fn info(&self, ip: A) -> Option<(PortId, NeighInfo)> {
        let i = *self.index.get(&ip)?;
        let e = self.slots[i as usize].as_ref()?;
        let info = match &e.state {
            NeighState::Static(mac) => NeighInfo::Static(*mac),
            NeighState::Reachable { mac, expires_at } => NeighInfo::Reachable { mac: *mac, expires_at: *expires_at },
            NeighState::Incomplete { pending, requests, .. } => {
                NeighInfo::Incomplete { pending: pending.len(), requests: *requests }
            }
        };
        Some((e.port, info))
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &NeighEntry<B, A>> {
        self.slots.iter().flatten()
    }

    /// Finds the MAC for sending `pkt` to neighbour `ip` on `port`; parks the packet when
    /// the neighbour is not resolved yet. See [`Resolve`].
    #[inline]
    pub fn resolve(&mut self, ip: A, port: PortId, pkt: B, now: u64) -> Resolve<B> {
        let retry_ns = self.retry_ns;
        if let Some(e) = self.entry_mut(ip) {
            return match &mut e.state {
                NeighState::Static(mac) | NeighState::Reachable { mac, .. } => Resolve::Ready(*mac, pkt),
                NeighState::Incomplete { pending, .. } => match pending.try_push(pkt) {
                    Ok(()) => {
                        self.parked += 1;
                        Resolve::Queued
                    }
                    Err(e) => Resolve::Dropped(e.element(), DropReason::NeighPendingFull),
                },
            };
        }
        let Some(i) = self.free.pop() else {
            return Resolve::Dropped(pkt, DropReason::NeighTableFull);
        };
        let mut pending = Pending::new();
        pending.push(pkt);
        let state = NeighState::Incomplete { pending, requests: 1, next_retry: now.saturating_add(retry_ns) };
        self.index.insert(ip, i);
        self.slots[i as usize] = Some(NeighEntry { ip, port, state });
        self.parked += 1;
        self.changed();
        Resolve::QueuedSendRequest
    }

    /// Records that `ip` is at `mac` on `port` (from an ARP packet, or a peer's update).
    ///
    /// RFC 826's merge rule: an existing entry is updated (its expiry pushed back, its
    /// pending packets released); a missing one is created only when `create` is true,
    /// i.e. when the ARP packet was addressed to us. Static entries are left alone.
    /// Returns `None` when nothing was recorded (static, or absent and not created, or
    /// the table is full).
    pub fn learn(&mut self, ip: A, mac: MacAddr, port: PortId, now: u64, create: bool) -> Option<Learned<B>> {
        let expires_at = now.saturating_add(self.reachable_ns);
        if let Some(e) = self.entry_mut(ip) {
            let (changed, pending) = match &mut e.state {
                NeighState::Static(_) => return None,
                NeighState::Reachable { mac: old, .. } => (*old != mac || e.port != port, Pending::new()),
                NeighState::Incomplete { pending, .. } => (true, std::mem::take(pending)),
            };
            e.port = port;
            e.state = NeighState::Reachable { mac, expires_at };
            self.parked -= pending.len();
            if changed {
                self.changed();
            }
            return Some(Learned { port, changed, pending });
        }
        if !create {
            return None;
        }
        self.insert(NeighEntry { ip, port, state: NeighState::Reachable { mac, expires_at } }).ok()?;
        Some(Learned { port, changed: true, pending: Pending::new() })
    }

    /// Runs the timers: removes expired reachable entries, re-sends ARP requests for
    /// incomplete ones that are due, and gives up on those that used all their requests.
    /// Calls `on_event` for what the worker must do.
    pub fn expire(&mut self, now: u64, mut on_event: impl FnMut(TimerEvent<B, A>)) {
        let (retry_ns, max_requests) = (self.retry_ns, self.max_requests);
        for i in 0..self.slots.len() {
            let Some(e) = self.slots[i].as_mut() else { continue };
            let remove = match &mut e.state {
                NeighState::Static(_) => false,
                NeighState::Reachable { expires_at, .. } => *expires_at <= now,
                NeighState::Incomplete { pending, requests, next_retry } => {
                    if *next_retry > now {
                        false
                    } else if *requests >= max_requests {
                        let pending = std::mem::take(pending);
                        self.parked -= pending.len();
                        on_event(TimerEvent::Unresolved { ip: e.ip, pending });
                        true
                    } else {
                        *requests += 1;
                        *next_retry = now.saturating_add(retry_ns);
                        on_event(TimerEvent::Resend { ip: e.ip, port: e.port });
                        false
                    }
                }
            };
            if remove {
                if let Some(e) = self.slots[i].take() {
                    self.index.remove(&e.ip);
                    self.free.push(i as u32);
                    self.changed();
                }
            }
        }
    }
}

/// One worker's ends of the neighbour-sync mesh ([`MeshLinks::mesh`]`(workers, capacity)`,
/// or [`MeshLinks::none`] for a single worker): it broadcasts what it learns to every peer
/// and drains what the peers learned. See the module docs.
pub type NeighSync = MeshLinks<NeighUpdate>;

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn table(cap: usize) -> NeighbourTable<u32> {
        NeighbourTable::new(NeighConfig { capacity: cap, ..NeighConfig::default() })
    }

    #[test]
    fn merge_rule_creates_only_when_addressed_to_us() {
        let mut t = table(8);
        assert!(t.learn(ip(1), MAC_A, PortId(0), 0, false).is_none());
        assert!(t.is_empty());
        let l = t.learn(ip(1), MAC_A, PortId(0), 0, true).unwrap();
        assert!(l.changed);
        assert_eq!(t.lookup(ip(1)), Some(MAC_A));
        let l = t.learn(ip(1), MAC_A, PortId(0), 10 * S, false).unwrap();
        assert!(!l.changed, "refresh is not a change");
        assert_eq!(t.info(ip(1)), Some((PortId(0), NeighInfo::Reachable { mac: MAC_A, expires_at: 310 * S })));
        assert!(t.learn(ip(1), MAC_B, PortId(0), 11 * S, false).unwrap().changed);
        assert_eq!(t.lookup(ip(1)), Some(MAC_B));
    }

    #[test]
    fn pending_queue_overflow_resolution_and_timeout() {
        let mut t = table(8);
        assert!(matches!(t.resolve(ip(2), PortId(1), 0, 0), Resolve::QueuedSendRequest));
        for p in 1..PENDING_MAX as u32 {
            assert!(matches!(t.resolve(ip(2), PortId(1), p, 0), Resolve::Queued));
        }
        assert!(matches!(t.resolve(ip(2), PortId(1), 99, 0), Resolve::Dropped(99, DropReason::NeighPendingFull)));
        assert_eq!(t.parked(), PENDING_MAX);
        let l = t.learn(ip(2), MAC_A, PortId(1), S / 2, false).expect("incomplete entry is merged");
        assert_eq!(l.pending.as_slice(), &[0, 1, 2, 3]);
        assert_eq!(t.parked(), 0);
        assert!(matches!(t.resolve(ip(2), PortId(1), 5, S), Resolve::Ready(MAC_A, 5)));

        // Unanswered: requests at 0, 1 s, 2 s; given up at 3 s.
        assert!(matches!(t.resolve(ip(3), PortId(0), 7, 0), Resolve::QueuedSendRequest));
        let mut events = Vec::new();
        for now in [S / 2, S, 2 * S, 3 * S] {
            t.expire(now, |e| events.push((now, e)));
        }
        let kinds: Vec<_> = events
            .iter()
            .map(|(now, e)| match e {
                TimerEvent::Resend { ip, .. } => (*now, *ip, 0),
                TimerEvent::Unresolved { ip, pending } => (*now, *ip, pending.len()),
            })
            .collect();
        assert_eq!(kinds, [(S, ip(3), 0), (2 * S, ip(3), 0), (3 * S, ip(3), 1)]);
        assert_eq!(t.info(ip(3)), None);
        assert_eq!(t.parked(), 0);
    }

    #[test]
    fn static_never_expires_and_is_not_overwritten_reachable_does() {
        let mut t = table(8);
        t.add_static(ip(9), MAC_A, PortId(0)).unwrap();
        t.learn(ip(8), MAC_A, PortId(0), 0, true).unwrap();
        assert!(t.learn(ip(9), MAC_B, PortId(0), 0, true).is_none());
        t.expire(299 * S, |_| panic!("no event"));
        assert_eq!(t.lookup(ip(8)), Some(MAC_A));
        t.expire(300 * S, |_| panic!("no event"));
        assert_eq!(t.lookup(ip(8)), None);
        t.expire(u64::MAX, |_| panic!("no event"));
        assert_eq!(t.lookup(ip(9)), Some(MAC_A));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn generation_moves_on_every_change_but_a_refresh() {
        let mut t = table(8);
        let g0 = t.generation();
        assert_ne!(g0, 0);
        t.learn(ip(1), MAC_A, PortId(0), 0, true).unwrap();
        let g1 = t.generation();
        assert_ne!(g1, g0, "new entry");
        t.learn(ip(1), MAC_A, PortId(0), S, false).unwrap();
        assert_eq!(t.generation(), g1, "a refresh keeps every copy valid");
        t.learn(ip(1), MAC_B, PortId(0), 2 * S, false).unwrap();
        let g2 = t.generation();
        assert_ne!(g2, g1, "new MAC");
        t.learn(ip(1), MAC_B, PortId(1), 3 * S, false).unwrap();
        let g3 = t.generation();
        assert_ne!(g3, g2, "new port");
        t.expire(1000 * S, |_| {});
        assert_ne!(t.generation(), g3, "removed");
        let g4 = t.generation();
        t.add_static(ip(2), MAC_A, PortId(0)).unwrap();
        assert_ne!(t.generation(), g4, "static entry");
        t.generation = u32::MAX;
        t.changed();
        assert_eq!(t.generation(), 1, "wraps past 0");
    }

    #[test]
    fn full_table_refuses_and_frees_slots_on_expiry() {
        let mut t = table(2);
        t.learn(ip(1), MAC_A, PortId(0), 0, true).unwrap();
        t.learn(ip(2), MAC_A, PortId(0), 0, true).unwrap();
        assert!(t.learn(ip(3), MAC_A, PortId(0), 0, true).is_none());
        assert!(matches!(t.resolve(ip(3), PortId(0), 1, 0), Resolve::Dropped(1, DropReason::NeighTableFull)));
        assert_eq!(t.add_static(ip(4), MAC_A, PortId(0)), Err(NeighTableFull { capacity: 2 }));
        t.expire(300 * S, |_| {});
        assert!(t.is_empty());
        assert!(t.learn(ip(3), MAC_A, PortId(0), 0, true).is_some());
    }

    #[test]
    fn mesh_delivers_to_every_peer() {
        let m = NeighSync::mesh(3, 2);
        let u = NeighUpdate { ip: ip(1).into(), mac: MAC_A, port: PortId(0) };
        assert_eq!(m[0].peers(), 2);
        assert_eq!(m[0].broadcast(u), 0);
        for (i, s) in m.iter().enumerate() {
            let mut got = ArrayVec::<NeighUpdate, 4>::new();
            s.recv(&mut got);
            let expected: &[NeighUpdate] = if i == 0 { &[] } else { &[u] };
            assert_eq!(got.as_slice(), expected);
        }
        m[1].broadcast(u);
        m[1].broadcast(u);
        assert_eq!(m[1].broadcast(u), 2, "both peers' inboxes from worker 1 are full");
    }
}
