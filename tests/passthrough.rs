//! End-to-end tests of `vpcemu passthrough` on net_pcap, net_ring and net_null.

mod common;

use common::*;

/// A deterministic frame of `len` bytes: Ethernet/IPv4 header bytes then a counter pattern.
fn frame(i: usize, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|j| (i.wrapping_mul(31) + j) as u8).collect();
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f
}

/// Sizes from 60 bytes to 9014-byte jumbo frames, mixed (an LCG, so it is repeatable).
fn mixed_sizes(n: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    (0..n)
        .map(|i| match i % 10 {
            0 => 60,
            1 => 9014,
            2 => 1514,
            _ => {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                60 + (x >> 33) as usize % (9014 - 60 + 1)
            }
        })
        .collect()
}

/// `vpcemu passthrough --vdev INPUT --vdev OUTPUT STOP... --hugepages off`, with
/// `--stats-json JSON` when given.
fn passthrough(input: &str, output: &str, stop: &[&str], json: Option<&std::path::Path>) -> std::process::Output {
    let mut args = vec!["passthrough", "--vdev", input, "--vdev", output];
    args.extend_from_slice(stop);
    args.extend(["--hugepages", "off"]);
    if let Some(json) = json {
        args.extend(["--stats-json", json.to_str().unwrap()]);
    }
    vpcemu(&args)
}

#[test]
fn pcap_identity_10000_mixed_sizes_with_jumbo() {
    let dir = scratch("identity");
    let (input, output, json) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("stats.json"));
    let frames: Vec<Vec<u8>> = mixed_sizes(10_000).into_iter().enumerate().map(|(i, l)| frame(i, l)).collect();
    assert!(frames.iter().any(|f| f.len() == 9014) && frames.iter().any(|f| f.len() == 60));
    write_pcap(&input, &frames);
    let (rx, tx) = (format!("net_pcap0,rx_pcap={}", input.display()), format!("net_pcap1,tx_pcap={}", output.display()));
    let out = passthrough(&rx, &tx, &["--until-idle", "300"], Some(&json));
    assert!(out.status.success(), "vpcemu failed: {}", String::from_utf8_lossy(&out.stderr));
    let got = read_pcap(&output);
    assert_eq!(got.len(), frames.len(), "packet count");
    for (i, (a, b)) in frames.iter().zip(&got).enumerate() {
        assert!(a == b, "packet {i} differs (sent {} bytes, got {})", a.len(), b.len());
    }
    let s = read_json(&json);
    assert_eq!(s["ports"][0]["rx"], 10_000);
    assert_eq!(s["ports"][1]["tx"], 10_000);
    assert_eq!(s["ports"][1]["dropped"], 0);
    assert_eq!(s["mbufs_in_use"], 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mbufs in use at exit: 0"), "{stdout}");
}

#[test]
fn net_ring_loopback_round_trip() {
    // pcap -> net_ring0 (its TX ring is its RX ring) -> back out of the pcap port.
    let dir = scratch("ring");
    let (input, back, json) = (dir.join("in.pcap"), dir.join("back.pcap"), dir.join("stats.json"));
    let frames: Vec<Vec<u8>> = (0..2000).map(|i| frame(i, 60 + i % 1455)).collect();
    write_pcap(&input, &frames);
    let pcap = format!("net_pcap0,rx_pcap={},tx_pcap={}", input.display(), back.display());
    let out = passthrough(&pcap, "net_ring0", &["--until-idle", "300"], Some(&json));
    assert!(out.status.success(), "vpcemu failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_pcap(&back), frames);
    let s = read_json(&json);
    assert_eq!(s["ports"][1]["name"], "net_ring0");
    assert_eq!(s["ports"][1]["tx"], 2000);
    assert_eq!(s["ports"][1]["rx"], 2000);
    assert_eq!(s["mbufs_in_use"], 0);
}

#[test]
fn bogus_vdev_is_one_clear_line() {
    let out = passthrough("net_bogus0", "net_null0", &["--until-idle", "100"], None);
    assert!(!out.status.success());
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "stderr: {lines:?}");
    assert!(lines[0].starts_with("vpcemu: error:") && lines[0].contains("net_bogus0"), "{}", lines[0]);
}

#[test]
fn missing_pcap_is_one_clear_line() {
    let dir = scratch("missing");
    let missing = dir.join("does-not-exist.pcap");
    let out = passthrough(&format!("net_pcap0,rx_pcap={}", missing.display()), "net_null0", &["--until-idle", "100"], None);
    assert!(!out.status.success());
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "stderr: {lines:?}");
    assert!(lines[0].contains("net_pcap0") && lines[0].contains("does-not-exist.pcap"), "{}", lines[0]);
    assert!(lines[0].contains("No such file"), "{}", lines[0]);
}

