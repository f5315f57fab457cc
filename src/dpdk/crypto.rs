//! AES-128-GCM by a DPDK cryptodev through the synchronous CPU-crypto API
//! (`rte_cryptodev_sym_cpu_crypto_process`), as the edge's ESP cipher.
//!
//! [`CryptoDev::aesni_gcm`] creates (or finds) the `crypto_aesni_gcm0` vdev of the ipsec_mb
//! driver and a pool for its sessions; [`CryptoDev::aes_gcm`] makes one encrypt and one
//! decrypt session for a key. Each call of [`DpdkAesGcm`]'s `seal`/`open` is one
//! synchronous operation on the calling thread: no queue pair, no crypto op, no mbuf; the
//! driver keeps its multi-buffer manager per thread, so workers may share a session. Its
//! `seal_burst`/`open_burst` hand up to 64 operations to one call (the vector form,
//! `struct rte_crypto_sym_vec`, built by the shim from one array of operations).
//!
//! The sessions fix the sizes ESP uses (RFC 4106 without extended sequence numbers):
//! 12-byte IV (salt || explicit IV), 8-byte AAD (SPI || sequence number), 16-byte tag. Any
//! other AAD length is refused (seal zeroes the data and returns a zero tag, open fails),
//! as the [`Aead`] contract says for inputs the cipher does not take.

use std::ffi::{CString, c_void};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arrayvec::ArrayVec;

use blackfoot::aead::{Aead, AeadFactory, AeadJob, KEY_LEN, KeyError, NONCE_LEN, TAG_LEN};

use super::error::{DpdkError, Result, rte_errno, strerror};
use super::ffi;

/// The AAD length the sessions are made for (ESP: SPI || 32-bit sequence number).
pub const AAD_LEN: usize = 8;

/// The ipsec_mb AES-GCM driver's vdev name.
pub const AESNI_GCM_VDEV: &str = "crypto_aesni_gcm0";

/// Sessions the pool holds: two per key (encrypt, decrypt).
const SESSIONS: u32 = 1024;

static POOLS: AtomicU32 = AtomicU32::new(0);

struct Device {
    id: u8,
    name: String,
    pool: NonNull<ffi::rte_mempool>,
}

// SAFETY: the session pool is a DPDK mempool (MT-safe get/put); the device id is a plain
// number. Sessions are created and freed through MT-safe cryptodev calls.
unsafe impl Send for Device {}
// SAFETY: see above; nothing in Device is mutated after creation.
unsafe impl Sync for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: every session came from this pool and holds an Arc<Device>, so all of
        // them have been freed back into it before the last Arc drops here.
        unsafe { ffi::rte_mempool_free(self.pool.as_ptr()) };
    }
}

/// A cryptodev that can do AES-128-GCM on the CPU, with its session pool.
#[derive(Clone)]
pub struct CryptoDev {
    dev: Arc<Device>,
}

impl core::fmt::Debug for CryptoDev {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CryptoDev").field("name", &self.dev.name).field("id", &self.dev.id).finish()
    }
}

fn crypto_err(device: &str, op: &'static str, message: impl Into<String>) -> DpdkError {
    DpdkError::Crypto { device: device.to_string(), op, message: message.into() }
}

