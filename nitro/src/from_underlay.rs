//! From the underlay ([`FromUnderlay`]): verify-recv (parse, sender check, destination ENI and its port's MTU),
//! decap (with fragmentation or fragmentation-needed for a port that carries less).

use std::net::Ipv4Addr;

use mapping_client::{EniId, Home, Tables};
use pipeline::prefetch::prefetch_ends;
use pipeline::frag::{fragment_out, FragNeeded};
use pipeline::{
    drop_row, run_timed_chained, slot, Burst, CardCtx, Clock, DropReason, DropTable, Extra, Meters,
    Output, Received, Stage, StageId, MAX_BURST,
};
use wire::vpc::{self, card_mac, subnet_router_mac, Encap, UNDERLAY_ROUTER_MAC, VPC_MTU};
use wire::PacketBuf;

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
    /// Inner source and destination.
    src: [Ipv4Addr; MAX_BURST],
    dst: [Ipv4Addr; MAX_BURST],
    /// Per slot, its two lookups, (source VPC, inner source) and (VNI, inner destination),
    /// each hashed into its home in the mapping table as soon as it is parsed and its slot
    /// prefetched (the cache misses overlap the parsing of the next packets), then probed
    /// in the second pass.
    src_home: [Home; MAX_BURST],
    dst_home: [Home; MAX_BURST],
    /// The Ethernet addresses decap writes (destination, source) and the ENI's output.
    eth: [[u8; 12]; MAX_BURST],
    out: [Option<Output>; MAX_BURST],
    /// Slots whose inner packet is longer than their port's MTU, and that MTU.
    big: u64,
    mtu: [u16; MAX_BURST],
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            src_pa: [0; MAX_BURST], vni: [0; MAX_BURST], source_vpc: [0; MAX_BURST],
            inner_offset: [0; MAX_BURST], inner_len: [0; MAX_BURST],
            src: [Ipv4Addr::UNSPECIFIED; MAX_BURST], dst: [Ipv4Addr::UNSPECIFIED; MAX_BURST],
            src_home: [Home::default(); MAX_BURST], dst_home: [Home::default(); MAX_BURST],
            eth: [[0; 12]; MAX_BURST], out: [None; MAX_BURST], big: 0, mtu: [0; MAX_BURST],
        }
    }
}

/// A local ENI's instance port as ingress sees it: where its packets go, and the largest
/// IPv4 packet (without Ethernet) the port carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EniPort {
    /// The port's output.
    pub out: Output,
    /// The port's MTU: a longer inner packet is fragmented, or, with DF, dropped as
    /// `mtu_exceeded` and answered with ICMP fragmentation-needed.
    pub mtu: u16,
}

impl EniPort {
    /// A port that carries the VPC MTU.
    pub const fn vpc_mtu(out: Output) -> EniPort {
        EniPort { out, mtu: VPC_MTU as u16 }
    }
}

/// Where the instance port of each local ENI is, and its MTU: the runtime's small table,
/// consulted once per delivered packet (after the mapping has placed the destination on
/// this card).
///
/// Implemented for a slice or `Vec` indexed by [`EniId`]`.0` (`None`, or an index past
/// the end: no port) of [`EniPort`]s, or of [`Output`]s (ports that carry the VPC MTU),
/// and for any `Fn(EniId) -> Option<Output>` (the VPC MTU too).
pub trait EniPorts {
    /// The instance port of `eni`, if it has one in this process.
    fn port(&self, eni: EniId) -> Option<EniPort>;
}

impl EniPorts for [Option<EniPort>] {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<EniPort> {
        self.get(eni.0 as usize).copied().flatten()
    }
}

impl EniPorts for Vec<Option<EniPort>> {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<EniPort> {
        self.as_slice().port(eni)
    }
}

impl EniPorts for [Option<Output>] {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<EniPort> {
        self.get(eni.0 as usize).copied().flatten().map(EniPort::vpc_mtu)
    }
}

impl EniPorts for Vec<Option<Output>> {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<EniPort> {
        self.as_slice().port(eni)
    }
}

impl<F: Fn(EniId) -> Option<Output>> EniPorts for F {
    #[inline(always)]
    fn port(&self, eni: EniId) -> Option<EniPort> {
        self(eni).map(EniPort::vpc_mtu)
    }
}

/// The context the verify-recv stage works in for one burst.
pub(crate) struct UnderlayCtx<'c, 't, P: ?Sized> {
    nitro: &'c mut CardCtx<'t, Tables>,
    ports: &'c P,
    s: &'c mut Scratch,
}

/// The context of the decap stage: what verify-recv found, and where the packets it makes
/// beyond the burst go.
pub(crate) struct DecapCtx<'c, 't, X> {
    nitro: &'c CardCtx<'t, Tables>,
    s: &'c Scratch,
    extra: &'c mut X,
    underlay: Output,
}

/// The underlay-side pipeline of one worker: owns its stages and their scratch. Build one
/// per worker and reuse it for every burst.
pub struct FromUnderlay {
    verify: VerifyRecv,
    underlay: Output,
    scratch: Box<Scratch>,
}

