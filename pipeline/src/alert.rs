//! Security alerts: raised by workers without blocking, aggregated, rate-limited and
//! written as JSON lines by the control core.
//!
//! Contract:
//! - Worker side: a stage that drops a packet for a [security](crate::DropReason::is_security)
//!   reason raises a small `Copy` [`AlertEvent`] (ids and addresses, no strings) through
//!   its [`AlertProducer`]: one push into a per-worker bounded lock-free queue
//!   (`crossbeam_queue::ArrayQueue`, allocated at start). A full queue loses the event and
//!   counts it ([`AlertProducer::lost`]): never blocks, never allocates.
//! - Control side: [`AlertAggregator::drain`] pops every worker's queue; events with the
//!   same (reason, card, instance, VPCs, src, dst) within `window_ms` of the first become one
//!   line with `count`. When the window has passed, [`AlertAggregator::flush`] writes the
//!   line if the reason's token bucket has a token, else counts its events as rate-limited.
//!   Names for ids come from the caller's [`AlertNames`]. Time comes in as an argument
//!   (Unix milliseconds): nothing here reads a clock.
//!
//! Line format (one JSON object per line, keys in this order):
//! `ts` (RFC 3339 UTC with milliseconds, time of the first event), `reason`, `stage`,
//! `host` or `edge` (card name), `instance` (name, or null when unknown), `vpc` (name),
//! `vni`, `peer_vpc` and `peer_vni` (only when the packet involved a second VPC), `src`,
//! `dst`, `count`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use serde::Serialize;

use crate::drop::DropReason;
use crate::stage_id::StageId;

/// Which card raised an alert: the workspace's one card id (a host's Nitro card or a
/// Blackfoot edge, by its index among the topology's hosts or edges).
pub use wire::card::CardId;

/// One security drop, as the worker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertEvent {
    /// Why the packet was dropped.
    pub reason: DropReason,
    /// The stage that dropped it.
    pub stage: StageId,
    /// The card that dropped it.
    pub card: CardId,
    /// The ENI involved (sender at verify-send, receiver at verify-recv), when known.
    pub eni: Option<u32>,
    /// The VPC the packet came from (or claimed to).
    pub vni: u32,
    /// The other VPC involved (e.g. the destination VPC of a not-peered packet).
    pub peer_vni: Option<u32>,
    /// Inner source address.
    pub src: Ipv4Addr,
    /// Inner destination address.
    pub dst: Ipv4Addr,
}

struct AlertQueue {
    q: ArrayQueue<AlertEvent>,
    lost: AtomicU64,
}

/// Make a worker's alert queue holding up to `capacity` events (at least 1).
pub fn alert_channel(capacity: usize) -> (AlertProducer, AlertConsumer) {
    let shared = Arc::new(AlertQueue { q: ArrayQueue::new(capacity.max(1)), lost: AtomicU64::new(0) });
    (AlertProducer { shared: Arc::clone(&shared), lost: 0 }, AlertConsumer { shared })
}

/// The worker's end of its alert queue.
pub struct AlertProducer {
    shared: Arc<AlertQueue>,
    lost: u64,
}

impl core::fmt::Debug for AlertProducer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AlertProducer").field("lost", &self.lost).finish()
    }
}

impl AlertProducer {
    /// Queue `event` for the control core. Returns `false` if the queue was full and the
    /// event was lost (counted).
    #[inline]
    pub fn raise(&mut self, event: AlertEvent) -> bool {
        match self.shared.q.push(event) {
            Ok(()) => true,
            Err(_) => {
                // Single writer: a plain store of the worker's own total (see counters.rs).
                self.lost = self.lost.wrapping_add(1);
                self.shared.lost.store(self.lost, Ordering::Relaxed);
                false
            }
        }
    }

    /// Events lost to a full queue so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// The control core's end of a worker's alert queue.
pub struct AlertConsumer {
    shared: Arc<AlertQueue>,
}

impl core::fmt::Debug for AlertConsumer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AlertConsumer")
            .field("queued", &self.shared.q.len())
            .field("lost", &self.lost())
            .finish()
    }
}

