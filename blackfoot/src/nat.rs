//! 1:1 NAT for the internet gateway (Elastic IP), in place on an IPv4 packet.
//!
//! Blackfoot maps a private address to its Elastic IP on the way out ([`snat`]: source
//! `private -> EIP`) and back on the way in ([`dnat`]: destination `EIP -> private`). Ports
//! and ICMP identifiers are never touched: the mapping is one address to one address.
//!
//! `pkt` starts at the IPv4 header (no Ethernet) and holds the packet; bytes after the
//! header's total length (Ethernet padding) are left alone.
//!
//! # Rules
//!
//! * **Validation** (all before the first write, so on `Err` the packet is unchanged):
//!   version 4, IHL >= 5, `IHL * 4 <= total length <= pkt.len()`, else
//!   [`DropReason::Malformed`]. The address being translated must be `from` (the source
//!   for [`snat`], the destination for [`dnat`]), else [`DropReason::NoElasticIp`]: the
//!   caller looked up the wrong mapping, or the packet is not the one the mapping is for.
//!   Checksums are not verified: an incremental update carries a wrong checksum through
//!   unchanged, so the end-to-end check still catches the corruption (RFC 1624).
//! * **IPv4 header**: the address and the header checksum, updated incrementally (RFC 1624
//!   eqn. 3). Options need nothing (IHL is used to find the payload).
//! * **TCP / UDP**: the checksum covers the pseudo-header, so it is updated incrementally
//!   for the address change. UDP checksum 0 ("no checksum") stays 0; a result of 0 goes
//!   out as `0xFFFF`. Only on an unfragmented packet or a first fragment (offset 0); later
//!   fragments get the IP header change only, since the checksum lives in the first one.
//!   A whole packet or first fragment too short to hold the fixed TCP (20), UDP (8) or ICMP
//!   (8) header is [`DropReason::Malformed`]: the checksum would be in a later fragment
//!   that cannot be fixed (the tiny-fragment case of RFC 1858).
//! * **ICMP queries** (echo request/reply and every type but the errors below): the ICMP
//!   checksum does not cover addresses; nothing more changes.
//! * **ICMP errors** (destination unreachable 3, time exceeded 11, parameter problem 12)
//!   quote the offending packet, which travelled the other way: for [`snat`] the quote's
//!   **destination** is `from`, for [`dnat`] its **source**. That address is rewritten to
//!   `to`, with the quoted header checksum, the quoted TCP/UDP checksum when the quote
//!   holds it (UDP's is in the first 8 bytes, TCP's at bytes 16..18 only in a longer
//!   quote; same UDP zero rule; not when the quoted packet is a later fragment), and the
//!   ICMP checksum for every 16-bit word changed in the quote, all incrementally.
//! * **Truncated or odd quotes**: a quote shorter than the fixed 20-byte IPv4 header, or
//!   not IPv4 (version, IHL < 5), is [`DropReason::Malformed`]: translating the outer
//!   header alone would leak the untranslated address inside. A quote whose options or
//!   transport bytes are cut short is translated as far as it goes (addresses and quoted
//!   header checksum always; the transport checksum only when the quote holds the whole
//!   field, so a quote ending inside it keeps that byte as it was). A quote whose
//!   address is *not* `from` is left untouched (the error is about a packet this mapping
//!   did not translate, e.g. one the instance forwarded as a router), and only the outer
//!   header is translated.
//! * ICMP errors inside ICMP errors are not followed (none should exist, RFC 1122 3.2.2).
//!
//! No allocation, no panic on any input: every access to packet bytes is a checked `get`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

use std::net::Ipv4Addr;

use pipeline::DropReason;
use wire::checksum::{udp_update32, update16, update_addr};

/// IP protocol numbers this module looks into.
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Offsets in an IPv4 header.
const IP_LENGTH: usize = 2;
const IP_FLG_OFF: usize = 6;
const IP_PROTOCOL: usize = 9;
const IP_CHECKSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;
const IP_MIN_HEADER: usize = 20;
const FRAG_OFFSET_MASK: u16 = 0x1FFF;

/// Offsets of the checksums in the transport headers, and their fixed header lengths.
const TCP_CHECKSUM: usize = 16;
const TCP_HEADER: usize = 20;
const UDP_CHECKSUM: usize = 6;
const UDP_HEADER: usize = 8;
const ICMP_CHECKSUM: usize = 2;
const ICMP_HEADER: usize = 8;

/// ICMP error types whose data is a quote of the offending packet.
const ICMP_DST_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;

/// Rewrite the source of `pkt` from `from` to `to` (outbound: private address to Elastic
/// IP), with every checksum that depends on it; see the module rules. ICMP errors get
/// their quoted **destination** rewritten.
///
/// Errors: [`DropReason::Malformed`] for a bad header or a truncated transport header or
/// quote, [`DropReason::NoElasticIp`] when the source is not `from`. On error the packet
/// is unchanged.
#[inline]
pub fn snat(pkt: &mut [u8], from: Ipv4Addr, to: Ipv4Addr) -> Result<(), DropReason> {
    if translate_simple(pkt, Side::Src, from, to).is_some() {
        return Ok(());
    }
    translate(pkt, Side::Src, from, to)
}

