//! The stages each kind of port runs, per card: the seam between the runtime and the
//! sans-I/O pipeline crates (`nitro` for hosts; edges come with `blackfoot`).

use std::sync::atomic::Ordering;

use mapping_client::tables::Tables;
use mapping_client::topology::EniId;
use nitro::{Egress, EgressOutputs, Ingress, NitroCtx};
use pipeline::{AlertProducer, Burst, Clock, DropReason, Meters, Output};

use super::engine::{CardInfo, FABRIC, InstanceBinding, Role, UNBOUND, port_output};
use crate::dpdk::Mbuf;

/// A worker's stage state: one egress pipeline per instance port (its ARP replies go
/// back out of that port), one ingress pipeline, and the ENI -> port table ingress
/// delivers with, rebuilt when the control core rebinds instance ports.
pub struct CardStages {
    egress: Vec<Option<Egress>>,
    ingress: Ingress,
    eni_ports: Vec<Option<Output>>,
    bound_generation: u64,
}

impl CardStages {
    pub fn new(roles: &[Role]) -> CardStages {
        let fabric = Output::new(FABRIC);
        let egress = roles
            .iter()
            .enumerate()
            .map(|(i, r)| match (r, port_output(i), fabric) {
                (Role::Instance, Some(reply), Some(underlay)) => Some(Egress::new(EgressOutputs { reply, underlay })),
                _ => None,
            })
            .collect();
        CardStages { egress, ingress: Ingress::new(), eni_ports: Vec::new(), bound_generation: u64::MAX }
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
            self.eni_ports[eni] = port_output(i);
        }
    }

    /// Packets from instance port `port` (ENI `eni`) on card `card`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn instance_in<C: Clock>(
        &mut self,
        burst: &mut Burst<Mbuf>,
        port: usize,
        eni: u32,
        tables: &Tables,
        card: &CardInfo,
        alerts: &mut AlertProducer,
        clock: &C,
        meters: &mut Meters,
    ) {
        match self.egress.get_mut(port).and_then(Option::as_mut) {
            Some(egress) => {
                let mut ctx = NitroCtx { tables, card: card.alert_id, alerts };
                egress.process(burst, EniId(eni), &mut ctx, clock, meters);
            }
            None => drop_all(burst, DropReason::Unsupported),
        }
    }

    /// Packets from the fabric or the card's underlay port.
    #[inline]
    pub fn underlay_in<C: Clock>(
        &mut self,
        burst: &mut Burst<Mbuf>,
        tables: &Tables,
        card: &CardInfo,
        alerts: &mut AlertProducer,
        clock: &C,
        meters: &mut Meters,
    ) {
        match card.id {
            mapping_client::topology::CardId::Host(_) => {
                let mut ctx = NitroCtx { tables, card: card.alert_id, alerts };
                self.ingress.process(burst, self.eni_ports.as_slice(), &mut ctx, clock, meters);
            }
            // Blackfoot's stages are not built yet: an edge takes nothing in.
            mapping_client::topology::CardId::Edge(_) => drop_all(burst, DropReason::Unsupported),
        }
    }

    /// Packets from an edge's outside ports (internet, dx, services).
    #[allow(clippy::too_many_arguments)]
    pub fn edge_outside_in<C: Clock>(
        &mut self,
        burst: &mut Burst<Mbuf>,
        _role: Role,
        _tables: &Tables,
        _card: &CardInfo,
        _alerts: &mut AlertProducer,
        _clock: &C,
        _meters: &mut Meters,
    ) {
        drop_all(burst, DropReason::Unsupported);
    }
}

fn drop_all(burst: &mut Burst<Mbuf>, reason: DropReason) {
    for i in burst.live_indices() {
        burst.drop(i, reason);
    }
}
