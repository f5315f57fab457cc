//! `vpcemu lab FILE`: the world of a topology file with its instances as real Linux hosts.
//!
//! The lab runs the file like `vpcemu run`, with one more DPDK net_tap port for every
//! instance that has none in the file (or for those named by `--instances`) and one for the
//! internet side of every edge that holds an internet gateway. Once the engine runs every
//! port, each tap goes into a network namespace named after its instance (`red-1`) or edge
//! (`blackfoot-1-internet`), configured as AWS configures an instance: its MAC, its
//! addresses with the subnet's prefix length, a default route via the subnet router (the
//! subnet's first address), the MTU its port carries. The internet host takes the MAC the
//! edge sends to, `--internet-host` (192.0.2.1/24) and a default route on the link, so
//! it reaches every Elastic IP by ARP, which the edge answers.
//!
//! An instance port follows its instance when it moves to another card of the process
//! (`ctl move`: the runtime rebinds the port), so a moved instance keeps its namespace.
//! What the lab made is recorded ([`state`]) and removed at exit, also on an error, and by
//! `vpcemu lab --cleanup` after a lab was killed.

pub mod netns;
pub mod plan;
pub mod state;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Args;
use mapping_client::topology::Topology;

use crate::cli::flags::RunFlags;
use crate::runtime::engine::{Engine, EngineSpec};
use crate::runtime::plan::{PortIo, PortSpec};
use crate::runtime::run::{load_world, run_spec, RunOptions};
use crate::runtime::stop::Signals;
use plan::{Plan, PlanOptions};
use state::Lab;

/// `vpcemu lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// The topology file (TOML).
    #[arg(required_unless_present = "cleanup")]
    pub topology: Option<PathBuf>,
    /// Remove the namespaces and taps that labs no longer running (killed) left behind,
    /// and nothing else.
    #[arg(long, conflicts_with = "topology")]
    pub cleanup: bool,
    /// Only these instances get a host (comma-separated names).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub instances: Option<Vec<String>>,
    /// The internet host behind each edge with an internet gateway: IP or IP/LEN.
    #[arg(long, value_name = "IP", default_value = "192.0.2.1/24")]
    pub internet_host: String,
    /// Put PREFIX before every namespace name (several labs of one world side by side).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub ns_prefix: String,
    #[command(flatten)]
    pub run: RunFlags,
}

/// `IP` or `IP/LEN` (LEN 1..=30; default 24).
fn parse_host(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("--internet-host: {s:?} is not an IPv4 address or IP/LEN (LEN 1 to 30)");
    let (ip, len) = s.split_once('/').unwrap_or((s, "24"));
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if !(1..=30).contains(&len) || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(bad());
    }
    Ok((ip, len))
}

/// Whether this process runs as root (effective uid 0, from /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)) == Some("0")
    })
}

/// Run `vpcemu lab` (or `--cleanup`).
pub fn main(a: LabArgs) -> Result<(), String> {
    if !is_root() {
        return Err("vpcemu lab needs root (it makes network namespaces)".into());
    }
    if a.cleanup {
        for l in state::cleanup().map_err(|e| format!("lab --cleanup refused: {e}"))? {
            println!("vpcemu lab: {l}");
        }
        return Ok(());
    }
    let topology = a.topology.ok_or("vpcemu lab needs a topology file (or --cleanup)")?;
    let internet_host = parse_host(&a.internet_host)?;
    let opts = a.run.options(topology);
    let plan_opts = PlanOptions {
        instances: a.instances,
        internet_host,
        ns_prefix: a.ns_prefix,
        cards: opts.cards.clone(),
        tap_tag: format!("vl{}", std::process::id()),
    };
    run(&opts, &plan_opts)
}