/// Rewrite the destination of `pkt` from `from` to `to` (inbound: Elastic IP to private
/// address), with every checksum that depends on it; see the module rules. ICMP errors
/// get their quoted **source** rewritten.
///
/// Errors as for [`snat`], with [`DropReason::NoElasticIp`] when the destination is not
/// `from`. On error the packet is unchanged.
#[inline]
pub fn dnat(pkt: &mut [u8], from: Ipv4Addr, to: Ipv4Addr) -> Result<(), DropReason> {
    if translate_simple(pkt, Side::Dst, from, to).is_some() {
        return Ok(());
    }
    translate(pkt, Side::Dst, from, to)
}

/// The source address of an IPv4 packet, or `None` when `pkt` is not one (version) or is
/// shorter than 20 bytes.
#[inline]
pub fn source(pkt: &[u8]) -> Option<Ipv4Addr> {
    is_v4(pkt).then(|| get_addr(pkt, IP_SRC)).flatten()
}

/// The destination address of an IPv4 packet, as [`source`].
#[inline]
pub fn destination(pkt: &[u8]) -> Option<Ipv4Addr> {
    is_v4(pkt).then(|| get_addr(pkt, IP_DST)).flatten()
}

#[inline]
fn is_v4(pkt: &[u8]) -> bool {
    pkt.first().is_some_and(|b| b >> 4 == 4)
}

/// Which address of the outer header is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

impl Side {
    /// Offset of this address in an IPv4 header.
    const fn offset(self) -> usize {
        match self {
            Side::Src => IP_SRC,
            Side::Dst => IP_DST,
        }
    }

    /// The address that is the same host in a packet going the other way.
    const fn reverse(self) -> Side {
        match self {
            Side::Src => Side::Dst,
            Side::Dst => Side::Src,
        }
    }
}

/// A checksum covering the pseudo-header: where it is in the packet and whether the UDP
/// zero rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PseudoChecksum {
    at: usize,
    udp: bool,
}

/// What has to change past the outer IPv4 header, found before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Later fragment, untranslated quote, ICMP query or another protocol.
    Nothing,
    /// A TCP or UDP checksum.
    Transport(PseudoChecksum),
    /// An ICMP error whose quote holds the address.
    Quote {
        /// Offset of the ICMP header.
        icmp: usize,
        /// Offset of the quoted IPv4 header.
        quote: usize,
        /// The quoted transport checksum, when the quote holds it.
        transport: Option<PseudoChecksum>,
    },
}

/// Check the header: `(header length, total length)`.
fn check_header(pkt: &[u8]) -> Result<(usize, usize), DropReason> {
    let first = *pkt.first().ok_or(DropReason::Malformed)?;
    if first >> 4 != 4 {
        return Err(DropReason::Malformed);
    }
    let ihl = usize::from(first & 0x0F) * 4;
    if ihl < IP_MIN_HEADER || pkt.len() < ihl {
        return Err(DropReason::Malformed);
    }
    let total = usize::from(get16(pkt, IP_LENGTH).ok_or(DropReason::Malformed)?);
    if total < ihl || total > pkt.len() {
        return Err(DropReason::Malformed);
    }
    Ok((ihl, total))
}

/// The general path of [`snat`] and [`dnat`], after their common case
/// ([`translate_simple`]).
#[inline(never)]
fn translate(pkt: &mut [u8], side: Side, from: Ipv4Addr, to: Ipv4Addr) -> Result<(), DropReason> {
    let (ihl, total) = check_header(pkt)?;
    let pkt = pkt.get_mut(..total).ok_or(DropReason::Malformed)?;
    if get_addr(pkt, side.offset()) != Some(from) {
        return Err(DropReason::NoElasticIp);
    }
    let plan = plan(pkt, ihl, side, from)?;

    // From here on every offset has been checked against the packet: the writes cannot
    // fail, and the `?` below only keep the code free of indexing.
    rewrite_addr(pkt, side.offset(), IP_CHECKSUM, from, to)?;
    match plan {
        Plan::Nothing => {}
        Plan::Transport(ck) => {
            update_pseudo(pkt, ck, from, to)?;
        }
        Plan::Quote { icmp, quote, transport } => {
            let icmp_ck_at = icmp + ICMP_CHECKSUM;
            let mut icmp_ck = get16(pkt, icmp_ck_at).ok_or(DropReason::Malformed)?;
            // The quoted address and the quoted header checksum.
            let q_ck_at = quote + IP_CHECKSUM;
            let old_q_ck = get16(pkt, q_ck_at).ok_or(DropReason::Malformed)?;
            let new_q_ck = rewrite_addr(pkt, quote + side.reverse().offset(), q_ck_at, from, to)?;
            icmp_ck = update_addr(icmp_ck, from, to);
            icmp_ck = update16(icmp_ck, old_q_ck, new_q_ck);
            // The quoted transport checksum.
            if let Some(ck) = transport {
                let (old, new) = update_pseudo(pkt, ck, from, to)?;
                icmp_ck = update16(icmp_ck, old, new);
            }
            put16(pkt, icmp_ck_at, icmp_ck)?;
        }
    }
    Ok(())
}

