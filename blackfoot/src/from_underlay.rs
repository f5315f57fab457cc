//! From the underlay ([`FromUnderlay`]): what hosts send to the edge. verify-recv, decap, then by the inner
//! destination (the sender VPC's longest prefix): `esp-encrypt` (VPN), `vlan` (Direct
//! Connect), `endpoint` (S3 gateway endpoint) or `nat` (internet gateway); ICMP
//! fragmentation-needed answers go back to the sender through `encap`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use mapping_client::{EndpointId, Home, Route, Tables, VpcEntry, VpnId};
use pipeline::frag::{self, fragment_out};
use pipeline::prefetch::prefetch_ends;
use pipeline::{
    bit, drop_row, run_timed_chained, slot, Burst, CardCtx, Clock, DropReason, DropTable, Extra, Meters,
    Output, Received, StageId, Verdict, MAX_BURST,
};
use wire::vpc::{card_mac, inner_flow_hash, Encap, FixedTemplate, OuterTemplate, OUTER_HEADER_LEN_WITH_ENDPOINT, UNDERLAY_ROUTER_MAC, VPC_MTU};
use wire::{EthernetAddress, PacketBuf};

use crate::common::{
    cipher_runs, ethernet_ipv4, port_or_drop, push_ethernet, push_template, vlan_ethernet_ipv4, EdgeOutputs,
    EncapToHosts, HostsCtx, ToHosts, INTERNET_MTU, INTERNET_NEXT_HOP_MAC, VLAN_ETH_LEN,
};
use crate::sa::EdgeSas;
use crate::{esp, nat};

/// Where verify-recv sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Internet,
    Vpn(VpnId),
    Dx { vlan: u16, router_mac: EthernetAddress },
    Endpoint { id: EndpointId, front_end_pa: Ipv4Addr },
}

/// Per-slot results of verify-recv for the stages after it.
struct Scratch {
    /// Outer source PA (host order) and VNI (= source VPC: verify-recv checked it).
    src_pa: [u32; MAX_BURST],
    vni: [u32; MAX_BURST],
    /// Inner source and destination; where the inner packet starts, how long it is.
    src: [Ipv4Addr; MAX_BURST],
    dst: [Ipv4Addr; MAX_BURST],
    inner_offset: [u16; MAX_BURST],
    inner_len: [u16; MAX_BURST],
    /// The way out the route picked, per slot an index into `ways` (one byte a packet: a
    /// `Class` copied per packet is moved in pieces whose loads wait for a failed store
    /// forwarding).
    way: [u8; MAX_BURST],
    /// The burst's distinct ways out (VPC and route), [`Scratch::class`] of a slot, and
    /// each one's slots (the class masks below are made from them once a burst, not
    /// once a packet).
    ways: [Class; MAX_BURST],
    way_slots: [u64; MAX_BURST],
    /// Per slot, its (VPC, inner source) with its home in the mapping table, hashed once
    /// (for the prefetch in the first pass and the probe in the second).
    homes: [Home; MAX_BURST],
    /// Per internet-bound slot, its (VPC, inner source) in the Elastic IP table, hashed
    /// (and its slot prefetched) by verify-recv for nat's lookup.
    eip_homes: [Home; MAX_BURST],
    /// Slots per class, filled by verify-recv.
    internet: u64,
    vpn: u64,
    dx: u64,
    endpoint: u64,
    to: ToHosts,
    /// esp-encrypt: what each packet left to the cipher's burst call.
    seal: [esp::SealPlan; MAX_BURST],
    /// endpoint: the outer header of the last (endpoint, front end, VPC, edge PA) seen,
    /// its destination and VNI written in, kept across bursts (in memory: the per-packet
    /// copy is a block copy).
    endpoint_template: Option<(EndpointKey, Option<FixedTemplate<OUTER_HEADER_LEN_WITH_ENDPOINT>>)>,
}

