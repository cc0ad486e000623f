//! Keeping polling lcores out of a PMD's shared memory while EAL's interrupt thread
//! unmaps it: the guard behind rvs-dpdk-sys's `munmap` (see `csrc/shim.h`, "Unmap guard").
//!
//! **The race (DPDK 22.11, net_memif).** When a memif peer disconnects (it exits, is
//! killed, or closes its socket), the PMD's control-channel callback runs
//! `memif_disconnect()` on EAL's interrupt thread (`drivers/net/memif/memif_socket.c`):
//! it clears `ETH_MEMIF_FLAG_CONNECTED` in `pmd->flags`, closes the queue eventfds, and
//! `memif_free_regions()` (`rte_eth_memif.c`) `munmap()`s the shared regions the rings
//! and buffers live in. `eth_memif_rx` and `eth_memif_tx` test the flag once on entry and
//! then copy from and to those regions with no lock, so a worker that entered a burst
//! just before the flag was cleared reads unmapped memory: `rte-worker-1 ... segfault ...
//! in librte_net_memif.so.23.0`. The PMD raises no ethdev event on disconnect in 22.11
//! (no `RTE_ETH_EVENT_INTR_LSC`; it only sets `dev_link.link_status`), so a link-state
//! callback never runs, and there is no earlier point to hook than the `munmap` call.
//!
//! **The fix: a grace period.** Every [`EthQueue`](super::EthQueue) registers a [`Gate`].
//! At the start of each `rx_burst` and `tx_burst` the owning worker loads the global
//! [`GENERATION`] (one relaxed-cost acquire load per burst: a plain `mov` on x86) and, when
//! it changed, stores it in its gate's `ack`. Before the interrupt thread unmaps anything,
//! [`before_unmap`] bumps the generation and waits until every live gate has acknowledged
//! it. A worker acknowledges only between bursts, so once all have, no burst that started
//! before the flag was cleared is still running; and a burst that starts after the
//! acknowledgement loads the flag after its acquire load of the generation, which the
//! interrupt thread bumped after clearing the flag, so the PMD sees "not connected" and
//! returns 0 without touching the regions. When the peer reconnects, the PMD maps new
//! regions and sets the flag again; bursts resume by themselves.
//!
//! No lock, syscall or store on the fast path unless a grace period is running. The wait
//! is bounded ([`GRACE_LIMIT`]): a worker that does not poll for that long (stalled, or
//! its thread gone without dropping its queues) is logged and not waited for, so the
//! interrupt thread never hangs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use rvs_dpdk_sys as sys;

/// The grace-period generation; bumped before each guarded `munmap`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The gates of every live queue.
static GATES: Mutex<Vec<Arc<Gate>>> = Mutex::new(Vec::new());

/// How long one grace period waits for a queue's worker before giving up on it.
pub const GRACE_LIMIT: Duration = Duration::from_secs(2);

/// Grace periods that gave up on at least one queue (see [`GRACE_LIMIT`]).
static GRACE_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// One queue's acknowledgement word.
#[derive(Debug)]
pub(crate) struct Gate {
    /// The last generation the owner saw between two bursts.
    ack: AtomicU64,
    /// False once the queue is dropped: nothing to wait for.
    live: AtomicBool,
}

/// The owning worker's side of a [`Gate`]: kept in the queue, touched by its owner only.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    gate: Arc<Gate>,
    seen: u64,
}

impl Checkpoint {
    /// Registers a new gate (and the guard, on first use).
    pub(crate) fn register() -> Checkpoint {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            // SAFETY: `before_unmap` is an `extern "C" fn()` without arguments, valid for
            // the whole process; the shim only calls it (from EAL's interrupt thread).
            unsafe { sys::rvs_set_unmap_guard(Some(before_unmap)) };
        });
        let g = GENERATION.load(Ordering::Acquire);
        let gate = Arc::new(Gate { ack: AtomicU64::new(g), live: AtomicBool::new(true) });
        super::mutex::lock(&GATES).push(Arc::clone(&gate));
        Checkpoint { gate, seen: g }
    }

    /// Called by the owner before each burst: acknowledges a new grace period.
    #[inline(always)]
    pub(crate) fn pass(&mut self) {
        let g = GENERATION.load(Ordering::Acquire);
        if g != self.seen {
            self.acknowledge(g);
        }
    }

    #[cold]
    #[inline(never)]
    fn acknowledge(&mut self, g: u64) {
        self.seen = g;
        self.gate.ack.store(g, Ordering::Release);
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        self.gate.live.store(false, Ordering::Release);
        super::mutex::lock(&GATES).retain(|g| !Arc::ptr_eq(g, &self.gate));
    }
}

