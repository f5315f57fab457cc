//! Memory-path diagnosis for the mapping table (issue 16): how long a load to a random
//! cache line of an N-MB buffer takes on this machine, dependent (a pointer chase: pure
//! latency) and in batches of 32 independent loads (what the burst lookup's touch pass
//! issues), over every line of the buffer or over 64 k lines spread across it (the Nitro
//! rows' 64 k active slots in a table of 1 M mappings).
//!
//! Not part of the product. Transparent huge pages are the allocator's choice: run it with
//! and without `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (THP in `madvise` mode: only with
//! the tunable does malloc ask for them), e.g.
//! `cargo run --release -p mapping-client --example memlat -- 2 8 32 48 128`.

use std::hint::black_box;
use std::time::Instant;

const LINE_WORDS: usize = 8;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A buffer of `mb` MB whose chosen lines (`active` of them, or all) form one random
/// cycle: each chosen line's first word holds the word index of the next.
fn build(mb: usize, active: Option<usize>, rng: &mut Rng) -> (Vec<u64>, Vec<usize>) {
    let words = mb << 17;
    let lines = words / LINE_WORDS;
    let mut buf = vec![0u64; words];
    let mut chosen: Vec<usize> = match active {
        Some(n) if n < lines => {
            let mut seen = std::collections::HashSet::new();
            while seen.len() < n {
                seen.insert(rng.next() as usize % lines);
            }
            seen.into_iter().collect()
        }
        _ => (0..lines).collect(),
    };
    for i in (1..chosen.len()).rev() {
        let j = rng.next() as usize % (i + 1);
        chosen.swap(i, j);
    }
    for w in 0..chosen.len() {
        let next = chosen[(w + 1) % chosen.len()];
        buf[chosen[w] * LINE_WORDS] = (next * LINE_WORDS) as u64;
    }
    let idx = chosen.iter().map(|l| l * LINE_WORDS).collect();
    (buf, idx)
}

/// ns per dependent load.
fn chase(buf: &[u64], steps: usize) -> f64 {
    let mut at = 0usize;
    while buf[at] == 0 && at + LINE_WORDS < buf.len() {
        at += LINE_WORDS;
    }
    let t = Instant::now();
    for _ in 0..steps {
        at = buf[at] as usize;
    }
    black_box(at);
    t.elapsed().as_nanos() as f64 / steps as f64
}

/// ns per load, issued 32 independent loads at a time (random order over `idx`).
fn batches(buf: &[u64], idx: &[usize], loads: usize, rng: &mut Rng) -> f64 {
    let order: Vec<usize> = (0..loads).map(|_| idx[rng.next() as usize % idx.len()]).collect();
    let t = Instant::now();
    let mut acc = 0u64;
    for chunk in order.chunks(32) {
        let mut sum = 0u64;
        for &i in chunk {
            sum = sum.wrapping_add(buf[i]);
        }
        acc = acc.wrapping_add(black_box(sum));
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / loads as f64
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .filter(|&mb| mb > 0)
        .collect();
    let sizes = if sizes.is_empty() { vec![2, 8, 32, 48, 128] } else { sizes };
    let thp = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    println!("GLIBC_TUNABLES={thp:?}");
    println!("{:>6} {:>10} {:>12} {:>14}", "MB", "active", "chase ns", "batch32 ns/ld");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for &mb in &sizes {
        for active in [None, Some(65_536)] {
            let (buf, idx) = build(mb, active, &mut rng);
            let anon = std::fs::read_to_string("/proc/self/smaps_rollup")
                .ok()
                .and_then(|s| s.lines().find(|l| l.starts_with("AnonHugePages")).map(str::to_owned))
                .unwrap_or_default();
            chase(&buf, 200_000);
            // The best of 15 short runs: a run the scheduler interrupts (a busy machine)
            // only counts if every run is.
            let c = (0..15).map(|_| chase(&buf, 300_000)).fold(f64::MAX, f64::min);
            let b = (0..15).map(|_| batches(&buf, &idx, 300_000, &mut rng)).fold(f64::MAX, f64::min);
            let act = active.map_or("all".to_string(), |n| n.to_string());
            println!("{mb:>6} {act:>10} {c:>12.1} {b:>14.2}   {anon}");
        }
    }
}
