//! IPv4 (RFC 791): header view, options walk, [`Repr`], and [`Ipv4Cidr`].
//!
//! Contract: [`Packet::check_len`] returns [`Error::Truncated`] when the buffer is shorter
//! than 20 bytes, than the header length (IHL) or than the total length, and
//! [`Error::Malformed`] when IHL < 5 or the total length is shorter than the header.
//! After it succeeds no accessor panics; bytes after the total length (Ethernet padding)
//! are outside [`Packet::payload`]. [`Packet::check_header_len`] is the weaker check for
//! an IPv4 header quoted in an ICMP error, whose total length covers bytes that are not
//! there. The option walk ([`Options`]) yields an error and stops at a bad option length;
//! it never reads out of bounds.
//!
//! [`Repr::parse`] also wants version 4 ([`Error::Unsupported`]), a correct header
//! checksum ([`Error::Checksum`]) and well-formed options ([`Error::Malformed`]); the
//! options themselves are not kept, and [`Repr::emit`] writes a 20-byte header.
//! Addresses are [`std::net::Ipv4Addr`].

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

use crate::{check_declared_len, checksum, clamp, clamp_mut, read_u16, write_u16, Error, Result};

mod field {
    use crate::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const FLG_OFF: Field = 6..8;
    pub const PROTOCOL: usize = 9;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Length of the longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Version bits of byte 0.
pub const VERSION_MASK: u8 = 0xF0;
/// Shift of the version.
pub const VERSION_SHIFT: u32 = 4;
/// Header length bits of byte 0, in 32-bit words.
pub const IHL_MASK: u8 = 0x0F;
/// DSCP bits of byte 1.
pub const DSCP_MASK: u8 = 0xFC;
/// Shift of the DSCP.
pub const DSCP_SHIFT: u32 = 2;
/// ECN bits of byte 1.
pub const ECN_MASK: u8 = 0x03;
/// Reserved ("evil") flag of the flags/fragment offset word.
pub const FLAG_RESERVED: u16 = 0x8000;
/// Don't fragment.
pub const FLAG_DF: u16 = 0x4000;
/// More fragments.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset bits, in 8-byte units.
pub const FRAG_OFFSET_MASK: u16 = 0x1FFF;

/// An IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Protocol(pub u8);

impl Protocol {
    /// ICMP for IPv4.
    pub const ICMP: Protocol = Protocol(1);
    /// TCP.
    pub const TCP: Protocol = Protocol(6);
    /// UDP.
    pub const UDP: Protocol = Protocol(17);
    /// IPsec Encapsulating Security Payload.
    pub const ESP: Protocol = Protocol(50);
}

newtype_field!(Protocol(u8));

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protocol::ICMP => f.write_str("ICMP"),
            Protocol::TCP => f.write_str("TCP"),
            Protocol::UDP => f.write_str("UDP"),
            Protocol::ESP => f.write_str("ESP"),
            Protocol(other) => write!(f, "{other}"),
        }
    }
}

fields! { Packet {
    /// IP version (4 for IPv4).
    version, /** Set the version (low 4 bits of `value`). */
        set_version: u8 in u8 at field::VER_IHL, bits VERSION_MASK >> VERSION_SHIFT;
    /// Differentiated services code point.
    dscp, /** Set the DSCP (low 6 bits of `value`). */
        set_dscp: u8 in u8 at field::DSCP_ECN, bits DSCP_MASK >> DSCP_SHIFT;
    /// Explicit congestion notification.
    ecn, /** Set the ECN (low 2 bits of `value`). */
        set_ecn: u8 in u8 at field::DSCP_ECN, bits ECN_MASK;
    /// Total length: header and payload.
    total_len, /** Set the total length. */ set_total_len: u16 at 2;
    /// Identification.
    ident, /** Set the identification. */ set_ident: u16 at 4;
    /// The reserved flag.
    reserved_flag, /** Set the reserved flag. */
        set_reserved_flag: bool in u16 at field::FLG_OFF.start, flag FLAG_RESERVED;
    /// Don't fragment.
    dont_frag, /** Set don't fragment. */
        set_dont_frag: bool in u16 at field::FLG_OFF.start, flag FLAG_DF;
    /// More fragments.
    more_frags, /** Set more fragments. */
        set_more_frags: bool in u16 at field::FLG_OFF.start, flag FLAG_MF;
    /// Time to live.
    ttl, /** Set the time to live. */ set_ttl: u8 at 8;
    /// Protocol of the payload.
    protocol, /** Set the protocol. */ set_protocol: Protocol at field::PROTOCOL;
    /// Header checksum field.
    checksum, /** Set the checksum field. */ set_checksum: u16 at 10;
    /// Source address.
    src_addr, /** Set the source address. */ set_src_addr: Ipv4Addr at 12;
    /// Destination address.
    dst_addr, /** Set the destination address. */ set_dst_addr: Ipv4Addr at 16;
}}

