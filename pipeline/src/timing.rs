//! Per-stage latency histograms: recorded by each worker, merged by the control core.
//!
//! Contract:
//! - Each worker records into its own [`StageHistograms`] (one `Histogram<u64>` per
//!   [`CardKind`] and [`StageId`]: a host's `verify-recv` and an edge's are kept apart;
//!   value = cycles per packet for a burst, count = packets), built at worker
//!   start with a fixed range ([`HistogramConfig`]), auto-resize off, and recorded with
//!   `saturating_record_n`: recording never allocates and never fails; values past the
//!   range count as the range's top.
//! - Shipping without locks: each worker has two sets. [`WorkerTiming::ship`] swaps the
//!   set it records into for an empty one the control core returned, and passes the full
//!   one over; both directions are bounded lock-free queues
//!   (`crossbeam_queue::ArrayQueue`) of boxed sets, so a handoff moves a pointer and
//!   never allocates, frees, blocks or waits. If the control core has not returned the
//!   empty set yet, the worker keeps recording into its current set and tries again later:
//!   nothing is lost.
//! - The control core's [`TimingCollector`] pops shipped sets, adds them
//!   (`Histogram::add`) into its cumulative set, resets them and sends them back. At
//!   shutdown it [`absorb`](TimingCollector::absorb)s each worker's last set.
//! - Percentiles are turned into nanoseconds with the measured TSC frequency the caller
//!   passes in ([`TscHz`]).

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::card_kind::CardKind;
use crate::clock::TscHz;
use crate::stage_id::StageId;

/// Why timing could not be set up or merged (control-core side only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The histogram bounds or precision are invalid.
    #[error("invalid histogram configuration: {0}")]
    Config(String),
    /// A shipped set did not fit the cumulative one (different configuration).
    #[error("histogram sets of different ranges cannot be merged")]
    Merge,
}

/// Range and precision of the stage histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramConfig {
    /// Largest cycles-per-packet value kept exactly; larger ones count as this.
    pub max_cycles: u64,
    /// Significant decimal digits (1..=5). 2 = 1% resolution, ~25 KiB per stage.
    pub sigfig: u8,
}

impl Default for HistogramConfig {
    /// Up to 2^32 cycles (over a second at 3 GHz), 1% resolution.
    fn default() -> Self {
        HistogramConfig { max_cycles: 1 << 32, sigfig: 2 }
    }
}

/// One histogram per card kind and stage. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct StageHistograms {
    /// Index `kind * StageId::COUNT + stage`.
    h: [Histogram<u64>; SLOTS],
}

const SLOTS: usize = CardKind::COUNT * StageId::COUNT;

#[inline]
const fn slot(kind: CardKind, stage: StageId) -> usize {
    kind.index() * StageId::COUNT + stage.index()
}

impl StageHistograms {
    /// Empty histograms for every card kind and stage, allocated now.
    pub fn new(cfg: HistogramConfig) -> Result<Self, TimingError> {
        let mut one = Histogram::<u64>::new_with_bounds(1, cfg.max_cycles.max(2), cfg.sigfig)
            .map_err(|e| TimingError::Config(format!("{e:?}")))?;
        one.auto(false);
        Ok(StageHistograms { h: core::array::from_fn(|_| one.clone()) })
    }

    /// Record `packets` packets that took `cycles_per_packet` each in `stage` of a card of
    /// kind `kind`.
    #[inline]
    pub fn record(&mut self, kind: CardKind, stage: StageId, cycles_per_packet: u64, packets: u64) {
        if let Some(h) = self.h.get_mut(slot(kind, stage)) {
            h.saturating_record_n(cycles_per_packet, packets);
        }
    }

    /// The histogram of `stage` on cards of kind `kind`.
    pub fn of(&self, kind: CardKind, stage: StageId) -> &Histogram<u64> {
        // slot() < SLOTS by construction.
        &self.h[slot(kind, stage)]
    }

    /// The histogram of `stage` on every kind of card together (a copy).
    pub fn get(&self, stage: StageId) -> Histogram<u64> {
        let mut all = self.of(CardKind::Host, stage).clone();
        // Same bounds by construction: adding cannot fail.
        let _ = all.add(self.of(CardKind::Edge, stage));
        all
    }

