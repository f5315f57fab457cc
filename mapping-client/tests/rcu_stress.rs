//! Stress: a worker thread doing burst lookups while the control side submits, publishes
//! and reclaims. A mapping that exists in the old and the new version is never missing nor
//! torn (its location is always one of the values ever written for it), versions only go
//! forward, and both left-right copies end identical.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mapping_client::{EniId, Location, MacAddr, Publisher, SubnetId, TableOp, Tables};

const STABLE: u32 = 20_000;
const CHURN: u32 = 5_000;
const VNI: u32 = 7;

fn stable_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn churn_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0b00_0000 + i)
}

/// Location `gen` of address `i`: every field derived from (i, gen), so a torn or mixed
/// value would not decode.
fn loc(i: u32, gen: u32) -> Location {
    let (hi, lo) = ((gen >> 8) as u8, gen as u8);
    Location {
        pa: Ipv4Addr::new(198, (i % 251) as u8, hi, lo),
        eni: EniId(i.wrapping_mul(31).wrapping_add(gen)),
        mac: MacAddr([2, hi, lo, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
        subnet: SubnetId(gen as u16),
    }
}

/// Which generation `l` is for address `i`, if it is a well-formed value.
fn generation(i: u32, l: &Location) -> Option<u32> {
    let gen = u32::from(l.subnet.0);
    (*l == loc(i, gen)).then_some(gen)
}

#[test]
fn reader_never_sees_a_missing_or_torn_mapping() {
    let mut initial = Tables::default();
    for i in 0..STABLE {
        initial.apply(&TableOp::UpsertMapping {
            vni: VNI,
            ip: stable_ip(i),
            location: loc(i, 0),
        });
    }
    let mut expected = initial.clone();
    let mut publisher = Publisher::new(initial);
    let mut sub = publisher.subscribe();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reader = Arc::clone(&stop);

    let reader = std::thread::spawn(move || {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut keys = [(VNI, Ipv4Addr::UNSPECIFIED); 32];
        let mut out = [None; 32];
        let (mut bursts, mut last_version, mut versions_seen) = (0u64, 0u64, 0u64);
        // Per stable address: the newest generation seen (they only go up).
        let mut newest = vec![0u32; STABLE as usize];
        while !stop_reader.load(Ordering::Relaxed) {
            let tables = sub.current();
            for k in keys.iter_mut() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % u64::from(STABLE + CHURN)) as u32;
                k.1 = if i < STABLE {
                    stable_ip(i)
                } else {
                    churn_ip(i - STABLE)
                };
            }
            tables.lookup_burst(&keys, &mut out);
            for (k, o) in keys.iter().zip(&out) {
                let raw = u32::from(k.1);
                if raw >= 0x0b00_0000 {
                    // Churn: present or absent, but if present, well formed.
                    let i = raw - 0x0b00_0000;
                    if let Some(l) = o {
                        assert!(
                            generation(i, l).is_some(),
                            "torn churn mapping {k:?}: {l:?}"
                        );
                    }
                    continue;
                }
                let i = (raw - 0x0a00_0000) as usize;
                let l = o.unwrap_or_else(|| {
                    panic!("stable mapping {k:?} missing in version {}", last_version)
                });
                let gen =
                    generation(i as u32, &l).unwrap_or_else(|| panic!("torn mapping {k:?}: {l:?}"));
                assert!(
                    gen >= newest[i],
                    "{k:?} went back from generation {} to {gen}",
                    newest[i]
                );
                newest[i] = gen;
            }
            let v = sub.version();
            assert!(
                v >= last_version,
                "version went back: {v} after {last_version}"
            );
            if v != last_version {
                versions_seen += 1;
            }
            last_version = v;
            bursts += 1;
            sub.quiescent();
        }
        (bursts, versions_seen, last_version)
    });

    let start = Instant::now();
    let mut gen = 0u32;
    let mut published = 0u64;
    let mut rng = 42u64;
    while start.elapsed() < Duration::from_millis(1500) {
        gen += 1;
        // Move a slice of the stable mappings to a new generation...
        for _ in 0..64 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = ((rng >> 33) % u64::from(STABLE)) as u32;
            let op = TableOp::UpsertMapping {
                vni: VNI,
                ip: stable_ip(i),
                location: loc(i, gen),
            };
            expected.apply(&op);
            publisher.submit(op);
        }
        // ...and add and remove churn mappings.
        for j in 0..64u32 {
            let i = (gen * 64 + j) % CHURN;
            let op = if gen % 2 == 0 {
                TableOp::UpsertMapping {
                    vni: VNI,
                    ip: churn_ip(i),
                    location: loc(i, 1),
                }
            } else {
                TableOp::RemoveMapping {
                    vni: VNI,
                    ip: churn_ip(i),
                }
            };
            expected.apply(&op);
            publisher.submit(op);
        }
        if publisher.publish().is_some() {
            published += 1;
        }
        publisher.reclaim();
        if gen == u32::from(u16::MAX) {
            // Generations are 16 bits in the encoded location; stop before they wrap.
            break;
        }
    }
    // Everything submitted gets published.
    while publisher.pending() > 0 {
        publisher.publish();
        std::thread::yield_now();
    }
    let final_version = publisher.version();
    // The reader catches up with the last version.
    let deadline = Instant::now() + Duration::from_secs(5);
    while publisher.held_copies() > 0 && Instant::now() < deadline {
        publisher.reclaim();
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let (bursts, versions_seen, last_version) = reader.join().expect("reader panicked");
    assert!(
        publisher.reclaim(),
        "the standby copy is free once the reader stopped"
    );
    // The live copy is what the ops say; so is the standby copy, which the next publication
    // makes live.
    assert!(
        publisher.live() == &expected,
        "live copy differs from the ops applied once"
    );
    let op = TableOp::RemoveMapping {
        vni: VNI,
        ip: stable_ip(0),
    };
    expected.apply(&op);
    publisher.submit(op);
    assert!(publisher.publish().is_some());
    assert!(
        publisher.live() == &expected,
        "standby copy was not caught up"
    );
    assert!(published > 10, "only {published} publications");
    assert!(bursts > 1000, "only {bursts} bursts");
    assert!(
        versions_seen > 5,
        "the reader saw only {versions_seen} versions"
    );
    assert_eq!(
        last_version, final_version,
        "the reader reached the last version"
    );
    println!(
        "{published} versions published, reader: {bursts} bursts, {versions_seen} versions seen"
    );
}
