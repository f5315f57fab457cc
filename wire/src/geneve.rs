//! Geneve (RFC 8926): base header, options, and the options vpcemu defines.
//!
//! Contract: [`Packet::check_len`] returns [`Error::Truncated`] when the buffer is shorter
//! than 8 bytes or than the header with its options (`8 + opt_len * 4`). After it no
//! accessor panics. [`Options`] walks option bytes of any content: an option header cut
//! short or an option running past the end yields one [`Error::Malformed`] and ends the
//! walk; it never panics and never reads outside the bytes it was given.
//! [`Repr::parse`] wants version 0 ([`Error::Unsupported`]) and options that walk cleanly
//! ([`Error::Malformed`]); it keeps the option bytes as they are.
//!
//! vpcemu's options (ARCHITECTURE section 3):
//! * class [`CLASS_VPCEMU`] (0xFFF0), type [`TYPE_SOURCE_VPC`] (0x01), length 1: the
//!   source VPC, 24 bits right-aligned in 4 bytes (the top byte zero);
//! * class [`CLASS_AWS`] (0x0108), type [`TYPE_ENDPOINT_ID`] (0x01), length 2: the 64-bit
//!   VPC endpoint ID, in the layout AWS publishes for Gateway Load Balancer.

use crate::ethernet::EtherType;
use crate::{clamp, clamp_mut, read_u32, write_u16, write_u32, Error, Result};

mod field {
    use crate::Field;
    pub const VER_OPT_LEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: Field = 2..4;
    /// VNI (24 bits) and the reserved byte after it.
    pub const VNI_RSVD: Field = 4..8;
    pub const OPTIONS: usize = VNI_RSVD.end;
}

mod opt_field {
    use crate::Field;
    pub const CLASS: Field = 0..2;
    pub const TYPE: usize = 2;
    pub const LEN: usize = 3;
    pub const DATA: usize = LEN + 1;
}

/// UDP destination port of Geneve.
pub const PORT: u16 = 6081;
/// Length of the base header.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Longest options area (opt_len 63).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;

/// Version bits of byte 0.
pub const VERSION_MASK: u8 = 0xC0;
/// Shift of the version.
pub const VERSION_SHIFT: u32 = 6;
/// Options length bits of byte 0, in 4-byte words.
pub const OPT_LEN_MASK: u8 = 0x3F;
/// O: an OAM (control) packet.
pub const FLAG_OAM: u8 = 0x80;
/// C: at least one critical option is present.
pub const FLAG_CRITICAL: u8 = 0x40;
/// Largest VNI.
pub const VNI_MAX: u32 = 0x00FF_FFFF;

/// Length of an option header.
pub const OPTION_HEADER_LEN: usize = opt_field::DATA;
/// Critical bit of an option type.
pub const OPTION_TYPE_CRITICAL: u8 = 0x80;
/// Reserved bits of an option's length byte.
pub const OPTION_RESERVED_MASK: u8 = 0xE0;
/// Length bits of an option's length byte, in 4-byte words of data.
pub const OPTION_LEN_MASK: u8 = 0x1F;
/// Longest option data (length 31).
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;

/// Option class of vpcemu's own options (experimental range).
pub const CLASS_VPCEMU: u16 = 0xFFF0;
/// vpcemu option type: the source VPC.
pub const TYPE_SOURCE_VPC: u8 = 0x01;
/// Length of the whole source-VPC option.
pub const SOURCE_VPC_OPTION_LEN: usize = OPTION_HEADER_LEN + 4;
/// Option class AWS uses (Gateway Load Balancer).
pub const CLASS_AWS: u16 = 0x0108;
/// AWS option type: the VPC endpoint ID.
pub const TYPE_ENDPOINT_ID: u8 = 0x01;
/// Length of the whole endpoint-ID option.
pub const ENDPOINT_ID_OPTION_LEN: usize = OPTION_HEADER_LEN + 8;

