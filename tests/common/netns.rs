//! Real Linux hosts on the story's world for the end-to-end tests: `vpcemu run` with DPDK
//! net_tap ports, each tap moved into a network namespace of its own and configured as the
//! instance (or the internet host) would be. Namespaces, taps and the vpcemu child are
//! removed by a guard ([`World`]), also when an assertion fails; every command runs under
//! coreutils `timeout`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Stats, ctl, story_world};

pub const RED_MAC: &str = "02:00:0a:00:01:0a";
pub const YELLOW_MAC: &str = "02:00:0a:01:01:14";
/// blackfoot::INTERNET_NEXT_HOP_MAC: where the edge sends internet frames.
pub const UPSTREAM_MAC: &str = "02:00:00:fe:00:02";
/// The edge's card MAC (nitro::card_mac of 198.18.255.1).
pub const EDGE_MAC: &str = "02:00:c6:12:ff:01";
pub const RED_IP: &str = "10.0.1.10";
pub const YELLOW_IP: &str = "10.1.1.20";
pub const INET_IP: &str = "192.0.2.80";
pub const EIP: &str = "203.0.113.10";

/// Runs `args` under coreutils `timeout` (so nothing here can hang), output captured.
pub fn run(secs: u32, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "2", &secs.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"))
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ip ARGS` in the root namespace; must succeed.
pub fn ip(args: &[&str]) {
    let mut a = vec!["ip"];
    a.extend_from_slice(args);
    let out = run(10, &a);
    assert!(out.status.success(), "ip {}: {}", args.join(" "), text(&out));
}

/// `ARGS` inside namespace `ns` (not checked).
pub fn in_ns(ns: &str, secs: u32, args: &[&str]) -> Output {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    run(secs, &a)
}

/// Why this test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    match Command::new("id").arg("-u").output() {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "0" => {}
        Ok(o) => return Some(format!("not running as root (uid {})", String::from_utf8_lossy(&o.stdout).trim())),
        Err(e) => return Some(format!("cannot tell the uid: {e}")),
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip netns` is unavailable: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("`ip` is unavailable: {e}")),
    }
}

pub use vpcemu::lab::netns::iface_exists;
use vpcemu::lab::netns::{HostConfig, add_ns, route};

/// Polls `child` until it exits or `limit` passes.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One tap of the world: its port name, interface, namespace.
pub struct Tap {
    pub port: &'static str,
    pub iface: String,
    pub ns: String,
}

/// The running world: the vpcemu child and the namespaces. Dropping it stops the child
/// (SIGTERM, then SIGKILL) and deletes the namespaces and any tap left in the root one.
pub struct World {
    child: Option<Child>,
    pub taps: Vec<Tap>,
    pub dir: PathBuf,
    pub control: PathBuf,
}

impl World {
    pub fn tap(&self, port: &str) -> &Tap {
        self.taps.iter().find(|t| t.port == port).expect("tap")
    }

    pub fn ns(&self, port: &str) -> &str {
        &self.tap(port).ns
    }

    /// The running process's stats (`vpcemu ctl stats`), if it answers.
    pub fn live_stats(&self) -> Option<Stats> {
        let out = ctl(&self.control, &["stats"]);
        if !out.status.success() {
            return None;
        }
        Stats::parse(&String::from_utf8_lossy(&out.stdout)).ok()
    }

    /// Ports and non-zero drops of the running process, for failure messages.
    pub fn diagnosis(&self) -> String {
        let Some(s) = self.live_stats() else {
            return format!("vpcemu does not answer `ctl stats`; its stderr:\n{}", self.stderr());
        };
        let drops: Vec<String> = s.nonzero_drops().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("vpcemu now: ports {:?}, drops [{}]", s.ports, drops.join(", "))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    /// SIGTERM, and the exit status (None if it had to be killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        if let Some(status) = wait_timeout(&mut child, Duration::from_secs(15)) {
            return Some(status);
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.stop();
        for t in &self.taps {
            let _ = Command::new("ip").args(["netns", "del", &t.ns]).stderr(Stdio::null()).status();
            if iface_exists(&t.iface) {
                let _ = Command::new("ip").args(["link", "del", &t.iface]).stderr(Stdio::null()).status();
            }
        }
    }
}

