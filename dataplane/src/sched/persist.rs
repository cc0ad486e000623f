//! Persistence (ipvsadm `-p TIMEOUT [-M NETMASK]`): a client — or a whole client network
//! under the netmask — keeps going to the server it was first scheduled to, on every
//! worker, until it has been idle for the timeout.
//!
//! Contract: [`PersistTable`] is one per persistent service, shared by all workers
//! (`Arc`), fixed capacity, lock-free, no allocation after [`PersistTable::new`]. A
//! lookup costs one hash and at most [`WINDOW`] atomic loads (two cache lines), plus one
//! compare-exchange when it inserts or refreshes.
//!
//! # Entry packing
//!
//! Each slot is one `AtomicU64`, so an entry is read and replaced as a whole:
//!
//! ```text
//!  63                      32 31          20 19                  0
//! +--------------------------+--------------+--------------------+
//! | masked client address    | server + 1   | expiry (coarse)    |
//! +--------------------------+--------------+--------------------+
//! ```
//!
//! * **address** — the client address ANDed with the netmask: the whole key, so a hit
//!   never confuses two clients.
//! * **server + 1** — 12 bits; 0 marks an empty slot, so server indices up to
//!   [`MAX_SERVER`] (4094) can persist. A larger index is returned but not stored.
//! * **expiry** — the time the entry dies, in units of `2^shift` seconds modulo 2^20.
//!   `shift` is the smallest that keeps the timeout under 2^18 units: one-second
//!   precision for timeouts up to three days. An entry is live while
//!   `0 < (expiry - now) mod 2^20 <= timeout + 1 unit`; that window is at most a quarter
//!   of the cycle, so an entry a few days past its expiry does not look live. An entry
//!   left untouched for a whole cycle (2^20 units, 12 days at one-second precision)
//!   would look live again for one timeout: [`PersistTable::sweep`] clears expired
//!   entries and the control plane should call it periodically (every few seconds is
//!   cheap; once a day is enough for correctness).
//!
//! Each hit refreshes the expiry (at most once per unit), so the timeout counts from the
//! client's last new connection, as an IPVS persistence template lives on while
//! connections use it.
//!
//! # Races between workers
//!
//! All changes are compare-exchanges of a whole slot; a failed one means another worker
//! changed that slot, and the lookup starts over (bounded). Two workers scheduling the
//! same new client at once both find no entry and both try the same first free slot:
//! one wins; the loser's compare-exchange fails, it re-reads, finds the winner's entry
//! and adopts the winner's server — both answer the same. The same holds when both try
//! to replace the same expired entry of that client.
//!
//! What the table does not guarantee (as IPVS, whose CPUs can also create two templates
//! for one client): if an unrelated entry earlier in the client's probe window expires
//! or is swept exactly between the two workers' scans, they may claim different slots,
//! and the client has two entries for a while; lookups then use the first one. This
//! needs an unrelated expiry inside a window of nanoseconds and costs one client's
//! persistence once.
//!
//! # IPv6 clients (`-M` as a prefix length)
//!
//! A table made by [`PersistTable::new_v6`] keys clients by their address cut to a
//! prefix length (ipvsadm's `-M 64` on an IPv6 service; 128, the default, is per
//! client). 128 bits do not fit beside the server and expiry in one word, so an IPv6 slot
//! is the same word plus the full masked prefix in two more atomics beside it
//! (`prefixes[i]`, written only by whoever holds the slot's claim):
//!
//! ```text
//!  63  62                   32 31          20 19                  0
//! +---+-----------------------+--------------+--------------------+
//! | C | tag (31 bits)         | server + 1   | expiry (coarse)    |
//! +---+-----------------------+--------------+--------------------+
//! ```
//!
//! * **tag** — 31 bits of a hash of the masked prefix (the home slot comes from the same
//!   hash). It only filters: a word whose tag matches is a hit only when the prefix
//!   stored beside it is exactly the client's, so two prefixes are never confused,
//!   whatever their hashes.
//! * **C** — the claim bit. A worker taking an empty or dead slot for a *new* prefix
//!   first compare-exchanges in the word with C set, then writes the prefix, then
//!   publishes the word without C (release). Nobody else writes that slot's prefix while
//!   C is set; a claimed word is never free, never swept and never adopted. A reader
//!   that meets a claimed word with its own tag retries (the claimant is a few stores
//!   from publishing); after [`MAX_ATTEMPTS`] it schedules without persisting, so a
//!   stalled claimant delays nobody. Refreshing or re-pointing a client's own entry keeps
//!   its prefix and is one compare-exchange, as for IPv4.
//! * Readers check a hit as a sequence lock does: word, prefix, word again; a slot
//!   re-claimed in between reads as changed and is looked at again.
//!
//! What the claim costs: a lookup of a new IPv6 prefix is one more compare-exchange and
//! two stores than IPv4's; lookups of known prefixes read two more words (one cache
//! line) per tag match. Nothing is allocated after [`PersistTable::new_v6`].
//!
//! # Full table
//!
//! Probing is bounded to a window of [`WINDOW`] slots from the client's home slot. When
//! every slot of the window holds a live entry of another client, the lookup returns
//! `choose()` without storing it: the client is scheduled normally but does not persist
//! (better than refusing service). Size the table for the expected clients (in IPVS terms,
//! the number of persistence templates) with room to spare; a load factor under 1/2
//! keeps this from happening.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use super::mix64;