/// The common case straight through: a 20-byte header, not a later fragment, TCP or UDP
/// whose fixed header fits, the address `from`: the same writes as the general path
/// (the address with the header checksum, then the transport checksum), with one check
/// of each field. `None` (nothing written) for anything else, which the general path
/// then translates or refuses.
#[inline(always)]
fn translate_simple(pkt: &mut [u8], side: Side, from: Ipv4Addr, to: Ipv4Addr) -> Option<()> {
    let h: &[u8; IP_MIN_HEADER] = pkt.get(..IP_MIN_HEADER)?.try_into().ok()?;
    let total = usize::from(u16::from_be_bytes([h[IP_LENGTH], h[IP_LENGTH + 1]]));
    let (ck, fixed) = match h[IP_PROTOCOL] {
        PROTO_UDP => (PseudoChecksum { at: IP_MIN_HEADER + UDP_CHECKSUM, udp: true }, UDP_HEADER),
        PROTO_TCP => (PseudoChecksum { at: IP_MIN_HEADER + TCP_CHECKSUM, udp: false }, TCP_HEADER),
        _ => return None,
    };
    let later = u16::from_be_bytes([h[IP_FLG_OFF], h[IP_FLG_OFF + 1]]) & FRAG_OFFSET_MASK != 0;
    let at = side.offset();
    let addr = get_addr(h, at)?;
    if h[0] != 0x45 || later || total < IP_MIN_HEADER + fixed || total > pkt.len() || addr != from {
        return None;
    }
    // Both writes are inside the first `total` bytes (checked above): neither fails.
    rewrite_addr(pkt, at, IP_CHECKSUM, from, to).ok()?;
    update_pseudo(pkt, ck, from, to).ok()?;
    Some(())
}

/// Find what changes beyond the outer header, reading only.
fn plan(pkt: &[u8], ihl: usize, side: Side, from: Ipv4Addr) -> Result<Plan, DropReason> {
    let flg_off = get16(pkt, IP_FLG_OFF).ok_or(DropReason::Malformed)?;
    if flg_off & FRAG_OFFSET_MASK != 0 {
        return Ok(Plan::Nothing);
    }
    let l4_len = pkt.len().saturating_sub(ihl);
    let need = |n: usize| if l4_len < n { Err(DropReason::Malformed) } else { Ok(()) };
    match pkt.get(IP_PROTOCOL).copied() {
        Some(PROTO_TCP) => {
            need(TCP_HEADER)?;
            Ok(Plan::Transport(PseudoChecksum { at: ihl + TCP_CHECKSUM, udp: false }))
        }
        Some(PROTO_UDP) => {
            need(UDP_HEADER)?;
            Ok(Plan::Transport(PseudoChecksum { at: ihl + UDP_CHECKSUM, udp: true }))
        }
        Some(PROTO_ICMP) => {
            need(ICMP_HEADER)?;
            match pkt.get(ihl).copied() {
                Some(ICMP_DST_UNREACHABLE | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM) => {
                    plan_quote(pkt, ihl, ihl + ICMP_HEADER, side.reverse(), from)
                }
                _ => Ok(Plan::Nothing),
            }
        }
        _ => Ok(Plan::Nothing),
    }
}

/// The plan for an ICMP error whose quote starts at `quote`; `quoted` is the quoted
/// address that must be `from` for the quote to be translated.
fn plan_quote(
    pkt: &[u8],
    icmp: usize,
    quote: usize,
    quoted: Side,
    from: Ipv4Addr,
) -> Result<Plan, DropReason> {
    let q = pkt.get(quote..).unwrap_or(&[]);
    if q.len() < IP_MIN_HEADER {
        return Err(DropReason::Malformed);
    }
    let first = q.first().copied().unwrap_or(0);
    let q_ihl = usize::from(first & 0x0F) * 4;
    if first >> 4 != 4 || q_ihl < IP_MIN_HEADER {
        return Err(DropReason::Malformed);
    }
    if get_addr(q, quoted.offset()) != Some(from) {
        return Ok(Plan::Nothing);
    }
    let later_fragment = get16(q, IP_FLG_OFF).is_some_and(|f| f & FRAG_OFFSET_MASK != 0);
    let transport = match q.get(IP_PROTOCOL).copied() {
        _ if later_fragment => None,
        Some(PROTO_TCP) if q.len() >= q_ihl + TCP_CHECKSUM + 2 => {
            Some(PseudoChecksum { at: quote + q_ihl + TCP_CHECKSUM, udp: false })
        }
        Some(PROTO_UDP) if q.len() >= q_ihl + UDP_CHECKSUM + 2 => {
            Some(PseudoChecksum { at: quote + q_ihl + UDP_CHECKSUM, udp: true })
        }
        _ => None,
    };
    Ok(Plan::Quote { icmp, quote, transport })
}

