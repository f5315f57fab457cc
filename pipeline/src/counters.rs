//! Per-worker counters and their lock-free publication to the control core.
//!
//! Contract:
//! - [`Counters`] is a plain array of `u64` in its own cache lines (`align(64)`), owned and
//!   written by one worker only: per drop reason, per output, consumed, per card kind and
//!   stage (packets in, packets dropped), bursts and packets drained. Stages never touch it per packet:
//!   verdicts are tallied in the [`Burst`](crate::Burst) and added at drain, stage figures
//!   once per stage per burst in [`run_timed`](crate::run_timed).
//! - [`PublishedCounters`] is the same array as `AtomicU64`s, one per worker, shared with
//!   the control core. The worker copies its totals into it with
//!   [`publish`](PublishedCounters::publish) (plain `Relaxed` stores, no read-modify-write,
//!   no lock) on its TX-drain deadline or every N bursts, and once more before it stops.
//!   The control core reads it with `Relaxed` loads ([`snapshot`](PublishedCounters::snapshot))
//!   and merges workers with [`Counters::merge`].
//!
//! Memory ordering: each slot has exactly one writer, which stores its own running total,
//! so the values a reader sees are monotonic per slot and never torn (64-bit atomics). No
//! other data is published through these stores, so nothing needs Acquire/Release: a
//! snapshot may mix two consecutive publications across slots, which is fine for
//! statistics. The final figures are exact because the runtime joins the worker thread
//! (a happens-before edge) after its last `publish`.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::card_kind::CardKind;
use crate::limits::MAX_OUTPUTS;
use crate::output::Output;
use crate::drop::DropReason;
use crate::stage_id::StageId;

const DROPS: usize = 0;
const OUTPUTS: usize = DROPS + DropReason::COUNT;
/// Per card kind and stage: `STAGE_PACKETS + kind * StageId::COUNT + stage`.
const STAGE_PACKETS: usize = OUTPUTS + MAX_OUTPUTS;
const STAGE_DROPS: usize = STAGE_PACKETS + STAGE_SLOTS;
const CONSUMED: usize = STAGE_DROPS + STAGE_SLOTS;
const STAGE_SLOTS: usize = CardKind::COUNT * StageId::COUNT;
const BURSTS: usize = CONSUMED + 1;
const PACKETS: usize = BURSTS + 1;
/// Number of `u64` slots in [`Counters`].
pub const COUNTER_SLOTS: usize = PACKETS + 1;

/// A worker's counters, or a merged total of several. See the [module documentation](self).
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Counters {
    v: [u64; COUNTER_SLOTS],
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Counters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Counters")
            .field("packets", &self.packets())
            .field("bursts", &self.bursts())
            .field("consumed", &self.consumed())
            .field("dropped", &self.total_drops())
            .finish()
    }
}

impl Counters {
    /// All zero.
    pub const fn new() -> Self {
        Counters { v: [0; COUNTER_SLOTS] }
    }

    #[inline(always)]
    fn add(&mut self, slot: usize, n: u64) {
        if let Some(c) = self.v.get_mut(slot) {
            *c = c.wrapping_add(n);
        }
    }

    #[inline(always)]
    fn at(&self, slot: usize) -> u64 {
        self.v.get(slot).copied().unwrap_or(0)
    }

    /// Count `n` drops for `reason` (the runtime uses this for drops outside a burst,
    /// e.g. `no_buffer`).
    #[inline]
    pub fn add_drops(&mut self, reason: DropReason, n: u64) {
        self.add(DROPS + reason.index(), n);
    }

    /// Count `n` packets sent to `out`.
    #[inline]
    pub fn add_output(&mut self, out: Output, n: u64) {
        self.add(OUTPUTS + out.index(), n);
    }

    /// Count `n` packets consumed by a stage.
    #[inline]
    pub fn add_consumed(&mut self, n: u64) {
        self.add(CONSUMED, n);
    }