    /// Add every histogram of `other` into this set.
    pub fn add(&mut self, other: &StageHistograms) -> Result<(), TimingError> {
        let mut result = Ok(());
        for (a, b) in self.h.iter_mut().zip(other.h.iter()) {
            if a.add(b).is_err() {
                result = Err(TimingError::Merge);
            }
        }
        result
    }

    /// Empty every histogram, keeping the allocation.
    pub fn reset(&mut self) {
        for h in &mut self.h {
            h.reset();
        }
    }

    /// Packets recorded for every stage together.
    pub fn total(&self) -> u64 {
        self.h.iter().map(Histogram::len).sum()
    }

    /// Percentiles of `stage` in nanoseconds, every kind of card together.
    pub fn summary(&self, stage: StageId, hz: TscHz) -> StageSummary {
        StageSummary::of(&self.get(stage), hz)
    }

    /// Percentiles of `stage` on cards of kind `kind`, in nanoseconds.
    pub fn summary_of(&self, kind: CardKind, stage: StageId, hz: TscHz) -> StageSummary {
        StageSummary::of(self.of(kind, stage), hz)
    }
}

/// A stage's figures as the stats report them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct StageSummary {
    /// Packets timed.
    pub count: u64,
    /// Median nanoseconds per packet.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Largest (to the histogram's resolution).
    pub max_ns: f64,
}

impl StageSummary {
    /// Figures of one histogram of cycles per packet; all zero when it is empty.
    pub fn of(h: &Histogram<u64>, hz: TscHz) -> StageSummary {
        if h.is_empty() {
            return StageSummary::default();
        }
        let ns = |cycles: u64| round1(hz.cycles_to_ns(cycles));
        StageSummary {
            count: h.len(),
            p50_ns: ns(h.value_at_quantile(0.50)),
            p90_ns: ns(h.value_at_quantile(0.90)),
            p99_ns: ns(h.value_at_quantile(0.99)),
            p999_ns: ns(h.value_at_quantile(0.999)),
            max_ns: ns(h.max()),
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

struct Handoff {
    /// Worker -> control: sets full of measurements.
    full: ArrayQueue<Box<StageHistograms>>,
    /// Control -> worker: reset sets to record into.
    empty: ArrayQueue<Box<StageHistograms>>,
}

/// The worker's end: the set it records into and the handoff to the control core.
pub struct WorkerTiming {
    current: Box<StageHistograms>,
    handoff: Arc<Handoff>,
    ship_interval: u64,
    last_ship: u64,
}

impl core::fmt::Debug for WorkerTiming {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WorkerTiming")
            .field("recorded", &self.current.total())
            .field("ship_interval", &self.ship_interval)
            .finish()
    }
}

impl WorkerTiming {
    /// Record one run of `stage` on a card of kind `kind`: `elapsed` cycles for `packets`
    /// packets.
    #[inline]
    pub fn record(&mut self, kind: CardKind, stage: StageId, elapsed: u64, packets: u64) {
        if let Some(per_packet) = elapsed.checked_div(packets) {
            self.current.record(kind, stage, per_packet, packets);
        }
    }

    /// The set being recorded into.
    pub fn current(&self) -> &StageHistograms {
        &self.current
    }

    /// Hand the current set to the control core if it has returned an empty one.
    /// Returns whether a set was shipped. Never blocks, allocates or frees.
    pub fn ship(&mut self) -> bool {
        let Some(mut fresh) = self.handoff.empty.pop() else {
            return false;
        };
        core::mem::swap(&mut self.current, &mut fresh);
        match self.handoff.full.push(fresh) {
            Ok(()) => true,
            Err(back) => {
                // Cannot happen with two sets per worker; keep the measurements anyway.
                let empty = core::mem::replace(&mut self.current, back);
                let _ = self.handoff.empty.push(empty);
                false
            }
        }
    }

    /// [`ship`](Self::ship) when `now` (cycles, the runtime's TSC) is at least the ship
    /// interval past the last shipment.
    #[inline]
    pub fn maybe_ship(&mut self, now: u64) -> bool {
        if now.wrapping_sub(self.last_ship) < self.ship_interval {
            return false;
        }
        self.last_ship = now;
        self.ship()
    }
}

/// The control core's end: one receiver per worker and the cumulative set.
pub struct TimingCollector {
    cfg: HistogramConfig,
    cumulative: StageHistograms,
    workers: Vec<Arc<Handoff>>,
}

impl core::fmt::Debug for TimingCollector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimingCollector")
            .field("workers", &self.workers.len())
            .field("recorded", &self.cumulative.total())
            .finish()
    }
}

