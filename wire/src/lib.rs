//! Packet formats for vpcemu: zero-copy typed views over any buffer, owned `Repr`s
//! with parse/emit, checksums, and the buffer trait that stages run over.
//!
//! No DPDK here, and `unsafe_code` is forbidden: the root crate implements [`PacketBuf`] for the
//! DPDK mbuf, [`TestBuffer`] implements it for tests and benchmarks.
//!
//! # Shape of every protocol module
//!
//! One protocol per file, in the manner of smoltcp's `wire`:
//!
//! * a view `Packet<T: AsRef<[u8]>>` (or `Frame` for Ethernet) over borrowed or owned
//!   bytes. [`new_unchecked`](ipv4::Packet::new_unchecked) wraps without looking;
//!   `new_checked` runs `check_len` once, and **after `check_len` succeeds no accessor
//!   panics**. Getters need `AsRef<[u8]>`, `set_*` need `AsMut<[u8]>`. Accessors whose
//!   range depends on a field the caller may rewrite later (payloads, options) clamp to the
//!   buffer instead of panicking, so even a view mutated after the check stays panic-free.
//!   A view built with `new_unchecked` over a buffer shorter than the fixed header may
//!   panic on access: that is the caller's broken promise, and the reason `new_checked`
//!   exists.
//! * the view struct and its constructors declared by the crate's `view!` macro, and its
//!   fixed-offset getters and setters by `fields!` (one line a field: names, type,
//!   offset, or the mask of a bit field); accessors that compute are written out;
//! * a field's offset stands in its `fields!` line when only its accessors use it;
//!   offsets that hand-written code needs too are in a private `mod field` as byte
//!   ranges; bit fields are `*_MASK` / `*_SHIFT` constants;
//! * an owned `Repr` with `parse` (validates everything a receiver must) and `emit`
//!   (returns [`Error::Truncated`] for a buffer shorter than `buffer_len()` and
//!   [`Error::Overflow`] for a value that does not fit its field), and
//!   `header_len`/`buffer_len`.
//!
//! The hot path ([`vpc::emit_outer`], [`vpc::parse_outer`]) is straight-line code on fixed
//! offsets; control code and tests use the `Repr`s.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

use core::fmt;

#[macro_use]
mod macros;

pub mod arp;
pub mod buf;
pub mod card;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod geneve;
pub mod icmpv4;
pub mod ipv4;
pub mod pcap;
pub mod pcapng;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vpc;

pub use buf::{BufError, PacketBuf, TestBuffer};
pub use card::{CardId, EdgeId, HostId};
pub use ethernet::{EtherType, EthernetAddress};
pub use ipv4::Ipv4Cidr;

/// Why bytes were refused. Small and `Copy`, so a drop reason can be derived from it on
/// the hot path without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field says it must be.
    Truncated,
    /// A field holds a value the format forbids (a length shorter than the header, a bad
    /// option length, a wrong hardware address length, ...).
    Malformed,
    /// A checksum does not verify.
    Checksum,
    /// Well formed, but not something vpcemu handles (another version, protocol or
    /// operation, an unknown critical option).
    Unsupported,
    /// A value to emit does not fit its field (a length over 65535, a VNI over 24 bits,
    /// option data that is not a multiple of 4 bytes).
    Overflow,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Checksum => "checksum error",
            Error::Unsupported => "unsupported packet",
            Error::Overflow => "value does not fit its field",
        })
    }
}

impl std::error::Error for Error {}

/// Result with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// A field's bytes inside a header.
pub(crate) type Field = core::ops::Range<usize>;

