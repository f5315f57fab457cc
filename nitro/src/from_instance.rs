//! From the instance ([`FromInstance`]): classify (with the ARP proxy), verify-send, route, encap.

use std::net::Ipv4Addr;

use mapping_client::{EniId, Home, LocalEni, Route, Tables};
use pipeline::prefetch::prefetch_ends;
use pipeline::{
    bit, drop_row, run_timed_chained, slot, Burst, CardCtx, Clock, DropReason, DropTable, Meters, Output,
    Stage, StageInfo, Verdict, MAX_BURST,
};
use wire::vpc::{
    self, card_mac, subnet_router_mac, Encap, OuterTemplate, OUTER_ETH_LEN, OUTER_HEADER_LEN,
    UNDERLAY_ROUTER_MAC, VPC_MTU,
};
use wire::{EthernetAddress, PacketBuf};

use crate::eth;

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
/// Bytes to prepend once Ethernet is gone: 58 - 14.
const GROW: usize = OUTER_HEADER_LEN - OUTER_ETH_LEN;

/// Where [`FromInstance`] sends what it forwards; the runtime assigns both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FromInstanceOutputs {
    /// ARP replies: back out of the instance port the request came in on.
    pub reply: Output,
    /// Encapsulated packets: the card's underlay (the fabric or its underlay port).
    pub underlay: Output,
}

/// Per-slot results of one stage for the next ones: nothing is parsed twice.
struct Scratch {
    /// Inner source and destination, host order.
    src: [u32; MAX_BURST],
    dst: [u32; MAX_BURST],
    /// Inner IPv4 total length.
    ip_len: [u16; MAX_BURST],
    /// Destination VNI (Geneve VNI) and PA.
    vni: [u32; MAX_BURST],
    pa: [u32; MAX_BURST],
    /// Per slot routed within the VPCs, its (VNI, destination) hashed into its home in
    /// the mapping table as soon as it is routed and its slot prefetched (the cache miss
    /// overlaps the routing of the next packets), probed after the burst is routed.
    homes: [Home; MAX_BURST],
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            src: [0; MAX_BURST], dst: [0; MAX_BURST], ip_len: [0; MAX_BURST], vni: [0; MAX_BURST],
            pa: [0; MAX_BURST], homes: [Home::default(); MAX_BURST],
        }
    }
}

/// The context the egress stages share for one burst.
pub(crate) struct InstanceCtx<'c, 't> {
    nitro: &'c mut CardCtx<'t, Tables>,
    /// The ENI of the port the burst came from, as this card's tables know it.
    sender: Option<&'t LocalEni>,
    eni: EniId,
    outputs: FromInstanceOutputs,
    next_hop: EthernetAddress,
    s: &'c mut Scratch,
}

/// The instance-side pipeline of one worker: owns its stages and their scratch. Build one
/// per worker (it holds ~3 KiB of per-slot scratch) and reuse it for every burst.
pub struct FromInstance {
    outputs: FromInstanceOutputs,
    next_hop: EthernetAddress,
    classify: Classify,
    verify: VerifySend,
    route: RouteStage,
    encap: EncapStage,
    scratch: Box<Scratch>,
}

impl core::fmt::Debug for FromInstance {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FromInstance")
            .field("outputs", &self.outputs)
            .field("next_hop", &self.next_hop)
            .finish()
    }
}

impl FromInstance {
    /// The pipeline, forwarding to `outputs`, with [`UNDERLAY_ROUTER_MAC`] as next hop.
    pub fn new(outputs: FromInstanceOutputs) -> Self {
        FromInstance {
            outputs,
            next_hop: UNDERLAY_ROUTER_MAC,
            classify: Classify,
            verify: VerifySend,
            route: RouteStage,
            encap: EncapStage,
            scratch: Box::new(Scratch::new()),
        }
    }

    /// Every stage of the pipeline with the reasons it may drop for, in order.
    pub const DROPS: DropTable = &[
        drop_row::<Classify>(), drop_row::<VerifySend>(), drop_row::<RouteStage>(),
        drop_row::<EncapStage>(),
    ];

    /// Use `mac` as the outer Ethernet destination (the underlay next hop).
    pub fn with_next_hop_mac(mut self, mac: EthernetAddress) -> Self {
        self.next_hop = mac;
        self
    }

