//! What both edge pipelines share: the outputs, the Ethernet headers the edge writes, and
//! the `encap` stage that carries packets from outside back to the host of their
//! destination. (The per-burst context is the card context both cards share,
//! [`pipeline::CardCtx`].)

use std::net::Ipv4Addr;

use arrayvec::ArrayVec;

use mapping_client::{Location, Tables};
use pipeline::{bit, slot, Burst, DropReason, Output, Stage, Verdict, MAX_BURST};
use wire::vpc::{self, card_mac, Encap, UNDERLAY_ROUTER_MAC, VPC_MTU};
use wire::{EthernetAddress, PacketBuf};

use crate::aead::{Aead, AeadJob};

/// `edge_stage!(Name: Id, [drops], Ctx [generics], |cx| takes, |burst, cx| run)`: a stage
/// of an edge pipeline: the struct, its [`StageInfo`](pipeline::StageInfo) and its
/// [`Stage`] over the context `Ctx` (with the extra generic parameters in brackets).
macro_rules! edge_stage {
    (
        $(#[$doc:meta])* $name:ident: $id:ident, [$($drop:ident),*], $ctx:ty [$($gen:tt)*],
        |$cx:ident| $takes:expr, |$b:ident, $c:ident| $run:expr
    ) => {
        $(#[$doc])*
        struct $name;

        pipeline::stage_info!($name: $id, [$($drop),*]);

        impl<B: wire::PacketBuf, $($gen)*> pipeline::Stage<B, $ctx> for $name {
            #[inline(always)]
            fn takes(&self, $cx: &$ctx) -> u64 {
                $takes
            }

            #[inline]
            fn process(&mut self, $b: &mut pipeline::Burst<B>, $c: &mut $ctx) {
                $run
            }
        }
    };
}

/// Ethernet destination of everything the edge sends out of its internet side: the
/// internet next hop, as if one upstream router took every packet (see the crate docs).
pub const INTERNET_NEXT_HOP_MAC: EthernetAddress =
    EthernetAddress([0x02, 0x00, 0x00, 0xfe, 0x00, 0x02]);

/// The MTU of the internet side (IGW and VPN): what fits one standard Ethernet frame.
pub const INTERNET_MTU: usize = 1500;

pub(crate) const ETH_LEN: usize = 14;
pub(crate) const VLAN_ETH_LEN: usize = 18;

/// Where an edge's packets go. `None`: this process has no such port; packets for it are
/// dropped `unknown_destination`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeOutputs {
    /// Towards the hosts: the in-process fabric (or the edge's underlay port).
    pub fabric: Output,
    /// `edge:EDGE:internet` (internet gateway and VPN).
    pub internet: Option<Output>,
    /// `edge:EDGE:dx` (Direct Connect).
    pub dx: Option<Output>,
    /// `edge:EDGE:services` (S3 front ends).
    pub services: Option<Output>,
}

/// Source and destination of the IPv4 header at the start of `ip`.
#[inline(always)]
pub(crate) fn addrs(ip: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let h = ip.get(12..20)?;
    Some((
        Ipv4Addr::new(h[0], h[1], h[2], h[3]),
        Ipv4Addr::new(h[4], h[5], h[6], h[7]),
    ))
}

/// Cut Ethernet padding so the buffer is exactly the IPv4 packet of `total` bytes.
#[inline(always)]
pub(crate) fn trim_to<B: PacketBuf>(p: &mut B, total: usize) -> Result<(), DropReason> {
    p.trim(p.len().saturating_sub(total)).map_err(|_| DropReason::Malformed)
}

/// Prepend the two addresses and `rest` (the EtherType, or an 802.1Q tag and the
/// EtherType).
#[inline(always)]
fn push_header<B: PacketBuf>(p: &mut B, dst: EthernetAddress, src: EthernetAddress, rest: &[u8]) -> Result<(), DropReason> {
    let h = p.prepend(12 + rest.len()).map_err(|_| DropReason::NoRoom)?;
    h[..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..].copy_from_slice(rest);
    Ok(())
}

/// The Ethernet II header carrying IPv4 that [`push_ethernet`] prepends. Made once a
/// burst and copied into every packet: not inlined, so the header is one block in memory
/// that [`push_template`] copies with two moves, not the bytes of its fields stored one
/// by one.
#[inline(never)]
pub(crate) fn ethernet_ipv4(dst: EthernetAddress, src: EthernetAddress) -> [u8; 14] {
    let mut h = [0u8; 14];
    h[..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..].copy_from_slice(&[0x08, 0x00]);
    h
}

/// Prepend an Ethernet II header carrying IPv4.
#[inline(always)]
pub(crate) fn push_ethernet<B: PacketBuf>(
    p: &mut B,
    dst: EthernetAddress,
    src: EthernetAddress,
) -> Result<(), DropReason> {
    push_header(p, dst, src, &[0x08, 0x00])
}

/// The Ethernet header with an 802.1Q tag carrying IPv4 that [`push_vlan_ethernet`]
/// prepends (not inlined, as [`ethernet_ipv4`]).
#[inline(never)]
pub(crate) fn vlan_ethernet_ipv4(dst: EthernetAddress, src: EthernetAddress, vlan: u16) -> [u8; VLAN_ETH_LEN] {
    let [hi, lo] = (vlan & 0x0fff).to_be_bytes();
    let mut h = [0u8; VLAN_ETH_LEN];
    h[..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..].copy_from_slice(&[0x81, 0x00, hi, lo, 0x08, 0x00]);
    h
}

/// Prepend a whole header made beforehand ([`ethernet_ipv4`], [`vlan_ethernet_ipv4`]):
/// one fixed-size copy per packet instead of field-by-field writes; the same bytes and the
/// same refusal (`no_room`) as [`push_ethernet`] and [`push_vlan_ethernet`].
#[inline(always)]
pub(crate) fn push_template<B: PacketBuf, const N: usize>(p: &mut B, h: &[u8; N]) -> Result<(), DropReason> {
    let head = p.prepend(N).map_err(|_| DropReason::NoRoom)?;
    let head = <&mut [u8; N]>::try_from(head).map_err(|_| DropReason::NoRoom)?;
    *head = *h;
    Ok(())
}

/// Prepend Ethernet with an 802.1Q tag (PCP 0, DEI 0, `vlan`) carrying IPv4, field by
/// field: the general form `vlan`'s [`push_template`] of [`vlan_ethernet_ipv4`] is tested
/// equal to.
#[cfg(test)]
#[inline(always)]
pub(crate) fn push_vlan_ethernet<B: PacketBuf>(
    p: &mut B,
    dst: EthernetAddress,
    src: EthernetAddress,
    vlan: u16,
) -> Result<(), DropReason> {
    let [hi, lo] = (vlan & 0x0fff).to_be_bytes();
    push_header(p, dst, src, &[0x81, 0x00, hi, lo, 0x08, 0x00])
}

/// Prepend the VPC encapsulation (ARCHITECTURE section 3) to the IPv4 packet in `p`, with
/// an endpoint ID option when `endpoint_id` is set ([`vpc::push_outer`]).
#[inline]
pub(crate) fn push_outer<B: PacketBuf>(
    p: &mut B,
    encap: &Encap,
    endpoint_id: Option<u64>,
) -> Result<(), DropReason> {
    if p.len() > VPC_MTU {
        return Err(DropReason::MtuExceeded);
    }
    if p.headroom() < vpc::outer_len(endpoint_id) {
        return Err(DropReason::NoRoom);
    }
    // What is left to refuse: a VNI over 24 bits, which no loaded topology has.
    vpc::push_outer(p, encap, endpoint_id).map_err(|_| DropReason::Unsupported)
}

/// Per-slot state of the packets going back to hosts: the VPC and the (inner)
/// destination to look up.
pub(crate) struct ToHosts {
    pub vni: [u32; MAX_BURST],
    pub dst: [Ipv4Addr; MAX_BURST],
    /// Slots bound for a host.
    pub mask: u64,
    keys: [(u32, Ipv4Addr); MAX_BURST],
    locs: [Option<Location>; MAX_BURST],
    slots: [u8; MAX_BURST],
}

impl ToHosts {
    pub fn new() -> Self {
        ToHosts {
            vni: [0; MAX_BURST],
            dst: [Ipv4Addr::UNSPECIFIED; MAX_BURST],
            mask: 0,
            keys: [(0, Ipv4Addr::UNSPECIFIED); MAX_BURST],
            locs: [None; MAX_BURST],
            slots: [0; MAX_BURST],
        }
    }

    /// Mark slot `i` as going to the host of (`vni`, `dst`).
    #[inline(always)]
    pub fn add(&mut self, i: usize, vni: u32, dst: Ipv4Addr) {
        let j = slot(i);
        self.vni[j] = vni;
        self.dst[j] = dst;
        self.mask |= bit(i);
    }
}

/// What `encap` works on: the edge's tables, the packets bound for hosts, the way to them.
pub(crate) struct HostsCtx<'a> {
    pub tables: &'a Tables,
    pub to: &'a mut ToHosts,
    pub fabric: Output,
}