/// What an endpoint's outer header template is made of besides constants: the endpoint,
/// its front end's PA, the VPC (VNI = source VPC) and the edge's PA.
type EndpointKey = (EndpointId, Ipv4Addr, u32, Ipv4Addr);

impl Scratch {
    /// The way out of slot `j`.
    #[inline(always)]
    fn class(&self, j: usize) -> Class {
        self.ways[usize::from(self.way[j & (MAX_BURST - 1)]) & (MAX_BURST - 1)]
    }

    fn new() -> Self {
        Scratch {
            src_pa: [0; MAX_BURST], vni: [0; MAX_BURST], src: [Ipv4Addr::UNSPECIFIED; MAX_BURST],
            dst: [Ipv4Addr::UNSPECIFIED; MAX_BURST], inner_offset: [0; MAX_BURST],
            inner_len: [0; MAX_BURST], way: [0; MAX_BURST], ways: [Class::Internet; MAX_BURST],
            way_slots: [0; MAX_BURST], homes: [Home::default(); MAX_BURST],
            eip_homes: [Home::default(); MAX_BURST],
            internet: 0, vpn: 0, dx: 0, endpoint: 0, to: ToHosts::new(),
            seal: [esp::SealPlan::default(); MAX_BURST],
            endpoint_template: None,
        }
    }
}

/// The underlay-side pipeline of one worker for one edge (what hosts send to it, through
/// the fabric or the edge's underlay port). Build one per worker and edge and
/// reuse it for every burst.
pub struct FromUnderlay {
    outputs: EdgeOutputs,
    sas: Arc<EdgeSas>,
    s: Box<Scratch>,
}

impl core::fmt::Debug for FromUnderlay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FromUnderlay").field("outputs", &self.outputs).finish_non_exhaustive()
    }
}

impl FromUnderlay {
    /// The pipeline, sending to `outputs`, encrypting with the edge's outbound SAs `sas`
    /// (shared by every worker, so sequence numbers are never reused).
    pub fn new(outputs: EdgeOutputs, sas: Arc<EdgeSas>) -> Self {
        FromUnderlay { outputs, sas, s: Box::new(Scratch::new()) }
    }

    /// Every stage of the pipeline with the reasons it may drop for, in order.
    pub const DROPS: DropTable = &[
        drop_row::<VerifyRecv>(), drop_row::<Decap>(), drop_row::<EspEncrypt>(), drop_row::<Vlan>(),
        drop_row::<Endpoint>(), drop_row::<NatOut>(), drop_row::<EncapToHosts>(),
    ];

    /// Run the pipeline over a burst of Geneve frames addressed to the edge. Every packet
    /// leaves decided; fragments beyond the first go out through `extra`.
    pub fn process<B: PacketBuf, C: Clock, X: Extra<B>>(
        &mut self,
        burst: &mut Burst<B>,
        ctx: &mut CardCtx<'_, Tables>,
        extra: &mut X,
        clock: &C,
        meters: &mut Meters,
    ) {
        if burst.live_mask() == 0 {
            return;
        }
        let s = &mut *self.s;
        s.internet = 0;
        s.vpn = 0;
        s.dx = 0;
        s.endpoint = 0;
        s.to.mask = 0;
        let mut cx = UnderlayCtx { card: ctx, s, sas: &self.sas, outputs: self.outputs, extra };
        let mut stamp = None;
        run_timed_chained(&mut VerifyRecv, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut Decap, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut EspEncrypt, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut Vlan, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut Endpoint, burst, &mut cx, clock, meters, &mut stamp);
        run_timed_chained(&mut NatOut, burst, &mut cx, clock, meters, &mut stamp);
        let mut hosts = HostsCtx { tables: cx.card.tables, to: &mut cx.s.to, fabric: self.outputs.fabric };
        run_timed_chained(&mut EncapToHosts, burst, &mut hosts, clock, meters, &mut stamp);
    }
}

