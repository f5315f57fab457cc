//! Underlay in: verify-recv (parse, sender check, destination ENI), decap.

use std::net::Ipv4Addr;

use mapping_client::{EniId, Location, Tables};
use pipeline::{
    run_timed, Burst, Clock, DropReason, Meters, Output, Received, Stage, StageId, Verdict,
    MAX_BURST,
};
use wire::PacketBuf;

use crate::{slot, subnet_router_mac, NitroCtx};

const ETH_LEN: usize = 14;

/// Per-slot results of verify-recv for decap.
struct Scratch {
    /// Outer source PA, host order.
    src_pa: [u32; MAX_BURST],
    /// Geneve VNI (destination VPC) and source-VPC option.
    vni: [u32; MAX_BURST],
    source_vpc: [u32; MAX_BURST],
    /// Where the inner packet starts and how long it is.
    inner_offset: [u16; MAX_BURST],
    inner_len: [u16; MAX_BURST],
    /// The burst's lookups: the distinct keys, (source VPC, inner source) and (VNI, inner
    /// destination) of every parsed packet (a key equal to the previous packet's same key
    /// shares its lookup), and their answers; per slot, its two keys; the parsed slots.
    keys: [(u32, Ipv4Addr); 2 * MAX_BURST],
    locs: [Option<Location>; 2 * MAX_BURST],
    src_key: [u8; MAX_BURST],
    dst_key: [u8; MAX_BURST],
    parsed: [u8; MAX_BURST],
    /// The Ethernet addresses decap writes (destination, source) and the ENI's output.
    eth: [[u8; 12]; MAX_BURST],
    out: [Option<Output>; MAX_BURST],
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            src_pa: [0; MAX_BURST],
            vni: [0; MAX_BURST],
            source_vpc: [0; MAX_BURST],
            inner_offset: [0; MAX_BURST],
            inner_len: [0; MAX_BURST],
            keys: [(0, Ipv4Addr::UNSPECIFIED); 2 * MAX_BURST],
            locs: [None; 2 * MAX_BURST],
            src_key: [0; MAX_BURST],
            dst_key: [0; MAX_BURST],
            parsed: [0; MAX_BURST],
            eth: [[0; 12]; MAX_BURST],
            out: [None; MAX_BURST],
        }
    }
}

/// Where the instance port of each local ENI is: the runtime's small table, consulted
/// once per delivered packet (after the mapping has placed the destination on this card).
///
/// Implemented for a slice or `Vec` indexed by [`EniId`]`.0` (`None`, or an index past
/// the end: no port) and for any `Fn(EniId) -> Option<Output>`.
pub trait EniPorts {
    /// The output of `eni`'s instance port, if it has one in this process.
    fn port(&self, eni: EniId) -> Option<Output>;
}

impl EniPorts for [Option<Output>] {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<Output> {
        self.get(eni.0 as usize).copied().flatten()
    }
}

impl EniPorts for Vec<Option<Output>> {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<Output> {
        self.as_slice().port(eni)
    }
}

impl<F: Fn(EniId) -> Option<Output>> EniPorts for F {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<Output> {
        self(eni)
    }
}

/// The context the ingress stages share for one burst.
pub(crate) struct IngressCtx<'c, 't, P: ?Sized> {
    nitro: &'c mut NitroCtx<'t>,
    ports: &'c P,
    s: &'c mut Scratch,
}

/// The underlay-side pipeline of one worker: owns its stages and their scratch. Build one
/// per worker and reuse it for every burst.
pub struct Ingress {
    verify: VerifyRecv,
    decap: Decap,
    scratch: Box<Scratch>,
}

impl core::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ingress").finish_non_exhaustive()
    }
}

impl Default for Ingress {
    fn default() -> Self {
        Self::new()
    }
}

impl Ingress {
    /// The pipeline.
    pub fn new() -> Self {
        Ingress {
            verify: VerifyRecv,
            decap: Decap,
            scratch: Box::new(Scratch::new()),
        }
    }

