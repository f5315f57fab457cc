//! The stages each kind of port runs, per card: the seam between the runtime and the
//! sans-I/O pipeline crates (`nitro` for hosts, `blackfoot` for edges).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrayvec::ArrayVec;
use blackfoot::{EdgeOutputs, FromOutside, FromUnderlay, InboundSas, Side};
use mapping_client::rcu::Subscriber;
use mapping_client::tables::Tables;
use mapping_client::topology::{CardId, EniId};
use nitro::{EniPort, FromInstance, FromInstanceOutputs, FromUnderlay as NitroFromUnderlay};
use pipeline::{AlertProducer, Burst, CardCtx, CardKind, Clock, DropReason, Extra, Meters, Output};

use super::card::CardInfo;
use super::plan::{FABRIC, InstanceBinding, Role, UNBOUND, port_output};
use crate::dpdk::{Mbuf, Mempool};

/// Most packets the stages may make beyond a burst in one pass (fragments: a fabric burst
/// of 64 jumbo packets cut for a 1500-byte MTU makes 6 more each; ICMP answers: one per
/// packet). What does not fit is freed and counted `tx_full`.
pub const SPILL: usize = 512;

/// Packets made beyond a burst, waiting for the worker to send them after the burst.
pub type Spill = ArrayVec<(Mbuf, Output), SPILL>;

/// The worker's [`Extra`]: buffers from the worker's pool, sent packets kept in its spill
/// (a full spill frees the packet and counts it `tx_full`).
pub struct WorkerExtra<'a> {
    pub pool: &'a Mempool,
    pub spill: &'a mut Spill,
    pub lost: u64,
}

impl Extra<Mbuf> for WorkerExtra<'_> {
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }
    #[inline]
    fn send(&mut self, pkt: Mbuf, out: Output) {
        if self.spill.try_push((pkt, out)).is_err() {
            self.lost += 1;
        }
    }
}

/// What a stage call takes besides the burst: the card's tables and what the runtime holds
/// of it, and the worker's alert queue, pool, clock and meters.
pub struct Env<'a, C> {
    pub tables: &'a Tables,
    pub card: &'a CardInfo,
    pub alerts: &'a mut AlertProducer,
    pub pool: &'a Mempool,
    pub clock: &'a C,
    pub meters: &'a mut Meters,
    /// The TSC when the worker's loop began (the ICMP limit's clock).
    pub now: u64,
}

/// An edge's two pipelines in one worker.
struct EdgePipes {
    from_fabric: FromUnderlay,
    from_outside: FromOutside,
}

/// A worker's stage state: one egress pipeline per instance port (its ARP replies go
/// back out of that port), one ingress pipeline, and the ENI -> port table ingress
/// delivers with (the port's output and MTU), rebuilt when the control core rebinds
/// instance ports.
pub struct CardStages {
    egress: Vec<Option<FromInstance>>,
    ingress: Option<NitroFromUnderlay>,
    /// Per card index: the edge pipelines (`None` for hosts).
    edges: Vec<Option<EdgePipes>>,
    eni_ports: Vec<Option<EniPort>>,
    /// Per port index: its MTU (`None`: no limit known).
    port_mtu: Vec<Option<u16>>,
    bound_generation: u64,
}

impl CardStages {
    pub fn new(
        roles: &[Role],
        port_mtu: &[Option<u16>],
        cards: &[CardInfo],
        subscribers: &mut [Subscriber<Tables>],
    ) -> CardStages {
        let fabric = Output::new(FABRIC);
        let egress = roles
            .iter()
            .enumerate()
            .map(|(i, r)| match (r, port_output(i), fabric) {
                (Role::Instance, Some(reply), Some(underlay)) => Some(FromInstance::new(FromInstanceOutputs { reply, underlay })),
                _ => None,
            })
            .collect();
        let edges = cards
            .iter()
            .zip(subscribers.iter_mut())
            .map(|(c, sub)| match (c.id(), &c.sas, fabric) {
                (CardId::Edge(_), Some(sas), Some(fabric)) => {
                    let outputs = EdgeOutputs {
                        fabric,
                        internet: c.plan.ports.internet.and_then(port_output),
                        dx: c.plan.ports.dx.and_then(port_output),
                        services: c.plan.ports.services.and_then(port_output),
                    };
                    // The engine made these SAs once at start with this cipher; should the
                    // aesni-gcm refuse a key now, ring computes the same AES-GCM.
                    let inbound = InboundSas::with(sub.current(), c.cipher.factory())
                        .unwrap_or_else(|_| InboundSas::new(sub.current()));
                    Some(EdgePipes {
                        from_fabric: FromUnderlay::new(outputs, Arc::clone(sas)),
                        from_outside: FromOutside::new(outputs, inbound),
                    })
                }
                _ => None,
            })
            .collect();
        // Fragmentation-needed answers cross the fabric like any encapsulated packet (or
        // leave by the card's underlay port when the sender is not run here).
        let ingress = fabric.map(NitroFromUnderlay::new);
        CardStages {
            egress,
            ingress,
            edges,
            eni_ports: Vec::new(),
            port_mtu: port_mtu.to_vec(),
            bound_generation: u64::MAX,
        }
    }