/// What the stages of [`FromUnderlay`] share for one burst.
struct UnderlayCtx<'c, 't, X> {
    card: &'c mut CardCtx<'t, Tables>,
    s: &'c mut Scratch,
    sas: &'c EdgeSas,
    outputs: EdgeOutputs,
    extra: &'c mut X,
}

edge_stage!(
    /// `verify-recv`, below.
    VerifyRecv: VerifyRecv, [Malformed, Unsupported, UnknownDestination, MtuExceeded, UnknownSender, NoRoute], UnderlayCtx<'_, '_, X> [X: Extra<B>],
    |_cx| u64::MAX,
    |b, cx| verify_recv(b, cx.card, cx.s, cx.sas));
edge_stage!(
    /// `decap`, below.
    Decap: Decap, [Malformed], UnderlayCtx<'_, '_, X> [X: Extra<B>],
    |_cx| u64::MAX, |b, cx| decap(b, cx.s));
edge_stage!(
    /// `esp-encrypt` of the VPN-bound packets, below.
    EspEncrypt: EspEncrypt, [EspSeqExhausted, MtuExceeded, Malformed, NoRoom, NoBuffer, UnknownDestination], UnderlayCtx<'_, '_, X> [X: Extra<B>],
    |cx| cx.s.vpn,
    |b, cx| esp_encrypt(b, cx.card.tables, cx.s, cx.sas, cx.outputs, cx.extra));
edge_stage!(
    /// `vlan` of the DX-bound packets, below.
    Vlan: Vlan, [NoRoom, UnknownDestination], UnderlayCtx<'_, '_, X> [X: Extra<B>],
    |cx| cx.s.dx, |b, cx| vlan(b, cx.card.tables, cx.s, cx.outputs));
edge_stage!(
    /// `endpoint` of the endpoint-bound packets, below.
    Endpoint: Endpoint, [MtuExceeded, NoRoom, Unsupported, UnknownDestination], UnderlayCtx<'_, '_, X> [X: Extra<B>],
    |cx| cx.s.endpoint,
    |b, cx| endpoint(b, cx.card.tables, cx.s, cx.outputs));
edge_stage!(
    /// `nat` of the internet-bound packets, below.
    NatOut: Nat, [NoElasticIp, Malformed, MtuExceeded, NoRoom, NoBuffer, UnknownDestination], UnderlayCtx<'_, '_, X> [X: Extra<B>],
    |cx| cx.s.internet,
    |b, cx| nat_out(b, cx.card.tables, cx.s, cx.outputs, cx.extra));

// ----- verify-recv -----