impl AlertConsumer {
    /// The oldest queued event.
    pub fn pop(&self) -> Option<AlertEvent> {
        self.shared.q.pop()
    }

    /// Events the worker lost to a full queue so far.
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }
}

/// Names for the ids in [`AlertEvent`], provided by the runtime (from the topology).
/// Unknown ids fall back to `host-N`, `edge-N`, `vni-N`; an unknown instance is null.
pub trait AlertNames {
    /// Name of a host or edge.
    fn card(&self, _card: CardId) -> Option<&str> {
        None
    }
    /// Name of the instance owning an ENI.
    fn instance(&self, _eni: u32) -> Option<&str> {
        None
    }
    /// Name of a VPC.
    fn vpc(&self, _vni: u32) -> Option<&str> {
        None
    }
}

/// No names: every id is written in its fallback form.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl AlertNames for NoNames {}

/// Aggregation and rate-limit parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertConfig {
    /// Events with the same key within this many ms of the first become one line.
    pub window_ms: u64,
    /// Lines per second per reason, sustained.
    pub rate_per_sec: u32,
    /// Lines per reason allowed in a burst above the rate.
    pub burst: u32,
    /// Most distinct keys held at once; events for new keys beyond it are dropped (counted).
    pub max_pending: usize,
}

impl Default for AlertConfig {
    /// 1 s windows, 10 lines/s per reason with bursts of 20, 4096 keys.
    fn default() -> Self {
        AlertConfig { window_ms: 1000, rate_per_sec: 10, burst: 20, max_pending: 4096 }
    }
}

/// What happened to alerts so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AlertTotals {
    /// Lines written.
    pub written: u64,
    /// Events written (sum of `count`).
    pub events: u64,
    /// Events lost on workers to a full queue.
    pub queue_full: u64,
    /// Events in lines suppressed by the rate limit.
    pub rate_limited: u64,
    /// Events dropped because too many distinct keys were pending.
    pub overflow: u64,
}

impl AlertTotals {
    /// Events raised but never written, for any cause.
    pub fn dropped(&self) -> u64 {
        self.queue_full.wrapping_add(self.rate_limited).wrapping_add(self.overflow)
    }
}

/// What makes two events the same line. The VPCs are part of it: two VPCs may use the
/// same addresses (overlapping CIDRs), and their events must not be counted as one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    reason: DropReason,
    card: CardId,
    eni: Option<u32>,
    vni: u32,
    peer_vni: Option<u32>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl Key {
    fn of(e: &AlertEvent) -> Key {
        Key {
            reason: e.reason,
            card: e.card,
            eni: e.eni,
            vni: e.vni,
            peer_vni: e.peer_vni,
            src: e.src,
            dst: e.dst,
        }
    }
}

struct Pending {
    event: AlertEvent,
    first_ms: u64,
    count: u64,
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Thousandths of a token.
    milli: u64,
    last_ms: u64,
}

/// The control core's alert writer. See the [module documentation](self).
pub struct AlertAggregator {
    cfg: AlertConfig,
    pending: Vec<Pending>,
    index: HashMap<Key, usize>,
    buckets: [Bucket; DropReason::COUNT],
    totals: AlertTotals,
    /// Events received from the workers, per reason (written, pending or suppressed).
    received: [u64; DropReason::COUNT],
}

impl core::fmt::Debug for AlertAggregator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AlertAggregator").field("pending", &self.pending.len()).field("totals", &self.totals).finish()
    }
}

impl AlertAggregator {
    /// An aggregator with full token buckets, starting at `now_ms`.
    pub fn new(cfg: AlertConfig, now_ms: u64) -> Self {
        let full = Bucket { milli: u64::from(cfg.burst) * 1000, last_ms: now_ms };
        AlertAggregator {
            cfg,
            pending: Vec::new(),
            index: HashMap::new(),
            buckets: [full; DropReason::COUNT],
            totals: AlertTotals::default(),
            received: [0; DropReason::COUNT],
        }
    }