/// Big-endian reads and writes at fixed offsets. The caller has checked the length, so
/// these index; they are the only place the views touch raw bytes.
#[inline(always)]
pub(crate) fn read_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[inline(always)]
pub(crate) fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[inline(always)]
pub(crate) fn write_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline(always)]
pub(crate) fn write_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// The length check of a header with a length field: [`Error::Truncated`] when the
/// buffer (`buf_len` bytes) cannot hold the fixed `min` bytes, [`Error::Malformed`] when the
/// length the header declares is below `min`, [`Error::Truncated`] when the buffer is
/// shorter than that length. `declared` reads the field, and is called only once the
/// buffer holds `min` bytes.
#[inline(always)]
pub(crate) fn check_declared_len(
    buf_len: usize,
    min: usize,
    declared: impl FnOnce() -> usize,
) -> Result<()> {
    if buf_len < min {
        return Err(Error::Truncated);
    }
    let len = declared();
    if len < min {
        return Err(Error::Malformed);
    }
    if buf_len < len {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// For an `emit` that fills the whole buffer: [`Error::Truncated`] when the buffer is
/// shorter than `want`, [`Error::Overflow`] when it is longer.
#[inline(always)]
pub(crate) fn check_exact_len(buf_len: usize, want: usize) -> Result<()> {
    match buf_len.cmp(&want) {
        core::cmp::Ordering::Less => Err(Error::Truncated),
        core::cmp::Ordering::Greater => Err(Error::Overflow),
        core::cmp::Ordering::Equal => Ok(()),
    }
}

/// `data[range]`, or an empty slice when the range does not fit: for accessors whose
/// range comes from a field that may have been rewritten since the length check.
#[inline(always)]
pub(crate) fn clamp(data: &[u8], start: usize, end: usize) -> &[u8] {
    data.get(start..end).unwrap_or(&[])
}

/// Mutable [`clamp`].
#[inline(always)]
pub(crate) fn clamp_mut(data: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    data.get_mut(start..end).unwrap_or(&mut [])
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Captures and helpers shared by the unit tests.

    /// Decode a hex literal (whitespace ignored).
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len() % 2 == 0, "odd hex literal");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// Every packet of a capture in `tests/data`.
    pub fn packets(capture: &[u8]) -> Vec<Vec<u8>> {
        crate::pcap::Reader::new(capture).unwrap().map(|r| r.unwrap().data.to_vec()).collect()
    }

    pub const GENEVE: &[u8] = include_bytes!("../tests/data/geneve.pcap");
    pub const GENEVE_GCP: &[u8] = include_bytes!("../tests/data/geneve-gcp.pcap");
    pub const QINQ: &[u8] = include_bytes!("../tests/data/802.1ad_QinQ.pcap");
    pub const ESP: &[u8] = include_bytes!("../tests/data/02-sunrise-sunset-esp.pcap");
    pub const ESP_UDP: &[u8] = include_bytes!("../tests/data/espudp1.pcap");
    pub const ESP_TRUNCATED: &[u8] = include_bytes!("../tests/data/esp_truncated.pcap");
    pub const ARP_TOO_LONG_THA: &[u8] = include_bytes!("../tests/data/arp-too-long-tha.pcap");
    pub const ARP_OOBR: &[u8] = include_bytes!("../tests/data/arp-oobr.pcap");
    pub const IPV4_BAD_HDR_LEN: &[u8] =
        include_bytes!("../tests/data/ipv4_invalid_hdr_length.pcap");
    pub const IPV4_BAD_LEN: &[u8] = include_bytes!("../tests/data/ipv4_invalid_length.pcap");
    pub const IPV4_BAD_TOTAL_LEN: &[u8] =
        include_bytes!("../tests/data/ipv4_invalid_total_length.pcap");
    pub const IPV4_BAD_TOTAL_LEN_2: &[u8] =
        include_bytes!("../tests/data/ipv4_invalid_total_length_2.pcap");
    pub const IP_TS_OPTS: &[u8] = include_bytes!("../tests/data/ip_ts_opts_asan.pcap");
    pub const IP_PRINTROUTE: &[u8] = include_bytes!("../tests/data/ip_printroute_asan.pcap");
    pub const TCP_HTTP: &[u8] = include_bytes!("../tests/data/ipv4_tcp_http_xml.pcap");
    pub const BIGTCP_GENEVE: &[u8] = include_bytes!("../tests/data/bigtcp-ipv4-geneve-ipv4.pcap");
    pub const ICMP_EXT_OOB: &[u8] = include_bytes!("../tests/data/icmp_ext_oob_poc.pcap");
}