/// `verify-recv`: the front end both cards share ([`pipeline::underlay::receive`]: outer
/// header, this edge's PA, inner IPv4 header, VPC MTU); then the VNI must be the source
/// VPC (edge routes carry the sender's own VPC) and a VPC this edge serves; the mapping must place (VPC, inner source) behind
/// the outer source PA; then the route of the inner destination picks the way out.
fn verify_recv<B: PacketBuf>(
    burst: &mut Burst<B>,
    cx: &mut CardCtx<'_, Tables>,
    s: &mut Scratch,
    sas: &EdgeSas,
) {
    let tables: &Tables = cx.tables;
    let pa = tables.pa();
    for i in burst.live_indices() {
        let parsed = match burst.get(i) {
            Some(p) => pipeline::underlay::receive(p.data(), pa),
            None => Err(DropReason::Malformed),
        };
        let Received { outer: o, src, dst } = match parsed {
            Ok(r) => r,
            Err(reason) => {
                burst.drop(i, reason);
                continue;
            }
        };
        let j = slot(i);
        s.src_pa[j] = u32::from(o.src_pa);
        s.vni[j] = o.vni;
        s.src[j] = src;
        s.dst[j] = dst;
        // Options are at most 252 bytes and the inner length at most the VPC MTU.
        s.inner_offset[j] = o.inner_offset as u16;
        s.inner_len[j] = o.inner_len as u16;
        if o.vni != o.source_vpc {
            // A peered VPC may not use this VPC's gateways (no transitive routing).
            cx.alert(DropReason::UnknownSender, StageId::VerifyRecv, None, o.source_vpc, Some(o.vni), src, dst);
            burst.drop(i, DropReason::UnknownSender);
            continue;
        }
        // (VPC, inner source) hashed as soon as it is known and its mapping slot
        // prefetched: the cache miss overlaps the parsing of the next packets, and the
        // probe, in the second pass, mostly hits L1. Every packet's key is hashed (no
        // search for a repeated key: its bookkeeping cost as much as a hash and kept the
        // loop short of registers).
        let home = tables.mapping_home(o.source_vpc, src);
        if let Some(slot) = tables.mapping_slot_at(home) {
            prefetch_ends(slot);
        }
        s.homes[j] = home;
    }

    // The VPC entry of the previous packet, and the way out its route gave, reused within
    // the burst: a burst's packets mostly share a VPC and a route.
    let mut last_vpc: Option<(u32, &VpcEntry)> = None;
    let mut last_way: Option<(u32, *const Route, Result<u8, DropReason>)> = None;
    let mut n_ways = 0usize;
    // The prefix the previous packet matched, tried first (any value is safe).
    let mut hint = 0usize;
    for i in burst.live_indices() {
        let j = slot(i);
        let (vni, src, dst) = (s.vni[j], s.src[j], s.dst[j]);
        // (An unmapped source is `NO_PA`, above every u32.)
        let sender_ok = tables.mapping_pa_homed(s.homes[j]) == u64::from(s.src_pa[j]);
        let vpc = match last_vpc {
            Some((v, e)) if v == vni => Some(e),
            _ => tables.vpc(vni),
        };
        let (true, Some(vpc)) = (sender_ok, vpc) else {
            cx.alert(DropReason::UnknownSender, StageId::VerifyRecv, None, vni, None, src, dst);
            burst.drop(i, DropReason::UnknownSender);
            continue;
        };
        last_vpc = Some((vni, vpc));
        // The route by reference (a copied `Route` is assembled on the stack in pieces and
        // its fields read back across them), the previous packet's prefix tried first; the
        // VPC's internet gateway when none matches.
        let route = vpc.routes.get_hinted(dst, &mut hint);
        let key = route.map_or(core::ptr::null(), |r| r as *const Route);
        let way = match last_way {
            Some((v, r, way)) if v == vni && r == key => way,
            _ => {
                let way = way_out(route, vpc, tables, sas, pa).map(|class| {
                    let w = slot(n_ways);
                    s.ways[w] = class;
                    s.way_slots[w] = 0;
                    n_ways += 1;
                    w as u8
                });
                last_way = Some((vni, key, way));
                way
            }
        };
        let w = match way {
            Ok(w) => w,
            Err(DropReason::NoRoute) => {
                cx.alert(DropReason::NoRoute, StageId::VerifyRecv, None, vni, None, src, dst);
                burst.drop(i, DropReason::NoRoute);
                continue;
            }
            Err(reason) => {
                burst.drop(i, reason);
                continue;
            }
        };
        s.way[j] = w;
        s.way_slots[usize::from(w) & (MAX_BURST - 1)] |= bit(i);
    }
    // The class masks, once per way out (the tag only: no copy of a class).
    for (class, &slots) in s.ways.iter().zip(&s.way_slots).take(n_ways) {
        match class {
            Class::Internet => s.internet |= slots,
            Class::Vpn(_) => s.vpn |= slots,
            Class::Dx { .. } => s.dx |= slots,
            Class::Endpoint { .. } => s.endpoint |= slots,
        }
    }
    // nat looks each internet-bound packet's Elastic IP up: hashed here, the slots'
    // cache misses overlap decap and the other ways out.
    let mut internet = s.internet;
    while internet != 0 {
        let j = slot(internet.trailing_zeros() as usize);
        internet &= internet - 1;
        let home = tables.elastic_ip_home(s.vni[j], s.src[j]);
        if let Some(slot) = tables.elastic_ip_slot_at(home) {
            prefetch_ends(slot);
        }
        s.eip_homes[j] = home;
    }
}

