//! Packet formats for vpcemu: zero-copy typed views over any buffer, owned `Repr`s
//! with parse/emit, checksums, and the buffer trait that stages run over.
//!
//! No DPDK here, and no `unsafe`: the root crate implements [`PacketBuf`] for the
//! DPDK mbuf, [`TestBuffer`] implements it for tests and benchmarks.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod buf;

pub use buf::{BufError, PacketBuf, TestBuffer};
