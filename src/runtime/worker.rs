//! The worker lcore loop: poll the ports dealt to this worker, run each burst to
//! completion through its card's stages, send the results grouped by output, and carry
//! what crosses the in-process fabric on to the receiving card in the same pass.
//!
//! No locks, allocation, syscalls or logging in the loop: tables are read through the
//! worker's RCU subscribers (one per card; current version once per burst, quiescent
//! state once per loop), counters are published with relaxed stores every millisecond,
//! histograms shipped every 10 ms, alerts pushed into a bounded queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrayvec::ArrayVec;
use mapping_client::rcu::Subscriber;
use mapping_client::tables::Tables;
use pipeline::{AlertProducer, Burst, Clock, Counters, DropReason, Meters, Output, PublishedCounters, MAX_BURST};
use wire::PacketBuf;

use super::engine::{Bindings, CardInfo, FABRIC, Role};
use super::fabric::CardsByPa;
use super::softport::SoftPort;
use super::stages::{CardStages, Spill};
use crate::dpdk::{self, Linearize, Mbuf, MbufBurst, Mempool, rdtsc};

/// Packets per RX burst.
pub const RX_BURST: usize = 32;
/// Most fabric hops a packet may take in one pass (host -> edge -> host is 2); beyond it
/// the packets are dropped `fabric_loop` (no TTL is involved: the cards decrement none).
pub const MAX_HOPS: usize = 4;

/// Where a worker receives from.
pub enum RxSource {
    Eth(dpdk::RxQueue),
    Soft(Arc<SoftPort>),
}

/// Where a worker sends to, per port.
pub enum TxSink {
    Eth(dpdk::TxQueue),
    Soft(Arc<SoftPort>),
    None,
}

/// Everything a worker owns, handed over at launch.
pub struct WorkerSetup {
    pub rx: Vec<(usize, RxSource)>,
    pub tx: Vec<TxSink>,
    pub roles: Vec<Role>,
    /// Per port: its MTU (the largest IP packet it carries; `None`: no limit known).
    pub port_mtu: Vec<Option<u16>>,
    pub bindings: Arc<Bindings>,
    pub cards: Vec<CardInfo>,
    pub subscribers: Vec<Subscriber<Tables>>,
    pub fabric_capture: Option<usize>,
    pub pool: Arc<Mempool>,
    pub counters: Arc<PublishedCounters>,
    pub meters: Meters,
    pub alerts: AlertProducer,
    pub stop: Arc<AtomicBool>,
    pub returned: Arc<Mutex<Vec<Meters>>>,
}

/// Send a pipeline output group; what the sink does not take stays in `pkts`.
#[inline]
fn send(sink: &mut TxSink, pkts: &mut ArrayVec<Mbuf, MAX_BURST>) {
    match sink {
        TxSink::Eth(q) => {
            q.tx_vec(pkts);
        }
        TxSink::Soft(s) => {
            let mut kept = ArrayVec::<Mbuf, MAX_BURST>::new();
            for m in pkts.drain(..) {
                if let Err(m) = s.tx(m) {
                    let _ = kept.try_push(m);
                }
            }
            *pkts = kept;
        }
        TxSink::None => {}
    }
}

/// Bytes of a frame beyond its IP packet that a port takes: Ethernet header and one 802.1Q
/// tag (the DX side tags its frames).
const L2_OVERHEAD: usize = 18;

/// The longest frame port `out` takes (`usize::MAX`: no limit known, or not a port).
#[inline]
fn max_frame(port_mtu: &[Option<u16>], out: usize) -> usize {
    port_mtu.get(out).copied().flatten().map_or(usize::MAX, |mtu| usize::from(mtu) + L2_OVERHEAD)
}

/// Send `pkts` to `sink`, a port that takes frames of at most `max` bytes: longer ones are
/// freed as `mtu_exceeded` (never offered: a device that refuses one would hold back those
/// after it), what the sink does not take as `tx_full`. `pkts` is empty afterwards.
/// Returns how many were sent.
#[inline]
fn send_counted(sink: &mut TxSink, max: usize, pkts: &mut ArrayVec<Mbuf, MAX_BURST>, counters: &mut Counters) -> u64 {
    let before = pkts.len();
    pkts.retain(|m| m.len() <= max);
    counters.add_drops(DropReason::MtuExceeded, (before - pkts.len()) as u64);
    let offered = pkts.len();
    send(sink, pkts);
    let unsent = pkts.len();
    counters.add_drops(DropReason::TxFull, unsent as u64);
    pkts.clear();
    (offered - unsent) as u64
}

