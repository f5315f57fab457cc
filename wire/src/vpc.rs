//! The VPC encapsulation of ARCHITECTURE section 3, and its hot path.
//!
//! ```text
//! 0   Ethernet   dst MAC, src MAC, 0x0800                                  14 bytes
//! 14  IPv4       0x45, total length, ident 0, DF, TTL 64, proto 17, csum   20 bytes
//! 34  UDP        src 49152 + flow hash % 16384, dst 6081, length, csum 0    8 bytes
//! 42  Geneve     ver 0, opt_len 2, O 0, C 0, protocol 0x0800, VNI           8 bytes
//! 50  option     class 0xFFF0, type 0x01, len 1, source VPC (24 bits)       8 bytes
//! 58  inner IPv4 packet
//! ```
//!
//! Towards an S3 front end the endpoint-ID option (class 0x0108, type 0x01, len 2) follows
//! the source-VPC option: opt_len 5, a 70-byte outer header.
//!
//! Contract:
//! * [`emit_outer`] writes all 58 bytes (every field, reserved ones zeroed): three range
//!   checks, then stores at fixed offsets, no loop; [`Error::Overflow`] for a VNI or
//!   source VPC over 24 bits or an inner packet that would push the outer total length
//!   past 65535.
//! * [`parse_outer`] validates what a receiving card must before trusting the header:
//!   Ethernet type IPv4 without VLAN, IPv4 without options, not a fragment, correct header
//!   checksum, total length within the frame (Ethernet padding allowed after it), UDP to
//!   6081 with a length matching the IP total length, UDP checksum verified when non-zero,
//!   Geneve version 0, not OAM, protocol 0x0800, exactly one source-VPC option, at most one
//!   endpoint-ID option, no unknown critical option, and an inner packet that starts as
//!   IPv4. Our own 58-byte layout is recognised on fixed offsets; any other option layout
//!   goes through the bounds-safe option walk. It never panics.
//! * [`OuterTemplate`]: the 58 bytes written once for many packets of one card and source
//!   VPC, then patched per packet on the named [`offset`]s (what `emit_outer` writes, byte
//!   for byte); [`FixedTemplate`], one with its destination and VNI written in, for packets
//!   that share those too.
//! * The addresses both cards use: [`card_mac`], [`UNDERLAY_ROUTER_MAC`],
//!   [`subnet_router_mac`]; and [`ipv4_header`], the fast IPv4 header check both cards
//!   make before trusting an inner header.
//! * Errors: [`Error::Truncated`] (frame shorter than the headers or the IP total length),
//!   [`Error::Checksum`], [`Error::Unsupported`] (not vpcemu's encapsulation: another
//!   EtherType, protocol, port, version, a fragment, an unknown critical option), and
//!   [`Error::Malformed`] (lengths that disagree, a missing or doubled source-VPC option).

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::checksum::{self, fold32};
use crate::ethernet::EthernetAddress;
use crate::geneve::{self, Options};
use crate::{read_u16, read_u32, Error, Result};

/// UDP destination port of the encapsulation (Geneve).
pub const GENEVE_PORT: u16 = geneve::PORT;
/// Outer Ethernet header.
pub const OUTER_ETH_LEN: usize = 14;
/// Outer IPv4 header (no options).
pub const OUTER_IPV4_LEN: usize = 20;
/// Outer UDP header.
pub const OUTER_UDP_LEN: usize = 8;
/// Geneve base header.
pub const GENEVE_LEN: usize = 8;
/// The source-VPC option.
pub const SOURCE_VPC_OPTION_LEN: usize = geneve::SOURCE_VPC_OPTION_LEN;
/// The endpoint-ID option.
pub const ENDPOINT_ID_OPTION_LEN: usize = geneve::ENDPOINT_ID_OPTION_LEN;
/// The whole outer header: 14 + 20 + 8 + 8 + 8 = 58.
pub const OUTER_HEADER_LEN: usize =
    OUTER_ETH_LEN + OUTER_IPV4_LEN + OUTER_UDP_LEN + GENEVE_LEN + SOURCE_VPC_OPTION_LEN;
/// The outer header with the endpoint-ID option too: 70.
pub const OUTER_HEADER_LEN_WITH_ENDPOINT: usize = OUTER_HEADER_LEN + ENDPOINT_ID_OPTION_LEN;
/// Largest inner packet (the VPC MTU).
pub const VPC_MTU: usize = 9001;
/// Smallest underlay IP MTU that carries a VPC_MTU inner packet with both options.
pub const UNDERLAY_MTU: usize = VPC_MTU + OUTER_HEADER_LEN_WITH_ENDPOINT - OUTER_ETH_LEN;
/// TTL of the outer header.
pub const OUTER_TTL: u8 = 64;
/// First UDP source port of the flow-hash range.
pub const SRC_PORT_BASE: u16 = 49152;
/// Size of the flow-hash source port range.
pub const SRC_PORT_RANGE: u16 = 16384;
/// Largest VNI or VPC number (24 bits).
pub const VNI_MAX: u32 = geneve::VNI_MAX;

/// Byte offsets in the 58-byte outer header (what [`OuterTemplate`] patches, what a
/// switch reads: [`offset::IP_DST`] is the destination PA).
pub mod offset {
    #![allow(missing_docs)]
    pub const ETH_DST: usize = 0;
    pub const ETH_SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const IP: usize = 14;
    pub const IP_TOTAL_LEN: usize = 16;
    pub const IP_IDENT: usize = 18;
    pub const IP_FLAGS: usize = 20;
    pub const IP_TTL: usize = 22;
    pub const IP_PROTOCOL: usize = 23;
    pub const IP_CHECKSUM: usize = 24;
    pub const IP_SRC: usize = 26;
    pub const IP_DST: usize = 30;
    pub const UDP: usize = 34;
    pub const UDP_DST: usize = 36;
    pub const UDP_LEN: usize = 38;
    pub const UDP_CHECKSUM: usize = 40;
    pub const GENEVE: usize = 42;
    pub const GENEVE_FLAGS: usize = 43;
    pub const GENEVE_PROTOCOL: usize = 44;
    pub const GENEVE_VNI: usize = 46;
    pub const OPTIONS: usize = 50;
    pub const SOURCE_VPC: usize = 54;
    pub const INNER: usize = 58;
}

/// Bytes of the outer IP total length that are not the inner packet (58 - 14).
const IP_OVERHEAD: usize = OUTER_HEADER_LEN - OUTER_ETH_LEN;

/// The MAC of a card's underlay port (a Nitro card's or an edge's, on every side):
/// `02:00:` + its PA (198.18.0.1 -> `02:00:c6:12:00:01`); the outer Ethernet source.
#[inline]
pub const fn card_mac(pa: Ipv4Addr) -> EthernetAddress {
    let [a, b, c, d] = pa.octets();
    EthernetAddress([0x02, 0x00, a, b, c, d])
}

