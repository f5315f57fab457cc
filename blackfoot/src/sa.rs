//! The edge's security associations: the outbound ones shared by every worker (atomic
//! sequence numbers, never reused), the inbound ones owned by the worker polling the
//! internet port (the anti-replay window is that worker's state).
//!
//! Both are built from the tables when the pipelines are made, hashed by VPN and by SPI:
//! finding a packet's SA costs one probe, whatever the number of VPNs on the edge. The
//! control socket has no VPN commands, so the set of VPNs does not change while running; a
//! VPN that appeared in a later table version would have no SA here and its packets would
//! be dropped (`unknown_destination` out, `unknown_spi` in).

use hashbrown::HashMap;
use mapping_client::{Tables, VpnId};

use crate::aead::{Aead, AeadFactory, KeyError, RingFactory};
use crate::esp::{InboundSa, OutboundSa};

/// The outbound SAs of one edge, by VPN.
pub struct EdgeSas {
    out: HashMap<VpnId, OutboundSa<Box<dyn Aead>>>,
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
        EdgeSas::with(tables, &RingFactory).unwrap_or(EdgeSas { out: HashMap::new() })
    }

    /// One outbound SA per VPN of the edge's tables, with the ciphers `aead` makes.
    ///
    /// # Errors
    /// The factory refused a key (for DPDK's aesni-gcm: its library did not start).
    pub fn with(tables: &Tables, aead: &dyn AeadFactory) -> Result<EdgeSas, KeyError> {
        let out = tables
            .vpns()
            .map(|v| {
                let cipher = aead.make(&v.outbound.key)?;
                Ok((v.id, OutboundSa::new(&v.outbound, v.local, v.customer_gateway, cipher)))
            })
            .collect::<Result<HashMap<_, _>, KeyError>>()?;
        Ok(EdgeSas { out })
    }

    /// The outbound SA of `vpn`.
    #[inline]
    pub fn outbound(&self, vpn: VpnId) -> Option<&OutboundSa<Box<dyn Aead>>> {
        self.out.get(&vpn)
    }
}

/// The inbound SAs of one edge, by SPI.
pub struct InboundSas {
    sas: HashMap<u32, InboundSa<Box<dyn Aead>>>,
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
        InboundSas::with(tables, &RingFactory).unwrap_or(InboundSas { sas: HashMap::new() })
    }

    /// One inbound SA per VPN of the edge's tables, with the ciphers `aead` makes.
    ///
    /// # Errors
    /// The factory refused a key.
    pub fn with(tables: &Tables, aead: &dyn AeadFactory) -> Result<InboundSas, KeyError> {
        let sas = tables
            .vpns()
            .map(|v| Ok((v.inbound.spi, InboundSa::new(&v.inbound, aead.make(&v.inbound.key)?))))
            .collect::<Result<HashMap<_, _>, KeyError>>()?;
        Ok(InboundSas { sas })
    }

    /// The inbound SA with this SPI, to read.
    #[inline]
    pub fn get(&self, spi: u32) -> Option<&InboundSa<Box<dyn Aead>>> {
        self.sas.get(&spi)
    }

    /// The inbound SA with this SPI.
    #[inline]
    pub fn get_mut(&mut self, spi: u32) -> Option<&mut InboundSa<Box<dyn Aead>>> {
        self.sas.get_mut(&spi)
    }
}
