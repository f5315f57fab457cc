//! IPv4 fragmentation (RFC 791 section 3.2) and the ICMP "fragmentation needed" answer
//! (RFC 792, RFC 1191), for packets leaving a card towards a link with a smaller MTU than
//! the 9001-byte VPC MTU: the edge's 1500-byte internet side, an instance port that
//! carries less (a Nitro card delivering to net_tap).
//!
//! # [`fragment`]
//!
//! * Input: `pkt.data()` starts at an IPv4 header (no Ethernet). Validation: version 4,
//!   IHL >= 5, `IHL * 4 <= total length <= data length`, options well formed (a bad
//!   option length), else [`DropReason::Malformed`]. Bytes after the total length
//!   (padding) are dropped with the first fragment's trim.
//! * A packet that fits (`total length <= mtu`) is left alone: `Ok(1)`.
//! * `mtu` below [`MIN_MTU`] (68, RFC 791: every IPv4 link carries 68 bytes) is
//!   [`DropReason::MtuExceeded`]. With `mtu >= 68` every fragment, the first with a
//!   60-byte header included, carries at least 8 data bytes, so no other bound is needed.
//! * DF set: [`DropReason::MtuExceeded`], nothing changed: the caller answers with
//!   [`frag_needed_in_place`] or [`FragNeeded`].
//! * Data is cut into pieces of `(mtu - header) & !7` bytes (a multiple of 8; the last
//!   piece takes the rest). Offsets are added to the packet's own offset and MF is kept on
//!   the last piece, so a fragment is refragmented correctly. Every fragment gets its own
//!   total length, MF, offset and header checksum; identification, TOS, TTL, protocol,
//!   addresses and the reserved bit are copied.
//! * Options: the first fragment keeps the whole header; the later ones carry only the
//!   options whose *copied* flag is set (LSRR, SSRR, router alert, security...), padded
//!   with END to a multiple of 4 bytes (RFC 791 "copied flag").
//! * At most [`MAX_FRAGMENTS`] fragments (64: a 9001-byte packet needs 7 at MTU 1500 and
//!   17 at 576); a packet needing more is [`DropReason::MtuExceeded`]. So is a packet whose
//!   last offset would not fit the 13-bit field ([`DropReason::Malformed`]: it claims to
//!   end past 65535).
//! * The first fragment stays in `pkt` (trimmed). The later ones are written into buffers
//!   from `alloc` (their data is emptied first and grown with `append`, so any headroom is
//!   fine), all of them before anything is sent: when `alloc` fails
//!   ([`DropReason::NoBuffer`]) or a buffer is too small ([`DropReason::NoRoom`]), the
//!   buffers already taken are dropped, nothing is sent and `pkt` is unchanged. Then they
//!   go to `send` in offset order, and the count (first fragment included) is returned.
//!   The buffers wait in a fixed array on the stack: no heap allocation.
//!
//! [`fragment_out`] runs [`fragment`] for a stage: the later fragments come from and go
//! out through its [`Extra`], each finished (an Ethernet header, ESP) on the way.
//!
//! # [`FragNeeded`] and [`frag_needed_in_place`]
//!
//! The ICMP destination unreachable / fragmentation needed message (type 3, code 4,
//! next-hop MTU in bytes 6..8, RFC 1191) about an offending packet: [`FragNeeded::about`]
//! checks the offender and copies what the answer quotes to the stack;
//! [`FragNeeded::write_into`] writes the answer into a buffer (the offender's own with
//! [`frag_needed_in_place`], or a fresh one):
//!
//! * IPv4: source `src`, destination the offender's source, TTL 64, protocol 1, no
//!   options, DF clear, identification copied from the offender (any value works for an
//!   unfragmented datagram), DSCP CS6 (RFC 1812 4.3.2.5: errors SHOULD carry Internetwork
//!   Control precedence, as Linux does), ECN 0, header checksum.
//! * ICMP: the offender's IP header (options included) and the first 8 bytes of its
//!   payload (all of it when shorter, RFC 792); checksum. The buffer is trimmed or grown
//!   with `append` ([`DropReason::NoRoom`] without the tailroom).
//! * Validation as for [`fragment`] ([`DropReason::Malformed`]). No answer is built, the
//!   buffer is unchanged and [`DropReason::MtuExceeded`] returned (the offender is dropped
//!   silently, as RFC 1122 3.2.2 and RFC 1812 4.3.2.7 require) when the offender is a later
//!   fragment, an ICMP error (types 3, 4, 5, 11, 12), sent to a multicast or the limited
//!   broadcast address, or from an address that is not one host (0/8, 127/8, 224/4,
//!   240/4).
//!
//! No panic on any input; the only indexing is on lengths checked just before.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

use std::net::Ipv4Addr;

use crate::{DropReason, Extra, Output};
use wire::icmpv4;
use wire::ipv4::{self, Protocol, HEADER_LEN, MAX_HEADER_LEN};
use wire::PacketBuf;

/// Smallest MTU an IPv4 link may have (RFC 791).
pub const MIN_MTU: usize = 68;

/// Most fragments [`fragment`] makes of one packet.
pub const MAX_FRAGMENTS: usize = 64;

/// Largest fragment offset in bytes (13 bits of 8-byte units).
const MAX_OFFSET: usize = (ipv4::FRAG_OFFSET_MASK as usize) << 3;

