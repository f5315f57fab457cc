//! Packets larger than an instance's port carries, with real Linux hosts: red-1 and
//! yellow-1 of the story's world in network namespaces on DPDK net_tap ports, their
//! interfaces at the VPC MTU (9001 bytes, as on AWS), while DPDK 22.11's net_tap carries IP
//! packets of at most 1500 bytes (its largest frame is 1522 bytes with a VLAN tag and CRC).
//!
//! - at start vpcemu prints the largest packet of each instance port, and warns that it is
//!   below the VPC MTU;
//! - a 4000-byte UDP datagram without DF from red-1 reaches yellow-1 whole: yellow-1's card
//!   fragments it for the port and yellow-1's kernel reassembles it;
//! - a DF ping of 3000 bytes gets ICMP fragmentation-needed with the port's MTU, and the
//!   kernel learns that path MTU;
//! - TCP moves 4 MiB each way across the peering (path MTU discovery in both kernels);
//! - the stats count `mtu_exceeded`, no `tx_full`, no port drops, no `unknown_sender`, and
//!   no mbuf is left.
//!
//! Needs root and `ip netns` (iproute2) and Debian's /usr/bin/python3; skips (with the
//! reason) otherwise. Sends only to addresses inside the namespaces it creates. Namespaces,
//! taps and the vpcemu child are removed by a guard, also when an assertion fails.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::netns::*;
use common::*;

/// The largest IP packet DPDK 22.11's net_tap carries (vpcemu prints it at start).
const TAP_MTU: usize = 1500;
/// The interfaces' MTU in the namespaces: the VPC MTU.
const HOST_MTU: u32 = 9001;
/// Bytes TCP moves each way.
const TCP_BYTES: usize = 4 << 20;