    /// Run classify, verify-send, route and encap over a burst received from the vNIC of
    /// `eni`. Every packet leaves decided: forwarded to `reply` (ARP answers) or `underlay`
    /// (encapsulated), or dropped with its reason.
    #[inline]
    pub fn process<B: PacketBuf, C: Clock>(
        &mut self,
        burst: &mut Burst<B>,
        eni: EniId,
        ctx: &mut CardCtx<'_, Tables>,
        clock: &C,
        meters: &mut Meters,
    ) {
        if burst.live_mask() == 0 {
            return;
        }
        let sender = ctx.tables.local_eni(eni);
        let mut cx = InstanceCtx {
            nitro: ctx,
            sender,
            eni,
            outputs: self.outputs,
            next_hop: self.next_hop,
            s: &mut self.scratch,
        };
        let mut stamp = None;
        run_timed_chained(&mut self.classify, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut self.verify, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut self.route, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut self.encap, burst, &mut cx, clock, meters, &mut stamp);
    }
}

// ----- classify -----

/// `classify`: Ethernet, the ARP proxy, the IPv4 header check.
struct Classify;

pipeline::stage_info!(Classify: Classify, [Malformed, NotIpv4, ArpIgnored, Unsupported]);

impl<'c, 't, B: PacketBuf> Stage<B, InstanceCtx<'c, 't>> for Classify {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, cx: &mut InstanceCtx<'c, 't>) {
        let tables = cx.nitro.tables;
        let sender = cx.sender;
        let reply = cx.outputs.reply;
        let s = &mut *cx.s;
        burst.for_each_live(|i, p| {
            let d = p.data();
            let Some(&[.., t0, t1]) = d.get(..ETH_LEN) else {
                return Some(Verdict::Drop(DropReason::Malformed));
            };
            match u16::from_be_bytes([t0, t1]) {
                ETHERTYPE_IPV4 => match check_ipv4(d) {
                    Ok((src, dst, len)) => {
                        let i = slot(i);
                        s.src[i] = src;
                        s.dst[i] = dst;
                        s.ip_len[i] = len;
                        None
                    }
                    Err(reason) => Some(Verdict::Drop(reason)),
                },
                ETHERTYPE_ARP => Some(match arp_proxy(p, sender, tables) {
                    Ok(()) => Verdict::Forward(reply),
                    Err(reason) => Verdict::Drop(reason),
                }),
                _ => Some(Verdict::Drop(DropReason::NotIpv4)),
            }
        });
    }
}

/// The IPv4 header behind Ethernet ([`vpc::ipv4_header`]): (source, destination, total
/// length) or why not.
#[inline(always)]
fn check_ipv4(frame: &[u8]) -> Result<(u32, u32, u16), DropReason> {
    let ip = frame.get(ETH_LEN..).ok_or(DropReason::Malformed)?;
    let total = vpc::ipv4_header(ip)?;
    let a = |at: usize| ip.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
    let (Some(src), Some(dst)) = (a(12), a(16)) else { return Err(DropReason::Malformed) };
    // Multicast (224.0.0.0/4) and the limited broadcast: a VPC carries neither.
    if dst >> 28 == 0xe || dst == u32::MAX {
        return Err(DropReason::Unsupported);
    }
    Ok((src, dst, total as u16))
}

/// Answer an ARP request in place ([`pipeline::arp::respond`]; see the crate
/// documentation for whom the card answers).
#[inline(always)]
fn arp_proxy<B: PacketBuf>(
    p: &mut B,
    sender: Option<&LocalEni>,
    tables: &Tables,
) -> Result<(), DropReason> {
    pipeline::arp::respond(p, |request| {
        let sender = sender.ok_or(DropReason::ArpIgnored)?;
        let target = request.target_protocol_addr;
        if sender.owns(target) {
            return Err(DropReason::ArpIgnored);
        }
        arp_answer(tables, sender, target).ok_or(DropReason::ArpIgnored)
    })
}

/// The MAC the card answers for `target` to `sender`, if it answers.
fn arp_answer(tables: &Tables, sender: &LocalEni, target: Ipv4Addr) -> Option<EthernetAddress> {
    let vpc = tables.vpc(sender.vni)?;
    if !vpc.cidr.contains(target) {
        return None;
    }
    let in_subnet = tables
        .subnet(sender.subnet)
        .is_some_and(|s| s.cidr.contains(target));
    match tables.lookup(sender.vni, target) {
        Some(peer) if in_subnet => Some(eth(peer.mac)),
        _ => Some(subnet_router_mac(sender.subnet.0)),
    }
}

// ----- verify-send -----

/// `verify-send`: the sending ENI owns the source MAC and (source/dest check on) source IP.
struct VerifySend;

pipeline::stage_info!(VerifySend: VerifySend, [SpoofedSource]);