    /// Run verify-recv and decap over a burst of underlay frames. `eni_ports` says which
    /// output the instance port of a local ENI is ([`EniPorts`]: e.g. a
    /// `[Option<Output>]` indexed by [`EniId`]`.0`). Every packet leaves decided:
    /// forwarded to its ENI's port or dropped with its reason.
    #[inline]
    pub fn process<B: PacketBuf, C: Clock, P: EniPorts + ?Sized>(
        &mut self,
        burst: &mut Burst<B>,
        eni_ports: &P,
        ctx: &mut NitroCtx<'_>,
        clock: &C,
        meters: &mut Meters,
    ) {
        if burst.live_mask() == 0 {
            return;
        }
        let mut cx = IngressCtx {
            nitro: ctx,
            ports: eni_ports,
            s: &mut self.scratch,
        };
        run_timed(&mut self.verify, burst, &mut cx, clock, meters);
        run_timed(&mut self.decap, burst, &mut cx, clock, meters);
    }
}

// ----- verify-recv -----

/// The index of `key` in `keys`: the previous one of its kind (`last`) when equal, else a
/// new entry.
#[inline(always)]
fn key_index(
    keys: &mut [(u32, Ipv4Addr); 2 * MAX_BURST],
    n: &mut usize,
    last: &mut Option<((u32, Ipv4Addr), u8)>,
    key: (u32, Ipv4Addr),
) -> u8 {
    if let Some((k, index)) = *last {
        if k == key {
            return index;
        }
    }
    let index = (*n & (2 * MAX_BURST - 1)) as u8;
    keys[usize::from(index)] = key;
    *last = Some((key, index));
    *n += 1;
    index
}

/// `verify-recv`: the front end both cards share ([`pipeline::underlay::receive`]: outer
/// header, this card's PA, inner IPv4 header, VPC MTU), then one burst lookup of every
/// source and destination, then the sender, VPC and destination checks.
struct VerifyRecv;

impl<'c, 't, P: EniPorts + ?Sized> Stage<IngressCtx<'c, 't, P>> for VerifyRecv {
    const ID: StageId = StageId::VerifyRecv;