    /// Count one run of `stage` on a card of kind `kind` over `packets` live packets,
    /// `dropped` of which it dropped.
    #[inline]
    pub fn add_stage(&mut self, kind: CardKind, stage: StageId, packets: u64, dropped: u64) {
        let s = kind.index() * StageId::COUNT + stage.index();
        self.add(STAGE_PACKETS + s, packets);
        self.add(STAGE_DROPS + s, dropped);
    }

    /// Count one drained burst of `packets` packets.
    #[inline]
    pub fn add_burst(&mut self, packets: u64) {
        self.add(BURSTS, 1);
        self.add(PACKETS, packets);
    }

    /// Packets dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.at(DROPS + reason.index())
    }

    /// Packets dropped for any reason.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.drops(r)).fold(0, u64::wrapping_add)
    }

    /// Packets sent to `out`.
    pub fn output(&self, out: Output) -> u64 {
        self.at(OUTPUTS + out.index())
    }

    /// Packets consumed by stages.
    pub fn consumed(&self) -> u64 {
        self.at(CONSUMED)
    }

    /// Live packets `stage` was run on, on every kind of card.
    pub fn stage_packets(&self, stage: StageId) -> u64 {
        CardKind::ALL.iter().map(|&k| self.stage_packets_of(k, stage)).fold(0, u64::wrapping_add)
    }

    /// Packets `stage` dropped, on every kind of card.
    pub fn stage_drops(&self, stage: StageId) -> u64 {
        CardKind::ALL.iter().map(|&k| self.stage_drops_of(k, stage)).fold(0, u64::wrapping_add)
    }

    /// Live packets `stage` was run on, on cards of kind `kind`.
    pub fn stage_packets_of(&self, kind: CardKind, stage: StageId) -> u64 {
        self.at(STAGE_PACKETS + kind.index() * StageId::COUNT + stage.index())
    }

    /// Packets `stage` dropped on cards of kind `kind`.
    pub fn stage_drops_of(&self, kind: CardKind, stage: StageId) -> u64 {
        self.at(STAGE_DROPS + kind.index() * StageId::COUNT + stage.index())
    }

    /// Bursts drained.
    pub fn bursts(&self) -> u64 {
        self.at(BURSTS)
    }

    /// Packets drained from bursts (forwarded + consumed + dropped). Packets a stage made
    /// beyond its burst (fragments) add to the output counts, not to this.
    pub fn packets(&self) -> u64 {
        self.at(PACKETS)
    }

    /// Add another worker's counters into these.
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.v.iter_mut().zip(other.v.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// A worker's counters as the control core sees them. See the [module documentation](self).
#[repr(C, align(64))]
pub struct PublishedCounters {
    v: [AtomicU64; COUNTER_SLOTS],
}

impl Default for PublishedCounters {
    fn default() -> Self { Self::new() }
}

impl core::fmt::Debug for PublishedCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl PublishedCounters {
    /// All zero.
    pub fn new() -> Self {
        PublishedCounters { v: core::array::from_fn(|_| AtomicU64::new(0)) }
    }

    /// Worker side: copy the worker's totals in. Only the owning worker calls this.
    #[inline]
    pub fn publish(&self, local: &Counters) {
        for (a, &x) in self.v.iter().zip(local.v.iter()) {
            a.store(x, Ordering::Relaxed);
        }
    }

    /// Control side: the last published totals.
    pub fn snapshot(&self) -> Counters {
        let mut c = Counters::new();
        for (x, a) in c.v.iter_mut().zip(self.v.iter()) {
            *x = a.load(Ordering::Relaxed);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burst::Burst;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use wire::TestBuffer;

    #[test]
    fn layout_is_cache_aligned() {
        assert_eq!(core::mem::align_of::<Counters>(), 64);
        assert_eq!(core::mem::align_of::<PublishedCounters>(), 64);
        assert_eq!(core::mem::size_of::<Counters>() % 64, 0);
    }

    #[test]
    fn slots_do_not_overlap() {
        let mut c = Counters::new();
        for r in DropReason::ALL {
            c.add_drops(r, 1 + r.index() as u64);
        }
        for o in 0..MAX_OUTPUTS {
            c.add_output(Output::new(o).unwrap(), 1000 + o as u64);
        }
        for s in StageId::ALL {
            c.add_stage(CardKind::Host, s, 2000 + s.index() as u64, 3000 + s.index() as u64);
            c.add_stage(CardKind::Edge, s, 4000 + s.index() as u64, 5000 + s.index() as u64);
        }
        c.add_consumed(7);
        c.add_burst(32);
        for r in DropReason::ALL {
            assert_eq!(c.drops(r), 1 + r.index() as u64);
        }
        for o in 0..MAX_OUTPUTS {
            assert_eq!(c.output(Output::new(o).unwrap()), 1000 + o as u64);
        }
        for s in StageId::ALL {
            let i = s.index() as u64;
            assert_eq!(c.stage_packets_of(CardKind::Host, s), 2000 + i);
            assert_eq!(c.stage_drops_of(CardKind::Host, s), 3000 + i);
            assert_eq!(c.stage_packets_of(CardKind::Edge, s), 4000 + i);
            assert_eq!(c.stage_drops_of(CardKind::Edge, s), 5000 + i);
            assert_eq!(c.stage_packets(s), 6000 + 2 * i);
            assert_eq!(c.stage_drops(s), 8000 + 2 * i);
        }
        assert_eq!((c.consumed(), c.bursts(), c.packets()), (7, 1, 32));
    }

    /// Two workers on their own threads count bursts and publish; the control thread
    /// reads snapshots while they run (monotonic) and merges the final ones.
    #[test]
    fn two_workers_publish_and_merge() {
        const BURSTS_PER_WORKER: u64 = 5_000;
        let published: Vec<Arc<PublishedCounters>> =
            (0..2).map(|_| Arc::new(PublishedCounters::new())).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = published
            .iter()
            .enumerate()
            .map(|(w, shared)| {
                let shared = Arc::clone(shared);
                std::thread::spawn(move || {
                    let mut local = Counters::new();
                    let mut burst: Burst<TestBuffer> = Burst::new();
                    let out = Output::new(w).unwrap();
                    for n in 0..BURSTS_PER_WORKER {
                        for k in 0..4u8 {
                            let _ = burst.push(TestBuffer::from_slice(&[k]));
                        }
                        burst.forward(0, out);
                        burst.forward(1, out);
                        burst.drop(2, DropReason::NoRoute);
                        let _ = burst.take(3);
                        burst.drain(&mut local, |_, _| {});
                        if n % 16 == 0 {
                            shared.publish(&local);
                        }
                    }
                    shared.publish(&local);
                })
            })
            .collect();
        let control = {
            let published = published.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut last = [0u64; 2];
                let mut reads = 0u64;
                // At least one pass, even if the workers finish before this thread runs
                // (a loaded machine).
                loop {
                    let done = stop.load(Ordering::Relaxed);
                    for (w, p) in published.iter().enumerate() {
                        let s = p.snapshot();
                        assert!(s.packets() >= last[w], "published totals are monotonic");
                        last[w] = s.packets();
                    }
                    reads += 1;
                    if done {
                        break;
                    }
                    std::thread::yield_now();
                }
                reads
            })
        };
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(control.join().unwrap() > 0);

        let mut total = Counters::new();
        for p in &published {
            total.merge(&p.snapshot());
        }
        let n = BURSTS_PER_WORKER;
        assert_eq!(total.bursts(), 2 * n);
        assert_eq!(total.packets(), 8 * n);
        assert_eq!(total.output(Output::new(0).unwrap()), 2 * n);
        assert_eq!(total.output(Output::new(1).unwrap()), 2 * n);
        assert_eq!(total.drops(DropReason::NoRoute), 2 * n);
        assert_eq!(total.total_drops(), 2 * n);
        assert_eq!(total.consumed(), 2 * n);
    }
}
