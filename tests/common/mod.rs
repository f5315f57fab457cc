//! Shared helpers for the end-to-end tests: run the `vpcemu` binary, read and write pcaps.
#![allow(dead_code)]

pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use vpcemu::testkit::{Stats, dataplane, port};

/// The story's world (examples/story-world.toml) with a `[dataplane]` section for tests
/// (lcores 0-1, no hugepages) and `extra` (ports, more instances) after it.
pub fn story_world(extra: &str) -> String {
    vpcemu::testkit::story_world("0-1", extra)
}

/// What `vpcemu run` left: its output, the stats report and the alert lines.
pub struct Ran {
    pub out: Output,
    pub stats: Stats,
    pub alerts: Vec<serde_json::Value>,
}

/// `vpcemu run WORLD --until-idle 400 --stats-json DIR/stats.json --alerts
/// DIR/alerts.jsonl EXTRA...`: asserts that it succeeded and left no mbuf in use, and reads
/// what it wrote.
pub fn run_world(dir: &Path, world: &Path, extra: &[&str]) -> Ran {
    let (stats, alerts) = (dir.join("stats.json"), dir.join("alerts.jsonl"));
    let mut args = vec!["run", world.to_str().unwrap(), "--until-idle", "400", "--stats-json", stats.to_str().unwrap()];
    args.extend(["--alerts", alerts.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let out = vpcemu(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "vpcemu run failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("mbufs in use at exit: 0"), "{stdout}");
    let stats = Stats::read(&stats).unwrap_or_else(|e| panic!("{e}"));
    Ran { out, stats, alerts: json_lines(&alerts) }
}

/// A `vpcemu run` in the background over DIR/world.toml, whose instance port reads a FIFO
/// that the test writes, with a control socket.
pub struct Live {
    pub run: std::process::Child,
    /// The FIFO, open for writing, its pcap header written.
    pub fifo: std::fs::File,
    pub sock: PathBuf,
    pub stats: PathBuf,
    pub alerts: PathBuf,
    /// Ten seconds from the start.
    pub deadline: std::time::Instant,
}

/// Make the FIFO DIR/`fifo`, start `vpcemu run DIR/world.toml --until-idle IDLE --control
/// DIR/ctl.sock --stats-json DIR/stats.json --alerts DIR/alerts.jsonl`, open the FIFO (which
/// waits for the port to open it), write the pcap header, wait for the control socket.
pub fn run_live(dir: &Path, fifo: &str, idle: &str) -> Live {
    use std::io::Write;
    let fifo = dir.join(fifo);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (sock, stats, alerts) = (dir.join("ctl.sock"), dir.join("stats.json"), dir.join("alerts.jsonl"));
    let run = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["run", dir.join("world.toml").to_str().unwrap(), "--until-idle", idle])
        .args(["--control", sock.to_str().unwrap(), "--stats-json", stats.to_str().unwrap()])
        .args(["--alerts", alerts.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&pcap_header()).unwrap();
    w.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Live { run, fifo: w, sock, stats, alerts, deadline }
}

/// `vpcemu ctl --control SOCK CMD...`.
pub fn ctl(sock: &Path, cmd: &[&str]) -> Output {
    let mut args = vec!["ctl", "--control", sock.to_str().unwrap()];
    args.extend_from_slice(cmd);
    vpcemu(&args)
}

/// The count of drop reason `reason` in `stats` (every reason is in the report).
pub fn drop_count(stats: &Stats, reason: &str) -> u64 {
    stats.drop_count(reason).unwrap_or_else(|| panic!("no drop counter {reason}: {:?}", stats.drops))
}

/// The JSON objects of a file of one object a line (none if it does not exist).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("a JSON file")).expect("valid JSON")
}

/// Run /usr/bin/python3 (with scapy) with `args`; its stdout.
pub fn python(args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3")
        .args(args)
        .output()
        .expect("run /usr/bin/python3 (scripts/setup.sh installs python3-scapy)");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path of a script in tests/scapy.
pub fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scapy").join(name).display().to_string()
}

/// tshark fields of every frame of `pcap` (`|`-separated), with preferences `options`
/// (`-o`) and display filter `filter` (`-Y`).
pub fn tshark(pcap: &Path, options: &[String], filter: Option<&str>, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<String> = vec!["-n".into(), "-r".into(), pcap.display().to_string()];
    for o in options {
        args.extend(["-o".into(), o.clone()]);
    }
    if let Some(f) = filter {
        args.extend(["-Y".into(), f.into()]);
    }
    args.extend(["-T".into(), "fields".into(), "-E".into(), "separator=|".into()]);
    for f in fields {
        args.extend(["-e".into(), f.to_string()]);
    }
    let out = Command::new("tshark").args(&args).output().expect("run tshark (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Run vpcemu with `args` (EAL without hugepages, so tests run anywhere).
pub fn vpcemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vpcemu")).args(args).output().expect("spawn vpcemu")
}

/// Write frames as a classic microsecond pcap (Ethernet), with `wire`'s writer.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    wire::pcap::write_file(path, frames).expect("write pcap");
}

/// Read the frames of a classic pcap (with the `wire` crate's reader).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    wire::pcap::Reader::new(&b)
        .unwrap_or_else(|e| panic!("{} is not a pcap: {e}", path.display()))
        .map(|r| r.unwrap_or_else(|e| panic!("{}: bad record: {e}", path.display())).data.to_vec())
        .collect()
}

/// stderr as text, with the number of non-empty lines.
pub fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// An Ethernet/IPv4/UDP frame (DF, TTL 64, ports 40000 -> 7000, no UDP checksum) with a
/// correct IPv4 header checksum.
pub fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = (20 + udp_len) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = wire::checksum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&7000u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A broadcast ARP request from `src_mac`/`src`: who has `target`.
pub fn arp_request(src_mac: [u8; 6], src: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// The header of a classic microsecond pcap (Ethernet), for writing one record at a time
/// (into a FIFO a net_pcap port reads).
pub fn pcap_header() -> Vec<u8> {
    wire::pcap::file_header().to_vec()
}

/// One pcap record holding `frame` (time 0).
pub fn pcap_record(frame: &[u8]) -> Vec<u8> {
    let mut r = wire::pcap::record_header(0, 0, frame.len()).expect("frame fits a pcap record").to_vec();
    r.extend_from_slice(frame);
    r
}

/// A pcap record of an echo request yellow-1 -> red-1 with sequence `seq`, built by hand
/// (a pcap header is written separately).
pub fn echo(seq: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 1, 1, 20, 10, 0, 1, 10];
    let sum = wire::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut icmp = vec![8, 0, 0, 0, 0, 1];
    icmp.extend_from_slice(&seq.to_be_bytes());
    let sum = wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = vec![0x02, 0, 0, 0xff, 0, 1, 0x02, 0x00, 0x0a, 0x01, 0x01, 0x14, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}