/// `encap`: one burst lookup of every (VPC, destination) bound for a host (the slots of
/// `to.mask`), then the VPC encapsulation from this edge (source VPC = VNI = the packet's
/// VPC) towards the host's PA, out to `fabric`. A destination the edge's cache does not
/// know: `no_mapping`.
pub(crate) struct EncapToHosts;

pipeline::stage_info!(EncapToHosts: Encap, [NoMapping, MtuExceeded, NoRoom, Unsupported]);

impl<B: PacketBuf> Stage<B, HostsCtx<'_>> for EncapToHosts {
    #[inline(always)]
    fn takes(&self, cx: &HostsCtx<'_>) -> u64 {
        cx.to.mask
    }

    fn process(&mut self, burst: &mut Burst<B>, cx: &mut HostsCtx<'_>) {
        encap_to_hosts(burst, cx.tables, cx.to, cx.fabric);
    }
}

#[inline(always)]
fn encap_to_hosts<B: PacketBuf>(burst: &mut Burst<B>, tables: &Tables, to: &mut ToHosts, fabric: Output) {
    let mask = to.mask & burst.live_mask();
    to.mask = 0;
    let mut n = 0usize;
    for i in burst.live_indices() {
        if mask & bit(i) == 0 {
            continue;
        }
        let j = slot(i);
        to.keys[slot(n)] = (to.vni[j], to.dst[j]);
        to.slots[slot(n)] = j as u8;
        n += 1;
    }
    let n = n.min(MAX_BURST);
    tables.lookup_burst(&to.keys[..n], &mut to.locs[..n]);
    let pa = tables.pa();
    for k in 0..n {
        let i = usize::from(to.slots[k]);
        let (vni, _) = to.keys[k];
        let Some(loc) = to.locs[k] else {
            burst.drop(i, DropReason::NoMapping);
            continue;
        };
        let encap = Encap {
            src_mac: card_mac(pa),
            dst_mac: UNDERLAY_ROUTER_MAC,
            src_pa: pa,
            dst_pa: loc.pa,
            vni,
            source_vpc: vni,
        };
        let verdict = match burst.get_mut(i) {
            Some(p) => match push_outer(p, &encap, None) {
                Ok(()) => Verdict::Forward(fabric),
                Err(reason) => Verdict::Drop(reason),
            },
            None => continue,
        };
        burst.decide(i, verdict);
    }
}

