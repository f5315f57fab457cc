//! Stages: named steps over a burst, and the one helper that times and counts them.
//!
//! Contract:
//! - A stage is a small struct implementing [`Stage`] for the buffer type `B` and the
//!   context type `Ctx` of its pipeline (chosen by the crate that defines the stage:
//!   `nitro`, `blackfoot`); the same trait for every card. Its [`StageInfo`] gives a stable
//!   [`StageId`] (whose name is the one in the stats, the alerts and the table) and the
//!   drop reasons it may decide ([`StageInfo::DROPS`], the one source of the crate docs'
//!   drop tables). `process` decides some of the burst's live packets and leaves the rest
//!   live for the next stage; [`takes`](Stage::takes) says which packets are its (a stage
//!   after a classifying one takes one class; by default every packet). It must not
//!   allocate, lock, log or make syscalls. Everything it needs per burst (tables, alert
//!   producer, card id, scratch, where extra buffers come from) comes in its context.
//! - [`run_timed`] runs a stage when one of the packets it takes is live: one clock read
//!   before and one after (none at all with [`NullClock`](crate::NullClock);
//!   [`run_timed_chained`], which the pipelines use, takes the previous stage's end as
//!   its start: one read per stage), records
//!   `elapsed / packets` cycles `packets` times in the stage's histogram, and adds the
//!   stage's packet and drop counts to [`Counters`] once. In debug builds it checks that
//!   every drop the stage decided has a reason of its [`DROPS`](StageInfo::DROPS).
//!   Everything is generic (monomorphised per stage, context, buffer and clock): no `dyn`,
//!   no runtime flag.

use wire::PacketBuf;

use crate::burst::Burst;
use crate::card_kind::CardKind;
use crate::clock::Clock;
use crate::counters::Counters;
use crate::drop::DropReason;
use crate::stage_id::StageId;
use crate::timing::WorkerTiming;

/// What a stage is, whatever it runs on: its id and the drop reasons it may decide.
pub trait StageInfo {
    /// Which stage this is (timing and counters slot, alert `stage` field).
    const ID: StageId;
    /// The stage's name; defaults to the [`StageId`]'s.
    const NAME: &'static str = Self::ID.name();
    /// Every reason the stage may drop a packet for (checked in debug builds by
    /// [`run_timed`]; the crate docs' drop tables are tested against it).
    const DROPS: &'static [DropReason];
}

/// A pipeline stage over a burst of `B`, with the per-burst context `Ctx` its pipeline
/// defines.
pub trait Stage<B: PacketBuf, Ctx: ?Sized>: StageInfo {
    /// The slots this stage takes (a mask over the burst); every slot by default.
    #[inline(always)]
    fn takes(&self, _ctx: &Ctx) -> u64 {
        u64::MAX
    }

    /// Decide some live packets of `burst` among those it [takes](Stage::takes); leave
    /// the others live for the next stage.
    fn process(&mut self, burst: &mut Burst<B>, ctx: &mut Ctx);
}

/// `stage_info!(Stage: Id, [Reason, ...])`: the [`StageInfo`] of a stage struct, its
/// [`StageId`] variant and the [`DropReason`] variants it may decide.
#[macro_export]
macro_rules! stage_info {
    ($name:ident: $id:ident, [$($drop:ident),* $(,)?]) => {
        impl $crate::StageInfo for $name {
            const ID: $crate::StageId = $crate::StageId::$id;
            const DROPS: &'static [$crate::DropReason] = &[$($crate::DropReason::$drop),*];
        }
    };
}

/// The drop reasons of a pipeline's stages, in pipeline order, for its documentation.
pub type DropTable = &'static [(StageId, &'static [DropReason])];

/// The row of `S` in a [`DropTable`].
pub const fn drop_row<S: StageInfo>() -> (StageId, &'static [DropReason]) {
    (S::ID, S::DROPS)
}

/// A worker's measurements: its counters and its stage histograms.
#[derive(Debug)]
pub struct Meters {
    /// The kind of card whose stages run now: stage figures are counted and timed under
    /// it. The runtime sets it before it runs a card's stages (default: host).
    pub kind: CardKind,
    /// Counters, published to the control core with
    /// [`PublishedCounters::publish`](crate::PublishedCounters::publish).
    pub counters: Counters,
    /// Stage histograms, shipped to the control core with [`WorkerTiming::ship`].
    pub timing: WorkerTiming,
}

impl Meters {
    /// Fresh counters around the worker end of a timing channel.
    pub fn new(timing: WorkerTiming) -> Self {
        Meters { kind: CardKind::Host, counters: Counters::new(), timing }
    }
}

