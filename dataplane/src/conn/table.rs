//! [`ConnTable`]: slab + open-addressing index + hashed timing wheel.
//!
//! Why this layout (DPVS keeps a per-lcore chained hash of separately allocated
//! connections with one `rte_timer` each; we want fewer cache misses, fixed memory and
//! O(1) expiry bookkeeping per packet):
//!
//! * **Slab.** `Vec<Conn>` of exactly `capacity` entries, allocated once. Free entries are
//!   chained through their `next` field (LIFO, so a new flow reuses a warm entry). A
//!   [`ConnId`] is the slab index.
//! * **Index.** One open-addressing array of 4-byte slots with `4 × capacity` slots, so
//!   that with both keys of every entry it is at most half full. A slot packs
//!   `ent = entry index << 1 | direction` in its low `ent_bits` bits (as few as the
//!   capacity needs: 21 for 1,000,000 entries, 25 for 10,000,000) and a *tag*, the low
//!   bits of the key's 32-bit hash, in the rest (11 bits at 1,000,000, 7 at 10,000,000,
//!   2 at [`MAX_CAPACITY`]); all
//!   ones is the empty slot. The tag filters probes without touching the entry (a false
//!   match, 1 in 2^tag-bits per occupied slot probed, costs one key compare). The home
//!   slot is `hash × slots >> 32` (Lemire's multiply-shift, the hash's *high* bits, so
//!   home and tag are independent), so the slot count needs no rounding to a power of two
//!   and the memory per entry is fixed. Linear probing (16 slots per cache line: one line
//!   per lookup, rarely two, at ≤ 50 % load) with backward-shift deletion (no tombstones,
//!   so the load never creeps up under churn); the shift reads the home of each slot it
//!   moves from that slot's entry, since the slot holds only part of the hash (a cost
//!   per removed connection, not per packet). Slots were 8 bytes (the whole hash) until
//!   the half-open ring took the entry past the 96-byte budget.
//! * **Hash.** Two folded 64×64→128 multiplications over the 13 key bytes packed in two
//!   words, keyed by a per-table seed drawn once at construction from std's `RandomState`
//!   (one `getrandom` per thread, never per packet), so clients cannot aim collisions
//!   at a table they cannot observe.
//! * **Wheel.** [`WHEEL_SLOTS`] list heads of ticks of [`TICK_NS`] ns (2^26 ns ≈ 67 ms,
//!   a shift instead of a division; under 4 % of the shortest IPVS timeout, NONE's 2 s;
//!   the 8192 slots span ≈ 550 s in 32 KiB). Each entry sits in one doubly-linked slot
//!   list (`next`/`prev` in the entry; a head's `prev` is `HEAD | slot`). **Lazy
//!   refresh:** a packet only stores the entry's new expiry tick when it is later than
//!   the stored one (the common case: time moves on); the entry stays in its old slot,
//!   which is never later than its expiry. When that slot's tick comes, entries whose
//!   expiry moved are re-linked to their expiry's slot instead of expiring. A packet that
//!   shortens the expiry (a move to a state with a shorter timeout) re-links at once, in
//!   O(1). So each entry is visited about once per timeout (or per wheel turn for
//!   timeouts over 550 s), and a packet costs one store.
//! * **Expiry bounds.** The expiry tick is `ceil((now + timeout) / TICK_NS)` and an entry
//!   expires when the wheel processes a tick `t ≥ expiry`, with `t ≤ floor(now / TICK_NS)`:
//!   never before `now_of_last_packet + timeout`, and no later than one tick after it
//!   when [`ConnTable::expire`] runs every tick.
//! * **Bounded work.** A slot being drained is detached as the *pending* list (its head's
//!   `prev` is `PENDING`), so [`ConnTable::expire_at_most`] can stop after `max` entries
//!   and resume later; meanwhile removals, refreshes and inserts work as usual (an insert
//!   already due goes to the tick after the one being drained).
//!
//! * **Half-open ring.** DR and IPIP TCP entries (created by a SYN, which makes them
//!   half-open: SYN_RECV, no ACK yet) are recorded at creation, oldest first, in a ring
//!   of `capacity` 8-byte records (slab index and a tag of the inbound key, which tells
//!   a reused slot apart). Their SYN_RECV timeout is the half-open one, chosen by
//!   indexing the timeout table with "input-only" rather than by a branch. A full table
//!   evicts from the ring's head ([`ConnTable::evict_half_open`]); records of entries
//!   that completed or left are skipped and dropped there, each once. NAT and Full-NAT
//!   entries are never recorded: their defence is the SYN proxy (issue 14), not
//!   eviction.
//!
//! Memory per entry: `size_of::<ConnOf<F>>()` (64) + 4 slots × 4 + 8 (half-open record) =
//! 88 bytes, plus 32 KiB of wheel per table.
//!
//! * **Huge pages.** The slab, the index and the ring each live in one
//!   [`HugeBuf`](rvs_drivers::hugemem::HugeBuf): by default on reserved 2 MiB pages
//!   (`MAP_HUGETLB`, the pool DPDK uses; a 1,000,000-entry table takes 43 of them: 31 + 8 + 4), so
//!   that a lookup at 1M+ entries costs its cache misses and not also a 4 KiB page walk
//!   each; when the pool has too few free pages, on ordinary memory with transparent huge
//!   pages asked for. [`ConnTable::memory`] says which, for the caller to report.

use std::hash::BuildHasher;
use std::mem::size_of;

use rvs_drivers::hugemem::{AllocError, Backing, Fallback, HugeBuf, PagePolicy};

use super::{ConnFlags, ConnId, ConnOf, Direction, Family, FlowKeyOf, StateChange, V4, V6};
use crate::stats::DropReason;
use crate::types::{ConnState, ForwardMode, TcpState, Timeouts};
use crate::wire::TcpFlags;