/// The lab on `opts.topology`: build, run until a stop condition, remove what was made.
pub fn run(opts: &RunOptions, plan_opts: &PlanOptions) -> Result<(), String> {
    let topo = load_world(opts)?;
    // Installed before anything is made: a signal from now on stops the lab cleanly.
    let signals = Signals::install().map_err(|e| format!("installing signal handlers: {e}"))?;
    let plan = plan::plan(&topo, plan_opts)?;
    for n in &plan.notes {
        println!("vpcemu lab: {n}");
    }
    if plan.hosts.is_empty() {
        return Err("nothing to build: no instance without a port and no internet gateway runs here".into());
    }
    let namespaces: Vec<&str> = plan.hosts.iter().map(|h| h.config.ns.as_str()).collect();
    let taps: Vec<&str> = plan.hosts.iter().map(|h| h.config.iface.as_str()).collect();
    state::preflight(&namespaces, &taps)?;
    let mut lab = Lab::create(taps.iter().map(|s| s.to_string()).collect())?;
    let mut spec = EngineSpec::from_topology(topo.clone());
    for h in &plan.hosts {
        spec.ports.push(PortSpec { name: h.port.clone(), io: PortIo::Vdev(h.vdev.clone()), attach: h.attach.clone() });
    }
    let result = run_spec(opts, spec, |engine| setup(engine, &plan, &mut lab, &signals, &topo, opts));
    // The engine has stopped and closed its taps: the namespaces go now.
    let problems = lab.teardown();
    let names = namespaces.join(", ");
    match (result, problems.is_empty()) {
        (Ok(()), true) => {
            println!("vpcemu lab: removed the namespaces {names} and their taps");
            Ok(())
        }
        (Ok(()), false) => Err(problems.join("; ")),
        (Err(e), _) => {
            for p in problems {
                eprintln!("vpcemu: lab: {p}");
            }
            Err(e)
        }
    }
}

/// Once the engine runs every port: each tap into its namespace, configured; then what was
/// built and how to use it.
fn setup(engine: &Engine, plan: &Plan, lab: &mut Lab, signals: &Signals, topo: &Topology, opts: &RunOptions) -> Result<(), String> {
    let port_mtus = engine.port_mtus();
    let mut mtus = Vec::new();
    for h in &plan.hosts {
        if signals.raised() {
            return Err("stopped by a signal during setup".into());
        }
        let mtu = port_mtus.iter().find(|m| m.name == h.port).and_then(|m| m.mtu);
        mtus.push(mtu);
        let config = &h.config;
        let fail = |e: String| format!("setting up {}: {e}", config.ns);
        if !netns::iface_exists(&config.iface) {
            return Err(fail(format!("net_tap made no interface {}", config.iface)));
        }
        lab.mark_tap(&config.iface).map_err(fail)?;
        lab.add_ns(&config.ns).map_err(fail)?;
        config.configure(mtu.map(u32::from)).map_err(fail)?;
    }
    let n = plan.hosts.len();
    let hosts = match n {
        1 => "1 host, in a network namespace of its own".to_string(),
        _ => format!("{n} hosts, each in a network namespace of its own"),
    };
    println!("vpcemu lab: {hosts} (net_tap):");
    for l in plan.describe(&mtus) {
        println!("{l}");
    }
    let exe = std::env::current_exe().map_or_else(|_| "vpcemu".to_string(), |p| p.display().to_string());
    // Changes go to where the world is: etcd (`ctl --etcd`; the control socket then
    // answers only `list` and `stats`), or the process's control socket.
    let ctl = match &opts.etcd {
        Some(url) => Some(format!("{exe} ctl --etcd {url}")),
        None => opts.control.as_ref().map(|p| format!("{exe} ctl --control {}", p.display())),
    };
    let mut tries = plan.try_commands(topo, ctl.as_deref());
    if let Some(p) = &opts.alerts {
        tries.push((format!("tail -f {}", p.display()), "the security alerts as they come".into()));
    }
    println!("Try:");
    for (cmd, why) in tries {
        println!("  {cmd:<64} # {why}");
    }
    if signals.raised() {
        return Err("stopped by a signal during setup".into());
    }
    println!("vpcemu lab: ready; Ctrl-C (or SIGTERM) stops it and removes every namespace and tap it made");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_host_option() {
        assert_eq!(parse_host("192.0.2.1").unwrap(), (Ipv4Addr::new(192, 0, 2, 1), 24));
        assert_eq!(parse_host("198.51.100.7/25").unwrap(), (Ipv4Addr::new(198, 51, 100, 7), 25));
        for bad in ["", "192.0.2.1/33", "192.0.2.1/0", "x", "0.0.0.0", "224.0.0.1/24"] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }
}
