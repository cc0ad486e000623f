/* See shim.h. Each function forwards to the DPDK inline of the same name. */
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rte_interrupts.h>

#include "shim.h"

int rvs_rte_errno(void) { return rte_errno; }

unsigned int rvs_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t rvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                              struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                              struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rvs_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

void rvs_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *rvs_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }

char *rvs_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

char *rvs_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

int rvs_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

void *rvs_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t rvs_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

uint16_t rvs_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

uint64_t rvs_rte_eth_rss_ip_l4(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; }

uint64_t rvs_rte_eth_rx_offload_checksum(void)
{
	return RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
}

uint64_t rvs_rte_eth_rx_offload_scatter(void) { return RTE_ETH_RX_OFFLOAD_SCATTER; }

/* See shim.h, "Unmap guard". */
static _Atomic(rvs_unmap_guard_fn) unmap_guard;
static _Atomic uint64_t unmap_guard_count;
/* Set while the guard runs on this thread, so an munmap it causes does not re-enter it. */
static __thread int in_unmap_guard;

void rvs_set_unmap_guard(rvs_unmap_guard_fn guard) { atomic_store(&unmap_guard, guard); }

uint64_t rvs_unmap_guard_runs(void) { return atomic_load(&unmap_guard_count); }

int munmap(void *addr, size_t len)
{
	rvs_unmap_guard_fn guard = atomic_load(&unmap_guard);

	if (guard != NULL && !in_unmap_guard && rte_thread_is_intr()) {
		in_unmap_guard = 1;
		guard();
		atomic_fetch_add(&unmap_guard_count, 1);
		in_unmap_guard = 0;
	}
	return (int)syscall(SYS_munmap, addr, len);
}