fields! { Packet {
    /// Version (0).
    version, /** Set the version (low 2 bits of `value`). */
        set_version: u8 in u8 at field::VER_OPT_LEN, bits VERSION_MASK >> VERSION_SHIFT;
    /// O flag: OAM packet.
    oam, /** Set the O flag. */ set_oam: bool in u8 at field::FLAGS, flag FLAG_OAM;
    /// C flag: critical options present.
    critical, /** Set the C flag. */ set_critical: bool in u8 at field::FLAGS, flag FLAG_CRITICAL;
    /// Protocol type of the payload (an EtherType: 0x0800 for vpcemu).
    protocol, /** Set the protocol type. */ set_protocol: EtherType at field::PROTOCOL.start;
}}

view! {
    /// A view of a Geneve header and what follows it.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] unless the buffer holds the header and its options.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Length of the options in bytes.
    #[inline]
    pub fn options_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_OPT_LEN] & OPT_LEN_MASK) as usize * 4
    }

    /// Header length: base header and options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Virtual network identifier (24 bits).
    #[inline]
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VNI_RSVD.start) >> 8
    }

    /// The option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// Walk the options.
    #[inline]
    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }

    /// What follows the header and options.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the options length in bytes (a multiple of 4, at most 252).
    #[inline]
    pub fn set_options_len(&mut self, value: usize) {
        let words = ((value / 4) as u8) & OPT_LEN_MASK;
        let d = self.buffer.as_mut();
        d[field::VER_OPT_LEN] = (d[field::VER_OPT_LEN] & !OPT_LEN_MASK) | words;
    }

    /// Set the VNI (low 24 bits of `value`); the reserved byte after it becomes 0.
    #[inline]
    pub fn set_vni(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::VNI_RSVD.start, (value & VNI_MAX) << 8);
    }

    /// The option bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        clamp_mut(self.buffer.as_mut(), field::OPTIONS, end)
    }

    /// What follows the header and options, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

/// One Geneve option: class, type (critical bit included) and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveOption<'a> {
    /// Option class.
    pub class: u16,
    /// Type; the top bit is the critical bit.
    pub kind: u8,
    /// Data: a multiple of 4 bytes, at most 124.
    pub data: &'a [u8],
}

impl<'a> GeneveOption<'a> {
    /// True when a receiver that does not know this option must drop the packet.
    #[inline]
    pub const fn is_critical(&self) -> bool {
        self.kind & OPTION_TYPE_CRITICAL != 0
    }

    /// Length on the wire: header and data.
    #[inline]
    pub const fn len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len()
    }

    /// Never true: an option has at least its 4-byte header.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The source VPC, if this is vpcemu's source-VPC option with its top byte zero.
    #[inline]
    pub fn source_vpc(&self) -> Option<u32> {
        match (self.class, self.kind, self.data) {
            (CLASS_VPCEMU, TYPE_SOURCE_VPC, &[0, a, b, c]) => {
                Some(u32::from_be_bytes([0, a, b, c]))
            }
            _ => None,
        }
    }

    /// The VPC endpoint ID, if this is the endpoint-ID option.
    #[inline]
    pub fn endpoint_id(&self) -> Option<u64> {
        match (self.class, self.kind) {
            (CLASS_AWS, TYPE_ENDPOINT_ID) => {
                <[u8; 8]>::try_from(self.data).ok().map(u64::from_be_bytes)
            }
            _ => None,
        }
    }

    /// Write the option at the start of `buf` and return its length. [`Error::Overflow`]
    /// when the data is not a multiple of 4 bytes or longer than 124, [`Error::Truncated`]
    /// when `buf` is short.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if self.data.len() % 4 != 0 || self.data.len() > MAX_OPTION_DATA_LEN {
            return Err(Error::Overflow);
        }
        let out = buf.get_mut(..self.len()).ok_or(Error::Truncated)?;
        write_u16(out, opt_field::CLASS.start, self.class);
        out[opt_field::TYPE] = self.kind;
        out[opt_field::LEN] = (self.data.len() / 4) as u8;
        out[opt_field::DATA..].copy_from_slice(self.data);
        Ok(self.len())
    }
}

