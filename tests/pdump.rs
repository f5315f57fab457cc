//! `vpcemu run --pdump`: DPDK's own `dpdk-dumpcap` (Debian's `dpdk` package), a secondary
//! process, captures a port of a running vpcemu; tshark reads what it wrote. Needs a
//! mounted hugetlbfs and free hugepages (scripts/setup.sh provides both).

mod common;

use std::process::{Command, Stdio};
use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::*;

const RED1_MAC: [u8; 6] = [0x02, 0x00, 10, 0, 1, 10];
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xff, 0x00, 0x02];

#[test]
fn dpdk_dumpcap_captures_a_port_of_a_running_vpcemu() {
    let dir = scratch("pdump");
    // red-1 sends to yellow-1 over and over (infinite_rx) while dumpcap listens.
    let frames: Vec<Vec<u8>> =
        (0..8u8).map(|i| udp_frame(ROUTER_MAC, RED1_MAC, [10, 0, 1, 10], [10, 1, 1, 20], &[i; 26])).collect();
    // DPDK 22.11's net_pcap keeps only 63 bytes of its arguments for secondary processes:
    // the pcap goes to a short path so that dumpcap can open the port too.
    let pcap = std::path::PathBuf::from(format!("/tmp/vpd-{}.pcap", std::process::id()));
    write_pcap(&pcap, &frames);
    let p = pcap.display();
    let world = story_world(&format!(
        "[[port]]\nname = \"red-1\"\nvdev = \"net_pcap0,rx_pcap={p},infinite_rx=1\"\nattach = \"instance:red-1\"\n\n\
         [[port]]\nname = \"yellow-1\"\nvdev = \"net_null0\"\nattach = \"instance:yellow-1\"\n"
    ))
    .replace("memory_mb = 512\nhugepages = \"off\"", "memory_mb = 256\nhugepages = \"on\"");
    std::fs::write(dir.join("world.toml"), world).unwrap();
    let prefix = format!("vpcemu-pdump-test-{}", std::process::id());
    let mut run = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["run", dir.join("world.toml").to_str().unwrap(), "--pdump", "--file-prefix", &prefix])
        .args(["--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The primary is ready once it says so (after EAL init, the ports and pdump).
    let stdout = run.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("pdump: ready") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    assert!(rx.recv_timeout(Duration::from_secs(30)).is_ok(), "vpcemu never said pdump: ready");
    let capture = dir.join("red-1.pcapng");
    let dumpcap = Command::new("timeout")
        .args(["30", "dpdk-dumpcap", &format!("--file-prefix={prefix}"), "-i", "net_pcap0", "-c", "20", "-w"])
        .arg(&capture)
        .output()
        .expect("run dpdk-dumpcap (scripts/setup.sh installs dpdk)");
    let _ = Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
    let _ = std::fs::remove_file(&pcap);
    let out = run.wait_with_output().unwrap();
    // The run removed what DPDK leaves of a primary with shared configuration: its
    // hugepage files (memory no other run could use) and its runtime directory.
    let left: Vec<String> = std::fs::read_dir("/dev/hugepages")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let left: Vec<&String> = left.iter().filter(|n| n.starts_with(&format!("{prefix}map_"))).collect();
    for n in &left {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/hugepages").join(n));
    }
    let runtime = std::path::Path::new("/var/run/dpdk").join(&prefix);
    let runtime_left = runtime.exists();
    let _ = std::fs::remove_dir_all(&runtime);
    assert!(left.is_empty(), "hugepage files left behind: {left:?}");
    assert!(!runtime_left, "{} left behind", runtime.display());
    let stdout = reader.join().unwrap();
    assert!(
        dumpcap.status.success(),
        "dpdk-dumpcap: {}{}",
        String::from_utf8_lossy(&dumpcap.stdout),
        String::from_utf8_lossy(&dumpcap.stderr)
    );
    assert!(out.status.success(), "vpcemu run: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("pdump: ready for dpdk-dumpcap --file-prefix={prefix}")), "{stdout}");
    assert!(stdout.contains("mbufs in use at exit: 0"), "{stdout}");

    // What dumpcap wrote, read by tshark: red-1's frames, received on port 0 (net_pcap0).
    let t = Command::new("tshark")
        .args(["-n", "-r", capture.to_str().unwrap(), "-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.interface_name", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.length", "-e", "frame.len"])
        .output()
        .expect("run tshark");
    assert!(t.status.success(), "tshark: {}", String::from_utf8_lossy(&t.stderr));
    let rows: Vec<String> = String::from_utf8_lossy(&t.stdout).lines().map(str::to_owned).collect();
    // dumpcap stops after the burst that reaches 20 packets; it names port 0 `dpdk:0`.
    assert!(rows.len() >= 20, "{rows:?}");
    let want = format!("dpdk:0|10.0.1.10|10.1.1.20|34|{}", frames[0].len());
    assert!(rows.iter().all(|r| *r == want), "{rows:?}");
}
