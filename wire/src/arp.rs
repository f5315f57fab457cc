//! ARP (RFC 826), with [`Repr`] for IPv4 over Ethernet only.
//!
//! Contract: [`Packet::new_checked`] checks the fixed 8 bytes and then the four address
//! fields whose lengths the packet itself declares (`8 + 2 * (hlen + plen)` bytes); after
//! it no accessor panics. [`Repr::parse`] accepts only hardware type 1 (Ethernet) with
//! protocol 0x0800 (IPv4): for those, `hlen` must be 6 and `plen` 4 ([`Error::Malformed`]
//! otherwise); other hardware or protocol types and operations other than request and
//! reply are [`Error::Unsupported`]. Bytes after the packet (Ethernet padding) are ignored.

use std::net::Ipv4Addr;

use crate::ethernet::{EtherType, EthernetAddress};
use crate::{clamp, Error, Result};

/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// Length of the fixed part.
pub const FIXED_LEN: usize = 8;

/// Length of an IPv4-over-Ethernet ARP packet.
pub const ETHERNET_IPV4_LEN: usize = FIXED_LEN + 2 * (6 + 4);

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u16);

impl Operation {
    /// Who has `target_protocol_addr`?
    pub const REQUEST: Operation = Operation(1);
    /// `source_protocol_addr` is at `source_hardware_addr`.
    pub const REPLY: Operation = Operation(2);
}

newtype_field!(Operation(u16));

fields! { Packet {
    /// Hardware type (1 = Ethernet).
    hardware_type, /** Set the hardware type. */ set_hardware_type: u16 at 0;
    /// Protocol type (an EtherType).
    protocol_type, /** Set the protocol type. */ set_protocol_type: EtherType at 2;
    /// Hardware address length.
    hardware_len, /** Set the hardware address length. */ set_hardware_len: u8 at 4;
    /// Protocol address length.
    protocol_len, /** Set the protocol address length. */ set_protocol_len: u8 at 5;
    /// Operation.
    operation, /** Set the operation. */ set_operation: Operation at 6;
}}

view! {
    /// A view of an ARP packet of any hardware and protocol type.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] unless the buffer holds the fixed part and the four addresses
    /// at the declared lengths.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < FIXED_LEN || data.len() < self.packet_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Length the packet declares: fixed part and four addresses.
    #[inline]
    pub fn packet_len(&self) -> usize {
        FIXED_LEN + 2 * (self.hardware_len() as usize + self.protocol_len() as usize)
    }

    fn spa_start(&self) -> usize {
        FIXED_LEN + self.hardware_len() as usize
    }
    fn tha_start(&self) -> usize {
        self.spa_start() + self.protocol_len() as usize
    }
    fn tpa_start(&self) -> usize {
        self.tha_start() + self.hardware_len() as usize
    }

    /// Sender hardware address (`hlen` bytes).
    pub fn source_hardware_addr(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), FIXED_LEN, self.spa_start())
    }

    /// Sender protocol address (`plen` bytes).
    pub fn source_protocol_addr(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), self.spa_start(), self.tha_start())
    }

    /// Target hardware address (`hlen` bytes).
    pub fn target_hardware_addr(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), self.tha_start(), self.tpa_start())
    }

    /// Target protocol address (`plen` bytes).
    pub fn target_protocol_addr(&self) -> &[u8] {
        let end = self.tpa_start() + self.protocol_len() as usize;
        clamp(self.buffer.as_ref(), self.tpa_start(), end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Copy `value` into an address field at the declared lengths; [`Error::Malformed`]
    /// if its length differs, [`Error::Truncated`] if the buffer is short.
    fn set_range(&mut self, start: usize, len: usize, value: &[u8]) -> Result<()> {
        if value.len() != len {
            return Err(Error::Malformed);
        }
        let dst = self.buffer.as_mut().get_mut(start..start + len).ok_or(Error::Truncated)?;
        dst.copy_from_slice(value);
        Ok(())
    }

    /// Set the sender hardware address (`hlen` bytes).
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) -> Result<()> {
        let len = self.hardware_len() as usize;
        self.set_range(FIXED_LEN, len, value)
    }

    /// Set the sender protocol address (`plen` bytes).
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) -> Result<()> {
        let (start, len) = (self.spa_start(), self.protocol_len() as usize);
        self.set_range(start, len, value)
    }

    /// Set the target hardware address (`hlen` bytes).
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) -> Result<()> {
        let (start, len) = (self.tha_start(), self.hardware_len() as usize);
        self.set_range(start, len, value)
    }

    /// Set the target protocol address (`plen` bytes).
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) -> Result<()> {
        let (start, len) = (self.tpa_start(), self.protocol_len() as usize);
        self.set_range(start, len, value)
    }
}