/// Where the route `route` of a packet of `vpc` (`None`: no prefix matched) sends it from
/// this edge (PA `pa`): its class, or `unknown_destination` (a VPC route, a VPN, DX or
/// gateway of another edge, an endpoint this edge does not know) or `no_route` (no prefix
/// and no internet gateway). The same for every packet of a VPC with the same route.
#[inline]
fn way_out(route: Option<&Route>, vpc: &VpcEntry, tables: &Tables, sas: &EdgeSas, pa: Ipv4Addr) -> Result<Class, DropReason> {
    let internet = || vpc.internet_gateway.map(|edge_pa| Route::Internet { edge_pa });
    match route.copied().or_else(internet) {
        Some(Route::Vpn { vpn, .. }) if sas.outbound(vpn).is_some() => Ok(Class::Vpn(vpn)),
        Some(Route::Dx { vlan, edge_pa }) if edge_pa == pa => match tables.vif(vlan) {
            Some(v) => Ok(Class::Dx { vlan, router_mac: EthernetAddress(v.router_mac.0) }),
            None => Err(DropReason::UnknownDestination),
        },
        Some(Route::Endpoint { id, .. }) => match tables.endpoint(id) {
            Some(e) => Ok(Class::Endpoint { id, front_end_pa: e.front_end_pa }),
            None => Err(DropReason::UnknownDestination),
        },
        Some(Route::Internet { edge_pa }) if edge_pa == pa => Ok(Class::Internet),
        // A VPC route, or a VPN/DX/gateway held by another edge: not for this edge.
        Some(_) => Err(DropReason::UnknownDestination),
        None => Err(DropReason::NoRoute),
    }
}

// ----- decap -----

/// `decap`: the outer header and any Ethernet padding off; the buffer is the inner IPv4
/// packet.
fn decap<B: PacketBuf>(burst: &mut Burst<B>, s: &Scratch) {
    burst.for_each_live(|i, p| {
        let j = slot(i);
        let (offset, len) = (usize::from(s.inner_offset[j]), usize::from(s.inner_len[j]));
        let padding = p.len().saturating_sub(offset + len);
        if p.trim(padding).is_err() || p.adj(offset).is_err() {
            return Some(Verdict::Drop(DropReason::Malformed));
        }
        None
    });
}

// ----- the four ways out -----

/// Whether the IPv4 packet at the start of `ip` has DF set.
#[inline(always)]
fn dont_fragment(ip: &[u8]) -> bool {
    ip.get(6).is_some_and(|b| b & 0x40 != 0)
}

