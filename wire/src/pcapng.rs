//! pcapng (draft-ietf-opsawg-pcapng) blocks for writing captures with interfaces and
//! packet comments: a Section Header Block, an Interface Description Block per
//! interface, an Enhanced Packet Block per packet. Little-endian (the byte-order magic
//! says so to readers), timestamps in microseconds (the default `if_tsresol`), link type
//! Ethernet or raw IP per interface.
//!
//! Each `emit_*` appends one whole block to a `Vec<u8>`: type, total length, body, options
//! (each padded to 4 bytes, ended by `opt_endofopt`), total length again. A value that
//! does not fit its field (an option over 65535 bytes, a packet over 4 GiB) is
//! [`Error::Overflow`] and nothing is appended. [`blocks`] splits
//! a little-endian file back into `(type, body)` pairs, for tests and tools.

use crate::{Error, Result};

// Block types, the byte-order magic, the link type.
#[doc = "Block type of the Section Header Block."] pub const SHB: u32 = 0x0A0D_0D0A;
#[doc = "Block type of the Interface Description Block."] pub const IDB: u32 = 0x0000_0001;
#[doc = "Block type of the Enhanced Packet Block."] pub const EPB: u32 = 0x0000_0006;
#[doc = "The byte-order magic."] pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
#[doc = "LINKTYPE_ETHERNET."] pub const LINKTYPE_ETHERNET: u16 = 1;
#[doc = "LINKTYPE_RAW: a bare IPv4 or IPv6 packet."] pub const LINKTYPE_RAW: u16 = 101;

/// Option codes: `END` (end of options), `COMMENT` (`opt_comment`, UTF-8, any block),
/// `SHB_USERAPPL` (the application that wrote the section), `IF_NAME` (the interface's
/// name).
#[allow(missing_docs)]
pub mod opt {
    pub const END: u16 = 0;
    pub const COMMENT: u16 = 1;
    pub const SHB_USERAPPL: u16 = 4;
    pub const IF_NAME: u16 = 2;
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Options as `(code, value)`; empty values are skipped.
fn options_len(options: &[(u16, &[u8])]) -> Result<usize> {
    let mut n = 0;
    for (_, v) in options.iter().filter(|(_, v)| !v.is_empty()) {
        if v.len() > usize::from(u16::MAX) {
            return Err(Error::Overflow);
        }
        n += 4 + v.len() + pad4(v.len());
    }
    Ok(if n == 0 { 0 } else { n + 4 })
}

fn put_options(out: &mut Vec<u8>, options: &[(u16, &[u8])]) {
    let mut any = false;
    for (code, v) in options.iter().filter(|(_, v)| !v.is_empty()) {
        any = true;
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v);
        out.extend_from_slice(&[0; 3][..pad4(v.len())]);
    }
    if any {
        out.extend_from_slice(&[0; 4]);
    }
}

/// Append a block of `block_type` with the fixed `body` (a multiple of 4 bytes, or
/// padded), `data` padded to 4, then `options`.
fn block(out: &mut Vec<u8>, block_type: u32, body: &[u8], data: &[u8], options: &[(u16, &[u8])]) -> Result<()> {
    let len = 12 + body.len() + data.len() + pad4(data.len()) + options_len(options)?;
    let len32 = u32::try_from(len).map_err(|_| Error::Overflow)?;
    out.reserve(len);
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&len32.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0; 3][..pad4(data.len())]);
    put_options(out, options);
    out.extend_from_slice(&len32.to_le_bytes());
    Ok(())
}

/// A Section Header Block (version 1.0, section length unknown) naming `application`.
pub fn emit_section_header(out: &mut Vec<u8>, application: &str) -> Result<()> {
    let mut body = [0u8; 16];
    body[0..4].copy_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body[4..6].copy_from_slice(&1u16.to_le_bytes());
    body[6..8].copy_from_slice(&0u16.to_le_bytes());
    body[8..16].copy_from_slice(&(-1i64).to_le_bytes());
    block(out, SHB, &body, &[], &[(opt::SHB_USERAPPL, application.as_bytes())])
}

/// An Interface Description Block for an interface named `name` of link type `linktype`
/// ([`LINKTYPE_ETHERNET`], [`LINKTYPE_RAW`]), keeping up to `snaplen` bytes of a packet.
/// Interfaces are numbered from 0 in the order of their blocks.
pub fn emit_interface(out: &mut Vec<u8>, name: &str, linktype: u16, snaplen: u32) -> Result<()> {
    let mut body = [0u8; 8];
    body[0..2].copy_from_slice(&linktype.to_le_bytes());
    body[4..8].copy_from_slice(&snaplen.to_le_bytes());
    block(out, IDB, &body, &[], &[(opt::IF_NAME, name.as_bytes())])
}

/// An Enhanced Packet Block: `data` (the captured bytes) of a packet of `original_len`
/// bytes, seen on interface `interface` at `ts_us` microseconds since the Unix epoch, with
/// an optional comment.
pub fn emit_packet(
    out: &mut Vec<u8>,
    interface: u32,
    ts_us: u64,
    data: &[u8],
    original_len: u32,
    comment: Option<&str>,
) -> Result<()> {
    let caplen = u32::try_from(data.len()).map_err(|_| Error::Overflow)?;
    let mut body = [0u8; 20];
    body[0..4].copy_from_slice(&interface.to_le_bytes());
    body[4..8].copy_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
    body[8..12].copy_from_slice(&(ts_us as u32).to_le_bytes());
    body[12..16].copy_from_slice(&caplen.to_le_bytes());
    body[16..20].copy_from_slice(&original_len.max(caplen).to_le_bytes());
    block(out, EPB, &body, data, &[(opt::COMMENT, comment.unwrap_or("").as_bytes())])
}

