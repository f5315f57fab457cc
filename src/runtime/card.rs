//! One card as the workers see it: its plan (name, PA, ports) and what the control core
//! made for it at start (SAs, ICMP rate limit).

use std::sync::Arc;

use mapping_client::topology::CardId;

use super::cipher::Cipher;
use super::plan::CardPlan;

/// One card as the runtime sees it.
#[derive(Debug, Clone)]
pub struct CardInfo {
    /// Which card, its name, PA and ports (alerts name the card by `plan.id`).
    pub plan: CardPlan,
    /// An edge's outbound SAs, shared by every worker (sequence numbers never reused).
    pub sas: Option<Arc<blackfoot::EdgeSas>>,
    /// The AES-GCM implementation of the edge's SAs (inbound ones are made per worker).
    pub cipher: Cipher,
    /// The card's limit on the ICMP errors it sends, shared by every worker (TSC ticks).
    pub icmp_limit: Arc<pipeline::RateLimit>,
}

impl CardInfo {
    /// The card of `plan`, without SAs yet, its ICMP limit counted in ticks of `tsc_hz`.
    pub fn new(plan: &CardPlan, tsc_hz: u64) -> CardInfo {
        CardInfo {
            plan: plan.clone(),
            sas: None,
            cipher: Cipher::Ring,
            icmp_limit: Arc::new(pipeline::RateLimit::new(nitro::ICMP_RATE_PER_SEC, nitro::ICMP_BURST, tsc_hz)),
        }
    }

    /// The card's id.
    pub fn id(&self) -> CardId {
        self.plan.id
    }
}
