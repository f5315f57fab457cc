//! Stages: named steps over a burst, and the one helper that times and counts them.
//!
//! Contract:
//! - A stage is a small struct implementing [`Stage`]: a stable [`StageId`] (whose name is
//!   the one in the stats, the alerts and the table) and `process`, which decides some of
//!   the burst's live packets and leaves the rest live for the next stage. It must not
//!   allocate, lock, log or make syscalls. Everything it needs per burst (table version,
//!   alert producer, card id) comes in its context type, chosen by the crate that defines
//!   the stage (`nitro`, `blackfoot`).
//! - [`run_timed`] runs a stage when the burst has live packets: one clock read before and
//!   one after (none at all with [`NullClock`](crate::NullClock)), records
//!   `elapsed / live packets` cycles `live packets` times in the stage's histogram, and
//!   adds the stage's packet and drop counts to [`Counters`] once. Everything is generic
//!   (monomorphised per stage, context, buffer and clock): no `dyn`, no runtime flag.

use core::fmt;
use core::str::FromStr;

use wire::PacketBuf;

use crate::burst::Burst;
use crate::card_kind::CardKind;
use crate::clock::Clock;
use crate::counters::Counters;
use crate::timing::WorkerTiming;

macro_rules! stage_ids {
    ($($variant:ident = $idx:literal, $name:literal, $desc:literal;)*) => {
        /// A named, timed stage. Names are stable (stats keys, alert `stage` field).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum StageId {
            $(#[doc = concat!("`", $name, "`: ", $desc, ".")] $variant = $idx,)*
        }

        impl StageId {
            /// Every stage, in pipeline order (`ALL[s as usize] == s`).
            pub const ALL: [StageId; StageId::COUNT] = [$(StageId::$variant,)*];

            /// The stable kebab-case name.
            #[inline]
            pub const fn name(self) -> &'static str {
                match self { $(StageId::$variant => $name,)* }
            }

            /// What the stage does, in one line.
            pub const fn description(self) -> &'static str {
                match self { $(StageId::$variant => $desc,)* }
            }
        }
    };
}

stage_ids! {
    Classify = 0, "classify", "sort received frames: ARP to the proxy, IPv4 on, the rest dropped";
    VerifySend = 1, "verify-send", "the sending ENI owns the source MAC and IP";
    Route = 2, "route", "longest-prefix route of the sender's VPC, then mapping lookup";
    Encap = 3, "encap", "wrap in Geneve towards the destination PA";
    VerifyRecv = 4, "verify-recv", "the mapping places the inner source behind the outer source";
    Decap = 5, "decap", "strip Geneve and rebuild Ethernet for the destination";
    Nat = 6, "nat", "1:1 Elastic IP NAT with incremental checksums";
    EspEncrypt = 7, "esp-encrypt", "ESP tunnel-mode AES-GCM encrypt towards a customer gateway";
    EspDecrypt = 8, "esp-decrypt", "ESP SA lookup, anti-replay, decrypt and policy check";
    Vlan = 9, "vlan", "802.1Q tag or untag for Direct Connect";
    Endpoint = 10, "endpoint", "VPC endpoint ID re-encap and check";
}

impl StageId {
    /// Number of stages.
    pub const COUNT: usize = 11;

    /// Index into per-stage arrays (the discriminant).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no [`StageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?}")]
pub struct UnknownStage(pub String);

impl FromStr for StageId {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StageId::ALL
            .iter()
            .copied()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

impl serde::Serialize for StageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A pipeline stage over a burst, with the per-burst context `Ctx` its crate defines.
pub trait Stage<Ctx: ?Sized> {
    /// Which stage this is (timing and counters slot, alert `stage` field).
    const ID: StageId;
    /// The stage's name; defaults to the [`StageId`]'s.
    const NAME: &'static str = Self::ID.name();

