//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Contract:
//! * [`sum`] is the ones' complement sum of the bytes taken as big-endian 16-bit words
//!   (an odd last byte padded with zero), folded to 16 bits and **not** complemented. It is
//!   bit-for-bit the classic 16-bit algorithm: 0 only for all-zero input, else in
//!   `1..=0xFFFF`. Sums of pieces combine with [`add`] as long as every piece but the last
//!   has an even length.
//! * The value stored in a header is the complement of the sum over the header (or
//!   pseudo-header and segment) with the checksum field taken as zero; a received header
//!   verifies when the sum over it, checksum field included, is `0xFFFF`.
//! * [`update16`] / [`update32`] implement RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, which
//!   gives the same result as recomputing whenever the covered data is not all zero (true
//!   for every IPv4 header and every pseudo-header: version and protocol are non-zero).
//! * UDP over IPv4: a checksum field of 0 means "no checksum"; a computed 0 is sent as
//!   `0xFFFF` ([`udp_on_wire`]); [`udp_update16`] and [`udp_update32`] leave 0 alone.
//!
//! Speed: [`sum`] reads 8-byte little-endian words into a 128-bit accumulator (add with
//! carry, no per-word byte swap) and swaps once at the end, which RFC 1071 section 2(B)
//! allows. Nothing here panics.

use std::net::Ipv4Addr;

/// Ones' complement addition of two 16-bit sums (end-around carry).
#[inline]
pub const fn add(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xFFFF) + (s >> 16)) as u16
}

/// End-around-carry addition of two 64-bit words.
#[inline(always)]
const fn add64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // When carry is set, s <= 2^64 - 2, so adding it back cannot overflow.
    s + carry as u64
}

/// Fold a sum of 16-bit words held in 32 bits (at most 65537 words) to 16 bits.
#[inline(always)]
pub(crate) const fn fold32(s: u32) -> u16 {
    let s = (s & 0xFFFF) + (s >> 16);
    ((s & 0xFFFF) + (s >> 16)) as u16
}

/// Fold a 128-bit accumulator of 64-bit words to a 16-bit ones' complement sum.
#[inline(always)]
const fn fold(acc: u128) -> u16 {
    let s64 = add64(acc as u64, (acc >> 64) as u64);
    let s32 = (s64 & 0xFFFF_FFFF) + (s64 >> 32); // <= 2^33 - 2
    let s32 = (s32 & 0xFFFF_FFFF) + (s32 >> 32); // <= 2^32
    let s32 = (s32 & 0xFFFF_FFFF) + (s32 >> 32); // < 2^32
    let s16 = (s32 & 0xFFFF) + (s32 >> 16); // <= 0x1_FFFE
    let s16 = (s16 & 0xFFFF) + (s16 >> 16); // <= 0xFFFF
    s16 as u16
}

#[inline(always)]
fn le64(chunk: &[u8]) -> u64 {
    <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes)
}

/// Ones' complement sum of `data` as big-endian 16-bit words, not complemented.
pub fn sum(data: &[u8]) -> u16 {
    // Two accumulators so the two add-with-carry chains can run in parallel.
    let mut a: u128 = 0;
    let mut b: u128 = 0;
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        a += le64(&block[0..8]) as u128;
        b += le64(&block[8..16]) as u128;
        a += le64(&block[16..24]) as u128;
        b += le64(&block[24..32]) as u128;
    }
    let mut words = blocks.remainder().chunks_exact(8);
    for word in &mut words {
        a += le64(word) as u128;
    }
    // The tail, at an even offset: 4, 2 and 1 bytes land in the same 16-bit lanes as in a
    // zero-padded word (2^16 = 1 modulo 0xFFFF), and a last odd byte is a lane's low byte
    // in little-endian order.
    let mut tail = words.remainder();
    if tail.len() >= 4 {
        b += u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u128;
        tail = &tail[4..];
    }
    if tail.len() >= 2 {
        a += u16::from_le_bytes([tail[0], tail[1]]) as u128;
        tail = &tail[2..];
    }
    if let Some(&last) = tail.first() {
        b += last as u128;
    }
    // Each accumulator gains less than 2^64 per word and sees fewer than 2^61 words, so
    // neither it nor their sum can reach 2^128.
    fold(a + b).swap_bytes()
}

