//! ESP (RFC 4303) packet layout, for AES-GCM (RFC 4106) and other ciphers.
//!
//! ```text
//! SPI (4) | sequence number (4) | IV (8 for GCM) | ciphertext: payload, padding,
//! pad length (1), next header (1) | ICV (16 for GCM)
//! ```
//!
//! No cryptography here: this module finds the boundaries and builds the trailer that
//! the cipher then covers.
//!
//! Contract: [`Packet::check_len`] wants the 8-byte header ([`Error::Truncated`]); after it
//! no accessor panics. [`Packet::layout`] splits the rest for a given IV and ICV length
//! and refuses ([`Error::Truncated`]) a packet without room for the two trailer bytes, or
//! ([`Error::Malformed`]) one whose encrypted part is not a multiple of 4 bytes.
//! [`Trailer::parse`] reads a decrypted payload's trailer and checks the default padding
//! 1, 2, 3, ... (RFC 4303 section 2.4), [`Error::Malformed`] otherwise.
//! [`Repr::parse`] refuses SPI 0 (reserved, never sent).

use core::ops::Range;

use crate::ipv4::Protocol;
use crate::{Error, Result};

/// Length of the ESP header (SPI and sequence number).
pub const HEADER_LEN: usize = 8;
/// Length of the explicit IV of AES-GCM (RFC 4106).
pub const GCM_IV_LEN: usize = 8;
/// Length of the AES-GCM ICV vpcemu uses (RFC 4106 allows 8, 12 or 16).
pub const GCM_ICV_LEN: usize = 16;
/// Pad length and next header.
pub const TRAILER_LEN: usize = 2;
/// Alignment of the encrypted part for AES-GCM (a stream mode: the 4-byte minimum).
pub const GCM_ALIGN: usize = 4;
/// UDP port of ESP in UDP (NAT traversal, RFC 3948).
pub const NAT_T_PORT: u16 = 4500;
/// Protocol number of the tunnel-mode inner IPv4 packet in the next header field.
pub const NEXT_HEADER_IPV4: Protocol = Protocol(4);

fields! { Packet {
    /// Security parameters index.
    spi, /** Set the SPI. */ set_spi: u32 at 0;
    /// Sequence number (low 32 bits when extended sequence numbers are on).
    sequence_number, /** Set the sequence number. */ set_sequence_number: u32 at 4;
    /// Everything after the header: IV, ciphertext and ICV.
    payload, /** Everything after the header, writable. */ payload_mut: bytes at HEADER_LEN;
}}

view! {
    /// A view of an ESP packet (the IPv4 payload).
    pub struct Packet;
    /// [`Error::Truncated`] when the buffer cannot hold the header.
    check_len(HEADER_LEN);
}

/// Where the parts of an ESP packet are, as byte ranges of the packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    /// The explicit IV.
    pub iv: Range<usize>,
    /// The encrypted part: payload, padding, pad length, next header.
    pub ciphertext: Range<usize>,
    /// The integrity check value.
    pub icv: Range<usize>,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// SPI and sequence number: the additional authenticated data of AES-GCM without
    /// extended sequence numbers (RFC 4106 section 5).
    #[inline]
    pub fn header(&self) -> &[u8] {
        self.buffer.as_ref().get(..HEADER_LEN).unwrap_or(&[])
    }

    /// Split the packet for an IV of `iv_len` and an ICV of `icv_len` bytes.
    pub fn layout(&self, iv_len: usize, icv_len: usize) -> Result<Layout> {
        let len = self.buffer.as_ref().len();
        let iv = HEADER_LEN..HEADER_LEN.saturating_add(iv_len);
        let icv_start = len.checked_sub(icv_len).ok_or(Error::Truncated)?;
        if icv_start < iv.end.saturating_add(TRAILER_LEN) {
            return Err(Error::Truncated);
        }
        if (icv_start - iv.end) % GCM_ALIGN != 0 {
            return Err(Error::Malformed);
        }
        Ok(Layout { ciphertext: iv.end..icv_start, icv: icv_start..len, iv })
    }

    /// The explicit IV of AES-GCM, or [`Error::Truncated`].
    pub fn gcm_iv(&self) -> Result<[u8; GCM_IV_LEN]> {
        let l = self.layout(GCM_IV_LEN, GCM_ICV_LEN)?;
        self.buffer.as_ref().get(l.iv).and_then(|b| b.try_into().ok()).ok_or(Error::Truncated)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The header, IV, ciphertext and ICV as separate slices, for in-place AEAD: the
    /// header and IV read, the ciphertext and ICV written (or the other way round).
    #[allow(clippy::type_complexity)]
    pub fn split_mut(
        &mut self,
        iv_len: usize,
        icv_len: usize,
    ) -> Result<(&[u8], &[u8], &mut [u8], &mut [u8])> {
        let l = self.layout(iv_len, icv_len)?;
        let buf = self.buffer.as_mut();
        let (head, icv) = buf.split_at_mut(l.icv.start);
        let (head, ciphertext) = head.split_at_mut(l.ciphertext.start);
        let (header, iv) = head.split_at(HEADER_LEN);
        Ok((header, iv, ciphertext, icv))
    }
}