impl core::fmt::Debug for FromUnderlay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FromUnderlay").field("underlay", &self.underlay).finish_non_exhaustive()
    }
}

impl FromUnderlay {
    /// The pipeline; ICMP fragmentation-needed answers leave by `underlay` (the card's
    /// underlay: the fabric or its underlay port).
    pub fn new(underlay: Output) -> Self {
        FromUnderlay {
            verify: VerifyRecv,
            underlay,
            scratch: Box::new(Scratch::new()),
        }
    }

    /// Every stage of the pipeline with the reasons it may drop for, in order.
    pub const DROPS: DropTable = &[drop_row::<VerifyRecv>(), drop_row::<Decap>()];

    /// Run verify-recv and decap over a burst of underlay frames. `eni_ports` says which
    /// output the instance port of a local ENI is and its MTU ([`EniPorts`]: e.g. a
    /// `[Option<EniPort>]` indexed by [`EniId`]`.0`). Every packet leaves decided:
    /// forwarded to its ENI's port or dropped with its reason. What decap makes beyond the
    /// burst (the later fragments of a packet cut for its port's MTU, ICMP
    /// fragmentation-needed answers in fresh buffers) goes out through `extra`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn process<B: PacketBuf, C: Clock, P: EniPorts + ?Sized, X: Extra<B>>(
        &mut self, burst: &mut Burst<B>, eni_ports: &P, ctx: &mut CardCtx<'_, Tables>, extra: &mut X, clock: &C,
        meters: &mut Meters,
    ) {
        if burst.live_mask() == 0 {
            return;
        }
        let mut cx = UnderlayCtx { nitro: ctx, ports: eni_ports, s: &mut self.scratch };
        let mut stamp = None;
        run_timed_chained(&mut self.verify, burst, &mut cx, clock, meters, &mut stamp);
        let mut cx = DecapCtx { nitro: ctx, s: &self.scratch, extra, underlay: self.underlay };
        run_timed_chained(&mut Decap, burst, &mut cx, clock, meters, &mut stamp);
    }
}

// ----- verify-recv -----

/// The home of (`vni`, `ip`) in the mapping table: `prev`'s when it is the same key (the
/// previous packet's), else hashed, its slot prefetched so that the cache miss overlaps
/// the parsing of the next packets, and kept in `prev`.
#[inline(always)]
fn prefetched_home(tables: &Tables, prev: &mut Home, vni: u32, ip: Ipv4Addr) -> Home {
    if let Some(home) = tables.mapping_home_new(*prev, vni, ip) {
        if let Some(slot) = tables.mapping_slot_at(home) {
            prefetch_ends(slot);
        }
        *prev = home;
    }
    *prev
}

/// `verify-recv`: the front end both cards share ([`pipeline::underlay::receive`]: outer
/// header, this card's PA, inner IPv4 header, VPC MTU), then one burst lookup of every
/// source and destination, then the sender, VPC and destination checks.
struct VerifyRecv;

pipeline::stage_info!(VerifyRecv: VerifyRecv, [Malformed, Unsupported, UnknownDestination, UnknownSender, MtuExceeded]);

impl<'c, 't, B: PacketBuf, P: EniPorts + ?Sized> Stage<B, UnderlayCtx<'c, 't, P>> for VerifyRecv {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, cx: &mut UnderlayCtx<'c, 't, P>) {
        let tables: &'t Tables = cx.nitro.tables;
        let pa = tables.pa();
        let s = &mut *cx.s;
        s.big = 0;

        // Parse every frame, hash its two keys and prefetch their slots.
        let (mut prev_src, mut prev_dst) = (Home::NONE, Home::NONE);
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
                    s.src[j] = src;
                    s.dst[j] = dst;
                    s.src_home[j] = prefetched_home(tables, &mut prev_src, o.source_vpc, src);
                    s.dst_home[j] = prefetched_home(tables, &mut prev_dst, o.vni, dst);
                }
                Err(reason) => {
                    burst.drop(i, reason);
                }
            }
        }

        // Probe both keys of every parsed frame (their slots mostly in L1 by now), then
        // the sender, VPC and destination checks. The last peering answer is reused
        // within the burst.
        let mut peered: (u32, u32, bool) = (0, 0, false);
        for i in burst.live_indices() {
            let j = slot(i);
            let (source_vpc, src, vni, dst) = (s.source_vpc[j], s.src[j], s.vni[j], s.dst[j]);
            let (src_loc, dst_loc) = (tables.mapping_homed(s.src_home[j]), tables.mapping_homed(s.dst_home[j]));
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
            let Some(port) = cx.ports.port(dl.eni) else {
                burst.drop(i, DropReason::UnknownDestination);
                continue;
            };
            if s.inner_len[j] > port.mtu {
                // Longer than the instance's port carries: decap's slow path.
                s.big |= 1 << j;
                s.mtu[j] = port.mtu;
            }
            let src_mac = match src_loc {
                Some(l) if by_mapping && l.subnet == dl.subnet => l.mac.0,
                _ => subnet_router_mac(dl.subnet.0).0,
            };
            let eth = &mut s.eth[j];
            eth[..6].copy_from_slice(&dl.mac.0);
            eth[6..].copy_from_slice(&src_mac);
            s.out[j] = Some(port.out);
        }
    }
}

