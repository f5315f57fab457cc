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

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::*;
use common::*;

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
    let mut world = start_world(&dir, &["red-1", "yellow-1", "internet"], None);
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
    let stats = Stats::read(&dir.join("stats.json")).unwrap();
    let drop_count = |r: &str| drop_count(&stats, r);
    assert_eq!(drop_count("spoofed_source"), 0, "{stdout}");
    assert_eq!(drop_count("unknown_sender"), 0, "{stdout}");
    assert!(drop_count("no_route") >= 1, "yellow-1 -> internet is no_route: {stdout}");
    assert_eq!(stats.run.as_ref().map(|r| r.mbufs_in_use), Some(0));
    for port in ["red-1", "yellow-1", "internet"] {
        let p = stats.port(port);
        assert!(p.is_some_and(|p| p.rx > 0 && p.tx > 0), "port {port} both ways: {p:?}");
    }
    assert!(stats.stage_count("nat") > Some(0), "the edge's nat stage ran: {:?}", stats.stages);
    let alerts = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap_or_default();
    assert!(alerts.contains("\"reason\":\"no_route\""), "an alert for yellow-1 -> internet:\n{alerts}");
    drop(world);
    println!("netns: done in {:.1} s", started.elapsed().as_secs_f64());
}
