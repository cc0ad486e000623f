//! Real servers and their lock-free counters, as the schedulers and the service table
//! see them.
//!
//! Contract: built off the fast path (at configuration time). The only mutable parts
//! are the per-server counters: each worker writes only its own slot (load + store, no
//! read-modify-write race), and readers — the least-connection schedulers of every
//! worker and the control plane — sum the slots with relaxed loads. A sum may be a few
//! packets stale; schedulers tolerate that, as IPVS's do with its per-CPU counters.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::types::ForwardMode;

/// One relaxed counter slot written by a single worker. The traffic and connection
/// counters, which every packet or new connection touches, share the first cache line;
/// the refusal counters (services only, new flows only) spill into the second.
#[derive(Debug, Default)]
#[repr(align(64))]
struct WorkerSlot {
    active: AtomicU64,
    inactive: AtomicU64,
    conns: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    acl_denied: AtomicU64,
    maxconn_refused: AtomicU64,
    rate_limited: AtomicU64,
}

/// Lock-free counters of one real server (or one service), one cache-line-aligned slot
/// per worker. Only worker `w` writes slot `w`.
#[derive(Debug)]
pub struct ServerStats {
    slots: Box<[WorkerSlot]>,
    overloaded: AtomicBool,
}

/// A point-in-time sum of a [`ServerStats`] over all workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerStatsSnapshot {
    /// Active connections, as IPVS counts them since Linux 4.7: TCP in ESTABLISHED,
    /// SYN_SENT, SYN_RECV or SYNACK (see `conn::TcpState::is_active`).
    pub active_conns: u64,
    /// Connections in any other state still in the table; UDP flows are always here.
    pub inactive_conns: u64,
    /// Connections scheduled since start.
    pub conns: u64,
    /// Packets client → server.
    pub packets_in: u64,
    /// Packets server → client.
    pub packets_out: u64,
    /// Bytes client → server.
    pub bytes_in: u64,
    /// Bytes server → client.
    pub bytes_out: u64,
    /// New flows refused by the service's allow/deny lists (services only; 0 for a
    /// server).
    pub acl_denied: u64,
    /// New flows refused because the service was at its `maxconn` (services only).
    pub service_maxconn: u64,
    /// New flows refused because their client was over `client_rate` (services only).
    pub client_rate_limited: u64,
}