#[test]
fn duration_stops_an_endless_source_and_frees_every_mbuf() {
    let dir = scratch("duration");
    let (input, json) = (dir.join("in.pcap"), dir.join("stats.json"));
    write_pcap(&input, &(0..64).map(|i| frame(i, 64)).collect::<Vec<_>>());
    let endless = format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display());
    let out = passthrough(&endless, "net_null0,no-rx=1", &["--duration", "0.5"], Some(&json));
    assert!(out.status.success(), "vpcemu failed: {}", String::from_utf8_lossy(&out.stderr));
    let s = read_json(&json);
    let rx = s["ports"][0]["rx"].as_u64().unwrap();
    assert!(rx > 10_000, "an endless source should have moved many packets, got {rx}");
    assert_eq!(s["ports"][1]["tx"].as_u64().unwrap() + s["ports"][1]["dropped"].as_u64().unwrap(), rx);
    assert_eq!(s["mbufs_in_use"], 0);
    assert!(s["mpps"].as_f64().unwrap() > 0.0);
}

#[test]
fn work_cycles_delay_every_packet_and_change_none() {
    // `--work-cycles` (what vpcemu-bench --rate-matched runs): a busy-wait per packet,
    // nothing else; every frame still goes out as it came in.
    let dir = scratch("work");
    let (input, output, json) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("stats.json"));
    let frames: Vec<Vec<u8>> = (0..2000).map(|i| frame(i, 60 + i % 1455)).collect();
    write_pcap(&input, &frames);
    let (rx, tx) = (format!("net_pcap0,rx_pcap={}", input.display()), format!("net_pcap1,tx_pcap={}", output.display()));
    let out = passthrough(&rx, &tx, &["--until-idle", "300", "--work-cycles", "1000"], Some(&json));
    assert!(out.status.success(), "vpcemu failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_pcap(&output), frames);
    let s = read_json(&json);
    assert_eq!(s["work_cycles"], 1000);
    assert_eq!(s["mbufs_in_use"], 0);
    // The rate is measured between the worker's first and last busy bursts, and every
    // packet counted in it waited 1000 TSC cycles inside that span.
    let cycles = s["cycles_per_packet"].as_f64().unwrap();
    assert!(cycles >= 999.0, "{cycles} TSC cycles a packet with 1000 of work each");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("busy-waited 1000 TSC cycles a packet"), "{stdout}");
}

#[test]
fn bad_arguments_are_rejected_before_dpdk_starts() {
    let out = vpcemu(&["passthrough", "--vdev", "net_null0", "--vdev", "net_null1", "--burst", "0"]);
    assert!(!out.status.success());
    assert_eq!(stderr_lines(&out).len(), 1);
    let out = vpcemu(&["passthrough", "--vdev", "net_null0", "--vdev", "net_null1", "--work-cycles", "1000001"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--work-cycles"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = passthrough("net_null0", "net_null0", &["--until-idle", "50"], None);
    assert!(!out.status.success());
    assert!(stderr_lines(&out)[0].contains("same device"));
}

#[test]
fn counters_are_served_as_dpdk_telemetry() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = scratch("telemetry");
    let input = dir.join("in.pcap");
    write_pcap(&input, &(0..64).map(|i| frame(i, 64)).collect::<Vec<_>>());
    let prefix = format!("vpcemu-test-tel-{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["passthrough", "--vdev", &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display())])
        .args(["--vdev", "net_null0,no-rx=1", "--duration", "4", "--hugepages", "off", "--file-prefix", &prefix])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn vpcemu");
    let socket = std::path::Path::new("/var/run/dpdk").join(&prefix).join("dpdk_telemetry.v2");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(socket.exists(), "no telemetry socket at {}", socket.display());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut tel = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (from the dpdk package)");
    tel.stdin.take().unwrap().write_all(b"/vpcemu/passthrough\n").unwrap();
    let out = tel.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("/vpcemu/passthrough")).unwrap_or_else(|| panic!("{text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let rx = v["/vpcemu/passthrough"]["rx"].as_u64().unwrap();
    assert!(rx > 0, "{line}");
    assert!(child.wait().unwrap().success());
    // The run took its runtime directory (DPDK leaves it) with it.
    let runtime = socket.parent().unwrap();
    assert!(!runtime.exists(), "{} left behind", runtime.display());
}
