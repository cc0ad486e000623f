//! rvs benchmarks: speed measured, never asserted (DESIGN.md, "Tests and measurements").
//!
//! * [`pipeline`]: the data path on the in-memory driver — ns per packet and Mpps on one
//!   core for every path the worker has (today the L2/L3 paths: ARP reply, ICMP echo,
//!   a counted drop), net of the harness's own cost, with the data path's output checked.
//! * [`frames`]: the request frames and expected replies, built independently of the
//!   code under test.
//!
//! The `rvs-perf` binary prints one JSON object per line per mode; `perf/bench.sh`
//! builds it in release mode and runs it. Results are recorded in `perf/RESULTS.md`.

pub mod frames;
pub mod pipeline;
