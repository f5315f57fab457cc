//! A tiny reader of classic pcap files (not pcapng), for tests, fuzz corpora and
//! benchmarks.
//!
//! Contract: both byte orders and both timestamp resolutions (microseconds, magic
//! `a1b2c3d4`; nanoseconds, magic `a1b23c4d`) are read. [`Reader::new`] refuses
//! ([`Error::Unsupported`]) anything else and ([`Error::Truncated`]) a file shorter than
//! its 24-byte header. The iterator yields each record's captured bytes; a record header
//! or body cut short yields one [`Error::Truncated`] and ends the walk. Nothing panics.

use crate::{Error, Result};

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// One captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Seconds of the timestamp.
    pub ts_sec: u32,
    /// Fraction of the timestamp, in microseconds or nanoseconds ([`Reader::nanos`]).
    pub ts_frac: u32,
    /// Length of the packet on the wire (may exceed `data.len()`).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Reads the records of a pcap file held in memory.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
    big_endian: bool,
    nanos: bool,
    linktype: u32,
    snaplen: u32,
}

impl<'a> Reader<'a> {
    /// Read the file header of `file`.
    pub fn new(file: &'a [u8]) -> Result<Reader<'a>> {
        let header = file.get(..FILE_HEADER_LEN).ok_or(Error::Truncated)?;
        let magic = [header[0], header[1], header[2], header[3]];
        let (big_endian, nanos) = match magic {
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            _ => return Err(Error::Unsupported),
        };
        let mut reader = Reader { rest: &[], big_endian, nanos, linktype: 0, snaplen: 0 };
        reader.snaplen = reader.u32_at(header, 16);
        reader.linktype = reader.u32_at(header, 20);
        reader.rest = file.get(FILE_HEADER_LEN..).unwrap_or(&[]);
        Ok(reader)
    }

    fn u32_at(&self, bytes: &[u8], at: usize) -> u32 {
        let b = match bytes.get(at..at + 4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => [0; 4],
        };
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Link type of the capture ([`LINKTYPE_ETHERNET`] for Ethernet).
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Snapshot length the capture was made with.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// True when timestamps are in nanoseconds.
    pub fn nanos(&self) -> bool {
        self.nanos
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = self.rest.get(..RECORD_HEADER_LEN).and_then(|h| {
            let incl_len = self.u32_at(h, 8) as usize;
            let body =
                self.rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN.checked_add(incl_len)?)?;
            let record = Record {
                ts_sec: self.u32_at(h, 0),
                ts_frac: self.u32_at(h, 4),
                orig_len: self.u32_at(h, 12),
                data: body,
            };
            Some((record, RECORD_HEADER_LEN + incl_len))
        });
        match parsed {
            Some((record, used)) => {
                self.rest = self.rest.get(used..).unwrap_or(&[]);
                Some(Ok(record))
            }
            None => {
                self.rest = &[];
                Some(Err(Error::Truncated))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn file(big_endian: bool, nanos: bool, records: &[&[u8]]) -> Vec<u8> {
        let w32 = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        f.extend_from_slice(&w16(2));
        f.extend_from_slice(&w16(4));
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&w32(65535));
        f.extend_from_slice(&w32(1));
        for (i, r) in records.iter().enumerate() {
            f.extend_from_slice(&w32(i as u32));
            f.extend_from_slice(&w32(7));
            f.extend_from_slice(&w32(r.len() as u32));
            f.extend_from_slice(&w32(r.len() as u32 + 1));
            f.extend_from_slice(r);
        }
        f
    }

    #[test]
    fn test_parse() {
        for big in [false, true] {
            for nanos in [false, true] {
                let f = file(big, nanos, &[b"abc", b"", b"defg"]);
                let r = Reader::new(&f).unwrap();
                assert_eq!(
                    (r.linktype(), r.snaplen(), r.nanos()),
                    (LINKTYPE_ETHERNET, 65535, nanos)
                );
                let recs: Vec<_> = r.collect::<Result<_>>().unwrap();
                assert_eq!(recs.len(), 3);
                assert_eq!((recs[2].ts_sec, recs[2].ts_frac, recs[2].orig_len), (2, 7, 5));
                assert_eq!(recs[2].data, b"defg");
            }
        }
    }

    #[test]
    fn test_captures() {
        assert_eq!(testdata::packets(testdata::GENEVE).len(), 39);
        assert_eq!(testdata::packets(testdata::QINQ).len(), 2);
        assert_eq!(testdata::packets(testdata::ARP_OOBR).len(), 2282);
    }

    #[test]
    fn test_impossible_len() {
        let f = file(false, false, &[b"abcdef"]);
        for len in 0..FILE_HEADER_LEN {
            assert_eq!(Reader::new(&f[..len]).err(), Some(Error::Truncated));
        }
        for len in FILE_HEADER_LEN + 1..f.len() {
            let recs: Vec<_> = Reader::new(&f[..len]).unwrap().collect();
            assert_eq!(recs, vec![Err(Error::Truncated)], "{len}");
        }
        let mut bad = f.clone();
        bad[0] = 0;
        assert_eq!(Reader::new(&bad).err(), Some(Error::Unsupported));
        let mut huge = f.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Reader::new(&huge).unwrap().collect::<Vec<_>>(), vec![Err(Error::Truncated)]);
    }
}
