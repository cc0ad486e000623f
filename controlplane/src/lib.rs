//! rvs's control plane: the library behind the `rvsd` daemon.
//!
//! * [`config`]: the TOML configuration, parsed and validated as a whole.
//! * [`status`]: the `GET /v1/status` document.
//! * [`rates`]: IPVS-style rate estimation and the burst-latency window.
//! * [`metrics`]: the Prometheus text at `/metrics`.
//! * [`runtime`]: the running configuration and the one path every change takes.
//! * [`services`]: from the configuration to the data path's service table (stable ids).
//! * [`model`]: the JSON shapes of services and servers.
//! * [`api`]: the REST router, served on the control thread; [`openapi`] describes it.
//! * [`exception`]: the kernel exception interfaces of the ports (`exception = true`).
//! * [`ha`]: VRRP high availability (the state machine and the HA thread).
//! * [`watchdog`]: the worker watchdog (a worker whose poll counter stands still).
//! * [`notify`]: systemd's readiness protocol (`sd_notify`), a datagram to `NOTIFY_SOCKET`.
//! * [`cli`]: `rvsd`'s command line (also read by the man page generator).
//! * [`daemon`]: start-up (EAL, ports, workers), serving, and orderly shutdown.

pub mod api;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod exception;
pub mod ha;
pub mod health;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod openapi;
pub mod rates;
pub mod runtime;
pub mod services;
pub mod status;
pub mod watchdog;
