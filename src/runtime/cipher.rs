//! The edges' AES-128-GCM (`vpcemu run --esp-cipher`): which one is asked for, which one
//! started, and what makes the SAs' ciphers.

use crate::dpdk;

/// Which AES-128-GCM the edges' ESP uses (`vpcemu run --esp-cipher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EspCipher {
    /// DPDK's `crypto_aesni_gcm` when it starts on this machine, else ring.
    #[default]
    Auto,
    /// ring's AES-GCM (`blackfoot::aead::RingAesGcm`).
    Ring,
    /// DPDK's ipsec_mb `crypto_aesni_gcm` (its library, intel-ipsec-mb, called directly); the run
    /// fails if it cannot start.
    AesniGcm,
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
            other => Err(format!("the ESP cipher is auto, ring or aesni-gcm, not {other:?}")),
        }
    }
}

/// The cipher implementation an edge's SAs were made with.
#[derive(Debug, Clone, Default)]
pub enum Cipher {
    #[default]
    Ring,
    Dpdk(dpdk::CryptoDev),
}

impl Cipher {
    /// What makes the SAs' ciphers.
    pub fn factory(&self) -> &dyn blackfoot::aead::AeadFactory {
        match self {
            Cipher::Ring => &blackfoot::aead::RingFactory,
            Cipher::Dpdk(dev) => dev,
        }
    }

    /// Start the chosen cipher (after the EAL). `Auto` falls back to ring when DPDK's
    /// cannot start; the second value then says why.
    pub fn start(choice: EspCipher) -> Result<(Cipher, Option<String>), dpdk::DpdkError> {
        match choice {
            EspCipher::Ring => Ok((Cipher::Ring, None)),
            EspCipher::AesniGcm => Ok((Cipher::Dpdk(dpdk::CryptoDev::aesni_gcm()?), None)),
            EspCipher::Auto => match dpdk::CryptoDev::aesni_gcm() {
                Ok(dev) => Ok((Cipher::Dpdk(dev), None)),
                Err(e) => Ok((Cipher::Ring, Some(format!("{e}; ESP uses ring's AES-GCM")))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_say_whether_they_need_the_device() {
        let parsed: Vec<EspCipher> = ["auto", "ring", "aesni-gcm"].iter().map(|s| s.parse().expect("a choice")).collect();
        assert_eq!(parsed, [EspCipher::Auto, EspCipher::Ring, EspCipher::AesniGcm]);
        assert_eq!("des".parse::<EspCipher>(), Err("the ESP cipher is auto, ring or aesni-gcm, not \"des\"".into()));
        assert_eq!(EspCipher::default(), EspCipher::Auto);
        assert!(EspCipher::Auto.wants_device() && EspCipher::AesniGcm.wants_device() && !EspCipher::Ring.wants_device());
        let (ring, note) = Cipher::start(EspCipher::Ring).expect("ring needs no device");
        assert!(matches!(ring, Cipher::Ring) && note.is_none());
    }
}