/// The address the edge sends fragmentation-needed from: the VPC router, the VPC CIDR's
/// first address + 1.
fn router_addr(tables: &Tables, vni: u32) -> Ipv4Addr {
    tables
        .vpc(vni)
        .map(|v| Ipv4Addr::from(v.cidr.network_u32().wrapping_add(1)))
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// Turn the packet in slot `i` into an ICMP fragmentation-needed (MTU `mtu`) back to its
/// sender, for `encap` (it stays live), or the reason it cannot be.
fn bounce<B: PacketBuf>(p: &mut B, i: usize, mtu: usize, tables: &Tables, s: &mut Scratch) -> Result<(), DropReason> {
    let j = slot(i);
    let (vni, src) = (s.vni[j], s.src[j]);
    let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
    frag::frag_needed_in_place(p, mtu, router_addr(tables, vni))?;
    s.to.add(i, vni, src);
    Ok(())
}

/// `nat`: the source must own an Elastic IP (`no_elastic_ip`); SNAT; the internet MTU
/// (fragment, or fragmentation-needed back when DF is set); Ethernet to the internet next
/// hop.
fn nat_out<B: PacketBuf, X: Extra<B>>(
    burst: &mut Burst<B>,
    tables: &Tables,
    s: &mut Scratch,
    outputs: EdgeOutputs,
    extra: &mut X,
) {
    let mask = s.internet;
    let Some(out) = port_or_drop(burst, mask, outputs.internet) else { return };
    // The Ethernet header, made once a burst: one copy per packet (or fragment).
    let eth_header = ethernet_ipv4(INTERNET_NEXT_HOP_MAC, card_mac(tables.pa()));
    // verify-recv hashed every Elastic IP key of the burst and prefetched its slot: the
    // lookups are probes that mostly hit.
    burst.decide_or_pass(mask, |i, p| {
        let j = slot(i);
        let src = s.src[j];
        let eip = tables.elastic_ip_homed(s.eip_homes[j]).ok_or(DropReason::NoElasticIp)?;
        let eth = |f: &mut B| push_template(f, &eth_header);
        let snat = |ip: &mut [u8]| nat::snat(ip, src, eip);
        to_internet(p, i, INTERNET_MTU, tables, s, Internet { out, extra: &mut *extra }, snat, eth)
    });
}

/// Where [`to_internet`] sends: the internet port, and where the fragments beyond the
/// first come from.
struct Internet<'x, X> {
    out: Output,
    extra: &'x mut X,
}

/// Send packet `p` of slot `i` out of the internet side within `mtu`: with DF and longer,
/// fragmentation-needed back to the sender ([`bounce`]: `Ok(None)`, left for `encap`);
/// else `prepare` on the whole packet, then `finish` on each fragment of `mtu` (or on the
/// packet when it fits): `Ok(Some(out))`, or the reason to drop it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn to_internet<B: PacketBuf, X: Extra<B>>(
    p: &mut B,
    i: usize,
    mtu: usize,
    tables: &Tables,
    s: &mut Scratch,
    to: Internet<'_, X>,
    prepare: impl FnOnce(&mut [u8]) -> Result<(), DropReason>,
    finish: impl FnMut(&mut B) -> Result<(), DropReason>,
) -> Result<Option<Output>, DropReason> {
    let len = p.len();
    if len > mtu && dont_fragment(p.data()) {
        return bounce(p, i, mtu, tables, s).map(|()| None);
    }
    let mut finish = finish;
    prepare(p.data_mut())?;
    if len > mtu {
        fragment_out(p, mtu, to.extra, to.out, finish)?;
    } else {
        finish(p)?;
    }
    Ok(Some(to.out))
}