    /// Decide some live packets of `burst`; leave the others live for the next stage.
    fn process<B: PacketBuf>(&mut self, burst: &mut Burst<B>, ctx: &mut Ctx);
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

/// Run `stage` over the live packets of `burst`, timing it with `clock` and counting it
/// into `meters`. Does nothing when no packet is live. See the [module documentation](self).
#[inline(always)]
pub fn run_timed<S, Ctx, B, C>(
    stage: &mut S,
    burst: &mut Burst<B>,
    ctx: &mut Ctx,
    clock: &C,
    meters: &mut Meters,
) where
    S: Stage<Ctx>,
    Ctx: ?Sized,
    B: PacketBuf,
    C: Clock,
{
    let live = burst.live_mask();
    if live == 0 {
        return;
    }
    let n = u64::from(live.count_ones());
    let t0 = if C::ENABLED { clock.now() } else { 0 };
    stage.process(burst, ctx);
    if C::ENABLED {
        let elapsed = clock.now().wrapping_sub(t0);
        meters.timing.record(meters.kind, S::ID, elapsed, n);
    }
    count_stage(S::ID, live, burst, meters);
}

/// Run a stage written as a closure over the live packets in `mask` (e.g. the packets of
/// one class after a classifying stage, or every packet with `u64::MAX`), timing it as
/// stage `id` and counting it, like [`run_timed`], for those packets only. The closure
/// must leave the other live packets alone. Does nothing when no packet of `mask` is live.
/// For stages whose context must name the buffer type (e.g. to allocate more buffers),
/// which the [`Stage`] trait's generic `process` cannot.
#[inline(always)]
pub fn run_timed_fn<B, C, F>(
    id: StageId,
    burst: &mut Burst<B>,
    mask: u64,
    clock: &C,
    meters: &mut Meters,
    f: F,
) where
    B: PacketBuf,
    C: Clock,
    F: FnOnce(&mut Burst<B>),
{
    let live = burst.live_mask() & mask;
    if live == 0 {
        return;
    }
    let n = u64::from(live.count_ones());
    let t0 = if C::ENABLED { clock.now() } else { 0 };
    f(burst);
    if C::ENABLED {
        let elapsed = clock.now().wrapping_sub(t0);
        meters.timing.record(meters.kind, id, elapsed, n);
    }
    count_stage(id, live, burst, meters);
}

/// Count a run of stage `id` over the packets of `live`, and name it as the dropper of
/// those it dropped.
#[inline(always)]
fn count_stage<B>(id: StageId, live: u64, burst: &mut Burst<B>, meters: &mut Meters) {
    let dropped = live & !burst.live_mask() & burst.dropped_mask();
    if dropped != 0 {
        burst.note_drops(dropped, id);
    }
    meters.counters.add_stage(meters.kind, id, u64::from(live.count_ones()), u64::from(dropped.count_ones()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burst::{Output, Verdict};
    use crate::clock::{NullClock, StepClock};
    use crate::drop::DropReason;
    use crate::timing::{HistogramConfig, TimingCollector};
    use wire::TestBuffer;

    #[test]
    fn names_are_stable() {
        let names: Vec<&str> = StageId::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "classify",
                "verify-send",
                "route",
                "encap",
                "verify-recv",
                "decap",
                "nat",
                "esp-encrypt",
                "esp-decrypt",
                "vlan",
                "endpoint"
            ]
        );
        for (i, s) in StageId::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(s.name().parse::<StageId>(), Ok(*s));
        }
        assert!("verify_send".parse::<StageId>().is_err());
    }

    /// Drops packets whose first byte is odd, forwards those above 10, leaves the rest live.
    struct OddDropper;

    struct Ctx {
        out: Output,
        runs: u32,
    }

    impl Stage<Ctx> for OddDropper {
        const ID: StageId = StageId::VerifySend;

