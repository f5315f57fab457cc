//! The story of ARCHITECTURE section 1, steps 1-5, replayed through `vpcemu run` with
//! net_pcap ports. Inputs are crafted by scapy; outputs are read back and the fabric
//! capture is dissected by tshark.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn world(dir: &Path, extra_ports: &str) -> String {
    let d = dir.display();
    story_world(&format!(
        r#"
[[port]]
name = "yellow-1"
vdev = "net_pcap1,tx_pcap={d}/out-yellow-1.pcap"
attach = "instance:yellow-1"

[[port]]
name = "fabric"
vdev = "net_pcap9,tx_pcap={d}/fabric.pcap"
attach = "fabric"
{extra_ports}
"#
    ))
}

fn scapy(script: &str, dir: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scapy").join(script);
    let out = Command::new("/usr/bin/python3").arg(&path).arg(dir).output().expect("run /usr/bin/python3 (scripts/setup.sh installs python3-scapy)");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn tshark(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-n".to_string(), "-r".into(), pcap.display().to_string(), "-o".into(), "ip.check_checksum:TRUE".into()];
    args.extend(["-T".into(), "fields".into(), "-E".into(), "separator=|".into()]);
    for f in fields {
        args.extend(["-e".into(), f.to_string()]);
    }
    let out = Command::new("tshark").args(&args).output().expect("run tshark (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

fn drops(stats: &serde_json::Value, reason: &str) -> u64 {
    stats["drops"][reason].as_u64().unwrap_or_else(|| panic!("no drop counter {reason}"))
}

#[test]
fn story_replayed_through_pcap_ports() {
    let dir = scratch("story");
    scapy("story_inputs.py", &dir);
    let d = dir.display();
    let ports = format!(
        r#"
[[port]]
name = "red-1"
vdev = "net_pcap0,rx_pcap={d}/red-1.pcap,tx_pcap={d}/out-red-1.pcap"
attach = "instance:red-1"

[[port]]
name = "green-1"
vdev = "net_pcap2,rx_pcap={d}/green-1.pcap,tx_pcap={d}/out-green-1.pcap"
attach = "instance:green-1"

[[port]]
name = "underlay-b"
vdev = "net_pcap3,rx_pcap={d}/underlay-b.pcap"
attach = "underlay:host-b"
"#
    );
    std::fs::write(dir.join("world.toml"), world(&dir, &ports)).unwrap();
    let (stats_path, alerts_path) = (dir.join("stats.json"), dir.join("alerts.jsonl"));
    let out = vpcemu(&[
        "run",
        dir.join("world.toml").to_str().unwrap(),
        "--until-idle",
        "400",
        "--stats-json",
        stats_path.to_str().unwrap(),
        "--alerts",
        alerts_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "vpcemu run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mbufs in use at exit: 0"));
    let expect: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap()).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();

    // Step 1: delivered, inner packets byte-identical, Ethernet to yellow-1's MAC.
    let got = read_pcap(&dir.join("out-yellow-1.pcap"));
    let want: Vec<String> = expect["delivered_to_yellow"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(got.len(), want.len(), "packets delivered to yellow-1");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(&g[0..6], &[0x02, 0x00, 0x0a, 0x01, 0x01, 0x14], "packet {i}: destination MAC is yellow-1's");
        assert_eq!(&g[12..14], &[0x08, 0x00]);
        let inner: String = g[14..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&inner, w, "packet {i}: inner packet byte-identical");
    }
    // The card answered red-1's ARP for its gateway.
    let arp = read_pcap(&dir.join("out-red-1.pcap"));
    assert_eq!(arp.len(), 1);
    assert_eq!(&arp[0][12..14], &[0x08, 0x06]);
    assert_eq!(&arp[0][20..22], &[0x00, 0x02], "an ARP reply");

    // Steps 2-4: each drop reason with its count.
    for (reason, n) in expect["drops"].as_object().unwrap() {
        assert_eq!(drops(&stats, reason), n.as_u64().unwrap(), "drop reason {reason}");
    }
    let total: u64 = stats["drops"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 10, "no other drops: {}", stats["drops"]);

    // Alerts: the right reasons and addresses, counts adding up (no_mapping raises none).
    let alerts: Vec<serde_json::Value> = std::fs::read_to_string(&alerts_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each alert line is JSON"))
        .collect();
    let count = |reason: &str, src: &str, dst: &str| -> u64 {
        alerts.iter().filter(|a| a["reason"] == reason && a["src"] == src && a["dst"] == dst).map(|a| a["count"].as_u64().unwrap()).sum()
    };
    assert_eq!(count("no_route", "10.2.1.30", "10.1.1.20"), 3, "{alerts:?}");
    assert_eq!(count("spoofed_source", "10.1.1.20", "10.1.1.20"), 2, "{alerts:?}");
    assert_eq!(count("spoofed_source", "10.2.1.30", "10.2.1.31"), 1, "{alerts:?}");
    assert_eq!(count("unknown_sender", "10.0.1.10", "10.1.1.20"), 2, "{alerts:?}");
    assert_eq!(count("unknown_sender", "10.2.1.30", "10.1.1.20"), 1, "{alerts:?}");
    assert!(alerts.iter().all(|a| a["ts"].is_string() && a["stage"].is_string() && (a["host"].is_string())));
    assert!(alerts.iter().all(|a| a["reason"] != "no_mapping"));
    for a in alerts.iter().filter(|a| a["reason"] == "spoofed_source") {
        assert_eq!(a["host"], "host-a");
        assert_eq!(a["instance"], "green-1");
        assert_eq!(a["vpc"], "green");
    }

    // tshark: every fabric packet is Geneve with VNI 102, the source-VPC option of red,
    // red-1 -> yellow-1 inside, valid IPv4 checksums, nothing malformed.
    let rows = tshark(
        &dir.join("fabric.pcap"),
        &["geneve.vni", "geneve.option.class", "geneve.option.type", "ip.src", "ip.dst", "ip.checksum.status", "udp.dstport", "_ws.malformed", "ip.flags.df", "ip.ttl"],
    );
    assert_eq!(rows.len(), want.len(), "fabric packets");
    for r in &rows {
        assert_eq!(r[0], "0x000066", "VNI 102: {r:?}");
        assert_eq!(r[1], "0xfff0", "option class: {r:?}");
        assert_eq!(r[2], "0x01", "option type: {r:?}");
        assert_eq!(r[3], "198.18.0.1,10.0.1.10", "outer and inner sources: {r:?}");
        assert_eq!(r[4], "198.18.0.2,10.1.1.20", "outer and inner destinations: {r:?}");
        // Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
        assert_eq!(r[5], "1,1", "both IPv4 checksums good: {r:?}");
        assert!(r[6] == "6081" || r[6].starts_with("6081,"), "outer UDP to 6081: {r:?}");
        assert_eq!(r[7], "", "malformed: {r:?}");
        assert!(r[8].starts_with("1") || r[8].starts_with("True"), "outer DF: {r:?}");
        assert!(r[9].starts_with("64"), "outer TTL 64: {r:?}");
    }
    let opt = tshark(&dir.join("fabric.pcap"), &["geneve.option.unknown.data"]);
    assert!(opt.iter().all(|r| r[0] == "00000065"), "source VPC 101 in the option: {opt:?}");
}
