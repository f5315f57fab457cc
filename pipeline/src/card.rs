//! What a card's stages get from the worker for one burst, the same on a Nitro card and a
//! Blackfoot edge: [`CardCtx`], and its alert helper.

use std::net::Ipv4Addr;

use crate::alert::{AlertEvent, AlertProducer, CardId};
use crate::drop::DropReason;
use crate::ratelimit::RateLimit;
use crate::stage_id::StageId;

/// What the stages of a card need from the worker for one burst. `T` is the card's tables
/// (`mapping_client::Tables` in the cards; `pipeline` does not know the type).
pub struct CardCtx<'a, T: ?Sized> {
    /// The card's current tables version (taken once per burst from the RCU subscriber).
    pub tables: &'a T,
    /// This card, as alerts name it.
    pub card: CardId,
    /// The worker's alert queue.
    pub alerts: &'a mut AlertProducer,
    /// The card's limit on the ICMP errors it sends (fragmentation-needed), shared by
    /// every worker that runs the card's stages. (A Nitro card's decap checks it; the edge
    /// does not limit its answers today.)
    pub icmp_limit: &'a RateLimit,
    /// Now, in ticks of `icmp_limit`'s clock (the TSC in the runtime).
    pub now: u64,
}

impl<T: ?Sized> core::fmt::Debug for CardCtx<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CardCtx").field("card", &self.card).field("now", &self.now).finish_non_exhaustive()
    }
}

impl<T: ?Sized> CardCtx<'_, T> {
    /// Raise a security alert from this card: `eni` the ENI involved when known, `vni` the
    /// VPC the packet came from (or claimed to), `peer_vni` the other VPC involved, `src`
    /// and `dst` the inner addresses (a push into a bounded lock-free queue; lost
    /// when full).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn alert(
        &mut self,
        reason: DropReason,
        stage: StageId,
        eni: Option<u32>,
        vni: u32,
        peer_vni: Option<u32>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        let card = self.card;
        self.alerts.raise(AlertEvent { reason, stage, card, eni, vni, peer_vni, src, dst });
    }
}
