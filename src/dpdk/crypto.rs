//! AES-128-GCM as the edge's ESP cipher: the library behind DPDK's ipsec_mb
//! `crypto_aesni_gcm` driver (intel-ipsec-mb), its one-shot functions called directly.
//!
//! [`CryptoDev::aesni_gcm`] finds the `crypto_aesni_gcm0` vdev of the ipsec_mb driver (it
//! probes only where the library runs on this CPU) and sets up the library's function table
//! once for the process; [`CryptoDev::aes_gcm`] expands a key (the AES round keys and the
//! GHASH key powers, as the driver's session does). Each call of [`DpdkAesGcm`]'s
//! `seal`/`open` is one synchronous operation on the calling thread, and its
//! `seal_burst`/`open_burst` hand up to 64 operations to one shim call: no queue pair, no
//! crypto op, no mbuf, no per-thread state, so workers may share a key.
//!
//! Why not the cryptodev's CPU-crypto API (`rte_cryptodev_sym_cpu_crypto_process`), which
//! this used before: in DPDK 22.11 the driver walks the vector one operation after another
//! with the library's three-call form (init, update, finalize), each call clearing the
//! vector registers on its way out; the one-shot `gcm128_enc`/`gcm128_dec` do the same
//! operation in one call, about 25 cycles less per packet at 64 bytes and at 1400 (measured).
//!
//! The keys fix the sizes ESP uses (RFC 4106 without extended sequence numbers): 12-byte
//! IV (salt || explicit IV), 8-byte AAD (SPI || sequence number), 16-byte tag. Any other
//! AAD length is refused (seal zeroes the data and returns a zero tag, open fails), as the
//! [`Aead`] contract says for inputs the cipher does not take.

use std::ffi::CString;
use std::sync::Arc;

use arrayvec::ArrayVec;

use blackfoot::aead::{Aead, AeadFactory, AeadJob, KEY_LEN, KeyError, NONCE_LEN, TAG_LEN};

use super::error::{DpdkError, Result};
use super::ffi;

/// The AAD length the keys are used with (ESP: SPI || 32-bit sequence number).
pub const AAD_LEN: usize = 8;

/// The ipsec_mb AES-GCM driver's vdev name.
pub const AESNI_GCM_VDEV: &str = "crypto_aesni_gcm0";

/// Bytes kept for a key's expanded data (the library's `struct gcm_key_data`, 1008 bytes
/// in intel-ipsec-mb 1.3; checked against the shim's size when the device starts).
const KEY_DATA_LEN: usize = 1024;

/// A key's expanded data, aligned for the library's vector loads.
#[repr(C, align(64))]
struct KeyData([u8; KEY_DATA_LEN]);

#[derive(Debug)]
struct Device {
    id: u8,
    name: String,
}

/// DPDK's ipsec_mb AES-GCM device, found, and its library started.
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
    /// CPU: the EAL log says which), or the library did not start.
    pub fn aesni_gcm() -> Result<CryptoDev> {
        let name = AESNI_GCM_VDEV;
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_string()))?;
        // SAFETY: cname is a valid NUL-terminated string for the duration of the call,
        // which only reads it.
        let id = unsafe { ffi::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        let id = u8::try_from(id).map_err(|_| crypto_err(name, "rte_cryptodev_get_dev_id", "no such device (did the driver probe?)"))?;
        // SAFETY: the call only reads the cryptodev table.
        if unsafe { ffi::vpcemu_gcm_device_ok(id) } == 0 {
            return Err(crypto_err(name, "rte_cryptodev_is_valid_dev", "not a cryptodev"));
        }
        // SAFETY: sets up the library's manager once for the process (pthread_once);
        // no arguments.
        if unsafe { ffi::vpcemu_gcm_init() } != 0 {
            return Err(crypto_err(name, "intel-ipsec-mb", "the library did not start on this CPU"));
        }
        // SAFETY: returns a compile-time constant.
        let size = unsafe { ffi::vpcemu_gcm_key_size() };
        if size > KEY_DATA_LEN {
            return Err(crypto_err(name, "intel-ipsec-mb", format!("key data of {size} bytes (room for {KEY_DATA_LEN})")));
        }
        Ok(CryptoDev { dev: Arc::new(Device { id, name: name.to_string() }) })
    }

    /// The cipher keyed with `key` (its expanded data, used for both directions).
    ///
    /// # Errors
    /// The library refused the key (it did not start: cannot happen once
    /// [`CryptoDev::aesni_gcm`] succeeded).
    pub fn aes_gcm(&self, key: &[u8; KEY_LEN]) -> Result<DpdkAesGcm> {
        let mut data = Box::new(KeyData([0; KEY_DATA_LEN]));
        // SAFETY: key points at 16 readable bytes, data at KEY_DATA_LEN writable bytes, at
        // least the library's key data size (checked when the device started); the call
        // keeps neither pointer.
        if unsafe { ffi::vpcemu_gcm_key(key.as_ptr(), data.0.as_mut_ptr().cast()) } != 0 {
            return Err(crypto_err(&self.dev.name, "key expansion", "intel-ipsec-mb did not start"));
        }
        Ok(DpdkAesGcm { dev: Arc::clone(&self.dev), key: data })
    }
}