/// Starts vpcemu on the story world with a tap for each of `ports` (among "red-1",
/// "yellow-1" and "internet"), waits until it forwards, and puts each tap into its own
/// namespace, configured as red-1, yellow-1 and the internet host, with interface MTU
/// `mtu` (the kernel's default, 1500, when `None`).
pub fn start_world(dir: &Path, ports: &[&str], mtu: Option<u32>) -> World {
    let pid = std::process::id();
    let taps: Vec<Tap> = [("red-1", "r", "red"), ("yellow-1", "y", "yellow"), ("internet", "i", "inet")]
        .into_iter()
        .filter(|(port, _, _)| ports.contains(port))
        .map(|(port, i, ns)| Tap { port, iface: format!("vpcT{pid}{i}"), ns: format!("vpcT{pid}{ns}") })
        .collect();
    assert_eq!(taps.len(), ports.len(), "unknown port among {ports:?}");
    assert!(taps.iter().all(|t| t.iface.len() <= 15), "interface names must fit IFNAMSIZ");
    // Leftovers of an earlier run with the same pid.
    for t in &taps {
        let _ = Command::new("ip").args(["netns", "del", &t.ns]).stderr(Stdio::null()).status();
        if iface_exists(&t.iface) {
            let _ = Command::new("ip").args(["link", "del", &t.iface]).stderr(Stdio::null()).status();
        }
    }
    let attach = |port: &str| match port {
        "internet" => "edge:blackfoot-1:internet".to_string(),
        p => format!("instance:{p}"),
    };
    let ports: String = taps
        .iter()
        .enumerate()
        .map(|(n, t)| {
            format!(
                "[[port]]\nname = \"{}\"\nvdev = \"net_tap{n},iface={}\"\nattach = \"{}\"\n\n",
                t.port,
                t.iface,
                attach(t.port)
            )
        })
        .collect();
    let world_path = dir.join("world.toml");
    std::fs::write(&world_path, story_world(&ports)).unwrap();
    let control = dir.join("ctl.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["run", world_path.to_str().unwrap()])
        // A safety net: the run ends by itself even if this test is killed.
        .args(["--duration", "180"])
        .args(["--stats-json", dir.join("stats.json").to_str().unwrap()])
        .args(["--alerts", dir.join("alerts.jsonl").to_str().unwrap()])
        .args(["--control", control.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("stdout.txt")).unwrap())
        .stderr(File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .expect("spawn vpcemu");
    let mut world = World { child: Some(child), taps, dir: dir.to_path_buf(), control };

    // Ready = the control loop answers (the engine has started every port, so DPDK has
    // done its ioctls on the taps by name: they must stay in the root namespace until then).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(Ok(Some(status))) = world.child.as_mut().map(|c| c.try_wait()) {
            panic!("vpcemu exited early ({status}):\n{}", world.stderr());
        }
        if world.live_stats().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "vpcemu did not start within 30 s:\n{}", world.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in &world.taps {
        assert!(iface_exists(&t.iface), "vpcemu runs but net_tap created no interface {}", t.iface);
    }

    // The hosts' configuration is `vpcemu lab`'s.
    let setup = |t: &Tap, mac: &str, addr: &str, routes: &[&[&str]]| {
        add_ns(&t.ns).unwrap_or_else(|e| panic!("{e}"));
        let host = HostConfig {
            ns: t.ns.clone(),
            iface: t.iface.clone(),
            mac: mac.to_string(),
            addrs: vec![addr.to_string()],
            routes: routes.iter().map(|r| route(r)).collect(),
        };
        host.configure(mtu).unwrap_or_else(|e| panic!("{}: {e}", t.ns));
    };
    for t in &world.taps {
        match t.port {
            "red-1" => setup(t, RED_MAC, "10.0.1.10/24", &[&["default", "via", "10.0.1.1"]]),
            "yellow-1" => setup(t, YELLOW_MAC, "10.1.1.20/24", &[&["default", "via", "10.1.1.1"]]),
            // The internet host is the edge's upstream router: the edge sends to its fixed
            // next-hop MAC; the way back to the Elastic IPs is found by ARP, which the edge
            // answers.
            _ => setup(t, UPSTREAM_MAC, "192.0.2.80/24", &[&["203.0.113.0/24", "dev", &t.iface]]),
        }
    }
    world
}

/// `ping -c 3` from `ns` to `dst`: every echo answered, from `from`; returns ping's output.
pub fn ping_ok(world: &World, ns: &str, dst: &str, from: &str, what: &str) -> String {
    let t = Instant::now();
    let out = in_ns(ns, 20, &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("3 received"),
        "{what}: ping {dst} failed\n{}\n{}",
        text(&out),
        world.diagnosis()
    );
    let replies = stdout.lines().filter(|l| l.contains("bytes from")).count();
    let good = stdout.lines().filter(|l| l.contains(&format!("bytes from {from}:"))).count();
    assert_eq!(good, replies, "{what}: replies from another address than {from}:\n{stdout}");
    println!("netns: {what}: 3/3 echo replies from {from} ({:.1} s)", t.elapsed().as_secs_f64());
    stdout
}

