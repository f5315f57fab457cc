//! The AES-GCM of DPDK's ipsec_mb `crypto_aesni_gcm` driver (intel-ipsec-mb, called
//! directly by `vpcemu::dpdk::crypto`) against ring's AES-GCM, in one process (the EAL starts once per process, so this file
//! holds a single test).

use blackfoot::aead::{Aead, AeadJob, RingAesGcm};
use vpcemu::dpdk::{CryptoDev, EalBuilder, Hugepages};
use vpcemu::runtime::cipher::{Cipher, EspCipher};

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
    let dpdk = dev.aes_gcm(&key).expect("key");
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

    // The burst form (one vector call): the same bytes as ring one by one, over a burst of
    // 64 of mixed lengths, and more than a vector call takes (split into calls of 64); the
    // same for the pair `auto` makes where ring's is faster on long packets (here DPDK's
    // below 600 bytes and ring's from 600: a burst goes to each in runs).
    let by_size = Cipher::start(EspCipher::BySize(600)).expect("by size").cipher;
    let pair = by_size.factory().make(&key).expect("key");
    assert_eq!(pair.name(), "aes128-gcm-aesni-gcm+ring");
    for (aead, n) in [&dpdk as &dyn Aead, &*pair].into_iter().flat_map(|a| [1usize, 5, 64, 100].map(|n| (a, n))) {
        let lens: Vec<usize> = (0..n).map(|i| [36, 64, 1400, 0, 9001, 517][i % 6] + i).collect();
        let nonces: Vec<[u8; 12]> = (0..n).map(|i| bytes(12, i as u8).try_into().unwrap()).collect();
        let aads: Vec<Vec<u8>> = (0..n).map(|i| bytes(if i == 3 { 7 } else { 8 }, i as u8)).collect();
        let plains: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, l)| bytes(*l, i as u8)).collect();
        let mut data = plains.clone();
        let mut tags = vec![[0u8; 16]; n];
        // Seal or open every job in one burst call; which were done.
        let burst = |data: &mut [Vec<u8>], tags: &mut [[u8; 16]], seal: bool| -> Vec<bool> {
            let mut jobs: Vec<AeadJob> = data
                .iter_mut()
                .zip(tags.iter_mut())
                .enumerate()
                .map(|(i, (d, t))| AeadJob { nonce: nonces[i], aad: &aads[i], data: d, tag: t, ok: false })
                .collect();
            if seal {
                aead.seal_burst(&mut jobs);
            } else {
                aead.open_burst(&mut jobs);
            }
            jobs.iter().map(|j| j.ok).collect()
        };
        let ok = burst(&mut data, &mut tags, true);
        for i in 0..n {
            let mut want = plains[i].clone();
            let want_tag = ring.seal(&nonces[i], &aads[i], &mut want);
            if aads[i].len() == 8 {
                assert!(ok[i], "burst of {n}: job {i} sealed");
                assert_eq!((&data[i], tags[i]), (&want, want_tag), "burst of {n}: job {i}");
            } else {
                // Refused like seal: zeroed, zero tag.
                assert!(!ok[i] && data[i].iter().all(|b| *b == 0) && tags[i] == [0; 16], "job {i}");
            }
        }
        // Open the burst back, one job forged: only that one fails.
        let forged = n / 2;
        if let Some(t) = tags.get_mut(forged) {
            t[0] ^= 1;
        }
        let ok = burst(&mut data, &mut tags, false);
        for i in 0..n {
            let expect = i != forged && aads[i].len() == 8;
            assert_eq!(ok[i], expect, "burst of {n}: open of job {i}");
            if expect {
                assert_eq!(data[i], plains[i], "burst of {n}: job {i} decrypted");
            }
        }
    }

    // Keys are shared by threads (the edge's workers share outbound SAs).
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

    // Keys come and go without limit (more than the 1024 sessions a DPDK session pool
    // held), one at a time.
    for k in 0..3000u32 {
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&k.to_be_bytes());
        drop(dev.aes_gcm(&key).expect("a key"));
    }
    drop((dpdk, other, pair, by_size, dev));
}