/// vpcemu's source-VPC option for `vpc`; [`Error::Overflow`] above 24 bits.
pub fn source_vpc_option(vpc: u32) -> Result<[u8; SOURCE_VPC_OPTION_LEN]> {
    if vpc > VNI_MAX {
        return Err(Error::Overflow);
    }
    let c = CLASS_VPCEMU.to_be_bytes();
    let v = vpc.to_be_bytes();
    Ok([c[0], c[1], TYPE_SOURCE_VPC, 1, v[0], v[1], v[2], v[3]])
}

/// The endpoint-ID option for `id`.
pub fn endpoint_id_option(id: u64) -> [u8; ENDPOINT_ID_OPTION_LEN] {
    let mut out = [0u8; ENDPOINT_ID_OPTION_LEN];
    out[0..2].copy_from_slice(&CLASS_AWS.to_be_bytes());
    out[2] = TYPE_ENDPOINT_ID;
    out[3] = 2;
    out[4..].copy_from_slice(&id.to_be_bytes());
    out
}

/// Walk over Geneve options; see the module contract.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Walk `bytes` (an options area).
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = match self.rest {
            &[c0, c1, kind, len, ref after @ ..] => {
                let data_len = (len & OPTION_LEN_MASK) as usize * 4;
                match (after.get(..data_len), after.get(data_len..)) {
                    (Some(data), Some(rest)) => Some((
                        GeneveOption { class: u16::from_be_bytes([c0, c1]), kind, data },
                        rest,
                    )),
                    _ => None,
                }
            }
            _ => None,
        };
        match parsed {
            Some((option, rest)) => {
                self.rest = rest;
                Some(Ok(option))
            }
            None => {
                self.rest = &[];
                Some(Err(Error::Malformed))
            }
        }
    }
}

