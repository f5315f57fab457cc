/* See shim.h. */
/* The CPU-crypto calls are marked experimental in DPDK 22.11. */
#define ALLOW_EXPERIMENTAL_API 1
#include <string.h>
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

/* ---- AES-128-GCM through a cryptodev's synchronous CPU-crypto API ---- */

int vpcemu_gcm_configure(uint8_t dev_id)
{
	/* One queue pair, never set up: the CPU-crypto API does not use it, but the
	 * driver's session configuration reads the (then empty) queue pair table. */
	struct rte_cryptodev_config conf;
	memset(&conf, 0, sizeof(conf));
	conf.socket_id = rte_cryptodev_socket_id(dev_id);
	conf.nb_queue_pairs = 1;
	conf.ff_disable = RTE_CRYPTODEV_FF_ASYMMETRIC_CRYPTO | RTE_CRYPTODEV_FF_SECURITY;
	return rte_cryptodev_configure(dev_id, &conf);
}

struct rte_mempool *vpcemu_gcm_session_pool(uint8_t dev_id, const char *name, uint32_t n)
{
	unsigned priv = rte_cryptodev_sym_get_private_session_size(dev_id);
	if (priv == 0)
		return NULL;
	return rte_cryptodev_sym_session_pool_create(name, n, priv, 0, 0, SOCKET_ID_ANY);
}

int vpcemu_gcm_cpu_crypto(uint8_t dev_id)
{
	struct rte_cryptodev_info info;
	if (!rte_cryptodev_is_valid_dev(dev_id))
		return 0;
	memset(&info, 0, sizeof(info));
	rte_cryptodev_info_get(dev_id, &info);
	return (info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) != 0;
}

void *vpcemu_gcm_session(uint8_t dev_id, struct rte_mempool *pool, const uint8_t *key,
			 int encrypt)
{
	struct rte_crypto_sym_xform x;
	memset(&x, 0, sizeof(x));
	x.type = RTE_CRYPTO_SYM_XFORM_AEAD;
	x.aead.op = encrypt ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT;
	x.aead.algo = RTE_CRYPTO_AEAD_AES_GCM;
	x.aead.key.data = key;
	x.aead.key.length = VPCEMU_GCM_KEY_LEN;
	x.aead.iv.offset = 0; /* the CPU-crypto API passes the IV by pointer */
	x.aead.iv.length = VPCEMU_GCM_IV_LEN;
	x.aead.digest_length = VPCEMU_GCM_TAG_LEN;
	x.aead.aad_length = VPCEMU_GCM_AAD_LEN;
	return rte_cryptodev_sym_session_create(dev_id, &x, pool);
}

int vpcemu_gcm_session_free(uint8_t dev_id, void *sess)
{
	return rte_cryptodev_sym_session_free(dev_id, sess);
}

int vpcemu_gcm_process(uint8_t dev_id, void *sess, uint8_t *data, uint32_t len,
		       const uint8_t *iv, const uint8_t *aad, uint8_t *tag)
{
	struct rte_crypto_vec seg = { .base = data, .iova = 0, .len = len, .tot_len = len };
	struct rte_crypto_sgl sgl = { .vec = &seg, .num = 1 };
	struct rte_crypto_va_iova_ptr ivp = { .va = (void *)(uintptr_t)iv, .iova = 0 };
	struct rte_crypto_va_iova_ptr aadp = { .va = (void *)(uintptr_t)aad, .iova = 0 };
	struct rte_crypto_va_iova_ptr tagp = { .va = tag, .iova = 0 };
	int32_t status = -1;
	struct rte_crypto_sym_vec vec = {
		.num = 1, .src_sgl = &sgl, .dest_sgl = NULL, .iv = &ivp, .digest = &tagp,
		.aad = &aadp, .status = &status,
	};
	union rte_crypto_sym_ofs ofs = { .raw = 0 };
	if (rte_cryptodev_sym_cpu_crypto_process(dev_id, sess, ofs, &vec) != 1)
		return status != 0 ? status : -1;
	return status;
}

uint32_t vpcemu_gcm_process_burst(uint8_t dev_id, void *sess, struct vpcemu_gcm_op *ops, uint32_t n)
{
	struct rte_crypto_vec seg[VPCEMU_GCM_MAX_BURST];
	struct rte_crypto_sgl sgl[VPCEMU_GCM_MAX_BURST];
	struct rte_crypto_va_iova_ptr ivp[VPCEMU_GCM_MAX_BURST];
	struct rte_crypto_va_iova_ptr aadp[VPCEMU_GCM_MAX_BURST];
	struct rte_crypto_va_iova_ptr tagp[VPCEMU_GCM_MAX_BURST];
	int32_t status[VPCEMU_GCM_MAX_BURST];
	uint32_t i, done;
	for (i = 0; i < n; i++)
		ops[i].status = -1;
	if (n == 0 || n > VPCEMU_GCM_MAX_BURST)
		return 0;
	for (i = 0; i < n; i++) {
		seg[i] = (struct rte_crypto_vec){ .base = ops[i].data, .iova = 0, .len = ops[i].len,
						  .tot_len = ops[i].len };
		sgl[i] = (struct rte_crypto_sgl){ .vec = &seg[i], .num = 1 };
		ivp[i] = (struct rte_crypto_va_iova_ptr){ .va = (void *)(uintptr_t)ops[i].iv, .iova = 0 };
		aadp[i] = (struct rte_crypto_va_iova_ptr){ .va = (void *)(uintptr_t)ops[i].aad, .iova = 0 };
		tagp[i] = (struct rte_crypto_va_iova_ptr){ .va = ops[i].tag, .iova = 0 };
		status[i] = -1;
	}
	struct rte_crypto_sym_vec vec = {
		.num = n, .src_sgl = sgl, .dest_sgl = NULL, .iv = ivp, .digest = tagp,
		.aad = aadp, .status = status,
	};
	union rte_crypto_sym_ofs ofs = { .raw = 0 };
	done = rte_cryptodev_sym_cpu_crypto_process(dev_id, sess, ofs, &vec);
	for (i = 0; i < n; i++)
		ops[i].status = status[i];
	return done;
}