impl<'c, 't, B: PacketBuf> Stage<B, InstanceCtx<'c, 't>> for VerifySend {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, cx: &mut InstanceCtx<'c, 't>) {
        const REASON: DropReason = DropReason::SpoofedSource;
        let s = &*cx.s;
        let eni = Some(cx.eni.0);
        let Some(sender) = cx.sender else {
            // Not registered here: nobody may send from this port.
            for i in burst.live_indices() {
                let j = slot(i);
                let (src, dst) = (Ipv4Addr::from(s.src[j]), Ipv4Addr::from(s.dst[j]));
                cx.nitro.alert(REASON, Self::ID, eni, 0, None, src, dst);
                burst.drop(i, REASON);
            }
            return;
        };
        let mac = sender.mac.0;
        let check_ip = sender.source_dest_check;
        for i in burst.live_indices() {
            let j = slot(i);
            let mac_ok = burst
                .get(i)
                .and_then(|p| p.data().get(6..12))
                .is_some_and(|m| m == mac);
            let src = Ipv4Addr::from(s.src[j]);
            if mac_ok && (!check_ip || sender.owns(src)) {
                continue;
            }
            cx.nitro.alert(
                REASON,
                Self::ID,
                eni,
                sender.vni,
                None,
                src,
                Ipv4Addr::from(s.dst[j]),
            );
            burst.drop(i, REASON);
        }
    }
}

// ----- route -----

/// `route`: longest prefix of the sender's VPC, peering check, then the burst's mapping
/// lookups in one pass.
struct RouteStage;

pipeline::stage_info!(RouteStage: Route, [NoRoute, NotPeered, NoMapping]);

impl<'c, 't, B: PacketBuf> Stage<B, InstanceCtx<'c, 't>> for RouteStage {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, cx: &mut InstanceCtx<'c, 't>) {
        let tables: &'t Tables = cx.nitro.tables;
        let eni = Some(cx.eni.0);
        // verify-send dropped everything when the sender is unknown.
        let Some(sender) = cx.sender else { return };
        let svni = sender.vni;
        let s = &mut *cx.s;
        let Some(vpc) = tables.vpc(svni) else {
            for i in burst.live_indices() {
                let j = slot(i);
                let (src, dst) = (Ipv4Addr::from(s.src[j]), Ipv4Addr::from(s.dst[j]));
                cx.nitro
                    .alert(DropReason::NoRoute, Self::ID, eni, svni, None, src, dst);
                burst.drop(i, DropReason::NoRoute);
            }
            return;
        };
        // The last peering answer (for a VNI other than the sender's): a burst mostly goes
        // to one or two VPCs.
        let mut peer: (u32, bool) = (svni, false);
        // The packets waiting for a mapping lookup.
        let mut waiting = 0u64;
        // The prefix the previous packet matched, tried first.
        let mut hint = 0usize;
        for i in burst.live_indices() {
            let j = slot(i);
            let dst = Ipv4Addr::from(s.dst[j]);
            // Matched by reference: the route's fields are read in the table (a copied
            // `Route` was put together on the stack in pieces, and reading its VNI back
            // stalled on the failed store forwarding, ~15 cycles a packet).
            let verdict = match vpc.routes.get_hinted(dst, &mut hint) {
                Some(&Route::Vpc { vni }) => {
                    if vni != svni && vni != peer.0 {
                        peer = (vni, tables.peered(svni, vni));
                    }
                    if vni == svni || peer.1 {
                        s.vni[j] = vni;
                        // Hashed now; the slot's cache miss overlaps the routing of the
                        // next packets. (Every packet's key: a search for a repeated one
                        // cost as much as the hash.)
                        let home = tables.mapping_home(vni, dst);
                        if let Some(slot) = tables.mapping_slot_at(home) {
                            prefetch_ends(slot);
                        }
                        s.homes[j] = home;
                        waiting |= bit(i);
                        continue;
                    }
                    Err((DropReason::NotPeered, Some(vni)))
                }
                Some(&Route::Internet { edge_pa }) => internet(tables, svni, dst, edge_pa),
                Some(
                    &(Route::Vpn { edge_pa, .. }
                    | Route::Dx { edge_pa, .. }
                    | Route::Endpoint { edge_pa, .. }),
                ) => Ok(edge_pa),
                // No prefix: the VPC's internet gateway ([`Tables::route`]'s rule).
                None => match vpc.internet_gateway {
                    Some(edge_pa) => internet(tables, svni, dst, edge_pa),
                    None => Err((DropReason::NoRoute, None)),
                },
            };
            match verdict {
                Ok(edge_pa) if !edge_pa.is_unspecified() => {
                    s.vni[j] = svni;
                    s.pa[j] = u32::from(edge_pa);
                }
                Ok(_) => {
                    let src = Ipv4Addr::from(s.src[j]);
                    cx.nitro
                        .alert(DropReason::NoRoute, Self::ID, eni, svni, None, src, dst);
                    burst.drop(i, DropReason::NoRoute);
                }
                Err((reason, peer_vni)) => {
                    let src = Ipv4Addr::from(s.src[j]);
                    cx.nitro
                        .alert(reason, Self::ID, eni, svni, peer_vni, src, dst);
                    burst.drop(i, reason);
                }
            }
        }
        // The probes, mostly L1 hits by now. (An unmapped destination is `NO_PA`.)
        while waiting != 0 {
            let i = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            let j = slot(i);
            match u32::try_from(tables.mapping_pa_homed(s.homes[j])) {
                Ok(pa) if pa != 0 => s.pa[j] = pa,
                _ => {
                    burst.drop(i, DropReason::NoMapping);
                }
            }
        }
    }
}

