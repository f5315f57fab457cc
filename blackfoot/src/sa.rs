//! The edge's security associations: the outbound ones shared by every worker (atomic
//! sequence numbers, never reused), the inbound ones owned by the worker polling the
//! internet port (the anti-replay window is that worker's state).
//!
//! Both are built from the tables when the pipelines are made. The control socket has no
//! VPN commands, so the set of VPNs does not change while running; a VPN that appeared in
//! a later table version would have no SA here and its packets would be dropped
//! (`unknown_destination` out, `unknown_spi` in).

use mapping_client::{Tables, VpnId};

use crate::aead::RingAesGcm;
use crate::esp::{InboundSa, OutboundSa};

/// The outbound SAs of one edge, by VPN.
pub struct EdgeSas {
    out: Vec<(VpnId, OutboundSa<RingAesGcm>)>,
}

impl core::fmt::Debug for EdgeSas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EdgeSas").field("vpns", &self.out.len()).finish()
    }
}

impl EdgeSas {
    /// One outbound SA per VPN of the edge's tables.
    pub fn new(tables: &Tables) -> EdgeSas {
        let mut out: Vec<_> = tables
            .vpns()
            .filter_map(|v| {
                // A 16-byte key is always accepted; a refusal would leave the VPN without SA.
                let aead = RingAesGcm::new(&v.outbound.key).ok()?;
                Some((v.id, OutboundSa::new(&v.outbound, v.local, v.customer_gateway, aead)))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        EdgeSas { out }
    }

    /// The outbound SA of `vpn`.
    #[inline]
    pub fn outbound(&self, vpn: VpnId) -> Option<&OutboundSa<RingAesGcm>> {
        self.out.iter().find(|(id, _)| *id == vpn).map(|(_, sa)| sa)
    }
}

/// The inbound SAs of one edge, by SPI.
pub struct InboundSas {
    sas: Vec<(u32, InboundSa<RingAesGcm>)>,
}

impl core::fmt::Debug for InboundSas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundSas").field("sas", &self.sas.len()).finish()
    }
}

impl InboundSas {
    /// One inbound SA per VPN of the edge's tables.
    pub fn new(tables: &Tables) -> InboundSas {
        let sas = tables
            .vpns()
            .filter_map(|v| {
                let aead = RingAesGcm::new(&v.inbound.key).ok()?;
                Some((v.inbound.spi, InboundSa::new(&v.inbound, aead)))
            })
            .collect();
        InboundSas { sas }
    }

    /// The inbound SA with this SPI.
    #[inline]
    pub fn get_mut(&mut self, spi: u32) -> Option<&mut InboundSa<RingAesGcm>> {
        self.sas.iter_mut().find(|(s, _)| *s == spi).map(|(_, sa)| sa)
    }
}
