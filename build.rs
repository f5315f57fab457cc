//! DPDK FFI for vpcemu: finds libdpdk >= 22.11 with pkg-config, generates bindings with
//! bindgen (with pkg-config's cflags passed unchanged: they carry `-include rte_config.h`
//! and `-march`), and compiles the C shim for DPDK's static inline functions.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_DPDK: &str = "22.11";
const INSTALL_HINT: &str =
    "libdpdk >= 22.11 not found by pkg-config: run `sudo scripts/setup.sh` \
     (or `apt-get install dpdk dpdk-dev libdpdk-dev libpcap-dev libclang-dev pkg-config`)";

fn fail(msg: &str) -> ! {
    // One line, so cargo shows it plainly.
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}

fn pkg_config_cflags() -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|_| fail(INSTALL_HINT));
    if !out.status.success() {
        fail(INSTALL_HINT);
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

fn main() {
    println!("cargo:rerun-if-changed=src/dpdk/shim/shim.c");
    println!("cargo:rerun-if-changed=src/dpdk/shim/shim.h");
    println!("cargo:rerun-if-changed=src/dpdk/shim/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .cargo_metadata(true)
        .probe("libdpdk")
        .unwrap_or_else(|_| fail(INSTALL_HINT));
    println!("cargo:rustc-env=VPCEMU_DPDK_VERSION={}", lib.version);

    let cflags = pkg_config_cflags();

    let mut cc = cc::Build::new();
    cc.file("src/dpdk/shim/shim.c").include("src/dpdk/shim").opt_level(3).warnings(false);
    for flag in &cflags {
        cc.flag(flag);
    }
    cc.compile("vpcemu_shim");
    // The shim calls intel-ipsec-mb's AES-GCM (the crypto_aesni_gcm driver's library,
    // libipsec-mb-dev, which libdpdk-dev depends on) directly.
    println!("cargo:rustc-link-lib=dylib=IPSec_MB");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR not set")));
    let bindings = bindgen::Builder::default()
        .header("src/dpdk/shim/wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-Isrc/dpdk/shim")
        .allowlist_function("rte_.*|vpcemu_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        // Packed or bit-field structs bindgen cannot lay out exactly.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on the DPDK headers: {e}")));
    bindings
        .write_to_file(out.join("dpdk_bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("writing bindings: {e}")));
}
