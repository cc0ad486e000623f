//! High availability: VRRP (RFC 5798, v2 per RFC 3768) spoken by rvsd on its DPDK ports.
//!
//! * [`vrrp`]: one instance's sans-IO state machine (timers, preemption, priority 0,
//!   split brain, tracking, step-down), driven with `now` passed in;
//! * [`frames`]: the adverts and gratuitous ARP frames it sends;
//! * [`run`]: the HA thread, the thin shell that owns the data path's HA rings
//!   ([`rvs_dataplane::ha::HaEnd`]) and roles ([`rvs_dataplane::ha::HaRoles`]), feeds the
//!   instances adverts, tracking and time, sends their frames, applies their roles,
//!   logs transitions and runs `notify`;
//! * [`sync`]: the sync thread, the shell around connection sync's protocol (`rvs_sync`)
//!   that moves the workers' connection records to the peer and installs the peer's;
//! * [`view`]: what `/v1/ha`, `/v1/status` and `/metrics` show.

pub mod frames;
pub mod run;
pub mod sync;
pub mod view;
pub mod vrrp;
