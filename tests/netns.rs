//! Real Linux hosts on the story's world: `vpcemu run` with DPDK net_tap ports, each tap
//! moved into a network namespace of its own and configured as the instance (or the
//! internet host) would be. The kernels in the namespaces ARP, ping and send UDP; the
//! Nitro cards and the Blackfoot edge carry it.
//!
//! - red-1 (VPC red, host-a) <-> yellow-1 (VPC yellow, host-b) across the peering;
//! - red-1 -> an internet host through red's internet gateway on blackfoot-1: SNAT to the
//!   Elastic IP 203.0.113.10 on the way out (seen by the internet host), DNAT back; and the
//!   internet host -> the Elastic IP;
//! - yellow-1, whose VPC has no internet gateway, cannot reach the internet host (`no_route`);
//! - at the end: no `spoofed_source`, no `unknown_sender`, no mbuf leaked.
//!
//! Needs root and `ip netns` (iproute2); skips (with the reason) otherwise. Sends only to
//! addresses inside the namespaces it creates. Namespaces, taps and the vpcemu child are
//! removed by a guard, also when an assertion fails.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const RED_MAC: &str = "02:00:0a:00:01:0a";
const YELLOW_MAC: &str = "02:00:0a:01:01:14";
/// blackfoot::INTERNET_NEXT_HOP_MAC: where the edge sends internet frames.
const UPSTREAM_MAC: &str = "02:00:00:fe:00:02";
/// The edge's card MAC (nitro::card_mac of 198.18.255.1).
const EDGE_MAC: &str = "02:00:c6:12:ff:01";
const RED_IP: &str = "10.0.1.10";
const YELLOW_IP: &str = "10.1.1.20";
const INET_IP: &str = "192.0.2.80";
const EIP: &str = "203.0.113.10";