/// Length of a wheel tick in nanoseconds: 2^26 ns ≈ 67.1 ms. Entries expire at most one
/// tick after their timeout.
pub const TICK_NS: u64 = 1 << 26;
/// Number of wheel slots (a power of two): 8192 ticks ≈ 550 s per turn.
pub const WHEEL_SLOTS: usize = 1 << 13;
/// The largest capacity [`ConnTable::with_capacity`] accepts (larger requests are
/// clamped): 2^28 entries, which keeps `4 × capacity` index slots within 32-bit
/// positions and entry indexes below the `HEAD` bit.
pub const MAX_CAPACITY: usize = 1 << 28;
/// Index slots per entry: 2 keys × 2 (load ≤ 50 %).
const SLOTS_PER_ENTRY: usize = 4;
/// Slots [`ConnTable::prefetch_entry`] examines from a key's home at most: at ≤ 50 %
/// load almost every key is within them, and a longer probe is not worth a hint.
const PREFETCH_PROBE: usize = 4;

/// End of a list.
const NIL: u32 = u32::MAX;
/// Marks a `prev` field holding a wheel slot number (the entry heads that slot's list).
const HEAD: u32 = 1 << 31;
/// The `prev` of the head of the pending list (a slot being drained, see
/// [`ConnTable::expire_at_most`]).
const PENDING: u32 = HEAD | WHEEL_SLOTS as u32;

/// Why [`ConnTable::insert`] refused a connection. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableFull {
    /// The table holds `capacity` entries.
    #[error("connection table full")]
    Full,
    /// Another entry already has this inbound key (as its inbound or reply key).
    #[error("inbound key already in the connection table")]
    InboundKeyExists,
    /// Another entry already has this reply key (as its inbound or reply key), or the
    /// connection's reply key equals its own inbound key.
    #[error("reply key already in the connection table")]
    ReplyKeyExists,
}

/// The drop reason of a new flow the table refused: `conn_table_full`, or
/// `conn_key_clash` when its tuple belongs to another connection.
impl From<TableFull> for DropReason {
    fn from(e: TableFull) -> Self {
        match e {
            TableFull::Full => DropReason::ConnTableFull,
            TableFull::InboundKeyExists | TableFull::ReplyKeyExists => DropReason::ConnKeyClash,
        }
    }
}

/// One index slot: `tag << ent_bits | ent` (see the module documentation), or [`EMPTY`].
type Slot = u32;

/// The empty index slot: all ones, which no entry's slot is (`ent` stays below the
/// all-ones value of its field, see [`ent_bits_for`]).
const EMPTY: Slot = u32::MAX;

/// The width of a slot's `ent` field for a slab of `entries`: the smallest whose
/// all-ones value (reserved, so that no occupied slot equals [`EMPTY`]) is above every
/// `ent = index << 1 | direction`, i.e. at least `2 × entries`. At most 30 bits for
/// [`MAX_CAPACITY`], which leaves a tag of 2 bits at worst.
fn ent_bits_for(entries: usize) -> u32 {
    64 - (2 * entries as u64).leading_zeros()
}

/// Wrapping tick comparison: `a <= b` when they are less than 2^31 ticks apart.
#[inline]
fn tick_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

/// Seconds to nanoseconds.
#[inline]
const fn secs_ns(s: u32) -> u64 {
    s as u64 * 1_000_000_000
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The timeouts of [`Timeouts`] in nanoseconds, as the table re-arms entries with them:
/// one per TCP state, indexed by the state, and the UDP one by name.
#[derive(Debug, Clone, Copy, Default)]
struct StateTimeoutsNs {
    /// Indexed by whether the connection runs the INPUT-ONLY table (DR, IPIP: its
    /// SYN_RECV is [`Timeouts::half_open`]), then by `TcpState as usize`
    /// (`TcpState::ALL[i] as usize == i`): the choice costs an index, not a branch.
    tcp: [[u64; TcpState::ALL.len()]; 2],
    udp: u64,
}

impl StateTimeoutsNs {
    fn new(t: &Timeouts) -> Self {
        StateTimeoutsNs {
            tcp: [false, true].map(|io| TcpState::ALL.map(|s| secs_ns(t.of_conn(ConnState::Tcp(s), io)))),
            udp: secs_ns(t.of(ConnState::Udp)),
        }
    }

    /// The timeout of state `s` for a connection that is `input_only` or not.
    #[inline]
    fn of_conn(&self, s: ConnState, input_only: bool) -> u64 {
        match s {
            ConnState::Tcp(t) => self.tcp[usize::from(input_only)][t as usize],
            ConnState::Udp => self.udp,
        }
    }

    #[inline]
    fn of(&self, s: ConnState) -> u64 {
        self.of_conn(s, false)
    }
}

/// Where a [`ConnTable`]'s slab, index and half-open ring live ([`ConnTable::memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableMemory {
    /// Reserved 2 MiB pages the table holds.
    pub huge_pages: usize,
    /// 2 MiB pages' worth of the table on ordinary memory (transparent huge pages, best
    /// effort) because the reserved pool had too few free.
    pub fallback_pages: usize,
    /// Why part of the table is not on reserved pages: the first refusal of the pool
    /// (with the pages it lacked), else a part too small for a huge page; `None` when
    /// reserved pages were not asked for or every part got them.
    pub fallback: Option<Fallback>,
    /// Bytes mapped for the three parts (their sizes rounded up to pages).
    pub mapped_bytes: usize,
}

