//! Measuring code for the `tables-lookup` and `tables-update` benchmarks (behind the
//! `bench` feature). `vpcemu-bench` (bench/src/tables.rs) turns the results into JSON rows;
//! `cargo run --release -p mapping-client --features bench --example tables_bench` prints
//! them without the bench crate.
//!
//! # The synthetic world
//!
//! `n` mappings in VPCs of 65 536 addresses each (VNI 1, 2, ...), spread over 1 000 host
//! PAs, one ENI per address — the shape of a large region's mapping table, no topology file
//! (10 M instances would cost gigabytes of model for nothing the measure needs).
//!
//! # What is measured
//!
//! * **lookups**: one thread, [`Tables::lookup_burst`] in bursts of 32 keys drawn uniformly
//!   (xorshift, in the timed loop) from a working set of `min(n, 65 536)` random mappings.
//!   Reported in millions of lookups per second.
//! * **bytes per mapping**: the mapping table's own allocation (`MappingTable::
//!   allocation_size`: every slot, i.e. including the empty ones) divided
//!   by `n`, for one table version. The left-right scheme keeps two versions, so a card
//!   holds twice this. The resident-set growth measured from `/proc/self/statm` around the
//!   build is reported beside it as a cross-check.
//! * **updates**: the control thread submits a batch of 1 024 ops (half moves of existing
//!   mappings to another PA, half inserts/removes of extra mappings) and publishes it as
//!   soon as the standby copy is free (spinning, and now and then yielding the CPU, while
//!   the worker still holds it),
//!   then the next batch, for two seconds; meanwhile a worker thread does burst lookups of
//!   existing mappings, declares a quiescent state after every burst, and counts lookups
//!   that found nothing. Each batch also bumps a marker mapping; the time from a batch's
//!   `submit` to the worker first reading its marker is its visibility latency (it includes
//!   applying the batch and waiting for the worker to leave the previous version).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rcu::Publisher;
use crate::tables::{Location, TableOp, Tables, BURST};
use crate::{EniId, MacAddr, SubnetId};

/// One `tables-lookup` row.
#[derive(Clone, Debug)]
pub struct LookupResult {
    pub mappings: usize,
    pub mlookups_per_s: f64,
    /// The same per second of CPU time the thread got (`None` without `/proc`).
    pub mlookups_per_cpu_s: Option<f64>,
    /// One version's mapping table, per mapping (see the module documentation).
    pub bytes_per_mapping: f64,
    /// Resident-set growth while building, per mapping (`None` without `/proc`).
    pub rss_bytes_per_mapping: Option<f64>,
    /// Lookups that found a mapping (all of them should).
    pub hit_ratio: f64,
}

/// One `tables-update` row.
#[derive(Clone, Debug)]
pub struct UpdateResult {
    pub mappings: usize,
    pub updates_per_s: f64,
    /// Updates per second of CPU time the control thread got (`None` without `/proc`).
    pub updates_per_cpu_s: Option<f64>,
    pub visible_p50_us: f64,
    pub visible_p99_us: f64,
    pub visible_max_us: f64,
    pub failed_lookups: u64,
    pub publications: u64,
    pub reader_lookups: u64,
}

const WORKING_SET: usize = 65_536;
const VPC_SIZE: usize = 65_536;

/// The `i`-th synthetic mapping.
pub fn synthetic_key(i: usize) -> (u32, Ipv4Addr) {
    let vni = 1 + (i / VPC_SIZE) as u32;
    (vni, Ipv4Addr::from(0x0a00_0000 + (i % VPC_SIZE) as u32))
}

/// Where the `i`-th synthetic mapping lives, in placement generation `gen`.
pub fn synthetic_location(i: usize, gen: u32) -> Location {
    let host = (i as u32).wrapping_add(gen) % 1000;
    let [_, _, c, d] = (0x0a00_0000 + (i % VPC_SIZE) as u32).to_be_bytes();
    Location {
        pa: Ipv4Addr::from(0xc612_0000 + host),
        eni: EniId(i as u32),
        mac: MacAddr([0x02, 0x00, 0x0a, 0x00, c, d]),
        subnet: SubnetId((i / 256) as u16),
    }
}

/// Tables holding `n` synthetic mappings.
pub fn synthetic_tables(n: usize) -> Tables {
    let mut t = Tables::default();
    t.reserve_mappings(n);
    for i in 0..n {
        let (vni, ip) = synthetic_key(i);
        t.apply(&TableOp::UpsertMapping {
            vni,
            ip,
            location: synthetic_location(i, 0),
        });
    }
    t
}