impl TimingCollector {
    /// A collector with an empty cumulative set.
    pub fn new(cfg: HistogramConfig) -> Result<Self, TimingError> {
        Ok(TimingCollector { cfg, cumulative: StageHistograms::new(cfg)?, workers: Vec::new() })
    }

    /// Make a worker's end (allocates its two sets now). `ship_interval` is in cycles, for
    /// [`WorkerTiming::maybe_ship`].
    pub fn add_worker(&mut self, ship_interval: u64) -> Result<WorkerTiming, TimingError> {
        let handoff = Arc::new(Handoff { full: ArrayQueue::new(2), empty: ArrayQueue::new(2) });
        let spare = Box::new(StageHistograms::new(self.cfg)?);
        // Fresh queue of capacity 2: cannot be full.
        let _ = handoff.empty.push(spare);
        self.workers.push(Arc::clone(&handoff));
        Ok(WorkerTiming {
            current: Box::new(StageHistograms::new(self.cfg)?),
            handoff,
            ship_interval,
            last_ship: 0,
        })
    }

    /// Merge every set the workers have shipped, and send them back empty. Returns how
    /// many sets were merged.
    pub fn collect(&mut self) -> Result<usize, TimingError> {
        let mut merged = 0;
        let mut result = Ok(());
        for w in &self.workers {
            while let Some(mut set) = w.full.pop() {
                if let Err(e) = self.cumulative.add(&set) {
                    result = Err(e);
                }
                set.reset();
                let _ = w.empty.push(set);
                merged += 1;
            }
        }
        result.map(|()| merged)
    }

    /// At shutdown: merge what is pending and the stopped worker's current set.
    pub fn absorb(&mut self, worker: WorkerTiming) -> Result<(), TimingError> {
        self.collect()?;
        self.cumulative.add(&worker.current)?;
        self.workers.retain(|w| !Arc::ptr_eq(w, &worker.handoff));
        Ok(())
    }

    /// Everything merged so far.
    pub fn histograms(&self) -> &StageHistograms {
        &self.cumulative
    }