/// Run `stage` over the live packets it [takes](Stage::takes) in `burst`, timing it with
/// `clock` and counting it into `meters`. Does nothing when none of them is live. See the
/// [module documentation](self).
#[inline(always)]
pub fn run_timed<S, Ctx, B, C>(
    stage: &mut S,
    burst: &mut Burst<B>,
    ctx: &mut Ctx,
    clock: &C,
    meters: &mut Meters,
) where
    S: Stage<B, Ctx>,
    Ctx: ?Sized,
    B: PacketBuf,
    C: Clock,
{
    run_timed_chained(stage, burst, ctx, clock, meters, &mut None);
}

/// [`run_timed`] for the stages of a pipeline run one after the other, with one clock
/// read per stage instead of two: `stamp` is the previous stage's end (`None` before the
/// first stage that ran: then the clock is read), which this stage takes as its start,
/// and it is left holding this stage's end. What a pipeline does between two stages (its
/// counting) is thereby timed with the later one.
#[inline(always)]
pub fn run_timed_chained<S, Ctx, B, C>(
    stage: &mut S,
    burst: &mut Burst<B>,
    ctx: &mut Ctx,
    clock: &C,
    meters: &mut Meters,
    stamp: &mut Option<u64>,
) where
    S: Stage<B, Ctx>,
    Ctx: ?Sized,
    B: PacketBuf,
    C: Clock,
{
    let live = burst.live_mask() & stage.takes(ctx);
    if live == 0 {
        return;
    }
    let n = u64::from(live.count_ones());
    // A sampling clock's decision for this burst (a constant `false` with timing off).
    let timed = C::ENABLED && clock.timing();
    let t0 = if timed { stamp.unwrap_or_else(|| clock.now()) } else { 0 };
    stage.process(burst, ctx);
    if timed {
        let t1 = clock.now();
        *stamp = Some(t1);
        meters.timing.record(meters.kind, S::ID, t1.wrapping_sub(t0), n);
    }
    let dropped_now = live & !burst.live_mask() & burst.dropped_mask();
    #[cfg(debug_assertions)]
    check_drops::<S, B>(burst, dropped_now);
    if dropped_now != 0 {
        // Named as the dropper (the trash can's `stage`).
        burst.note_drops(dropped_now, S::ID);
    }
    meters.counters.add_stage(meters.kind, S::ID, n, u64::from(dropped_now.count_ones()));
}

/// Debug builds: every packet of `dropped` was dropped for a reason `S` declares.
#[cfg(debug_assertions)]
fn check_drops<S: StageInfo, B>(burst: &Burst<B>, dropped: u64) {
    let mut m = dropped;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        if let Some(crate::burst::Verdict::Drop(reason)) = burst.verdict(i) {
            debug_assert!(
                S::DROPS.contains(&reason),
                "stage {} dropped a packet as {} which it does not declare",
                S::NAME,
                reason
            );
        }
    }
}

