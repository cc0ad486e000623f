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

#endif