/// Outer Ethernet destination of encapsulated packets: the underlay next hop, as if every
/// card's underlay port were routed by one top-of-rack router (`02:00:00:fe:00:01`).
pub const UNDERLAY_ROUTER_MAC: EthernetAddress =
    EthernetAddress([0x02, 0x00, 0x00, 0xfe, 0x00, 0x01]);

/// The MAC a card answers ARP with for the router of the subnet with id `subnet` (and for
/// every address of the VPC outside that subnet): `02:00:00:ff:` + the subnet id,
/// big-endian. Never an ENI's derived MAC (`02:00:` + an instance address, never
/// `0.x.x.x`).
#[inline]
pub const fn subnet_router_mac(subnet: u16) -> EthernetAddress {
    let [hi, lo] = subnet.to_be_bytes();
    EthernetAddress([0x02, 0x00, 0x00, 0xff, hi, lo])
}

/// What an encapsulating card puts in the outer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encap {
    /// Outer source MAC (the card's underlay port).
    pub src_mac: EthernetAddress,
    /// Outer destination MAC (the underlay next hop).
    pub dst_mac: EthernetAddress,
    /// Sending physical address.
    pub src_pa: Ipv4Addr,
    /// Receiving physical address.
    pub dst_pa: Ipv4Addr,
    /// Destination VPC.
    pub vni: u32,
    /// Source VPC.
    pub source_vpc: u32,
}

/// What [`parse_outer`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outer {
    /// Sending physical address.
    pub src_pa: Ipv4Addr,
    /// Receiving physical address.
    pub dst_pa: Ipv4Addr,
    /// Destination VPC.
    pub vni: u32,
    /// Source VPC.
    pub source_vpc: u32,
    /// VPC endpoint ID, when the edge added one.
    pub endpoint_id: Option<u64>,
    /// UDP source port (the sender's flow hash).
    pub src_port: u16,
    /// Offset of the inner IPv4 packet in the frame.
    pub inner_offset: usize,
    /// Length of the inner packet (Ethernet padding excluded).
    pub inner_len: usize,
}

