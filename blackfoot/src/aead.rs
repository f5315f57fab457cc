//! AES-128-GCM as ESP uses it (RFC 4106), behind a small in-place AEAD trait.
//!
//! ESP ([`crate::esp`]) only needs two operations on a contiguous slice of the packet:
//! encrypt in place and hand back the 16-byte ICV, or check the ICV and decrypt in place.
//! [`Aead`] is that contract; [`RingAesGcm`] implements it with `ring`
//! ([`LessSafeKey`] over [`AES_128_GCM`], the `*_separate_tag` calls: no copy, no
//! allocation). Their burst form, [`Aead::seal_burst`] and [`Aead::open_burst`] over
//! [`AeadJob`]s, lets a cipher with a vector interface do a burst's packets in one call
//! (ring's default goes one by one). The root crate brings the other one, the AES-GCM of DPDK's ipsec_mb
//! `crypto_aesni_gcm` driver (its library, intel-ipsec-mb, called directly: `vpcemu::dpdk::crypto`); an [`AeadFactory`]
//! picks the implementation for all of an edge's SAs.
//!
//! Sizes: 16-byte key, 12-byte nonce (RFC 4106: 4-byte salt || 8-byte explicit IV, built
//! by the caller), 16-byte tag. The additional authenticated data is whatever the caller
//! passes (for ESP without extended sequence numbers: SPI || sequence number, 8 bytes).
//!
//! Nonce uniqueness is the caller's duty: a nonce must never be used twice under one key
//! to seal (GCM loses both confidentiality and integrity otherwise). ESP guarantees it by
//! deriving the IV from the never-repeating sequence counter of the SA.

use core::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM};

/// Key length of AES-128-GCM in bytes.
pub const KEY_LEN: usize = 16;
/// Nonce length in bytes (RFC 4106: salt 4 || IV 8).
pub const NONCE_LEN: usize = 12;
/// Tag (ESP ICV) length in bytes.
pub const TAG_LEN: usize = 16;

/// An authenticated cipher working in place on packet bytes.
///
/// Implementations must not allocate and must not panic on any input.
pub trait Aead: Send + Sync {
    /// Encrypt `data` in place under `nonce`, authenticating `aad` too, and return the tag.
    ///
    /// The nonce must be unique per call under this key. Should the cipher refuse the
    /// input (AES-GCM's limit is about 64 GiB, beyond any packet), `data` is zeroed so no
    /// plaintext leaves, and the returned tag is all zero, which no receiver accepts.
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN];

    /// Verify `tag` over `aad` and the ciphertext `data`, and decrypt `data` in place.
    ///
    /// True when the tag verifies: `data` then holds the plaintext. False otherwise: the
    /// content of `data` is unspecified and must not be used.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool;

    /// Seal every job of a burst, as [`seal`](Self::seal) would one by one: each job's
    /// `data` is encrypted in place and its `tag` written (all zero, with `data` zeroed,
    /// where the cipher refuses the input); `ok` says whether it was sealed. A cipher with
    /// a burst interface (the root crate's intel-ipsec-mb shim) does the whole burst in one call;
    /// the default loops over [`seal`](Self::seal).
    fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
        for job in jobs.iter_mut() {
            *job.tag = self.seal(&job.nonce, job.aad, job.data);
            job.ok = *job.tag != [0; TAG_LEN];
        }
    }

    /// Verify and decrypt every job of a burst, as [`open`](Self::open) would one by one
    /// with `tag` as the received tag: `ok` is true where the tag verified (`data` then
    /// holds the plaintext). `tag` may be overwritten.
    fn open_burst(&self, jobs: &mut [AeadJob<'_>]) {
        for job in jobs.iter_mut() {
            job.ok = self.open(&job.nonce, job.aad, job.data, job.tag);
        }
    }

    /// A short stable name for logs and statistics.
    fn name(&self) -> &'static str;
}

/// One operation of a burst ([`Aead::seal_burst`], [`Aead::open_burst`]): the nonce, the
/// additional authenticated data, the bytes to encrypt or decrypt in place and the tag
/// (written by a seal, read by an open), all in the packet.
#[derive(Debug)]
pub struct AeadJob<'a> {
    /// The 12-byte nonce (unique per seal under the key).
    pub nonce: [u8; NONCE_LEN],
    /// Authenticated, not encrypted.
    pub aad: &'a [u8],
    /// Encrypted or decrypted in place.
    pub data: &'a mut [u8],
    /// Written by a seal; the received tag for an open.
    pub tag: &'a mut [u8; TAG_LEN],
    /// Set by the burst call: sealed, or the tag verified.
    pub ok: bool,
}

