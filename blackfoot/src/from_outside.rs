//! From outside ([`FromOutside`]): what arrives on the edge's internet, dx and services ports. Each side has
//! its stage (`nat` + `esp-decrypt` on the internet side, `vlan` on the dx side,
//! `endpoint` on the services side), which leaves the inner IPv4 packet and its VPC; then
//! `encap` looks the destination up and sends it to its host.

use std::net::Ipv4Addr;

use mapping_client::Tables;
use pipeline::underlay::ipv4_header;
use pipeline::{
    bit, drop_row, run_timed_chained, slot, Burst, CardCtx, Clock, DropReason, DropTable, Meters, Output,
    StageId, MAX_BURST,
};
use wire::vpc::{self, card_mac};
use wire::PacketBuf;

use crate::common::{
    addrs, cipher_runs, trim_to, EdgeOutputs, EncapToHosts, HostsCtx, ToHosts, ETH_LEN, VLAN_ETH_LEN,
};
use crate::sa::InboundSas;
use crate::{esp, nat};

/// Which outside port a burst came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `edge:EDGE:internet`: Elastic IPs and VPN tunnels.
    Internet,
    /// `edge:EDGE:dx`: 802.1Q-tagged Direct Connect traffic.
    Dx,
    /// `edge:EDGE:services`: Geneve from S3 front ends.
    Services,
}

const IPPROTO_ESP: u8 = 50;

struct Scratch {
    /// Internet side: slots that are ESP (the rest of the parsed ones are NAT).
    esp: u64,
    nat: u64,
    /// Per slot: the (Elastic IP, VNI, private address) of a NAT packet.
    eip: [(Ipv4Addr, u32, Ipv4Addr); MAX_BURST],
    to: ToHosts,
    /// esp-decrypt: per slot its SPI, outer source and destination, and what the checks
    /// before the cipher found.
    spi: [u32; MAX_BURST],
    outer: [(Ipv4Addr, Ipv4Addr); MAX_BURST],
    open: [esp::OpenPlan; MAX_BURST],
}

/// The outside pipeline of one worker for one edge. Build one per worker and edge; it
/// owns the anti-replay state of the edge's inbound SAs, so one edge's internet port
/// must be polled by one worker (one RX queue per port: the runtime's rule).
pub struct FromOutside {
    /// Where its packets go: the fabric, and ARP replies out of the internet port.
    outputs: EdgeOutputs,
    /// The edge's inbound SAs with their anti-replay windows.
    sas: InboundSas,
    /// Per-slot state between its stages.
    s: Box<Scratch>,
}

impl core::fmt::Debug for FromOutside {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FromOutside").field("outputs", &self.outputs).finish_non_exhaustive()
    }
}

impl FromOutside {
    /// The pipeline for an edge whose inbound SAs are `sas`.
    pub fn new(outputs: EdgeOutputs, sas: InboundSas) -> Self {
        let s = Scratch {
            esp: 0,
            nat: 0,
            eip: [(Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED); MAX_BURST],
            to: ToHosts::new(),
            spi: [0; MAX_BURST],
            outer: [(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED); MAX_BURST],
            open: [esp::OpenPlan::default(); MAX_BURST],
        };
        FromOutside { outputs, sas, s: Box::new(s) }
    }

    /// Every stage of the pipeline with the reasons it may drop for, in order: the
    /// internet side's, the DX side's, the services side's, then `encap`.
    pub const DROPS: DropTable = &[
        drop_row::<ClassifyInternet>(), drop_row::<EspDecrypt>(), drop_row::<NatIn>(),
        drop_row::<Untag>(), drop_row::<EndpointIn>(), drop_row::<EncapToHosts>(),
    ];

    /// Run the pipeline of `side` over a burst received on that port. Every packet leaves
    /// decided.
    pub fn process<B: PacketBuf, C: Clock>(
        &mut self,
        side: Side,
        burst: &mut Burst<B>,
        ctx: &mut CardCtx<'_, Tables>,
        clock: &C,
        meters: &mut Meters,
    ) {
        if burst.live_mask() == 0 {
            return;
        }
        let s = &mut *self.s;
        s.to.mask = 0;
        s.esp = 0;
        s.nat = 0;
        let mut cx = OutsideCtx { card: ctx, s, sas: &mut self.sas, reply: self.outputs.internet };
        let mut stamp = None;
        match side {
            Side::Internet => {
                run_timed_chained(&mut ClassifyInternet, burst, &mut cx, clock, meters, &mut stamp);
                run_timed_chained(&mut EspDecrypt, burst, &mut cx, clock, meters, &mut stamp);
                run_timed_chained(&mut NatIn, burst, &mut cx, clock, meters, &mut stamp);
            }
            Side::Dx => run_timed_chained(&mut Untag, burst, &mut cx, clock, meters, &mut stamp),
            Side::Services => run_timed_chained(&mut EndpointIn, burst, &mut cx, clock, meters, &mut stamp),
        }
        let mut hosts = HostsCtx { tables: cx.card.tables, to: &mut cx.s.to, fabric: self.outputs.fabric };
        run_timed_chained(&mut EncapToHosts, burst, &mut hosts, clock, meters, &mut stamp);
    }
}