/// How many grace periods ran (the guard's calls, counted by the C side) and how many gave
/// up on a queue after [`GRACE_LIMIT`].
pub fn unmap_guard_stats() -> (u64, u64) {
    // SAFETY: reads an atomic counter; callable at any time.
    (unsafe { sys::rvs_unmap_guard_runs() }, GRACE_TIMEOUTS.load(Ordering::Relaxed))
}

/// The guard: runs on EAL's interrupt thread just before it unmaps memory.
extern "C" fn before_unmap() {
    grace_period();
}

/// Starts a grace period and waits until every live queue's owner has passed a burst
/// boundary (or [`GRACE_LIMIT`] ran out). Returns how many queues it gave up on.
fn grace_period() -> usize {
    let g = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    let gates: Vec<Arc<Gate>> = super::mutex::lock(&GATES).clone();
    let t0 = Instant::now();
    let mut gave_up = 0usize;
    for gate in &gates {
        let mut spins = 0u32;
        while gate.live.load(Ordering::Acquire) && gate.ack.load(Ordering::Acquire) < g {
            if t0.elapsed() > GRACE_LIMIT {
                gave_up += 1;
                break;
            }
            spins += 1;
            if spins < 1000 {
                std::hint::spin_loop();
            } else {
                // A worker in adaptive idle may sleep up to its max_sleep between polls.
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
    if gave_up > 0 {
        GRACE_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            queues = gave_up,
            limit_ms = GRACE_LIMIT.as_millis() as u64,
            "a PMD unmaps shared memory (peer disconnected) but worker(s) did not pass a burst boundary in time; \
             unmapping anyway (a stalled worker may crash if it resumes on that port)"
        );
    } else {
        // Rare (a peer went away, one call per region): worth a line in the log.
        tracing::info!(
            queues = gates.len(),
            waited_us = t0.elapsed().as_micros() as u64,
            "a PMD unmaps shared memory (peer disconnected): every worker left its burst first"
        );
    }
    gave_up
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A grace period returns only after every live queue's owner passed a burst boundary,
    /// and does not wait for a dropped queue.
    #[test]
    fn grace_period_waits_for_each_owner() {
        let stop = Arc::new(AtomicBool::new(false));
        // A busy owner: passes continuously.
        let busy = {
            let stop = Arc::clone(&stop);
            let mut cp = Checkpoint::register();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    cp.pass();
                    std::hint::spin_loop();
                }
            })
        };
        // A slow owner: inside a "burst" for 200 ms, then passes once.
        let passed = Arc::new(AtomicBool::new(false));
        let mut slow_cp = Checkpoint::register();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let slow = {
            let passed = Arc::clone(&passed);
            std::thread::spawn(move || {
                ready_rx.recv().expect("the grace period started");
                std::thread::sleep(Duration::from_millis(200));
                passed.store(true, Ordering::SeqCst);
                slow_cp.pass();
                slow_cp
            })
        };
        // A queue that is dropped: never waited for.
        drop(Checkpoint::register());
        ready_tx.send(()).expect("the slow owner waits");
        assert_eq!(grace_period(), 0, "no queue was given up on");
        assert!(passed.load(Ordering::SeqCst), "the grace period ended before the slow owner passed");
        let slow_cp = slow.join().expect("slow owner");
        // With the slow owner gone (its queue dropped), the next period is quick.
        drop(slow_cp);
        assert_eq!(grace_period(), 0);
        stop.store(true, Ordering::Relaxed);
        busy.join().expect("busy owner");
    }
}