/// Runs `args` under coreutils `timeout` (so nothing here can hang), output captured.
fn run(secs: u32, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "2", &secs.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ip ARGS` in the root namespace; must succeed.
fn ip(args: &[&str]) {
    let mut a = vec!["ip"];
    a.extend_from_slice(args);
    let out = run(10, &a);
    assert!(out.status.success(), "ip {}: {}", args.join(" "), text(&out));
}

/// `ARGS` inside namespace `ns` (not checked).
fn in_ns(ns: &str, secs: u32, args: &[&str]) -> Output {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    run(secs, &a)
}

/// Why this test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
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

fn iface_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", name]).output().is_ok_and(|o| o.status.success())
}

/// Polls `child` until it exits or `limit` passes.
fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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
struct Tap {
    port: &'static str,
    iface: String,
    ns: String,
}

/// The running world: the vpcemu child and the namespaces. Dropping it stops the child
/// (SIGTERM, then SIGKILL) and deletes the namespaces and any tap left in the root one.
struct World {
    child: Option<Child>,
    taps: Vec<Tap>,
    dir: PathBuf,
    control: PathBuf,
}

impl World {
    fn tap(&self, port: &str) -> &Tap {
        self.taps.iter().find(|t| t.port == port).expect("tap")
    }

    fn ns(&self, port: &str) -> &str {
        &self.tap(port).ns
    }

    /// The running process's stats (`vpcemu ctl stats`), if it answers.
    fn live_stats(&self) -> Option<serde_json::Value> {
        let out = vpcemu(&["ctl", "--control", self.control.to_str()?, "stats"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Ports and non-zero drops of the running process, for failure messages.
    fn diagnosis(&self) -> String {
        let Some(s) = self.live_stats() else {
            return format!("vpcemu does not answer `ctl stats`; its stderr:\n{}", self.stderr());
        };
        let drops: Vec<String> = s["drops"]
            .as_object()
            .map(|m| m.iter().filter(|(_, v)| v.as_u64() != Some(0)).map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        format!("vpcemu now: ports {}, drops [{}]", s["ports"], drops.join(", "))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    /// SIGTERM, and the exit status (None if it had to be killed).
    fn stop(&mut self) -> Option<ExitStatus> {
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

/// Starts vpcemu on the story world with three taps, waits until it forwards, and puts
/// each tap into its own namespace, configured as red-1, yellow-1 and the internet host.
fn start_world(dir: &Path) -> World {
    let pid = std::process::id();
    let taps: Vec<Tap> = [("red-1", "r", "red"), ("yellow-1", "y", "yellow"), ("internet", "i", "inet")]
        .into_iter()
        .map(|(port, i, ns)| Tap { port, iface: format!("vpcT{pid}{i}"), ns: format!("vpcT{pid}{ns}") })
        .collect();
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

    let setup = |t: &Tap, mac: &str, addr: &str, routes: &[&[&str]]| {
        ip(&["netns", "add", &t.ns]);
        ip(&["link", "set", &t.iface, "netns", &t.ns]);
        let n = &t.ns;
        let dev = t.iface.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&["-n", n, "link", "set", dev, "address", mac]);
        ip(&["-n", n, "addr", "add", addr, "dev", dev]);
        ip(&["-n", n, "link", "set", dev, "up"]);
        for r in routes {
            let mut a = vec!["-n", n];
            a.extend_from_slice(r);
            ip(&a);
        }
    };
    let red = world.tap("red-1");
    setup(red, RED_MAC, "10.0.1.10/24", &[&["route", "add", "default", "via", "10.0.1.1"]]);
    let yellow = world.tap("yellow-1");
    setup(yellow, YELLOW_MAC, "10.1.1.20/24", &[&["route", "add", "default", "via", "10.1.1.1"]]);
    // The internet host is the edge's upstream router: the edge sends to its fixed next-hop
    // MAC; the way back to the Elastic IPs is found by ARP, which the edge answers.
    let inet = world.tap("internet");
    let dev = inet.iface.as_str();
    setup(
        inet,
        UPSTREAM_MAC,
        "192.0.2.80/24",
        &[&["route", "add", "203.0.113.0/24", "dev", dev]],
    );
    world
}

/// `ping -c 3` from `ns` to `dst`: every echo answered, from `from`; returns ping's output.
fn ping_ok(world: &World, ns: &str, dst: &str, from: &str, what: &str) -> String {
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

/// The internet host receives one UDP datagram, prints its source, echoes it back.
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.80", 9999))
s.settimeout(10)
print("ready", flush=True)
data, peer = s.recvfrom(2048)
s.sendto(b"echo:" + data, peer)
print(peer[0], peer[1], data.decode(), flush=True)
"#;

/// red-1 sends a datagram to the internet host (again every 0.5 s until answered) and
/// prints the answer's source, its own source port and the answer.
const UDP_SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.1.10", 0))
s.settimeout(0.5)
for _ in range(16):
    s.sendto(b"hello-from-red-1", ("192.0.2.80", 9999))
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    print(peer[0], peer[1], s.getsockname()[1], data.decode(), flush=True)
    sys.exit(0)
sys.exit(1)
"#;

/// Through the internet gateway with UDP: the internet host sees the Elastic IP (SNAT, port
/// kept) and its answer reaches red-1 (DNAT).
fn udp_through_the_gateway(world: &World) {
    let t = Instant::now();
    let mut echo = Command::new("timeout")
        .args(["-k", "2", "15", "ip", "netns", "exec", world.ns("internet"), "/usr/bin/python3", "-c", UDP_ECHO])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 in the internet namespace");
    let mut lines = BufReader::new(echo.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    // Only once the echo is listening: red-1 sends.
    let send = (first == "ready").then(|| in_ns(world.ns("red-1"), 15, &["/usr/bin/python3", "-c", UDP_SEND]));
    let seen = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = wait_timeout(&mut echo, Duration::from_secs(5));
    let _ = echo.kill();
    let echo = echo.wait_with_output().expect("wait for the UDP echo");
    let send = send.unwrap_or_else(|| {
        panic!("the UDP echo in the internet namespace did not start: {first:?}\n{}", String::from_utf8_lossy(&echo.stderr))
    });
    assert!(
        send.status.success(),
        "red-1 -> {INET_IP}:9999 (UDP) got no answer; the internet host saw {seen:?}\n{}\n{}",
        text(&send),
        world.diagnosis()
    );
    let sent = String::from_utf8_lossy(&send.stdout);
    let s: Vec<&str> = sent.split_whitespace().collect();
    assert_eq!(s.len(), 4, "red-1 printed {sent:?}");
    let (reply_src, reply_port, own_port, reply) = (s[0], s[1], s[2], s[3]);
    let r: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(r.len(), 3, "internet host printed {seen:?}");
    assert_eq!(r[0], EIP, "SNAT: the internet host must see red-1's Elastic IP as the source");
    assert_eq!(r[1], own_port, "1:1 NAT keeps the source port");
    assert_eq!(r[2], "hello-from-red-1");
    assert_eq!((reply_src, reply_port), (INET_IP, "9999"), "DNAT: the answer comes from the internet host");
    assert_eq!(reply, "echo:hello-from-red-1");
    println!(
        "netns: red-1 -> {INET_IP}:9999 UDP seen there from {}:{}, answer back at red-1 ({:.1} s)",
        r[0],
        r[1],
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn real_hosts_in_namespaces_across_the_peering_and_the_internet_gateway() {
    if let Some(why) = skip_reason() {
        println!("netns: skipped: {why}");
        return;
    }
    let started = Instant::now();
    let dir = scratch("netns");
    let mut world = start_world(&dir);
    println!("netns: vpcemu up, namespaces configured ({:.1} s)", started.elapsed().as_secs_f64());
    let (red, yellow, inet) = (world.ns("red-1").to_string(), world.ns("yellow-1").to_string(), world.ns("internet").to_string());

    // 1. Across the peering, both ways. The cards do not decrement the TTL.
    let out = ping_ok(&world, &red, YELLOW_IP, YELLOW_IP, "red-1 -> yellow-1 (peering)");
    assert!(out.contains("ttl=64"), "the TTL crosses the VPC unchanged:\n{out}");
    ping_ok(&world, &yellow, RED_IP, RED_IP, "yellow-1 -> red-1 (peering)");

    // 2. Through red's internet gateway: out (SNAT) and back (DNAT), and in from outside.
    ping_ok(&world, &red, INET_IP, INET_IP, "red-1 -> internet host (internet gateway)");
    udp_through_the_gateway(&world);
    ping_ok(&world, &inet, EIP, EIP, "internet host -> Elastic IP of red-1");
    // The internet host learned the Elastic IP's MAC by ARP: the edge's.
    let neigh = in_ns(&inet, 10, &["ip", "neigh", "show", EIP]);
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    assert!(neigh.contains(&format!("lladdr {EDGE_MAC}")), "ARP for the Elastic IP answered by the edge: {neigh:?}");

    // Yellow has no internet gateway (and may not use its peer's): dropped at its card.
    let out = in_ns(&yellow, 10, &["ping", "-n", "-c", "1", "-W", "1", INET_IP]);
    assert!(!out.status.success(), "yellow-1 reached the internet without a gateway:\n{}", text(&out));

    // 3. Stop; the final accounts.
    let status = world.stop();
    let stdout = std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "vpcemu after SIGTERM: {status:?}\n{stdout}\n{}", world.stderr());
    assert!(stdout.contains("mbufs in use at exit: 0"), "{stdout}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).expect("stats json")).expect("stats is JSON");
    let drop_count = |r: &str| stats["drops"][r].as_u64().unwrap_or_else(|| panic!("no drop counter {r}: {stats}"));
    assert_eq!(drop_count("spoofed_source"), 0, "{stdout}");
    assert_eq!(drop_count("unknown_sender"), 0, "{stdout}");
    assert!(drop_count("no_route") >= 1, "yellow-1 -> internet is no_route: {stdout}");
    assert_eq!(stats["run"]["mbufs_in_use"], 0);
    for port in ["red-1", "yellow-1", "internet"] {
        let p = &stats["ports"][port];
        assert!(p["rx"].as_u64() > Some(0) && p["tx"].as_u64() > Some(0), "port {port} both ways: {p}");
    }
    assert!(stats["stages"]["nat"]["count"].as_u64() > Some(0), "the edge's nat stage ran: {}", stats["stages"]);
    let alerts = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap_or_default();
    assert!(alerts.contains("\"reason\":\"no_route\""), "an alert for yellow-1 -> internet:\n{alerts}");
    drop(world);
    println!("netns: done in {:.1} s", started.elapsed().as_secs_f64());
}