view! {
    /// A view of an IPv4 packet.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Check the header length against the buffer, not the total length: for a header
    /// quoted in an ICMP error.
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        check_declared_len(self.buffer.as_ref().len(), HEADER_LEN, || self.header_len() as usize)
    }

    /// Check header and total length against each other and the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let header_len = self.header_len() as usize;
        check_declared_len(self.buffer.as_ref().len(), header_len, || self.total_len() as usize)
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & IHL_MASK) * 4
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & FRAG_OFFSET_MASK) << 3
    }

    /// True for any fragment, the first included.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::ipv4_header_ok(clamp(self.buffer.as_ref(), 0, self.header_len() as usize))
    }

    /// The option bytes (header bytes after the first 20).
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), field::OPTIONS, self.header_len() as usize)
    }

    /// Walk the options.
    #[inline]
    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }

    /// The payload: from the header length to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), self.header_len() as usize, self.total_len() as usize)
    }

    /// The header bytes (options included).
    #[inline]
    pub fn header(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), 0, self.header_len() as usize)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the header length in bytes (a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let d = self.buffer.as_mut();
        d[field::VER_IHL] = (d[field::VER_IHL] & !IHL_MASK) | ((value / 4) & IHL_MASK);
    }

    /// Set the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = (self.flags_offset() & !FRAG_OFFSET_MASK) | ((value >> 3) & FRAG_OFFSET_MASK);
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw);
    }

    /// Compute and store the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let c = checksum::ipv4_header(self.header());
        self.set_checksum(c);
    }

    /// Replace the source address, update the header checksum incrementally (RFC 1624)
    /// and return the old address, so the caller can update a TCP or UDP checksum too.
    #[inline]
    pub fn rewrite_src_addr(&mut self, value: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        let c = checksum::update_addr(self.checksum(), old, value);
        self.set_src_addr(value);
        self.set_checksum(c);
        old
    }

    /// [`rewrite_src_addr`](Self::rewrite_src_addr) for the destination.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, value: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        let c = checksum::update_addr(self.checksum(), old, value);
        self.set_dst_addr(value);
        self.set_checksum(c);
        old
    }

    /// Decrement the TTL and update the checksum incrementally; `false` (and nothing
    /// changed) when the TTL is already 0 or 1, so the packet must not be forwarded.
    #[inline]
    pub fn decrement_ttl(&mut self) -> bool {
        let ttl = self.ttl();
        if ttl <= 1 {
            return false;
        }
        let d = self.buffer.as_ref();
        let old = u16::from_be_bytes([ttl, d[field::PROTOCOL]]);
        let c = checksum::update16(self.checksum(), old, old - 0x0100);
        self.set_ttl(ttl - 1);
        self.set_checksum(c);
        true
    }

    /// The option bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len() as usize;
        clamp_mut(self.buffer.as_mut(), field::OPTIONS, end)
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len() as usize, self.total_len() as usize);
        clamp_mut(self.buffer.as_mut(), start, end)
    }
}

/// Option type values (copied flag, class and number together).
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation (one byte of padding).
    pub const NOP: u8 = 1;
    /// Record route.
    pub const RECORD_ROUTE: u8 = 7;
    /// Internet timestamp.
    pub const TIMESTAMP: u8 = 68;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert (RFC 2113).
    pub const ROUTER_ALERT: u8 = 148;
    /// "Copied on fragmentation" bit of the type.
    pub const COPIED_MASK: u8 = 0x80;
    /// Class bits of the type.
    pub const CLASS_MASK: u8 = 0x60;
    /// Shift of the class.
    pub const CLASS_SHIFT: u32 = 5;
    /// Number bits of the type.
    pub const NUMBER_MASK: u8 = 0x1F;
}

/// One IPv4 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The type byte (see [`option`]).
    pub kind: u8,
    /// The bytes after type and length (empty for NOP).
    pub data: &'a [u8],
}

impl Ipv4Option<'_> {
    /// True when fragmentation copies this option into every fragment.
    pub fn copied(&self) -> bool {
        self.kind & option::COPIED_MASK != 0
    }
}

