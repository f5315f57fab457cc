//! ICMP for IPv4 (RFC 792): echo, destination unreachable (with the next-hop MTU of
//! "fragmentation needed", RFC 1191) and time exceeded.
//!
//! Contract: [`Packet::check_len`] wants the 8-byte header ([`Error::Truncated`]); after
//! it no accessor panics. ICMP has no length field: a view covers exactly one message,
//! the IPv4 payload. For error messages, [`Quote::parse`] gives the quoted IPv4 header
//! and the first 8 bytes after it (RFC 792), checked against what was actually quoted,
//! not against the quoted header's total length. [`Repr::parse`] verifies the checksum
//! ([`Error::Checksum`]), refuses other message types ([`Error::Unsupported`]) and error
//! messages whose quote is not a valid IPv4 header plus 8 bytes ([`Error::Malformed`]).

use std::net::Ipv4Addr;

use crate::ipv4::{self, Protocol};
use crate::{check_exact_len, checksum, read_u16, Error, Result};

/// Length of the ICMP header.
pub const HEADER_LEN: usize = 8;

/// Bytes of the offending datagram an error message quotes after its header (RFC 792).
pub const QUOTE_PAYLOAD_LEN: usize = 8;

/// An ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    /// Echo reply.
    pub const ECHO_REPLY: Message = Message(0);
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Message = Message(3);
    /// Echo request.
    pub const ECHO_REQUEST: Message = Message(8);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Message = Message(11);
}

newtype_field!(Message(u8));

/// Codes of destination unreachable.
pub mod unreachable {
    /// Net unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (carries the next-hop MTU, RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Source route failed.
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of time exceeded.
pub mod time_exceeded {
    /// TTL exceeded in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

fields! { Packet {
    /// Message type.
    msg_type, /** Set the message type. */ set_msg_type: Message at 0;
    /// Code.
    msg_code, /** Set the code. */ set_msg_code: u8 at 1;
    /// Checksum field.
    checksum, /** Set the checksum field. */ set_checksum: u16 at 2;
    /// Echo identifier.
    echo_ident, /** Set the echo identifier. */ set_echo_ident: u16 at 4;
    /// Echo sequence number.
    echo_seq_no, /** Set the echo sequence number. */ set_echo_seq_no: u16 at 6;
    /// Next-hop MTU of "fragmentation needed" (0 from routers older than RFC 1191).
    next_hop_mtu: u16 at 6;
    /// The 32 bits after the checksum.
    rest_of_header, /** Set the 32 bits after the checksum. */ set_rest_of_header: u32 at 4;
    /// Everything after the header: echo data, or an error's quote.
    data, /** Everything after the header, writable. */ data_mut: bytes at HEADER_LEN;
}}

view! {
    /// A view of an ICMP message.
    pub struct Packet;
    /// [`Error::Truncated`] when the buffer cannot hold the header.
    check_len(HEADER_LEN);
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// True when the checksum verifies over the whole message.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the next-hop MTU (and clear the unused bytes before it).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.set_rest_of_header(value as u32);
    }

    /// Compute and store the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// The part of the offending datagram an ICMP error carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote<'a> {
    header: ipv4::Packet<&'a [u8]>,
    transport: &'a [u8],
}

impl<'a> Quote<'a> {
    /// Split an error's data into the quoted IPv4 header and the 8 bytes after it; bytes
    /// quoted beyond those (RFC 1812 allows more) are ignored. [`Error::Truncated`] or
    /// [`Error::Malformed`] from the header check, [`Error::Unsupported`] for a version
    /// other than 4.
    pub fn parse(data: &'a [u8]) -> Result<Quote<'a>> {
        let header = ipv4::Packet::new_unchecked(data);
        header.check_header_len()?;
        if header.version() != 4 {
            return Err(Error::Unsupported);
        }
        let hlen = header.header_len() as usize;
        let transport = data.get(hlen..hlen + QUOTE_PAYLOAD_LEN).ok_or(Error::Truncated)?;
        let header = ipv4::Packet::new_unchecked(data.get(..hlen).ok_or(Error::Truncated)?);
        Ok(Quote { header, transport })
    }

    /// The quoted IPv4 header, checked by [`ipv4::Packet::check_header_len`]: its fixed
    /// fields are safe to read, its payload is empty.
    pub fn header(&self) -> &ipv4::Packet<&'a [u8]> {
        &self.header
    }

    /// The first 8 bytes of the quoted datagram's payload.
    pub fn transport(&self) -> &'a [u8] {
        self.transport
    }