/// The persistence clock of a time `now_ns` of the workers' clock (monotonic ns, the
/// `now` of [`crate::worker::Worker::poll_once`]): whole seconds. The control plane reads
/// and installs entries ([`PersistTable::entries`], [`PersistTable::install`],
/// `Service::persist_records`) with this of the same clock the workers run on.
pub fn persist_now_s(now_ns: u64) -> u32 {
    u32::try_from(now_ns / 1_000_000_000).unwrap_or(u32::MAX)
}

/// The largest server index that can persist (12 bits, minus the empty marker).
pub const MAX_SERVER: usize = 0xffe;
/// The most slots a table has (2 GiB of entries).
pub const MAX_CAPACITY: usize = 1 << 28;
/// Slots probed for one client.
pub const WINDOW: usize = 16;
/// Lookup restarts after lost compare-exchanges before giving up persisting.
const MAX_ATTEMPTS: usize = 8;

const EXP_BITS: u32 = 20;
const EXP_MASK: u64 = (1 << EXP_BITS) - 1;
const SRV_SHIFT: u32 = EXP_BITS;
const SRV_MASK: u64 = 0xfff;
const KEY_SHIFT: u32 = 32;
/// Timeouts stay under 2^18 units (a quarter of the expiry cycle).
const MAX_TIMEOUT_UNITS: u64 = 1 << 18;

const SEED: u64 = 0x7065_7273_6973_7421; // "persist!"

fn key_of(w: u64) -> u32 {
    (w >> KEY_SHIFT) as u32
}

/// The server index of a non-empty slot.
fn server_of(w: u64) -> usize {
    (((w >> SRV_SHIFT) & SRV_MASK) as usize).wrapping_sub(1)
}

fn is_empty(w: u64) -> bool {
    (w >> SRV_SHIFT) & SRV_MASK == 0
}

fn expiry_of(w: u64) -> u64 {
    w & EXP_MASK
}

fn pack(key: u32, server: usize, expiry: u64) -> u64 {
    (u64::from(key) << KEY_SHIFT) | (((server as u64 + 1) & SRV_MASK) << SRV_SHIFT) | (expiry & EXP_MASK)
}

/// A fixed-capacity, lock-free persistence table shared by all workers of a service.
#[derive(Debug)]
pub struct PersistTable {
    slots: Box<[AtomicU64]>,
    /// Network mask applied to client addresses.
    mask: u32,
    /// Expiry unit: 2^shift seconds.
    shift: u32,
    /// The timeout in units, rounded up.
    timeout_units: u64,
    timeout_s: u32,
    /// The IPv6 form's keys (tables made by [`PersistTable::new_v6`]); `None` for IPv4.
    v6: Option<Keys6>,
}

/// How an IPv6 table keys its clients (see "IPv6 clients" in the module docs).
#[derive(Debug)]
struct Keys6 {
    /// The prefix length (1..=128).
    prefix_len: u8,
    /// The mask of `prefix_len` leading ones.
    mask: u128,
    /// Each slot's masked prefix: high and low 64 bits. Written only under the slot's
    /// claim.
    prefixes: Box<[[AtomicU64; 2]]>,
}

/// Which clients share a persistent server: an IPv4 netmask (ipvsadm `-M 255.255.255.0`)
/// or an IPv6 prefix length (`-M 64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistMask {
    /// IPv4 clients ANDed with this netmask (255.255.255.255: per client).
    V4(Ipv4Addr),
    /// IPv6 clients cut to this prefix length (128: per client).
    V6(u8),
}

impl PersistMask {
    /// The per-client default of a family: 255.255.255.255 or 128.
    pub fn host(ipv6: bool) -> Self {
        if ipv6 {
            PersistMask::V6(128)
        } else {
            PersistMask::V4(Ipv4Addr::BROADCAST)
        }
    }

    /// Whether this is the family's per-client default.
    pub fn is_host(self) -> bool {
        self == PersistMask::V4(Ipv4Addr::BROADCAST) || self == PersistMask::V6(128)
    }
}

impl std::fmt::Display for PersistMask {
    /// As ipvsadm writes `-M`: `255.255.255.0`, or `64`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersistMask::V4(m) => m.fmt(f),
            PersistMask::V6(n) => n.fmt(f),
        }
    }
}

const CLAIM: u64 = 1 << 63;
const TAG_MASK: u32 = 0x7fff_ffff;
const SEED6: u64 = 0x7065_7273_6973_7436; // "persist6"

/// The masked prefix's hash: the home slot (all bits) and the tag (31 of them).
fn hash6(prefix: u128) -> (u64, u32) {
    let h = mix64((prefix >> 64) as u64 ^ mix64(prefix as u64 ^ SEED6));
    (h, ((h >> 32) as u32) & TAG_MASK)
}

fn claimed(w: u64) -> bool {
    w & CLAIM != 0
}

/// The tag of an IPv6 word (claim bit left out).
fn tag_of(w: u64) -> u32 {
    key_of(w) & TAG_MASK
}

/// What a scan of an IPv6 client's window found.
enum Found6 {
    /// The client's published entry: slot and word.
    Entry(usize, u64),
    /// No entry; the first slot that may take one.
    Free(usize, u64),
    /// A word with the client's tag is being claimed or changed under us: look again.
    Busy,
    /// No entry and no room.
    Full,
}

/// What a scan of a client's window found.
enum Found {
    /// The client's entry: slot and word.
    Entry(usize, u64),
    /// No entry; the first slot that may take one.
    Free(usize, u64),
    /// No entry and no room.
    Full,
}