/// Iterator over IPv4 options. Stops at END or at the end of the bytes; yields one
/// [`Error::Malformed`] and stops at a length that is below 2 or runs past the end.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Walk `bytes` (the options area of a header).
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<Ipv4Option<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            option::END => {
                self.rest = &[];
                None
            }
            option::NOP => {
                self.rest = after_kind;
                Some(Ok(Ipv4Option { kind, data: &[] }))
            }
            _ => {
                let len = after_kind.first().map_or(0, |&l| l as usize);
                match self.rest.get(2..len.max(2)) {
                    Some(data) if len >= 2 => {
                        self.rest = self.rest.get(len..).unwrap_or(&[]);
                        Some(Ok(Ipv4Option { kind, data }))
                    }
                    _ => {
                        self.rest = &[];
                        Some(Err(Error::Malformed))
                    }
                }
            }
        }
    }
}

/// The fields of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: Protocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP, 0..=63.
    pub dscp: u8,
    /// ECN, 0..=3.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes, a multiple of 8.
    pub frag_offset: u16,
}

impl Repr {
    /// Parse and validate; see the module contract.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Unsupported);
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        if packet.options_iter().any(|o| o.is_err()) {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - packet.header_len() as usize,
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Length of the emitted header (20).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the emitted packet.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write a 20-byte header with its checksum into the start of `packet`. The payload
    /// is the caller's.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let total_len = u16::try_from(self.buffer_len()).map_err(|_| Error::Overflow)?;
        if self.dscp > 63 || self.ecn > 3 || self.frag_offset % 8 != 0 {
            return Err(Error::Overflow);
        }
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let d = packet.buffer.as_mut();
        d[field::VER_IHL] = 0x45;
        d[field::DSCP_ECN] = (self.dscp << DSCP_SHIFT) | self.ecn;
        packet.set_total_len(total_len);
        packet.set_ident(self.ident);
        let mut flags = self.frag_offset >> 3;
        if self.dont_frag {
            flags |= FLAG_DF;
        }
        if self.more_frags {
            flags |= FLAG_MF;
        }
        write_u16(packet.buffer.as_mut(), field::FLG_OFF.start, flags);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

/// An IPv4 prefix: an address and a prefix length, written `10.0.0.0/16`.
///
/// The address is kept as given; [`network`](Self::network) clears the host bits and
/// [`is_network`](Self::is_network) tells whether any were set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// A prefix; [`Error::Malformed`] for a length over 32.
    pub const fn new(address: Ipv4Addr, prefix_len: u8) -> Result<Ipv4Cidr> {
        if prefix_len > 32 {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Cidr { address, prefix_len })
    }

    /// The address as given.
    pub const fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length, 0..=32.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The mask as a number.
    #[inline]
    pub const fn mask(&self) -> u32 {
        match u32::MAX.checked_shl(32 - self.prefix_len as u32) {
            Some(m) => m,
            None => 0,
        }
    }

    /// The mask as an address (`255.255.0.0` for /16).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The same prefix with the host bits cleared.
    pub fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            address: Ipv4Addr::from(u32::from(self.address) & self.mask()),
            prefix_len: self.prefix_len,
        }
    }

    /// True when no host bit is set.
    pub fn is_network(&self) -> bool {
        u32::from(self.address) & !self.mask() == 0
    }

    /// The directed broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !self.mask())
    }

    /// True when `addr` is inside the prefix.
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.address)) & self.mask() == 0
    }

    /// True when `other` lies entirely inside this prefix.
    pub fn contains_cidr(&self, other: &Ipv4Cidr) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.address)
    }

    /// True when the two prefixes share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl fmt::Debug for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    /// `a.b.c.d/n` with n in 0..=32, digits only.
    fn from_str(s: &str) -> Result<Ipv4Cidr> {
        let (addr, len) = s.split_once('/').ok_or(Error::Malformed)?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        let address: Ipv4Addr = addr.parse().map_err(|_| Error::Malformed)?;
        let prefix_len: u8 = len.parse().map_err(|_| Error::Malformed)?;
        Ipv4Cidr::new(address, prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};

    // scapy: IP(src='10.0.1.10',dst='10.0.0.2',id=11)/UDP(sport=53000,dport=53)
    //   /DNS(rd=1,qd=DNSQR(qname='example.com'))
    const UDP_DNS: &str = "45000039000b00004011659e0a00010a0a000002cf08003500254bed000001000001000000000000076578616d706c6503636f6d0000010001";
    // scapy: IP(src='10.0.1.10',dst='10.0.2.20',id=13,options=[IPOption_RR(routers=['1.2.3.4'])])
    //   /UDP(sport=1,dport=2)
    const RR_OPTION: &str =
        "47000024000d0000401150940a00010a0a0002140707040102030400000100020008e8bd";
    // scapy: IP(src='10.0.1.10',dst='10.0.2.20',id=10,flags='DF')/TCP(sport=51000,dport=80,
    //   flags='S',seq=0x01020304,window=64240,options=[('MSS',1460),('NOP',None),('WScale',7)])
    const TCP_SYN: &str = "45000030000a4000400623a10a00010a0a000214c738005001020304000000007002faf0a67b0000020405b401030307";

    fn dns_repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(10, 0, 1, 10),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: Protocol::UDP,
            payload_len: 37,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 11,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn test_parse() {
        let bytes = hex(UDP_DNS);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 57));
        assert_eq!(p.protocol(), Protocol::UDP);
        assert_eq!(p.checksum(), 0x659e);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 37);
        assert_eq!(Repr::parse(&p).unwrap(), dns_repr());

        let syn = hex(TCP_SYN);
        let p = Packet::new_checked(&syn[..]).unwrap();
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(Repr::parse(&p).unwrap().protocol, Protocol::TCP);
    }

    #[test]
    fn test_parse_capture() {
        // ipv4_tcp_http_xml.pcap: behind VLAN 165, 10.21.11.94 -> 10.114.101.120, TCP,
        // total length 645.
        let frame = &testdata::packets(testdata::TCP_HTTP)[0];
        let vlan = crate::vlan::walk(frame).unwrap();
        assert_eq!((vlan.inner().unwrap().vid, vlan.payload_offset), (165, 18));
        let p = Packet::new_checked(&frame[18..]).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr.src_addr, Ipv4Addr::new(10, 21, 11, 94));
        assert_eq!(repr.dst_addr, Ipv4Addr::new(10, 114, 101, 120));
        assert_eq!((repr.protocol, repr.dont_frag, repr.ttl), (Protocol::TCP, true, 128));
        assert_eq!(repr.buffer_len(), 645);
        assert_eq!(frame.len(), 18 + 645);
    }

    #[test]
    fn test_invalid_captures() {
        // IHL 4: header length 16.
        let f = &testdata::packets(testdata::IPV4_BAD_HDR_LEN)[0];
        assert_eq!(Packet::new_checked(&f[14..]).err(), Some(Error::Malformed));
        // Total length 84, 19 bytes captured.
        let f = &testdata::packets(testdata::IPV4_BAD_LEN)[0];
        assert_eq!(Packet::new_checked(&f[14..]).err(), Some(Error::Truncated));
        // Total length 85 with 84 bytes there.
        let f = &testdata::packets(testdata::IPV4_BAD_TOTAL_LEN)[0];
        assert_eq!(Packet::new_checked(&f[14..]).err(), Some(Error::Truncated));
        // Total length 19, shorter than the header.
        let f = &testdata::packets(testdata::IPV4_BAD_TOTAL_LEN_2)[0];
        assert_eq!(Packet::new_checked(&f[14..]).err(), Some(Error::Malformed));
        // BIG TCP: total length 0 in outer and inner header.
        let f = &testdata::packets(testdata::BIGTCP_GENEVE)[0];
        assert_eq!(Packet::new_checked(&f[14..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn test_options_captures() {
        // Options that once crashed tcpdump: walk them all, whatever the header says.
        for capture in [testdata::IP_TS_OPTS, testdata::IP_PRINTROUTE] {
            for f in testdata::packets(capture) {
                let p = Packet::new_unchecked(&f[14..]);
                if p.check_header_len().is_ok() {
                    let n = p.options_iter().take(64).count();
                    assert!(n <= 40);
                }
                let _ = Packet::new_checked(&f[14..]).map(|p| Repr::parse(&p));
            }
        }
    }

    #[test]
    fn test_options_walk() {
        let bytes = hex(RR_OPTION);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 28);
        let opts: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(opts.len(), 1);
        assert_eq!(opts[0].kind, option::RECORD_ROUTE);
        assert!(!opts[0].copied());
        assert_eq!(opts[0].data, &[4, 1, 2, 3, 4]);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr.payload_len, 8);

        fn walk(b: &[u8]) -> Vec<Result<Ipv4Option<'_>>> {
            Options::new(b).collect()
        }
        assert_eq!(walk(&[1, 1, 0, 7, 7]).len(), 2); // NOP NOP END, ignored tail
        assert_eq!(walk(&[7]), vec![Err(Error::Malformed)]);
        assert_eq!(walk(&[7, 1, 0, 0]), vec![Err(Error::Malformed)]);
        assert_eq!(walk(&[7, 9, 0, 0]), vec![Err(Error::Malformed)]);
        assert_eq!(walk(&[148, 4, 0, 0]), vec![Ok(Ipv4Option { kind: 148, data: &[0, 0] })]);
        assert!(walk(&[]).is_empty());

        let mut bad = bytes.clone();
        bad[21] = 0x20; // RR length past the options
        let mut p = Packet::new_checked(&mut bad[..]).unwrap();
        p.fill_checksum();
        assert_eq!(Repr::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn test_emit() {
        let bytes = hex(UDP_DNS);
        let mut out = bytes.clone();
        out[..20].fill(0);
        dns_repr().emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, bytes);
        let frag = Repr {
            more_frags: true,
            frag_offset: 1480,
            dont_frag: false,
            dscp: 46,
            ecn: 2,
            ..dns_repr()
        };
        frag.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        let p = Packet::new_checked(&out[..]).unwrap();
        assert!(p.is_fragment() && p.more_frags());
        assert_eq!((p.frag_offset(), p.dscp(), p.ecn()), (1480, 46, 2));
        assert_eq!(Repr::parse(&p).unwrap(), frag);

        let mut buf = [0u8; 20];
        let too_big = Repr { payload_len: 65516, ..dns_repr() };
        assert_eq!(too_big.emit(&mut Packet::new_unchecked(&mut buf[..])), Err(Error::Overflow));
        let odd = Repr { frag_offset: 3, ..dns_repr() };
        assert_eq!(odd.emit(&mut Packet::new_unchecked(&mut buf[..])), Err(Error::Overflow));
        assert_eq!(
            dns_repr().emit(&mut Packet::new_unchecked(&mut buf[..19])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn test_checksum_and_rewrites() {
        let mut bytes = hex(UDP_DNS);
        bytes[10] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()), Err(Error::Checksum));
        bytes[10] ^= 1;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        let old = p.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(old, Ipv4Addr::new(10, 0, 1, 10));
        assert!(p.verify_checksum());
        p.rewrite_dst_addr(Ipv4Addr::new(198, 51, 100, 7));
        assert!(p.verify_checksum());
        assert!(p.decrement_ttl());
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        p.set_ttl(1);
        p.fill_checksum();
        assert!(!p.decrement_ttl());
        assert_eq!(p.ttl(), 1);
        let mut v6 = hex(UDP_DNS);
        let mut p = Packet::new_unchecked(&mut v6[..]);
        p.set_version(6);
        p.fill_checksum();
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(UDP_DNS);
        for len in 0..bytes.len() {
            assert_eq!(Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        // Ethernet padding after the packet is allowed and left out of the payload.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 7]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 37);
        // Mutating lengths after the check never makes an accessor panic.
        let mut b = bytes.clone();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_header_len(60);
        p.set_total_len(u16::MAX);
        assert!(p.payload().is_empty() && p.options().is_empty());
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.options_mut().is_empty() && p.payload_mut().is_empty());
    }

    #[test]
    fn test_cidr() {
        let c: Ipv4Cidr = "10.0.0.0/16".parse().unwrap();
        assert_eq!((c.address(), c.prefix_len()), (Ipv4Addr::new(10, 0, 0, 0), 16));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert!(c.contains(Ipv4Addr::new(10, 0, 255, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 0, 0)));
        assert_eq!(c.to_string(), "10.0.0.0/16");
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 255, 255));
        assert!(c.is_network());
        let host: Ipv4Cidr = "10.0.1.10/24".parse().unwrap();
        assert!(!host.is_network());
        assert_eq!(host.network().to_string(), "10.0.1.0/24");
        assert!(c.contains_cidr(&host) && !host.contains_cidr(&c) && c.overlaps(&host));
        let any: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(Ipv4Addr::BROADCAST) && any.mask() == 0);
        let one: Ipv4Cidr = "192.0.2.1/32".parse().unwrap();
        assert!(
            one.contains(Ipv4Addr::new(192, 0, 2, 1)) && !one.contains(Ipv4Addr::new(192, 0, 2, 2))
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/008",
            "/8",
        ] {
            assert_eq!(bad.parse::<Ipv4Cidr>(), Err(Error::Malformed), "{bad}");
        }
        assert_eq!(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 40), Err(Error::Malformed));
    }
}