/// The most operations one burst call takes (a pipeline burst).
pub const MAX_BURST_JOBS: usize = pipeline::MAX_BURST;

/// `ring` refused the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyError;

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AES-128-GCM key rejected")
    }
}

impl std::error::Error for KeyError {}

/// AES-128-GCM with `ring`.
///
/// `Debug` prints the algorithm only, never the key.
pub struct RingAesGcm {
    key: LessSafeKey,
}

impl RingAesGcm {
    /// The stable [`Aead::name`].
    pub const NAME: &'static str = "aes128-gcm-ring";

    /// A key for AES-128-GCM. `ring` accepts every 16-byte key; the `Result` only carries
    /// its API's error through instead of panicking.
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Self, KeyError> {
        let unbound = UnboundKey::new(&AES_128_GCM, key).map_err(|_| KeyError)?;
        Ok(RingAesGcm { key: LessSafeKey::new(unbound) })
    }
}

impl fmt::Debug for RingAesGcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingAesGcm").finish_non_exhaustive()
    }
}

impl Aead for RingAesGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        match self.key.seal_in_place_separate_tag(nonce, Aad::from(aad), data) {
            Ok(tag) => tag.as_ref().try_into().unwrap_or([0; TAG_LEN]),
            Err(_) => {
                data.fill(0);
                [0; TAG_LEN]
            }
        }
    }

    #[inline]
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(*tag), data, 0..)
            .is_ok()
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// A boxed cipher is a cipher: the edge's SAs hold `Box<dyn Aead>` so the implementation
/// (ring here, DPDK's cryptodev in the root crate) is chosen when the edge starts.
impl<A: Aead + ?Sized> Aead for Box<A> {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        (**self).seal(nonce, aad, data)
    }

    #[inline]
    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        (**self).open(nonce, aad, data, tag)
    }

    #[inline]
    fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
        (**self).seal_burst(jobs)
    }

    #[inline]
    fn open_burst(&self, jobs: &mut [AeadJob<'_>]) {
        (**self).open_burst(jobs)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// Two implementations of one cipher (the same bytes for the same input), each for the
/// lengths it is faster at: `small` for data shorter than `from` bytes, `large` from
/// there. A burst goes to each in runs of consecutive jobs of its lengths, one burst call
/// a run (one call for a burst of one kind, as a pipeline's usually is).
pub struct BySize {
    small: Box<dyn Aead>,
    large: Box<dyn Aead>,
    from: usize,
    name: &'static str,
}

impl BySize {
    /// `small` below `from` bytes of data, `large` from `from`; `name` is the
    /// [`Aead::name`] of the pair.
    pub fn new(small: Box<dyn Aead>, large: Box<dyn Aead>, from: usize, name: &'static str) -> Self {
        BySize { small, large, from, name }
    }

    /// The cipher for `len` bytes of data.
    #[inline]
    fn of(&self, len: usize) -> &dyn Aead {
        if len < self.from {
            &*self.small
        } else {
            &*self.large
        }
    }

    /// `f` over the runs of consecutive jobs that go to the same cipher.
    #[inline]
    fn runs(&self, jobs: &mut [AeadJob<'_>], f: impl Fn(&dyn Aead, &mut [AeadJob<'_>])) {
        let mut rest = jobs;
        while let Some(first) = rest.first() {
            let large = first.data.len() >= self.from;
            let n = rest.iter().take_while(|j| (j.data.len() >= self.from) == large).count();
            // 1 <= n <= rest.len(): the first job is counted.
            let (run, tail) = rest.split_at_mut(n);
            f(if large { &*self.large } else { &*self.small }, run);
            rest = tail;
        }
    }
}

impl fmt::Debug for BySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BySize")
            .field("small", &self.small.name())
            .field("large", &self.large.name())
            .field("from", &self.from)
            .finish()
    }
}