/// An internet-bound packet of VPC `own` to `dst` through the gateway `edge_pa`: refused
/// (`no_route`, naming the VPC) when `dst` lies in another VPC this card knows.
#[inline(always)]
fn internet(tables: &Tables, own: u32, dst: Ipv4Addr, edge_pa: Ipv4Addr) -> Result<Ipv4Addr, (DropReason, Option<u32>)> {
    match foreign_vpc(tables, own, dst) {
        Some(other) => Err((DropReason::NoRoute, Some(other))),
        None => Ok(edge_pa),
    }
}

/// A VPC of this card's view, other than `own`, whose CIDR holds `dst`: traffic the
/// internet gateway must not carry (only reached for internet-bound packets). The tables'
/// index of the VPC CIDRs answers in a hash probe per prefix length, whatever the number
/// of VPCs ([`Tables::other_vpc_holding`]).
#[inline(always)]
fn foreign_vpc(tables: &Tables, own: u32, dst: Ipv4Addr) -> Option<u32> {
    tables.other_vpc_holding(own, dst)
}

// ----- encap -----

/// `encap`: MTU check, Ethernet off, the 58-byte outer header on.
struct EncapStage;

pipeline::stage_info!(EncapStage: Encap, [MtuExceeded, NoRoom, Unsupported, Malformed]);

impl<'c, 't, B: PacketBuf> Stage<B, InstanceCtx<'c, 't>> for EncapStage {
    #[inline]
    fn process(&mut self, burst: &mut Burst<B>, cx: &mut InstanceCtx<'c, 't>) {
        let Some(sender) = cx.sender else { return };
        let pa = cx.nitro.tables.pa();
        let encap = Encap {
            src_mac: card_mac(pa),
            dst_mac: cx.next_hop,
            src_pa: pa,
            dst_pa: Ipv4Addr::UNSPECIFIED,
            vni: 0,
            source_vpc: sender.vni,
        };
        let Some(template) = OuterTemplate::new(&encap) else {
            // A source VNI over 24 bits: cannot come from a loaded topology.
            for i in burst.live_indices() {
                burst.drop(i, DropReason::Unsupported);
            }
            return;
        };
        let underlay = cx.outputs.underlay;
        let s = &*cx.s;
        burst.decide_each(u64::MAX, |i, p| {
            let j = slot(i);
            let ip_len = usize::from(s.ip_len[j]);
            if ip_len > VPC_MTU {
                return Err(DropReason::MtuExceeded);
            }
            encapsulate(p, &template, s.pa[j], s.vni[j], ip_len).map(|()| underlay)
        });
    }
}

/// Replace the Ethernet header (and any padding) of a classified frame by the outer header.
#[inline(always)]
fn encapsulate<B: PacketBuf>(
    p: &mut B,
    template: &OuterTemplate,
    dst_pa: u32,
    vni: u32,
    ip_len: usize,
) -> Result<(), DropReason> {
    if vni > vpc::VNI_MAX {
        return Err(DropReason::Unsupported);
    }
    let padding = p.len().saturating_sub(ETH_LEN + ip_len);
    p.trim(padding).map_err(|_| DropReason::Malformed)?;
    p.prepend(GROW).map_err(|_| DropReason::NoRoom)?;
    let data = p.data_mut();
    if data.len() < OUTER_HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    let (head, inner) = data.split_at_mut(OUTER_HEADER_LEN);
    let head: &mut [u8; OUTER_HEADER_LEN] = head.try_into().map_err(|_| DropReason::Malformed)?;
    template.write(head, dst_pa, vni, ip_len, vpc::inner_flow_hash(inner));
    Ok(())
}
