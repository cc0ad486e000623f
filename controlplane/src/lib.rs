//! rvs's control plane: the library behind the `rvsd` daemon.
//!
//! * [`config`]: the TOML configuration, parsed and validated as a whole.
//! * [`status`]: the `GET /v1/status` document.
//! * [`api`]: the REST router, served on the control thread.
//! * [`daemon`]: start-up (EAL, ports, workers), serving, and orderly shutdown.

pub mod api;
pub mod config;
pub mod daemon;
pub mod rvsadm;
pub mod services;
pub mod status;