/// Split a little-endian pcapng file into `(block type, body)` pairs (the body is what
/// lies between the two length fields). A length that is not a multiple of 4, shorter
/// than a block or past the end, or whose two copies differ, is [`Error::Malformed`].
pub fn blocks(file: &[u8]) -> Result<Vec<(u32, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = file;
    while !rest.is_empty() {
        let word = |b: &[u8], at: usize| -> Result<u32> {
            let w = b.get(at..at + 4).ok_or(Error::Truncated)?;
            Ok(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        };
        let block_type = word(rest, 0)?;
        let len = word(rest, 4)? as usize;
        if len < 12 || len % 4 != 0 || len > rest.len() || word(rest, len - 4)? as usize != len {
            return Err(Error::Malformed);
        }
        out.push((block_type, &rest[8..len - 4]));
        rest = &rest[len..];
    }
    Ok(out)
}

/// The options of a block whose fixed part is `fixed` bytes and whose packet data (EPB
/// only) is `data_len` bytes, as `(code, value)` pairs.
pub fn options(body: &[u8], fixed: usize, data_len: usize) -> Result<Vec<(u16, &[u8])>> {
    let mut at = fixed + data_len + pad4(data_len);
    let mut out = Vec::new();
    while at + 4 <= body.len() {
        let code = u16::from_le_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_le_bytes([body[at + 2], body[at + 3]]));
        if code == opt::END {
            break;
        }
        let v = body.get(at + 4..at + 4 + len).ok_or(Error::Truncated)?;
        out.push((code, v));
        at += 4 + len + pad4(len);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_emit_interface() {
        let mut out = Vec::new();
        emit_interface(&mut out, "eth0", LINKTYPE_ETHERNET, 9216).unwrap();
        #[rustfmt::skip]
        let want: [u8; 32] = [
            1, 0, 0, 0, 32, 0, 0, 0,        // IDB, 32 bytes
            1, 0, 0, 0, 0x00, 0x24, 0, 0,   // Ethernet, reserved, snaplen 9216
            2, 0, 4, 0, b'e', b't', b'h', b'0', // if_name "eth0"
            0, 0, 0, 0,                     // end of options
            32, 0, 0, 0,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn test_emit_packet_pads_and_comments() {
        let mut out = Vec::new();
        emit_packet(&mut out, 2, (7u64 << 32) | 9, &[0xaa; 5], 60, Some("reason=x")).unwrap();
        assert_eq!(out.len() % 4, 0);
        let b = blocks(&out).unwrap();
        assert_eq!(b.len(), 1);
        let (t, body) = b[0];
        assert_eq!(t, EPB);
        assert_eq!(&body[0..4], &2u32.to_le_bytes());
        assert_eq!(&body[4..8], &7u32.to_le_bytes());
        assert_eq!(&body[8..12], &9u32.to_le_bytes());
        assert_eq!(&body[12..16], &5u32.to_le_bytes());
        assert_eq!(&body[16..20], &60u32.to_le_bytes());
        assert_eq!(&body[20..25], &[0xaa; 5]);
        assert_eq!(&body[25..28], &[0; 3]);
        assert_eq!(options(body, 20, 5).unwrap(), [(opt::COMMENT, &b"reason=x"[..])]);
        // No comment: no options at all.
        let mut bare = Vec::new();
        emit_packet(&mut bare, 0, 0, &[1, 2, 3, 4], 4, None).unwrap();
        assert_eq!(bare.len(), 12 + 20 + 4);
    }

    #[test]
    fn test_section_then_blocks_round_trip() {
        let mut out = Vec::new();
        emit_section_header(&mut out, "vpcemu").unwrap();
        emit_interface(&mut out, "red-1", LINKTYPE_RAW, 65535).unwrap();
        emit_packet(&mut out, 0, 1, &[1; 64], 64, Some("c")).unwrap();
        let b = blocks(&out).unwrap();
        assert_eq!(b.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [SHB, IDB, EPB]);
        assert_eq!(&b[0].1[0..4], &BYTE_ORDER_MAGIC.to_le_bytes());
        assert_eq!(options(b[0].1, 16, 0).unwrap(), [(opt::SHB_USERAPPL, &b"vpcemu"[..])]);
        assert_eq!(options(b[1].1, 8, 0).unwrap(), [(opt::IF_NAME, &b"red-1"[..])]);
        assert_eq!(&b[1].1[0..2], &LINKTYPE_RAW.to_le_bytes());
    }

    #[test]
    fn test_impossible_len() {
        let mut out = Vec::new();
        emit_interface(&mut out, "x", LINKTYPE_ETHERNET, 1).unwrap();
        let mut bad = out.clone();
        bad[4] = 30; // not a multiple of 4
        assert_eq!(blocks(&bad), Err(Error::Malformed));
        let mut bad = out.clone();
        bad[4] = 64; // past the end
        assert_eq!(blocks(&bad), Err(Error::Malformed));
        assert_eq!(blocks(&out[..6]), Err(Error::Truncated));
        let long = "x".repeat(70_000);
        let mut none = Vec::new();
        assert_eq!(emit_interface(&mut none, &long, LINKTYPE_ETHERNET, 1), Err(Error::Overflow));
        assert!(none.is_empty());
    }
}