/// The per-connection table of one worker. See the module documentation of
/// [`crate::conn`] for the contract.
#[derive(Debug)]
pub struct ConnTableOf<F: Family> {
    /// The slab: `capacity` entries (at least one, so that a table of capacity 0 is
    /// still well formed).
    conns: HugeBuf<ConnOf<F>>,
    index: HugeBuf<Slot>,
    /// Width of the `ent` field of an index slot ([`ent_bits_for`]); the tag is the rest.
    ent_bits: u32,
    /// `(1 << ent_bits) - 1`: the `ent` field of a slot.
    ent_mask: u32,
    wheel: Vec<u32>,
    free_head: u32,
    len: usize,
    capacity: usize,
    seed: [u64; 3],
    timeouts: Timeouts,
    /// Timeout per state in ns.
    timeout_ns: StateTimeoutsNs,
    /// The last tick the wheel has processed.
    last_tick: u32,
    /// Whether `last_tick` has been set from a clock reading.
    started: bool,
    /// Entries of tick `last_tick + 1` not yet examined when an
    /// [`ConnTable::expire_at_most`] ran out of budget (`NIL` when none).
    pending: u32,
    /// DR/IPIP TCP entries in creation order, for half-open eviction (see
    /// [`ConnTable::evict_half_open`]): a ring of `capacity` records.
    half_open: HalfOpenRing,
    /// TCP entries in SYN_RECV now, any forwarding mode ([`ConnTable::syn_recv`]).
    syn_recv: usize,
}

/// One record of the half-open ring: an entry's slab index and a tag of its inbound key
/// ([`rec_tag`]), which tells whether the slot still holds that connection (a slot
/// reused by another flow has another key).
#[derive(Debug, Clone, Copy)]
struct HalfOpenRec {
    idx: u32,
    hash: u32,
}

/// A fixed ring of [`HalfOpenRec`], oldest first, `capacity` long. A push onto a full
/// ring first discards the stale records at its head (entries no longer half-open);
/// if the head is still a live half-open entry, that oldest record is dropped (its entry
/// can then only time out, not be evicted). That takes `capacity` entries becoming
/// half-open while the oldest stays half-open, its other records staying ahead of any
/// stale ones; under a flood the table is full of half-open entries and the oldest are
/// evicted first, so their records go before the ring wraps.
#[derive(Debug)]
struct HalfOpenRing {
    recs: HugeBuf<HalfOpenRec>,
    head: usize,
    len: usize,
}

