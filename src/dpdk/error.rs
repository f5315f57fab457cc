//! Errors of the DPDK layer: numeric DPDK error codes become typed errors carrying
//! DPDK's own message, translated here at the FFI edge.

use std::ffi::CStr;

use super::ffi;

/// An error from DPDK or from the safe layer around it.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` failed. `detail` is the last error DPDK logged, if any.
    #[error("EAL init failed: {message}{detail}")]
    EalInit { code: i32, message: String, detail: String },
    /// `rte_eal_init` was already called in this process (it works once per process).
    #[error("EAL already initialised in this process")]
    EalAlreadyInitialised,
    /// An EAL argument contained a NUL byte.
    #[error("EAL argument contains a NUL byte: {0:?}")]
    BadArgument(String),
    /// No ethdev port has this name (a vdev that failed to probe leaves no port).
    #[error("no DPDK port named {name:?}{detail}")]
    NoSuchPort { name: String, detail: String },
    /// A mempool could not be created.
    #[error("mempool {name:?}: {message}")]
    Mempool { name: String, code: i32, message: String },
    /// A port operation failed.
    #[error("port {port} ({name}): {op}: {message}")]
    Port { port: u16, name: String, op: &'static str, code: i32, message: String },
    /// A telemetry command could not be registered.
    #[error("telemetry command {cmd}: {message}")]
    Telemetry { cmd: String, message: String },
    /// A cryptodev operation failed.
    #[error("cryptodev {device}: {op}: {message}")]
    Crypto { device: String, op: &'static str, message: String },
    /// An lcore operation failed.
    #[error("lcore {lcore}: {message}")]
    Lcore { lcore: u32, message: String },
}

/// DPDK's message for an error number (positive errno or DPDK's own `RTE_*` codes).
pub fn strerror(code: i32) -> String {
    let code = code.abs();
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string that is either
    // static or in thread-local storage, valid until the next call on this thread; it is
    // copied out at once.
    unsafe {
        let p = ffi::rte_strerror(code);
        if p.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int through the shim; no preconditions.
    unsafe { ffi::vpcemu_errno() }
}

pub type Result<T> = std::result::Result<T, DpdkError>;