/// An IPv4-over-Ethernet ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// [`Operation::REQUEST`] or [`Operation::REPLY`].
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4.
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4(bytes: &[u8]) -> Result<Ipv4Addr> {
    <[u8; 4]>::try_from(bytes).map(Ipv4Addr::from).map_err(|_| Error::Malformed)
}

impl Repr {
    /// Parse an IPv4-over-Ethernet request or reply; see the module contract.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET || packet.protocol_type() != EtherType::IPV4 {
            return Err(Error::Unsupported);
        }
        if packet.hardware_len() != 6 || packet.protocol_len() != 4 {
            return Err(Error::Malformed);
        }
        let operation = packet.operation();
        if operation != Operation::REQUEST && operation != Operation::REPLY {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation,
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr())?,
            source_protocol_addr: ipv4(packet.source_protocol_addr())?,
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr())?,
            target_protocol_addr: ipv4(packet.target_protocol_addr())?,
        })
    }

    /// Length of the packet (28).
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Same as [`buffer_len`](Self::buffer_len): ARP has no payload.
    pub const fn header_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Write the packet into the first 28 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < ETHERNET_IPV4_LEN {
            return Err(Error::Truncated);
        }
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0)?;
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets())?;
        packet.set_target_hardware_addr(&self.target_hardware_addr.0)?;
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets())?;
        Ok(())
    }

    /// The reply a proxy answering this request with `mac` sends back; `None` unless this
    /// is a request.
    pub fn reply_with(&self, mac: EthernetAddress) -> Option<Repr> {
        (self.operation == Operation::REQUEST).then_some(Repr {
            operation: Operation::REPLY,
            source_hardware_addr: mac,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        })
    }
}

/// Length of an Ethernet frame carrying Ethernet/IPv4 ARP (before any padding).
pub const ETHERNET_FRAME_LEN: usize = 14 + ETHERNET_IPV4_LEN;

