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
//! # Full table
//!
//! Probing is bounded to a window of [`WINDOW`] slots from the client's home slot. When
//! every slot of the window holds a live entry of another client, the lookup returns
//! `choose()` without storing it: the client is scheduled normally but does not persist
//! (better than refusing service). Size the table for the expected clients (in IPVS terms,
//! the number of persistence templates) with room to spare; a load factor under 1/2
//! keeps this from happening.

use std::net::Ipv4Addr;
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

    /// The network mask applied to client addresses.
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
        self.slots.iter().filter_map(move |slot| {
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
        if left_s == 0 || server > MAX_SERVER || self.timeout_s == 0 {
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
}
