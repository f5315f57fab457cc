/* See shim.h. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_bitops.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include "shim.h"

uint16_t vpcemu_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t vpcemu_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *vpcemu_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int vpcemu_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void vpcemu_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint16_t vpcemu_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

int vpcemu_errno(void)
{
	return rte_errno;
}

unsigned vpcemu_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t vpcemu_rdtsc(void)
{
	return rte_rdtsc();
}

void vpcemu_pause(void)
{
	rte_pause();
}

uint64_t vpcemu_bit64(unsigned n)
{
	return RTE_BIT64(n);
}

uint16_t vpcemu_pktmbuf_headroom(void)
{
	return RTE_PKTMBUF_HEADROOM;
}

size_t vpcemu_mbuf_off_buf_addr(void) { return offsetof(struct rte_mbuf, buf_addr); }
size_t vpcemu_mbuf_off_data_off(void) { return offsetof(struct rte_mbuf, data_off); }
size_t vpcemu_mbuf_off_pkt_len(void) { return offsetof(struct rte_mbuf, pkt_len); }
size_t vpcemu_mbuf_off_data_len(void) { return offsetof(struct rte_mbuf, data_len); }
size_t vpcemu_mbuf_off_buf_len(void) { return offsetof(struct rte_mbuf, buf_len); }
size_t vpcemu_mbuf_size(void) { return sizeof(struct rte_mbuf); }