/// TTL of the ICMP messages built here.
const ICMP_TTL: u8 = 64;

/// DSCP CS6 (Internetwork Control precedence) for ICMP errors.
const ICMP_DSCP: u8 = 48;

/// Split the IPv4 packet in `pkt` into fragments of at most `mtu` bytes; see the module
/// rules. The first fragment stays in `pkt`; the others are built in buffers from `alloc`
/// and handed to `send` in order. Returns the number of fragments, the first included
/// (1 when the packet fits and is left alone).
///
/// Errors, with `pkt` unchanged and nothing sent: [`DropReason::Malformed`] (bad header or
/// options, offsets past 65535), [`DropReason::MtuExceeded`] (DF set, `mtu` < 68, more
/// than [`MAX_FRAGMENTS`] needed), [`DropReason::NoBuffer`] (`alloc` returned `None`),
/// [`DropReason::NoRoom`] (a buffer from `alloc` cannot hold its fragment).
pub fn fragment<B, A, S>(
    pkt: &mut B,
    mtu: usize,
    mut alloc: A,
    mut send: S,
) -> Result<usize, DropReason>
where
    B: PacketBuf,
    A: FnMut() -> Option<B>,
    S: FnMut(B),
{
    let data = pkt.data();
    let ip = checked(data)?;
    let ihl = usize::from(ip.header_len());
    let total = usize::from(ip.total_len());
    if total <= mtu {
        return Ok(1);
    }
    if mtu < MIN_MTU || ip.dont_frag() {
        return Err(DropReason::MtuExceeded);
    }
    let mut later = [0u8; MAX_HEADER_LEN];
    let later_len = later_header(ip.header(), &mut later)?;
    let later = later.get(..later_len).ok_or(DropReason::Malformed)?;

    // mtu >= 68 and headers <= 60 bytes: both pieces are at least 8 bytes. total > mtu
    // >= ihl + first_piece: there is something after the first piece.
    let first_piece = (mtu - ihl) & !7;
    let later_piece = (mtu - later_len) & !7;
    let payload = data.get(ihl..total).ok_or(DropReason::Malformed)?;
    let count = 1 + (payload.len() - first_piece).div_ceil(later_piece);
    if count > MAX_FRAGMENTS {
        return Err(DropReason::MtuExceeded);
    }
    let base = usize::from(ip.frag_offset());
    if base + first_piece + (count - 2) * later_piece > MAX_OFFSET {
        return Err(DropReason::Malformed);
    }
    let more = ip.more_frags();

    // Build every later fragment before touching `pkt` or sending anything.
    let mut fragments: [Option<B>; MAX_FRAGMENTS] = core::array::from_fn(|_| None);
    let mut offset = first_piece;
    for slot in fragments.iter_mut().take(count - 1) {
        let end = (offset + later_piece).min(payload.len());
        let piece = payload.get(offset..end).ok_or(DropReason::Malformed)?;
        let mut buf = alloc().ok_or(DropReason::NoBuffer)?;
        write_fragment(&mut buf, later, piece, base + offset, end < payload.len() || more)?;
        *slot = Some(buf);
        offset = end;
    }

    // The first fragment: the same header with a new length, MF and checksum.
    let first_len = ihl + first_piece;
    let head = pkt.data_mut().get_mut(..first_len).ok_or(DropReason::Malformed)?;
    let mut ip = ipv4::Packet::new_unchecked(head);
    ip.set_total_len(first_len as u16);
    ip.set_more_frags(true);
    ip.fill_checksum();
    let extra = pkt.len() - first_len;
    pkt.trim(extra).map_err(|_| DropReason::Malformed)?;

    for buf in fragments.iter_mut().filter_map(Option::take) {
        send(buf);
    }
    Ok(count)
}

/// Cut `p` into fragments of at most `mtu` bytes ([`fragment`]) and `finish` each, the
/// first (which stays in `p`) first, so that e.g. an SA numbers them in order; the others
/// come from and go to `out` through `extra`. A later fragment `finish` refuses is freed
/// (the receiver's reassembly then times out, as with any loss). A packet that fits is
/// only finished.
///
/// Errors as [`fragment`] (nothing sent, `p` unchanged), or `finish`'s on the first
/// fragment (then no later fragment is sent).
pub fn fragment_out<B: PacketBuf, X: Extra<B>>(
    p: &mut B,
    mtu: usize,
    extra: &mut X,
    out: Output,
    mut finish: impl FnMut(&mut B) -> Result<(), DropReason>,
) -> Result<(), DropReason> {
    let mut fragments: [Option<B>; MAX_FRAGMENTS] = core::array::from_fn(|_| None);
    let mut n = 0usize;
    fragment(p, mtu, || extra.alloc(), |f| {
        if let Some(slot) = fragments.get_mut(n) {
            *slot = Some(f);
        }
        n += 1;
    })?;
    let first = finish(p);
    for f in fragments.iter_mut().take(n) {
        if let Some(mut f) = f.take() {
            if first.is_ok() && finish(&mut f).is_ok() {
                extra.send(f, out);
            }
        }
    }
    first
}

/// An ICMP "fragmentation needed" answer (type 3 code 4) about one offending packet,
/// ready to be written: what it quotes is copied, so the offender's buffer may be reused.
/// See the [module documentation](self).
#[derive(Clone, Copy, Debug)]
pub struct FragNeeded {
    quote: [u8; MAX_HEADER_LEN + icmpv4::QUOTE_PAYLOAD_LEN],
    quote_len: usize,
    header: ipv4::Repr,
    mtu: u16,
}

