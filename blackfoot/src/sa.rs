//! The edge's security associations: the outbound ones shared by every worker (atomic
//! sequence numbers, never reused), the inbound ones owned by the worker polling the
//! internet port (the anti-replay window is that worker's state).
//!
//! Both are built from the tables when the pipelines are made. The control socket has no
//! VPN commands, so the set of VPNs does not change while running; a VPN that appeared in
//! a later table version would have no SA here and its packets would be dropped
//! (`unknown_destination` out, `unknown_spi` in).

use mapping_client::{Tables, VpnId};

use crate::aead::{Aead, AeadFactory, KeyError, RingFactory};
use crate::esp::{InboundSa, OutboundSa};

/// The outbound SAs of one edge, by VPN.
pub struct EdgeSas {
    out: Vec<(VpnId, OutboundSa<Box<dyn Aead>>)>,
}

impl core::fmt::Debug for EdgeSas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EdgeSas").field("vpns", &self.out.len()).finish()
    }
}

impl EdgeSas {
    /// One outbound SA per VPN of the edge's tables, with ring's AES-GCM.
    pub fn new(tables: &Tables) -> EdgeSas {
        // ring accepts every 16-byte key: the empty fallback is never taken.
        EdgeSas::with(tables, &RingFactory).unwrap_or(EdgeSas { out: Vec::new() })
    }

    /// One outbound SA per VPN of the edge's tables, with the ciphers `aead` makes.
    ///
    /// # Errors
    /// The factory refused a key (for DPDK's cryptodev: no session could be made).
    pub fn with(tables: &Tables, aead: &dyn AeadFactory) -> Result<EdgeSas, KeyError> {
        let mut out = tables
            .vpns()
            .map(|v| {
                let cipher = aead.make(&v.outbound.key)?;
                Ok((v.id, OutboundSa::new(&v.outbound, v.local, v.customer_gateway, cipher)))
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        out.sort_by_key(|(id, _)| *id);
        Ok(EdgeSas { out })
    }

    /// The outbound SA of `vpn`.
    #[inline]
    pub fn outbound(&self, vpn: VpnId) -> Option<&OutboundSa<Box<dyn Aead>>> {
        self.out.iter().find(|(id, _)| *id == vpn).map(|(_, sa)| sa)
    }
}

/// The inbound SAs of one edge, by SPI.
pub struct InboundSas {
    sas: Vec<(u32, InboundSa<Box<dyn Aead>>)>,
}

impl core::fmt::Debug for InboundSas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundSas").field("sas", &self.sas.len()).finish()
    }
}

impl InboundSas {
    /// One inbound SA per VPN of the edge's tables, with ring's AES-GCM.
    pub fn new(tables: &Tables) -> InboundSas {
        // ring accepts every 16-byte key: the empty fallback is never taken.
        InboundSas::with(tables, &RingFactory).unwrap_or(InboundSas { sas: Vec::new() })
    }

    /// One inbound SA per VPN of the edge's tables, with the ciphers `aead` makes.
    ///
    /// # Errors
    /// The factory refused a key.
    pub fn with(tables: &Tables, aead: &dyn AeadFactory) -> Result<InboundSas, KeyError> {
        let sas = tables
            .vpns()
            .map(|v| Ok((v.inbound.spi, InboundSa::new(&v.inbound, aead.make(&v.inbound.key)?))))
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(InboundSas { sas })
    }

    /// The inbound SA with this SPI.
    #[inline]
    pub fn get_mut(&mut self, spi: u32) -> Option<&mut InboundSa<Box<dyn Aead>>> {
        self.sas.iter_mut().find(|(s, _)| *s == spi).map(|(_, sa)| sa)
    }
}
