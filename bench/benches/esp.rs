//! Micro-benchmarks of the edge's ESP (RFC 4303 tunnel mode, AES-128-GCM per RFC 4106,
//! `ring`), per packet and without DPDK.
//!
//! `cargo bench -p vpcemu-bench --bench esp`
//!
//! For inner IPv4/UDP packets of 64, 512 and 1400 bytes (the sizes of the
//! `blackfoot-esp-*` scenarios and of their `dpdk-test-crypto-perf` baseline):
//! * `esp/seal/N`: `RingAesGcm::seal` alone over N bytes with an 8-byte AAD (what
//!   crypto-perf's AES-GCM encrypt measures at buffer size N);
//! * `esp/encrypt/N`: `blackfoot::esp::encrypt` on a `wire::TestBuffer` holding the inner
//!   packet (outer IPv4 header, ESP header, IV, padding, trailer, seal, ICV);
//! * `esp/decrypt/N`: `blackfoot::esp::decrypt` of such a packet (anti-replay check,
//!   open, window update, trailer and inner header checks).
//!
//! Throughput is reported in decimal bytes of the inner packet per second; the buffers are
//! prepared outside the timed part (`iter_batched_ref`), so the time is per packet.

use std::hint::black_box;
use std::net::Ipv4Addr;

use blackfoot::aead::{Aead, RingAesGcm};
use blackfoot::esp::{self, InboundSa, OutboundSa};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mapping_client::topology::SaConfig;
use wire::{PacketBuf, TestBuffer};

const SIZES: [usize; 3] = [64, 512, 1400];

fn sa() -> SaConfig {
    // Test key material, public on purpose (the story world's outbound SA).
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    SaConfig { spi: 4097, key, salt: [0x10, 0x11, 0x12, 0x13] }
}

/// An IPv4/UDP packet of `len` bytes with valid checksums, DF set.
fn inner(len: usize) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(172, 16, 0, 5));
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let sum = wire::checksum::ipv4_header(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5001u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    for (k, b) in p[28..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let sum = wire::checksum::udp_on_wire(wire::checksum::tcp_udp_ipv4(src, dst, 17, &p[20..]));
    p[26..28].copy_from_slice(&sum.to_be_bytes());
    p
}

fn bench_esp(c: &mut Criterion) {
    let config = sa();
    let (local, remote) = (Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(198, 51, 100, 1));
    let mut g = c.benchmark_group("esp");
    for len in SIZES {
        let packet = inner(len);
        g.throughput(Throughput::BytesDecimal(len as u64));

        let cipher = RingAesGcm::new(&config.key).unwrap();
        let mut nonce_counter = 0u64;
        g.bench_function(format!("seal/{len}"), |b| {
            b.iter_batched_ref(
                || packet.clone(),
                |data| {
                    nonce_counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[..4].copy_from_slice(&config.salt);
                    nonce[4..].copy_from_slice(&nonce_counter.to_be_bytes());
                    let aad = [0x00, 0x00, 0x10, 0x01, 0, 0, 0, 1];
                    black_box(cipher.seal(&nonce, &aad, black_box(data)))
                },
                BatchSize::SmallInput,
            )
        });

        let out = OutboundSa::with_ring(&config, local, remote).unwrap();
        let template = TestBuffer::from_slice(&packet);
        g.bench_function(format!("encrypt/{len}"), |b| {
            b.iter_batched_ref(
                || template.clone(),
                |buf| esp::encrypt(black_box(buf), &out).unwrap(),
                BatchSize::SmallInput,
            )
        });

        // Decrypt packets of a sender SA whose sequence numbers keep rising, so the
        // receiver's anti-replay window accepts each one.
        let sender = OutboundSa::with_ring(&config, local, remote).unwrap();
        let mut receiver = InboundSa::with_ring(&config).unwrap();
        g.bench_function(format!("decrypt/{len}"), |b| {
            b.iter_batched_ref(
                || {
                    let mut buf = template.clone();
                    esp::encrypt(&mut buf, &sender).unwrap();
                    buf.adj(20).unwrap(); // the outer IPv4 header, removed by the caller
                    buf
                },
                |buf| {
                    esp::decrypt(black_box(buf), &mut receiver).unwrap();
                    debug_assert_eq!(buf.len(), len);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_esp);
criterion_main!(benches);
