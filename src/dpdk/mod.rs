//! The DPDK layer: the only place in vpcemu with FFI and `unsafe`.
//!
//! - [`eal`]: EAL builder and guard, TSC, lcore id.
//! - [`mempool`]: pools of single-segment jumbo mbufs.
//! - [`mbuf`]: owned `Mbuf` (implements `wire::PacketBuf` on the mbuf fields) and
//!   `MbufBurst`, the fixed-size owning burst.
//! - [`port`]: ethdev ports and per-lcore queue handles.
//! - [`lcore`]: launching closures on worker lcores.
//! - [`crypto`]: AES-128-GCM with the library of DPDK's ipsec_mb `crypto_aesni_gcm` driver (intel-ipsec-mb), called directly (ESP's cipher).
//!
//! Every `unsafe` block carries a `// SAFETY:` comment; every `unsafe fn` a `# Safety`
//! section. Ownership order the callers keep: mbufs, then ports, then pools, then the EAL.
#![allow(unsafe_code)]

pub mod crypto;
pub mod eal;
pub mod error;
pub(crate) mod ffi;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod telemetry;

pub use crypto::{CryptoDev, DpdkAesGcm};
pub use eal::{Eal, EalBuilder, Hugepages, LogTarget, TscClock, lcore_id, rdtsc};
pub use error::{DpdkError, Result};
pub use lcore::{WorkerHandle, launch};
pub use mbuf::{Linearize, MAX_BURST, Mbuf, MbufBurst};
pub use mempool::{MBUF_DATA_SIZE, Mempool, RX_DATA_SIZE};
pub use port::{Port, PortConfig, PortStats, RxPools, RxQueue, TxQueue, TxResult, vdev_name};

/// The DPDK version vpcemu was built against.
pub const DPDK_VERSION: &str = env!("VPCEMU_DPDK_VERSION");
