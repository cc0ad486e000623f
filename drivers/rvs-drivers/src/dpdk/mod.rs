//! The DPDK driver: safe wrappers over the system DPDK 22.11 (`rvs-dpdk-sys`).
//!
//! * [`Eal`]: EAL initialisation (once per process), worker lcores, launching closures
//!   on them, cleanup.
//! * [`Mempool`]: an mbuf pool; cloneable, one clone per worker, implements
//!   [`PacketPool`](crate::PacketPool).
//! * [`Mbuf`]: one owned packet buffer, implements [`PacketBuf`](crate::PacketBuf).
//!   Single-segment only: rvs never enables RX scatter and drops chained mbufs on RX.
//! * [`Port`]: an ethdev port by device name (vdev or PCI address); configure with
//!   RSS, start, stop, close; implements [`PortInfo`](crate::PortInfo) and is
//!   `Send + Sync` so the control thread can read link and counters while workers poll.
//! * [`EthQueue`]: one worker's RX/TX queue pair, implements
//!   [`PortQueue`](crate::PortQueue).
//! * [`preflight()`]: hugepage, hugetlbfs and lcore checks in plain Rust, run before
//!   [`Eal::init`] for readable errors.
//!
//! * Peer disconnects: a PMD that unmaps shared memory from EAL's interrupt thread while
//!   workers poll (DPDK 22.11's `net_memif`) waits for every queue's owner to pass a
//!   burst boundary first (module `quiesce`; one atomic load per burst).
//!
//! Lifetimes are enforced at run time, not by borrows, so that queues and pools can be
//! moved into `'static` worker closures: every object that points into DPDK memory keeps
//! the EAL alive, a port is not stopped while a queue of it exists, and a pool is not
//! freed while any of its mbufs exists. Breaking these rules in safe code is refused
//! with an error or leaks, never dangles.
//!
//! PMDs: Debian ships PMDs (`net_ring`, `net_af_packet`, `net_memif`, the ring mempool
//! handler) as plugins in `/usr/lib/<triplet>/dpdk/pmds-<abi>/`, which librte_eal loads
//! by itself; where an installed DPDK lacks that default, [`Eal::init`] adds `-d <dir>`.

mod eal;
mod error;
mod mbuf;
mod mempool;
mod mutex;
mod port;
mod preflight;
mod quiesce;

pub use eal::Eal;
pub use error::DpdkError;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{device_name, kernel_iface, DevInfo, EthQueue, Port, PortSetup, RssConf};
pub use preflight::{preflight, preflight_with, HostPaths, HugepageSize, PreflightReport};
pub use quiesce::{unmap_guard_stats, GRACE_LIMIT};
