//! rvs benchmarks: speed measured, never asserted (DESIGN.md, "Tests and measurements").
//!
//! * [`pipeline`]: the data path on the in-memory driver — ns per packet and Mpps on one
//!   core for every path the worker has (the L2/L3 paths: ARP reply, ICMP echo, a counted
//!   drop; and through [`l4`] the forwarding modes DR, NAT, Full-NAT and IPIP, both
//!   directions where replies pass through rvs, with the cost of a new connection and the
//!   bytes per connection), net of the harness's own cost, with the data path's output
//!   checked.
//! * [`conn_lookup`]: the connection table alone at 1M–10M entries — hit, miss and
//!   insert cost in random order, and its memory.
//! * [`sync`]: connection sync — the master worker's cost per new connection, the
//!   record rate a backup keeps up with over UDP on loopback, bytes on the wire and the
//!   rings' memory.
//! * [`harness`]: what the pipeline benchmarks share — ports, modes, options, report,
//!   errors, buffer helpers and statistics.
//! * [`frames`]: the request frames and expected outputs, built independently of the
//!   code under test.
//! * [`forwarded`]: rvs-pktgen's check of the frames a DPDK device under test forwarded.
//!
//! The `rvs-perf` binary prints one JSON object per line per mode; `perf/bench.sh`
//! builds it in release mode and runs it. Results are recorded in `perf/RESULTS.md`.

pub mod conn_lookup;
pub mod forwarded;
pub mod frames;
pub mod harness;
pub mod l4;
pub mod pipeline;
pub mod rss_hash;
pub mod sync;