/// The outer destination PA of an encapsulated frame (the outer IPv4 destination).
#[inline]
fn outer_dst(frame: &[u8]) -> Option<std::net::Ipv4Addr> {
    let at = wire::vpc::offset::IP_DST;
    let b: [u8; 4] = frame.get(at..at + 4)?.try_into().ok()?;
    Some(std::net::Ipv4Addr::from(b))
}

/// A copy of `m` from the pool (for the fabric capture), if an mbuf is free.
fn copy_of(pool: &Mempool, m: &Mbuf) -> Option<Mbuf> {
    let mut c = pool.alloc()?;
    c.append(m.len()).ok()?.copy_from_slice(m.data());
    Some(c)
}

struct Loop<'a, C: Clock> {
    s: &'a mut WorkerSetup,
    /// `s.cards` by PA: the fabric's switch table.
    by_pa: CardsByPa,
    stages: CardStages,
    clock: C,
    burst: Burst<Mbuf>,
    fabric: ArrayVec<Mbuf, MAX_BURST>,
    /// Packets the edge stages made beyond a burst (fragments), sent after it.
    spill: Spill,
}

impl<C: Clock> Loop<'_, C> {
    /// Drain `burst` to the outputs; fabric-bound packets are kept in `self.fabric`. A
    /// packet longer than its port takes is dropped `mtu_exceeded`.
    fn drain(&mut self) {
        let Loop { s, burst, fabric, .. } = self;
        let (tx, port_mtu) = (&mut s.tx, &s.port_mtu);
        burst.drain_grouped_within(
            &mut s.meters.counters,
            |out| max_frame(port_mtu, out.index()),
            |out, pkts| {
                if out.index() == FABRIC {
                    for m in pkts.drain(..) {
                        // Cannot overflow: one burst's packets at most.
                        let _ = fabric.try_push(m);
                    }
                } else if let Some(sink) = tx.get_mut(out.index()) {
                    send(sink, pkts);
                }
            },
            |m, _verdict| drop(m),
        );
    }

    /// Send what the stages made beyond the last burst, one TX call per output run; what
    /// a sink refuses is freed and counted `tx_full`, what is longer than its port takes
    /// `mtu_exceeded`. Packets for the fabric (ICMP answers) join `self.fabric`.
    fn flush_spill(&mut self) {
        let mut group: ArrayVec<Mbuf, MAX_BURST> = ArrayVec::new();
        let mut current: Option<Output> = None;
        let Loop { s, spill, fabric, .. } = self;
        let (tx, port_mtu) = (&mut s.tx, &s.port_mtu);
        let counters = &mut s.meters.counters;
        let mut flush = |out: Option<Output>, group: &mut ArrayVec<Mbuf, MAX_BURST>| {
            let Some(out) = out else { return };
            if out.index() == FABRIC {
                let mut queued = 0;
                for m in group.drain(..) {
                    // At most one packet per packet of the burst: cannot overflow; if it
                    // did, the fabric queue is full.
                    match fabric.try_push(m) {
                        Ok(()) => queued += 1,
                        Err(_) => counters.add_drops(DropReason::TxFull, 1),
                    }
                }
                counters.add_output(out, queued);
                return;
            }
            match tx.get_mut(out.index()) {
                Some(sink) => {
                    let sent = send_counted(sink, max_frame(port_mtu, out.index()), group, counters);
                    counters.add_output(out, sent);
                }
                None => {
                    counters.add_drops(DropReason::TxFull, group.len() as u64);
                    group.clear();
                }
            }
        };
        for (m, out) in spill.drain(..) {
            if current != Some(out) || group.is_full() {
                flush(current, &mut group);
                current = Some(out);
            }
            let _ = group.try_push(m);
        }
        flush(current, &mut group);
    }

    /// Carry fabric packets sent by card `from` to their destination cards.
    fn cross_fabric(&mut self, mut from: usize) {
        let mut hops = 0;
        while !self.fabric.is_empty() {
            if hops == MAX_HOPS {
                let n = self.fabric.len() as u64;
                self.fabric.clear();
                self.s.meters.counters.add_drops(DropReason::FabricLoop, n);
                return;
            }
            hops += 1;
            let mut by_card: ArrayVec<(u32, Mbuf), MAX_BURST> = ArrayVec::new();
            let mut out_of_process: ArrayVec<Mbuf, MAX_BURST> = ArrayVec::new();
            let mut captured: ArrayVec<Mbuf, MAX_BURST> = ArrayVec::new();
            for m in self.fabric.drain(..) {
                if self.s.fabric_capture.is_some() {
                    match copy_of(&self.s.pool, &m) {
                        // Cannot overflow: one burst's packets at most.
                        Some(c) => {
                            let _ = captured.try_push(c);
                        }
                        None => self.s.meters.counters.add_drops(DropReason::NoBuffer, 1),
                    }
                }
                let dst = outer_dst(m.data());
                match dst.and_then(|pa| self.by_pa.get(pa)) {
                    Some(card) => {
                        let _ = by_card.try_push((card as u32, m));
                    }
                    None => {
                        let _ = out_of_process.try_push(m);
                    }
                }
            }
            if let Some(sink) = self.s.fabric_capture.and_then(|cap| self.s.tx.get_mut(cap)) {
                // One TX burst for the copies; what the capture port refuses is freed.
                send(sink, &mut captured);
            }
            captured.clear();
            if !out_of_process.is_empty() {
                self.send_out_of_process(&mut out_of_process, from);
            }
            by_card.sort_unstable_by_key(|(c, _)| *c);
            let mut it = by_card.into_iter().peekable();
            while let Some((card, m)) = it.next() {
                let _ = self.burst.push(m);
                while it.peek().is_some_and(|(c, _)| *c == card) {
                    if let Some((_, m)) = it.next() {
                        let _ = self.burst.push(m);
                    }
                }
                let card = card as usize;
                self.underlay_in(card);
                from = card;
            }
        }
    }

    /// Packets for PAs not run in this process leave by the physical (`underlay:`) port of
    /// the card that sent them (found by the outer source PA; `from`, the card whose
    /// stages ran last, if none matches), or are dropped `no_route` if it has none.
    fn send_out_of_process(&mut self, pkts: &mut ArrayVec<Mbuf, MAX_BURST>, from: usize) {
        let mut by_sender: ArrayVec<(usize, Mbuf), MAX_BURST> = ArrayVec::new();
        for m in pkts.drain(..) {
            let at = wire::vpc::offset::IP_SRC;
            let src = m.data().get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(std::net::Ipv4Addr::from);
            let card = src.and_then(|pa| self.by_pa.get(pa)).unwrap_or(from);
            // Cannot overflow: at most one burst's packets.
            let _ = by_sender.try_push((card, m));
        }
        by_sender.sort_unstable_by_key(|(c, _)| *c);
        let mut group: ArrayVec<Mbuf, MAX_BURST> = ArrayVec::new();
        let mut it = by_sender.into_iter().peekable();
        while let Some((card, m)) = it.next() {
            let _ = group.try_push(m);
            while it.peek().is_some_and(|(c, _)| *c == card) {
                if let Some((_, m)) = it.next() {
                    let _ = group.try_push(m);
                }
            }
            let n = group.len() as u64;
            let counters = &mut self.s.meters.counters;
            match self.s.cards.get(card).and_then(|c| c.underlay_port) {
                Some(port) => match self.s.tx.get_mut(port) {
                    Some(sink) => {
                        send_counted(sink, max_frame(&self.s.port_mtu, port), &mut group, counters);
                    }
                    None => counters.add_drops(DropReason::TxFull, n),
                },
                None => counters.add_drops(DropReason::NoRoute, n),
            }
            group.clear();
        }
    }

    /// Run card `card`'s underlay-in stages on `self.burst` and drain it.
    fn underlay_in(&mut self, card: usize) {
        let Some(sub) = self.s.subscribers.get_mut(card) else { return };
        let tables = sub.current();
        let info = &self.s.cards[card];
        self.stages.underlay_in(
            &mut self.burst,
            card,
            tables,
            info,
            &mut self.s.alerts,
            &self.s.pool,
            &mut self.spill,
            &self.clock,
            &mut self.s.meters,
        );
        self.drain();
        if !self.spill.is_empty() {
            self.flush_spill();
        }
    }

    fn rx_port(&mut self, port: usize, mb: &mut MbufBurst) {
        for m in mb.drain() {
            if m.is_whole() {
                let _ = self.burst.push(m);
                continue;
            }
            // Stages see one contiguous buffer: a frame that arrived chained (longer than a
            // small RX mbuf) is copied into one jumbo mbuf; a lone segment of a longer
            // packet is malformed.
            let copy = if m.segments() > 1 { m.linearized(&self.s.pool) } else { Err(Linearize::Inconsistent) };
            match copy {
                Ok(whole) => {
                    drop(m);
                    let _ = self.burst.push(whole);
                }
                Err(why) => {
                    if let Ok(i) = self.burst.push(m) {
                        let reason = match why {
                            Linearize::NoBuffer => DropReason::NoBuffer,
                            Linearize::TooLong => DropReason::MtuExceeded,
                            Linearize::Inconsistent => DropReason::Malformed,
                        };
                        self.burst.drop(i, reason);
                    }
                }
            }
        }
        let role = self.s.roles.get(port).copied().unwrap_or(Role::Fabric);
        let from = match role {
            Role::Instance => {
                let b = &self.s.bindings.ports[port];
                let (eni, card) = (b.eni.load(Ordering::Acquire), b.card.load(Ordering::Acquire));
                // A port whose instance is not registered (`UNBOUND`, an ENI no table holds)
                // or not on this card goes through the card's stages like any other: its
                // verify-send refuses what it sends (`spoofed_source`, with an alert naming
                // the card), the one rule for an ENI the card does not hold.
                let card = card as usize;
                match self.s.subscribers.get_mut(card) {
                    Some(sub) => {
                        let tables = sub.current();
                        let info = &self.s.cards[card];
                        self.stages.instance_in(
                            &mut self.burst,
                            port,
                            eni,
                            tables,
                            info,
                            &mut self.s.alerts,
                            &self.clock,
                            &mut self.s.meters,
                        );
                        Some(card)
                    }
                    None => None,
                }
            }
            Role::Underlay { card } => {
                self.underlay_in(card);
                Some(card)
            }
            Role::EdgeInternet { card } | Role::EdgeDx { card } | Role::EdgeServices { card } => {
                if let Some(sub) = self.s.subscribers.get_mut(card) {
                    let tables = sub.current();
                    let info = &self.s.cards[card];
                    self.stages.edge_outside_in(&mut self.burst, card, role, tables, info, &mut self.s.alerts, &self.clock, &mut self.s.meters);
                }
                Some(card)
            }
            Role::Fabric => {
                for i in self.burst.live_indices() {
                    self.burst.drop(i, DropReason::Unsupported);
                }
                None
            }
        };
        self.drain();
        if !self.spill.is_empty() {
            self.flush_spill();
        }
        if let Some(card) = from {
            self.cross_fabric(card);
        } else {
            let n = self.fabric.len() as u64;
            self.fabric.clear();
            self.s.meters.counters.add_drops(DropReason::NoRoute, n);
        }
    }
}