        fn process<B: PacketBuf>(&mut self, burst: &mut Burst<B>, ctx: &mut Ctx) {
            ctx.runs += 1;
            let out = ctx.out;
            burst.for_each_live(|_, p| match p.data().first() {
                Some(b) if b % 2 == 1 => Some(Verdict::Drop(DropReason::SpoofedSource)),
                Some(b) if *b > 10 => Some(Verdict::Forward(out)),
                _ => None,
            });
        }
    }

    #[test]
    fn run_timed_records_and_counts() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let mut meters = Meters::new(collector.add_worker(0).unwrap());
        let mut ctx = Ctx { out: Output::new(1).unwrap(), runs: 0 };
        let clock = StepClock::new(1_000, 800);
        let mut burst: Burst<TestBuffer> = Burst::new();
        for b in [1u8, 2, 3, 4, 12, 14, 5, 6] {
            let _ = burst.push(TestBuffer::from_slice(&[b]));
        }
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
    }

    #[test]
    fn run_timed_fn_counts_only_its_mask() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let mut meters = Meters::new(collector.add_worker(0).unwrap());
        let clock = StepClock::new(1_000, 600);
        let mut burst: Burst<TestBuffer> = Burst::new();
        for b in [1u8, 2, 3, 4, 5, 6] {
            let _ = burst.push(TestBuffer::from_slice(&[b]));
        }
        // The stage owns slots 1, 2 and 4; it drops slot 2 and forwards slot 4.
        let mask = 0b10110;
        let out = Output::new(1).unwrap();
        run_timed_fn(StageId::Nat, &mut burst, mask, &clock, &mut meters, |b| {
            b.drop(2, DropReason::NoElasticIp);
            b.forward(4, out);
        });
        assert_eq!(meters.counters.stage_packets(StageId::Nat), 3);
        assert_eq!(meters.counters.stage_drops(StageId::Nat), 1);
        let h = meters.timing.current().get(StageId::Nat);
        assert_eq!(h.len(), 3);
        assert_eq!(h.count_at(200), 3);
        assert_eq!(burst.live_count(), 4);
        // No live packet in the mask: the closure does not run, nothing is counted.
        let mut ran = false;
        run_timed_fn(StageId::Nat, &mut burst, 0b10100, &clock, &mut meters, |_| ran = true);
        assert!(!ran);
        assert_eq!(meters.counters.stage_packets(StageId::Nat), 3);
    }

    #[test]
    fn meters_kind_keeps_host_and_edge_apart() {
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let (mut meters, clock) = (Meters::new(collector.add_worker(0).unwrap()), StepClock::new(1_000, 600));
        let mut burst: Burst<TestBuffer> = Burst::new();
        [2u8, 4, 6].iter().for_each(|b| drop(burst.push(TestBuffer::from_slice(&[*b]))));
        run_timed_fn(StageId::VerifyRecv, &mut burst, 0b001, &clock, &mut meters, |b| {
            b.drop(0, DropReason::UnknownSender);
        });
        meters.kind = CardKind::Edge;
        run_timed_fn(StageId::VerifyRecv, &mut burst, 0b110, &clock, &mut meters, |_| {});
        let c = &meters.counters;
        assert_eq!(c.stage_packets_of(CardKind::Host, StageId::VerifyRecv), 1);
        assert_eq!(c.stage_drops_of(CardKind::Host, StageId::VerifyRecv), 1);
        assert_eq!(c.stage_packets_of(CardKind::Edge, StageId::VerifyRecv), 2);
        assert_eq!(c.stage_drops_of(CardKind::Edge, StageId::VerifyRecv), 0);
        assert_eq!(c.stage_packets(StageId::VerifyRecv), 3);
        let t = meters.timing.current();
        assert_eq!(t.of(CardKind::Host, StageId::VerifyRecv).count_at(600), 1);
        assert_eq!(t.of(CardKind::Edge, StageId::VerifyRecv).count_at(300), 2);
        assert_eq!(t.get(StageId::VerifyRecv).len(), 3);
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
}