/// Write `new` over the address at `addr_at` (which holds `old`) and update the checksum
/// at `ck_at` for it; returns the new checksum.
#[inline]
fn rewrite_addr(
    pkt: &mut [u8],
    addr_at: usize,
    ck_at: usize,
    old: Ipv4Addr,
    new: Ipv4Addr,
) -> Result<u16, DropReason> {
    let ck = update_addr(get16(pkt, ck_at).ok_or(DropReason::Malformed)?, old, new);
    pkt.get_mut(addr_at..addr_at + 4).ok_or(DropReason::Malformed)?.copy_from_slice(&new.octets());
    put16(pkt, ck_at, ck)?;
    Ok(ck)
}

/// Update a pseudo-header checksum for an address change; returns `(old, new)` checksum.
#[inline]
fn update_pseudo(
    pkt: &mut [u8],
    ck: PseudoChecksum,
    old: Ipv4Addr,
    new: Ipv4Addr,
) -> Result<(u16, u16), DropReason> {
    let before = get16(pkt, ck.at).ok_or(DropReason::Malformed)?;
    let after = if ck.udp {
        udp_update32(before, u32::from(old), u32::from(new))
    } else {
        update_addr(before, old, new)
    };
    put16(pkt, ck.at, after)?;
    Ok((before, after))
}

#[inline]
fn get16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

#[inline]
fn put16(b: &mut [u8], at: usize, value: u16) -> Result<(), DropReason> {
    b.get_mut(at..at + 2).ok_or(DropReason::Malformed)?.copy_from_slice(&value.to_be_bytes());
    Ok(())
}