    #[inline]
    fn process<B: PacketBuf>(&mut self, burst: &mut Burst<B>, cx: &mut IngressCtx<'c, 't, P>) {
        let tables: &'t Tables = cx.nitro.tables;
        let pa = tables.pa();
        let s = &mut *cx.s;

        // Parse every frame and gather its two keys.
        let (mut n, mut ok) = (0usize, 0usize);
        let (mut last_src, mut last_dst) = (None, None);
        for i in burst.live_indices() {
            let parsed = match burst.get(i) {
                Some(p) => pipeline::underlay::receive(p.data(), pa),
                None => Err(DropReason::Malformed),
            };
            match parsed {
                Ok(Received { outer: o, src, dst }) => {
                    let j = slot(i);
                    s.src_pa[j] = u32::from(o.src_pa);
                    s.vni[j] = o.vni;
                    s.source_vpc[j] = o.source_vpc;
                    // Options are at most 252 bytes and the inner length at most the VPC MTU.
                    s.inner_offset[j] = o.inner_offset as u16;
                    s.inner_len[j] = o.inner_len as u16;
                    s.src_key[j] =
                        key_index(&mut s.keys, &mut n, &mut last_src, (o.source_vpc, src));
                    s.dst_key[j] = key_index(&mut s.keys, &mut n, &mut last_dst, (o.vni, dst));
                    s.parsed[slot(ok)] = j as u8;
                    ok += 1;
                }
                Err(reason) => {
                    burst.drop(i, reason);
                }
            }
        }
        if n == 0 {
            return;
        }
        let n = n.min(2 * MAX_BURST);
        tables.lookup_burst(&s.keys[..n], &mut s.locs[..n]);

        // The last peering answer, reused within the burst.
        let mut peered: (u32, u32, bool) = (0, 0, false);
        for &j in s.parsed.iter().take(ok) {
            let (i, j) = (usize::from(j), slot(usize::from(j)));
            let sk = usize::from(s.src_key[j]) & (2 * MAX_BURST - 1);
            let dk = usize::from(s.dst_key[j]) & (2 * MAX_BURST - 1);
            let ((source_vpc, src), src_loc) = (s.keys[sk], s.locs[sk]);
            let ((vni, dst), dst_loc) = (s.keys[dk], s.locs[dk]);
            let src_pa = s.src_pa[j];

            let by_mapping = matches!(src_loc, Some(l) if u32::from(l.pa) == src_pa);
            let sender_ok = by_mapping || tables.edge_serves(Ipv4Addr::from(src_pa), source_vpc);
            let vpc_ok = vni == source_vpc || {
                if (peered.0, peered.1) != (vni, source_vpc) {
                    peered = (vni, source_vpc, tables.peered(vni, source_vpc));
                }
                peered.2
            };
            let dst_here = dst_loc.filter(|l| l.pa == pa);
            if !(sender_ok && vpc_ok) {
                let reason = DropReason::UnknownSender;
                let peer_vni = (vni != source_vpc).then_some(vni);
                let eni = dst_here.map(|l| l.eni.0);
                cx.nitro.alert(
                    reason,
                    StageId::VerifyRecv,
                    eni,
                    source_vpc,
                    peer_vni,
                    src,
                    dst,
                );
                burst.drop(i, reason);
                continue;
            }
            let Some(dl) = dst_here else {
                burst.drop(i, DropReason::UnknownDestination);
                continue;
            };
            // Mapped to this card's PA: a local ENI (the tables contract: a card's
            // mapping names its own PA exactly for the ENIs in its local table, in every
            // version, deltas included), so the runtime's port table is the last word.
            let Some(out) = cx.ports.port(dl.eni) else {
                burst.drop(i, DropReason::UnknownDestination);
                continue;
            };
            let src_mac = match src_loc {
                Some(l) if by_mapping && l.subnet == dl.subnet => l.mac.0,
                _ => subnet_router_mac(dl.subnet).0,
            };
            let eth = &mut s.eth[j];
            eth[..6].copy_from_slice(&dl.mac.0);
            eth[6..].copy_from_slice(&src_mac);
            s.out[j] = Some(out);
        }
    }
}

// ----- decap -----

/// `decap`: outer header off, the instance's Ethernet header on.
struct Decap;

impl<'c, 't, P: ?Sized> Stage<IngressCtx<'c, 't, P>> for Decap {
    const ID: StageId = StageId::Decap;

    #[inline]
    fn process<B: PacketBuf>(&mut self, burst: &mut Burst<B>, cx: &mut IngressCtx<'c, 't, P>) {
        let s = &*cx.s;
        burst.for_each_live(|i, p| {
            let j = slot(i);
            let Some(out) = s.out[j] else {
                return Some(Verdict::Drop(DropReason::UnknownDestination));
            };
            let (offset, len) = (usize::from(s.inner_offset[j]), usize::from(s.inner_len[j]));
            Some(match decapsulate(p, offset, len, &s.eth[j]) {
                Ok(()) => Verdict::Forward(out),
                Err(reason) => Verdict::Drop(reason),
            })
        });
    }
}

/// Remove the outer header and any padding, write Ethernet (`eth`: destination, source).
#[inline(always)]
fn decapsulate<B: PacketBuf>(
    p: &mut B,
    offset: usize,
    len: usize,
    eth: &[u8; 12],
) -> Result<(), DropReason> {
    let padding = p.len().saturating_sub(offset + len);
    p.trim(padding).map_err(|_| DropReason::Malformed)?;
    let strip = offset.checked_sub(ETH_LEN).ok_or(DropReason::Malformed)?;
    p.adj(strip).map_err(|_| DropReason::Malformed)?;
    let head = p
        .data_mut()
        .get_mut(..ETH_LEN)
        .ok_or(DropReason::Malformed)?;
    head[..12].copy_from_slice(eth);
    head[12..].copy_from_slice(&[0x08, 0x00]);
    Ok(())
}