/// `esp-encrypt`: the VPN's outbound SA; an inner packet whose tunnel packet would not fit
/// the internet MTU is fragmented first (each fragment encrypted on its own), or answered
/// with fragmentation-needed when DF is set; Ethernet to the internet next hop.
///
/// A packet that fits gets its headers, trailer and Ethernet first; then the cipher seals
/// the burst's packets in one call per run of packets of the same SA
/// ([`Aead::seal_burst`](crate::aead::Aead::seal_burst)); what a call took leaves, sealed
/// (or, where the cipher refused, zeroed with a zero ICV, as [`esp::encrypt`] leaves it).
/// Fragments are sealed one by one.
fn esp_encrypt<B: PacketBuf, X: Extra<B>>(
    burst: &mut Burst<B>,
    tables: &Tables,
    s: &mut Scratch,
    sas: &EdgeSas,
    outputs: EdgeOutputs,
    extra: &mut X,
) {
    let mask = s.vpn;
    let Some(out) = port_or_drop(burst, mask, outputs.internet) else { return };
    let mac = card_mac(tables.pa());
    let eth = ethernet_ipv4(INTERNET_NEXT_HOP_MAC, mac);
    let max_inner = esp::max_inner_for_mtu(INTERNET_MTU);
    let mut sealing = 0u64;
    let mut last = None;
    let mut block = seq_block(burst, s, sas, max_inner);
    for i in burst.live_indices() {
        if mask & bit(i) == 0 {
            continue;
        }
        let j = slot(i);
        let Class::Vpn(vpn) = s.class(j) else { continue };
        let sa = match last {
            Some((v, sa)) if v == vpn => sa,
            _ => match sas.outbound(vpn) {
                Some(sa) => {
                    last = Some((vpn, sa));
                    sa
                }
                None => {
                    burst.drop(i, DropReason::UnknownDestination);
                    continue;
                }
            },
        };
        if let Some(p) = burst.get_mut(i).filter(|p| p.len() <= max_inner) {
            // Ethernet goes on with the ESP headers, in one prepend.
            let seqs = match block.as_mut() {
                Some((v, seqs)) if *v == vpn => Some(seqs),
                _ => None,
            };
            match esp::encrypt_prepare_linked(p, sa, seqs, &eth) {
                Ok(plan) => {
                    s.seal[j] = plan;
                    sealing |= bit(i);
                }
                Err(reason) => {
                    burst.drop(i, reason);
                }
            }
            continue;
        }
        let seal = |f: &mut B| {
            esp::encrypt(f, sa)?;
            push_ethernet(f, INTERNET_NEXT_HOP_MAC, mac)
        };
        let Some(p) = burst.get_mut(i) else { continue };
        match to_internet(p, i, max_inner, tables, s, Internet { out, extra: &mut *extra }, |_| Ok(()), seal) {
            Ok(Some(o)) => burst.forward(i, o),
            Ok(None) => false,
            Err(reason) => burst.drop(i, reason),
        };
    }
    let vpn_of = |i: usize| match s.class(slot(i)) {
        Class::Vpn(vpn) => Some(vpn),
        _ => None,
    };
    let (sealed, _) = cipher_runs(
        burst,
        sealing,
        vpn_of,
        |vpn| vpn.and_then(|v| sas.outbound(v)).map(|sa| sa.aead()),
        |i, data| s.seal[slot(i)].job(data),
        |c, jobs| c.seal_burst(jobs),
    );
    for i in burst.live_indices() {
        if sealed & bit(i) != 0 {
            burst.forward(i, out);
        } else if sealing & bit(i) != 0 {
            // Not sealed: no SA any more (cannot happen within a burst); never sent in clear.
            burst.drop(i, DropReason::UnknownDestination);
        }
    }
}

/// The sequence numbers of a burst whose VPN packets all go to one SA and all fit the
/// MTU, taken with one atomic add (a per-packet add waits for the packet stores before it
/// to drain); `None` otherwise (mixed SAs, or fragments, which take theirs one by one
/// and keep the numbers in wire order).
fn seq_block<B: PacketBuf>(
    burst: &Burst<B>,
    s: &Scratch,
    sas: &EdgeSas,
    max_inner: usize,
) -> Option<(VpnId, esp::SeqBlock)> {
    let (mut one, mut n) = (None, 0u32);
    for (i, p) in burst.iter_live() {
        if s.vpn & bit(i) == 0 {
            continue;
        }
        let Class::Vpn(vpn) = s.class(slot(i)) else { continue };
        if one.is_some_and(|o| o != vpn) || p.len() > max_inner {
            return None;
        }
        (one, n) = (Some(vpn), n + 1);
    }
    let vpn = one.filter(|_| n > 1)?;
    sas.outbound(vpn).map(|sa| (vpn, sa.take_seqs(n)))
}