    /// Take one event at `now_ms`.
    pub fn ingest(&mut self, event: AlertEvent, now_ms: u64) {
        if let Some(n) = self.received.get_mut(event.reason.index()) {
            *n += 1;
        }
        let key = Key::of(&event);
        if let Some(p) = self.index.get(&key).and_then(|&i| self.pending.get_mut(i)) {
            p.count += 1;
            return;
        }
        if self.pending.len() >= self.cfg.max_pending {
            self.totals.overflow += 1;
            return;
        }
        self.index.insert(key, self.pending.len());
        self.pending.push(Pending { event, first_ms: now_ms, count: 1 });
    }

    /// Pop every queued event of every consumer at `now_ms`; returns how many. Also
    /// refreshes the queue-loss total from the consumers.
    pub fn drain(&mut self, consumers: &[AlertConsumer], now_ms: u64) -> usize {
        let mut n = 0;
        let mut lost = 0u64;
        for c in consumers {
            while let Some(e) = c.pop() {
                self.ingest(e, now_ms);
                n += 1;
            }
            lost = lost.wrapping_add(c.lost());
        }
        self.totals.queue_full = lost;
        n
    }

    /// Write a line for every key whose window has passed at `now_ms` (rate limit
    /// permitting). Returns the number of lines written.
    pub fn flush<W: Write, N: AlertNames + ?Sized>(&mut self, now_ms: u64, names: &N, out: &mut W) -> io::Result<usize> {
        self.flush_inner(now_ms, false, names, out)
    }

    /// At exit: write every pending key regardless of its window (rate limit permitting).
    pub fn flush_all<W: Write, N: AlertNames + ?Sized>(&mut self, now_ms: u64, names: &N, out: &mut W) -> io::Result<usize> {
        self.flush_inner(now_ms, true, names, out)
    }

    /// Totals so far.
    pub fn totals(&self) -> AlertTotals {
        self.totals
    }

    /// Events taken so far per reason (index: [`DropReason::index`]), whether their line
    /// was written, is pending, or was suppressed by the rate limit or the key limit.
    pub fn received(&self) -> [u64; DropReason::COUNT] {
        self.received
    }