impl AeadFactory for CryptoDev {
    fn make(&self, key: &[u8; KEY_LEN]) -> core::result::Result<Box<dyn Aead>, KeyError> {
        // The library did not start (refused at device start already); KeyError says which key.
        self.aes_gcm(key).map(|a| Box::new(a) as Box<dyn Aead>).map_err(|_| KeyError)
    }

    fn name(&self) -> &'static str {
        DpdkAesGcm::NAME
    }
}

/// AES-128-GCM with intel-ipsec-mb's one-shot functions: one expanded key for both
/// directions.
pub struct DpdkAesGcm {
    dev: Arc<Device>,
    key: Box<KeyData>,
}

impl Drop for DpdkAesGcm {
    fn drop(&mut self) {
        // SAFETY: the key data is KEY_DATA_LEN writable bytes, at least the library's
        // size; nothing uses it any more (`&mut self`).
        unsafe { ffi::vpcemu_gcm_key_clear(self.key.0.as_mut_ptr().cast()) };
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

    fn process(&self, encrypt: bool, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &mut [u8; TAG_LEN]) -> bool {
        let mut jobs = [AeadJob { nonce: *nonce, aad, data, tag, ok: false }];
        self.process_burst(encrypt, &mut jobs);
        jobs[0].ok
    }
}

/// Most operations of one shim call (a pipeline burst).
const BURST: usize = 64;

impl DpdkAesGcm {
    /// The jobs of a burst (`encrypt`: seal, else open), in shim calls of up to [`BURST`]
    /// operations (one for a pipeline burst): each job's `ok` says whether its operation
    /// was done (decrypt: the tag verified). Jobs the key is not used with (an AAD other
    /// than [`AAD_LEN`], more than 4 GiB) are not ok, and not touched by an open; a seal
    /// that is not ok zeroes the job's data and tag (as [`Aead::seal`] says), in the same
    /// passes as the rest: one over the jobs before the call, one over the operations after.
    fn process_burst(&self, encrypt: bool, jobs: &mut [AeadJob<'_>]) {
        for chunk in jobs.chunks_mut(BURST) {
            let mut ops: ArrayVec<ffi::vpcemu_gcm_op, BURST> = ArrayVec::new();
            // Which job each operation is.
            let mut of = [0u8; BURST];
            for (k, job) in chunk.iter_mut().enumerate() {
                job.ok = false;
                let len = u32::try_from(job.data.len()).ok().filter(|_| job.aad.len() == AAD_LEN);
                let Some(len) = len else {
                    if encrypt {
                        zero_refused_seal(job);
                    }
                    continue;
                };
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
            // SAFETY: ops holds ops.len() <= BURST operations, each pointing at its job's
            // data (len writable bytes), 12-byte nonce, 8-byte AAD (checked) and 16-byte
            // tag, borrowed from `chunk`'s jobs (disjoint: the jobs hold them as separate
            // `&mut`/`&`) for the duration of the call, which is synchronous and keeps no
            // pointer; it writes only the ops' statuses and the data and tags (seal). The
            // key data is this cipher's, expanded by the library, read only.
            unsafe {
                ffi::vpcemu_gcm_burst(self.key.0.as_ptr().cast(), ops.as_mut_ptr(), ops.len() as u32, i32::from(encrypt));
            }
            for (op, &k) in ops.iter().zip(of.iter()) {
                if let Some(job) = chunk.get_mut(usize::from(k)) {
                    job.ok = op.status == 0;
                    if encrypt && !job.ok {
                        zero_refused_seal(job);
                    }
                }
            }
        }
    }
}

/// A seal that was not done leaves zeros and a zero tag (as [`Aead::seal`] says).
#[inline]
fn zero_refused_seal(job: &mut AeadJob<'_>) {
    job.data.fill(0);
    *job.tag = [0; TAG_LEN];
}

impl Aead for DpdkAesGcm {
    /// One shim call for the burst; a job the key is not used with is zeroed with a zero tag.
    fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
        self.process_burst(true, jobs);
    }

    /// One shim call for the burst.
    fn open_burst(&self, jobs: &mut [AeadJob<'_>]) {
        self.process_burst(false, jobs);
    }

    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = [0; TAG_LEN];
        if !self.process(true, nonce, aad, data, &mut tag) {
            data.fill(0);
            return [0; TAG_LEN];
        }
        tag
    }

    #[inline]
    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let mut expected = *tag;
        self.process(false, nonce, aad, data, &mut expected)
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }
}