/// Answer the ARP request `request`, which arrived as the frame in `buf`, in place: the
/// frame becomes the reply saying `mac` has the target address (padding cut, Ethernet to
/// the requester from `mac`). [`Error::Unsupported`] unless `request` is a request;
/// [`Error::Truncated`] when the frame is too short.
pub fn reply_in_place<B: crate::PacketBuf + ?Sized>(
    buf: &mut B,
    request: &Repr,
    mac: EthernetAddress,
) -> Result<()> {
    let reply = request.reply_with(mac).ok_or(Error::Unsupported)?;
    if buf.len() < ETHERNET_FRAME_LEN {
        return Err(Error::Truncated);
    }
    let padding = buf.len() - ETHERNET_FRAME_LEN;
    buf.trim(padding).map_err(|_| Error::Truncated)?;
    let frame = buf.data_mut().get_mut(..ETHERNET_FRAME_LEN).ok_or(Error::Truncated)?;
    let (head, body) = frame.split_at_mut(14);
    head[..6].copy_from_slice(&request.source_hardware_addr.0);
    head[6..12].copy_from_slice(&mac.0);
    head[12..].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
    reply.emit(&mut Packet::new_unchecked(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};
    use crate::PacketBuf;

    // scapy: ARP(op=1,hwsrc='02:00:0a:00:01:0a',psrc='10.0.1.10',pdst='10.0.1.1'), after
    // its Ethernet header.
    const REQUEST: &str = "000108000604000102000a00010a0a00010a0000000000000a000101";
    // scapy: ARP(op=2,hwsrc='02:00:0a:00:01:01',psrc='10.0.1.1',hwdst='02:00:0a:00:01:0a',
    //   pdst='10.0.1.10')
    const REPLY: &str = "000108000604000202000a0001010a00010102000a00010a0a00010a";

    fn request() -> Repr {
        Repr {
            operation: Operation::REQUEST,
            source_hardware_addr: "02:00:0a:00:01:0a".parse().unwrap(),
            source_protocol_addr: Ipv4Addr::new(10, 0, 1, 10),
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: Ipv4Addr::new(10, 0, 1, 1),
        }
    }

    #[test]
    fn reply_in_place_writes_scapys_reply() {
        // A broadcast request padded to 60 bytes, as it comes off the wire.
        let mut frame = hex("ffffffffffff02000a00010a0806");
        frame.extend_from_slice(&hex(REQUEST));
        frame.resize(60, 0);
        let mut buf = crate::TestBuffer::from_slice(&frame);
        let mac: EthernetAddress = "02:00:0a:00:01:01".parse().unwrap();
        reply_in_place(&mut buf, &request(), mac).unwrap();
        let mut want = hex("02000a00010a02000a0001010806");
        want.extend_from_slice(&hex(REPLY));
        assert_eq!(buf.data(), &want[..]);
        // Only requests are answered; a short frame is refused untouched.
        let reply = Repr::parse(&Packet::new_checked(&hex(REPLY)[..]).unwrap()).unwrap();
        assert_eq!(reply_in_place(&mut buf, &reply, mac), Err(Error::Unsupported));
        let mut short = crate::TestBuffer::from_slice(&frame[..41]);
        assert_eq!(reply_in_place(&mut short, &request(), mac), Err(Error::Truncated));
        assert_eq!(short.len(), 41);
    }

    #[test]
    fn test_parse() {
        let bytes = hex(REQUEST);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), Operation::REQUEST);
        assert_eq!(p.target_protocol_addr(), &[10, 0, 1, 1]);
        assert_eq!(Repr::parse(&p).unwrap(), request());
    }

    #[test]
    fn test_emit() {
        let mut out = [0u8; 28];
        request().emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &hex(REQUEST)[..]);
        let reply = request().reply_with("02:00:0a:00:01:01".parse().unwrap()).unwrap();
        reply.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &hex(REPLY)[..]);
        assert_eq!(reply.reply_with(EthernetAddress::BROADCAST), None);
        assert_eq!(
            request().emit(&mut Packet::new_unchecked(&mut out[..27])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn test_parse_qinq_capture() {
        // 802.1ad_QinQ.pcap: who-has 172.21.79.100 tell 172.21.79.97, then the reply,
        // behind two tags (payload at offset 22), padded to 64 bytes.
        let frames = testdata::packets(testdata::QINQ);
        let req = Repr::parse(&Packet::new_checked(&frames[0][22..]).unwrap()).unwrap();
        assert_eq!(req.operation, Operation::REQUEST);
        assert_eq!(req.source_protocol_addr, Ipv4Addr::new(172, 21, 79, 97));
        assert_eq!(req.target_protocol_addr, Ipv4Addr::new(172, 21, 79, 100));
        let rep = Repr::parse(&Packet::new_checked(&frames[1][22..]).unwrap()).unwrap();
        assert_eq!(rep.operation, Operation::REPLY);
        assert_eq!(rep.source_hardware_addr.to_string(), "00:80:ea:81:88:63");
    }

    #[test]
    fn test_malformed_captures() {
        // arp-too-long-tha.pcap: behind an S-tag, hardware type 0x3030 with hlen 14. The
        // view checks room for the declared lengths; the Repr refuses the packet.
        let frame = &testdata::packets(testdata::ARP_TOO_LONG_THA)[0];
        let stack = crate::vlan::walk(frame).unwrap();
        assert_eq!((stack.ethertype, stack.payload_offset), (EtherType::ARP, 18));
        let p = Packet::new_checked(&frame[18..]).unwrap();
        assert_eq!((p.hardware_type(), p.hardware_len()), (0x3030, 14));
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
        // arp-oobr.pcap: 2282 broken frames, none may panic, none is a valid request.
        for frame in testdata::packets(testdata::ARP_OOBR) {
            if let Some(payload) = frame.get(14..) {
                if let Ok(p) = Packet::new_checked(payload) {
                    let _ = (p.source_hardware_addr(), p.target_protocol_addr());
                    let _ = Repr::parse(&p);
                }
            }
        }
    }

    #[test]
    fn test_bad_lengths_and_types() {
        let mut b = hex(REQUEST);
        b[4] = 8;
        // hlen 8 needs 8 + 2 * 12 = 32 bytes.
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        b.extend_from_slice(&[0; 4]);
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Err(Error::Malformed));
        let mut b = hex(REQUEST);
        b[5] = 16;
        b.extend_from_slice(&[0; 24]);
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Err(Error::Malformed));
        let mut b = hex(REQUEST);
        b[7] = 3; // RARP request
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Err(Error::Unsupported));
        let mut b = hex(REQUEST);
        b[2] = 0x86; // IPv6 protocol type
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Err(Error::Unsupported));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(REQUEST);
        for len in 0..bytes.len() {
            assert_eq!(Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
    }
}