impl CryptoDev {
    /// The ipsec_mb `crypto_aesni_gcm` device [`AESNI_GCM_VDEV`], which the EAL arguments
    /// must have created (`--vdev crypto_aesni_gcm0`).
    ///
    /// # Errors
    /// The device is not there (not asked for, driver not installed, or it refused this
    /// CPU: the EAL log says which), it lacks the CPU-crypto API, or no session pool could
    /// be made.
    pub fn aesni_gcm() -> Result<CryptoDev> {
        let name = AESNI_GCM_VDEV;
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_string()))?;
        // SAFETY: cname is a valid NUL-terminated string for the duration of the call,
        // which only reads it.
        let id = unsafe { ffi::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        let id = u8::try_from(id).map_err(|_| crypto_err(name, "rte_cryptodev_get_dev_id", "no such device (did the driver probe?)"))?;
        // SAFETY: id is a valid cryptodev id (just looked up); the call only reads the
        // device's info.
        if unsafe { ffi::vpcemu_gcm_cpu_crypto(id) } == 0 {
            return Err(crypto_err(name, "feature check", "no synchronous CPU-crypto API"));
        }
        // SAFETY: valid device id; configuring an idle device only sets its queue pair
        // table (the driver's session setup reads it).
        let rc = unsafe { ffi::vpcemu_gcm_configure(id) };
        if rc != 0 {
            return Err(crypto_err(name, "rte_cryptodev_configure", strerror(rc)));
        }
        let pool_name = format!("vpcemu_gcm{}", POOLS.fetch_add(1, Ordering::Relaxed));
        let cpool = CString::new(pool_name.clone()).map_err(|_| DpdkError::BadArgument(pool_name))?;
        // SAFETY: valid device id and NUL-terminated name; returns NULL on failure.
        let pool = unsafe { ffi::vpcemu_gcm_session_pool(id, cpool.as_ptr(), SESSIONS) };
        let pool = NonNull::new(pool)
            .ok_or_else(|| crypto_err(name, "session pool", strerror(rte_errno())))?;
        Ok(CryptoDev { dev: Arc::new(Device { id, name: name.to_string(), pool }) })
    }

    /// One encrypt and one decrypt session for `key`.
    ///
    /// # Errors
    /// The driver refused the session (the pool is exhausted, or the key).
    pub fn aes_gcm(&self, key: &[u8; KEY_LEN]) -> Result<DpdkAesGcm> {
        let make = |encrypt: i32| {
            // SAFETY: the device id is valid, the pool is the device's session pool and
            // outlives the session (held through `dev`), key points at 16 readable bytes
            // that the driver expands into the session during the call.
            let s = unsafe { ffi::vpcemu_gcm_session(self.dev.id, self.dev.pool.as_ptr(), key.as_ptr(), encrypt) };
            NonNull::new(s).ok_or_else(|| crypto_err(&self.dev.name, "session create", strerror(rte_errno())))
        };
        let enc = make(1)?;
        let dec = match make(0) {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: enc was just created on this device and is used by nobody else.
                unsafe { ffi::vpcemu_gcm_session_free(self.dev.id, enc.as_ptr()) };
                return Err(e);
            }
        };
        Ok(DpdkAesGcm { dev: Arc::clone(&self.dev), enc, dec })
    }
}

impl AeadFactory for CryptoDev {
    fn make(&self, key: &[u8; KEY_LEN]) -> core::result::Result<Box<dyn Aead>, KeyError> {
        // The cause (pool exhausted, key refused) is DPDK's log; KeyError says which key.
        self.aes_gcm(key).map(|a| Box::new(a) as Box<dyn Aead>).map_err(|_| KeyError)
    }

    fn name(&self) -> &'static str {
        DpdkAesGcm::NAME
    }
}

/// AES-128-GCM with a cryptodev's CPU-crypto API: one encrypt and one decrypt session.
pub struct DpdkAesGcm {
    dev: Arc<Device>,
    enc: NonNull<c_void>,
    dec: NonNull<c_void>,
}

// SAFETY: a session is read-only while processing (key schedule and GHASH keys); the
// driver keeps its per-operation context on the caller's stack and its multi-buffer
// manager per thread, so concurrent calls from several threads on one session are sound.
unsafe impl Send for DpdkAesGcm {}
// SAFETY: see above.
unsafe impl Sync for DpdkAesGcm {}

impl Drop for DpdkAesGcm {
    fn drop(&mut self) {
        // SAFETY: both sessions were created on this device, and `&mut self` means no
        // operation is running on them.
        unsafe {
            ffi::vpcemu_gcm_session_free(self.dev.id, self.enc.as_ptr());
            ffi::vpcemu_gcm_session_free(self.dev.id, self.dec.as_ptr());
        }
    }
}

impl core::fmt::Debug for DpdkAesGcm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DpdkAesGcm").field("device", &self.dev.name).finish_non_exhaustive()
    }
}

impl DpdkAesGcm {
    /// The stable [`Aead::name`].
    pub const NAME: &'static str = "aes128-gcm-aesni-gcm";

