//! The edges' AES-128-GCM (`vpcemu run --esp-cipher`): which one is asked for, which one
//! started, and what makes the SAs' ciphers.

use std::time::{Duration, Instant};

use blackfoot::aead::{Aead, AeadFactory, AeadJob, BySize, KeyError, RingFactory, KEY_LEN, NONCE_LEN, TAG_LEN};

use crate::dpdk;

/// Which AES-128-GCM the edges' ESP uses (`vpcemu run --esp-cipher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EspCipher {
    /// DPDK's `crypto_aesni_gcm` when it starts on this machine, with ring's for the
    /// lengths from which ring's measured faster when the run started (if any); else ring.
    #[default]
    Auto,
    /// ring's AES-GCM (`blackfoot::aead::RingAesGcm`).
    Ring,
    /// DPDK's ipsec_mb `crypto_aesni_gcm` (its library, intel-ipsec-mb, called directly); the run
    /// fails if it cannot start.
    AesniGcm,
    /// `aesni-gcm+ring:N`: aesni-gcm for less than N bytes of data, ring's from N.
    BySize(usize),
}

impl EspCipher {
    /// Whether the EAL needs DPDK's AES-GCM device (`crypto_aesni_gcm0`) for this choice.
    pub fn wants_device(self) -> bool {
        self != EspCipher::Ring
    }
}

impl std::str::FromStr for EspCipher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(EspCipher::Auto),
            "ring" => Ok(EspCipher::Ring),
            "aesni-gcm" => Ok(EspCipher::AesniGcm),
            other => match other.strip_prefix("aesni-gcm+ring:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(EspCipher::BySize(n)),
                _ => Err(format!("the ESP cipher is auto, ring, aesni-gcm or aesni-gcm+ring:BYTES, not {other:?}")),
            },
        }
    }
}

/// The name of the by-size pair's ciphers (`Aead::name`, the stats' `esp_cipher`).
pub const BY_SIZE_NAME: &str = "aes128-gcm-aesni-gcm+ring";

/// DPDK's AES-GCM below `from` bytes of data, ring's from there.
#[derive(Debug, Clone)]
pub struct BySizeFactory {
    dev: dpdk::CryptoDev,
    from: usize,
}

impl blackfoot::aead::AeadFactory for BySizeFactory {
    fn make(&self, key: &[u8; KEY_LEN]) -> Result<Box<dyn Aead>, KeyError> {
        let (small, large) = (self.dev.make(key)?, RingFactory.make(key)?);
        Ok(Box::new(BySize::new(small, large, self.from, BY_SIZE_NAME)))
    }

    fn name(&self) -> &'static str {
        BY_SIZE_NAME
    }
}

/// The cipher implementation an edge's SAs were made with.
#[derive(Debug, Clone, Default)]
pub enum Cipher {
    #[default]
    Ring,
    Dpdk(dpdk::CryptoDev),
    BySize(BySizeFactory),
}

/// What [`Cipher::start`] started, and what to tell the user.
#[derive(Debug)]
pub struct Started {
    pub cipher: Cipher,
    /// Why `auto` fell back to ring.
    pub warning: Option<String>,
    /// Which cipher takes which lengths, when two do.
    pub info: Option<String>,
}

impl Cipher {
    /// What makes the SAs' ciphers.
    pub fn factory(&self) -> &dyn blackfoot::aead::AeadFactory {
        match self {
            Cipher::Ring => &RingFactory,
            Cipher::Dpdk(dev) => dev,
            Cipher::BySize(f) => f,
        }
    }

    /// Start the chosen cipher (after the EAL). `Auto` measures where ring's is faster
    /// than DPDK's on this CPU (5 to 7 ms on the benchmarks' AMD EPYC, [`crossover`]) and falls back to ring
    /// when DPDK's cannot start.
    pub fn start(choice: EspCipher) -> Result<Started, dpdk::DpdkError> {
        let by_size = |dev, from: usize, how: &str| Started {
            cipher: Cipher::BySize(BySizeFactory { dev, from }),
            warning: None,
            info: Some(format!("ESP cipher: aesni-gcm below {from} bytes of data, ring's AES-GCM from {from} ({how})")),
        };
        let only = |cipher| Started { cipher, warning: None, info: None };
        match choice {
            EspCipher::Ring => Ok(only(Cipher::Ring)),
            EspCipher::AesniGcm => Ok(only(Cipher::Dpdk(dpdk::CryptoDev::aesni_gcm()?))),
            EspCipher::BySize(from) => Ok(by_size(dpdk::CryptoDev::aesni_gcm()?, from, "as asked")),
            EspCipher::Auto => match dpdk::CryptoDev::aesni_gcm() {
                Ok(dev) => match crossover(&dev) {
                    Some(from) => Ok(by_size(dev, from, "faster there on this CPU, measured at start")),
                    None => Ok(only(Cipher::Dpdk(dev))),
                },
                Err(e) => Ok(Started {
                    cipher: Cipher::Ring,
                    warning: Some(format!("{e}; ESP uses ring's AES-GCM")),
                    info: None,
                }),
            },
        }
    }
}