impl PersistTable {
    /// A table of at least `capacity` slots (rounded up to a power of two, at least
    /// one, at most [`MAX_CAPACITY`]) for entries living `timeout_s` seconds after their last use, keyed by the
    /// client address ANDed with `netmask` (255.255.255.255 for per-client persistence,
    /// ipvsadm's default). A timeout of 0 disables persistence: entries are dead at birth.
    pub fn new(capacity: usize, timeout_s: u32, netmask: Ipv4Addr) -> Self {
        let cap = capacity.clamp(1, MAX_CAPACITY).next_power_of_two();
        let mut shift = 0;
        while u64::from(timeout_s) >> shift >= MAX_TIMEOUT_UNITS {
            shift += 1;
        }
        let timeout_units = u64::from(timeout_s).div_ceil(1 << shift);
        PersistTable {
            slots: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            mask: u32::from(netmask),
            shift,
            timeout_units,
            timeout_s,
            v6: None,
        }
    }

    /// A table for IPv6 clients, as [`PersistTable::new`], keyed by the client address
    /// cut to `prefix_len` bits (clamped to 1..=128; 128, ipvsadm's default for IPv6, is
    /// per client). Its lookups are [`PersistTable::lookup_or_insert6_if`],
    /// [`PersistTable::entries6`] and [`PersistTable::install6`]; the IPv4 ones find
    /// nothing in it (and the IPv6 ones nothing in an IPv4 table).
    pub fn new_v6(capacity: usize, timeout_s: u32, prefix_len: u8) -> Self {
        let mut t = Self::new(capacity, timeout_s, Ipv4Addr::UNSPECIFIED);
        let prefix_len = prefix_len.clamp(1, 128);
        t.v6 = Some(Keys6 {
            prefix_len,
            mask: u128::MAX << (128 - u32::from(prefix_len)),
            prefixes: (0..t.slots.len()).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect(),
        });
        t
    }