    fn process(&self, sess: NonNull<c_void>, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &mut [u8; TAG_LEN]) -> bool {
        let Ok(len) = u32::try_from(data.len()) else { return false };
        if aad.len() != AAD_LEN {
            return false;
        }
        // SAFETY: data is `len` writable bytes, nonce 12 readable bytes, aad 8 readable
        // bytes (checked), tag 16 writable bytes, all valid for the duration of the call,
        // which is synchronous and keeps no pointer; the session belongs to this device.
        unsafe {
            ffi::vpcemu_gcm_process(
                self.dev.id,
                sess.as_ptr(),
                data.as_mut_ptr(),
                len,
                nonce.as_ptr(),
                aad.as_ptr(),
                tag.as_mut_ptr(),
            ) == 0
        }
    }
}

/// Most operations of one vector call: the shim's `VPCEMU_GCM_MAX_BURST` (its stack arrays;
/// it refuses a larger `n`, doing nothing).
const BURST: usize = 64;

impl DpdkAesGcm {
    /// The jobs of a burst on session `sess`, in vector calls of up to [`BURST`]
    /// operations (one for a pipeline burst): each job's `ok` says whether its operation
    /// was done (decrypt: the tag verified). Jobs the session cannot take (an AAD other
    /// than [`AAD_LEN`], more than 4 GiB) are not ok and not touched.
    fn process_burst(&self, sess: NonNull<c_void>, jobs: &mut [AeadJob<'_>]) {
        for chunk in jobs.chunks_mut(BURST) {
            let mut ops: ArrayVec<ffi::vpcemu_gcm_op, BURST> = ArrayVec::new();
            // Which job each operation is.
            let mut of = [0u8; BURST];
            for (k, job) in chunk.iter_mut().enumerate() {
                job.ok = false;
                let Ok(len) = u32::try_from(job.data.len()) else { continue };
                if job.aad.len() != AAD_LEN {
                    continue;
                }
                let op = ffi::vpcemu_gcm_op {
                    data: job.data.as_mut_ptr(),
                    iv: job.nonce.as_ptr(),
                    aad: job.aad.as_ptr(),
                    tag: job.tag.as_mut_ptr(),
                    len,
                    status: -1,
                };
                if let (Some(slot), Ok(())) = (of.get_mut(ops.len()), ops.try_push(op)) {
                    *slot = k as u8;
                }
            }
            if ops.is_empty() {
                continue;
            }
            // SAFETY: ops holds ops.len() <= BURST (the shim's limit) operations, each
            // pointing at its job's data (len writable bytes), 12-byte nonce, 8-byte AAD
            // (checked) and 16-byte tag, borrowed from `chunk`'s jobs (disjoint: the jobs
            // hold them as separate `&mut`/`&`) for the duration of the call, which is
            // synchronous and keeps no pointer; it writes only the ops' statuses and the
            // data and tags. The session belongs to this device.
            unsafe {
                ffi::vpcemu_gcm_process_burst(self.dev.id, sess.as_ptr(), ops.as_mut_ptr(), ops.len() as u32);
            }
            for (op, &k) in ops.iter().zip(of.iter()) {
                if let Some(job) = chunk.get_mut(usize::from(k)) {
                    job.ok = op.status == 0;
                }
            }
        }
    }
}

impl Aead for DpdkAesGcm {
    /// One vector call for the burst; a job the session refused is zeroed with a zero tag.
    fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
        self.process_burst(self.enc, jobs);
        for job in jobs.iter_mut().filter(|j| !j.ok) {
            job.data.fill(0);
            *job.tag = [0; TAG_LEN];
        }
    }

    /// One vector call for the burst.
    fn open_burst(&self, jobs: &mut [AeadJob<'_>]) {
        self.process_burst(self.dec, jobs);
    }

    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = [0; TAG_LEN];
        if !self.process(self.enc, nonce, aad, data, &mut tag) {
            data.fill(0);
            return [0; TAG_LEN];
        }
        tag
    }

    #[inline]
    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let mut expected = *tag;
        self.process(self.dec, nonce, aad, data, &mut expected)
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }
}
