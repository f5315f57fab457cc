//! What the fuzz targets share: input layouts (the transport targets' pseudo-header), and
//! for the pipeline targets the input as raw frames and as an inner IPv4 packet made
//! sound around the fuzzer's bytes. (Each target uses some of it.)
#![allow(dead_code)]

use std::net::Ipv4Addr;

use wire::{checksum, vpc};

/// Split a TCP or UDP target's input: the first 8 bytes are the IPv4 pseudo-header's
/// source and destination addresses, the rest is the segment or datagram. `None` for an
/// input shorter than 8 bytes.
pub fn pseudo_header(input: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let (addrs, data) = input.split_first_chunk::<8>()?;
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    Some((src, dst, data))
}

/// The input as raw frames: itself, again, and its first half (so duplicates and cuts
/// meet in one pass).
pub fn raw_frames(data: &[u8]) -> Vec<Vec<u8>> {
    vec![data.to_vec(), data.to_vec(), data[..data.len() / 2].to_vec()]
}

/// The bytes to make an inner packet of: after an Ethernet header when the input starts
/// with one carrying IPv4.
pub fn body_of(data: &[u8]) -> &[u8] {
    match data.get(12..14) {
        Some([0x08, 0x00]) if data.len() > 14 && data[14] >> 4 == 4 => &data[14..],
        _ => data,
    }
}

/// `data` made an IPv4 packet: version 4, IHL kept when it fits, total length = length,
/// the addresses asked for, header checksum. `None` when too short or too long. The
/// transport bytes stay the fuzzer's.
pub fn fix_inner(data: &[u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) -> Option<Vec<u8>> {
    if data.len() < 20 || data.len() > vpc::VPC_MTU {
        return None;
    }
    let mut p = data.to_vec();
    let mut ihl = usize::from(p[0] & 0x0f).max(5);
    if ihl * 4 > p.len() {
        ihl = 5;
    }
    p[0] = 0x40 | ihl as u8;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    if let Some(s) = src {
        p[12..16].copy_from_slice(&s.octets());
    }
    if let Some(d) = dst {
        p[16..20].copy_from_slice(&d.octets());
    }
    p[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::ipv4_header(&p[..ihl * 4]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    Some(p)
}

/// A Geneve frame a card sent: (outer source, outer destination, VNI, source VPC, inner
/// packet). Panics unless it is sound: what a card sends, the receiving card takes.
pub fn sent_geneve(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u32, u32, &[u8]) {
    let o = vpc::parse_outer(frame).expect("a card sends valid Geneve");
    assert_eq!(o.inner_offset + o.inner_len, frame.len(), "no padding after the inner packet");
    assert_eq!(&frame[6..12], &vpc::card_mac(o.src_pa).0, "from the card's MAC");
    let inner = &frame[o.inner_offset..];
    assert!(vpc::ipv4_header(inner).is_ok(), "a sound inner header");
    (o.src_pa, o.dst_pa, o.vni, o.source_vpc, inner)
}