/// Padding needed after `payload_len` bytes so that the payload, the padding and the two
/// trailer bytes end on a multiple of `align` (a power of two from 4 to 256; other values
/// are taken as 4).
#[inline]
pub const fn pad_len(payload_len: usize, align: usize) -> usize {
    let align =
        if align.is_power_of_two() && align >= 4 && align <= 256 { align } else { GCM_ALIGN };
    (align - (payload_len + TRAILER_LEN) % align) % align
}

/// Length of the encrypted part for `payload_len` bytes: payload, padding, trailer.
#[inline]
pub const fn encrypted_len(payload_len: usize, align: usize) -> usize {
    payload_len + pad_len(payload_len, align) + TRAILER_LEN
}

/// Length of a whole ESP packet carrying `payload_len` bytes.
#[inline]
pub const fn packet_len(payload_len: usize, iv_len: usize, icv_len: usize, align: usize) -> usize {
    HEADER_LEN + iv_len + encrypted_len(payload_len, align) + icv_len
}

/// Length of an AES-GCM ESP packet carrying `payload_len` bytes.
#[inline]
pub const fn gcm_packet_len(payload_len: usize) -> usize {
    packet_len(payload_len, GCM_IV_LEN, GCM_ICV_LEN, GCM_ALIGN)
}

/// The trailer at the end of a decrypted ESP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trailer {
    /// Length of the payload before the padding.
    pub payload_len: usize,
    /// Padding length.
    pub pad_len: u8,
    /// Protocol of the payload ([`NEXT_HEADER_IPV4`] in tunnel mode).
    pub next_header: Protocol,
}

impl Trailer {
    /// Read the trailer of a decrypted payload; see the module contract.
    pub fn parse(plaintext: &[u8]) -> Result<Trailer> {
        let (&next_header, rest) = plaintext.split_last().ok_or(Error::Truncated)?;
        let (&pad_len, rest) = rest.split_last().ok_or(Error::Truncated)?;
        let payload_len = rest.len().checked_sub(pad_len as usize).ok_or(Error::Malformed)?;
        let padding = rest.get(payload_len..).ok_or(Error::Malformed)?;
        // An inclusive range: `1u8..` would overflow computing its successor after 255.
        if !padding.iter().zip(1u8..=255).all(|(&b, i)| b == i) {
            return Err(Error::Malformed);
        }
        Ok(Trailer { payload_len, pad_len, next_header: Protocol(next_header) })
    }

    /// Write padding (1, 2, 3, ...), pad length and `next_header` after the `payload_len`
    /// bytes at the start of `buf`, aligned to `align`, and return the encrypted length.
    /// [`Error::Truncated`] when `buf` is shorter than that.
    pub fn emit(
        buf: &mut [u8],
        payload_len: usize,
        next_header: Protocol,
        align: usize,
    ) -> Result<usize> {
        let pad = pad_len(payload_len, align);
        // The pad length is one byte.
        let pad_byte = u8::try_from(pad).map_err(|_| Error::Overflow)?;
        let total = payload_len + pad + TRAILER_LEN;
        let tail = buf.get_mut(payload_len..total).ok_or(Error::Truncated)?;
        let (padding, trailer) = tail.split_at_mut(pad);
        for (b, i) in padding.iter_mut().zip(1u8..=255) {
            *b = i;
        }
        trailer.copy_from_slice(&[pad_byte, next_header.0]);
        Ok(total)
    }
}