/// The UDP source port for a flow hash: 49152 + hash % 16384.
#[inline(always)]
pub const fn src_port(flow_hash: u32) -> u16 {
    SRC_PORT_BASE + (flow_hash % SRC_PORT_RANGE as u32) as u16
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio, odd
const K2: u64 = 0xD6E8_FEB8_6659_FD93; // an odd constant with well-spread bits

/// A cheap hash of an inner 5-tuple: two independent multiplies, one xorshift, one more
/// multiply, and the high half (the best-mixed bits) as result. Not for hash tables an
/// attacker fills: for spreading flows over underlay paths.
#[inline]
pub fn flow_hash(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, src_port: u16, dst_port: u16) -> u32 {
    let a = (u32::from(src) as u64) << 32 | u32::from(dst) as u64;
    let b = (protocol as u64) << 32 | (src_port as u64) << 16 | dst_port as u64;
    mix(a, b)
}

/// [`flow_hash`] of the two words it packs the 5-tuple into: `a` the addresses, `b` the
/// protocol and the ports.
#[inline(always)]
fn mix(a: u64, b: u64) -> u32 {
    let mut h = a.wrapping_mul(K1) ^ b.wrapping_mul(K2);
    h ^= h >> 29;
    h = h.wrapping_mul(K1);
    (h >> 32) as u32
}

/// [`flow_hash`] of an inner IPv4 packet. Ports are used for TCP and UDP when the packet
/// is not a fragment (so every fragment of a datagram hashes alike); a packet too short
/// for its headers hashes what is there. The words are read whole from the header (the
/// addresses as one big-endian word, the ports as another), as `flow_hash` packs them.
#[inline]
pub fn inner_flow_hash(inner: &[u8]) -> u32 {
    let Some(h) = inner.get(..20).and_then(|h| <&[u8; 20]>::try_from(h).ok()) else { return 0 };
    let mut addrs = [0u8; 8];
    addrs.copy_from_slice(&h[12..20]);
    let protocol = h[9];
    let fragment = read_u16(h, 6) & (crate::ipv4::FLAG_MF | crate::ipv4::FRAG_OFFSET_MASK) != 0;
    let ihl = (h[0] & crate::ipv4::IHL_MASK) as usize * 4;
    let ports = match inner.get(ihl..ihl + 4) {
        Some(&[a, b, c, d]) if !fragment && (protocol == 6 || protocol == 17) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    };
    mix(u64::from_be_bytes(addrs), (protocol as u64) << 32 | ports as u64)
}

#[inline(always)]
fn put16(out: &mut [u8; OUTER_HEADER_LEN], at: usize, v: u16) {
    let b = v.to_be_bytes();
    out[at] = b[0];
    out[at + 1] = b[1];
}

#[inline(always)]
fn put32(out: &mut [u8; OUTER_HEADER_LEN], at: usize, v: u32) {
    let b = v.to_be_bytes();
    out[at] = b[0];
    out[at + 1] = b[1];
    out[at + 2] = b[2];
    out[at + 3] = b[3];
}

/// The outer IP total length, after checking every value [`write_outer`] will write.
#[inline(always)]
fn outer_total_len(encap: &Encap, inner_len: usize, opt_extra: usize) -> Result<u16> {
    if encap.vni > VNI_MAX || encap.source_vpc > VNI_MAX {
        return Err(Error::Overflow);
    }
    match inner_len.checked_add(IP_OVERHEAD + opt_extra) {
        Some(total) if total <= u16::MAX as usize => Ok(total as u16),
        _ => Err(Error::Overflow),
    }
}

/// Write the 58 bytes common to both layouts, for `opt_extra` bytes of options after the
/// source-VPC option.
#[inline(always)]
fn write_outer(
    out: &mut [u8; OUTER_HEADER_LEN],
    encap: &Encap,
    inner_len: usize,
    flow_hash: u32,
    opt_extra: usize,
) -> Result<()> {
    let total = outer_total_len(encap, inner_len, opt_extra)?;
    let src = u32::from(encap.src_pa);
    let dst = u32::from(encap.dst_pa);

    // Ethernet.
    let (d, s) = (encap.dst_mac.0, encap.src_mac.0);
    out[offset::ETH_DST..offset::ETH_DST + 6].copy_from_slice(&d);
    out[offset::ETH_SRC..offset::ETH_SRC + 6].copy_from_slice(&s);
    put16(out, offset::ETHERTYPE, 0x0800);

    // IPv4: version 4, IHL 5, DSCP 0, ident 0, DF, TTL 64, UDP.
    const VER_IHL_TOS: u16 = 0x4500;
    const FLAGS: u16 = crate::ipv4::FLAG_DF;
    const TTL_PROTO: u16 = (OUTER_TTL as u16) << 8 | 17;
    put16(out, offset::IP, VER_IHL_TOS);
    put16(out, offset::IP_TOTAL_LEN, total);
    put16(out, offset::IP_IDENT, 0);
    put16(out, offset::IP_FLAGS, FLAGS);
    out[offset::IP_TTL] = OUTER_TTL;
    out[offset::IP_PROTOCOL] = 17;
    let sum = VER_IHL_TOS as u32
        + total as u32
        + FLAGS as u32
        + TTL_PROTO as u32
        + (src >> 16)
        + (src & 0xFFFF)
        + (dst >> 16)
        + (dst & 0xFFFF);
    put16(out, offset::IP_CHECKSUM, !fold32(sum));
    put32(out, offset::IP_SRC, src);
    put32(out, offset::IP_DST, dst);

    // UDP: checksum 0 (RFC 8926 section 3.3 allows it over IPv4).
    put16(out, offset::UDP, src_port(flow_hash));
    put16(out, offset::UDP_DST, GENEVE_PORT);
    put16(out, offset::UDP_LEN, total - OUTER_IPV4_LEN as u16);
    put16(out, offset::UDP_CHECKSUM, 0);

    // Geneve: version 0, options in 4-byte words, no flags, IPv4, VNI, reserved 0.
    out[offset::GENEVE] = ((SOURCE_VPC_OPTION_LEN + opt_extra) / 4) as u8;
    out[offset::GENEVE_FLAGS] = 0;
    put16(out, offset::GENEVE_PROTOCOL, 0x0800);
    put32(out, offset::GENEVE_VNI, encap.vni << 8);

    // Source-VPC option.
    put16(out, offset::OPTIONS, geneve::CLASS_VPCEMU);
    out[offset::OPTIONS + 2] = geneve::TYPE_SOURCE_VPC;
    out[offset::OPTIONS + 3] = 1;
    put32(out, offset::SOURCE_VPC, encap.source_vpc);
    Ok(())
}

/// Write the 58-byte outer header for an inner packet of `inner_len` bytes; see the
/// module contract. `flow_hash` picks the UDP source port ([`inner_flow_hash`]).
#[inline]
pub fn emit_outer(
    out: &mut [u8; OUTER_HEADER_LEN],
    encap: &Encap,
    inner_len: usize,
    flow_hash: u32,
) -> Result<()> {
    write_outer(out, encap, inner_len, flow_hash, 0)
}

/// Write the 70-byte outer header with the endpoint-ID option.
#[inline]
pub fn emit_outer_with_endpoint(
    out: &mut [u8; OUTER_HEADER_LEN_WITH_ENDPOINT],
    encap: &Encap,
    endpoint_id: u64,
    inner_len: usize,
    flow_hash: u32,
) -> Result<()> {
    let (head, tail) = out.split_at_mut(OUTER_HEADER_LEN);
    let head: &mut [u8; OUTER_HEADER_LEN] = head.try_into().map_err(|_| Error::Truncated)?;
    write_outer(head, encap, inner_len, flow_hash, ENDPOINT_ID_OPTION_LEN)?;
    tail.copy_from_slice(&geneve::endpoint_id_option(endpoint_id));
    Ok(())
}

/// Length of the outer header with or without an endpoint ID.
#[inline]
pub const fn outer_len(endpoint_id: Option<u64>) -> usize {
    match endpoint_id {
        Some(_) => OUTER_HEADER_LEN_WITH_ENDPOINT,
        None => OUTER_HEADER_LEN,
    }
}

/// Write the outer header (with the endpoint-ID option when given) into the start of a
/// slice and return its length; [`Error::Truncated`] when the slice is short.
pub fn emit_outer_into(
    out: &mut [u8],
    encap: &Encap,
    endpoint_id: Option<u64>,
    inner_len: usize,
    flow_hash: u32,
) -> Result<usize> {
    match endpoint_id {
        None => {
            let head = out.get_mut(..OUTER_HEADER_LEN).ok_or(Error::Truncated)?;
            let head: &mut [u8; OUTER_HEADER_LEN] =
                head.try_into().map_err(|_| Error::Truncated)?;
            emit_outer(head, encap, inner_len, flow_hash)?;
            Ok(OUTER_HEADER_LEN)
        }
        Some(id) => {
            let head = out.get_mut(..OUTER_HEADER_LEN_WITH_ENDPOINT).ok_or(Error::Truncated)?;
            let head: &mut [u8; OUTER_HEADER_LEN_WITH_ENDPOINT] =
                head.try_into().map_err(|_| Error::Truncated)?;
            emit_outer_with_endpoint(head, encap, id, inner_len, flow_hash)?;
            Ok(OUTER_HEADER_LEN_WITH_ENDPOINT)
        }
    }
}

/// Encapsulate the inner IPv4 packet that fills `buf`: prepend and write the outer header,
/// UDP source port from [`inner_flow_hash`]. [`Error::Overflow`] when the headroom is too
/// small (the buffer is then unchanged).
pub fn push_outer<B: PacketBuf + ?Sized>(
    buf: &mut B,
    encap: &Encap,
    endpoint_id: Option<u64>,
) -> Result<()> {
    let inner_len = buf.len();
    let hash = inner_flow_hash(buf.data());
    let len = outer_len(endpoint_id);
    // Check every value before touching the buffer, so that an error leaves it unchanged.
    outer_total_len(encap, inner_len, len - OUTER_HEADER_LEN)?;
    let head = buf.prepend(len).map_err(|_| Error::Overflow)?;
    emit_outer_into(head, encap, endpoint_id, inner_len, hash).map(|_| ())
}

/// Decapsulate: [`parse_outer`] on the buffer, then remove the outer header and any
/// Ethernet padding, leaving the inner IPv4 packet. On error the buffer is unchanged.
pub fn pop_outer<B: PacketBuf + ?Sized>(buf: &mut B) -> Result<Outer> {
    let outer = parse_outer(buf.data())?;
    let padding = buf.len() - outer.inner_offset - outer.inner_len;
    buf.trim(padding).map_err(|_| Error::Truncated)?;
    buf.adj(outer.inner_offset).map_err(|_| Error::Truncated)?;
    Ok(outer)
}

/// The vpcemu options found in a Geneve options area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VpcOptions {
    /// The source VPC option's value.
    pub source_vpc: Option<u32>,
    /// The endpoint-ID option's value.
    pub endpoint_id: Option<u64>,
}

/// Walk an options area for vpcemu's options: [`Error::Malformed`] for a bad walk, a
/// doubled option or one of ours with the wrong length; [`Error::Unsupported`] for an
/// unknown critical option; unknown non-critical options are skipped.
pub fn vpc_options(options: &[u8]) -> Result<VpcOptions> {
    let mut found = VpcOptions::default();
    for option in Options::new(options) {
        let option = option?;
        match (option.class, option.kind) {
            (geneve::CLASS_VPCEMU, geneve::TYPE_SOURCE_VPC) => {
                let v = option.source_vpc().ok_or(Error::Malformed)?;
                if found.source_vpc.replace(v).is_some() {
                    return Err(Error::Malformed);
                }
            }
            (geneve::CLASS_AWS, geneve::TYPE_ENDPOINT_ID) => {
                let id = option.endpoint_id().ok_or(Error::Malformed)?;
                if found.endpoint_id.replace(id).is_some() {
                    return Err(Error::Malformed);
                }
            }
            _ if option.is_critical() => return Err(Error::Unsupported),
            _ => {}
        }
    }
    Ok(found)
}

