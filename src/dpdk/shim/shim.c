/* See shim.h. */
/* The CPU-crypto calls are marked experimental in DPDK 22.11. */
#define ALLOW_EXPERIMENTAL_API 1
#include <string.h>
#include <pthread.h>
#include <intel-ipsec-mb.h>
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_bitops.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_cryptodev.h>
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

uint64_t vpcemu_rx_offload_scatter(void)
{
	return RTE_ETH_RX_OFFLOAD_SCATTER;
}

/* ---- AES-128-GCM: the crypto_aesni_gcm driver's library (intel-ipsec-mb), called directly ---- */

int vpcemu_gcm_device_ok(uint8_t dev_id)
{
	return rte_cryptodev_is_valid_dev(dev_id);
}

/* One manager for the process: the AES-GCM functions it points at keep no state in it
 * (their context is the caller's), so every thread may call through it once it is set. */
static IMB_MGR *imb_mgr;
static pthread_once_t imb_once = PTHREAD_ONCE_INIT;

static void imb_setup(void)
{
	IMB_MGR *m = alloc_mb_mgr(0);
	if (m == NULL)
		return;
	init_mb_mgr_auto(m, NULL);
	if (imb_get_errno(m) != 0 || m->gcm128_enc == NULL || m->gcm128_dec == NULL ||
	    m->gcm128_pre == NULL) {
		free_mb_mgr(m);
		return;
	}
	imb_mgr = m;
}

int vpcemu_gcm_init(void)
{
	pthread_once(&imb_once, imb_setup);
	return imb_mgr != NULL ? 0 : -1;
}

size_t vpcemu_gcm_key_size(void)
{
	return sizeof(struct gcm_key_data);
}

int vpcemu_gcm_key(const uint8_t *key, void *key_data)
{
	if (vpcemu_gcm_init() != 0)
		return -1;
	IMB_AES128_GCM_PRE(imb_mgr, key, (struct gcm_key_data *)key_data);
	return 0;
}

void vpcemu_gcm_key_clear(void *key_data)
{
	explicit_bzero(key_data, sizeof(struct gcm_key_data));
}

uint32_t vpcemu_gcm_burst(const void *key_data, struct vpcemu_gcm_op *ops, uint32_t n, int encrypt)
{
	const struct gcm_key_data *k = key_data;
	struct gcm_context_data ctx;
	uint32_t i, done = 0;
	IMB_MGR *m = imb_mgr;
	if (m == NULL) {
		for (i = 0; i < n; i++)
			ops[i].status = -1;
		return 0;
	}
	if (encrypt) {
		/* The function pointer read once for the burst, not after every call. */
		aes_gcm_enc_dec_t enc = m->gcm128_enc;
		for (i = 0; i < n; i++) {
			struct vpcemu_gcm_op *op = &ops[i];
			enc(k, &ctx, op->data, op->data, op->len, op->iv, op->aad, VPCEMU_GCM_AAD_LEN,
			    op->tag, VPCEMU_GCM_TAG_LEN);
			op->status = 0;
		}
		return n;
	}
	aes_gcm_enc_dec_t dec = m->gcm128_dec;
	for (i = 0; i < n; i++) {
		struct vpcemu_gcm_op *op = &ops[i];
		uint8_t tag[VPCEMU_GCM_TAG_LEN];
		uint8_t diff = 0;
		unsigned j;
		dec(k, &ctx, op->data, op->data, op->len, op->iv, op->aad, VPCEMU_GCM_AAD_LEN, tag,
		    VPCEMU_GCM_TAG_LEN);
		/* Constant time: every byte compared. */
		for (j = 0; j < VPCEMU_GCM_TAG_LEN; j++)
			diff |= tag[j] ^ op->tag[j];
		op->status = diff != 0;
		done += op->status == 0;
	}
	return done;
}