/// The worker's main loop. Returns 0 when stopped.
pub fn run<C: Clock>(mut setup: WorkerSetup, clock: C) -> i32 {
    let stages = CardStages::new(&setup.roles, &setup.port_mtu, &setup.cards, &mut setup.subscribers);
    let mut rx = std::mem::take(&mut setup.rx);
    let hz = crate::dpdk::eal::tsc_hz_now();
    let publish_every = (hz / 1000).max(1);
    let mut next_publish = rdtsc() + publish_every;
    let mut mb = MbufBurst::new();
    {
        let by_pa = CardsByPa::new(setup.cards.iter().map(|c| c.pa));
        let mut l = Loop { s: &mut setup, by_pa, stages, clock, burst: Burst::new(), fabric: ArrayVec::new(), spill: Spill::new() };
        while !l.s.stop.load(Ordering::Relaxed) {
            let generation = l.s.bindings.generation.load(Ordering::Acquire);
            l.stages.refresh(generation, &l.s.bindings.ports);
            for (port, src) in rx.iter_mut() {
                let n = match src {
                    RxSource::Eth(q) => q.rx_burst(&mut mb, RX_BURST),
                    RxSource::Soft(s) => s.rx_burst(&mut mb, RX_BURST),
                };
                if n > 0 {
                    l.rx_port(*port, &mut mb);
                }
            }
            for sub in l.s.subscribers.iter_mut() {
                sub.quiescent();
            }
            let now = rdtsc();
            if now >= next_publish {
                next_publish = now + publish_every;
                l.s.counters.publish(&l.s.meters.counters);
                l.s.meters.timing.maybe_ship(now);
            }
        }
        l.s.counters.publish(&l.s.meters.counters);
        l.s.meters.timing.ship();
    }
    drop(rx);
    // Give the meters back to the control core (the histograms not yet shipped).
    let WorkerSetup { meters, returned, subscribers, .. } = setup;
    drop(subscribers);
    if let Ok(mut r) = returned.lock() {
        r.push(meters);
    }
    0
}