/// Our source-VPC option header as it sits at offset 50.
const SOURCE_VPC_OPTION_HEAD: [u8; 4] = [0xFF, 0xF0, geneve::TYPE_SOURCE_VPC, 1];

/// Validate the outer header of an encapsulated frame and return what a receiving card
/// needs; see the module contract.
#[inline]
pub fn parse_outer(frame: &[u8]) -> Result<Outer> {
    match own_layout(frame) {
        Some(outer) => Ok(outer),
        None => parse_outer_general(frame),
    }
}

/// A little-endian word of the eight given bytes (for the masks of [`own_layout`]).
const fn le64(b: [u8; 8]) -> u64 {
    u64::from_le_bytes(b)
}

/// [`parse_outer`]'s fast path: the frame vpcemu's cards send (one source-VPC option, UDP
/// checksum 0, an inner packet of at least 20 bytes), its fixed fields compared as five
/// masked words. `None` for any other frame, which the general path then parses (or
/// refuses, with its reason); what it returns is what the general path returns for the
/// same frame (tested below).
#[inline(always)]
fn own_layout(frame: &[u8]) -> Option<Outer> {
    let h: &[u8; OUTER_HEADER_LEN] = frame.get(..OUTER_HEADER_LEN)?.try_into().ok()?;
    let w = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let [c0, c1, c2, c3] = SOURCE_VPC_OPTION_HEAD;
    let (gv, gp) = (GENEVE_PORT.to_be_bytes(), (SOURCE_VPC_OPTION_LEN / 4) as u8);
    // EtherType IPv4, version 4 and IHL 5; no MF, offset 0, UDP; to the Geneve port, UDP
    // checksum 0, Geneve version 0 with 8 bytes of options, not OAM, IPv4 inside; the
    // source-VPC option's header, its value under 2^24.
    let differs = (w(12) & le64([0xff, 0xff, 0xff, 0, 0, 0, 0, 0])) ^ le64([0x08, 0x00, 0x45, 0, 0, 0, 0, 0])
        | (w(20) & le64([0x3f, 0xff, 0, 0xff, 0, 0, 0, 0])) ^ le64([0, 0, 0, 17, 0, 0, 0, 0])
        | (w(36) & le64([0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, geneve::FLAG_OAM]))
            ^ u64::from_le_bytes([gv[0], gv[1], 0, 0, 0, 0, gp, 0])
        | (w(44) & le64([0xff, 0xff, 0, 0, 0, 0, 0, 0])) ^ le64([0x08, 0x00, 0, 0, 0, 0, 0, 0])
        | (w(50) & le64([0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0])) ^ u64::from_le_bytes([c0, c1, c2, c3, 0, 0, 0, 0]);
    let total = usize::from(read_u16(h, offset::IP_TOTAL_LEN));
    let end = OUTER_ETH_LEN + total;
    if differs != 0
        || total < IP_OVERHEAD + crate::ipv4::HEADER_LEN
        || frame.len() < end
        || usize::from(read_u16(h, offset::UDP_LEN)) != total - OUTER_IPV4_LEN
        || !matches!(frame.get(offset::INNER), Some(b) if b >> 4 == 4)
        || !outer_checksum_ok(h)
    {
        return None;
    }
    Some(Outer {
        src_pa: Ipv4Addr::from(read_u32(h, offset::IP_SRC)),
        dst_pa: Ipv4Addr::from(read_u32(h, offset::IP_DST)),
        vni: read_u32(h, offset::GENEVE_VNI) >> 8,
        source_vpc: read_u32(h, offset::SOURCE_VPC),
        endpoint_id: None,
        src_port: read_u16(h, offset::UDP),
        inner_offset: offset::INNER,
        inner_len: end - offset::INNER,
    })
}

/// The outer IPv4 header checksum ([`checksum::ipv4_header20_ok`]: no options here).
#[inline(always)]
fn outer_checksum_ok(h: &[u8; OUTER_HEADER_LEN]) -> bool {
    match <&[u8; OUTER_IPV4_LEN]>::try_from(&h[offset::IP..offset::IP + OUTER_IPV4_LEN]) {
        Ok(ip) => checksum::ipv4_header20_ok(ip),
        Err(_) => false,
    }
}

/// [`parse_outer`] for any frame: every check in the order of the module contract.
#[inline(never)]
fn parse_outer_general(frame: &[u8]) -> Result<Outer> {
    let h: &[u8; OUTER_HEADER_LEN] =
        frame.get(..OUTER_HEADER_LEN).and_then(|s| s.try_into().ok()).ok_or(Error::Truncated)?;

    if read_u16(h, offset::ETHERTYPE) != 0x0800 {
        return Err(Error::Unsupported);
    }
    match h[offset::IP] {
        0x45 => {}
        b if b >> 4 != 4 => return Err(Error::Unsupported),
        b if b & 0x0F < 5 => return Err(Error::Malformed),
        _ => return Err(Error::Unsupported), // IPv4 options: not ours
    }
    let total = read_u16(h, offset::IP_TOTAL_LEN) as usize;
    if total < IP_OVERHEAD {
        return Err(Error::Malformed);
    }
    let end = OUTER_ETH_LEN + total;
    if frame.len() < end {
        return Err(Error::Truncated);
    }
    let flags = read_u16(h, offset::IP_FLAGS);
    if flags & (crate::ipv4::FLAG_MF | crate::ipv4::FRAG_OFFSET_MASK) != 0 {
        return Err(Error::Unsupported);
    }
    if h[offset::IP_PROTOCOL] != 17 {
        return Err(Error::Unsupported);
    }
    if !outer_checksum_ok(h) {
        return Err(Error::Checksum);
    }
    let src_pa = Ipv4Addr::from(read_u32(h, offset::IP_SRC));
    let dst_pa = Ipv4Addr::from(read_u32(h, offset::IP_DST));

    if read_u16(h, offset::UDP_DST) != GENEVE_PORT {
        return Err(Error::Unsupported);
    }
    if read_u16(h, offset::UDP_LEN) as usize != total - OUTER_IPV4_LEN {
        return Err(Error::Malformed);
    }
    if read_u16(h, offset::UDP_CHECKSUM) != 0 {
        let segment = frame.get(offset::UDP..end).ok_or(Error::Truncated)?;
        if !checksum::tcp_udp_ipv4_ok(src_pa, dst_pa, 17, segment) {
            return Err(Error::Checksum);
        }
    }

    let ver_opt = h[offset::GENEVE];
    if ver_opt & geneve::VERSION_MASK != 0 {
        return Err(Error::Unsupported);
    }
    if h[offset::GENEVE_FLAGS] & geneve::FLAG_OAM != 0 {
        return Err(Error::Unsupported);
    }
    if read_u16(h, offset::GENEVE_PROTOCOL) != 0x0800 {
        return Err(Error::Unsupported);
    }
    let vni = read_u32(h, offset::GENEVE_VNI) >> 8;
    let inner_offset = offset::OPTIONS + (ver_opt & geneve::OPT_LEN_MASK) as usize * 4;
    if inner_offset > end {
        return Err(Error::Malformed);
    }

    let (source_vpc, endpoint_id) = if inner_offset == offset::INNER
        && h[offset::OPTIONS..offset::SOURCE_VPC] == SOURCE_VPC_OPTION_HEAD
        && h[offset::SOURCE_VPC] == 0
    {
        // Our own layout: one source-VPC option, nothing else.
        (read_u32(h, offset::SOURCE_VPC), None)
    } else {
        let options = frame.get(offset::OPTIONS..inner_offset).ok_or(Error::Truncated)?;
        let found = vpc_options(options)?;
        (found.source_vpc.ok_or(Error::Malformed)?, found.endpoint_id)
    };

    let inner_len = end - inner_offset;
    match frame.get(inner_offset) {
        Some(b) if inner_len >= crate::ipv4::HEADER_LEN && b >> 4 == 4 => {}
        _ => return Err(Error::Malformed),
    }
    Ok(Outer {
        src_pa,
        dst_pa,
        vni,
        source_vpc,
        endpoint_id,
        src_port: read_u16(h, offset::UDP),
        inner_offset,
        inner_len,
    })
}