    /// Distinct keys waiting for their window to pass.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn flush_inner<W: Write, N: AlertNames + ?Sized>(
        &mut self,
        now_ms: u64,
        all: bool,
        names: &N,
        out: &mut W,
    ) -> io::Result<usize> {
        let window = self.cfg.window_ms;
        let mut written = 0;
        let mut kept = Vec::with_capacity(self.pending.len());
        let mut result = Ok(());
        for p in core::mem::take(&mut self.pending) {
            let due = all || now_ms.saturating_sub(p.first_ms) >= window;
            if !due || result.is_err() {
                kept.push(p);
                continue;
            }
            if !self.take_token(p.event.reason, now_ms) {
                self.totals.rate_limited += p.count;
                continue;
            }
            let line = serde_json::to_vec(&AlertLine::new(&p, names));
            match line {
                Ok(mut bytes) => {
                    bytes.push(b'\n');
                    if let Err(e) = out.write_all(&bytes) {
                        result = Err(e);
                        kept.push(p);
                        continue;
                    }
                    self.totals.written += 1;
                    self.totals.events += p.count;
                    written += 1;
                }
                Err(e) => result = Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        self.pending = kept;
        self.index.clear();
        for (i, p) in self.pending.iter().enumerate() {
            self.index.insert(Key::of(&p.event), i);
        }
        result.map(|()| written)
    }

    fn take_token(&mut self, reason: DropReason, now_ms: u64) -> bool {
        let cap = u64::from(self.cfg.burst) * 1000;
        let rate = u64::from(self.cfg.rate_per_sec);
        let Some(b) = self.buckets.get_mut(reason.index()) else {
            return false;
        };
        let elapsed = now_ms.saturating_sub(b.last_ms);
        b.last_ms = b.last_ms.max(now_ms);
        // rate tokens per second = rate thousandths of a token per millisecond.
        b.milli = b.milli.saturating_add(elapsed.saturating_mul(rate)).min(cap);
        if b.milli >= 1000 {
            b.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[derive(Serialize)]
struct AlertLine<'a> {
    ts: String,
    reason: &'static str,
    stage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<NameOr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edge: Option<NameOr<'a>>,
    instance: Option<&'a str>,
    vpc: NameOr<'a>,
    vni: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_vpc: Option<NameOr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_vni: Option<u32>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    count: u64,
}

/// A resolved name, or a fallback written as `prefix-N`.
enum NameOr<'a> {
    Name(&'a str),
    Id(&'static str, u32),
}

impl Serialize for NameOr<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NameOr::Name(n) => s.serialize_str(n),
            NameOr::Id(prefix, id) => s.collect_str(&format_args!("{prefix}-{id}")),
        }
    }
}

impl<'a> AlertLine<'a> {
    fn new<N: AlertNames + ?Sized>(p: &Pending, names: &'a N) -> Self {
        let e = &p.event;
        let card = match names.card(e.card) {
            Some(n) => NameOr::Name(n),
            None => {
                let (kind, i) = e.card.kind_and_index();
                NameOr::Id(kind, i)
            }
        };
        let vpc = |vni: u32| names.vpc(vni).map_or(NameOr::Id("vni", vni), NameOr::Name);
        let (host, edge) = match e.card {
            CardId::Host(_) => (Some(card), None),
            CardId::Edge(_) => (None, Some(card)),
        };
        AlertLine {
            ts: rfc3339_ms(p.first_ms),
            reason: e.reason.name(),
            stage: e.stage.name(),
            host,
            edge,
            instance: e.eni.and_then(|i| names.instance(i)),
            vpc: vpc(e.vni),
            vni: e.vni,
            peer_vpc: e.peer_vni.map(vpc),
            peer_vni: e.peer_vni,
            src: e.src,
            dst: e.dst,
            count: p.count,
        }
    }
}

/// `unix_ms` as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:34:56.789Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let ms = unix_ms % 1000;
    let secs = unix_ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let (y, mo, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::card::{EdgeId, HostId};
    use serde_json::Value;

    struct Names;
    impl AlertNames for Names {
        fn card(&self, card: CardId) -> Option<&str> {
            match card {
                CardId::Host(HostId(0)) => Some("host-a"),
                CardId::Edge(EdgeId(0)) => Some("blackfoot-1"),
                _ => None,
            }
        }
        fn instance(&self, eni: u32) -> Option<&str> {
            (eni == 7).then_some("green-1")
        }
        fn vpc(&self, vni: u32) -> Option<&str> {
            match vni {
                101 => Some("red"),
                103 => Some("green"),
                _ => None,
            }
        }
    }

    fn ev(reason: DropReason, src: [u8; 4]) -> AlertEvent {
        AlertEvent {
            reason,
            stage: StageId::VerifySend,
            card: CardId::Host(HostId(0)),
            eni: Some(7),
            vni: 103,
            peer_vni: None,
            src: Ipv4Addr::from(src),
            dst: Ipv4Addr::new(10, 1, 1, 10),
        }
    }

    fn lines(buf: &[u8]) -> Vec<Value> {
        std::str::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339_ms(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
        assert_eq!(rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn queue_full_is_counted_not_blocking() {
        let (mut p, c) = alert_channel(2);
        assert!(p.raise(ev(DropReason::SpoofedSource, [10, 3, 0, 5])));
        assert!(p.raise(ev(DropReason::SpoofedSource, [10, 3, 0, 5])));
        assert!(!p.raise(ev(DropReason::SpoofedSource, [10, 3, 0, 5])));
        assert!(!p.raise(ev(DropReason::SpoofedSource, [10, 3, 0, 5])));
        assert_eq!(p.lost(), 2);
        assert_eq!(c.lost(), 2);
        let mut agg = AlertAggregator::new(AlertConfig::default(), 0);
        assert_eq!(agg.drain(&[c], 5), 2);
        assert_eq!(agg.totals().queue_full, 2);
        assert_eq!(agg.pending(), 1);
    }

    #[test]
    fn aggregates_within_window_and_writes_json_lines() {
        let (mut p, c) = alert_channel(64);
        let mut agg = AlertAggregator::new(AlertConfig::default(), 1_714_566_896_000);
        let t0 = 1_714_566_896_789;
        for _ in 0..5 {
            p.raise(ev(DropReason::SpoofedSource, [10, 2, 1, 10]));
        }
        let mut other = ev(DropReason::NotPeered, [10, 3, 1, 10]);
        other.card = CardId::Edge(EdgeId(0));
        other.stage = StageId::VerifyRecv;
        other.peer_vni = Some(102);
        other.eni = None;
        p.raise(other);
        assert_eq!(agg.drain(std::slice::from_ref(&c), t0), 6);
        let mut out = Vec::new();
        assert_eq!(agg.flush(t0 + 999, &Names, &mut out).unwrap(), 0, "window still open");
        p.raise(ev(DropReason::SpoofedSource, [10, 2, 1, 10]));
        agg.drain(std::slice::from_ref(&c), t0 + 999);
        assert_eq!(agg.flush(t0 + 1000, &Names, &mut out).unwrap(), 2);
        let l = lines(&out);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["ts"], "2024-05-01T12:34:56.789Z");
        assert_eq!(l[0]["reason"], "spoofed_source");
        assert_eq!(l[0]["stage"], "verify-send");
        assert_eq!(l[0]["host"], "host-a");
        assert!(l[0].get("edge").is_none());
        assert_eq!(l[0]["instance"], "green-1");
        assert_eq!(l[0]["vpc"], "green");
        assert_eq!(l[0]["vni"], 103);
        assert_eq!(l[0]["src"], "10.2.1.10");
        assert_eq!(l[0]["dst"], "10.1.1.10");
        assert_eq!(l[0]["count"], 6);
        assert_eq!(l[1]["reason"], "not_peered");
        assert_eq!(l[1]["edge"], "blackfoot-1");
        assert_eq!(l[1]["instance"], Value::Null);
        assert_eq!(l[1]["peer_vpc"], "vni-102");
        assert_eq!(l[1]["peer_vni"], 102);
        assert_eq!(l[1]["count"], 1);
        assert_eq!(agg.pending(), 0);
        let t = agg.totals();
        assert_eq!((t.written, t.events, t.dropped()), (2, 7, 0));
        let received = agg.received();
        assert_eq!(received[DropReason::SpoofedSource.index()], 6);
        assert_eq!(received[DropReason::NotPeered.index()], 1);
        assert_eq!(received.iter().sum::<u64>(), 7);
        // Keys in the documented order.
        let first = std::str::from_utf8(&out).unwrap().lines().next().unwrap();
        let pos = |k: &str| first.find(&format!("\"{k}\":")).unwrap();
        assert!(pos("ts") < pos("reason") && pos("reason") < pos("stage"));
        assert!(pos("vpc") < pos("src") && pos("dst") < pos("count"));
    }

    #[test]
    fn rate_limit_per_reason() {
        let cfg = AlertConfig { window_ms: 0, rate_per_sec: 2, burst: 3, max_pending: 100 };
        let mut agg = AlertAggregator::new(cfg, 0);
        let mut out = Vec::new();
        // 10 distinct sources: only the burst of 3 is written.
        for i in 0..10u8 {
            agg.ingest(ev(DropReason::SpoofedSource, [10, 2, 1, i]), 0);
        }
        // Another reason has its own bucket.
        agg.ingest(ev(DropReason::UnknownSender, [10, 2, 1, 1]), 0);
        assert_eq!(agg.flush(0, &NoNames, &mut out).unwrap(), 4);
        assert_eq!(agg.totals().rate_limited, 7);
        // 1 s later: 2 more tokens.
        for i in 0..5u8 {
            agg.ingest(ev(DropReason::SpoofedSource, [10, 2, 2, i]), 1000);
        }
        assert_eq!(agg.flush(1000, &NoNames, &mut out).unwrap(), 2);
        let t = agg.totals();
        assert_eq!((t.written, t.rate_limited), (6, 10));
        let l = lines(&out);
        assert_eq!(l[0]["host"], "host-0");
        assert_eq!(l[0]["vpc"], "vni-103");
        assert_eq!(l[0]["instance"], Value::Null);
    }

    /// Two VPCs may use the same addresses: their events are two lines, each with its VPC.
    #[test]
    fn equal_addresses_of_two_vpcs_are_two_lines() {
        let mut agg = AlertAggregator::new(AlertConfig::default(), 0);
        let mut e = ev(DropReason::UnknownSender, [10, 2, 1, 10]);
        e.eni = None;
        agg.ingest(e, 0);
        agg.ingest(AlertEvent { vni: 101, ..e }, 0);
        agg.ingest(AlertEvent { peer_vni: Some(101), ..e }, 0);
        agg.ingest(e, 0);
        let mut out = Vec::new();
        assert_eq!(agg.flush_all(10, &Names, &mut out).unwrap(), 3);
        let l = lines(&out);
        let got: Vec<(&str, &Value, u64)> =
            l.iter().map(|l| (l["vpc"].as_str().unwrap(), &l["peer_vni"], l["count"].as_u64().unwrap())).collect();
        assert_eq!(
            got,
            [("green", &Value::Null, 2), ("red", &Value::Null, 1), ("green", &Value::from(101), 1)]
        );
    }

    /// Card ids are as wide as the topology's: cards 65536 apart are two cards, each named.
    #[test]
    fn cards_65536_apart_have_their_own_names() {
        struct Far;
        impl AlertNames for Far {
            fn card(&self, card: CardId) -> Option<&str> {
                match card {
                    CardId::Host(HostId(1)) => Some("h1"),
                    CardId::Host(HostId(65_537)) => Some("h65537"),
                    _ => None,
                }
            }
        }
        let mut agg = AlertAggregator::new(AlertConfig::default(), 0);
        let e = ev(DropReason::SpoofedSource, [10, 2, 1, 10]);
        for card in [CardId::Host(HostId(1)), CardId::Host(HostId(65_537)), CardId::Edge(EdgeId(70_001))] {
            agg.ingest(AlertEvent { card, ..e }, 0);
        }
        let mut out = Vec::new();
        assert_eq!(agg.flush_all(10, &Far, &mut out).unwrap(), 3);
        let l = lines(&out);
        assert_eq!((&l[0]["host"], &l[1]["host"], &l[2]["edge"]), (&Value::from("h1"), &Value::from("h65537"), &Value::from("edge-70001")));
    }

    #[test]
    fn pending_keys_are_bounded() {
        let cfg = AlertConfig { max_pending: 3, ..AlertConfig::default() };
        let mut agg = AlertAggregator::new(cfg, 0);
        for i in 0..5u8 {
            agg.ingest(ev(DropReason::SpoofedSource, [10, 2, 1, i]), 0);
        }
        agg.ingest(ev(DropReason::SpoofedSource, [10, 2, 1, 0]), 0); // existing key: aggregated
        assert_eq!(agg.pending(), 3);
        assert_eq!(agg.totals().overflow, 2);
        let mut out = Vec::new();
        assert_eq!(agg.flush_all(10, &NoNames, &mut out).unwrap(), 3);
        assert_eq!(lines(&out)[0]["count"], 2);
        assert_eq!(agg.totals().dropped(), 2);
    }
}
