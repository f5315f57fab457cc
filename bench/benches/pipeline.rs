//! Cost of stage timing (`pipeline::run_timed`) per packet at burst 32.
//!
//! A synthetic stage does ~100 cycles of dependent arithmetic per live packet and leaves
//! every packet live, so the same burst is processed again each iteration. Three ways to
//! run it over 32 packets:
//! - `direct`: `Stage::process` alone (no counting, no timing);
//! - `null-clock`: `run_timed` with `NullClock` (stage counters only, timing compiled out);
//! - `rdtsc`: `run_timed` with an rdtsc clock (two TSC reads, a division and one
//!   `saturating_record_n` into the stage's histogram per burst).
//!
//! Goal (ARCHITECTURE section 8): `rdtsc` within 5% of `null-clock`. After the criterion
//! groups, `overhead-summary` prints cycles per packet of each variant measured with the TSC
//! (median of interleaved rounds) and the overhead in percent.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pipeline::{
    run_timed, Burst, Clock, HistogramConfig, Meters, NullClock, Stage, StageId, StageInfo,
    TimingCollector,
};
use wire::{PacketBuf, TestBuffer};

const BURST: usize = 32;
/// Dependent multiply-rotate rounds per packet: ~100 TSC cycles on the 2 GHz-TSC EPYC CI
/// machine (the core runs faster than its TSC).
const ROUNDS: usize = 32;

/// The TSC, read with `rdtsc` (not serialising: the cheap read a worker would use), as the
/// workers time their stages.
use pipeline::clock::{median, rdtsc as tsc, TscClock as Rdtsc};

/// `R` rounds of serial work per live packet; decides nothing. `Work<ROUNDS>` is the
/// ~100-cycle stage, `Work<0>` an empty one that isolates the cost of timing itself.
struct Work<const R: usize> {
    acc: u64,
}

impl<const R: usize> StageInfo for Work<R> {
    const ID: StageId = StageId::VerifySend;
    const DROPS: &'static [pipeline::DropReason] = &[];
}

impl<const R: usize, B: PacketBuf> Stage<B, ()> for Work<R> {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, _ctx: &mut ()) {
        let mut x = self.acc;
        for i in burst.live_indices() {
            if let Some(b) = burst.get_mut(i).and_then(|p| p.data_mut().first_mut()) {
                x ^= u64::from(*b);
                for _ in 0..R {
                    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(5);
                }
                *b = x as u8;
            }
        }
        self.acc = x;
    }
}

struct Setup<const R: usize = ROUNDS> {
    burst: Burst<TestBuffer>,
    stage: Work<R>,
    meters: Meters,
    _collector: TimingCollector,
}

fn setup<const R: usize>() -> Setup<R> {
    let mut collector = TimingCollector::new(HistogramConfig::default()).expect("histograms");
    let meters = Meters::new(collector.add_worker(u64::MAX).expect("worker"));
    let mut burst = Burst::new();
    for i in 0..BURST {
        let _ = burst.push(TestBuffer::from_slice(&[i as u8; 64]));
    }
    Setup { burst, stage: Work { acc: 1 }, meters, _collector: collector }
}

#[inline(never)]
fn direct<const R: usize>(s: &mut Setup<R>) {
    s.stage.process(&mut s.burst, &mut ());
}

#[inline(never)]
fn timed<const R: usize, C: Clock>(s: &mut Setup<R>, clock: &C) {
    run_timed(&mut s.stage, &mut s.burst, &mut (), clock, &mut s.meters);
}

fn bench_timing(c: &mut Criterion) {
    let mut g = c.benchmark_group("stage-timing-burst32");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut s = setup::<ROUNDS>();
    g.bench_function("direct", |b| b.iter(|| direct(black_box(&mut s))));
    let mut s = setup::<ROUNDS>();
    g.bench_function("null-clock", |b| b.iter(|| timed(black_box(&mut s), &NullClock)));
    let mut s = setup::<ROUNDS>();
    g.bench_function("rdtsc", |b| b.iter(|| timed(black_box(&mut s), &Rdtsc)));
    let recorded = s.meters.timing.current().get(StageId::VerifySend).len();
    assert!(recorded > 0, "the rdtsc variant recorded into its histogram");
    g.finish();
}

/// Cycles per packet of `f` over `iters` bursts, measured with the TSC.
fn cycles_per_packet(iters: u64, mut f: impl FnMut()) -> f64 {
    let t0 = tsc();
    for _ in 0..iters {
        f();
    }
    (tsc() - t0) as f64 / (iters * BURST as u64) as f64
}


fn overhead_summary(_c: &mut Criterion) {
    let t0 = (Instant::now(), tsc());
    std::thread::sleep(Duration::from_millis(200));
    let hz = (tsc() - t0.1) as f64 / t0.0.elapsed().as_secs_f64();

    let (mut a, mut b, mut c) = (setup::<ROUNDS>(), setup::<ROUNDS>(), setup::<ROUNDS>());
    let (mut e0, mut e1) = (setup::<0>(), setup::<0>());
    let iters = 200_000;
    let (mut d, mut n, mut r, mut en, mut er) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        d.push(cycles_per_packet(iters, || direct(black_box(&mut a))));
        n.push(cycles_per_packet(iters, || timed(black_box(&mut b), &NullClock)));
        r.push(cycles_per_packet(iters, || timed(black_box(&mut c), &Rdtsc)));
        en.push(cycles_per_packet(iters, || timed(black_box(&mut e0), &NullClock)));
        er.push(cycles_per_packet(iters, || timed(black_box(&mut e1), &Rdtsc)));
    }
    let (d, n, r) = (median(&mut d), median(&mut n), median(&mut r));
    let (en, er) = (median(&mut en), median(&mut er));
    let cost = (er - en) * BURST as f64;
    let h = c.meters.timing.current().get(StageId::VerifySend);
    println!();
    println!("overhead-summary (burst {BURST}, TSC {:.2} GHz, median of 15 rounds):", hz / 1e9);
    println!("  ~100-cycle stage, direct      {d:7.1} cycles/packet");
    println!("  ~100-cycle stage, null-clock  {n:7.1} cycles/packet");
    println!("  ~100-cycle stage, rdtsc       {r:7.1} cycles/packet");
    println!(
        "  measured difference: {:+.1} cycles/packet = {:+.2}% (noise-bound)",
        r - n,
        (r - n) / n * 100.0
    );
    println!("  empty stage, null-clock {en:6.2} cycles/packet; rdtsc {er:6.2} cycles/packet");
    println!(
        "  cost of timing: {cost:.1} cycles/burst = {:.2} cycles/packet = {:.2}% of the \
         {n:.0}-cycle stage (goal < 5%)",
        cost / BURST as f64,
        cost / BURST as f64 / n * 100.0
    );
    println!(
        "  histogram self-check: p50 {} cycles/packet, {} packets recorded",
        h.value_at_quantile(0.5),
        h.len()
    );
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_timing, overhead_summary
}
criterion_main!(benches);
