//! `vpcemu lab` on the story's world, as a subprocess, with real Linux hosts:
//!
//! - ping and TCP (iperf3, megabytes) across the peering red-yellow; red-1 -> green-1
//!   (unpeered) refused with its alert; TCP from red-1 to the internet host through its
//!   Elastic IP (the internet host sees the Elastic IP as the source);
//! - a TCP stream into red-1 keeps running while red-1 moves (`ctl move`), with nothing
//!   delivered to another host and the loss measured;
//! - every namespace and tap gone after `--duration`, SIGTERM, SIGINT and a failure in the
//!   middle of setup; `--cleanup` after SIGKILL; no foreign namespace touched;
//! - iperf3 throughput between two lab hosts and the CPU vpcemu takes for it;
//! - two labs, each running some cards of one world kept in etcd (`--etcd`, `--cards`),
//!   their underlay ports on one bridge: ping across the processes, then a move through
//!   etcd (`ctl --etcd`) that the traffic follows.
//!
//! Needs root, `ip netns` and iperf3; skips (with the reason) otherwise. Every lab gets a
//! namespace prefix of its own (`--ns-prefix`), so that nothing collides with other tests
//! or a user's lab; a guard kills the lab and removes its namespaces if a test fails. The
//! tests take turns (one test's labs at a time: each lab polls a worker lcore).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::netns::{in_ns, iface_exists, run, skip_reason, text, wait_timeout};
use common::{scratch, story_world, vpcemu};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const RED_IP: &str = "10.0.1.10";
const YELLOW_IP: &str = "10.1.1.20";
const GREEN_IP: &str = "10.2.1.30";
const INET_IP: &str = "192.0.2.1";
const EIP: &str = "203.0.113.10";

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    skip_reason().or_else(|| {
        let ok = Command::new("iperf3").arg("--version").output().is_ok_and(|o| o.status.success());
        (!ok).then(|| "no iperf3 (scripts/setup.sh installs it)".to_string())
    })
}

/// The turn of one test (None, with the reason printed, when the tests cannot run here).
fn take_turn() -> Option<MutexGuard<'static, ()>> {
    if let Some(why) = cannot_run() {
        println!("lab: skipped: {why}");
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A `vpcemu lab` child on the story's world. Dropping it kills the lab (if it still runs)
/// and removes every namespace with its prefix.
struct LabRun {
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    prefix: String,
    control: PathBuf,
}

/// Starts `vpcemu lab` with `args` after the world file, a prefix of its own, stats,
/// alerts and the control socket; `path` replaces the PATH it sees.
fn spawn_lab(test: &str, args: &[&str], path: Option<&str>) -> LabRun {
    spawn_lab_on(test, &story_world(""), args, path)
}

/// [`spawn_lab`] on the file `text` (a world, or with `--etcd` a `[dataplane]` and ports).
fn spawn_lab_on(test: &str, text: &str, args: &[&str], path: Option<&str>) -> LabRun {
    let dir = scratch(&format!("lab-{test}"));
    let world = dir.join("world.toml");
    std::fs::write(&world, text).unwrap();
    // Unique among the tests of this process and of any other.
    let prefix = format!("t{}{}-", std::process::id(), &test[..3]);
    let control = dir.join("ctl.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpcemu"));
    cmd.args(["lab", world.to_str().unwrap(), "--ns-prefix", &prefix])
        .args(["--stats-json", dir.join("stats.json").to_str().unwrap()])
        .args(["--alerts", dir.join("alerts.jsonl").to_str().unwrap()])
        .args(["--control", control.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("stdout.txt")).unwrap())
        .stderr(File::create(dir.join("stderr.txt")).unwrap());
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let child = cmd.spawn().expect("spawn vpcemu lab");
    LabRun { pid: child.id(), child: Some(child), dir, prefix, control }
}

