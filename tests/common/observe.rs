//! Known traffic for the observability tests (`tests/metrics.rs`, `tests/trash.rs`,
//! `tests/hgrm.rs`): the story's world with red-1 and red-2 (a second red instance on
//! host-a, without an Elastic IP) on net_pcap ports sending good and bad packets whose
//! fate is known, so that the metrics, the trash can and the histograms can be checked against it.
#![allow(dead_code)]

use std::path::Path;

use super::{story_world, udp_frame, write_pcap};

pub const RED1_MAC: [u8; 6] = [0x02, 0x00, 10, 0, 1, 10];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xff, 0x00, 0x02];

/// red-1 -> yellow-1 across the peering: host-a's stages, then host-b's `verify-recv`.
pub const TO_PEER: usize = 3;
/// red-1 -> the internet: host-a's stages, then the edge's `verify-recv` and `nat`.
pub const TO_INTERNET: usize = 2;
/// red-1 forging 10.0.1.99: `spoofed_source` at host-a's `verify-send`, with an alert.
pub const SPOOFED: usize = 7;
/// IPv6 frames from red-1: `not_ipv4` at `classify`.
pub const NOT_IPV4: usize = 2;
/// red-2 (no Elastic IP) -> the internet: across the fabric to the edge, whose `nat`
/// drops it `no_elastic_ip`.
pub const NO_EIP: usize = 2;
pub const RED2_MAC: [u8; 6] = [0x02, 0x00, 10, 0, 1, 11];

/// An Ethernet frame with the IPv6 EtherType.
pub fn ipv6_frame(i: u8) -> Vec<u8> {
    let mut f = ROUTER_MAC.to_vec();
    f.extend_from_slice(&RED1_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 17, 64]);
    f.extend_from_slice(&[i; 32]);
    f
}

/// Write `red-1.pcap` into `dir` and return the world text: red-1 reads it, yellow-1 and
/// the edge's internet side write `out-*.pcap`.
pub fn world(dir: &Path) -> String {
    let mut frames = Vec::new();
    for i in 0..TO_PEER as u8 {
        frames.push(udp_frame(ROUTER_MAC, RED1_MAC, [10, 0, 1, 10], [10, 1, 1, 20], &[i; 18]));
    }
    for i in 0..TO_INTERNET as u8 {
        frames.push(udp_frame(ROUTER_MAC, RED1_MAC, [10, 0, 1, 10], [8, 8, 8, 8], &[i; 18]));
    }
    for i in 0..SPOOFED as u8 {
        frames.push(udp_frame(ROUTER_MAC, RED1_MAC, [10, 0, 1, 99], [10, 1, 1, 20], &[i; 18]));
    }
    for i in 0..NOT_IPV4 as u8 {
        frames.push(ipv6_frame(i));
    }
    write_pcap(&dir.join("red-1.pcap"), &frames);
    let red2: Vec<Vec<u8>> =
        (0..NO_EIP as u8).map(|i| udp_frame(ROUTER_MAC, RED2_MAC, [10, 0, 1, 11], [8, 8, 4, 4], &[i; 18])).collect();
    write_pcap(&dir.join("red-2.pcap"), &red2);
    let d = dir.display();
    let port = |n: u8, name: &str, rx: bool, attach: &str| {
        let rx = if rx { format!("rx_pcap={d}/{name}.pcap,") } else { String::new() };
        format!("[[port]]\nname = \"{name}\"\nvdev = \"net_pcap{n},{rx}tx_pcap={d}/out-{name}.pcap\"\nattach = \"{attach}\"\n\n")
    };
    let red2 = "[[instance]]\nname = \"red-2\"\nsubnet = \"red-a\"\nhost = \"host-a\"\nip = \"10.0.1.11\"\n\n";
    story_world(&[
        red2.to_string(),
        port(0, "red-1", true, "instance:red-1"),
        port(3, "red-2", true, "instance:red-2"),
        port(1, "yellow-1", false, "instance:yellow-1"),
        port(2, "internet", false, "edge:blackfoot-1:internet"),
    ]
    .concat())
}
