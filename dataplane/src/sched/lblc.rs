//! Locality-based least connections, lblc and lblcr (IPVS `ip_vs_lblc.c`,
//! `ip_vs_lblcr.c`): remember which server (lblc) or set of servers (lblcr) serves a
//! destination address, and keep sending that destination there until the server is
//! "overloaded".
//!
//! Contract: each worker keeps its own bounded table ([`TABLE_SLOTS`] entries, allocated
//! when the scheduler is built; a pick never allocates). In rvs the destination of a new
//! flow is always its service's VIP, so a service uses one entry per VIP; workers may
//! settle on different servers for the same VIP (IPVS shares one table under a lock;
//! rvs keeps the fast path lock-free and accepts per-worker locality).
//!
//! * An entry unused for `lblc_expire_ns` (default 24 h, IPVS's `lblc_expiration`) is
//!   forgotten. When the table window of a key is full, the least recently used entry
//!   of the window is replaced (IPVS instead garbage-collects by time and table size).
//! * New destinations and rescheduling use weighted least connections (IPVS's
//!   `__ip_vs_lblc_schedule` is wlc).
//! * **Overloaded** (IPVS's `is_overloaded` for lblc/lblcr): a server is overloaded when
//!   its active connections exceed its weight *and* some other available server has
//!   fewer active connections than half its weight (`active * 2 < weight`). A busy
//!   server stays in use while every server is busy; the mapping moves only when a
//!   clearly lighter one exists. IPVS also counts servers that are over their upper
//!   threshold as "lighter"; rvs counts only available ones, since an unavailable
//!   server cannot take the flow anyway.
//! * A server that is not available (weight 0 or over its upper threshold) is never
//!   returned, whatever the table says.
//! * lblcr: each entry holds a set of up to [`SET_MAX`] servers; a pick takes the set's
//!   least loaded member (wlc), adds the wlc choice of all servers when that member is
//!   overloaded (replacing the set's most loaded member when the set is full), and drops
//!   the most loaded member when the set has more than one and has not changed for
//!   `lblc_expire_ns` (IPVS's `lblcr_expiration`, default 24 h).

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{conn_overhead, mix64, per_weight_gt, usable, wlc_pick, SchedInput, Scheduler};

/// Entries in one worker's table (a power of two). Small: in rvs a service's flows all
/// have its VIP as destination.
pub const TABLE_SLOTS: usize = 64;
/// Slots examined for one key.
const WINDOW: usize = 8;
/// The most servers in one lblcr set.
pub const SET_MAX: usize = 8;

/// IPVS's lblc/lblcr overload rule; see the module header.
fn overloaded(servers: &[RealServer], i: usize) -> bool {
    let Some(s) = servers.get(i) else { return true };
    s.stats.active_conns() > u64::from(s.weight)
        && servers.iter().any(|d| d.available() && d.stats.active_conns().saturating_mul(2) < u64::from(d.weight))
}

#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    key: u32,
    last_use_ns: u64,
    value: V,
}

/// A small open-addressing map from destination address to `V`, with expiry by last use.
#[derive(Debug)]
struct LocalTable<V> {
    slots: Box<[Option<Slot<V>>]>,
    expire_ns: u64,
}

impl<V: Copy> LocalTable<V> {
    fn new(expire_ns: u64) -> Self {
        LocalTable { slots: vec![None; TABLE_SLOTS].into_boxed_slice(), expire_ns }
    }

    fn window(key: u32) -> impl Iterator<Item = usize> {
        let home = mix64(u64::from(key)) as usize;
        (0..WINDOW).map(move |k| (home + k) % TABLE_SLOTS)
    }

    fn live(&self, slot: &Slot<V>, now_ns: u64) -> bool {
        now_ns.saturating_sub(slot.last_use_ns) <= self.expire_ns
    }

    /// The live entry of `key`.
    fn get_mut(&mut self, key: u32, now_ns: u64) -> Option<&mut Slot<V>> {
        let at = Self::window(key).find(|&k| self.slots[k].as_ref().is_some_and(|s| s.key == key))?;
        let expire_ns = self.expire_ns;
        let slot = self.slots[at].as_mut()?;
        (now_ns.saturating_sub(slot.last_use_ns) <= expire_ns).then_some(slot)
    }

    /// Sets `key`'s entry: in its own slot if it has one, else in a free or expired slot,
    /// else over the least recently used entry of its window.
    fn insert(&mut self, key: u32, now_ns: u64, value: V) {
        let mut target = None;
        let mut lru: Option<(usize, u64)> = None;
        for k in Self::window(key) {
            match &self.slots[k] {
                Some(s) if s.key == key => {
                    target = Some(k);
                    break;
                }
                Some(s) if self.live(s, now_ns) => {
                    if lru.is_none_or(|(_, t)| s.last_use_ns < t) {
                        lru = Some((k, s.last_use_ns));
                    }
                }
                _ => {
                    target = target.or(Some(k));
                }
            }
        }
        if let Some(k) = target.or(lru.map(|(k, _)| k)) {
            self.slots[k] = Some(Slot { key, last_use_ns: now_ns, value });
        }
    }
}