/// The outer header of many packets that share a card, a source VPC and a next hop:
/// written once by [`emit_outer`] (or [`emit_outer_with_endpoint`], `N` =
/// [`OUTER_HEADER_LEN_WITH_ENDPOINT`]: [`OuterTemplate::with_endpoint`]), then copied per
/// packet with the five fields that differ patched on their [`offset`]s: IPv4 total length
/// and header checksum (recomputed from the constant words summed once), destination PA,
/// UDP source port and length, VNI. Byte for byte what `emit_outer` writes (tested below).
#[derive(Clone, Copy, Debug)]
pub struct OuterTemplate<const N: usize = OUTER_HEADER_LEN> {
    head: [u8; N],
    /// Ones' complement sum of the outer IPv4 header words that do not change per packet.
    base: u32,
}

/// Version/IHL/DSCP, flags (DF), TTL/protocol and the source address of the outer IPv4
/// header: the words of its checksum that a template does not patch.
#[inline]
fn template_base(encap: &Encap) -> u32 {
    let src = u32::from(encap.src_pa);
    0x4500 + u32::from(crate::ipv4::FLAG_DF) + (u32::from(OUTER_TTL) << 8 | 17) + (src >> 16) + (src & 0xffff)
}

impl OuterTemplate {
    /// The template of `encap` (its `dst_pa` and `vni` are not used); `None` when it does
    /// not fit the header (a source VPC over 24 bits).
    ///
    /// Not inlined: a template the compiler could see being made would be written into
    /// each packet as its constant pieces (17 stores of 1 to 4 bytes); made out of line,
    /// the copy in [`write`](Self::write) is a block copy of its 58 bytes.
    #[inline(never)]
    pub fn new(encap: &Encap) -> Option<Self> {
        let mut head = [0u8; OUTER_HEADER_LEN];
        emit_outer(&mut head, encap, 0, 0).ok()?;
        Some(OuterTemplate { head, base: template_base(encap) })
    }
}

impl OuterTemplate<OUTER_HEADER_LEN_WITH_ENDPOINT> {
    /// The template of `encap` with the endpoint-ID option `endpoint_id` (the 70-byte
    /// header of [`emit_outer_with_endpoint`]); as [`OuterTemplate::new`] (not inlined
    /// either).
    #[inline(never)]
    pub fn with_endpoint(encap: &Encap, endpoint_id: u64) -> Option<Self> {
        let mut head = [0u8; OUTER_HEADER_LEN_WITH_ENDPOINT];
        emit_outer_with_endpoint(&mut head, encap, endpoint_id, 0, 0).ok()?;
        Some(OuterTemplate { head, base: template_base(encap) })
    }
}

impl<const N: usize> OuterTemplate<N> {
    /// Write the header for an inner packet of `inner_len` bytes (at most [`VPC_MTU`])
    /// towards `dst_pa` (host order) in VNI `vni` (at most 24 bits) with flow hash `hash`.
    #[inline(always)]
    pub fn write(&self, out: &mut [u8; N], dst_pa: u32, vni: u32, inner_len: usize, hash: u32) {
        *out = self.head;
        let total = (inner_len + N - OUTER_ETH_LEN) as u16;
        let sum = self.base + u32::from(total) + (dst_pa >> 16) + (dst_pa & 0xffff);
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        let mut put = |o: usize, b: &[u8]| {
            if let Some(d) = out.get_mut(o..o + b.len()) {
                d.copy_from_slice(b);
            }
        };
        put(offset::IP_TOTAL_LEN, &total.to_be_bytes());
        put(offset::IP_CHECKSUM, &(!(sum as u16)).to_be_bytes());
        put(offset::IP_DST, &dst_pa.to_be_bytes());
        put(offset::UDP, &src_port(hash).to_be_bytes());
        put(offset::UDP_LEN, &(total - OUTER_IPV4_LEN as u16).to_be_bytes());
        put(offset::GENEVE_VNI, &(vni << 8).to_be_bytes());
    }

    /// This template with its destination PA `dst_pa` (host order) and VNI `vni` (at most
    /// 24 bits) written in, for packets that all go to one destination in one VNI. Made
    /// once for many packets, out of line (as [`OuterTemplate::new`]).
    #[inline(never)]
    pub fn fixed(&self, dst_pa: u32, vni: u32) -> FixedTemplate<N> {
        let mut head = self.head;
        if let Some(d) = head.get_mut(offset::IP_DST..offset::IP_DST + 4) {
            d.copy_from_slice(&dst_pa.to_be_bytes());
        }
        if let Some(d) = head.get_mut(offset::GENEVE_VNI..offset::GENEVE_VNI + 4) {
            d.copy_from_slice(&(vni << 8).to_be_bytes());
        }
        FixedTemplate { head, base: self.base + (dst_pa >> 16) + (dst_pa & 0xffff) }
    }
}

/// An [`OuterTemplate`] with its destination PA and VNI in place ([`OuterTemplate::fixed`]):
/// the header of packets that share a card, a source VPC, a next hop, a destination and a
/// VNI (the edge's re-wrap towards one S3 front end for one VPC). Per packet only the three
/// fields that still differ are patched: IPv4 total length and header checksum, UDP
/// source port and length. Byte for byte what [`OuterTemplate::write`] writes (tested
/// below).
#[derive(Clone, Copy, Debug)]
pub struct FixedTemplate<const N: usize> {
    head: [u8; N],
    /// Ones' complement sum of the outer IPv4 header words that do not change per packet,
    /// the destination's included.
    base: u32,
}

