/*
 * rvs-dpdk-sys C shim: exported wrappers around DPDK's `static inline` API.
 *
 * bindgen cannot link to `static inline` functions (they have no symbol in
 * libdpdk), so each one rvs needs gets a real function here, compiled by build.rs
 * with the same flags as DPDK itself. Function-like macros whose values Rust needs
 * (RSS and offload bit sets built from RTE_BIT64) are exported the same way.
 */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/* rte_errno of the calling thread (a per-lcore TLS variable in DPDK). */
int rvs_rte_errno(void);
/* rte_lcore_id(): the calling thread's lcore id, or LCORE_ID_ANY. */
unsigned int rvs_rte_lcore_id(void);

/* rte_eth_rx_burst / rte_eth_tx_burst. */
uint16_t rvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                              struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                              struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* rte_pktmbuf_* helpers. */
struct rte_mbuf *rvs_rte_pktmbuf_alloc(struct rte_mempool *mp);
void rvs_rte_pktmbuf_free(struct rte_mbuf *m);
char *rvs_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *rvs_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int rvs_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *rvs_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rvs_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_rte_pktmbuf_tailroom(const struct rte_mbuf *m);

/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP. */
uint64_t rvs_rte_eth_rss_ip_l4(void);
/* RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | _UDP_CKSUM | _TCP_CKSUM. */
uint64_t rvs_rte_eth_rx_offload_checksum(void);
/* RTE_ETH_RX_OFFLOAD_SCATTER (never enabled by rvs: mbufs are single-segment). */
uint64_t rvs_rte_eth_rx_offload_scatter(void);

/*
 * Unmap guard: a workaround for a use-after-unmap race in DPDK 22.11's net_memif PMD.
 *
 * When a memif peer goes away, the PMD's control-channel handler runs memif_disconnect()
 * on EAL's interrupt thread (drivers/net/memif/memif_socket.c, memif_intr_handler ->
 * memif_disconnect): it clears ETH_MEMIF_FLAG_CONNECTED with a plain store, then
 * memif_free_regions() (rte_eth_memif.c) munmap()s the shared regions and rte_free()s
 * their descriptors. eth_memif_rx / eth_memif_tx test the flag once on entry and then
 * read the rings and copy from/to the regions with no further check and no lock, so an
 * lcore that entered a burst just before the flag was cleared faults on the unmapped
 * memory (SIGSEGV in librte_net_memif.so). The PMD raises no ethdev event for this
 * (no RTE_ETH_EVENT_INTR_LSC in 22.11's memif), so nothing can be told in advance.
 *
 * This library therefore defines munmap(): the executable's definition interposes libc's
 * for the PMD plugins loaded with dlopen. When a guard is registered and the caller is
 * EAL's interrupt thread, the guard runs first (rvs-drivers waits there until every
 * polling lcore has finished the burst it was in, after which the cleared flag keeps them
 * out), then the mapping is removed with the raw system call. Every other caller goes
 * straight to the system call, as libc's munmap does.
 */
typedef void (*rvs_unmap_guard_fn)(void);
/* Registers (or, with NULL, removes) the guard. */
void rvs_set_unmap_guard(rvs_unmap_guard_fn guard);
/* How many times the guard ran (for tests and diagnostics). */
uint64_t rvs_unmap_guard_runs(void);

#endif