struct XorShift(u64);

impl XorShift {
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A key of the working set (which has `WORKING_SET` entries, a power of two).
#[inline(always)]
fn pick(ws: &[(u32, Ipv4Addr)], r: u64) -> (u32, Ipv4Addr) {
    ws.get((r as usize) & (WORKING_SET - 1))
        .copied()
        .unwrap_or((0, Ipv4Addr::UNSPECIFIED))
}

fn working_set(n: usize, seed: u64) -> Vec<(u32, Ipv4Addr)> {
    let mut rng = XorShift(seed);
    (0..WORKING_SET)
        .map(|_| synthetic_key((rng.next() % n.max(1) as u64) as usize))
        .collect()
}

/// CPU time this thread has used, from `/proc/thread-self/stat` (user + system, in clock
/// ticks of 10 ms). On a shared machine, work / CPU time is what the code costs on a core
/// of its own; work / wall time also counts the time the scheduler gave to others.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3; utime and stime are fields 14 and 15.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident set size in bytes, from `/proc/self/statm` (assumes 4 KiB pages).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Lookups per second through `lookup_burst`, for each size.
pub fn tables_lookup(sizes: &[usize]) -> Vec<LookupResult> {
    sizes.iter().map(|&n| lookup_one(n)).collect()
}

fn lookup_one(n: usize) -> LookupResult {
    let rss_before = rss_bytes();
    let tables = synthetic_tables(n);
    let rss_after = rss_bytes();
    let ws = working_set(n, 0x9e37_79b9_7f4a_7c15);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut keys = [(0u32, Ipv4Addr::UNSPECIFIED); BURST];
    let mut out = [None; BURST];
    let mut hits = 0u64;
    let mut lookups = 0u64;
    let mut run = |rounds: usize, hits: &mut u64, lookups: &mut u64| {
        for _ in 0..rounds {
            for k in keys.iter_mut() {
                *k = pick(&ws, rng.next());
            }
            tables.lookup_burst(black_box(&keys), &mut out);
            *hits += out.iter().filter(|o| o.is_some()).count() as u64;
            *lookups += BURST as u64;
        }
        black_box(&out);
    };
    // Warm up (caches, page tables), then measure for about a second.
    run(20_000, &mut hits, &mut lookups);
    let (mut hits, mut lookups) = (0u64, 0u64);
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        run(10_000, &mut hits, &mut lookups);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(thread_cpu_seconds())
        .map(|(a, b)| b - a)
        .filter(|&c| c > 0.0);
    let bytes = tables.mappings().allocation_size() as f64;
    LookupResult {
        mappings: n,
        mlookups_per_s: lookups as f64 / secs / 1e6,
        mlookups_per_cpu_s: cpu.map(|c| lookups as f64 / c / 1e6),
        bytes_per_mapping: bytes / n.max(1) as f64,
        rss_bytes_per_mapping: rss_before
            .zip(rss_after)
            .map(|(b, a)| a.saturating_sub(b) as f64 / n.max(1) as f64),
        hit_ratio: hits as f64 / lookups.max(1) as f64,
    }
}

/// Update throughput and visibility latency with a reader running, for each size.
pub fn tables_update(sizes: &[usize]) -> Vec<UpdateResult> {
    sizes
        .iter()
        .map(|&n| update_one(n, Duration::from_secs(2)))
        .collect()
}

const BATCH: usize = 1024;
const MARKER_VNI: u32 = 0xff_ffff;
const MARKER_IP: Ipv4Addr = Ipv4Addr::new(0, 0, 0, 1);
/// Extra mappings the churn half inserts and removes (a VPC of their own).
const CHURN_VNI: u32 = 0xff_fffe;
const CHURN: usize = 1 << 16;

fn marker(seq: u32) -> TableOp {
    let location = Location {
        pa: Ipv4Addr::UNSPECIFIED,
        eni: EniId(seq),
        mac: MacAddr::default(),
        subnet: SubnetId(0),
    };
    TableOp::UpsertMapping {
        vni: MARKER_VNI,
        ip: MARKER_IP,
        location,
    }
}

fn update_one(n: usize, duration: Duration) -> UpdateResult {
    let mut initial = synthetic_tables(n);
    initial.apply(&marker(0));
    let mut publisher = Publisher::new(initial);
    let mut sub = publisher.subscribe();
    let max_batches = 1 << 20;
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = Arc::clone(&stop);
    let ws = working_set(n, 0x1234_5678);

    let reader = std::thread::spawn(move || {
        // Allocated up front: the loop itself allocates nothing.
        let mut seen_at: Vec<Option<Instant>> = vec![None; max_batches];
        let mut last_seen = 0usize;
        let mut rng = XorShift(0x7777_1234_abcd_0001);
        let mut keys = [(0u32, Ipv4Addr::UNSPECIFIED); BURST];
        let mut out = [None; BURST];
        let (mut failed, mut lookups) = (0u64, 0u64);
        while !reader_stop.load(Ordering::Relaxed) {
            let tables = sub.current();
            for k in keys.iter_mut() {
                *k = pick(&ws, rng.next());
            }
            tables.lookup_burst(&keys, &mut out);
            failed += out.iter().filter(|o| o.is_none()).count() as u64;
            lookups += BURST as u64;
            let seq = tables
                .lookup(MARKER_VNI, MARKER_IP)
                .map_or(0, |l| l.eni.0 as usize);
            if seq > last_seen {
                let now = Instant::now();
                for slot in seen_at.iter_mut().take(seq + 1).skip(last_seen + 1) {
                    *slot = Some(now);
                }
                last_seen = seq;
            }
            sub.quiescent();
        }
        (seen_at, failed, lookups)
    });

    let mut submitted_at: Vec<Instant> = Vec::with_capacity(max_batches);
    submitted_at.push(Instant::now());
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    let mut gen = 0u32;
    let mut churn_next = 0usize;
    let mut updates = 0u64;
    let mut publications = 0u64;
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    while start.elapsed() < duration && submitted_at.len() < max_batches {
        gen = gen.wrapping_add(1);
        for j in 0..BATCH {
            if j % 2 == 0 {
                let i = (rng.next() % n.max(1) as u64) as usize;
                let (vni, ip) = synthetic_key(i);
                publisher.submit(TableOp::UpsertMapping {
                    vni,
                    ip,
                    location: synthetic_location(i, gen),
                });
            } else {
                // Insert the next extra mapping, remove the one inserted CHURN/2 ago.
                let ip = Ipv4Addr::from((churn_next % CHURN) as u32);
                let old = Ipv4Addr::from(((churn_next + CHURN / 2) % CHURN) as u32);
                churn_next += 1;
                let op = if j % 4 == 1 {
                    TableOp::UpsertMapping {
                        vni: CHURN_VNI,
                        ip,
                        location: synthetic_location(churn_next, gen),
                    }
                } else {
                    TableOp::RemoveMapping {
                        vni: CHURN_VNI,
                        ip: old,
                    }
                };
                publisher.submit(op);
            }
        }
        updates += BATCH as u64;
        let seq = submitted_at.len() as u32;
        publisher.submit(marker(seq));
        submitted_at.push(Instant::now());
        // Publish as soon as the worker has left the standby copy: spin a little (on its
        // own core the worker gets there in microseconds), then give the CPU away (on a
        // shared core the worker needs it to reach its quiescent state).
        let mut spins = 0u32;
        while publisher.publish().is_none() {
            spins += 1;
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        publications += 1;
    }
    // Publish the tail and let the reader see it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while publisher.pending() > 0 && Instant::now() < deadline {
        if publisher.publish().is_some() {
            publications += 1;
        }
        std::thread::yield_now();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(thread_cpu_seconds())
        .map(|(a, b)| b - a)
        .filter(|&c| c > 0.0);
    let last = submitted_at.len() - 1;
    while publisher.held_copies() > 0 && Instant::now() < deadline {
        publisher.reclaim();
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(10));
    stop.store(true, Ordering::Relaxed);
    let (seen_at, failed_lookups, reader_lookups) = match reader.join() {
        Ok(r) => r,
        Err(_) => (Vec::new(), u64::MAX, 0),
    };
    let mut latencies: Vec<f64> = (1..=last)
        .filter_map(|k| {
            let seen = seen_at.get(k).copied().flatten()?;
            let sent = submitted_at.get(k)?;
            Some(seen.saturating_duration_since(*sent).as_secs_f64() * 1e6)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies.get(i).copied().unwrap_or(f64::NAN)
    };
    UpdateResult {
        mappings: n,
        updates_per_s: updates as f64 / elapsed,
        updates_per_cpu_s: cpu.map(|c| updates as f64 / c),
        visible_p50_us: pct(0.50),
        visible_p99_us: pct(0.99),
        visible_max_us: pct(1.0),
        failed_lookups,
        publications,
        reader_lookups,
    }
}