impl FragNeeded {
    /// The answer to `offending` (starting at its IPv4 header) with next-hop MTU `mtu`,
    /// from `src` back to the offender's source.
    ///
    /// Errors: [`DropReason::Malformed`] (bad header), [`DropReason::MtuExceeded`] (no
    /// ICMP error may be sent about this packet).
    pub fn about(offending: &[u8], mtu: u16, src: Ipv4Addr) -> Result<FragNeeded, DropReason> {
        let ip = checked(offending)?;
        if !may_answer(&ip) {
            return Err(DropReason::MtuExceeded);
        }
        let quote_len = (usize::from(ip.header_len()) + icmpv4::QUOTE_PAYLOAD_LEN)
            .min(usize::from(ip.total_len()));
        let mut quote = [0u8; MAX_HEADER_LEN + icmpv4::QUOTE_PAYLOAD_LEN];
        quote
            .get_mut(..quote_len)
            .ok_or(DropReason::Malformed)?
            .copy_from_slice(offending.get(..quote_len).ok_or(DropReason::Malformed)?);
        let header = ipv4::Repr {
            src_addr: src,
            dst_addr: ip.src_addr(),
            protocol: Protocol::ICMP,
            payload_len: icmpv4::HEADER_LEN + quote_len,
            ttl: ICMP_TTL,
            dscp: ICMP_DSCP,
            ecn: 0,
            ident: ip.ident(),
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        Ok(FragNeeded { quote, quote_len, header, mtu })
    }

    /// Length of the answer's IPv4 packet.
    pub fn len(&self) -> usize {
        self.header.buffer_len()
    }

    /// Always false: an answer has at least its two headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Make `buf`'s data the answer (trimmed, or grown with `append`: [`DropReason::NoRoom`]
    /// without the tailroom, `buf` unchanged).
    pub fn write_into<B: PacketBuf>(&self, buf: &mut B) -> Result<(), DropReason> {
        let quote = self.quote.get(..self.quote_len).ok_or(DropReason::Malformed)?;
        let message = icmpv4::Repr::DstUnreachable {
            code: icmpv4::unreachable::FRAG_NEEDED,
            next_hop_mtu: self.mtu,
            quote,
        };
        let new_len = self.len();
        let have = buf.len();
        if have > new_len {
            buf.trim(have - new_len).map_err(|_| DropReason::Malformed)?;
        } else if have < new_len {
            buf.append(new_len - have).map_err(|_| DropReason::NoRoom)?;
        }
        let out = buf.data_mut();
        if out.len() != new_len {
            return Err(DropReason::Malformed);
        }
        let (h, m) = out.split_at_mut(HEADER_LEN);
        self.header.emit(&mut ipv4::Packet::new_unchecked(h)).map_err(|_| DropReason::Malformed)?;
        message.emit(&mut icmpv4::Packet::new_unchecked(m)).map_err(|_| DropReason::Malformed)?;
        Ok(())
    }
}

/// Turn the offending IPv4 packet in `pkt` into the ICMP "fragmentation needed" message
/// (type 3 code 4, next-hop MTU `mtu`) from `src` back to the offender's source; see the
/// module rules.
///
/// Errors: [`DropReason::Malformed`] (bad header), [`DropReason::MtuExceeded`] (no ICMP
/// error may be sent about this packet), [`DropReason::NoRoom`] (a very short offender in
/// a buffer without the tailroom to grow); `pkt` is then unchanged.
pub fn frag_needed_in_place<B: PacketBuf>(
    pkt: &mut B,
    mtu: u16,
    src: Ipv4Addr,
) -> Result<(), DropReason> {
    FragNeeded::about(pkt.data(), mtu, src)?.write_into(pkt)
}

/// The IPv4 view of `data` after the length checks, version 4.
fn checked(data: &[u8]) -> Result<ipv4::Packet<&[u8]>, DropReason> {
    let ip = ipv4::Packet::new_checked(data).map_err(|_| DropReason::Malformed)?;
    if ip.version() != 4 {
        return Err(DropReason::Malformed);
    }
    Ok(ip)
}

/// The header of the fragments after the first: the fixed 20 bytes, then the options with
/// the copied flag, padded with END to a multiple of 4. Returns its length (IHL set).
fn later_header(header: &[u8], out: &mut [u8; MAX_HEADER_LEN]) -> Result<usize, DropReason> {
    let (fixed, options) = (header.get(..HEADER_LEN), header.get(HEADER_LEN..));
    let (Some(fixed), Some(options)) = (fixed, options) else {
        return Err(DropReason::Malformed);
    };
    let (out_fixed, out_options) = out.split_at_mut(HEADER_LEN);
    out_fixed.copy_from_slice(fixed);
    let mut len = 0;
    for option in ipv4::Options::new(options) {
        let option = option.map_err(|_| DropReason::Malformed)?;
        if !option.copied() {
            continue;
        }
        let option_len = option.data.len() + 2;
        let slot = out_options.get_mut(len..len + option_len).ok_or(DropReason::Malformed)?;
        let (kind_len, data) = slot.split_at_mut(2);
        kind_len.copy_from_slice(&[option.kind, option_len as u8]);
        data.copy_from_slice(option.data);
        len += option_len;
    }
    let padded = (len + 3) & !3;
    out_options.get_mut(len..padded).ok_or(DropReason::Malformed)?.fill(ipv4::option::END);
    let header_len = HEADER_LEN + padded;
    ipv4::Packet::new_unchecked(&mut out[..]).set_header_len(header_len as u8);
    Ok(header_len)
}

/// Fill `buf` with one later fragment: `header` (a [`later_header`]) and `piece`, at
/// byte `offset` of the original datagram, MF = `more`.
fn write_fragment<B: PacketBuf>(
    buf: &mut B,
    header: &[u8],
    piece: &[u8],
    offset: usize,
    more: bool,
) -> Result<(), DropReason> {
    let len = header.len() + piece.len();
    let stale = buf.len();
    buf.trim(stale).map_err(|_| DropReason::NoRoom)?;
    let out = buf.append(len).map_err(|_| DropReason::NoRoom)?;
    if out.len() != len {
        return Err(DropReason::NoRoom);
    }
    let (h, d) = out.split_at_mut(header.len());
    h.copy_from_slice(header);
    d.copy_from_slice(piece);
    let mut ip = ipv4::Packet::new_unchecked(out);
    ip.set_total_len(len as u16);
    ip.set_frag_offset(offset as u16);
    ip.set_more_frags(more);
    ip.fill_checksum();
    Ok(())
}

/// RFC 1122 3.2.2 / RFC 1812 4.3.2.7: may an ICMP error be sent about this packet?
fn may_answer(ip: &ipv4::Packet<&[u8]>) -> bool {
    if ip.frag_offset() != 0 {
        return false;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let first = src.octets()[0];
    if first == 0 || src.is_loopback() || first >= 224 {
        return false;
    }
    if dst.is_multicast() || dst.is_broadcast() {
        return false;
    }
    if ip.protocol() == Protocol::ICMP {
        // An ICMP error about an ICMP error could loop.
        if let Some(3 | 4 | 5 | 11 | 12) = ip.payload().first() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use wire::checksum::{self, tcp_udp_ipv4, tcp_udp_ipv4_ok, udp_on_wire};
    use wire::TestBuffer;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
    const EDGE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

    /// An IPv4 packet with a correct header checksum.
    fn ipv4(options: &[u8], flags: u16, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let ihl = 20 + options.len();
        let mut p = vec![0u8; ihl];
        p[0] = 0x40 | (ihl / 4) as u8;
        p[1] = 0x28;
        p[2..4].copy_from_slice(&((ihl + payload.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        p[8] = 63;
        p[9] = protocol;
        p[12..16].copy_from_slice(&SRC.octets());
        p[16..20].copy_from_slice(&DST.octets());
        p[20..].copy_from_slice(options);
        let c = checksum::ipv4_header(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A UDP packet of `total` bytes with its checksum.
    fn udp(total: usize, options: &[u8], flags: u16) -> Vec<u8> {
        let mut seg = vec![0x9c, 0x40, 0x13, 0x88, 0, 0, 0, 0];
        let len = total - 20 - options.len();
        seg[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        seg.extend_from_slice(&pattern(len - 8));
        let c = udp_on_wire(tcp_udp_ipv4(SRC, DST, 17, &seg));
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        ipv4(options, flags, 17, &seg)
    }

    /// A TCP packet of `total` bytes with its checksum.
    fn tcp(total: usize, flags: u16) -> Vec<u8> {
        let mut seg = vec![
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 3, 0xe8, 0, 0, 7, 0xd0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0,
            0,
        ];
        seg.extend_from_slice(&pattern(total - 40));
        let c = tcp_udp_ipv4(SRC, DST, 6, &seg);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        ipv4(&[], flags, 6, &seg)
    }

    fn alloc() -> Option<TestBuffer> {
        Some(TestBuffer::with_room(64, 2048))
    }

    /// Fragment `original` at `mtu`: every fragment's bytes, first included.
    fn fragments(original: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut pkt = TestBuffer::from_slice(original);
        let mut sent = Vec::new();
        let n =
            fragment(&mut pkt, mtu, alloc, |b: TestBuffer| sent.push(b.data().to_vec())).unwrap();
        let mut all = vec![pkt.data().to_vec()];
        all.extend(sent);
        assert_eq!(all.len(), n);
        all
    }

    /// Check every fragment, put them back together by offset and return the datagram
    /// (header of the first, with the original's MF, total length and checksum).
    fn reassemble(frags: &[Vec<u8>], mtu: usize) -> Vec<u8> {
        let mut parts: Vec<(usize, bool, &[u8])> = Vec::new();
        for f in frags {
            let ip = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(f.len() <= mtu, "fragment of {} bytes > mtu {mtu}", f.len());
            assert_eq!(usize::from(ip.total_len()), f.len());
            assert!(ip.verify_checksum(), "header checksum");
            assert!(!ip.dont_frag());
            assert_eq!(ip.frag_offset() % 8, 0);
            let ihl = usize::from(ip.header_len());
            parts.push((usize::from(ip.frag_offset()), ip.more_frags(), &f[ihl..]));
        }
        parts.sort_by_key(|p| p.0);
        let mut payload = Vec::new();
        for (i, (offset, more, data)) in parts.iter().enumerate() {
            assert_eq!(*offset, parts[0].0 + payload.len(), "contiguous");
            if i + 1 < parts.len() {
                assert!(*more, "MF on every fragment but the last");
                assert_eq!(data.len() % 8, 0, "pieces are multiples of 8");
            }
            payload.extend_from_slice(data);
        }
        let first = frags
            .iter()
            .find(|f| {
                usize::from(ipv4::Packet::new_checked(&f[..]).unwrap().frag_offset()) == parts[0].0
            })
            .unwrap();
        let ihl = usize::from(first[0] & 0xF) * 4;
        let mut out = first[..ihl].to_vec();
        out.extend_from_slice(&payload);
        let mut ip = ipv4::Packet::new_unchecked(&mut out[..]);
        ip.set_total_len((ihl + payload.len()) as u16);
        ip.set_more_frags(parts.last().unwrap().1);
        ip.fill_checksum();
        out
    }

    #[test]
    fn test_fragment_and_reassemble() {
        let cases = [(udp(9001, &[], 0), [1500, 576, 1280]), (tcp(1600, 0), [1500, 576, 68])];
        for (original, mtus) in cases {
            let name = if original[9] == 17 { "udp" } else { "tcp" };
            for mtu in mtus {
                let frags = fragments(&original, mtu);
                let expected_count =
                    1 + (original.len() - 20 - ((mtu - 20) & !7)).div_ceil((mtu - 20) & !7);
                assert_eq!(frags.len(), expected_count, "{name} at {mtu}");
                assert_eq!(frags[0].len(), 20 + ((mtu - 20) & !7));
                assert_eq!(reassemble(&frags, mtu), original, "{name} at {mtu}");
                let p = ipv4::Packet::new_checked(&original[..]).unwrap();
                assert!(tcp_udp_ipv4_ok(SRC, DST, original[9], p.payload()));
            }
        }
        // 9001 bytes at 68: 188 fragments, over the bound.
        let mut pkt = TestBuffer::from_slice(&udp(9001, &[], 0));
        assert_eq!(fragment(&mut pkt, 68, alloc, |_| panic!("sent")), Err(DropReason::MtuExceeded));
    }

    #[test]
    fn test_fits_df_and_small_mtu() {
        let original = udp(1500, &[], 0);
        let mut pkt = TestBuffer::from_slice(&original);
        assert_eq!(fragment(&mut pkt, 1500, alloc, |_| panic!("sent")), Ok(1));
        assert_eq!(pkt.data(), &original[..]);
        assert_eq!(fragment(&mut pkt, 67, alloc, |_| panic!("sent")), Err(DropReason::MtuExceeded));
        let df = udp(1600, &[], ipv4::FLAG_DF);
        let mut pkt = TestBuffer::from_slice(&df);
        assert_eq!(
            fragment(&mut pkt, 1500, alloc, |_| panic!("sent")),
            Err(DropReason::MtuExceeded)
        );
        assert_eq!(pkt.data(), &df[..]);
    }

    #[test]
    fn test_options_copied_flag() {
        // Router alert (148, copied), record route (7, not copied) and a NOP: 12 bytes.
        let options = [148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 1];
        let original = udp(3000, &options, 0);
        let frags = fragments(&original, 1500);
        assert_eq!(frags[0][0], 0x48, "the first fragment keeps every option");
        assert_eq!(&frags[0][20..32], &options);
        for f in &frags[1..] {
            assert_eq!(f[0], 0x46, "20 bytes + router alert");
            assert_eq!(&f[20..24], &[148, 4, 0, 0]);
        }
        assert_eq!(reassemble(&frags, 1500), original);
        // Only non-copied options: later fragments have a bare 20-byte header.
        let original = udp(3000, &[7, 7, 4, 0, 0, 0, 0, 0], 0);
        let frags = fragments(&original, 1500);
        assert!(frags[1..].iter().all(|f| f[0] == 0x45));
        assert_eq!(reassemble(&frags, 1500), original);
        // A bad option length.
        let mut pkt = TestBuffer::from_slice(&udp(3000, &[148, 9, 0, 0], 0));
        assert_eq!(fragment(&mut pkt, 1500, alloc, |_| panic!("sent")), Err(DropReason::Malformed));
    }

    #[test]
    fn test_refragment_a_fragment() {
        // A middle fragment (MF set, offset 2960) of 3000 bytes, then a last one.
        for (flags, more) in [(ipv4::FLAG_MF | 370, true), (370, false)] {
            let original = ipv4(&[], flags, 17, &pattern(2976));
            let frags = fragments(&original, 1500);
            assert_eq!(frags.len(), 3);
            let offsets: Vec<u16> = frags
                .iter()
                .map(|f| ipv4::Packet::new_checked(&f[..]).unwrap().frag_offset())
                .collect();
            assert_eq!(offsets, [2960, 2960 + 1480, 2960 + 2960]);
            let last = ipv4::Packet::new_checked(&frags[2][..]).unwrap();
            assert_eq!(last.more_frags(), more);
            assert_eq!(reassemble(&frags, 1500), original);
        }
        // Offsets past the 13-bit field.
        let mut pkt = TestBuffer::from_slice(&ipv4(&[], 0x1FFE, 17, &pattern(2000)));
        assert_eq!(fragment(&mut pkt, 1500, alloc, |_| panic!("sent")), Err(DropReason::Malformed));
    }

    #[test]
    fn test_alloc_failure_sends_nothing() {
        let original = udp(9001, &[], 0);
        for good in 0..6 {
            let mut left = good;
            let alloc = || {
                if left == 0 {
                    return None;
                }
                left -= 1;
                alloc()
            };
            let mut pkt = TestBuffer::from_slice(&original);
            assert_eq!(
                fragment(&mut pkt, 1500, alloc, |_| panic!("sent")),
                Err(DropReason::NoBuffer)
            );
            assert_eq!(pkt.data(), &original[..]);
        }
        // A buffer too small for its fragment.
        let mut pkt = TestBuffer::from_slice(&original);
        let small = || Some(TestBuffer::with_room(0, 1000));
        assert_eq!(fragment(&mut pkt, 1500, small, |_| panic!("sent")), Err(DropReason::NoRoom));
        assert_eq!(pkt.data(), &original[..]);
        // Buffers with headroom and stale data are fine.
        let mut pkt = TestBuffer::from_slice(&original);
        let stale = || Some(TestBuffer::from_slice_with_room(&[0xAA; 100], 300, 1500));
        let mut sent = vec![];
        fragment(&mut pkt, 1500, stale, |b: TestBuffer| sent.push(b.data().to_vec())).unwrap();
        sent.insert(0, pkt.data().to_vec());
        assert_eq!(reassemble(&sent, 1500), original);
    }

    #[test]
    fn test_malformed_no_panic() {
        let original = udp(1600, &[148, 4, 0, 0], 0);
        for len in 0..original.len() {
            let mut pkt = TestBuffer::from_slice(&original[..len]);
            assert!(fragment(&mut pkt, 576, alloc, |_| panic!("sent")).is_err(), "{len}");
            assert_eq!(pkt.data(), &original[..len]);
            let mut pkt = TestBuffer::from_slice(&original[..len]);
            assert!(frag_needed_in_place(&mut pkt, 1500, EDGE).is_err(), "{len}");
        }
        let mut bad = original.clone();
        bad[0] = 0x65;
        assert_eq!(
            fragment(&mut TestBuffer::from_slice(&bad), 576, alloc, |_| ()),
            Err(DropReason::Malformed)
        );
        bad[0] = 0x44;
        assert_eq!(
            fragment(&mut TestBuffer::from_slice(&bad), 576, alloc, |_| ()),
            Err(DropReason::Malformed)
        );
        // Padding after the total length goes away with the trim.
        let mut padded = original.clone();
        padded.extend_from_slice(&[0xEE; 10]);
        let frags = fragments(&padded, 576);
        assert_eq!(reassemble(&frags, 576), original);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any packet, options and MTU: fragments reassemble to the original, or an error
        /// and nothing sent.
        #[test]
        fn prop_fragment(
            len in 28usize..9100,
            opt_words in 0usize..=10,
            copied in proptest::bool::ANY,
            mtu in 60usize..2000,
            offset in 0u16..64,
            more in proptest::bool::ANY,
        ) {
            let mut options = vec![];
            for _ in 0..opt_words {
                options.extend_from_slice(&[if copied { 0x88 } else { 0x44 }, 4, 0xAB, 0xCD]);
            }
            let flags = offset | if more { ipv4::FLAG_MF } else { 0 };
            let original = ipv4(&options, flags, 17, &pattern(len));
            let mut pkt = TestBuffer::from_slice(&original);
            let mut sent = vec![];
            let alloc = || Some(TestBuffer::with_room(16, 2048));
            match fragment(&mut pkt, mtu, alloc, |b: TestBuffer| sent.push(b.data().to_vec())) {
                Ok(1) => proptest::prop_assert_eq!(pkt.data(), &original[..]),
                Ok(n) => {
                    sent.insert(0, pkt.data().to_vec());
                    proptest::prop_assert_eq!(sent.len(), n);
                    proptest::prop_assert_eq!(reassemble(&sent, mtu), original);
                }
                Err(_) => {
                    proptest::prop_assert!(sent.is_empty());
                    proptest::prop_assert_eq!(pkt.data(), &original[..]);
                }
            }
        }
    }

    #[test]
    fn test_frag_needed() {
        let offending = tcp(1600, ipv4::FLAG_DF);
        let mut pkt = TestBuffer::from_slice(&offending);
        frag_needed_in_place(&mut pkt, 1500, EDGE).unwrap();
        let out = pkt.data();
        assert_eq!(out.len(), 20 + 8 + 28);
        let ip = ipv4::Packet::new_checked(out).unwrap();
        let repr = ipv4::Repr::parse(&ip).unwrap();
        assert_eq!(
            (repr.src_addr, repr.dst_addr, repr.protocol, repr.ttl),
            (EDGE, SRC, Protocol::ICMP, 64)
        );
        assert!(!repr.dont_frag && !repr.more_frags && repr.frag_offset == 0);
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            icmpv4::Repr::parse(&icmp).unwrap(),
            icmpv4::Repr::DstUnreachable { code: 4, next_hop_mtu: 1500, quote: &offending[..28] }
        );
        // With options the quote grows; a short offender is quoted whole (and grown into
        // the tailroom).
        let offending = udp(1600, &[148, 4, 0, 0], ipv4::FLAG_DF);
        let mut pkt = TestBuffer::from_slice(&offending);
        frag_needed_in_place(&mut pkt, 576, EDGE).unwrap();
        assert_eq!(&pkt.data()[28..], &offending[..32]);
        let short = ipv4(&[], ipv4::FLAG_DF, 50, &[1, 2, 3]);
        let mut pkt = TestBuffer::from_slice_with_room(&short, 0, 28);
        frag_needed_in_place(&mut pkt, 576, EDGE).unwrap();
        assert_eq!(&pkt.data()[28..], &short[..]);
        let icmp = icmpv4::Packet::new_checked(&pkt.data()[20..]).unwrap();
        assert!(icmp.verify_checksum());
        let mut pkt = TestBuffer::from_slice_with_room(&short, 0, 27);
        assert_eq!(frag_needed_in_place(&mut pkt, 576, EDGE), Err(DropReason::NoRoom));
        assert_eq!(pkt.data(), &short[..]);
    }

    #[test]
    fn test_frag_needed_into_a_fresh_buffer_is_the_in_place_answer() {
        for offending in [tcp(1600, ipv4::FLAG_DF), udp(9001, &[148, 4, 0, 0], ipv4::FLAG_DF)] {
            let mut in_place = TestBuffer::from_slice(&offending);
            frag_needed_in_place(&mut in_place, 1500, EDGE).unwrap();
            let answer = FragNeeded::about(&offending, 1500, EDGE).unwrap();
            assert_eq!(answer.len(), in_place.len());
            // A fresh buffer with stale bytes, and one too small.
            let mut fresh = TestBuffer::from_slice_with_room(&[0xAA; 7], 64, 100);
            answer.write_into(&mut fresh).unwrap();
            assert_eq!(fresh.data(), in_place.data());
            let mut small = TestBuffer::with_room(64, 40);
            assert_eq!(answer.write_into(&mut small), Err(DropReason::NoRoom));
            assert!(small.is_empty());
        }
        // The checks happen before any buffer is needed.
        assert_eq!(
            FragNeeded::about(&ipv4(&[], 185, 17, &pattern(100)), 1500, EDGE).err(),
            Some(DropReason::MtuExceeded)
        );
        assert_eq!(FragNeeded::about(&[0x45, 0], 1500, EDGE).err(), Some(DropReason::Malformed));
    }

    #[test]
    fn test_fragment_out_finishes_and_sends_every_fragment() {
        let out = Output::new(7).unwrap();
        let original = udp(4000, &[], 0);
        let mut pkt = TestBuffer::from_slice(&original);
        let mut extra = crate::VecExtra::new(|| Some(TestBuffer::with_room(16, 2048)));
        let mark = |b: &mut TestBuffer| b.prepend(2).map(|h| h.copy_from_slice(&[0xE0, 0x0E])).map_err(|_| DropReason::NoRoom);
        fragment_out(&mut pkt, 1500, &mut extra, out, mark).unwrap();
        let mut all = vec![pkt.data().to_vec()];
        all.extend(extra.sent.iter().map(|(b, o)| {
            assert_eq!(*o, out);
            b.data().to_vec()
        }));
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|f| f[..2] == [0xE0, 0x0E]), "every fragment finished");
        let bare: Vec<Vec<u8>> = all.iter().map(|f| f[2..].to_vec()).collect();
        assert_eq!(reassemble(&bare, 1500), original);
        // A packet that fits is only finished; DF over the MTU is refused untouched.
        let mut pkt = TestBuffer::from_slice(&udp(500, &[], 0));
        let mut extra = crate::VecExtra::new(alloc);
        fragment_out(&mut pkt, 1500, &mut extra, out, mark).unwrap();
        assert_eq!((pkt.len(), extra.sent.len()), (502, 0));
        let df = udp(4000, &[], ipv4::FLAG_DF);
        let mut pkt = TestBuffer::from_slice(&df);
        assert_eq!(fragment_out(&mut pkt, 1500, &mut extra, out, mark), Err(DropReason::MtuExceeded));
        assert_eq!(pkt.data(), &df[..]);
    }

    #[test]
    fn test_frag_needed_refused() {
        let refuse = |p: Vec<u8>| {
            let mut pkt = TestBuffer::from_slice(&p);
            assert_eq!(frag_needed_in_place(&mut pkt, 1500, EDGE), Err(DropReason::MtuExceeded));
            assert_eq!(pkt.data(), &p[..]);
        };
        refuse(ipv4(&[], 185, 17, &pattern(100))); // a later fragment
        let mut icmp_error = vec![3, 1, 0, 0, 0, 0, 0, 0];
        icmp_error.extend_from_slice(&udp(60, &[], 0));
        refuse(ipv4(&[], 0, 1, &icmp_error));
        for (src, dst) in [
            ([0, 0, 0, 0], DST.octets()),
            ([127, 0, 0, 1], DST.octets()),
            ([224, 0, 0, 5], DST.octets()),
            ([255; 4], DST.octets()),
            (SRC.octets(), [239, 1, 2, 3]),
            (SRC.octets(), [255; 4]),
        ] {
            let mut p = udp(100, &[], 0);
            p[12..16].copy_from_slice(&src);
            p[16..20].copy_from_slice(&dst);
            refuse(p);
        }
        // An echo request is answered.
        let mut pkt = TestBuffer::from_slice(&ipv4(&[], 0, 1, &[8, 0, 0, 0, 0, 0, 0, 0, 1, 2]));
        assert_eq!(frag_needed_in_place(&mut pkt, 1500, EDGE), Ok(()));
    }

    // ---- tshark. -----------------------------------------------------------------------

    /// Write `packets` (IPv4) into a classic pcap, each behind an Ethernet header.
    fn write_pcap(path: &Path, packets: &[Vec<u8>]) {
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&4u16.to_le_bytes());
        file.extend_from_slice(&0i32.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&65535u32.to_le_bytes());
        file.extend_from_slice(&wire::pcap::LINKTYPE_ETHERNET.to_le_bytes());
        for (i, p) in packets.iter().enumerate() {
            let len = (14 + p.len()) as u32;
            file.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            file.extend_from_slice(&(i as u32).to_le_bytes());
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
            file.extend_from_slice(p);
        }
        std::fs::write(path, file).unwrap();
    }

    fn tshark_present() -> bool {
        let ok = Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success());
        if !ok {
            println!("SKIP: tshark is not installed (apt-get install -y tshark)");
        }
        ok
    }

    fn temp_pcap(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("frag-{}-{name}.pcap", std::process::id()))
    }

    /// Run tshark on `path` and return one row of `fields` per frame.
    fn tshark(path: &Path, options: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
        let mut cmd = Command::new("tshark");
        cmd.arg("-n").arg("-r").arg(path);
        for o in options {
            cmd.arg("-o").arg(o);
        }
        cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=l"]);
        for f in fields {
            cmd.arg("-e").arg(f);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// Wireshark's checksum status "good".
    const GOOD: &str = "1";

    #[test]
    fn test_tshark_reassembles() {
        if !tshark_present() {
            return;
        }
        let cases = [
            ("udp9001-1500", udp(9001, &[], 0), 1500, "udp"),
            ("udp9001-576", udp(9001, &[148, 4, 0, 0], 0), 576, "udp"),
            ("tcp1600-1500", tcp(1600, 0), 1500, "tcp"),
            ("tcp1600-576", tcp(1600, 0), 576, "tcp"),
        ];
        for (name, original, mtu, l4) in cases {
            let frags = fragments(&original, mtu);
            let path = temp_pcap(name);
            write_pcap(&path, &frags);
            let rows = tshark(
                &path,
                &[
                    "ip.defragment:TRUE",
                    "ip.check_checksum:TRUE",
                    "udp.check_checksum:TRUE",
                    "tcp.check_checksum:TRUE",
                ],
                &[
                    "ip.checksum.status",
                    "ip.reassembled.length",
                    &format!("{l4}.checksum.status"),
                    "ip.reassembled.data",
                    "ip.len",
                ],
            );
            std::fs::remove_file(&path).ok();
            assert_eq!(rows.len(), frags.len(), "{name}");
            for (row, f) in rows.iter().zip(&frags) {
                assert_eq!(row[0], GOOD, "{name}: IPv4 header checksum");
                assert_eq!(row[4], f.len().to_string(), "{name}: ip.len");
            }
            let last = rows.last().unwrap();
            let ihl = usize::from(original[0] & 0xF) * 4;
            assert_eq!(last[1], (original.len() - ihl).to_string(), "{name}: reassembled length");
            assert_eq!(last[2], GOOD, "{name}: {l4} checksum over the reassembled datagram");
            let data: String = original[ihl..].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(last[3].replace(':', ""), data, "{name}: reassembled bytes");
        }
    }

    #[test]
    fn test_tshark_frag_needed() {
        if !tshark_present() {
            return;
        }
        let offending = tcp(1600, ipv4::FLAG_DF);
        let mut pkt = TestBuffer::from_slice(&offending);
        frag_needed_in_place(&mut pkt, 1400, EDGE).unwrap();
        let path = temp_pcap("frag-needed");
        write_pcap(&path, &[pkt.data().to_vec()]);
        let rows = tshark(
            &path,
            &["ip.check_checksum:TRUE"],
            &[
                "ip.src",
                "ip.dst",
                "ip.ttl",
                "ip.flags.df",
                "ip.checksum.status",
                "icmp.type",
                "icmp.code",
                "icmp.mtu",
                "icmp.checksum.status",
                "ip.src",
                "ip.dst",
                "tcp.srcport",
                "tcp.dstport",
            ],
        );
        // With occurrence=l the address fields give the quoted header; ask again for the
        // outer ones with occurrence=f.
        let outer = {
            let out = Command::new("tshark")
                .args(["-n", "-r"])
                .arg(&path)
                .args([
                    "-T",
                    "fields",
                    "-E",
                    "separator=/t",
                    "-E",
                    "occurrence=f",
                    "-e",
                    "ip.src",
                    "-e",
                    "ip.dst",
                    "-e",
                    "ip.ttl",
                    "-e",
                    "ip.flags.df",
                    "-e",
                    "ip.checksum.status",
                ])
                .args(["-o", "ip.check_checksum:TRUE"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim_end()
                .split('\t')
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        std::fs::remove_file(&path).ok();
        assert_eq!(outer, ["10.0.1.1", "10.0.1.10", "64", "0", GOOD]);
        let row = &rows[0];
        assert_eq!(&row[5..9], ["3", "4", "1400", GOOD]);
        assert_eq!(&row[9..13], ["10.0.1.10", "203.0.113.5", "40000", "443"]);
    }
}