    /// Source of the offending datagram.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.header.src_addr()
    }

    /// Destination of the offending datagram.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.header.dst_addr()
    }

    /// Protocol of the offending datagram.
    pub fn protocol(&self) -> Protocol {
        self.header.protocol()
    }

    /// Source and destination ports when the quoted datagram is TCP or UDP and not a
    /// later fragment.
    pub fn ports(&self) -> Option<(u16, u16)> {
        let p = self.protocol();
        if (p == Protocol::TCP || p == Protocol::UDP) && self.header.frag_offset() == 0 {
            let t = self.transport;
            Some((read_u16(t, 0), read_u16(t, 2)))
        } else {
            None
        }
    }

    /// Length of the quote: header plus 8 bytes.
    pub fn len(&self) -> usize {
        self.header.header_len() as usize + QUOTE_PAYLOAD_LEN
    }

    /// Never true: a quote holds at least 28 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The bytes an ICMP error should quote from `offending` (an IPv4 packet): its header and
/// the first 8 bytes of its payload, or all of it when shorter.
pub fn quote_of(offending: &[u8]) -> Result<&[u8]> {
    let header = ipv4::Packet::new_unchecked(offending);
    header.check_header_len()?;
    let end = (header.header_len() as usize + QUOTE_PAYLOAD_LEN).min(offending.len());
    offending.get(..end).ok_or(Error::Truncated)
}

