//! What every vpcemu stage shares: bursts and verdicts, drop reasons, the stage trait, the
//! card context, per-worker counters, stage timing, the stats report and security alerts.
//! No DPDK, no I/O, no clock.
//!
//! Files: the vocabulary is in leaf files that use nothing else of the crate
//! ([`limits`], [`output`], [`stage_id`], [`drop`](mod@drop), [`clock`]); the rest builds on them
//! without cycles.
//!
//! # The model
//!
//! A worker receives up to 32 packets into a [`Burst`], runs the stages of its card over
//! it to completion, then drains it:
//!
//! ```text
//! rx -> Burst (all live) -> run_timed(Classify) -> run_timed(VerifySend) -> ... -> drain
//!                             each stage decides some live packets:
//!                             Forward(output) | Consumed | Drop(reason)
//! drain_grouped: one TX call per output; drops freed; every packet counted once
//! ```
//!
//! - Stages are small structs implementing one trait for both cards, [`Stage`], generic
//!   over the buffer ([`wire::PacketBuf`]: the DPDK mbuf in the runtime, `TestBuffer` in
//!   tests) and the pipeline's context, monomorphised per stage and clock: no `dyn`, no
//!   runtime flags. Each has a stable [`StageId`] and declares the drop reasons it may
//!   decide ([`StageInfo`]); [`run_timed`] checks them in debug builds and
//!   [`check_doc_table`] checks the cards' documented drop tables against them.
//! - What both cards share below their stages: the per-burst card context [`CardCtx`]
//!   (tables, card id, alerts, the ICMP rate limit) with its alert helper, the slot
//!   helpers ([`slot`], [`bit`], [`MAX_BURST`], defined once in [`limits`]), the ARP
//!   responder ([`arp::respond`]), and one mapping of `wire` errors to drop reasons
//!   (`From<wire::Error> for DropReason`).
//! - Drops carry a [`DropReason`] with a stable name; security reasons also raise an
//!   [`AlertEvent`] through the worker's [`AlertProducer`].
//! - The first checks of `verify-recv`, the same on a Nitro card and an edge (outer
//!   header, destination PA, inner IPv4 header, VPC MTU, in that order, with their drop
//!   reasons), are [`underlay::receive`]: one rule for both cards.
//! - Packets a stage makes beyond its burst (fragments, ICMP errors) come from and go out
//!   through an [`Extra`]; [`frag`] cuts IPv4 packets for a smaller MTU and builds the
//!   ICMP fragmentation-needed answer for both cards; a [`RateLimit`] (lock-free, shared by
//!   workers) bounds what a card answers.
//! - [`prefetch`]: the one audited software prefetch (the workspace's only unchecked block
//!   outside `src/dpdk/`); the edge's `verify-recv` prefetches each table slot as soon as
//!   its key is known, so that the cache misses of a burst's lookups overlap the work on
//!   the other packets (the Nitro card's burst lookups touch their slots in a pass of
//!   plain loads instead, `mapping_client::MappingTable`, measured as fast there).
//! - Per worker, nothing shared is written per packet: [`Counters`] (cache-line aligned,
//!   worker-owned) get verdict totals once per burst at drain and stage totals once per
//!   stage per burst; [`run_timed`] reads the [`Clock`] twice per stage per burst
//!   ([`run_timed_chained`], for a pipeline's stages in a row, once: a stage's end is the
//!   next one's start) and
//!   records cycles per packet into the worker's [`StageHistograms`] (preallocated, never
//!   resized), for the bursts its clock times ([`Sampled`]: the first one after an
//!   interval, so that timing costs little at line rate). [`NullClock`] compiles timing
//!   out.
//!
//! # The control core
//!
//! Workers hand their figures over without locks: counters by `Relaxed` stores of their
//! totals into [`PublishedCounters`]; histograms by swapping a full set for an empty one
//! through lock-free queues ([`WorkerTiming::ship`] / [`TimingCollector::collect`]);
//! alerts through a bounded lock-free queue per worker ([`alert_channel`]). The control
//! core merges counters ([`Counters::merge`]) and histograms, aggregates and rate-limits
//! alerts ([`AlertAggregator`]) into JSON lines, and builds the stats JSON and table
//! ([`StatsReport`]). Time (TSC Hz, wall-clock milliseconds) always comes in as an
//! argument.
// Unchecked code only in `prefetch` (one audited intrinsic call); denied everywhere else.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[macro_use]
mod named;

pub mod alert;
pub mod arp;
pub mod burst;
pub mod card;
pub mod card_kind;
pub mod clock;
pub mod counters;
pub mod drop;
pub mod extra;
pub mod frag;
pub mod hgrm;
pub mod limits;
pub mod output;
pub mod prefetch;
pub mod ratelimit;
pub mod stage;
pub mod stage_id;
pub mod stats;
pub mod timing;
pub mod underlay;

pub use alert::{
    alert_channel, rfc3339_ms, AlertAggregator, AlertConfig, AlertConsumer, AlertEvent,
    AlertNames, AlertProducer, AlertTotals, CardId, NoNames,
};
pub use burst::{Burst, LiveIndices, Verdict};
pub use card::CardCtx;
pub use card_kind::CardKind;
pub use clock::{Clock, NullClock, Sampled, StepClock, TscHz};
pub use counters::{Counters, PublishedCounters, COUNTER_SLOTS};
pub use drop::{DropReason, UnknownDropReason};
pub use extra::{Extra, VecExtra};
pub use ratelimit::RateLimit;
pub use limits::{bit, slot, MAX_BURST, MAX_OUTPUTS};
pub use output::Output;
pub use stage::{check_doc_table, drop_row, run_timed, run_timed_chained, DropTable, Meters, Stage, StageInfo};
pub use stage_id::{StageId, UnknownStage};
pub use stats::{PortStats, StageStats, StatsReport};
pub use timing::{HistogramConfig, StageHistograms, StageSummary, TimingCollector, TimingError, WorkerTiming};
pub use underlay::Received;

/// Re-exported so stage crates and the runtime name the same `ArrayVec` as
/// [`Burst::drain_grouped`].
pub use arrayvec::ArrayVec;
