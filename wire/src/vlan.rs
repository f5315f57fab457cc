//! IEEE 802.1Q VLAN tags (TPID 0x8100) and 802.1ad stacking (S-tag 0x88a8, "Q-in-Q").
//!
//! A tag is the 4 bytes after a TPID: the TCI (PCP, DEI, VID) and the EtherType of what
//! follows. [`Packet`] views one tag and its payload, that is the payload of an Ethernet
//! header (or outer tag) whose EtherType is a TPID. [`walk`] follows a whole stack from
//! the start of an Ethernet frame.
//!
//! Contract: [`Packet::new_checked`] accepts any buffer of at least [`HEADER_LEN`] bytes,
//! after which no accessor panics. [`Repr::parse`] refuses VID 4095 (reserved by 802.1Q).
//! [`walk`] accepts at most [`MAX_DEPTH`] tags, an S-tag only as the outermost one, and
//! never panics.

use crate::ethernet::{self, EtherType};
use crate::{Error, Result};

/// Priority code point bits of the TCI.
pub const PCP_MASK: u16 = 0xE000;
/// Shift of the priority code point.
pub const PCP_SHIFT: u32 = 13;
/// Drop eligible indicator bit of the TCI.
pub const DEI_MASK: u16 = 0x1000;
/// VLAN identifier bits of the TCI.
pub const VID_MASK: u16 = 0x0FFF;
/// The reserved VID that must not be sent.
pub const VID_RESERVED: u16 = 0x0FFF;

/// Length of one tag (after its TPID).
pub const HEADER_LEN: usize = 4;

/// Most tags [`walk`] follows: an 802.1ad S-tag and an 802.1Q C-tag.
pub const MAX_DEPTH: usize = 2;

fields! { Packet {
    /// The whole tag control information.
    tci, /** Set the whole TCI. */ set_tci: u16 at 0;
    /// Priority code point (0..=7).
    pcp, /** Set the priority code point (the low 3 bits of `value`). */
        set_pcp: u8 in u16 at 0, bits PCP_MASK >> PCP_SHIFT;
    /// Drop eligible indicator.
    dei, /** Set the drop eligible indicator. */ set_dei: bool in u16 at 0, flag DEI_MASK;
    /// VLAN identifier (0..=4095).
    vid, /** Set the VLAN identifier (the low 12 bits of `value`). */
        set_vid: u16 in u16 at 0, bits VID_MASK;
    /// EtherType of what follows the tag.
    ethertype, /** Set the EtherType of what follows. */ set_ethertype: EtherType at 2;
    /// What follows the tag.
    payload, /** What follows the tag, writable. */ payload_mut: bytes at HEADER_LEN;
}}

view! {
    /// A view of one VLAN tag and what follows it.
    pub struct Packet;
    /// [`Error::Truncated`] when the buffer cannot hold a tag.
    check_len(HEADER_LEN);
}

/// One VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4094 (0: priority tag only).
    pub vid: u16,
    /// EtherType of what follows the tag.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parse a tag; VID 4095 is [`Error::Malformed`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        let vid = packet.vid();
        if vid == VID_RESERVED {
            return Err(Error::Malformed);
        }
        Ok(Repr { pcp: packet.pcp(), dei: packet.dei(), vid, ethertype: packet.ethertype() })
    }

    /// Length of a tag.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a tag and `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Write the tag; [`Error::Overflow`] for a PCP over 7 or a VID over 4094.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.pcp > 7 || self.vid >= VID_RESERVED {
            return Err(Error::Overflow);
        }
        packet.check_len()?;
        let tci = ((self.pcp as u16) << PCP_SHIFT) | if self.dei { DEI_MASK } else { 0 } | self.vid;
        packet.set_tci(tci);
        packet.set_ethertype(self.ethertype);
        Ok(())
    }
}

/// One tag of a stack, with the TPID that introduced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// [`EtherType::QINQ`] or [`EtherType::VLAN`].
    pub tpid: EtherType,
    /// Priority code point.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier.
    pub vid: u16,
}

/// The VLAN tags of a frame, outermost first, and where the payload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stack {
    tags: [Tag; MAX_DEPTH],
    depth: usize,
    /// EtherType of the payload after the last tag (the frame's own when untagged).
    pub ethertype: EtherType,
    /// Offset of that payload from the start of the frame.
    pub payload_offset: usize,
}

impl Stack {
    /// The tags, outermost first (empty for an untagged frame).
    pub fn tags(&self) -> &[Tag] {
        self.tags.get(..self.depth).unwrap_or(&[])
    }

    /// The outermost tag (the S-tag of a Q-in-Q frame).
    pub fn outer(&self) -> Option<&Tag> {
        self.tags().first()
    }

    /// The innermost tag (the C-tag of a Q-in-Q frame; for one tag, that tag).
    pub fn inner(&self) -> Option<&Tag> {
        self.tags().last()
    }
}

