//! Raw FFI to the system DPDK (22.11, found with pkg-config `libdpdk`).
//!
//! Everything here is generated at build time by bindgen from the installed headers
//! (`rte_eal.h`, `rte_ethdev.h`, `rte_mbuf.h`, `rte_mempool.h`, `rte_lcore.h`,
//! `rte_launch.h`, `rte_errno.h`, `rte_bus_vdev.h`), plus the `rvs_*` functions of a
//! small C shim (`csrc/shim.c`) that export DPDK's `static inline` API
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, `rte_errno`, ...), which has no symbol
//! in the shared libraries.
//!
//! This crate is the only one in rvs with generated bindings; use the safe wrappers in
//! `rvs-drivers` (`rvs_drivers::dpdk`) instead of calling it directly.
//!
//! Building needs `libdpdk-dev`, `libclang-dev` and `pkg-config`
//! (`apt-get install libdpdk-dev libclang-dev pkg-config`).

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, missing_docs)]
#![allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// A directory of PMD plugins to hand to EAL with `-d`, when the installed librte_eal
/// has no usable built-in plugin directory (`None` on Debian, whose EAL loads
/// `/usr/lib/<triplet>/dpdk/pmds-<abi>/` by itself). Worked out by build.rs.
pub const EXTRA_PMD_DIR: Option<&str> = match env!("RVS_DPDK_EXTRA_PMD_DIR").as_bytes() {
    [] => None,
    _ => Some(env!("RVS_DPDK_EXTRA_PMD_DIR")),
};
