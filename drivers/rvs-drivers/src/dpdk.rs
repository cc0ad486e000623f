//! The DPDK driver (being written).
