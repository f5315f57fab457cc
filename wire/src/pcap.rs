//! A tiny reader and writer of classic pcap files (not pcapng), for tests, fuzz corpora
//! and benchmarks.
//!
//! Contract: both byte orders and both timestamp resolutions (microseconds, magic
//! `a1b2c3d4`; nanoseconds, magic `a1b23c4d`) are read. [`Reader::new`] refuses
//! ([`Error::Unsupported`]) anything else and ([`Error::Truncated`]) a file shorter than
//! its 24-byte header. The iterator yields each record's captured bytes; a record header
//! or body cut short yields one [`Error::Truncated`] and ends the walk. Nothing panics.
//!
//! [`Writer`] (and [`write_file`]) write one kind of file: little-endian, microsecond
//! timestamps, snapshot length [`SNAPLEN`], link type Ethernet, each frame whole (its
//! captured and original lengths equal). A frame longer than a record can say
//! (`u32::MAX` bytes) is an [`io::ErrorKind::InvalidInput`] error, and nothing of it is
//! written.

use std::io::{self, Write};
use std::path::Path;

use crate::{Error, Result};

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Magic number of a file with microsecond timestamps (written in the file's byte order).
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Snapshot length of the files [`Writer`] writes.
pub const SNAPLEN: u32 = 65535;

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

/// The file header [`Writer`] writes: little-endian, version 2.4, microsecond timestamps,
/// snapshot length [`SNAPLEN`], link type Ethernet.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // Bytes 8..16: time zone offset and timestamp accuracy, both 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// The header of a record holding a whole frame of `frame_len` bytes, stamped `ts_sec`
/// seconds and `ts_usec` microseconds; [`io::ErrorKind::InvalidInput`] when `frame_len`
/// does not fit the 32-bit length fields.
pub fn record_header(ts_sec: u32, ts_usec: u32, frame_len: usize) -> io::Result<[u8; 16]> {
    let len = u32::try_from(frame_len).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "frame too long for a pcap record")
    })?;
    let mut h = [0u8; RECORD_HEADER_LEN];
    for (at, v) in [(0, ts_sec), (4, ts_usec), (8, len), (12, len)] {
        h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    Ok(h)
}

/// Writes a classic pcap file to any [`Write`]: the file header when made, then one record
/// a frame. It does not buffer: wrap a file in a [`io::BufWriter`] for many frames, or
/// write to a FIFO directly to hand over each record as it is written.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    frames: u32,
}

impl<W: Write> Writer<W> {
    /// Write the file header to `out`.
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        out.write_all(&file_header())?;
        Ok(Writer { out, frames: 0 })
    }

    /// Append `frame`, stamped with its index in the file in seconds (0, 1, 2, ...).
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        self.write_at(self.frames, 0, frame)
    }

    /// Append `frame`, stamped `ts_sec` seconds and `ts_usec` microseconds.
    pub fn write_at(&mut self, ts_sec: u32, ts_usec: u32, frame: &[u8]) -> io::Result<()> {
        let header = record_header(ts_sec, ts_usec, frame.len())?;
        self.out.write_all(&header)?;
        self.out.write_all(frame)?;
        self.frames = self.frames.wrapping_add(1);
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Write `frames` to a new file at `path` (replacing one that is there), each stamped
/// with its index in seconds.
pub fn write_file<F: AsRef<[u8]>>(
    path: impl AsRef<Path>,
    frames: impl IntoIterator<Item = F>,
) -> io::Result<()> {
    let mut w = Writer::new(io::BufWriter::new(std::fs::File::create(path)?))?;
    for frame in frames {
        w.write(frame.as_ref())?;
    }
    w.flush()
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

    fn frames() -> Vec<Vec<u8>> {
        let mut jumbo = vec![0u8; 9018];
        jumbo.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        vec![testdata::packets(testdata::GENEVE)[0].clone(), Vec::new(), jumbo, vec![0xff; 60]]
    }

    #[test]
    fn test_writer_round_trip() {
        let frames = frames();
        let mut w = Writer::new(Vec::new()).unwrap();
        for f in &frames {
            w.write(f).unwrap();
        }
        w.write_at(1_700_000_000, 999_999, b"late").unwrap();
        assert_eq!(w.frames(), 5);
        let file = w.into_inner();
        assert_eq!(
            file.len(),
            FILE_HEADER_LEN + 5 * RECORD_HEADER_LEN + 9018 + 60 + 4 + frames[0].len()
        );
        let r = Reader::new(&file).unwrap();
        assert_eq!((r.linktype(), r.snaplen(), r.nanos()), (LINKTYPE_ETHERNET, SNAPLEN, false));
        let recs: Vec<_> = r.collect::<Result<_>>().unwrap();
        assert_eq!(recs.len(), 5);
        for (i, (rec, f)) in recs.iter().zip(&frames).enumerate() {
            assert_eq!(rec.data, &f[..]);
            assert_eq!((rec.ts_sec, rec.ts_frac, rec.orig_len), (i as u32, 0, f.len() as u32));
        }
        assert_eq!(
            (recs[4].ts_sec, recs[4].ts_frac, recs[4].data),
            (1_700_000_000, 999_999, &b"late"[..])
        );
    }

    #[test]
    fn test_writer_bytes() {
        // The header every copy of this writer in the tests wrote before it moved here.
        let mut expect = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            expect.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(file_header().to_vec(), expect);
        assert_eq!(
            record_header(3, 4, 5).unwrap(),
            [3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0]
        );
        let too_long = record_header(0, 0, u32::MAX as usize + 1).unwrap_err();
        assert_eq!(too_long.kind(), io::ErrorKind::InvalidInput);
    }

    fn temp_file(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("wire-pcap-{}-{name}.pcap", std::process::id()))
    }

    #[test]
    fn test_write_file() {
        let path = temp_file("write-file");
        write_file(&path, frames()).unwrap();
        let file = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let got: Vec<Vec<u8>> =
            Reader::new(&file).unwrap().map(|r| r.unwrap().data.to_vec()).collect();
        assert_eq!(got, frames());
        let missing = std::env::temp_dir().join("wire-pcap-no-such-dir").join("x.pcap");
        assert!(write_file(&missing, [[0u8; 14]]).is_err());
    }

    /// tshark's own reader takes the file: every frame, its length, and the Geneve frame
    /// dissected. Skipped (with a line saying so) where tshark is not installed.
    #[test]
    fn test_write_file_tshark_reads() {
        let tshark = std::process::Command::new("tshark").arg("--version").output();
        if !tshark.is_ok_and(|o| o.status.success()) {
            println!("SKIP: tshark is not installed (apt-get install -y tshark)");
            return;
        }
        let path = temp_file("tshark");
        let frames = frames();
        write_file(&path, &frames).unwrap();
        let out = std::process::Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.len", "-e", "frame.protocols"])
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), frames.len(), "{text}");
        for (row, f) in rows.iter().zip(&frames) {
            assert_eq!(row[0], f.len().to_string(), "{text}");
        }
        assert!(rows[0][1].contains("geneve"), "{text}");
    }
}