// ----- decap -----

/// `decap`: outer header off, the instance's Ethernet header on. A packet longer than its
/// port's MTU takes [`too_big`].
struct Decap;

pipeline::stage_info!(Decap: Decap, [MtuExceeded, NoBuffer, NoRoom, Malformed, UnknownDestination]);

impl<'c, 't, B: PacketBuf, X: Extra<B>> Stage<B, DecapCtx<'c, 't, X>> for Decap {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, cx: &mut DecapCtx<'c, 't, X>) {
        decap(burst, cx);
    }
}

#[inline(always)]
fn decap<B: PacketBuf, X: Extra<B>>(burst: &mut Burst<B>, cx: &mut DecapCtx<'_, '_, X>) {
    let (ctx, s, underlay) = (cx.nitro, cx.s, cx.underlay);
    let extra = &mut *cx.extra;
    let big = s.big;
    // Every live packet is decided here: the burst's masks are written once, after the loop.
    burst.decide_each(burst.live_mask(), |i, p| {
        let j = slot(i);
        let out = s.out[j].ok_or(DropReason::UnknownDestination)?;
        if big & (1 << j) != 0 {
            return too_big(p, j, out, s, ctx, extra, underlay);
        }
        let (offset, len) = (usize::from(s.inner_offset[j]), usize::from(s.inner_len[j]));
        decapsulate(p, offset, len, &s.eth[j]).map(|()| out)
    });
}

/// A packet longer than its port's MTU (slot `j`, going to `out`): with DF, dropped as
/// `mtu_exceeded` and answered ([`frag_needed`]); without, the outer header off and the
/// inner packet cut into fragments of the MTU, each with the instance's Ethernet header,
/// the first in `p`, the others through `extra`.
#[cold]
#[inline(never)]
fn too_big<B: PacketBuf, X: Extra<B>>(
    p: &mut B,
    j: usize,
    out: Output,
    s: &Scratch,
    ctx: &CardCtx<'_, Tables>,
    extra: &mut X,
    underlay: Output,
) -> Result<Output, DropReason> {
    let (offset, len) = (usize::from(s.inner_offset[j]), usize::from(s.inner_len[j]));
    let mtu = s.mtu[j];
    let inner = p.data().get(offset..offset + len).ok_or(DropReason::Malformed)?;
    if inner.get(6).is_some_and(|flags| flags & 0x40 != 0) {
        frag_needed(inner, mtu, s, j, ctx, extra, underlay);
        return Err(DropReason::MtuExceeded);
    }
    let padding = p.len().saturating_sub(offset + len);
    if p.trim(padding).is_err() || p.adj(offset).is_err() {
        return Err(DropReason::Malformed);
    }
    let eth = &s.eth[j];
    let push_eth = |f: &mut B| -> Result<(), DropReason> {
        let head = f.prepend(ETH_LEN).map_err(|_| DropReason::NoRoom)?;
        head[..12].copy_from_slice(eth);
        head[12..].copy_from_slice(&[0x08, 0x00]);
        Ok(())
    };
    fragment_out(p, usize::from(mtu), extra, out, push_eth).map(|()| out)
}

/// Answer the DF packet `inner` (slot `j`) that its port cannot carry with ICMP
/// fragmentation-needed (next-hop MTU `mtu`), if the card's limit allows and ICMP may
/// answer it: from the destination instance's address (the card answers for the vNIC's
/// link) to the sender, in a fresh buffer from `extra`, encapsulated from this card's PA
/// back to the outer source PA with VNI = the packet's source VPC and source VPC = its VNI,
/// so that the sender's card takes it as from the destination instance. Whatever stops the
/// answer (the limit, an offender ICMP may not answer, no buffer) sends nothing.
fn frag_needed<B: PacketBuf, X: Extra<B>>(
    inner: &[u8],
    mtu: u16,
    s: &Scratch,
    j: usize,
    ctx: &CardCtx<'_, Tables>,
    extra: &mut X,
    underlay: Output,
) {
    let Some(dst) = inner.get(16..20).and_then(|d| <[u8; 4]>::try_from(d).ok()) else { return };
    let Ok(answer) = FragNeeded::about(inner, mtu, Ipv4Addr::from(dst)) else { return };
    if !ctx.icmp_limit.allow(ctx.now) {
        return;
    }
    let Some(mut buf) = extra.alloc() else { return };
    let pa = ctx.tables.pa();
    let encap = Encap {
        src_mac: card_mac(pa),
        dst_mac: UNDERLAY_ROUTER_MAC,
        src_pa: pa,
        dst_pa: Ipv4Addr::from(s.src_pa[j]),
        vni: s.source_vpc[j],
        source_vpc: s.vni[j],
    };
    if answer.write_into(&mut buf).is_ok() && vpc::push_outer(&mut buf, &encap, None).is_ok() {
        extra.send(buf, underlay);
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
