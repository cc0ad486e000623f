//! Packet I/O for rvs.
//!
//! This crate is the boundary between the data path and the hardware. It defines the
//! traits the data path is generic over — [`PacketBuf`] (one packet), [`PacketPool`]
//! (where new packets come from) and [`PortQueue`] (one worker's RX/TX queue pair on a
//! port) — and implements them twice:
//!
//! * [`mem`]: an in-memory driver for unit tests, golden-packet tests and benchmarks;
//! * `dpdk` (feature `dpdk`, on by default): DPDK mbufs, mempools and ethdev queues.
//!
//! and [`prefetch`], the cache prefetch hint the data path calls without `unsafe`, and
//! [`hugemem`], the huge-page memory of large tables (the connection table).
//!
//! All of rvs's `unsafe` code lives in this crate and in `rvs-dpdk-sys`; every block
//! carries a `SAFETY:` comment.

pub mod hugemem;
pub mod mem;
pub mod prefetch;
mod traits;

#[cfg(feature = "dpdk")]
pub mod dpdk;

pub use traits::{Burst, LinkStatus, PacketBuf, PacketPool, PortInfo, PortQueue, PortStats, RxOffload, BURST_SIZE};