/// The Internet checksum of `data`: the complement of [`sum`].
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Sum of the IPv4 pseudo-header (RFC 793 / RFC 768) for a transport segment of `length`
/// bytes.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    let total: u64 = (s >> 16) as u64
        + (s & 0xFFFF) as u64
        + (d >> 16) as u64
        + (d & 0xFFFF) as u64
        + protocol as u64
        + length as u64;
    fold(total as u128)
}

/// The checksum to store in an IPv4 header. The checksum field (bytes 10..12) is taken
/// out of the sum, so its current content does not matter. A header shorter than 12 bytes
/// is summed as it is.
pub fn ipv4_header(header: &[u8]) -> u16 {
    match header.get(10..12) {
        // Subtracting in ones' complement is adding the complement; the version byte
        // keeps the result off the all-zero case.
        Some(&[hi, lo]) => !add(sum(header), !u16::from_be_bytes([hi, lo])),
        _ => checksum(header),
    }
}

/// [`ipv4_header_ok`] for the common 20-byte header (no options), straight-line: the
/// per-packet check of the data-plane stages.
#[inline(always)]
pub fn ipv4_header20_ok(h: &[u8; 20]) -> bool {
    // Two 64-bit words and a 32-bit one read in little-endian order (no byte swaps: the
    // folded sum is the byte-swapped big-endian sum, RFC 1071, and 0xFFFF swaps to
    // itself), added with end-around carry, then folded 64 -> 32 -> 16 bits.
    let le64 = |at: usize| {
        u64::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3], h[at + 4], h[at + 5], h[at + 6], h[at + 7]])
    };
    let le32 = u64::from(u32::from_le_bytes([h[16], h[17], h[18], h[19]]));
    let sum = add64(add64(le64(0), le64(8)), le32);
    let sum = (sum & 0xFFFF_FFFF) + (sum >> 32); // <= 2^33 - 2
    fold32(((sum & 0xFFFF_FFFF) + (sum >> 32)) as u32) == 0xFFFF
}

/// True when an IPv4 header (checksum field included) verifies.
#[inline]
pub fn ipv4_header_ok(header: &[u8]) -> bool {
    sum(header) == 0xFFFF
}

/// The checksum to store in a TCP or UDP header over IPv4: pseudo-header plus `segment`,
/// whose checksum field must be zero. For UDP pass the result through [`udp_on_wire`].
/// A segment longer than 65535 bytes cannot be carried by IPv4; its length is truncated
/// to 16 bits like the field it stands for.
pub fn tcp_udp_ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let pseudo = pseudo_header_sum(src, dst, protocol, segment.len() as u16);
    !add(pseudo, sum(segment))
}

/// True when a TCP or UDP segment over IPv4 (checksum field included) verifies.
pub fn tcp_udp_ipv4_ok(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> bool {
    let pseudo = pseudo_header_sum(src, dst, protocol, segment.len() as u16);
    add(pseudo, sum(segment)) == 0xFFFF
}

/// A computed UDP checksum as it goes on the wire: 0 is sent as `0xFFFF`, because 0 in
/// the field means "no checksum" (RFC 768).
#[inline]
pub const fn udp_on_wire(computed: u16) -> u16 {
    if computed == 0 {
        0xFFFF
    } else {
        computed
    }
}

/// RFC 1624 eqn. 3: the checksum `hc` after a 16-bit word of the covered data changes
/// from `old` to `new`.
#[inline]
pub const fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold32((!hc) as u32 + (!old) as u32 + new as u32)
}

/// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, a sequence number) that starts
/// on a 16-bit boundary.
#[inline]
pub const fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let not_old = !old;
    !fold32((!hc) as u32 + (not_old >> 16) + (not_old & 0xFFFF) + (new >> 16) + (new & 0xFFFF))
}

/// [`update32`] for an IPv4 address.
#[inline]
pub fn update_addr(hc: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(hc, u32::from(old), u32::from(new))
}

/// [`update16`] for a UDP checksum: 0 ("no checksum") stays 0, and a result of 0 is sent
/// as `0xFFFF`.
#[inline]
pub const fn udp_update16(hc: u16, old: u16, new: u16) -> u16 {
    if hc == 0 {
        0
    } else {
        udp_on_wire(update16(hc, old, new))
    }
}

