//! Consistent hashing on a ring: conhash (keyed by client address and port, as DPVS's
//! `conhash` in its `sip+sport` mode) and user-hash (keyed by the client address only, so
//! one user sticks to one server).
//!
//! Contract: the control plane builds a [`Ring`] once per snapshot; a pick hashes the key
//! to a point and takes the first virtual node clockwise — O(log nodes), the same answer
//! on every worker. Adding or removing a server moves only the keys of the arcs its
//! virtual nodes cover.
//!
//! Virtual nodes: a server of weight `w` gets `w / gcd` units of virtual nodes, 1024
//! nodes per unit while the ring stays under 2^16 nodes, fewer beyond (at least one
//! node per server). With ≥ 1000 nodes per server a server's share is within a few
//! percent of proportional (the spread of the share shrinks as 1/√nodes). DPVS uses 160
//! replicas per weight unit; rvs uses more for closer proportions at the price of a
//! bigger ring (6 bytes a node).
//!
//! An unavailable server's nodes are skipped clockwise, so its keys spread over the
//! servers next on the ring.

use std::sync::Arc;

use crate::server::RealServer;
use crate::types::SchedulerKind;

use super::{gcd, hash_with, server_key, usable, SchedInput, SchedShared, Scheduler, Table};

/// Virtual nodes per weight unit when the ring is small.
pub const NODES_PER_UNIT: u64 = 1024;
/// The ring is kept under about this many virtual nodes.
pub const MAX_NODES: u64 = 1 << 16;

const SEED_NODE: u64 = 0x6368_6e6f_6465_2121; // "chnode!!"
const SEED_KEY: u64 = 0x6368_6b65_7921_2121; // "chkey!!!"

/// A consistent-hash ring: sorted points and the server owning each.
#[derive(Clone)]
pub struct Ring {
    /// Sorted ascending (ties by owner, so the order is deterministic).
    points: Box<[u32]>,
    /// `owners[k]` owns the arc ending at `points[k]`.
    owners: Box<[u16]>,
}

impl Ring {
    /// The ring over `servers` (at most [`super::MAX_SERVERS`]).
    pub fn build(servers: &[RealServer]) -> Self {
        let weighted: Vec<(usize, &RealServer)> = servers.iter().enumerate().filter(|(_, s)| s.weight > 0).collect();
        let g = weighted.iter().map(|(_, s)| u64::from(s.weight)).fold(0, gcd).max(1);
        let units: u64 = weighted.iter().map(|(_, s)| u64::from(s.weight) / g).sum();
        let nodes_of = |w: u32| -> u64 {
            let u = u64::from(w) / g;
            if units == 0 {
                0
            } else if units * NODES_PER_UNIT <= MAX_NODES {
                u * NODES_PER_UNIT
            } else {
                (u * MAX_NODES / units).max(1)
            }
        };
        let mut nodes: Vec<(u32, u16)> = Vec::new();
        for (i, s) in &weighted {
            let base = hash_with(SEED_NODE, server_key(s));
            for r in 0..nodes_of(s.weight) {
                nodes.push(((hash_with(base, r) >> 32) as u32, *i as u16));
            }
        }
        nodes.sort_unstable();
        Ring { points: nodes.iter().map(|&(p, _)| p).collect(), owners: nodes.iter().map(|&(_, o)| o).collect() }
    }

    /// Number of virtual nodes.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring is empty (no server has a weight).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The owner of the first node at or after `point`, skipping unusable servers.
    pub fn lookup(&self, servers: &[RealServer], point: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let mut k = self.points.partition_point(|&p| p < point);
        if k == self.points.len() {
            k = 0;
        }
        let i = usize::from(*self.owners.get(k)?);
        if usable(servers, i) {
            return Some(i);
        }
        if !servers.iter().any(RealServer::available) {
            return None;
        }
        let (wrapped, from) = self.owners.split_at(k);
        from.iter().chain(wrapped).map(|&i| usize::from(i)).find(|&i| usable(servers, i))
    }
}

/// What the ring is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Client address and port (conhash).
    AddrPort,
    /// Client address only (user-hash).
    Addr,
}

/// A conhash or user-hash scheduler: a view of the shared ring.
#[derive(Debug)]
pub struct ConsistentHash {
    shared: Arc<SchedShared>,
    key: Key,
}

impl ConsistentHash {
    /// The scheduler over `shared`'s ring.
    pub fn new(shared: Arc<SchedShared>, key: Key) -> Self {
        ConsistentHash { shared, key }
    }
}

impl Scheduler for ConsistentHash {
    fn kind(&self) -> SchedulerKind {
        match self.key {
            Key::AddrPort => SchedulerKind::Conhash,
            Key::Addr => SchedulerKind::UserHash,
        }
    }

    fn pick(&mut self, servers: &[RealServer], input: &SchedInput) -> Option<usize> {
        let Table::Ring(r) = &self.shared.table else { return None };
        let addr = u64::from(input.client);
        let key = match self.key {
            Key::AddrPort => (addr << 16) | u64::from(input.client_port) | (1 << 48),
            Key::Addr => addr,
        };
        r.lookup(servers, (hash_with(SEED_KEY, key) >> 32) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn nodes_follow_weights() {
        assert_eq!(Ring::build(&servers(&[3, 0, 6])).len(), 3 * 1024);
        assert_eq!(Ring::build(&servers(&[1; 64])).len(), 64 * 1024);
        let r = Ring::build(&servers(&[1; 100]));
        assert_eq!(r.len(), 100 * 655);
        let r = Ring::build(&servers(&[u32::MAX, 1]));
        assert!(r.owners.contains(&1) && r.len() <= MAX_NODES as usize + 1);
        assert!(Ring::build(&servers(&[0])).is_empty());
    }

    #[test]
    fn user_hash_ignores_the_port_and_conhash_does_not() {
        let servers = servers(&[1; 6]);
        let mut uh = sched(SchedulerKind::UserHash, &servers);
        let mut ch = sched(SchedulerKind::Conhash, &servers);
        let mut seen = [false; 6];
        let one = uh.pick(&servers, &input(3));
        for port in 2000..2300 {
            let i = SchedInput { client_port: port, ..input(3) };
            assert_eq!(uh.pick(&servers, &i), one);
            seen[ch.pick(&servers, &i).unwrap()] = true;
        }
        assert_eq!(seen, [true; 6]);
    }

    #[test]
    fn removal_moves_only_the_removed_servers_keys() {
        let all = servers(&[1; 5]);
        let four: Vec<_> = all[..4].to_vec();
        let (a, b) = (Ring::build(&all), Ring::build(&four));
        for n in 0..5000u32 {
            let p = (hash_with(7, u64::from(n)) >> 32) as u32;
            let before = a.lookup(&all, p).unwrap();
            if before != 4 {
                assert_eq!(b.lookup(&four, p), Some(before));
            }
        }
    }
}