impl Aead for BySize {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        self.of(data.len()).seal(nonce, aad, data)
    }

    #[inline]
    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        self.of(data.len()).open(nonce, aad, data, tag)
    }

    fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
        self.runs(jobs, |a, run| a.seal_burst(run));
    }

    fn open_burst(&self, jobs: &mut [AeadJob<'_>]) {
        self.runs(jobs, |a, run| a.open_burst(run));
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// Makes one AES-128-GCM cipher per key: how an edge picks its implementation for all of
/// its SAs.
pub trait AeadFactory: Send + Sync {
    /// A cipher for this 16-byte key.
    fn make(&self, key: &[u8; KEY_LEN]) -> Result<Box<dyn Aead>, KeyError>;

    /// The [`Aead::name`] of the ciphers this factory makes.
    fn name(&self) -> &'static str;
}

/// The [`AeadFactory`] of [`RingAesGcm`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RingFactory;

impl AeadFactory for RingFactory {
    fn make(&self, key: &[u8; KEY_LEN]) -> Result<Box<dyn Aead>, KeyError> {
        Ok(Box::new(RingAesGcm::new(key)?))
    }

    fn name(&self) -> &'static str {
        RingAesGcm::NAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    /// One known answer: seal gives `ct` and `tag`, open gives `pt` back.
    fn check_kat(key: &str, iv: &str, aad: &str, pt: &str, ct: &str, tag: &str) {
        let aead = RingAesGcm::new(&arr(key)).unwrap();
        let nonce: [u8; 12] = arr(iv);
        let (aad, pt, ct, tag) = (hex(aad), hex(pt), hex(ct), arr::<16>(tag));
        let mut data = pt.clone();
        assert_eq!(aead.seal(&nonce, &aad, &mut data), tag);
        assert_eq!(data, ct);
        assert!(aead.open(&nonce, &aad, &mut data, &tag));
        assert_eq!(data, pt);
    }

    // The GCM specification's test cases (McGrew and Viega, "The Galois/Counter Mode of
    // Operation", appendix B; also NIST's gcmEncryptExtIV128 vectors), checked against
    // Python's `cryptography` (OpenSSL) too.
    #[test]
    fn known_answer_test_cases_1_to_4() {
        let zero16 = "00000000000000000000000000000000";
        let zero12 = "000000000000000000000000";
        // Test case 1: empty plaintext.
        check_kat(zero16, zero12, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a");
        // Test case 2: one zero block.
        check_kat(
            zero16,
            zero12,
            "",
            zero16,
            "0388dace60b6a392f328c2b971b2fe78",
            "ab6e47d42cec13bdf53a67b21257bddf",
        );
        let key = "feffe9928665731c6d6a8f9467308308";
        let iv = "cafebabefacedbaddecaf888";
        let pt = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                  1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
        let ct = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                  21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
        // Test case 3: four blocks, no AAD.
        check_kat(key, iv, "", pt, ct, "4d5c2af327cd64a62cf35abd2ba6fab4");
        // Test case 4: 60 bytes (a partial last block) and 20 bytes of AAD.
        check_kat(
            key,
            iv,
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            &pt[..120],
            &ct[..120],
            "5bc94fbc3221a5db94fae95ae7121a47",
        );
    }

    #[test]
    fn round_trip_every_small_length() {
        let aead = RingAesGcm::new(&[7; 16]).unwrap();
        let nonce = [9; 12];
        for len in 0..200usize {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + 5) as u8).collect();
            let mut data = plain.clone();
            let tag = aead.seal(&nonce, b"spi+seq!", &mut data);
            if len > 0 {
                assert_ne!(data, plain, "{len}");
            }
            assert!(aead.open(&nonce, b"spi+seq!", &mut data, &tag), "{len}");
            assert_eq!(data, plain, "{len}");
        }
    }

    #[test]
    fn tampering_is_detected() {
        let aead = RingAesGcm::new(&[1; 16]).unwrap();
        let nonce = [2; 12];
        let aad = [3u8; 8];
        let plain = [4u8; 37];
        let mut sealed = plain;
        let tag = aead.seal(&nonce, &aad, &mut sealed);
        // Every single-bit flip of ciphertext, tag, AAD or nonce is refused.
        for bit in 0..plain.len() * 8 {
            let mut d = sealed;
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(!aead.open(&nonce, &aad, &mut d, &tag), "ciphertext bit {bit}");
        }
        for bit in 0..128 {
            let mut t = tag;
            t[bit / 8] ^= 1 << (bit % 8);
            let mut d = sealed;
            assert!(!aead.open(&nonce, &aad, &mut d, &t), "tag bit {bit}");
        }
        for bit in 0..64 {
            let mut a = aad;
            a[bit / 8] ^= 1 << (bit % 8);
            let mut d = sealed;
            assert!(!aead.open(&nonce, &a, &mut d, &tag), "aad bit {bit}");
        }
        for bit in 0..96 {
            let mut n = nonce;
            n[bit / 8] ^= 1 << (bit % 8);
            let mut d = sealed;
            assert!(!aead.open(&n, &aad, &mut d, &tag), "nonce bit {bit}");
        }
        // A shorter AAD or another key is refused as well.
        let mut d = sealed;
        assert!(!aead.open(&nonce, &aad[..7], &mut d, &tag));
        let other = RingAesGcm::new(&[0x11; 16]).unwrap();
        let mut d = sealed;
        assert!(!other.open(&nonce, &aad, &mut d, &tag));
        // The untouched packet still opens.
        let mut d = sealed;
        assert!(aead.open(&nonce, &aad, &mut d, &tag));
        assert_eq!(d, plain);
    }

    #[test]
    fn name_and_debug_hide_the_key() {
        let aead = RingAesGcm::new(&[0xAB; 16]).unwrap();
        assert_eq!(aead.name(), "aes128-gcm-ring");
        assert_eq!(format!("{aead:?}"), "RingAesGcm { .. }");
    }

    /// A stand-in cipher: "seals" by XOR with its mark, tags with its mark, and records the
    /// length of every burst call.
    struct Marked(u8, std::sync::Mutex<Vec<usize>>);

    impl Aead for Marked {
        fn seal(&self, _: &[u8; NONCE_LEN], _: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
            data.iter_mut().for_each(|b| *b ^= self.0);
            [self.0; TAG_LEN]
        }
        fn open(&self, _: &[u8; NONCE_LEN], _: &[u8], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
            data.iter_mut().for_each(|b| *b ^= self.0);
            *tag == [self.0; TAG_LEN]
        }
        fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
            self.1.lock().unwrap().push(jobs.len());
            for j in jobs.iter_mut() {
                *j.tag = self.seal(&j.nonce, j.aad, j.data);
                j.ok = true;
            }
        }
        fn name(&self) -> &'static str {
            "marked"
        }
    }

    #[test]
    fn by_size_sends_each_length_to_its_cipher_in_runs() {
        use std::sync::Arc;
        struct Shared(Arc<Marked>);
        impl Aead for Shared {
            fn seal(&self, n: &[u8; NONCE_LEN], a: &[u8], d: &mut [u8]) -> [u8; TAG_LEN] {
                self.0.seal(n, a, d)
            }
            fn open(&self, n: &[u8; NONCE_LEN], a: &[u8], d: &mut [u8], t: &[u8; TAG_LEN]) -> bool {
                self.0.open(n, a, d, t)
            }
            fn seal_burst(&self, jobs: &mut [AeadJob<'_>]) {
                self.0.seal_burst(jobs)
            }
            fn name(&self) -> &'static str {
                self.0.name()
            }
        }
        let (small, large) = (Arc::new(Marked(1, Default::default())), Arc::new(Marked(2, Default::default())));
        let pair = BySize::new(Box::new(Shared(Arc::clone(&small))), Box::new(Shared(Arc::clone(&large))), 100, "pair");
        assert_eq!(pair.name(), "pair");
        let lens = [10, 20, 150, 200, 30, 100, 99];
        let mut bufs: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0u8; n]).collect();
        let mut tags = [[0u8; TAG_LEN]; 7];
        let mut jobs: Vec<AeadJob<'_>> = bufs
            .iter_mut()
            .zip(tags.iter_mut())
            .map(|(data, tag)| AeadJob { nonce: [0; NONCE_LEN], aad: &[], data, tag, ok: false })
            .collect();
        pair.seal_burst(&mut jobs);
        assert!(jobs.iter().all(|j| j.ok));
        drop(jobs);
        let want: Vec<u8> = lens.iter().map(|&n| if n < 100 { 1 } else { 2 }).collect();
        assert_eq!(tags.iter().map(|t| t[0]).collect::<Vec<_>>(), want);
        assert!(bufs.iter().zip(&want).all(|(b, w)| b.iter().all(|x| x == w)));
        // Runs in order: small 2, large 2, small 1, large 1, small 1.
        assert_eq!(*small.1.lock().unwrap(), [2, 1, 1]);
        assert_eq!(*large.1.lock().unwrap(), [2, 1]);
        // One at a time, by length too; an empty burst calls neither.
        let mut d = [0u8; 100];
        assert_eq!(pair.seal(&[0; NONCE_LEN], &[], &mut d), [2; TAG_LEN]);
        assert!(pair.open(&[0; NONCE_LEN], &[], &mut d, &[2; TAG_LEN]) && d == [0; 100]);
        assert!(!pair.open(&[0; NONCE_LEN], &[], &mut d[..99], &[2; TAG_LEN]));
        pair.seal_burst(&mut []);
        assert_eq!((small.1.lock().unwrap().len(), large.1.lock().unwrap().len()), (3, 2));
    }

    #[test]
    fn trait_object_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Aead>();
        assert_send_sync::<RingAesGcm>();
    }
}