impl HalfOpenRing {
    fn push(&mut self, rec: HalfOpenRec) {
        let n = self.recs.len();
        if n == 0 {
            return;
        }
        if self.len == n {
            self.head = wrap(self.head + 1, n);
            self.len -= 1;
        }
        let at = wrap(self.head + self.len, n);
        if let Some(slot) = self.recs.get_mut(at) {
            *slot = rec;
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<HalfOpenRec> {
        if self.len == 0 {
            return None;
        }
        let r = self.recs.get(self.head).copied();
        self.head = wrap(self.head + 1, self.recs.len());
        self.len -= 1;
        r
    }
}

/// The tag a half-open record keeps of its entry's inbound key (client address and
/// port, VIP port, folded): a slot reused by another flow almost always has another tag,
/// and a rare equal tag only misplaces that entry in the age order (it is checked to be
/// half-open before eviction all the same). Cheaper than the key's hash.
#[inline]
fn rec_tag<F: Family>(c: &ConnOf<F>) -> u32 {
    F::tag(c.client) ^ (u32::from(c.cport) << 16 | u32::from(c.vport)).rotate_left(7)
}

/// `i` reduced into `0..n`, for `i < 2n` (no division).
#[inline]
fn wrap(i: usize, n: usize) -> usize {
    if i >= n {
        i - n
    } else {
        i
    }
}

/// How many half-open records [`ConnTable::evict_half_open`] examines at most per call
/// (records of entries that completed their handshake or left are discarded on the
/// way, each once, so the work is amortised O(1) per half-open entry).
pub const EVICT_SCAN: usize = 64;

/// Whether `c` is half-open: a TCP connection of DR or IPIP (no reply path, no reply
/// seen) in SYN_RECV, i.e. the client's SYN without the ACK that completes the handshake.
#[inline]
fn is_half_open<F: Family>(c: &ConnOf<F>) -> bool {
    c.state == ConnState::Tcp(TcpState::SynRecv) && input_only(c)
}

/// Whether `c` runs IPVS's INPUT-ONLY table: DR or IPIP with no reply seen.
#[inline]
fn input_only<F: Family>(c: &ConnOf<F>) -> bool {
    matches!(c.forward, ForwardMode::Dr | ForwardMode::Tunnel) && !c.flags.contains(ConnFlags::REPLY_SEEN)
}

/// 1 for a TCP SYN_RECV state, else 0 (the [`ConnTable::syn_recv`] count).
#[inline]
fn is_syn_recv(s: ConnState) -> usize {
    usize::from(s == ConnState::Tcp(TcpState::SynRecv))
}

/// The IPv4 connection table.
pub type ConnTable = ConnTableOf<V4>;
/// The IPv6 connection table (entries of 128 bytes, see [`ConnOf`]).
pub type ConnTable6 = ConnTableOf<V6>;

impl<F: Family> ConnTableOf<F> {
    /// A table for `capacity` connections (clamped to [`MAX_CAPACITY`]) with these
    /// timeouts and a random hash seed, on reserved huge pages if enough are free
    /// ([`ConnTable::memory`] says). Allocates and touches all its memory now
    /// ([`ConnTable::memory_bytes`]); aborts like any Rust allocation if memory runs out
    /// (see [`ConnTable::try_with_capacity`]).
    pub fn with_capacity(capacity: usize, timeouts: Timeouts) -> Self {
        Self::build(capacity, timeouts, random_seed(), PagePolicy::HugeTlb).unwrap_or_else(alloc_failed)
    }

    /// As [`ConnTable::with_capacity`], but an allocation failure is an error.
    pub fn try_with_capacity(capacity: usize, timeouts: Timeouts) -> Result<Self, AllocError> {
        Self::build(capacity, timeouts, random_seed(), PagePolicy::HugeTlb)
    }

    /// As [`ConnTable::with_capacity`] with a given hash seed: reproducible layouts for
    /// tests and benchmarks.
    pub fn with_capacity_and_seed(capacity: usize, timeouts: Timeouts, seed: u64) -> Self {
        Self::build(capacity, timeouts, seed, PagePolicy::HugeTlb).unwrap_or_else(alloc_failed)
    }

    /// As [`ConnTable::with_capacity`] on the pages `pages` says (benchmarks compare
    /// them; rvsd asks for reserved huge pages).
    pub fn with_pages(capacity: usize, timeouts: Timeouts, pages: PagePolicy) -> Self {
        Self::build(capacity, timeouts, random_seed(), pages).unwrap_or_else(alloc_failed)
    }

    /// As [`ConnTable::try_with_capacity`] with a given hash seed and the pages its
    /// memory comes from (benchmarks compare them).
    pub fn try_with_pages(
        capacity: usize,
        timeouts: Timeouts,
        seed: u64,
        pages: PagePolicy,
    ) -> Result<Self, AllocError> {
        Self::build(capacity, timeouts, seed, pages)
    }

    fn build(capacity: usize, timeouts: Timeouts, seed: u64, pages: PagePolicy) -> Result<Self, AllocError> {
        let capacity = capacity.min(MAX_CAPACITY);
        let entries = capacity.max(1);
        let slots = (capacity * SLOTS_PER_ENTRY).max(16);
        let free = ConnOf::<F>::new(
            FlowKeyOf {
                proto: crate::types::L4Proto::Tcp,
                src: F::UNSPECIFIED,
                sport: 0,
                dst: F::UNSPECIFIED,
                dport: 0,
            },
            ForwardMode::Dr,
            F::UNSPECIFIED,
            0,
        );
        let mut conns = HugeBuf::new(entries, free, pages)?;
        let index = HugeBuf::new(slots, EMPTY, pages)?;
        let wheel = vec![NIL; WHEEL_SLOTS];
        let ring = HugeBuf::new(capacity, HalfOpenRec { idx: NIL, hash: 0 }, pages)?;
        // Chain the free list 0 → 1 → … → capacity-1.
        for (i, c) in conns.iter_mut().enumerate() {
            c.next = if i + 1 < capacity { (i + 1) as u32 } else { NIL };
        }
        let mut s = seed;
        let seed = [splitmix(&mut s), splitmix(&mut s), splitmix(&mut s)];
        let ent_bits = ent_bits_for(entries);
        let mut t = ConnTableOf {
            conns,
            index,
            ent_bits,
            ent_mask: (1u32 << ent_bits) - 1,
            wheel,
            free_head: if capacity > 0 { 0 } else { NIL },
            len: 0,
            capacity,
            seed,
            timeouts,
            timeout_ns: StateTimeoutsNs::default(),
            last_tick: 0,
            started: false,
            pending: NIL,
            half_open: HalfOpenRing { recs: ring, head: 0, len: 0 },
            syn_recv: 0,
        };
        t.set_timeouts(timeouts);
        Ok(t)
    }

    /// Memory of one entry, in bytes, from the real sizes: the entry itself, its share of
    /// the index (4 slots) and its half-open record. The wheel adds 32 KiB per table, see
    /// [`ConnTable::memory_bytes`].
    pub fn bytes_per_conn() -> usize {
        size_of::<ConnOf<F>>() + SLOTS_PER_ENTRY * size_of::<Slot>() + size_of::<HalfOpenRec>()
    }

    /// Bytes this table's entries, index, ring and wheel take (the mappings round them
    /// up to whole pages, see [`TableMemory::mapped_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        self.conns.len() * size_of::<ConnOf<F>>()
            + self.index.len() * size_of::<Slot>()
            + self.wheel.capacity() * size_of::<u32>()
            + self.half_open.recs.len() * size_of::<HalfOpenRec>()
    }

    /// Where the slab, the index and the half-open ring live: reserved huge pages, or
    /// why not (for the worker's start-up log and status).
    pub fn memory(&self) -> TableMemory {
        let parts = [&self.conns.backing(), &self.index.backing(), &self.half_open.recs.backing()];
        let mut m = TableMemory {
            huge_pages: 0,
            fallback_pages: 0,
            fallback: None,
            mapped_bytes: self.conns.mapped_bytes() + self.index.mapped_bytes() + self.half_open.recs.mapped_bytes(),
        };
        for b in parts {
            match *b {
                Backing::HugeTlb { pages } => m.huge_pages += pages,
                Backing::Transparent { fallback: Some(f @ Fallback::NoPages { wanted, .. }) } => {
                    m.fallback_pages += wanted;
                    m.fallback.get_or_insert(f);
                }
                Backing::Transparent { fallback: Some(f @ Fallback::Small { .. }) } => {
                    m.fallback.get_or_insert(f);
                }
                Backing::Transparent { fallback: None } | Backing::Base | Backing::Empty => {}
            }
        }
        m
    }

    /// The current timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Replaces the timeouts (`ipvsadm --set`). Existing entries keep their current
    /// expiry; the new values apply from their next packet, as in IPVS.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
        self.timeout_ns = StateTimeoutsNs::new(&timeouts);
    }

