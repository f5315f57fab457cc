//! Ethernet II frames, EtherTypes and MAC addresses.
//!
//! Contract: [`Frame::new_checked`] accepts any buffer of at least [`HEADER_LEN`] bytes;
//! after it no accessor panics. The frame check sequence is not part of the buffer (NICs
//! and DPDK strip it), and minimum-size padding is left in the payload: the layer above
//! knows its own length. An EtherType below 0x0600 (an 802.3 length) is reported as it
//! is; [`Repr::parse`] refuses it as [`Error::Unsupported`].

use core::fmt;
use core::str::FromStr;

use crate::{Error, Result};

/// An EtherType, as a newtype so that unknown values stay representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// Internet Protocol version 4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// Address Resolution Protocol.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q customer VLAN tag (C-tag).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IEEE 802.1ad service VLAN tag (S-tag, "Q-in-Q").
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// Internet Protocol version 6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// Transparent Ethernet bridging (an Ethernet frame inside Geneve or NVGRE).
    pub const TEB: EtherType = EtherType(0x6558);
    /// Smallest value that is an EtherType rather than an 802.3 length.
    pub const MIN: u16 = 0x0600;

    /// True for the TPIDs that start a VLAN tag.
    #[inline]
    pub const fn is_vlan_tag(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
}

newtype_field!(EtherType(u16));

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::VLAN => f.write_str("802.1Q"),
            EtherType::QINQ => f.write_str("802.1ad"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType::TEB => f.write_str("TEB"),
            EtherType(other) => write!(f, "0x{other:04x}"),
        }
    }
}

/// A 48-bit MAC address. Displays and parses as `02:00:0a:00:01:0a`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// 00:00:00:00:00:00, as an ARP request's unknown target.
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0; 6]);

    /// The address in `bytes`, which must be exactly 6 long.
    pub fn from_bytes(bytes: &[u8]) -> Result<EthernetAddress> {
        <[u8; 6]>::try_from(bytes).map(EthernetAddress).map_err(|_| Error::Malformed)
    }

    /// The six octets.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (broadcast included).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Neither multicast nor broadcast.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Locally administered bit set (vpcemu's derived ENI MACs are).
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Six groups of two hex digits separated by `:` (or all by `-`).
    fn from_str(s: &str) -> Result<EthernetAddress> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut groups = s.split(sep);
        for octet in out.iter_mut() {
            let g = groups.next().ok_or(Error::Malformed)?;
            if g.len() != 2 || !g.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::Malformed);
            }
            *octet = u8::from_str_radix(g, 16).map_err(|_| Error::Malformed)?;
        }
        if groups.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(out))
    }
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

fields! { Frame {
    /// Destination MAC.
    dst_addr, /** Set the destination MAC. */ set_dst_addr: EthernetAddress at 0;
    /// Source MAC.
    src_addr, /** Set the source MAC. */ set_src_addr: EthernetAddress at 6;
    /// EtherType (or TPID of a VLAN tag).
    ethertype, /** Set the EtherType. */ set_ethertype: EtherType at 12;
    /// Everything after the header (padding included).
    payload, /** Everything after the header, writable. */ payload_mut: bytes at HEADER_LEN;
}}

view! {
    /// A view of an Ethernet II frame.
    pub struct Frame;
    /// [`Error::Truncated`] when the buffer cannot hold the header.
    check_len(HEADER_LEN);
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Length of the header.
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Length of a frame carrying `payload_len` bytes.
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }
}

/// The header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: EthernetAddress,
    /// Destination MAC.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload (or TPID of a VLAN tag).
    pub ethertype: EtherType,
}

impl Repr {
    /// Parse a checked frame. 802.3 length frames are [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        let ethertype = frame.ethertype();
        if ethertype.0 < EtherType::MIN {
            return Err(Error::Unsupported);
        }
        Ok(Repr { src_addr: frame.src_addr(), dst_addr: frame.dst_addr(), ethertype })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a frame carrying `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Write the header into the first [`HEADER_LEN`] bytes of `frame`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<()> {
        frame.check_len()?;
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};

    // scapy: Ether(src='02:00:0a:00:01:0a',dst='ff:ff:ff:ff:ff:ff')/ARP(op=1,
    //   hwsrc='02:00:0a:00:01:0a',psrc='10.0.1.10',pdst='10.0.1.1')
    const ARP_REQUEST: &str =
        "ffffffffffff02000a00010a0806000108000604000102000a00010a0a00010a0000000000000a000101";

    #[test]
    fn test_parse() {
        let bytes = hex(ARP_REQUEST);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.src_addr(), "02:00:0a:00:01:0a".parse().unwrap());
        assert_eq!(frame.ethertype(), EtherType::ARP);
        assert_eq!(frame.payload().len(), 28);
        let repr = Repr::parse(&frame).unwrap();
        assert_eq!(repr.ethertype, EtherType::ARP);
        assert!(repr.dst_addr.is_broadcast() && repr.dst_addr.is_multicast());
        assert!(repr.src_addr.is_unicast() && repr.src_addr.is_local());
    }

    #[test]
    fn test_parse_capture() {
        // geneve.pcap, frame 1: 00:1b:21:3c:ab:64 -> 00:1b:21:3c:ac:30, IPv4.
        let packets = testdata::packets(testdata::GENEVE);
        let frame = Frame::new_checked(&packets[0][..]).unwrap();
        assert_eq!(frame.src_addr().to_string(), "00:1b:21:3c:ab:64");
        assert_eq!(frame.dst_addr().to_string(), "00:1b:21:3c:ac:30");
        assert_eq!(frame.ethertype(), EtherType::IPV4);
    }

    #[test]
    fn test_emit() {
        let bytes = hex(ARP_REQUEST);
        let repr = Repr::parse(&Frame::new_checked(&bytes[..]).unwrap()).unwrap();
        let mut out = bytes.clone();
        out[..HEADER_LEN].fill(0);
        repr.emit(&mut Frame::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, bytes);
        let mut short = [0u8; 13];
        assert_eq!(repr.emit(&mut Frame::new_unchecked(&mut short[..])), Err(Error::Truncated));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(ARP_REQUEST);
        for len in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&bytes[..len]).err(), Some(Error::Truncated));
        }
        assert!(Frame::new_checked(&bytes[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn test_8023_length_is_unsupported() {
        let mut bytes = hex(ARP_REQUEST);
        bytes[12..14].copy_from_slice(&0x05dcu16.to_be_bytes());
        assert_eq!(Repr::parse(&Frame::new_checked(&bytes[..]).unwrap()), Err(Error::Unsupported));
    }

    #[test]
    fn test_address_text() {
        let a: EthernetAddress = "02:00:0a:00:01:0a".parse().unwrap();
        assert_eq!(a.0, [0x02, 0x00, 0x0a, 0x00, 0x01, 0x0a]);
        assert_eq!(a.to_string(), "02:00:0a:00:01:0a");
        assert_eq!(
            "02-DC-00-00-00-01".parse::<EthernetAddress>().unwrap().to_string(),
            "02:dc:00:00:00:01"
        );
        for bad in [
            "",
            "02:00:0a:00:01",
            "02:00:0a:00:01:0a:00",
            "2:00:0a:00:01:0a",
            "02:00:0a:00:01:0g",
            "02:00-0a:00:01:0a",
            "+2:00:0a:00:01:0a",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(Error::Malformed), "{bad}");
        }
        assert_eq!(EtherType::IPV4.to_string(), "IPv4");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
    }
}
