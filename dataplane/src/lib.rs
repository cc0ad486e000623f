//! rvs's data path, generic over the driver's packet buffer (see `rvs_drivers`), with no
//! DPDK dependency: the same code runs in unit tests, benchmarks and production.
//!
//! * [`types`]: the vocabulary every module shares (protocols, forwarding modes,
//!   scheduler names, service keys, port indexes, VIPs, connection states and
//!   timeouts), at the bottom of the crate: imports only point down to it.
//! * [`wire`]: typed zero-copy views of Ethernet, ARP, IPv4, ICMP, IPv6 (with a bounded
//!   extension-header walk), ICMPv6 and neighbour discovery, TCP and UDP, and
//!   incremental checksum updates (RFC 1624).
//! * [`l2l3`]: the lite stack — ARP, neighbours, routes, ICMP echo.
//! * [`frag`]: the per-worker table of IPv4/IPv6 fragment trains, which lets fragments
//!   without ports follow their flow (groundwork: not wired into the worker yet).
//! * [`server`]: real servers and their lock-free per-worker counters.
//! * [`service`]: virtual services and the published service table.
//! * [`admission`]: which new flows a service admits (client allow/deny prefixes,
//!   `maxconn`).
//! * [`sched`]: every scheduler (LVS's, Maglev, consistent hashing) and cross-worker
//!   persistence.
//! * [`conn`]: the per-worker connection table, its timer wheel, IPVS's TCP state
//!   machine, and the ownership rules (which worker owns a packet; Full-NAT local
//!   ports).
//! * [`view`]: the receive-side parse of a TCP/UDP frame (its `Layout` and flow),
//!   carried from the worker's checks through the L4 path and the rewrites so that a
//!   packet is parsed once.
//! * [`xmit`]: the rewrites of each forwarding mode (DR, NAT, Full-NAT with TOA, IPIP),
//!   ICMP error generation and translation, TTL handling.
//! * [`lb`]: one worker's L4 path tying those together.
//! * [`exception`]: the kernel exception path of a port (what the lite stack does not
//!   answer for the port's own address goes to a kernel interface, and back).
//! * [`control`]: typed control → worker requests (connection listings).
//! * [`mesh`]: single-producer queues between workers (redirects to a flow's owner).
//! * [`punt`]: the rings carrying health probes between the workers and the prober.
//! * [`stats`]: drop reasons and per-worker counters.
//! * [`sync`]: connection sync to a standby: its records, the worker ↔ control-plane
//!   rings, and the dump handshake.
//! * [`latency`]: the per-worker histogram of burst processing time.
//! * [`idle`]: what a worker does when its queues are empty.
//! * [`worker`]: the poll loop.

pub mod admission;
pub mod conn;
pub mod control;
pub mod exception;
pub mod frag;
pub mod ha;
pub mod idle;
pub mod l2l3;
pub mod latency;
pub mod lb;
pub mod mesh;
pub mod punt;
pub mod sched;
pub mod server;
pub mod service;
pub mod stats;
pub mod sync;
pub mod synproxy;
pub mod types;
pub mod view;
pub mod view6;
pub mod wire;
pub mod worker;
pub mod xmit;