    /// Which clients share an entry: the IPv4 netmask or the IPv6 prefix length.
    pub fn mask(&self) -> PersistMask {
        match &self.v6 {
            Some(k) => PersistMask::V6(k.prefix_len),
            None => PersistMask::V4(self.netmask()),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The timeout, in seconds.
    pub fn timeout_s(&self) -> u32 {
        self.timeout_s
    }

    /// The network mask applied to IPv4 client addresses (0.0.0.0 in an IPv6 table:
    /// [`PersistTable::mask`] says which form a table has).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask)
    }

    /// Slots in use, including entries that have expired but are not yet reused or
    /// swept. O(capacity): for the control plane, not the fast path.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| !is_empty(s.load(Ordering::Relaxed))).count()
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_units(&self, now_s: u32) -> u64 {
        (u64::from(now_s) >> self.shift) & EXP_MASK
    }

    fn expiry_at(&self, now_s: u32) -> u64 {
        ((u64::from(now_s) + (u64::from(self.timeout_s))) >> self.shift) & EXP_MASK
    }

    /// Whether a non-empty word is still live at `now_units`.
    fn live(&self, w: u64, now_units: u64) -> bool {
        let left = expiry_of(w).wrapping_sub(now_units) & EXP_MASK;
        left != 0 && left <= self.timeout_units + 1
    }

    /// The prefix stored beside slot `i` of an IPv6 table, read as a sequence lock
    /// reads: `None` when slot `i` no longer holds `w` afterwards.
    fn prefix_at(&self, k: &Keys6, i: usize, w: u64) -> Option<u128> {
        let p = k.prefixes.get(i)?;
        let (hi, lo) = (p[0].load(Ordering::Relaxed), p[1].load(Ordering::Relaxed));
        std::sync::atomic::fence(Ordering::Acquire);
        (self.slots[i].load(Ordering::Relaxed) == w).then_some((u128::from(hi) << 64) | u128::from(lo))
    }

    fn scan6(&self, k: &Keys6, prefix: u128, home: u64, tag: u32, now_units: u64) -> Found6 {
        let n = self.slots.len();
        let mut free = None;
        for j in 0..WINDOW.min(n) {
            let i = (home as usize).wrapping_add(j) & (n - 1);
            let w = self.slots[i].load(Ordering::Acquire);
            if is_empty(w) {
                free = free.or(Some((i, w)));
                continue;
            }
            if tag_of(w) == tag {
                if claimed(w) {
                    return Found6::Busy;
                }
                match self.prefix_at(k, i, w) {
                    None => return Found6::Busy,
                    Some(p) if p == prefix => return Found6::Entry(i, w),
                    Some(_) => {} // another prefix with the same tag
                }
            }
            if free.is_none() && !claimed(w) && !self.live(w, now_units) {
                free = Some((i, w));
            }
        }
        match free {
            Some((i, w)) => Found6::Free(i, w),
            None => Found6::Full,
        }
    }

    /// Takes slot `i` (holding `old`, empty or dead) for `prefix`: claim, prefix, publish.
    fn claim6(&self, k: &Keys6, i: usize, old: u64, prefix: u128, word: u64) -> bool {
        if self.slots[i].compare_exchange(old, word | CLAIM, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        // Readers that see the new prefix must see the claim too (sequence lock).
        std::sync::atomic::fence(Ordering::Release);
        if let Some(p) = k.prefixes.get(i) {
            p[0].store((prefix >> 64) as u64, Ordering::Relaxed);
            p[1].store(prefix as u64, Ordering::Relaxed);
        }
        self.slots[i].store(word, Ordering::Release);
        true
    }

    /// The server of IPv6 `client`'s prefix, as [`PersistTable::lookup_or_insert_if`]
    /// does for IPv4 (same rules for `usable` and `choose`). On an IPv4 table: `choose()`,
    /// nothing stored.
    pub fn lookup_or_insert6_if(
        &self,
        client: Ipv6Addr,
        now_s: u32,
        usable: impl Fn(usize) -> bool,
        choose: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        let Some(k) = &self.v6 else { return choose() };
        let prefix = u128::from(client) & k.mask;
        let (home, tag) = hash6(prefix);
        let now_units = self.now_units(now_s);
        let expiry = self.expiry_at(now_s);
        let mut choose = Some(choose);
        let mut chosen: Option<Option<usize>> = None;
        let mut get_chosen = move || *chosen.get_or_insert_with(|| choose.take().and_then(|f| f()));
        for _ in 0..MAX_ATTEMPTS {
            match self.scan6(k, prefix, home, tag, now_units) {
                Found6::Entry(i, w) if self.live(w, now_units) && usable(server_of(w)) => {
                    let server = server_of(w);
                    if expiry_of(w) == expiry
                        || self.slots[i]
                            .compare_exchange(w, pack(tag, server, expiry), Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                    {
                        return Some(server);
                    }
                }
                // Our prefix, but dead or on an unusable server: re-point it (the prefix stays).
                Found6::Entry(i, w) => {
                    let server = get_chosen()?;
                    if server > MAX_SERVER {
                        return Some(server);
                    }
                    let word = pack(tag, server, expiry);
                    if self.slots[i].compare_exchange(w, word, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        return Some(server);
                    }
                }
                Found6::Free(i, w) => {
                    let server = get_chosen()?;
                    if server > MAX_SERVER {
                        return Some(server);
                    }
                    if self.claim6(k, i, w, prefix, pack(tag, server, expiry)) {
                        return Some(server);
                    }
                }
                Found6::Busy => std::hint::spin_loop(),
                Found6::Full => return get_chosen(),
            }
        }
        get_chosen()
    }

    /// The live entries of an IPv6 table at `now_s`, as [`PersistTable::entries`]: the
    /// masked prefix (an address with the host bits zero), the server index and the
    /// seconds left. Nothing for an IPv4 table. An entry changing while it is read is
    /// left out (it is new: the next export has it).
    pub fn entries6(&self, now_s: u32) -> impl Iterator<Item = (Ipv6Addr, usize, u32)> + '_ {
        let now_units = self.now_units(now_s);
        self.v6.iter().flat_map(move |k| {
            self.slots.iter().enumerate().filter_map(move |(i, slot)| {
                let w = slot.load(Ordering::Acquire);
                if is_empty(w) || claimed(w) || !self.live(w, now_units) {
                    return None;
                }
                let prefix = self.prefix_at(k, i, w)?;
                let left_units = expiry_of(w).wrapping_sub(now_units) & EXP_MASK;
                let left_s = u32::try_from(left_units << self.shift).unwrap_or(u32::MAX).min(self.timeout_s);
                Some((Ipv6Addr::from(prefix), server_of(w), left_s))
            })
        })
    }

    /// Installs an IPv6 entry from the peer, as [`PersistTable::install`] does for IPv4.
    /// `false` on an IPv4 table too.
    pub fn install6(&self, client: Ipv6Addr, server: usize, left_s: u32, now_s: u32) -> bool {
        let Some(k) = &self.v6 else { return false };
        if left_s == 0 || server > MAX_SERVER || self.timeout_s == 0 {
            return false;
        }
        let prefix = u128::from(client) & k.mask;
        let (home, tag) = hash6(prefix);
        let now_units = self.now_units(now_s);
        let left = left_s.min(self.timeout_s);
        let expiry = ((u64::from(now_s) + u64::from(left)) >> self.shift) & EXP_MASK;
        let word = pack(tag, server, expiry);
        for _ in 0..MAX_ATTEMPTS {
            match self.scan6(k, prefix, home, tag, now_units) {
                Found6::Entry(i, w) => {
                    if w == word || self.slots[i].compare_exchange(w, word, Ordering::AcqRel, Ordering::Acquire).is_ok()
                    {
                        return true;
                    }
                }
                Found6::Free(i, w) => {
                    if self.claim6(k, i, w, prefix, word) {
                        return true;
                    }
                }
                Found6::Busy => std::hint::spin_loop(),
                Found6::Full => return false,
            }
        }
        false
    }

    fn scan(&self, key: u32, now_units: u64) -> Found {
        let n = self.slots.len();
        let home = mix64(u64::from(key) ^ SEED) as usize;
        let mut free = None;
        for k in 0..WINDOW.min(n) {
            let i = (home.wrapping_add(k)) & (n - 1);
            let w = self.slots[i].load(Ordering::Acquire);
            if is_empty(w) {
                free = free.or(Some((i, w)));
            } else if key_of(w) == key {
                return Found::Entry(i, w);
            } else if free.is_none() && !self.live(w, now_units) {
                free = Some((i, w));
            }
        }
        match free {
            Some((i, w)) => Found::Free(i, w),
            None => Found::Full,
        }
    }

    /// The server of `client`'s network: its live entry's, or else `choose()`'s (then
    /// stored, unless it is `None`, above [`MAX_SERVER`], or the table window is full).
    /// Same as [`PersistTable::lookup_or_insert_if`] with every server usable.
    pub fn lookup_or_insert(
        &self,
        client: Ipv4Addr,
        now_s: u32,
        choose: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        self.lookup_or_insert_if(client, now_s, |_| true, choose)
    }

    /// The server of `client`'s network, as [`PersistTable::lookup_or_insert`], where a
    /// live entry whose server fails `usable` (e.g. `|i| servers[i].available()`) is
    /// replaced by `choose()`'s server. `choose` runs at most once, and only when no
    /// usable entry exists.
    ///
    /// On an IPv6 table ([`PersistTable::new_v6`]): `choose()`, nothing stored.
    ///
    /// IPVS keeps sending a persistent client to a quiescent (weight 0) server unless the
    /// `expire_quiescent_template` sysctl is set; pass a `usable` that tests only that
    /// the server still exists to get IPVS's default, or `available()` for the sysctl's
    /// behaviour.
    pub fn lookup_or_insert_if(
        &self,
        client: Ipv4Addr,
        now_s: u32,
        usable: impl Fn(usize) -> bool,
        choose: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        if self.v6.is_some() {
            return choose();
        }
        let key = u32::from(client) & self.mask;
        let now_units = self.now_units(now_s);
        let expiry = self.expiry_at(now_s);
        let mut choose = Some(choose);
        let mut chosen: Option<Option<usize>> = None;
        let mut get_chosen = move || *chosen.get_or_insert_with(|| choose.take().and_then(|f| f()));
        // A word that is this client's live entry with a usable server: its server.
        let adopt = |w: u64| {
            (key_of(w) == key && !is_empty(w) && self.live(w, now_units) && usable(server_of(w))).then(|| server_of(w))
        };
        for _ in 0..MAX_ATTEMPTS {
            let (i, old, server) = match self.scan(key, now_units) {
                Found::Entry(i, w) if adopt(w).is_some() => {
                    let server = server_of(w);
                    if expiry_of(w) == expiry {
                        return Some(server);
                    }
                    // Refresh. If another worker changed the entry meanwhile, take what
                    // it wrote when that is still this client's (it refreshed or replaced
                    // it); otherwise look again.
                    match self.slots[i].compare_exchange(
                        w,
                        pack(key, server, expiry),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Some(server),
                        Err(now) => match adopt(now) {
                            Some(s) => return Some(s),
                            None => continue,
                        },
                    }
                }
                // Our entry, but dead or pointing at an unusable server: replace it.
                Found::Entry(i, w) | Found::Free(i, w) => (i, w, get_chosen()?),
                Found::Full => return get_chosen(),
            };
            if server > MAX_SERVER {
                return Some(server);
            }
            // On failure another worker changed the slot first: when it wrote this
            // client's entry (it won the race to schedule it), adopt its server;
            // otherwise look again.
            match self.slots[i].compare_exchange(old, pack(key, server, expiry), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(server),
                Err(now) => {
                    if let Some(s) = adopt(now) {
                        return Some(s);
                    }
                }
            }
        }
        // Lost every race (heavy contention on this window): schedule without persisting.
        get_chosen()
    }

    /// Every entry live at `now_s`: the masked client address, the server index and the
    /// seconds left before it expires (to the table's precision, `2^shift` seconds: one
    /// second for timeouts up to three days; never more than the timeout). O(capacity), for
    /// the control plane (connection sync), not the fast path.
    pub fn entries(&self, now_s: u32) -> impl Iterator<Item = (Ipv4Addr, usize, u32)> + '_ {
        let now_units = self.now_units(now_s);
        let slots = if self.v6.is_some() { &self.slots[..0] } else { &self.slots[..] };
        slots.iter().filter_map(move |slot| {
            let w = slot.load(Ordering::Acquire);
            if is_empty(w) || !self.live(w, now_units) {
                return None;
            }
            let left_units = expiry_of(w).wrapping_sub(now_units) & EXP_MASK;
            let left_s = u32::try_from(left_units << self.shift).unwrap_or(u32::MAX).min(self.timeout_s);
            Some((Ipv4Addr::from(key_of(w)), server_of(w), left_s))
        })
    }

    /// Installs an entry from the peer (connection sync): `client`'s network (masked
    /// here) persists to server `server` for `left_s` more seconds from `now_s` (at most
    /// the timeout). An entry of that network is replaced, whatever its server (the
    /// peer's word is the latest); otherwise a free or dead slot of its window is taken.
    /// `false` when nothing was stored: `left_s` 0, a server above [`MAX_SERVER`], a full
    /// window, or lost races to the workers on every attempt.
    pub fn install(&self, client: Ipv4Addr, server: usize, left_s: u32, now_s: u32) -> bool {
        if left_s == 0 || server > MAX_SERVER || self.timeout_s == 0 || self.v6.is_some() {
            return false;
        }
        let key = u32::from(client) & self.mask;
        let now_units = self.now_units(now_s);
        let left = left_s.min(self.timeout_s);
        let expiry = ((u64::from(now_s) + u64::from(left)) >> self.shift) & EXP_MASK;
        let word = pack(key, server, expiry);
        for _ in 0..MAX_ATTEMPTS {
            let (i, old) = match self.scan(key, now_units) {
                Found::Entry(i, w) | Found::Free(i, w) => (i, w),
                Found::Full => return false,
            };
            if old == word || self.slots[i].compare_exchange(old, word, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return true;
            }
        }
        false
    }

    /// Clears every entry that is dead at `now_s`; returns how many. O(capacity), for the
    /// control plane's periodic housekeeping (see the module header for why it matters).
    pub fn sweep(&self, now_s: u32) -> usize {
        let now_units = self.now_units(now_s);
        let mut cleared = 0;
        for slot in self.slots.iter() {
            let w = slot.load(Ordering::Acquire);
            if !is_empty(w)
                && !claimed(w)
                && !self.live(w, now_units)
                && slot.compare_exchange(w, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                cleared += 1;
            }
        }
        cleared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 | n)
    }