fn bump(c: &AtomicU64, by: u64) {
    // Single writer per slot: a load and a store cannot lose an update.
    c.store(c.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

fn drop_one(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
}

impl ServerStats {
    /// Counters for `workers` workers, all zero.
    pub fn new(workers: usize) -> Self {
        ServerStats {
            slots: (0..workers.max(1)).map(|_| WorkerSlot::default()).collect(),
            overloaded: AtomicBool::new(false),
        }
    }
    #[inline]
    fn slot(&self, worker: usize) -> &WorkerSlot {
        // Worker indexes are below the slot count; the remainder (a division, on every
        // packet) is only for a misconfigured index.
        match self.slots.get(worker) {
            Some(s) => s,
            None => &self.slots[worker % self.slots.len()],
        }
    }
    /// Active connections summed over workers.
    pub fn active_conns(&self) -> u64 {
        self.slots.iter().map(|s| s.active.load(Ordering::Relaxed)).sum()
    }
    /// Inactive connections summed over workers.
    pub fn inactive_conns(&self) -> u64 {
        self.slots.iter().map(|s| s.inactive.load(Ordering::Relaxed)).sum()
    }
    /// Active plus inactive connections summed over workers, in one pass (the count
    /// `maxconn` and the upper threshold compare against).
    #[inline]
    pub fn conns_now(&self) -> u64 {
        self.slots.iter().map(|s| s.active.load(Ordering::Relaxed) + s.inactive.load(Ordering::Relaxed)).sum()
    }
    /// Worker `worker` refused a new flow of this service for `reason` (only
    /// `acl_denied`, `service_maxconn` and `client_rate_limited` are counted per service; other reasons are
    /// ignored here, the worker's own drop counters have them).
    pub fn refused(&self, worker: usize, reason: crate::stats::DropReason) {
        let s = self.slot(worker);
        match reason {
            crate::stats::DropReason::AclDenied => bump(&s.acl_denied, 1),
            crate::stats::DropReason::ServiceMaxconn => bump(&s.maxconn_refused, 1),
            crate::stats::DropReason::ClientRateLimited => bump(&s.rate_limited, 1),
            _ => {}
        }
    }
    /// Worker `worker` created a connection to this server, in the active or inactive state.
    pub fn conn_opened(&self, worker: usize, active: bool) {
        let s = self.slot(worker);
        bump(&s.conns, 1);
        bump(if active { &s.active } else { &s.inactive }, 1);
    }
    /// A connection of worker `worker` moved between the active and inactive states.
    pub fn conn_moved(&self, worker: usize, now_active: bool) {
        let s = self.slot(worker);
        let (from, to) = if now_active { (&s.inactive, &s.active) } else { (&s.active, &s.inactive) };
        drop_one(from);
        bump(to, 1);
    }
    /// A connection of worker `worker` left the table from the given state.
    pub fn conn_closed(&self, worker: usize, was_active: bool) {
        let s = self.slot(worker);
        drop_one(if was_active { &s.active } else { &s.inactive });
    }
    /// Worker `worker` forwarded a packet of `bytes` bytes client → server (`inbound`) or
    /// server → client.
    #[inline]
    pub fn packet(&self, worker: usize, inbound: bool, bytes: u64) {
        let s = self.slot(worker);
        if inbound {
            bump(&s.packets_in, 1);
            bump(&s.bytes_in, bytes);
        } else {
            bump(&s.packets_out, 1);
            bump(&s.bytes_out, bytes);
        }
    }
    /// Worker `worker` forwarded `packets_in` packets of `bytes_in` bytes client → server
    /// and `packets_out` of `bytes_out` server → client (a poll's worth, accumulated by
    /// the worker: see `LbEngine::flush_stats`).
    #[inline]
    pub fn packets(&self, worker: usize, packets_in: u64, bytes_in: u64, packets_out: u64, bytes_out: u64) {
        let s = self.slot(worker);
        if packets_in != 0 {
            bump(&s.packets_in, packets_in);
            bump(&s.bytes_in, bytes_in);
        }
        if packets_out != 0 {
            bump(&s.packets_out, packets_out);
            bump(&s.bytes_out, bytes_out);
        }
    }
    /// Whether the server is over its upper connection threshold (IPVS's
    /// `IP_VS_DEST_F_OVERLOAD`): set when active + inactive reaches `upper`, cleared when
    /// it falls to `lower` (or to 3/4 of `upper` when `lower` is 0, as IPVS does).
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }
    /// Re-evaluates the overload flag against the thresholds (`upper` 0 = no limit).
    pub fn update_overload(&self, upper: u32, lower: u32) -> bool {
        if upper == 0 {
            self.overloaded.store(false, Ordering::Relaxed);
            return false;
        }
        let conns = self.conns_now();
        let low = if lower == 0 { u64::from(upper) * 3 / 4 } else { u64::from(lower) };
        let cur = self.overloaded();
        let next = if cur { conns > low } else { conns >= u64::from(upper) };
        if next != cur {
            self.overloaded.store(next, Ordering::Relaxed);
        }
        next
    }
    /// The sum over workers.
    pub fn snapshot(&self) -> ServerStatsSnapshot {
        let mut out = ServerStatsSnapshot::default();
        for s in self.slots.iter() {
            out.active_conns += s.active.load(Ordering::Relaxed);
            out.inactive_conns += s.inactive.load(Ordering::Relaxed);
            out.conns += s.conns.load(Ordering::Relaxed);
            out.packets_in += s.packets_in.load(Ordering::Relaxed);
            out.packets_out += s.packets_out.load(Ordering::Relaxed);
            out.bytes_in += s.bytes_in.load(Ordering::Relaxed);
            out.bytes_out += s.bytes_out.load(Ordering::Relaxed);
            out.acl_denied += s.acl_denied.load(Ordering::Relaxed);
            out.service_maxconn += s.maxconn_refused.load(Ordering::Relaxed);
            out.client_rate_limited += s.rate_limited.load(Ordering::Relaxed);
        }
        out
    }
}

/// A real server of a service.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Its address: of the service's VIP's family, or IPv4 on an IPv6 service in Full-NAT
    /// (NAT64; `ServiceTable` refuses any other mix).
    pub addr: IpAddr,
    /// Its port (may differ from the service port in NAT and Full-NAT).
    pub port: u16,
    /// Scheduling weight; 0 takes no new connections (quiescent).
    pub weight: u32,
    /// How packets reach it.
    pub forward: ForwardMode,
    /// Upper connection threshold, 0 for none (ipvsadm -x).
    pub upper: u32,
    /// Lower connection threshold (ipvsadm -y); 0 means 3/4 of `upper`.
    pub lower: u32,
    /// Its counters, shared by every worker and the control plane.
    pub stats: Arc<ServerStats>,
}

impl RealServer {
    /// Whether the server may take a new connection: weight above 0 and not overloaded.
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.stats.overloaded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_workers_and_overload_has_hysteresis() {
        let s = ServerStats::new(2);
        s.conn_opened(0, false);
        s.conn_opened(1, true);
        s.conn_moved(0, true);
        assert_eq!((s.active_conns(), s.inactive_conns()), (2, 0));
        assert!(!s.update_overload(3, 1));
        s.conn_opened(1, true);
        assert!(s.update_overload(3, 1), "3 conns reach upper 3");
        s.conn_closed(1, true);
        assert!(s.update_overload(3, 1), "2 > lower 1: still overloaded");
        s.conn_closed(1, true);
        assert!(!s.update_overload(3, 1), "1 <= lower 1: clear");
        s.packet(0, true, 100);
        s.packet(1, false, 40);
        let snap = s.snapshot();
        assert_eq!((snap.packets_in, snap.bytes_in, snap.packets_out, snap.bytes_out, snap.conns), (1, 100, 1, 40, 3));
    }
}
