//! Prefetching a burst's connection-table lines before its packets are handled, in the
//! shape of DPDK's l3fwd and `rte_hash_lookup_bulk`: every packet's key is hashed and its
//! index line requested first, then each index line (arrived meanwhile) is read and the
//! entry it names requested, and only then does the worker handle the packets one by one,
//! finding both lines in cache. On a table far larger than the caches a lookup is two
//! dependent DRAM misses (index, then entry); this overlaps them across the burst's 32
//! packets instead of paying them one after another.
//!
//! Hints only: nothing here changes any state or decides anything, and a wrong guess
//! (a frame that is not what it looked like) costs one wasted hint. Below
//! [`PREFETCH_MIN_CONNS`] entries the table's touched lines stay in the caches and the
//! stages are skipped (one compare per burst).

use rvs_drivers::{PacketBuf, BURST_SIZE};

use super::LbEngine;
use crate::view::peek_flow_key;

/// Entries under which [`LbEngine::prefetch_burst`] does nothing: 8192 entries and their
/// index lines take about 1 MiB, which the L2 and L3 caches of a worker's core hold, so a
/// hint would only add instructions.
pub const PREFETCH_MIN_CONNS: usize = 8192;

impl LbEngine {
    /// Requests the connection-table lines the packets of `burst` will look up (see the
    /// module docs): first each key's index line, then each entry its index line names.
    /// The worker calls it on every received burst before handling its packets.
    #[inline]
    pub fn prefetch_burst<B: PacketBuf>(&self, burst: &[B]) {
        if self.conns.len() < PREFETCH_MIN_CONNS {
            return;
        }
        let mut hashes = [0u32; BURST_SIZE];
        let mut n = 0;
        for buf in burst.iter().take(BURST_SIZE) {
            if let Some(key) = peek_flow_key(buf.data()) {
                hashes[n] = self.conns.prefetch_index(&key);
                n += 1;
            }
        }
        for &hash in &hashes[..n] {
            self.conns.prefetch_entry(hash);
        }
    }
}
