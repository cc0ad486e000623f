//! A per-worker table of IP fragment trains, for IPv4 and IPv6, that lets every fragment
//! of a datagram follow its flow without reassembly.
//!
//! Only a train's first fragment (offset 0) carries the TCP/UDP ports; later fragments
//! have none, and may arrive first. The table is keyed by (source, destination,
//! identification, protocol) — the datagram's identity in RFC 791 and RFC 8200 §4.5 — and
//! records the ports once the first fragment is seen, so that every fragment can be
//! matched to the same flow (and so the same real server and the same owner worker).
//! Fragments that arrive before the first are held, as opaque handles (the worker's mbufs),
//! until it comes. No mode needs reassembly (the worker's fragment path says why, in
//! `worker::frag`): the L4 header, and so every byte NAT and Full-NAT rewrite, is in the
//! first fragment only.
//!
//! # Bounds
//!
//! * Fixed capacity, allocated once in [`FragTable::new`]: `trains` slots in buckets of
//!   [`WAYS`], each slot with inline room for [`MAX_FRAGS_PER_TRAIN`] byte ranges and
//!   [`MAX_HELD_PER_TRAIN`] held handles; nothing allocates afterwards.
//! * At most `max_held` handles held in the whole table (the memory bound on mbufs).
//! * A train lives at most `timeout_ns` after its first fragment; an expired train's held
//!   fragments are dropped ([`FragDrop::Timeout`]), lazily when its slot is wanted, or by
//!   the worker's timer through [`FragTable::expire_some`], which looks at a bounded
//!   number of slots per call.
//! * A datagram over 65535 bytes ([`FragDrop::Oversized`]), overlapping fragments
//!   (RFC 5722: the whole train is dropped, and its later fragments too,
//!   [`FragDrop::Overlap`]), inconsistent ends ([`FragDrop::Inconsistent`]) and too many
//!   fragments in one train ([`FragDrop::TooManyFragments`]) are refused.
//!
//! Every dropped fragment is counted under one [`FragDrop`] in [`FragTable::drops`] and
//! its handle handed back through [`FragSink::drop`] for the caller to free.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

use arrayvec::ArrayVec;

use crate::types::L4Proto;

/// Slots per hash bucket: a train goes into one of the `WAYS` slots of its bucket, so a
/// lookup looks at `WAYS` slots at most.
pub const WAYS: usize = 4;
/// Most fragments one train may have: a 65535-byte datagram cut for a 1500-byte MTU has 45.
pub const MAX_FRAGS_PER_TRAIN: usize = 64;
/// Most fragments of one train held while its first fragment has not arrived.
pub const MAX_HELD_PER_TRAIN: usize = 16;
/// The largest datagram a train may rebuild: the 16-bit total length (IPv4) or payload
/// length (IPv6).
pub const MAX_DATAGRAM: u32 = 65535;

/// The identity of a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification: IPv4's 16-bit field, or IPv6's 32-bit fragment header field.
    pub ident: u32,
    /// Upper-layer protocol (IPv4's protocol, IPv6's fragment header next header).
    pub protocol: u8,
}

/// The L4 ports of a train, read from its first fragment, and its L4 protocol (the same
/// as the identity's protocol but for an IPv6 datagram whose fragmentable part starts
/// with destination options: only the first fragment tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L4Ports {
    /// Source port.
    pub src: u16,
    /// Destination port.
    pub dst: u16,
    /// TCP or UDP.
    pub proto: L4Proto,
}

/// What the caller read from one fragment's IP header (and, for the first, its L4 header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of its data in the datagram, in bytes.
    pub offset: u16,
    /// Length of its data (the fragmentable part it carries), in bytes.
    pub len: u16,
    /// More fragments follow (IPv4 MF, IPv6 M).
    pub more: bool,
    /// The ports, for the first fragment (offset 0) only.
    pub ports: Option<L4Ports>,
}

