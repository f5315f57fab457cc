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
use pipeline::{AlertProducer, Burst, Clock, DropReason, Meters, Output, PublishedCounters, Verdict, MAX_BURST};
use wire::PacketBuf;

use super::card::CardInfo;
use super::fabric::{Ports, Switch, TxSink, max_frame, send_counted};
use super::plan::{Bindings, FABRIC, Role};
use super::softport::SoftPort;
use super::stages::{CardStages, Env, Spill};
use super::trash::{TrashBin, keep_dropped};
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
pub enum PortSink {
    Eth(dpdk::TxQueue),
    Soft(Arc<SoftPort>),
    None,
}

impl TxSink<Mbuf> for PortSink {
    /// Send a pipeline output group; what the sink does not take stays in `pkts`.
    #[inline]
    fn send(&mut self, pkts: &mut ArrayVec<Mbuf, MAX_BURST>) {
        match self {
            PortSink::Eth(q) => {
                q.tx_vec(pkts);
            }
            PortSink::Soft(s) => {
                let mut kept = ArrayVec::<Mbuf, MAX_BURST>::new();
                for m in pkts.drain(..) {
                    if let Err(m) = s.tx(m) {
                        let _ = kept.try_push(m);
                    }
                }
                *pkts = kept;
            }
            PortSink::None => {}
        }
    }
}

/// Everything a worker owns, handed over at launch.
pub struct WorkerSetup {
    pub rx: Vec<(usize, RxSource)>,
    pub tx: Vec<PortSink>,
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
    /// The trash can (`--trash`): dropped packets are copied into it before they are freed.
    pub trash: Option<Arc<TrashBin>>,
}

/// A copy of `m` from the pool (for the fabric capture), if an mbuf is free.
fn copy_of(pool: &Mempool, m: &Mbuf) -> Option<Mbuf> {
    let mut c = pool.alloc()?;
    c.append(m.len()).ok()?.copy_from_slice(m.data());
    Some(c)
}

/// The stages' environment for card `card` of the worker, if it has that card.
fn env<'a, C>(s: &'a mut WorkerSetup, clock: &'a C, now: u64, card: usize) -> Option<Env<'a, C>> {
    let tables = s.subscribers.get_mut(card)?.current();
    let card = s.cards.get(card)?;
    Some(Env { tables, card, alerts: &mut s.alerts, pool: &s.pool, clock, meters: &mut s.meters, now })
}

struct Loop<'a, C: Clock> {
    s: &'a mut WorkerSetup,
    /// The fabric's switch (`s.cards` by PA, their underlay ports, the capture port).
    switch: Switch,
    stages: CardStages,
    clock: C,
    burst: Burst<Mbuf>,
    fabric: ArrayVec<Mbuf, MAX_BURST>,
    /// Packets the edge stages made beyond a burst (fragments), sent after it.
    spill: Spill,
    /// Where the burst came in (port index, or the number of ports for the fabric) and the
    /// card it is on, for the trash can.
    from: (u16, u16),
    /// The TSC when this loop began (the stages' `now`: one read per loop, not per burst).
    now: u64,
}