    #[inline]
    fn timeout_of(&self, s: ConnState) -> u64 {
        self.timeout_ns.of(s)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn hash(&self, k: &FlowKeyOf<F>) -> u32 {
        let a = F::addr_word(k.src, k.dst);
        let b = (u64::from(k.sport) << 32) | (u64::from(k.dport) << 16) | u64::from(k.proto.ipproto());
        let h = fold_mul(a ^ self.seed[0], b ^ self.seed[1]);
        (fold_mul(h, self.seed[2]) >> 32) as u32
    }

    #[inline]
    fn home(&self, hash: u32) -> usize {
        ((u64::from(hash) * self.index.len() as u64) >> 32) as usize
    }

    #[inline]
    fn key_of(&self, ent: u32) -> FlowKeyOf<F> {
        let c = &self.conns[(ent >> 1) as usize];
        if ent & 1 == 0 {
            c.inbound_key()
        } else {
            c.reply_key()
        }
    }

    /// The slot of `ent` for a key of hash `hash`.
    #[inline]
    fn slot(&self, hash: u32, ent: u32) -> Slot {
        hash << self.ent_bits | ent
    }

    /// The index position and `ent` of `key`.
    #[inline]
    fn find(&self, key: &FlowKeyOf<F>, hash: u32) -> Option<(usize, u32)> {
        let n = self.index.len();
        let mut pos = self.home(hash);
        let tag = hash << self.ent_bits;
        for _ in 0..n {
            let s = self.index[pos];
            if s == EMPTY {
                return None;
            }
            if s & !self.ent_mask == tag && self.key_of(s & self.ent_mask) == *key {
                return Some((pos, s & self.ent_mask));
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
        None
    }

    /// First stage of a burst's lookups (l3fwd's and `rte_hash_lookup_bulk`'s shape):
    /// starts loading the index cache line where `key` would be found and returns the
    /// key's hash for [`ConnTable::prefetch_entry`]. Changes nothing; a hint only.
    #[inline]
    pub fn prefetch_index(&self, key: &FlowKeyOf<F>) -> u32 {
        let hash = self.hash(key);
        if let Some(slot) = self.index.get(self.home(hash)) {
            rvs_drivers::prefetch::prefetch(slot);
        }
        hash
    }

    /// Second stage, once the index line has had time to arrive (after the first stage
    /// of the other packets of the burst): starts loading the entry named by the first
    /// slot whose tag matches `hash` among the first few from its home (a false tag match
    /// only wastes the hint). Changes nothing; a hint only.
    #[inline]
    pub fn prefetch_entry(&self, hash: u32) {
        let n = self.index.len();
        let mut pos = self.home(hash);
        let tag = hash << self.ent_bits;
        for _ in 0..PREFETCH_PROBE {
            let Some(&s) = self.index.get(pos) else { return };
            if s == EMPTY {
                return;
            }
            if s & !self.ent_mask == tag {
                if let Some(c) = self.conns.get(((s & self.ent_mask) >> 1) as usize) {
                    rvs_drivers::prefetch::prefetch(c);
                }
                return;
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
    }

    /// The entry with `key` as its inbound or reply key, and which of the two it is.
    #[inline]
    pub fn lookup(&self, key: &FlowKeyOf<F>) -> Option<(ConnId, Direction)> {
        self.find(key, self.hash(key)).map(|(_, ent)| {
            let dir = if ent & 1 == 0 { Direction::Inbound } else { Direction::Reply };
            (ConnId(ent >> 1), dir)
        })
    }

    /// Adds `conn` (indexed under its inbound key and, for NAT and Full-NAT, its reply
    /// key) with the timeout of its state from `now_ns`. Fails, changing nothing, when the
    /// table is full or either key is already present.
    ///
    /// The state is taken as given (normally [`ConnState::initial`]); call
    /// [`ConnTable::on_packet`] next with the packet that created the connection. Count
    /// the new connection as `conn.state.is_active()` for its server (inactive, like
    /// IPVS's new connections).
    pub fn insert(&mut self, mut conn: ConnOf<F>, now_ns: u64) -> Result<ConnId, TableFull> {
        if self.len >= self.capacity || self.free_head == NIL {
            return Err(TableFull::Full);
        }
        let ik = conn.inbound_key();
        let ih = self.hash(&ik);
        if self.find(&ik, ih).is_some() {
            return Err(TableFull::InboundKeyExists);
        }
        let reply = if conn.has_reply_path() {
            let rk = conn.reply_key();
            let rh = self.hash(&rk);
            if rk == ik || self.find(&rk, rh).is_some() {
                return Err(TableFull::ReplyKeyExists);
            }
            Some(rh)
        } else {
            None
        };
        self.start(now_ns);
        let idx = self.free_head;
        self.free_head = self.conns[idx as usize].next;
        conn.live = true;
        conn.expire = expiry_tick(now_ns, self.timeout_of(conn.state));
        self.conns[idx as usize] = conn;
        self.len += 1;
        self.syn_recv += is_syn_recv(conn.state);
        self.index_put(ih, idx << 1);
        if let Some(rh) = reply {
            self.index_put(rh, (idx << 1) | 1);
        }
        self.link(idx, conn.expire);
        if reply.is_none() && conn.proto == crate::types::L4Proto::Tcp {
            // DR/IPIP TCP: created by a SYN, half-open from the packet that follows;
            // recorded now, in creation order, for eviction (crate::conn contract).
            self.record_half_open(idx);
        }
        Ok(ConnId(idx))
    }

    /// The entry `id`; `None` when `id` names no entry in the table now (removed or
    /// expired, or an id of another, larger table). A stale `id` whose slot was reused
    /// names the newer entry (see [`ConnId`]).
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&ConnOf<F>> {
        self.conns.get(id.index()).filter(|c| c.live)
    }

    /// The entry `id`, writable; `None` as for [`ConnTable::get`]. Don't change its key
    /// fields or `forward` (see [`Conn`]).
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut ConnOf<F>> {
        self.conns.get_mut(id.index()).filter(|c| c.live)
    }

    /// Whether `id` names an entry currently in the table.
    pub fn is_live(&self, id: ConnId) -> bool {
        self.conns.get(id.index()).is_some_and(|c| c.live)
    }

    /// Runs a packet of the connection through its state machine and re-arms its expiry
    /// with the (new) state's timeout from `now_ns`.
    ///
    /// `tcp_flags` is the TCP header's flags, `None` for UDP (or a TCP packet whose header
    /// was not available: the state stays, the timeout is refreshed). A packet travelling
    /// [`Direction::Reply`] sets [`ConnFlags::REPLY_SEEN`] (and
    /// [`ConnFlags::SYN_ACK_SEEN`] for a SYN+ACK). The result says whether the
    /// connection moved between active and inactive. A stale `id` changes nothing.
    pub fn on_packet(&mut self, id: ConnId, dir: Direction, tcp_flags: Option<TcpFlags>, now_ns: u64) -> StateChange {
        let Some(c) = self.conns.get_mut(id.index()) else {
            // Not an id of this table: nothing changes (the state reported is a
            // placeholder that never moves a counter).
            return StateChange { from: ConnState::Udp, to: ConnState::Udp };
        };
        let from = c.state;
        if !c.live {
            return StateChange { from, to: from };
        }
        // A packet here: the entry is ours now, whatever the peer sent (one `and`).
        c.flags.remove(ConnFlags::SYNCED);
        let (to, io) = match (from, tcp_flags) {
            (ConnState::Tcp(s), Some(f)) => {
                let io = input_only(c);
                let t = super::next_tcp_state(s, dir, f, io);
                // The SYN_RECV count, branch-free: two compares and two adds.
                let sr = TcpState::SynRecv;
                self.syn_recv = self.syn_recv + usize::from(t == sr) - usize::from(s == sr);
                (ConnState::Tcp(t), io && dir == Direction::Inbound)
            }
            // A TCP packet whose flags were not available keeps the state, and a
            // half-open DR/IPIP entry keeps the half-open timeout (not SYN_RECV's).
            (ConnState::Tcp(_), None) => (from, input_only(c) && dir == Direction::Inbound),
            (ConnState::Udp, _) => (from, false),
        };
        if dir == Direction::Reply {
            c.flags.insert(ConnFlags::REPLY_SEEN);
            if tcp_flags.is_some_and(|f| f.syn() && f.ack()) {
                c.flags.insert(ConnFlags::SYN_ACK_SEEN);
            }
        }
        c.state = to;
        let old = c.expire;
        // DR/IPIP (input-only) entries in SYN_RECV get the half-open timeout: an index.
        let new = expiry_tick(now_ns, self.timeout_ns.of_conn(to, io));
        if tick_le(old, new) {
            // Lazy refresh: the entry's slot is still at or before its expiry.
            self.conns[id.index()].expire = new;
        } else {
            let idx = id.0;
            self.unlink(idx);
            self.conns[id.index()].expire = new;
            self.link(idx, new);
        }
        StateChange { from, to }
    }

    /// TCP entries in SYN_RECV now, in any forwarding mode: the half-open count the SYN
    /// proxy's `auto` mode compares with its threshold (`crate::synproxy`). Kept up to
    /// date by every insert, state change and removal, so reading it costs nothing.
    #[inline]
    pub fn syn_recv(&self) -> usize {
        self.syn_recv
    }

    /// Sets the state of entry `id` without a packet (connection sync installs the
    /// peer's state), keeping [`ConnTable::syn_recv`] right. A stale `id` changes nothing.
    pub fn set_state(&mut self, id: ConnId, state: ConnState) {
        let Some(c) = self.conns.get_mut(id.index()).filter(|c| c.live) else { return };
        let from = c.state;
        c.state = state;
        self.syn_recv = self.syn_recv + is_syn_recv(state) - is_syn_recv(from);
    }

    /// Removes and returns the oldest half-open entry (a DR or IPIP TCP connection in
    /// SYN_RECV, see [`Timeouts::half_open`]) to make room for a new SYN in a full
    /// table; never any other entry. Examines at most [`EVICT_SCAN`] records of the
    /// half-open ring, discarding those whose entry completed its handshake, left, or
    /// whose slot another flow now uses; `None` when none of them is still half-open.
    /// "Oldest" is creation order. An entry that becomes half-open again later (a SYN
    /// reusing a closed connection's tuple) is not recorded again: it only times out.
    pub fn evict_half_open(&mut self) -> Option<ConnOf<F>> {
        for _ in 0..EVICT_SCAN {
            let rec = self.half_open.pop()?;
            if self.rec_live(rec) {
                return self.remove(ConnId(rec.idx));
            }
        }
        None
    }

    /// Whether `rec` still names a half-open entry.
    #[inline]
    fn rec_live(&self, rec: HalfOpenRec) -> bool {
        self.get(ConnId(rec.idx)).is_some_and(|c| is_half_open(c) && rec_tag(c) == rec.hash)
    }

    /// Records entry `idx` (a new DR/IPIP TCP entry) at the young end of the ring.
    fn record_half_open(&mut self, idx: u32) {
        let Some(c) = self.conns.get(idx as usize) else { return };
        let rec = HalfOpenRec { idx, hash: rec_tag(c) };
        let r = &self.half_open;
        if r.len == r.recs.len() {
            for _ in 0..EVICT_SCAN {
                match self.half_open.recs.get(self.half_open.head).copied() {
                    Some(head) if !self.rec_live(head) => {
                        self.half_open.pop();
                    }
                    _ => break,
                }
            }
        }
        self.half_open.push(rec);
    }

    /// Half-open records held (entries recorded as half-open, some since completed or
    /// gone; for tests and invariants).
    pub fn half_open_records(&self) -> usize {
        self.half_open.len
    }

    /// Sets the expiry of entry `id` to `left_ns` from `now_ns` (a connection installed
    /// from the peer keeps the time it had left there). The wheel's contract holds: the
    /// entry expires no earlier than `now_ns + left_ns` and at most one tick
    /// ([`TICK_NS`]) after, given `expire` runs every tick; a time already due (0) expires
    /// it at the next tick. A stale `id` changes nothing. The next packet re-arms the
    /// timeout of its state as usual.
    pub fn set_expires_in(&mut self, id: ConnId, now_ns: u64, left_ns: u64) {
        if !self.is_live(id) {
            return;
        }
        self.start(now_ns);
        let new = expiry_tick(now_ns, left_ns);
        self.unlink(id.0);
        self.conns[id.index()].expire = new;
        self.link(id.0, new);
    }

    /// The entry in slab slot `index`, if that slot holds one: a cursor over the slab
    /// ([`ConnTable::capacity`] slots) visits every entry that stays in the table once,
    /// a few slots at a time (sync's refresh and dump walks).
    #[inline]
    pub fn entry_at(&self, index: usize) -> Option<(ConnId, &ConnOf<F>)> {
        let c = self.conns.get(index).filter(|c| c.live)?;
        Some((ConnId(index as u32), c))
    }

    /// Removes the entry `id` from both keys and the wheel and returns it; `None` (and
    /// nothing changed) when `id` names no entry in the table now.
    pub fn remove(&mut self, id: ConnId) -> Option<ConnOf<F>> {
        if !self.is_live(id) {
            return None;
        }
        let c = self.conns[id.index()];
        self.unlink(id.0);
        self.unindex(id.0);
        self.free(id.0);
        let mut out = c;
        out.live = false;
        Some(out)
    }

    /// Advances the wheel to `now_ns`, removing every entry whose timeout has passed and
    /// calling `on_expired` on each just before it goes (to update server counters,
    /// release a Full-NAT port, …). Returns how many expired. Call it every few ms; a
    /// call within the same tick as the previous one returns at once, and a clock that
    /// goes backwards is ignored. Its work is proportional to the entries due (plus
    /// entries whose refreshed expiry is re-linked); use
    /// [`ConnTable::expire_at_most`] to bound it.
    pub fn expire(&mut self, now_ns: u64, on_expired: impl FnMut(&ConnOf<F>)) -> usize {
        self.expire_at_most(now_ns, usize::MAX, on_expired)
    }

    /// As [`ConnTable::expire`], but examines at most `max` entries (expired or re-linked),
    /// so that a mass expiry (a flood's half-open entries all timing out in the same tick)
    /// cannot stall the worker. Work left over is resumed by the next call; until then,
    /// entries due are late but never early. With `max == 0` nothing happens.
    pub fn expire_at_most(&mut self, now_ns: u64, max: usize, mut on_expired: impl FnMut(&ConnOf<F>)) -> usize {
        let now = (now_ns / TICK_NS) as u32;
        if !self.started {
            self.started = true;
            self.last_tick = now.wrapping_sub(1);
        }
        let gap = now.wrapping_sub(self.last_tick);
        if gap == 0 || gap > i32::MAX as u32 {
            return 0;
        }
        let (mut expired, mut budget) = (0, max);
        while self.last_tick != now && budget > 0 {
            if self.pending == NIL && now.wrapping_sub(self.last_tick) as usize > WHEEL_SLOTS {
                // More than a turn behind: the last turn before `now` visits every slot
                // once, each against a tick at or before `now`; an entry due earlier than
                // that turn expires at its slot's tick, one due within it at its own tick.
                self.last_tick = now.wrapping_sub(WHEEL_SLOTS as u32);
            }
            let t = self.last_tick.wrapping_add(1);
            if self.pending == NIL {
                let s = t as usize & (WHEEL_SLOTS - 1);
                let head = std::mem::replace(&mut self.wheel[s], NIL);
                if head != NIL {
                    self.conns[head as usize].prev = PENDING;
                }
                self.pending = head;
            }
            expired += self.drain_pending(t, &mut budget, &mut on_expired);
            if self.pending == NIL {
                self.last_tick = t;
            }
        }
        expired
    }

    /// Every entry with its id, in slab order. Walks the whole slab (control plane use).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &ConnOf<F>)> {
        self.conns.iter().enumerate().filter(|(_, c)| c.live).map(|(i, c)| (ConnId(i as u32), c))
    }

    /// When the wheel is not running yet, starts it at the tick before `now_ns`.
    fn start(&mut self, now_ns: u64) {
        if !self.started {
            self.started = true;
            self.last_tick = ((now_ns / TICK_NS) as u32).wrapping_sub(1);
        }
    }

    /// Expires or re-links the entries of the pending list at tick `cur`, within `budget`
    /// examined entries.
    fn drain_pending(&mut self, cur: u32, budget: &mut usize, on_expired: &mut impl FnMut(&ConnOf<F>)) -> usize {
        let mut n = 0;
        while self.pending != NIL && *budget > 0 {
            *budget -= 1;
            let e = self.pending;
            let c = &self.conns[e as usize];
            let (next, exp) = (c.next, c.expire);
            self.pending = next;
            if next != NIL {
                self.conns[next as usize].prev = PENDING;
            }
            if tick_le(exp, cur) {
                on_expired(&self.conns[e as usize]);
                self.unindex(e);
                self.free(e);
                n += 1;
            } else {
                self.link(e, exp);
            }
        }
        n
    }

    /// Links entry `idx` into the slot of tick `tick`, or of the first tick whose slot has
    /// not been taken up yet if `tick` is before it (processed, or being drained).
    fn link(&mut self, idx: u32, tick: u32) {
        let open = self.last_tick.wrapping_add(if self.pending == NIL { 1 } else { 2 });
        let t = if self.started && !tick_le(open, tick) { open } else { tick };
        let s = t as usize & (WHEEL_SLOTS - 1);
        let head = self.wheel[s];
        {
            let c = &mut self.conns[idx as usize];
            c.next = head;
            c.prev = HEAD | s as u32;
        }
        if head != NIL {
            self.conns[head as usize].prev = idx;
        }
        self.wheel[s] = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let c = &self.conns[idx as usize];
            (c.prev, c.next)
        };
        if prev == PENDING {
            self.pending = next;
        } else if prev & HEAD != 0 {
            self.wheel[(prev & !HEAD) as usize & (WHEEL_SLOTS - 1)] = next;
        } else {
            self.conns[prev as usize].next = next;
        }
        if next != NIL {
            self.conns[next as usize].prev = prev;
        }
    }

    fn free(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        c.live = false;
        c.next = self.free_head;
        self.syn_recv -= is_syn_recv(c.state);
        self.free_head = idx;
        self.len -= 1;
    }

    /// Puts `ent` in the first empty slot from its home.
    fn index_put(&mut self, hash: u32, ent: u32) {
        let n = self.index.len();
        let mut pos = self.home(hash);
        // The index is at most half full, so an empty slot is always found.
        for _ in 0..n {
            if self.index[pos] == EMPTY {
                self.index[pos] = self.slot(hash, ent);
                return;
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
    }

    /// Removes both index slots of entry `idx`.
    fn unindex(&mut self, idx: u32) {
        let c = &self.conns[idx as usize];
        let reply = c.has_reply_path();
        let ik = c.inbound_key();
        let rk = c.reply_key();
        self.index_del(&ik, idx << 1);
        if reply {
            self.index_del(&rk, (idx << 1) | 1);
        }
    }

    /// Deletes the slot holding `ent` (found from `key`'s home; by a full scan if the
    /// entry's key fields were changed against the contract) with backward shift.
    fn index_del(&mut self, key: &FlowKeyOf<F>, ent: u32) {
        let n = self.index.len();
        let mut pos = self.home(self.hash(key));
        let mut found = None;
        for _ in 0..n {
            let s = self.index[pos];
            if s == EMPTY {
                break;
            }
            if s & self.ent_mask == ent {
                found = Some(pos);
                break;
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
        let mask = self.ent_mask;
        let Some(mut hole) = found.or_else(|| self.index.iter().position(|&s| s != EMPTY && s & mask == ent)) else {
            return;
        };
        // Backward shift: pull later entries of the run into the hole when their home is
        // not cyclically after the hole.
        let mut j = hole;
        loop {
            j += 1;
            if j == n {
                j = 0;
            }
            let s = self.index[j];
            if s == EMPTY || j == hole {
                break;
            }
            // The slot keeps only a tag: its home comes from its entry's key (still
            // intact: entries are unindexed before they are freed).
            let home = self.home(self.hash(&self.key_of(s & mask)));
            let dist_home = (j + n - home) % n;
            let dist_hole = (j + n - hole) % n;
            if dist_home >= dist_hole {
                self.index[hole] = s;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
    }

    /// Checks the internal invariants (both keys of every live entry find it, every index
    /// slot points at a live entry under the right key, the wheel lists hold exactly the
    /// live entries with their slot at or before their expiry, the free list holds the
    /// rest). O(capacity); for tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut used = 0;
        for (i, &s) in self.index.iter().enumerate() {
            if s == EMPTY {
                continue;
            }
            used += 1;
            let ent = s & self.ent_mask;
            let e = (ent >> 1) as usize;
            let c = self.conns.get(e).ok_or(format!("slot {i} → {e} out of range"))?;
            if !c.live {
                return Err(format!("slot {i} → dead entry {e}"));
            }
            if self.slot(self.hash(&self.key_of(ent)), ent) != s {
                return Err(format!("slot {i} tag mismatch"));
            }
        }
        let mut live = 0;
        for (i, c) in self.conns.iter().enumerate() {
            if !c.live {
                continue;
            }
            live += 1;
            let id = ConnId(i as u32);
            if self.lookup(&c.inbound_key()) != Some((id, Direction::Inbound)) {
                return Err(format!("entry {i} not found by its inbound key"));
            }
            if c.has_reply_path() && self.lookup(&c.reply_key()) != Some((id, Direction::Reply)) {
                return Err(format!("entry {i} not found by its reply key"));
            }
        }
        let expect_used: usize =
            self.conns.iter().filter(|c| c.live).map(|c| if c.has_reply_path() { 2 } else { 1 }).sum();
        if live != self.len || used != expect_used {
            return Err(format!("len {} live {live} used slots {used} expected {expect_used}", self.len));
        }
        let mut in_wheel = 0;
        let heads = self.wheel.iter().enumerate().map(|(s, &h)| (HEAD | s as u32, h));
        for (head_prev, head) in heads.chain(std::iter::once((PENDING, self.pending))) {
            let s = head_prev & !HEAD;
            let mut e = head;
            let mut prev = head_prev;
            while e != NIL {
                let c = &self.conns[e as usize];
                if !c.live || c.prev != prev {
                    return Err(format!("wheel slot {s}: entry {e} dead or bad prev"));
                }
                in_wheel += 1;
                if in_wheel > self.len {
                    return Err("wheel cycle".into());
                }
                prev = e;
                e = c.next;
            }
        }
        let mut free = 0;
        let mut e = self.free_head;
        while e != NIL {
            free += 1;
            if free > self.capacity {
                return Err("free list cycle".into());
            }
            e = self.conns[e as usize].next;
        }
        if in_wheel != self.len || free + self.len != self.capacity {
            return Err(format!("wheel {in_wheel} free {free} len {}", self.len));
        }
        Ok(())
    }
}

/// `ceil((now + timeout) / TICK_NS)` as a wrapping tick.
#[inline]
fn expiry_tick(now_ns: u64, timeout_ns: u64) -> u32 {
    (now_ns.saturating_add(timeout_ns).saturating_add(TICK_NS - 1) / TICK_NS) as u32
}

/// The infallible constructors' answer to no memory: what `Vec` does (report and abort).
fn alloc_failed<F: Family>(e: AllocError) -> ConnTableOf<F> {
    let layout = std::alloc::Layout::from_size_align(e.bytes.min(isize::MAX as usize / 2), 4096)
        .unwrap_or(std::alloc::Layout::new::<u8>());
    std::alloc::handle_alloc_error(layout)
}

fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0x7276_735f_636f_6e6e_u64)
}

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ent` field is as narrow as the capacity allows and never reaches its
    /// all-ones value, which marks an empty slot.
    #[test]
    fn ent_field_widths() {
        for (entries, bits) in [(1, 2), (16, 6), (1_000_000, 21), (1 << 20, 22), (10_000_000, 25), (MAX_CAPACITY, 30)] {
            assert_eq!(ent_bits_for(entries), bits, "{entries} entries");
            let max_ent = ((entries as u64 - 1) << 1) | 1;
            assert!(max_ent < (1u64 << bits) - 1, "{entries} entries: the largest ent is the empty marker");
        }
    }
}
