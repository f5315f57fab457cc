//! vpcemu's own figures as DPDK telemetry commands, so `dpdk-telemetry.py` shows them
//! beside DPDK's (`/ethdev/stats,0` and friends).
//!
//! DPDK 22.11 callbacks carry no user pointer, so one `extern "C"` trampoline serves every
//! command and finds its provider in a registry keyed by command name. Providers run on
//! DPDK's telemetry thread, never on a worker; they read what the control core published.
//! A 22.11 dict holds at most 256 entries of scalars or arrays, so vpcemu's commands
//! return flat dicts with `/`-separated names (e.g. `encap/p99_ns`).

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use super::error::{DpdkError, Result, strerror};
use super::ffi;

/// One value of a telemetry dict.
#[derive(Debug, Clone, PartialEq)]
pub enum TelValue {
    U64(u64),
    Str(String),
}

/// Produces a command's dict from its parameters (the text after the comma).
pub type Provider = dyn Fn(&str) -> Vec<(String, TelValue)> + Send + Sync;

fn registry() -> &'static Mutex<HashMap<String, Arc<Provider>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Provider>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Most entries a DPDK 22.11 dict takes (`RTE_TEL_MAX_DICT_ENTRIES`).
pub const MAX_ENTRIES: usize = 256;

/// A dict key DPDK accepts: alphanumerics, '_' and '/'; anything else becomes '_'.
pub fn sanitize_key(k: &str) -> String {
    k.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '/' { c } else { '_' }).collect()
}

extern "C" fn trampoline(cmd: *const c_char, params: *const c_char, d: *mut ffi::rte_tel_data) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: DPDK passes NUL-terminated strings valid for the duration of the callback
    // (params may be NULL when the command has none).
    let (cmd, params) = unsafe {
        (
            CStr::from_ptr(cmd).to_string_lossy().into_owned(),
            if params.is_null() { String::new() } else { CStr::from_ptr(params).to_string_lossy().into_owned() },
        )
    };
    let provider = match registry().lock() {
        Ok(r) => r.get(&cmd).cloned(),
        Err(_) => None,
    };
    let Some(provider) = provider else { return -libc::ENOENT };
    let Ok(entries) = catch_unwind(AssertUnwindSafe(|| provider(&params))) else { return -libc::EIO };
    // SAFETY: d is the response structure DPDK handed us for this call; it is filled only
    // through DPDK's own functions, with keys and values as valid C strings that DPDK
    // copies before we drop them.
    unsafe {
        ffi::rte_tel_data_start_dict(d);
        for (k, v) in entries.into_iter().take(MAX_ENTRIES) {
            let Ok(key) = CString::new(sanitize_key(&k)) else { continue };
            match v {
                TelValue::U64(x) => {
                    ffi::rte_tel_data_add_dict_u64(d, key.as_ptr(), x);
                }
                TelValue::Str(s) => {
                    if let Ok(val) = CString::new(s.replace('\0', "")) {
                        ffi::rte_tel_data_add_dict_string(d, key.as_ptr(), val.as_ptr());
                    }
                }
            }
        }
    }
    0
}

/// Register `cmd` (e.g. "/vpcemu/drops") with a help text and a provider. Registering a
/// command again replaces its provider.
pub fn register(cmd: &str, help: &str, provider: Arc<Provider>) -> Result<()> {
    let bad = |_| DpdkError::BadArgument(cmd.to_string());
    let (ccmd, chelp) = (CString::new(cmd).map_err(bad)?, CString::new(help).map_err(bad)?);
    let already = match registry().lock() {
        Ok(mut r) => r.insert(cmd.to_string(), provider).is_some(),
        Err(_) => return Err(DpdkError::BadArgument(cmd.to_string())),
    };
    if already {
        return Ok(());
    }
    // SAFETY: both strings are valid C strings; DPDK copies them into its own table.
    let rc = unsafe { ffi::rte_telemetry_register_cmd(ccmd.as_ptr(), Some(trampoline), chelp.as_ptr()) };
    if rc != 0 {
        return Err(DpdkError::Telemetry { cmd: cmd.to_string(), message: strerror(rc) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_acceptable() {
        assert_eq!(sanitize_key("encap/p99_ns"), "encap/p99_ns");
        assert_eq!(sanitize_key("verify-send/p50"), "verify_send/p50");
        assert_eq!(sanitize_key("net_pcap0,x=1"), "net_pcap0_x_1");
    }
}