#[inline]
fn get_addr(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wire::checksum::{self, tcp_udp_ipv4, tcp_udp_ipv4_ok, udp_on_wire};

    const PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const EIP: Ipv4Addr = Ipv4Addr::new(52, 95, 110, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
    /// An address a quote may hold instead of the translated one: never `from` or `to`.
    const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

    // ---- A reference builder: every checksum computed from scratch. -------------------

    /// An IPv4 packet to build; the address under translation is an argument of
    /// [`Spec::build`], so `translate(build(from)) == build(to)` is the whole property.
    #[derive(Debug, Clone)]
    struct Spec {
        options: Vec<u8>,
        ident: u16,
        ttl: u8,
        tos: u8,
        peer: Ipv4Addr,
        body: Body,
        /// Cut the payload to this many 8-byte units and set MF: a first fragment.
        first_fragment: Option<usize>,
    }

    #[derive(Debug, Clone)]
    enum Body {
        Tcp {
            fields: [u8; 12],
            options: Vec<u8>,
            payload: Vec<u8>,
        },
        Udp {
            ports: [u8; 4],
            payload: Vec<u8>,
            no_checksum: bool,
        },
        Icmp {
            kind: u8,
            code: u8,
            rest: [u8; 4],
            data: Vec<u8>,
        },
        Error {
            kind: u8,
            code: u8,
            rest: [u8; 4],
            inner: Box<Spec>,
            quote_len: usize,
            matches: bool,
        },
        /// A later fragment (offset in 8-byte units > 0) of some protocol.
        Later {
            protocol: u8,
            offset: u16,
            more: bool,
            payload: Vec<u8>,
        },
        Other {
            protocol: u8,
            payload: Vec<u8>,
        },
    }

    fn ip_header(
        spec: &Spec,
        protocol: u8,
        flg_off: u16,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
    ) -> Vec<u8> {
        let ihl = 20 + spec.options.len();
        let mut h = vec![0u8; ihl];
        h[0] = 0x40 | (ihl / 4) as u8;
        h[1] = spec.tos;
        h[2..4].copy_from_slice(&((ihl + payload_len) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&spec.ident.to_be_bytes());
        h[6..8].copy_from_slice(&flg_off.to_be_bytes());
        h[8] = spec.ttl;
        h[9] = protocol;
        h[12..16].copy_from_slice(&src.octets());
        h[16..20].copy_from_slice(&dst.octets());
        h[20..].copy_from_slice(&spec.options);
        let c = checksum::ipv4_header(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    impl Spec {
        /// The packet with `addr` as the address on `side` (the peer on the other side).
        fn build(&self, side: Side, addr: Ipv4Addr) -> Vec<u8> {
            let (src, dst) = match side {
                Side::Src => (addr, self.peer),
                Side::Dst => (self.peer, addr),
            };
            let mut flg_off = 0u16;
            let (protocol, payload) = match &self.body {
                Body::Tcp { fields, options, payload } => {
                    let mut seg = vec![0u8; 20];
                    seg[..12].copy_from_slice(fields);
                    seg[12] = (((20 + options.len()) / 4) << 4) as u8;
                    seg[13] = 0x18;
                    seg[14] = 0x10;
                    seg.extend_from_slice(options);
                    seg.extend_from_slice(payload);
                    let c = tcp_udp_ipv4(src, dst, PROTO_TCP, &seg);
                    seg[16..18].copy_from_slice(&c.to_be_bytes());
                    (PROTO_TCP, seg)
                }
                Body::Udp { ports, payload, no_checksum } => {
                    let mut seg = vec![0u8; 8];
                    seg[..4].copy_from_slice(ports);
                    seg[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                    seg.extend_from_slice(payload);
                    if !no_checksum {
                        let c = udp_on_wire(tcp_udp_ipv4(src, dst, PROTO_UDP, &seg));
                        seg[6..8].copy_from_slice(&c.to_be_bytes());
                    }
                    (PROTO_UDP, seg)
                }
                Body::Icmp { kind, code, rest, data } => {
                    (PROTO_ICMP, icmp(*kind, *code, *rest, data))
                }
                Body::Error { kind, code, rest, inner, quote_len, matches } => {
                    let quoted = if *matches { addr } else { STRANGER };
                    let full = inner.build(side.reverse(), quoted);
                    let quote = &full[..(*quote_len).min(full.len())];
                    (PROTO_ICMP, icmp(*kind, *code, *rest, quote))
                }
                Body::Later { protocol, offset, more, payload } => {
                    flg_off = offset | if *more { 0x2000 } else { 0 };
                    (*protocol, payload.clone())
                }
                Body::Other { protocol, payload } => (*protocol, payload.clone()),
            };
            let payload = match self.first_fragment {
                Some(units) if units * 8 < payload.len() => {
                    flg_off |= 0x2000;
                    payload[..units * 8].to_vec()
                }
                _ => payload,
            };
            let mut p = ip_header(self, protocol, flg_off, src, dst, payload.len());
            p.extend_from_slice(&payload);
            p
        }

        /// True when the packet is whole (its transport checksum can be verified).
        fn is_whole(&self) -> bool {
            !matches!(self.body, Body::Later { .. }) && self.first_fragment.is_none()
        }
    }

    fn icmp(kind: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, code, 0, 0];
        m.extend_from_slice(&rest);
        m.extend_from_slice(data);
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    // ---- Strategies. -------------------------------------------------------------------

    fn addr_in(first: u8) -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 3]>().prop_map(move |[a, b, c]| Ipv4Addr::new(first, a, b, c))
    }

    fn words(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
        (0..=max_words).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 4))
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..=max)
    }

    fn transport_body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (any::<[u8; 12]>(), words(10), bytes(300))
                .prop_map(|(fields, options, payload)| Body::Tcp { fields, options, payload }),
            (any::<[u8; 4]>(), bytes(300), proptest::bool::weighted(0.2)).prop_map(
                |(ports, payload, no_checksum)| Body::Udp { ports, payload, no_checksum }
            ),
            (prop_oneof![Just(0u8), Just(8u8), Just(13u8)], any::<[u8; 4]>(), bytes(100))
                .prop_map(|(kind, rest, data)| Body::Icmp { kind, code: 0, rest, data }),
            (prop_oneof![Just(47u8), Just(50u8), Just(132u8)], bytes(100))
                .prop_map(|(protocol, payload)| Body::Other { protocol, payload }),
        ]
    }

    fn spec_with(body: impl Strategy<Value = Body>) -> impl Strategy<Value = Spec> {
        (words(10), any::<u16>(), any::<u8>(), any::<u8>(), addr_in(203), body).prop_map(
            |(options, ident, ttl, tos, peer, body)| Spec {
                options,
                ident,
                ttl,
                tos,
                peer,
                body,
                first_fragment: None,
            },
        )
    }

    fn error_body() -> impl Strategy<Value = Body> {
        (
            prop_oneof![
                Just((3u8, 3u8)),
                Just((3, 4)),
                Just((3, 13)),
                Just((11, 0)),
                Just((12, 0))
            ],
            any::<[u8; 4]>(),
            spec_with(transport_body()),
            20usize..200,
            proptest::bool::weighted(0.85),
        )
            .prop_map(|((kind, code), rest, inner, quote_len, matches)| {
                // A quote that ends inside a transport checksum keeps that half-field as
                // it is, unlike the rebuilt reference: `test_quote_rules` covers that case.
                let ihl = 20 + inner.options.len();
                let quote_len = if quote_len == ihl + 7 || quote_len == ihl + 17 {
                    quote_len + 1
                } else {
                    quote_len
                };
                Body::Error { kind, code, rest, inner: Box::new(inner), quote_len, matches }
            })
    }

    fn later_body() -> impl Strategy<Value = Body> {
        (prop_oneof![Just(1u8), Just(6u8), Just(17u8)], 1u16..0x1000, any::<bool>(), bytes(200))
            .prop_map(|(protocol, offset, more, payload)| Body::Later {
                protocol,
                offset,
                more,
                payload,
            })
    }

    fn any_spec() -> impl Strategy<Value = Spec> {
        (
            spec_with(prop_oneof![4 => transport_body(), 3 => error_body(), 1 => later_body()]),
            proptest::option::weighted(0.15, 3usize..40),
        )
            .prop_map(|(mut spec, cut)| {
                spec.first_fragment = match &spec.body {
                    Body::Later { .. } => None,
                    // A cut through the quote would hide words whose change the reference
                    // (which sums the whole message) sees: keep every changed word inside.
                    Body::Error { inner, .. } => {
                        cut.filter(|units| units * 8 >= 8 + 20 + inner.options.len() + 18)
                    }
                    _ => cut,
                };
                spec
            })
    }

    // ---- Checks. -----------------------------------------------------------------------

    /// Every checksum that can be verified on a whole packet.
    fn assert_checksums(p: &[u8]) {
        let ihl = usize::from(p[0] & 0xF) * 4;
        assert!(checksum::ipv4_header_ok(&p[..ihl]), "IPv4 header checksum");
        let (src, dst) = (source(p).unwrap(), destination(p).unwrap());
        let l4 = &p[ihl..];
        match p[9] {
            PROTO_TCP => assert!(tcp_udp_ipv4_ok(src, dst, PROTO_TCP, l4), "TCP checksum"),
            PROTO_UDP if l4[6..8] != [0, 0] => {
                assert!(tcp_udp_ipv4_ok(src, dst, PROTO_UDP, l4), "UDP checksum")
            }
            PROTO_ICMP => {
                assert_eq!(checksum::sum(l4), 0xFFFF, "ICMP checksum");
                if [3, 11, 12].contains(&l4[0]) {
                    let q = &l4[8..];
                    let q_ihl = usize::from(q[0] & 0xF) * 4;
                    if q.len() >= q_ihl {
                        assert!(checksum::ipv4_header_ok(&q[..q_ihl]), "quoted header checksum");
                    }
                }
            }
            _ => {}
        }
    }

    fn nat(side: Side) -> fn(&mut [u8], Ipv4Addr, Ipv4Addr) -> Result<(), DropReason> {
        match side {
            Side::Src => snat,
            Side::Dst => dnat,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Translating a packet built with `from` gives the packet built with `to`, checksums
        /// recomputed from scratch; translating back gives the original bytes; every
        /// checksum verifies.
        #[test]
        fn prop_translate_matches_rebuild(
            spec in any_spec(),
            from in addr_in(10),
            to in addr_in(52),
            dst in any::<bool>(),
        ) {
            let side = if dst { Side::Dst } else { Side::Src };
            let original = spec.build(side, from);
            let mut p = original.clone();
            prop_assert_eq!(nat(side)(&mut p, from, to), Ok(()));
            prop_assert_eq!(&p, &spec.build(side, to));
            if spec.is_whole() {
                assert_checksums(&p);
            } else {
                let ihl = usize::from(p[0] & 0xF) * 4;
                prop_assert!(checksum::ipv4_header_ok(&p[..ihl]));
            }
            prop_assert_eq!(nat(side)(&mut p, to, from), Ok(()));
            prop_assert_eq!(p, original);
        }

        /// Every prefix of a packet, and the packet under a lying total length: no panic,
        /// and an error leaves the bytes unchanged.
        #[test]
        fn prop_truncated_no_panic(
            spec in any_spec(),
            total in any::<u16>(),
            dst in any::<bool>(),
        ) {
            let side = if dst { Side::Dst } else { Side::Src };
            let original = spec.build(side, PRIVATE);
            for len in 0..=original.len() {
                let mut p = original[..len].to_vec();
                if nat(side)(&mut p, PRIVATE, EIP).is_err() {
                    prop_assert_eq!(&p[..], &original[..len]);
                }
                let mut p = original[..len].to_vec();
                if p.len() >= 4 {
                    p[2..4].copy_from_slice(&total.to_be_bytes());
                }
                let before = p.clone();
                if nat(side)(&mut p, PRIVATE, EIP).is_err() {
                    prop_assert_eq!(p, before);
                }
            }
        }

        /// Arbitrary bytes: no panic.
        #[test]
        fn prop_random_bytes_no_panic(mut p in bytes(120), dst in any::<bool>()) {
            if let Some(b) = p.first_mut() {
                *b = 0x40 | (*b & 0x0F);
            }
            let (from, to) = (source(&p).unwrap_or(PRIVATE), EIP);
            let _ = snat(&mut p, from, to);
            let (from, to) = (destination(&p).unwrap_or(EIP), PRIVATE);
            let _ = if dst { dnat(&mut p, from, to) } else { snat(&mut p, from, to) };
        }
    }

    // ---- Fixed cases. ------------------------------------------------------------------

    fn udp_spec(payload: Vec<u8>, no_checksum: bool) -> Spec {
        Spec {
            options: vec![],
            ident: 7,
            ttl: 64,
            tos: 0,
            peer: PEER,
            body: Body::Udp { ports: [0x9c, 0x40, 0, 53], payload, no_checksum },
            first_fragment: None,
        }
    }

    #[test]
    fn test_udp_zero_checksum_stays_zero() {
        let spec = udp_spec(b"no checksum here".to_vec(), true);
        let mut p = spec.build(Side::Src, PRIVATE);
        snat(&mut p, PRIVATE, EIP).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
        assert_eq!(p, spec.build(Side::Src, EIP));
    }

    #[test]
    fn test_udp_computed_zero_sent_as_ffff() {
        // Choose the last payload word so that the checksum computed with EIP is 0.
        let mut spec = udp_spec(vec![0x11, 0x22, 0, 0], false);
        let p = spec.build(Side::Src, EIP);
        let mut seg = p[20..].to_vec();
        seg[6..8].copy_from_slice(&[0, 0]);
        let pseudo = checksum::pseudo_header_sum(EIP, PEER, PROTO_UDP, seg.len() as u16);
        let fudge = !checksum::add(pseudo, checksum::sum(&seg));
        spec.body = Body::Udp {
            ports: [0x9c, 0x40, 0, 53],
            payload: [[0x11, 0x22], fudge.to_be_bytes()].concat(),
            no_checksum: false,
        };
        let expected = spec.build(Side::Src, EIP);
        assert_eq!(&expected[26..28], &[0xFF, 0xFF], "the computed checksum is 0");
        let mut p = spec.build(Side::Src, PRIVATE);
        assert_ne!(&p[26..28], &[0xFF, 0xFF]);
        snat(&mut p, PRIVATE, EIP).unwrap();
        assert_eq!(p, expected);
        assert_checksums(&p);
    }

    #[test]
    fn test_wrong_address_is_no_elastic_ip() {
        let spec = udp_spec(b"x".to_vec(), false);
        let mut p = spec.build(Side::Src, PRIVATE);
        let before = p.clone();
        assert_eq!(snat(&mut p, EIP, PRIVATE), Err(DropReason::NoElasticIp));
        assert_eq!(dnat(&mut p, PRIVATE, EIP), Err(DropReason::NoElasticIp));
        assert_eq!(p, before);
        assert_eq!(source(&p), Some(PRIVATE));
        assert_eq!(destination(&p), Some(PEER));
    }

    #[test]
    fn test_bad_headers_are_malformed() {
        let spec = udp_spec(b"payload".to_vec(), false);
        let good = spec.build(Side::Src, PRIVATE);
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = good.clone();
            f(&mut p);
            let before = p.clone();
            assert_eq!(snat(&mut p, PRIVATE, EIP), Err(DropReason::Malformed));
            assert_eq!(p, before);
        };
        bad(&|p| p[0] = 0x65); // version 6
        bad(&|p| p[0] = 0x44); // IHL 4
        bad(&|p| p[0] = 0x4F); // IHL 15 > packet
        bad(&|p| {
            let n = p.len() as u16 + 1;
            p[2..4].copy_from_slice(&n.to_be_bytes())
        }); // total > slice
        bad(&|p| p[2..4].copy_from_slice(&19u16.to_be_bytes())); // total < IHL
        bad(&|p| p[2..4].copy_from_slice(&27u16.to_be_bytes())); // UDP header cut
        bad(&|p| p.clear());
        // Ethernet padding after the total length is left alone.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xEE; 6]);
        snat(&mut padded, PRIVATE, EIP).unwrap();
        assert_eq!(&padded[..good.len()], &spec.build(Side::Src, EIP)[..]);
        assert_eq!(&padded[good.len()..], &[0xEE; 6]);
    }

    #[test]
    fn test_tiny_tcp_first_fragment_is_malformed() {
        let spec = Spec {
            options: vec![],
            ident: 1,
            ttl: 64,
            tos: 0,
            peer: PEER,
            body: Body::Tcp { fields: [1; 12], options: vec![], payload: vec![9; 40] },
            first_fragment: Some(1), // 8 bytes: the checksum is in the next fragment
        };
        let mut p = spec.build(Side::Src, PRIVATE);
        assert_eq!(snat(&mut p, PRIVATE, EIP), Err(DropReason::Malformed));
        // The second fragment (offset 1) only gets the header change.
        let later = Spec {
            body: Body::Later { protocol: PROTO_TCP, offset: 1, more: false, payload: vec![3; 20] },
            first_fragment: None,
            ..spec
        };
        let mut p = later.build(Side::Src, PRIVATE);
        snat(&mut p, PRIVATE, EIP).unwrap();
        assert_eq!(p, later.build(Side::Src, EIP));
    }

    fn error_spec(quote_len: usize, matches: bool, inner: Body) -> Spec {
        let inner = Spec {
            options: vec![],
            ident: 0x1234,
            ttl: 63,
            tos: 0,
            peer: PEER,
            body: inner,
            first_fragment: None,
        };
        Spec {
            options: vec![],
            ident: 9,
            ttl: 64,
            tos: 0,
            peer: PEER,
            body: Body::Error {
                kind: 3,
                code: 3,
                rest: [0; 4],
                inner: Box::new(inner),
                quote_len,
                matches,
            },
            first_fragment: None,
        }
    }

    #[test]
    fn test_quote_rules() {
        let udp =
            Body::Udp { ports: [0, 53, 0x82, 0x9a], payload: vec![7; 30], no_checksum: false };
        // Quote shorter than an IPv4 header: dropped, unchanged.
        for len in 0..20 {
            let mut p = error_spec(len, true, udp.clone()).build(Side::Src, PRIVATE);
            let before = p.clone();
            assert_eq!(snat(&mut p, PRIVATE, EIP), Err(DropReason::Malformed), "{len}");
            assert_eq!(p, before);
        }
        // Quote of 20..28 bytes: the header is translated, the UDP checksum only once there.
        for len in 20..40 {
            let spec = error_spec(len, true, udp.clone());
            let mut p = spec.build(Side::Src, PRIVATE);
            let before = p.clone();
            snat(&mut p, PRIVATE, EIP).unwrap();
            let mut expected = spec.build(Side::Src, EIP);
            if len == 27 {
                // The quote ends inside the UDP checksum: that half is left alone, and the
                // ICMP checksum matches what was actually changed.
                expected[20 + 8 + 26] = before[20 + 8 + 26];
                let c = checksum::checksum(&{
                    let mut m = expected[20..].to_vec();
                    m[2..4].copy_from_slice(&[0, 0]);
                    m
                });
                expected[22..24].copy_from_slice(&c.to_be_bytes());
            }
            assert_eq!(p, expected, "{len}");
            assert_checksums(&p);
        }
        // A quote about someone else: only the outer header changes.
        let spec = error_spec(28, false, udp.clone());
        let mut p = spec.build(Side::Src, PRIVATE);
        let before = p.clone();
        snat(&mut p, PRIVATE, EIP).unwrap();
        assert_eq!(&p[20..], &before[20..]);
        assert_eq!(source(&p), Some(EIP));
        // A quote that is not IPv4.
        let mut p = error_spec(28, true, udp).build(Side::Src, PRIVATE);
        p[28] = 0x65;
        assert_eq!(snat(&mut p, PRIVATE, EIP), Err(DropReason::Malformed));
        p[28] = 0x44;
        assert_eq!(snat(&mut p, PRIVATE, EIP), Err(DropReason::Malformed));
    }

    #[test]
    fn test_frag_needed_quoting_tcp_dnat() {
        // The router on the path tells the Elastic IP that the instance's TCP segment was
        // too big; inbound DNAT turns the quoted source back into the private address.
        let tcp = Body::Tcp {
            fields: [0x9c, 0x40, 1, 0xbb, 0, 0, 3, 0xe8, 0, 0, 7, 0xd0],
            options: vec![],
            payload: vec![0x78; 1400],
        };
        for quote_len in [28, 40, 60, 1000] {
            let mut spec = error_spec(quote_len, true, tcp.clone());
            if let Body::Error { kind, code, rest, .. } = &mut spec.body {
                (*kind, *code, *rest) = (3, 4, [0, 0, 0x05, 0x78]);
            }
            let mut p = spec.build(Side::Dst, EIP);
            dnat(&mut p, EIP, PRIVATE).unwrap();
            assert_eq!(p, spec.build(Side::Dst, PRIVATE), "{quote_len}");
            assert_checksums(&p);
            assert_eq!(&p[28 + 12..28 + 16], &PRIVATE.octets());
        }
    }

    #[test]
    fn test_echo_only_header_changes() {
        let spec = Spec {
            options: vec![0x94, 4, 0, 0],
            ident: 3,
            ttl: 64,
            tos: 0,
            peer: PEER,
            body: Body::Icmp {
                kind: 8,
                code: 0,
                rest: [0x42, 0x42, 0, 7],
                data: b"vpcemu-ping-data".to_vec(),
            },
            first_fragment: None,
        };
        let mut p = spec.build(Side::Src, PRIVATE);
        let before = p.clone();
        snat(&mut p, PRIVATE, EIP).unwrap();
        assert_eq!(&p[24..], &before[24..]);
        assert_eq!(p, spec.build(Side::Src, EIP));
    }
}
