/*
 * vpcemu's C shim: exported wrappers for DPDK APIs that are static inline functions or
 * macros, which bindgen cannot bind. Each is a one-line forward; the per-packet work
 * (mbuf data pointer arithmetic) is done in Rust on the mbuf fields instead.
 */
#ifndef VPCEMU_SHIM_H
#define VPCEMU_SHIM_H

#include <stdint.h>
#include <stddef.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t vpcemu_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t vpcemu_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *vpcemu_pktmbuf_alloc(struct rte_mempool *mp);
int vpcemu_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void vpcemu_pktmbuf_free(struct rte_mbuf *m);
uint16_t vpcemu_mbuf_refcnt_read(const struct rte_mbuf *m);
int vpcemu_errno(void);
unsigned vpcemu_lcore_id(void);
uint64_t vpcemu_rdtsc(void);
void vpcemu_pause(void);
uint64_t vpcemu_bit64(unsigned n);
uint16_t vpcemu_pktmbuf_headroom(void);
uint64_t vpcemu_rx_offload_scatter(void);

/*
 * AES-128-GCM with the library behind DPDK's crypto_aesni_gcm driver (intel-ipsec-mb),
 * its one-shot functions called directly: 16-byte key, 12-byte IV (salt || explicit IV),
 * 8-byte AAD, 16-byte tag, in place.
 */
#define VPCEMU_GCM_KEY_LEN 16
#define VPCEMU_GCM_IV_LEN 12
#define VPCEMU_GCM_AAD_LEN 8
#define VPCEMU_GCM_TAG_LEN 16
/* Nonzero if dev_id is a cryptodev. */
int vpcemu_gcm_device_ok(uint8_t dev_id);
/* Set up the library's function table once for the process; 0 once it is usable. */
int vpcemu_gcm_init(void);
/* Bytes of a key's expanded data (struct gcm_key_data); best 64-byte aligned. */
size_t vpcemu_gcm_key_size(void);
/* Expand key (16 bytes) into key_data (vpcemu_gcm_key_size() bytes); 0 when done. */
int vpcemu_gcm_key(const uint8_t *key, void *key_data);
/* Erase key_data (explicit_bzero). */
void vpcemu_gcm_key_clear(void *key_data);
/* One operation of a burst: len bytes at data in place, IV iv (12 bytes), AAD aad (8),
 * tag tag (16: written by an encrypt, the received tag for a decrypt); status is 0 once it
 * was done (decrypt: the tag verified). */
struct vpcemu_gcm_op {
	uint8_t *data;
	const uint8_t *iv;
	const uint8_t *aad;
	uint8_t *tag;
	uint32_t len;
	int32_t status;
};
/* The n operations with key_data, one one-shot call each (encrypt nonzero: seal, else open
 * and compare the tag in constant time). Returns the number done. */
uint32_t vpcemu_gcm_burst(const void *key_data, struct vpcemu_gcm_op *ops, uint32_t n, int encrypt);

/* Layout facts checked against Rust's view of struct rte_mbuf in a test. */
size_t vpcemu_mbuf_off_buf_addr(void);
size_t vpcemu_mbuf_off_data_off(void);
size_t vpcemu_mbuf_off_pkt_len(void);
size_t vpcemu_mbuf_off_data_len(void);
size_t vpcemu_mbuf_off_buf_len(void);
size_t vpcemu_mbuf_size(void);

#endif