/// [`spawn_lab`] with a safety `--duration` (the lab ends by itself even if this test is
/// killed), then waits until it says it is ready.
fn start_lab(test: &str) -> LabRun {
    let mut lab = spawn_lab(test, &["--duration", "300"], None);
    lab.wait_ready();
    lab
}

impl LabRun {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    fn alerts(&self) -> String {
        std::fs::read_to_string(self.dir.join("alerts.jsonl")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.stdout().contains("vpcemu lab: ready") {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("vpcemu lab exited before it was ready ({status}):\n{}\n{}", self.stdout(), self.stderr());
            }
            assert!(Instant::now() < deadline, "vpcemu lab not ready within 120 s:\n{}\n{}", self.stdout(), self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `vpcemu ctl --control ... ARGS`.
    fn ctl(&self, args: &[&str]) -> Output {
        let mut a = vec!["ctl", "--control", self.control.to_str().unwrap()];
        a.extend_from_slice(args);
        vpcemu(&a)
    }

    /// The live stats (`ctl stats`).
    fn stats(&self) -> serde_json::Value {
        let out = self.ctl(&["stats"]);
        assert!(out.status.success(), "ctl stats: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("stats JSON")
    }

    /// Sends `signal` (if the lab runs) and waits for its exit (None: it had to be killed).
    fn stop(&mut self, signal: &str) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args([&format!("-{signal}"), &self.pid.to_string()]).status();
        let status = wait_timeout(&mut child, Duration::from_secs(60));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// Waits (at most `limit`) for the lab to exit by itself.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_timeout(self.child.as_mut()?, limit);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Bytes the interface of host `name` (the lab's `n`-th tap) has received.
    fn rx_bytes(&self, name: &str, n: usize) -> u64 {
        let path = format!("/sys/class/net/vl{}-{n}/statistics/rx_bytes", self.pid);
        let out = in_ns(&self.ns(name), 10, &["cat", &path]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{path} in {name}: {}", text(&out)))
    }

    /// The namespaces with this lab's prefix.
    fn namespaces(&self) -> Vec<String> {
        let out = run(10, &["ip", "netns", "list"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&self.prefix))
            .map(str::to_string)
            .collect()
    }

    /// Nothing of the lab is left: no namespace, no tap, no record.
    fn assert_all_gone(&self, when: &str) {
        let left = self.namespaces();
        assert!(left.is_empty(), "{when}: namespaces left: {left:?}\n{}\n{}", self.stdout(), self.stderr());
        let taps: Vec<String> = (0..4).map(|n| format!("vl{}-{n}", self.pid)).filter(|t| iface_exists(t)).collect();
        assert!(taps.is_empty(), "{when}: taps left: {taps:?}");
        let record = Path::new("/run/vpcemu-lab").join(format!("{}.json", self.pid));
        assert!(!record.exists(), "{when}: the lab's record {} is left", record.display());
    }
}

impl Drop for LabRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_file(Path::new("/run/vpcemu-lab").join(format!("{}.json", self.pid)));
    }
}

/// `ping -c 3` from `ns` to `dst`: every echo answered.
fn ping_ok(lab: &LabRun, ns: &str, dst: &str, what: &str) {
    let out = in_ns(ns, 30, &["ping", "-n", "-c", "3", "-i", "0.3", "-W", "3", dst]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("3 received"),
        "{what}: ping {dst} failed\n{}\nstats: {}",
        text(&out),
        lab.stats()["drops"]
    );
    println!("lab: {what}: 3/3 echo replies");
}

/// iperf3 server in `server_ns` on `server_ip` (one test), client in `client_ns` with
/// `client_args`; both JSON reports. The client is retried until the server listens.
fn iperf(server_ns: &str, server_ip: &str, client_ns: &str, client_args: &[&str], during: impl FnOnce()) -> (serde_json::Value, serde_json::Value) {
    let mut server = Command::new("timeout")
        .args(["-k", "2", "120", "ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the iperf3 server");
    // Until the server listens (the client is retried below all the same).
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = in_ns(server_ns, 5, &["ss", "-ltnH", "sport", "=", ":5201"]);
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut args = vec!["iperf3", "-c", server_ip, "--json", "--connect-timeout", "3000"];
    args.extend_from_slice(client_args);
    let mut during = Some(during);
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let mut a = vec!["ip", "netns", "exec", client_ns];
        a.extend_from_slice(&args);
        let mut child = Command::new("timeout")
            .args(["-k", "2", "90"])
            .args(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the iperf3 client");
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(None) = child.try_wait() {
            // Running: the connection is up.
            if let Some(f) = during.take() {
                f();
            }
        }
        let out = child.wait_with_output().expect("iperf3 client");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let refused = v["error"].as_str().is_some_and(|e| e.contains("refused"));
        if refused && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        assert!(out.status.success(), "iperf3 client in {client_ns}: {}", text(&out));
        break v;
    };
    if wait_timeout(&mut server, Duration::from_secs(15)).is_none() {
        let _ = server.kill();
    }
    let out = server.wait_with_output().expect("iperf3 server");
    let server: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("iperf3 server JSON: {e}\n{}", text(&out)));
    (client, server)
}

#[test]
fn peering_unpeered_vpc_and_the_internet_through_the_elastic_ip() {
    let Some(_turn) = take_turn() else { return };
    let started = Instant::now();
    let mut lab = start_lab("peering");
    println!("lab: vpcemu lab ready in {:.1} s", started.elapsed().as_secs_f64());
    let (red, yellow) = (lab.ns("red-1"), lab.ns("yellow-1"));
    let out = lab.stdout();
    for want in [format!("ip netns exec {red} ping -c 3 {YELLOW_IP}"), format!("ip netns exec {red} ping -c 3 {INET_IP}")] {
        assert!(out.contains(&want), "the lab suggests {want:?}:\n{out}");
    }

    // Across the peering: ping, then 8 MiB of TCP.
    ping_ok(&lab, &red, YELLOW_IP, "red-1 -> yellow-1 (peering)");
    ping_ok(&lab, &yellow, RED_IP, "yellow-1 -> red-1 (peering)");
    let rx0 = lab.rx_bytes("yellow-1", 1);
    // (iperf3 -n would not do: its server closes at the sender's end, unread data lost.)
    let (client, _) = iperf(&yellow, YELLOW_IP, &red, &["-t", "3"], || {});
    let got = client["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let on_the_wire = lab.rx_bytes("yellow-1", 1) - rx0;
    assert!(got >= 8 << 20 && on_the_wire >= got, "yellow-1 received {got} bytes ({on_the_wire} on its interface): {}", client["end"]);
    println!("lab: TCP red-1 -> yellow-1: {} MiB in 3 s", got >> 20);

    // Not peered: red-1 -> green-1 is refused at red-1's card, with an alert.
    let out = in_ns(&red, 15, &["ping", "-n", "-c", "2", "-W", "1", GREEN_IP]);
    assert!(!out.status.success(), "red-1 reached green-1 without a peering:\n{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lab.alerts().contains("\"peer_vpc\":\"green\"") {
        assert!(Instant::now() < deadline, "no alert for red-1 -> green-1:\n{}", lab.alerts());
        std::thread::sleep(Duration::from_millis(200));
    }
    let alert = lab.alerts().lines().find(|l| l.contains("\"peer_vpc\":\"green\"")).unwrap_or_default().to_string();
    assert!(alert.contains("\"instance\":\"red-1\"") && alert.contains(&format!("\"dst\":\"{GREEN_IP}\"")), "{alert}");
    println!("lab: red-1 -> green-1 refused: {alert}");

    // The internet through red-1's Elastic IP: the internet host sees the Elastic IP.
    let inet = lab.ns("blackfoot-1-internet");
    ping_ok(&lab, &red, INET_IP, "red-1 -> internet host");
    let rx0 = lab.rx_bytes("blackfoot-1-internet", 3);
    let (client, server) = iperf(&inet, INET_IP, &red, &["-t", "2"], || {});
    let seen = server["start"]["connected"][0]["remote_host"].as_str().unwrap_or_default().to_string();
    assert_eq!(seen, EIP, "the internet host sees red-1's Elastic IP as the source: {}", server["start"]);
    let got = client["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let on_the_wire = lab.rx_bytes("blackfoot-1-internet", 3) - rx0;
    assert!(got >= 2 << 20 && on_the_wire >= got, "the internet host received {got} bytes ({on_the_wire} on its interface)");
    ping_ok(&lab, &inet, EIP, "internet host -> red-1's Elastic IP");
    println!("lab: TCP red-1 -> internet host: {got} bytes, seen from {seen}");

    // Live changes reach the lab's hosts: a peering added, an Elastic IP moved to another
    // address (the internet host finds it by ARP on its link).
    let out = lab.ctl(&["peer", "add", "red", "green"]);
    assert!(out.status.success(), "ctl peer add: {}", text(&out));
    ping_ok(&lab, &red, GREEN_IP, "red-1 -> green-1 once peered (ctl peer add)");
    for change in [&["eip", "disassociate", EIP][..], &["eip", "associate", "203.0.113.11", "red-1"]] {
        let out = lab.ctl(change);
        assert!(out.status.success(), "ctl {change:?}: {}", text(&out));
    }
    ping_ok(&lab, &inet, "203.0.113.11", "internet host -> red-1's new Elastic IP (ctl eip associate)");

    // SIGTERM: a clean exit, nothing left.
    let status = lab.stop("TERM");
    assert!(status.is_some_and(|s| s.success()), "vpcemu lab after SIGTERM: {status:?}\n{}\n{}", lab.stdout(), lab.stderr());
    let out = lab.stdout();
    assert!(out.contains("mbufs in use at exit: 0"), "{out}");
    assert!(out.contains("vpcemu lab: removed the namespaces"), "{out}");
    lab.assert_all_gone("after SIGTERM");
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(lab.dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["drops"]["unknown_sender"], 0, "{}", stats["drops"]);
    assert!(stats["drops"]["no_route"].as_u64() >= Some(2), "red-1 -> green-1 is no_route: {}", stats["drops"]);
    println!("lab: done in {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_tcp_stream_keeps_running_while_its_instance_moves() {
    let Some(_turn) = take_turn() else { return };
    let mut lab = start_lab("move");
    let (red, yellow) = (lab.ns("red-1"), lab.ns("yellow-1"));
    ping_ok(&lab, &yellow, RED_IP, "yellow-1 -> red-1 before the move");
    let before = lab.stats();

    // yellow-1 streams into red-1 for 8 s; red-1 moves from host-a to host-b 3 s in.
    let mut moved = None;
    let (client, _) = iperf(&red, RED_IP, &yellow, &["-t", "8", "-i", "1"], || {
        std::thread::sleep(Duration::from_secs(3));
        let t = Instant::now();
        let out = lab.ctl(&["move", "red-1", "host-b"]);
        assert!(out.status.success(), "ctl move: {}", text(&out));
        moved = Some(t.elapsed());
    });
    let moved = moved.expect("the move happened while the stream ran");
    let after = lab.stats();
    let list = lab.ctl(&["list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains("host-b"), "{list}");

    // The stream ran on through the move, to its end.
    let intervals: Vec<u64> = client["intervals"]
        .as_array()
        .map(|a| a.iter().map(|i| i["sum"]["bytes"].as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    assert!(intervals.len() >= 7, "{} intervals: {intervals:?}", intervals.len());
    // (At most one second without data: TCP's retransmission timer may wait that long
    // after a loss on a loaded machine.)
    let empty = intervals.iter().filter(|&&b| b == 0).count();
    assert!(empty <= 1 && intervals.last() > Some(&0), "seconds without data: {intervals:?}");
    let sent = client["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    let received = client["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let retransmits = client["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    assert!(received > 0 && received <= sent, "sent {sent}, received {received}");

    // Nothing reached another host: vpcemu sent nothing to green-1 (red-1's old neighbour
    // on host-a) or to the internet host.
    for port in ["green-1", "blackfoot-1-internet"] {
        assert_eq!(after["ports"][port]["tx"], 0, "port {port} got packets: {}", after["ports"]);
    }
    // What vpcemu dropped while the stream ran (the move's window: packets sent by the old
    // card after the new one took the instance are `unknown_sender` there).
    let port_drops: Vec<String> = ["red-1", "yellow-1"]
        .iter()
        .map(|p| {
            let d = |s: &serde_json::Value| s["ports"][p]["dropped"].as_u64().unwrap_or(0);
            format!("port {p} {}", d(&after) - d(&before))
        })
        .collect();
    let lost: Vec<String> = after["drops"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let d = v.as_u64()? - before["drops"][k].as_u64().unwrap_or(0);
                    (d > 0 && k != "not_ipv4").then(|| format!("{k} {d}"))
                })
                .collect()
        })
        .unwrap_or_default();
    // `spoofed_source` drops may appear here: what red-1 sends between the moment the
    // mapping no longer puts it on host-a and the moment its port is rebound to host-b is
    // refused by host-a's verify-send (the move's window, counted in `lost` below).
    // The namespace stayed; the vNIC follows red-1 to host-b.
    ping_ok(&lab, &red, YELLOW_IP, "red-1 (on host-b) -> yellow-1 after the move");
    println!(
        "lab: move of red-1 during a TCP stream ({} MiB in 8 s): ctl move took {:.1} ms; dropped by vpcemu: [{}], by the ports (RX missed, TX errors): [{}]; \
         {retransmits} TCP retransmissions; bytes per second: {intervals:?}",
        received >> 20,
        moved.as_secs_f64() * 1e3,
        lost.join(", "),
        port_drops.join(", ")
    );

    // Ctrl-C: a clean exit, nothing left.
    let status = lab.stop("INT");
    assert!(status.is_some_and(|s| s.success()), "vpcemu lab after SIGINT: {status:?}\n{}", lab.stderr());
    lab.assert_all_gone("after SIGINT");
}

#[test]
fn two_labs_share_one_world_in_etcd_and_traffic_follows_a_move() {
    use mapping_client::etcd::testing::TestEtcd;
    let Some(_turn) = take_turn() else { return };
    // The README's two processes on one world in etcd, from its files: the story's world
    // with a third host (`examples/etcd/host-c.toml`); lab A runs host-a (red-1 and
    // green-1 become hosts), lab B host-b and host-c (yellow-1), each with the underlay
    // ports of `examples/etcd/a.toml` and `b.toml` (net_taps, here with names of this
    // test's own), which the test joins on a bridge in a namespace of its own, so the
    // underlay frames cross the kernel between the two processes.
    let etcd = TestEtcd::start().expect("a private etcd (scripts/setup.sh installs etcd-server)");
    let url = etcd.url();
    let dir = scratch("lab-etcd-world");
    let world = dir.join("world.toml");
    let example = |f: &str| std::fs::read_to_string(format!("examples/etcd/{f}")).unwrap_or_else(|e| panic!("examples/etcd/{f}: {e}"));
    std::fs::write(&world, story_world(&example("host-c.toml"))).unwrap();
    let out = vpcemu(&["mapping", "load", world.to_str().unwrap(), "--etcd", &url]);
    assert!(out.status.success(), "mapping load: {}", text(&out));
    let tag = format!("t{}u", std::process::id());
    for u in ["a", "b", "c"] {
        assert!(!iface_exists(&format!("{tag}{u}")), "interface {tag}{u} exists already");
    }
    let own_taps = |f: &str| {
        let t = example(f);
        assert!(t.contains("iface=vpcul-"), "examples/etcd/{f} names its taps vpcul-*");
        t.replace("iface=vpcul-", &format!("iface={tag}"))
    };
    let (run_a, run_b) = (own_taps("a.toml"), own_taps("b.toml"));
    let mut a = spawn_lab_on("eta", &run_a, &["--etcd", &url, "--cards", "host-a", "--duration", "300"], None);
    let mut b = spawn_lab_on("etb", &run_b, &["--etcd", &url, "--cards", "host-b,host-c", "--duration", "300"], None);
    a.wait_ready();
    b.wait_ready();
    let mut made = a.namespaces();
    made.sort();
    assert_eq!(made, [a.ns("green-1"), a.ns("red-1")], "lab A: the instances of host-a\n{}", a.stdout());
    assert_eq!(b.namespaces(), [b.ns("yellow-1")], "lab B: the instance of host-b\n{}", b.stdout());
    // Each lab offers what reaches the other process, and changes through etcd.
    assert!(a.stdout().contains(&format!("ip netns exec {} ping -c 3 {YELLOW_IP}", a.ns("red-1"))), "{}", a.stdout());
    assert!(b.stdout().contains(&format!("ctl --etcd {url} move yellow-1 host-c")), "{}", b.stdout());

    // The underlay: the three taps on one bridge (in a namespace the labs' drop removes).
    let ul = a.ns("ul");
    let ip = |args: &[&str]| {
        let out = run(10, &[&["ip"], args].concat());
        assert!(out.status.success(), "ip {args:?}: {}", text(&out));
    };
    ip(&["netns", "add", &ul]);
    ip(&["-n", &ul, "link", "add", "br0", "type", "bridge"]);
    for u in ["a", "b", "c"] {
        let dev = format!("{tag}{u}");
        ip(&["link", "set", &dev, "netns", &ul]);
        ip(&["-n", &ul, "link", "set", &dev, "master", "br0"]);
        ip(&["-n", &ul, "link", "set", &dev, "up"]);
    }
    ip(&["-n", &ul, "link", "set", "br0", "up"]);

    let (red, yellow) = (a.ns("red-1"), b.ns("yellow-1"));
    ping_ok(&a, &red, YELLOW_IP, "red-1 (lab A) -> yellow-1 (lab B) across the peering, through the bridge");
    ping_ok(&b, &yellow, RED_IP, "yellow-1 (lab B) -> red-1 (lab A)");
    let port_tx = |lab: &LabRun, port: &str| lab.stats()["ports"][port]["tx"].as_u64().unwrap_or(0);
    assert!(port_tx(&a, "ul-a") > 0 && port_tx(&b, "ul-b") > 0, "the underlay carried it");
    let ul_c = port_tx(&b, "ul-c");

    // yellow-1 moves to host-c through etcd: lab A's host-a learns where it went, lab B
    // rebinds yellow-1's port to host-c, and the traffic follows (its namespace stays).
    let moved = Instant::now();
    let out = vpcemu(&["ctl", "--etcd", &url, "move", "yellow-1", "host-c"]);
    assert!(out.status.success(), "ctl --etcd move: {}", text(&out));
    let deadline = moved + Duration::from_secs(20);
    while !in_ns(&red, 10, &["ping", "-n", "-c", "1", "-W", "1", YELLOW_IP]).status.success() {
        assert!(Instant::now() < deadline, "red-1 does not reach yellow-1 after the move\nA: {}\nB: {}", a.stderr(), b.stderr());
    }
    println!("lab: the first echo after the move answered {:.0} ms after ctl --etcd started", moved.elapsed().as_secs_f64() * 1e3);
    ping_ok(&a, &red, YELLOW_IP, "red-1 -> yellow-1 after it moved to host-c");
    assert!(port_tx(&b, "ul-c") > ul_c, "yellow-1's answers now leave by host-c's underlay port");
    let listed = a.ctl(&["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("host-c"), "lab A lists the world from etcd: {}", text(&listed));

    // Ctrl-C to both: clean exits; once the bridge's namespace is gone, nothing is left.
    for (lab, name) in [(&mut b, "B"), (&mut a, "A")] {
        let status = lab.stop("INT");
        assert!(status.is_some_and(|s| s.success()), "lab {name} after SIGINT: {status:?}\n{}", lab.stderr());
    }
    ip(&["netns", "del", &ul]);
    a.assert_all_gone("lab A after SIGINT");
    b.assert_all_gone("lab B after SIGINT");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_namespace_goes_after_the_duration_and_after_a_failure_in_setup() {
    let Some(_turn) = take_turn() else { return };

    // --duration: the lab ends by itself and removes everything.
    // (With another internet host address.)
    let mut lab = spawn_lab("duration", &["--duration", "5", "--internet-host", "198.51.100.9/25"], None);
    lab.wait_ready();
    assert_eq!(lab.namespaces().len(), 4, "4 hosts while it runs");
    let addrs = in_ns(&lab.ns("blackfoot-1-internet"), 10, &["ip", "-br", "addr"]);
    let addrs = String::from_utf8_lossy(&addrs.stdout).into_owned();
    assert!(addrs.contains("198.51.100.9/25"), "--internet-host: {addrs}");
    let status = lab.wait_exit(Duration::from_secs(90));
    assert!(status.is_some_and(|s| s.success()), "vpcemu lab --duration 5: {status:?}\n{}", lab.stderr());
    lab.assert_all_gone("after --duration");
    println!("lab: --duration 5: exited, nothing left");

    // A failure in the middle of setup: an `ip` that refuses to make the second namespace
    // (red-1's is made, and configured, first).
    let real_ip = String::from_utf8_lossy(&run(5, &["sh", "-c", "command -v ip"]).stdout).trim().to_string();
    assert!(real_ip.starts_with('/'), "where is ip? {real_ip:?}");
    let bin = scratch("lab-failing-ip");
    let fail_ns = format!("t{}eve-yellow-1", std::process::id());
    std::fs::write(
        bin.join("ip"),
        format!("#!/bin/sh\ncase \"$*\" in\n  \"netns add {fail_ns}\") echo \"refused for the test\" >&2; exit 1;;\nesac\nexec {real_ip} \"$@\"\n"),
    )
    .unwrap();
    assert!(run(5, &["chmod", "+x", bin.join("ip").to_str().unwrap()]).status.success());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut lab = spawn_lab("every", &["--duration", "300"], Some(&path));
    assert_eq!(lab.ns("yellow-1"), fail_ns);
    let status = lab.wait_exit(Duration::from_secs(120));
    let stderr = lab.stderr();
    assert!(status.is_some_and(|s| !s.success()), "vpcemu lab with a failing setup: {status:?}\n{stderr}");
    assert!(stderr.contains(&format!("setting up {fail_ns}")) && stderr.contains("refused for the test"), "{stderr}");
    assert!(!lab.stdout().contains("vpcemu lab: ready"), "{}", lab.stdout());
    lab.assert_all_gone("after a failure in setup");
    println!("lab: failure in setup: {}", stderr.lines().last().unwrap_or_default());
}

#[test]
fn cleanup_after_sigkill_and_no_foreign_namespace_touched() {
    let Some(_turn) = take_turn() else { return };

    // SIGKILL leaves the namespaces; --cleanup removes them, but not one that someone else
    // made since under the same name.
    let mut lab = start_lab("kill");
    let status = lab.stop("KILL");
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    let left = lab.namespaces();
    assert_eq!(left.len(), 4, "a killed lab leaves its namespaces: {left:?}");
    let foreign = lab.ns("green-1");
    let out = run(10, &["ip", "netns", "del", &foreign]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(10, &["ip", "netns", "add", &foreign]);
    assert!(out.status.success(), "{}", text(&out));
    let out = vpcemu(&["lab", "--cleanup"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "--cleanup with a foreign namespace of a lab's name: {}", text(&out));
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&format!("namespace {foreign} was not made by lab {}", lab.pid)), "{stderr}");
    assert_eq!(lab.namespaces(), std::slice::from_ref(&foreign), "only the foreign namespace is left");
    let record = Path::new("/run/vpcemu-lab").join(format!("{}.json", lab.pid));
    assert!(!record.exists(), "the record is gone");
    println!("lab: --cleanup after SIGKILL: {}", String::from_utf8_lossy(&out.stdout).trim());
    println!("lab: --cleanup refused: {}", stderr.trim());
    let out = run(10, &["ip", "netns", "del", &foreign]);
    assert!(out.status.success(), "{}", text(&out));

    // A lab refuses to start over a namespace it did not make, and touches nothing.
    let foreign = format!("t{}for-red-1", std::process::id());
    let out = run(10, &["ip", "netns", "add", &foreign]);
    assert!(out.status.success(), "{}", text(&out));
    let mut lab = spawn_lab("foreign", &["--duration", "300"], None);
    let status = lab.wait_exit(Duration::from_secs(60));
    let stderr = lab.stderr();
    let ours = lab.namespaces();
    let _ = run(10, &["ip", "netns", "del", &foreign]);
    assert!(status.is_some_and(|s| !s.success()), "vpcemu lab over a foreign namespace: {status:?}\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&format!("namespace {foreign} already exists and vpcemu lab did not make it")), "{stderr}");
    assert_eq!(ours, std::slice::from_ref(&foreign), "nothing made, the foreign namespace kept");
    println!("lab: refused: {}", stderr.trim());
}

/// Jiffies of CPU (user + system) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name).
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn iperf3_throughput_between_two_lab_hosts_and_the_cpu_it_takes() {
    let Some(_turn) = take_turn() else { return };
    let hz = String::from_utf8_lossy(&run(5, &["getconf", "CLK_TCK"]).stdout).trim().parse::<f64>().unwrap_or(100.0);
    let mut lab = start_lab("iperf");
    let (red, yellow) = (lab.ns("red-1"), lab.ns("yellow-1"));
    // What the lab takes idle: the worker polls whether or not packets come.
    let (t0, c0) = (Instant::now(), cpu_ticks(lab.pid));
    std::thread::sleep(Duration::from_secs(3));
    let idle = (cpu_ticks(lab.pid) - c0) as f64 / hz / t0.elapsed().as_secs_f64();
    let (t0, c0) = (Instant::now(), cpu_ticks(lab.pid));
    let (client, _) = iperf(&yellow, YELLOW_IP, &red, &["-t", "10"], || {});
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), (cpu_ticks(lab.pid) - c0) as f64 / hz);
    let bytes = client["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let gbps = client["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9;
    assert!(bytes > 1 << 20, "iperf3 moved {bytes} bytes: {}", client["end"]);
    println!(
        "lab: iperf3 red-1 -> yellow-1, 10 s: {gbps:.2} Gbit/s ({} MiB), retransmits {}; vpcemu used {cpu:.1} s of CPU in \
         {secs:.1} s ({:.2} CPUs; idle: {idle:.2} CPUs), {:.1} CPU-seconds per GB",
        bytes >> 20,
        client["end"]["sum_sent"]["retransmits"],
        cpu / secs,
        cpu / (bytes as f64 / 1e9)
    );
    let status = lab.stop("TERM");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", lab.stderr());
    lab.assert_all_gone("after SIGTERM");
}