/// What the stages of [`FromOutside`] share for one burst.
struct OutsideCtx<'c, 't> {
    card: &'c mut CardCtx<'t, Tables>,
    s: &'c mut Scratch,
    sas: &'c mut InboundSas,
    /// The internet port, for ARP replies.
    reply: Option<Output>,
}

edge_stage!(
    /// Internet side `classify`, below.
    ClassifyInternet: Classify, [ArpIgnored, Malformed, NotIpv4, NoElasticIp, UnknownDestination], OutsideCtx<'_, '_> [],
    |_cx| u64::MAX,
    |b, cx| classify_internet(b, cx.card.tables, cx.s, cx.reply));
edge_stage!(
    /// Internet side `esp-decrypt` of the ESP packets, below.
    EspDecrypt: EspDecrypt, [Unsupported, Malformed, UnknownSpi, EspReplay, EspAuthFailed, VpnPolicy], OutsideCtx<'_, '_> [],
    |cx| cx.s.esp,
    |b, cx| esp_decrypt(b, cx.card, cx.sas, cx.s));
edge_stage!(
    /// Internet side `nat` of the packets to an Elastic IP, below.
    NatIn: Nat, [Malformed, NoElasticIp], OutsideCtx<'_, '_> [],
    |cx| cx.s.nat, |b, cx| nat_in(b, cx.s));
edge_stage!(
    /// DX side `vlan`, below.
    Untag: Vlan, [UnknownVlan, NotIpv4, Malformed], OutsideCtx<'_, '_> [],
    |_cx| u64::MAX, |b, cx| untag(b, cx.card.tables, cx.s));
edge_stage!(
    /// Services side `endpoint`, below.
    EndpointIn: Endpoint, [Unsupported, Malformed, UnknownDestination, UnknownEndpoint, EndpointMismatch], OutsideCtx<'_, '_> [],
    |_cx| u64::MAX,
    |b, cx| endpoint_in(b, cx.card, cx.s));

/// Strip Ethernet (type IPv4 required) and padding; the IPv4 header must be sound.
#[inline(always)]
fn strip_ethernet<B: PacketBuf>(p: &mut B) -> Result<(), DropReason> {
    let d = p.data();
    let ty = d.get(12..14).ok_or(DropReason::Malformed)?;
    if ty != [0x08, 0x00] {
        return Err(DropReason::NotIpv4);
    }
    let total = ipv4_header(d.get(ETH_LEN..).ok_or(DropReason::Malformed)?)?;
    p.adj(ETH_LEN).map_err(|_| DropReason::Malformed)?;
    trim_to(p, total)
}

/// Internet side `classify`: ARP requests for an Elastic IP or a tunnel address of this
/// edge are answered with the edge's MAC (out of `reply`, the internet port; any other ARP
/// is `arp_ignored`); otherwise Ethernet/IPv4 only; ESP (protocol 50) to a tunnel address
/// of this edge -> `esp-decrypt`; a destination that is an Elastic IP -> `nat`; anything
/// else `no_elastic_ip`.
fn classify_internet<B: PacketBuf>(
    burst: &mut Burst<B>,
    tables: &Tables,
    s: &mut Scratch,
    reply: Option<Output>,
) {
    for i in burst.live_indices() {
        let Some(p) = burst.get_mut(i) else { continue };
        if p.data().get(12..14) == Some(&[0x08, 0x06][..]) {
            let verdict = match (answer_arp(p, tables), reply) {
                (Ok(()), Some(out)) => pipeline::Verdict::Forward(out),
                (Ok(()), None) => pipeline::Verdict::Drop(DropReason::UnknownDestination),
                (Err(reason), _) => pipeline::Verdict::Drop(reason),
            };
            burst.decide(i, verdict);
            continue;
        }
        if let Err(reason) = strip_ethernet(p) {
            burst.drop(i, reason);
            continue;
        }
        let d = p.data();
        let Some((_, dst)) = addrs(d) else {
            burst.drop(i, DropReason::Malformed);
            continue;
        };
        let proto = d.get(9).copied().unwrap_or(0);
        if proto == IPPROTO_ESP && tables.is_tunnel_address(dst) {
            s.esp |= bit(i);
            continue;
        }
        match tables.elastic_ip_target(dst) {
            Some((vni, private)) => {
                s.eip[slot(i)] = (dst, vni, private);
                s.nat |= bit(i);
            }
            None => {
                burst.drop(i, DropReason::NoElasticIp);
            }
        }
    }
}