/// `vlan`: Ethernet to the VIF's router MAC with the VIF's 802.1Q tag, out of the DX side.
/// The header is made once per way out of the burst (the previous packet's reused) and
/// copied whole into each packet ([`push_template`]: what
/// `push_vlan_ethernet` writes, field by field).
fn vlan<B: PacketBuf>(burst: &mut Burst<B>, tables: &Tables, s: &Scratch, outputs: EdgeOutputs) {
    let mask = s.dx;
    let Some(out) = port_or_drop(burst, mask, outputs.dx) else { return };
    let mac = card_mac(tables.pa());
    // The way out the header was made for (way indices are below MAX_BURST).
    let mut made_for = u16::MAX;
    let mut header = [0u8; VLAN_ETH_LEN];
    burst.decide_each(mask, |i, p| {
        let j = slot(i);
        let way = u16::from(s.way[j]);
        if way != made_for {
            // (verify-recv put only DX-bound packets in the mask: no way out otherwise.)
            let Class::Dx { vlan, router_mac } = s.class(j) else { return Err(DropReason::UnknownDestination) };
            header = vlan_ethernet_ipv4(router_mac, mac, vlan);
            made_for = way;
        }
        push_template(p, &header).map(|()| out)
    });
}

/// `endpoint`: the VPC encapsulation towards the endpoint's S3 front end, VNI = source VPC
/// = the sender's VPC, plus the 64-bit VPC endpoint ID option; inner source unchanged; out
/// of the services side. The header is a [`FixedTemplate`] made once per endpoint, front
/// end and VPC (kept in the scratch across bursts while they stay the same), then per
/// packet a copy with its length, checksum and source port patched (what
/// [`push_outer`](crate::common::push_outer) writes, with the same refusals in the same
/// order).
fn endpoint<B: PacketBuf>(burst: &mut Burst<B>, tables: &Tables, s: &mut Scratch, outputs: EdgeOutputs) {
    let mask = s.endpoint;
    let Some(out) = port_or_drop(burst, mask, outputs.services) else { return };
    let pa = tables.pa();
    // The way out whose class and template the previous packet used: a way out is one VPC
    // and one route within a burst, so its packets share the endpoint, the front end and
    // the VNI, and the template's key is looked at once per way (way indices are below
    // MAX_BURST).
    let mut made_for = u16::MAX;
    burst.decide_each(mask, |i, p| {
        let j = slot(i);
        let way = u16::from(s.way[j]);
        if p.len() > VPC_MTU {
            return Err(DropReason::MtuExceeded);
        }
        if p.headroom() < OUTER_HEADER_LEN_WITH_ENDPOINT {
            return Err(DropReason::NoRoom);
        }
        if way != made_for {
            // (verify-recv put only endpoint-bound packets in the mask: no way out otherwise.)
            let Class::Endpoint { id, front_end_pa } = s.class(j) else { return Err(DropReason::UnknownDestination) };
            let vni = s.vni[j];
            let key = (id, front_end_pa, vni, pa);
            made_for = way;
            if !matches!(&s.endpoint_template, Some((k, _)) if *k == key) {
                let encap = Encap {
                    src_mac: card_mac(pa),
                    dst_mac: UNDERLAY_ROUTER_MAC,
                    src_pa: pa,
                    dst_pa: front_end_pa,
                    vni,
                    source_vpc: vni,
                };
                let template = OuterTemplate::with_endpoint(&encap, id.0).map(|t| t.fixed(u32::from(front_end_pa), vni));
                s.endpoint_template = Some((key, template));
            }
        }
        // A VNI over 24 bits, which no loaded topology has. (By reference: the template is
        // copied once, into the packet.)
        let Some((_, Some(template))) = &s.endpoint_template else { return Err(DropReason::Unsupported) };
        let (inner_len, hash) = (p.len(), inner_flow_hash(p.data()));
        let head = p.prepend(OUTER_HEADER_LEN_WITH_ENDPOINT).ok().and_then(|h| <&mut [u8; OUTER_HEADER_LEN_WITH_ENDPOINT]>::try_from(h).ok());
        let head = head.ok_or(DropReason::NoRoom)?;
        template.write(head, inner_len, hash);
        Ok(out)
    });
}
