//! The front end of `verify-recv`: what every card that receives the VPC encapsulation (a
//! host's Nitro card, a Blackfoot edge) checks first, in the same order and with the same
//! drop reasons, before its own checks against the mapping.
//!
//! [`receive`] takes one frame from the underlay and this card's PA:
//!
//! 1. the outer header ([`wire::vpc::parse_outer`]: Ethernet, IPv4 with a good header
//!    checksum and no options, not a fragment, UDP to 6081 with its checksum when
//!    non-zero, Geneve with one source-VPC option, an inner packet that starts as IPv4):
//!    `unsupported` when the frame is not vpcemu's encapsulation, `malformed` when it is
//!    but is truncated, inconsistent or fails a checksum;
//! 2. the outer destination is this card's PA, else `unknown_destination` (the frame is
//!    not for this card; nothing inside it is looked at);
//! 3. the inner IPv4 header ([`wire::vpc::ipv4_header`]: version 4, IHL at least 5, the header inside
//!    the packet, a total length at least the header, a good header checksum, and a total
//!    length equal to the Geneve payload's), else `malformed`;
//! 4. the inner packet is at most the VPC MTU (9001 bytes), else `mtu_exceeded`.
//!
//! The rule is a router's (RFC 1812 section 5.2.2): a received header is validated, its
//! checksum included, before anything is decided from it, so a packet that is both
//! damaged and too long is `malformed`, and a damaged inner header is never delivered nor
//! forwarded. The sending card checked the inner header too (classify), but a receiver
//! trusts no sender.

use std::net::Ipv4Addr;

use wire::vpc::{self, Outer, VPC_MTU};

use crate::drop::DropReason;

/// A frame that passed the front end: its outer header and the inner addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The outer header; `inner_len` is the inner packet's total length.
    pub outer: Outer,
    /// Inner source address.
    pub src: Ipv4Addr,
    /// Inner destination address.
    pub dst: Ipv4Addr,
}

/// The verify-recv front end for the card whose PA is `pa`; see the module
/// documentation for the checks, their order and their reasons. Never panics.
#[inline(always)]
pub fn receive(frame: &[u8], pa: Ipv4Addr) -> Result<Received, DropReason> {
    let outer = vpc::parse_outer(frame)?;
    if outer.dst_pa != pa {
        return Err(DropReason::UnknownDestination);
    }
    let inner = frame
        .get(outer.inner_offset..outer.inner_offset + outer.inner_len)
        .ok_or(DropReason::Malformed)?;
    // The common header (version 4, no options) on fixed offsets: the same checks as
    // below, with the same reasons (a total length equal to the inner length is at least
    // the header's and inside the packet).
    if let Some(h) = inner.first_chunk::<20>().filter(|h| h[0] == 0x45) {
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if total != outer.inner_len || !wire::checksum::ipv4_header20_ok(h) {
            return Err(DropReason::Malformed);
        }
        if total > VPC_MTU {
            return Err(DropReason::MtuExceeded);
        }
        let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
        let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
        return Ok(Received { outer, src, dst });
    }
    if ipv4_header(inner)? != outer.inner_len {
        return Err(DropReason::Malformed);
    }
    if outer.inner_len > VPC_MTU {
        return Err(DropReason::MtuExceeded);
    }
    // The header is at least 20 bytes (checked above).
    let a = |at: usize| inner.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
    match (a(12), a(16)) {
        (Some(src), Some(dst)) => Ok(Received { outer, src: src.into(), dst: dst.into() }),
        _ => Err(DropReason::Malformed),
    }
}