/// Why the table dropped a fragment. Each variant is one counter in [`FragTable::drops`];
/// [`FragDrop::name`] is its drop-reason name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(usize)]
pub enum FragDrop {
    /// The fragment overlaps one already received, or belongs to a train that had an
    /// overlap (RFC 5722).
    Overlap,
    /// Offset plus length beyond 65535 bytes.
    Oversized,
    /// A second last fragment with another end, data past the last fragment's end, an
    /// empty fragment, a non-last fragment whose length is not a multiple of 8, or a
    /// first fragment without ports.
    Inconsistent,
    /// More fragments in one train than [`MAX_FRAGS_PER_TRAIN`].
    TooManyFragments,
    /// The train's first fragment never came in time (held fragments dropped at expiry).
    Timeout,
    /// No room: the train's bucket is full of live trains, or the table's or the train's
    /// held-fragment bound is reached.
    TableFull,
}

impl FragDrop {
    /// Every reason, in counter order.
    pub const ALL: [FragDrop; 6] = [
        FragDrop::Overlap,
        FragDrop::Oversized,
        FragDrop::Inconsistent,
        FragDrop::TooManyFragments,
        FragDrop::Timeout,
        FragDrop::TableFull,
    ];

    /// The stable snake_case drop-reason name the worker will count this under.
    pub const fn name(self) -> &'static str {
        match self {
            FragDrop::Overlap => "frag_overlap",
            FragDrop::Oversized => "frag_oversized",
            FragDrop::Inconsistent => "frag_inconsistent",
            FragDrop::TooManyFragments => "frag_too_many",
            FragDrop::Timeout => "frag_timeout",
            FragDrop::TableFull => "frag_table_full",
        }
    }
}

/// Each refusal is counted by the worker under the drop reason of the same name.
impl From<FragDrop> for crate::stats::DropReason {
    fn from(d: FragDrop) -> Self {
        use crate::stats::DropReason;
        match d {
            FragDrop::Overlap => DropReason::FragOverlap,
            FragDrop::Oversized => DropReason::FragOversized,
            FragDrop::Inconsistent => DropReason::FragInconsistent,
            FragDrop::TooManyFragments => DropReason::FragTooMany,
            FragDrop::Timeout => DropReason::FragTimeout,
            FragDrop::TableFull => DropReason::FragTableFull,
        }
    }
}

/// Where the table sends the fragments it decides about.
pub trait FragSink<H> {
    /// `handle`'s train has `ports`: forward it as part of that flow.
    fn forward(&mut self, handle: H, ports: L4Ports);
    /// `handle` is dropped for `reason` (already counted): free it.
    fn drop(&mut self, handle: H, reason: FragDrop);
}

/// One fragment waiting for its train's first fragment.
#[derive(Debug)]
struct Held<H> {
    handle: H,
}

/// One train's state.
#[derive(Debug)]
struct Train<H> {
    key: FragKey,
    /// When the first fragment of the train (in arrival order) came.
    born_ns: u64,
    ports: Option<L4Ports>,
    /// End of the datagram, once the last fragment (M clear) came.
    end: Option<u32>,
    /// Bytes received so far (ranges never overlap, so the train is complete when this
    /// equals `end`).
    received: u32,
    /// Byte ranges received, `[start, end)`.
    ranges: ArrayVec<(u32, u32), MAX_FRAGS_PER_TRAIN>,
    held: ArrayVec<Held<H>, MAX_HELD_PER_TRAIN>,
    /// An overlap was seen: drop everything of this train until it expires.
    poisoned: bool,
}

/// The per-worker fragment table, generic over the handle type `H` of a held fragment
/// (the worker's mbuf; anything in tests). See the module docs for its bounds.
#[derive(Debug)]
pub struct FragTable<H> {
    slots: Vec<Option<Train<H>>>,
    buckets: usize,
    hasher: RandomState,
    timeout_ns: u64,
    max_held: usize,
    held: usize,
    live: usize,
    drops: [u64; FragDrop::ALL.len()],
    completed: u64,
    timed_out: u64,
    /// The next slot [`FragTable::expire_some`] looks at.
    sweep: usize,
}