/// A Geneve header; the option bytes are borrowed as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// O flag.
    pub oam: bool,
    /// C flag.
    pub critical: bool,
    /// Protocol type of the payload.
    pub protocol: EtherType,
    /// VNI, 24 bits.
    pub vni: u32,
    /// The options area: whole options, at most 252 bytes.
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parse; see the module contract.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        let packet = Packet::new_checked(<T as AsRef<[u8]>>::as_ref(packet.buffer))?;
        if packet.version() != 0 {
            return Err(Error::Unsupported);
        }
        let options = clamp(packet.buffer, field::OPTIONS, packet.header_len());
        if Options::new(options).any(|o| o.is_err()) {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            oam: packet.oam(),
            critical: packet.critical(),
            protocol: packet.protocol(),
            vni: packet.vni(),
            options,
        })
    }

    /// Walk the options.
    pub fn options_iter(&self) -> Options<'a> {
        Options::new(self.options)
    }

    /// Length of the header with its options.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Length of the header with its options and `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Write the header and options. [`Error::Overflow`] for a VNI over 24 bits or an
    /// options area that is not a multiple of 4 or over 252 bytes, [`Error::Malformed`]
    /// for option bytes that do not walk, [`Error::Truncated`] for a short buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.vni > VNI_MAX || self.options.len() % 4 != 0 || self.options.len() > MAX_OPTIONS_LEN
        {
            return Err(Error::Overflow);
        }
        if self.options_iter().any(|o| o.is_err()) {
            return Err(Error::Malformed);
        }
        let out = packet.buffer.as_mut().get_mut(..self.header_len()).ok_or(Error::Truncated)?;
        out[field::VER_OPT_LEN] = (self.options.len() / 4) as u8;
        out[field::FLAGS] =
            if self.oam { FLAG_OAM } else { 0 } | if self.critical { FLAG_CRITICAL } else { 0 };
        write_u16(out, field::PROTOCOL.start, self.protocol.0);
        write_u32(out, field::VNI_RSVD.start, self.vni << 8);
        out[field::OPTIONS..].copy_from_slice(self.options);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};
    use crate::{ipv4, udp};

    /// The Geneve header of a captured frame over IPv4/UDP without IP options.
    fn geneve_of(frame: &[u8]) -> &[u8] {
        let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
        let udp = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), PORT);
        &frame
            [14 + ip.header_len() as usize + 8..14 + ip.header_len() as usize + udp.len() as usize]
    }

    // scapy: GENEVE(vni=101,proto=0x0800,options=GeneveOptions(classid=0xfff0,type=1,
    //   length=1,data=b'\x00\x00\x00\x66')) and the IP/ICMP after it.
    const VPC: &str = "0200080000006500fff001010000006645000021000e0000400165b00a00010a0a0100140800b42b0001000168656c6c6f";
    // scapy: GENEVE(vni=101,proto=0x0800,options=GeneveOptions(classid=0xfff0,type=1,
    //   length=1,data=b'\x00\x00\x00\x65')/GeneveOptions(classid=0x0108,type=1,length=2,
    //   data=bytes.fromhex('0a1b2c3d4e5f6a7b'))), header only.
    const VPC_ENDPOINT: &str = "0500080000006500fff0010100000065010801020a1b2c3d4e5f6a7b";

    #[test]
    fn test_parse() {
        let bytes = hex(VPC);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.version(), p.options_len(), p.oam(), p.critical()), (0, 8, false, false));
        assert_eq!((p.protocol(), p.vni()), (EtherType::IPV4, 101));
        let opts: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(opts.len(), 1);
        assert_eq!(opts[0].source_vpc(), Some(0x66));
        assert_eq!(opts[0].endpoint_id(), None);
        assert_eq!(p.payload()[0], 0x45);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr.options, &bytes[8..16]);

        let bytes = hex(VPC_ENDPOINT);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let opts: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(opts[0].source_vpc(), Some(101));
        assert_eq!(opts[1].endpoint_id(), Some(0x0a1b_2c3d_4e5f_6a7b));
        assert!(p.payload().is_empty());
    }

    #[test]
    fn test_parse_captures() {
        // geneve.pcap frame 1: C flag, TEB, VNI 10, one critical option class 0 type 0x80
        // with 4 bytes 0000000c.
        let frames = testdata::packets(testdata::GENEVE);
        let g = Packet::new_checked(geneve_of(&frames[0])).unwrap();
        assert!(g.critical() && !g.oam());
        assert_eq!((g.protocol(), g.vni(), g.options_len()), (EtherType::TEB, 10, 8));
        let opt = g.options_iter().next().unwrap().unwrap();
        assert_eq!((opt.class, opt.kind, opt.data), (0, 0x80, &[0, 0, 0, 0x0c][..]));
        assert!(opt.is_critical());
        // Every frame of the capture parses.
        for f in &frames {
            let g = Packet::new_checked(geneve_of(f)).unwrap();
            Repr::parse(&g).unwrap();
            assert!(g.vni() == 10 || g.vni() == 11);
        }
        // geneve-gcp.pcap: three Google options (class 0x0132) of 8, 20 and 12 bytes.
        let f = &testdata::packets(testdata::GENEVE_GCP)[0];
        let g = Packet::new_checked(geneve_of(f)).unwrap();
        assert_eq!((g.options_len(), g.protocol(), g.vni()), (40, EtherType::IPV4, 0));
        let opts: Vec<_> = g.options_iter().collect::<Result<_>>().unwrap();
        let shape: Vec<_> = opts.iter().map(|o| (o.class, o.kind, o.len())).collect();
        assert_eq!(shape, [(0x0132, 1, 8), (0x0132, 2, 20), (0x0132, 3, 12)]);
        assert_eq!(&opts[2].data[4..], &[0, 0, 0x12, 0x34]);
        assert!(opts.iter().all(|o| o.source_vpc().is_none() && o.endpoint_id().is_none()));
    }

    #[test]
    fn test_emit() {
        let bytes = hex(VPC_ENDPOINT);
        let mut options = [0u8; 20];
        options[..8].copy_from_slice(&source_vpc_option(101).unwrap());
        options[8..].copy_from_slice(&endpoint_id_option(0x0a1b_2c3d_4e5f_6a7b));
        let repr = Repr {
            oam: false,
            critical: false,
            protocol: EtherType::IPV4,
            vni: 101,
            options: &options,
        };
        let mut out = [0xAAu8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &bytes[..]);
        assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(), repr);

        let mut opt = [0u8; 8];
        let o = GeneveOption { class: CLASS_VPCEMU, kind: TYPE_SOURCE_VPC, data: &[0, 0, 0, 0x66] };
        assert_eq!(o.emit(&mut opt), Ok(8));
        assert_eq!(&opt, &source_vpc_option(0x66).unwrap());
        assert_eq!(GeneveOption { data: &[1, 2, 3], ..o }.emit(&mut opt), Err(Error::Overflow));
        assert_eq!(o.emit(&mut opt[..7]), Err(Error::Truncated));
        assert_eq!(source_vpc_option(1 << 24), Err(Error::Overflow));

        let big = Repr { vni: 1 << 24, ..repr };
        assert_eq!(big.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Overflow));
        let odd = Repr { options: &options[..6], ..repr };
        assert_eq!(odd.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Overflow));
        let bad = Repr { options: &[0, 0, 0, 5], ..repr };
        assert_eq!(bad.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Malformed));
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut out[..27])), Err(Error::Truncated));

        let mut p = Packet::new_unchecked(&mut out[..]);
        p.set_oam(true);
        p.set_critical(true);
        p.set_vni(0xABCDEF);
        p.set_protocol(EtherType::TEB);
        assert!(p.oam() && p.critical());
        assert_eq!((p.vni(), p.protocol()), (0xABCDEF, EtherType::TEB));
        p.set_options_len(8);
        p.set_version(1);
        assert_eq!((p.options_len(), p.version()), (8, 1));
        assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()), Err(Error::Unsupported));
    }

    #[test]
    fn test_option_walk_never_panics() {
        fn walk(b: &[u8]) -> Vec<Result<GeneveOption<'_>>> {
            Options::new(b).collect()
        }
        assert!(walk(&[]).is_empty());
        assert_eq!(walk(&[0xff, 0xf0, 1]), vec![Err(Error::Malformed)]);
        assert_eq!(walk(&[0xff, 0xf0, 1, 2, 0, 0, 0, 0]), vec![Err(Error::Malformed)]);
        // Reserved bits of the length byte are not length.
        assert_eq!(walk(&[0, 1, 2, 0xE0]), vec![Ok(GeneveOption { class: 1, kind: 2, data: &[] })]);
        let two = walk(&[0, 1, 2, 0, 0, 3, 4, 1, 9, 9, 9, 9, 0]);
        assert_eq!(two.len(), 3);
        assert_eq!(two[2], Err(Error::Malformed));
        // Every byte string up to 3 bytes long and every length byte: no panic.
        for len_byte in 0..=255u8 {
            for n in 0..12 {
                let mut b = vec![0u8; n];
                if n > 3 {
                    b[3] = len_byte;
                }
                let _ = walk(&b);
            }
        }
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(VPC);
        for len in 0..16 {
            assert_eq!(Packet::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        assert!(Packet::new_checked(&bytes[..16]).is_ok());
        let mut b = bytes.clone();
        b[0] = 0x3f; // 252 bytes of options announced
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
    }
}