/// The port the live packets of `mask` leave by; without one in this process (`None`),
/// they are dropped `unknown_destination` and so is the answer.
pub(crate) fn port_or_drop<B: PacketBuf>(burst: &mut Burst<B>, mask: u64, port: Option<Output>) -> Option<Output> {
    if port.is_none() {
        for i in burst.live_indices() {
            if mask & bit(i) != 0 {
                burst.drop(i, DropReason::UnknownDestination);
            }
        }
    }
    port
}

/// A cipher's burst call over the live packets of `mask`, in slot order: `key` names each
/// packet's SA, `cipher` finds that SA's cipher, `job` cuts the packet's cipher job out of
/// its bytes, and `run` (a [`Aead::seal_burst`] or [`Aead::open_burst`]) does one call per
/// run of consecutive packets of the same SA. Returns the packets a call took and those
/// whose job came back `ok`; a packet whose SA has no cipher or whose job could not be cut
/// is in neither.
pub(crate) fn cipher_runs<'b, 'c, B, K, C>(
    burst: &'b mut Burst<B>,
    mask: u64,
    key: impl Fn(usize) -> K,
    cipher: impl Fn(K) -> Option<&'c C>,
    job: impl Fn(usize, &'b mut [u8]) -> Option<AeadJob<'b>>,
    run: impl Fn(&C, &mut [AeadJob<'b>]),
) -> (u64, u64)
where
    B: PacketBuf,
    K: PartialEq + Copy,
    C: Aead + 'c,
{
    let mut jobs: ArrayVec<AeadJob<'b>, MAX_BURST> = ArrayVec::new();
    // The slots of `jobs`, whose bits ascend as the jobs do.
    let (mut in_jobs, mut done, mut ok) = (0u64, 0u64, 0u64);
    let mut group: Option<(K, &'c C)> = None;
    let mut flush = |group: Option<(K, &'c C)>, jobs: &mut ArrayVec<AeadJob<'b>, MAX_BURST>, in_jobs: &mut u64| {
        if let Some((_, c)) = group {
            run(c, jobs);
            done |= *in_jobs;
            let mut slots = *in_jobs;
            for j in jobs.iter() {
                let i = slots.trailing_zeros() as usize;
                slots &= slots.wrapping_sub(1);
                if j.ok {
                    ok |= bit(i);
                }
            }
        }
        jobs.clear();
        *in_jobs = 0;
    };
    for (i, p) in burst.live_mut() {
        if mask & bit(i) == 0 {
            continue;
        }
        let k = key(i);
        if group.is_some_and(|(g, _)| g != k) {
            flush(group.take(), &mut jobs, &mut in_jobs);
        }
        if group.is_none() {
            group = cipher(k).map(|c| (k, c));
        }
        if let (Some(_), Some(j)) = (group, job(i, p.data_mut())) {
            jobs.push(j);
            in_jobs |= bit(i);
        }
    }
    flush(group, &mut jobs, &mut in_jobs);
    (done, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wire::TestBuffer;

    fn mac() -> impl Strategy<Value = EthernetAddress> {
        any::<[u8; 6]>().prop_map(EthernetAddress)
    }

    proptest! {
        /// A header made once and copied whole writes what the field-by-field prepends
        /// write, and refuses (`no_room`, buffer untouched) where they refuse.
        #[test]
        fn prop_template_equals_field_writes(
            dst in mac(),
            src in mac(),
            vlan in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..80),
            headroom in 0usize..24,
        ) {
            let buffer = || TestBuffer::from_slice_with_room(&data, headroom, 4);

            let (mut general, mut fast) = (buffer(), buffer());
            let g = push_ethernet(&mut general, dst, src);
            let f = push_template(&mut fast, &ethernet_ipv4(dst, src));
            prop_assert_eq!(g, f);
            prop_assert_eq!(general.data(), fast.data());
            prop_assert_eq!(g.is_ok(), headroom >= ETH_LEN);

            let (mut general, mut fast) = (buffer(), buffer());
            let g = push_vlan_ethernet(&mut general, dst, src, vlan);
            let f = push_template(&mut fast, &vlan_ethernet_ipv4(dst, src, vlan));
            prop_assert_eq!(g, f);
            prop_assert_eq!(general.data(), fast.data());
            prop_assert_eq!(g.is_ok(), headroom >= VLAN_ETH_LEN);
            if g.is_ok() {
                prop_assert_eq!(&fast.data()[VLAN_ETH_LEN..], &data[..]);
            }
        }
    }
}
