//! TCP (RFC 9293) segment headers over IPv4.
//!
//! TCP has no length field: a view covers exactly one segment, the IPv4 payload.
//!
//! Contract: [`Packet::check_len`] returns [`Error::Truncated`] for fewer than 20 bytes
//! or fewer than the data offset says, and [`Error::Malformed`] for a data offset below 5.
//! After it no accessor panics. [`Repr::parse`] verifies the checksum with the IPv4
//! pseudo-header; the options are not kept and [`Repr::emit`] writes a 20-byte header.

use core::fmt;
use std::net::Ipv4Addr;

use crate::ipv4::Protocol;
use crate::{
    check_declared_len, check_exact_len, checksum, clamp, clamp_mut, read_u16, write_u16, Error,
    Result,
};

mod field {
    use crate::Field;
    pub const OFF_FLAGS: Field = 12..14;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// Data offset bits of the offset/flags word, in 32-bit words.
pub const DATA_OFFSET_MASK: u16 = 0xF000;
/// Shift of the data offset.
pub const DATA_OFFSET_SHIFT: u32 = 12;
/// Flag bits of the offset/flags word.
pub const FLAGS_MASK: u16 = 0x01FF;

/// The TCP control flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x002);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x004);
    /// Push.
    pub const PSH: Flags = Flags(0x008);
    /// Acknowledgment field significant.
    pub const ACK: Flags = Flags(0x010);
    /// Urgent pointer significant.
    pub const URG: Flags = Flags(0x020);
    /// ECN echo.
    pub const ECE: Flags = Flags(0x040);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x080);
    /// ECN nonce (historic, RFC 3540).
    pub const NS: Flags = Flags(0x100);

    /// True when every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 9] = [
            (Flags::FIN, "FIN"),
            (Flags::SYN, "SYN"),
            (Flags::RST, "RST"),
            (Flags::PSH, "PSH"),
            (Flags::ACK, "ACK"),
            (Flags::URG, "URG"),
            (Flags::ECE, "ECE"),
            (Flags::CWR, "CWR"),
            (Flags::NS, "NS"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

fields! { Packet {
    /// Source port.
    src_port, /** Set the source port. */ set_src_port: u16 at 0;
    /// Destination port.
    dst_port, /** Set the destination port. */ set_dst_port: u16 at 2;
    /// Sequence number.
    seq_number, /** Set the sequence number. */ set_seq_number: u32 at 4;
    /// Acknowledgment number.
    ack_number, /** Set the acknowledgment number. */ set_ack_number: u32 at 8;
    /// Window.
    window_len, /** Set the window. */ set_window_len: u16 at 14;
    /// Checksum field.
    checksum, /** Set the checksum field. */ set_checksum: u16 at 16;
    /// Urgent pointer.
    urgent_at, /** Set the urgent pointer. */ set_urgent_at: u16 at 18;
}}

view! {
    /// A view of a TCP segment.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Check the header and the data offset against the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check_declared_len(self.buffer.as_ref().len(), HEADER_LEN, || self.header_len() as usize)
    }

    #[inline]
    fn off_flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OFF_FLAGS.start)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (((self.off_flags() & DATA_OFFSET_MASK) >> DATA_OFFSET_SHIFT) * 4) as u8
    }

    /// Control flags.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.off_flags() & FLAGS_MASK)
    }

    /// Option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), field::OPTIONS, self.header_len() as usize)
    }

    /// Payload: everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len() as usize..).unwrap_or(&[])
    }

    /// True when the checksum verifies with the IPv4 pseudo-header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::tcp_udp_ipv4_ok(src, dst, Protocol::TCP.0, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the header length in bytes (a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let raw = (self.off_flags() & !DATA_OFFSET_MASK)
            | ((((value / 4) as u16) << DATA_OFFSET_SHIFT) & DATA_OFFSET_MASK);
        write_u16(self.buffer.as_mut(), field::OFF_FLAGS.start, raw);
    }

    /// Set the control flags.
    #[inline]
    pub fn set_flags(&mut self, value: Flags) {
        let raw = (self.off_flags() & !FLAGS_MASK) | (value.0 & FLAGS_MASK);
        write_u16(self.buffer.as_mut(), field::OFF_FLAGS.start, raw);
    }

    /// Compute and store the checksum over the whole buffer (the segment).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::tcp_udp_ipv4(src, dst, Protocol::TCP.0, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Replace the source port and update the checksum incrementally.
    pub fn rewrite_src_port(&mut self, value: u16) {
        let c = checksum::update16(self.checksum(), self.src_port(), value);
        self.set_src_port(value);
        self.set_checksum(c);
    }

    /// Replace the destination port and update the checksum incrementally.
    pub fn rewrite_dst_port(&mut self, value: u16) {
        let c = checksum::update16(self.checksum(), self.dst_port(), value);
        self.set_dst_port(value);
        self.set_checksum(c);
    }

    /// Update the checksum for an address of the pseudo-header changed by the IPv4 layer.
    pub fn update_checksum_for_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let c = checksum::update_addr(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Option bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len() as usize;
        clamp_mut(self.buffer.as_mut(), field::OPTIONS, end)
    }

    /// Payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len() as usize;
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

