//! Linux hosts in network namespaces, with iproute2's `ip`: a namespace per host, a tap
//! interface moved into it and configured as the host (`vpcemu lab`, and the end-to-end
//! tests that build hosts on net_tap by hand).
//!
//! A tap made by DPDK's net_tap must stay in the root namespace until the port has started
//! (the driver does its ioctls on the interface by name); it keeps its name in the
//! namespace, so that the driver's ioctls at stop (by that name, in the root namespace)
//! find nothing rather than another interface.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// `ip ARGS`; an error carries the command and what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether a name can be a namespace of `ip netns` (a file name under [`NETNS_DIR`]); the
/// lab also keeps out spaces and shell characters, so that the commands it prints work.
pub fn valid_ns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+@:".contains(c))
}

/// The identity of a namespace: device and inode of its nsfs file (what `ip netns add`
/// mounted at `/run/netns/NAME`); `None` if there is no such namespace.
pub fn ns_id(name: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(PathBuf::from(NETNS_DIR).join(name)).ok()?;
    Some((m.dev(), m.ino()))
}

pub fn ns_exists(name: &str) -> bool {
    PathBuf::from(NETNS_DIR).join(name).exists()
}

/// Whether interface `name` exists in the root namespace.
pub fn iface_exists(name: &str) -> bool {
    PathBuf::from("/sys/class/net").join(name).exists()
}

/// The alias of interface `name` in the root namespace (empty when it has none).
pub fn iface_alias(name: &str) -> Option<String> {
    std::fs::read_to_string(PathBuf::from("/sys/class/net").join(name).join("ifalias")).ok().map(|s| s.trim().to_string())
}

/// `ip netns add NAME`: the namespace's identity ([`ns_id`]).
pub fn add_ns(name: &str) -> Result<(u64, u64), String> {
    ip(&["netns", "add", name])?;
    ns_id(name).ok_or_else(|| format!("`ip netns add {name}` made no {NETNS_DIR}/{name}"))
}

/// `ip netns del NAME`.
pub fn del_ns(name: &str) -> Result<(), String> {
    ip(&["netns", "del", name])
}

/// One Linux host: a tap interface in a namespace of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The namespace (made first: [`add_ns`]).
    pub ns: String,
    /// The tap, in the root namespace until [`HostConfig::configure`].
    pub iface: String,
    pub mac: String,
    /// Addresses with their prefix length (`10.0.1.10/24`), the primary first.
    pub addrs: Vec<String>,
    /// Routes, each the arguments of `ip route add` (`["default", "via", "10.0.1.1"]`).
    pub routes: Vec<Vec<String>>,
}

impl HostConfig {
    /// Moves the tap into the namespace and configures it: loopback up, IPv6 off (the VPC
    /// carries IPv4; this keeps router solicitations off the port), the MAC, the addresses,
    /// the MTU (`None`: the kernel's default, 1500), link up, the routes.
    pub fn configure(&self, mtu: Option<u32>) -> Result<(), String> {
        let (n, dev) = (self.ns.as_str(), self.iface.as_str());
        ip(&["link", "set", dev, "netns", n])?;
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        // (Nothing to switch off on a kernel without IPv6.)
        let ipv6 = std::path::Path::new("/proc/sys/net/ipv6").exists();
        for key in ["all", "default"].iter().filter(|_| ipv6) {
            let path = format!("net.ipv6.conf.{key}.disable_ipv6=1");
            ip(&["netns", "exec", n, "sysctl", "-qw", &path])?;
        }
        ip(&["-n", n, "link", "set", dev, "address", &self.mac])?;
        for a in &self.addrs {
            ip(&["-n", n, "addr", "add", a, "dev", dev])?;
        }
        if let Some(mtu) = mtu {
            ip(&["-n", n, "link", "set", dev, "mtu", &mtu.to_string()])?;
        }
        ip(&["-n", n, "link", "set", dev, "up"])?;
        for r in &self.routes {
            let mut a = vec!["-n", n, "route", "add"];
            a.extend(r.iter().map(String::as_str));
            ip(&a)?;
        }
        Ok(())
    }
}

/// `ARGS...` as a route (`route(&["default", "via", "10.0.1.1"])`).
pub fn route(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