/// The ICMP messages vpcemu builds and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable.
    DstUnreachable {
        /// One of [`unreachable`](mod@unreachable).
        code: u8,
        /// Next-hop MTU for [`unreachable::FRAG_NEEDED`], else 0.
        next_hop_mtu: u16,
        /// Quoted IPv4 header and at least 8 more bytes.
        quote: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// One of [`time_exceeded`].
        code: u8,
        /// Quoted IPv4 header and at least 8 more bytes.
        quote: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parse and verify; see the module contract.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let packet = Packet::new_checked(bytes)?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data = bytes.get(HEADER_LEN..).unwrap_or(&[]);
        let quote = |data: &'a [u8]| -> Result<&'a [u8]> {
            Quote::parse(data).map(|_| data).map_err(|_| Error::Malformed)
        };
        match (packet.msg_type(), packet.msg_code()) {
            (Message::ECHO_REQUEST, 0) => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Message::ECHO_REPLY, 0) => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Message::DST_UNREACHABLE, code) if code <= 15 => Ok(Repr::DstUnreachable {
                code,
                next_hop_mtu: if code == unreachable::FRAG_NEEDED {
                    packet.next_hop_mtu()
                } else {
                    0
                },
                quote: quote(data)?,
            }),
            (Message::TIME_EXCEEDED, code) if code <= 1 => {
                Ok(Repr::TimeExceeded { code, quote: quote(data)? })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// "Fragmentation needed" for `offending`, telling its sender the `mtu` of the next hop.
    pub fn frag_needed(mtu: u16, offending: &'a [u8]) -> Result<Repr<'a>> {
        Ok(Repr::DstUnreachable {
            code: unreachable::FRAG_NEEDED,
            next_hop_mtu: mtu,
            quote: quote_of(offending)?,
        })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data.len(),
                Repr::DstUnreachable { quote, .. } | Repr::TimeExceeded { quote, .. } => {
                    quote.len()
                }
            }
    }

    /// Write the message and its checksum. `packet` must be exactly
    /// [`buffer_len`](Self::buffer_len) long (the checksum covers the whole buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        check_exact_len(packet.buffer.as_ref().len(), self.buffer_len())?;
        let (msg, code, rest, data) = match *self {
            Repr::EchoRequest { ident, seq_no, data } => {
                (Message::ECHO_REQUEST, 0, (ident as u32) << 16 | seq_no as u32, data)
            }
            Repr::EchoReply { ident, seq_no, data } => {
                (Message::ECHO_REPLY, 0, (ident as u32) << 16 | seq_no as u32, data)
            }
            Repr::DstUnreachable { code, next_hop_mtu, quote } => {
                let mtu = if code == unreachable::FRAG_NEEDED { next_hop_mtu } else { 0 };
                (Message::DST_UNREACHABLE, code, mtu as u32, quote)
            }
            Repr::TimeExceeded { code, quote } => (Message::TIME_EXCEEDED, code, 0, quote),
        };
        packet.set_msg_type(msg);
        packet.set_msg_code(code);
        packet.set_rest_of_header(rest);
        packet.data_mut().copy_from_slice(data);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};

    // scapy: IP(src='198.18.0.1',dst='10.0.1.10',id=7,ttl=64)/ICMP(type=3,code=4,
    //   nexthopmtu=1400)/Raw(bytes(IP(src='10.0.1.10',dst='203.0.113.5',flags='DF',
    //   id=0x1234,ttl=63)/TCP(sport=40000,dport=443,flags='PA',seq=1000,ack=2000)
    //   /Raw(b'x'*100))[:28]); the ICMP part.
    const FRAG_NEEDED: &str =
        "030455a0000005784500008c123440003f06e2280a00010acb0071059c4001bb000003e8";
    // scapy: IP(src='10.0.1.1',dst='10.0.1.10',id=8)/ICMP(type=11,code=0)/Raw(<same quote>)
    const TIME_EXCEEDED: &str =
        "0b00531c000000004500008c123440003f06e2280a00010acb0071059c4001bb000003e8";
    // scapy: IP(src='10.0.1.10',dst='10.0.2.20',id=9)/ICMP(type=8,id=0x4242,seq=7)
    //   /Raw(b'vpcemu-ping-data'); the ICMP part.
    const ECHO: &str = "0800979c42420007767063656d752d70696e672d64617461";

    #[test]
    fn test_parse() {
        let bytes = hex(ECHO);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code(), p.echo_ident(), p.echo_seq_no()),
            (Message::ECHO_REQUEST, 0, 0x4242, 7)
        );
        assert!(p.verify_checksum());
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr::EchoRequest { ident: 0x4242, seq_no: 7, data: b"vpcemu-ping-data" }
        );

        let bytes = hex(FRAG_NEEDED);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        let Repr::DstUnreachable { code, next_hop_mtu, quote } = Repr::parse(&p).unwrap() else {
            panic!("not unreachable")
        };
        assert_eq!((code, next_hop_mtu, quote.len()), (unreachable::FRAG_NEEDED, 1400, 28));
        let q = Quote::parse(quote).unwrap();
        assert_eq!(q.src_addr(), Ipv4Addr::new(10, 0, 1, 10));
        assert_eq!(q.dst_addr(), Ipv4Addr::new(203, 0, 113, 5));
        assert_eq!(q.protocol(), Protocol::TCP);
        assert_eq!(q.header().total_len(), 140);
        assert!(q.header().dont_frag() && q.header().verify_checksum());
        assert_eq!(q.ports(), Some((40000, 443)));
        assert_eq!(&q.transport()[4..8], &1000u32.to_be_bytes());

        let bytes = hex(TIME_EXCEEDED);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let Repr::TimeExceeded { code, quote } = Repr::parse(&p).unwrap() else { panic!() };
        assert_eq!(code, time_exceeded::TTL);
        assert_eq!(Quote::parse(quote).unwrap().ports(), Some((40000, 443)));
    }

    #[test]
    fn test_parse_capture() {
        // geneve.pcap frame 1 carries an echo request (id 0x2952, seq 23) in Geneve.
        let f = &testdata::packets(testdata::GENEVE)[0];
        let inner = ipv4::Packet::new_checked(&f[14 + 20 + 8 + 16 + 14..]).unwrap();
        let p = Packet::new_checked(inner.payload()).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert!(
            matches!(repr, Repr::EchoRequest { ident: 0x2952, seq_no: 23, data } if data.len() == 56)
        );
        // icmp_ext_oob_poc.pcap: an extended echo request (type 42): unsupported, no panic.
        let f = &testdata::packets(testdata::ICMP_EXT_OOB)[0];
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), Message(42));
        assert!(Repr::parse(&p).is_err());
    }

    #[test]
    fn test_emit() {
        for msg in [ECHO, FRAG_NEEDED, TIME_EXCEEDED] {
            let bytes = hex(msg);
            let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
            assert_eq!(out, bytes);
        }
        // Building "fragmentation needed" from the offending packet itself.
        let offending = hex("4500008c123440003f06e2280a00010acb0071059c4001bb000003e8000007d0501800000000000078787878");
        let repr = Repr::frag_needed(1400, &offending).unwrap();
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, hex(FRAG_NEEDED));
        let mut long = vec![0u8; repr.buffer_len() + 1];
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut long[..])), Err(Error::Overflow));
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut out[..35])), Err(Error::Truncated));
    }

    #[test]
    fn test_bad_messages() {
        let mut b = hex(ECHO);
        b[5] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Err(Error::Checksum));
        // An error whose quote is cut short of header + 8 bytes.
        let b = hex(FRAG_NEEDED);
        let mut short = b[..b.len() - 1].to_vec();
        Packet::new_unchecked(&mut short[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_checked(&short[..]).unwrap()), Err(Error::Malformed));
        // Unknown type.
        let mut t = hex(ECHO);
        t[0] = 13;
        Packet::new_unchecked(&mut t[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_checked(&t[..]).unwrap()), Err(Error::Unsupported));
        assert_eq!(Quote::parse(&[0x46; 20]).err(), Some(Error::Truncated));
        assert_eq!(Quote::parse(&[0x44; 40]).err(), Some(Error::Malformed));
        assert_eq!(Quote::parse(&[0x65; 40]).err(), Some(Error::Unsupported));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(ECHO);
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated));
        }
        let b = hex(FRAG_NEEDED);
        for len in 8..b.len() {
            assert!(Quote::parse(&b[8..len]).is_err(), "{len}");
        }
    }
}