    /// Figures of every stage, in [`StageId::ALL`] order.
    pub fn summaries(&self, hz: TscHz) -> [StageSummary; StageId::COUNT] {
        core::array::from_fn(|i| self.cumulative.summary(StageId::ALL[i], hz))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ns() {
        let mut s = StageHistograms::new(HistogramConfig::default()).unwrap();
        // 1000 packets: 900 at 100 cycles, 90 at 1000, 9 at 10_000, 1 at 100_000.
        s.record(CardKind::Host, StageId::Encap, 100, 900);
        s.record(CardKind::Host, StageId::Encap, 1000, 90);
        s.record(CardKind::Host, StageId::Encap, 10_000, 9);
        s.record(CardKind::Host, StageId::Encap, 100_000, 1);
        let hz = TscHz(2_000_000_000); // 2 cycles per ns
        let sum = s.summary(StageId::Encap, hz);
        assert_eq!(sum.count, 1000);
        assert_eq!(sum.p50_ns, 50.0);
        assert_eq!(sum.p90_ns, 50.0);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.01 + 0.1;
        assert!(close(sum.p99_ns, 500.0), "{sum:?}");
        assert!(close(sum.p999_ns, 5_000.0), "{sum:?}");
        assert!(close(sum.max_ns, 50_000.0), "{sum:?}");
        assert_eq!(s.summary(StageId::Nat, hz), StageSummary::default());
    }

    #[test]
    fn host_and_edge_stages_of_one_name_stay_apart() {
        let mut s = StageHistograms::new(HistogramConfig::default()).unwrap();
        s.record(CardKind::Host, StageId::VerifyRecv, 100, 10);
        s.record(CardKind::Edge, StageId::VerifyRecv, 1000, 5);
        let hz = TscHz(1_000_000_000);
        let host = s.summary_of(CardKind::Host, StageId::VerifyRecv, hz);
        let edge = s.summary_of(CardKind::Edge, StageId::VerifyRecv, hz);
        assert_eq!((host.count, host.p50_ns, host.max_ns), (10, 100.0, 100.0));
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
        assert_eq!(edge.count, 5);
        assert!(close(edge.p50_ns, 1000.0) && close(edge.max_ns, 1000.0), "{edge:?}");
        let all = s.summary(StageId::VerifyRecv, hz);
        assert_eq!((all.count, all.p50_ns), (15, 100.0));
        assert!(close(all.max_ns, 1000.0), "{all:?}");
        assert!(s.of(CardKind::Edge, StageId::Decap).is_empty());
        assert_eq!(s.total(), 15);
    }

    #[test]
    fn out_of_range_saturates_without_growing() {
        let cfg = HistogramConfig { max_cycles: 10_000, sigfig: 2 };
        let mut s = StageHistograms::new(cfg).unwrap();
        let before = s.get(StageId::Nat).distinct_values();
        s.record(CardKind::Host, StageId::Nat, u64::MAX, 3);
        s.record(CardKind::Host, StageId::Nat, 0, 1);
        assert_eq!(s.get(StageId::Nat).len(), 4);
        assert_eq!(s.get(StageId::Nat).distinct_values(), before);
        assert!(s.get(StageId::Nat).max() >= 10_000);
        assert!(StageHistograms::new(HistogramConfig { max_cycles: 1000, sigfig: 9 }).is_err());
    }

    #[test]
    fn ship_collect_merge_across_threads() {
        let mut c = TimingCollector::new(HistogramConfig::default()).unwrap();
        let workers: Vec<WorkerTiming> = (0..2).map(|_| c.add_worker(1000).unwrap()).collect();
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(w, mut t)| {
                std::thread::spawn(move || {
                    let mut shipped = 0;
                    for i in 0..2_000u64 {
                        t.record(CardKind::Host, StageId::Decap, 3200 * (w as u64 + 1), 32);
                        if t.maybe_ship(i * 100) {
                            shipped += 1;
                        }
                    }
                    (t, shipped)
                })
            })
            .collect();
        let mut merged = 0;
        let mut finished = Vec::new();
        for h in handles {
            while !h.is_finished() {
                merged += c.collect().unwrap();
                std::thread::yield_now();
            }
            finished.push(h.join().unwrap());
        }
        let mut shipped = 0;
        for (t, s) in finished {
            shipped += s;
            c.absorb(t).unwrap();
        }
        merged += c.collect().unwrap();
        assert!(shipped >= 1);
        assert!(merged <= shipped);
        let h = c.histograms().get(StageId::Decap);
        assert_eq!(h.len(), 2 * 2_000 * 32, "nothing lost in the handoff");
        assert_eq!(h.count_at(100), 2_000 * 32);
        assert_eq!(h.count_at(200), 2_000 * 32);
        let sums = c.summaries(TscHz(1_000_000_000));
        assert_eq!(sums[StageId::Decap.index()].p50_ns, 100.0);
        assert_eq!(sums[StageId::Decap.index()].max_ns, 200.0);
    }

    #[test]
    fn ship_waits_for_the_empty_set() {
        let mut c = TimingCollector::new(HistogramConfig::default()).unwrap();
        let mut t = c.add_worker(0).unwrap();
        t.record(CardKind::Host, StageId::Vlan, 10, 1);
        assert!(t.ship());
        t.record(CardKind::Host, StageId::Vlan, 10, 1);
        assert!(!t.ship(), "control core has not returned a set yet");
        assert_eq!(t.current().get(StageId::Vlan).len(), 1, "kept recording");
        assert_eq!(c.collect().unwrap(), 1);
        assert!(t.ship());
        assert_eq!(c.collect().unwrap(), 1);
        assert_eq!(c.histograms().get(StageId::Vlan).len(), 2);
        t.record(CardKind::Host, StageId::Vlan, 0, 0); // zero packets: ignored
        assert!(t.current().get(StageId::Vlan).is_empty());
    }
}