/// A TCP header without options; the payload stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Control flags (9 bits).
    pub flags: Flags,
    /// Window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Parse and verify the checksum with the IPv4 pseudo-header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            payload_len: packet.payload().len(),
        })
    }

    /// Length of the emitted header (20).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the segment.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the header and, over the payload already in place, the checksum. `packet`
    /// must be exactly [`buffer_len`](Self::buffer_len) long: the segment is the buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        if self.flags.0 & !FLAGS_MASK != 0 || u16::try_from(self.buffer_len()).is_err() {
            return Err(Error::Overflow);
        }
        check_exact_len(packet.buffer.as_ref().len(), self.buffer_len())?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        write_u16(
            packet.buffer.as_mut(),
            field::OFF_FLAGS.start,
            (5 << DATA_OFFSET_SHIFT) | self.flags.0,
        );
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(self.urgent_at);
        packet.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4;
    use crate::testdata::{self, hex};

    // scapy: IP(src='10.0.1.10',dst='10.0.2.20',id=10,flags='DF')/TCP(sport=51000,dport=80,
    //   flags='S',seq=0x01020304,window=64240,options=[('MSS',1460),('NOP',None),('WScale',7)]);
    // the TCP part.
    const SYN: &str = "c738005001020304000000007002faf0a67b0000020405b401030307";
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 20);

    #[test]
    fn test_parse() {
        let bytes = hex(SYN);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (51000, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (0x01020304, 0));
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.flags(), Flags::SYN);
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4, 1, 3, 3, 7]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        let repr = Repr::parse(&p, SRC, DST).unwrap();
        assert_eq!(repr.flags, Flags::SYN);
        assert_eq!(Repr::parse(&p, DST, SRC).map(|_| ()), Ok(()), "swapped addresses sum the same");
        assert_eq!(Repr::parse(&p, SRC, Ipv4Addr::LOCALHOST), Err(Error::Checksum));
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "SYN|ACK");
    }

    #[test]
    fn test_parse_capture() {
        // ipv4_tcp_http_xml.pcap (behind one VLAN tag): 80 -> 5767, PSH|ACK, HTTP.
        let f = &testdata::packets(testdata::TCP_HTTP)[0];
        let ip = ipv4::Packet::new_checked(&f[18..]).unwrap();
        let tcp = Packet::new_checked(ip.payload()).unwrap();
        let repr = Repr::parse(&tcp, ip.src_addr(), ip.dst_addr()).unwrap();
        assert_eq!((repr.src_port, repr.dst_port, repr.payload_len), (80, 5767, 645 - 40));
        assert!(repr.flags.contains(Flags::ACK | Flags::PSH));
        assert!(tcp.payload().starts_with(b"HTTP/1.1 200 OK"));
    }

    #[test]
    fn test_emit() {
        let repr = Repr {
            src_port: 40000,
            dst_port: 443,
            seq_number: 1000,
            ack_number: 2000,
            flags: Flags::PSH | Flags::ACK,
            window_len: 8192,
            urgent_at: 0,
            payload_len: 3,
        };
        let mut out = [0u8; 23];
        out[20..].copy_from_slice(b"abc");
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), SRC, DST).unwrap();
        let p = Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST).unwrap(), repr);
        assert_eq!(p.payload(), b"abc");
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut out[..22]), SRC, DST),
            Err(Error::Truncated)
        );
        let mut long = [0u8; 24];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut long[..]), SRC, DST),
            Err(Error::Overflow)
        );
        let bad = Repr { flags: Flags(0x200), ..repr };
        assert_eq!(
            bad.emit(&mut Packet::new_unchecked(&mut out[..]), SRC, DST),
            Err(Error::Overflow)
        );
    }

    #[test]
    fn test_rewrites_keep_checksum() {
        let mut bytes = hex(SYN);
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        let nat = Ipv4Addr::new(203, 0, 113, 10);
        p.update_checksum_for_addr(SRC, nat);
        p.rewrite_src_port(1024);
        assert!(p.verify_checksum(nat, DST));
        p.rewrite_dst_port(8080);
        assert!(p.verify_checksum(nat, DST));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(SYN);
        for len in 0..28 {
            assert_eq!(Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut b = bytes.clone();
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        let mut b = bytes.clone();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_header_len(60);
        assert!(p.options().is_empty() && p.payload().is_empty() && p.options_mut().is_empty());
    }
}