/// Answer an ARP request for an Elastic IP or a tunnel address of this edge in place, with
/// the edge's MAC ([`pipeline::arp::respond`]).
#[inline(always)]
fn answer_arp<B: PacketBuf>(p: &mut B, tables: &Tables) -> Result<(), DropReason> {
    pipeline::arp::respond(p, |request| {
        let target = request.target_protocol_addr;
        let ours = tables.elastic_ip_target(target).is_some() || tables.is_tunnel_address(target);
        if !ours || request.source_protocol_addr == target {
            return Err(DropReason::ArpIgnored);
        }
        Ok(card_mac(tables.pa()))
    })
}

/// `nat` in: DNAT the Elastic IP to the private address; then to its host.
fn nat_in<B: PacketBuf>(burst: &mut Burst<B>, s: &mut Scratch) {
    let mask = s.nat;
    for i in burst.live_indices() {
        if mask & bit(i) == 0 {
            continue;
        }
        let (eip, vni, private) = s.eip[slot(i)];
        let Some(p) = burst.get_mut(i) else { continue };
        match nat::dnat(p.data_mut(), eip, private) {
            Ok(()) => s.to.add(i, vni, private),
            Err(reason) => {
                burst.drop(i, reason);
            }
        }
    }
}

/// `esp-decrypt`: outer header off (fragments of tunnel packets are `unsupported`); SA by
/// SPI (`unknown_spi`), anti-replay (`esp_replay`), decrypt and verify (`esp_auth_failed`,
/// alert); the inner source must be in the VPN's remote prefixes and the destination in
/// the VPC (`vpn_policy`, alert).
///
/// In three passes: the checks before the cipher for every packet, then the cipher opens
/// the burst in one call per run of packets of the same SA
/// ([`Aead::open_burst`](crate::aead::Aead::open_burst)), then the anti-replay update
/// (checked again: a burst may hold a number twice), the trailer and the policy.
fn esp_decrypt<B: PacketBuf>(
    burst: &mut Burst<B>,
    cx: &mut CardCtx<'_, Tables>,
    sas: &mut InboundSas,
    s: &mut Scratch,
) {
    let mask = s.esp;
    let tables = cx.tables;
    let mut opening = 0u64;
    let mut last = None;
    for i in burst.live_indices() {
        if mask & bit(i) == 0 {
            continue;
        }
        let Some(p) = burst.get_mut(i) else { continue };
        let d = p.data();
        let (outer_src, outer_dst) = addrs(d).unwrap_or((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
        let ihl = usize::from(d.first().copied().unwrap_or(0) & 0x0f) * 4;
        let frag = d.get(6..8).map_or(0, |f| u16::from_be_bytes([f[0], f[1]]) & 0x3fff);
        if frag != 0 {
            burst.drop(i, DropReason::Unsupported);
            continue;
        }
        if p.adj(ihl).is_err() {
            burst.drop(i, DropReason::Malformed);
            continue;
        }
        let Some(spi) = esp::parse_spi(p.data()) else {
            burst.drop(i, DropReason::Malformed);
            continue;
        };
        let (vpn, sa) = match last {
            Some((k, vpn, sa)) if k == spi => (vpn, sa),
            _ => {
                let found = (tables.sa_by_spi(spi), sas.get(spi));
                last = Some((spi, found.0, found.1));
                found
            }
        };
        let (Some(_), Some(sa)) = (vpn.filter(|v| v.local == outer_dst), sa) else {
            burst.drop(i, DropReason::UnknownSpi);
            continue;
        };
        match esp::decrypt_check(p.data(), sa) {
            Ok(plan) => {
                let j = slot(i);
                (s.spi[j], s.outer[j], s.open[j]) = (spi, (outer_src, outer_dst), plan);
                opening |= bit(i);
            }
            Err(reason) => {
                burst.drop(i, reason);
            }
        }
    }
    let (_, authentic) = cipher_runs(
        burst,
        opening,
        |i| s.spi[slot(i)],
        |spi| sas.get(spi).map(|sa| sa.aead()),
        |i, data| s.open[slot(i)].job(data),
        |c, jobs| c.open_burst(jobs),
    );
    let mut last = None;
    for i in burst.live_indices() {
        if opening & bit(i) == 0 {
            continue;
        }
        let j = slot(i);
        let (spi, (outer_src, outer_dst)) = (s.spi[j], s.outer[j]);
        if last.as_ref().map_or(true, |(k, _, _)| *k != spi) {
            last = Some((spi, tables.sa_by_spi(spi), sas.get_mut(spi)));
        }
        let (Some(vpn), Some(sa), Some(p)) = (
            last.as_ref().and_then(|l| l.1),
            last.as_mut().and_then(|l| l.2.as_deref_mut()),
            burst.get_mut(i),
        ) else {
            burst.drop(i, DropReason::UnknownSpi);
            continue;
        };
        if let Err(reason) = esp::decrypt_finish(p, sa, s.open[j], authentic & bit(i) != 0) {
            if reason == DropReason::EspAuthFailed {
                cx.alert(reason, StageId::EspDecrypt, None, vpn.vni, None, outer_src, outer_dst);
            }
            burst.drop(i, reason);
            continue;
        }
        let Some((src, dst)) = addrs(p.data()) else {
            burst.drop(i, DropReason::Malformed);
            continue;
        };
        let in_vpc = tables.vpc(vpn.vni).is_some_and(|v| v.cidr.contains(dst));
        if !(in_vpc && vpn.remote_prefixes.iter().any(|c| c.contains(src))) {
            cx.alert(DropReason::VpnPolicy, StageId::EspDecrypt, None, vpn.vni, None, src, dst);
            burst.drop(i, DropReason::VpnPolicy);
            continue;
        }
        s.to.add(i, vpn.vni, dst);
    }
}

/// DX side `vlan`: the 802.1Q tag names the VIF (`unknown_vlan` for an unknown VLAN or an
/// untagged frame), whose VPC the packet enters; the tag and Ethernet come off.
fn untag<B: PacketBuf>(burst: &mut Burst<B>, tables: &Tables, s: &mut Scratch) {
    for i in burst.live_indices() {
        let Some(p) = burst.get_mut(i) else { continue };
        let r = (|| {
            let d = p.data();
            let h = d.get(..VLAN_ETH_LEN).ok_or(DropReason::Malformed)?;
            if h[12..14] != [0x81, 0x00] {
                return Err(DropReason::UnknownVlan);
            }
            let vid = u16::from_be_bytes([h[14], h[15]]) & 0x0fff;
            let vif = tables.vif(vid).ok_or(DropReason::UnknownVlan)?;
            if h[16..18] != [0x08, 0x00] {
                return Err(DropReason::NotIpv4);
            }
            let total = ipv4_header(d.get(VLAN_ETH_LEN..).ok_or(DropReason::Malformed)?)?;
            let vni = vif.vni;
            p.adj(VLAN_ETH_LEN).map_err(|_| DropReason::Malformed)?;
            trim_to(p, total)?;
            let (_, dst) = addrs(p.data()).ok_or(DropReason::Malformed)?;
            Ok((vni, dst))
        })();
        match r {
            Ok((vni, dst)) => s.to.add(i, vni, dst),
            Err(reason) => {
                burst.drop(i, reason);
            }
        }
    }
}

/// Services side `endpoint`: Geneve to this edge from the endpoint's front end, with an
/// endpoint ID option naming an endpoint of this edge (`unknown_endpoint`) that belongs
/// to the VNI's VPC (`endpoint_mismatch`, alert); the outer header comes off.
fn endpoint_in<B: PacketBuf>(burst: &mut Burst<B>, cx: &mut CardCtx<'_, Tables>, s: &mut Scratch) {
    let tables = cx.tables;
    let pa = tables.pa();
    for i in burst.live_indices() {
        let Some(p) = burst.get_mut(i) else { continue };
        let o = match vpc::parse_outer(p.data()) {
            Ok(o) => o,
            Err(e) => {
                burst.drop(i, e.into());
                continue;
            }
        };
        if o.dst_pa != pa {
            burst.drop(i, DropReason::UnknownDestination);
            continue;
        }
        let inner = p.data().get(o.inner_offset..o.inner_offset + o.inner_len);
        let Some((src, dst)) = inner.filter(|d| ipv4_header(d) == Ok(o.inner_len)).and_then(addrs) else {
            burst.drop(i, DropReason::Malformed);
            continue;
        };
        let Some(ep) = o.endpoint_id.and_then(|id| tables.endpoint(mapping_client::EndpointId(id))) else {
            burst.drop(i, DropReason::UnknownEndpoint);
            continue;
        };
        if ep.vni != o.vni || o.source_vpc != o.vni || ep.front_end_pa != o.src_pa {
            let reason = DropReason::EndpointMismatch;
            cx.alert(reason, StageId::Endpoint, None, o.vni, (ep.vni != o.vni).then_some(ep.vni), src, dst);
            burst.drop(i, reason);
            continue;
        }
        let padding = p.len().saturating_sub(o.inner_offset + o.inner_len);
        if p.trim(padding).is_err() || p.adj(o.inner_offset).is_err() {
            burst.drop(i, DropReason::Malformed);
            continue;
        }
        s.to.add(i, o.vni, dst);
    }
}