/// The data lengths [`crossover`] compares the two ciphers at (ESP's encrypted part: the
/// inner packet, padding and trailer; up to a jumbo frame).
pub const CROSSOVER_LENGTHS: [usize; 8] = [64, 128, 256, 512, 1024, 1536, 4096, 9000];

/// The shortest of [`CROSSOVER_LENGTHS`] from which ring's AES-GCM seals a burst of 32
/// at least 10% faster than DPDK's at that length and every longer one, or `None` (DPDK's
/// is as fast or faster somewhere above, or everywhere). Each cipher's time is its best of
/// five trials a length, the two alternated, so that a busy moment of the machine does not
/// decide. On a CPU with VAES but without AVX-512, ring (VAES with AVX2) is faster on
/// long packets than intel-ipsec-mb 1.3 (AES-NI, AVX2), and slower on short ones.
pub fn crossover(dev: &dpdk::CryptoDev) -> Option<usize> {
    // A throwaway key: nothing sealed here leaves this function.
    let key = [0x5a; KEY_LEN];
    let (dpdk, ring) = (dev.make(&key).ok()?, RingFactory.make(&key).ok()?);
    let faster: Vec<bool> = CROSSOVER_LENGTHS
        .iter()
        .map(|&len| {
            let (mut d, mut r) = (Duration::MAX, Duration::MAX);
            for _ in 0..5 {
                d = d.min(seal_time(&*dpdk, len));
                r = r.min(seal_time(&*ring, len));
            }
            r.as_nanos() * 10 < d.as_nanos() * 9
        })
        .collect();
    let from = faster.iter().rposition(|f| !f).map_or(0, |i| i + 1);
    CROSSOVER_LENGTHS.get(from).copied()
}

/// How long `aead` takes to seal 4 bursts of 32 jobs of `len` bytes.
fn seal_time(aead: &dyn Aead, len: usize) -> Duration {
    const JOBS: usize = 32;
    let mut data = vec![0u8; JOBS * len];
    let mut tags = [[0u8; TAG_LEN]; JOBS];
    let aad = [0u8; 8];
    let t0 = Instant::now();
    for round in 0..4u8 {
        let mut jobs: Vec<AeadJob<'_>> = data
            .chunks_mut(len)
            .zip(tags.iter_mut())
            .enumerate()
            .map(|(i, (data, tag))| {
                let mut nonce = [0u8; NONCE_LEN];
                nonce[0] = round;
                nonce[1] = i as u8;
                AeadJob { nonce, aad: &aad, data, tag, ok: false }
            })
            .collect();
        aead.seal_burst(&mut jobs);
        std::hint::black_box(&jobs);
    }
    t0.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_say_whether_they_need_the_device() {
        let parsed: Vec<EspCipher> = ["auto", "ring", "aesni-gcm"].iter().map(|s| s.parse().expect("a choice")).collect();
        assert_eq!(parsed, [EspCipher::Auto, EspCipher::Ring, EspCipher::AesniGcm]);
        assert_eq!(
            "des".parse::<EspCipher>(),
            Err("the ESP cipher is auto, ring, aesni-gcm or aesni-gcm+ring:BYTES, not \"des\"".into())
        );
        assert_eq!(EspCipher::default(), EspCipher::Auto);
        assert!(EspCipher::Auto.wants_device() && EspCipher::AesniGcm.wants_device() && !EspCipher::Ring.wants_device());
        let ring = Cipher::start(EspCipher::Ring).expect("ring needs no device");
        assert!(matches!(ring.cipher, Cipher::Ring) && ring.warning.is_none() && ring.info.is_none());
        assert_eq!("aesni-gcm+ring:1024".parse::<EspCipher>(), Ok(EspCipher::BySize(1024)));
        assert!(EspCipher::BySize(1024).wants_device());
        for bad in ["aesni-gcm+ring:", "aesni-gcm+ring:x", "aesni-gcm+ring:-1", "ring+aesni-gcm:5"] {
            assert!(bad.parse::<EspCipher>().unwrap_err().contains("aesni-gcm+ring:BYTES"), "{bad}");
        }
    }
}