impl<const N: usize> FixedTemplate<N> {
    /// Write the header for an inner packet of `inner_len` bytes (at most [`VPC_MTU`])
    /// with flow hash `hash`.
    #[inline(always)]
    pub fn write(&self, out: &mut [u8; N], inner_len: usize, hash: u32) {
        *out = self.head;
        let total = (inner_len + N - OUTER_ETH_LEN) as u16;
        let sum = self.base + u32::from(total);
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        let mut put = |o: usize, b: &[u8]| {
            if let Some(d) = out.get_mut(o..o + b.len()) {
                d.copy_from_slice(b);
            }
        };
        put(offset::IP_TOTAL_LEN, &total.to_be_bytes());
        put(offset::IP_CHECKSUM, &(!(sum as u16)).to_be_bytes());
        put(offset::UDP, &src_port(hash).to_be_bytes());
        put(offset::UDP_LEN, &(total - OUTER_IPV4_LEN as u16).to_be_bytes());
    }
}

/// The fast check of the IPv4 header at the start of `ip`, as both cards make it before
/// trusting one (classify on the instance side, verify-recv's front end on the underlay
/// side, the edge's outside sides): version 4, IHL at least 5, the header inside `ip`, a
/// total length at least the header and at most `ip`, a good header checksum (a 20-byte
/// header summed on fixed offsets). Returns the total length. Never panics.
#[inline(always)]
pub fn ipv4_header(ip: &[u8]) -> Result<usize> {
    let first = *ip.first().ok_or(Error::Truncated)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 {
        return Err(Error::Malformed);
    }
    let h = ip.get(..ihl).ok_or(Error::Truncated)?;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < ihl {
        return Err(Error::Malformed);
    }
    if total > ip.len() {
        return Err(Error::Truncated);
    }
    let sum_ok = match <&[u8; 20]>::try_from(h) {
        Ok(h20) => checksum::ipv4_header20_ok(h20),
        Err(_) => checksum::ipv4_header_ok(h),
    };
    if !sum_ok {
        return Err(Error::Checksum);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};
    use crate::{ethernet, geneve, ipv4, udp, TestBuffer};

    // scapy: Ether(src='02:00:c6:12:00:01',dst='02:00:c6:12:00:02')/IP(src='198.18.0.1',
    //   dst='198.18.0.2',flags='DF',ttl=64,id=0)/UDP(sport=49152+1234,dport=6081,chksum=0)
    //   /GENEVE(vni=101,proto=0x0800,options=GeneveOptions(classid=0xfff0,type=1,length=1,
    //   data=b'\x00\x00\x00\x66'))/IP(src='10.0.1.10',dst='10.1.0.20',id=14)
    //   /ICMP(type=8,id=1,seq=1)/Raw(b'hello')
    const FRAME: &str = "0200c61200020200c612000108004500004d000040004011ae78c6120001c6120002c4d217c1003900000200080000006500fff001010000006645000021000e0000400165b00a00010a0a0100140800b42b0001000168656c6c6f";
    // scapy: the same towards an S3 front end, with the endpoint-ID option:
    //   Ether(src='02:00:c6:12:ff:01',dst='02:00:c6:12:fe:01')/IP(src='198.18.255.1',
    //   dst='198.18.254.1',flags='DF',ttl=64,id=0)/UDP(sport=49152+77,dport=6081,chksum=0)
    //   /GENEVE(vni=101,proto=0x0800,options=GeneveOptions(classid=0xfff0,type=1,length=1,
    //   data=b'\x00\x00\x00\x65')/GeneveOptions(classid=0x0108,type=1,length=2,
    //   data=bytes.fromhex('0a1b2c3d4e5f6a7b')))/IP(src='10.0.1.10',dst='198.51.100.130',
    //   id=15)/TCP(sport=40000,dport=443,flags='S')
    const FRAME_ENDPOINT: &str = "0200c612fe010200c612ff01080045000060000040004011b164c612ff01c612fe01c04d17c1004c00000500080000006500fff0010100000065010801020a1b2c3d4e5f6a7b45000028000f0000400645020a00010ac63364829c4001bb000000000000000050022000bc270000";

    fn encap() -> Encap {
        Encap {
            src_mac: "02:00:c6:12:00:01".parse().unwrap(),
            dst_mac: "02:00:c6:12:00:02".parse().unwrap(),
            src_pa: Ipv4Addr::new(198, 18, 0, 1),
            dst_pa: Ipv4Addr::new(198, 18, 0, 2),
            vni: 101,
            source_vpc: 102,
        }
    }

    #[test]
    fn test_lengths() {
        assert_eq!(OUTER_HEADER_LEN, 58);
        assert_eq!(OUTER_HEADER_LEN_WITH_ENDPOINT, 70);
        assert_eq!(GENEVE_PORT, 6081);
        assert_eq!(src_port(0), 49152);
        assert_eq!(src_port(u32::MAX), 65535);
        assert_eq!(src_port(1234), 49152 + 1234);
    }

    #[test]
    fn test_emit() {
        let bytes = hex(FRAME);
        let mut out = [0xAAu8; OUTER_HEADER_LEN];
        emit_outer(&mut out, &encap(), bytes.len() - 58, 1234).unwrap();
        assert_eq!(&out[..], &bytes[..58]);

        let bytes = hex(FRAME_ENDPOINT);
        let e = Encap {
            src_mac: "02:00:c6:12:ff:01".parse().unwrap(),
            dst_mac: "02:00:c6:12:fe:01".parse().unwrap(),
            src_pa: Ipv4Addr::new(198, 18, 255, 1),
            dst_pa: Ipv4Addr::new(198, 18, 254, 1),
            vni: 101,
            source_vpc: 101,
        };
        let mut out = [0xAAu8; OUTER_HEADER_LEN_WITH_ENDPOINT];
        emit_outer_with_endpoint(&mut out, &e, 0x0a1b_2c3d_4e5f_6a7b, bytes.len() - 70, 77)
            .unwrap();
        assert_eq!(&out[..], &bytes[..70]);
        let mut v = vec![0u8; 69];
        assert_eq!(emit_outer_into(&mut v, &e, Some(1), 20, 0), Err(Error::Truncated));
        assert_eq!(emit_outer_into(&mut v, &e, None, 20, 0), Ok(58));
    }

    #[test]
    fn test_emit_overflow() {
        let mut out = [0u8; OUTER_HEADER_LEN];
        assert_eq!(
            emit_outer(&mut out, &Encap { vni: 1 << 24, ..encap() }, 20, 0),
            Err(Error::Overflow)
        );
        assert_eq!(
            emit_outer(&mut out, &Encap { source_vpc: 1 << 24, ..encap() }, 20, 0),
            Err(Error::Overflow)
        );
        assert_eq!(emit_outer(&mut out, &encap(), 65535 - 44 + 1, 0), Err(Error::Overflow));
        assert_eq!(emit_outer(&mut out, &encap(), usize::MAX, 0), Err(Error::Overflow));
        assert!(emit_outer(&mut out, &encap(), 65535 - 44, 0).is_ok());
    }

    #[test]
    fn test_parse() {
        let bytes = hex(FRAME);
        let o = parse_outer(&bytes).unwrap();
        assert_eq!(
            o,
            Outer {
                src_pa: Ipv4Addr::new(198, 18, 0, 1),
                dst_pa: Ipv4Addr::new(198, 18, 0, 2),
                vni: 101,
                source_vpc: 102,
                endpoint_id: None,
                src_port: 49152 + 1234,
                inner_offset: 58,
                inner_len: 33,
            }
        );
        let bytes = hex(FRAME_ENDPOINT);
        let o = parse_outer(&bytes).unwrap();
        assert_eq!((o.vni, o.source_vpc, o.endpoint_id), (101, 101, Some(0x0a1b_2c3d_4e5f_6a7b)));
        assert_eq!((o.inner_offset, o.inner_len), (70, 40));
        // The view-based walk agrees.
        let eth = ethernet::Frame::new_checked(&bytes[..]).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        let g = geneve::Packet::new_checked(u.payload()).unwrap();
        assert_eq!(vpc_options(g.options()).unwrap().endpoint_id, o.endpoint_id);
        assert_eq!(g.payload().len(), o.inner_len);
    }

    #[test]
    fn test_parse_rejects() {
        let good = hex(FRAME);
        let with = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            b
        };
        let fix_ip_csum = |mut b: Vec<u8>| {
            ipv4::Packet::new_unchecked(&mut b[14..]).fill_checksum();
            b
        };
        assert_eq!(parse_outer(&with(12, &[0x81, 0x00])), Err(Error::Unsupported));
        assert_eq!(parse_outer(&with(14, &[0x65])), Err(Error::Unsupported));
        assert_eq!(parse_outer(&with(14, &[0x44])), Err(Error::Malformed));
        assert_eq!(parse_outer(&with(14, &[0x46])), Err(Error::Unsupported));
        assert_eq!(parse_outer(&with(24, &[0, 0])), Err(Error::Checksum));
        assert_eq!(parse_outer(&fix_ip_csum(with(20, &[0x20, 0]))), Err(Error::Unsupported), "MF");
        assert_eq!(parse_outer(&fix_ip_csum(with(23, &[6]))), Err(Error::Unsupported), "TCP");
        assert_eq!(parse_outer(&fix_ip_csum(with(16, &[0, 43]))), Err(Error::Malformed));
        assert_eq!(parse_outer(&fix_ip_csum(with(16, &[0, 0x4e]))), Err(Error::Truncated));
        assert_eq!(parse_outer(&with(36, &[0x12, 0xb5])), Err(Error::Unsupported), "VXLAN port");
        assert_eq!(parse_outer(&with(38, &[0, 0x38])), Err(Error::Malformed), "UDP length");
        assert_eq!(parse_outer(&with(40, &[0x12, 0x34])), Err(Error::Checksum));
        assert_eq!(parse_outer(&with(42, &[0x42])), Err(Error::Unsupported), "version 1");
        assert_eq!(parse_outer(&with(43, &[0x80])), Err(Error::Unsupported), "OAM");
        assert_eq!(parse_outer(&with(44, &[0x65, 0x58])), Err(Error::Unsupported), "TEB");
        assert_eq!(parse_outer(&with(42, &[0x3f])), Err(Error::Malformed), "options past the end");
        assert_eq!(parse_outer(&with(42, &[0x00])), Err(Error::Malformed), "no source VPC");
        assert_eq!(parse_outer(&with(54, &[1])), Err(Error::Malformed), "source VPC over 24 bits");
        assert_eq!(parse_outer(&with(52, &[0x81])), Err(Error::Unsupported), "unknown critical");
        assert_eq!(parse_outer(&with(52, &[0x02])), Err(Error::Malformed), "no source VPC");
        assert_eq!(parse_outer(&with(58, &[0x60])), Err(Error::Malformed), "inner not IPv4");
        // A valid UDP checksum is accepted.
        let mut b = good.clone();
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        udp::Packet::new_unchecked(&mut b[34..]).fill_checksum(src, dst);
        assert!(parse_outer(&b).is_ok());
        // Ethernet padding after the packet is allowed and left out of the inner length.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse_outer(&padded).unwrap().inner_len, 33);
    }

    #[test]
    fn test_parse_captures() {
        // geneve.pcap carries Ethernet (TEB) with a critical option: not ours.
        for f in testdata::packets(testdata::GENEVE) {
            assert_eq!(parse_outer(&f), Err(Error::Unsupported));
        }
        // geneve-gcp.pcap carries IPv4 but has no source-VPC option and TTL 2.
        let f = &testdata::packets(testdata::GENEVE_GCP)[0];
        assert_eq!(parse_outer(f), Err(Error::Malformed));
        // BIG TCP: total length 0.
        let f = &testdata::packets(testdata::BIGTCP_GENEVE)[0];
        assert_eq!(parse_outer(f), Err(Error::Malformed));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(FRAME);
        for len in 0..bytes.len() {
            assert_eq!(parse_outer(&bytes[..len]), Err(Error::Truncated), "{len}");
        }
    }

    #[test]
    fn test_push_pop() {
        let frame = hex(FRAME);
        let inner = &frame[58..];
        let mut buf = TestBuffer::from_slice(inner);
        push_outer(&mut buf, &encap(), None).unwrap();
        let o = parse_outer(buf.data()).unwrap();
        assert_eq!(o.src_port, src_port(inner_flow_hash(inner)));
        assert_eq!(&buf.data()[..12], &frame[..12]);
        buf.append(4).unwrap().fill(0);
        assert_eq!(pop_outer(&mut buf).unwrap().vni, 101);
        assert_eq!(buf.data(), inner);

        push_outer(&mut buf, &encap(), Some(42)).unwrap();
        assert_eq!(buf.len(), inner.len() + 70);
        assert_eq!(pop_outer(&mut buf).unwrap().endpoint_id, Some(42));
        assert_eq!(buf.data(), inner);

        let mut tight = TestBuffer::from_slice_with_room(inner, 57, 0);
        assert_eq!(push_outer(&mut tight, &encap(), None), Err(Error::Overflow));
        assert_eq!(tight.data(), inner);
        let mut bad = TestBuffer::from_slice(inner);
        assert_eq!(
            push_outer(&mut bad, &Encap { vni: u32::MAX, ..encap() }, None),
            Err(Error::Overflow)
        );
        assert_eq!(bad.data(), inner);
        assert_eq!(pop_outer(&mut bad), Err(Error::Truncated));
        assert_eq!(bad.data(), inner);
    }

    #[test]
    fn test_flow_hash() {
        let frame = hex(FRAME_ENDPOINT);
        let inner = &frame[70..];
        let (src, dst) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(198, 51, 100, 130));
        assert_eq!(inner_flow_hash(inner), flow_hash(src, dst, 6, 40000, 443));
        assert_ne!(flow_hash(src, dst, 6, 40000, 443), flow_hash(dst, src, 6, 443, 40000));
        // A later fragment and the first fragment hash alike (no ports).
        let mut frag = inner.to_vec();
        frag[6] = 0x20;
        assert_eq!(inner_flow_hash(&frag), flow_hash(src, dst, 6, 0, 0));
        assert_eq!(inner_flow_hash(&inner[..19]), 0);
        // Sequential source ports spread over the whole port range.
        let mut seen = vec![0u32; 16];
        for port in 0..16384u16 {
            let p = src_port(flow_hash(src, dst, 6, port, 443));
            seen[((p - SRC_PORT_BASE) / 1024) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (768..=1280).contains(&n)), "{seen:?}");
    }

    #[test]
    fn macs() {
        assert_eq!(subnet_router_mac(0x0102).to_string(), "02:00:00:ff:01:02");
        assert_eq!(card_mac(Ipv4Addr::new(198, 18, 0, 1)).to_string(), "02:00:c6:12:00:01");
        assert_eq!(UNDERLAY_ROUTER_MAC.to_string(), "02:00:00:fe:00:01");
    }

    /// The fast path answers what the general path answers: the test frame with one or
    /// two bytes of its header changed (the checksum fixed or not), its length changed.
    #[test]
    fn own_layout_agrees_with_the_general_path() {
        let frame = hex(FRAME);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut fast = 0;
        for round in 0..200_000 {
            let mut f = frame.clone();
            for _ in 0..=(round % 2) {
                let r = next();
                let at = (r % (OUTER_HEADER_LEN as u64 + 4)) as usize;
                f[at] = match r >> 32 & 3 {
                    0 => 0,
                    1 => f[at] ^ (1 << (r >> 40 & 7)),
                    _ => (r >> 48) as u8,
                };
            }
            if next() & 1 == 0 && f[14] == 0x45 {
                ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
            }
            let cut = (next() % 8) as usize;
            let f = if cut < 3 { &f[..f.len() - cut] } else { &f[..] };
            let want = parse_outer_general(f);
            if let Some(o) = own_layout(f) {
                assert_eq!(Ok(o), want, "{f:02x?}");
                fast += 1;
            }
            assert_eq!(parse_outer(f), want, "{f:02x?}");
        }
        assert_eq!(own_layout(&frame), Some(parse_outer_general(&frame).unwrap()));
        assert!(fast > 1000, "{fast}");
    }

    /// The template path writes exactly what `emit_outer` writes.
    #[test]
    fn template_matches_emit_outer() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..10_000 {
            let r = next();
            let encap = Encap {
                src_mac: EthernetAddress([2, 0, r as u8, (r >> 8) as u8, 1, 2]),
                dst_mac: EthernetAddress([2, 0, 0, 0xfe, (r >> 16) as u8, 1]),
                src_pa: Ipv4Addr::from(next() as u32),
                dst_pa: Ipv4Addr::from(next() as u32),
                vni: next() as u32 & VNI_MAX,
                source_vpc: next() as u32 & VNI_MAX,
            };
            let len = (next() % (VPC_MTU as u64 + 1)) as usize;
            let hash = next() as u32;
            let mut want = [0u8; OUTER_HEADER_LEN];
            emit_outer(&mut want, &encap, len, hash).unwrap();
            let t = OuterTemplate::new(&Encap { dst_pa: Ipv4Addr::UNSPECIFIED, vni: 0, ..encap }).unwrap();
            let mut got = [0xaau8; OUTER_HEADER_LEN];
            t.write(&mut got, u32::from(encap.dst_pa), encap.vni, len, hash);
            assert_eq!(got, want, "{encap:?} {len} {hash}");
            let mut fixed = [0x55u8; OUTER_HEADER_LEN];
            t.fixed(u32::from(encap.dst_pa), encap.vni).write(&mut fixed, len, hash);
            assert_eq!(fixed, want, "fixed: {encap:?} {len} {hash}");
            let id = next();
            let mut want = [0u8; OUTER_HEADER_LEN_WITH_ENDPOINT];
            emit_outer_with_endpoint(&mut want, &encap, id, len, hash).unwrap();
            let t = OuterTemplate::with_endpoint(&Encap { dst_pa: Ipv4Addr::UNSPECIFIED, vni: 0, ..encap }, id).unwrap();
            let mut got = [0xaau8; OUTER_HEADER_LEN_WITH_ENDPOINT];
            t.write(&mut got, u32::from(encap.dst_pa), encap.vni, len, hash);
            assert_eq!(got, want, "{encap:?} {id:#x} {len} {hash}");
            // With the destination and VNI written in once: the same bytes.
            let mut fixed = [0x55u8; OUTER_HEADER_LEN_WITH_ENDPOINT];
            t.fixed(u32::from(encap.dst_pa), encap.vni).write(&mut fixed, len, hash);
            assert_eq!(fixed, want, "fixed: {encap:?} {id:#x} {len} {hash}");
        }
        let too_big = Encap { vni: 0, source_vpc: 1 << 24, ..encap() };
        assert!(OuterTemplate::new(&too_big).is_none());
        assert!(OuterTemplate::with_endpoint(&too_big, 1).is_none());
    }

    #[test]
    fn ipv4_header_checks() {
        let frame = hex(FRAME);
        let ip = &frame[OUTER_HEADER_LEN..];
        assert_eq!(ipv4_header(ip), Ok(33));
        assert_eq!(ipv4_header(&ip[..32]), Err(Error::Truncated), "total past the end");
        assert_eq!(ipv4_header(&ip[..19]), Err(Error::Truncated), "header past the end");
        assert_eq!(ipv4_header(&[]), Err(Error::Truncated));
        let mut v6 = ip.to_vec();
        v6[0] = 0x65;
        assert_eq!(ipv4_header(&v6), Err(Error::Malformed));
        let mut bad = ip.to_vec();
        bad[10] ^= 1;
        assert_eq!(ipv4_header(&bad), Err(Error::Checksum));
        let mut short = ip.to_vec();
        short[2..4].copy_from_slice(&19u16.to_be_bytes());
        let sum = checksum::ipv4_header(&short[..20]);
        short[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(ipv4_header(&short), Err(Error::Malformed), "total shorter than the header");
        // The outer header (20 bytes, fixed offsets) and one with options (the slow sum).
        assert_eq!(ipv4_header(&frame[OUTER_ETH_LEN..]), Ok(frame.len() - OUTER_ETH_LEN));
        let mut opts = vec![0x46, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 0];
        let sum = checksum::ipv4_header(&opts);
        opts[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(ipv4_header(&opts), Ok(24));
    }
}
