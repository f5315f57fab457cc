//! The story of ARCHITECTURE section 1, steps 1-5, replayed through `vpcemu run` with
//! net_pcap ports. Inputs are crafted by scapy; outputs are read back and the fabric
//! capture is dissected by tshark.

mod common;

use std::path::Path;

use common::*;

fn world(dir: &Path, extra_ports: &str) -> String {
    let d = dir.display();
    let yellow = port("yellow-1", &format!("net_pcap1,tx_pcap={d}/out-yellow-1.pcap"), "instance:yellow-1");
    let fabric = port("fabric", &format!("net_pcap9,tx_pcap={d}/fabric.pcap"), "fabric");
    story_world(&format!("{yellow}{fabric}{extra_ports}"))
}

fn scapy(name: &str, dir: &Path) {
    python(&[&script(name), dir.to_str().unwrap()]);
}

fn tshark(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    common::tshark(pcap, &["ip.check_checksum:TRUE".to_string()], None, fields)
}

#[test]
fn story_replayed_through_pcap_ports() {
    let dir = scratch("story");
    scapy("story_inputs.py", &dir);
    let d = dir.display();
    let pcap = |name: &str, n: usize| format!("net_pcap{n},rx_pcap={d}/{name}.pcap,tx_pcap={d}/out-{name}.pcap");
    let ports = [
        port("red-1", &pcap("red-1", 0), "instance:red-1"),
        port("green-1", &pcap("green-1", 2), "instance:green-1"),
        port("underlay-b", &format!("net_pcap3,rx_pcap={d}/underlay-b.pcap"), "underlay:host-b"),
    ]
    .concat();
    std::fs::write(dir.join("world.toml"), world(&dir, &ports)).unwrap();
    let ran = run_world(&dir, &dir.join("world.toml"), &[]);
    let expect: serde_json::Value = read_json(&dir.join("expect.json"));
    let stats = &ran.stats;

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
        assert_eq!(stats.drop_count(reason), n.as_u64(), "drop reason {reason}");
    }
    assert_eq!(stats.total_drops(), 10, "no other drops: {:?}", stats.drops);

    // Alerts: the right reasons and addresses, counts adding up (no_mapping raises none).
    let alerts = &ran.alerts;
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