/// lblc: one server per destination.
#[derive(Debug)]
pub struct Lblc {
    table: LocalTable<u16>,
}

impl Lblc {
    /// A worker's lblc with entries expiring after `expire_ns` unused.
    pub fn new(expire_ns: u64) -> Self {
        Lblc { table: LocalTable::new(expire_ns) }
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
    }

    fn pick(&mut self, servers: &[RealServer], input: &SchedInput) -> Option<usize> {
        let key = input.vip;
        if let Some(slot) = self.table.get_mut(key, input.now_ns) {
            let i = usize::from(slot.value);
            if usable(servers, i) && !overloaded(servers, i) {
                slot.last_use_ns = input.now_ns;
                return Some(i);
            }
        }
        let i = wlc_pick(servers)?;
        self.table.insert(key, input.now_ns, i as u16);
        Some(i)
    }
}

/// An lblcr server set.
#[derive(Debug, Clone, Copy)]
struct ServerSet {
    members: [u16; SET_MAX],
    len: u8,
    last_mod_ns: u64,
}

impl ServerSet {
    fn single(i: usize, now_ns: u64) -> Self {
        let mut members = [0; SET_MAX];
        members[0] = i as u16;
        ServerSet { members, len: 1, last_mod_ns: now_ns }
    }

    fn members(&self) -> &[u16] {
        &self.members[..usize::from(self.len).min(SET_MAX)]
    }

    /// The usable member with the least overhead per weight (IPVS's `ip_vs_dest_set_min`).
    fn min(&self, servers: &[RealServer]) -> Option<usize> {
        let mut best: Option<(usize, u64, u32)> = None;
        for &m in self.members() {
            let i = usize::from(m);
            if !usable(servers, i) {
                continue;
            }
            let s = &servers[i];
            let oh = conn_overhead(s);
            match best {
                Some((_, boh, bw)) if !per_weight_gt(boh, bw, oh, s.weight) => {}
                _ => best = Some((i, oh, s.weight)),
            }
        }
        best.map(|(i, _, _)| i)
    }

    /// The position in the set of the most loaded member per weight
    /// (`ip_vs_dest_set_max`); a member that is gone or quiescent counts as most loaded.
    fn max_pos(&self, servers: &[RealServer]) -> Option<usize> {
        let mut worst: Option<(usize, u64, u32)> = None;
        for (pos, &m) in self.members().iter().enumerate() {
            let Some(s) = servers.get(usize::from(m)).filter(|s| s.weight > 0) else { return Some(pos) };
            let oh = conn_overhead(s);
            match worst {
                Some((_, woh, ww)) if !per_weight_gt(oh, s.weight, woh, ww) => {}
                _ => worst = Some((pos, oh, s.weight)),
            }
        }
        worst.map(|(pos, _, _)| pos)
    }

    fn remove_pos(&mut self, pos: usize) {
        let len = usize::from(self.len);
        if pos < len {
            self.members.copy_within(pos + 1..len, pos);
            self.len -= 1;
        }
    }

    /// Adds server `i` (if not a member), replacing the most loaded member when full.
    fn insert(&mut self, i: usize, servers: &[RealServer], now_ns: u64) {
        if self.members().contains(&(i as u16)) {
            return;
        }
        if usize::from(self.len) >= SET_MAX {
            match self.max_pos(servers) {
                Some(pos) => self.remove_pos(pos),
                None => return,
            }
        }
        self.members[usize::from(self.len)] = i as u16;
        self.len += 1;
        self.last_mod_ns = now_ns;
    }
}

/// lblcr: a set of servers per destination.
#[derive(Debug)]
pub struct Lblcr {
    table: LocalTable<ServerSet>,
}

impl Lblcr {
    /// A worker's lblcr with entries (and set members) expiring after `expire_ns`.
    pub fn new(expire_ns: u64) -> Self {
        Lblcr { table: LocalTable::new(expire_ns) }
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblcr
    }