/// [`update32`] for a UDP checksum: 0 ("no checksum") stays 0, and a result of 0 is sent
/// as `0xFFFF`.
#[inline]
pub const fn udp_update32(hc: u16, old: u32, new: u32) -> u16 {
    if hc == 0 {
        0
    } else {
        udp_on_wire(update32(hc, old, new))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv4_header20_agrees_with_the_general_check() {
        // scapy: IP(src='10.0.1.10', dst='10.1.0.20', id=14)/ICMP(...) header.
        let mut h: [u8; 20] = [
            0x45, 0, 0, 0x21, 0, 0x0e, 0, 0, 0x40, 0x01, 0x65, 0xb0, 10, 0, 1, 10, 10, 1, 0, 20,
        ];
        assert!(super::ipv4_header20_ok(&h));
        assert!(super::ipv4_header_ok(&h));
        h[10] ^= 1;
        assert!(!super::ipv4_header20_ok(&h));
        assert!(!super::ipv4_header_ok(&h));
    }

    proptest::proptest! {
        /// The word-wise check agrees with the general one on any 20 bytes, and on any
        /// header given its right checksum and then one bit flipped.
        #[test]
        fn ipv4_header20_agrees_on_any_header(mut h in proptest::array::uniform20(proptest::num::u8::ANY), bit in 0usize..160) {
            proptest::prop_assert_eq!(super::ipv4_header20_ok(&h), super::ipv4_header_ok(&h));
            h[10..12].copy_from_slice(&[0, 0]);
            let c = super::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            proptest::prop_assert!(super::ipv4_header20_ok(&h));
            proptest::prop_assert_eq!(super::ipv4_header20_ok(&h), super::ipv4_header_ok(&h));
            h[bit / 8] ^= 1 << (bit % 8);
            proptest::prop_assert_eq!(super::ipv4_header20_ok(&h), super::ipv4_header_ok(&h));
        }
    }

    use super::*;
    use crate::testdata::hex;

    /// The textbook algorithm, for comparison.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            s += w as u32;
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn test_rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn test_rfc1624_example() {
        // RFC 1624 section 5: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000 by eqn. 3.
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn test_sum_matches_reference_all_lengths() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(167) ^ 0x5a) as u8).collect();
        for len in 0..data.len() {
            for start in 0..3.min(len + 1) {
                assert_eq!(sum(&data[start..len]), reference(&data[start..len]), "{start}..{len}");
            }
        }
        assert_eq!(sum(&[0xff; 4096]), 0xffff);
        assert_eq!(sum(&[0; 64]), 0);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn test_ipv4_header() {
        // scapy: IP(src='10.0.1.10',dst='10.0.2.20',id=9)/ICMP(...) header, checksum 63ab.
        let h = hex("4500002c00090000400163ab0a00010a0a000214");
        assert!(ipv4_header_ok(&h));
        assert_eq!(ipv4_header(&h), 0x63ab);
        let mut z = h.clone();
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0x63ab);
    }

    #[test]
    fn test_udp_pseudo_header() {
        // scapy: IP(src='10.0.1.10',dst='10.0.0.2')/UDP(sport=53000,dport=53)/DNS(...)
        let p = hex(
            "45000039000b00004011659e0a00010a0a000002cf08003500254bed000001000001000000000000076578616d706c6503636f6d0000010001",
        );
        let (src, dst) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 0, 2));
        assert!(tcp_udp_ipv4_ok(src, dst, 17, &p[20..]));
        let mut seg = p[20..].to_vec();
        seg[6] = 0;
        seg[7] = 0;
        assert_eq!(udp_on_wire(tcp_udp_ipv4(src, dst, 17, &seg)), 0x4bed);
    }

    #[test]
    fn test_update_addr_matches_recompute() {
        let mut h = hex("4500002c00090000400163ab0a00010a0a000214");
        let new = Ipv4Addr::new(203, 0, 113, 10);
        let hc = update_addr(0x63ab, Ipv4Addr::new(10, 0, 1, 10), new);
        h[12..16].copy_from_slice(&new.octets());
        assert_eq!(hc, ipv4_header(&h));
    }

    #[test]
    fn test_udp_zero_rules() {
        assert_eq!(udp_on_wire(0), 0xFFFF);
        assert_eq!(udp_on_wire(0x1234), 0x1234);
        assert_eq!(udp_update16(0, 1, 2), 0);
        assert_eq!(udp_update32(0, 1, 2), 0);
        // A rewrite whose result is 0 goes out as 0xFFFF.
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0);
        assert_eq!(udp_update16(0xDD2F, 0x5555, 0x3285), 0xFFFF);
    }
}
