//! What every vpcemu stage shares: bursts and verdicts, drop reasons, per-worker counters,
//! stage timing, the stats report and security alerts. No DPDK, no I/O, no clock.
//!
//! # The model
//!
//! A worker receives up to 32 packets into a [`Burst`], runs the stages of its card over
//! it to completion, then drains it:
//!
//! ```text
//! rx -> Burst (all live) -> run_timed(classify) -> run_timed(verify-send) -> ... -> drain
//!                             each stage decides some live packets:
//!                             Forward(output) | Consumed | Drop(reason)
//! drain_grouped: one TX call per output; drops freed; every packet counted once
//! ```
//!
//! - Stages ([`Stage`]) are small structs with a stable [`StageId`], generic over the
//!   buffer ([`wire::PacketBuf`]: the DPDK mbuf in the runtime, `TestBuffer` in tests),
//!   monomorphised per stage and clock: no `dyn`, no runtime flags.
//! - Drops carry a [`DropReason`] with a stable name; security reasons also raise an
//!   [`AlertEvent`] through the worker's [`AlertProducer`].
//! - The first checks of `verify-recv`, the same on a Nitro card and an edge (outer
//!   header, destination PA, inner IPv4 header, VPC MTU, in that order, with their drop
//!   reasons), are [`underlay::receive`]: one rule for both cards.
//! - Packets a stage makes beyond its burst (fragments, ICMP errors) come from and go out
//!   through an [`Extra`]; [`frag`] cuts IPv4 packets for a smaller MTU and builds the
//!   ICMP fragmentation-needed answer for both cards; a [`RateLimit`] (lock-free, shared by
//!   workers) bounds what a card answers.
//! - Per worker, nothing shared is written per packet: [`Counters`] (cache-line aligned,
//!   worker-owned) get verdict totals once per burst at drain and stage totals once per
//!   stage per burst; [`run_timed`] reads the [`Clock`] twice per stage per burst and
//!   records cycles per packet into the worker's [`StageHistograms`] (preallocated, never
//!   resized). [`NullClock`] compiles timing out.
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod alert;
pub mod arp;
pub mod burst;
pub mod card;
pub mod clock;
pub mod counters;
pub mod drop;
pub mod extra;
pub mod frag;
pub mod limits;
pub mod output;
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
pub use clock::{Clock, NullClock, StepClock, TscHz};
pub use counters::{Counters, PublishedCounters, COUNTER_SLOTS};
pub use drop::{DropReason, UnknownDropReason};
pub use extra::{Extra, VecExtra};
pub use ratelimit::RateLimit;
pub use limits::{bit, slot, MAX_BURST, MAX_OUTPUTS};
pub use output::Output;
pub use stage::{drop_row, run_timed, DropTable, Meters, Stage, StageInfo};
pub use stage_id::{StageId, UnknownStage};
pub use stats::{PortStats, StageStats, StatsReport};
pub use timing::{HistogramConfig, StageHistograms, StageSummary, TimingCollector, TimingError, WorkerTiming};
pub use underlay::Received;

/// Re-exported so stage crates and the runtime name the same `ArrayVec` as
/// [`Burst::drain_grouped`].
pub use arrayvec::ArrayVec;
