//! Live changes while traffic flows: `vpcemu ctl` against a running `vpcemu run`, and the
//! built-in demo.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn move_during_replay_packets_follow_the_instance() {
    // yellow-1's vNIC reads from a FIFO that this test writes: packets before the move,
    // `vpcemu ctl move`, packets after. The fabric capture shows where each one went.
    // net_pcap fills a whole RX burst before returning it (it blocks reading the FIFO
    // for the rest), so each phase sends exactly one burst (32 packets).
    let dir = scratch("live-move");
    let d = dir.display();
    let world = story_world("");
    let topo = [
        world,
        port("yellow-1", &format!("net_pcap0,rx_pcap={d}/yellow-1.fifo"), "instance:yellow-1"),
        port("red-1", &format!("net_pcap1,tx_pcap={d}/out-red-1.pcap"), "instance:red-1"),
        port("fabric", &format!("net_pcap2,tx_pcap={d}/fabric.pcap"), "fabric"),
    ]
    .concat();
    std::fs::write(dir.join("world.toml"), topo).unwrap();
    let Live { mut run, fifo: mut w, sock, deadline, .. } = run_live(&dir, "yellow-1.fifo", "1500");
    for seq in 0..32 {
        w.write_all(&pcap_record(&echo(seq))).unwrap();
    }
    w.flush().unwrap();
    // The first burst is through once red-1's port has sent 32 packets.
    let through = |n: u64| {
        let out = ctl(&sock, &["stats"]);
        let stats = Stats::parse(&String::from_utf8_lossy(&out.stdout)).ok();
        stats.and_then(|s| s.port("red-1")).map(|p| p.tx) == Some(n)
    };
    while !through(32) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(through(32), "the first burst did not reach red-1");
    // A bad command changes nothing and says why.
    let bad = ctl(&sock, &["move", "red-1", "host-z"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("host-z"), "{}", String::from_utf8_lossy(&bad.stderr));
    let ok = ctl(&sock, &["move", "red-1", "host-b"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let list = ctl(&sock, &["list"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let red = v["instances"].as_array().unwrap().iter().find(|i| i["name"] == "red-1").unwrap().clone();
    assert_eq!(red["host"], "host-b");
    for seq in 32..64 {
        w.write_all(&pcap_record(&echo(seq))).unwrap();
    }
    drop(w);
    assert!(run.wait().unwrap().success());

    // Every packet reached red-1; the first burst crossed to host-a, the second stayed on
    // host-b, where red-1 now is.
    assert_eq!(read_pcap(&dir.join("out-red-1.pcap")).len(), 64);
    let fabric = read_pcap(&dir.join("fabric.pcap"));
    assert_eq!(fabric.len(), 64);
    let dst_pa: Vec<[u8; 4]> = fabric.iter().map(|f| f[30..34].try_into().unwrap()).collect();
    assert_eq!(dst_pa[..32], [[198, 18, 0, 1]; 32]);
    assert_eq!(dst_pa[32..], [[198, 18, 0, 2]; 32]);
    let seqs: Vec<u16> = fabric.iter().map(|f| u16::from_be_bytes([f[58 + 26], f[58 + 27]])).collect();
    assert_eq!(seqs, (0..64).collect::<Vec<_>>());
}

#[test]
fn demo_tells_the_story_and_every_step_behaves() {
    let out = vpcemu(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Every step behaved."), "{text}");
    assert!(!text.contains("[FAIL]"), "{text}");
    for reason in ["no_route", "spoofed_source", "unknown_sender"] {
        assert!(text.contains(&format!("\"reason\":\"{reason}\"")), "alert {reason} missing:\n{text}");
    }
    assert!(text.contains("mbufs in use at exit: 0"));
}

#[test]
fn check_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let dir = scratch("check");
    let good = dir.join("good.toml");
    let world = story_world("");
    std::fs::write(&good, &world).unwrap();
    let out = vpcemu(&["check", good.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, world.replace("vni = 102", "vni = 101")).unwrap();
    let line = world.lines().position(|l| l == "vni = 102").unwrap() + 1;
    let out = vpcemu(&["check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains(&format!("bad.toml:{line}: vpc.vni")), "{}", err[0]);
    // And `run` refuses it the same way before starting anything.
    let out = vpcemu(&["run", bad.to_str().unwrap(), "--duration", "1"]);
    assert!(!out.status.success());
    assert_eq!(stderr_lines(&out).len(), 1);
}

#[test]
fn sigterm_stops_a_run_cleanly_and_telemetry_shows_its_drops() {
    let dir = scratch("live-sigterm");
    // green-1 keeps knocking on yellow-1 (an endless source): every packet is a `no_route`.
    let green: Vec<Vec<u8>> = (0..64u16)
        .map(|seq| {
            let mut f = echo(seq);
            f[6..12].copy_from_slice(&[0x02, 0x00, 0x0a, 0x02, 0x01, 0x1e]);
            f[26..30].copy_from_slice(&[10, 2, 1, 30]);
            f[30..34].copy_from_slice(&[10, 1, 1, 20]);
            let sum = wire::checksum::ipv4_header(&f[14..34]);
            f[24..26].copy_from_slice(&sum.to_be_bytes());
            f
        })
        .collect();
    write_pcap(&dir.join("green.pcap"), &green);
    let d = dir.display();
    let topo = story_world(&format!(
        "[[port]]\nname = \"green-1\"\nvdev = \"net_pcap0,rx_pcap={d}/green.pcap,infinite_rx=1\"\nattach = \"instance:green-1\"\n"
    ));
    std::fs::write(dir.join("world.toml"), topo).unwrap();
    let prefix = format!("vpcemu-test-run-{}", std::process::id());
    let stats = dir.join("stats.json");
    let run = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["run", dir.join("world.toml").to_str().unwrap(), "--file-prefix", &prefix, "--report-interval", "0.5"])
        .args(["--stats-json", stats.to_str().unwrap()])
        // A burst timed per millisecond at most: a sample at any build's speed (a debug
        // build's bursts take longer than the default 20 us apart).
        .args(["--stage-timing-sample-us", "1000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = Path::new("/var/run/dpdk").join(&prefix).join("dpdk_telemetry.v2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let mut tel = Command::new("dpdk-telemetry.py").args(["-f", &prefix]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    tel.stdin.take().unwrap().write_all(b"/vpcemu/drops\n").unwrap();
    let text = String::from_utf8_lossy(&tel.wait_with_output().unwrap().stdout).into_owned();
    let line = text.lines().find(|l| l.contains("/vpcemu/drops")).unwrap_or_else(|| panic!("{text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(v["/vpcemu/drops"]["no_route"].as_u64().unwrap() > 0, "{line}");
    // SIGTERM: a clean stop, the final report, exit 0.
    assert!(Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap().success());
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.matches("drop reason").count() >= 2, "periodic reports and the final one:\n{stdout}");
    assert!(stdout.contains("mbufs in use at exit: 0"));
    let s = Stats::read(&stats).unwrap();
    assert!(s.drop_count("no_route").unwrap() > 1000);
    assert_eq!(s.run.as_ref().map(|r| r.mbufs_in_use), Some(0));
    // An endless source: the worker times a sample of the bursts, one per millisecond at
    // most; the percentiles are of some packets, the counts exact.
    let f = s.stage_figures(&["classify"], &["count", "timed", "p50_ns"]);
    let (count, timed) = (f["classify"]["count"].as_u64().unwrap(), f["classify"]["timed"].as_u64().unwrap());
    assert!(timed > 0 && timed < count / 2, "{f}");
    assert!(f["classify"]["p50_ns"].as_f64().unwrap() > 0.0, "{f}");
}
