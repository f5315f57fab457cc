//! DPDK's ipsec_mb `crypto_aesni_gcm` through the CPU-crypto API (`vpcemu::dpdk::crypto`)
//! against ring's AES-GCM, in one process (the EAL starts once per process, so this file
//! holds a single test).

use blackfoot::aead::{Aead, RingAesGcm};
use vpcemu::dpdk::{CryptoDev, EalBuilder, Hugepages};

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn aesni_gcm_matches_ring_and_refuses_forgeries() {
    let _eal = EalBuilder::new()
        .lcores("0")
        .memory_mb(256)
        .hugepages(Hugepages::Off)
        .vdev("crypto_aesni_gcm0")
        .init()
        .expect("EAL");
    let dev = CryptoDev::aesni_gcm().expect("crypto_aesni_gcm0");
    let key = [0x5a; 16];
    let dpdk = dev.aes_gcm(&key).expect("session");
    let ring = RingAesGcm::new(&key).unwrap();
    assert_eq!(dpdk.name(), "aes128-gcm-aesni-gcm");

    // ring is checked against the GCM specification's known answers in blackfoot's unit
    // tests; DPDK's cipher must agree with it byte for byte, at every length ESP uses.
    for len in (0..300).chain([511, 512, 1400, 1446, 2000, 9001]) {
        let nonce: [u8; 12] = bytes(12, len as u8).try_into().unwrap();
        let aad = bytes(8, 7);
        let plain = bytes(len, 3);
        let (mut a, mut b) = (plain.clone(), plain.clone());
        let tag_a = dpdk.seal(&nonce, &aad, &mut a);
        let tag_b = ring.seal(&nonce, &aad, &mut b);
        assert_eq!(a, b, "ciphertext, {len} bytes");
        assert_eq!(tag_a, tag_b, "tag, {len} bytes");
        // Each opens what the other sealed.
        let mut c = a.clone();
        assert!(dpdk.open(&nonce, &aad, &mut c, &tag_b), "{len}");
        assert_eq!(c, plain, "{len}");
        let mut c = a.clone();
        assert!(ring.open(&nonce, &aad, &mut c, &tag_a), "{len}");
    }

    // Every bit of ciphertext, tag, AAD and nonce matters.
    let nonce = [2u8; 12];
    let aad = [3u8; 8];
    let plain = bytes(37, 4);
    let mut sealed = plain.clone();
    let tag = dpdk.seal(&nonce, &aad, &mut sealed);
    for bit in 0..plain.len() * 8 {
        let mut d = sealed.clone();
        d[bit / 8] ^= 1 << (bit % 8);
        assert!(!dpdk.open(&nonce, &aad, &mut d, &tag), "ciphertext bit {bit}");
    }
    for bit in 0..128 {
        let mut t = tag;
        t[bit / 8] ^= 1 << (bit % 8);
        assert!(!dpdk.open(&nonce, &aad, &mut sealed.clone(), &t), "tag bit {bit}");
    }
    for bit in 0..64 {
        let mut a = aad;
        a[bit / 8] ^= 1 << (bit % 8);
        assert!(!dpdk.open(&nonce, &a, &mut sealed.clone(), &tag), "aad bit {bit}");
    }
    for bit in 0..96 {
        let mut n = nonce;
        n[bit / 8] ^= 1 << (bit % 8);
        assert!(!dpdk.open(&n, &aad, &mut sealed.clone(), &tag), "nonce bit {bit}");
    }
    // Another key does not open it; the untouched packet does.
    let other = dev.aes_gcm(&[0x11; 16]).unwrap();
    assert!(!other.open(&nonce, &aad, &mut sealed.clone(), &tag));
    let mut d = sealed.clone();
    assert!(dpdk.open(&nonce, &aad, &mut d, &tag));
    assert_eq!(d, plain);

    // An AAD of another length is refused, as the Aead contract says: no plaintext leaves.
    let mut d = plain.clone();
    assert_eq!(dpdk.seal(&nonce, &aad[..7], &mut d), [0; 16]);
    assert!(d.iter().all(|b| *b == 0));
    assert!(!dpdk.open(&nonce, &aad[..7], &mut sealed.clone(), &tag));

    // Sessions are shared by threads (the edge's workers share outbound SAs).
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let (dpdk, ring) = (&dpdk, &ring);
            s.spawn(move || {
                for i in 0..500usize {
                    let nonce = [t; 12];
                    let plain = bytes(i % 1500, t);
                    let (mut a, mut b) = (plain.clone(), plain.clone());
                    assert_eq!(dpdk.seal(&nonce, &[t; 8], &mut a), ring.seal(&nonce, &[t; 8], &mut b));
                    assert_eq!(a, b);
                }
            });
        }
    });

    // Sessions go back to the pool: far more keys than the pool holds, one at a time.
    for k in 0..3000u32 {
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&k.to_be_bytes());
        drop(dev.aes_gcm(&key).expect("sessions are returned to the pool"));
    }
    drop((dpdk, other, dev));
}
