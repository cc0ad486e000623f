//! High availability: VRRP (RFC 5798, v2 per RFC 3768) spoken by rvsd on its DPDK ports.
//!
//! * [`vrrp`]: one instance's sans-IO state machine (timers, preemption, priority 0,
//!   split brain, tracking, step-down), driven with `now` passed in;
//! * [`frames`]: the adverts and gratuitous ARP frames it sends;
//!
//! Connection sync (`[ha] sync_listen`, `sync_peer`, `key_file`) is not built yet.

pub mod frames;
pub mod vrrp;