/// The ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Security parameters index, not 0.
    pub spi: u32,
    /// Sequence number.
    pub sequence_number: u32,
}

impl Repr {
    /// Parse the header; SPI 0 is [`Error::Malformed`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.spi() == 0 {
            return Err(Error::Malformed);
        }
        Ok(Repr { spi: packet.spi(), sequence_number: packet.sequence_number() })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of an AES-GCM packet carrying `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        gcm_packet_len(payload_len)
    }

    /// Write the header; [`Error::Overflow`] for SPI 0.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.spi == 0 {
            return Err(Error::Overflow);
        }
        packet.check_len()?;
        packet.set_spi(self.spi);
        packet.set_sequence_number(self.sequence_number);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};
    use crate::{ipv4, udp};

    // scapy: SecurityAssociation(ESP, spi=0x1001, crypt_algo='AES-GCM',
    //   crypt_key=bytes(range(16)) + bytes.fromhex('cafebabe'),
    //   tunnel_header=IP(src='203.0.113.1', dst='198.51.100.1'))
    //   .encrypt(IP(src='10.0.1.10', dst='172.16.0.5', id=16)/ICMP(type=8, id=3, seq=1)
    //   /Raw(b'vpn!'), seq_num=1, iv=bytes.fromhex('0000000000000001'))
    const GCM: &str = "45000058000100004032143dcb007101c633640100001001000000010000000000000001f70519b94a6f51f4db1a02b34c7fa83d7f788145b1f75beffeb61ff5019d471a8585b5f87985ff59aea80fb1a3f80c719ea7a018";
    // scapy: the inner packet above, 32 bytes.
    const INNER: &str = "45000020001000004001c3ae0a00010aac1000050800136a0003000176706e21";

    #[test]
    fn test_trailer_with_the_most_padding() {
        // Pad length 255 (the largest a byte holds): padding 1..=255, then pad length and
        // next header. Found by proptest: the padding counter used to overflow after 255.
        let mut plain: Vec<u8> = vec![0xaa; 3];
        plain.extend(1..=255u8);
        plain.extend([255, 4]);
        let t = Trailer::parse(&plain).unwrap();
        assert_eq!((t.payload_len, t.pad_len, t.next_header), (3, 255, Protocol(4)));
        *plain.get_mut(3 + 254).unwrap() = 0;
        assert_eq!(Trailer::parse(&plain).err(), Some(Error::Malformed));
    }

    #[test]
    fn test_parse() {
        let bytes = hex(GCM);
        let ip = ipv4::Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.protocol(), Protocol::ESP);
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr { spi: 0x1001, sequence_number: 1 });
        assert_eq!(p.gcm_iv().unwrap(), [0, 0, 0, 0, 0, 0, 0, 1]);
        let l = p.layout(GCM_IV_LEN, GCM_ICV_LEN).unwrap();
        assert_eq!((l.iv, l.ciphertext.clone(), l.icv), (8..16, 16..52, 52..68));
        // 32 bytes of inner packet + 2 padding + 2 trailer = 36 encrypted.
        assert_eq!(l.ciphertext.len(), encrypted_len(32, GCM_ALIGN));
        assert_eq!(gcm_packet_len(32), ip.payload().len());
    }

    #[test]
    fn test_parse_captures() {
        // 02-sunrise-sunset-esp.pcap: SPI 0x12345678, sequence numbers 1, 2, 3, ...
        for (i, f) in testdata::packets(testdata::ESP).iter().enumerate() {
            let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
            let r = Repr::parse(&Packet::new_checked(ip.payload()).unwrap()).unwrap();
            assert_eq!(r, Repr { spi: 0x1234_5678, sequence_number: i as u32 + 1 });
        }
        // espudp1.pcap: the same behind UDP 4500 (RFC 3948).
        for f in testdata::packets(testdata::ESP_UDP) {
            let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
            let u = udp::Packet::new_checked(ip.payload()).unwrap();
            assert_eq!(u.dst_port(), NAT_T_PORT);
            let r = Repr::parse(&Packet::new_checked(u.payload()).unwrap()).unwrap();
            assert_eq!(r.spi, 0x1234_5678);
        }
    }

    #[test]
    fn test_trailer() {
        let inner = hex(INNER);
        let mut plain = inner.clone();
        plain.resize(64, 0xEE);
        let n = Trailer::emit(&mut plain, inner.len(), NEXT_HEADER_IPV4, GCM_ALIGN).unwrap();
        assert_eq!(n, 36);
        assert_eq!(&plain[32..36], &[1, 2, 2, 4]);
        let t = Trailer::parse(&plain[..n]).unwrap();
        assert_eq!(t, Trailer { payload_len: 32, pad_len: 2, next_header: NEXT_HEADER_IPV4 });
        // Bad padding content, a pad length past the start, nothing at all.
        assert_eq!(Trailer::parse(&[0, 1, 3, 2, 4]), Err(Error::Malformed));
        assert_eq!(Trailer::parse(&[1, 2, 3, 4]), Err(Error::Malformed));
        assert_eq!(Trailer::parse(&[4]), Err(Error::Truncated));
        assert_eq!(
            Trailer::parse(&[0, 4]),
            Ok(Trailer { payload_len: 0, pad_len: 0, next_header: Protocol(4) })
        );
        assert_eq!(Trailer::emit(&mut plain[..35], 32, NEXT_HEADER_IPV4, 4), Err(Error::Truncated));
    }

    #[test]
    fn test_padding_helpers() {
        for (payload, pad) in [(0, 2), (1, 1), (2, 0), (3, 3), (32, 2), (1400, 2)] {
            assert_eq!(pad_len(payload, 4), pad, "{payload}");
            assert_eq!(encrypted_len(payload, 4) % 4, 0);
        }
        assert_eq!(pad_len(32, 16), 14);
        assert_eq!(pad_len(32, 3), 2, "not a power of two: 4");
        assert_eq!(pad_len(32, 512), 2, "over 256: 4");
        assert_eq!(gcm_packet_len(1400), 8 + 8 + 1404 + 16);
    }

    #[test]
    fn test_emit() {
        let bytes = hex(GCM);
        let esp = &bytes[20..];
        let mut out = esp.to_vec();
        out[..8].fill(0);
        Repr { spi: 0x1001, sequence_number: 1 }
            .emit(&mut Packet::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, esp);
        let zero = Repr { spi: 0, sequence_number: 1 };
        assert_eq!(zero.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Overflow));
        let mut p = Packet::new_checked(&mut out[..]).unwrap();
        let (header, iv, ciphertext, icv) = p.split_mut(GCM_IV_LEN, GCM_ICV_LEN).unwrap();
        assert_eq!((header.len(), iv.len(), ciphertext.len(), icv.len()), (8, 8, 36, 16));
        assert_eq!(iv, &[0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(GCM);
        let esp = &bytes[20..];
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&esp[..len]).err(), Some(Error::Truncated));
        }
        // Room for header, IV and ICV but not the two trailer bytes.
        for len in 8..34 {
            assert_eq!(
                Packet::new_checked(&esp[..len]).unwrap().layout(8, 16).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert_eq!(
            Packet::new_checked(&esp[..35]).unwrap().layout(8, 16).err(),
            Some(Error::Malformed)
        );
        assert!(Packet::new_checked(&esp[..36]).unwrap().layout(8, 16).is_ok());
        let huge = Packet::new_checked(esp).unwrap();
        assert_eq!(huge.layout(usize::MAX, 16).err(), Some(Error::Truncated));
        assert_eq!(huge.layout(8, usize::MAX).err(), Some(Error::Truncated));
        // esp_truncated.pcap: the ESP header itself is cut.
        let f = &testdata::packets(testdata::ESP_TRUNCATED)[0];
        assert!(f.len() < 14 + 20 + 8 + 8);
    }
}