impl<C: Clock> Loop<'_, C> {
    /// Drain `burst` to the outputs; fabric-bound packets are kept in `self.fabric`. A
    /// packet longer than its port takes is dropped `mtu_exceeded`.
    fn drain(&mut self) {
        // Nothing to send (the burst a card's stages already drained): no pass, and no
        // empty burst counted.
        if self.burst.is_empty() {
            return;
        }
        let Loop { s, burst, fabric, from, .. } = self;
        let (tx, port_mtu, trash) = (&mut s.tx, &s.port_mtu, s.trash.as_deref());
        if let Some(bin) = trash {
            keep_dropped(bin, burst, from.0, from.1);
        }
        burst.drain_grouped_within(
            &mut s.meters.counters,
            |out| max_frame(port_mtu, out.index()),
            |out, pkts| {
                if out.index() == FABRIC {
                    if fabric.is_empty() {
                        // The whole group at once (left empty: nothing refused).
                        core::mem::swap(fabric, pkts);
                    } else {
                        for m in pkts.drain(..) {
                            // Cannot overflow: one burst's packets at most.
                            let _ = fabric.try_push(m);
                        }
                    }
                } else if let Some(sink) = tx.get_mut(out.index()) {
                    sink.send(pkts);
                }
            },
            |m, verdict| {
                // Dropped at drain (too long for its port, refused by the device).
                if let (Some(bin), Verdict::Drop(reason)) = (trash, verdict) {
                    bin.offer(from.0, from.1, reason, None, m.data(), rdtsc());
                }
                drop(m)
            },
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
            let pool = &self.s.pool;
            let mut by_card = self.switch.hop(
                &mut self.fabric,
                from,
                Ports { tx: &mut self.s.tx, mtu: &self.s.port_mtu },
                |m| copy_of(pool, m),
                &mut self.s.meters.counters,
            );
            // Drained in place: `into_iter` would move the whole 1 KiB vector (a `memcpy`
            // a burst, the usual empty one included).
            let mut it = by_card.drain(..).peekable();
            while let Some((card, m)) = it.next() {
                let _ = self.burst.push(m);
                while it.peek().is_some_and(|(c, _)| *c == card) {
                    if let Some((_, m)) = it.next() {
                        let _ = self.burst.push(m);
                    }
                }
                self.from.0 = self.s.tx.len() as u16;
                self.underlay_in(card);
                from = card;
            }
        }
    }

    /// Run card `card`'s underlay-in stages on `self.burst` and drain it.
    fn underlay_in(&mut self, card: usize) {
        self.from.1 = card as u16;
        let Some(env) = env(self.s, &self.clock, self.now, card) else { return };
        self.stages.underlay_in(&mut self.burst, card, env, &mut self.spill);
        self.drain();
        if !self.spill.is_empty() {
            self.flush_spill();
        }
    }

    fn rx_port(&mut self, port: usize, mb: &mut MbufBurst) {
        self.from = (port as u16, u16::MAX);
        // Whether this burst's stages are timed (all of them, across the fabric too).
        self.clock.begin_burst(self.now);
        // The common case, every frame in one segment: all of them in at once (the burst
        // is empty here and holds as many as an RX burst).
        if mb.as_slice().iter().all(Mbuf::is_whole) {
            let mut it = mb.drain();
            self.burst.push_all(&mut it);
            // None is left (the burst holds as many as an RX burst); one that were would be
            // freed and counted.
            for m in it {
                drop(m);
                self.s.meters.counters.add_drops(DropReason::NoBuffer, 1);
            }
        }
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
                env(self.s, &self.clock, self.now, card).map(|env| {
                    self.stages.instance_in(&mut self.burst, port, eni, env);
                    card
                })
            }
            Role::Underlay { card } => {
                self.underlay_in(card);
                Some(card)
            }
            Role::EdgeInternet { card } | Role::EdgeDx { card } | Role::EdgeServices { card } => {
                if let Some(env) = env(self.s, &self.clock, self.now, card) {
                    self.stages.edge_outside_in(&mut self.burst, card, role, env);
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
        if let Some(card) = from {
            self.from.1 = card as u16;
        }
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
        let switch = Switch::new(setup.cards.iter().map(|c| (c.plan.pa, c.plan.ports.underlay)), setup.fabric_capture);
        let mut l = Loop { s: &mut setup, switch, stages, clock, burst: Burst::new(), fabric: ArrayVec::new(), spill: Spill::new(), from: (0, u16::MAX), now: rdtsc() };
        while !l.s.stop.load(Ordering::Relaxed) {
            // One TSC read per loop: the stages' `now` and the publication schedule.
            let now = rdtsc();
            l.now = now;
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