/// Check a drop table in documentation against a pipeline's [`DropTable`] (for the cards'
/// tests: the crate docs and the README say what the stages declare, one source of
/// truth). `doc` is markdown, each line possibly prefixed by `//!`; the table is the first
/// one after the line containing `after`. Its header names a `stage` column and a `drops`
/// column; every row's stage cell is a stage name in backquotes and its drops cell lists
/// drop reasons in backquotes (anything else in the cell, such as `*` or a remark, is
/// ignored). The rows must be the table's stages, in order, each with exactly its drops.
/// The error says what differs.
pub fn check_doc_table(doc: &str, after: &str, table: DropTable) -> Result<(), String> {
    let lines: Vec<&str> = doc
        .lines()
        .map(|l| l.trim_start().trim_start_matches("//!").trim())
        .collect();
    let start = lines.iter().position(|l| l.contains(after)).ok_or(format!("no {after:?}"))?;
    let rows: Vec<Vec<&str>> = lines[start..]
        .iter()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    let header = rows.first().ok_or(format!("no table after {after:?}"))?;
    let col = |name: &str| header.iter().position(|c| *c == name).ok_or(format!("no {name} column after {after:?}"));
    let (stage_col, drops_col) = (col("stage")?, col("drops")?);
    let quoted = |cell: &str| -> Vec<String> {
        cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    };
    let mut got = Vec::new();
    for row in rows.iter().skip(2) {
        let stage = quoted(row.get(stage_col).copied().unwrap_or("")).join(" ");
        let mut drops = Vec::new();
        for name in quoted(row.get(drops_col).copied().unwrap_or("")) {
            drops.push(name.parse::<DropReason>().map_err(|e| format!("{after:?}, {stage}: {e}"))?);
        }
        got.push((stage, drops));
    }
    let want: Vec<(String, &[DropReason])> = table.iter().map(|(id, d)| (id.name().to_owned(), *d)).collect();
    let stages = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(", ");
    if got.len() != want.len() || got.iter().zip(&want).any(|(g, w)| g.0 != w.0) {
        return Err(format!(
            "{after:?}: the table's stages are [{}], the pipeline's [{}]",
            stages(&mut got.iter().map(|g| g.0.clone())),
            stages(&mut want.iter().map(|w| w.0.clone()))
        ));
    }
    for ((stage, doc), (_, code)) in got.iter().zip(&want) {
        let missing: Vec<&str> = code.iter().filter(|r| !doc.contains(r)).map(|r| r.name()).collect();
        let extra: Vec<&str> = doc.iter().filter(|r| !code.contains(r)).map(|r| r.name()).collect();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(format!(
                "{after:?}, {stage}: the table lacks {missing:?} and has {extra:?} which the stage does not declare"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burst::Verdict;
    use crate::clock::{NullClock, StepClock};
    use crate::output::Output;
    use crate::timing::{HistogramConfig, TimingCollector};
    use wire::TestBuffer;

    /// Drops packets whose first byte is odd, forwards those above 10, leaves the rest live.
    struct OddDropper;

    struct Ctx {
        out: Output,
        runs: u32,
    }

    impl StageInfo for OddDropper {
        const ID: StageId = StageId::VerifySend;
        const DROPS: &'static [DropReason] = &[DropReason::SpoofedSource];
    }

    impl<B: PacketBuf> Stage<B, Ctx> for OddDropper {
        fn process(&mut self, burst: &mut Burst<B>, ctx: &mut Ctx) {
            ctx.runs += 1;
            let out = ctx.out;
            burst.for_each_live(|_, p| match p.data().first() {
                Some(b) if b % 2 == 1 => Some(Verdict::Drop(DropReason::SpoofedSource)),
                Some(b) if *b > 10 => Some(Verdict::Forward(out)),
                _ => None,
            });
        }
    }

    /// Meters (and the collector they ship to), a context, a clock from 1000 in steps of
    /// 800, and a burst of 8 packets for [`OddDropper`] (3 survive it).
    fn odd_dropper_setup() -> (TimingCollector, Meters, Ctx, StepClock, Burst<TestBuffer>) {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let meters = Meters::new(collector.add_worker(0).unwrap());
        let mut burst: Burst<TestBuffer> = Burst::new();
        for b in [1u8, 2, 3, 4, 12, 14, 5, 6] {
            let _ = burst.push(TestBuffer::from_slice(&[b]));
        }
        (collector, meters, Ctx { out: Output::new(1).unwrap(), runs: 0 }, StepClock::new(1_000, 800), burst)
    }

    #[test]
    fn run_timed_records_and_counts() {
        let (_collector, mut meters, mut ctx, clock, mut burst) = odd_dropper_setup();
        run_timed(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters);
        assert_eq!(ctx.runs, 1);
        assert_eq!(burst.live_count(), 3);
        assert_eq!(burst.dropped_by(0), Some(StageId::VerifySend), "the stage is named as the dropper");
        assert_eq!(burst.dropped_by(1), None, "live");
        assert_eq!(meters.counters.stage_packets(StageId::VerifySend), 8);
        assert_eq!(meters.counters.stage_drops(StageId::VerifySend), 3);
        // Second run: only the 3 live packets; no new drops.
        run_timed(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters);
        assert_eq!(meters.counters.stage_packets(StageId::VerifySend), 11);
        assert_eq!(meters.counters.stage_drops(StageId::VerifySend), 3);
        let h = meters.timing.current().get(StageId::VerifySend);
        assert_eq!(h.len(), 11);
        // 800 cycles over 8 packets, then over 3.
        assert_eq!(h.count_at(100), 8);
        assert_eq!(h.count_at(266), 3);
        // Nothing live: the stage is not run.
        burst.drain(&mut meters.counters, |_, _| {});
        run_timed(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters);
        assert_eq!(ctx.runs, 2);
        assert_eq!(OddDropper::NAME, "verify-send");
        assert_eq!(drop_row::<OddDropper>(), (StageId::VerifySend, &[DropReason::SpoofedSource][..]));
    }

    /// Takes the slots of `ctx.0`; drops slot 2, forwards slot 4.
    struct Masked;

    impl StageInfo for Masked {
        const ID: StageId = StageId::Nat;
        const DROPS: &'static [DropReason] = &[DropReason::NoElasticIp];
    }

    impl<B: PacketBuf> Stage<B, (u64, bool)> for Masked {
        fn takes(&self, ctx: &(u64, bool)) -> u64 {
            ctx.0
        }
        fn process(&mut self, b: &mut Burst<B>, ctx: &mut (u64, bool)) {
            ctx.1 = true;
            b.drop(2, DropReason::NoElasticIp);
            b.forward(4, Output::new(1).unwrap());
        }
    }

    #[test]
    fn run_timed_counts_only_what_the_stage_takes() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let mut meters = Meters::new(collector.add_worker(0).unwrap());
        let clock = StepClock::new(1_000, 600);
        let mut burst: Burst<TestBuffer> = Burst::new();
        for b in [1u8, 2, 3, 4, 5, 6] {
            let _ = burst.push(TestBuffer::from_slice(&[b]));
        }
        // The stage owns slots 1, 2 and 4; it drops slot 2 and forwards slot 4.
        let mut ctx = (0b10110, false);
        run_timed(&mut Masked, &mut burst, &mut ctx, &clock, &mut meters);
        assert!(ctx.1);
        assert_eq!(meters.counters.stage_packets(StageId::Nat), 3);
        assert_eq!(meters.counters.stage_drops(StageId::Nat), 1);
        let h = meters.timing.current().get(StageId::Nat);
        assert_eq!(h.len(), 3);
        assert_eq!(h.count_at(200), 3);
        assert_eq!(burst.live_count(), 4);
        // No live packet it takes: the stage does not run, nothing is counted.
        let mut ctx = (0b10100, false);
        run_timed(&mut Masked, &mut burst, &mut ctx, &clock, &mut meters);
        assert!(!ctx.1);
        assert_eq!(meters.counters.stage_packets(StageId::Nat), 3);
    }

    #[test]
    fn chained_stages_read_the_clock_once_each() {
        let (_collector, mut meters, mut ctx, clock, mut burst) = odd_dropper_setup();
        let mut stamp = None;
        // Reads 1000 (start) and 1800 (end): 800 over 8 packets.
        run_timed_chained(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters, &mut stamp);
        assert_eq!(stamp, Some(1_800));
        // Starts at the previous end, reads 2600: 800 over the 3 live packets.
        run_timed_chained(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters, &mut stamp);
        assert_eq!(stamp, Some(2_600));
        assert_eq!(clock.now(), 3_400, "three reads in all");
        let h = meters.timing.current().get(StageId::VerifySend);
        assert_eq!((h.len(), h.count_at(100), h.count_at(266)), (11, 8, 3));
        assert_eq!(meters.counters.stage_packets(StageId::VerifySend), 11);
        // Nothing live: not run, the stamp stays.
        burst.drain(&mut meters.counters, |_, _| {});
        run_timed_chained(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters, &mut stamp);
        assert_eq!((ctx.runs, stamp), (2, Some(2_600)));
    }

    #[test]
    fn a_burst_the_sampling_clock_skips_is_counted_not_timed() {
        let (_collector, mut meters, mut ctx, step, mut burst) = odd_dropper_setup();
        // Every 10,000 cycles at most; the decision takes the caller's time, not a read.
        let clock = crate::clock::Sampled::new(step, 10_000);
        clock.begin_burst(50_000);
        let mut stamp = None;
        run_timed_chained(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters, &mut stamp);
        assert_eq!(stamp, Some(1_800), "timed: two reads");
        // 9,999 cycles later: not timed, no read, the stamp untouched; still counted.
        clock.begin_burst(59_999);
        let mut stamp = None;
        run_timed_chained(&mut OddDropper, &mut burst, &mut ctx, &clock, &mut meters, &mut stamp);
        assert_eq!((ctx.runs, stamp), (2, None));
        assert_eq!(clock.now(), 2_600, "only the timed burst read the clock");
        let h = meters.timing.current().get(StageId::VerifySend);
        assert_eq!(h.len(), 8, "the first burst's packets only");
        assert_eq!(meters.counters.stage_packets(StageId::VerifySend), 11);
    }

    /// Declares nothing, drops everything.
    struct Liar;

    impl StageInfo for Liar {
        const ID: StageId = StageId::Route;
        const DROPS: &'static [DropReason] = &[];
    }

    impl<B: PacketBuf> Stage<B, ()> for Liar {
        fn process(&mut self, b: &mut Burst<B>, _: &mut ()) {
            for i in b.live_indices() {
                b.drop(i, DropReason::NoRoute);
            }
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "stage route dropped a packet as no_route which it does not declare")]
    fn undeclared_drops_are_caught_in_debug_builds() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let mut meters = Meters::new(collector.add_worker(0).unwrap());
        let mut burst: Burst<TestBuffer> = Burst::new();
        let _ = burst.push(TestBuffer::from_slice(&[1]));
        run_timed(&mut Liar, &mut burst, &mut (), &NullClock, &mut meters);
    }

    #[test]
    fn meters_kind_keeps_host_and_edge_apart() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let (mut meters, clock) = (Meters::new(collector.add_worker(0).unwrap()), StepClock::new(1_000, 600));
        let mut burst: Burst<TestBuffer> = Burst::new();
        (0..6u8).for_each(|b| drop(burst.push(TestBuffer::from_slice(&[b]))));
        // A host's nat takes slot 2 and drops it (and forwards slot 4); an edge's then takes
        // the live ones of slots 0, 1 and 4: 0 and 1.
        run_timed(&mut Masked, &mut burst, &mut (0b00100, false), &clock, &mut meters);
        meters.kind = CardKind::Edge;
        run_timed(&mut Masked, &mut burst, &mut (0b10011, false), &clock, &mut meters);
        let c = &meters.counters;
        assert_eq!((c.stage_packets_of(CardKind::Host, StageId::Nat), c.stage_drops_of(CardKind::Host, StageId::Nat)), (1, 1));
        assert_eq!((c.stage_packets_of(CardKind::Edge, StageId::Nat), c.stage_drops_of(CardKind::Edge, StageId::Nat)), (2, 0));
        assert_eq!(c.stage_packets(StageId::Nat), 3);
        let t = meters.timing.current();
        assert_eq!(t.of(CardKind::Host, StageId::Nat).count_at(600), 1);
        assert_eq!(t.of(CardKind::Edge, StageId::Nat).count_at(300), 2);
        assert_eq!(t.get(StageId::Nat).len(), 3);
        assert_eq!(burst.dropped_by(2), Some(StageId::Nat));
    }

    #[test]
    fn null_clock_counts_but_does_not_time() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let mut meters = Meters::new(collector.add_worker(0).unwrap());
        let mut ctx = Ctx { out: Output::new(0).unwrap(), runs: 0 };
        let mut burst: Burst<TestBuffer> = Burst::new();
        for b in [1u8, 2, 12] {
            let _ = burst.push(TestBuffer::from_slice(&[b]));
        }
        run_timed(&mut OddDropper, &mut burst, &mut ctx, &NullClock, &mut meters);
        assert_eq!(meters.counters.stage_packets(StageId::VerifySend), 3);
        assert_eq!(meters.counters.stage_drops(StageId::VerifySend), 1);
        assert!(meters.timing.current().get(StageId::VerifySend).is_empty());
    }

    #[test]
    fn doc_tables_are_checked_both_ways() {
        const TABLE: DropTable = &[drop_row::<OddDropper>(), drop_row::<Masked>()];
        let doc = "//! Intro\n//! **Ours**\n//!\n//! | stage | what | drops |\n//! | --- | --- | --- |\n\
                   //! | `verify-send` | odd | `spoofed_source`* |\n//! | `nat` | mask | `no_elastic_ip` (slot 2) |\n";
        assert_eq!(check_doc_table(doc, "**Ours**", TABLE), Ok(()));
        let lacking = doc.replace("`no_elastic_ip`", "");
        let err = check_doc_table(&lacking, "**Ours**", TABLE).unwrap_err();
        assert!(err.contains("lacks [\"no_elastic_ip\"]"), "{err}");
        let more = doc.replace("`spoofed_source`*", "`spoofed_source`*, `no_route`");
        let err = check_doc_table(&more, "**Ours**", TABLE).unwrap_err();
        assert!(err.contains("has [\"no_route\"]"), "{err}");
        let renamed = doc.replace("| `nat` |", "| `vlan` |");
        assert!(check_doc_table(&renamed, "**Ours**", TABLE).unwrap_err().contains("stages are [verify-send, vlan]"));
        assert!(check_doc_table(doc, "**Theirs**", TABLE).is_err());
        assert!(check_doc_table(&doc.replace("`no_elastic_ip`", "`no_such`"), "**Ours**", TABLE).is_err());
    }
}
