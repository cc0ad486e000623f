//! FFI to DPDK (being written).
