//! Bad input through `vpcemu run`: every truncation of valid frames, broken IPv4 and
//! Geneve headers, runts, non-IPv4, and real captures that once crashed parsers. Each
//! packet must end as a counted drop (or an answer), nothing may crash, and every mbuf
//! must come back.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wire/tests/data").join(name)
}

/// The story's world with a second instance on host-a.
fn world() -> String {
    story_world(
        r#"
[[instance]]
name = "red-2"
subnet = "red-a"
host = "host-a"
ip = "10.0.1.11"
"#,
    )
}

#[test]
fn malformed_input_is_counted_never_crashes_and_leaks_nothing() {
    let dir = scratch("robust");
    let out = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scapy/malformed_inputs.py"))
        .arg(&dir)
        .output()
        .expect("python3 with scapy");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Real captures that broke other parsers: IPv4 ones into an instance port, Geneve ones
    // (and the 80 kB BIG TCP packet, which arrives as a chain of mbufs) into the underlay.
    let mut real = Vec::new();
    for f in [
        "ipv4_invalid_hdr_length.pcap",
        "ipv4_invalid_length.pcap",
        "ipv4_invalid_total_length.pcap",
        "ipv4_invalid_total_length_2.pcap",
        "bad-ipv4-version-pgm-heapoverflow.pcap",
        "heapoverflow-in_checksum.pcap",
        "heapoverflow-ip_demux_print.pcap",
        "ip_ts_opts_asan.pcap",
        "ip_printroute_asan.pcap",
        "icmp_ext_oob_poc.pcap",
        "arp-too-long-tha.pcap",
        "arp-oobr.pcap",
        "802.1ad_QinQ.pcap",
        "ipv4_tcp_http_xml.pcap",
        "esp_truncated.pcap",
    ] {
        real.extend(read_pcap(&capture(f)));
    }
    write_pcap(&dir.join("real.pcap"), &real);
    let mut real_geneve = Vec::new();
    for f in ["geneve.pcap", "geneve-gcp.pcap", "gso-ipv4-geneve-ipv4.pcap", "bigtcp-ipv4-geneve-ipv4.pcap"] {
        real_geneve.extend(read_pcap(&capture(f)));
    }
    write_pcap(&dir.join("real-geneve.pcap"), &real_geneve);
    let inputs: usize = ["instance.pcap", "underlay.pcap", "real.pcap", "real-geneve.pcap"]
        .iter()
        .map(|f| read_pcap(&dir.join(f)).len())
        .sum();

    let d = dir.display();
    let world = world();
    let topo = [
        world,
        port("red-1", &format!("net_pcap0,rx_pcap={d}/instance.pcap,tx_pcap={d}/out-red-1.pcap"), "instance:red-1"),
        port("red-2", &format!("net_pcap1,rx_pcap={d}/real.pcap,tx_pcap={d}/out-red-2.pcap"), "instance:red-2"),
        port("yellow-1", &format!("net_pcap2,tx_pcap={d}/out-yellow-1.pcap"), "instance:yellow-1"),
        port("underlay-b", &format!("net_pcap3,rx_pcap={d}/underlay.pcap"), "underlay:host-b"),
        port("underlay-a", &format!("net_pcap4,rx_pcap={d}/real-geneve.pcap"), "underlay:host-a"),
    ]
    .concat();
    std::fs::write(dir.join("world.toml"), topo).unwrap();
    let stats = run_world(&dir, &dir.join("world.toml"), &[]).stats;
    let drops = stats.total_drops();
    let answered = (read_pcap(&dir.join("out-red-1.pcap")).len() + read_pcap(&dir.join("out-red-2.pcap")).len()) as u64;
    let delivered = read_pcap(&dir.join("out-yellow-1.pcap")).len();
    assert_eq!(delivered, 0, "nothing malformed may be delivered");
    assert_eq!(drops + answered, inputs as u64, "every input is a counted drop or an ARP answer: {:?}", stats.drops);
    assert!(stats.drop_count("malformed").unwrap() > 150, "{:?}", stats.drops);
    assert_eq!(stats.drop_count("no_verdict"), Some(0));
}