/// Follow the VLAN tags of an Ethernet frame from its first byte.
///
/// [`Error::Truncated`] when a header or tag is cut; [`Error::Malformed`] for an 802.1ad
/// S-tag inside another tag or a reserved VID; [`Error::Unsupported`] beyond
/// [`MAX_DEPTH`] tags.
pub fn walk(frame: &[u8]) -> Result<Stack> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let blank = Tag { tpid: EtherType(0), pcp: 0, dei: false, vid: 0 };
    let mut stack = Stack {
        tags: [blank; MAX_DEPTH],
        depth: 0,
        ethertype: eth.ethertype(),
        payload_offset: ethernet::HEADER_LEN,
    };
    while stack.ethertype.is_vlan_tag() {
        let tpid = stack.ethertype;
        if stack.depth > 0 && tpid == EtherType::QINQ {
            return Err(Error::Malformed);
        }
        let slot = stack.tags.get_mut(stack.depth).ok_or(Error::Unsupported)?;
        let rest = frame.get(stack.payload_offset..).ok_or(Error::Truncated)?;
        let tag = Repr::parse(&Packet::new_checked(rest)?)?;
        *slot = Tag { tpid, pcp: tag.pcp, dei: tag.dei, vid: tag.vid };
        stack.depth += 1;
        stack.ethertype = tag.ethertype;
        stack.payload_offset += HEADER_LEN;
    }
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, hex};

    // scapy: Ether(src='02:00:00:00:00:01',dst='02:dc:00:00:00:01')/Dot1Q(prio=5,id=0,vlan=101)
    //   /IP(src='10.1.0.5',dst='192.168.1.1',id=12)/UDP(sport=1234,dport=5678)/Raw(b'dx')
    const DOT1Q: &str = "02dc000000010200000000018100a06508004500001e000c00004011af140a010005c0a8010104d2162e000ab4b26478";

    #[test]
    fn test_parse() {
        let bytes = hex(DOT1Q);
        let frame = ethernet::Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::VLAN);
        let tag = Packet::new_checked(frame.payload()).unwrap();
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (5, false, 101));
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(tag.payload().len(), 30);
        assert_eq!(
            Repr::parse(&tag).unwrap(),
            Repr { pcp: 5, dei: false, vid: 101, ethertype: EtherType::IPV4 }
        );
    }

    #[test]
    fn test_walk_qinq_capture() {
        // 802.1ad_QinQ.pcap: S-tag VID 200, then C-tag VID 2001 (PCP 0), then ARP.
        for frame in testdata::packets(testdata::QINQ) {
            let stack = walk(&frame).unwrap();
            assert_eq!(stack.tags().len(), 2);
            let (outer, inner) = (stack.outer().unwrap(), stack.inner().unwrap());
            assert_eq!((outer.tpid, outer.vid), (EtherType::QINQ, 200));
            assert_eq!((inner.tpid, inner.vid), (EtherType::VLAN, 2001));
            assert_eq!(stack.ethertype, EtherType::ARP);
            assert_eq!(stack.payload_offset, 22);
        }
    }

    #[test]
    fn test_walk_single_and_untagged() {
        let bytes = hex(DOT1Q);
        let stack = walk(&bytes).unwrap();
        assert_eq!(stack.tags().len(), 1);
        assert_eq!(stack.inner().unwrap().vid, 101);
        assert_eq!(stack.payload_offset, 18);
        let untagged = &testdata::packets(testdata::GENEVE)[0];
        let stack = walk(untagged).unwrap();
        assert!(stack.tags().is_empty() && stack.outer().is_none());
        assert_eq!((stack.ethertype, stack.payload_offset), (EtherType::IPV4, 14));
    }

    #[test]
    fn test_walk_rejects() {
        let qinq = testdata::packets(testdata::QINQ).remove(0);
        // S-tag inside a C-tag.
        let mut bad = qinq.clone();
        bad[12..14].copy_from_slice(&[0x81, 0x00]);
        bad[16..18].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(walk(&bad), Err(Error::Malformed));
        // Three tags.
        let mut deep = qinq.clone();
        deep[20..22].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(walk(&deep), Err(Error::Unsupported));
        // Reserved VID.
        let mut reserved = qinq.clone();
        reserved[18..20].copy_from_slice(&[0x0f, 0xff]);
        assert_eq!(walk(&reserved), Err(Error::Malformed));
        for len in 0..22 {
            assert_eq!(walk(&qinq[..len]), Err(Error::Truncated), "len {len}");
        }
    }

    #[test]
    fn test_emit() {
        let bytes = hex(DOT1Q);
        let repr = Repr { pcp: 5, dei: false, vid: 101, ethertype: EtherType::IPV4 };
        let mut out = [0u8; 4];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &bytes[14..18]);
        let mut p = Packet::new_unchecked(&mut out[..]);
        p.set_dei(true);
        p.set_pcp(1);
        p.set_vid(4094);
        assert_eq!((p.pcp(), p.dei(), p.vid()), (1, true, 4094));
        let bad = Repr { vid: 4095, ..repr };
        assert_eq!(bad.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Overflow));
        let bad = Repr { pcp: 8, ..repr };
        assert_eq!(bad.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error::Overflow));
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut out[..3])), Err(Error::Truncated));
    }

    #[test]
    fn test_impossible_len() {
        let bytes = hex(DOT1Q);
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&bytes[14..14 + len]).err(), Some(Error::Truncated));
        }
    }
}
