//! rvs's data path, generic over the driver's packet buffer (see `rvs_drivers`), with no
//! DPDK dependency: the same code runs in unit tests, benchmarks and production.
//!
//! * [`wire`]: typed zero-copy views of Ethernet, ARP, IPv4, ICMP, TCP and UDP, and
//!   incremental checksum updates (RFC 1624).
//! * [`l2l3`]: the lite stack — ARP, neighbours, routes, ICMP echo.
//! * [`service`]: protocols, forwarding modes, scheduler names, real servers and their
//!   lock-free per-worker counters.
//! * [`stats`]: drop reasons and per-worker counters.
//! * [`idle`]: what a worker does when its queues are empty.
//! * [`worker`]: the poll loop.

pub mod idle;
pub mod l2l3;
pub mod service;
pub mod stats;
pub mod wire;
pub mod worker;