    /// Rebuild the ENI -> port table if the bindings changed since the last burst.
    #[inline]
    pub fn refresh(&mut self, generation: u64, bindings: &[InstanceBinding]) {
        if generation == self.bound_generation {
            return;
        }
        self.bound_generation = generation;
        self.eni_ports.clear();
        for (i, b) in bindings.iter().enumerate() {
            let eni = b.eni.load(Ordering::Acquire);
            if eni == UNBOUND {
                continue;
            }
            let eni = eni as usize;
            if eni >= self.eni_ports.len() {
                // Control-core-driven, rare: only after a register/deregister/move.
                self.eni_ports.resize(eni + 1, None);
            }
            let mtu = self.port_mtu.get(i).copied().flatten().unwrap_or(u16::MAX);
            self.eni_ports[eni] = port_output(i).map(|out| EniPort { out, mtu });
        }
    }

    /// Packets from instance port `port` (ENI `eni`) on the card of `env`.
    #[inline]
    pub fn instance_in<C: Clock>(&mut self, burst: &mut Burst<Mbuf>, port: usize, eni: u32, env: Env<'_, C>) {
        let Env { tables, card, alerts, clock, meters, .. } = env;
        meters.kind = CardKind::Host;
        match self.egress.get_mut(port).and_then(Option::as_mut) {
            Some(egress) => {
                let mut ctx = CardCtx { tables, card: card.id(), alerts, icmp_limit: &card.icmp_limit, now: 0 };
                egress.process(burst, EniId(eni), &mut ctx, clock, meters);
            }
            None => drop_all(burst, DropReason::Unsupported),
        }
    }

    /// Packets from the fabric or the card's underlay port, for card `index` (that of
    /// `env`). The stages may make more packets (fragments, ICMP answers): they wait in
    /// `spill`.
    #[inline]
    pub fn underlay_in<C: Clock>(&mut self, burst: &mut Burst<Mbuf>, index: usize, env: Env<'_, C>, spill: &mut Spill) {
        let Env { tables, card, alerts, pool, clock, meters, now } = env;
        meters.kind = CardKind::of(card.id());
        match card.id() {
            CardId::Host(_) => {
                let Some(ingress) = self.ingress.as_mut() else {
                    return drop_all(burst, DropReason::Unsupported);
                };
                let mut ctx = CardCtx { tables, card: card.id(), alerts, icmp_limit: &card.icmp_limit, now };
                let mut extra = WorkerExtra { pool, spill, lost: 0 };
                ingress.process(burst, self.eni_ports.as_slice(), &mut ctx, &mut extra, clock, meters);
                if extra.lost != 0 {
                    meters.counters.add_drops(DropReason::TxFull, extra.lost);
                }
            }
            CardId::Edge(_) => match self.edges.get_mut(index).and_then(Option::as_mut) {
                Some(e) => {
                    let mut ctx = CardCtx { tables, card: card.id(), alerts, icmp_limit: &card.icmp_limit, now: 0 };
                    let mut extra = WorkerExtra { pool, spill, lost: 0 };
                    e.from_fabric.process(burst, &mut ctx, &mut extra, clock, meters);
                    let lost = extra.lost;
                    if lost != 0 {
                        meters.counters.add_drops(DropReason::TxFull, lost);
                    }
                }
                None => drop_all(burst, DropReason::Unsupported),
            },
        }
    }

    /// Packets from an edge's outside ports (internet, dx, services), for card `index`
    /// (that of `env`).
    pub fn edge_outside_in<C: Clock>(&mut self, burst: &mut Burst<Mbuf>, index: usize, role: Role, env: Env<'_, C>) {
        let Env { tables, card, alerts, clock, meters, .. } = env;
        let side = match role {
            Role::EdgeInternet { .. } => Side::Internet,
            Role::EdgeDx { .. } => Side::Dx,
            Role::EdgeServices { .. } => Side::Services,
            _ => return drop_all(burst, DropReason::Unsupported),
        };
        meters.kind = CardKind::Edge;
        match self.edges.get_mut(index).and_then(Option::as_mut) {
            Some(e) => {
                let mut ctx = CardCtx { tables, card: card.id(), alerts, icmp_limit: &card.icmp_limit, now: 0 };
                e.from_outside.process(side, burst, &mut ctx, clock, meters);
            }
            None => drop_all(burst, DropReason::Unsupported),
        }
    }
}

fn drop_all(burst: &mut Burst<Mbuf>, reason: DropReason) {
    for i in burst.live_indices() {
        burst.drop(i, reason);
    }
}