impl<H> FragTable<H> {
    /// A table with room for `trains` trains (rounded up to a multiple of [`WAYS`], at
    /// least one bucket), holding at most `max_held` fragments, whose trains expire
    /// `timeout_ns` after they start. All memory is allocated here.
    pub fn new(trains: usize, max_held: usize, timeout_ns: u64) -> Self {
        let buckets = trains.div_ceil(WAYS).max(1);
        let mut slots = Vec::with_capacity(buckets * WAYS);
        slots.resize_with(buckets * WAYS, || None);
        FragTable {
            slots,
            buckets,
            hasher: RandomState::new(),
            timeout_ns,
            max_held,
            held: 0,
            live: 0,
            drops: [0; FragDrop::ALL.len()],
            completed: 0,
            timed_out: 0,
            sweep: 0,
        }
    }

    /// How many trains the table can track at once.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Trains being tracked now.
    pub fn live_trains(&self) -> usize {
        self.live
    }

    /// Fragments held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Fragments dropped for `reason` so far.
    pub fn drops(&self, reason: FragDrop) -> u64 {
        self.drops[reason as usize]
    }

    /// Trains whose every byte arrived (and were then forgotten).
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Trains forgotten before every byte arrived (timed out, whether or not they held
    /// fragments at the time; [`FragDrop::Timeout`] counts the fragments dropped with them).
    pub fn timed_out(&self) -> u64 {
        self.timed_out
    }

    /// The ports of `key`'s train, if its first fragment has been seen and it is alive.
    pub fn ports(&self, key: &FragKey, now_ns: u64) -> Option<L4Ports> {
        let b = self.bucket(key);
        self.slots[b..b + WAYS]
            .iter()
            .flatten()
            .find(|t| t.key == *key && !self.expired(t, now_ns) && !t.poisoned)
            .and_then(|t| t.ports)
    }

    /// Takes in one fragment of `key`'s datagram with its `handle`. The handle goes to
    /// `sink` — forwarded with the train's ports, or dropped with a reason — now, or held
    /// until the train's first fragment comes (then forwarded with it) or the train
    /// expires (then dropped). Any held fragment the first one releases is forwarded
    /// before it.
    pub fn accept(&mut self, now_ns: u64, key: FragKey, frag: Fragment, handle: H, sink: &mut impl FragSink<H>) {
        let start = u32::from(frag.offset);
        let end = start + u32::from(frag.len);
        let bad = if end > MAX_DATAGRAM {
            Some(FragDrop::Oversized)
        } else if frag.len == 0
            || (frag.more && !frag.len.is_multiple_of(8))
            || (frag.offset == 0) != frag.ports.is_some()
        {
            Some(FragDrop::Inconsistent)
        } else {
            None
        };
        if let Some(reason) = bad {
            return self.drop_one(handle, reason, sink);
        }
        let Some(i) = self.find_or_insert(&key, now_ns, sink) else {
            return self.drop_one(handle, FragDrop::TableFull, sink);
        };
        let train = self.slots[i].as_mut().expect("find_or_insert returns an occupied slot");
        if train.poisoned {
            return self.drop_one(handle, FragDrop::Overlap, sink);
        }
        if train.ranges.iter().any(|&(s, e)| start < e && s < end) {
            // RFC 5722: the whole datagram goes, and its later fragments too.
            let train = self.slots[i].as_mut().expect("occupied");
            train.poisoned = true;
            let held = std::mem::take(&mut train.held);
            self.held -= held.len();
            self.drops[FragDrop::Overlap as usize] += held.len() as u64;
            for h in held {
                sink.drop(h.handle, FragDrop::Overlap);
            }
            return self.drop_one(handle, FragDrop::Overlap, sink);
        }
        let known_end = train.end;
        let past_end = known_end.is_some_and(|e| end > e || (!frag.more && end != e));
        if past_end || (!frag.more && train.ranges.iter().any(|&(_, e)| e > end)) {
            return self.drop_one(handle, FragDrop::Inconsistent, sink);
        }
        if train.ranges.is_full() {
            return self.drop_one(handle, FragDrop::TooManyFragments, sink);
        }
        let fresh = train.ranges.is_empty();
        let ports = match (train.ports, frag.ports) {
            (Some(p), _) | (None, Some(p)) => Some(p),
            (None, None) => None,
        };
        if ports.is_none() && (train.held.is_full() || self.held >= self.max_held) {
            if fresh {
                // A train refused its first fragment keeps no slot.
                self.slots[i] = None;
                self.live -= 1;
            }
            return self.drop_one(handle, FragDrop::TableFull, sink);
        }
        // Accepted.
        let train = self.slots[i].as_mut().expect("occupied");
        train.ranges.push((start, end));
        train.received += end - start;
        if !frag.more {
            train.end = Some(end);
        }
        match ports {
            None => {
                train.held.push(Held { handle });
                self.held += 1;
            }
            Some(p) => {
                train.ports = Some(p);
                let held = std::mem::take(&mut train.held);
                self.held -= held.len();
                for h in held {
                    sink.forward(h.handle, p);
                }
                sink.forward(handle, p);
            }
        }
        let train = self.slots[i].as_ref().expect("occupied");
        if train.end == Some(train.received) {
            self.slots[i] = None;
            self.live -= 1;
            self.completed += 1;
        }
    }

    /// Forgets every train older than the timeout, dropping its held fragments
    /// ([`FragDrop::Timeout`]). Returns how many trains expired. Trains also expire
    /// lazily when their slot is wanted; call this from the worker's timer so held
    /// fragments do not wait for that.
    pub fn expire(&mut self, now_ns: u64, sink: &mut impl FragSink<H>) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|t| self.expired(t, now_ns)) {
                self.evict(i, sink);
                n += 1;
            }
        }
        n
    }

    /// [`FragTable::expire`] for at most `slots` slots, continuing where the last call
    /// stopped (a cursor over the table), so that a timer can sweep a large table a
    /// little at a time: every slot is looked at once per `capacity / slots` calls.
    /// Returns how many trains expired.
    pub fn expire_some(&mut self, now_ns: u64, slots: usize, sink: &mut impl FragSink<H>) -> usize {
        let mut n = 0;
        for _ in 0..slots.min(self.slots.len()) {
            let i = self.sweep;
            self.sweep = (self.sweep + 1) % self.slots.len();
            if self.slots[i].as_ref().is_some_and(|t| self.expired(t, now_ns)) {
                self.evict(i, sink);
                n += 1;
            }
        }
        n
    }

    fn expired(&self, t: &Train<H>, now_ns: u64) -> bool {
        now_ns.saturating_sub(t.born_ns) >= self.timeout_ns
    }

    fn bucket(&self, key: &FragKey) -> usize {
        (self.hasher.hash_one(key) as usize % self.buckets) * WAYS
    }

    /// The slot of `key`'s live train, or a new train in a free or expired slot of its
    /// bucket; `None` when the bucket is full of live trains.
    fn find_or_insert(&mut self, key: &FragKey, now_ns: u64, sink: &mut impl FragSink<H>) -> Option<usize> {
        let b = self.bucket(key);
        let mut free = None;
        for i in b..b + WAYS {
            match &self.slots[i] {
                Some(t) if t.key == *key && !self.expired(t, now_ns) => return Some(i),
                Some(t) if self.expired(t, now_ns) => {
                    self.evict(i, sink);
                    free = free.or(Some(i));
                }
                Some(_) => {}
                None => free = free.or(Some(i)),
            }
        }
        let i = free?;
        self.slots[i] = Some(Train {
            key: *key,
            born_ns: now_ns,
            ports: None,
            end: None,
            received: 0,
            ranges: ArrayVec::new(),
            held: ArrayVec::new(),
            poisoned: false,
        });
        self.live += 1;
        Some(i)
    }

    fn evict(&mut self, i: usize, sink: &mut impl FragSink<H>) {
        if let Some(t) = self.slots[i].take() {
            self.live -= 1;
            self.timed_out += 1;
            self.held -= t.held.len();
            self.drops[FragDrop::Timeout as usize] += t.held.len() as u64;
            for h in t.held {
                sink.drop(h.handle, FragDrop::Timeout);
            }
        }
    }

    fn drop_one(&mut self, handle: H, reason: FragDrop, sink: &mut impl FragSink<H>) {
        self.drops[reason as usize] += 1;
        sink.drop(handle, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SEC: u64 = 1_000_000_000;
    const PORTS: L4Ports = L4Ports { src: 40000, dst: 53, proto: L4Proto::Udp };

    #[derive(Default)]
    struct Sink {
        forwarded: Vec<(u32, L4Ports)>,
        dropped: Vec<(u32, FragDrop)>,
    }

    impl FragSink<u32> for Sink {
        fn forward(&mut self, handle: u32, ports: L4Ports) {
            self.forwarded.push((handle, ports));
        }
        fn drop(&mut self, handle: u32, reason: FragDrop) {
            self.dropped.push((handle, reason));
        }
    }

    fn key(ident: u32, v6: bool) -> FragKey {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).into(),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            )
        } else {
            (Ipv4Addr::new(10, 0, 0, 10).into(), Ipv4Addr::new(10, 0, 0, 1).into())
        };
        FragKey { src, dst, ident, protocol: 17 }
    }

    /// A train of `n` fragments of `each` bytes (the last `last` bytes).
    fn train(n: usize, each: u16, last: u16) -> Vec<Fragment> {
        (0..n)
            .map(|i| Fragment {
                offset: i as u16 * each,
                len: if i + 1 == n { last } else { each },
                more: i + 1 != n,
                ports: (i == 0).then_some(PORTS),
            })
            .collect()
    }

    #[test]
    fn in_order_and_reversed_trains_are_delivered_once() {
        for v6 in [false, true] {
            let mut t = FragTable::new(16, 8, SEC);
            let mut s = Sink::default();
            let f = train(3, 1480, 1040);
            for (h, fr) in f.iter().enumerate() {
                t.accept(0, key(1, v6), *fr, h as u32, &mut s);
            }
            assert_eq!(s.forwarded, vec![(0, PORTS), (1, PORTS), (2, PORTS)]);
            // Reversed: the two later fragments wait for the first.
            for (h, fr) in f.iter().enumerate().rev() {
                t.accept(0, key(2, v6), *fr, 10 + h as u32, &mut s);
                if h == 2 {
                    assert_eq!((t.held(), t.ports(&key(2, v6), 0)), (1, None));
                }
            }
            assert_eq!(&s.forwarded[3..], &[(12, PORTS), (11, PORTS), (10, PORTS)]);
            assert!(s.dropped.is_empty());
            assert_eq!((t.live_trains(), t.held(), t.completed()), (0, 0, 2));
        }
    }

    #[test]
    fn ports_are_known_until_the_train_completes() {
        let mut t = FragTable::new(16, 8, SEC);
        let mut s = Sink::default();
        let f = train(3, 8, 8);
        t.accept(0, key(1, false), f[0], 0, &mut s);
        assert_eq!(t.ports(&key(1, false), 0), Some(PORTS));
        assert_eq!(t.ports(&key(1, true), 0), None); // other family, other train
        assert_eq!(t.ports(&key(1, false), SEC), None); // expired
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let mut t = FragTable::new(16, 8, SEC);
        let mut s = Sink::default();
        let k = key(1, false);
        let fr = |offset, len, more, ports| Fragment { offset, len, more, ports };
        t.accept(0, k, fr(65528, 16, false, None), 1, &mut s); // past 65535
        t.accept(0, k, fr(8, 12, true, None), 2, &mut s); // non-last not a multiple of 8
        t.accept(0, k, fr(8, 0, false, None), 3, &mut s); // empty
        t.accept(0, k, fr(0, 8, true, None), 4, &mut s); // first without ports
        t.accept(0, k, fr(8, 8, true, Some(PORTS)), 5, &mut s); // ports on a later one
        t.accept(0, k, fr(16, 8, false, None), 6, &mut s); // last: end 24
        t.accept(0, k, fr(24, 8, false, None), 7, &mut s); // a second end
        t.accept(0, k, fr(24, 8, true, None), 8, &mut s); // past the end
        assert_eq!(
            s.dropped[..4],
            [
                (1, FragDrop::Oversized),
                (2, FragDrop::Inconsistent),
                (3, FragDrop::Inconsistent),
                (4, FragDrop::Inconsistent)
            ]
        );
        assert_eq!(
            s.dropped[4..],
            [(5, FragDrop::Inconsistent), (7, FragDrop::Inconsistent), (8, FragDrop::Inconsistent)]
        );
        assert_eq!((t.drops(FragDrop::Oversized), t.drops(FragDrop::Inconsistent)), (1, 6));
        // Overlap: the held fragment 6 and the overlapping one go, and so does the rest
        // of the train.
        t.accept(0, k, fr(8, 16, true, None), 9, &mut s);
        t.accept(0, k, fr(0, 8, true, Some(PORTS)), 10, &mut s);
        assert_eq!(s.dropped[7..], [(6, FragDrop::Overlap), (9, FragDrop::Overlap), (10, FragDrop::Overlap)]);
        assert_eq!((t.drops(FragDrop::Overlap), t.held()), (3, 0));
        assert!(s.forwarded.is_empty());
        assert_eq!(FragDrop::ALL.iter().map(|r| r.name()).collect::<std::collections::HashSet<_>>().len(), 6);
        assert!(FragDrop::ALL.iter().all(|&r| crate::stats::DropReason::from(r).name() == r.name()));
    }

    #[test]
    fn never_completed_trains_time_out() {
        let mut t = FragTable::new(4, 8, SEC);
        let mut s = Sink::default();
        let f = train(3, 8, 8);
        t.accept(0, key(1, true), f[1], 1, &mut s);
        t.accept(0, key(1, true), f[2], 2, &mut s);
        assert_eq!(t.expire(SEC - 1, &mut s), 0);
        assert_eq!(t.expire(SEC, &mut s), 1);
        assert_eq!(s.dropped, vec![(1, FragDrop::Timeout), (2, FragDrop::Timeout)]);
        assert_eq!((t.live_trains(), t.held(), t.drops(FragDrop::Timeout), t.timed_out()), (0, 0, 2, 1));
        // The first fragment after the expiry starts a new train.
        t.accept(SEC, key(1, true), f[0], 3, &mut s);
        assert_eq!(s.forwarded, vec![(3, PORTS)]);
    }

    #[test]
    fn a_bounded_sweep_visits_every_slot_in_turn() {
        let mut t = FragTable::new(16, 16, SEC);
        let mut s = Sink::default();
        let later = Fragment { offset: 8, len: 8, more: true, ports: None };
        for id in 0..6 {
            t.accept(0, key(id, false), later, id, &mut s);
        }
        let live = t.live_trains();
        let mut expired = 0;
        // 16 slots, 3 per call: six calls cover the table.
        for _ in 0..6 {
            expired += t.expire_some(SEC, 3, &mut s);
        }
        assert_eq!((expired, t.live_trains(), t.held()), (live, 0, 0));
        assert_eq!(t.drops(FragDrop::Timeout), live as u64);
        assert_eq!(t.expire_some(2 * SEC, 100, &mut s), 0);
    }

    #[test]
    fn bounds_refuse_with_table_full() {
        // One bucket of WAYS trains, 2 held fragments in all.
        let mut t = FragTable::new(1, 2, SEC);
        let mut s = Sink::default();
        let later = Fragment { offset: 8, len: 8, more: true, ports: None };
        for id in 0..WAYS as u32 + 1 {
            t.accept(0, key(id, false), later, id, &mut s);
        }
        assert_eq!(t.held(), 2);
        assert_eq!(t.live_trains(), 2); // refused trains take no slot
        assert_eq!(t.drops(FragDrop::TableFull), WAYS as u64 - 1);
        // Expired trains make room for new ones.
        t.accept(SEC, key(99, false), later, 99, &mut s);
        assert_eq!((t.live_trains(), t.held()), (1, 1));
        assert_eq!(t.drops(FragDrop::Timeout), 2);
    }

    #[test]
    fn too_many_fragments() {
        let mut t = FragTable::new(4, 4, SEC);
        let mut s = Sink::default();
        let f = train(MAX_FRAGS_PER_TRAIN + 2, 8, 8);
        for (h, fr) in f.iter().enumerate() {
            t.accept(0, key(1, false), *fr, h as u32, &mut s);
        }
        assert_eq!(s.forwarded.len(), MAX_FRAGS_PER_TRAIN);
        assert_eq!(t.drops(FragDrop::TooManyFragments), 2);
    }

    proptest! {
        /// A complete train whose fragments come in any order, interleaved with another
        /// train's, is forwarded whole, each fragment exactly once with the train's ports.
        #[test]
        fn any_order_is_delivered_exactly_once(
            n in 1usize..=MAX_HELD_PER_TRAIN + 1,
            last in 1u16..=1480,
            order in Just((0..40).collect::<Vec<usize>>()).prop_shuffle(),
            v6 in any::<bool>(),
        ) {
            let mut t = FragTable::new(8, 64, SEC);
            let mut s = Sink::default();
            let f = train(n, 1480, last);
            let ports2 = L4Ports { src: 1, dst: 2, proto: L4Proto::Udp };
            let g: Vec<_> = train(n, 1480, last).into_iter().map(|mut x| { x.ports = x.ports.map(|_| ports2); x }).collect();
            for &i in order.iter().filter(|&&i| i < 2 * n) {
                let (k, fr, h) = if i < n { (key(1, v6), f[i], i as u32) } else { (key(2, v6), g[i - n], 100 + (i - n) as u32) };
                t.accept(0, k, fr, h, &mut s);
                prop_assert!(t.held() <= 64 && t.live_trains() <= t.capacity());
            }
            prop_assert!(s.dropped.is_empty());
            let mut got = s.forwarded.clone();
            got.sort_by_key(|x| x.0);
            let want: Vec<_> = (0..n as u32).map(|h| (h, PORTS)).chain((0..n as u32).map(|h| (100 + h, ports2))).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!((t.live_trains(), t.held(), t.completed()), (0, 0, 2));
        }

        /// Whatever comes in (random keys, offsets, lengths, clock steps), the table stays
        /// within its bounds, every handle comes out at most once, and every drop is counted.
        #[test]
        fn never_exceeds_its_bounds(
            ops in proptest::collection::vec((0u32..12, 0u16..64, 0u16..64, any::<bool>(), 0u64..3), 1..300),
        ) {
            let (cap, max_held) = (8, 5);
            let mut t = FragTable::new(cap, max_held, 10);
            let mut s = Sink::default();
            let mut now = 0;
            for (h, &(id, off, len, more, step)) in ops.iter().enumerate() {
                now += step;
                let offset = off * 8;
                let fr = Fragment { offset, len: len * 8, more, ports: (offset == 0).then_some(PORTS) };
                t.accept(now, key(id, id % 2 == 0), fr, h as u32, &mut s);
                prop_assert!(t.held() <= max_held);
                prop_assert!(t.live_trains() <= t.capacity() && t.capacity() == cap);
            }
            t.expire(now + 10, &mut s);
            prop_assert_eq!((t.live_trains(), t.held()), (0, 0));
            let mut seen: Vec<u32> = s.forwarded.iter().map(|x| x.0).chain(s.dropped.iter().map(|x| x.0)).collect();
            seen.sort_unstable();
            let n = seen.len();
            seen.dedup();
            prop_assert_eq!(seen.len(), n);
            prop_assert_eq!(n, ops.len());
            let counted: u64 = FragDrop::ALL.iter().map(|r| t.drops(*r)).sum();
            prop_assert_eq!(counted, s.dropped.len() as u64);
        }

        /// A fragment overlapping an accepted one is refused, and nothing of its train is
        /// forwarded after that.
        #[test]
        fn overlaps_are_refused(a_off in 0u16..32, a_len in 1u16..16, b_off in 0u16..32, b_len in 1u16..16) {
            let (a0, a1, b0, b1) = (a_off * 8, (a_off + a_len) * 8, b_off * 8, (b_off + b_len) * 8);
            prop_assume!(a0 < b1 && b0 < a1);
            let mut t = FragTable::new(4, 4, SEC);
            let mut s = Sink::default();
            let fr = |o: u16, l: u16| Fragment { offset: o, len: l, more: true, ports: (o == 0).then_some(PORTS) };
            t.accept(0, key(1, true), fr(a0, a1 - a0), 1, &mut s);
            t.accept(0, key(1, true), fr(b0, b1 - b0), 2, &mut s);
            prop_assert!(s.dropped.contains(&(2, FragDrop::Overlap)));
            prop_assert!(!s.forwarded.iter().any(|x| x.0 == 2));
            t.accept(0, key(1, true), fr(0x1000, 8), 3, &mut s);
            prop_assert!(s.dropped.contains(&(3, FragDrop::Overlap)));
            prop_assert_eq!(t.held(), 0);
        }
    }
}
