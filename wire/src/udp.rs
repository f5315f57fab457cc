//! UDP (RFC 768) over IPv4.
//!
//! Contract: [`Packet::check_len`] returns [`Error::Truncated`] when the buffer is shorter
//! than 8 bytes or than the length field, and [`Error::Malformed`] when the length field
//! is below 8 (a length of 0, as GSO and BIG TCP super-packets carry, included). After it
//! no accessor panics; bytes after the length field's end are outside
//! [`Packet::payload`]. A checksum of 0 means "none" ([`Packet::verify_checksum`] accepts
//! it); [`Packet::fill_checksum`] never writes 0.

use std::net::Ipv4Addr;

use crate::ipv4::Protocol;
use crate::{check_declared_len, checksum, clamp, clamp_mut, Error, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

fields! { Packet {
    /// Source port.
    src_port, /** Set the source port. */ set_src_port: u16 at 0;
    /// Destination port.
    dst_port, /** Set the destination port. */ set_dst_port: u16 at 2;
    /// Length field: header and payload.
    #[allow(clippy::len_without_is_empty)]
    len, /** Set the length field. */ set_len: u16 at 4;
    /// Checksum field (0: none).
    checksum, /** Set the checksum field. */ set_checksum: u16 at 6;
}}

view! {
    /// A view of a UDP datagram.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Check the header and the length field against the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check_declared_len(self.buffer.as_ref().len(), HEADER_LEN, || self.len() as usize)
    }

    /// The datagram as the length field bounds it.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), 0, self.len() as usize)
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), HEADER_LEN, self.len() as usize)
    }

    /// True when the checksum is 0 (none) or verifies with the IPv4 pseudo-header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0
            || checksum::tcp_udp_ipv4_ok(src, dst, Protocol::UDP.0, self.datagram())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Compute and store the checksum over the datagram (length field bounds it); a
    /// computed 0 is stored as `0xFFFF`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::tcp_udp_ipv4(src, dst, Protocol::UDP.0, self.datagram());
        self.set_checksum(checksum::udp_on_wire(c));
    }

    /// Replace the source port and update a non-zero checksum incrementally.
    pub fn rewrite_src_port(&mut self, value: u16) {
        let c = checksum::udp_update16(self.checksum(), self.src_port(), value);
        self.set_src_port(value);
        self.set_checksum(c);
    }

    /// Replace the destination port and update a non-zero checksum incrementally.
    pub fn rewrite_dst_port(&mut self, value: u16) {
        let c = checksum::udp_update16(self.checksum(), self.dst_port(), value);
        self.set_dst_port(value);
        self.set_checksum(c);
    }

    /// Update a non-zero checksum for an address of the pseudo-header changed by the
    /// IPv4 layer (NAT).
    pub fn update_checksum_for_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let c = checksum::udp_update32(self.checksum(), u32::from(old), u32::from(new));
        self.set_checksum(c);
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len() as usize;
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }
}

/// A UDP header; the payload stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Parse and verify the checksum (when non-zero) with the IPv4 pseudo-header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.len() as usize - HEADER_LEN,
        })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the datagram.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the header with checksum 0 ("none"). To checksum, put the payload in place and
    /// call [`Packet::fill_checksum`], or use [`emit_with_checksum`](Self::emit_with_checksum).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = u16::try_from(self.buffer_len()).map_err(|_| Error::Overflow)?;
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.set_checksum(0);
        Ok(())
    }

    /// [`emit`](Self::emit), then the checksum over the payload already in the buffer
    /// ([`Error::Truncated`] if the buffer is shorter than the datagram).
    pub fn emit_with_checksum<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        self.emit(packet)?;
        packet.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4;
    use crate::testdata::{self, hex};

    // scapy: IP(src='10.0.1.10',dst='10.0.0.2',id=11)/UDP(sport=53000,dport=53)
    //   /DNS(rd=1,qd=DNSQR(qname='example.com')); the UDP part.
    const DNS: &str = "cf08003500254bed000001000001000000000000076578616d706c6503636f6d0000010001";
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn test_parse() {
        let bytes = hex(DNS);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len(), p.checksum()), (53000, 53, 37, 0x4bed));
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(
            Repr::parse(&p, SRC, DST).unwrap(),
            Repr { src_port: 53000, dst_port: 53, payload_len: 29 }
        );
        assert_eq!(Repr::parse(&p, SRC, Ipv4Addr::LOCALHOST), Err(Error::Checksum));
    }

    #[test]
    fn test_parse_geneve_capture() {
        // geneve.pcap frame 1: UDP 12618 -> 6081, length 122, checksum 0.
        let f = &testdata::packets(testdata::GENEVE)[0];
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        let udp = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (udp.src_port(), udp.dst_port(), udp.len(), udp.checksum()),
            (12618, 6081, 122, 0)
        );
        assert!(Repr::parse(&udp, ip.src_addr(), ip.dst_addr()).is_ok());
    }

    #[test]
    fn test_emit() {
        let bytes = hex(DNS);
        let mut out = bytes.clone();
        out[..8].fill(0);
        let repr = Repr { src_port: 53000, dst_port: 53, payload_len: 29 };
        repr.emit_with_checksum(&mut Packet::new_unchecked(&mut out[..]), SRC, DST).unwrap();
        assert_eq!(out, bytes);
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(Packet::new_checked(&out[..]).unwrap().checksum(), 0);
        let big = Repr { payload_len: 65528, ..repr };
        assert_eq!(big.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Overflow));
        assert_eq!(
            repr.emit_with_checksum(&mut Packet::new_unchecked(&mut out[..36]), SRC, DST),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn test_rewrites_keep_checksum() {
        let mut bytes = hex(DNS);
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.rewrite_src_port(40000);
        p.update_checksum_for_addr(SRC, Ipv4Addr::new(203, 0, 113, 10));
        assert!(p.verify_checksum(Ipv4Addr::new(203, 0, 113, 10), DST));
        p.rewrite_dst_port(5353);
        assert!(p.verify_checksum(Ipv4Addr::new(203, 0, 113, 10), DST));
        p.set_checksum(0);
        p.rewrite_dst_port(53);
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn test_zero_computed_checksum_is_sent_as_ffff() {
        // Find a payload whose checksum computes to 0; it must go out as 0xFFFF.
        let mut d = [0u8; 10];
        d[1] = 1;
        d[3] = 2;
        d[5] = 10;
        let mut p = Packet::new_unchecked(&mut d[..]);
        for w in 0..=u16::MAX {
            p.payload_mut().copy_from_slice(&w.to_be_bytes());
            p.set_checksum(0);
            if checksum::tcp_udp_ipv4(SRC, DST, 17, p.datagram()) == 0 {
                p.fill_checksum(SRC, DST);
                assert_eq!(p.checksum(), 0xFFFF);
                assert!(p.verify_checksum(SRC, DST));
                return;
            }
        }
        panic!("no payload with a zero checksum");
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(DNS);
        for len in 0..bytes.len() {
            assert_eq!(Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut zero = bytes.clone();
        zero[4..6].fill(0);
        assert_eq!(Packet::new_checked(&zero[..]).err(), Some(Error::Malformed));
        // esp_truncated.pcap: UDP length 362 with 26 bytes captured.
        let f = &testdata::packets(testdata::ESP_TRUNCATED)[0];
        let ip = ipv4::Packet::new_unchecked(&f[14..]);
        assert_eq!(
            Packet::new_checked(&f[14 + ip.header_len() as usize..]).err(),
            Some(Error::Truncated)
        );
    }
}