/// [`wire::vpc::ipv4_header`] with its drop reason: the total length, or `malformed`.
#[inline(always)]
pub fn ipv4_header(ip: &[u8]) -> Result<usize, DropReason> {
    Ok(vpc::ipv4_header(ip)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::vpc::Encap;
    use wire::{PacketBuf, TestBuffer};

    const PA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// An inner IPv4/UDP packet of `len` bytes (header checksum correct), encapsulated to
    /// `PA`.
    fn frame(len: usize) -> Vec<u8> {
        let mut ip = vec![0u8; len];
        ip[..20].copy_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 1, 10, 10, 1, 1, 20]);
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let sum = wire::checksum::ipv4_header(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        encapsulated(&ip)
    }

    /// The inner packet `ip` encapsulated to `PA`.
    fn encapsulated(ip: &[u8]) -> Vec<u8> {
        let mut b = TestBuffer::from_slice_with_room(ip, 128, 0);
        let e = Encap {
            src_mac: wire::EthernetAddress([0; 6]),
            dst_mac: wire::EthernetAddress([0; 6]),
            src_pa: Ipv4Addr::new(198, 18, 0, 1),
            dst_pa: PA,
            vni: 102,
            source_vpc: 101,
        };
        vpc::push_outer(&mut b, &e, None).unwrap();
        b.data().to_vec()
    }

    #[test]
    fn order_and_reasons() {
        let good = frame(40);
        let r = receive(&good, PA).unwrap();
        assert_eq!((r.src, r.dst), (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 1, 1, 20)));
        assert_eq!((r.outer.vni, r.outer.source_vpc, r.outer.inner_offset, r.outer.inner_len), (102, 101, 58, 40));
        // Not this card's: nothing inside is looked at.
        let mut bad_inner = good.clone();
        bad_inner[58 + 10] ^= 1;
        assert_eq!(receive(&good, Ipv4Addr::new(198, 18, 0, 9)), Err(DropReason::UnknownDestination));
        assert_eq!(receive(&bad_inner, Ipv4Addr::new(198, 18, 0, 9)), Err(DropReason::UnknownDestination));
        // The inner header checksum is checked.
        assert_eq!(receive(&bad_inner, PA), Err(DropReason::Malformed));
        // Too long: mtu_exceeded, unless the header is damaged too.
        let long = frame(VPC_MTU + 1);
        assert_eq!(receive(&long, PA), Err(DropReason::MtuExceeded));
        assert!(receive(&frame(VPC_MTU), PA).is_ok());
        let mut long_bad = long.clone();
        long_bad[58 + 10] ^= 1;
        assert_eq!(receive(&long_bad, PA), Err(DropReason::Malformed));
        // A bad outer checksum, a truncated frame: malformed; not Geneve: unsupported.
        let mut outer_bad = good.clone();
        outer_bad[24] ^= 1;
        assert_eq!(receive(&outer_bad, PA), Err(DropReason::Malformed));
        assert_eq!(receive(&good[..good.len() - 1], PA), Err(DropReason::Malformed));
        let mut vxlan = good.clone();
        vxlan[36..38].copy_from_slice(&4789u16.to_be_bytes());
        assert_eq!(receive(&vxlan, PA), Err(DropReason::Unsupported));
    }

    /// An inner header with options takes the general path: the same answers, its
    /// damage refused with the same reasons.
    #[test]
    fn inner_options_take_the_general_path() {
        // 24-byte header (one 4-byte option: NOP NOP NOP EOL) and 16 bytes of payload.
        let mut ip = vec![0u8; 40];
        ip[..24].copy_from_slice(&[0x46, 0, 0, 40, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 1, 10, 10, 1, 1, 20, 1, 1, 1, 0]);
        let sum = wire::checksum::ipv4_header(&ip[..24]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let good = encapsulated(&ip);
        let r = receive(&good, PA).unwrap();
        assert_eq!((r.src, r.dst, r.outer.inner_len), (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 1, 1, 20), 40));
        let mut bad = good.clone();
        bad[58 + 21] ^= 1; // inside the option: the header checksum covers it
        assert_eq!(receive(&bad, PA), Err(DropReason::Malformed));
        // A total length other than the Geneve payload's, on either path.
        for first in [0x45u8, 0x46] {
            let mut f = if first == 0x45 { frame(40) } else { good.clone() };
            f[58 + 3] = 39;
            let ihl = usize::from(first & 0x0f) * 4;
            let sum = wire::checksum::ipv4_header(&f[58..58 + ihl]);
            f[58 + 10..58 + 12].copy_from_slice(&sum.to_be_bytes());
            assert!(wire::checksum::ipv4_header_ok(&f[58..58 + ihl]));
            assert_eq!(receive(&f, PA), Err(DropReason::Malformed), "{first:#x}");
        }
    }

    /// Every refusal of [`wire::vpc::ipv4_header`] (tested there) is `malformed`.
    #[test]
    fn ipv4_header_refusals_are_malformed() {
        let ip = &frame(40)[58..];
        assert_eq!(ipv4_header(ip), Ok(40));
        let mut damaged = [ip[..39].to_vec(), ip[..19].to_vec(), Vec::new(), ip.to_vec(), ip.to_vec()];
        damaged[3][0] = 0x65;
        damaged[4][10] ^= 1;
        for d in damaged {
            assert!(vpc::ipv4_header(&d).is_err());
            assert_eq!(ipv4_header(&d), Err(DropReason::Malformed), "{d:02x?}");
        }
    }
}