    #[test]
    fn packing_round_trips() {
        let w = pack(0xc0a8_0101, 4094, 0xabcde);
        assert_eq!((key_of(w), server_of(w), expiry_of(w)), (0xc0a8_0101, 4094, 0xabcde));
        assert!(!is_empty(w));
        assert!(is_empty(0));
        assert!(!is_empty(pack(0, 0, 0)), "client 0.0.0.0 to server 0 is an entry");
    }

    #[test]
    fn same_client_same_server_until_expiry() {
        let t = PersistTable::new(64, 300, Ipv4Addr::BROADCAST);
        assert_eq!(t.lookup_or_insert(ip(1), 1000, || Some(2)), Some(2));
        assert_eq!(t.lookup_or_insert(ip(1), 1200, || panic!("must not choose")), Some(2));
        // Refreshed at 1200: alive until 1500.
        assert_eq!(t.lookup_or_insert(ip(1), 1499, || panic!("must not choose")), Some(2));
        assert_eq!(t.lookup_or_insert(ip(1), 1798, || panic!("must not choose")), Some(2));
        assert_eq!(t.lookup_or_insert(ip(1), 2100, || Some(5)), Some(5), "expired after 300 s idle");
        assert_eq!(t.lookup_or_insert(ip(2), 2100, || Some(1)), Some(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.sweep(2399), 0);
        assert_eq!(t.sweep(2401), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn netmask_groups_clients() {
        let t = PersistTable::new(64, 60, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(t.lookup_or_insert(Ipv4Addr::new(10, 0, 5, 1), 0, || Some(3)), Some(3));
        assert_eq!(t.lookup_or_insert(Ipv4Addr::new(10, 0, 5, 200), 1, || Some(0)), Some(3));
        assert_eq!(t.lookup_or_insert(Ipv4Addr::new(10, 0, 6, 1), 1, || Some(0)), Some(0));
    }

    #[test]
    fn unusable_server_is_replaced() {
        let t = PersistTable::new(16, 60, Ipv4Addr::BROADCAST);
        assert_eq!(t.lookup_or_insert(ip(1), 0, || Some(1)), Some(1));
        assert_eq!(t.lookup_or_insert_if(ip(1), 1, |i| i != 1, || Some(2)), Some(2));
        assert_eq!(t.lookup_or_insert(ip(1), 2, || panic!("must not choose")), Some(2));
        assert_eq!(t.lookup_or_insert_if(ip(1), 3, |_| false, || None), None, "nobody can take it");
    }

    #[test]
    fn full_table_schedules_without_persisting() {
        let t = PersistTable::new(4, 60, Ipv4Addr::BROADCAST);
        for n in 0..4 {
            assert_eq!(t.lookup_or_insert(ip(n), 0, || Some(n as usize)), Some(n as usize));
        }
        assert_eq!(t.len(), 4);
        let calls = Cell::new(0);
        for _ in 0..3 {
            let r = t.lookup_or_insert(ip(99), 1, || {
                calls.set(calls.get() + 1);
                Some(7)
            });
            assert_eq!(r, Some(7));
        }
        assert_eq!(calls.get(), 3, "not stored: chosen every time");
        assert_eq!(t.lookup_or_insert(ip(2), 1, || panic!("must not choose")), Some(2));
        // Once entries expire their slots are reused.
        assert_eq!(t.lookup_or_insert(ip(99), 100, || Some(7)), Some(7));
        assert_eq!(t.lookup_or_insert(ip(99), 101, || panic!("must not choose")), Some(7));
    }

    #[test]
    fn large_indices_and_timeouts() {
        let t = PersistTable::new(8, 60, Ipv4Addr::BROADCAST);
        assert_eq!(t.lookup_or_insert(ip(1), 0, || Some(MAX_SERVER + 1)), Some(MAX_SERVER + 1));
        assert!(t.is_empty());
        assert_eq!(t.lookup_or_insert(ip(1), 0, || Some(MAX_SERVER)), Some(MAX_SERVER));
        // A week-long timeout uses 4-second units.
        let week = 7 * 24 * 3600;
        let t = PersistTable::new(8, week, Ipv4Addr::BROADCAST);
        assert_eq!(t.shift, 2);
        assert_eq!(t.lookup_or_insert(ip(1), 10, || Some(1)), Some(1));
        assert_eq!(t.lookup_or_insert(ip(1), 10 + week - 4, || panic!("must not choose")), Some(1));
        assert_eq!(t.lookup_or_insert(ip(1), 10 + 2 * week, || Some(2)), Some(2));
        // Timeout 0: nothing persists.
        let t = PersistTable::new(8, 0, Ipv4Addr::BROADCAST);
        assert_eq!(t.lookup_or_insert(ip(1), 5, || Some(1)), Some(1));
        assert_eq!(t.lookup_or_insert(ip(1), 5, || Some(2)), Some(2));
        // Expiry across the u32 wrap of the clock.
        let t = PersistTable::new(8, 60, Ipv4Addr::BROADCAST);
        assert_eq!(t.lookup_or_insert(ip(1), u32::MAX - 10, || Some(1)), Some(1));
        assert_eq!(t.lookup_or_insert(ip(1), 20, || panic!("must not choose")), Some(1));
    }

    #[test]
    fn dead_long_ago_stays_dead() {
        // Dead from 300 s on; the expiry field would only alias again 2^20 s later.
        for later in [301, 10_000, 200_000, 500_000, 700_000, 1_000_000] {
            let t = PersistTable::new(8, 300, Ipv4Addr::BROADCAST);
            assert_eq!(t.lookup_or_insert(ip(1), 0, || Some(1)), Some(1));
            assert_eq!(t.lookup_or_insert(ip(1), later, || Some(2)), Some(2), "at {later}");
        }
    }

    #[test]
    fn entries_export_and_install_round_trip() {
        let mask = Ipv4Addr::new(255, 255, 255, 0);
        let master = PersistTable::new(64, 300, mask);
        assert_eq!(master.lookup_or_insert(Ipv4Addr::new(10, 0, 5, 7), 1000, || Some(2)), Some(2));
        assert_eq!(master.lookup_or_insert(Ipv4Addr::new(10, 0, 6, 7), 1100, || Some(1)), Some(1));
        assert_eq!(master.lookup_or_insert(ip(9), 100, || Some(0)), Some(0), "dead by 1200");
        let mut out: Vec<_> = master.entries(1200).collect();
        out.sort();
        assert_eq!(out, vec![(Ipv4Addr::new(10, 0, 5, 0), 2, 100), (Ipv4Addr::new(10, 0, 6, 0), 1, 200)]);

        let backup = PersistTable::new(64, 300, mask);
        // An entry of another server for the same network is replaced by the peer's.
        assert_eq!(backup.lookup_or_insert(Ipv4Addr::new(10, 0, 6, 1), 1150, || Some(3)), Some(3));
        for &(client, server, left) in &out {
            assert!(backup.install(client, server, left, 1200));
        }
        let mut back: Vec<_> = backup.entries(1200).collect();
        back.sort();
        assert_eq!(back, out);
        assert_eq!(backup.lookup_or_insert(Ipv4Addr::new(10, 0, 5, 99), 1250, || panic!("must not choose")), Some(2));
        assert_eq!(backup.lookup_or_insert(Ipv4Addr::new(10, 0, 6, 1), 1399, || panic!("must not choose")), Some(1));
        assert_eq!(backup.entries(1700).count(), 0, "both expired after their last use");
        assert!(!backup.install(ip(1), 1, 0, 1200), "nothing left");
        assert!(!backup.install(ip(1), MAX_SERVER + 1, 10, 1200), "server too large to persist");
        assert!(backup.install(ip(1), 1, 10_000, 1200), "clamped to the timeout");
        assert_eq!(backup.entries(1200).find(|e| e.0 == Ipv4Addr::new(10, 0, 0, 0)).map(|e| e.2), Some(300));
        assert_eq!(persist_now_s(2_500_000_000), 2);
        assert_eq!(persist_now_s(u64::MAX), u32::MAX);
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_prefix_groups_clients_and_expires() {
        let t = PersistTable::new_v6(64, 300, 64);
        assert_eq!(t.mask(), PersistMask::V6(64));
        assert_eq!(t.lookup_or_insert6_if(ip6("2001:db8:1:2::7"), 1000, |_| true, || Some(2)), Some(2));
        let same = ip6("2001:db8:1:2:ffff::1");
        assert_eq!(t.lookup_or_insert6_if(same, 1100, |_| true, || panic!("same /64")), Some(2));
        assert_eq!(t.lookup_or_insert6_if(ip6("2001:db8:1:3::7"), 1100, |_| true, || Some(1)), Some(1));
        // Refreshed at 1100: alive until 1400.
        assert_eq!(t.lookup_or_insert6_if(same, 1399, |_| true, || panic!("alive")), Some(2));
        assert_eq!(t.lookup_or_insert6_if(same, 1399 + 301, |_| true, || Some(0)), Some(0), "expired");
        assert_eq!(t.lookup_or_insert6_if(same, 1701, |i| i != 0, || Some(3)), Some(3), "unusable replaced");
        let mut e: Vec<_> = t.entries6(1701).collect();
        e.sort();
        assert_eq!(e, vec![(ip6("2001:db8:1:2::"), 3, 300)]);
        assert_eq!(t.entries(1701).count(), 0, "an IPv6 table has no IPv4 entries");
        assert_eq!(t.sweep(1701), 1, "2001:db8:1:3::/64 is dead");
        assert_eq!(t.len(), 1);
        // Per client (128) and the family guards.
        let t = PersistTable::new_v6(64, 60, 128);
        assert_eq!(t.lookup_or_insert6_if(ip6("2001:db8::1"), 0, |_| true, || Some(1)), Some(1));
        assert_eq!(t.lookup_or_insert6_if(ip6("2001:db8::2"), 0, |_| true, || Some(2)), Some(2));
        assert_eq!(t.lookup_or_insert(ip(1), 0, || Some(3)), Some(3));
        assert_eq!(t.len(), 2, "an IPv4 client is not stored in an IPv6 table");
        assert!(!t.install(ip(1), 1, 10, 0));
        let v4 = PersistTable::new(64, 60, Ipv4Addr::BROADCAST);
        assert_eq!(v4.lookup_or_insert6_if(ip6("2001:db8::1"), 0, |_| true, || Some(1)), Some(1));
        assert!(v4.is_empty() && !v4.install6(ip6("2001:db8::1"), 1, 10, 0) && v4.entries6(0).count() == 0);
        assert_eq!(v4.mask(), PersistMask::V4(Ipv4Addr::BROADCAST));
        assert_eq!(PersistTable::new_v6(8, 60, 0).mask(), PersistMask::V6(1), "clamped to 1..=128");
        assert_eq!(PersistMask::V6(64).to_string(), "64");
        assert!(PersistMask::host(true).is_host() && PersistMask::host(false).is_host());
        assert!(!PersistMask::V6(64).is_host());
    }

    /// Two prefixes whose tags collide (found by search: 31-bit tags collide among a few
    /// hundred thousand prefixes).
    fn colliding_prefixes() -> (Ipv6Addr, Ipv6Addr) {
        let mut seen = std::collections::HashMap::new();
        for n in 0u128..2_000_000 {
            let p = (0x2001_0db8u128 << 96) | (n << 64);
            if let Some(&q) = seen.get(&hash6(p).1) {
                return (Ipv6Addr::from(q), Ipv6Addr::from(p));
            }
            seen.insert(hash6(p).1, p);
        }
        panic!("no collision among 2,000,000 tags of 31 bits");
    }

    #[test]
    fn ipv6_tag_collisions_never_share_a_server() {
        let (a, b) = colliding_prefixes();
        assert_eq!(hash6(u128::from(a)).1, hash6(u128::from(b)).1);
        // A table of one window: every slot is in both prefixes' windows.
        let t = PersistTable::new_v6(WINDOW, 300, 64);
        assert_eq!(t.lookup_or_insert6_if(a, 0, |_| true, || Some(1)), Some(1));
        assert_eq!(t.lookup_or_insert6_if(b, 0, |_| true, || Some(2)), Some(2), "b is not a's");
        assert_eq!(t.lookup_or_insert6_if(a, 1, |_| true, || panic!("a persisted")), Some(1));
        assert_eq!(t.lookup_or_insert6_if(b, 1, |_| true, || panic!("b persisted")), Some(2));
        let mut e: Vec<_> = t.entries6(1).collect();
        e.sort();
        let mut want = vec![(a, 1, 300), (b, 2, 300)];
        want.sort();
        assert_eq!(e, want);
        // The peer's records go to the right prefix too.
        let backup = PersistTable::new_v6(WINDOW, 300, 64);
        assert!(backup.install6(b, 2, 100, 0) && backup.install6(a, 1, 100, 0));
        assert!(backup.install6(b, 3, 100, 0), "replaces b's only");
        assert_eq!(backup.lookup_or_insert6_if(a, 1, |_| true, || panic!("a installed")), Some(1));
        assert_eq!(backup.lookup_or_insert6_if(b, 1, |_| true, || panic!("b installed")), Some(3));
        assert_eq!(backup.len(), 2);
    }

    #[test]
    fn ipv6_full_window_schedules_without_persisting() {
        let t = PersistTable::new_v6(4, 60, 128);
        for n in 0..4u16 {
            let c = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n);
            assert_eq!(t.lookup_or_insert6_if(c, 0, |_| true, || Some(usize::from(n))), Some(usize::from(n)));
        }
        let extra = ip6("2001:db8::99");
        assert_eq!(t.lookup_or_insert6_if(extra, 1, |_| true, || Some(7)), Some(7));
        assert_eq!(t.lookup_or_insert6_if(extra, 1, |_| true, || Some(8)), Some(8), "not stored");
        assert_eq!(t.len(), 4);
        assert_eq!(t.lookup_or_insert6_if(extra, 100, |_| true, || Some(7)), Some(7), "dead slots reused");
        assert_eq!(t.lookup_or_insert6_if(extra, 101, |_| true, || panic!("stored")), Some(7));
        assert_eq!(t.lookup_or_insert6_if(extra, 101, |_| true, || Some(MAX_SERVER + 1)), Some(7));
        assert!(!t.install6(extra, MAX_SERVER + 1, 10, 101) && !t.install6(extra, 1, 0, 101));
    }

    proptest::proptest! {
        /// Against a model (prefix -> server, last use): every lookup answers what the model
        /// says while the entry lives, a new pick once it has expired, and the table never
        /// holds more entries than prefixes seen or than its capacity.
        #[test]
        fn ipv6_matches_a_model(
            prefix_len in 1u8..=128,
            ops in proptest::collection::vec((0u16..48, 0u16..0x100, 0u32..40, 0usize..6), 1..300),
        ) {
            let timeout = 30;
            let t = PersistTable::new_v6(1024, timeout, prefix_len);
            let mask = u128::MAX << (128 - u32::from(prefix_len));
            let mut model: std::collections::HashMap<u128, (usize, u32)> = Default::default();
            let mut now = 0u32;
            for (net, host, dt, pick) in ops {
                now += dt;
                let c = Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, host);
                let key = u128::from(c) & mask;
                let want = match model.get(&key) {
                    Some(&(s, last)) if now - last < timeout => s,
                    _ => pick,
                };
                let got = t.lookup_or_insert6_if(c, now, |_| true, || Some(pick));
                proptest::prop_assert_eq!(got, Some(want));
                model.insert(key, (want, now));
                proptest::prop_assert!(t.len() <= model.len().min(t.capacity()));
                for (p, s, left) in t.entries6(now) {
                    let (ms, last) = model[&u128::from(p)];
                    proptest::prop_assert_eq!(s, ms);
                    proptest::prop_assert!(left <= timeout && now - last < timeout);
                }
            }
        }
    }
}