/// Starts `script` with /usr/bin/python3 in namespace `ns` (under `timeout`), and waits
/// for its first line, which must be "ready".
fn python_server(ns: &str, secs: u32, script: &str) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new("timeout")
        .args(["-k", "2", &secs.to_string(), "ip", "netns", "exec", ns, "/usr/bin/python3", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 in a namespace");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    if first != "ready" {
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        panic!("the server in {ns} did not start: {first:?}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (child, lines)
}

/// The server's stderr after it ended (or was killed).
fn finish(mut child: Child) -> Output {
    let _ = wait_timeout(&mut child, Duration::from_secs(10));
    let _ = child.kill();
    child.wait_with_output().expect("wait for the server")
}

/// Runs `server` (a python script that prints "ready", then one line) in yellow-1's
/// namespace and, once it listens, `client` in red-1's, each for at most `secs`; returns
/// what the client printed and the server's line. The client must succeed: otherwise the
/// failure names `what` with both sides' errors and vpcemu's counters.
fn client_server(world: &World, what: &str, secs: u32, server: &str, client: &str) -> (String, String) {
    let (child, mut lines) = python_server(world.ns("yellow-1"), secs, server);
    let out = in_ns(world.ns("red-1"), secs, &["/usr/bin/python3", "-c", client]);
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    let server = finish(child);
    assert!(
        out.status.success(),
        "{what} failed (the server printed {line:?}; {})\n{}\n{}",
        String::from_utf8_lossy(&server.stderr),
        text(&out),
        world.diagnosis()
    );
    (String::from_utf8_lossy(&out.stdout).trim().to_string(), line)
}

/// yellow-1 receives one datagram on port 9998, checks it is the 3972-byte pattern, says so.
const UDP_SINK: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.1.20", 9998))
s.settimeout(15)
want = bytes(i % 251 for i in range(3972))
print("ready", flush=True)
data, peer = s.recvfrom(65535)
s.sendto(b"got %d %s" % (len(data), b"same" if data == want else b"different"), peer)
print(peer[0], len(data), flush=True)
"#;

/// red-1 sends a 4000-byte IP packet without DF (again every 0.5 s until answered) and
/// prints the answer.
const UDP_BIG: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: DF clear
s.bind(("10.0.1.10", 0))
s.settimeout(0.5)
payload = bytes(i % 251 for i in range(3972))
for _ in range(16):
    s.sendto(payload, ("10.1.1.20", 9998))
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    print(data.decode(), flush=True)
    sys.exit(0)
sys.exit(1)
"#;

/// What both TCP ends share: `n` (bytes each way, from the command line), `read_all`
/// (reads a connection to EOF: length and SHA-256 of what came) and `IP_MTU`.
const TCP_COMMON: &str = r#"
import hashlib, os, socket, sys
n = int(sys.argv[1])
IP_MTU = 14  # getsockopt: the path MTU the kernel uses for the connection
def read_all(c):
    h, got = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            return got, h.hexdigest()
        h.update(d)
        got += len(d)
"#;

/// yellow-1 takes one TCP connection on port 5001: reads to EOF, sends back `n` bytes,
/// prints what it read (length, SHA-256), its path MTU towards the client and what it sent
/// (SHA-256).
const TCP_SERVER: &str = r#"
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.1.1.20", 5001))
s.listen(1)
s.settimeout(20)
print("ready", flush=True)
c, peer = s.accept()
c.settimeout(30)
got, digest = read_all(c)
data = bytes(i % 253 for i in range(n))
c.sendall(data)
mtu = c.getsockopt(socket.IPPROTO_IP, IP_MTU)
c.shutdown(socket.SHUT_WR)
c.close()
print(got, digest, mtu, hashlib.sha256(data).hexdigest(), flush=True)
"#;

/// red-1 connects, sends `n` bytes, reads to EOF; prints what it sent (SHA-256), what it
/// read (length, SHA-256) and its path MTU.
const TCP_CLIENT: &str = r#"
data = os.urandom(n)
c = socket.create_connection(("10.1.1.20", 5001), timeout=30)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
got, digest = read_all(c)
mtu = c.getsockopt(socket.IPPROTO_IP, IP_MTU)
print(hashlib.sha256(data).hexdigest(), got, digest, mtu, flush=True)
"#;

#[test]
fn packets_over_a_ports_mtu_are_fragmented_or_answered_and_tcp_finds_the_path_mtu() {
    if let Some(why) = skip_reason() {
        println!("netns-mtu: skipped: {why}");
        return;
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        println!("netns-mtu: skipped: no /usr/bin/python3 (apt-get install python3)");
        return;
    }
    let started = Instant::now();
    let dir = scratch("netns-mtu");
    let mut world = start_world(&dir, &["red-1", "yellow-1"], Some(HOST_MTU));
    println!("netns-mtu: vpcemu up, namespaces at MTU {HOST_MTU} ({:.1} s)", started.elapsed().as_secs_f64());
    let red = world.ns("red-1").to_string();

    // Small packets pass as before (and ARP is done).
    ping_ok(&world, &red, YELLOW_IP, YELLOW_IP, "red-1 -> yellow-1 (peering)");

    // 1. No DF: yellow-1's card cuts the 4000-byte packet for its 1500-byte port; yellow-1
    //    reassembles it.
    let (answer, seen) = client_server(&world, "a 4000-byte datagram without DF to yellow-1", 20, UDP_SINK, UDP_BIG);
    assert_eq!(answer, "got 3972 same", "yellow-1 got the whole datagram (it saw {seen:?})");
    println!("netns-mtu: 4000-byte UDP without DF reassembled whole at yellow-1");

    // 2. TCP, 4 MiB each way: both kernels learn the path MTU from the cards' answers
    //    (each end's first full-size segments are DF and too long for the other's port).
    let t = Instant::now();
    let n = TCP_BYTES.to_string();
    let script = |s: &str| format!("import sys; sys.argv = ['x', '{n}']\n{TCP_COMMON}{s}");
    let (client, got) = client_server(&world, "TCP red-1 -> yellow-1", 60, &script(TCP_SERVER), &script(TCP_CLIENT));
    let c: Vec<String> = client.split_whitespace().map(str::to_string).collect();
    let s: Vec<String> = got.split_whitespace().map(str::to_string).collect();
    assert_eq!((c.len(), s.len()), (4, 4), "client printed {c:?}, server {s:?}");
    assert_eq!(s[0], n, "bytes yellow-1 received");
    assert_eq!(s[1], c[0], "what yellow-1 received is what red-1 sent");
    assert_eq!(c[1], n, "bytes red-1 received");
    assert_eq!(c[2], s[3], "what red-1 received is what yellow-1 sent");
    let mtu = TAP_MTU.to_string();
    assert_eq!((c[3].as_str(), s[2].as_str()), (mtu.as_str(), mtu.as_str()), "both ends' path MTU");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "netns-mtu: TCP {} MiB each way in {secs:.1} s ({:.0} Mbit/s), path MTU {} at both ends",
        TCP_BYTES >> 20,
        2.0 * TCP_BYTES as f64 * 8.0 / secs / 1e6,
        c[3]
    );

    // 3. DF: a 3028-byte echo request gets fragmentation-needed, from yellow-1's address
    //    (its card answers for the vNIC's link), with the port's MTU; the kernel learns it.
    //    TCP taught red-1's kernel that path MTU already: forget it first.
    ip(&["-n", &red, "route", "flush", "cache"]);
    let route = in_ns(&red, 10, &["ip", "route", "get", YELLOW_IP]);
    let route = String::from_utf8_lossy(&route.stdout).into_owned();
    assert!(!route.contains(" mtu "), "red-1's kernel forgot the path MTU: {route}");
    let out = in_ns(&red, 15, &["ping", "-n", "-M", "do", "-s", "3000", "-c", "3", "-i", "0.5", "-W", "1", YELLOW_IP]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("From {YELLOW_IP} icmp_seq=1 Frag needed and DF set (mtu = {TAP_MTU})")),
        "a DF ping over the port's MTU gets fragmentation-needed:\n{}\n{}",
        text(&out),
        world.diagnosis()
    );
    let route = in_ns(&red, 10, &["ip", "route", "get", YELLOW_IP]);
    let route = String::from_utf8_lossy(&route.stdout).into_owned();
    assert!(route.contains(&format!("mtu {TAP_MTU}")), "red-1's kernel learned the path MTU: {route}");
    println!("netns-mtu: DF ping of 3000 bytes: fragmentation-needed (mtu = {TAP_MTU}); route: {}", route.trim().replace('\n', " "));

    // 4. Stop; the accounts.
    let status = world.stop();
    let stdout = std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default();
    let stderr = world.stderr();
    assert!(status.is_some_and(|s| s.success()), "vpcemu after SIGTERM: {status:?}\n{stdout}\n{stderr}");
    assert!(stdout.contains("mbufs in use at exit: 0"), "{stdout}");
    let stats = Stats::read(&dir.join("stats.json")).unwrap();
    let drop_count = |r: &str| drop_count(&stats, r);
    assert!(drop_count("mtu_exceeded") >= 1, "the DF packets over the port's MTU are mtu_exceeded: {stdout}");
    assert_eq!(drop_count("tx_full"), 0, "nothing is a full TX queue: {stdout}");
    assert_eq!(drop_count("unknown_sender"), 0, "the sender's card takes the answers: {stdout}");
    for port in ["red-1", "yellow-1"] {
        let p = stats.port(port);
        assert_eq!(p.map(|p| p.dropped), Some(0), "port {port} dropped nothing: {p:?}");
    }

    // 5. What vpcemu said at start about the ports.
    for port in ["red-1", "yellow-1"] {
        let line = format!("port {port} (instance:{port}): IP packets up to {TAP_MTU} bytes");
        assert!(stdout.contains(&line), "{line:?} at start:\n{stdout}");
        let warning = format!("warning: port {port} (instance:{port}) carries IP packets up to {TAP_MTU} bytes, less than the VPC MTU of 9001");
        assert!(stderr.contains(&warning), "{warning:?} at start:\n{stderr}");
    }
    drop(world);
    println!("netns-mtu: done in {:.1} s", started.elapsed().as_secs_f64());
}