    fn pick(&mut self, servers: &[RealServer], input: &SchedInput) -> Option<usize> {
        let key = input.vip;
        let now = input.now_ns;
        let expire_ns = self.table.expire_ns;
        if let Some(slot) = self.table.get_mut(key, now) {
            slot.last_use_ns = now;
            let set = &mut slot.value;
            let min = set.min(servers);
            // Shrink a set that has been stable for a long time: its extra members were
            // added for a load peak that is over.
            if set.len > 1 && now.saturating_sub(set.last_mod_ns) > expire_ns {
                if let Some(pos) = set.max_pos(servers) {
                    set.remove_pos(pos);
                    set.last_mod_ns = now;
                }
            }
            if let Some(i) = min.filter(|&i| !overloaded(servers, i)) {
                return Some(i);
            }
            let i = wlc_pick(servers)?;
            set.insert(i, servers, now);
            return Some(i);
        }
        let i = wlc_pick(servers)?;
        self.table.insert(key, now, ServerSet::single(i, now));
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: u64 = 1_000_000_000;

    fn at(vip: u8, now_ns: u64) -> SchedInput {
        SchedInput { vip: u32::from(Ipv4Addr::new(10, 10, 0, vip)), now_ns, ..input(1) }
    }

    fn open(s: &RealServer, active: u64) {
        for _ in 0..active {
            s.stats.conn_opened(0, true);
        }
    }

    #[test]
    fn lblc_sticks_until_overloaded() {
        let servers = servers(&[2, 2, 2]);
        let mut l = Lblc::new(3600 * SEC);
        assert_eq!(l.pick(&servers, &at(1, 0)), Some(0));
        open(&servers[0], 2);
        assert_eq!(l.pick(&servers, &at(1, SEC)), Some(0), "sticky even when busier than the others");
        assert_eq!(l.pick(&servers, &at(2, SEC)), Some(1), "another destination gets wlc's choice");
        open(&servers[0], 1); // 3 > weight 2, and server 1 has 0 * 2 < 2
        assert_eq!(l.pick(&servers, &at(1, 2 * SEC)), Some(1), "rescheduled by wlc");
        open(&servers[1], 2);
        assert_eq!(l.pick(&servers, &at(1, 3 * SEC)), Some(1), "the new mapping sticks");
    }

    #[test]
    fn lblc_keeps_a_busy_server_when_all_are_busy() {
        let servers = servers(&[2, 2]);
        let mut l = Lblc::new(3600 * SEC);
        assert_eq!(l.pick(&servers, &at(1, 0)), Some(0));
        open(&servers[0], 5);
        open(&servers[1], 1); // 1 * 2 = 2, not < 2: not clearly lighter
        assert_eq!(l.pick(&servers, &at(1, SEC)), Some(0));
        overload(&servers[0]);
        assert_eq!(l.pick(&servers, &at(1, SEC)), Some(1), "an unavailable server is never returned");
    }

    #[test]
    fn lblc_entries_expire() {
        let servers = servers(&[1, 1]);
        let mut l = Lblc::new(10 * SEC);
        assert_eq!(l.pick(&servers, &at(1, 0)), Some(0));
        open(&servers[0], 1);
        assert_eq!(l.pick(&servers, &at(1, 10 * SEC)), Some(0), "used at 0, alive at 10 s");
        assert_eq!(l.pick(&servers, &at(1, 21 * SEC)), Some(1), "expired: wlc chooses anew");
    }

    #[test]
    fn lblc_table_is_bounded() {
        let servers = servers(&[1]);
        let mut l = Lblc::new(3600 * SEC);
        for v in 0..=255u8 {
            for d in 0..4u8 {
                let i = SchedInput { vip: u32::from(Ipv4Addr::new(10, d, 0, v)), now_ns: u64::from(v), ..input(1) };
                assert_eq!(l.pick(&servers, &i), Some(0));
            }
        }
        assert_eq!(l.table.slots.len(), TABLE_SLOTS);
        assert!(l.table.slots.iter().all(Option::is_some));
    }

    #[test]
    fn lblcr_grows_and_shrinks_its_set() {
        let servers = servers(&[2, 2, 2]);
        let mut l = Lblcr::new(100 * SEC);
        assert_eq!(l.pick(&servers, &at(1, 0)), Some(0));
        open(&servers[0], 3); // overloaded: 3 > 2 and others idle
        assert_eq!(l.pick(&servers, &at(1, SEC)), Some(1), "set grows to {{0, 1}}");
        open(&servers[1], 1);
        // The set's least loaded member is 1 (1 active), not overloaded.
        assert_eq!(l.pick(&servers, &at(1, 2 * SEC)), Some(1));
        let set = l.table.get_mut(u32::from(Ipv4Addr::new(10, 10, 0, 1)), 2 * SEC).unwrap().value;
        assert_eq!(set.members(), [0, 1]);
        // Stable for longer than the expiry: the most loaded member (0) is dropped.
        assert_eq!(l.pick(&servers, &at(1, 50 * SEC)), Some(1));
        assert_eq!(l.pick(&servers, &at(1, 110 * SEC)), Some(1));
        let set = l.table.get_mut(u32::from(Ipv4Addr::new(10, 10, 0, 1)), 110 * SEC).unwrap().value;
        assert_eq!(set.members(), [1]);
    }

    #[test]
    fn lblcr_set_is_bounded() {
        let servers = servers(&[1; 12]);
        let mut l = Lblcr::new(3600 * SEC);
        for n in 0..12u64 {
            let i = l.pick(&servers, &at(1, n)).unwrap();
            open(&servers[i], 2); // overloaded at once: the next pick adds a member
        }
        let set = l.table.get_mut(u32::from(Ipv4Addr::new(10, 10, 0, 1)), 12).unwrap().value;
        assert_eq!(set.members().len(), SET_MAX);
    }
}
