//! The stages each kind of port runs, per card: the seam between the runtime and the
//! sans-I/O pipeline crates (`nitro` for hosts; edges come with `blackfoot`).

use mapping_client::tables::Tables;
use pipeline::{AlertProducer, Burst, Clock, DropReason, Meters};

use super::engine::{CardInfo, Role};
use crate::dpdk::Mbuf;

/// The per-worker stage state.
pub struct CardStages {}

impl CardStages {
    pub fn new(_roles: &[Role]) -> CardStages {
        CardStages {}
    }

    /// Packets from instance port `port` (ENI `eni`) on card `card`.
    #[allow(clippy::too_many_arguments)]
    pub fn instance_in<C: Clock>(
        &mut self,
        burst: &mut Burst<Mbuf>,
        _port: usize,
        _eni: u32,
        _tables: &Tables,
        _card: &CardInfo,
        _alerts: &mut AlertProducer,
        _clock: &C,
        _meters: &mut Meters,
    ) {
        for i in burst.live_indices() {
            burst.drop(i, DropReason::Unsupported);
        }
    }

    /// Packets from the fabric or the card's underlay port.
    pub fn underlay_in<C: Clock>(
        &mut self,
        burst: &mut Burst<Mbuf>,
        _tables: &Tables,
        _card: &CardInfo,
        _alerts: &mut AlertProducer,
        _clock: &C,
        _meters: &mut Meters,
    ) {
        for i in burst.live_indices() {
            burst.drop(i, DropReason::Unsupported);
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
        for i in burst.live_indices() {
            burst.drop(i, DropReason::Unsupported);
        }
    }
}
